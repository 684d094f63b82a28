"""What a run found (:class:`RunResult`, :class:`Cluster`) and what each stage cost.

Kept apart from :mod:`dedup.api` so that the stages that read a result (the
report, the corpus writer, the evaluation) do not import the entry point
that runs them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dedup.records import Document, PairEvidence, SegmentedDocument, SkippedInput
from dedup.stages.cluster import Adoption
from dedup.stages.copies import CopyJoin
from dedup.stages.lineage import first_lineage

if TYPE_CHECKING:
    import pandas as pd

    from dedup.config import PipelineConfig
    from dedup.stages.embed import VectorFile


@dataclass
class StageStats:
    """Wall time and item counts of one stage, for the summary and the benchmarks.

    ``cached``, for the stages that look their results up in the document
    cache (see :mod:`dedup.stages.document_cache`), is how many were found
    there instead of computed: copies: MinHash signatures (one per distinct
    text); langid, segment: documents; align: pairs whose alignment a killed
    run had already computed (read back from its checkpoints, see
    :class:`dedup.engines.checkpoint.CheckpointEngine`). None for the other
    stages.
    ``peak_rss_mb`` is the process's peak resident memory when the stage
    ended (a running maximum: the stage that raises it is the one to look at;
    0 where the platform does not tell).
    """

    seconds: float = 0.0
    items: int = 0
    unit: str = ""
    cached: int | None = None
    peak_rss_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunResult:
    """Everything a run found, documents in id order.

    Attributes:
        documents: the documents read, sorted by id. After :func:`dedup.run`, a
            sequence read from disk as it is used (:mod:`dedup.shelf`), not a
            list: index and iterate it; ``list(...)`` holds the corpus in memory.
        skipped: inputs that did not become documents, with reasons.
        segmented: language and sentences of each document (from disk too).
        labels: cluster number of each document (0 = largest cluster).
        representatives: for each cluster number, the document kept (see
            :func:`dedup.stages.keep.choose_representatives`).
        evidence: every scored candidate pair; the aligned sentence pairs are kept
            for pairs at or above the cluster threshold (the links the report shows).
        usable: per sentence, False for boilerplate (not used as evidence).
        primary_vectors: ``(n_primaries, dim)`` mean of each primary document's
            usable sentence vectors, L2-normalised, before language centring,
            primaries in document order (:attr:`doc_vectors` gives every
            document's). A run keeps them in an unnamed file
            (:class:`~dedup.stages.embed.VectorFile`: indexing reads rows,
            ``numpy.asarray`` all of them), not in memory.
        doc_groups: language group number of each document (index into
            ``group_names``).
        group_names: the language groups, sorted.
        primary_of: for each document, the index of the document it is a copy
            of (itself for a primary); copies skip the expensive stages.
        copy_joins: why each copy is one (its Jaccard and own-text figures
            against its primary), copies in document order.
        adoptions: why each document without a link of its own joined its
            cluster (:func:`dedup.stages.cluster.adopt_alone`), strongest first.
        pooled_groups: language groups whose links show several languages
            under one label; the one-document-per-language rule of the
            clustering is off for them (see
            :func:`dedup.stages.cluster.pooled_groups`).
        documents_in: input records read (= documents + skipped).
        stages: wall time and counts per stage.
        model_name, model_fingerprint: the encoder used.
        config: the settings of the run.
        encoded_sentences: sentences sent to the encoder (not found in the cache).
        windowed_texts: texts longer than the model window, encoded in windows.
        cluster_names: the id of each cluster number, where they carry on an
            earlier run's (``dedup add``, see :mod:`dedup.stages.lineage`);
            None: ``c0001`` is the largest cluster, and so on.
        sentence_offsets: ``(n_docs + 1,)`` where each document's sentences start
            in ``usable``, as the run counted them; None: counted from
            ``segmented`` when asked (:meth:`offsets`).
    """

    documents: Sequence[Document]
    skipped: list[SkippedInput]
    segmented: Sequence[SegmentedDocument]
    labels: np.ndarray
    representatives: dict[int, int]
    evidence: Sequence[PairEvidence]
    usable: np.ndarray
    primary_vectors: np.ndarray | VectorFile
    doc_groups: np.ndarray
    group_names: list[str]
    primary_of: np.ndarray
    stages: dict[str, StageStats]
    model_name: str
    model_fingerprint: str
    config: PipelineConfig
    documents_in: int = 0
    encoded_sentences: int = 0
    windowed_texts: int = 0
    copy_joins: list[CopyJoin] = field(default_factory=list)
    adoptions: list[Adoption] = field(default_factory=list)
    pooled_groups: list[str] = field(default_factory=list)
    cluster_names: list[str] | None = None
    sentence_offsets: np.ndarray | None = None

    def offsets(self) -> np.ndarray:
        """``(n_docs + 1,)`` where each document's sentences start in ``usable`` (read
        from ``segmented``, every document, where the run did not keep them)."""
        if self.sentence_offsets is None:
            counts = [len(seg.sentences) for seg in self.segmented]
            self.sentence_offsets = np.r_[0, np.cumsum(counts, dtype=np.int64)]
        return self.sentence_offsets

    @cached_property
    def ids(self) -> list[str]:
        """Every document's id, in the order of ``documents`` (read from them once)."""
        return [doc.id for doc in self.documents]

    @cached_property
    def _position(self) -> dict[str, int]:
        """Each document id's index in ``documents``: made once, on the first look-up."""
        return {doc_id: index for index, doc_id in enumerate(self.ids)}

    @property
    def doc_vectors(self) -> np.ndarray:
        """``(n_docs, dim)`` each document's vector (a copy's is its primary's): the
        naive one-vector-per-document baseline of ``dedup eval --sweep``. Made on
        each access, not kept: a second copy of the vectors for the whole run."""
        primaries = np.flatnonzero(self.primary_of == np.arange(len(self.primary_of)))
        if not len(primaries):
            return self.primary_vectors
        return self.primary_vectors[np.searchsorted(primaries, self.primary_of)]

    def index_of(self, doc_id: str) -> int:
        """The index in ``documents`` (and ``segmented``, ``labels``) of ``doc_id``.

        Raises:
            KeyError: no document of the run has this id.
        """
        return self._position[doc_id]

    def cluster_of(self, doc_id: str) -> int:
        """The cluster number of the document with id ``doc_id`` (a dict look-up).

        ``result.clusters()[result.cluster_of(doc_id)]`` is its :class:`Cluster`.

        Raises:
            KeyError: no document of the run has this id.
        """
        return int(self.labels[self.index_of(doc_id)])

    def clusters(self) -> list[Cluster]:
        """Every cluster, largest first (list index = cluster number), singletons included.

        >>> for cluster in result.clusters():                # doctest: +SKIP
        ...     if cluster.size > 1:
        ...         print(cluster.id, cluster.representative, cluster.duplicates)
        c0001 000_814e0ab8402dad44 ('002_20e4596e9ffa5474',)
        """
        ids = cluster_ids(self)
        members: list[list[int]] = [[] for _ in ids]
        for index, label in enumerate(self.labels.tolist()):
            members[label].append(index)
        return [
            Cluster(
                id=ids[label],
                label=label,
                members=tuple(sorted(self.ids[i] for i in indices)),
                representative=self.ids[self.representatives[label]],
                languages=tuple(sorted({self.group_names[self.doc_groups[i]] for i in indices})),
            )
            for label, indices in enumerate(members)
        ]

    def kept_ids(self) -> list[str]:
        """The id of the document each cluster keeps (its representative), largest cluster
        first: the deduplicated corpus is these documents (the keep policy is
        :func:`dedup.stages.keep.choose_representatives`)."""
        return [c.representative for c in self.clusters()]

    def to_pandas(self) -> pd.DataFrame:
        """One row per document, the columns of ``assignments.csv`` (typed, as in
        ``assignments.parquet``; see :mod:`dedup.stages.report`). Needs pandas
        (``pip install 'dedup[pandas]'``).

        >>> frame = result.to_pandas()                       # doctest: +SKIP
        >>> frame[frame.representative].doc_id.tolist() == sorted(result.kept_ids())
        True
        """
        from dedup.stages.report import assignment_table

        try:
            return assignment_table(self).to_pandas()
        except ImportError as err:
            raise ImportError(
                f"RunResult.to_pandas needs pandas ({err}); pip install 'dedup[pandas]'"
            ) from err


