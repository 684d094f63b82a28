"""records: AlignedPairs and EvidenceTable read like the objects they stand for."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest

from dedup.records import (
    ALIGNED_DTYPE,
    AlignedPair,
    AlignedPairs,
    EvidenceTable,
    PairEvidence,
    concat_ranges,
    gc_paused,
    sorted_unique,
)


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


def _evidence() -> list[PairEvidence]:
    return [
        PairEvidence(
            0, 2, 0.75, (AlignedPair(0, 0, 0.9, 6.0, 1.0), AlignedPair(1, 2, 0.7, 3.5, 0.75)), 2
        ),
        PairEvidence(0, 3, 0.1, (), 4),
        PairEvidence(1, 2, 0.5, _pairs(), 3),
    ]


def test_evidence_table_reads_like_its_pairs() -> None:
    evidence = _evidence()
    table = EvidenceTable.of(evidence)
    assert len(table) == 3 and table == evidence and list(table) == evidence
    assert table[2] == evidence[2] and table[-1] == evidence[-1] and table[1:] == evidence[1:]
    assert table[1].aligned == () and table[0].coverage == 1.0
    assert table.score.tolist() == [0.75, 0.1, 0.5] and table.shorter.tolist() == [2, 4, 3]
    assert EvidenceTable.of(table) is table
    assert table != evidence[:2] and table != [*evidence[:2], PairEvidence(1, 2, 0.5, (), 3)]
    with pytest.raises(IndexError):
        table[3]


def test_evidence_table_concat_take_and_renumber_keep_each_pairs_sentences() -> None:
    evidence = _evidence()
    halves = EvidenceTable.concat([EvidenceTable.of(evidence[:1]), EvidenceTable.of(evidence[1:])])
    assert halves == evidence
    assert EvidenceTable.concat([]) == [] and len(EvidenceTable.of([])) == 0
    reordered = halves.take(np.array([2, 0, 1]))
    assert reordered == [evidence[2], evidence[0], evidence[1]]
    assert reordered.take(np.argsort([2, 0, 1])) == evidence
    renamed = halves.renumbered(np.array([10, 11, 12, 13]))
    assert [(e.left, e.right) for e in renamed] == [(10, 12), (10, 13), (11, 12)]
    assert [e.aligned for e in renamed] == [e.aligned for e in evidence]
    halves.renumber(np.array([10, 11, 12, 13]))  # the same, in place
    assert halves == renamed


def test_renumber_in_place_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from dedup import records

    table = _random_table(np.random.default_rng(3), 50)
    names = np.arange(1000) * 3 + 7
    expected = table.renumbered(names)
    monkeypatch.setattr(records, "_RENUMBER_BLOCK", 7)
    table.renumber(names)
    assert table == expected


def _random_table(rng: np.random.Generator, n: int) -> EvidenceTable:
    counts = rng.integers(0, 4, n)
    starts = np.r_[0, np.cumsum(counts)]
    records = np.zeros(int(starts[-1]), dtype=ALIGNED_DTYPE)
    records["left"], records["z"] = rng.integers(0, 99, len(records)), rng.random(len(records))
    pairs = rng.integers(0, 1000, (2, n))
    return EvidenceTable(pairs[0], pairs[1], rng.random(n), rng.integers(0, 9, n), records, starts)


def test_gather_is_concat_then_take_and_frees_its_parts() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        parts = [_random_table(rng, int(rng.integers(0, 40))) for _ in range(rng.integers(1, 7))]
        whole = EvidenceTable.concat(parts)
        order = rng.permutation(len(whole))[: int(rng.integers(0, len(whole) + 1))]
        position = np.full(len(whole), -1, dtype=rng.choice([np.int32, np.int64]))
        position[order] = np.arange(len(order))
        handed = list(parts)
        assert EvidenceTable.gather(handed, position) == whole.take(order)
        assert handed == []  # every part let go
    assert len(EvidenceTable.gather([], np.zeros(0, dtype=np.int64))) == 0
    with pytest.raises(ValueError, match="positions"):
        EvidenceTable.gather([_random_table(rng, 3)], np.arange(2))


def test_evidence_table_pickles_and_rejects_mismatched_columns() -> None:
    table = EvidenceTable.of(_evidence())
    assert pickle.loads(pickle.dumps(table)) == table
    with pytest.raises(ValueError):
        EvidenceTable(np.arange(2), np.arange(3), np.zeros(3), np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError):  # records that the starts do not cover
        EvidenceTable(
            table.left,
            table.right,
            table.score,
            table.shorter,
            table.records[:-1],
            table.record_starts,
        )


def test_concat_ranges_matches_a_loop() -> None:
    begins, ends = np.array([3, 0, 7, 7]), np.array([5, 0, 10, 8])
    index, starts = concat_ranges(begins, ends)
    assert index.tolist() == [3, 4, 7, 8, 9, 7]
    assert starts.tolist() == [0, 2, 2, 5, 6]


def test_evidence_table_saves_and_loads_with_extra_arrays(tmp_path) -> None:
    table = EvidenceTable.of(
        [
            PairEvidence(0, 2, 0.75, (AlignedPair(0, 1, 0.5, 4.0, 0.9),), 3),
            PairEvidence(1, 2, 0.1, (), 5),
        ]
    )
    path = tmp_path / "evidence.npz"
    with path.open("wb") as handle:
        table.save(handle, doc_ids=np.array(["a", "b", "c"]))
    loaded, extra = EvidenceTable.load(path)
    assert loaded == table
    assert extra["doc_ids"].tolist() == ["a", "b", "c"]
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        EvidenceTable.load(path)


@pytest.mark.parametrize("seed", range(5))
def test_sorted_unique_is_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 10 ** (seed + 1), size=int(rng.integers(0, 500)))
    np.testing.assert_array_equal(sorted_unique(values), np.unique(values))
    assert sorted_unique(values).dtype == np.unique(values).dtype
    np.testing.assert_array_equal(sorted_unique(values.reshape(-1, 1)), np.unique(values))
