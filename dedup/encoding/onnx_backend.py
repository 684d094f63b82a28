"""ONNX Runtime backends for :class:`dedup.encoding.Encoder`: the same model, 2-4x faster on CPU.

A sentence-transformers model made of a BERT-like ``Transformer``, mean
``Pooling`` and an optional ``Normalize`` is exported once, on first use, into
a folder in the model cache, next to the converted model (built atomically,
like that folder). Two variants:

* ``onnx`` -- fp32, with ONNX Runtime's BERT fusions (one ``Attention`` op per
  layer, ``EmbedLayerNormalization``, ``SkipLayerNormalization``, ``BiasGelu``).
  Same numbers as torch (cosine 1.00000). The Encoder runs it in tensors of
  one fixed shape per padded width, since ONNX Runtime's last bits for a row
  change with the row count (not with the other rows' content nor the thread
  count), which makes each vector bit-identical whatever it is batched with;
  ~1.7x torch's speed here.
* ``onnx-int8`` -- the fused graph with its ``MatMul`` and ``Attention``
  weights quantised to int8 **per output channel**; activations are quantised
  per tensor at run time (ONNX Runtime's dynamic quantisation). A product
  whose input has outliers stays fp32: one 8-bit step of its activations
  would exceed 0.4 standard deviation (range/std > :data:`MAX_RANGE_OVER_STD`,
  measured on probe sentences at build time). In multilingual-e5-small those
  are the FFN output projections of layers 0, 4 and 5 (3 of 48 products):
  quantised, layer 4's alone cost more than all 45 others together. Cosine to
  fp32 torch on the 3,124 NTREX-dev sentences in 12 languages: 0.9987 mean,
  0.9966 min (``bench/encode_speed.py``; when this build was chosen, measured
  otherwise: 0.9986 / 0.9938, against all 48 quantised: 0.9964 / 0.9849, and
  per-tensor weights, as torch's ``quantize_dynamic``: 0.987 / 0.974, at the
  same speed). The word embeddings, layer norms and biases stay fp32. Activation scales come from
  the whole input tensor, so in a batch a text's vector would depend on its
  companions (cosine ~0.995); the Encoder therefore runs each window alone:
  2.0-2.8x torch's speed batched at 32, 1.1-1.6x fp32 ONNX (batched int8
  would be faster still). The default model's default backend until stop
  34, when the OpenVINO backend (static scales, batched, ~2x this one's
  speed: :mod:`dedup.encoding.openvino_backend`) replaced it: on the
  sentences of all three development sets (180 languages, 29 scripts) every
  vector is within cosine 0.9935 of fp32's, the benchmarks' pairwise F1 is
  fp32's and B-cubed F1 within 0.001 of it.

Each folder holds ``model.onnx`` (input ``input_ids`` and ``attention_mask``,
int64, right-padded; output ``pooled``: mean-pooled, *not* normalised vectors,
so that :class:`Encoder` can average long texts' windows before normalising),
``model.onnx.data`` (the word-embedding table, stored beside the graph as ONNX
external data), the model's ``tokenizer.json`` and ``dedup_backend.json``
(special tokens, padding id, window, dimension, provenance). Loading it needs
neither torch nor sentence-transformers; building it does (once).

Why the table lies apart: it is most of the model (250,037 x 384 float32,
384 MB against 21 MB of int8 graph), and inside the graph it is one protobuf
field that every load parses and copies. Apart, ONNX Runtime maps the file,
and a run touches only the rows of the tokens it meets: a session loads in
~0.1 s instead of 1-3 s and a process holds ~260 MB less after encoding
(measured side by side on one built model, README "Models").

Every build is checked before it is kept: the exported graph must reproduce
torch's pooled vectors on a padded probe batch (fp32: cosine >= 0.99999; int8:
>= 0.98), so an architecture the export or fusion gets wrong fails loudly
instead of silently giving other vectors.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

# Bump whenever the export, fusion or quantisation changes the vectors: it is
# part of the folder name and of Encoder.fingerprint.
ONNX_BACKEND_VERSION = "1"
ONNX_BACKENDS = ("onnx", "onnx-int8")
MODEL_FILE = "model.onnx"
#: the word-embedding table, raw float32 beside the graph (ONNX external data)
TABLE_FILE = "model.onnx.data"
META_FILE = "dedup_backend.json"
TOKENIZER_FILE = "tokenizer.json"
# The least cosine to torch's pooled vector, on the probe batch, for a build to be kept.
_PROBE_MIN_COSINE = {"onnx": 0.99999, "onnx-int8": 0.98}
#: int8 keeps fp32 the products whose input's (max - min) / std exceeds this on
#: the probe texts (median over texts); 8-bit steps are then > 0.4 std.
MAX_RANGE_OVER_STD = 100.0
_PROBE_TEXTS = (
    "passage: Hello world.",
    "passage: Der Bundestag hat am Donnerstag ein neues Gesetz zur Energiewende beschlossen.",
    "passage: Москва, 12 марта — Президент подписал указ о создании новой комиссии.",
    "passage: 东京电力公司周二表示，将于下月开始排放处理后的核污水。",
    "passage: The airline said six passengers remained in hospital on Saturday, all stable.",
    "passage: Le gouvernement a annoncé mardi une hausse de 3 % du salaire minimum.",
    "passage: وقال المتحدث إن المفاوضات ستستأنف الأسبوع المقبل في القاهرة.",
    "passage: 航空会社は土曜日に6人の乗客が病院に残っていると語った。",
    "a",
)


def onnxruntime() -> Any:
    """Import onnxruntime with its telemetry off; return the module.

    Since 1.29 the PyPI builds for Linux keep a device id and an event database
    under ``~/.cache/Microsoft`` and try to upload them; ``ORT_DISABLE_TELEMETRY=1``,
    set before the runtime starts, turns all of that off (checked with 1.32).
    An explicit value from the user is respected.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    return ort


