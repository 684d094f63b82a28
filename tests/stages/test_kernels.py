"""kernels: the compiled loops give what the plain numpy arithmetic gives."""

from __future__ import annotations

import numpy as np

from dedup.stages import kernels
from dedup.stages.candidates import as_float32, centre_rows


def test_half_to_float_is_exact_for_every_finite_float16() -> None:
    bits = np.arange(2**16, dtype=np.uint16)
    halves = bits.view(np.float16)
    finite = np.isfinite(halves)
    out = np.empty(int(finite.sum()), dtype=np.float32)
    kernels.half_to_float(bits[finite], out)
    expected = halves[finite].astype(np.float32)
    # bit for bit: signed zeros and subnormals included
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))


def test_as_float32_takes_any_float_array_and_copies() -> None:
    rows = np.random.default_rng(0).standard_normal((5, 7))
    for dtype in (np.float16, np.float32, np.float64):
        source = rows.astype(dtype)
        got = as_float32(source)
        assert got.dtype == np.float32 and got.shape == source.shape
        assert np.array_equal(got, source.astype(np.float32))
        got[0, 0] = 42.0
        assert source[0, 0] != 42.0


def test_similarities_match_a_matrix_product_at_every_tile_edge() -> None:
    rng = np.random.default_rng(4)
    rows = rng.standard_normal((40, 384)).astype(np.float32)
    out = np.full((12, 12), np.nan)
    # sizes that fill whole 2 x 4 tiles, leave a row, leave columns, or are empty
    for n, w in [(4, 8), (5, 8), (4, 7), (3, 5), (1, 1), (1, 3), (0, 4), (7, 0), (12, 11)]:
        out[:] = np.nan
        kernels.similarities(rows, 2, n, 20, w, out)
        expected = rows[2 : 2 + n] @ rows[20 : 20 + w].T
        np.testing.assert_allclose(out[:n, :w], expected, rtol=1e-5, atol=1e-4)
        assert np.isnan(out[n:, :]).all() and np.isnan(out[:, w:]).all()  # nothing else written


def test_centre_rows_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((50, 32)).astype(np.float16)
    groups = rng.integers(0, 3, size=50)
    means = rng.standard_normal((3, 32)).astype(np.float32) * 0.1
    expected = rows.astype(np.float32) - means[groups]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(centre_rows(rows, groups, means), expected, rtol=1e-5, atol=1e-6)


def test_a_row_equal_to_its_mean_stays_zero() -> None:
    means = np.ones((1, 4), dtype=np.float32)
    centred = centre_rows(np.ones((2, 4), dtype=np.float32), np.zeros(2, np.int64), means)
    assert np.array_equal(centred, np.zeros((2, 4), dtype=np.float32))
