"""Align: sentence-level evidence that two documents are the same article.

For a candidate pair (A, B) every sentence of A is compared with every
sentence of B, and the pair's score is the weight of the best **in-order**
alignment of their sentences, per sentence of the shorter document.

Three choices make that score mean the same thing in every language:

1. **Relative, not absolute, similarity.** A multilingual encoder places a
   Burmese sentence and its English translation at cosine 0.5 and two
   unrelated German sentences at 0.6; one cosine threshold cannot serve every
   language pair (``docs/design.md``: a fixed LASER margin of 1.05 lost the weak
   pairs, 1.02 let noise in). Each similarity is turned into a z-score against
   a *null*: how the sentence scores against the sentences of the other
   document's language that belong to neither document. A translation
   stands several standard deviations above its language's crowd whether
   the crowd sits at 0.2 or at 0.7. This is the idea of the margin criterion
   of LASER bitext mining (Artetxe & Schwenk, 2019, "Margin-based Parallel
   Corpus Mining with Multilingual Sentence Embeddings") with a mean and a
   spread in place of a k-nearest-neighbour mean. The null's mean and
   variance come in closed form from per-language sums of vectors and of
   outer products (no sampling, so it is deterministic; the outer products
   are summarised by their leading eigenvectors, see :class:`SentenceNull`),
   and a language with few sentences borrows ``null_prior`` sentences' worth
   of the corpus-wide null.
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
   more documents that are not copies of one another, see
   :mod:`dedup.stages.boilerplate`) is dropped before any comparison; it
   aligns perfectly between unrelated articles. The shorter document's length
   carries a one-sentence prior, so a single matching sentence cannot make a
   one-sentence excerpt a certain match.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from dedup.cache import completed
from dedup.engines import in_worker_process, usable_cpus
from dedup.records import ALIGNED_DTYPE, EvidenceTable, concat_ranges, sorted_unique
from dedup.stages.candidates import CentredVectors, PairCodes, row_blocks, row_reader
from dedup.stages.embed import VectorFile, VectorWriter

if TYPE_CHECKING:
    from dedup.stages.document_cache import DocumentCache

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
        null_rank: leading eigenvectors kept of each language's second-moment
            matrix (see :class:`SentenceNull`); 0 keeps all (exact, slower).
    """

    z_low: float = 2.0
    z_high: float = 4.0
    length_prior: float = 1.0
    null_prior: float = 20.0
    boilerplate_docs: int = 3
    null_rank: int = 64

    def __post_init__(self) -> None:
        if not self.z_low < self.z_high:
            raise ValueError(f"need z_low < z_high, got {self.z_low} >= {self.z_high}")
        if self.length_prior < 0 or self.null_prior <= 0 or self.boilerplate_docs < 2:
            raise ValueError("need length_prior >= 0, null_prior > 0, boilerplate_docs >= 2")
        if self.null_rank < 0:
            raise ValueError(f"null_rank must be >= 0, got {self.null_rank}")


def sentence_numbers(sentences: Iterable[str]) -> Iterator[frozenset[int]]:
    """The numbers of 10 or more in each sentence, read in any script's digits.

    Single digits are left out: they are often spelt out in one language
    ("two days") and written in digits in another. One set at a time: a set
    for each of a million sentences, most of them empty, is 216 bytes each.
    """
    for sentence in sentences:
        found = _NUMBER.findall(unicodedata.normalize("NFKC", sentence))
        yield frozenset(v for v in map(int, found) if v >= 10)


