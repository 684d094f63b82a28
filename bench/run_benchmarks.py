#!/usr/bin/env python3
"""Run dedup end to end on the development benchmarks and print quality and time per stage.

Usage::

    .venv/bin/python bench/run_benchmarks.py                  # all four sets
    .venv/bin/python bench/run_benchmarks.py ntrex-dev --out /tmp/bench
    .venv/bin/python bench/run_benchmarks.py --threshold 0.4  # another setting
    .venv/bin/python bench/run_benchmarks.py --cluster orphan_share=0  # adoption off

Each set is run with the same settings, written to ``--out/<set>/``, and
scored by the independent reference scorer (``bench/score_reference.py``:
pairwise and B-cubed precision, recall, F1). Sentence vectors are cached
(``--cache-dir`` or ``$DEDUP_CACHE``), so only the first run pays for encoding;
``embed`` time and sentences/s in the table are for that run's cache state.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = ("ntrex-dev", "ntrex-wide", "flores-dev", "flores-many")


def score(assignments: Path, truth: Path) -> dict[str, float]:
    """Pairwise P/R/F1 and B-cubed P/R/F1 as printed by the reference scorer."""
    out = subprocess.run(
        [sys.executable, str(HERE / "score_reference.py"), str(assignments), str(truth)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pairwise = re.search(r"pairwise P=([\d.]+) R=([\d.]+)", out)
    bcubed = re.search(r"bcubed P=([\d.]+) R=([\d.]+) F1=([\d.]+)", out)
    f1 = re.search(r"pairwise_f1=([\d.]+)", out)
    if not (pairwise and bcubed and f1):
        raise RuntimeError(f"unexpected scorer output:\n{out}")
    return {
        "pairwise_p": float(pairwise[1]),
        "pairwise_r": float(pairwise[2]),
        "pairwise_f1": float(f1[1]),
        "bcubed_p": float(bcubed[1]),
        "bcubed_r": float(bcubed[2]),
        "bcubed_f1": float(bcubed[3]),
    }


def run_set(name: str, out_root: Path, config) -> tuple[dict[str, float], object, float]:
    """Run one benchmark set; return its scores, the RunResult and the wall time."""
    from dedup import run, write_report

    data = HERE / "data" / name
    start = time.perf_counter()
    result = run(data / "corpus.jsonl", config)
    wall = time.perf_counter() - start
    out_dir = out_root / name
    write_report(result, out_dir)
    return score(out_dir / "assignments.csv", data / "truth.tsv"), result, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "sets", nargs="*", metavar="SET", help=f"any of {', '.join(SETS)} (default: all)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-out"), help="report folders")
    parser.add_argument(
        "--cache-dir", "--cache", dest="cache", type=Path, default=None, help="dedup cache folder"
    )
    parser.add_argument("--model", default=None, help="model name or path")
    parser.add_argument("--threshold", type=float, default=None, help="cluster threshold")
    parser.add_argument(
        "--cluster",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other ClusterConfig setting, e.g. --cluster orphan_share=0.35 (repeatable)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sets) - set(SETS))
    if unknown:
        parser.error(f"unknown set(s): {', '.join(unknown)}")

    from dedup import PipelineConfig
    from dedup.stages.cluster import ClusterConfig

    settings: dict[str, float] = {}
    for item in args.cluster:
        name, _, value = item.partition("=")
        if name not in ClusterConfig.__dataclass_fields__ or not value:
            parser.error(f"--cluster {item}: expected NAME=VALUE, NAME a ClusterConfig field")
        settings[name] = float(value)
    if args.threshold is not None:
        settings["threshold"] = args.threshold
    config = PipelineConfig(
        model=args.model, cache_dir=args.cache, cluster=ClusterConfig(**settings)
    )
    rows = []
    for name in args.sets or SETS:
        scores, result, wall = run_set(name, args.out, config)
        rows.append((name, scores, result, wall))
        print(f"\n== {name}: {len(result.documents)} documents, wall {wall:.1f}s")
        for stage, stats in result.stages.items():
            rate = f"{stats.rate:8.1f} {stats.unit}/s" if stats.items else ""
            print(f"   {stage:<11} {stats.seconds:7.2f}s  {stats.items:6d} {stats.unit:<10} {rate}")
        print(
            f"   newly encoded sentences: {result.encoded_sentences}, "
            f"windowed texts: {result.windowed_texts}"
        )
    print("\nset          pairwise P    R     F1  | B-cubed P    R     F1")
    for name, s, _, _ in rows:
        print(
            f"{name:<12} {s['pairwise_p']:.3f} {s['pairwise_r']:.3f} {s['pairwise_f1']:.3f}"
            f" | {s['bcubed_p']:.3f} {s['bcubed_r']:.3f} {s['bcubed_f1']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
