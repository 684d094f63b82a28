#!/usr/bin/env python3
"""A multi-node Ray cluster on this machine gives the local engine's bytes, even when a node dies.

    python bench/ray_cluster.py seeds/
    python bench/ray_cluster.py bench/data/ntrex-dev/corpus.jsonl --kill-during encoding,aligning
    python bench/ray_cluster.py --docs 50000            # generated, stand-in encoder

Each run is ``dedup run`` in a child process from an empty cache (so the
workers encode every sentence, not only align): first with the local engine,
then once per ``--kill-during`` stage on a fresh Ray cluster of ``--nodes``
worker nodes (``ray.cluster_utils.Cluster``: a head node with no CPU, where
the driver's objects live, and worker nodes of one CPU each, every node its
own raylet and object store). In a Ray run the first task of the named stage
(an engine call's ``desc``: ``encoding``, ``null model``, ``aligning``,
``clustering``) stalls on its first attempt, and the driver kills that
task's node (``Cluster.remove_node``, not graceful: the raylet and every
worker on it, with the results they held); Ray runs the lost tasks again on
the nodes left. ``--kill-during none`` runs without a kill. This stalling
wrapper around one chunk function is the only change to the code path: the
engine, the stages and the report are ``dedup run``'s own.

Every output file except ``run.json`` (timings) is compared byte for byte
with the local run's. The driver's peak RSS of each run is printed beside
the local one (the Ray driver holds the vectors it ships; the local driver
shares a memory-mapped file with its workers).

A corpus path uses the default model; ``--docs N`` generates N documents
with ``bench/pipeline_scale.py``'s generator and runs its stand-in encoder
(named so in the output). ``--shared-cache`` runs Ray with ``--ray-shared-cache`` (the vectors go to
the workers as a file path; on one machine every node sees the same files).
Last line per Ray run: ``ray nodes=3 kill_during=... shared_cache=...
identical=True|False driver_peak_rss_mb=...
local_driver_peak_rss_mb=... wall_s=... local_wall_s=...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: files whose bytes must not depend on the engine (run.json holds timings)
COMPARED = (
    "assignments.csv",
    "assignments.parquet",
    "clusters.json",
    "skipped.csv",
    "report.html",
    "report.md",
    "kept.jsonl",
    "dropped.jsonl",
)
STAGES = ("none", "encoding", "null model", "aligning", "clustering")


class StallsFirstAttempt:
    """A chunk function whose very first call, cluster-wide, writes its node id and waits.

    A claim file created with ``O_EXCL`` (and never removed) makes exactly one attempt
    of one task stall; its retry on another node, and every other task, run ``func``
    as usual. The node id is written to ``marker`` once complete.
    """

    def __init__(self, func: Callable[..., Any], marker: str) -> None:
        self.func, self.marker = func, marker

    def __call__(self, chunk: Any, shared: Any) -> Any:
        import ray

        try:
            os.close(os.open(self.marker + ".claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return self.func(chunk, shared)
        Path(self.marker + ".tmp").write_text(ray.get_runtime_context().get_node_id())
        os.replace(self.marker + ".tmp", self.marker)
        time.sleep(600)  # the driver kills this node meanwhile
        raise RuntimeError("the stalled node was not killed")


def _kill_when_stalled(cluster: Any, marker: Path, killed: list[str]) -> None:
    """Wait for the stalled task's node id in ``marker``, then kill that node."""
    while not marker.is_file():
        time.sleep(0.05)
    node_id = marker.read_text()
    (node,) = [node for node in cluster.worker_nodes if node.node_id == node_id]
    cluster.remove_node(node, allow_graceful=False)
    killed.append(node_id)


def ray_child(nodes: int, kill_during: str, marker: Path, args: list[str]) -> dict[str, Any]:
    """``dedup run ARGS --engine ray`` on a fresh local cluster; kills a node during a stage."""
    import ray
    from ray.cluster_utils import Cluster

    from dedup.cli import main
    from dedup.engines.ray import RayEngine

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    for _ in range(nodes):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    killed: list[str] = []
    if kill_during != "none":
        imap_chunks = RayEngine.imap_chunks

        def stalling(self: RayEngine, func: Any, items: Any, *, desc: str, **kw: Any) -> Iterator:
            if desc == kill_during:
                func = StallsFirstAttempt(func, str(marker))
            return imap_chunks(self, func, items, desc=desc, **kw)

        RayEngine.imap_chunks = stalling  # type: ignore[method-assign]
        threading.Thread(
            target=_kill_when_stalled, args=(cluster, marker, killed), daemon=True
        ).start()
    try:
        main([*args, "--engine", "ray", "--ray-address", cluster.address], standalone_mode=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"killed_nodes": len(killed)}


