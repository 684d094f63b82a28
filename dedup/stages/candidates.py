"""Candidates: the document pairs worth aligning, found by neighbour search.

Aligning every pair of documents is quadratic; aligning each document with a
few dozen neighbours is linear. Two searches with faiss (exact inner-product
search over L2-normalised vectors) feed one candidate set:

* **document neighbours**: each document's ``doc_neighbours`` nearest
  documents by the cosine of *language-centred* document vectors. Raw
  multilingual vectors carry more language than story (two different English
  stories are closer than one story in English and Greek); subtracting each
  language's mean vector removes most of that signal (see ``design.md``).
* **sentence neighbours**: each sentence's ``sentence_neighbours`` nearest
  sentences in other documents, by centred sentence vectors. Short articles,
  and articles in languages the encoder knows poorly, often have one or two
  sentences that match well while their document vectors do not.

Centring (:func:`language_centred`) shrinks each language's mean towards the
corpus mean by ``centering_prior`` pseudo-documents, so a language with a
single document (the five seed articles are in five languages) keeps most of
its own content instead of having it subtracted away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: extra hits asked of faiss to make up for those in the query's own document.
_OWN_DOC_SLACK = 8


@dataclass(frozen=True, slots=True)
class CandidateConfig:
    """Settings of the candidate search.

    Attributes:
        doc_neighbours: nearest documents per document (recall vs. align cost).
        sentence_neighbours: nearest sentences per sentence, 0 to turn off.
        centering_prior: pseudo-documents of corpus mean mixed into each
            language mean; larger keeps more of small languages' signal.
    """

    doc_neighbours: int = 20
    sentence_neighbours: int = 5
    centering_prior: float = 2.0

    def __post_init__(self) -> None:
        if self.doc_neighbours < 1 or self.sentence_neighbours < 0:
            raise ValueError("doc_neighbours must be >= 1 and sentence_neighbours >= 0")
        if self.centering_prior < 0:
            raise ValueError("centering_prior must be >= 0")


def language_centred(
    vectors: np.ndarray, groups: np.ndarray, weights: np.ndarray, prior: float
) -> np.ndarray:
    """Subtract a shrunken per-group mean from each row, then L2-normalise.

    Args:
        vectors: ``(n, dim)`` rows to centre.
        groups: ``(n,)`` int group of each row (its document's language).
        weights: ``(n,)`` weight of each row in its group mean; for sentences,
            ``1 / sentences in its document``, so every document counts once.
        prior: pseudo-documents at the overall mean added to every group.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 0:
        return vectors.copy()
    n_groups = int(groups.max()) + 1
    sums = np.zeros((n_groups, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, groups, vectors * weights[:, None])
    mass = np.bincount(groups, weights=weights, minlength=n_groups)
    overall = sums.sum(axis=0) / max(mass.sum(), 1e-12)
    means = (sums + prior * overall) / (mass + prior)[:, None]
    centred = vectors - means[groups].astype(np.float32)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norms, 1e-12)


def _knn(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product k nearest neighbours of every row among all rows."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    scores, hits = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
    return scores, hits


def _pairs(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    pairs = np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def candidate_pairs(
    doc_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    sentence_doc: np.ndarray,
    usable: np.ndarray,
    config: CandidateConfig,
) -> np.ndarray:
    """Unique document pairs ``(a, b)``, ``a < b``, sorted, as an ``(m, 2)`` int64 array.

    Args:
        doc_vectors: ``(n_docs, dim)`` language-centred document vectors.
        sentence_vectors: ``(n_sent, dim)`` language-centred sentence vectors.
        sentence_doc: ``(n_sent,)`` document of each sentence.
        usable: ``(n_sent,)`` bool, False for boilerplate (never a reason to pair).
        config: neighbour counts.
    """
    n_docs = len(doc_vectors)
    found = [np.zeros((0, 2), dtype=np.int64)]
    if n_docs > 1:
        k = min(config.doc_neighbours + 1, n_docs)
        _, hits = _knn(doc_vectors, k)
        rows = np.repeat(np.arange(n_docs), k)
        cols = hits.reshape(-1)
        keep = cols >= 0
        found.append(_pairs(rows[keep], cols[keep]))
    sentence_rows = np.flatnonzero(usable)
    if config.sentence_neighbours and len(sentence_rows) > 1:
        k = min(config.sentence_neighbours + _OWN_DOC_SLACK, len(sentence_rows))
        _, hits = _knn(sentence_vectors[sentence_rows], k)
        own = sentence_doc[sentence_rows]
        valid = hits >= 0
        other = np.where(valid, sentence_doc[sentence_rows[np.maximum(hits, 0)]], -1)
        other = np.where(other == own[:, None], -1, other)
        # keep the first `sentence_neighbours` hits in other documents
        rank = np.cumsum(other >= 0, axis=1)
        take = (other >= 0) & (rank <= config.sentence_neighbours)
        left = np.broadcast_to(own[:, None], other.shape)[take]
        found.append(_pairs(left, other[take]))
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)
    return pairs
