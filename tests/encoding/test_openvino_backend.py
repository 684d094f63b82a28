"""The OpenVINO int8 backend (the default model's default): built, keyed, bit-stable, quiet.

Its quality bars (cosine to fp32 torch, translations kept closest) are the
fast backend's tests in ``test_onnx_backend.py``, run on ``e5_fast``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from dedup.encoding import DeviceUnavailableError, Encoder
from dedup.encoding import device as device_module
from dedup.encoding import encoder as encoder_module
from dedup.encoding.device import cpu_has_int8_dot_product, resolve_device
from dedup.encoding.encoder import backend_folder, fingerprint, rows_per_run
from dedup.encoding.onnx_backend import META_FILE
from dedup.encoding.openvino_backend import (
    MODEL_XML,
    OPENVINO_BACKEND_VERSION,
    calibration_texts,
)
from dedup.encoding.registry import resolve


def test_the_calibration_sample_spans_many_scripts() -> None:
    """Static scales are only as good as the activations they saw: the sample must
    not be one language (a script missing from it could overflow its scales)."""
    texts = calibration_texts()
    assert len(texts) == 180 and len(set(texts)) == 180
    scripts = {
        unicodedata.name(ch, "?").split()[0] for text in texts for ch in text if ch.isalpha()
    }
    assert len(scripts) >= 25, sorted(scripts)


def test_the_cpu_only_backend_is_refused_a_gpu_and_runs_free_batches() -> None:
    with pytest.raises(DeviceUnavailableError, match="runs on the CPU only"):
        resolve_device("cuda", "openvino-int8")
    assert resolve_device("auto", "openvino-int8") == "cpu"
    assert rows_per_run("openvino-int8", "cpu") is None


def test_a_cap_on_onednn_below_vnni_counts_as_no_int8_dot_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_int8_dot_product()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core")
    assert not cpu_has_int8_dot_product()


@pytest.mark.slow
def test_without_int8_dot_products_auto_keeps_onnx_int8_and_keys_differ(
    e5_folder: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO's int8 without VNNI gives vectors further from fp32 (measured with
    ONEDNN_MAX_CPU_ISA=AVX2: cosine mean 0.9979, min 0.9912 on 783 sentences), so
    the profile's choice falls back to ONNX int8 there; a named backend is kept, and
    its vectors are keyed apart from a VNNI machine's."""
    monkeypatch.delenv(encoder_module.BACKEND_ENV, raising=False)
    resolved = resolve(None, cache_dir=model_cache)
    choose = encoder_module._choose_backend
    monkeypatch.setattr(device_module, "cpu_has_int8_dot_product", lambda: True)
    assert choose("auto", resolved, "cpu") == ("openvino-int8", "cpu")
    with_dot = [fingerprint(resolved, b, 512) for b in ("openvino-int8", "onnx-int8")]
    monkeypatch.setattr(device_module, "cpu_has_int8_dot_product", lambda: False)
    assert choose("auto", resolved, "cpu") == ("onnx-int8", "cpu")
    assert choose("openvino-int8", resolved, "cpu") == ("openvino-int8", "cpu")
    without = [fingerprint(resolved, b, 512) for b in ("openvino-int8", "onnx-int8")]
    assert without[0] != with_dot[0]  # OpenVINO's vectors differ without VNNI
    assert without[1] == with_dot[1]  # ONNX Runtime's keys stay those of before


@pytest.mark.slow
def test_the_build_is_kept_with_its_provenance(e5_fast: Encoder, e5_folder: Path) -> None:
    cache = e5_folder.parents[1]
    built = backend_folder(resolve(cache_dir=cache), "openvino-int8", cache)
    assert built.name == f"{e5_folder.name}-openvino-int8-{OPENVINO_BACKEND_VERSION}"
    assert (built / MODEL_XML).is_file() and (built / "model.bin").is_file()
    meta = json.loads((built / META_FILE).read_text(encoding="utf-8"))
    assert meta["backend"] == "openvino-int8" and meta["calibration_texts"] == 180
    assert meta["openvino_version"] != "unknown" and meta["nncf_version"] != "unknown"
    assert not (built / "onnx").exists()  # the build's ONNX files are removed
    assert not list(built.parent.glob(f"{built.name}.tmp-*"))


@pytest.mark.slow
def test_a_vector_does_not_depend_on_its_batch_nor_the_threads(
    e5_fast: Encoder, model_cache: Path, sample
) -> None:
    """Fixed activation scales: a window's int8 codes are its own, so batches of any
    size, in any order, at 1 or 2 threads give the same bytes as the text alone."""
    latin = ("eng_Latn", "deu_Latn", "spa_Latn")
    long_text = "\n".join(r.text for r in sample if r.source == "ntrex" and r.lang in latin)
    texts = [row.text for row in sample] + ["", "x", long_text]
    together = e5_fast.encode(texts)
    rng = np.random.default_rng(0)
    picks = [*rng.choice(len(texts), 12, replace=False).tolist(), len(texts) - 1]
    alone = np.stack([e5_fast.encode([texts[i]])[0] for i in picks])
    assert alone.tobytes() == together[picks].tobytes()
    shuffled = rng.permutation(len(texts))
    try:
        for batch_size in (3, 64):
            e5_fast.batch_size = batch_size
            again = e5_fast.encode([texts[i] for i in shuffled])
            assert again.tobytes() == together[shuffled].tobytes(), batch_size
    finally:
        e5_fast.batch_size = 32
    one_thread = Encoder(cache_dir=model_cache, backend="openvino-int8", threads=1)
    assert one_thread.encode(texts[::-1]).tobytes() == together[::-1].tobytes()
    assert e5_fast.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_building_sends_and_writes_nothing_outside_the_cache(tmp_path: Path) -> None:
    """``import openvino`` and NNCF start usage statistics unless told not to (a
    client id and counters under ~/intel, events uploaded). A fresh build and a
    run in a process with an empty home leave that home empty."""
    code = (
        "from dedup.encoding import Encoder; import sys; "
        "Encoder(cache_dir=sys.argv[1], backend='openvino-int8').encode(['x'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NNCF_CI", "CI", "DEDUP_CACHE")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME="")
    (tmp_path / "home").mkdir()
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache")], env=env, check=True, timeout=600
    )
    assert list((tmp_path / "home").rglob("*")) == []


def test_a_build_that_fails_in_its_child_process_says_so(tmp_path: Path) -> None:
    """The OpenVINO build runs in a child process: its failure is one error naming
    the backend, the exit status, the way out and the child's last lines."""
    from dedup.encoding.encoder import _build_in_child

    job = {
        "folder": str(tmp_path / "no-such-model"),
        "backend": "openvino-int8",
        "prefix": "",
        "max_tokens": 512,
        "model": "missing-model",
        "weights_id": "x",
        "threads": 1,
    }
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "left-by-a-dead-child").write_text("x", encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"openvino-int8 backend of missing-model failed") as err:
        _build_in_child(job, dest)
    assert "exit status 1, try 1 of 2" in str(err.value)
    assert "DEDUP_ENCODER_BACKEND=onnx-int8" in str(err.value)
    assert "no-such-model" in str(err.value)  # the child's own error, passed on
    assert list(dest.iterdir()) == []
