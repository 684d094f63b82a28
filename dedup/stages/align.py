"""Align: sentence-level evidence that two documents are the same article.

For a candidate pair (A, B) every sentence of A is compared with every
sentence of B, and the pair's score is the weight of the best **in-order**
alignment of their sentences, per sentence of the shorter document.

Three choices make that score mean the same thing in every language:

1. **Relative, not absolute, similarity.** A multilingual encoder places a
   Burmese sentence and its English translation at cosine 0.5 and two
   unrelated German sentences at 0.6; one cosine threshold cannot serve every
   language pair (``design.md``: a fixed LASER margin of 1.05 lost the weak
   pairs, 1.02 let noise in). Each similarity is turned into a z-score against
   a *null*: how the sentence scores against the sentences of the other
   document's language that belong to neither document. A translation
   stands several standard deviations above its language's crowd whether
   the crowd sits at 0.2 or at 0.7. This is the idea of the margin criterion
   of LASER bitext mining (Artetxe & Schwenk, 2019, "Margin-based Parallel
   Corpus Mining with Multilingual Sentence Embeddings") with a mean and a
   spread in place of a k-nearest-neighbour mean. The null's mean and
   variance come in closed form from per-language sums of vectors and of
   outer products (no sampling, so it is deterministic), and a language with
   few sentences borrows ``null_prior`` sentences' worth of the corpus-wide
   null.
2. **Order.** Translations and excerpts keep the order of sentences; two
   outlets' reports of one event share facts in a different order. The score
   is a monotone alignment (a weighted longest common subsequence, as in the
   dynamic programs of vecalign, Thompson & Koehn 2019) over soft weights
   ``clip((z - z_low) / (z_high - z_low), 0, 1)``.
3. **Numbers.** Numbers survive translation in any script (``\\d`` matches
   every script's digits). Two sentences that both carry numbers of two or
   more digits and share none are not translations of each other (the
   reports of one arrest: "Track Palin, 26" against "Palin, 29"), so
   their weight is 0 whatever their similarity.
4. **Not evidence.** Boilerplate (a sentence found in ``boilerplate_docs`` or
   more documents that are not copies of one another) is dropped before any
   comparison; it aligns perfectly between unrelated articles. The shorter
   document's length carries a one-sentence prior, so a single matching
   sentence cannot make a one-sentence excerpt a certain match.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from dedup.records import AlignedPair, PairEvidence

_NON_WORD = re.compile(r"[\W\d_]+")
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class AlignConfig:
    """Settings of the aligner.

    Attributes:
        z_low: a sentence pair this many standard deviations above its null
            starts to count (weight 0 below).
        z_high: ...and counts fully (weight 1) from here. A random best match
            among a few hundred sentences sits near z = 3, so full weight needs
            more than that; true translations sit at 4-7 in every language
            measured.
        length_prior: pseudo-sentences added to the shorter document's length.
        null_prior: corpus-wide null mixed into each language's null, in
            sentences.
        boilerplate_docs: a sentence in at least this many unrelated documents
            is boilerplate.
    """

    z_low: float = 2.0
    z_high: float = 4.0
    length_prior: float = 1.0
    null_prior: float = 20.0
    boilerplate_docs: int = 3

    def __post_init__(self) -> None:
        if not self.z_low < self.z_high:
            raise ValueError(f"need z_low < z_high, got {self.z_low} >= {self.z_high}")
        if self.length_prior < 0 or self.null_prior <= 0 or self.boilerplate_docs < 2:
            raise ValueError("need length_prior >= 0, null_prior > 0, boilerplate_docs >= 2")


def sentence_key(sentence: str) -> str:
    """Sentence text reduced to letters, case-folded: copies of a template share it."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", sentence).casefold()).strip()


