"""The boilerplate stage: which sentences are no evidence (site furniture, no letters).

Sentences shared by several unrelated documents (footers, bylines, cookie
notices) align perfectly between unrelated articles, so they are marked
unusable before anything is compared. The counts are global (how many
unrelated documents hold each sentence key), the state is small (a 64-bit
hash of each sentence's key, and the document pairs of the keys found in a
few documents), and the mask is per sentence.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dedup.cache import completed
from dedup.records import concat_ranges
from dedup.stages.cluster import link_components

if TYPE_CHECKING:
    from dedup.stages.document_cache import DocumentCache

_NON_WORD = re.compile(r"[\W\d_]+")


def sentence_key(sentence: str) -> str:
    """Sentence text reduced to letters, case-folded: copies of a template share it."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", sentence).casefold()).strip()


def key_hashes(sentences: Sequence[str]) -> np.ndarray:
    """``(n,)`` uint64: a stable 63-bit hash of each sentence's :func:`sentence_key`, odd,
    or 0 for a sentence without letters (an empty key).

    Counting hashes in arrays instead of keys in dictionaries of sets keeps the
    stage's state at 8 bytes a sentence; two keys share a hash with
    probability ~2**-63.
    """
    out = np.zeros(len(sentences), dtype=np.uint64)
    for row, sentence in enumerate(sentences):
        key = sentence_key(sentence)
        if key:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8)
            out[row] = int.from_bytes(digest.digest(), "little") | 1
    return out


def cached_key_hashes(
    sentences_of: Sequence[Sequence[str]], cache: DocumentCache | None = None
) -> np.ndarray:
    """:func:`key_hashes` of every document's sentences, concatenated in document order;
    with a cache, those it holds are read and only the others computed (then added).

    Normalising every sentence is most of this stage's time (~4 µs a
    sentence); a run over a corpus that grew reads what it did before.
    """
    found = cache.sentence_keys(sentences_of) if cache is not None else [None] * len(sentences_of)

    def compute(block: list[int]) -> list[np.ndarray]:
        return [key_hashes(sentences_of[i]) for i in block]

    def add(block: list[int], computed: list[np.ndarray]) -> None:
        assert cache is not None
        cache.add_sentence_keys([sentences_of[i] for i in block], computed)

    parts = completed(found, compute, add, cache)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def boilerplate_mask(
    sentences: Sequence[str], offsets: np.ndarray, min_docs: int = 3
) -> np.ndarray:
    """True for sentences that are no evidence: site boilerplate, or no letters at all.

    A sentence is boilerplate when its letters (case-folded, digits and
    punctuation dropped) occur in ``min_docs`` or more documents that are not
    copies of each other. Copies (reposts, excerpts) count once, so a story
    posted three times is not mistaken for boilerplate.

    Two documents are copies here when the sentences they share make up at
    least half of the shorter one, each sentence weighing ``1 / documents
    that contain it``. Counting sentences alone, forty different one-line
    briefs under one ten-line site footer share 10 of 11 sentences pairwise
    and would be one "family", so the footer would count once and be taken
    for evidence; weighed, a footer line in 40 documents weighs 1/40 and each
    brief's own sentence 1, so the briefs stay apart, while a story reposted
    three times (every sentence in 3 documents) or an excerpt (every sentence
    also in the full article) is still one family.
    """
    return _mask_of_hashes(key_hashes(sentences), offsets, min_docs)


#: a key in more documents than this is boilerplate whatever the families are:
#: its document pairs are not counted
_MOST_PAIRED = 64


