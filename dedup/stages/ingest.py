"""Ingest: read documents from folders, JSONL, CSV/TSV, Parquet or stdin, compressed or not.

Every input record ends up either as a :class:`~dedup.records.Document` or as a
:class:`~dedup.records.SkippedInput` naming the file (and line) and the reason:
the run summary checks ``documents in = assigned + skipped``.

Inputs (one or several a run; each chosen by its path: a folder, ``-``, or
the file's extension):

* folder: every ``.txt`` / ``.md`` file below it is one document, every
  ``.html`` / ``.htm`` file one web page (see HTML below); its id is its path
  relative to the folder without the extension. Symlinked folders are not
  entered (a link loop cannot make the walk endless, nor a link read a tree
  twice), nor are the folders of :attr:`IngestConfig.exclude` (the run's
  ``--out``). A name that is not UTF-8 is escaped (:func:`escape_name`).
* ``.jsonl`` / ``.ndjson``: one JSON object a line with ``id`` and ``text``
  (names configurable), optional ``title``, ``url``, ``date``, ``lang``;
  other fields are kept as ``extra``.
* ``.csv`` / ``.tsv``: a header row naming the same columns.
* ``.parquet``: the same columns (read with pyarrow, in record batches).
* ``-``: JSONL read from standard input (origins ``<stdin>:line``).
* JSONL, CSV and TSV compressed: ``.jsonl.gz``, ``.csv.zst``, ... (gzip,
  bzip2, xz, zstandard), decompressed as they are read, never to disk. Data
  that breaks off or goes bad partway ends the file with one skipped record
  at the line where it broke; what was read before it stands.

HTML: a record with no text but an ``html`` field (or a page in a folder) is
reduced to its article by trafilatura (:func:`extract_article`); navigation,
cookie banners, footers and related links are not in ``Document.text``, so
they are never evidence. The page's title, date and URL fill the fields the
record leaves empty.

Text is decoded with a charset detector when it is not UTF-8 (legacy
single-byte encodings, UTF-16 with a BOM), then normalised by
:func:`dedup.encoding.normalize_text` (NFC, every line break to LF, control
characters removed), the same cleaning the encoder applies. Duplicate ids,
within one input or across several: the first occurrence is kept, any later
one is skipped with a reason that names where the first was seen. With
several inputs, origins start with the input as given (``data/a.jsonl:3``,
``dir/x.txt``), so they tell the inputs apart; with one they are relative to
it (``a.jsonl:3``, ``x.txt``).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import zstandard

from dedup.encoding.encoder import normalize_text
from dedup.records import Document, SkippedInput
from dedup.shelf import Shelf

if TYPE_CHECKING:
    import pandas as pd

#: the input that is standard input (JSONL); a path must be a str to mean it,
#: so ``Path("-")`` (or ``./-`` on the command line) is a file named ``-``
STDIN = "-"
FOLDER_SUFFIXES = (".txt", ".md")
HTML_SUFFIXES = (".html", ".htm")
READ_SUFFIXES = FOLDER_SUFFIXES + HTML_SUFFIXES  # what a folder input reads
JSONL_SUFFIXES = (".jsonl", ".ndjson")
TABLE_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet",)
METADATA_FIELDS = ("title", "url", "date", "lang")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

#: one input, or several
InputPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


class InputError(Exception):
    """The input as a whole cannot be read (missing, unknown format, unreadable)."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Which fields hold the id, the text and a web page, and which folders are not read.

    Attributes:
        id_field, text_field: the id and the text of JSONL, CSV and Parquet records.
        html_field: a record without text whose field of this name holds a web
            page gets the page's article as its text.
        exclude: folders never read inside a folder input, as paths (strings,
            so run.json records them). The command line puts ``--out`` here:
            a report written inside the input folder (report.md,
            report.html) would otherwise be read as articles by the next run.
    """

    id_field: str = "id"
    text_field: str = "text"
    html_field: str = "html"
    exclude: tuple[str, ...] = ()


def decode_bytes(data: bytes) -> str | None:
    """Decode file bytes: UTF-8 (BOM or not), UTF-16 with BOM, else detected.

    Legacy single-byte encodings are ambiguous on short texts (French in
    latin-1 decodes without error as Central European cp1250, "à" becoming
    "ŕ"): among the decodings charset-normalizer finds equally clean, the one
    that the language identifier reads most confidently as a language wins.
    Returns None for content that is not text (binary junk).
    """
    if data.startswith(UTF16_BOMS):
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


def escape_name(name: str) -> str:
    """A file name as os gives it, made text that any UTF-8 file can hold.

    Linux names are bytes; one that is not UTF-8 reaches Python with lone
    surrogates in it (PEP 383), which no UTF-8 writer accepts: a folder
    holding ``b"caf\\xe9.txt"`` stopped the run with UnicodeEncodeError.
    Each byte that is not UTF-8 becomes the four characters ``\\xNN``
    (Python's ``backslashreplace``): the id of that file is ``caf\\xe9``, and
    reading each ``\\xNN`` back as one byte gives the name. A UTF-8 name is
    unchanged.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


class Article(NamedTuple):
    """The article of a web page: its text and what the page says about it."""

    text: str
    title: str | None
    date: str | None
    url: str | None


def extract_article(page: str | bytes) -> Article | None:
    """The article text of a web page, without the page's furniture; None if it has none.

    trafilatura finds the main content of news pages (text density, markup
    and known boilerplate patterns, with readability and jusText fallbacks):
    navigation, cookie banners, footers, related links and comments are left
    out, so what every page of a site shares never makes two of its articles
    look alike. Bytes are decoded by trafilatura, which reads the page's own
    charset declaration.
    """
    import trafilatura  # only for inputs that hold HTML

    found = trafilatura.bare_extraction(page, with_metadata=True, include_comments=False)
    if found is None or not (found.text or "").strip():
        return None
    return Article(found.text, found.title, found.date, found.url)


class _Collector:
    """Turns raw records into Documents, enforcing unique ids and non-empty text."""

    def __init__(self) -> None:
        self.skipped: list[SkippedInput] = []
        self.records = 0  # every record a reader met, counted before it is judged
        self._seen: dict[str, str] = {}

    def make(self, raw: dict[str, object], origin: str, config: IngestConfig) -> Document | None:
        doc_id = raw.get(config.id_field)
        text = raw.get(config.text_field)
        page = raw.get(config.html_field)
        if doc_id is None or (isinstance(doc_id, str) and not doc_id.strip()):
            return self.skip(origin, f"no '{config.id_field}' field")
        doc_id = str(doc_id)
        meta = {k: (None if raw.get(k) is None else str(raw[k])) for k in METADATA_FIELDS}
        if text is None and page is not None:
            if not isinstance(page, str | bytes):
                kind = type(page).__name__
                return self.skip(origin, f"'{config.html_field}' is not a string ({kind})", doc_id)
            article = extract_article(page)
            if article is None:
                return self.skip(origin, "no article text found in the HTML", doc_id)
            text = article.text
            # what the record itself says wins over what the page says
            found = {"title": article.title, "date": article.date, "url": article.url}
            meta = {k: meta[k] if meta[k] is not None else found.get(k) for k in meta}
        if not isinstance(text, str):
            kind = "missing" if text is None else f"not a string ({type(text).__name__})"
            return self.skip(origin, f"'{config.text_field}' is {kind}", doc_id)
        text = normalize_text(text)
        if not text.strip():
            return self.skip(origin, "empty text", doc_id)
        if doc_id in self._seen:
            return self.skip(origin, f"duplicate id, first seen at {self._seen[doc_id]}", doc_id)
        self._seen[doc_id] = origin
        consumed = (config.id_field, config.text_field, config.html_field, *METADATA_FIELDS)
        extra = {k: v for k, v in raw.items() if k not in consumed}
        return Document(id=doc_id, text=text, origin=origin, extra=extra, **meta)

    def skip(self, origin: str, reason: str, doc_id: str | None = None) -> None:
        self.skipped.append(SkippedInput(origin=origin, reason=reason, doc_id=doc_id))
        return None

    def broke_off(self, origin: str, error: _BrokenData) -> None:
        """The record where compressed data stopped being readable: one skipped input."""
        self.records += 1
        self.skip(
            origin, f"compressed data broken here ({error}); the rest of the file is not read"
        )


# --- folders -------------------------------------------------------------------------


def _identity(path: str | Path) -> tuple[int, int] | None:
    """What tells a folder from every other however it is named: (device, inode)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _folder_files(root: Path, excluded: set[tuple[int, int]]) -> list[Path]:
    """The files below ``root`` that are read, in path order.

    ``os.walk`` does not enter symlinked folders (a loop would never end, a
    link to a sibling would read it twice); links to files are read.
    """
    found: list[Path] = []
    for top, folders, files in os.walk(root):
        if excluded:
            folders[:] = [f for f in folders if _identity(os.path.join(top, f)) not in excluded]
        found += (Path(top, f) for f in files if Path(f).suffix.lower() in READ_SUFFIXES)
    return sorted(p for p in found if p.is_file())


def _read_folder(
    root: Path, prefix: str, excluded: set[tuple[int, int]], collector: _Collector
) -> Iterator[Document]:
    if _identity(root) in excluded:
        raise InputError(f"{root}: this folder is the output folder (--out); it is not read")
    for path in _folder_files(root, excluded):
        collector.records += 1
        rel = path.relative_to(root)
        origin = prefix + escape_name(rel.as_posix())
        raw: dict[str, object] = {"id": escape_name(rel.with_suffix("").as_posix())}
        try:
            data = path.read_bytes()
        except OSError as err:
            collector.skip(origin, f"unreadable: {err.strerror}")
            continue
        if rel.suffix.lower() in HTML_SUFFIXES:
            raw["html"] = data
        else:
            raw["text"] = decode_bytes(data)
            if raw["text"] is None:
                collector.skip(origin, "binary content, not text")
                continue
        doc = collector.make(raw, origin, IngestConfig())
        if doc is not None:
            yield doc


# --- files: JSONL, CSV/TSV, Parquet, compressed or not -----------------------------------


class _ZstdReader(io.RawIOBase):
    """A ``.zst`` file decompressed as it is read, frame after frame.

    zstandard's own stream reader ends a file cut short without a word; this
    one raises EOFError as gzip, bz2 and lzma do, so a truncated dump is
    reported at the line where it ends instead of read in part unseen.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._new_frame = zstandard.ZstdDecompressor().decompressobj
        self._frame = self._new_frame()
        self._inside = False  # inside a frame that has not ended
        self._out, self._at = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._at == len(self._out):
            chunk = self._raw.read(1 << 16)
            if not chunk:
                if self._inside:
                    raise EOFError("compressed file ended before the end of a zstd frame")
                return 0
            self._out, self._at = self._decompress(chunk), 0
        size = min(len(buffer), len(self._out) - self._at)
        buffer[:size] = self._out[self._at : self._at + size]
        self._at += size
        return size

    def _decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._frame.decompress(data))
            self._inside = not self._frame.eof
            if self._inside:
                break
            data = self._frame.unused_data  # the next frame, if any
            self._frame = self._new_frame()
        return b"".join(out)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_zstd(path: Path) -> IO[bytes]:
    return io.BufferedReader(_ZstdReader(path.open("rb")))


