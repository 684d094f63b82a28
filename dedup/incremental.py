"""``dedup add``: new documents join a state made by ``dedup run``, cluster ids kept.

>>> import dedup                                          # doctest: +SKIP
>>> added = dedup.add("today.jsonl", "state/")
>>> added.counts()
{'new_documents': 120, 'present': 3, 'skipped': 0, 'joined': 41, 'new': 60, ...}

What an addition does, in order:

1. takes the state's lock (a second ``dedup add`` on the same state fails
   at once with a clear error) and finishes or undoes what a killed one
   left (:func:`dedup.state.recover`);
2. reads the new input and checks it against the state: a record whose id
   is in the state with the same text is *present* (listed, not added); one
   with another text is an error naming its file and line, and nothing
   changes;
3. clusters the state's documents and the new ones with the state's
   settings (:func:`dedup.api.run`); everything cached (each document's
   copies signature, language and sentences, every sentence vector) is
   read, not recomputed, so only the new documents are encoded; the pairs
   the state holds evidence for (``evidence.npz``) are not aligned again,
   and only the documents they do not settle (new ones, those of a
   language whose statistics moved, those whose boilerplate changed)
   search for neighbours (:meth:`dedup.stages.link.EarlierEvidence.among`);
4. names the clusters after the ones they continue
   (:func:`dedup.stages.lineage.carry_ids`) and logs every change;
5. writes the report, the documents, ``state.json`` and the extended
   ``changes.jsonl`` all together (:func:`dedup.state.commit`).

What is frozen and what is recomputed: the statistics the scores rest on
(language means, the null model, boilerplate counts) are recomputed over
the union, and the new pairs are scored with them; a pair the state holds
keeps the score it was given with the statistics of its time, until its
language grew by :data:`~dedup.stages.link.REFRESH_GROWTH`. The clusters
therefore differ from a one-shot ``dedup run`` over everything where a
score moved across the threshold as the corpus grew (measured by
``bench/add_batches.py --agreement``, README "Growing a result"). Not
incremental yet: the statistics read every sentence vector again (from
the cache), the candidate index is built again over every document, and
the state is read whole and its report files written again (its documents
file only grows: the new documents are appended; the ``clusters.json`` line
of a cluster the addition left as it was is copied, see
:class:`dedup.stages.report.ClusterLines`); what each document's
text gives (line and sentence hashes, numbers, language or script,
sentences, MinHash signature) is read back from the document cache.
``docs/design.md`` ("``dedup add``") says what comes next.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dedup.api import run
from dedup.config import PipelineConfig
from dedup.encoding import cache_root
from dedup.engines import Engine
from dedup.records import Document, EvidenceTable, SkippedInput
from dedup.result import RunResult
from dedup.shelf import Shelf
from dedup.stages.embed import SentenceEncoder
from dedup.stages.ingest import Ingested, InputPaths, read_documents, read_input
from dedup.stages.lineage import Change, carry_ids
from dedup.stages.link import group_documents
from dedup.stages.report import ClusterLines, report_files
from dedup.state import (
    CHANGES,
    DOCUMENTS,
    EVIDENCE,
    StateError,
    commit,
    locked,
    primary_groups,
    read_evidence,
    read_info,
    recover,
    settings_key,
    state_files,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AddResult", "add"]

#: the reason an input record already in the state is listed in skipped.csv
PRESENT = "already in the state, same text"


@dataclass
class AddResult:
    """What one addition did.

    Attributes:
        result: the state's result after the addition (every document).
        addition: the addition's number (1 for the first ``dedup add``).
        changes: what changed (:class:`~dedup.stages.lineage.Change`).
        new_documents: ids of the documents the addition brought in.
        skipped: input records this addition skipped (unreadable, no id, a
            duplicate id within the input; not the present ones).
        recovered: what was left by a killed addition and put right first
            (``"finished"``, ``"rolled back"``), or None.
    """

    result: RunResult
    addition: int
    changes: list[Change]
    new_documents: list[str]
    skipped: int
    recovered: str | None = None

    def counts(self) -> dict[str, int]:
        """Documents added, present and skipped, and the changes by kind (documents
        for ``joined``/``new``/``moved``, clusters for ``merged``)."""
        by_event: Counter[str] = Counter()
        for change in self.changes:
            by_event[change.event] += 1 if change.event == "merged" else len(change.doc_ids)
        return {
            "new_documents": len(self.new_documents),
            "present": by_event.pop("present", 0),
            "skipped": self.skipped,
            **{event: by_event[event] for event in ("joined", "new", "merged", "moved")},
        }


def add(
    documents: InputPaths | Iterable[Mapping[str, Any] | Sequence[Any]] | pd.DataFrame,
    state: str | Path,
    config: PipelineConfig | None = None,
    *,
    progress: bool = False,
    engine: Engine | None = None,
    encoder: SentenceEncoder | None = None,
    log: Callable[[str], None] | None = None,
) -> AddResult:
    """Add ``documents`` (any input :func:`dedup.run` takes) to the state folder ``state``.

    Args:
        documents: the new documents.
        state: a folder a ``dedup run --out`` (or :func:`dedup.write_report`) made.
        config: the state's settings with this machine's cache folder, batch
            size and device; None reads the settings from the state (those the
            command line can set).
        progress, engine, encoder, log: as :func:`dedup.run` (an encoder must be
            the state's: its fingerprint is checked).

    Raises:
        StateError: no state there, another addition running, settings or model
            other than the state's, or a new record whose id is in the state
            with another text. Nothing is changed.
        dedup.stages.ingest.InputError: the new input cannot be read at all.
    """
    folder = Path(state)
    say = log or (lambda _message: None)
    read_info(folder)  # a folder that is no state is an error before anything is made in it
    with locked(folder):
        recovered = recover(folder)
        if recovered:
            say(f"{folder}: the last addition was interrupted; its update was {recovered}")
        info = read_info(folder)
        config = config or info.config()
        if settings_key(config) != info.settings_key:
            raise StateError(
                f"{folder}: the state was made with other settings than these "
                f"({info.settings}); add with the state's own"
            )
        scratch = cache_root(config.cache_dir) / "runs"  # the texts stay on disk (dedup.shelf)
        stored = read_documents(folder / DOCUMENTS, config.ingest, scratch)
        incoming = read_input(documents, config.ingest, scratch)
        fresh, present = _check_against(stored.documents, incoming.documents, folder)
        addition = info.additions + 1
        n_stored = len(stored.documents)
        union_documents = stored.documents
        assert isinstance(union_documents, Shelf)  # read_documents keeps them on one
        union_documents.extend(fresh)  # the state's documents, then the new ones
        union = Ingested(
            union_documents, incoming.skipped, n_stored + len(fresh) + len(incoming.skipped)
        )
        earlier = read_evidence(folder)
        if earlier is None:
            say(f"{folder}: no {EVIDENCE} (a state of an older dedup): every pair is aligned")
        result = run(
            union,
            config,
            progress=progress,
            engine=engine,
            encoder=encoder,
            log=log,
            earlier=earlier,
        )
        if result.model_fingerprint != info.model_fingerprint:
            raise StateError(
                f"{folder}: the state's vectors come from a model with fingerprint "
                f"{info.model_fingerprint}, this one is {result.model_fingerprint} "
                f"({result.model_name}); add with the state's model"
            )
        previous = _assignments(folder)
        lineage = carry_ids(
            result.ids,
            result.labels,
            previous,
            info.next_cluster,
            EvidenceTable.of(result.evidence),
            config.cluster.threshold,
            result.copy_joins,
        )
        changes = [
            *lineage.changes,
            *(Change("present", None, (d.id,)) for d in sorted(present, key=lambda d: d.id)),
        ]
        # the origin names the addition: skipped.csv lists what every addition skipped
        new_skipped = [
            dataclasses.replace(s, origin=f"{s.origin} (addition {addition})")
            for s in [*incoming.skipped, *(SkippedInput(d.origin, PRESENT, d.id) for d in present)]
        ]
        result = dataclasses.replace(
            result,
            skipped=[*_skipped(folder), *new_skipped],
            documents_in=info.documents_in + incoming.records,
            cluster_names=lineage.names,
        )
        grown = dataclasses.replace(
            info,
            additions=addition,
            next_cluster=lineage.next_number,
            documents_in=result.documents_in,
        )
        log_lines = "".join(
            json.dumps(change.as_json(addition), ensure_ascii=False) + "\n" for change in changes
        )
        old_log = (folder / CHANGES).read_bytes() if (folder / CHANGES).exists() else b""
        # the clusters the addition left as they were: their lines are copied
        earlier_lines = ClusterLines.read(folder)
        try:
            commit(
                folder,
                {
                    **report_files(result, earlier_lines),
                    **state_files(
                        result,
                        grown,
                        old_log + log_lines.encode("utf-8"),
                        earlier.basis_after(group_documents(primary_groups(result)))
                        if earlier
                        else None,
                        grown=(folder / DOCUMENTS, fresh),
                    ),
                },
            )
        finally:
            if earlier_lines is not None:
                earlier_lines.close()
    return AddResult(
        result, addition, changes, [d.id for d in fresh], len(incoming.skipped), recovered
    )


def _check_against(
    stored: Sequence[Document], incoming: Sequence[Document], folder: Path
) -> tuple[list[Document], list[Document]]:
    """Split ``incoming`` into new documents and ones the state holds with the same text.

    Raises:
        StateError: a record whose id the state holds with another text.
    """
    digest_of = {doc.id: _digest(doc.text) for doc in stored}
    fresh, present = [], []
    for doc in incoming:
        known = digest_of.get(doc.id)
        if known is None:
            fresh.append(doc)
        elif known == _digest(doc.text):
            present.append(doc)
        else:
            raise StateError(
                f"{doc.origin}: id {doc.id!r} is in {folder} with another text; an addition "
                "never changes a document (give the new version its own id)"
            )
    return fresh, present


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _assignments(folder: Path) -> dict[str, str]:
    """Each document's cluster id in the state's ``assignments.parquet``."""
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "assignments.parquet", columns=["doc_id", "cluster_id"])
    return dict(zip(table["doc_id"].to_pylist(), table["cluster_id"].to_pylist(), strict=True))


def _skipped(folder: Path) -> list[SkippedInput]:
    """The state's ``skipped.csv``: what the run and earlier additions skipped."""
    path = folder / "skipped.csv"
    if not path.exists():
        return []
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    return [SkippedInput(r["origin"], r["reason"], r["doc_id"] or None) for r in rows]