class BackendUnsupportedError(ValueError):
    """The model cannot be run by an ONNX backend (use ``backend="torch"``)."""


def check_supported(st_model: Any) -> None:
    """Raise :class:`BackendUnsupportedError` unless ``st_model`` is Transformer -> mean Pooling.

    A trailing ``Normalize`` is allowed (the Encoder normalises itself).
    """
    modules = list(st_model)
    names = [type(m).__name__ for m in modules]
    while names and names[-1] == "Normalize":
        names.pop()
    if names != ["Transformer", "Pooling"]:
        raise BackendUnsupportedError(
            f"the ONNX backends need Transformer -> Pooling(mean) [-> Normalize], "
            f"this model has {' -> '.join(type(m).__name__ for m in modules)}"
        )
    mode = modules[1].get_config_dict().get("pooling_mode")
    if mode not in ("mean", ["mean"], ("mean",)):
        raise BackendUnsupportedError(f"the ONNX backends need mean pooling, not {mode!r}")


def build_onnx(
    st_model: Any,
    dest: Path,
    *,
    backend: str,
    tokenizer_meta: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    """Export ``st_model`` into the empty folder ``dest`` as ``backend``; check it; write meta.

    ``tokenizer_meta`` holds ``head``, ``tail``, ``pad_id``, ``max_tokens`` and
    ``dim`` as the Encoder computed them from the loaded model. Imports torch,
    onnx and onnxruntime. multilingual-e5-small: ~14 s, ~2.5 GB peak (each step
    timed: README, "Building the model on a fresh machine").

    The graph is exported, fused and quantised with a word-embedding table cut
    down to the probe texts' tokens (the probes' ids remapped into it), so
    those steps handle ~90 MB instead of ~470 MB (the 250k x 384 fp32 table);
    the full table is put back beside the finished graph
    (``model.onnx.data``). The probes give exact
    activations through the small table, which the int8 build measures.
    """
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"backend must be one of {ONNX_BACKENDS}, not {backend!r}")
    check_supported(st_model)
    dest = Path(dest)
    bert = st_model[0].auto_model
    probe_ids = st_model.tokenizer(list(_PROBE_TEXTS))["input_ids"]
    rows = sorted({i for ids in probe_ids for i in ids} | {int(tokenizer_meta["pad_id"])})
    position = {token: row for row, token in enumerate(rows)}
    probes = [np.asarray([[position[i] for i in ids]], dtype=np.int64) for ids in probe_ids]
    full_table = bert.get_input_embeddings().weight.detach().float().numpy()

    raw, fused, small = dest / "raw.onnx", dest / "fused.onnx", dest / "small.onnx"
    _export(bert, raw, rows)
    _fuse(raw, fused, bert.config)
    raw.unlink()
    kept_fp32: list[str] = []
    if backend == "onnx":
        fused.rename(small)
    else:
        kept_fp32 = _quantize(fused, small, probes)
        fused.unlink()
    _put_back_word_embeddings(small, dest, full_table[rows], full_table)
    small.unlink()
    meta = {
        "backend": backend,
        "backend_version": ONNX_BACKEND_VERSION,
        **tokenizer_meta,
        "int8_kept_fp32": kept_fp32,
        "onnxruntime_version": _version("onnxruntime"),
        "onnx_version": _version("onnx"),
        "torch_version": _version("torch"),
        **provenance,
    }
    finish_build(
        st_model,
        dest,
        meta,
        lambda folder: OnnxModel(folder, threads=None),
        _PROBE_MIN_COSINE[backend],
    )


