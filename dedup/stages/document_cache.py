"""Document cache: what the stages before encoding computed from each document's text.

Why: with every sentence vector cached (see :mod:`dedup.stages.embed`), a
re-run of the same input used to spend most of its time before encoding:
importing datasketch (which imports scipy) and hashing shingles for the
copies stage, loading py3langid's model and classifying for langid. None of
that changes while the text does not, so it is kept per document:

* ``languages``: :func:`dedup.stages.langid.identify` of a text (language,
  confidence, script), and under keys of their own the script alone of a
  text whose language the input supplies;
* ``sentences``: :func:`dedup.stages.segment.split_sentences` of a text by
  the rules it was split with (its language and that language's script);
* ``signatures``: the MinHash signature (datasketch ``hashvalues``) of a
  text's shingles, as :func:`dedup.stages.copies.find_copies` computes it,
  keyed by the digest of the normalised text;
* ``text_lines``: the digest of a normalised text and the keys of its
  distinct lines (:class:`dedup.stages.copies.TextLines`), what the copy
  pass and language identification count page furniture from;
* ``sentence_numbers``: :func:`dedup.stages.align.number_table` of a
  document's sentences (a count a sentence, then the numbers), keyed by the
  sentences;
* ``sentence_keys``: :func:`dedup.stages.boilerplate.key_hashes` of a
  document's sentences (8 bytes a sentence), keyed by the sentences: the
  boilerplate counts of a run over a corpus that grew (``dedup add``) read
  them instead of normalising every sentence again.

A run looks every document up first, computes only what is missing, and
writes it in one transaction per block of :data:`COMMIT_DOCUMENTS`
(:meth:`DocumentCache.fill`), so a re-run, a run over a corpus that grew,
or a run killed mid-stage computes only the documents not yet written, and a run
with every document cached neither imports datasketch nor loads the
language model.

Format: one SQLite file, ``<cache>/documents/documents-v2.sqlite``, with one
table per part above, each ``(key BLOB PRIMARY KEY, values...)``: a
language guess as its three fields, sentences as a JSON array, a signature
as its little-endian bytes (4 bytes per value when every value fits, as
datasketch's 32-bit values do, else 8). The tables are rowid tables: rows
are appended in the order they are written and only the key index takes
random inserts. Version 1 kept each table's rows in its key's B-tree
(``WITHOUT ROWID``), so every new document's random key rewrote a page of
row data and its journal copy (a million-document run had written 51 GB
by the start of embed, its cache 4.2 GB; 11.9 GB with version 2), and
copies and segment grew faster than the corpus. 400,000 rows of 1.5 KB
with random keys, 10,000 a transaction (``bench/document_cache_writes.py``):
26.0 s and 6.2 GB written for version 1's layout, 6.2 s and 1.2 GB for
rowid tables. A version 1 file is deleted when a version 2 one is opened.

Key: a 16-byte BLAKE2b of the text (and, for sentences, the language), keyed
with a digest of everything that part's result depends on: this module's
:data:`FORMAT`, the library that computes it (py3langid, sentencex or
datasketch version), its settings (:class:`~dedup.stages.segment.SegmenterConfig`;
``shingle`` and ``num_perm`` of :class:`~dedup.stages.copies.CopyConfig`),
Python's Unicode database version (letters, case folding and ``\\w`` depend
on it) and the source of the module that computes it (``langid.py``,
``segment.py``, ``copies.py``). A changed setting, library or code thus gets
new keys and never reads a stale entry; the old entries stay unread (delete
the folder to reclaim their space).

Safety: SQLite's rollback journal makes a transaction all or nothing, so a
run killed while writing leaves the file as the previous run left it. A
file that is not a readable database (torn by a crash of the machine, or
not written by dedup) is deleted and rebuilt; a cache that cannot be used at
all (read-only folder, a lock held for too long) is skipped with a message,
and the run computes everything as if there were no cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dedup.cache import library_version, source_digest
from dedup.records import LanguageGuess
from dedup.stages.copies import CopyConfig
from dedup.stages.segment import SegmenterConfig

#: what the stored values mean; bump it when their format or the code that
#: computes them changes in a way the keys do not see.
FORMAT = 1

#: documents computed per transaction: what a run killed mid-stage can lose of it
COMMIT_DOCUMENTS = 10_000

T = TypeVar("T")
#: the file, under ``<cache>/documents/``; its name changes with the tables.
FILE_NAME = "documents-v2.sqlite"
#: files of earlier formats, deleted when the cache is opened
_OLD_FILES = ("documents-v1.sqlite", "documents-v1.sqlite-journal")
#: keys per ``IN (...)`` query (SQLite allows 999 parameters in old builds).
_QUERY_KEYS = 500
#: seconds to wait for another run's write lock before giving up on the cache.
_LOCK_TIMEOUT = 10.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS languages"
    " (key BLOB PRIMARY KEY, lang TEXT NOT NULL, confidence REAL NOT NULL,"
    " script TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sentences (key BLOB PRIMARY KEY, sentences TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS signatures (key BLOB PRIMARY KEY, hashvalues BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sentence_keys (key BLOB PRIMARY KEY, hashes BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sentence_numbers"
    " (key BLOB PRIMARY KEY, counts BLOB NOT NULL, numbers BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS text_lines"
    " (key BLOB PRIMARY KEY, digest BLOB NOT NULL, line_keys BLOB NOT NULL)",
)
_INSERT = {
    "languages": "INSERT OR REPLACE INTO languages VALUES (?, ?, ?, ?)",
    "sentences": "INSERT OR REPLACE INTO sentences VALUES (?, ?)",
    "signatures": "INSERT OR REPLACE INTO signatures VALUES (?, ?)",
    "sentence_keys": "INSERT OR REPLACE INTO sentence_keys VALUES (?, ?)",
    "text_lines": "INSERT OR REPLACE INTO text_lines VALUES (?, ?, ?)",
    "sentence_numbers": "INSERT OR REPLACE INTO sentence_numbers VALUES (?, ?, ?)",
}


class DocumentCache:
    """Language guesses, sentences and MinHash signatures of documents, on disk.

    Lookups return one entry or None per item, in order; ``add_*`` keep the
    new entries in memory until :meth:`commit` writes them all in one
    transaction. ``hits`` and ``lookups`` count, per table, what was found.

    Args:
        folder: the cache folder (``<cache>/documents``), made if missing.
        log: called with a one-line message when the file is rebuilt or the
            cache is skipped.
    """

    def __init__(self, folder: Path, log: Callable[[str], None] | None = None) -> None:
        self.path = Path(folder) / FILE_NAME
        self.hits: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()
        self._log = log or (lambda _message: None)
        self._pending: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _INSERT}
        self._namespaces: dict[tuple[Any, ...], bytes] = {}
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for name in _OLD_FILES:
                old = self.path.parent / name
                if old.exists():
                    old.unlink()
                    self._log(f"removed {old}: a document cache of an earlier format")
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                self._give_up(exc)
            else:  # not a database, or a damaged one: start again
                self._log(f"document cache {self.path} is unreadable ({exc}); rebuilding it")
                self._rebuild()
        except OSError as exc:
            self._give_up(exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT, isolation_level=None)
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            for table in _INSERT:  # reads a page of each: fails now on a damaged file
                db.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _rebuild(self) -> None:
        try:
            for suffix in ("", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        self._log(f"document cache {self.path} not used: {exc}")
        self.close()

    @property
    def usable(self) -> bool:
        """False when the cache is skipped for this run (lookups miss, adds are dropped)."""
        return self._db is not None

    def __enter__(self) -> DocumentCache:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        self.close()

    def close(self) -> None:
        """Close the file (new entries not yet committed are dropped)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- keys -----------------------------------------------------------------------

    def _namespace(self, table: str, settings: tuple[Any, ...]) -> bytes:
        """32-byte key for BLAKE2b: the table, its inputs' versions and settings."""
        ident = (table, *settings)
        if ident not in self._namespaces:
            library, module = _COMPUTED_BY[table]
            described = {
                "format": FORMAT,
                "table": table,
                "library": [library, library_version(library)],
                "code": source_digest(module),
                "unicode": unicodedata.unidata_version,
                "settings": list(settings),
            }
            text = json.dumps(described, sort_keys=True).encode()
            self._namespaces[ident] = hashlib.blake2b(text, digest_size=32).digest()
        return self._namespaces[ident]

    @staticmethod
    def _key(namespace: bytes, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=namespace, digest_size=16).digest()

    def _language_keys(self, texts: Sequence[str]) -> list[bytes]:
        namespace = self._namespace("languages", ())
        return [self._key(namespace, _utf8(text)) for text in texts]

    def _sentence_keys(
        self, texts: Sequence[str], rules: Sequence[tuple[str, str]], config: SegmenterConfig
    ) -> list[bytes]:
        namespace = self._namespace("sentences", (config.max_chars, config.target_chars))
        return [
            self._key(namespace, _utf8(lang) + b"\0" + _utf8(script) + b"\0" + _utf8(text))
            for text, (lang, script) in zip(texts, rules, strict=True)
        ]

    def _signature_keys(self, digests: Sequence[bytes], config: CopyConfig) -> list[bytes]:
        namespace = self._namespace("signatures", (config.shingle, config.num_perm))
        return [self._key(namespace, digest) for digest in digests]

    def _script_keys(self, texts: Sequence[str]) -> list[bytes]:
        namespace = self._namespace("scripts", ())
        return [self._key(namespace, _utf8(text)) for text in texts]

    def _text_line_keys(self, texts: Sequence[str]) -> list[bytes]:
        namespace = self._namespace("text_lines", ())
        return [self._key(namespace, _utf8(text)) for text in texts]

    def _sentence_key_keys(
        self, sentences_of: Sequence[Sequence[str]], table: str = "sentence_keys"
    ) -> list[bytes]:
        namespace = self._namespace(table, ())
        # a sentence holds no NUL once segmented: the join is unambiguous
        return [self._key(namespace, _utf8("\0".join(sentences))) for sentences in sentences_of]

    # --- lookups and additions ---------------------------------------------------------

    def _lookup(self, table: str, keys: list[bytes]) -> dict[bytes, tuple[Any, ...]]:
        """Rows of ``table`` for ``keys`` that are there, by key."""
        self.lookups[table] += len(keys)
        if self._db is None or not keys:
            return {}
        rows: dict[bytes, tuple[Any, ...]] = {}
        try:
            for start in range(0, len(keys), _QUERY_KEYS):
                chunk = keys[start : start + _QUERY_KEYS]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT * FROM {table} WHERE key IN ({marks})"
                for row in self._db.execute(query, chunk):
                    rows[bytes(row[0])] = tuple(row[1:])
        except sqlite3.OperationalError as exc:
            self._give_up(exc)
            return {}
        except sqlite3.DatabaseError as exc:  # damaged: what this run computes starts it again
            self._log(f"document cache {self.path} is damaged ({exc}); rebuilding it")
            self.close()
            self._rebuild()
            return {}
        self.hits[table] += sum(key in rows for key in keys)
        return rows

    def languages(self, texts: Sequence[str]) -> list[LanguageGuess | None]:
        """The cached language guess of each text, or None."""
        keys = self._language_keys(texts)
        rows = self._lookup("languages", keys)
        return [LanguageGuess(*rows[k]) if k in rows else None for k in keys]

    def add_languages(self, texts: Sequence[str], guesses: Sequence[LanguageGuess]) -> None:
        keys = self._language_keys(texts)
        self._pending["languages"].extend(
            (k, g.lang, g.confidence, g.script) for k, g in zip(keys, guesses, strict=True)
        )

    def scripts(self, texts: Sequence[str]) -> list[LanguageGuess | None]:
        """The cached script-only guess of each text (language ``und``, see
        :func:`dedup.stages.langid.identify_all`), or None. Kept in the ``languages``
        table under keys of their own: the classifier never ran for them."""
        keys = self._script_keys(texts)
        rows = self._lookup("languages", keys)
        return [LanguageGuess(*rows[k]) if k in rows else None for k in keys]

    def add_scripts(self, texts: Sequence[str], guesses: Sequence[LanguageGuess]) -> None:
        keys = self._script_keys(texts)
        self._pending["languages"].extend(
            (k, g.lang, g.confidence, g.script) for k, g in zip(keys, guesses, strict=True)
        )

    def sentences(
        self, texts: Sequence[str], rules: Sequence[tuple[str, str]], config: SegmenterConfig
    ) -> list[tuple[str, ...] | None]:
        """The cached sentences of each text split by its rules (language, script), or None."""
        keys = self._sentence_keys(texts, rules, config)
        rows = self._lookup("sentences", keys)
        return [tuple(json.loads(rows[k][0])) if k in rows else None for k in keys]

    def add_sentences(
        self,
        texts: Sequence[str],
        rules: Sequence[tuple[str, str]],
        sentences: Sequence[Sequence[str]],
        config: SegmenterConfig,
    ) -> None:
        keys = self._sentence_keys(texts, rules, config)
        self._pending["sentences"].extend(
            (k, json.dumps(list(s))) for k, s in zip(keys, sentences, strict=True)
        )

    def signatures(self, digests: Sequence[bytes], config: CopyConfig) -> list[np.ndarray | None]:
        """The cached MinHash ``hashvalues`` (uint32 or uint64) of each normalised-text
        digest, or None (see :class:`dedup.stages.copies.SignatureCache`)."""
        keys = self._signature_keys(digests, config)
        rows = self._lookup("signatures", keys)
        out: list[np.ndarray | None] = []
        for k in keys:
            blob = rows[k][0] if k in rows else b""
            width = len(blob) // config.num_perm  # bytes per value: 4 or 8
            fits = width in (4, 8) and len(blob) == width * config.num_perm
            out.append(np.frombuffer(blob, dtype=f"<u{width}") if fits else None)
        return out

    def add_signatures(
        self, digests: Sequence[bytes], signatures: Sequence[np.ndarray], config: CopyConfig
    ) -> None:
        keys = self._signature_keys(digests, config)
        self._pending["signatures"].extend(
            (k, _signature_bytes(s)) for k, s in zip(keys, signatures, strict=True)
        )

    def text_lines(self, texts: Sequence[str]) -> list[tuple[bytes, np.ndarray] | None]:
        """The cached normalised-text digest and line keys of each text, or None."""
        keys = self._text_line_keys(texts)
        rows = self._lookup("text_lines", keys)
        out: list[tuple[bytes, np.ndarray] | None] = []
        for k in keys:
            if k in rows and len(rows[k][1]) % 8 == 0:
                digest, line_keys = rows[k]
                out.append((bytes(digest), np.frombuffer(line_keys, dtype="<u8").astype(np.uint64)))
            else:
                out.append(None)
        return out

    def add_text_lines(
        self, texts: Sequence[str], lines: Sequence[tuple[bytes, np.ndarray]]
    ) -> None:
        keys = self._text_line_keys(texts)
        self._pending["text_lines"].extend(
            (k, digest, np.asarray(line_keys, dtype="<u8").tobytes())
            for k, (digest, line_keys) in zip(keys, lines, strict=True)
        )

    def numbers(
        self, sentences_of: Sequence[Sequence[str]]
    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """The cached number table (``starts``, ``values``) of each document's sentences,
        or None."""
        keys = self._sentence_key_keys(sentences_of, "sentence_numbers")
        rows = self._lookup("sentence_numbers", keys)
        out: list[tuple[np.ndarray, np.ndarray] | None] = []
        for k, sentences in zip(keys, sentences_of, strict=True):
            counts, values = rows.get(k, (b"", b""))
            if k not in rows or len(counts) != 4 * len(sentences) or len(values) % 8:
                out.append(None)
                continue
            starts = np.zeros(len(sentences) + 1, dtype=np.int64)
            np.cumsum(np.frombuffer(counts, dtype="<u4"), out=starts[1:])
            out.append((starts, np.frombuffer(values, dtype="<i8").astype(np.int64)))
        return out

    def add_numbers(
        self, sentences_of: Sequence[Sequence[str]], tables: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> None:
        keys = self._sentence_key_keys(sentences_of, "sentence_numbers")
        self._pending["sentence_numbers"].extend(
            (k, np.diff(starts).astype("<u4").tobytes(), np.asarray(values, "<i8").tobytes())
            for k, (starts, values) in zip(keys, tables, strict=True)
        )

    def sentence_keys(self, sentences_of: Sequence[Sequence[str]]) -> list[np.ndarray | None]:
        """The cached sentence-key hashes (``(n,)`` uint64) of each document's sentences,
        or None."""
        keys = self._sentence_key_keys(sentences_of)
        rows = self._lookup("sentence_keys", keys)
        out: list[np.ndarray | None] = []
        for k, sentences in zip(keys, sentences_of, strict=True):
            blob = rows[k][0] if k in rows else None
            fits = blob is not None and len(blob) == 8 * len(sentences)
            out.append(np.frombuffer(blob, dtype="<u8").astype(np.uint64) if fits else None)
        return out

    def add_sentence_keys(
        self, sentences_of: Sequence[Sequence[str]], hashes: Sequence[np.ndarray]
    ) -> None:
        keys = self._sentence_key_keys(sentences_of)
        self._pending["sentence_keys"].extend(
            (k, np.asarray(h, dtype="<u8").tobytes()) for k, h in zip(keys, hashes, strict=True)
        )

    def fill(
        self,
        missing: Sequence[int],
        compute: Callable[[list[int]], list[T]],
        add: Callable[[list[int], list[T]], None],
    ) -> list[T]:
        """``compute`` of the documents ``missing``, :data:`COMMIT_DOCUMENTS` at a time,
        each block ``add``-ed and committed as soon as it is done: a run killed in the
        middle of a stage keeps the blocks it finished (a block is one transaction)."""
        computed: list[T] = []
        for start in range(0, len(missing), COMMIT_DOCUMENTS):
            block = list(missing[start : start + COMMIT_DOCUMENTS])
            values = compute(block)
            add(block, values)
            self.commit()
            computed.extend(values)
        return computed

    def commit(self) -> None:
        """Write every entry added since the last commit, in one transaction."""
        pending = {table: rows for table, rows in self._pending.items() if rows}
        self._pending = {table: [] for table in _INSERT}
        if self._db is None or not pending:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table, rows in pending.items():
                    self._db.executemany(_INSERT[table], rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)

    def summary(self) -> Iterator[tuple[str, int, int]]:
        """``(table, hits, lookups)`` for each table looked up so far."""
        for table in _INSERT:
            if self.lookups[table]:
                yield table, self.hits[table], self.lookups[table]


#: the library (distribution name) and module whose code each table's values come from
_COMPUTED_BY = {
    "languages": ("py3langid", "dedup.stages.langid"),
    "sentences": ("sentencex", "dedup.stages.segment"),
    "signatures": ("datasketch", "dedup.stages.copies"),
    "sentence_keys": ("dedup", "dedup.stages.boilerplate"),
    "text_lines": ("dedup", "dedup.stages.copies"),
    "scripts": ("dedup", "dedup.stages.langid"),
    "sentence_numbers": ("dedup", "dedup.stages.align"),
}


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _signature_bytes(signature: np.ndarray) -> bytes:
    values = np.asarray(signature)
    if values.dtype.kind != "u":
        raise TypeError(f"a MinHash signature holds unsigned integers, not {values.dtype}")
    dtype = "<u4" if values.size == 0 or int(values.max()) < 1 << 32 else "<u8"
    return values.astype(dtype).tobytes()
