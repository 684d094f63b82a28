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

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import numpy as np

from dedup.files import atomic_write
from dedup.records import concat_ranges
from dedup.shelf import Picked

if TYPE_CHECKING:
    from dedup.engines import Engine

#: new vectors are flushed to a shard every this many sentences (bounds the
#: work lost to a kill).
SHARD_ROWS = 2048

#: cached vectors are read and written this many distinct sentences at a time
READ_ROWS = 1 << 16


class SentenceEncoder(Protocol):
    """What this stage needs of :class:`dedup.encoding.Encoder`."""

    fingerprint: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


class KeyIndex:
    """Sorted 16-byte keys and one int64 value each: a lookup table of numpy arrays.

    A dictionary of ``bytes`` keys costs ~200 bytes an entry (2 GB for the
    10 million sentences of a million articles); these arrays cost 24. Keys
    are two uint64 halves sorted by (first, second), so a batch of lookups is
    one ``searchsorted`` over the first halves (a comparison of 16-byte
    strings is ten times slower), the second half settling the rare shared
    first half.

    Args:
        keys: ``(n, 2)`` uint64 (:func:`key_halves`).
        values: ``(n,)`` int64.
        When a key occurs more than once, its last value wins (the order of
        the arrays is the order the entries were made in).
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
        order = np.lexsort((keys[:, 1], keys[:, 0]))  # stable: equal keys keep their order
        keys, values = keys[order], np.asarray(values, dtype=np.int64)[order]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = (keys[1:] != keys[:-1]).any(axis=1)
        self.first, self.second = keys[last, 0].copy(), keys[last, 1].copy()
        self.values = values[last]

    @classmethod
    def of_sorted(cls, first: np.ndarray, second: np.ndarray, values: np.ndarray) -> KeyIndex:
        """An index of arrays already sorted and unique (as :meth:`save` wrote them):
        memory-mapped arrays stay mapped, so a lookup reads only the pages it needs."""
        index = cls.__new__(cls)
        index.first, index.second, index.values = first, second, values
        return index

    def __len__(self) -> int:
        return len(self.values)

    def keys(self) -> np.ndarray:
        """The keys, sorted, as ``(n, 2)`` uint64."""
        return np.stack([self.first, self.second], axis=1)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """``(len(keys),)`` int64: the value of each key, -1 where absent."""
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
        found = np.full(len(keys), -1, dtype=np.int64)
        if not len(self) or not len(keys):
            return found
        left = np.searchsorted(self.first, keys[:, 0], side="left")
        right = np.searchsorted(self.first, keys[:, 0], side="right")
        single = np.flatnonzero(right - left == 1)
        hit = single[self.second[left[single]] == keys[single, 1]]
        found[hit] = self.values[left[hit]]
        for i in np.flatnonzero(right - left > 1):  # a shared first half: 1 in 10^11 pairs
            run = self.second[left[i] : right[i]]
            j = int(np.searchsorted(run, keys[i, 1]))
            if j < len(run) and run[j] == keys[i, 1]:
                found[i] = self.values[left[i] + j]
        return found


def sentence_keys(texts: Sequence[str]) -> np.ndarray:
    """The 16-byte key of each text as ``(n, 2)`` uint64 (:meth:`EmbeddingCache.key`)."""
    return key_halves([_sentence_key(text) for text in texts])


def _sentence_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16, key=b"dedup-v1").digest()


def key_halves(keys: Sequence[bytes] | np.ndarray) -> np.ndarray:
    """16-byte keys (a sequence of ``bytes`` or a ``V16`` array) as ``(n, 2)`` uint64."""
    raw = keys.tobytes() if isinstance(keys, np.ndarray) else b"".join(keys)
    return np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)


class EmbeddingCache:
    """Sentence vectors of one model, on disk, looked up by text.

    The index is a :class:`KeyIndex` from each key to its shard and row
    (``shard << 32 | row``). It is kept in the folder (:meth:`save_index`:
    three ``index-<token>.*.npy`` arrays and ``index.json``, the token and
    the shards it covers, in shard-number order) and memory-mapped when the
    cache is opened, so opening reads one small JSON file and a directory
    listing, and a lookup reads only the index pages it touches, whatever
    the size of the cache; only shards the saved index does not cover (added
    since, or by another run) have their key files read. Entries of shards
    that are gone (``dedup cache prune``) are dropped. The vectors stay in
    their files, a shard mapped only while :meth:`read` copies rows out of it.

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
        self._names: list[str] = []  # each shard's file name stem, by shard number
        self._used: set[int] = set()  # shards that served a lookup (see mark_used)
        # keys and locations of the shards not yet in the index
        self._unindexed: list[tuple[np.ndarray, np.ndarray]] = []
        self._dirty = False  # the index differs from the saved one
        self._numbers: dict[str, int] = {}  # shard number by name
        files = set(os.listdir(self.folder))
        self._index = self._saved_index(files)
        for keys_name in sorted(name for name in files if name.endswith(".keys.npy")):
            stem = keys_name.removesuffix(".keys.npy")
            if stem in self._numbers:
                continue
            try:
                keys = np.load(self.folder / keys_name)
                vecs = np.load(self.folder / f"{stem}.vecs.npy", mmap_mode="r")
            except (OSError, ValueError):
                continue  # a shard whose pair is missing or torn is ignored
            if vecs.shape != (len(keys), dim):
                continue
            self._append_shard(key_halves(keys), stem)

    def _saved_index(self, files: set[str]) -> KeyIndex:
        """The index :meth:`save_index` left, less the shards that are gone (empty if none)."""
        nothing = np.zeros(0, dtype=np.uint64)
        empty = KeyIndex.of_sorted(nothing, nothing, np.zeros(0, dtype=np.int64))
        try:
            saved = json.loads((self.folder / _INDEX).read_text())
            if saved["dim"] != self.dim:
                return empty
            token, names = str(saved["token"]), [str(name) for name in saved["shards"]]
            first, second, values = (
                np.load(self.folder / f"index-{token}.{part}.npy", mmap_mode="r")
                for part in ("first", "second", "values")
            )
        except (OSError, ValueError, KeyError, TypeError):
            return empty  # none yet, or replaced meanwhile by another run's: read the shards
        if not len(first) == len(second) == len(values):
            return empty
        self._names = names
        self._numbers = {name: number for number, name in enumerate(names)}
        gone = [
            number
            for number, name in enumerate(names)
            if f"{name}.keys.npy" not in files or f"{name}.vecs.npy" not in files
        ]
        kept = ~np.isin(values >> 32, gone) if gone else None
        if kept is not None and not kept.all():  # pruned shards: their entries go, saved again
            self._dirty = True
            return KeyIndex.of_sorted(first[kept], second[kept], values[kept])
        return KeyIndex.of_sorted(first, second, values)

    def _append_shard(self, keys: np.ndarray, stem: str) -> None:
        shard = len(self._names)
        self._names.append(stem)
        self._numbers[stem] = shard
        self._unindexed.append((keys, (shard << 32) | np.arange(len(keys), dtype=np.int64)))

    def _vectors(self, shard: int, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` of one shard's vectors, a copy. The shard is mapped for this read
        only: the pages of a map kept open count in the process's resident memory (a warm
        run over 1.27 million cached sentences held ~1 GB of them until it ended)."""
        mapped = np.load(self.folder / f"{self._names[shard]}.vecs.npy", mmap_mode="r")
        return np.asarray(mapped[rows])  # fancy indexing copies; the map closes with ``mapped``

    def _indexed(self) -> KeyIndex:
        """The index, with the shards read or added since the last lookup merged in."""
        if self._unindexed:
            parts = [(self._index.keys(), self._index.values), *self._unindexed]
            self._index = KeyIndex(
                np.concatenate([keys for keys, _ in parts]),
                np.concatenate([where for _, where in parts]),
            )
            self._unindexed = []
            self._dirty = True
        return self._index

    def save_index(self) -> None:
        """Write the index if shards were added or read from their key files since it was
        saved, so the next open maps it instead of reading them (a read-only or full
        cache keeps the old one: the next open reads those key files again)."""
        index = self._indexed()
        if not self._dirty:
            return
        token = hashlib.sha1("".join(self._names).encode()).hexdigest()[:16]
        try:
            for part, array in (
                ("first", index.first),
                ("second", index.second),
                ("values", index.values),
            ):
                _save_atomically(self.folder / f"index-{token}.{part}.npy", np.asarray(array))
            pointer = json.dumps({"token": token, "dim": self.dim, "shards": self._names})
            atomic_write(self.folder / _INDEX, lambda handle: handle.write(pointer.encode()))
        except OSError:
            return
        self._dirty = False
        for old in self.folder.glob("index-*.npy"):  # a run that mapped one keeps its pages
            if not old.name.startswith(f"index-{token}."):
                with contextlib.suppress(OSError):
                    old.unlink()

    def __len__(self) -> int:
        return len(self._indexed())

    def key(self, text: str) -> bytes:
        """16-byte key of one sentence (the same under every model: the folder is the model's)."""
        return _sentence_key(text)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Where each key's vector is (an int64 for :meth:`read`), -1 where it is not cached."""
        where = self._indexed().find(keys)
        self._used.update(np.unique(where[where >= 0] >> 32).tolist())
        return where

    def read(self, where: np.ndarray, dtype: type[np.floating] = np.float32) -> np.ndarray:
        """``(len(where), dim)`` the vectors at ``where`` (from :meth:`find`, none -1),
        one read per shard, as ``dtype``. They are kept as float16: read as float16
        (a run's vector file is float16) they are not widened and narrowed again."""
        where = np.asarray(where, dtype=np.int64)
        out = np.empty((len(where), self.dim), dtype=dtype)
        shard_of = where >> 32
        order = np.argsort(shard_of, kind="stable")
        bounds = np.flatnonzero(np.diff(shard_of[order])) + 1
        for group in np.split(order, bounds) if len(order) else []:
            out[group] = self._vectors(int(shard_of[group[0]]), where[group] & 0xFFFFFFFF)
        return out

    def get(self, key: bytes) -> np.ndarray | None:
        """The cached vector (float32) of one key, or None."""
        where = self.find(key_halves([key]))
        return self.read(where)[0] if where[0] >= 0 else None

    def mark_used(self) -> None:
        """Touch the shards that served lookups: ``dedup cache prune`` drops the least
        recently used shards first, so the vectors of corpora still being run stay."""
        for shard in sorted(self._used):
            # a read-only cache, or a shard pruned meanwhile: nothing to keep
            with contextlib.suppress(OSError):
                os.utime(self.folder / f"{self._names[shard]}.vecs.npy")
        self._used.clear()

    def add(self, keys: Sequence[bytes] | np.ndarray, vectors: np.ndarray) -> None:
        """Write one shard atomically and index it (``keys``: ``bytes`` or :func:`key_halves`)."""
        if not len(keys):
            return
        if isinstance(keys, np.ndarray) and keys.dtype == np.uint64:
            halves = keys.reshape(-1, 2)
        else:
            halves = key_halves(keys)
        raw = np.ascontiguousarray(halves, dtype=np.uint64).tobytes()
        key_array = np.frombuffer(raw, dtype="V16")
        vecs = np.ascontiguousarray(vectors, dtype=np.float16)
        name = hashlib.sha1(raw).hexdigest()[:20]
        # vectors first: a keys file is only ever visible with its vectors beside it
        for suffix, array in ((".vecs.npy", vecs), (".keys.npy", key_array)):
            _save_atomically(self.folder / f"{name}{suffix}", array)
        self._append_shard(halves.copy(), name)


#: the saved index's pointer file (see :meth:`EmbeddingCache.save_index`)
_INDEX = "index.json"


def _save_atomically(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array))


class VectorFile:
    """A run's rows in a float16 (sentence vectors), float32 (document vectors) or
    float64 (align's null terms) ``.npy`` file, read on demand.

    Rows are read with ``pread`` (through the operating system's page cache),
    not memory-mapped, so a corpus of millions of sentences costs the process
    only the rows it holds at a time: mapped pages would count in its resident
    memory. Supports what the later stages use: ``len``, ``shape``, a slice of
    rows, and an integer array of rows (any order, repeats allowed; each run
    of consecutive distinct rows is one read straight into place, and a
    document's sentences are consecutive); ``numpy.asarray`` reads every row.
    Pickles as its path, so an engine's workers on the same file system open
    the file themselves; a :meth:`temporary` file, which has no path,
    pickles as its rows.

    Args:
        path: an ``.npy`` file of shape ``(n, dim)``, C order, dtype float16,
            float32 or float64 (see :meth:`create`).
    """

    def __init__(self, path: Path) -> None:
        self.path: Path | None = Path(path)
        with open(self.path, "rb") as handle:
            self._read_header(handle)
        self._fd: int | None = None
        self._file: IO[bytes] | None = None

    def _read_header(self, handle: IO[bytes]) -> None:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle)
        self._data_offset = handle.tell()
        if fortran or dtype not in (np.float16, np.float32, np.float64) or len(shape) != 2:
            raise ValueError(f"{self.path}: expected a C-ordered float (n, dim) array")
        self.dtype = np.dtype(dtype)
        self.shape = (int(shape[0]), int(shape[1]))
        self._row_bytes = self.shape[1] * self.dtype.itemsize

    @classmethod
    def create(cls, path: Path, rows: int, dim: int) -> VectorWriter:
        """A new float16 file of ``rows x dim`` zeros, and the writer that fills it."""
        return VectorWriter(path, rows, dim)

    @classmethod
    def temporary(
        cls, rows: int, dim: int, dtype: type[np.floating], folder: Path | None
    ) -> tuple[VectorWriter, VectorFile]:
        """An unnamed file of ``rows x dim`` zeros (gone with the process, even after
        ``kill -9``) in ``folder`` (the system's temp folder if None): its writer,
        and the reader that sees what the writer flushed.

        Why: a run's document vectors (``n_docs x 384`` float32, 1.5 GB at a
        million documents) are read a block at a time by the candidate search
        and kept for the run's result, beyond the run's work folder.
        """
        handle = tempfile.TemporaryFile(prefix="dedup-vectors-", dir=folder)  # noqa: SIM115
        writer = VectorWriter(handle, rows, dim, dtype)
        reader = cls.__new__(cls)
        reader.path, reader._file = None, handle
        handle.seek(0)
        reader._read_header(handle)
        reader._fd = handle.fileno()
        return writer, reader

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path} if self.path is not None else {"rows": self[:]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "rows" in state:  # a temporary file's rows, in a file of this process
            rows = state["rows"]
            writer, reader = VectorFile.temporary(*rows.shape, rows.dtype.type, None)
            writer[:] = rows
            writer.close()
            self.__dict__.update(reader.__dict__)
            return
        self.__init__(state["path"])  # type: ignore[misc]

    def _read(self, first: int, count: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)  # type: ignore[arg-type]
        data = os.pread(
            self._fd, count * self._row_bytes, self._data_offset + first * self._row_bytes
        )
        return np.frombuffer(data, dtype=self.dtype).reshape(count, self.shape[1])

    def __getitem__(self, index: slice | np.ndarray) -> np.ndarray:
        if isinstance(index, slice):
            first, stop, step = index.indices(self.shape[0])
            if step != 1:
                raise IndexError("VectorFile slices take step 1")
            return self._read(first, max(stop - first, 0))
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if not len(index):
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        if index.min() < 0 or index.max() >= self.shape[0]:
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        # each distinct row once, in file order, then put where it was asked for
        if np.all(index[1:] > index[:-1]):
            rows, where = index, None
        else:
            rows, where = np.unique(index, return_inverse=True)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        starts = np.r_[0, np.flatnonzero(np.diff(rows) != 1) + 1]
        stops = np.r_[starts[1:], len(rows)]
        for start, stop, first in zip(
            starts.tolist(), stops.tolist(), rows[starts].tolist(), strict=True
        ):
            out[start:stop] = self._read(first, stop - start)  # consecutive rows
        return out if where is None else out[where.reshape(-1)]

    def __del__(self) -> None:
        # a temporary file's descriptor is its file object's, closed with it
        if getattr(self, "_fd", None) is not None and getattr(self, "_file", None) is None:
            os.close(self._fd)  # type: ignore[arg-type]


class VectorWriter:
    """Fills the rows of a new :class:`VectorFile` with ``pwrite``, not through a map.

    Written pages of a memory map count in the process's resident memory
    until it is unmapped (the whole file, at the end of embedding: 1 GB at
    100,000 documents); written through the file they are the page cache's.
    Rows are buffered (``BUFFER_ROWS``), sorted, and each run of consecutive
    rows is one write. Takes a slice or an array of distinct row numbers, and
    one row of values or one per row; :meth:`flush` writes what is buffered.

    Args:
        path: the ``.npy`` file to make (C order, ``rows x dim``; rows never
            written read as zeros), or an open binary file to make it in.
        rows, dim: its shape.
        dtype: float16 (sentence vectors), float32 or float64.
    """

    BUFFER_ROWS = 1 << 16

    def __init__(
        self,
        path: Path | IO[bytes],
        rows: int,
        dim: int,
        dtype: type[np.floating] = np.float16,
    ) -> None:
        self.shape = (rows, dim)
        self.dtype = np.dtype(dtype)
        header = {"descr": self.dtype.str, "fortran_order": False, "shape": self.shape}
        named = isinstance(path, (str, Path))
        with open(path, "wb") if named else contextlib.nullcontext(path) as handle:
            np.lib.format.write_array_header_2_0(handle, header)
            self._data_offset = handle.tell()
            handle.truncate(self._data_offset + rows * dim * self.dtype.itemsize)
            handle.flush()
            # its own descriptor: closing the writer leaves a temporary file's open
            self._fd: int | None = os.open(path, os.O_WRONLY) if named else os.dup(handle.fileno())
        self._rows: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._buffered = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, index: slice | Sequence[int] | np.ndarray, values: np.ndarray) -> None:
        if isinstance(index, slice):
            rows = np.arange(*index.indices(self.shape[0]), dtype=np.int64)
        else:
            rows = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        block = np.broadcast_to(np.asarray(values, dtype=self.dtype), (len(rows), self.shape[1]))
        self._rows.append(rows)
        self._values.append(np.array(block))
        self._buffered += len(rows)
        if self._buffered >= self.BUFFER_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows to the file."""
        if not self._buffered or self._fd is None:
            return
        rows, values = np.concatenate(self._rows), np.concatenate(self._values)
        self._rows, self._values, self._buffered = [], [], 0
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], values[order]
        if np.any(np.diff(rows) == 0):
            raise ValueError("a row was written twice before a flush")
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        row_bytes = self.shape[1] * self.dtype.itemsize
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)], strict=True):
            offset = self._data_offset + int(rows[start]) * row_bytes
            os.pwrite(self._fd, values[start:stop], offset)  # contiguous rows: no copy

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """How to load an :class:`dedup.encoding.Encoder` in another process.

    This, not the model, is what an engine ships to its workers: each worker
    process loads the model once (:meth:`load`) from the model folder under
    ``cache_dir`` (built there on first use when missing, see
    :func:`dedup.encoding.ensure_model`), and checks that it has the driver's
    ``fingerprint``, so a node with another build fails instead of giving
    other vectors.

    Attributes:
        model: as ``PipelineConfig.model``.
        cache_dir: the cache root, absolute (as the driver resolved it).
        batch_size: windows per forward pass.
        fingerprint: the driver's encoder fingerprint.
        backend: the driver encoder's backend (None: the Encoder's default).
        device: the driver encoder's device (``"cpu"`` or ``"cuda"``): every
            worker runs where the driver does, or fails.

    A worker runs the model with ``$OMP_NUM_THREADS`` threads when that is set
    (Ray sets it to the CPUs a task holds, 1 by default), so that workers
    sharing a node do not oversubscribe its cores.
    """

    model: str | None
    cache_dir: str
    batch_size: int
    fingerprint: str
    backend: str | None = None
    device: str = "cpu"

    def load(self) -> SentenceEncoder:
        """This process's encoder for this spec, loaded on first use and then kept."""
        if self not in _PROCESS_ENCODERS:
            from dedup.encoding import Encoder

            options: dict[str, Any] = {}
            if self.backend is not None:
                options["backend"] = self.backend
            threads = os.environ.get("OMP_NUM_THREADS", "")
            encoder = Encoder(
                self.model,
                cache_dir=Path(self.cache_dir),
                batch_size=self.batch_size,
                threads=int(threads) if threads.isdigit() and int(threads) > 0 else None,
                device=self.device,
                **options,
            )
            if encoder.fingerprint != self.fingerprint:
                raise RuntimeError(
                    f"model {self.model!r} under {self.cache_dir} has fingerprint "
                    f"{encoder.fingerprint} on this node, {self.fingerprint} on the driver"
                )
            _PROCESS_ENCODERS.clear()  # one model per worker process
            _PROCESS_ENCODERS[self] = encoder
        return _PROCESS_ENCODERS[self]


_PROCESS_ENCODERS: dict[EncoderSpec, SentenceEncoder] = {}


class _EncoderHandle:
    """The encoder as chunk functions see it: the object itself in this process,
    only its :class:`EncoderSpec` (when there is one) once pickled for a worker."""

    def __init__(self, encoder: SentenceEncoder, spec: EncoderSpec | None) -> None:
        self.encoder: SentenceEncoder | None = encoder
        self.spec = spec
        self.remote = False

    def __getstate__(self) -> dict[str, Any]:
        shipped = None if self.spec is not None else self.encoder
        return {"encoder": shipped, "spec": self.spec, "remote": True}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def get(self) -> SentenceEncoder:
        if self.encoder is None:
            assert self.spec is not None
            self.encoder = self.spec.load()
        return self.encoder


def _encode_chunk(texts: Sequence[str], handle: _EncoderHandle) -> list[tuple[np.ndarray, int]]:
    """One chunk's vectors, and the texts it windowed when it ran in another process."""
    encoder = handle.get()
    before = getattr(encoder, "windowed_texts", 0)
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    windowed = getattr(encoder, "windowed_texts", 0) - before if handle.remote else 0
    return [(vectors, windowed)]


def embed_sentences(
    sentences: Sequence[str],
    encoder: SentenceEncoder,
    cache: EmbeddingCache | None = None,
    *,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    engine: Engine | None = None,
    spec: EncoderSpec | None = None,
    out: np.ndarray | VectorWriter | None = None,
) -> tuple[np.ndarray | VectorWriter, int]:
    """Vectors of ``sentences`` (float32, ``(n, dim)``) and how many were newly encoded.

    Each distinct text is encoded once; cached vectors are reused; the missing
    ones are encoded ``SHARD_ROWS`` at a time, each such chunk by ``engine``
    (default: in this process), and added to the cache as one shard as soon
    as it is back (here, on the driver: workers only return vectors).

    Args:
        engine: where the chunks are encoded.
        spec: how a worker process loads ``encoder`` itself; without it,
            an engine that runs chunks elsewhere pickles ``encoder``.
        out: ``(n, dim)`` array (or :class:`VectorWriter`, from
            :meth:`VectorFile.create`) to write the vectors into; a new float32
            array when None.
    """
    from dedup.engines import LocalEngine

    engine = engine or LocalEngine(progress=progress)
    if isinstance(engine, LocalEngine):
        engine = engine.in_process()  # the model already uses every core
    if out is None:
        out = np.zeros((len(sentences), encoder.dim), dtype=np.float32)
    keys = sentence_keys(sentences)
    # the distinct texts: rows grouped by key (``by_key``), a group per distinct key
    by_key = np.lexsort((keys[:, 1], keys[:, 0]))  # stable: a group's first row is first
    sorted_keys = keys[by_key]
    del keys
    new_key = np.ones(len(sorted_keys), dtype=bool)
    new_key[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
    starts = np.flatnonzero(new_key)
    ends = np.append(starts[1:], len(sorted_keys)) if len(starts) else starts
    distinct_keys = sorted_keys[starts]
    del sorted_keys

    def write(groups: np.ndarray, vectors: np.ndarray) -> None:
        rows, _ = concat_ranges(starts[groups], ends[groups])
        out[by_key[rows]] = np.repeat(vectors, ends[groups] - starts[groups], axis=0)

    where = cache.find(distinct_keys) if cache is not None else np.full(len(starts), -1)
    # cached: read in the order of the shards, so a block of rows touches few of them
    found = np.flatnonzero(where >= 0)
    found = found[np.argsort(where[found], kind="stable")]
    for block in range(0, len(found), READ_ROWS):
        groups = found[block : block + READ_ROWS]
        write(groups, cache.read(where[groups], out.dtype))  # type: ignore[union-attr]
    if cache is not None:
        cache.mark_used()
    # missing: encoded in the order the texts first occur (the shards a run writes
    # do not depend on the order of the keys)
    missing_groups = np.flatnonzero(where < 0)
    missing_groups = missing_groups[np.argsort(by_key[starts[missing_groups]], kind="stable")]
    # (read chunk by chunk where they lie: a cold run misses every sentence)
    missing = Picked(sentences, by_key[starts[missing_groups]])
    # one chunk per shard, whatever the engine: the same texts share an encoder call
    shard_rows = SHARD_ROWS
    chunks = engine.imap_chunks(
        _encode_chunk,
        missing,
        desc="encoding",
        shared=_EncoderHandle(encoder, spec),
        chunk_size=shard_rows,
    )
    for start, ((vectors, windowed),) in zip(
        range(0, len(missing), shard_rows), chunks, strict=True
    ):
        groups = missing_groups[start : start + shard_rows]
        if windowed and hasattr(encoder, "windowed_texts"):
            encoder.windowed_texts += windowed  # type: ignore[attr-defined]
        if cache is not None:
            # the cache keeps float16: use the very vectors a re-run will read back,
            # so a cold and a warm cache give the same result
            vectors = np.asarray(vectors, dtype=np.float16)
        write(groups, vectors.astype(out.dtype, copy=False))
        if cache is not None:
            cache.add(distinct_keys[groups], vectors)
        if on_batch is not None:
            on_batch(len(groups))
    if cache is not None:
        cache.save_index()
    return out, len(missing)
