"""dedup eval: metrics that agree with the reference scorer, missing documents reported, sweeps."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dedup.cli import main
from dedup.config import PipelineConfig
from dedup.evaluation import (
    EvaluationInputError,
    baseline_sweep,
    evaluate,
    load_assignments,
    load_truth,
    recluster,
    threshold_range,
)
from dedup.records import PairEvidence
from dedup.stages.cluster import ClusterConfig

REPO = Path(__file__).resolve().parents[1]
SCORER = REPO / "bench" / "score_reference.py"
NTREX = REPO / "bench" / "data" / "ntrex-dev"

# truth: three stories and a singleton
TRUTH = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C", "d1": "D"}
# imperfect: a3 split off, b and c merged; c2 missing from the assignments; x9 not in the truth
PREDICTED = {"a1": "1", "a2": "1", "a3": "2", "b1": "3", "b2": "3", "c1": "3", "d1": "4", "x9": "1"}


def _write_truth(path: Path, truth: dict[str, str]) -> Path:
    path.write_text("id\tstory\n" + "".join(f"{k}\t{v}\n" for k, v in truth.items()))
    return path


def _write_assignments(path: Path, predicted: dict[str, str], sep: str = ",") -> Path:
    header = "doc_id,cluster_id,lang" if sep == "," else "id\tcluster"
    rows = [f"{k},{v},en" if sep == "," else f"{k}\t{v}" for k, v in predicted.items()]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def reference(assignments: Path, truth: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(SCORER), str(assignments), str(truth)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p = re.search(
        r"pairwise P=([\d.]+) R=([\d.]+) \| bcubed P=([\d.]+) R=([\d.]+) F1=([\d.]+)", out
    )
    f1 = re.search(r"pairwise_f1=([\d.]+)", out)
    missing = re.search(r"missing=(\d+)", out)
    assert p and f1 and missing, out
    values = [float(x) for x in p.groups()]
    return dict(
        zip(["pP", "pR", "bP", "bR", "bF1"], values, strict=True),
        pF1=float(f1[1]),
        missing=int(missing[1]),
    )


def ours(output: str) -> dict[str, float]:
    p = re.search(r"pairwise  P=([\d.]+)  R=([\d.]+)  F1=([\d.]+)", output)
    b = re.search(r"B-cubed   P=([\d.]+)  R=([\d.]+)  F1=([\d.]+)", output)
    missing = re.search(r"missing from the assignments: (\d+)", output)
    assert p and b and missing, output
    return {
        "pP": float(p[1]),
        "pR": float(p[2]),
        "pF1": float(p[3]),
        "bP": float(b[1]),
        "bR": float(b[2]),
        "bF1": float(b[3]),
        "missing": int(missing[1]),
    }


def _agree(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1.5e-4), (key, a, b)


# --- metrics -------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    e = evaluate(PREDICTED, TRUTH)
    # predicted pairs among truth docs: a1a2, b1b2, b1c1, b2c1 (c2 alone, x9 ignored) = 4
    # true pairs: a (3) + b (1) + c (1) = 5; true positives: a1a2, b1b2 = 2
    assert (e.true_positives, e.false_positives, e.false_negatives) == (2, 2, 3)
    assert e.pairwise.precision == pytest.approx(2 / 4)
    assert e.pairwise.recall == pytest.approx(2 / 5)
    assert e.pairwise.f1 == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    # B-cubed precision per doc: a1 a2 1, a3 1, b1 b2 2/3, c1 1/3, c2 1, d1 1
    assert e.bcubed.precision == pytest.approx((1 + 1 + 1 + 2 / 3 + 2 / 3 + 1 / 3 + 1 + 1) / 8)
    # recall per doc: a1 a2 2/3, a3 1/3, b1 b2 1, c1 1/2, c2 1/2, d1 1
    assert e.bcubed.recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1 + 0.5 + 0.5 + 1) / 8)
    assert e.missing == ("c2",) and e.unlabelled == ("x9",)
    assert e.documents == 8


def test_perfect_and_degenerate_clusterings() -> None:
    perfect = evaluate(dict(TRUTH), TRUTH)
    assert perfect.pairwise.f1 == perfect.bcubed.f1 == 1.0
    nothing = evaluate({}, TRUTH)  # all missing: every document a singleton
    assert nothing.pairwise.precision == 1.0 and nothing.pairwise.recall == 0.0
    assert nothing.bcubed.precision == 1.0 and len(nothing.missing) == len(TRUTH)
    one = evaluate(dict.fromkeys(TRUTH, "x"), TRUTH)
    assert one.pairwise.recall == 1.0 and one.bcubed.recall == 1.0
    with pytest.raises(EvaluationInputError):
        evaluate(PREDICTED, {})


def test_cluster_names_do_not_collide_with_missing_ids() -> None:
    # a predicted cluster named like a missing document must not absorb it
    e = evaluate({"a1": "a2"}, {"a1": "A", "a2": "A"})
    assert e.true_positives == 0 and e.missing == ("a2",)


# --- dedup eval agrees with the reference scorer ---------------------------------------------


@pytest.mark.parametrize("sep", [",", "\t"])
def test_eval_agrees_with_reference_scorer(tmp_path: Path, sep: str) -> None:
    truth = _write_truth(tmp_path / "truth.tsv", TRUTH)
    assignments = _write_assignments(
        tmp_path / ("a.csv" if sep == "," else "a.tsv"), PREDICTED, sep
    )
    result = CliRunner().invoke(main, ["eval", str(assignments), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    _agree(ours(result.output), reference(assignments, truth))
    assert "missing from the assignments: 1 (c2); scored as singletons" in result.output
    assert "not in the truth: 1 (x9); ignored" in result.output
    assert "scored 8 documents" in result.output


def test_eval_reads_clusters_json(tmp_path: Path) -> None:
    truth = _write_truth(tmp_path / "truth.tsv", TRUTH)
    groups: dict[str, list] = {}
    for doc, cluster in PREDICTED.items():
        groups.setdefault(cluster, []).append({"id": doc} if doc < "c" else doc)
    report = tmp_path / "clusters.json"
    report.write_text(
        json.dumps({"clusters": [{"id": k, "members": v} for k, v in groups.items()]})
    )
    assert load_assignments(report) == PREDICTED
    result = CliRunner().invoke(main, ["eval", str(report), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    _agree(ours(result.output), reference(report, truth))


@pytest.mark.parametrize("seed", range(5))
def test_eval_agrees_with_reference_on_perturbed_benchmark(tmp_path: Path, seed: int) -> None:
    """ntrex-dev's truth, damaged at random: merges, splits, missing and unknown ids."""
    truth_path = NTREX / "truth.tsv"
    truth = load_truth(truth_path)
    rng = random.Random(seed)
    ids = list(truth)
    predicted = {doc: truth[doc] for doc in ids}
    stories = sorted(set(truth.values()))
    for doc in rng.sample(ids, 40):
        predicted[doc] = rng.choice([*stories, f"new-{rng.randrange(10)}"])
    for doc in rng.sample(ids, 7):
        del predicted[doc]
    for k in range(5):
        predicted[f"unknown-{k}"] = rng.choice(stories)
    assignments = _write_assignments(tmp_path / "a.csv", predicted)
    result = CliRunner().invoke(main, ["eval", str(assignments), "--truth", str(truth_path)])
    assert result.exit_code == 0, result.output
    _agree(ours(result.output), reference(assignments, truth_path))
    assert "missing from the assignments: 7 (" in result.output
    assert "not in the truth: 5 (unknown-" in result.output


