"""The records that flow one way through the pipeline.

Each stage reads the records of the stage before it and returns new ones; none
is mutated after it is made. Text-level records are frozen dataclasses; the
numeric bulk (sentence vectors, candidate pairs, labels) travels as numpy
arrays, so nothing is copied per sentence.

Order of the stages and what each adds::

    ingest      -> Document, SkippedInput
    copies      -> primary of each document     (exact / near-exact copies)
    langid      -> LanguageGuess                (per document)
    segment     -> sentences (tuple[str, ...])  (per document)
    embed       -> sentence vectors             (numpy, one row per sentence)
    candidates  -> document pairs               (numpy, (m, 2))
    align       -> PairEvidence                 (scores + aligned sentence pairs,
                                                 as columns: EvidenceTable)
    cluster     -> cluster labels               (numpy, one per document)
    report      -> files in --out
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, overload

import numpy as np

from dedup.shelf import LazySequence, take_from


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while millions of records are made.

    Records hold no reference cycles, yet every few hundred thousand new
    objects the collector walks all the objects alive: receiving the
    evidence of 2.5 million candidate pairs took twice as long with it on.
    Memory is still freed by reference counting; the collector runs again
    when the block ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def sorted_unique(values: np.ndarray, kind: str | None = None) -> np.ndarray:
    """``np.unique(values)`` for a 1-d array, by sorting (``kind`` as ``np.sort``'s:
    ``"stable"`` is timsort for int64, linear on a few sorted runs joined).

    Why: numpy 2.4's plain ``np.unique`` (no ``return_*``) takes a hash-table
    path that is ~20x slower than a sort on millions of int64 pair codes (3.7 s
    against 0.2 s for 3.5 million, measured here); the pair sets of a large
    corpus are exactly that.
    """
    ordered = np.sort(np.asarray(values).ravel(), kind=kind)
    if len(ordered) < 2:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def concat_ranges(begins: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``concatenate([arange(b, e) for b, e in zip(begins, ends)])`` and where each
    range begins in it (``(len + 1,)``), without a Python loop."""
    lengths = np.asarray(ends) - np.asarray(begins)
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    within = np.arange(starts[-1]) - np.repeat(starts[:-1], lengths)
    return np.repeat(np.asarray(begins), lengths) + within, starts


@dataclass(frozen=True, slots=True)
class Document:
    """One input article.

    Attributes:
        id: unique id within the run (file path without extension, or the id field).
        text: the article text, normalised (NFC, no control characters).
        origin: where it was read, ``file``, ``file:line`` or, for a CSV record
            whose quoted cells span lines, ``file:first-last``, for messages.
        title, url, date: optional metadata passed through to the report.
        lang: a language code given by the input, if any (never required).
        extra: any other input fields, kept for the report.
    """

    id: str
    text: str
    origin: str
    title: str | None = None
    url: str | None = None
    date: str | None = None
    lang: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __reduce__(self) -> tuple[type[Document], tuple[object, ...]]:
        # pickled as its fields: a run reads documents back from disk many times
        # (dedup.shelf), and a frozen dataclass's default unpickling is ~1.4x slower
        fields = (self.id, self.text, self.origin, self.title, self.url, self.date, self.lang)
        return Document, (*fields, self.extra)


@dataclass(frozen=True, slots=True)
class SkippedInput:
    """An input record that did not become a document, and why."""

    origin: str
    reason: str
    doc_id: str | None = None


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """Language of a document: ISO 639-1 code (or 'und'), confidence, dominant script."""

    lang: str
    confidence: float
    script: str

    @property
    def group(self) -> str:
        """The key that groups documents "of one language" for the decisions.

        A confident language code where there is one; otherwise the script, so
        documents in a language the identifier does not know still group with
        their own kind instead of with a wrong guess.
        """
        return self.lang if self.lang != "und" else f"und-{self.script}"


@dataclass(frozen=True, slots=True)
class SegmentedDocument:
    """A document with its language and its sentence-like units."""

    doc: Document
    language: LanguageGuess
    sentences: tuple[str, ...]


