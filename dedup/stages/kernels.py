"""Compiled inner loops of ``copies``, ``candidates`` and ``align``.

Three kinds of loop are compiled here, because numpy makes them slow:

* MinHash signatures (:func:`minhash32`): datasketch's ``affine32`` scheme
  applied to every shingle of a text, the bytes datasketch gives, without
  its Python call per shingle (``hashfunc``) or its ``shingles x
  permutations`` temporary;

* reading sentence vectors: float16 rows (as the embedding cache and a run's
  vector file keep them) become centred, normalised float32 rows
  (:func:`half_to_float`, :func:`centre_in_place`), several times faster
  than numpy's float16 cast and without its temporaries;
* scoring candidate pairs (:func:`score_pairs`). A corpus of 100,000
  documents has millions of candidate pairs, each a small matrix (20 x 20
  sentences): per pair the work is a few thousand arithmetic operations, far
  less than the cost of the dozens of numpy calls the same arithmetic takes
  when written with arrays. One call scores a whole chunk of pairs: the
  similarity matrix, the null's mean and spread of every sentence against the
  other document's language (:class:`dedup.stages.align.SentenceNull`),
  z-scores and weights, the number check, and the monotone alignment with its
  traceback. The maths is documented in :mod:`dedup.stages.align`; this module
  only says how it is laid out in memory.

The loops are compiled by **numba** (LLVM) on first use and the machine code
is cached on disk (next to this file, or in ``NUMBA_CACHE_DIR``), so only the
first run after an install pays the compilation (a few seconds).

This module is imported when vectors are first read, not with :mod:`dedup`,
so commands that read none (``dedup --help``, a report) do not pay numba's
import.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: slots of ``term_starts``: a pair's left rows toward the right document's
#: group, left rows toward all groups, right rows toward the left's group,
#: right rows toward all groups.
LEFT_TO_RIGHT, LEFT_TO_ALL, RIGHT_TO_LEFT, RIGHT_TO_ALL = range(4)


#: 2^(127 - 15): moves a float16 exponent, shifted into float32 position, to its bias.
_HALF_REBIAS = np.float32(2.0**112)


@njit(cache=True, nogil=True)
def half_to_float(bits: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = bits`` read as float16, exactly (subnormals included; no inf/nan).

    Sign to bit 31, exponent and mantissa shifted 13 bits up, then one
    multiplication re-biases the exponent: a loop LLVM vectorises.

    Args:
        bits: float16 values viewed as uint16, C-contiguous.
        out: float32 array of the same shape, C-contiguous.
    """
    source = bits.reshape(-1)
    words = out.reshape(-1).view(np.uint32)
    for k in range(source.shape[0]):
        h = np.uint32(source[k])
        words[k] = ((h & np.uint32(0x8000)) << np.uint32(16)) | (
            (h & np.uint32(0x7FFF)) << np.uint32(13)
        )
    values = out.reshape(-1)
    for k in range(values.shape[0]):
        values[k] *= _HALF_REBIAS


