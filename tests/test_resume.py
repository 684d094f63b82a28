"""``kill -9`` in the middle of a stage, run again: the same bytes, finished shards not redone.

A generated corpus (``bench/pipeline_scale.py``'s generator, its stand-in
encoder: enough sentences and candidate pairs for many shards, in seconds)
is run once to the end for reference. Then, for each stage that keeps shards
as it goes, ``dedup run`` is started on an empty vector cache and killed
with SIGKILL as soon as a randomly drawn number of that stage's shards are on
disk (embed: vector shards of the embedding cache; align: the chunks kept by
:class:`dedup.engines.checkpoint.CheckpointEngine`); the re-run must write
every output file but run.json byte for byte as the reference, and must
count the shards it did not redo.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.caches import cache_without_vectors

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("assignments.csv", "clusters.json", "skipped.csv", "report.md", "report.html")


@pytest.fixture(scope="module")
def generated(dedup_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2,500-document generated corpus and the stand-in model's folder."""
    sys.path.insert(0, str(REPO / "bench"))
    from pipeline_scale import generate, standin_model

    folder = tmp_path_factory.mktemp("generated")
    return generate(2500, folder, 16, 0.5, 0), standin_model(dedup_cache)


def _command(corpus: Path, model: Path, cache: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-c", "from dedup.cli import main; main()",
        "run", str(corpus), "--out", str(out), "--model", str(model), "--cache-dir", str(cache),
    ]  # fmt: skip


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in COMPARED}


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _kill_when(command: list[str], shards: Callable[[], int], wanted: int) -> int:
    """Start ``command``, SIGKILL it once ``shards()`` reaches ``wanted``; the count then."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        while process.poll() is None and shards() < wanted:
            time.sleep(0.01)
        if process.poll() is not None:
            stderr = process.stderr.read().decode()[-2000:] if process.stderr else ""
            pytest.fail(f"the run ended before {wanted} shards were written: {stderr}")
        process.send_signal(signal.SIGKILL)
        process.wait()
        return shards()
    finally:
        if process.poll() is None:
            process.kill()


@pytest.fixture(scope="module")
def reference(
    generated: tuple[Path, Path], dedup_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, bytes], dict[str, object]]:
    """The outputs and run.json of an uninterrupted run from an empty vector cache."""
    corpus, model = generated
    folder = tmp_path_factory.mktemp("reference")
    cache = cache_without_vectors(folder / "cache", dedup_cache)
    _run(_command(corpus, model, cache, folder / "out"))
    assert not list((cache / "runs").glob("resume-*")), "a finished run left its checkpoints"
    return _outputs(folder / "out"), json.loads((folder / "out" / "run.json").read_text())


@pytest.mark.slow
def test_killed_while_embedding_the_rerun_encodes_only_the_missing_shards(
    generated: tuple[Path, Path],
    reference: tuple[dict[str, bytes], dict[str, object]],
    dedup_cache: Path,
    tmp_path: Path,
) -> None:
    corpus, model = generated
    expected, expected_run = reference
    cache = cache_without_vectors(tmp_path / "cache", dedup_cache)
    command = _command(corpus, model, cache, tmp_path / "out")
    total = int(expected_run["summary"]["sentences_encoded"])  # type: ignore[index]
    shards = (total + 2047) // 2048
    assert shards >= 4, "too few shards to kill a run in the middle of embedding"
    wanted = random.Random(16).randint(1, shards - 2)
    kept = _kill_when(command, lambda: len(list(cache.glob("embeddings/*/*.keys.npy"))), wanted)
    assert 0 < kept < shards
    _run(command)
    assert _outputs(tmp_path / "out") == expected
    rerun = json.loads((tmp_path / "out" / "run.json").read_text())
    encoded = rerun["summary"]["sentences_encoded"]
    assert encoded <= total - kept * 2048  # the shards on disk were not encoded again


@pytest.mark.slow
def test_killed_while_aligning_the_rerun_reads_back_the_finished_chunks(
    generated: tuple[Path, Path],
    reference: tuple[dict[str, bytes], dict[str, object]],
    dedup_cache: Path,
    tmp_path: Path,
) -> None:
    corpus, model = generated
    expected, expected_run = reference
    cache = cache_without_vectors(tmp_path / "cache", dedup_cache)
    command = _command(corpus, model, cache, tmp_path / "out")
    pairs = int(expected_run["stages"]["align"]["items"])  # type: ignore[index]
    chunks = pairs // 4096
    assert chunks >= 4, "too few chunks to kill a run in the middle of aligning"
    # null-model chunks come first in the same folder: kill among the alignments
    wanted = random.Random(17).randint(chunks // 2, chunks - 1)
    kept = _kill_when(command, lambda: len(list(cache.glob("runs/resume-*/*.pkl"))), wanted)
    assert kept >= wanted
    done = _run(command)
    assert _outputs(tmp_path / "out") == expected
    assert "chunks already computed" in done.stderr
    rerun = json.loads((tmp_path / "out" / "run.json").read_text())
    assert rerun["summary"]["sentences_encoded"] == 0  # every vector was cached before the kill
    assert 0 < rerun["stages"]["align"]["cached"] < pairs
    assert not list((cache / "runs").glob("resume-*")), "a finished run left its checkpoints"