class SegmentedView(LazySequence[SegmentedDocument]):
    """The :class:`SegmentedDocument` of each document, made as it is read from three
    sequences (a run keeps the documents and their sentences on disk, see
    :mod:`dedup.shelf`: a list of these records would hold every text twice)."""

    def __init__(
        self,
        documents: Sequence[Document],
        languages: Sequence[LanguageGuess],
        sentences: Sequence[tuple[str, ...]],
    ) -> None:
        if not len(documents) == len(languages) == len(sentences):
            raise ValueError(
                f"{len(documents)} documents, {len(languages)} languages, "
                f"{len(sentences)} sentence lists"
            )
        self._parts = (documents, languages, sentences)

    def __len__(self) -> int:
        return len(self._parts[0])

    @property
    def languages(self) -> Sequence[LanguageGuess]:
        """Each document's language, without reading its text or sentences from disk."""
        return self._parts[1]

    def _item(self, position: int) -> SegmentedDocument:
        documents, languages, sentences = self._parts
        return SegmentedDocument(documents[position], languages[position], sentences[position])

    def take(self, positions: np.ndarray) -> list[SegmentedDocument]:
        documents, languages, sentences = self._parts
        return list(
            map(
                SegmentedDocument,
                take_from(documents, positions),
                take_from(languages, positions),
                take_from(sentences, positions),
            )
        )

    def __iter__(self) -> Iterator[SegmentedDocument]:
        return map(SegmentedDocument, *self._parts)


@dataclass(frozen=True, slots=True)
class AlignedPair:
    """One sentence of each document that the aligner matched.

    Attributes:
        left, right: sentence index within the left / right document.
        similarity: cosine of the two language-centred sentence vectors.
        z: how far ``similarity`` stands above what each sentence scores
            against unrelated sentences of the other's language, in standard
            deviations (the smaller of the two directions).
        weight: the sentence pair's contribution to the pair score, in [0, 1].
    """

    left: int
    right: int
    similarity: float
    z: float
    weight: float


#: the fields of :class:`AlignedPair`, as stored by :class:`AlignedPairs`.
ALIGNED_DTYPE = np.dtype(
    [
        ("left", np.int64),
        ("right", np.int64),
        ("similarity", np.float64),
        ("z", np.float64),
        ("weight", np.float64),
    ]
)


