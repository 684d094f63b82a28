"""A static sentence-transformers model (``StaticEmbedding``) run in numpy.

A static model is a table of token vectors and a tokenizer: a text's vector
is the mean of its tokens' rows (torch's ``EmbeddingBag`` in mode ``mean``).
Run through sentence-transformers it costs importing torch and
sentence-transformers (~3 s) and a copy of the whole table in memory (the
stand-in encoder of ``bench/pipeline_scale.py``: 250,037 x 384 float32, 384
MB) in the driver and in every engine worker. Here the table is memory-mapped
from the folder's ``model.safetensors``, so a process holds only the rows of
the tokens it meets, and nothing but ``tokenizers`` and numpy is imported.

Each bag's rows are added as ``np.add.reduceat`` adds them (a compiled loop
that gives its bytes without gathering the rows) and the sum divided by the
bag's size. Torch's
``EmbeddingBag`` gives the same bytes on short texts but sums long ones in
another order, so the last bits of a long text's vector differ
(``tests/encoding/test_encoder.py`` compares them with
sentence-transformers'): the encoder's fingerprint says which way a vector
was pooled, and the embedding cache never mixes the two.

Only the plain layout is read here: one ``StaticEmbedding`` module (a
trailing ``Normalize`` allowed) whose ``model.safetensors`` holds one float32
``embedding.weight``. Anything else (model2vec's token mapping or per-token
weights, float16 tables, ``pytorch_model.bin``) goes through
sentence-transformers as before (:meth:`StaticTable.of` returns None).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

#: the one tensor of a plain StaticEmbedding module's safetensors file
TABLE_KEY = "embedding.weight"


class StaticTable:
    """A static model's tokenizer and memory-mapped token table.

    Attributes:
        tokenizer: the module's ``tokenizers.Tokenizer``, without padding (as
            sentence-transformers sets it).
        table: ``(vocabulary, dim)`` float32, mapped read-only from the file.
        dim: the vectors' dimension.
    """

    def __init__(self, tokenizer: Any, table: np.ndarray) -> None:
        self.tokenizer = tokenizer
        self.table = table
        self.dim = int(table.shape[1])

    @classmethod
    def of(cls, folder: Path) -> StaticTable | None:
        """The static model in ``folder``, or None where it is not the plain layout."""
        folder = Path(folder)
        try:
            modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
        while kinds and kinds[-1] == "Normalize":
            kinds.pop()
        if kinds != ["StaticEmbedding"]:
            return None
        module = folder / str(modules[0].get("path", ""))
        table = _mapped_table(module / "model.safetensors")
        if table is None or not (module / "tokenizer.json").is_file():
            return None
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(module / "tokenizer.json"))
        tokenizer.no_padding()
        return cls(tokenizer, table)

    def pooled(self, seqs: list[list[int]], width: int = 0) -> np.ndarray:
        """``(len(seqs), dim)`` float32: each token list's mean row (zeros for an
        empty one, as ``EmbeddingBag`` gives). ``width`` is unused (no padding)."""
        flat, lengths = flat_bags(seqs)
        out = np.zeros((len(seqs), self.dim), dtype=np.float32)
        if not len(flat):
            return out
        for bag in _bag_sums(self.table, flat, lengths, out).tolist():
            first = int(lengths[:bag].sum())
            rows = self.table[flat[first : first + lengths[bag]]]
            out[bag] = np.add.reduceat(rows, np.zeros(1, dtype=np.int64), axis=0)[0]
        filled = lengths > 0
        out[filled] /= lengths[filled, None].astype(np.float32)
        return out


#: the longest bag summed by :func:`_bag_sums`: numpy's pairwise summation
#: splits more rows than this in halves (longer bags are left to numpy)
_PAIRWISE_BLOCK = 128


@njit(cache=True, nogil=True)
def _bag_sums(
    table: np.ndarray, flat: np.ndarray, lengths: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``out[b]`` = the sum of the table rows of bag ``b``'s tokens, in the bytes
    ``np.add.reduceat`` over the gathered rows gives, without gathering them.

    reduceat adds the first row to numpy's pairwise sum of the others (below 8
    rows: one after another from -0.0; up to 128: eight running sums, one per
    row modulo 8, joined as ((0+1)+(2+3))+((4+5)+(6+7)), then the rest one by
    one). Returns the bags of more than ``_PAIRWISE_BLOCK + 1`` rows, left
    undone (numpy splits those recursively).
    """
    dim = table.shape[1]
    partial = np.zeros((8, dim), dtype=np.float32)
    rest = np.zeros(dim, dtype=np.float32)
    longer = []
    at = 0
    for bag in range(len(lengths)):
        count = lengths[bag]
        first = at
        at += count
        others = count - 1
        if count == 0:
            continue
        if others > _PAIRWISE_BLOCK:
            longer.append(bag)
            continue
        if others < 8:
            rest[:] = -0.0  # numpy's start: the sum of nothing, -0.0 + x == x for every x
            for k in range(first + 1, first + count):
                rest += table[flat[k]]
        else:
            for j in range(8):
                partial[j] = table[flat[first + 1 + j]]
            whole = others - others % 8
            for i in range(8, whole, 8):
                for j in range(8):
                    partial[j] += table[flat[first + 1 + i + j]]
            rest[:] = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
                (partial[4] + partial[5]) + (partial[6] + partial[7])
            )
            for i in range(whole, others):
                rest += table[flat[first + 1 + i]]
        out[bag] = table[flat[first]] + rest
    return np.array(longer, dtype=np.int64)


def flat_bags(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All token lists in one int64 row and each one's length (``EmbeddingBag``'s
    input, without a Python loop per row)."""
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths


def _mapped_table(path: Path) -> np.ndarray | None:
    """The one float32 ``embedding.weight`` of a safetensors file, memory-mapped;
    None for any other content. Read by hand because the safetensors library
    hands numpy a copy, not a map. The format: an 8-byte little-endian header
    length, a JSON header of each tensor's dtype, shape and byte range, the data."""
    try:
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return None
    header.pop("__metadata__", None)
    entry = header.get(TABLE_KEY)
    if set(header) != {TABLE_KEY} or entry.get("dtype") != "F32" or len(entry["shape"]) != 2:
        return None
    begin, end = entry["data_offsets"]
    rows, dim = (int(n) for n in entry["shape"])
    if end - begin != rows * dim * 4:
        return None
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + size + begin, shape=(rows, dim))