#: how each compression is read (binary, the openers' default), by the suffix naming it
OPENERS: dict[str, Callable[[Path], IO[bytes]]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
    ".zst": _open_zstd,
}

# what a decompressor raises on data that is not, or is no longer, what it should be
_DATA_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


class _BrokenData(Exception):
    """Compressed data stopped being readable after some lines: those stand."""


@dataclass(frozen=True, slots=True)
class _Source:
    """One file (or stdin): how to open it and how its records are named.

    Attributes:
        path: the file; None for standard input.
        name: the file in error messages (the path as given).
        label: what origins start with (the file name, or with several inputs
            the path as given).
        format: the suffix naming the content (``.jsonl``, ``.csv``, ...).
        compression: the suffix naming the compression (``.gz``), or "" for none.
    """

    path: Path | None
    name: str
    label: str
    format: str
    compression: str = ""

    def open(self) -> IO[bytes] | nullcontext[IO[bytes]]:
        if self.path is None:
            return nullcontext(sys.stdin.buffer)  # not closed: not ours
        if self.compression:
            return OPENERS[self.compression](self.path)
        return self.path.open("rb")

    def origin(self, where: object) -> str:
        return f"{self.label}:{where}"

    def lines(self, handle: Iterable[bytes]) -> Iterator[bytes]:
        """``handle``'s lines; broken compressed data raises InputError on the first
        line (the file is not what its name says), _BrokenData after it."""
        count = 0
        try:
            for line in handle:
                count += 1
                yield line
        except _DATA_ERRORS as err:
            if not self.compression:
                raise
            if count == 0:
                raise InputError(
                    f"{self.name}: not readable as {self.compression} data ({err})"
                ) from err
            raise _BrokenData(str(err)) from err


