#!/usr/bin/env python3
"""Peak memory and time of the cluster stage's adoption pass at a million documents.

    python bench/cluster_adopt_memory.py [--docs 1000000 --pairs 36000000]

``adopt_alone`` (``dedup/stages/cluster.py``) reads an entry per (document
alone, partner) of every scored pair. The million-document run of
``bench/pipeline_scale.py`` has ~36 million pairs and most documents alone, so
this is where its cluster stage peaked. Here: random pairs between documents
up to 5,000 apart, scores below the link threshold, 100,000 clusters of two
and every other document alone; prints the process's resident memory before
the call, its peak after, the seconds, and how many documents were adopted
(synthetic data: a check of memory and time, not of quality).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) // 1024
    return 0


def main() -> None:
    from dedup.records import EvidenceTable
    from dedup.stages.cluster import ClusterConfig, adopt_alone

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=36_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.docs
    left = rng.integers(0, n - 1, args.pairs)
    right = np.minimum(left + rng.integers(1, 5000, args.pairs), n - 1)
    keep = left < right
    count = int(keep.sum())
    table = EvidenceTable(
        left[keep], right[keep], rng.random(count) * 0.5, rng.integers(1, 20, count)
    )
    del left, right, keep
    owner = np.arange(n)
    pairs_of_two = min(n, 300_000)
    owner[1:pairs_of_two:3] = owner[0:pairs_of_two:3][: len(owner[1:pairs_of_two:3])]
    sentences = rng.integers(1, 20, n).astype(np.float64)
    groups = rng.integers(0, 16, n)
    keys = [f"d{i:07d}" for i in range(n)]
    gc.collect()
    before = _status("VmRSS")
    begin = time.perf_counter()
    _, adopted = adopt_alone(
        owner, table, sentences, groups, np.full(n, 0.5), keys, ClusterConfig()
    )
    peak = _status("VmHWM")
    print(
        f"pairs {len(table)}: RSS before {before} MB, peak {peak} MB (+{peak - before}), "
        f"{time.perf_counter() - begin:.1f} s, {len(adopted)} adopted"
    )


if __name__ == "__main__":
    main()