@njit(cache=True, nogil=True)
def centre_in_place(rows: np.ndarray, groups: np.ndarray, means: np.ndarray) -> None:
    """Each row minus its group's mean, then divided by its length (at least 1e-12)."""
    for r in range(rows.shape[0]):
        mean = means[groups[r]]
        total = np.float32(0.0)
        for k in range(rows.shape[1]):
            value = rows[r, k] - mean[k]
            rows[r, k] = value
            total += value * value
        length = max(np.sqrt(total), np.float32(1e-12))
        for k in range(rows.shape[1]):
            rows[r, k] /= length


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """float32 dot product, summed in any order (so it vectorises, as BLAS does)."""
    total = np.float32(0.0)
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def similarities(
    rows: np.ndarray, a_first: int, n: int, b_first: int, w: int, out: np.ndarray
) -> None:
    """``out[i, j]`` = ``rows[a_first + i] . rows[b_first + j]`` for ``i < n``, ``j < w``.

    Computed in tiles of 2 x 4 dot products that share their loads: each
    element read feeds 4 or 2 products, not 1 (1.5x faster than one dot
    product at a time on 20 x 20 sentences of 384 dimensions; a pair's
    similarities are most of the cost of scoring it). Edges left over are
    plain dot products.
    """
    dim = rows.shape[1]
    i = 0
    while i + 2 <= n:
        x, u = rows[a_first + i], rows[a_first + i + 1]
        j = 0
        while j + 4 <= w:
            y0, y1 = rows[b_first + j], rows[b_first + j + 1]
            y2, y3 = rows[b_first + j + 2], rows[b_first + j + 3]
            x0 = x1 = x2 = x3 = u0 = u1 = u2 = u3 = np.float32(0.0)
            for k in range(dim):
                xk, uk = x[k], u[k]
                x0 += xk * y0[k]
                x1 += xk * y1[k]
                x2 += xk * y2[k]
                x3 += xk * y3[k]
                u0 += uk * y0[k]
                u1 += uk * y1[k]
                u2 += uk * y2[k]
                u3 += uk * y3[k]
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = x0, x1, x2, x3
            out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3] = u0, u1, u2, u3
            j += 4
        for jj in range(j, w):
            out[i, jj] = _dot(x, rows[b_first + jj])
            out[i + 1, jj] = _dot(u, rows[b_first + jj])
        i += 2
    if i < n:
        for j in range(w):
            out[i, j] = _dot(rows[a_first + i], rows[b_first + j])


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def null_terms(
    rows: np.ndarray,
    key_rows: np.ndarray,
    key_groups: np.ndarray,
    sum1: np.ndarray,
    bases: np.ndarray,
    scales: np.ndarray,
    residual: np.ndarray,
    out: np.ndarray,
) -> None:
    """For each ``i``, with ``x = rows[key_rows[i]]`` and ``g = key_groups[i]``:
    ``out[i, 0] = x . sum1[g]`` and ``out[i, 1] = x^T S2 x`` as
    :class:`dedup.stages.align.SentenceNull` summarises ``S2`` (the projections on
    the rows of ``bases[g]``, ``(rank, dim)``, squared and weighted by
    ``scales[g]``, plus ``residual[g]`` times what they leave of ``|x|^2``).

    Why a loop and not two matrix products: BLAS picks its kernels by the
    matrix shape, and on AVX-512 machines a row's product with the same basis
    differs in its last bits with the number of rows beside it. A chunk's rows
    depend on which pairs a run aligns (an addition aligns only new pairs), so
    each row's terms must depend on that row alone: here they are one fixed
    sequence of operations per row, whatever the chunk. As fast as the BLAS
    products were (0.23-0.24 s against 0.23-0.25 s for 200,000 rows of rank
    64, measured side by side in one process on 2 cores).
    """
    rank = bases.shape[1]
    for i in range(key_rows.shape[0]):
        x = rows[key_rows[i]]
        g = key_groups[i]
        first = 0.0
        for k in range(x.shape[0]):
            first += x[k] * sum1[g, k]
        out[i, 0] = first
        weighted = np.float32(0.0)
        kept = np.float32(0.0)
        for j in range(rank):
            projected = _dot(x, bases[g, j])
            square = projected * projected
            weighted += square * scales[g, j]
            kept += square
        value = np.float64(weighted)
        if residual[g]:
            value += residual[g] * max(np.float64(_dot(x, x) - kept), 0.0)
        out[i, 1] = value


@njit(cache=True, nogil=True)
def own_document_sums(rows: np.ndarray, doc_starts: np.ndarray, out: np.ndarray) -> None:
    """For each row ``x``: the sums of ``x . y`` and ``(x . y)^2`` over the rows
    ``y`` of its own document (itself included), into ``out[:, 0]`` and ``out[:, 1]``.

    Args:
        rows: ``(n, dim)`` float32, documents one after another.
        doc_starts: ``(docs + 1,)`` where each document's rows begin.
        out: ``(n, 2)`` float64.
    """
    for d in range(doc_starts.shape[0] - 1):
        for i in range(doc_starts[d], doc_starts[d + 1]):
            sum1 = 0.0
            sum2 = 0.0
            for j in range(doc_starts[d], doc_starts[d + 1]):
                similarity = float(_dot(rows[i], rows[j]))
                sum1 += similarity
                sum2 += similarity * similarity
            out[i, 0] = sum1
            out[i, 1] = sum2


