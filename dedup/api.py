"""The Python entry point: ``dedup.run(input, config)`` and its result.

One call runs the stages in order, each a function of the records before it
(one module each under :mod:`dedup.stages`; ``docs/design.md`` has the table):

    ingest -> copies -> langid -> segment -> boilerplate -> embed
           -> link (candidates, align) -> cluster -> keep

and returns a :class:`~dedup.result.RunResult`;
:func:`dedup.stages.report.write_report` turns that into files. The CLI is a
thin layer over these two calls. No stage imports this module.

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

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dedup.cache import finished, resume_folder, run_folder_lock
from dedup.config import PipelineConfig
from dedup.encoding import cache_root, lazy_encoder
from dedup.engines import Engine, LocalEngine
from dedup.engines.checkpoint import CheckpointEngine
from dedup.records import Document, SegmentedView
from dedup.result import RunResult, StageStats, timed
from dedup.shelf import FieldView, FlatRows, Picked, Shelf
from dedup.stages.align import cached_number_table, joined_number_tables, numbers_of_rows
from dedup.stages.boilerplate import (
    PrimaryView,
    cached_key_hashes,
    usable_counts,
    usable_sentences,
)
from dedup.stages.cluster import Adoption, canonical_labels, cluster_documents, pooled_groups
from dedup.stages.copies import (
    OwnTexts,
    copy_joins,
    find_copies,
    text_lines,
)
from dedup.stages.document_cache import COMMIT_DOCUMENTS, DocumentCache
from dedup.stages.embed import (
    EmbeddingCache,
    EncoderSpec,
    SentenceEncoder,
    VectorFile,
    embed_sentences,
)
from dedup.stages.ingest import InputPaths, read_input
from dedup.stages.keep import representatives as representatives_of
from dedup.stages.langid import identify_all, normalise_supplied, with_supplied
from dedup.stages.link import EarlierEvidence, Links, link_documents
from dedup.stages.link_cache import LinkCache, links_key
from dedup.stages.segment import split_all

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PipelineConfig", "RunResult", "run"]

#: documents segmented at a time: the document cache commits as often.
SEGMENT_BLOCK = COMMIT_DOCUMENTS


def run(
    documents: InputPaths | Iterable[Mapping[str, Any] | Sequence[Any]] | pd.DataFrame,
    config: PipelineConfig | None = None,
    *,
    progress: bool = False,
    engine: Engine | None = None,
    encoder: SentenceEncoder | None = None,
    log: Callable[[str], None] | None = None,
    earlier: EarlierEvidence | None = None,
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
        earlier: evidence computed before for some of these documents
            (:func:`dedup.add` passes its state's): those pairs are kept, not
            aligned again (see :func:`~dedup.stages.link.link_documents`), and
            the link cache is neither read nor filled, as the links then
            depend on more than the corpus.

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

    scratch_root = cache_root(config.cache_dir) / "runs"
    with timed(stats, "ingest", "documents") as stage:
        # the documents stay on disk (see dedup.shelf), read back as each stage needs them
        ingested = read_input(documents, config.ingest, folder=scratch_root)
        documents, ids, supplied, text_lengths = _in_id_order(ingested.documents)
        stage.items = ingested.records
    if ingested.skipped:
        first = ingested.skipped[0]
        say(
            f"skipped {len(ingested.skipped)} input(s), listed in skipped.csv; "
            f"first: {first.origin}: {first.reason}"
        )
    texts = FieldView(documents, attrgetter("text"))
    # what copies, langid and segment compute per document is looked up first,
    # and only the documents missing from the cache are worked on
    with DocumentCache(cache_root(config.cache_dir) / "documents", log=say) as known:
        with timed(stats, "copies", "documents") as stage:
            # each text's digest and line keys, read once for the copy pass, its
            # furniture and langid's (cached: an addition reads them)
            lines = text_lines(texts, known)
            # lines in >= 3 distinct texts, counted once for both (the near-copy test's)
            shared = lines.distinct_furniture() if config.copies.threshold < 1 else None
            primary_of = find_copies(
                texts, ids, config.copies, cache=known, furniture=shared, digests_of=lines.digests
            )
            joins = copy_joins(texts, primary_of, config.copies, shared)
            stage.items = len(documents)
            stage.cached = known.hits["signatures"]
        with timed(stats, "langid", "documents") as stage:
            # a copy is read as its primary is: 10,000 reposts cost one identification
            heads = np.unique(primary_of).tolist()
            # and read on its own text: forty briefs under one English footer are
            # not English (lines in >= 3 articles are furniture, see copies)
            head_numbers = np.asarray(heads, dtype=np.int64)
            head_texts = Picked(texts, head_numbers)
            furniture = lines.furniture(head_numbers)
            holds_furniture = lines.holds(furniture, head_numbers)
            del lines
            # a group whose every member names its language needs only its script
            unlabelled = {
                int(p)
                for p, lang in zip(primary_of.tolist(), supplied, strict=True)
                if normalise_supplied(lang) is None
            }
            own_texts = OwnTexts(head_texts, furniture, holds_furniture)
            script_only = [p not in unlabelled for p in heads]
            guesses = dict(
                zip(heads, identify_all(own_texts, known, script_only=script_only), strict=True)
            )
            # a language the input supplies overrides the guess (see with_supplied)
            languages = [
                with_supplied(guesses[p], lang)
                for p, lang in zip(primary_of.tolist(), supplied, strict=True)
            ]
            stage.items = len(guesses)
            stage.cached = known.hits["languages"]
        with timed(stats, "segment", "documents") as stage:
            # a block of documents at a time, their sentences kept on disk
            sentences_of: Shelf[tuple[str, ...]] = Shelf(folder=scratch_root)
            # and each sentence's boilerplate key, hashed (what boilerplate counts)
            key_blocks = []
            sentence_counts: list[int] = []  # per document, as the blocks go by
            # and the numbers each sentence holds (what align compares)
            number_blocks: list[tuple[np.ndarray, np.ndarray]] = []
            for start in range(0, len(documents), SEGMENT_BLOCK):
                stop = min(start + SEGMENT_BLOCK, len(documents))
                block = split_all(
                    texts[start:stop],
                    [g.lang for g in languages[start:stop]],
                    config.segment,
                    known,
                    scripts=[g.script for g in languages[start:stop]],
                )
                sentences_of.extend(block)
                sentence_counts.extend(map(len, block))
                key_blocks.append(cached_key_hashes(block, known))
                number_blocks.append(cached_number_table(block, known))
            segmented = SegmentedView(documents, languages, sentences_of)
            stage.items = len(segmented)
            stage.cached = known.hits["sentences"]
    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(sentence_counts, out=offsets[1:])
    del sentence_counts

    spec = None  # how an engine's workers load the same model (a given encoder is pickled)
    if encoder is None:
        with timed(stats, "load model", "models"):
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
    group_names = sorted({language.group for language in languages})
    group_index = {name: i for i, name in enumerate(group_names)}
    doc_groups = np.array([group_index[language.group] for language in languages], dtype=np.int64)
    primaries = np.flatnonzero(primary_of == np.arange(len(documents)))
    # from here on only primaries (one document per copy group) are processed
    view = PrimaryView.of(primaries, offsets)
    primary_sentences = FlatRows(sentences_of, view.offsets, docs=primaries)
    primary_groups = doc_groups[primaries]

    windowed_before = getattr(encoder, "windowed_texts", 0)
    primary_numbers = numbers_of_rows(joined_number_tables(number_blocks), view.rows)
    del number_blocks
    sentence_hashes = np.concatenate(key_blocks) if key_blocks else np.zeros(0, dtype=np.uint64)
    del key_blocks
    usable = usable_sentences(sentence_hashes, view, config.align.boilerplate_docs)
    del sentence_hashes
    primary_usable = usable_counts(usable[view.rows], view.offsets)  # per primary
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
    cache_links = config.reuse_links and earlier is None
    with timed(stats, "links cache", "pairs") as stage:
        stored = link_cache.get(link_key) if cache_links else None
        stage.items = len(stored[0]) if stored else 0
    if stored is not None:  # an unchanged corpus: no vector is read, no pair aligned
        links = Links(*stored)
        del stored
        say(f"links of this corpus found in {link_cache.folder}")
    else:
        scratch_root.mkdir(parents=True, exist_ok=True)
        # the run's sentence vectors live in a float16 file, not in memory (see VectorFile);
        # what align computes is kept chunk by chunk, so a killed run resumes (CheckpointEngine)
        with (
            tempfile.TemporaryDirectory(prefix="run-", dir=scratch_root) as scratch,
            run_folder_lock(Path(scratch)),  # a live run's folder: dedup cache prune keeps it
            resume_folder(cache_root(config.cache_dir), link_key) as checkpoints,
        ):
            if checkpoints is None:
                say("another run of this corpus is aligning it: this one keeps no checkpoints")
            link_engine = (
                engine if checkpoints is None else CheckpointEngine(engine, checkpoints, log=say)
            )
            with timed(stats, "embed", "sentences") as stage:
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
                written.close()
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
                primary_numbers,
                config,
                engine=link_engine,
                stats=stats,
                earlier=earlier.among(
                    [ids[d] for d in primaries],
                    primary_usable,
                    [group_names[g] for g in primary_groups],
                )
                if earlier
                else None,
                folder=scratch_root,  # the document vectors, in an unnamed file
            )
            if isinstance(link_engine, CheckpointEngine):
                stats["align"].cached = (stats["align"].cached or 0) + sum(
                    link_engine.reused.get(desc, 0) for desc in ("aligning", "aligning linked")
                )
                finished(link_engine.folder)
        if cache_links:
            with timed(stats, "links cache", "pairs"):
                try:
                    link_cache.put(link_key, links.evidence, links.doc_vectors)
                except OSError as error:  # a read-only or full cache: the run goes on
                    say(f"links not cached: {error}")
    local_evidence, primary_vectors = links.evidence, links.doc_vectors
    del links  # the evidence renumbered after clustering, not held twice while it runs
    with timed(stats, "cluster", "documents") as stage:
        pooled = pooled_groups(local_evidence, primary_groups, config.cluster.threshold)
        if pooled.any():
            say(
                "one-document-per-language rule off for labels that hold several languages: "
                + ", ".join(group_names[g] for g in np.flatnonzero(pooled))
            )
        adoptions: list[Adoption] = []
        primary_labels = cluster_documents(
            [ids[d] for d in primaries],
            local_evidence,
            primary_groups,
            config.cluster,
            pooled,
            doc_sentences=primary_usable,
            adoptions=adoptions,
            engine=engine,
        )
        adoptions = [  # numbered as the documents are
            replace(
                a,
                document=int(primaries[a.document]),
                closest=int(primaries[a.closest]),
                beside=None if a.beside is None else int(primaries[a.beside]),
            )
            for a in adoptions
        ]
        # a copy takes its primary's label (primaries are sorted)
        labels = canonical_labels(primary_labels[np.searchsorted(primaries, primary_of)], ids)
        representatives = representatives_of(
            labels,
            languages,
            usable_counts(usable, offsets),
            text_lengths,
            ids,
            config.prefer_languages,
        )
        stage.items = len(documents)
    evidence = local_evidence
    del local_evidence
    evidence.renumber(primaries)  # documents numbered as the run's (in place: 16 bytes a pair)
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
        primary_vectors=primary_vectors,
        doc_groups=doc_groups,
        group_names=group_names,
        primary_of=primary_of,
        copy_joins=joins,
        adoptions=adoptions,
        pooled_groups=[group_names[g] for g in np.flatnonzero(pooled)],
        stages=stats,
        model_name=getattr(encoder, "name", type(encoder).__name__),
        model_fingerprint=encoder.fingerprint,
        config=config,
        documents_in=ingested.records,
        encoded_sentences=encoded,
        windowed_texts=getattr(encoder, "windowed_texts", 0) - windowed_before,
        sentence_offsets=offsets,
    )


def _in_id_order(
    documents: Sequence[Document],
) -> tuple[Sequence[Document], list[str], list[str | None], np.ndarray]:
    """The documents sorted by id, with their ids, supplied languages and text lengths
    (one pass).

    Documents read by ingest stay on disk (a :class:`~dedup.shelf.Shelf`),
    copied into id order when the input was in another, so every later pass
    reads them in blocks; ids and supplied languages are the only
    per-document strings a run keeps in memory.
    """
    ids: list[str] = []
    supplied: list[str | None] = []
    lengths: list[int] = []
    for doc in documents:
        ids.append(doc.id)
        supplied.append(doc.lang)
        lengths.append(len(doc.text))
    text_lengths = np.array(lengths, dtype=np.int64)
    order = sorted(range(len(ids)), key=ids.__getitem__)
    if order != list(range(len(ids))):
        index = np.array(order, dtype=np.int64)
        if isinstance(documents, Shelf):  # later stages read it in order, a block at a time
            documents = documents.reordered(index)
        else:
            documents = Picked(documents, index)
        ids = [ids[i] for i in order]
        supplied = [supplied[i] for i in order]
        text_lengths = text_lengths[index]
    return documents, ids, supplied, text_lengths