def finish_build(
    st_model: Any,
    dest: Path,
    meta: dict[str, Any],
    load: Callable[[Path], Any],
    min_cosine: float,
) -> None:
    """What every built backend folder (ONNX or OpenVINO) ends with: the tokenizer
    and ``meta`` written, the folder loaded by ``load`` and checked against torch
    (:func:`_check_against_torch`), its files made readable by all."""
    st_model.tokenizer.backend_tokenizer.save(str(dest / TOKENIZER_FILE))
    (dest / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _check_against_torch(st_model, load(dest), min_cosine)
    for path in dest.rglob("*"):
        path.chmod(0o644)
    dest.chmod(0o755)


class OnnxModel:
    """A built ONNX backend folder: tokenizer, session and the Encoder's facts about them."""

    def __init__(self, folder: Path, threads: int | None, device: str = "cpu") -> None:
        from tokenizers import Tokenizer

        ort = onnxruntime()

        folder = Path(folder)
        self.meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one per physical core
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # on "cuda", nodes the CUDA provider lacks fall back to the CPU one
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=providers)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens, never truncated."""
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def pooled(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Mean-pooled (not normalised) float32 vectors of a right-padded int64 batch."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.session.run(None, feed)[0]


def padded_batch(
    seqs: list[list[int]], pad_id: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ids right-padded to ``width`` (default: the longest) and the 0/1 mask, as int64.

    Built without a Python loop per row.
    """
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    mask = np.arange(max(int(lengths.max()), width or 0)) < lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    ids[mask] = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(lengths.sum()))
    return ids, mask.astype(np.int64)


