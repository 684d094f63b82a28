"""Embed: one vector per sentence, each distinct sentence encoded once, cached on disk.

Encoding dominates the cost of a run, so this stage never encodes the same
text twice: identical sentences (site boilerplate, reposts) are encoded once
per run, and every vector is kept in an on-disk cache keyed by a hash of the
model fingerprint and the sentence text, so a re-run, or a run over a corpus
that grew, encodes only what is new.

The cache is a folder of append-only shards (``<digest>.keys.npy`` with
16-byte keys and ``<digest>.vecs.npy`` with float16 vectors; float16 changes
cosines by < 1e-3). A shard is written to a temporary name and renamed into
place, so a run killed mid-way (even ``kill -9``) leaves only whole shards and
the next run resumes from them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

#: new vectors are flushed to a shard every this many sentences (bounds the
#: work lost to a kill).
SHARD_ROWS = 2048


class SentenceEncoder(Protocol):
    """What this stage needs of :class:`dedup.encoding.Encoder`."""

    fingerprint: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


class EmbeddingCache:
    """Sentence vectors of one model, on disk, looked up by text.

    Args:
        root: the cache folder (``<cache>/embeddings``); a sub-folder per model
            fingerprint is made in it.
        fingerprint: identifies model weights, prefix and windowing, so two
            models never share vectors.
        dim: the model's vector size (checked on every shard read).
    """

    def __init__(self, root: Path, fingerprint: str, dim: int) -> None:
        self.folder = Path(root) / hashlib.sha1(fingerprint.encode()).hexdigest()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.dim = dim
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        for keys_path in sorted(self.folder.glob("*.keys.npy")):
            vecs_path = keys_path.with_name(keys_path.name.replace(".keys.", ".vecs."))
            try:
                keys = np.load(keys_path)
                vecs = np.load(vecs_path, mmap_mode="r")
            except (OSError, ValueError):
                continue  # a shard whose pair is missing or torn is ignored
            if vecs.shape != (len(keys), dim):
                continue
            shard = len(self._shards)
            self._shards.append(vecs)
            for row, key in enumerate(keys):
                self._index[key.tobytes()] = (shard, row)

    def __len__(self) -> int:
        return len(self._index)

    def key(self, text: str) -> bytes:
        """16-byte key of one sentence under this model."""
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16, key=b"dedup-v1").digest()

    def get(self, key: bytes) -> np.ndarray | None:
        """The cached vector (float32) or None."""
        where = self._index.get(key)
        if where is None:
            return None
        shard, row = where
        return np.asarray(self._shards[shard][row], dtype=np.float32)

    def add(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Write one shard atomically and index it."""
        if not len(keys):
            return
        key_array = np.frombuffer(b"".join(keys), dtype="V16")
        vecs = np.ascontiguousarray(vectors, dtype=np.float16)
        name = hashlib.sha1(b"".join(keys)).hexdigest()[:20]
        # vectors first: a keys file is only ever visible with its vectors beside it
        for suffix, array in ((".vecs.npy", vecs), (".keys.npy", key_array)):
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, array)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / f"{name}{suffix}")
        shard = len(self._shards)
        self._shards.append(vecs)
        for row, key in enumerate(keys):
            self._index[key] = (shard, row)


def embed_sentences(
    sentences: Sequence[str],
    encoder: SentenceEncoder,
    cache: EmbeddingCache | None = None,
    *,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors of ``sentences`` (float32, ``(n, dim)``) and how many were newly encoded.

    Each distinct text is encoded once; cached vectors are reused; new ones
    are added to the cache in shards of ``SHARD_ROWS``.
    """
    out = np.zeros((len(sentences), encoder.dim), dtype=np.float32)
    rows_of: dict[str, list[int]] = {}
    for row, text in enumerate(sentences):
        rows_of.setdefault(text, []).append(row)
    missing: list[str] = []
    for text, rows in rows_of.items():
        vec = cache.get(cache.key(text)) if cache is not None else None
        if vec is None:
            missing.append(text)
        else:
            out[rows] = vec
    # long texts last within each shard keeps batches of similar length together
    for start in range(0, len(missing), SHARD_ROWS):
        chunk = missing[start : start + SHARD_ROWS]
        vectors = encoder.encode(chunk, progress=progress)
        if cache is not None:
            # the cache keeps float16: use the very vectors a re-run will read back,
            # so a cold and a warm cache give the same result
            vectors = np.asarray(vectors, dtype=np.float16).astype(np.float32)
        for text, vec in zip(chunk, vectors, strict=True):
            out[rows_of[text]] = vec
        if cache is not None:
            cache.add([cache.key(t) for t in chunk], vectors)
        if on_batch is not None:
            on_batch(len(chunk))
    return out, len(missing)
