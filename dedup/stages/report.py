"""Report: write a run's result into ``--out`` and summarise it.

Files (each written to a temporary name and renamed, so a killed run never
leaves a half-written file):

* ``assignments.csv``: one row per input document, sorted by id:
  ``doc_id,cluster_id,cluster_size,lang,script,representative,sentences,``
  ``cluster_languages,title,url,date,input_lang``. ``representative`` is
  ``true`` for the copy the keep policy keeps (see
  :func:`dedup.stages.keep.choose_representatives` and :func:`keep_policy`); drop the
  rows marked ``false`` to deduplicate. ``cluster_languages`` is the cluster's
  language mix: its distinct language groups, sorted, joined by ``+``
  (``de+en+fr``). ``title``, ``url``, ``date`` and ``input_lang`` are the
  record's own fields (empty where it has none): ``lang`` is the language the
  run used, ``input_lang`` the ``lang`` field as the input gave it (``en-GB``).
* ``assignments.parquet``: the same columns, typed (integers, a boolean
  ``representative``, null for a missing field); :func:`assignment_table`.
* ``clusters.json``: ``{"summary": ..., "clusters": [...]}``; the summary
  states the ``keep_policy``; each cluster (largest first) has its id, size,
  language mix, representative, members (id, language, sentences,
  characters, title, url, date, input_lang) and ``links``: every pair of
  members whose score cleared the threshold, with the aligned sentence pairs
  (texts, cosine, z, weight) that make the score (``kind`` ``aligned``); each
  copy found before alignment (``copy``: its Jaccard and own-text figures);
  each document adopted without a link of its own (``adopted``: its
  agreement with the cluster, the bar and its next best, see
  :func:`dedup.stages.cluster.adopt_alone`).
* ``report.html`` and ``report.md``: the same summary and clusters for people
  (see :mod:`dedup.stages.report_views`).
* ``skipped.csv``: ``origin,doc_id,reason`` for inputs that did not become
  documents.
* ``run.json``: settings, model, library versions, counts and stage timings,
  so the run can be repeated.
* ``clusters.index.npy``: where each cluster's line lies in ``clusters.json``
  and a fingerprint of what made it (:class:`ClusterLines`): an addition
  copies the line of a cluster it left as it was instead of making it again.
* ``documents.jsonl.gz``, ``state.json``, ``changes.jsonl``: the folder as a
  state that ``dedup add`` grows (:mod:`dedup.state`); ``state.json`` last.

Files get the mode a plain ``open`` gives (``0666`` less the umask): a report
on a shared server can be read by whoever the user's umask lets read it.
The deduplicated corpus (``dedup run --kept/--dropped``) is written by
:mod:`dedup.stages.corpus_out`, with :func:`atomic_write` too.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from importlib import metadata
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from dedup.cache import source_digest
from dedup.files import atomic_write
from dedup.records import Document, EvidenceTable, SegmentedDocument
from dedup.result import RunResult, cluster_ids
from dedup.shelf import take_from
from dedup.stages.cluster import Adoption, largest_component, link_components
from dedup.stages.copies import CopyJoin
from dedup.stages.report_views import render_html, render_markdown
from dedup.state import PENDING, STATE, FileWriter, first_state, locked, state_files

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_VERSION = 1

#: the index of ``clusters.json`` a state keeps (:class:`ClusterLines`)
CLUSTER_INDEX = "clusters.index.npy"
#: a row of it: a cluster's fingerprint, the first 8 bytes of it as a sortable
#: key, and the cluster's line as a byte span of ``clusters.json``
_INDEX_DTYPE = np.dtype(
    [("key", "<u8"), ("fingerprint", "V16"), ("start", "<i8"), ("length", "<i8")]
)


def _csv(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def keep_policy(prefer_languages: tuple[str, ...] = ()) -> dict[str, object]:
    """The rule that chose each cluster's representative, as written into clusters.json."""
    complete = (
        "most complete version: most non-boilerplate sentences, then longest text, then smallest id"
    )
    if not prefer_languages:
        return {"rule": "most-complete", "prefer_languages": [], "description": complete}
    return {
        "rule": "preferred-language-then-most-complete",
        "prefer_languages": list(prefer_languages),
        "description": f"the {complete} among the members in the first preferred language "
        f"present ({', '.join(prefer_languages)}); the {complete} overall if none is present",
    }


