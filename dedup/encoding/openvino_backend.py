"""The ``openvino-int8`` backend: int8 with fixed activation scales, batched, on OpenVINO.

Why another runtime: ONNX Runtime's int8 scales activations per tensor at run
time, so a vector would depend on its batch companions and ``onnx-int8`` runs
each window alone; even batched, its int8 kernels stayed under 1.8x its own
fp32 on this project's 2-core AVX-512 VNNI machine, with any scaling
(docs/design.md, "Encoding speed"). Here every product's activation scale is
fixed once, at build time (*static* quantisation, calibrated by NNCF, Intel's
quantiser for OpenVINO, on :data:`CALIBRATION_FILE`), so a window's int8 codes
depend on that window alone and windows are batched freely; OpenVINO's CPU
plugin runs the int8 products on VNNI (or AVX2 where there is none).

Bit-stable: a window's vector is the same bytes alone, in any batch of its
padded width (its own length rounded up, as for torch), shuffled, at 1 or 2
threads (measured on the 783 benchmark sentences; ``tests/encoding``). The
fp32 parts run in fp32 (``INFERENCE_PRECISION_HINT``), never bf16 even on a
CPU that has it, so a machine's vectors do not depend on which hint OpenVINO
would pick.

Measured (2 cores, AMD EPYC with AVX-512 VNNI; README, "Encoding speed"):
2.97-3.01x fp32 ONNX on ``bench/encode_speed.py``'s 783 news sentences; cosine
to fp32 >= 0.99037 on every sentence of the four development sets (the worst a
Tifinagh one), pairwise F1 within 0.002 of fp32's. Without int8 dot-product
instructions its vectors are further from fp32's, so ``auto`` takes it only
on a CPU that has them (:func:`dedup.encoding.device.cpu_has_int8_dot_product`).

The folder holds ``model.xml``/``model.bin`` (inputs ``input_ids`` and
``attention_mask``, int64, right-padded; output: mean-pooled, *not*
normalised vectors, as the ONNX backends), the tokenizer and
``dedup_backend.json``. Building needs torch (the export is the ONNX
backends'), onnx, openvino and nncf; loading needs openvino only.
Telemetry: ``import openvino`` starts its converter's usage statistics (a
client id and counters under ``~/intel``, events sent by the converter), and
NNCF its own, unless a consent file or a CI variable says otherwise. Both
fall back to a stub when the ``openvino_telemetry`` package cannot be
imported, so :func:`openvino` marks it unimportable before importing them
(unless the process imported it already): nothing is written or sent
(``tests/encoding/test_openvino_backend.py`` builds with an empty home).
"""

from __future__ import annotations

import gc
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dedup.encoding.onnx_backend import (
    _PROBE_TEXTS,
    MAX_RANGE_OVER_STD,
    META_FILE,
    TOKENIZER_FILE,
    _export,
    _input_spread,
    _put_back_word_embeddings,
    _quiet,
    _version,
    check_supported,
    finish_build,
    padded_batch,
)

