"""``--device auto|cpu|cuda``: the CPU stays the default path, a GPU is chosen only when
usable, asked-for-but-missing fails clearly, and GPU vectors get cache keys of their own.

No GPU is lent to CI: the tests that need the machine to have none are skipped on one
with an NVIDIA driver, and the GPU side of the choice is exercised by telling the
device module that a GPU is usable (the choice and the keys, not the GPU's arithmetic).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dedup.encoding import (
    DeviceUnavailableError,
    Encoder,
    lazy_encoder,
    resolve,
)
from dedup.encoding import device as device_module
from dedup.encoding import encoder as encoder_module
from dedup.encoding.device import resolve_device
from dedup.encoding.encoder import cuda_rows, fingerprint

REPO = Path(__file__).resolve().parents[2]
NO_DRIVER = not Path("/proc/driver/nvidia/version").exists() and shutil.which("nvidia-smi") is None
needs_no_gpu = pytest.mark.skipif(not NO_DRIVER, reason="this machine has an NVIDIA driver")


def test_cpu_is_cpu_and_unknown_devices_are_refused() -> None:
    assert resolve_device("cpu", "torch") == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("gpu", "torch")


@needs_no_gpu
def test_auto_without_a_driver_is_the_cpu_and_never_imports_torch() -> None:
    """A warm run must not pay torch's import to learn there is no GPU."""
    code = (
        "import sys\n"
        "from dedup.encoding.device import resolve_device\n"
        "assert resolve_device('auto', 'torch') == 'cpu'\n"
        "assert resolve_device('auto', 'onnx-int8') == 'cpu'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@needs_no_gpu
def test_cuda_without_a_gpu_says_what_is_missing() -> None:
    with pytest.raises(DeviceUnavailableError, match="--device cuda: no NVIDIA driver"):
        resolve_device("cuda", "torch")
    with pytest.raises(DeviceUnavailableError, match="--device cuda"):
        lazy_encoder(device="cuda")


@pytest.fixture
def usable_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device module told that a GPU named 'Test GPU' is usable by every backend."""
    monkeypatch.setattr(device_module, "cuda_missing", lambda backend: None)
    monkeypatch.setattr(encoder_module, "cuda_missing", lambda backend: None)
    monkeypatch.setattr(encoder_module, "gpu_name", lambda: "Test GPU")
    monkeypatch.delenv(encoder_module.BACKEND_ENV, raising=False)


@pytest.mark.slow
def test_on_a_gpu_auto_runs_torch_and_keys_say_so(
    usable_gpu: None, e5_folder: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profile's int8 backend is a CPU choice: on a GPU, auto means torch there;
    a backend named by the user is kept; an explicit cpu stays the CPU default."""
    resolved = resolve(None, cache_dir=model_cache)
    choose = encoder_module._choose_backend
    assert choose("auto", resolved, "auto") == ("torch", "cuda")
    assert choose("auto", resolved, "cpu") == ("openvino-int8", "cpu")
    assert choose("onnx", resolved, "cuda") == ("onnx", "cuda")
    monkeypatch.setenv(encoder_module.BACKEND_ENV, "onnx-int8")
    assert choose("auto", resolved, "auto") == ("onnx-int8", "cuda")

    cpu_key = fingerprint(resolved, "torch", 512, "cpu")
    gpu_key = fingerprint(resolved, "torch", 512, "cuda")
    assert cpu_key == fingerprint(resolved, "torch", 512)  # CPU keys as before devices
    assert gpu_key != cpu_key
    monkeypatch.setattr(encoder_module, "gpu_name", lambda: "Other GPU")
    assert fingerprint(resolved, "torch", 512, "cuda") != gpu_key  # per GPU model

    monkeypatch.delenv(encoder_module.BACKEND_ENV)
    lazy = lazy_encoder(cache_dir=model_cache, device="auto")
    assert (lazy.backend, lazy.device) == ("torch", "cuda")
    assert lazy.fingerprint == fingerprint(resolved, "torch", resolved.max_tokens or 0, "cuda")


def test_gpu_runs_have_one_shape_per_width() -> None:
    assert cuda_rows(32) * 32 <= encoder_module.CUDA_RUN_TOKENS
    assert cuda_rows(8) == encoder_module.CUDA_MAX_ROWS
    assert cuda_rows(512) == encoder_module.CUDA_RUN_TOKENS // 512
    assert encoder_module.rows_per_run("torch", "cuda") is cuda_rows
    assert encoder_module.rows_per_run("torch", "cpu") is None


@pytest.mark.slow
def test_fixed_shape_torch_runs_are_batch_independent(
    e5: Encoder, model_cache: Path, sample
) -> None:
    """The GPU path's batching (fixed rows per width, empty filler windows), run on the
    CPU: each text's vector is the same bytes alone and among others, and the vectors
    agree with torch's free batches to float precision."""
    texts = [row.text for row in sample[:40]]
    fixed = Encoder(cache_dir=model_cache, backend="torch", device="cpu")
    fixed._rows_per_run = cuda_rows
    together = fixed.encode(texts)
    alone = np.stack([fixed.encode([text])[0] for text in texts[:8]])
    assert together[:8].tobytes() == alone.tobytes()
    assert together[::-1].tobytes() == fixed.encode(texts[::-1]).tobytes()
    free = e5.encode(texts)
    assert float(np.min(np.sum(free * together, axis=1))) > 0.99999


def test_cli_lists_the_device_and_refuses_an_unknown_one() -> None:
    from click.testing import CliRunner

    from dedup.cli import main

    runner = CliRunner()
    help_text = runner.invoke(main, ["run", "--help"]).output
    assert "--device [auto|cpu|cuda]" in help_text and "[default: auto]" in help_text
    refused = runner.invoke(main, ["run", "seeds/", "--device", "tpu", "--out", "x"])
    assert refused.exit_code == 2 and "'tpu' is not one of" in refused.output


@needs_no_gpu
@pytest.mark.slow
def test_cli_cuda_without_a_gpu_is_one_error_line(tmp_path: Path, dedup_cache: Path) -> None:
    command = [str(Path(sys.executable).parent / "dedup"), "run", str(REPO / "seeds")]
    command += ["--out", str(tmp_path), "--device", "cuda"]
    command += ["--cache-dir", str(dedup_cache), "--quiet"]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("Error: --device cuda: no NVIDIA driver"), out.stderr
    assert "Traceback" not in out.stderr