def cluster_languages(result: RunResult) -> dict[int, str]:
    """Language mix of each cluster number: distinct language groups, sorted, joined by '+'."""
    return {cluster.label: "+".join(cluster.languages) for cluster in result.clusters()}


def summary(result: RunResult) -> dict[str, object]:
    """Counts of the run; ``documents_in == assigned + skipped`` (checked by ``run``)."""
    sizes = Counter(result.labels.tolist())
    # counted from the group numbers, not by reading every document back from disk
    per_group = np.bincount(result.doc_groups, minlength=len(result.group_names)).tolist()
    languages = {name: n for name, n in zip(result.group_names, per_group, strict=True) if n}
    evidence = EvidenceTable.of(result.evidence)
    linked = _linked(result)
    return {
        "documents_in": result.documents_in or len(result.documents) + len(result.skipped),
        "assigned": len(result.documents),
        "skipped": len(result.skipped),
        "clusters": len(sizes),
        "multi_document_clusters": sum(1 for n in sizes.values() if n > 1),
        "singletons": sum(1 for n in sizes.values() if n == 1),
        "duplicates_to_drop": len(result.documents) - len(sizes),
        "copies": int((result.primary_of != np.arange(len(result.primary_of))).sum()),
        "languages": dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0]))),
        # labels the links show to hold several languages (no one-per-language rule)
        "pooled_languages": result.pooled_groups,
        "sentences": len(result.usable),
        "boilerplate_sentences": int((~result.usable).sum()),
        "candidate_pairs": len(result.evidence),
        "linked_pairs": int(linked.sum()),
        # what bounds the clustering's memory: it works one link component at a time
        "largest_link_component": largest_component(
            link_components(len(result.documents), evidence.left[linked], evidence.right[linked])
        ),
        "threshold": result.config.cluster.threshold,
        "keep_policy": keep_policy(tuple(result.config.prefer_languages)),
    }


def _linked(result: RunResult) -> np.ndarray:
    """Per candidate pair: does it score at least the cluster threshold (a link)?"""
    scores = EvidenceTable.of(result.evidence).score
    return scores >= result.config.cluster.threshold


def _fingerprint_keys(fingerprints: Sequence[bytes]) -> np.ndarray:
    """The first 8 bytes of each fingerprint as a uint64: what the index is sorted by."""
    return np.array([int.from_bytes(f[:8], "little") for f in fingerprints], dtype=np.uint64)


class ClusterLines:
    """The lines of an earlier ``clusters.json``, found by the fingerprint of what made them.

    A state keeps, beside ``clusters.json``, its index (:data:`CLUSTER_INDEX`):
    each cluster's fingerprint (:attr:`ClusterRecords.fingerprints`) and the
    byte span of its line. An addition of 1 % new documents leaves most
    clusters as they were, and making their lines again (every member read
    back from disk, every aligned sentence pair with both texts) was most of
    the time it spent writing the state (7 of 11 s at 100,000 generated
    documents): a cluster whose fingerprint is in the index has the same
    line, and it is copied.

    Args:
        path: the earlier ``clusters.json``.
        index: its rows (:data:`_INDEX_DTYPE`), sorted by ``key``.
    """

    def __init__(self, path: Path, index: np.ndarray) -> None:
        self.path = Path(path)
        self._index = index
        self._file = self.path.open("rb")

    @classmethod
    def read(cls, folder: Path) -> ClusterLines | None:
        """The lines of ``folder``'s ``clusters.json`` by its index; None where the
        folder has no index (a state of an older dedup) or one that does not fit
        the file (then every line is made again)."""
        folder = Path(folder)
        try:
            index = np.load(folder / CLUSTER_INDEX, allow_pickle=False)
            size = (folder / "clusters.json").stat().st_size
        except (OSError, ValueError):
            return None
        if index.dtype != _INDEX_DTYPE or (
            len(index) and int((index["start"] + index["length"]).max()) > size
        ):
            return None
        return cls(folder / "clusters.json", np.sort(index, order="key"))

    def find(self, fingerprints: Sequence[bytes]) -> np.ndarray:
        """Per fingerprint, its row in the index, or -1 where the file has no such line."""
        found = np.full(len(fingerprints), -1, dtype=np.int64)
        if not len(fingerprints) or not len(self._index):
            return found
        rows = np.searchsorted(self._index["key"], _fingerprint_keys(fingerprints))
        rows = np.minimum(rows, len(self._index) - 1)
        for position, (row, fingerprint) in enumerate(
            zip(rows.tolist(), fingerprints, strict=True)
        ):
            if self._index["fingerprint"][row].tobytes() == fingerprint:
                found[position] = row
        return found

    def line(self, row: int) -> bytes:
        """The line of index row ``row`` (without its separators)."""
        start, length = int(self._index["start"][row]), int(self._index["length"][row])
        return os.pread(self._file.fileno(), length, start)

    def close(self) -> None:
        self._file.close()


