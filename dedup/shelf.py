"""Records on disk instead of in memory: a run's documents and sentences.

A corpus's texts are the largest thing a run holds (about 1.5 KB a document
as Python strings, and as much again for its sentences: ~0.4 GB at 100,000
documents, ~4 GB at a million), yet every stage reads them once, in order,
or a few at a time. A :class:`Shelf` keeps them in an unnamed temporary file
(gone when the shelf is closed or the process ends, even by ``kill -9``) and
only their end offsets in memory (8 bytes a record); a read is a ``pread``
and an unpickle. The views (:class:`Picked`, :class:`FieldView`,
:class:`FlatRows`) give the sequences the stages take (documents in id
order, their texts, one flat list of sentences) without a copy.

Shelves belong to the process that wrote them: forked workers can read them
(the file descriptor is inherited and reads carry their own offset), but a
shelf is not pickled to other machines. What an engine ships, it ships as
lists (see :class:`LazySequence`, their common base).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import numpy as np

T = TypeVar("T")
U = TypeVar("U")

#: bytes gathered before one write, and read at once when iterating.
_BLOCK_BYTES = 1 << 22
#: records a view reads at a time when iterated (through ``take``).
_ITER_RECORDS = 4096
#: :meth:`Shelf.take` reads through a gap of up to this many bytes between two
#: records it needs rather than making another read.
_GAP_BYTES = 1 << 14


def take_from(records: Sequence[T], positions: np.ndarray) -> list[T]:
    """``[records[p] for p in positions]``: through :meth:`LazySequence.take` where
    ``records`` is one (records on disk read a block at a time), else one by one."""
    if isinstance(records, LazySequence):
        return records.take(positions)
    return [records[p] for p in np.asarray(positions, dtype=np.int64).tolist()]


def _in_range(positions: np.ndarray, length: int) -> np.ndarray:
    """``positions`` as int64 with negative ones counted from the end; IndexError
    for any out of range (as a list's indexing)."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    if len(positions) and (positions.min() < -length or positions.max() >= length):
        raise IndexError(f"positions out of range ({length} records)")
    return np.where(positions < 0, positions + length, positions)


class LazySequence(Sequence[T]):
    """A sequence whose records are read or made when asked for, never held.

    Subclasses give ``__len__`` and ``_item(position)`` (a position in range),
    and ``_items(index)`` where a slice can be read faster than item by item.
    Pickled (to a spawned worker, a Ray node) it arrives as a list of its
    records: the file it reads belongs to this process.
    """

    def _item(self, position: int) -> T:
        raise NotImplementedError

    def _items(self, index: slice) -> list[T]:
        return self.take(np.arange(*index.indices(len(self))))

    def take(self, positions: np.ndarray) -> list[T]:
        """``[self[p] for p in positions]``; subclasses read records that lie
        together at once (see :meth:`Shelf.take`)."""
        return [self._item(p) for p in _in_range(positions, len(self)).tolist()]

    def __iter__(self) -> Iterator[T]:
        for start in range(0, len(self), _ITER_RECORDS):
            yield from self._items(slice(start, start + _ITER_RECORDS))

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return self._items(index)
        return self._item(range(len(self))[index])  # negative indices, IndexError

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return list, (list(self),)


class Shelf(LazySequence[T]):
    """An append-only sequence of picklable records kept in a temporary file.

    ``append``/``extend`` write; indexing, slicing and iteration read. Reads
    see every record appended before them. Iteration reads ~4 MB at a time,
    so a full pass costs one sequential read of the file.
    """

    def __init__(self, records: Iterable[T] = (), folder: str | os.PathLike[str] | None = None):
        """``folder``: where the temporary file is made (a run passes its cache's
        ``runs/``, on the disk it already writes to); the system's temp folder
        if None, or if ``folder`` cannot be written (a read-only cache)."""
        self._folder = folder if folder is not None and _writable(Path(folder)) else None
        # the shelf owns its file for its whole life (closed by close() or collection)
        self._file = tempfile.TemporaryFile(prefix="dedup-shelf-", dir=self._folder)  # noqa: SIM115
        self._fd = self._file.fileno()
        self._ends = array("q")  # where each record ends in the file
        self._written = 0  # bytes in the file
        self._pending: list[bytes] = []  # pickled, not yet written
        self._pending_bytes = 0
        self.extend(records)

    def append(self, record: T) -> None:
        self._append_bytes(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))

    def _append_bytes(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._ends.append(self._written + self._pending_bytes)
        if self._pending_bytes >= _BLOCK_BYTES:
            self._flush()

    def extend(self, records: Iterable[T]) -> None:
        for record in records:
            self.append(record)

    def _flush(self) -> None:
        if self._pending:
            os.pwrite(self._fd, b"".join(self._pending), self._written)
            self._written += self._pending_bytes
            self._pending.clear()
            self._pending_bytes = 0

    def _span(self, start: int, stop: int) -> tuple[int, int]:
        """Byte range of records ``start:stop``."""
        return (self._ends[start - 1] if start else 0), self._ends[stop - 1]

    def _read(self, start: int, stop: int) -> list[T]:
        """Records ``start:stop`` (``start < stop``) in one read."""
        self._flush()
        begin, end = self._span(start, stop)
        data = memoryview(os.pread(self._fd, end - begin, begin))
        records = []
        at = 0
        for index in range(start, stop):
            length = self._ends[index] - begin - at
            records.append(pickle.loads(data[at : at + length]))
            at += length
        return records

    def __len__(self) -> int:
        return len(self._ends)

    def _item(self, position: int) -> T:
        return self._read(position, position + 1)[0]

    def _items(self, index: slice) -> list[T]:
        start, stop, step = index.indices(len(self))
        if step != 1:
            return super()._items(index)
        return self._read(start, stop) if start < stop else []

    def take(self, positions: np.ndarray) -> list[T]:
        """Records ``positions`` (any order, repeats allowed), reading records that lie
        close together in one ``pread``: the texts of the documents that lead their
        copy groups, or the sentences of the primaries, are most of a shelf in its
        order, and a read per record cost as much again as unpickling it."""
        positions = _in_range(positions, len(self))
        self._flush()
        ends = np.frombuffer(self._ends, dtype=np.int64)  # no copy: released below
        begins = np.where(positions > 0, ends[positions - 1], 0)
        stops = ends[positions]
        del ends  # an array that shares the offsets' memory would stop appends
        order = np.argsort(begins, kind="stable")
        starts, finals = begins[order].tolist(), stops[order].tolist()
        wanted = order.tolist()
        records: list[Any] = [None] * len(wanted)
        first = 0
        while first < len(wanted):
            begin, end, last = starts[first], finals[first], first + 1
            while (
                last < len(wanted)
                and starts[last] - end <= _GAP_BYTES
                and finals[last] - begin <= _BLOCK_BYTES
            ):
                end = max(end, finals[last])
                last += 1
            data = memoryview(os.pread(self._fd, end - begin, begin))
            for k in range(first, last):
                records[wanted[k]] = pickle.loads(data[starts[k] - begin : finals[k] - begin])
            first = last
        return records

    def __iter__(self) -> Iterator[T]:
        start = 0
        while start < len(self):
            stop = start + 1
            begin = self._ends[start - 1] if start else 0
            while stop < len(self) and self._ends[stop] - begin <= _BLOCK_BYTES:
                stop += 1
            yield from self._read(start, stop)
            start = stop

    def reordered(self, order: np.ndarray) -> Shelf[T]:
        """A new shelf of the records in ``order`` (indices), copied as stored bytes.

        Why: a view reads each record where it lies, one ``pread`` a record;
        a shelf in the order it is read goes ~4 MB a read, and a run reads
        its documents in id order several times.
        """
        self._flush()
        out: Shelf[T] = Shelf(folder=self._folder)
        for index in np.asarray(order, dtype=np.int64).tolist():
            begin, end = self._span(index, index + 1)
            out._append_bytes(os.pread(self._fd, end - begin, begin))
        return out

    def close(self) -> None:
        """Drop the file now (it goes anyway when the shelf is collected)."""
        self._file.close()


def _writable(folder: Path) -> bool:
    """Whether files can be made in ``folder`` (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


class Picked(LazySequence[T]):
    """``[records[i] for i in order]``, read as it is used: documents sorted by id,
    the texts of some documents (any sequence, on a shelf or not)."""

    def __init__(self, records: Sequence[T], order: np.ndarray) -> None:
        self._records = records
        self._order = np.asarray(order, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._order)

    def _item(self, position: int) -> T:
        return self._records[int(self._order[position])]

    def take(self, positions: np.ndarray) -> list[T]:
        return take_from(self._records, self._order[_in_range(positions, len(self))])


class FieldView(LazySequence[U], Generic[T, U]):
    """One field of each record of a sequence (e.g. the texts of the documents)."""

    def __init__(self, records: Sequence[T], field: Callable[[T], U]) -> None:
        self._records = records
        self._field = field

    def __len__(self) -> int:
        return len(self._records)

    def _item(self, position: int) -> U:
        return self._field(self._records[position])

    def _items(self, index: slice) -> list[U]:
        return [self._field(record) for record in self._records[index]]

    def take(self, positions: np.ndarray) -> list[U]:
        return [self._field(record) for record in take_from(self._records, positions)]

    def __iter__(self) -> Iterator[U]:
        return map(self._field, self._records)


class FlatRows(LazySequence[str]):
    """The sentences of some documents as one flat sequence of rows.

    ``sentences_of[d]`` is document ``d``'s tuple of sentences; ``docs`` picks
    and orders the documents (all, in order, if None) and ``offsets`` is where
    each picked document's rows start (``(len(docs) + 1,)``). A row is read
    with its document: the last document read alone is kept (reading the rows
    of one document after another costs one read per document), and
    :meth:`take` reads each document of many rows once.
    """

    def __init__(
        self,
        sentences_of: Sequence[tuple[str, ...]],
        offsets: np.ndarray,
        docs: np.ndarray | None = None,
    ) -> None:
        self._sentences_of = sentences_of
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._docs = None if docs is None else np.asarray(docs, dtype=np.int64)
        self._last: tuple[int, tuple[str, ...]] = (-1, ())

    def _document(self, position: int) -> tuple[str, ...]:
        if self._last[0] != position:
            doc = position if self._docs is None else int(self._docs[position])
            self._last = (position, self._sentences_of[doc])
        return self._last[1]

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _item(self, position: int) -> str:
        document = int(np.searchsorted(self._offsets, position, side="right")) - 1
        return self._document(document)[position - int(self._offsets[document])]

    def _items(self, index: slice) -> list[str]:
        return self.take(np.arange(*index.indices(len(self))))

    def take(self, rows: np.ndarray) -> list[str]:
        """``[self[r] for r in rows]``, each document of the rows read once (with
        the others, see :func:`take_from`)."""
        rows = _in_range(rows, len(self))
        positions = np.searchsorted(self._offsets, rows, side="right") - 1
        within = rows - self._offsets[positions]
        distinct = np.unique(positions)
        docs = distinct if self._docs is None else self._docs[distinct]
        read = dict(zip(distinct.tolist(), take_from(self._sentences_of, docs), strict=True))
        return [
            read[position][row]
            for position, row in zip(positions.tolist(), within.tolist(), strict=True)
        ]

    def __iter__(self) -> Iterator[str]:
        if self._docs is None:
            for sentences in self._sentences_of:
                yield from sentences
            return
        for start in range(0, len(self._docs), _ITER_RECORDS):
            for sentences in take_from(
                self._sentences_of, self._docs[start : start + _ITER_RECORDS]
            ):
                yield from sentences