def boilerplate_mask(
    sentences: Sequence[str], offsets: np.ndarray, min_docs: int = 3
) -> np.ndarray:
    """True for sentences that are no evidence: site boilerplate, or no letters at all.

    A sentence is boilerplate when its letters (case-folded, digits and
    punctuation dropped) occur in ``min_docs`` or more documents that are not
    copies of each other. Copies (reposts, excerpts: documents sharing at
    least half of the shorter one's sentences) count once, so a story posted
    three times is not mistaken for boilerplate.
    """
    n_docs = len(offsets) - 1
    keys = [sentence_key(s) for s in sentences]
    doc_of = np.repeat(np.arange(n_docs), np.diff(offsets))
    docs_with: dict[str, set[int]] = defaultdict(set)
    for key, doc in zip(keys, doc_of, strict=True):
        docs_with[key].add(int(doc))
    distinct = [len({keys[i] for i in range(offsets[d], offsets[d + 1])}) for d in range(n_docs)]
    shared: dict[tuple[int, int], int] = defaultdict(int)
    for key, docs in docs_with.items():
        # keys in very many documents are boilerplate whatever the families are
        if key and 1 < len(docs) <= 64:
            ordered = sorted(docs)
            for i, left in enumerate(ordered):
                for right in ordered[i + 1 :]:
                    shared[(left, right)] += 1
    family = list(range(n_docs))

    def root(x: int) -> int:
        while family[x] != x:
            family[x] = family[family[x]]
            x = family[x]
        return x

    for (left, right), count in sorted(shared.items()):
        shorter = min(distinct[left], distinct[right])
        if count >= min(2, shorter) and 2 * count >= shorter:
            family[root(left)] = root(right)
    families = {key: {root(d) for d in docs} for key, docs in docs_with.items()}
    return np.array([not key or len(families[key]) >= min_docs for key in keys], dtype=bool)


def sentence_numbers(sentences: Sequence[str]) -> list[frozenset[int]]:
    """The numbers of 10 or more in each sentence, read in any script's digits.

    Single digits are left out: they are often spelt out in one language
    ("two days") and written in digits in another.
    """
    out = []
    for sentence in sentences:
        found = _NUMBER.findall(unicodedata.normalize("NFKC", sentence))
        out.append(frozenset(v for v in map(int, found) if v >= 10))
    return out


def number_conflicts(left: Sequence[frozenset[int]], right: Sequence[frozenset[int]]) -> np.ndarray:
    """``(len(left), len(right))`` bool: both sentences have numbers and share none."""
    conflicts = np.zeros((len(left), len(right)), dtype=bool)
    right_with = [(j, nums) for j, nums in enumerate(right) if nums]
    for i, nums in enumerate(left):
        if nums:
            for j, other in right_with:
                conflicts[i, j] = nums.isdisjoint(other)
    return conflicts


