"""Int8 with per-row activation scales: batch-independent int8, measured against the ONNX backends.

The ``onnx-int8`` backend (the default until stop 34, when OpenVINO int8 with
static scales replaced it: ``dedup/encoding/openvino_backend.py``) scales each
product's activations per tensor at run time, so a vector would depend on its
batch companions and the Encoder runs one window at a time (issue 18).
Scaled per *row* (per token), each row's int8 codes depend on that row
alone, so windows can be batched. This
script builds that graph from the fp32 ONNX backend's fused graph, by hand
(ONNX Runtime's quantiser has no per-row mode, and ``MatMulInteger`` takes
only a per-tensor zero point): every product ``x @ W`` becomes

    s = max|x_row| / 127;  q = uint8(round(x / s) + 128)
    y = float(MatMulInteger(q, W8, zero point 128)) * s * w_scale

with ``W8``, ``w_scale`` symmetric int8 per output channel; the fused
``Attention`` ops become a per-row int8 QKV product and ONNX Runtime's
``MultiHeadAttention`` (``--keep-attention`` leaves them fp32). Then it
encodes the same sentences with each variant, interleaved, best of
``--repeat``, and prints sent/s, the ratios to fp32 ONNX and to the ONNX
int8 backend, and cosine to fp32 (mean, min). Kept as the record of why
ONNX Runtime's int8 was not batched (docs/design.md, "Encoding speed").

    python bench/int8_per_row.py [--limit 500] [--threads 2] [--repeat 3] [--keep-attention]
                                 [--smoke]

Not a backend: a measurement of whether this route reaches issue 18's speed
bar before one is built (docs/design.md, "Encoding speed").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def per_row_graph(src: Path, dest: Path, quantise_attention: bool) -> int:
    """Write ``src``'s fused graph with per-row int8 products to ``dest``; the products done."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src / "model.onnx"))
    weights = {init.name: init for init in model.graph.initializer}
    shared = {
        "pr_127": np.array(127.0, np.float32),
        "pr_tiny": np.array(1e-12, np.float32),
        "pr_128": np.array(128.0, np.float32),
        "pr_zp": np.array(128, np.uint8),
    }
    added = [numpy_helper.from_array(value, name) for name, value in shared.items()]
    nodes: list = []

    def product(x: str, weight: str, out: str, tag: str) -> None:
        w = numpy_helper.to_array(weights[weight]).astype(np.float32)
        w_scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        w8 = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
        added.extend(
            [numpy_helper.from_array(w8, tag + "w8"), numpy_helper.from_array(w_scale, tag + "ws")]
        )
        nodes.extend(
            [
                helper.make_node("Abs", [x], [tag + "abs"]),
                helper.make_node("ReduceMax", [tag + "abs"], [tag + "max"], axes=[-1], keepdims=1),
                helper.make_node("Max", [tag + "max", "pr_tiny"], [tag + "max1"]),
                helper.make_node("Div", [tag + "max1", "pr_127"], [tag + "s"]),
                helper.make_node("Div", [x, tag + "s"], [tag + "xs"]),
                helper.make_node("Round", [tag + "xs"], [tag + "xr"]),
                helper.make_node("Add", [tag + "xr", "pr_128"], [tag + "xo"]),
                helper.make_node("Cast", [tag + "xo"], [tag + "q"], to=TensorProto.UINT8),
                helper.make_node("MatMulInteger", [tag + "q", tag + "w8", "pr_zp"], [tag + "acc"]),
                helper.make_node("Cast", [tag + "acc"], [tag + "accf"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [tag + "accf", tag + "s"], [tag + "y"]),
                helper.make_node("Mul", [tag + "y", tag + "ws"], [out]),
            ]
        )

    done = 0
    for node in model.graph.node:
        tag = f"pr{done}_"
        if node.op_type == "MatMul" and node.input[1] in weights:
            product(node.input[0], node.input[1], node.output[0], tag)
        elif node.op_type == "Attention" and quantise_attention:
            heads = next(a.i for a in node.attribute if a.name == "num_heads")
            qkv = tag + "qkv"
            product(node.input[0], node.input[1], qkv, tag)
            split = [qkv + "_q", qkv + "_k", qkv + "_v"]
            nodes.append(helper.make_node("Split", [qkv], split, axis=-1))
            nodes.append(
                helper.make_node(
                    "MultiHeadAttention",
                    [*split, node.input[2], node.input[3]],  # bias, mask index
                    [node.output[0]],
                    domain="com.microsoft",
                    num_heads=heads,
                )
            )
        else:
            nodes.append(node)
            continue
        done += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + added)
    dest.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest / "model.onnx"))
    for name in ("tokenizer.json", "dedup_backend.json"):
        shutil.copy(src / name, dest / name)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=500, help="lines of ntrex-dev (default 500)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep-attention", action="store_true", help="Attention ops stay fp32")
    parser.add_argument("--smoke", action="store_true", help="3 lines, once, 1 thread (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.limit, args.threads, args.repeat = 3, 1, 1

    from encode_speed import DEFAULT_CORPUS, read_lines, sentences

    from dedup.encoding.encoder import ensure_backend
    from dedup.encoding.onnx_backend import OnnxModel, padded_batch

    texts = ["passage: " + s for s in sentences(read_lines(DEFAULT_CORPUS)[: args.limit])]
    with tempfile.TemporaryDirectory() as scratch:
        fp32_folder = ensure_backend(backend="onnx")
        int8_folder = ensure_backend(backend="onnx-int8")
        assert fp32_folder and int8_folder
        per_row = Path(scratch) / "per-row"
        # built in a child process: built in this one, the per-row graph then ran
        # 1.17x fp32 instead of 1.77x (measured; the cause was not found)
        with ProcessPoolExecutor(1) as child:
            build = child.submit(per_row_graph, fp32_folder, per_row, not args.keep_attention)
            products = build.result()
        models = {
            name: OnnxModel(folder, args.threads)
            for name, folder in (("fp32", fp32_folder), ("int8", int8_folder), ("per-row", per_row))
        }
        head, tail = models["fp32"].meta["head"], models["fp32"].meta["tail"]
        pad = models["fp32"].meta["pad_id"]
        ids = [head + t + tail for t in models["fp32"].tokenize(texts)]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))

        def encode(model: OnnxModel, rows: int) -> np.ndarray:
            out = np.zeros((len(ids), models["fp32"].meta["dim"]), np.float32)
            for start in range(0, len(order), rows):
                batch = order[start : start + rows]
                out[batch] = model.pooled(*padded_batch([ids[i] for i in batch], pad))
            return out

        variants = {
            "onnx fp32, 32 rows a run": ("fp32", 32),
            "onnx-int8, 1 window a run": ("int8", 1),
            f"per-row int8 ({products} products), 32 rows": ("per-row", 32),
            "onnx-int8, 32 rows (not bit-stable)": ("int8", 32),
        }
        best = dict.fromkeys(variants, float("inf"))
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.repeat):
            for name, (model, rows) in variants.items():
                started = time.perf_counter()
                vectors[name] = encode(models[model], rows)
                best[name] = min(best[name], time.perf_counter() - started)
        alone = encode(models["per-row"], 1)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    fp32_name, int8_name = list(variants)[:2]
    reference = unit(vectors[fp32_name])
    print(f"{len(texts)} sentences, threads {args.threads}, best of {args.repeat}")
    columns = ("sent/s", "x fp32", "x int8", "cos mean", "cos min")
    print(f"{'variant':42s} " + " ".join(f"{c:>8s}" for c in columns))
    for name in variants:
        cosine = (unit(vectors[name]) * reference).sum(axis=1)
        print(
            f"{name:42s} {len(texts) / best[name]:8.1f} {best[fp32_name] / best[name]:8.2f}"
            f" {best[int8_name] / best[name]:8.2f} {cosine.mean():8.5f} {cosine.min():8.5f}"
        )
    batched = vectors[list(variants)[2]]
    difference = np.abs(alone - batched).max()
    print(f"per-row int8 alone vs in batches of 32: max |difference| {difference:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
