"""Ingest: read documents from a folder, JSONL, CSV/TSV or Parquet.

Every input record ends up either as a :class:`~dedup.records.Document` or as a
:class:`~dedup.records.SkippedInput` naming the file (and line) and the reason:
the run summary checks ``documents in = assigned + skipped``.

Formats (chosen by the path: a folder, or the file's extension):

* folder: every ``.txt`` / ``.md`` file below it is one document; its id is
  its path relative to the folder without the extension.
* ``.jsonl`` / ``.ndjson``: one JSON object a line with ``id`` and ``text``
  (names configurable), optional ``title``, ``url``, ``date``, ``lang``;
  other fields are kept as ``extra``.
* ``.csv`` / ``.tsv``: a header row naming the same columns.
* ``.parquet``: the same columns (read with pyarrow, in record batches).

Text is decoded with a charset detector when it is not UTF-8 (legacy
single-byte encodings, UTF-16 with a BOM), then normalised by
:func:`dedup.encoding.normalize_text` (NFC, every line break to LF, control
characters removed), the same cleaning the encoder applies. Duplicate ids:
the first occurrence is kept, any later one is skipped with a reason that
names where the first was seen.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import NamedTuple

from dedup.encoding.encoder import normalize_text
from dedup.records import Document, SkippedInput

FOLDER_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet",)
METADATA_FIELDS = ("title", "url", "date", "lang")


class InputError(Exception):
    """The input as a whole cannot be read (missing, unknown format, unreadable)."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Which fields hold the id and the text in JSONL, CSV and Parquet inputs."""

    id_field: str = "id"
    text_field: str = "text"


