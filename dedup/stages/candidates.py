"""Candidates: the document pairs worth aligning, found by neighbour search.

Aligning every pair of documents is quadratic; aligning each document with a
few dozen neighbours is linear. Two searches with faiss (inner-product search
over L2-normalised vectors) feed one candidate set:

* **document neighbours**: each document's ``doc_neighbours`` nearest
  documents by the cosine of *language-centred* document vectors. Raw
  multilingual vectors carry more language than story (two different English
  stories are closer than one story in English and Greek); subtracting each
  language's mean vector removes most of that signal (see ``docs/design.md``).
* **lead-sentence neighbours**: each of the first ``lead_sentences`` usable
  sentences of a document finds its ``sentence_neighbours`` nearest lead
  sentences of other documents, by centred sentence vectors. Articles in
  languages the encoder knows poorly, and short articles, often have a
  sentence or two that match well while their document vectors do not.
  Translations keep the order of sentences, so the lead (headline and first
  paragraph) is where two versions of a story meet; searching leads only
  keeps this channel at a few sentences per document however long the
  articles are (on the development sets it found every pair that searching
  all sentences found, with a quarter fewer pairs to align).

* **linked partners** (after a first alignment, see
  :func:`linked_partner_pairs`): documents that are both linked to one
  document are aligned with each other, round after round. A story in 60
  languages cannot be held by 20 neighbours per document, and the
  clustering counts a pair never aligned as 0.

Search is exact (``IndexFlatIP``) up to ``exact_search_limit`` rows; above it,
an inverted-file index (``IVF``, ``sqrt(rows) / 2`` lists, ``search_probes``
probed, 4-bit codes re-ranked on 8-bit ones) keeps the cost near-linear:
exact search over a million rows is 10^12 dot products.

Centring (:func:`language_means`) shrinks each language's mean towards the
corpus mean by ``centering_prior`` pseudo-documents, so a language with a
single document (the five seed articles are in five languages) keeps most of
its own content instead of having it subtracted away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dedup.records import sorted_unique

if TYPE_CHECKING:
    from dedup.stages.embed import VectorWriter

#: extra hits asked of faiss to make up for those in the query's own document.
_OWN_DOC_SLACK = 8
#: a document searched on its own (``dedup add``: a new document among settled
#: ones whose neighbours are not searched again) asks for this many times the
#: neighbours. A run pairs A and B when either is among the other's nearest; a
#: settled document does not search, so a pair a run finds from its side (the
#: new document among its nearest) has to be found from the new one's.
QUERY_REACH = 2
#: approximate search re-ranks this many times k hits on 8-bit scalar codes.
_REFINE_FACTOR = 4
#: rows read and centred at a time (bounds memory on large corpora).
BLOCK_ROWS = 1 << 16
#: rows added to, and queried against, an approximate index at a time: a query
#: batch's lookup tables and candidate lists are ~13 KB a row (65,536 rows:
#: +844 MB of peak memory, 4,096: none measurable, at the same speed); each
#: query's hits do not depend on its batch.
SEARCH_ROWS = 1 << 12


@dataclass(frozen=True, slots=True)
class CandidateConfig:
    """Settings of the candidate search.

    Attributes:
        doc_neighbours: nearest documents per document (recall vs. align cost).
        sentence_neighbours: nearest lead sentences per lead sentence, 0 to
            turn the sentence channel off.
        lead_sentences: how many of each document's first usable sentences
            take part in the sentence channel.
        centering_prior: pseudo-documents of corpus mean mixed into each
            language mean; larger keeps more of small languages' signal.
        exact_search_limit: up to this many rows, neighbour search is exact;
            above, approximate (see :func:`_knn`), trading a little recall for
            near-linear time.
        search_probes: inverted lists probed per query in approximate search
            (more: better recall, slower). At 8, on the 394,000 lead sentences
            of the 100,000-document scaling corpus, 86.7 % of the exact 13
            nearest neighbours the sentence channel asks for are found (the
            earlier 32 probes of 1,255 shorter lists: 86.8 %, 1.6x slower;
            both re-ranked on float16 vectors, the 8-bit codes since leave
            that corpus's planted-story recall at 0.837); on
            the real model's vectors of the 20,035 distinct sentences of the
            four development sets, 92.2 % (tests/test_benchmarks.py; 92.6 %
            when the hits were re-ranked on float16 vectors).
    """

    doc_neighbours: int = 20
    sentence_neighbours: int = 5
    lead_sentences: int = 4
    centering_prior: float = 2.0
    exact_search_limit: int = 20_000
    search_probes: int = 8
    link_rounds: int = 3
    linked_partners: int = 64

    def __post_init__(self) -> None:
        if self.doc_neighbours < 1 or self.sentence_neighbours < 0 or self.lead_sentences < 1:
            raise ValueError(
                "doc_neighbours and lead_sentences must be >= 1, sentence_neighbours >= 0"
            )
        if self.centering_prior < 0:
            raise ValueError("centering_prior must be >= 0")
        if self.exact_search_limit < 1 or self.search_probes < 1:
            raise ValueError("exact_search_limit and search_probes must be >= 1")
        if self.link_rounds < 0 or self.linked_partners < 2:
            raise ValueError("link_rounds must be >= 0 and linked_partners >= 2")


def language_means(
    vectors: np.ndarray, groups: np.ndarray, weights: np.ndarray, prior: float
) -> np.ndarray:
    """``(n_groups, dim)`` float32: each group's weighted mean, shrunk towards the overall mean.

    Read ``BLOCK_ROWS`` rows at a time, so ``vectors`` may be a memory-mapped
    float16 file larger than memory.

    Args:
        vectors: ``(n, dim)`` rows.
        groups: ``(n,)`` int group of each row (its document's language).
        weights: ``(n,)`` weight of each row in its group mean; for sentences,
            ``1 / sentences in its document``, so every document counts once.
        prior: pseudo-documents at the overall mean added to every group.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    (sums,) = keyed_sums(vectors, [(groups, n_groups, weights)])
    return shrunk_means(sums, np.bincount(groups, weights=weights, minlength=n_groups), prior)


def shrunk_means(sums: np.ndarray, mass: np.ndarray, prior: float) -> np.ndarray:
    """Group means from ``(n_groups, dim)`` weighted sums and ``(n_groups,)`` total
    weights, each shrunk towards the overall mean by ``prior`` pseudo-rows; float32."""
    overall = sums.sum(axis=0) / max(mass.sum(), 1e-12)
    return ((sums + prior * overall) / (mass + prior)[:, None]).astype(np.float32)


#: one way of summing rows by key: ``(keys, n_keys, weights)``; see :func:`keyed_sums`.
Keying = tuple[np.ndarray, int, "np.ndarray | None"]


def keyed_sums(vectors: np.ndarray, keyings: Sequence[Keying]) -> list[np.ndarray]:
    """Weighted sums of rows by key, for several keyings in one read of ``vectors``.

    Each keying is ``(keys, n_keys, weights)``: the ``(n,)`` key of each row
    (-1: left out), the number of keys, and ``(n,)`` row weights (None: 1).
    Each read of a large float16 file costs seconds (1.8 million rows: ~2 s
    to read and convert), so the language means and the document vectors of a
    run come from one. Read ``BLOCK_ROWS`` rows at a time.

    Returns:
        one ``(n_keys, dim)`` float64 array of sums per keying.
    """
    sums = [np.zeros((n_keys, vectors.shape[1])) for _, n_keys, _ in keyings]
    for start in range(0, len(vectors), BLOCK_ROWS):
        stop = start + BLOCK_ROWS
        block = as_float32(vectors[start:stop])
        for out, (keys, _, weights) in zip(sums, keyings, strict=True):
            add_by_key(
                out, keys[start:stop], block, None if weights is None else weights[start:stop]
            )
    return sums


def group_sums_and_document_means(
    vectors: np.ndarray,
    groups: Keying,
    sentence_doc: np.ndarray,
    counted: np.ndarray,
    n_docs: int,
    means: np.ndarray | VectorWriter | None = None,
) -> tuple[np.ndarray, np.ndarray | VectorWriter]:
    """Weighted sums of rows by group, and each document's L2-normalised mean row, in
    one read of ``vectors`` (``BLOCK_ROWS`` rows at a time).

    The document means are written as float32 as soon as a document's last
    row is read: only the documents of one block are summed in float64 (a
    float64 sum for every document was 3 GB at a million documents). The
    arithmetic is that of summing everything first: each document's rows
    are added block by block in the same order.

    Args:
        vectors: ``(n, dim)`` rows, each document's rows one after another.
        groups: the keying of the group sums (see :func:`keyed_sums`).
        sentence_doc: ``(n,)`` the document of each row, non-decreasing.
        counted: ``(n,)`` rows that count in their document's mean.
        n_docs: documents (those without a counted row get a zero vector).
        means: where the means are written, ``(n_docs, dim)`` float32 zeros
            (a :class:`~dedup.stages.embed.VectorWriter`: a file); None: a new array.

    Returns:
        ``(n_groups, dim)`` float64 group sums and ``means``.
    """
    keys, n_groups, weights = groups
    dim = vectors.shape[1]
    group_sums = np.zeros((n_groups, dim))
    if means is None:
        means = np.zeros((n_docs, dim), dtype=np.float32)
    carried = np.zeros((0, dim))  # the sum of a document whose rows go on in the next block
    for start in range(0, len(vectors), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(vectors))
        block = as_float32(vectors[start:stop])
        add_by_key(
            group_sums, keys[start:stop], block, None if weights is None else weights[start:stop]
        )
        docs = sentence_doc[start:stop]
        first, last = int(docs[0]), int(docs[-1])
        sums = np.zeros((last - first + 1, dim))
        if len(carried):
            sums[0] = carried[0]
        add_by_key(sums, np.where(counted[start:stop], docs - first, -1), block)
        done = last + 1 if stop == len(vectors) or sentence_doc[stop] != last else last
        finished = sums[: done - first]
        norms = np.linalg.norm(finished, axis=1, keepdims=True)
        means[first:done] = (finished / np.maximum(norms, 1e-12)).astype(np.float32)
        carried = sums[done - first :]
    return group_sums, means


def add_by_key(
    out: np.ndarray, keys: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None
) -> None:
    """``out[k] +=`` the sum of the (weighted) rows whose key is k, rows keyed -1 left
    out, as one sparse product (``np.add.at`` is an unbuffered per-element loop,
    ~50x slower on millions of rows; weights in the sparse matrix, not multiplied
    into a float64 copy of the rows)."""
    kept = np.flatnonzero(np.asarray(keys) >= 0)
    if not len(kept):
        return
    from scipy import sparse

    values = np.ones(len(kept)) if weights is None else np.asarray(weights)[kept]
    one_hot = sparse.csr_matrix((values, (keys[kept], kept)), shape=(len(out), len(keys)))
    out += one_hot @ rows


def as_float32(rows: np.ndarray) -> np.ndarray:
    """A float32 copy of ``rows`` (float16 rows are converted by a compiled loop,
    :func:`dedup.stages.kernels.half_to_float`, ~5x faster than numpy's cast)."""
    rows = np.asarray(rows)
    if rows.dtype != np.float16:
        return np.array(rows, dtype=np.float32)
    from dedup.stages import kernels

    out = np.empty(rows.shape, dtype=np.float32)
    kernels.half_to_float(np.ascontiguousarray(rows).view(np.uint16), out)
    return out


def centre_rows(rows: np.ndarray, groups: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``rows`` minus their group's mean, L2-normalised, as float32."""
    from dedup.stages import kernels

    centred = as_float32(rows)  # a copy, changed in place
    if len(centred):
        kernels.centre_in_place(
            centred, np.asarray(groups, dtype=np.int64), np.ascontiguousarray(means, np.float32)
        )
    return centred


def language_centred(
    vectors: np.ndarray, groups: np.ndarray, weights: np.ndarray, prior: float
) -> np.ndarray:
    """Subtract a shrunken per-group mean from each row, then L2-normalise (in memory)."""
    if len(vectors) == 0:
        return np.asarray(vectors, dtype=np.float32).copy()
    return centre_rows(vectors, groups, language_means(vectors, groups, weights, prior))


@dataclass(frozen=True)
class CentredVectors:
    """Language-centred, L2-normalised sentence vectors, computed when read.

    The raw vectors stay where they are (a float16 file mapped into memory on
    large corpora): a centred copy of a million sentences would be another
    1.5 GB. Every reader gets the same float32 rows from the same raw rows.

    Attributes:
        raw: ``(n, dim)`` sentence vectors, any float dtype, possibly a memmap.
        row_groups: ``(n,)`` language group of each row.
        means: ``(n_groups, dim)`` from :func:`language_means` (or
            :func:`shrunk_means` of sums read with other ones).
    """

    raw: np.ndarray
    row_groups: np.ndarray
    means: np.ndarray

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def dim(self) -> int:
        return int(self.raw.shape[1])

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The centred rows ``index`` (an int array), float32."""
        index = np.asarray(index, dtype=np.int64)
        return centre_rows(self.raw[index], self.row_groups[index], self.means)

    def blocks(self, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, centred rows)`` of consecutive blocks covering every row."""
        for start in range(0, len(self.raw), block_rows):
            stop = min(start + block_rows, len(self.raw))
            yield start, centre_rows(self.raw[start:stop], self.row_groups[start:stop], self.means)


RowReader = Callable[[np.ndarray], np.ndarray]


def row_reader(vectors: np.ndarray | CentredVectors) -> RowReader:
    """A function giving float32 rows ``index`` of an array or of centred vectors."""
    if isinstance(vectors, CentredVectors):
        return vectors.rows
    return lambda index: as_float32(vectors[index])


def row_blocks(vectors: np.ndarray | CentredVectors) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, float32 rows)`` of consecutive ``BLOCK_ROWS`` blocks of either kind."""
    if isinstance(vectors, CentredVectors):
        yield from vectors.blocks()
    else:
        for start in range(0, len(vectors), BLOCK_ROWS):
            yield start, as_float32(vectors[start : start + BLOCK_ROWS])


def _knn(
    read: RowReader,
    rows: np.ndarray,
    k: int,
    config: CandidateConfig,
    queries: np.ndarray | None = None,
) -> np.ndarray:
    """``(len(queries), k)`` positions in ``rows`` of each query's nearest rows by inner product.

    Exact up to ``config.exact_search_limit`` rows; above, an inverted-file index
    of product-quantised codes with re-ranking (-1 where fewer than ``k`` were
    found). ``queries`` are positions in ``rows`` (None: every row); the index
    holds every row whichever are queried, so a query's hits do not depend on
    which others are queried. All at once: :func:`_knn_blocks` gives them a
    batch of queries at a time.
    """
    hits = [block for _, block in _knn_blocks(read, rows, k, config, queries)]
    return np.concatenate(hits) if hits else np.zeros((0, k), dtype=np.int64)


def _knn_blocks(
    read: RowReader,
    rows: np.ndarray,
    k: int,
    config: CandidateConfig,
    queries: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`_knn`'s hits a batch of queries at a time: ``(first query, hits)``.

    Why: the hits of every lead sentence at once, and the arrays made from
    them, were ~0.5 GB each at a million documents (3 million queries x 21
    hits x 8 bytes); a batch's hits become pair codes before the next batch
    is searched. A query's hits do not depend on its batch.
    """
    import faiss

    n = len(rows)
    queried = rows if queries is None else rows[queries]
    dim = read(rows[:1]).shape[1]
    if n <= config.exact_search_limit:
        index = faiss.IndexFlatIP(dim)
        index.add(np.ascontiguousarray(read(rows)))
        # one search: faiss's exact search takes another path below 20 queries
        yield 0, index.search(np.ascontiguousarray(read(queried)), k)[1]
        return
    # sqrt(n) / 2 lists of ~2 sqrt(n) rows: a query scans search_probes lists. The
    # lists hold 4-bit product-quantised codes, scanned with SIMD lookups ("fast
    # scan", André et al. 2015), and the best 4k hits are re-ranked on 8-bit
    # scalar-quantised vectors: at the same recall, ~2.5x faster than scanning
    # float16 vectors. The re-ranking codes are most of the index (384 of its
    # ~490 bytes a row): 8-bit codes re-rank as well as float16 ones did (the
    # same recall, 0.731 vs 0.732 of the exact 13 nearest on 120,000 stand-in
    # lead sentences, probing 8 lists either way) in 56 % of the memory.
    # Few long lists beat many short ones at the same rows scanned (8 lists of
    # 1,250 codes vs 32 of 310: 14 s vs 23 s on the 394,000 lead sentences of the
    # 100,000-document scaling corpus, same recall), as each probed list has a
    # fixed cost; training k-means on fewer lists is cheaper too.
    n_lists = max(1, int(np.sqrt(n) / 2))
    subvectors = dim // 2 if dim % 2 == 0 else dim
    index = faiss.index_factory(
        dim, f"IVF{n_lists},PQ{subvectors}x4fs,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT
    )
    lists = faiss.extract_index_ivf(index)
    lists.cp.niter = 10
    lists.cp.min_points_per_centroid = 16
    # an evenly spaced sample of 80 rows per list trains them: deterministic, and
    # enough for coarse lists
    sample = rows[np.linspace(0, n - 1, min(n, 80 * n_lists)).astype(np.int64)]
    index.train(np.ascontiguousarray(read(sample)))
    for start in range(0, n, SEARCH_ROWS):
        index.add(np.ascontiguousarray(read(rows[start : start + SEARCH_ROWS])))
    lists.nprobe = config.search_probes
    faiss.downcast_index(index).k_factor = _REFINE_FACTOR
    for start in range(0, len(queried), SEARCH_ROWS):
        batch = np.ascontiguousarray(read(queried[start : start + SEARCH_ROWS]))
        yield start, index.search(batch, k)[1]


def _pair_codes(left: np.ndarray, right: np.ndarray, n_docs: int) -> np.ndarray:
    """The distinct pairs ``(min, max)`` of two documents, each as one int64 code
    ``min * n_docs + max`` (a document with itself left out), sorted."""
    low, high = np.minimum(left, right), np.maximum(left, right)
    different = low != high
    return sorted_unique(low[different].astype(np.int64) * max(n_docs, 1) + high[different])


def lead_rows(sentence_doc: np.ndarray, usable: np.ndarray, lead: int) -> np.ndarray:
    """Rows of the first ``lead`` usable sentences of each document (rows in document order)."""
    rows = np.flatnonzero(usable)
    if len(rows) == 0:
        return rows
    docs = sentence_doc[rows]
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    return rows[rank < lead]


@dataclass(frozen=True)
class PairCodes:
    """Distinct document pairs ``(a, b)``, ``a < b``, as one int64 code a pair,
    ``a * n_docs + b``, sorted.

    Why: align holds the pairs it has scored for the whole stage (each
    linked-partner round aligns only pairs not among them). As an ``(m, 2)``
    array they were 576 MB at a million documents (36 million pairs), and each
    round coded them again to compare (three more arrays of that size at
    once); as codes they are half that, coded once. Where align cuts them into
    chunks they read like that array: ``len()``, and a slice or an index array
    gives those pairs as ``(k, 2)`` rows.

    Attributes:
        codes: ``(m,)`` sorted distinct codes.
        n_docs: the documents' count the codes are made with (at least 1).
    """

    codes: np.ndarray
    n_docs: int

    @classmethod
    def of(cls, pairs: np.ndarray, n_docs: int) -> PairCodes:
        """The distinct rows of ``pairs`` (``(m, 2)``, ``a < b``)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        n_docs = max(int(n_docs), 1)
        return cls(sorted_unique(pairs[:, 0] * n_docs + pairs[:, 1]), n_docs)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: slice | np.ndarray) -> np.ndarray:
        return np.stack(np.divmod(self.codes[index], self.n_docs), axis=1)

    def pairs(self) -> np.ndarray:
        """Every pair as an ``(m, 2)`` int64 array, sorted."""
        return self[:]

    def columns(self, dtype: type[np.integer] = np.int64) -> tuple[np.ndarray, np.ndarray]:
        """``(left, right)`` of every pair as ``dtype``, decoded a block at a time (no
        int64 temporary of every pair when ``dtype`` is narrower)."""
        left, right = np.empty(len(self), dtype), np.empty(len(self), dtype)
        for start in range(0, len(self), _DECODE_BLOCK):
            block = self.codes[start : start + _DECODE_BLOCK]
            left[start : start + len(block)] = block // self.n_docs
            right[start : start + len(block)] = block % self.n_docs
        return left, right

    def new(self, proposed: PairCodes | np.ndarray) -> PairCodes:
        """The pairs of ``proposed`` (codes, or ``(m, 2)`` rows ``a < b``) not among these."""
        if not isinstance(proposed, PairCodes):
            proposed = PairCodes.of(proposed, self.n_docs)
        elif proposed.n_docs != self.n_docs:
            raise ValueError(f"pairs coded for {proposed.n_docs} and {self.n_docs} documents")
        fresh = proposed.codes
        if len(self.codes) and len(fresh):
            found = np.minimum(np.searchsorted(self.codes, fresh), len(self.codes) - 1)
            fresh = fresh[self.codes[found] != fresh]
        return PairCodes(fresh, self.n_docs)

    def union(self, other: PairCodes) -> PairCodes:
        """These pairs and ``other``'s (made with the same ``n_docs``), sorted."""
        if other.n_docs != self.n_docs:
            raise ValueError(f"pairs coded for {other.n_docs} and {self.n_docs} documents")
        # two sorted runs: a stable sort (timsort) merges them in linear time
        return PairCodes(
            sorted_unique(np.concatenate([self.codes, other.codes]), kind="stable"), self.n_docs
        )


#: pair codes decoded at a time by :meth:`PairCodes.columns`
_DECODE_BLOCK = 1 << 22


def candidate_pairs(
    doc_vectors: np.ndarray,
    sentence_vectors: np.ndarray | CentredVectors,
    sentence_doc: np.ndarray,
    usable: np.ndarray,
    config: CandidateConfig,
    queries: np.ndarray | None = None,
) -> PairCodes:
    """Unique document pairs ``(a, b)``, ``a < b``, sorted, as codes (:class:`PairCodes`;
    ``.pairs()`` gives them as an ``(m, 2)`` int64 array).

    Args:
        doc_vectors: ``(n_docs, dim)`` language-centred document vectors.
        sentence_vectors: ``(n_sent, dim)`` language-centred sentence vectors
            (an array, or :class:`CentredVectors` that centre when read).
        sentence_doc: ``(n_sent,)`` document of each sentence, non-decreasing.
        usable: ``(n_sent,)`` bool, False for boilerplate (never a reason to pair).
        config: neighbour counts and search settings.
        queries: ``(n_docs,)`` bool, the documents whose neighbours are
            searched (``dedup add``: those whose pairs no earlier evidence
            holds), each asking for ``QUERY_REACH`` times the neighbours; every
            pair has a queried document. None: every document, as a run does.
    """
    n_docs = len(doc_vectors)
    reach = 1 if queries is None else QUERY_REACH
    queried = np.arange(n_docs) if queries is None else np.flatnonzero(queries)
    # pair codes (see _pair_codes), a batch of queries at a time
    found = [np.zeros(0, dtype=np.int64)]
    if n_docs > 1 and len(queried):
        k = min(reach * config.doc_neighbours + 1, n_docs)
        for start, hits in _knn_blocks(
            row_reader(doc_vectors), np.arange(n_docs), k, config, queried
        ):
            rows = np.repeat(queried[start : start + len(hits)], k)
            cols = hits.reshape(-1)
            keep = cols >= 0
            found.append(_pair_codes(rows[keep], cols[keep], n_docs))
    sentence_rows = lead_rows(sentence_doc, usable, config.lead_sentences)
    lead_queries = None if queries is None else np.flatnonzero(queries[sentence_doc[sentence_rows]])
    query_rows = sentence_rows if lead_queries is None else sentence_rows[lead_queries]
    if config.sentence_neighbours and len(sentence_rows) > 1 and len(query_rows):
        neighbours = reach * config.sentence_neighbours
        k = min(neighbours + _OWN_DOC_SLACK, len(sentence_rows))
        read = row_reader(sentence_vectors)
        for start, hits in _knn_blocks(read, sentence_rows, k, config, lead_queries):
            own = sentence_doc[query_rows[start : start + len(hits)]]
            valid = hits >= 0
            other = np.where(valid, sentence_doc[sentence_rows[np.maximum(hits, 0)]], -1)
            other = np.where(other == own[:, None], -1, other)
            # keep the first `neighbours` hits in other documents
            rank = np.cumsum(other >= 0, axis=1)
            take = (other >= 0) & (rank <= neighbours)
            left = np.broadcast_to(own[:, None], other.shape)[take]
            found.append(_pair_codes(left, other[take], n_docs))
    return PairCodes(sorted_unique(np.concatenate(found)), max(n_docs, 1))


def linked_partner_pairs(
    left: np.ndarray, right: np.ndarray, score: np.ndarray, threshold: float, partners: int
) -> np.ndarray:
    """Pairs of documents that are both linked to one document: ``(m, 2)``, ``a < b``, unique.

    If A is a translation of B and of C, B and C are very likely translations of
    each other, whether or not the neighbour search put them side by side
    (among 60 versions of one story a fixed 20 neighbours cannot hold them
    all). Only links count (a score at or above ``threshold``, the cluster
    threshold); each document's partners are its ``partners`` strongest links
    (ties by partner number, so the result does not depend on pair order), so
    a hub document costs at most ``partners**2 / 2`` pairs.

    Args:
        left, right, score: ``(m,)`` the aligned pairs and their scores.
        threshold: least score of a link.
        partners: most partners taken per document.
    """
    linked = np.asarray(score) >= threshold
    a, b = np.asarray(left)[linked], np.asarray(right)[linked]
    ends = np.concatenate([a, b])
    others = np.concatenate([b, a])
    strength = np.tile(np.asarray(score)[linked], 2)
    if not len(ends):
        return np.zeros((0, 2), dtype=np.int64)
    order = np.lexsort((others, -strength, ends))
    ends, others = ends[order], others[order]
    starts = np.flatnonzero(np.r_[True, ends[1:] != ends[:-1]])
    sizes = np.minimum(np.diff(np.r_[starts, len(ends)]), partners)
    # the groups of one size at a time, as one (groups, size) array: a Python loop per
    # document (every linked one) cost seconds at 100,000 documents
    found = []
    for size in np.unique(sizes[sizes > 1]).tolist():
        first = starts[sizes == size]
        groups = np.sort(others[first[:, None] + np.arange(size)], axis=1)
        i, j = np.triu_indices(size, k=1)
        found.append(np.stack([groups[:, i].ravel(), groups[:, j].ravel()], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    n = int(pairs.max()) + 1
    codes = sorted_unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack(np.divmod(codes, n), axis=1)
