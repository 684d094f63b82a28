"""The state folder: a run's ``--out`` folder, which ``dedup add`` grows.

Besides the report files (:mod:`dedup.stages.report`), every ``--out``
folder holds what a later addition needs:

* ``documents.jsonl.gz``: every document of the state, each record as it was
  read (every field; the text normalised as ingest left it): the run's
  documents in id order, then each addition's new ones in id order, as one
  more gzip member (a file of several members is one gzip stream to
  ``zcat``, Python's ``gzip`` and pandas), so an addition copies the
  state's bytes instead of packing every record again;
* ``state.json``: the settings the clusters were made with (and the key that
  tells them apart), the model's fingerprint, the number of additions, the
  next cluster number and the count of input records read so far;
* ``changes.jsonl``: the change log, one line per change, each naming its
  addition (:class:`dedup.stages.lineage.Change`); empty after ``dedup run``;
* ``evidence.npz``: every scored pair of the state (what align found, the
  aligned sentences of the links) with the ids of the documents it numbers
  (:meth:`dedup.records.EvidenceTable.save`): an addition aligns only the
  pairs it does not hold;
* ``clusters.index.npy`` (written with the report, after ``clusters.json``):
  each cluster line's fingerprint and byte span, so an addition copies the
  lines of the clusters it left as they were
  (:class:`dedup.stages.report.ClusterLines`).

An addition never leaves a half-updated state. It holds the folder's lock
(``.lock``, an OS lock: a killed process releases it) while it works, writes
every new file into ``.pending/``, marks that folder complete (``COMMITTED``)
and only then moves the files into place, one ``rename`` each. A killed
addition left either an incomplete ``.pending/`` (thrown away: the state is
the old one) or a complete one (its moves are finished): whichever, the next
``dedup add`` (:func:`recover`) puts that right before it reads anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from filelock import FileLock, Timeout

from dedup.config import PipelineConfig
from dedup.files import atomic_write
from dedup.records import Document, EvidenceTable
from dedup.result import RunResult
from dedup.stages.boilerplate import usable_counts
from dedup.stages.lineage import first_lineage
from dedup.stages.link import EarlierEvidence, group_documents

DOCUMENTS = "documents.jsonl.gz"
STATE = "state.json"
CHANGES = "changes.jsonl"
EVIDENCE = "evidence.npz"
PENDING = ".pending"
COMMITTED = "COMMITTED"
LOCK = ".lock"
STATE_SCHEMA = 1

#: bytes copied at a time from the state's documents file into an addition's
_COPY_BYTES = 1 << 22

#: a writer of one file of the state: it is given the open file
FileWriter = Callable[[IO[bytes]], object]


class StateError(Exception):
    """A state folder that cannot be added to as asked (missing, busy, other settings,
    or an input that contradicts it); nothing was changed."""


def settings_of(config: PipelineConfig) -> dict[str, Any]:
    """The settings that decide the clusters: everything but where and how fast the
    work runs (cache folder, batch size, device, link reuse, excluded paths)."""
    settings = dataclasses.asdict(config)
    for name in ("cache_dir", "batch_size", "device", "reuse_links"):
        settings.pop(name)
    settings["ingest"].pop("exclude")
    return settings


def settings_key(config: PipelineConfig) -> str:
    """A hash of :func:`settings_of`: equal keys, equal clusters for equal documents."""
    text = json.dumps(settings_of(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StateInfo:
    """What ``state.json`` holds.

    Attributes:
        settings: :func:`settings_of` the run that made the state.
        settings_key: :func:`settings_key` of those settings.
        model_fingerprint: the encoder's fingerprint (vectors of another
            model do not compare with the state's).
        additions: how many ``dedup add`` have grown the state.
        next_cluster: the number the next fresh cluster id gets.
        documents_in: input records read into the state so far (documents
            plus skipped records).
    """

    settings: dict[str, Any]
    settings_key: str
    model_fingerprint: str
    additions: int
    next_cluster: int
    documents_in: int

    def config(self, exclude: tuple[str, ...] = (), **machine: Any) -> PipelineConfig:
        """The :class:`PipelineConfig` of the state's settings that the command line
        can give (model, threshold, preferred languages, id and text fields), with
        ``machine`` (cache folder, batch size, device) added and ``exclude`` (paths
        never read as input: the state folder itself) set.

        Raises:
            StateError: the state was made with settings the command line cannot
                give (through the API): add through the API with that config.
        """
        from dedup.stages.cluster import ClusterConfig
        from dedup.stages.ingest import IngestConfig

        settings = self.settings
        config = PipelineConfig(
            model=settings["model"],
            ingest=IngestConfig(
                id_field=settings["ingest"]["id_field"],
                text_field=settings["ingest"]["text_field"],
                exclude=exclude,
            ),
            cluster=ClusterConfig(threshold=settings["cluster"]["threshold"]),
            prefer_languages=tuple(settings["prefer_languages"]),
            **machine,
        )
        if settings_key(config) != self.settings_key:
            raise StateError(
                "the state was made with settings dedup add cannot repeat from the command "
                "line (set through the API); add with dedup.add(..., config=...) and those "
                "settings"
            )
        return config

    def as_json(self) -> dict[str, Any]:
        return {"schema_version": STATE_SCHEMA, **dataclasses.asdict(self)}


def read_info(folder: Path) -> StateInfo:
    """The ``state.json`` of ``folder``.

    Raises:
        StateError: no state there, or one of another schema.
    """
    path = Path(folder) / STATE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(
            f"{folder}: not a dedup state (no {STATE}); make one with dedup run ... --out {folder}"
        ) from None
    except (OSError, ValueError) as err:
        raise StateError(f"{path}: unreadable ({err})") from err
    if raw.get("schema_version") != STATE_SCHEMA:
        raise StateError(
            f"{path}: state schema {raw.get('schema_version')}, this dedup reads {STATE_SCHEMA}"
        )
    raw.pop("schema_version")
    return StateInfo(**raw)


def state_files(
    result: RunResult,
    info: StateInfo,
    changes: bytes,
    basis: dict[str, int] | None = None,
    grown: tuple[Path, Sequence[Document]] | None = None,
) -> dict[str, FileWriter]:
    """The writers of the state's own files: ``documents.jsonl.gz``, ``evidence.npz``,
    ``state.json`` and ``changes.jsonl`` (``changes``, the whole log).

    ``basis``: documents per language group when its statistics were last taken
    as current (:class:`~dedup.stages.link.EarlierEvidence`); None: now (every
    pair of ``result`` was scored with its own statistics). ``grown``: an
    addition's ``(the state's documents file, the new documents)``: the file
    is copied and the new documents follow it as one more gzip member; None:
    every document of ``result`` is written.
    """
    from dedup.stages.corpus_out import input_record, write_jsonl_gz

    text = json.dumps(info.as_json(), indent=2, sort_keys=True) + "\n"
    if grown is None:
        records = (input_record(doc, result) for doc in result.documents)
    else:
        before, new = grown
        records = (input_record(doc, result) for doc in sorted(new, key=lambda d: d.id))

    def write_documents(handle: IO[bytes]) -> None:
        if grown is not None:
            with before.open("rb") as old:
                shutil.copyfileobj(old, handle, _COPY_BYTES)
        # gzip level 1: the state's copy of the corpus is written on every run
        write_jsonl_gz(records, handle, level=1)

    return {
        DOCUMENTS: write_documents,
        EVIDENCE: lambda handle: _write_evidence(handle, result, basis),
        STATE: lambda handle: handle.write(text.encode("utf-8")),
        CHANGES: lambda handle: handle.write(changes),
    }


def primary_groups(result: RunResult) -> list[str]:
    """The language group of each primary document of ``result`` (copies left out)."""
    primaries = np.flatnonzero(result.primary_of == np.arange(len(result.primary_of)))
    return [result.group_names[g] for g in result.doc_groups[primaries].tolist()]


def _write_evidence(handle: IO[bytes], result: RunResult, basis: dict[str, int] | None) -> None:
    """``evidence.npz``: the columns of the evidence, the ids its numbers stand for,
    each document's usable sentences and the statistics' basis per group."""
    basis = basis if basis is not None else group_documents(primary_groups(result))
    offsets = result.offsets()
    EvidenceTable.of(result.evidence).save(
        handle,
        doc_ids=np.array(result.ids, dtype=str),
        usable_counts=usable_counts(result.usable, offsets),
        searched=result.primary_of == np.arange(len(result.primary_of)),
        basis_groups=np.array(sorted(basis), dtype=str),
        basis_docs=np.array([basis[g] for g in sorted(basis)], dtype=np.int64),
    )


def read_evidence(folder: Path) -> EarlierEvidence | None:
    """The state's ``evidence.npz``, or None where the state has none (made by an
    older dedup).

    Raises:
        StateError: the file is there but cannot be read.
    """
    path = Path(folder) / EVIDENCE
    if not path.exists():
        return None
    try:
        evidence, extra = EvidenceTable.load(path)
        basis = dict(zip(extra["basis_groups"].tolist(), extra["basis_docs"].tolist(), strict=True))
        return EarlierEvidence(
            extra["doc_ids"].tolist(), evidence, extra["usable_counts"], extra["searched"], basis
        )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise StateError(f"{path}: unreadable ({err}); nothing was changed") from err


def first_state(result: RunResult) -> StateInfo:
    """The state of a fresh run (``dedup run``): no addition yet."""
    return StateInfo(
        settings=settings_of(result.config),
        settings_key=settings_key(result.config),
        model_fingerprint=result.model_fingerprint,
        additions=0,
        next_cluster=first_lineage(result.labels).next_number,
        documents_in=result.documents_in or len(result.documents) + len(result.skipped),
    )


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the state's lock: one addition at a time.

    Raises:
        StateError: another process holds it (another ``dedup add`` is running).
    """
    lock = FileLock(Path(folder) / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StateError(
            f"{folder}: another dedup add is updating this state; run this one when it has finished"
        ) from None
    try:
        yield
    finally:
        lock.release()


def recover(folder: Path) -> str | None:
    """Finish or undo what a killed addition left (call under :func:`locked`).

    Returns:
        what was done (``"finished"``, ``"rolled back"``), None when nothing was left.
    """
    pending = Path(folder) / PENDING
    if not pending.exists():
        return None
    if (pending / COMMITTED).exists():
        _move_into_place(pending, Path(folder))
        return "finished"
    shutil.rmtree(pending)
    return "rolled back"


def commit(folder: Path, files: dict[str, FileWriter]) -> None:
    """Replace ``files`` in ``folder`` all together (call under :func:`locked`).

    Each file is written into ``.pending/``, the folder is marked complete,
    then each file is renamed into place; a kill at any point leaves what
    :func:`recover` finishes or undoes.
    """
    folder = Path(folder)
    pending = folder / PENDING
    shutil.rmtree(pending, ignore_errors=True)
    pending.mkdir()
    for name, write in files.items():
        atomic_write(pending / name, write)
    atomic_write(pending / COMMITTED, lambda handle: handle.write("\n".join(files).encode()))
    _fsync_folder(pending)
    _move_into_place(pending, folder)


def _move_into_place(pending: Path, folder: Path) -> None:
    """Rename every file the ``COMMITTED`` list names from ``pending`` into ``folder``
    (those already moved are gone from ``pending``), then drop ``pending``."""
    names = (pending / COMMITTED).read_text(encoding="utf-8").split("\n")
    for name in names:
        if (pending / name).exists():
            os.replace(pending / name, folder / name)
    _fsync_folder(folder)
    shutil.rmtree(pending)


def _fsync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