class ClusterRecords:
    """The ``clusters`` of ``clusters.json``, made one cluster at a time as they are read.

    Every cluster's record (members, links, each aligned sentence pair with
    both texts) held at once was ~200 MB at 100,000 documents, and grows
    with the corpus; ``clusters.json`` reads them all, in turn, and only the
    links' positions are kept between. ``report.html`` and ``report.md``
    show the first few clusters: they read :meth:`sizes` and make only
    those (:meth:`record_at`). Iterating gives dicts, largest cluster first;
    ``len()`` is the count. With ``earlier`` (an addition's state), a cluster
    whose fingerprint it holds is read from there, not made.
    """

    def __init__(self, result: RunResult, earlier: ClusterLines | None = None) -> None:
        self._result = result
        self._earlier = earlier
        #: ``(start, length)`` of each cluster's line, set when ``clusters.json`` is written
        self.spans: np.ndarray | None = None
        self._ids = cluster_ids(result)
        labels = result.labels
        self._members = np.argsort(labels, kind="stable")  # documents, grouped by cluster
        self._member_starts = np.searchsorted(labels[self._members], np.arange(len(self._ids) + 1))
        evidence = EvidenceTable.of(result.evidence)
        linked = np.flatnonzero(_linked(result))
        linked = linked[labels[evidence.left[linked]] == labels[evidence.right[linked]]]
        link_labels = labels[evidence.left[linked]]
        self._links = linked[np.argsort(link_labels, kind="stable")]  # in pair order per cluster
        self._link_starts = np.searchsorted(np.sort(link_labels), np.arange(len(self._ids) + 1))
        self._evidence = evidence
        self._copy_joins: dict[int, list[CopyJoin]] = {}
        for join in result.copy_joins:
            self._copy_joins.setdefault(int(labels[join.copy]), []).append(join)
        self._adoptions: dict[int, list[Adoption]] = {}
        for adoption in result.adoptions:
            self._adoptions.setdefault(int(labels[adoption.document]), []).append(adoption)

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[dict[str, object]]:
        for rank in range(len(self._labels)):
            yield self.record_at(rank)

    def lines(self) -> Iterator[bytes]:
        """Each cluster's record as one compact JSON line, in the order iterating gives
        them: copied from ``earlier`` where it holds the cluster's fingerprint."""
        for rank, label in enumerate(self._labels.tolist()):
            line = self._earlier_line(rank)
            yield line if line is not None else _dumped(self._record(label)).encode("utf-8")

    def index(self) -> np.ndarray:
        """The rows of :data:`CLUSTER_INDEX` for the ``clusters.json`` just written."""
        if self.spans is None:
            raise RuntimeError("clusters.json has not been written yet")
        rows = np.zeros(len(self._labels), dtype=_INDEX_DTYPE)
        fingerprints = self.fingerprints
        rows["key"] = _fingerprint_keys(fingerprints)
        rows["fingerprint"] = [np.void(f) for f in fingerprints]
        rows["start"], rows["length"] = self.spans[:, 0], self.spans[:, 1]
        return rows

    def sizes(self) -> list[int]:
        """Each cluster's size, in the order iterating gives them (nothing is made)."""
        return np.diff(self._member_starts)[self._labels].tolist()

    def record_at(self, rank: int) -> dict[str, object]:
        """The ``rank``-th record iterating gives, made alone: a view that shows the
        first few clusters makes only those. Not kept for ``report.md``: with the
        7,000 records ``report.html`` shows held (stop 38, 7ed4c8c), the driver's
        peak at 100,000 generated documents rose 1,648 -> 1,750 MB, for ~1 s."""
        line = self._earlier_line(rank)
        return json.loads(line) if line is not None else self._record(int(self._labels[rank]))

    def _earlier_line(self, rank: int) -> bytes | None:
        """The earlier line of the ``rank``-th cluster, where its fingerprint is in the
        index and the line there begins with the cluster's id (else None: made again)."""
        row = int(self._earlier_rows[rank])
        if row < 0:
            return None
        line = self._earlier.line(row)  # type: ignore[union-attr]
        label = int(self._labels[rank])
        return line if line.startswith(f'{{"id": {_dumped(self._ids[label])},'.encode()) else None

    @cached_property
    def _labels(self) -> np.ndarray:
        """The labels that have members, in the order iterating gives their records
        (found once: a view asks for one record at a time)."""
        return np.flatnonzero(np.diff(self._member_starts) > 0)

    @cached_property
    def _earlier_rows(self) -> np.ndarray:
        """Per cluster in iteration order, its line's row in ``earlier``'s index, or -1."""
        if self._earlier is None:
            return np.full(len(self._labels), -1, dtype=np.int64)
        return self._earlier.find(self.fingerprints)

    @cached_property
    def fingerprints(self) -> list[bytes]:
        """A 16-byte digest per cluster, in iteration order, of everything its record
        is made from, read without the texts: its id, representative, members (id,
        language, confidence, script, sentence count), links (the evidence's
        columns and aligned rows), copy joins and adoptions, keyed by this module's
        source. A record also holds each member's text length and record fields, and
        the aligned sentences' texts: in a state an id names one text (an addition
        refuses a known id with another text) and its sentences follow from it, its
        language and script.
        """
        result = self._result
        ids = result.ids
        names = self._ids
        languages = getattr(result.segmented, "languages", None)
        if languages is None:
            languages = [d.language for d in result.segmented]
        sentence_counts = np.diff(result.offsets()).tolist()
        evidence = self._evidence
        starts = evidence.record_starts
        salt = hashlib.blake2b(
            f"{SCHEMA_VERSION}:{source_digest(__name__)}".encode(), digest_size=32
        ).digest()
        fingerprints = []
        for label in self._labels.tolist():
            members = self._members[self._member_starts[label] : self._member_starts[label + 1]]
            digest = hashlib.blake2b(key=salt, digest_size=16)
            head = [names[label], ids[result.representatives[label]]]
            for index in members.tolist():
                guess = languages[index]
                head.append(
                    f"{ids[index]}\t{guess.lang}\t{guess.confidence!r}\t{guess.script}"
                    f"\t{sentence_counts[index]}"
                )
            for position in self._links_of(label):
                head.append(
                    f"{ids[evidence.left[position]]}\t{ids[evidence.right[position]]}"
                    f"\t{evidence.score[position]!r}\t{evidence.shorter[position]}"
                )
                digest.update(evidence.records[starts[position] : starts[position + 1]].tobytes())
            for join in self._copy_joins.get(label, []):
                head.append(
                    f"copy\t{ids[join.copy]}\t{ids[join.primary]}\t{join.jaccard!r}"
                    f"\t{join.own_text_found!r}\t{join.furniture_share!r}"
                )
            for a in self._adoptions.get(label, []):
                head.append(
                    f"adopted\t{ids[a.document]}\t{ids[a.closest]}\t{a.agreement!r}"
                    f"\t{a.next_best!r}\t{a.bar!r}\t{a.scored}\t{a.members}"
                    f"\t{None if a.beside is None else ids[a.beside]}"
                    f"\t{a.beside_score!r}\t{a.beside_value!r}"
                )
            digest.update("\n".join(head).encode("utf-8"))
            fingerprints.append(digest.digest())
        return fingerprints

    def _record(self, label: int) -> dict[str, object]:
        result = self._result
        segmented = result.segmented
        indices = self._members[self._member_starts[label] : self._member_starts[label + 1]]
        # each member read once (from disk, see dedup.shelf), whatever its links
        by_index = dict(zip(indices.tolist(), take_from(segmented, indices), strict=True))
        docs = list(by_index.values())
        links = [self._aligned_link(int(p), by_index) for p in self._links_of(label)]
        links += [_copy_link(result, join) for join in self._copy_joins.get(label, [])]
        links += [_adopted_link(result, a) for a in self._adoptions.get(label, [])]
        return {
            "id": self._ids[label],
            "size": len(docs),
            "languages": dict(sorted(Counter(d.language.group for d in docs).items())),
            "representative": by_index[result.representatives[label]].doc.id,
            "members": [
                {
                    "id": d.doc.id,
                    "lang": d.language.group,
                    "lang_confidence": d.language.confidence,
                    "script": d.language.script,
                    "sentences": len(d.sentences),
                    "chars": len(d.doc.text),
                    **_record_fields(d.doc),
                }
                for d in sorted(docs, key=lambda d: d.doc.id)
            ],
            "links": sorted(links, key=lambda x: (-x["score"], x["left"])),
        }

    def _links_of(self, label: int) -> list[int]:
        return self._links[self._link_starts[label] : self._link_starts[label + 1]].tolist()

    def _aligned_link(
        self, position: int, members: dict[int, SegmentedDocument]
    ) -> dict[str, object]:
        """An aligned pair of the cluster whose documents are ``members`` (by index)."""
        pair = self._evidence[position]
        left, right = members[pair.left], members[pair.right]
        return {
            "kind": "aligned",
            "left": left.doc.id,
            "right": right.doc.id,
            "score": round(pair.score, 4),
            "coverage": round(pair.coverage, 4),
            "aligned": [
                {
                    "left_sentence": a.left,
                    "right_sentence": a.right,
                    "left_text": left.sentences[a.left],
                    "right_text": right.sentences[a.right],
                    "similarity": a.similarity,
                    "z": a.z,
                    "weight": a.weight,
                }
                for a in pair.aligned
            ],
        }


