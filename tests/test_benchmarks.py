"""End to end on the development benchmarks: the quality bars of the pipeline issue.

One set of default settings for all three sets; scores come from the
independent reference scorer (``bench/score_reference.py``), not from our own
code. The first run of each set encodes ~3,000-3,700 sentences (2-4 minutes on
two cores); sentence vectors are cached in ``dedup_cache`` for the rest of
the session.

The tool never reads the ``truth.tsv`` files: only this test does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dedup import PipelineConfig, run, write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from run_benchmarks import score  # noqa: E402

BARS = {
    # set: least pairwise F1 and least B-cubed F1
    "ntrex-dev": 0.98,
    "ntrex-wide": 0.95,
    "flores-dev": 0.80,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BARS))
def test_benchmark_quality_bar(name: str, tmp_path: Path, dedup_cache: Path) -> None:
    data = REPO / "bench" / "data" / name
    result = run(data / "corpus.jsonl", PipelineConfig(cache_dir=dedup_cache))
    write_report(result, tmp_path)
    scores = score(tmp_path / "assignments.csv", data / "truth.tsv")
    print(name, scores)
    assert scores["pairwise_f1"] >= BARS[name], scores
    assert scores["bcubed_f1"] >= BARS[name], scores
    # every document of the corpus is assigned, none is skipped
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(result.documents) == len(lines) and not result.skipped
