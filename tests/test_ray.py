"""The Ray engine gives the bytes the local engine gives (datasketch's GPU == CPU test, for Ray).

Ray starts once for the module (a local instance, 2 CPUs) and is shut down at
the end; every test that needs it is marked slow and skipped when ray is not
installed (``pip install 'dedup[ray]'``). The tests without Ray check the local
engine's contract and the one-line error when ray is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from dedup import PipelineConfig, run, write_report
from dedup.cli import main
from dedup.engines import LocalEngine
from tests.caches import cache_without_vectors

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
NTREX = REPO / "bench" / "data" / "ntrex-dev" / "corpus.jsonl"
OUTPUTS = ("assignments.csv", "clusters.json")


def _outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def _run_to(corpus: Path, cache: Path, out: Path, engine: Any = None) -> tuple[Any, dict]:
    # links recomputed: otherwise a second run of the same corpus reads them from the
    # link cache and the engine under test aligns nothing
    result = run(corpus, PipelineConfig(cache_dir=cache, reuse_links=False), engine=engine)
    write_report(result, out)
    return result, _outputs(out)


def _shards(cache: Path) -> dict[bytes, bytes]:
    """Every cached vector (float16 bytes) by its key."""
    out: dict[bytes, bytes] = {}
    for keys_path in (cache / "embeddings").rglob("*.keys.npy"):
        vecs = np.load(keys_path.with_name(keys_path.name.replace(".keys.", ".vecs.")))
        for key, vec in zip(np.load(keys_path), vecs, strict=True):
            out[key.tobytes()] = vec.tobytes()
    return out


# --- without Ray ------------------------------------------------------------------


def _tagged(chunk: list[int], shared: str) -> list[tuple[str, int]]:
    return [(shared, 2 * item) for item in chunk]


def test_local_engine_keeps_order_passes_shared_and_honours_chunk_size() -> None:
    engine = LocalEngine(chunk_size=3)
    items = list(range(10))
    assert engine.map_chunks(_tagged, items, desc="x", shared="s") == [("s", 2 * i) for i in items]
    sizes = [len(c) for c in engine.imap_chunks(_tagged, items, desc="x", shared="s")]
    assert sizes == [3, 3, 3, 1]
    sizes = [len(c) for c in engine.imap_chunks(_tagged, items, desc="x", chunk_size=4)]
    assert sizes == [4, 4, 2]
    assert engine.map_chunks(_tagged, [], desc="x") == []


def test_engine_ray_without_ray_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    monkeypatch.delitem(sys.modules, "dedup.engines.ray", raising=False)
    result = CliRunner().invoke(
        main, ["run", str(SEEDS), "--out", str(tmp_path / "out"), "--engine", "ray"]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "pip install 'dedup[ray]'" in lines[0]


def test_ray_address_without_engine_ray_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(SEEDS), "--out", str(tmp_path / "out"), "--ray-address", "h:6379"]
    )
    assert result.exit_code == 2 and "--ray-address needs --engine ray" in result.output
    result = CliRunner().invoke(
        main, ["run", str(SEEDS), "--out", str(tmp_path / "out"), "--ray-shared-cache"]
    )
    assert result.exit_code == 2 and "--ray-shared-cache needs --engine ray" in result.output


# --- with Ray ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[Any]:
    """One local Ray instance (2 CPUs) for the module, shut down at the end."""
    ray = pytest.importorskip("ray")
    import logging

    from ray import cloudpickle

    from dedup.engines.ray import RayEngine

    # workers cannot import this test module: ship its functions by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield RayEngine(chunk_size=64)  # joins the instance above
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


class _CountsPickling:
    """A shared object that counts how often the driver pickles it."""

    pickled = 0

    def __init__(self, payload: np.ndarray) -> None:
        self.payload = payload

    def __getstate__(self) -> dict[str, Any]:
        type(self).pickled += 1
        return {"payload": self.payload}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.payload = state["payload"]


def _offset_by_payload(chunk: np.ndarray, shared: _CountsPickling) -> list[int]:
    return [int(x + shared.payload.sum()) for x in chunk]


def _offset_and_scale(chunk: np.ndarray, shared: tuple[_CountsPickling, int]) -> list[int]:
    payload, factor = shared
    return [factor * int(x + payload.payload.sum()) for x in chunk]


@pytest.mark.slow
def test_ray_engine_keeps_order_and_ships_shared_once(ray_engine: Any) -> None:
    shared = _CountsPickling(np.ones(100_000))
    items = np.arange(1000)
    _CountsPickling.pickled = 0
    got = ray_engine.map_chunks(_offset_by_payload, items, desc="x", shared=shared, chunk_size=7)
    assert got == [int(x) + 100_000 for x in items]  # 143 chunks, in order
    assert _CountsPickling.pickled == 1
    # the next call shares the same object again (in a tuple): it is not put again
    got = ray_engine.map_chunks(_offset_and_scale, items, desc="x", shared=(shared, 3))
    assert got == [3 * (int(x) + 100_000) for x in items]
    assert _CountsPickling.pickled == 1
    assert ray_engine.map_chunks(_offset_by_payload, items[:0], desc="x", shared=shared) == []


@pytest.mark.slow
@pytest.mark.parametrize("corpus", [SEEDS, NTREX], ids=["seeds", "ntrex-dev"])
def test_ray_output_is_byte_identical_warm_cache(
    corpus: Path, ray_engine: Any, dedup_cache: Path, tmp_path: Path
) -> None:
    local, local_bytes = _run_to(corpus, dedup_cache, tmp_path / "local")
    distributed, ray_bytes = _run_to(corpus, dedup_cache, tmp_path / "ray", ray_engine)
    assert distributed.encoded_sentences == 0  # the local run left every vector cached
    assert ray_bytes == local_bytes
    assert len(distributed.evidence) == len(local.evidence) > 0


@pytest.mark.slow
def test_ray_with_shared_files_reads_vectors_by_path_and_writes_the_same_bytes(
    ray_engine: Any, dedup_cache: Path, tmp_path: Path
) -> None:
    from dedup.engines.ray import RayEngine

    _, local_bytes = _run_to(NTREX, dedup_cache, tmp_path / "local")
    shared = RayEngine(chunk_size=64, shared_files=True)  # joins the module's instance
    assert shared.shares_files and not ray_engine.shares_files
    _, ray_bytes = _run_to(NTREX, dedup_cache, tmp_path / "ray", shared)
    assert ray_bytes == local_bytes


@pytest.mark.slow
def test_ray_output_is_byte_identical_cold_cache(
    ray_engine: Any, dedup_cache: Path, tmp_path: Path
) -> None:
    """Workers encode, the driver writes the shards: the same vectors and bytes as local."""
    _run_to(SEEDS, dedup_cache, tmp_path / "warm-up")  # builds the model once if needed
    local_cache = cache_without_vectors(tmp_path / "local-cache", dedup_cache)
    ray_cache = cache_without_vectors(tmp_path / "ray-cache", dedup_cache)
    local, local_bytes = _run_to(SEEDS, local_cache, tmp_path / "local")
    distributed, ray_bytes = _run_to(SEEDS, ray_cache, tmp_path / "ray", ray_engine)
    assert distributed.encoded_sentences == local.encoded_sentences > 0
    assert distributed.windowed_texts == local.windowed_texts
    assert _shards(ray_cache) == _shards(local_cache)
    assert ray_bytes == local_bytes


class _DieOnce:
    """A chunk function that kills its worker process the first time any chunk runs."""

    def __init__(self, func: Any, marker: str) -> None:
        self.func, self.marker = func, marker

    def __call__(self, chunk: Any, shared: Any) -> Any:
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return self.func(chunk, shared)
        os._exit(1)  # the worker dies mid-run; Ray runs the chunk again elsewhere


class _KillsOneAlignWorker:
    """The Ray engine, except that one align task's worker dies on its first attempt."""

    def __init__(self, inner: Any, marker: Path) -> None:
        self.inner, self.marker = inner, str(marker)
        self.shares_files = inner.shares_files

    def _wrap(self, func: Any, desc: str) -> Any:
        return _DieOnce(func, self.marker) if desc == "aligning" else func

    def imap_chunks(self, func: Any, items: Any, *, desc: str, **options: Any) -> Any:
        return self.inner.imap_chunks(self._wrap(func, desc), items, desc=desc, **options)

    def map_chunks(self, func: Any, items: Any, *, desc: str, **options: Any) -> Any:
        return self.inner.map_chunks(self._wrap(func, desc), items, desc=desc, **options)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_with_the_same_result(
    ray_engine: Any, dedup_cache: Path, tmp_path: Path
) -> None:
    _, local_bytes = _run_to(SEEDS, dedup_cache, tmp_path / "local")
    marker = tmp_path / "killed-once"
    engine = _KillsOneAlignWorker(ray_engine, marker)
    _, ray_bytes = _run_to(SEEDS, dedup_cache, tmp_path / "ray", engine)
    assert marker.exists(), "no worker was killed"
    assert ray_bytes == local_bytes