def decode_bytes(data: bytes) -> str | None:
    """Decode file bytes: UTF-8 (BOM or not), UTF-16 with BOM, else detected.

    Legacy single-byte encodings are ambiguous on short texts (French in
    latin-1 decodes without error as Central European cp1250, "à" becoming
    "ŕ"): among the decodings charset-normalizer finds equally clean, the one
    that the language identifier reads most confidently as a language wins.
    Returns None for content that is not text (binary junk).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" not in data:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    matches = list(from_bytes(data))
    if not matches:
        return None
    best_chaos = matches[0].chaos
    tied = [m for m in matches if m.chaos <= best_chaos + 0.01]
    if len(tied) == 1:
        text = str(tied[0])
    else:
        from dedup.stages.langid import language_confidence

        text = max((str(m) for m in tied), key=language_confidence)
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\n\r")
    return None if controls > 0.05 * max(len(text), 1) else text


class _Collector:
    """Turns raw records into Documents, enforcing unique ids and non-empty text."""

    def __init__(self) -> None:
        self.skipped: list[SkippedInput] = []
        self.records = 0  # every record a reader met, counted before it is judged
        self._seen: dict[str, str] = {}

    def make(self, raw: dict[str, object], origin: str, config: IngestConfig) -> Document | None:
        doc_id = raw.get(config.id_field)
        text = raw.get(config.text_field)
        if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
            return self.skip(origin, f"no '{config.id_field}' field")
        doc_id = str(doc_id)
        if not isinstance(text, str):
            kind = "missing" if text is None else f"not a string ({type(text).__name__})"
            return self.skip(origin, f"'{config.text_field}' is {kind}", doc_id)
        text = normalize_text(text)
        if not text.strip():
            return self.skip(origin, "empty text", doc_id)
        if doc_id in self._seen:
            return self.skip(origin, f"duplicate id, first seen at {self._seen[doc_id]}", doc_id)
        self._seen[doc_id] = origin
        meta = {k: (None if raw.get(k) is None else str(raw[k])) for k in METADATA_FIELDS}
        extra = {
            k: v
            for k, v in raw.items()
            if k not in (config.id_field, config.text_field, *METADATA_FIELDS)
        }
        return Document(id=doc_id, text=text, origin=origin, extra=extra, **meta)

    def skip(self, origin: str, reason: str, doc_id: str | None = None) -> None:
        self.skipped.append(SkippedInput(origin=origin, reason=reason, doc_id=doc_id))
        return None


def _read_folder(root: Path, collector: _Collector) -> Iterator[Document]:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES
    )
    for path in files:
        collector.records += 1
        rel = path.relative_to(root)
        origin = str(rel)
        try:
            text = decode_bytes(path.read_bytes())
        except OSError as err:
            collector.skip(origin, f"unreadable: {err.strerror}")
            continue
        if text is None:
            collector.skip(origin, "binary content, not text")
            continue
        raw = {"id": rel.with_suffix("").as_posix(), "text": text}
        doc = collector.make(raw, origin, IngestConfig())
        if doc is not None:
            yield doc


def _jsonl_lines(path: Path) -> Iterator[bytes | str]:
    """Lines of a JSONL file: raw bytes (decoded one by one), or text for UTF-16 files."""
    with path.open("rb") as handle:
        head = handle.read(2)
        handle.seek(0)
        if head in (b"\xff\xfe", b"\xfe\xff"):
            yield from handle.read().decode("utf-16").split("\n")
        else:
            yield from handle


def _read_jsonl(path: Path, config: IngestConfig, collector: _Collector) -> Iterator[Document]:
    for number, line in enumerate(_jsonl_lines(path), start=1):
        origin = f"{path.name}:{number}"
        if not line.strip():
            continue  # blank lines are layout, not records
        collector.records += 1
        text = line if isinstance(line, str) else decode_bytes(line)
        if text is None:
            collector.skip(origin, "binary content, not text")
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            collector.skip(origin, f"malformed JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(raw, dict):
            collector.skip(origin, "JSON line is not an object")
            continue
        doc = collector.make(raw, origin, config)
        if doc is not None:
            yield doc


def _read_table(path: Path, config: IngestConfig, collector: _Collector) -> Iterator[Document]:
    text = decode_bytes(path.read_bytes())
    if text is None:
        raise InputError(f"{path}: binary content, not a CSV/TSV table")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # newline="": only CR/LF end a row; str.splitlines would also break unquoted cells
    # at U+2028, U+0085, form feed... (csv.writer does not quote those)
    # csv.reader, not DictReader: DictReader skips blank lines unseen, and the
    # first line of the record after them could not be told
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    fields = next(reader, [])
    missing = [f for f in (config.id_field, config.text_field) if f not in fields]
    if missing:
        raise InputError(
            f"{path}:1: header lacks column(s) {', '.join(missing)}; found {', '.join(fields)}"
            " (use --id-field/--text-field)"
        )
    last_line = reader.line_num  # the header's
    for cells in reader:
        if not cells:  # a blank line: no record
            last_line = reader.line_num
            continue
        collector.records += 1
        # a quoted cell may span lines: name them all, first to last
        first_line, last_line = last_line + 1, reader.line_num
        span = f"{first_line}" if first_line == last_line else f"{first_line}-{last_line}"
        origin = f"{path.name}:{span}"
        if len(cells) > len(fields):
            collector.skip(origin, "row has more cells than the header")
            continue
        # missing cells are None, as csv.DictReader gives them
        doc = collector.make(dict(zip_longest(fields, cells)), origin, config)
        if doc is not None:
            yield doc


def _read_parquet(path: Path, config: IngestConfig, collector: _Collector) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({err})") from err
    names = parquet.schema_arrow.names
    missing = [f for f in (config.id_field, config.text_field) if f not in names]
    if missing:
        raise InputError(
            f"{path}: columns {', '.join(missing)} missing; found {', '.join(names)}"
            " (use --id-field/--text-field)"
        )
    row_number = 0
    for batch in parquet.iter_batches():
        for raw in batch.to_pylist():
            collector.records += 1
            row_number += 1
            doc = collector.make(raw, f"{path.name}:row {row_number}", config)
            if doc is not None:
                yield doc


class Ingested(NamedTuple):
    """What ingest read: documents, skipped inputs and the count of input records.

    ``records == len(documents) + len(skipped)`` always (checked on return).
    """

    documents: list[Document]
    skipped: list[SkippedInput]
    records: int


def read_documents(path: Path, config: IngestConfig | None = None) -> Ingested:
    """Read every document of ``path``, in input order.

    Raises:
        InputError: the path is missing or its format is unknown or unreadable
            as a whole; single bad records are skipped, not raised.
    """
    config = config or IngestConfig()
    path = Path(path)
    collector = _Collector()
    if path.is_dir():
        documents = list(_read_folder(path, collector))
    elif not path.exists():
        raise InputError(f"{path}: no such file or folder")
    else:
        suffix = path.suffix.lower()
        if suffix in JSONL_SUFFIXES:
            reader = _read_jsonl(path, config, collector)
        elif suffix in TABLE_SUFFIXES:
            reader = _read_table(path, config, collector)
        elif suffix in PARQUET_SUFFIXES:
            reader = _read_parquet(path, config, collector)
        else:
            known = ", ".join(JSONL_SUFFIXES + TABLE_SUFFIXES + PARQUET_SUFFIXES)
            raise InputError(
                f"{path}: unknown input format '{suffix}' (expected a folder or {known})"
            )
        try:
            documents = list(reader)
        except OSError as err:
            raise InputError(f"{path}: unreadable ({err.strerror})") from err
    if collector.records != len(documents) + len(collector.skipped):  # pragma: no cover
        raise RuntimeError(
            f"{path}: internal error: {collector.records} records read but "
            f"{len(documents)} documents + {len(collector.skipped)} skipped"
        )
    return Ingested(documents, collector.skipped, collector.records)


def read_records(records: Iterable[object], config: IngestConfig | None = None) -> Ingested:
    """Documents from records in memory (what :func:`dedup.run` is given instead of a path).

    A record is a mapping with the fields of a JSONL line or an ``(id, text)``
    pair, and is judged as a file's record is: one without an id or text, with
    a duplicate id, or of another type is skipped, ``record N`` (counted from 1
    in iteration order) naming it.
    """
    config = config or IngestConfig()
    collector = _Collector()
    documents = []
    for number, record in enumerate(records, start=1):
        collector.records += 1
        origin = f"record {number}"
        if isinstance(record, Mapping):
            raw = dict(record)
        elif isinstance(record, Sequence) and not isinstance(record, str | bytes):
            if len(record) != 2:
                collector.skip(origin, f"a sequence of {len(record)} items, not an (id, text) pair")
                continue
            raw = {config.id_field: record[0], config.text_field: record[1]}
        else:
            collector.skip(origin, f"not a mapping or an (id, text) pair ({type(record).__name__})")
            continue
        doc = collector.make(raw, origin, config)
        if doc is not None:
            documents.append(doc)
    return Ingested(documents, collector.skipped, collector.records)