def _export(bert: Any, path: Path, rows: list[int]) -> None:
    """TorchScript-export ``bert`` + mean pooling with eager attention (what ORT fuses).

    The word-embedding table is exported as its ``rows`` only (see :func:`build_onnx`).
    """
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    attn = bert.config._attn_implementation
    embeddings = bert.get_input_embeddings()
    table = embeddings.weight
    ids = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 0, 0]]) % len(rows)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    try:
        embeddings.weight = torch.nn.Parameter(table.detach()[rows].clone(), requires_grad=False)
        # SDPA exports as a generic graph that ORT does not fuse into its Attention op.
        bert.set_attn_implementation("eager")
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                MeanPooled(bert).eval(),
                (ids, mask),
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["pooled"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "pooled": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
    finally:
        embeddings.weight = table
        bert.set_attn_implementation(attn)
        gc.collect()


def _fuse(src: Path, dest: Path, config: Any) -> None:
    onnxruntime()
    from onnxruntime.transformers import optimizer

    with _quiet():
        model = optimizer.optimize_model(
            str(src),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # the session applies the hardware-specific levels at load
        )
    model.save_model_to_file(str(dest))
    del model
    gc.collect()


def _put_back_word_embeddings(
    src: Path, dest: Path, small_table: np.ndarray, full_table: np.ndarray
) -> None:
    """Write ``src`` as ``dest/model.onnx``, its one ``small_table`` initializer
    replaced by ``full_table`` stored raw in ``dest/model.onnx.data``.

    The table is written straight to its file and the initializer made a
    reference to it, so the 384 MB never pass through a protobuf message
    (that copy and its serialisation were most of this step's seconds).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    found = [
        init
        for init in model.graph.initializer
        if tuple(init.dims) == small_table.shape
        and np.array_equal(numpy_helper.to_array(init), small_table)
    ]
    if len(found) != 1:
        raise BackendUnsupportedError(
            f"cannot locate the word-embedding table in the exported graph ({len(found)} matches)"
        )
    table = np.ascontiguousarray(full_table, dtype="<f4")
    table.tofile(dest / TABLE_FILE)
    tensor = found[0]
    for field in ("raw_data", "float_data", "external_data"):
        tensor.ClearField(field)
    tensor.dims[:] = table.shape
    tensor.data_type = onnx.TensorProto.FLOAT
    for key, value in (("location", TABLE_FILE), ("offset", "0"), ("length", str(table.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL
    onnx.save(model, str(dest / MODEL_FILE))
    del model
    gc.collect()


def _quantize(src: Path, dest: Path, probes: list[np.ndarray]) -> list[str]:
    """Write ``src`` with int8 weights to ``dest``; return the products kept fp32 (outliers)."""
    import onnx

    onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    weights = {init.name for init in model.graph.initializer}
    candidates = [
        node
        for node in model.graph.node
        if node.op_type in ("MatMul", "Attention") and node.input[1] in weights
    ]
    spread = _input_spread(model, candidates, probes)
    kept = [node.name for node in candidates if spread[node.input[0]] > MAX_RANGE_OVER_STD]
    del model
    gc.collect()
    with _quiet():
        quantize_dynamic(
            str(src),
            str(dest),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_quantize=[n.name for n in candidates if n.name not in kept],
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return kept


def _input_spread(model: Any, nodes: list[Any], probes: list[np.ndarray]) -> dict[str, float]:
    """Median over probe texts of (max - min) / std of each node's first input.

    Dynamic quantisation maps that range onto 256 steps per tensor, so a large
    ratio (a few outlier channels) means coarse steps for everything else.
    """
    import onnx

    ort = onnxruntime()
    names = list(dict.fromkeys(node.input[0] for node in nodes))
    graph_outputs = {out.name for out in model.graph.output}
    for name in names:
        if name not in graph_outputs:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for ids in probes:
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        for name, value in zip(names, session.run(names, feed), strict=True):
            ratios[name].append(float(np.ptp(value) / max(float(value.std()), 1e-12)))
    return {name: float(np.median(r)) for name, r in ratios.items()}


def _check_against_torch(st_model: Any, onnx_model: Any, min_cosine: float) -> None:
    """Compare pooled vectors of a padded probe batch; raise if the export is off.

    ``onnx_model``: an :class:`OnnxModel` or anything with its ``meta``,
    ``tokenize`` and ``pooled`` (the OpenVINO backend's model).
    """
    import torch

    meta = onnx_model.meta
    seqs = [meta["head"] + ids + meta["tail"] for ids in onnx_model.tokenize(list(_PROBE_TEXTS))]
    ids, mask = padded_batch(seqs, meta["pad_id"])
    got = onnx_model.pooled(ids, mask)
    features: dict[str, Any] = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
    }
    if "token_type_ids" in st_model.tokenizer.model_input_names:
        features["token_type_ids"] = torch.zeros_like(features["input_ids"])
    with torch.inference_mode():
        for module in list(st_model)[:2]:
            features = module(features)
    want = features["sentence_embedding"].float().numpy()
    cos = np.sum(got * want, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1) + 1e-12
    )
    if not np.all(cos >= min_cosine):
        backend = onnx_model.meta["backend"]
        raise BackendUnsupportedError(
            f"the {backend} export of this model does not reproduce torch's vectors "
            f"(cosine {cos.min():.5f} < {min_cosine}); use backend='torch'"
        )


class _quiet:
    """Silence the ONNX tools' loggers and warnings (pre-processing hints, fusion reports)."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._level = logging.root.manager.disable
        logging.disable(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        logging.disable(self._level)
        self._warnings.__exit__(*exc)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
