"""Copies: exact and near-exact duplicates, found cheaply before any encoding.

Reposts, mirrored feeds and lightly edited re-publications are the same text
in the same language; they need no multilingual model to be found, and a
corpus full of them should not pay to encode each one. This stage groups
them first, so only one *primary* per copy group goes through the expensive
stages; the copies join their primary's cluster afterwards.

* exact copies: the same text after case-folding and collapsing whitespace;
* near-exact copies: MinHash LSH (datasketch, Broder 1997; Leskovec,
  Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3) over character
  shingles of the same normalised text, each LSH hit confirmed by the exact
  Jaccard similarity of the two shingle sets, so a false LSH hit never joins
  two documents. Character shingles work in every script, with or without
  spaces between words.

Excerpts (the first half of an article) are *not* copies here: their
Jaccard similarity to the whole article is far below ``threshold``; the
sentence aligner finds them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class CopyConfig:
    """Settings of the near-duplicate pass.

    Attributes:
        threshold: least Jaccard similarity of two texts' shingle sets for them
            to be copies. 0.9 joins reposts with edited bylines, typos or a
            changed sentence, and nothing that was rewritten.
        shingle: characters per shingle. 8 characters is about a word and a
            half in Latin script and two or three words in CJK.
        num_perm: MinHash permutations; more gives fewer LSH misses and costs
            time linearly.
    """

    threshold: float = 0.9
    shingle: int = 8
    num_perm: int = 128

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.shingle < 1 or self.num_perm < 16:
            raise ValueError("need shingle >= 1 and num_perm >= 16")


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text.casefold()).strip()


def _shingles(text: str, size: int) -> set[bytes]:
    if len(text) <= size:
        return {text.encode("utf-8")}
    return {text[i : i + size].encode("utf-8") for i in range(len(text) - size + 1)}


def find_copies(texts: Sequence[str], keys: Sequence[str], config: CopyConfig) -> np.ndarray:
    """For each text, the index of its copy group's primary (itself if it leads its group).

    Args:
        texts: the documents' texts.
        keys: their ids; the primary of a group is its longest text, then the
            smallest id, so the result does not depend on input order.
        config: threshold and MinHash settings.

    Returns:
        ``(n,)`` int64 array ``primary`` with ``primary[primary[i]] == primary[i]``.
    """
    from datasketch import MinHash, MinHashLSH

    n = len(texts)
    normalised = [_normalise(t) for t in texts]
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    # exact copies: one representative each for the near-exact pass
    first_of: dict[bytes, int] = {}
    distinct: list[int] = []
    for index, text in enumerate(normalised):
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        if digest in first_of:
            join(first_of[digest], index)
        else:
            first_of[digest] = index
            distinct.append(index)

    if config.threshold < 1 and len(distinct) > 1:
        shingles = {i: _shingles(normalised[i], config.shingle) for i in distinct}
        hashes = MinHash.bulk([list(shingles[i]) for i in distinct], num_perm=config.num_perm)
        # every LSH hit is verified exactly, so a false positive costs only
        # time: weigh misses 9:1 over false hits when choosing the bands
        lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, weights=(0.1, 0.9))
        for index, minhash in zip(distinct, hashes, strict=True):
            for other in lsh.query(minhash):
                if root(other) == root(index):
                    continue  # already one group: no need to verify again
                a, b = shingles[index], shingles[other]
                if len(a & b) >= config.threshold * len(a | b):
                    join(index, other)
            lsh.insert(index, minhash)

    groups: dict[int, list[int]] = {}
    for index in range(n):
        groups.setdefault(root(index), []).append(index)
    primary = np.empty(n, dtype=np.int64)
    for members in groups.values():
        lead = min(members, key=lambda i: (-len(texts[i]), keys[i]))
        primary[members] = lead
    return primary