def test_eval_errors_a_user_can_act_on(tmp_path: Path) -> None:
    truth = _write_truth(tmp_path / "truth.tsv", TRUTH)
    bad_truth = tmp_path / "bad.tsv"
    bad_truth.write_text("id\tstory\na1\tA\nno tab here\n")
    assignments = _write_assignments(tmp_path / "a.csv", PREDICTED)
    no_cluster = tmp_path / "n.csv"
    no_cluster.write_text("doc_id,lang\na1,en\n")
    twice = tmp_path / "t.csv"
    twice.write_text("id,cluster\na1,1\na1,2\n")
    runner = CliRunner()
    for args, message in (
        ([str(assignments), "--truth", str(bad_truth)], "bad.tsv:3: expected 'id<TAB>cluster'"),
        ([str(no_cluster), "--truth", str(truth)], "needs an id column"),
        ([str(twice), "--truth", str(truth)], "'a1' is assigned twice"),
        ([str(REPO / "seeds"), "--truth", str(truth)], "add --sweep"),
        ([str(tmp_path / "nope.csv"), "--truth", str(truth)], "cannot read"),
    ):
        result = runner.invoke(main, ["eval", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output, result.output
    result = runner.invoke(main, ["eval", "x", "--truth", str(truth), "--thresholds", "0.5:0.2:1"])
    assert result.exit_code == 2 and "STOP >= START" in result.output


def test_eval_help() -> None:
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    for word in ("--truth", "--sweep", "--thresholds", "--baseline-thresholds", "singleton"):
        assert word in result.output
    assert "dedup eval" in CliRunner().invoke(main, ["--help"]).output


# --- sweeps --------------------------------------------------------------------------------


def test_threshold_range() -> None:
    assert threshold_range("0.2:0.8:0.05") == tuple(round(0.2 + 0.05 * i, 6) for i in range(13))
    assert threshold_range("0.8:0.98:0.02")[-1] == 0.98
    assert threshold_range("0.5, 0.3,0.5") == (0.3, 0.5)
    for bad in ("0:0.5:0.1", "0.2:0.8", "0.5:0.2:0.1", "0.1:0.2:0", "1.5", "x"):
        with pytest.raises(ValueError):
            threshold_range(bad)


def test_baseline_sweep_is_connected_components() -> None:
    angles = np.array([0.0, 0.1, 0.25, 1.2, 1.3, 3.0])  # cosines of neighbours 0.995, 0.989
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 3  # not normalised
    ids = [f"d{i}" for i in range(6)]
    truth = {"d0": "A", "d1": "A", "d2": "A", "d3": "B", "d4": "B", "d5": "C"}
    rows = baseline_sweep(ids, vectors, truth, [0.999, 0.99, 0.98, 0.5])
    assert [r.threshold for r in rows] == [0.5, 0.98, 0.99, 0.999]
    assert [r.clusters for r in rows] == [2, 3, 4, 6]
    assert rows[1].evaluation.pairwise.f1 == 1.0  # d0-d1-d2 chained, d3-d4, d5
    assert rows[0].evaluation.pairwise.precision < 1.0  # 0.5 joins everything but d5


class _Run:
    """The fields of a RunResult that recluster reads."""

    def __init__(self, ids, evidence, groups, primary_of):
        self.documents = [type("Doc", (), {"id": i})() for i in ids]
        self.ids = list(ids)
        self.evidence = evidence
        self.doc_groups = np.array(groups)
        self.primary_of = np.array(primary_of)
        # the linkage alone (d4 would be adopted at 0.5: tests/stages/test_cluster.py)
        self.config = PipelineConfig(cluster=ClusterConfig(orphan_share=0))
        # three usable sentences a document (adoption weighs scores by length)
        self.segmented = [type("Seg", (), {"sentences": ("s",) * 3})() for _ in ids]
        self.usable = np.ones(3 * len(ids), dtype=bool)


def test_recluster_joins_copies_to_their_primary() -> None:
    # d0 (en) - d2 (de) aligned at 0.6, both to d4 at 0.45; d1 is a copy of d0, d3 of d4
    evidence = [
        PairEvidence(0, 2, 0.6, (), 3),
        PairEvidence(2, 4, 0.45, (), 3),
        PairEvidence(0, 4, 0.45, (), 3),
    ]
    run = _Run(["d0", "d1", "d2", "d3", "d4"], evidence, [0, 0, 1, 2, 2], [0, 0, 2, 4, 4])
    high = recluster(run, 0.5)
    assert high[0] == high[1] == high[2] and high[3] == high[4] != high[0]
    low = recluster(run, 0.25)
    assert len(set(low.tolist())) == 1


@pytest.mark.slow
def test_sweep_on_seeds_matches_a_plain_run(tmp_path: Path, dedup_cache: Path) -> None:
    runner = CliRunner()
    seeds, truth = REPO / "seeds", REPO / "seeds" / "truth.tsv"
    out = tmp_path / "out"
    plain = runner.invoke(
        main, ["run", str(seeds), "--out", str(out), "--cache-dir", str(dedup_cache), "--quiet"]
    )
    assert plain.exit_code == 0, plain.output
    scored = runner.invoke(main, ["eval", str(out / "assignments.csv"), "--truth", str(truth)])
    assert scored.exit_code == 0, scored.output
    expected = ours(scored.output)
    _agree(expected, reference(out / "assignments.csv", truth))

    sweep = runner.invoke(
        main,
        [
            *("eval", str(seeds), "--truth", str(truth), "--sweep"),
            *("--cache-dir", str(dedup_cache), "--quiet", "--thresholds", "0.2:0.8:0.1"),
        ],
    )
    assert sweep.exit_code == 0, sweep.output
    text = sweep.output
    assert "dedup: in-order sentence alignment" in text and "baseline: one mean vector" in text
    prf = r"\s+([\d.]+) ([\d.]+) ([\d.]+)"
    rows = re.findall(rf"^([* ])\s+([\d.]+)\s+(\d+) \|{prf} \|{prf}$", text, re.M)
    ours_rows = rows[: len(rows) - len(threshold_range("0.8:0.99:0.01"))]
    # 0.2..0.8 by 0.1 plus the default 0.45, marked
    assert [float(r[1]) for r in ours_rows] == [0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8]
    (default,) = [r for r in ours_rows if r[0] == "*"]
    assert float(default[1]) == 0.45
    got = dict(zip(["pP", "pR", "pF1", "bP", "bR", "bF1"], map(float, default[3:]), strict=True))
    _agree({**got, "missing": 0}, expected)
    clusters = {row["cluster_id"] for row in _csv_rows(out / "assignments.csv")}
    assert int(default[2]) == len(clusters)
    assert len(rows) - len(ours_rows) == 20  # the baseline's cosine rows
    assert "missing from the run: 0" in text


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