@dataclass(frozen=True, slots=True)
class Cluster:
    """One cluster of a run: the documents found to be the same article.

    Attributes:
        id: the cluster's id in the report files (``c0001`` is the largest in a
            fresh run; ``dedup add`` keeps the ids a state gave out).
        label: its number in :attr:`RunResult.labels` (its index in
            :meth:`RunResult.clusters`).
        members: the ids of its documents, sorted.
        representative: the id of the member the keep policy keeps.
        languages: the distinct language groups of its members, sorted.
    """

    id: str
    label: int
    members: tuple[str, ...]
    representative: str
    languages: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def duplicates(self) -> tuple[str, ...]:
        """The members other than the representative: what deduplication drops."""
        return tuple(m for m in self.members if m != self.representative)


def cluster_ids(result: Any) -> list[str]:
    """The id of each cluster number of ``result`` (anything with ``labels`` and
    ``cluster_names``): the names an addition carried on, else ``c`` and a
    zero-padded number, largest first, widened beyond 9,999 clusters."""
    if getattr(result, "cluster_names", None) is not None:
        return list(result.cluster_names)
    return first_lineage(result.labels).names


@contextmanager
def timed(stats: dict[str, StageStats], name: str, unit: str) -> Iterator[StageStats]:
    """Adds the wall time of the ``with`` block to ``stats[name]`` (made on first use)
    and notes the peak RSS at its end."""
    stage = stats.setdefault(name, StageStats(unit=unit))
    start = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds += time.perf_counter() - start
        stage.peak_rss_mb = peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