def _copy_link(result: RunResult, join: CopyJoin) -> dict[str, object]:
    """An exact or near-exact copy, found before alignment, as a link of its cluster."""
    return {
        "kind": "copy",
        "left": result.ids[join.primary],
        "right": result.ids[join.copy],
        "score": round(join.jaccard, 4),
        "coverage": 1.0,
        "jaccard": round(join.jaccard, 4),
        "own_text_found": None if join.own_text_found is None else round(join.own_text_found, 4),
        "furniture_share": round(join.furniture_share, 4),
        "aligned": [],
    }


def _adopted_link(result: RunResult, adoption: Adoption) -> dict[str, object]:
    """A document without a link of its own, adopted by its cluster, as a link of
    its cluster: to the member it scored highest with, with the figures that decided."""
    return {
        "kind": "adopted",
        "left": result.ids[adoption.closest],
        "right": result.ids[adoption.document],
        "score": adoption.agreement,
        "coverage": None,
        "agreement": adoption.agreement,
        "next_best": adoption.next_best,
        "bar": adoption.bar,
        "scored": adoption.scored,
        "members": adoption.members,
        # a member of its language label it joined beside (cluster._sibling_vetoes)
        "beside": None if adoption.beside is None else result.ids[adoption.beside],
        "beside_score": adoption.beside_score,
        "beside_value": adoption.beside_value,
        "aligned": [],
    }


