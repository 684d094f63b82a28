"""``kill -9`` in the middle of a stage, run again: the same bytes, finished shards not redone.

A generated corpus (``bench/pipeline_scale.py``'s generator, its stand-in
encoder: enough sentences and candidate pairs for many shards, in seconds)
is run once to the end for reference. Then ``dedup run`` is started on an
empty vector cache and killed with SIGKILL, and run again: the re-run must
write every output file but run.json byte for byte as the reference, and
must count the shards it did not redo. Two kinds of kill:

* at a shard boundary drawn at random, for the stages whose shards can be
  counted from outside (embed: vector shards of the embedding cache; align:
  the chunks kept by :class:`dedup.engines.checkpoint.CheckpointEngine`);
* at a random moment of each other stage (drawn within the reference run's
  time for that stage), the child marking when it enters each stage: what the
  killed run had finished (document-cache blocks, vector shards, align
  chunks, counted on disk after the kill) must be read back, not redone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dedup.stages.document_cache import FILE_NAME
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


#: ``dedup run`` with a file touched in MARKS as each stage starts (every stage
#: of :func:`dedup.run` is a ``timed`` block; the report is the CLI's last step),
#: and document-cache blocks of 250 documents, so a kill mid-stage has some to keep
_MARKING = """
import contextlib, sys
from pathlib import Path
import dedup.api, dedup.stages.link, dedup.stages.report, dedup.stages.document_cache
from dedup.result import timed
marks = Path(sys.argv.pop(1))
dedup.stages.document_cache.COMMIT_DOCUMENTS = 250

@contextlib.contextmanager
def marked(stats, name, unit):
    (marks / name).touch()
    with timed(stats, name, unit) as stage:
        yield stage

dedup.api.timed = dedup.stages.link.timed = marked
write_report = dedup.stages.report.write_report

def marked_report(result, out):
    (marks / "report").touch()
    return write_report(result, out)

dedup.stages.report.write_report = marked_report
from dedup.cli import main
main()
"""

#: the stages in the order a run enters them (the report last)
STAGES = (
    "ingest",
    "copies",
    "langid",
    "segment",
    "embed",
    "candidates",
    "align",
    "cluster",
    "report",
)


def _finished_shards(cache: Path) -> dict[str, int]:
    """What a killed run left on disk that a re-run may read back instead of redoing."""
    found = {"signatures": 0, "languages": 0, "sentences": 0}
    database = cache / "documents" / FILE_NAME
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as db:
            for table in found:
                found[table] = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    found["vector shards"] = len(list(cache.glob("embeddings/*/*.keys.npy")))
    found["align chunks"] = len(list(cache.glob("runs/resume-*/*.pkl")))
    return found


@pytest.mark.slow
# embed and align: killed at a random shard by the two tests above
@pytest.mark.parametrize("stage", [name for name in STAGES if name not in ("embed", "align")])
def test_killed_at_a_random_moment_of_a_stage_the_rerun_reads_back_what_was_done(
    stage: str,
    generated: tuple[Path, Path],
    reference: tuple[dict[str, bytes], dict[str, object]],
    dedup_cache: Path,
    tmp_path: Path,
) -> None:
    corpus, model = generated
    expected, expected_run = reference
    cache = cache_without_vectors(tmp_path / "cache", dedup_cache)
    marks = tmp_path / "marks"
    marks.mkdir()
    command = _command(corpus, model, cache, tmp_path / "out")
    marking = [command[0], "-c", _MARKING, str(marks), *command[3:]]
    seconds = {name: s["seconds"] for name, s in expected_run["stages"].items()}  # type: ignore[union-attr]
    # within the first half of the stage's reference time: the killed run may
    # be faster than the reference, and a kill is seen only at the next poll
    delay = random.Random(stage).uniform(0, seconds.get(stage, 0.5) / 2)
    entered = [0.0]

    def in_stage_long_enough() -> int:
        if not (marks / stage).exists():
            return 0
        entered[0] = entered[0] or time.monotonic()
        return int(time.monotonic() - entered[0] >= delay)

    _kill_when(marking, in_stage_long_enough, 1)
    reached = [name for name in STAGES if (marks / name).exists()]
    assert stage in reached
    # before the report nothing is written (the report writes one whole file at a
    # time); a kill meant for a short stage may land in a later one, so the test
    # is of what the killed run reached, not of the stage it was meant for
    assert "report" in reached or not (tmp_path / "out" / "assignments.csv").exists()
    kept = _finished_shards(cache)

    done = _run(command)
    assert _outputs(tmp_path / "out") == expected
    rerun = json.loads((tmp_path / "out" / "run.json").read_text())
    stages = rerun["stages"]
    # every block the killed run committed is a hit now (hits count documents,
    # rows distinct texts, so hits >= rows); a stage that had finished adds nothing
    after = _finished_shards(cache)
    for name, table in (
        ("copies", "signatures"),
        ("langid", "languages"),
        ("segment", "sentences"),
    ):
        assert stages[name]["cached"] >= kept[table], name
        if STAGES.index(stage) > STAGES.index(name):
            assert after[table] == kept[table], name
    total = int(expected_run["summary"]["sentences_encoded"])  # type: ignore[index]
    assert rerun["summary"]["sentences_encoded"] <= max(total - kept["vector shards"] * 2048, 0)
    if kept["align chunks"]:
        reused = sum(
            int(line.split(": ")[1].split(" of ")[0])
            for line in done.stderr.splitlines()
            if "chunks already computed" in line
        )
        assert reused == kept["align chunks"]
        assert stages["align"]["cached"] > 0