@njit(cache=True, nogil=True)
def numbers_conflict(starts: np.ndarray, values: np.ndarray, left: int, right: int) -> bool:
    """Rows ``left`` and ``right`` both carry numbers and share none.

    ``values[starts[r]:starts[r + 1]]`` are the sorted numbers of row ``r``.
    """
    i, i_end = starts[left], starts[left + 1]
    j, j_end = starts[right], starts[right + 1]
    if i == i_end or j == j_end:
        return False
    while i < i_end and j < j_end:
        if values[i] == values[j]:
            return False
        if values[i] < values[j]:
            i += 1
        else:
            j += 1
    return True


@njit(cache=True, nogil=True)
def _moments(
    base1: float,
    quad: float,
    base1_all: float,
    quad_all: float,
    removed1: float,
    removed2: float,
    same1: float,
    same2: float,
    n_removed: float,
    n_removed_same: float,
    n_total: float,
    n_target: float,
    prior: float,
    dim: int,
) -> tuple[float, float]:
    """Mean and standard deviation of a sentence's similarity to a group's crowd.

    The crowd is the target group's usable sentences minus those of the two
    documents compared (see :class:`dedup.stages.align.SentenceNull`), mixed
    with ``prior`` sentences' worth of the corpus-wide crowd.

    Args:
        base1, quad: ``x . S1`` and ``x^T S2 x`` for the target group.
        base1_all, quad_all: the same for all groups together.
        removed1, removed2: sums of ``x . y`` and ``(x . y)^2`` over the rows of
            both documents (removed from the corpus-wide crowd).
        same1, same2: the same over the rows that are in the target group (the
            partner's, and the own document's when it is in it).
        n_removed, n_removed_same: how many rows those are.
        n_total, n_target: usable rows in all groups and in the target group.
        prior: corpus-wide null mixed in, in sentences.
        dim: vector size (the second moment of an empty crowd is ``1 / dim``).
    """
    n_all = n_total - n_removed
    if n_all > 0:
        mu_all = (base1_all - removed1) / n_all
        m2_all = (quad_all - removed2) / n_all
    else:
        mu_all = 0.0
        m2_all = 1.0 / dim
    n_t = max(n_target - n_removed_same, 0.0)
    mu = (base1 - same1 + prior * mu_all) / (n_t + prior)
    m2 = (quad - same2 + prior * m2_all) / (n_t + prior)
    return mu, np.sqrt(max(m2 - mu * mu, 1e-8))


@njit(cache=True, nogil=True)
def _row_moments(
    sims: np.ndarray,
    own: np.ndarray,
    first: int,
    term_values: np.ndarray,
    at_group: int,
    at_all: int,
    same: float,
    n_target: float,
    n_total: float,
    prior: float,
    dim: int,
    mu: np.ndarray,
    sd: np.ndarray,
) -> None:
    """Null mean and spread of each row of one document against the other's language.

    ``sims`` is this document's rows against the other's (rows x columns);
    ``own[first + i]`` and ``term_values[at_group + i]`` / ``[at_all + i]`` are
    row ``i``'s own-document sums and null terms; ``same`` is 1.0 when both
    documents are in one language group; ``n_target`` the usable rows of the
    other document's group (see :func:`_moments`).
    """
    n, w = sims.shape
    for i in range(n):
        sum1 = 0.0
        sum2 = 0.0
        for j in range(w):
            sum1 += sims[i, j]
            sum2 += sims[i, j] * sims[i, j]
        own1, own2 = own[first + i, 0], own[first + i, 1]
        mu[i], sd[i] = _moments(
            term_values[at_group + i, 0],
            term_values[at_group + i, 1],
            term_values[at_all + i, 0],
            term_values[at_all + i, 1],
            own1 + sum1,
            own2 + sum2,
            sum1 + same * own1,
            sum2 + same * own2,
            n + w,
            w + same * n,
            n_total,
            n_target,
            prior,
            dim,
        )


@njit(cache=True, nogil=True)
def fill_table(weights: np.ndarray, table: np.ndarray) -> float:
    """The dynamic program of the weighted longest common subsequence of ``weights``.

    ``table`` (at least ``(rows + 1, columns + 1)``) gets in cell ``(i, j)`` the
    best total of an in-order one-to-one alignment of the first ``i`` rows
    with the first ``j`` columns; returns the best total of the whole matrix.
    """
    n_rows, n_cols = weights.shape
    for j in range(n_cols + 1):
        table[0, j] = 0.0
    for i in range(1, n_rows + 1):
        table[i, 0] = 0.0
        for j in range(1, n_cols + 1):
            best = max(table[i - 1, j], table[i - 1, j - 1] + weights[i - 1, j - 1])
            table[i, j] = max(best, table[i, j - 1])
    return table[n_rows, n_cols]


