"""Candidates then align: from sentence vectors to the scored pairs the clustering reads.

The stages between embed and cluster, chained: document vectors centred per
language propose candidate pairs (:mod:`dedup.stages.candidates`), every
candidate is aligned sentence by sentence (:mod:`dedup.stages.align`), and
the linked-partner rounds propose the pairs among a document's strong
partners until none is new. An engine (:mod:`dedup.engines`) decides where
the null terms and alignments of each chunk are computed, never what.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dedup.engines import Engine, LocalEngine
from dedup.records import EvidenceTable
from dedup.result import StageStats, timed
from dedup.stages.align import (
    AlignConfig,
    AlignInputs,
    NullTerms,
    align_pairs,
    locality_order,
    null_keys,
    null_quadratics,
)
from dedup.stages.candidates import (
    CentredVectors,
    candidate_pairs,
    group_sums_and_document_means,
    language_centred,
    linked_partner_pairs,
    new_pairs,
    shrunk_means,
)
from dedup.stages.embed import VectorFile

if TYPE_CHECKING:
    from dedup.config import PipelineConfig


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
    with timed(stats, "candidates", "pairs") as stage:
        centred, doc_vectors = _read_summaries(vectors, sentence_doc, usable, doc_groups, config)
        doc_centred = language_centred(
            doc_vectors, doc_groups, np.ones(len(doc_groups)), config.candidates.centering_prior
        )
        pairs = candidate_pairs(doc_centred, centred, sentence_doc, usable, config.candidates)
        stage.items = len(pairs)
    with timed(stats, "align", "pairs") as stage:
        inputs = AlignInputs.build(centred, offsets, usable, doc_groups, sentences, config.align)
        parts = _align(pairs, inputs, doc_groups, config, engine, "aligning")
        # a story in dozens of languages: its versions link to each other through
        # their strong links, so the pairs among a document's linked partners are
        # aligned too, round after round, until no new pair is proposed
        for _ in range(config.candidates.link_rounds):
            linked = linked_partner_pairs(
                _column(parts, "left"),
                _column(parts, "right"),
                _column(parts, "score"),
                config.cluster.threshold,
                config.candidates.linked_partners,
            )
            fresh = new_pairs(linked, pairs)
            if not len(fresh):
                break
            parts += _align(fresh, inputs, doc_groups, config, engine, "aligning linked")
            pairs = np.concatenate([pairs, fresh])
        # pairs sorted, so the evidence depends neither on the chunks nor on the
        # rounds it came from; each pair copied once out of its chunk
        order = np.lexsort((_column(parts, "right"), _column(parts, "left")))
        evidence = EvidenceTable.gather(parts, order)
        stage.items = len(pairs)
    return Links(evidence, doc_vectors)


def _column(parts: Sequence[EvidenceTable], name: str) -> np.ndarray:
    """One per-pair column of the evidence ``parts``, joined."""
    if not parts:
        return np.zeros(0, dtype=np.float64 if name == "score" else np.int64)
    return np.concatenate([getattr(part, name) for part in parts])


def _align(
    pairs: np.ndarray,
    inputs: AlignInputs,
    doc_groups: np.ndarray,
    config: PipelineConfig,
    engine: Engine,
    desc: str,
) -> list[EvidenceTable]:
    """The evidence of ``pairs``, computed by ``engine``: one table per chunk, the
    chunks in no fixed order of pairs (:meth:`EvidenceTable.gather` sorts them)."""
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
    return list(
        engine.map_chunks(_align_chunk, pairs[order], desc=desc, shared=shared, chunk_size=_CHUNK)
    )


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
    counted = usable | ~has_usable[sentence_doc]
    group_sums, doc_vectors = group_sums_and_document_means(
        vectors, (row_groups, n_groups, weights), sentence_doc, counted, n_docs
    )
    mass = np.bincount(row_groups, weights=weights, minlength=n_groups)
    means = shrunk_means(group_sums, mass, config.candidates.centering_prior)
    return CentredVectors(vectors, row_groups.astype(np.int64), means), doc_vectors