def number_table(numbers: Iterable[Collection[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The numbers of each sentence as flat arrays for the compiled aligner, in one pass.

    Returns ``(starts, values)``: ``values[starts[k]:starts[k + 1]]`` are the
    sorted numbers of sentence ``k`` (int64; a number too large for it is
    replaced by its remainder modulo the prime 2^61 - 1, so two equal
    numbers stay equal). Two sentences whose numbers are both non-empty and
    disjoint get no weight (:func:`dedup.stages.kernels.numbers_conflict`).
    """
    lengths, values = array("q"), array("q")
    for found in numbers:
        ordered = sorted(found)
        lengths.append(len(ordered))
        values.extend(v if v < _INT64_LIMIT else v % _LARGE_PRIME for v in ordered)
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.frombuffer(lengths, dtype=np.int64), out=starts[1:])
    return starts, np.frombuffer(values, dtype=np.int64).copy()


_INT64_LIMIT = 2**63
_LARGE_PRIME = 2**61 - 1


def cached_number_table(
    sentences_of: Sequence[Sequence[str]], cache: DocumentCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`number_table` of every document's sentences, one document after another;
    with a cache, each document's table is read where it holds one, and only the
    others are read from their text (then added).

    Reading numbers is a regular expression over every sentence (~2 µs a
    sentence); a run over a corpus that grew (``dedup add``) reads them back.
    """
    found = cache.numbers(sentences_of) if cache is not None else [None] * len(sentences_of)

    def compute(block: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [number_table(sentence_numbers(sentences_of[i])) for i in block]

    def add(block: list[int], computed: list[tuple[np.ndarray, np.ndarray]]) -> None:
        assert cache is not None
        cache.add_numbers([sentences_of[i] for i in block], computed)

    return joined_number_tables(completed(found, compute, add, cache))


def joined_number_tables(
    tables: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """One :func:`number_table` of the sentences of ``tables``, one table after another."""
    counts = [np.diff(starts) for starts, _ in tables]
    starts = np.zeros(sum(len(c) for c in counts) + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=starts[1:])
    values = [values for _, values in tables]
    return starts, np.concatenate(values) if values else np.zeros(0, np.int64)


def numbers_of_rows(
    numbers: tuple[np.ndarray, np.ndarray], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`number_table` of the sentences ``rows`` of ``numbers``, in that order
    (the primary documents' sentences of every document's table)."""
    starts, values = numbers
    rows = np.asarray(rows, dtype=np.int64)
    picked, _ = concat_ranges(starts[rows], starts[rows + 1])
    out = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(starts[rows + 1] - starts[rows], out=out[1:])
    return out, values[picked]


def monotone_alignment(weights: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Best total weight of an in-order one-to-one alignment, and its pairs.

    The weighted longest common subsequence (the dynamic program of
    :func:`dedup.stages.kernels.fill_table`, which :func:`align_pairs`
    runs for every candidate pair).
    """
    from dedup.stages import kernels

    weights = np.ascontiguousarray(weights, dtype=np.float64)
    n_rows, n_cols = weights.shape
    table = np.empty((n_rows + 1, n_cols + 1))
    total = kernels.fill_table(weights, table)
    cells = np.empty((min(n_rows, n_cols), 2), dtype=np.int64)
    found = kernels.trace_back(table, n_rows, n_cols, cells) if total > 0 else 0
    return float(total), [(int(i), int(j)) for i, j in cells[:found]]


class SentenceNull:
    """Mean and spread of a sentence's similarity to a language's other sentences.

    Holds, per language group (and for all groups together, the last slot),
    the count and the sum of vectors of its usable sentences, and a summary of
    the sum of their outer products ``S2``. The mean and second moment of
    ``x . y`` over those sentences are ``x . S1 / n`` and ``x^T S2 x / n``.
    Both documents being compared are subtracted out exactly (their rows are
    at hand): a sentence's siblings share its topic, and the other document
    holds the very partner being tested, so either would inflate the null.

    ``x^T S2 x`` costs ``dim^2`` per sentence and partner language, the
    largest cost of aligning a big corpus. With ``rank`` r < dim, ``S2 / n`` is
    summarised by its r leading eigenvectors plus the mean of the remaining
    eigenvalues (a probabilistic-PCA covariance, Tipping & Bishop 1999), which
    costs ``dim * r``. At r = 64 for 384-dimensional vectors the spread it
    gives is within 1 % of the exact one on average (p99 2.5 %, measured on
    a development set of news); a group with at most r sentences is exact.
    """

    def __init__(
        self,
        count: np.ndarray,
        sum1: np.ndarray,
        bases: np.ndarray,
        scales: np.ndarray,
        residual: np.ndarray,
        prior: float,
    ) -> None:
        self.count, self.sum1, self.prior = count, sum1, prior
        self.bases, self.scales, self.residual = bases, scales, residual
        self.dim = sum1.shape[1]
        self.all_groups = len(count) - 1  #: the slot of the corpus-wide null

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray | CentredVectors,
        groups: np.ndarray,
        usable: np.ndarray,
        prior: float,
        rank: int = 0,
        n_groups: int | None = None,
    ) -> SentenceNull:
        """Sums over the usable rows of ``vectors`` (read a block at a time).

        Args:
            vectors: ``(n, dim)`` centred sentence vectors.
            groups: ``(n,)`` language group of each row.
            usable: ``(n,)`` rows that count.
            prior: corpus-wide null mixed into each group's, in sentences.
            rank: leading eigenvectors kept of each ``S2`` (0 or >= dim: exact).
            n_groups: the number of language groups of the documents (None:
                those seen in ``groups``). Given by the caller because a group
                may have no sentence at all (a document with no letters), yet
                :func:`null_keys` codes keys with the documents' group count:
                both must agree or a key decodes to the wrong document.
        """
        dim = vectors.shape[1] if isinstance(vectors, np.ndarray) else vectors.dim
        if n_groups is None:
            n_groups = int(groups.max()) + 1 if len(groups) else 0
        keep_rank = dim if rank <= 0 else min(rank, dim)
        count = np.zeros(n_groups + 1)
        sum1 = np.zeros((n_groups + 1, dim))
        sum2 = np.zeros((n_groups + 1, dim, dim))
        # a group with at most keep_rank rows is summarised by its rows themselves
        # (exact, and no eigendecomposition for the many small languages)
        few_rows: dict[int, list[np.ndarray]] = {}
        for start, block in row_blocks(vectors):
            keep = usable[start : start + len(block)]
            rows, row_groups = block[keep], groups[start : start + len(block)][keep]
            for g in np.unique(row_groups).tolist():
                mine = rows[row_groups == g]
                if count[g] + len(mine) <= keep_rank:
                    few_rows.setdefault(g, []).append(mine)
                else:
                    few_rows.pop(g, None)
                count[g] += len(mine)
                sum1[g] += mine.sum(axis=0, dtype=np.float64)
                sum2[g] += (mine.T @ mine).astype(np.float64)
        count[-1], sum1[-1], sum2[-1] = count[:-1].sum(), sum1[:-1].sum(0), sum2[:-1].sum(0)
        # one basis vector a row (rank x dim), so a row's projection is rank dot products
        bases = np.zeros((n_groups + 1, keep_rank, dim), dtype=np.float32)
        scales = np.zeros((n_groups + 1, keep_rank), dtype=np.float32)
        residual = np.zeros(n_groups + 1)
        for g, mine_blocks in few_rows.items():
            mine = np.concatenate(mine_blocks)
            bases[g, : len(mine)] = mine
            scales[g, : len(mine)] = 1.0
        summarised = [g for g in range(n_groups + 1) if count[g] and g not in few_rows]
        # one eigendecomposition per group, on every core (LAPACK releases the GIL;
        # each holds BLAS to one thread: 384 x 384 gains nothing from more)
        with (
            threadpool_limits(1, user_api="blas"),
            ThreadPoolExecutor(max_workers=usable_cpus()) as pool,
        ):
            leading = pool.map(lambda g: _leading_eigen(sum2[g], keep_rank), summarised)
            for g, (vectors, values, rest) in zip(summarised, leading, strict=True):
                bases[g], scales[g], residual[g] = vectors.T, values, rest
        return cls(count, sum1, bases, scales, residual, prior)


def _leading_eigen(matrix: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The ``rank`` leading eigenvectors and eigenvalues of a symmetric PSD matrix,
    and the mean of the other eigenvalues."""
    from scipy.linalg import eigh

    dim = len(matrix)
    values, vectors = eigh(matrix, subset_by_index=[dim - rank, dim - 1])
    values = np.maximum(values[::-1], 0.0)
    rest = max(float(np.trace(matrix)) - float(values.sum()), 0.0)
    return vectors[:, ::-1], values, rest / (dim - rank) if rank < dim else 0.0


@dataclass(frozen=True)
class NullTerms:
    """The null model's per-row terms for the (document, partner group) pairs a run needs.

    For key ``(doc, group)`` and each usable row ``x`` of ``doc``: ``x . S1``
    and ``x^T S2 x`` of that group (column 0 and 1 of ``values``). Per usable
    sentence: the sums of ``x . y`` and ``(x . y)^2`` over its own document's
    rows (``own``). Computed once per run (:func:`null_quadratics`, in chunks
    an engine may spread), read by every alignment, each chunk of pairs
    reading the terms of its own keys (:meth:`local`).

    Attributes:
        keys: ``(k,)`` sorted codes ``doc * slots + group`` (see :func:`null_keys`).
        starts: ``(k + 1,)`` where each key's rows begin in ``values``.
        values: ``(rows, 2)`` float64, in memory or in an unnamed file
            (:meth:`join` with a folder: ~1.5 GB at a million documents).
        own: ``(n_sent, 2)`` float64, zero for rows that are not usable (in
            memory or a file, like ``values``).
        slots: groups + 1 (the all-groups slot).
    """

    keys: np.ndarray
    starts: np.ndarray
    values: np.ndarray | VectorFile
    own: np.ndarray | VectorFile
    slots: int

    def __reduce__(self) -> tuple[type[NullTerms], tuple[Any, ...]]:
        """Pickled (a Ray task's shared inputs) with the files' rows as arrays, which
        the object store hands to every task without a copy."""
        arrays = (np.asarray(self.values), np.asarray(self.own))
        return NullTerms, (self.keys, self.starts, *arrays, self.slots)

    def resident(self) -> NullTerms:
        """These terms with their files read into memory, once per forked worker
        process and call (a chunk's keys are thousands of short ranges of the
        file: read one by one they cost more than aligning the chunk); in the
        driver, the terms as they are, so its memory never holds them."""
        if isinstance(self.values, np.ndarray) or not in_worker_process():
            return self
        held = _RESIDENT.get(id(self))
        if held is None or held[0] is not self:
            _RESIDENT.clear()
            loaded = replace(self, values=np.asarray(self.values), own=np.asarray(self.own))
            held = _RESIDENT[id(self)] = (self, loaded)
        return held[1]

    def local(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The terms of key codes ``codes`` (``doc * slots + group``, any shape) read into
        one array, and where each code's terms begin in it (the shape of ``codes``).

        Raises:
            KeyError: a code whose terms were not computed.
        """
        codes = np.asarray(codes, dtype=np.int64)
        distinct, inverse = np.unique(codes.reshape(-1), return_inverse=True)
        at = np.minimum(np.searchsorted(self.keys, distinct), max(len(self.keys) - 1, 0))
        if len(distinct) and (not len(self.keys) or (self.keys[at] != distinct).any()):
            raise KeyError("null terms not computed for some keys")
        index, starts = concat_ranges(self.starts[at], self.starts[at + 1])
        values = np.asarray(self.values[index], dtype=np.float64)
        return values, starts[:-1][inverse].reshape(codes.shape)

    @classmethod
    def join(
        cls,
        keys: np.ndarray,
        parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
        inputs: AlignInputs,
        folder: Path | None = None,
    ) -> NullTerms:
        """From the codes and, in order, what :func:`null_quadratics` gave for them.

        Each part is copied into place as it comes (an engine's iterator):
        the terms are ~1.5 GB at a million documents, and the parts and their
        concatenation were held at once. With a ``folder`` they go to unnamed
        files there (:meth:`~dedup.stages.embed.VectorFile.temporary`), out
        of the driver's memory: forked workers inherit the files and read
        them whole once a call (:meth:`resident`), a Ray task gets their rows
        as arrays, and the driver itself reads a chunk's keys from the files
        (:meth:`local`) when it aligns in its own process.
        """
        slots = len(inputs.null.count)
        keys = np.asarray(keys, dtype=np.int64)
        starts = np.r_[0, np.cumsum(np.diff(inputs.usable_offsets)[keys // slots])]
        shapes = ((int(starts[-1]), 2), (len(inputs.usable), 2))
        if folder is None:
            values_out, own_out = (np.zeros(shape) for shape in shapes)
            values, own = values_out, own_out
        else:
            (values_out, values), (own_out, own) = (
                VectorFile.temporary(*shape, np.float64, folder) for shape in shapes
            )
        filled, last_doc = 0, -1
        for part_values, docs, own_values in parts:
            values_out[filled : filled + len(part_values)] = part_values
            filled += len(part_values)
            # the keys are in document order, so a document's keys split between two
            # chunks make it the last of one and the first of the next: its rows
            # (the same sums) are written once
            rows, doc_starts = inputs.rows_of_docs(docs)
            fresh = docs > last_doc
            if not fresh.all():
                kept, _ = concat_ranges(doc_starts[:-1][fresh], doc_starts[1:][fresh])
                rows, own_values = rows[kept], own_values[kept]
            own_out[rows] = own_values
            last_doc = max(last_doc, int(docs.max(initial=-1)))
        for out in (values_out, own_out):
            if isinstance(out, VectorWriter):
                out.close()
        if filled != len(values):
            raise ValueError(f"null terms of {len(values)} rows expected, {filled} given")
        return cls(keys, starts, values, own, slots)


#: the null terms a forked worker read into memory (:meth:`NullTerms.resident`)
_RESIDENT: dict[int, tuple[NullTerms, NullTerms]] = {}


@dataclass(frozen=True)
class AlignInputs:
    """What the aligner reads for every pair, built once per run.

    Attributes:
        vectors: ``(n_sent, dim)`` language-centred sentence vectors (an
            array, or :class:`~dedup.stages.candidates.CentredVectors`).
        offsets: ``(n_docs + 1,)`` sentence rows of each document.
        usable: ``(n_sent,)`` False for boilerplate.
        doc_groups: ``(n_docs,)`` language group of each document.
        number_starts, number_values: the numbers of each sentence (see
            :func:`number_table`; no values: none known).
        null: the per-language null model over ``vectors``.
        terms: the null model's terms, when computed ahead (:func:`null_quadratics`);
            :func:`align_pairs` computes those of its pairs when None.
        usable_index: the usable rows, in order.
        usable_offsets: ``(n_docs + 1,)`` each document's span in ``usable_index``.
    """

    vectors: np.ndarray | CentredVectors
    offsets: np.ndarray
    usable: np.ndarray
    doc_groups: np.ndarray
    number_starts: np.ndarray
    number_values: np.ndarray
    null: SentenceNull
    usable_index: np.ndarray
    usable_offsets: np.ndarray
    terms: NullTerms | None = None

    @classmethod
    def build(
        cls,
        vectors: np.ndarray | CentredVectors,
        offsets: np.ndarray,
        usable: np.ndarray,
        doc_groups: np.ndarray,
        numbers: tuple[np.ndarray, np.ndarray] | None,
        config: AlignConfig,
    ) -> AlignInputs:
        """The null model fitted on ``vectors``; ``numbers``: :func:`number_table` of the
        sentences (:func:`cached_number_table`), or None: no numbers known."""
        offsets = np.asarray(offsets, dtype=np.int64)
        sentence_groups = np.repeat(doc_groups, np.diff(offsets))
        null = SentenceNull.fit(
            vectors,
            sentence_groups,
            usable,
            config.null_prior,
            config.null_rank,
            n_groups=int(doc_groups.max()) + 1 if len(doc_groups) else 0,
        )
        if numbers is None:
            number_starts, number_values = (
                np.zeros(len(usable) + 1, np.int64),
                np.zeros(0, np.int64),
            )
        else:
            number_starts, number_values = numbers
        usable_offsets = np.r_[0, np.cumsum(usable)][offsets]
        return cls(
            vectors,
            offsets,
            usable,
            doc_groups,
            number_starts,
            number_values,
            null,
            np.flatnonzero(usable),
            usable_offsets,
        )

    def with_null_terms(self, terms: NullTerms) -> AlignInputs:
        """These inputs with the null terms of :func:`null_quadratics` already at hand."""
        return replace(self, terms=terms)

    def rows_of_docs(self, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The usable rows of ``docs``, concatenated, and where each document's begin."""
        docs = np.asarray(docs, dtype=np.int64)
        where, starts = concat_ranges(self.usable_offsets[docs], self.usable_offsets[docs + 1])
        return self.usable_index[where], starts

    def read(self, index: np.ndarray) -> np.ndarray:
        """Centred float32 rows ``index``."""
        return row_reader(self.vectors)(index)


def null_keys(pairs: np.ndarray | PairCodes, doc_groups: np.ndarray) -> np.ndarray:
    """Sorted codes ``doc * slots + group`` of every null term the pairs need.

    ``slots`` is the number of groups + 1; group ``slots - 1`` stands for all
    groups. These terms are a large part of the cost of aligning (a
    ``rows x dim x rank`` product per document and partner language), and
    each is needed by many pairs: computing them once, in their own chunks
    (:func:`null_quadratics`), before the pairs are split among workers keeps
    every worker from computing them all again.
    """
    if not isinstance(pairs, PairCodes):
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    slots = int(doc_groups.max()) + 2 if len(doc_groups) else 1
    # a block of pairs at a time: four codes a pair for every pair at once, and
    # their sorted copy, were 2.3 GB at a million documents (36 million pairs)
    found = [np.zeros(0, dtype=np.int64)]
    for start in range(0, len(pairs), _KEY_BLOCK):
        block = pairs[start : start + _KEY_BLOCK]
        left, right = block[:, 0], block[:, 1]
        codes = np.concatenate(
            [
                left * slots + slots - 1,
                left * slots + doc_groups[right],
                right * slots + slots - 1,
                right * slots + doc_groups[left],
            ]
        )
        found.append(sorted_unique(codes))
    return sorted_unique(np.concatenate(found))


#: pairs whose null-term keys are found at a time (see :func:`null_keys`)
_KEY_BLOCK = 1 << 21


def null_quadratics(
    keys: np.ndarray, inputs: AlignInputs
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The null terms of a chunk of ``keys`` (from :func:`null_keys`), for :meth:`NullTerms.join`.

    Returns one ``(values, docs, own)``: the ``(rows, 2)`` terms of the keys in
    order, the chunk's documents, and ``(rows, 2)`` own-document sums of their
    usable rows. Each document's rows are read once.
    """
    from dedup.stages import kernels

    slots = len(inputs.null.count)
    docs, groups = np.divmod(np.asarray(keys, dtype=np.int64), slots)
    chunk_docs = np.unique(docs)
    index, starts = inputs.rows_of_docs(chunk_docs)
    rows = inputs.read(index)
    own = np.zeros((len(rows), 2))
    kernels.own_document_sums(rows, starts, own)
    # each key's rows, in key order, with the key's group; the terms row by row
    # (not per group as matrix products: a row's terms must not depend on its chunk)
    position = np.searchsorted(chunk_docs, docs)
    key_index, key_starts = concat_ranges(starts[position], starts[position + 1])
    values = np.zeros((len(key_index), 2))
    row_groups = np.repeat(groups, np.diff(key_starts))
    null = inputs.null
    kernels.null_terms(
        rows, key_index, row_groups, null.sum1, null.bases, null.scales, null.residual, values
    )
    return [(values, chunk_docs, own)]


def locality_order(pairs: np.ndarray | PairCodes, n_docs: int) -> np.ndarray:
    """An order of ``pairs`` in which consecutive pairs share documents.

    A chunk of pairs reads (and converts, and centres) the rows of every
    document it touches. Pairs sorted by their first document touch a
    different second document almost every time; numbering the documents by
    the reverse Cuthill-McKee order of the pair graph (scipy; it puts linked
    documents at nearby numbers) and sorting the pairs by the smaller number
    reads 2.3x fewer rows per chunk at 100,000 documents (``bench/scale.py``),
    for half a second.

    Returns:
        ``(m,)`` permutation of the rows of ``pairs``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    if not len(pairs):
        return np.zeros(0, dtype=np.int64)
    # the symmetric graph made at once, with 32-bit indices where they fit: at a
    # million documents (36 million pairs) the graph, its transpose, their sum
    # and the 64-bit coordinates were ~2 GB at once
    index = np.int32 if n_docs < 2**31 else np.int64
    if isinstance(pairs, PairCodes):
        left, right = pairs.columns(index)
    else:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        left, right = pairs[:, 0].astype(index), pairs[:, 1].astype(index)
    graph = coo_matrix(
        (
            np.ones(2 * len(left), dtype=np.int8),
            (np.concatenate([left, right]), np.concatenate([right, left])),
        ),
        shape=(n_docs, n_docs),
    ).tocsr()
    graph.sort_indices()
    numbering = np.empty(n_docs, dtype=np.int64)
    numbering[reverse_cuthill_mckee(graph, symmetric_mode=True)] = np.arange(n_docs)
    del graph
    first, second = numbering[left], numbering[right]
    del left, right
    # by the smaller number, then the larger: one code, sorted (pairs are distinct)
    codes = np.minimum(first, second) * n_docs + np.maximum(first, second)
    del first, second
    return np.argsort(codes, kind="stable")


def align_pairs(
    pairs: np.ndarray, inputs: AlignInputs, config: AlignConfig, detail_from: float = 0.0
) -> EvidenceTable:
    """Score every candidate pair; one :class:`PairEvidence` per row of ``pairs``, as a table.

    The rows of every document of the chunk are read (and centred) once; one
    compiled call (:func:`dedup.stages.kernels.score_pairs`) then scores and
    aligns every pair of the chunk.

    Args:
        pairs: ``(m, 2)`` document pairs from ``candidates``.
        inputs: vectors, null model (and its terms) and numbers of the run.
        config: the aligner's settings.
        detail_from: the aligned sentence pairs are kept for pairs scoring at
            least this (the report shows them for linked pairs only; a large
            corpus has millions of weak candidate pairs).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if inputs.terms is None:
        keys = null_keys(pairs, inputs.doc_groups)
        inputs = inputs.with_null_terms(NullTerms.join(keys, null_quadratics(keys, inputs), inputs))
    with threadpool_limits(1, user_api="blas"):  # small products: threads only add waiting
        return _score_and_align(pairs, inputs, config, detail_from)


def _score_and_align(
    pairs: np.ndarray, inputs: AlignInputs, config: AlignConfig, detail_from: float
) -> EvidenceTable:
    """Lay one chunk out as flat arrays, score it in one compiled call, make its records."""
    from dedup.stages import kernels

    assert inputs.terms is not None
    terms = inputs.terms.resident()
    docs = np.unique(pairs)
    index, starts = inputs.rows_of_docs(docs)
    rows = np.ascontiguousarray(inputs.read(index), dtype=np.float32)
    local = np.searchsorted(docs, pairs)
    groups = inputs.doc_groups[pairs]
    left, right = pairs[:, 0] * terms.slots, pairs[:, 1] * terms.slots
    all_groups = terms.slots - 1
    codes = np.stack(  # in the order of kernels.LEFT_TO_RIGHT ... RIGHT_TO_ALL
        [left + groups[:, 1], left + all_groups, right + groups[:, 0], right + all_groups], axis=1
    )
    term_values, term_starts = terms.local(codes)
    sizes = np.diff(starts)[local]
    shorter = sizes.min(axis=1)
    cell_starts = np.zeros(len(pairs) + 1, dtype=np.int64)
    np.cumsum(shorter, out=cell_starts[1:])
    totals = np.zeros(len(pairs))
    cell_counts = np.zeros(len(pairs), dtype=np.int64)
    cells = np.zeros((cell_starts[-1], 2), dtype=np.int64)
    cell_values = np.zeros((cell_starts[-1], 3))
    where, number_starts = concat_ranges(
        inputs.number_starts[index], inputs.number_starts[index + 1]
    )
    kernels.score_pairs(
        rows,
        starts,
        local,
        groups,
        term_values,
        term_starts,
        np.asarray(terms.own[index], dtype=np.float64),
        inputs.null.count,
        float(inputs.null.prior),
        number_starts,
        inputs.number_values[where],
        config.z_low,
        config.z_high,
        config.length_prior,
        detail_from,
        totals,
        cell_starts[:-1],
        cell_counts,
        cells,
        cell_values,
    )
    # every aligned cell of the chunk as one record array, positions in each
    # document (boilerplate rows count); pair p's records are those of its cells
    owner = np.repeat(np.arange(len(pairs)), cell_counts)
    kept = concat_ranges(cell_starts[:-1], cell_starts[:-1] + cell_counts)[0]
    first_row = starts[local]  # (m, 2) each side's first chunk row
    records = np.empty(len(kept), dtype=ALIGNED_DTYPE)
    records["left"] = index[first_row[owner, 0] + cells[kept, 0]] - inputs.offsets[pairs[owner, 0]]
    records["right"] = index[first_row[owner, 1] + cells[kept, 1]] - inputs.offsets[pairs[owner, 1]]
    records["similarity"] = np.round(cell_values[kept, 0], 4)
    records["z"] = np.round(cell_values[kept, 1], 2)
    records["weight"] = np.round(cell_values[kept, 2], 3)
    return EvidenceTable(
        pairs[:, 0].copy(),
        pairs[:, 1].copy(),
        np.round(totals / (shorter + config.length_prior), 6),
        shorter,
        records,
        np.r_[0, np.cumsum(cell_counts)],
    )
