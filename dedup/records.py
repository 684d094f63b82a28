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
    align       -> PairEvidence                 (scores + aligned sentence pairs)
    cluster     -> cluster labels               (numpy, one per document)
    report      -> files in --out
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import overload

import numpy as np


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


@dataclass(frozen=True, slots=True)
class Document:
    """One input article.

    Attributes:
        id: unique id within the run (file path without extension, or the id field).
        text: the article text, normalised (NFC, no control characters).
        origin: where it was read, ``file`` or ``file:line``, for messages.
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
