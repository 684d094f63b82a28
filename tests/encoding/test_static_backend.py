"""A static model run in numpy (dedup.encoding.static_backend): the bytes numpy's own
pooling gives, whatever the bag lengths."""

from __future__ import annotations

import numpy as np

from dedup.encoding.static_backend import StaticTable, flat_bags


def _reduceat_means(table: np.ndarray, seqs: list[list[int]]) -> np.ndarray:
    """The pooling as it was written with numpy: gathered rows, ``np.add.reduceat``."""
    flat, lengths = flat_bags(seqs)
    out = np.zeros((len(seqs), table.shape[1]), dtype=np.float32)
    filled = lengths > 0
    if filled.any():
        starts = (np.cumsum(lengths) - lengths)[filled]
        sums = np.add.reduceat(table[flat], starts, axis=0)
        out[filled] = sums / lengths[filled, None].astype(np.float32)
    return out


def test_bag_means_have_the_bytes_of_numpys_reduceat() -> None:
    """Bags of 0 to 600 tokens (numpy's pairwise summation changes its order at 8 and
    above 128 rows), repeated tokens, and a row of negative zeros (the sign of a zero
    sum depends on where the sum starts): bit for bit, not merely close."""
    rng = np.random.default_rng(0)
    table = rng.standard_normal((3000, 384)).astype(np.float32)
    table[7] = -0.0
    model = StaticTable(None, table)
    lengths = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 128, 129, 130, 137, 200, 600]
    seqs = [rng.integers(0, 3000, n).tolist() for n in lengths * 3]
    seqs += [[7], [7, 7], [7] * 9, [7] * 300, [5] * 40]
    rng.shuffle(seqs)
    expected = _reduceat_means(table, seqs)
    assert np.array_equal(model.pooled(seqs).view(np.uint32), expected.view(np.uint32))
    assert model.pooled([[], []]).shape == (2, 384) and not model.pooled([[]]).any()
