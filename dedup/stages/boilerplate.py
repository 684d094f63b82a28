"""The boilerplate stage: which sentences are no evidence (site furniture, no letters).

Sentences shared by several unrelated documents (footers, bylines, cookie
notices) align perfectly between unrelated articles, so they are marked
unusable before anything is compared. The counts are global (how many
unrelated documents hold each sentence key), the state is small (one set of
documents per key), and the mask is per sentence.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_NON_WORD = re.compile(r"[\W\d_]+")


def sentence_key(sentence: str) -> str:
    """Sentence text reduced to letters, case-folded: copies of a template share it."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", sentence).casefold()).strip()


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
    n_docs = len(offsets) - 1
    keys = [sentence_key(s) for s in sentences]
    doc_of = np.repeat(np.arange(n_docs), np.diff(offsets))
    docs_with: dict[str, set[int]] = defaultdict(set)
    for key, doc in zip(keys, doc_of, strict=True):
        docs_with[key].add(int(doc))
    weight = {key: 1.0 / len(docs) for key, docs in docs_with.items() if key}
    distinct = [{keys[i] for i in range(offsets[d], offsets[d + 1])} for d in range(n_docs)]
    mass = [sum(weight.get(key, 0.0) for key in doc_keys) for doc_keys in distinct]
    shared: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0, 0.0])
    for key, docs in docs_with.items():
        # keys in very many documents are boilerplate whatever the families are
        if key and 1 < len(docs) <= 64:
            ordered = sorted(docs)
            for i, left in enumerate(ordered):
                for right in ordered[i + 1 :]:
                    entry = shared[(left, right)]
                    entry[0] += 1
                    entry[1] += weight[key]
    family = list(range(n_docs))

    def root(x: int) -> int:
        while family[x] != x:
            family[x] = family[family[x]]
            x = family[x]
        return x

    for (left, right), (count, shared_mass) in sorted(shared.items()):
        shorter = min(len(distinct[left]), len(distinct[right]))
        lighter = min(mass[left], mass[right])
        if count >= min(2, shorter) and 2 * shared_mass >= lighter - 1e-9:
            family[root(left)] = root(right)
    families = {key: {root(d) for d in docs} for key, docs in docs_with.items()}
    return np.array([not key or len(families[key]) >= min_docs for key in keys], dtype=bool)


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
        spans = [np.arange(offsets[d], offsets[d + 1]) for d in primaries]
        rows = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
        local = np.cumsum([0] + [len(span) for span in spans]).astype(np.int64)
        return cls(rows.astype(np.int64), local)


def usable_sentences(sentences: list[str], view: PrimaryView, min_docs: int) -> np.ndarray:
    """Boilerplate judged among primary documents only; copies inherit it by sentence key.

    A story reposted 10,000 times is one primary: its sentences are not
    "shared by many documents", while a footer found in many different
    articles still is.
    """
    primary_sentences = [sentences[row] for row in view.rows]
    mask = boilerplate_mask(primary_sentences, view.offsets, min_docs)
    boilerplate_keys = {
        sentence_key(text) for text, flag in zip(primary_sentences, mask, strict=True) if flag
    }
    usable = np.array([sentence_key(s) not in boilerplate_keys for s in sentences], dtype=bool)
    usable[view.rows] = ~mask
    return usable
