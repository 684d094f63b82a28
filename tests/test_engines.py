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
    results = []
    for processes in (1, 2):
        engine = LocalEngine(processes=processes)  # ~7,000 pairs: two chunks of 4,096
        links = link_documents(
            vectors, offsets, usable, groups, None, PipelineConfig(), engine=engine
        )
        results.append(links.evidence)
    assert len(results[0]) > 4096  # more than one chunk: the workers really split them
    assert results[0] == results[1]