#: Bump whenever the export, the calibration sample or the quantiser's
#: settings change the vectors: part of the folder name and of the fingerprint.
OPENVINO_BACKEND_VERSION = "1"
OPENVINO_BACKENDS = ("openvino-int8",)
MODEL_XML = "model.xml"
#: one sentence per language, 180 languages (``bench/calibration_sample.py``)
CALIBRATION_FILE = "calibration.txt"
#: calibration texts are cut to this many content tokens (the sample's sentences
#: are shorter; a long one would only slow the build)
CALIBRATION_MAX_TOKENS = 128
#: the least cosine to torch's pooled vector, on the probe batch, for a build to be kept:
#: a sanity check of the export, not the quality bar (the probe ``a``, one token
#: without the prefix, is the worst: 0.977; sentences with the prefix >= 0.99)
PROBE_MIN_COSINE = 0.97
#: OpenVINO's CPU settings that decide the numbers (threads are set per Encoder)
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def calibration_texts() -> list[str]:
    """The calibration sample's sentences (its ``#`` header skipped)."""
    text = resources.files("dedup.encoding").joinpath(CALIBRATION_FILE).read_text("utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def openvino() -> Any:
    """Import OpenVINO with its telemetry off (see the module docstring), or say how
    to install it."""
    sys.modules.setdefault("openvino_telemetry", None)  # an import of it now fails
    try:
        import openvino as ov
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError(
            "the openvino-int8 backend needs OpenVINO: pip install openvino nncf"
        ) from exc
    return ov


def build_openvino(
    st_model: Any,
    dest: Path,
    *,
    prefix: str,
    tokenizer_meta: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    """Export ``st_model``, quantise it to static int8 and write it into the empty ``dest``.

    The ONNX backends' export (a word-embedding table cut down to the probe
    and calibration texts' tokens, then the full table put back beside the
    graph), read by OpenVINO, quantised by NNCF on :func:`calibration_texts`
    (with ``prefix`` and the special tokens, as the Encoder feeds them), saved
    as OpenVINO IR and checked against torch. multilingual-e5-small: ~25 s.
    """
    check_supported(st_model)
    dest = Path(dest)
    head, tail = list(tokenizer_meta["head"]), list(tokenizer_meta["tail"])
    tokenizer = st_model.tokenizer
    calibration = [
        head + ids[:CALIBRATION_MAX_TOKENS] + tail
        for ids in tokenizer(
            [prefix + t for t in calibration_texts()], add_special_tokens=False, verbose=False
        )["input_ids"]
    ]
    probe_ids = tokenizer(list(_PROBE_TEXTS))["input_ids"]
    bert = st_model[0].auto_model
    rows = sorted(
        {i for ids in calibration + probe_ids for i in ids} | {int(tokenizer_meta["pad_id"])}
    )
    full_table = bert.get_input_embeddings().weight.detach().float().numpy()
    work = dest / "onnx"
    work.mkdir()
    _export(bert, work / "raw.onnx", rows)
    position = {token: row for row, token in enumerate(rows)}
    probes = [np.asarray([[position[i] for i in seq]], dtype=np.int64) for seq in calibration]
    kept_fp32 = _outlier_products(work / "raw.onnx", probes)
    _put_back_word_embeddings(work / "raw.onnx", work, full_table[rows], full_table)
    _quantize_static(
        work / "model.onnx", dest / MODEL_XML, calibration, tokenizer_meta["pad_id"], kept_fp32
    )
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    gc.collect()
    meta = {
        "backend": "openvino-int8",
        "backend_version": OPENVINO_BACKEND_VERSION,
        **tokenizer_meta,
        "calibration_texts": len(calibration),
        "int8_kept_fp32": kept_fp32,
        "openvino_version": _version("openvino"),
        "nncf_version": _version("nncf"),
        "torch_version": _version("torch"),
        **provenance,
    }
    finish_build(
        st_model, dest, meta, lambda folder: OpenVinoModel(folder, threads=None), PROBE_MIN_COSINE
    )


def _outlier_products(src: Path, probes: list[np.ndarray]) -> list[str]:
    """The weight products of the ONNX graph ``src`` whose input has outliers.

    The rule of the ``onnx-int8`` backend (``MAX_RANGE_OVER_STD``, measured on
    ``probes``): one 8-bit step of such an input would exceed 0.4 of its
    standard deviation, so the product stays fp32. With scales fixed for all
    texts it matters more than with scales per run.
    """
    import onnx

    model = onnx.load(str(src))
    weights = {init.name for init in model.graph.initializer}
    candidates = [
        node for node in model.graph.node if node.op_type == "MatMul" and node.input[1] in weights
    ]
    spread = _input_spread(model, candidates, probes)
    return [node.name for node in candidates if spread[node.input[0]] > MAX_RANGE_OVER_STD]


def _quantize_static(
    src: Path, dest: Path, calibration: list[list[int]], pad_id: int, kept_fp32: list[str]
) -> None:
    """Read the ONNX graph ``src`` in OpenVINO, quantise it with NNCF on the
    ``calibration`` windows (one at a time, unpadded), the products ``kept_fp32``
    left out, and save it as IR at ``dest``."""
    ov = openvino()
    model = ov.Core().read_model(str(src))
    with _quiet():
        import nncf

        dataset = nncf.Dataset(
            calibration,
            lambda seq: dict(
                zip(("input_ids", "attention_mask"), padded_batch([seq], pad_id), strict=True)
            ),
        )
        quantised = nncf.quantize(
            model,
            dataset,
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(names=kept_fp32),
        )
        ov.save_model(quantised, str(dest), compress_to_fp16=False)


class OpenVinoModel:
    """A built ``openvino-int8`` folder: tokenizer, compiled model and its facts for the Encoder."""

    def __init__(self, folder: Path, threads: int | None) -> None:
        from tokenizers import Tokenizer

        ov = openvino()
        folder = Path(folder)
        self.meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        config: dict[str, Any] = dict(CPU_CONFIG)
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = ov.Core().compile_model(str(folder / MODEL_XML), "CPU", config)
        self._request = compiled.create_infer_request()

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens, never truncated."""
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def pooled(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Mean-pooled (not normalised) float32 vectors of a right-padded int64 batch."""
        result = self._request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.array(result[0], dtype=np.float32)