@pytest.mark.slow
def test_cli_engine_ray_writes_the_local_bytes(
    ray_engine: Any, dedup_cache: Path, tmp_path: Path
) -> None:
    outputs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        options = ["--out", str(out), "--cache-dir", str(dedup_cache), "--engine", engine]
        options += ["--recompute-links", "--quiet"]
        result = CliRunner().invoke(main, ["run", str(SEEDS), *options])
        assert result.exit_code == 0, result.output
        outputs[engine] = _outputs(out)
    assert outputs["ray"] == outputs["local"]


@pytest.mark.slow
def test_a_three_node_cluster_losing_a_node_mid_stage_writes_the_local_bytes(
    dedup_cache: Path, tmp_path: Path
) -> None:
    """``bench/ray_cluster.py``: three worker nodes of a ``ray.cluster_utils.Cluster``, each
    its own raylet and object store; the node running the first task of a stage is killed
    (not gracefully) while that task runs, and every output file but run.json keeps the
    bytes of the local engine's run (both from an empty vector cache)."""
    pytest.importorskip("ray")
    done = subprocess.run(
        [sys.executable, "bench/ray_cluster.py", str(SEEDS), "--kill-during",
         "encoding,aligning", "--work", str(tmp_path), "--model-cache", str(dedup_cache)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("ray nodes=")]
    assert len(lines) == 2, done.stdout
    for line, stage in zip(lines, ("encoding", "aligning"), strict=True):
        fields = dict(field.split("=") for field in line.split()[1:])
        assert fields["nodes"] == "3" and fields["kill_during"] == stage, line
        assert fields["identical"] == "True", done.stdout