# a JSON escape of a UTF-16 surrogate: "\ud83d", alone or half of a pair
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _writable(value: object) -> object:
    """``value`` with each lone surrogate in its strings written ``\\udXXX``.

    JSON can spell a lone surrogate (half an emoji, cut by a scraper), which
    no UTF-8 file can hold: an id or title with one stopped the report with
    UnicodeEncodeError. A pair that makes one character is no longer a pair
    once parsed, and stays as it is.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_writable(k): _writable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_writable(v) for v in value]
    return value


def _jsonl_lines(source: _Source, handle: IO[bytes]) -> Iterator[bytes | str]:
    """Lines of a JSONL file: raw bytes (decoded one by one), or text for UTF-16 files."""
    lines = source.lines(handle)
    first = next(lines, b"")
    if first.startswith(UTF16_BOMS):
        yield from (first + b"".join(lines)).decode("utf-16").split("\n")
    else:
        yield first
        yield from lines


def _read_jsonl(source: _Source, config: IngestConfig, collector: _Collector) -> Iterator[Document]:
    number = 0
    with source.open() as handle:
        try:
            for number, line in enumerate(_jsonl_lines(source, handle), start=1):
                origin = source.origin(number)
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
                if _SURROGATE_ESCAPE.search(text):
                    # the text loses them in normalize_text; the rest keeps them visible
                    raw = {k: v if k == config.text_field else _writable(v) for k, v in raw.items()}
                doc = collector.make(raw, origin, config)
                if doc is not None:
                    yield doc
        except _BrokenData as err:
            collector.broke_off(source.origin(number + 1), err)


def _missing_fields(names: Sequence[str], config: IngestConfig) -> list[str]:
    """The id and text fields a table's header lacks (a page field stands in for the text)."""
    missing = [] if config.id_field in names else [config.id_field]
    if config.text_field not in names and config.html_field not in names:
        missing.append(config.text_field)
    return missing