def _run_info(result: RunResult) -> dict[str, object]:
    versions = {}
    for package in (
        "dedup",
        "sentence-transformers",
        "transformers",
        "torch",
        "onnxruntime",
        "numpy",
        "faiss-cpu",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    config = dataclasses.asdict(result.config)
    config["cache_dir"] = str(config["cache_dir"]) if config["cache_dir"] else None
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": result.model_name, "fingerprint": result.model_fingerprint},
        "config": config,
        "versions": versions,
        # run-state counts (cache hits) live here, not in the deterministic clusters.json
        "summary": {
            **summary(result),
            "sentences_encoded": result.encoded_sentences,
            "texts_windowed": result.windowed_texts,
        },
        "stages": {
            name: {
                "seconds": round(s.seconds, 3),
                "items": s.items,
                "unit": s.unit,
                **({"cached": s.cached} if s.cached is not None else {}),
                "peak_rss_mb": round(s.peak_rss_mb),
            }
            for name, s in result.stages.items()
        },
    }


def _record_fields(doc: Document) -> dict[str, str | None]:
    """The record's own fields that help a reader tell documents apart (None: absent)."""
    return {"title": doc.title, "url": doc.url, "date": doc.date, "input_lang": doc.lang}


#: the columns of assignments.csv and assignments.parquet, with their Arrow types
ASSIGNMENT_COLUMNS = (
    ("doc_id", "string"),
    ("cluster_id", "string"),
    ("cluster_size", "int64"),
    ("lang", "string"),
    ("script", "string"),
    ("representative", "bool"),
    ("sentences", "int64"),
    ("cluster_languages", "string"),
    ("title", "string"),
    ("url", "string"),
    ("date", "string"),
    ("input_lang", "string"),
)
#: documents made into one Arrow batch of the assignment table at a time.
ASSIGNMENT_BLOCK = 10_000