def _mask_of_hashes(hashes: np.ndarray, offsets: np.ndarray, min_docs: int) -> np.ndarray:
    """:func:`boilerplate_mask` from :func:`key_hashes`: sorts and counts over arrays,
    Python loops only over the keys found in 2..64 documents."""
    n_docs = len(offsets) - 1
    # the distinct (key, document) pairs, by key then document; every array here is
    # a few bytes a sentence, so the ones done with go at once (12.7 million
    # sentences at a million documents: ~0.1 GB an int64 array)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int32), np.diff(offsets))
    order = np.lexsort((doc_of, hashes))
    key_sorted, doc_sorted = hashes[order], doc_of[order]
    del order, doc_of
    first = np.ones(len(key_sorted), dtype=bool)
    first[1:] = (key_sorted[1:] != key_sorted[:-1]) | (doc_sorted[1:] != doc_sorted[:-1])
    key_docs, docs = key_sorted[first], doc_sorted[first]
    del key_sorted, doc_sorted, first
    # the keys are in order already: their runs, without np.unique's sort
    new_key = np.ones(len(key_docs), dtype=bool)
    new_key[1:] = key_docs[1:] != key_docs[:-1]
    keys, key_of = key_docs[new_key], np.cumsum(new_key) - 1
    starts = np.append(np.flatnonzero(new_key), len(key_docs))
    docs_per_key = np.diff(starts)
    del key_docs, new_key
    weight = np.where(keys != 0, 1.0 / docs_per_key, 0.0)
    distinct = np.bincount(docs, minlength=n_docs)  # distinct keys, the empty one too
    mass = np.bincount(docs, weights=weight[key_of], minlength=n_docs)
    shared: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0, 0.0])
    paired = np.flatnonzero((keys != 0) & (docs_per_key > 1) & (docs_per_key <= _MOST_PAIRED))
    for key in paired.tolist():
        ordered = docs[starts[key] : starts[key + 1]].tolist()
        for i, left in enumerate(ordered):
            for right in ordered[i + 1 :]:
                entry = shared[(left, right)]
                entry[0] += 1
                entry[1] += weight[key]
    # families: connected components of the pairs that are copies of each other
    copies = [
        pair
        for pair, (count, shared_mass) in shared.items()
        if count >= min(2, distinct[pair[0]], distinct[pair[1]])
        and 2 * shared_mass >= min(mass[pair[0]], mass[pair[1]]) - 1e-9
    ]
    pairs = np.array(copies, dtype=np.int64).reshape(-1, 2)
    roots = link_components(n_docs, pairs[:, 0], pairs[:, 1])
    # families per key: distinct (key, family root) pairs
    family_order = np.lexsort((roots[docs], key_of))
    key_f, root_f = key_of[family_order], roots[docs][family_order]
    new_family = np.ones(len(family_order), dtype=bool)
    new_family[1:] = (key_f[1:] != key_f[:-1]) | (root_f[1:] != root_f[:-1])
    families = np.bincount(key_f[new_family], minlength=len(keys))
    boilerplate_key = (keys == 0) | (families >= min_docs)
    return boilerplate_key[np.searchsorted(keys, hashes)]


@dataclass(frozen=True)
class PrimaryView:
    """The sentence rows of the primary documents (copies left out), and their offsets.

    Every stage after boilerplate works on primaries only: a copy costs its
    MinHash signature and nothing after it.
    """

    rows: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, primaries: np.ndarray, offsets: np.ndarray) -> PrimaryView:
        # without a range object per document: a million of them held ~0.1 GB at once
        primaries = np.asarray(primaries, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
        rows, local = concat_ranges(offsets[primaries], offsets[primaries + 1])
        return cls(rows.astype(np.int64), local.astype(np.int64))


def usable_sentences(hashes: np.ndarray, view: PrimaryView, min_docs: int) -> np.ndarray:
    """Boilerplate judged among primary documents only; copies inherit it by sentence key.

    A story reposted 10,000 times is one primary: its sentences are not
    "shared by many documents", while a footer found in many different
    articles still is. ``hashes``: :func:`key_hashes` of every sentence of
    every document, in order (:func:`cached_key_hashes`).
    """
    primary_hashes = hashes[view.rows]
    mask = _mask_of_hashes(primary_hashes, view.offsets, min_docs)
    usable = ~np.isin(hashes, primary_hashes[mask])
    usable[view.rows] = ~mask
    return usable


def usable_counts(usable: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(n_docs,)`` usable sentences of each document (``offsets``: where each starts)."""
    running = np.concatenate([[0], np.cumsum(usable, dtype=np.int64)])
    return running[offsets[1:]] - running[offsets[:-1]]
