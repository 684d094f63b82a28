#!/usr/bin/env python3
"""How candidates + align + cluster grow with the corpus, from vectors on disk.

Writes a synthetic corpus of sentence vectors with planted clusters to a
float16 file per size, then, in a fresh process per size (so peak RSS is that
size's own), memory-maps it and runs the stages that follow encoding exactly
as ``dedup run`` does (:func:`dedup.api.link_documents`, then
:func:`dedup.stages.cluster.cluster_documents`). Prints time per stage, peak
RSS and the ratio of each to the smallest size, and saves a PNG of time and
RSS against documents.

    python bench/scale.py                          # 1k, 10k, 100k documents
    python bench/scale.py --sizes 1000,10000 --work /tmp/scale --plot scale.png

The synthetic corpus (``--seed``): ``--languages`` languages, each with its
own offset vector (a multilingual encoder's language signal, which centring
must remove); stories in ``--topics`` topics, each sentence a noisy copy of
its story's sentence meaning plus a shared topic component (same topic,
different story: the hard negatives); each story in 1-6 languages; documents
of 8-32 sentences and 1 in 10 an excerpt of 2-6 consecutive sentences. The
figures are about cost; the planted clusters are scored too (pairwise F1), as
a check that the fast path still finds them, not as a quality claim: the
quality figures come from the real benchmarks (``bench/run_benchmarks.py``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 384


def make_corpus(n_docs: int, folder: Path, languages: int, topics: int, seed: int) -> None:
    """Write ``vectors.f16`` (memory-mappable), ``offsets.npy``, ``groups.npy``, ``truth.npy``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    language_offsets = rng.standard_normal((languages, DIM)) * 0.6 / np.sqrt(DIM)
    topic_centres = rng.standard_normal((topics, DIM)) / np.sqrt(DIM)
    lengths, groups, truth, plan = [], [], [], []
    story = 0
    while len(lengths) < n_docs:
        versions = min(int(rng.integers(1, 7)), languages, n_docs - len(lengths))
        full = int(rng.integers(8, 33))
        for language in rng.choice(languages, size=versions, replace=False).tolist():
            if rng.random() < 0.1:  # an excerpt: a few consecutive sentences
                size = int(rng.integers(2, 7))
                first = int(rng.integers(0, full - size + 1))
            else:
                size, first = full, 0
            lengths.append(size)
            groups.append(language)
            truth.append(story)
            plan.append((story, first))
        story += 1
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    from dedup.stages.embed import VectorFile

    vectors = VectorFile.create(folder / "vectors.npy", int(offsets[-1]), DIM)
    story_topic = rng.integers(0, topics, size=story)
    story_seed = rng.integers(0, 2**63, size=story)
    for doc, ((story_id, first), language) in enumerate(zip(plan, groups, strict=True)):
        meaning_rng = np.random.default_rng(int(story_seed[story_id]))
        meanings = meaning_rng.standard_normal((first + lengths[doc], DIM))[first:] / np.sqrt(DIM)
        rows = (
            meanings
            + 0.4 * topic_centres[story_topic[story_id]]
            + language_offsets[language]
            + rng.standard_normal(meanings.shape) * 0.8 / np.sqrt(DIM)
        )
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        vectors[offsets[doc] : offsets[doc + 1]] = rows
    vectors.close()
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "groups.npy", np.array(groups, dtype=np.int64))
    np.save(folder / "truth.npy", np.array(truth, dtype=np.int64))


def pairwise_f1(labels: np.ndarray, truth: np.ndarray) -> float:
    """Pairwise F1 of a clustering against planted clusters, by counting, not by pairs."""

    def same_pairs(*keys: np.ndarray) -> int:
        _, counts = np.unique(np.stack(keys, axis=1), axis=0, return_counts=True)
        return int((counts * (counts - 1) // 2).sum())

    found, planted, both = same_pairs(labels), same_pairs(truth), same_pairs(labels, truth)
    return 2 * both / (found + planted) if found + planted else 1.0


def measure(folder: Path) -> dict[str, float]:
    """Run candidates, align and cluster on one corpus; this process's figures."""
    from dedup import PipelineConfig
    from dedup.result import StageStats
    from dedup.stages.cluster import cluster_documents
    from dedup.stages.embed import VectorFile
    from dedup.stages.link import link_documents

    start = time.perf_counter()
    vectors = VectorFile(folder / "vectors.npy")  # read on demand, as dedup run does
    offsets, groups = np.load(folder / "offsets.npy"), np.load(folder / "groups.npy")
    config = PipelineConfig()
    stats: dict[str, StageStats] = {}
    usable = np.ones(len(vectors), dtype=bool)
    links = link_documents(vectors, offsets, usable, groups, None, config, stats=stats)
    begin = time.perf_counter()
    keys = [f"d{i:08d}" for i in range(len(groups))]
    labels = cluster_documents(
        keys, links.evidence, groups, config.cluster, doc_sentences=np.diff(offsets)
    )
    cluster_seconds = time.perf_counter() - begin
    return {
        "documents": len(groups),
        "sentences": len(vectors),
        "pairs": stats["candidates"].items,
        "candidates_s": stats["candidates"].seconds,
        "align_s": stats["align"].seconds,
        "cluster_s": cluster_seconds,
        "total_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "pairwise_f1": pairwise_f1(labels, np.load(folder / "truth.npy")),
    }


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = np.array([r["documents"] for r in rows])
    fig, (time_axis, rss_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (
        ("candidates_s", "candidates"),
        ("align_s", "align"),
        ("cluster_s", "cluster"),
        ("total_s", "total"),
    ):
        time_axis.loglog(docs, [r[key] for r in rows], marker="o", label=label)
    linear = rows[0]["total_s"] * docs / docs[0]
    time_axis.loglog(docs, linear, "k:", label="linear from the first size")
    time_axis.set(xlabel="documents", ylabel="seconds", title="time (cached vectors)")
    time_axis.legend()
    rss_axis.loglog(docs, [r["peak_rss_mb"] for r in rows], marker="o")
    rss_axis.axhline(4096, color="r", linestyle="--", label="4 GB")
    rss_axis.set(xlabel="documents", ylabel="peak RSS (MB)", title="peak memory")
    rss_axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1000,10000,100000", help="documents per run, comma-separated"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/dedup-scale"), help="where corpora are written"
    )
    parser.add_argument("--plot", default="bench/scale.png", help="PNG to write ('' for none)")
    parser.add_argument("--languages", type=int, default=12)
    parser.add_argument("--topics", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one size, in a child
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        folder = args.work / f"{size}-{args.languages}-{args.topics}-{args.seed}"
        if not (folder / "truth.npy").exists():
            make_corpus(size, folder, args.languages, args.topics, args.seed)
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(folder)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        row, first = rows[-1], rows[0]
        growth = row["documents"] / first["documents"]
        print(
            f"{row['documents']:>8,} docs {row['sentences']:>10,} sentences "
            f"{row['pairs']:>10,} pairs | candidates {row['candidates_s']:6.1f}s "
            f"align {row['align_s']:6.1f}s cluster {row['cluster_s']:5.1f}s "
            f"total {row['total_s']:6.1f}s (x{row['total_s'] / first['total_s']:.1f} "
            f"for x{growth:.0f} docs) | peak RSS {row['peak_rss_mb']:6.0f} MB "
            f"(x{row['peak_rss_mb'] / first['peak_rss_mb']:.1f}) | "
            f"planted-cluster pairwise F1 {row['pairwise_f1']:.3f}",
            flush=True,
        )
    if args.plot and len(rows) > 1:
        plot(rows, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