def _assignment_rows(result: RunResult) -> Iterator[list[object]]:
    """One row per document, the values of :data:`ASSIGNMENT_COLUMNS` in order."""
    ids = cluster_ids(result)
    sizes = Counter(result.labels.tolist())
    rep_of = set(result.representatives.values())
    mix = cluster_languages(result)
    for index, seg in enumerate(result.segmented):
        label = int(result.labels[index])
        yield [
            seg.doc.id,
            ids[label],
            sizes[label],
            seg.language.group,
            seg.language.script,
            index in rep_of,
            len(seg.sentences),
            mix[label],
            *_record_fields(seg.doc).values(),
        ]


def assignment_table(result: RunResult) -> pa.Table:
    """The assignments as an Arrow table, the one source of ``assignments.csv``,
    ``assignments.parquet`` and :meth:`dedup.result.RunResult.to_pandas`: typed
    columns, null for a field a record does not have. Made
    :data:`ASSIGNMENT_BLOCK` documents at a time (Arrow's columns are compact;
    a Python row per document is not)."""
    import pyarrow as pa

    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in ASSIGNMENT_COLUMNS])
    rows = _assignment_rows(result)
    batches = []
    while block := list(islice(rows, ASSIGNMENT_BLOCK)):
        columns = zip(*block, strict=True)
        arrays = [
            pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)
        ]
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def _assignments_csv(table: pa.Table) -> str:
    """The CSV spelling of the table: ``true``/``false``, an empty cell for a missing field."""

    def cell(value: object) -> object:
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else value

    rows = zip(*(column.to_pylist() for column in table.columns), strict=True)
    return _csv([table.column_names, *([cell(v) for v in row] for row in rows)])


def report_files(result: RunResult, earlier: ClusterLines | None = None) -> dict[str, FileWriter]:
    """The writer of each report file, by name; each makes its file's text only when
    called, so one file's text is in memory at a time. The index of ``clusters.json``
    (:data:`CLUSTER_INDEX`) is written after it; ``earlier``: the lines of a state's
    ``clusters.json`` that clusters left as they were copy (see :class:`ClusterLines`)."""
    import pyarrow.parquet as pq

    assignments = assignment_table(result)
    skipped_rows: list[list[object]] = [["origin", "doc_id", "reason"]]
    skipped_rows += [[s.origin, s.doc_id or "", s.reason] for s in result.skipped]
    records = ClusterRecords(result, earlier)
    clusters = {"summary": summary(result), "clusters": records}
    return {
        "assignments.csv": _utf8(lambda: _assignments_csv(assignments)),
        "assignments.parquet": lambda handle: pq.write_table(assignments, handle),
        "clusters.json": lambda handle: write_json(clusters, handle),
        CLUSTER_INDEX: lambda handle: np.save(handle, records.index(), allow_pickle=False),
        "skipped.csv": _utf8(lambda: _csv(skipped_rows)),
        "run.json": lambda handle: write_json(_run_info(result), handle),
        "report.html": _utf8(lambda: render_html(result, clusters)),
        "report.md": _utf8(lambda: render_markdown(result, clusters)),
    }