def monotone_alignment(weights: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Best total weight of an in-order one-to-one alignment, and its pairs.

    The weighted longest common subsequence: row ``i`` of the table is the
    running maximum of the row above shifted by the new weights, so each row
    is one vectorised step.
    """
    n_left, n_right = weights.shape
    table = np.zeros((n_left + 1, n_right + 1), dtype=np.float64)
    for i in range(1, n_left + 1):
        step = np.maximum(table[i - 1, 1:], table[i - 1, :-1] + weights[i - 1])
        table[i, 1:] = np.maximum.accumulate(step)
    pairs: list[tuple[int, int]] = []
    i, j = n_left, n_right
    while i > 0 and j > 0:
        if table[i, j] == table[i - 1, j]:
            i -= 1
        elif table[i, j] == table[i, j - 1]:
            j -= 1
        else:
            pairs.append((i - 1, j - 1))
            i -= 1
            j -= 1
    pairs.reverse()
    return float(table[n_left, n_right]), pairs


class SentenceNull:
    """Mean and spread of a sentence's similarity to a language's other sentences.

    Holds, per language group, the count, the sum of vectors and the sum of
    outer products of its usable sentences; the mean and second moment of
    ``x . y`` over those sentences are then ``x . S1 / n`` and
    ``x^T S2 x / n``. Both documents being compared are subtracted out
    exactly (their rows are at hand): a sentence's siblings share its topic,
    and the other document holds the very partner being tested, so either
    would inflate the null.
    """

    def __init__(
        self, vectors: np.ndarray, groups: np.ndarray, usable: np.ndarray, prior: float
    ) -> None:
        self.prior = prior
        dim = vectors.shape[1]
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        used = vectors[usable].astype(np.float64)
        used_groups = groups[usable]
        self.count = np.bincount(used_groups, minlength=n_groups).astype(np.float64)
        self.sum1 = np.zeros((n_groups, dim))
        np.add.at(self.sum1, used_groups, used)
        self.sum2 = np.zeros((n_groups, dim, dim))
        for g in range(n_groups):
            rows = used[used_groups == g]
            self.sum2[g] = rows.T @ rows
        self.total_count = self.count.sum()
        self.total_sum1 = self.sum1.sum(axis=0)
        self.total_sum2 = self.sum2.sum(axis=0)
        self._quad: dict[tuple[int, int], np.ndarray] = {}
        self.dim = dim

    def _quadratic(self, doc: int, rows: np.ndarray, group: int | None) -> np.ndarray:
        """``x^T S2 x`` for every row, for one group (None: all groups); memoised."""
        key = (doc, -1 if group is None else group)
        if key not in self._quad:
            s2 = self.total_sum2 if group is None else self.sum2[group]
            self._quad[key] = np.einsum("id,de,ie->i", rows, s2, rows)
        return self._quad[key]

    def with_terms(self, terms: dict[tuple[int, int], np.ndarray]) -> SentenceNull:
        """This null (arrays shared, not copied) with ``terms`` as the memo of its
        ``x^T S2 x`` terms: ``(doc, group)`` (group -1: all groups) to
        :func:`null_quadratics` values, as computed elsewhere."""
        other = copy.copy(self)
        other._quad = terms
        return other

    def z_scores(
        self,
        left: tuple[int, np.ndarray, int],
        right: tuple[int, np.ndarray, int],
        sims: np.ndarray,
        self_sims: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """z of each similarity in ``sims`` (left rows x right rows), the smaller direction.

        Args:
            left, right: ``(doc index, usable centred rows, group)`` of each side.
            sims: ``left rows @ right rows.T``.
            self_sims: each side's rows against its own rows (removed from its null).
        """
        z_left = self._one_side(left, right, sims, self_sims[0])
        z_right = self._one_side(right, left, sims.T, self_sims[1])
        return np.minimum(z_left, z_right.T)

    def _one_side(
        self,
        side: tuple[int, np.ndarray, int],
        other: tuple[int, np.ndarray, int],
        sims: np.ndarray,
        self_sims: np.ndarray,
    ) -> np.ndarray:
        doc, rows, group = side
        other_rows, target = other[1], other[2]
        same_group = group == target
        # both documents' own sentences are removed from the null
        own1, own2 = self_sims.sum(axis=1), (self_sims**2).sum(axis=1)
        pair1, pair2 = sims.sum(axis=1), (sims**2).sum(axis=1)
        n_all = self.total_count - len(rows) - len(other_rows)
        if n_all > 0:
            mu_all = (rows @ self.total_sum1 - own1 - pair1) / n_all
            m2_all = (self._quadratic(doc, rows, None) - own2 - pair2) / n_all
        else:  # nothing else in the corpus: an isotropic null
            mu_all, m2_all = np.zeros(len(rows)), np.full(len(rows), 1.0 / self.dim)
        n_t = max(self.count[target] - len(other_rows) - (len(rows) if same_group else 0), 0)
        s1_t = rows @ self.sum1[target] - pair1 - (own1 if same_group else 0.0)
        s2_t = self._quadratic(doc, rows, target) - pair2 - (own2 if same_group else 0.0)
        mu = (s1_t + self.prior * mu_all) / (n_t + self.prior)
        m2 = (s2_t + self.prior * m2_all) / (n_t + self.prior)
        sd = np.sqrt(np.maximum(m2 - mu**2, 1e-8))
        return (sims - mu[:, None]) / sd[:, None]


@dataclass(frozen=True)
class AlignInputs:
    """What the aligner reads for every pair, built once per run.

    Attributes:
        vectors: ``(n_sent, dim)`` language-centred sentence vectors.
        offsets: ``(n_docs + 1,)`` sentence rows of each document.
        usable: ``(n_sent,)`` False for boilerplate.
        doc_groups: ``(n_docs,)`` language group of each document.
        numbers: per sentence, from :func:`sentence_numbers`.
        null: the per-language null model over ``vectors``.
    """

    vectors: np.ndarray
    offsets: np.ndarray
    usable: np.ndarray
    doc_groups: np.ndarray
    numbers: Sequence[frozenset[int]]
    null: SentenceNull

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        offsets: np.ndarray,
        usable: np.ndarray,
        doc_groups: np.ndarray,
        sentences: Sequence[str],
        config: AlignConfig,
    ) -> AlignInputs:
        sentence_groups = np.repeat(doc_groups, np.diff(offsets))
        null = SentenceNull(vectors, sentence_groups, usable, config.null_prior)
        return cls(vectors, offsets, usable, doc_groups, sentence_numbers(sentences), null)

    def with_null_terms(self, terms: dict[tuple[int, int], np.ndarray]) -> AlignInputs:
        """These inputs with the null terms of :func:`null_quadratics` already at hand."""
        return replace(self, null=self.null.with_terms(terms))


def null_keys(pairs: np.ndarray, doc_groups: np.ndarray) -> np.ndarray:
    """``(k, 2)``: every ``(doc, group)`` whose null terms ``x^T S2 x`` the pairs need.

    Group -1 stands for all groups. These terms are most of the cost of
    aligning (a ``rows x dim x dim`` product per document and partner
    language), and each is needed by many pairs: computing them once, as their
    own chunks (:func:`null_quadratics`), before the pairs are split among
    workers keeps every worker from computing them all again.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    left, right = pairs[:, 0], pairs[:, 1]
    everything = np.full(len(pairs), -1, dtype=np.int64)
    keys = np.concatenate(
        [
            np.stack([left, everything], axis=1),
            np.stack([left, doc_groups[right]], axis=1),
            np.stack([right, everything], axis=1),
            np.stack([right, doc_groups[left]], axis=1),
        ]
    )
    return np.unique(keys, axis=0)


def null_quadratics(keys: np.ndarray, inputs: AlignInputs) -> list[np.ndarray]:
    """The null terms of ``keys`` (from :func:`null_keys`), exactly as :func:`align_pairs`
    would compute them; :meth:`SentenceNull.remember` takes them."""
    out = []
    for doc, group in np.asarray(keys).tolist():
        index = np.arange(inputs.offsets[doc], inputs.offsets[doc + 1])
        rows = inputs.vectors[index[inputs.usable[index]]].astype(np.float64)
        out.append(inputs.null._quadratic(doc, rows, None if group < 0 else group))
    return out


def align_pairs(pairs: np.ndarray, inputs: AlignInputs, config: AlignConfig) -> list[PairEvidence]:
    """Score every candidate pair; one :class:`PairEvidence` per row of ``pairs``.

    Args:
        pairs: ``(m, 2)`` document pairs from ``candidates``.
        inputs: vectors, null model and numbers of the run.
        config: the aligner's settings.
    """
    vectors, offsets, usable = inputs.vectors, inputs.offsets, inputs.usable
    doc_groups, numbers, null = inputs.doc_groups, inputs.numbers, inputs.null
    span = config.z_high - config.z_low
    rows_of: dict[int, np.ndarray] = {}
    self_sims: dict[int, np.ndarray] = {}

    def usable_rows(doc: int) -> np.ndarray:
        if doc not in rows_of:
            index = np.arange(offsets[doc], offsets[doc + 1])
            rows_of[doc] = index[usable[index]]
            block = vectors[rows_of[doc]].astype(np.float64)
            self_sims[doc] = block @ block.T
        return rows_of[doc]

    evidence: list[PairEvidence] = []
    for left, right in pairs.tolist():
        left_index, right_index = usable_rows(left), usable_rows(right)
        shorter = min(len(left_index), len(right_index))
        if shorter == 0:
            evidence.append(PairEvidence(left, right, 0.0, (), 0))
            continue
        left_rows = vectors[left_index].astype(np.float64)
        right_rows = vectors[right_index].astype(np.float64)
        sims = left_rows @ right_rows.T
        z = null.z_scores(
            (left, left_rows, int(doc_groups[left])),
            (right, right_rows, int(doc_groups[right])),
            sims,
            (self_sims[left], self_sims[right]),
        )
        weights = np.clip((z - config.z_low) / span, 0.0, 1.0)
        weights[
            number_conflicts([numbers[k] for k in left_index], [numbers[k] for k in right_index])
        ] = 0.0
        total, path = monotone_alignment(weights)
        first_left, first_right = offsets[left], offsets[right]
        aligned = tuple(
            AlignedPair(
                left=int(left_index[i] - first_left),
                right=int(right_index[j] - first_right),
                similarity=round(float(sims[i, j]), 4),
                z=round(float(z[i, j]), 2),
                weight=round(float(weights[i, j]), 3),
            )
            for i, j in path
            if weights[i, j] > 0
        )
        score = total / (shorter + config.length_prior)
        evidence.append(PairEvidence(left, right, round(score, 6), aligned, shorter))
    return evidence