class AlignedPairs(Sequence[AlignedPair]):
    """The aligned sentence pairs of one document pair, stored as one small array.

    A large corpus links hundreds of thousands of pairs with a dozen aligned
    sentences each: one numpy record per pair instead of millions of Python
    objects keeps the align stage from spending its time making, pickling
    (between worker processes) and collecting them. Reads like a tuple of
    :class:`AlignedPair` (made on access) and compares equal to one.

    Args:
        records: ``(k,)`` array of dtype :data:`ALIGNED_DTYPE`, in alignment order.
    """

    __slots__ = ("records",)

    def __init__(self, records: np.ndarray) -> None:
        if records.dtype != ALIGNED_DTYPE or records.ndim != 1:
            raise ValueError("records must be a 1-d array of ALIGNED_DTYPE")
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> AlignedPair: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[AlignedPair, ...]: ...
    def __getitem__(self, index: int | slice) -> AlignedPair | tuple[AlignedPair, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        return AlignedPair(*self.records[index].tolist())

    def __iter__(self) -> Iterator[AlignedPair]:
        return (AlignedPair(*values) for values in self.records.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AlignedPairs):
            return np.array_equal(self.records, other.records)
        if isinstance(other, tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.records.tobytes())

    def __repr__(self) -> str:
        return f"AlignedPairs({list(self)!r})"

    def __reduce__(self) -> tuple[type[AlignedPairs], tuple[np.ndarray]]:
        return AlignedPairs, (self.records,)


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """Why two documents are (or are not) the same article.

    Attributes:
        left, right: document indices, ``left < right``.
        score: aligned weight over (shorter document's sentences + prior); the
            quantity the clustering threshold applies to.
        aligned: the in-order aligned sentence pairs behind ``score`` (a tuple
            or :class:`AlignedPairs`; empty when the pair scored below the
            threshold it was aligned for, see :func:`dedup.stages.align.align_pairs`).
        shorter: usable (non-boilerplate) sentences of the shorter document.
    """

    left: int
    right: int
    score: float
    aligned: Sequence[AlignedPair]
    shorter: int

    @property
    def coverage(self) -> float:
        """Share of the shorter document's sentences with an aligned partner."""
        return len(self.aligned) / self.shorter if self.shorter else 0.0


#: pairs renumbered at a time by :meth:`EvidenceTable.renumber`
_RENUMBER_BLOCK = 1 << 22

#: the per-pair columns of an :class:`EvidenceTable`, with their types
_PAIR_COLUMNS = (
    ("left", np.int64),
    ("right", np.int64),
    ("score", np.float64),
    ("shorter", np.int64),
)


class EvidenceTable(Sequence[PairEvidence]):
    """The scored candidate pairs of a run as columns: what align gives, and what
    cluster, the report and the link cache read.

    A corpus of 100,000 documents has 2.5 million candidate pairs: as
    :class:`PairEvidence` objects they cost seconds to make, to pickle from a
    worker process and to read back into arrays for the clustering. Here they
    are a few arrays, made once per chunk of pairs and joined with
    :meth:`concat`. Reads like a sequence of :class:`PairEvidence` (made on
    access) and compares equal to one.

    Args:
        left, right: ``(m,)`` document indices of each pair, ``left < right``.
        score: ``(m,)`` pair scores.
        shorter: ``(m,)`` usable sentences of the shorter document.
        records: aligned sentence pairs of every pair, one after another
            (dtype :data:`ALIGNED_DTYPE`); None: none kept.
        record_starts: ``(m + 1,)`` where each pair's records begin.
    """

    #: the constructor's arguments, in order
    FIELDS = ("left", "right", "score", "shorter", "records", "record_starts")
    __slots__ = FIELDS

    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        score: np.ndarray,
        shorter: np.ndarray,
        records: np.ndarray | None = None,
        record_starts: np.ndarray | None = None,
    ) -> None:
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.score = np.asarray(score, dtype=np.float64)
        self.shorter = np.asarray(shorter, dtype=np.int64)
        if records is None:
            records = np.zeros(0, dtype=ALIGNED_DTYPE)
            record_starts = np.zeros(len(self.left) + 1, dtype=np.int64)
        self.records = records
        self.record_starts = np.asarray(record_starts, dtype=np.int64)
        size = len(self.left)
        if not (
            len(self.right) == len(self.score) == len(self.shorter) == size
            and len(self.record_starts) == size + 1
            and records.dtype == ALIGNED_DTYPE
            and self.record_starts[-1] == len(records)
        ):
            raise ValueError("columns of different lengths, or records that do not match them")

    @classmethod
    def of(cls, evidence: Sequence[PairEvidence]) -> EvidenceTable:
        """``evidence`` itself if it is a table, else its pairs as one."""
        if isinstance(evidence, EvidenceTable):
            return evidence
        count = len(evidence)
        parts = [_records_of(e.aligned) for e in evidence]
        starts = np.zeros(count + 1, dtype=np.int64)
        np.cumsum([len(part) for part in parts], out=starts[1:])
        return cls(
            np.fromiter((e.left for e in evidence), np.int64, count),
            np.fromiter((e.right for e in evidence), np.int64, count),
            np.fromiter((e.score for e in evidence), np.float64, count),
            np.fromiter((e.shorter for e in evidence), np.int64, count),
            np.concatenate(parts) if parts else None,
            starts,
        )

    @classmethod
    def concat(cls, tables: Sequence[EvidenceTable]) -> EvidenceTable:
        """The pairs of ``tables``, one after another."""
        if not tables:
            return cls(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
        offsets = np.cumsum([0] + [len(t.records) for t in tables[:-1]])
        starts = [t.record_starts[:-1] + at for t, at in zip(tables, offsets.tolist(), strict=True)]
        return cls(
            np.concatenate([t.left for t in tables]),
            np.concatenate([t.right for t in tables]),
            np.concatenate([t.score for t in tables]),
            np.concatenate([t.shorter for t in tables]),
            np.concatenate([t.records for t in tables]),
            np.r_[np.concatenate(starts), sum(len(t.records) for t in tables)],
        )

    @classmethod
    def gather(cls, tables: list[EvidenceTable], position: np.ndarray) -> EvidenceTable:
        """The rows of ``concat(tables)`` placed at ``position``, without making the
        concatenation: ``concat(tables).take(order)`` where ``position[order[i]] == i``.

        Align's evidence arrives as one table per chunk of pairs; joining them
        and then sorting the pairs held three copies of it at once (the
        chunks, their concatenation, the sorted table), ~0.8 GB at 100,000
        documents. Here each output row is copied once from its chunk, and
        ``tables`` is emptied as they are copied (each chunk freed when its
        rows are out), so the peak is the output plus the chunks not yet read,
        and ``position`` (4 bytes a pair as int32).

        Args:
            tables: the parts, in the order of the concatenation (emptied).
            position: ``(len(concat(tables)),)`` each row's place in the output
                (``0..n-1``, each once), or -1 for a row left out.
        """
        position = np.asarray(position)
        n = int((position >= 0).sum())
        bounds = np.cumsum([0] + [len(t) for t in tables])
        if bounds[-1] != len(position):
            raise ValueError(f"{len(position)} positions for {bounds[-1]} rows")
        counts = np.empty(n, dtype=np.int64)
        for t, table in enumerate(tables):
            out = position[bounds[t] : bounds[t + 1]]
            counts[out[out >= 0]] = np.diff(table.record_starts)[out >= 0]
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        del counts
        columns = {name: np.empty(n, dtype) for name, dtype in _PAIR_COLUMNS}
        records = np.empty(int(starts[-1]), dtype=ALIGNED_DTYPE)
        tables.reverse()  # popped from the end: each part freed once its rows are out
        for t in range(len(tables)):
            table = tables.pop()
            out = position[bounds[t] : bounds[t + 1]]
            taken = np.flatnonzero(out >= 0)
            out = out[taken]
            for name, _ in _PAIR_COLUMNS:
                columns[name][out] = getattr(table, name)[taken]
            source, _ = concat_ranges(table.record_starts[taken], table.record_starts[taken + 1])
            target, _ = concat_ranges(starts[out], starts[out + 1])
            records[target] = table.records[source]
            del table, source, target
        return cls(**columns, records=records, record_starts=starts)

    def renumbered(self, documents: np.ndarray) -> EvidenceTable:
        """The same pairs with document ``d`` renamed ``documents[d]`` (an increasing
        map keeps ``left < right``)."""
        documents = np.asarray(documents, dtype=np.int64)
        return EvidenceTable(
            documents[self.left],
            documents[self.right],
            self.score,
            self.shorter,
            self.records,
            self.record_starts,
        )

    def renumber(self, documents: np.ndarray) -> None:
        """:meth:`renumbered`, in place, a block of pairs at a time: the run's evidence
        is renumbered once its clustering is done, and two new columns of every pair
        beside the old ones were 576 MB at a million documents (36 million pairs)."""
        documents = np.asarray(documents, dtype=np.int64)
        for column in (self.left, self.right):
            for start in range(0, len(column), _RENUMBER_BLOCK):
                block = column[start : start + _RENUMBER_BLOCK]
                block[:] = documents[block]

    def take(self, order: np.ndarray) -> EvidenceTable:
        """The pairs ``order`` (an int array), in that order."""
        order = np.asarray(order, dtype=np.int64)
        rows, starts = concat_ranges(self.record_starts[order], self.record_starts[order + 1])
        return EvidenceTable(
            self.left[order],
            self.right[order],
            self.score[order],
            self.shorter[order],
            self.records[rows],
            starts,
        )

    def save(self, handle: IO[bytes], **extra: np.ndarray) -> None:
        """Write the table's columns, and the ``extra`` arrays beside them, as one
        uncompressed ``.npz`` (read back by :meth:`load`; no pickles)."""
        np.savez(handle, **{name: getattr(self, name) for name in self.FIELDS}, **extra)

    @classmethod
    def load(cls, path: Path) -> tuple[EvidenceTable, dict[str, np.ndarray]]:
        """The table :meth:`save` wrote to ``path``, and its extra arrays by name.

        Raises:
            OSError, ValueError, KeyError, zipfile.BadZipFile: missing, torn or
                foreign file.
        """
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        table = cls(*(arrays.pop(name) for name in cls.FIELDS))
        return table, arrays

    def __len__(self) -> int:
        return len(self.left)

    @overload
    def __getitem__(self, index: int) -> PairEvidence: ...
    @overload
    def __getitem__(self, index: slice) -> list[PairEvidence]: ...
    def __getitem__(self, index: int | slice) -> PairEvidence | list[PairEvidence]:
        if isinstance(index, slice):
            return list(self)[index]
        index = range(len(self))[index]  # negative indices, IndexError
        return self._pair(
            int(self.left[index]),
            int(self.right[index]),
            float(self.score[index]),
            int(self.shorter[index]),
            int(self.record_starts[index]),
            int(self.record_starts[index + 1]),
        )

    def _pair(
        self, left: int, right: int, score: float, shorter: int, begin: int, end: int
    ) -> PairEvidence:
        aligned = AlignedPairs(self.records[begin:end]) if end > begin else ()
        return PairEvidence(left, right, score, aligned, shorter)

    def __iter__(self) -> Iterator[PairEvidence]:
        columns = (self.left, self.right, self.score, self.shorter)
        starts = self.record_starts.tolist()
        for p, values in enumerate(zip(*(c.tolist() for c in columns), strict=True)):
            yield self._pair(*values, starts[p], starts[p + 1])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EvidenceTable):
            return all(
                np.array_equal(getattr(self, name), getattr(other, name)) for name in self.FIELDS
            )
        if isinstance(other, tuple | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def __repr__(self) -> str:
        return f"EvidenceTable({len(self)} pairs, {len(self.records)} aligned sentence pairs)"

    def __reduce__(self) -> tuple[type[EvidenceTable], tuple[np.ndarray, ...]]:
        return EvidenceTable, tuple(getattr(self, name) for name in self.FIELDS)


def _records_of(aligned: Sequence[AlignedPair]) -> np.ndarray:
    """The aligned pairs of one document pair as an :data:`ALIGNED_DTYPE` array."""
    if isinstance(aligned, AlignedPairs):
        return aligned.records
    names = ALIGNED_DTYPE.names or ()
    return np.array([tuple(getattr(a, n) for n in names) for a in aligned], dtype=ALIGNED_DTYPE)
