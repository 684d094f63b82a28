"""Where the encoder runs: ``auto``, ``cpu`` or ``cuda`` (``dedup run --device``).

The CPU is the default path, the one every test runs: ``auto`` gives ``cuda``
only when a CUDA GPU is usable by the library that would run the model
(torch for the ``torch`` backend, ONNX Runtime's CUDA provider, from the
``onnxruntime-gpu`` package, for the ONNX backends; never for OpenVINO's,
which runs on the CPU). Checking is cheap where
there is no NVIDIA driver at all: torch is not imported, so a warm re-run on a
laptop still never loads it.

A GPU changes a vector's last bits (other kernels, other summation orders),
so the device, the GPU's model name and the fixed batch shape are part of the
encoder fingerprint, i.e. of the embedding-cache key
(:func:`dedup.encoding.encoder.fingerprint`): vectors made on a GPU are never
mixed with CPU vectors, nor with those of another GPU model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: the values of ``--device`` / ``PipelineConfig.device``
DEVICES = ("auto", "cpu", "cuda")
#: the file a loaded NVIDIA driver provides on Linux
_DRIVER_FILE = Path("/proc/driver/nvidia/version")


class DeviceUnavailableError(RuntimeError):
    """``device="cuda"`` was asked for where no CUDA GPU can run the model."""


def resolve_device(device: str, backend: str) -> str:
    """``"cpu"`` or ``"cuda"``: where ``backend`` will run for the requested ``device``.

    Args:
        device: ``"auto"`` (a GPU when one is usable, else the CPU), ``"cpu"``
            or ``"cuda"``.
        backend: the encoder backend (``"torch"``, ``"onnx"``, ``"onnx-int8"``,
            ``"openvino-int8"``: CPU only).

    Raises:
        ValueError: ``device`` is not one of :data:`DEVICES`.
        DeviceUnavailableError: ``"cuda"`` was asked for and no GPU is usable,
            with what was missing.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    if device == "cpu":
        return "cpu"
    missing = cuda_missing(backend)
    if missing is None:
        return "cuda"
    if device == "cuda":
        raise DeviceUnavailableError(f"--device cuda: {missing}; use --device cpu or auto")
    return "cpu"


def cuda_missing(backend: str) -> str | None:
    """Why ``backend`` cannot run on a CUDA GPU here, or None when it can."""
    if backend.startswith("openvino"):
        return f"the {backend} backend runs on the CPU only; set DEDUP_ENCODER_BACKEND=torch"
    if not _DRIVER_FILE.exists() and shutil.which("nvidia-smi") is None:
        return "no NVIDIA driver on this machine (no /proc/driver/nvidia, no nvidia-smi)"
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            return f"torch {torch.__version__} ({build}) sees no usable CUDA GPU"
        return None
    from dedup.encoding.onnx_backend import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime().get_available_providers():
        return (
            f"ONNX Runtime has no CUDA provider for the {backend} backend "
            "(pip install onnxruntime-gpu), or set DEDUP_ENCODER_BACKEND=torch"
        )
    return None


#: the CPU flags (Linux ``/proc/cpuinfo``) of int8 dot-product instructions
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: oneDNN's cap on the instruction sets it uses (OpenVINO honours it)
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"


def cpu_has_int8_dot_product() -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX) that
    OpenVINO's int8 kernels may use.

    Without them OpenVINO runs the int8 graph otherwise, and its vectors are
    further from fp32's: emulated here with ``ONEDNN_MAX_CPU_ISA=AVX2`` (or
    ``AVX512_CORE``), cosine to fp32 on 783 news sentences mean 0.9979, min
    0.9912, against 0.9993 and 0.9958 with VNNI (docs/design.md, "Encoding
    speed"). False where the flags cannot be read (not Linux), or where
    ``$ONEDNN_MAX_CPU_ISA`` caps oneDNN below them.
    """
    cap = os.environ.get(ONEDNN_ISA_ENV, "").upper()
    if cap and cap != "ALL" and "VNNI" not in cap and "AMX" not in cap:
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return any(flag in INT8_DOT_FLAGS for flag in line.split(":", 1)[1].split())
    return False


def gpu_name() -> str:
    """The first GPU's model name (e.g. ``NVIDIA H200``), for the fingerprint."""
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model":
                return value.strip()
    try:
        import torch

        return str(torch.cuda.get_device_name(0))
    except (ImportError, RuntimeError, AssertionError):
        return "unknown GPU"
