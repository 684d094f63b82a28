"""The local engine gives the same results in forked worker processes as in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dedup import PipelineConfig
from dedup.engines import LocalEngine
from dedup.stages.embed import VectorFile
from dedup.stages.link import link_documents

REPO = Path(__file__).resolve().parents[1]


def _scaled(chunk: list[int], shared: dict[str, int]) -> list[int]:
    return [item * shared["factor"] for item in chunk]


def test_forked_workers_return_every_chunk_in_order() -> None:
    items = list(range(103))
    engine = LocalEngine(chunk_size=10, processes=2)
    assert engine.map_chunks(_scaled, items, desc="x", shared={"factor": 3}) == [
        3 * i for i in items
    ]


def test_processes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LocalEngine(processes=0)


def test_link_documents_is_the_same_in_one_or_two_processes(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from scale import make_corpus

    make_corpus(300, tmp_path, languages=4, topics=5, seed=3)
    vectors = VectorFile(tmp_path / "vectors.npy")
    offsets, groups = np.load(tmp_path / "offsets.npy"), np.load(tmp_path / "groups.npy")
    usable = np.ones(len(vectors), dtype=bool)
    kept = tmp_path / "kept"
    kept.mkdir()
    results = []
    # in memory, then with the null terms in unnamed files the forked workers inherit
    for processes, folder in ((1, None), (2, None), (2, kept)):
        engine = LocalEngine(processes=processes)  # ~7,000 pairs: two chunks of 4,096
        links = link_documents(
            vectors, offsets, usable, groups, None, PipelineConfig(), engine=engine, folder=folder
        )
        results.append(links.evidence)
    assert len(results[0]) > 4096  # more than one chunk: the workers really split them
    assert results[0] == results[1] == results[2]


def _pair_sums(chunk: np.ndarray, _shared: None) -> list[int]:
    return chunk.sum(axis=1).tolist()


@pytest.mark.parametrize("processes", [1, 2])
def test_permuted_items_give_what_the_reordered_array_gives_through_a_checkpoint(
    tmp_path: Path, processes: int
) -> None:
    from dedup.engines import Permuted
    from dedup.engines.checkpoint import CheckpointEngine

    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 1_000, (1_000, 2))
    order = rng.permutation(1_000)
    engine = CheckpointEngine(LocalEngine(processes=processes), tmp_path / f"chunks{processes}")
    expected = pairs[order].sum(axis=1).tolist()
    for _ in range(2):  # computed, then read back
        got = engine.map_chunks(_pair_sums, Permuted(pairs, order), desc="p", chunk_size=64)
        assert got == expected
    assert engine.computed == {"p": 1_000} and engine.reused == {"p": 1_000}
    with pytest.raises(TypeError):
        Permuted(pairs, order)[3]


def _squares(chunk: list[int], calls: list[int]) -> list[int]:
    calls.append(len(chunk))
    return [x * x for x in chunk]


def test_checkpoint_engine_reads_back_finished_chunks_and_computes_the_rest(
    tmp_path: Path,
) -> None:
    from dedup.engines.checkpoint import CheckpointEngine

    items = np.arange(10)
    calls: list[int] = []
    first = CheckpointEngine(LocalEngine(processes=1), tmp_path / "chunks")
    assert first.map_chunks(_squares, items, desc="sq", shared=calls, chunk_size=3) == [
        x * x for x in items
    ]
    assert calls == [3, 3, 3, 1] and first.computed == {"sq": 10}
    # a run killed after two of four chunks: their files are all that is left
    files = sorted((tmp_path / "chunks").glob("*.pkl"), key=lambda p: p.stat().st_mtime_ns)
    for path in files[2:]:
        path.unlink()
    calls.clear()
    again = CheckpointEngine(LocalEngine(processes=1), tmp_path / "chunks", log=print)
    assert again.map_chunks(_squares, items, desc="sq", shared=calls, chunk_size=3) == [
        x * x for x in items
    ]
    assert calls == [3, 1] and again.reused == {"sq": 6} and again.computed == {"sq": 4}
    # another description or other items are other chunks
    calls.clear()
    again.map_chunks(_squares, items, desc="other", shared=calls, chunk_size=3)
    assert calls == [3, 3, 3, 1]


def test_resume_folder_is_locked_while_used_and_swept_by_prune_when_stale(
    tmp_path: Path,
) -> None:
    from dedup.cache import finished, prune, resume_folder

    with resume_folder(tmp_path, "abc" * 20) as folder:
        assert folder is not None and folder.name == "resume-" + ("abc" * 20)[:32]
        with resume_folder(tmp_path, "abc" * 20) as second:
            assert second is None  # held by the first
        assert prune(tmp_path).removed == []  # a live run's folder stays
        (folder / "chunk.pkl").write_bytes(b"x")
    assert [path for path, _ in prune(tmp_path).removed] == [folder]  # a killed run's
    with resume_folder(tmp_path, "def") as folder:
        assert folder is not None
        finished(folder)
    assert not folder.exists()
