#!/usr/bin/env python3
"""``dedup add`` against one ``dedup run``: agreement when a corpus arrives in batches, and cost.

    python bench/add_batches.py --agreement ntrex-dev,ntrex-wide,flores-dev,flores-many
    python bench/add_batches.py --cost bench/data/ntrex-dev/corpus.jsonl
    python bench/add_batches.py --cost-docs 100000

``--agreement SETS``: for each development set (``bench/data/<set>/``), one
``dedup run`` over the whole corpus, and the same corpus in ``--batches``
batches (records shuffled with ``--seed``): ``dedup run`` on the first, then
``dedup add`` of each other. Prints, per set, the pairwise F1 of the added
clusters against the one-shot clusters (agreement), and both against the
truth. The default model; every command shares one cache, so a sentence is
encoded once, as in a real archive.

``--cost CORPUS`` and ``--cost-docs N``: side by side in one run, the wall
time of a full ``dedup run`` from an empty cache (the model built already),
and of ``dedup add`` of ``--share`` of the documents (the last ones in id
order) to a state made by ``dedup run`` of the others (its cache kept: the
new documents' sentences are the only ones not cached). ``--cost CORPUS``
uses the default model; ``--cost-docs N`` the generated corpus and the
**stand-in encoder** of ``bench/pipeline_scale.py`` (static token
embeddings: no quality claim), named so in its output.

All figures are in-sample: these are the development sets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEDUP = str(Path(sys.executable).parent / "dedup")


def dedup(*args: str) -> float:
    """Run the ``dedup`` command; return its wall time. Exits on failure."""
    begin = time.perf_counter()
    done = subprocess.run(
        [DEDUP, *args, "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode:
        sys.exit(f"dedup {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - begin


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def agreement(sets: list[str], batches: int, seed: int, work: Path, cache: list[str]) -> None:
    from dedup.evaluation import evaluate, load_assignments, load_truth

    print(
        f"{batches} batches (seed {seed}) against one run; pairwise F1 (in-sample)\n"
        f"{'set':12s} {'docs':>5s} {'agreement':>9s} {'one-shot':>8s} {'added':>8s} "
        f"{'B3 one':>7s} {'B3 add':>7s}"
    )
    for name in sets:
        folder = REPO / "bench" / "data" / name
        records = read_jsonl(folder / "corpus.jsonl")
        truth = load_truth(folder / "truth.tsv")
        here = work / name
        shutil.rmtree(here, ignore_errors=True)
        dedup("run", str(folder / "corpus.jsonl"), "--out", str(here / "one"), *cache)
        random.Random(seed).shuffle(records)
        parts = [records[i::batches] for i in range(batches)]
        files = [write_jsonl(here / f"batch-{i}.jsonl", part) for i, part in enumerate(parts)]
        dedup("run", str(files[0]), "--out", str(here / "state"), *cache)
        for batch in files[1:]:
            dedup("add", str(batch), "--to", str(here / "state"), *cache)
        one = load_assignments(here / "one" / "assignments.csv")
        added = load_assignments(here / "state" / "assignments.csv")
        assert len(added) == len(one) == len(records), "a document was dropped"
        agree = evaluate(added, one).pairwise.f1
        one_q, add_q = evaluate(one, truth), evaluate(added, truth)
        print(
            f"{name:12s} {len(records):5d} {agree:9.3f} {one_q.pairwise.f1:8.3f} "
            f"{add_q.pairwise.f1:8.3f} {one_q.bcubed.f1:7.3f} {add_q.bcubed.f1:7.3f}"
        )


def cost(corpus: Path, share: float, work: Path, model: list[str], label: str) -> None:
    """Full run from an empty cache vs. adding ``share`` of the documents to a state."""
    records = sorted(read_jsonl(corpus), key=lambda r: str(r["id"]))
    n_new = max(1, round(len(records) * share))
    shutil.rmtree(work, ignore_errors=True)
    old = write_jsonl(work / "old.jsonl", records[:-n_new])
    new = write_jsonl(work / "new.jsonl", records[-n_new:])
    _share_models(work)
    full_s = dedup("run", str(corpus), "--out", str(work / "full"), "--cache-dir",
                   str(work / "cache-full"), *model)  # fmt: skip
    state_s = dedup("run", str(old), "--out", str(work / "state"), "--cache-dir",
                    str(work / "cache-add"), *model)  # fmt: skip
    add_s = dedup("add", str(new), "--to", str(work / "state"), "--cache-dir",
                  str(work / "cache-add"))  # fmt: skip
    print(
        f"{label}: {len(records)} documents; full run {full_s:.1f} s (empty cache); state of "
        f"{len(records) - n_new} made in {state_s:.1f} s; add {n_new} ({share:.0%}) "
        f"{add_s:.1f} s = {add_s / full_s:.1%} of the full run"
    )


def _share_models(work: Path) -> None:
    """Both caches start with the built models only (the default model's conversion is not
    part of either cost), linked from dedup's own cache."""
    from dedup.encoding import cache_root

    for name in ("cache-full", "cache-add"):
        models = work / name / "models"
        models.mkdir(parents=True, exist_ok=True)
        for built in (cache_root(None) / "models").iterdir():
            if built.is_dir() and not (models / built.name).exists():
                (models / built.name).symlink_to(built)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agreement", type=lambda text: text.split(","), metavar="SETS")
    parser.add_argument("--cost", type=Path, metavar="CORPUS")
    parser.add_argument("--cost-docs", type=int, metavar="N")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--share", type=float, default=0.01, help="share of documents added")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dedup-add-batches"))
    parser.add_argument("--cache-dir", type=Path, help="for --agreement (default: dedup's)")
    args = parser.parse_args()
    if args.agreement:
        cache = ["--cache-dir", str(args.cache_dir)] if args.cache_dir else []
        agreement(args.agreement, args.batches, args.seed, args.work / "agreement", cache)
    if args.cost:
        cost(args.cost, args.share, args.work / "cost", [], f"{args.cost} (default model)")
    if args.cost_docs:
        sys.path.insert(0, str(REPO / "bench"))
        from pipeline_scale import STANDIN, generate, standin_model

        from dedup.encoding import cache_root

        model = standin_model(cache_root(None))
        folder = args.work / f"generated-{args.cost_docs}"
        corpus = generate(args.cost_docs, folder, languages=16, shared=0.5, seed=args.seed)
        label = f"{args.cost_docs} generated documents, encoder {STANDIN} (stand-in)"
        cost(corpus, args.share, args.work / "cost-generated", ["--model", str(model)], label)


if __name__ == "__main__":
    main()