@njit(cache=True, nogil=True)
def trace_back(table: np.ndarray, n_rows: int, n_cols: int, cells: np.ndarray) -> int:
    """The aligned ``(row, column)`` cells of a table from :func:`fill_table`, in order.

    Written into ``cells`` (room for ``min(n_rows, n_cols)``); returns how many.
    The path goes up on a tie, then left, else diagonally, so among equally
    good alignments the one that uses the earliest rows is chosen.
    """
    found = 0
    i, j = n_rows, n_cols
    while i > 0 and j > 0:
        here = table[i, j]
        if here == table[i - 1, j]:
            i -= 1
        elif here == table[i, j - 1]:
            j -= 1
        else:
            cells[found, 0] = i - 1
            cells[found, 1] = j - 1
            found += 1
            i -= 1
            j -= 1
    cells[:found] = cells[:found][::-1].copy()
    return found


@njit(cache=True, nogil=True)
def score_pairs(
    rows: np.ndarray,
    doc_starts: np.ndarray,
    pair_docs: np.ndarray,
    pair_groups: np.ndarray,
    term_values: np.ndarray,
    term_starts: np.ndarray,
    own: np.ndarray,
    count: np.ndarray,
    prior: float,
    number_starts: np.ndarray,
    number_values: np.ndarray,
    z_low: float,
    z_high: float,
    length_prior: float,
    detail_from: float,
    totals: np.ndarray,
    cell_starts: np.ndarray,
    cell_counts: np.ndarray,
    cells: np.ndarray,
    cell_values: np.ndarray,
) -> None:
    """Score and align every pair of a chunk; results go into the output arrays.

    Args:
        rows: ``(n, dim)`` float32 centred usable rows of the chunk's documents.
        doc_starts: ``(docs + 1,)`` each chunk document's first row in ``rows``.
        pair_docs: ``(m, 2)`` chunk document of each pair's left and right side.
        pair_groups: ``(m, 2)`` language group of each side.
        term_values: ``(k, 2)`` the null terms ``x . S1`` and ``x^T S2 x``.
        term_starts: ``(m, 4)`` where the four term blocks of each pair begin
            (slots :data:`LEFT_TO_RIGHT` ...), one term per row of that side.
        own: ``(n, 2)`` sums of ``x . y`` and ``(x . y)^2`` over each row's own document.
        count: ``(slots,)`` usable rows per group; the last slot is all groups.
        prior: the null's prior, in sentences.
        number_starts, number_values: each row's sorted numbers (see
            :func:`numbers_conflict`); empty ``number_values``: none known.
        z_low, z_high, length_prior, detail_from: as in ``AlignConfig`` /
            ``align_pairs``.
        totals: ``(m,)`` out: best alignment total of each pair.
        cell_starts: ``(m,)`` where each pair may write its aligned cells
            (room for the shorter side's rows).
        cell_counts: ``(m,)`` out: cells written (only for pairs scoring at
            least ``detail_from``).
        cells: ``(capacity, 2)`` out: left and right row of each aligned cell,
            within the pair's documents' usable rows.
        cell_values: ``(capacity, 3)`` out: similarity, z and weight of each cell.
    """
    dim = rows.shape[1]
    span = z_high - z_low
    n_total = count[count.shape[0] - 1]
    has_numbers = number_values.shape[0] > 0
    longest = 0
    for d in range(doc_starts.shape[0] - 1):
        longest = max(longest, doc_starts[d + 1] - doc_starts[d])
    sims = np.empty((longest, longest))
    weights = np.empty((longest, longest))
    z = np.empty((longest, longest))
    table = np.empty((longest + 1, longest + 1))
    mu_left, sd_left = np.empty(longest), np.empty(longest)
    mu_right, sd_right = np.empty(longest), np.empty(longest)
    path = np.empty((longest, 2), dtype=np.int64)
    for p in range(pair_docs.shape[0]):
        a_first, a_stop = doc_starts[pair_docs[p, 0]], doc_starts[pair_docs[p, 0] + 1]
        b_first, b_stop = doc_starts[pair_docs[p, 1]], doc_starts[pair_docs[p, 1] + 1]
        n, w = a_stop - a_first, b_stop - b_first
        cell_counts[p] = 0
        totals[p] = 0.0
        if n == 0 or w == 0:
            continue
        similarities(rows, a_first, n, b_first, w, sims)
        group_a, group_b = pair_groups[p, 0], pair_groups[p, 1]
        same = 1.0 if group_a == group_b else 0.0
        # each left row against the right document's language, and the reverse
        block = sims[:n, :w]
        _row_moments(
            block,
            own,
            a_first,
            term_values,
            term_starts[p, LEFT_TO_RIGHT],
            term_starts[p, LEFT_TO_ALL],
            same,
            count[group_b],
            n_total,
            prior,
            dim,
            mu_left,
            sd_left,
        )
        _row_moments(
            block.T,
            own,
            b_first,
            term_values,
            term_starts[p, RIGHT_TO_LEFT],
            term_starts[p, RIGHT_TO_ALL],
            same,
            count[group_a],
            n_total,
            prior,
            dim,
            mu_right,
            sd_right,
        )
        for i in range(n):
            for j in range(w):
                z_ij = min(
                    (sims[i, j] - mu_left[i]) / sd_left[i],
                    (sims[i, j] - mu_right[j]) / sd_right[j],
                )
                z[i, j] = z_ij
                weight = min(max((z_ij - z_low) / span, 0.0), 1.0)
                if (
                    has_numbers
                    and weight > 0.0
                    and numbers_conflict(number_starts, number_values, a_first + i, b_first + j)
                ):
                    weight = 0.0
                weights[i, j] = weight
        # the shorter side runs down the table (as rows)
        flip = n > w
        oriented = weights[:n, :w].T if flip else weights[:n, :w]
        shorter = min(n, w)
        total = fill_table(oriented, table)
        totals[p] = total
        if total <= 0.0 or total / (shorter + length_prior) < detail_from:
            continue
        found = trace_back(table, oriented.shape[0], oriented.shape[1], path)
        written = 0
        for c in range(found):
            i, j = (path[c, 1], path[c, 0]) if flip else (path[c, 0], path[c, 1])
            if weights[i, j] > 0.0:
                at = cell_starts[p] + written
                cells[at, 0], cells[at, 1] = i, j
                cell_values[at, 0] = sims[i, j]
                cell_values[at, 1] = z[i, j]
                cell_values[at, 2] = weights[i, j]
                written += 1
        cell_counts[p] = written