def child(argv: list[str]) -> None:
    """The child process: one ``dedup run``; prints its driver peak RSS (and kills) as JSON."""
    engine, nodes, kill_during, marker, *args = argv
    info: dict[str, Any] = {}
    if engine == "ray":
        info = ray_child(int(nodes), kill_during, Path(marker), args)
    else:
        from dedup.cli import main

        main(args, standalone_mode=False)
    info["driver_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(info))


def run_once(
    corpus: Path,
    folder: Path,
    model: str | None,
    engine: str,
    *,
    nodes: int = 0,
    kill_during: str = "none",
    model_cache: Path,
    options: tuple[str, ...] = (),
) -> tuple[float, dict[str, Any], Path]:
    """One ``dedup run`` in a child process from an empty vector cache; (wall, info, out)."""
    from dedup.encoding import cache_root

    cache, out = folder / "cache", folder / "out"
    shutil.rmtree(folder, ignore_errors=True)
    # the built models are shared (read only); the sentence vectors are not
    (cache / "models").mkdir(parents=True)
    for built in (cache_root(model_cache) / "models").iterdir():
        if built.is_dir():
            (cache / "models" / built.name).symlink_to(built)
    command = [
        "run", str(corpus), "--out", str(out), "--cache-dir", str(cache), "--recompute-links",
        "--quiet", "--kept", str(out / "kept.jsonl"), "--dropped", str(out / "dropped.jsonl"),
    ]  # fmt: skip
    if model:
        command += ["--model", model]
    command += options
    marker = folder / "stalled-node"
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(nodes), kill_during, str(marker),
         *command],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    wall = time.perf_counter() - begin
    if done.returncode:
        sys.exit(f"dedup run ({engine}) failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1]), out


def differing(left: Path, right: Path) -> list[str]:
    """The compared output files whose bytes differ between two output folders."""
    return [
        name
        for name in COMPARED
        if (left / name).exists() != (right / name).exists()
        or ((left / name).exists() and (left / name).read_bytes() != (right / name).read_bytes())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, help="a corpus (default model)")
    parser.add_argument("--docs", type=int, help="instead: N generated documents, stand-in encoder")
    parser.add_argument("--nodes", type=int, default=3, help="worker nodes of one CPU each")
    parser.add_argument(
        "--kill-during",
        default="aligning",
        help=f"comma-separated stages, one Ray run each: {', '.join(STAGES)}",
    )
    parser.add_argument(
        "--shared-cache",
        action="store_true",
        help="run Ray with --ray-shared-cache (vectors by file path, not by value)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/dedup-ray-cluster"))
    parser.add_argument("--model-cache", type=Path, help="built models (default: dedup's cache)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    stages = args.kill_during.split(",")
    if unknown := sorted(set(stages) - set(STAGES)):
        parser.error(f"unknown --kill-during stage(s) {unknown}; choose from {', '.join(STAGES)}")
    if (args.corpus is None) == (args.docs is None):
        parser.error("give a corpus or --docs N")

    model = None
    corpus = args.corpus
    if args.docs:
        sys.path.insert(0, str(Path(__file__).parent))
        from pipeline_scale import STANDIN, generate, standin_model

        from dedup.encoding import cache_root

        model = str(standin_model(cache_root(args.model_cache)))
        corpus = generate(args.docs, args.work / f"docs-{args.docs}", 16, 0.5, 0)
        print(f"encoder: {STANDIN} (stand-in: static token embeddings, not the default model)")
    else:
        from dedup.encoding import DEFAULT_MODEL, cache_root, ensure_model, load_profiles

        ensure_model(load_profiles()[DEFAULT_MODEL], cache_root(args.model_cache))  # built once

    local_wall, local, local_out = run_once(
        corpus, args.work / "local", model, "local", model_cache=args.model_cache
    )
    print(f"local: {local_wall:.1f} s, driver peak {local['driver_peak_rss_mb']:.0f} MB")
    for stage in stages:
        wall, info, out = run_once(
            corpus,
            args.work / f"ray-{stage.replace(' ', '-')}",
            model,
            "ray",
            nodes=args.nodes,
            kill_during=stage,
            model_cache=args.model_cache,
            options=("--ray-shared-cache",) if args.shared_cache else (),
        )
        if stage != "none" and info["killed_nodes"] != 1:
            sys.exit(f"no node was killed during {stage!r}: the stage ran no task")
        wrong = differing(local_out, out)
        shared = ", --ray-shared-cache" if args.shared_cache else ""
        print(f"ray, {args.nodes} nodes{shared}, a node killed during {stage!r}: {wall:.1f} s; "
              f"differing files: {', '.join(wrong) or 'none'}")  # fmt: skip
        print(
            f"ray nodes={args.nodes} kill_during={stage.replace(' ', '-')} "
            f"shared_cache={args.shared_cache} "
            f"identical={not wrong} driver_peak_rss_mb={info['driver_peak_rss_mb']:.0f} "
            f"local_driver_peak_rss_mb={local['driver_peak_rss_mb']:.0f} "
            f"wall_s={wall:.1f} local_wall_s={local_wall:.1f}"
        )


if __name__ == "__main__":
    main()