def _read_table(source: _Source, config: IngestConfig, collector: _Collector) -> Iterator[Document]:
    # read whole, through the decompressor in memory: the charset detector needs
    # the whole text of a legacy-encoded table
    chunks: list[bytes] = []
    broken = None
    with source.open() as handle:
        try:
            chunks.extend(source.lines(handle))
        except _BrokenData as err:
            broken = err
    text = decode_bytes(b"".join(chunks))
    if text is None:
        raise InputError(f"{source.name}: binary content, not a CSV/TSV table")
    delimiter = "\t" if source.format == ".tsv" else ","
    # newline="": only CR/LF end a row; str.splitlines would also break unquoted cells
    # at U+2028, U+0085, form feed... (csv.writer does not quote those)
    # csv.reader, not DictReader: DictReader skips blank lines unseen, and the
    # first line of the record after them could not be told
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    fields = next(reader, [])
    missing = _missing_fields(fields, config)
    if missing:
        raise InputError(
            f"{source.name}:1: header lacks column(s) {', '.join(missing)}; "
            f"found {', '.join(fields)} (use --id-field/--text-field)"
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
        origin = source.origin(span)
        if len(cells) > len(fields):
            collector.skip(origin, "row has more cells than the header")
            continue
        # missing cells are None, as csv.DictReader gives them
        doc = collector.make(dict(zip_longest(fields, cells)), origin, config)
        if doc is not None:
            yield doc
    if broken is not None:
        collector.broke_off(source.origin(reader.line_num + 1), broken)


def _read_parquet(
    source: _Source, config: IngestConfig, collector: _Collector
) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(f"{source.name}: not a readable Parquet file ({err})") from err
    names = parquet.schema_arrow.names
    missing = _missing_fields(names, config)
    if missing:
        raise InputError(
            f"{source.name}: columns {', '.join(missing)} missing; found {', '.join(names)}"
            " (use --id-field/--text-field)"
        )
    row_number = 0
    for batch in parquet.iter_batches():
        for raw in batch.to_pylist():
            collector.records += 1
            row_number += 1
            doc = collector.make(raw, source.origin(f"row {row_number}"), config)
            if doc is not None:
                yield doc


#: the reader of each file format, and whether it may come compressed
_READERS: dict[str, tuple[Callable[..., Iterator[Document]], bool]] = {
    **dict.fromkeys(JSONL_SUFFIXES, (_read_jsonl, True)),
    **dict.fromkeys(TABLE_SUFFIXES, (_read_table, True)),
    **dict.fromkeys(PARQUET_SUFFIXES, (_read_parquet, False)),
}


def _file_source(path: Path, several: bool) -> _Source:
    """The source of a file, its format and compression read from its name
    (``corpus.jsonl.gz``: JSONL, gzip)."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in OPENERS else ""
    form = suffixes[-1] if suffixes else ""
    known = _READERS.get(form)
    if known is None or (compression and not known[1]):
        plain = ", ".join(_READERS)
        packed = "/".join(OPENERS)
        raise InputError(
            f"{path}: unknown input format '{form}{compression}' (expected a folder, '-' for "
            f"JSONL on stdin, {plain}, or JSONL/CSV/TSV compressed as {packed}: corpus.jsonl.gz)"
        )
    name = escape_name(str(path))
    return _Source(path, name, name if several else escape_name(path.name), form, compression)


class Ingested(NamedTuple):
    """What ingest read: documents, skipped inputs and the count of input records.

    ``records == len(documents) + len(skipped)`` always (checked on return).
    """

    documents: Sequence[Document]  # a Shelf (on disk) when read by this module
    skipped: list[SkippedInput]
    records: int


def _input_key(item: str | os.PathLike[str]) -> object:
    """What tells one input from another however it is spelled (None: it is missing)."""
    if isinstance(item, str) and item == STDIN:
        return STDIN
    return _identity(item)


def _read_one(
    item: str | os.PathLike[str],
    several: bool,
    config: IngestConfig,
    excluded: set[tuple[int, int]],
    collector: _Collector,
) -> Iterator[Document]:
    if isinstance(item, str) and item == STDIN:
        return _read_jsonl(_Source(None, "<stdin>", "<stdin>", ".jsonl"), config, collector)
    path = Path(item)
    if path.is_dir():
        prefix = escape_name(path.as_posix()) + "/" if several else ""
        return _read_folder(path, prefix, excluded, collector)
    if not path.exists():
        raise InputError(f"{escape_name(str(path))}: no such file or folder")
    source = _file_source(path, several)
    reader, _ = _READERS[source.format]
    return reader(source, config, collector)


def read_documents(
    inputs: InputPaths, config: IngestConfig | None = None, folder: Path | None = None
) -> Ingested:
    """Read every document of ``inputs`` (one path or several, ``"-"`` for stdin), in order.

    The documents are kept on disk as they are read (a :class:`~dedup.shelf.Shelf` in
    ``folder``, the system's temp folder if None), so a corpus larger than memory
    can be read.

    Raises:
        InputError: an input is missing, given twice, or its format is unknown
            or unreadable as a whole; single bad records are skipped, not raised.
    """
    config = config or IngestConfig()
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not items:
        raise InputError("no input given")
    several = len(items) > 1
    excluded = {ident for folder in config.exclude if (ident := _identity(folder)) is not None}
    collector = _Collector()
    documents: Shelf[Document] = Shelf(folder=folder)
    given: dict[object, str] = {}
    for item in items:  # before anything is read: an hour of reading, then this error
        key = _input_key(item)
        if key is not None and key in given:
            raise InputError(f"{item}: given twice as input (first as {given[key]})")
        given[key] = str(item)
    for item in items:
        try:
            documents.extend(_read_one(item, several, config, excluded, collector))
        except OSError as err:
            message = f"{escape_name(str(item))}: unreadable ({err.strerror or err})"
            raise InputError(message) from err
    if collector.records != len(documents) + len(collector.skipped):  # pragma: no cover
        raise RuntimeError(
            f"internal error: {collector.records} records read but "
            f"{len(documents)} documents + {len(collector.skipped)} skipped"
        )
    return Ingested(documents, collector.skipped, collector.records)


def read_records(
    records: Iterable[object], config: IngestConfig | None = None, folder: Path | None = None
) -> Ingested:
    """Documents from records in memory (what :func:`dedup.run` is given instead of a path).

    A record is a mapping with the fields of a JSONL line or an ``(id, text)``
    pair, and is judged as a file's record is: one without an id or text, with
    a duplicate id, or of another type is skipped, ``record N`` (counted from 1
    in iteration order) naming it. The documents are kept on disk, as
    :func:`read_documents` keeps them.
    """
    config = config or IngestConfig()
    collector = _Collector()
    documents: Shelf[Document] = Shelf(folder=folder)
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


def read_input(documents: object, config: IngestConfig, folder: Path | None = None) -> Ingested:
    """The documents of any form :func:`dedup.run` takes: a path, several paths, an
    iterable of dicts or ``(id, text)`` pairs, a pandas DataFrame or a ``datasets.Dataset``;
    or what this function returned before (``dedup add`` checks new documents against a
    state's before it runs them). ``folder``: where the documents are kept on disk
    (see :func:`read_documents`)."""
    if isinstance(documents, Ingested):
        return documents
    if isinstance(documents, str | os.PathLike):
        return read_documents(documents, config, folder)
    if (
        isinstance(documents, list | tuple)
        and documents
        and all(isinstance(item, str | os.PathLike) for item in documents)
    ):
        return read_documents(documents, config, folder)  # several inputs, read as one corpus
    if isinstance(documents, Mapping):  # one record, or a datasets.DatasetDict
        raise TypeError(
            "dedup.run takes a path or an iterable of records, not a mapping "
            f"({type(documents).__name__}); for a DatasetDict pick a split: dataset['train']"
        )
    columns = _column_names(documents)
    if columns is not None:
        missing = [name for name in (config.id_field, config.text_field) if name not in columns]
        if missing:
            raise InputError(
                f"{type(documents).__name__} lacks column(s) {', '.join(missing)}; found "
                f"{', '.join(map(str, columns))} (set IngestConfig(id_field=..., text_field=...))"
            )
    pandas = sys.modules.get("pandas")  # a DataFrame can only exist once pandas is imported
    if pandas is not None and isinstance(documents, pandas.DataFrame):
        return read_records(_frame_records(documents, pandas), config, folder)
    if not isinstance(documents, Iterable):
        raise TypeError(
            f"dedup.run takes a path or an iterable of records, not {type(documents).__name__}"
        )
    return read_records(documents, config, folder)  # a datasets.Dataset yields its rows as dicts


def _column_names(documents: object) -> list[object] | None:
    """The columns of a DataFrame or a datasets.Dataset; None for other iterables."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(documents, pandas.DataFrame):
        return list(documents.columns)
    names = getattr(documents, "column_names", None)  # datasets.Dataset, IterableDataset
    return list(names) if isinstance(names, list) else None


def _frame_records(frame: pd.DataFrame, pandas: Any) -> Iterator[dict[str, Any]]:
    """A DataFrame's rows as dicts, a missing cell (NaN, NA, NaT) as absent: a title
    column with gaps must not give the title "nan"."""
    is_missing = pandas.isna
    for row in frame.to_dict("records"):
        yield {
            str(name): value
            for name, value in row.items()
            if not (pandas.api.types.is_scalar(value) and is_missing(value))
        }