#: murmur3's 32-bit finaliser (``fmix32``), datasketch's pre-mix of each input hash
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


@njit(cache=True, nogil=True)
def minhash32(
    hashes: np.ndarray, starts: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray
) -> None:
    """``out[t]``: the MinHash of the 32-bit hashes ``hashes[starts[t]:starts[t + 1]]``.

    datasketch's ``affine32`` scheme: each hash is mixed by murmur3's
    finaliser, then permutation ``p`` maps it to ``a[p] * h + b[p]`` modulo
    2**32, and each permutation keeps its least value (2**32 - 1 for no hash).
    Arithmetic in 64 bits, masked to 32 after each product.

    Args:
        hashes: ``(n,)`` uint32, every text's hashes one after another.
        starts: ``(texts + 1,)`` where each text's hashes begin.
        a, b: ``(num_perm,)`` uint64, datasketch's permutations.
        out: ``(texts, num_perm)`` uint32, filled.
    """
    mask = np.uint64(0xFFFFFFFF)
    shift1, mul1, shift2, mul2, shift3 = _FMIX32
    for t in range(len(starts) - 1):
        row = out[t]
        row[:] = np.uint32(0xFFFFFFFF)
        for k in range(starts[t], starts[t + 1]):
            h = np.uint64(hashes[k])
            h ^= h >> np.uint64(shift1)
            h = (h * np.uint64(mul1)) & mask
            h ^= h >> np.uint64(shift2)
            h = (h * np.uint64(mul2)) & mask
            h ^= h >> np.uint64(shift3)
            for p in range(len(a)):
                value = (h * a[p] + b[p]) & mask
                if value < row[p]:
                    row[p] = np.uint32(value)