def write_report(result: RunResult, out_dir: Path) -> list[Path]:
    """Write every output file into ``out_dir`` (made if missing); return their paths.

    The folder is also a state that ``dedup add`` can grow (the files of
    :mod:`dedup.state`): ``state.json`` is removed first and written last, so
    a run killed while writing leaves no state that an addition would trust,
    and what a killed addition left behind (``.pending/``) is dropped. It
    holds the state's lock while it writes (``.lock``).

    Raises:
        dedup.state.StateError: a ``dedup add`` is updating the folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {**report_files(result), **state_files(result, first_state(result), b"")}
    files[STATE] = files.pop(STATE)  # the last one
    written = []
    with locked(out_dir):  # not while a dedup add is updating this folder
        (out_dir / STATE).unlink(missing_ok=True)
        shutil.rmtree(out_dir / PENDING, ignore_errors=True)
        for name, write in files.items():
            atomic_write(out_dir / name, write)
            written.append(out_dir / name)
    return written


def _utf8(make: Callable[[], str]) -> Callable[[IO[bytes]], object]:
    """A writer of the text ``make()`` returns, in UTF-8, for :func:`atomic_write`."""
    return lambda handle: handle.write(make().encode("utf-8"))


def write_json(document: dict[str, object], handle: IO[bytes]) -> None:
    """``document`` as JSON written to ``handle``: one top-level key a line, and each
    item of a top-level list (a cluster of ``clusters.json``) compact on a line of its own.

    Written one value (one item) at a time, never the whole file as one
    string: the clusters of a large corpus, every aligned sentence included,
    are hundreds of MB of JSON. Items are compact because Python's JSON
    encoder runs in C only without indentation (about 5x faster on a large
    ``clusters.json``), and a cluster a line is what ``grep`` and ``jq -c``
    read best.
    """

    written = 0  # bytes so far: where each cluster's line begins

    def write(data: bytes) -> None:
        nonlocal written
        handle.write(data)
        written += len(data)

    write(b"{")
    for number, (key, value) in enumerate(document.items()):
        head = ("," if number else "") + "\n " + _dumped(key) + ": "
        if isinstance(value, ClusterRecords) and not len(value):
            value.spans = np.zeros((0, 2), dtype=np.int64)
            value = []  # no cluster: written as the empty list it stands for
        if isinstance(value, list | ClusterRecords) and len(value):
            lines = (
                value.lines()
                if isinstance(value, ClusterRecords)
                else (_dumped(item).encode("utf-8") for item in value)
            )
            write((head + "[").encode("utf-8"))
            spans = []
            for position, line in enumerate(lines):
                write(b",\n  " if position else b"\n  ")
                spans.append((written, len(line)))
                write(line)
            write(b"\n ]")
            if isinstance(value, ClusterRecords):
                value.spans = np.array(spans, dtype=np.int64).reshape(-1, 2)
        else:
            write((head + _dumped(value)).encode("utf-8"))
    write(b"\n}\n" if document else b"}\n")


def _dumped(value: object) -> str:
    """``value`` as compact JSON, non-ASCII characters as they are."""
    return json.dumps(value, ensure_ascii=False)


def format_summary(result: RunResult, out_dir: Path | None = None) -> str:
    """The one-screen summary printed at the end of ``dedup run``."""
    info = summary(result)
    langs = info["languages"]
    assert isinstance(langs, dict)
    shown = ", ".join(f"{k} {v}" for k, v in list(langs.items())[:12])
    more = f" (+{len(langs) - 12} more)" if len(langs) > 12 else ""
    lines = [
        f"documents in      {info['documents_in']}  (assigned {info['assigned']}, "
        f"skipped {info['skipped']})",
        f"clusters          {info['clusters']}  ({info['multi_document_clusters']} with several "
        f"documents, {info['singletons']} singletons; "
        f"{info['duplicates_to_drop']} duplicates to drop)",
        f"languages         {len(langs)}: {shown}{more}"
        + (
            f"; several languages under: {', '.join(result.pooled_groups)}"
            if result.pooled_groups
            else ""
        ),
        f"sentences         {info['sentences']}  ({info['boilerplate_sentences']} boilerplate, "
        f"{result.encoded_sentences} newly encoded, {result.windowed_texts} windowed)",
        f"pairs             {info['candidate_pairs']} aligned, {info['linked_pairs']} linked "
        f"(score >= {result.config.cluster.threshold})",
        "time              "
        + ", ".join(f"{name} {s.seconds:.1f}s" for name, s in result.stages.items()),
    ]
    if info["documents_in"] != info["assigned"] + info["skipped"]:  # pragma: no cover
        lines.append("WARNING: documents in != assigned + skipped")
    if out_dir is not None:
        lines.append(
            f"written to        {out_dir}/ (report.html, report.md, assignments.csv, "
            "assignments.parquet, clusters.json, ...)"
        )
    return "\n".join(lines)
