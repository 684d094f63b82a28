"""records: AlignedPairs reads like the tuple of AlignedPair it stands for."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest

from dedup.records import ALIGNED_DTYPE, AlignedPair, AlignedPairs, PairEvidence, gc_paused


def _pairs() -> AlignedPairs:
    records = np.array([(0, 1, 0.81, 5.5, 1.0), (2, 3, 0.62, 3.1, 0.55)], dtype=ALIGNED_DTYPE)
    return AlignedPairs(records)


def test_reads_like_a_tuple_of_aligned_pairs() -> None:
    aligned = _pairs()
    expected = (AlignedPair(0, 1, 0.81, 5.5, 1.0), AlignedPair(2, 3, 0.62, 3.1, 0.55))
    assert len(aligned) == 2
    assert aligned[1] == expected[1] and aligned[-1] == expected[1]
    assert aligned[:1] == expected[:1]
    assert tuple(aligned) == expected and aligned == expected and aligned == list(expected)
    assert aligned != expected[:1]
    assert isinstance(aligned[0].left, int) and isinstance(aligned[0].z, float)


def test_pickles_hashes_and_compares_by_value() -> None:
    aligned = _pairs()
    again = pickle.loads(pickle.dumps(aligned))
    assert again == aligned and hash(again) == hash(aligned)
    evidence = PairEvidence(0, 1, 0.7, aligned, 3)
    assert pickle.loads(pickle.dumps(evidence)) == evidence
    assert evidence.coverage == pytest.approx(2 / 3)


def test_rejects_other_arrays() -> None:
    with pytest.raises(ValueError):
        AlignedPairs(np.zeros(3))


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
