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
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dedup.engines import Engine, LocalEngine, Permuted
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
    PairCodes,
    candidate_pairs,
    group_sums_and_document_means,
    language_means,
    linked_partner_pairs,
    shrunk_means,
)
from dedup.stages.embed import VectorFile, VectorWriter

if TYPE_CHECKING:
    from dedup.config import PipelineConfig


@dataclass
class Links:
    """What candidates and align found among documents (see :func:`link_documents`).

    Attributes:
        evidence: one scored pair per candidate pair, documents numbered as given.
        doc_vectors: ``(n_docs, dim)`` mean of each document's usable sentence
            vectors, L2-normalised, before language centring (float32; a
            :class:`~dedup.stages.embed.VectorFile` when kept on disk).
    """

    evidence: EvidenceTable
    doc_vectors: np.ndarray | VectorFile


#: a language's statistics (its centring mean, its null model) are taken as
#: moved once its documents grew by this factor since its pairs were scored;
#: those pairs are then scored again (see :class:`EarlierEvidence`). Smaller:
#: closer to a one-shot run, more re-alignment (a corpus grown from one
#: document to n re-aligns each pair about ``1 / (growth - 1)`` times).
REFRESH_GROWTH = 1.25


@dataclass(frozen=True)
class HeldEvidence:
    """Earlier evidence that holds for the documents linked now (:meth:`EarlierEvidence.among`).

    Attributes:
        evidence: the earlier pairs kept, documents numbered as linked now.
        settled: ``(n_docs,)`` bool, documents whose candidate pairs with one
            another are all in ``evidence``: their neighbours are not searched
            again (see :func:`~dedup.stages.candidates.candidate_pairs`).
    """

    evidence: EvidenceTable
    settled: np.ndarray


@dataclass(frozen=True)
class EarlierEvidence:
    """Evidence computed before, for documents named by id (what a state keeps),
    and what it was computed with.

    A pair's score rests on the statistics of its two languages (centring
    means, null model) and on which sentences of its documents were usable
    (boilerplate). Both move as a corpus grows; an earlier pair is kept only
    while neither did by much (:meth:`among`), so every kept score was made
    with statistics of a corpus at least ``1 / REFRESH_GROWTH`` of the
    current one in each of its languages.

    Attributes:
        doc_ids: ``(n,)`` the ids the evidence's document numbers stand for.
        evidence: scored pairs, documents numbered by position in ``doc_ids``.
        usable_counts: ``(n,)`` usable sentences of each document when its
            pairs were scored (a document only loses usable sentences as the
            corpus grows, so a count that changed is a mask that changed).
        searched: ``(n,)`` bool, the documents whose neighbours were searched
            (the primaries; a copy was not linked at all).
        basis: documents (primaries) of each language group when its
            statistics were last taken as current; every pair of the group
            was scored with statistics of at least that many documents.
    """

    doc_ids: Sequence[str]
    evidence: EvidenceTable
    usable_counts: np.ndarray
    searched: np.ndarray
    basis: dict[str, int]

    def refreshed(self, group_docs: dict[str, int]) -> set[str]:
        """The groups whose statistics moved: ``group_docs`` (documents per group
        now) above ``REFRESH_GROWTH`` times the basis, or not in it."""
        return {
            group
            for group, docs in group_docs.items()
            if docs > REFRESH_GROWTH * self.basis.get(group, 0)
        }

    def basis_after(self, group_docs: dict[str, int]) -> dict[str, int]:
        """The basis once the pairs of :meth:`refreshed` groups were scored again."""
        moved = self.refreshed(group_docs)
        return {g: docs if g in moved else self.basis[g] for g, docs in group_docs.items()}

    def among(
        self, ids: Sequence[str], usable_counts: np.ndarray, groups: Sequence[str]
    ) -> HeldEvidence:
        """The earlier pairs that still hold for documents ``ids``, renumbered to
        positions in ``ids``, and the documents they settle.

        A pair is dropped when a document is not in ``ids`` (it became a
        copy, or is not in this corpus), when a document's usable sentences
        changed, or when a group of its two documents was :meth:`refreshed`;
        the candidate search finds it again if it still is a candidate, and
        it is aligned with today's statistics. A document is settled when none
        of that applies to it and its neighbours were searched before: its
        candidates are the earlier ones, and the pairs of a new document with
        it are found from the new document's side.

        Args:
            ids: the documents linked now, in id order.
            usable_counts: ``(len(ids),)`` their usable sentences now.
            groups: ``(len(ids),)`` their language groups.

        Raises:
            ValueError: ``ids`` ordered otherwise than ``doc_ids`` (both are in
                id order in a run), which would turn pairs round.
        """
        moved = self.refreshed(group_documents(groups))
        position = {doc_id: i for i, doc_id in enumerate(ids)}
        where = np.array([position.get(d, -1) for d in self.doc_ids], dtype=np.int64)
        holds = where >= 0
        holds[holds] = (
            np.asarray(usable_counts)[where[holds]] == np.asarray(self.usable_counts)[holds]
        )
        holds[holds] &= ~np.isin(np.asarray(groups, dtype=str)[where[holds]], sorted(moved))
        table = self.evidence
        kept = np.flatnonzero(holds[table.left] & holds[table.right])
        renumbered = table.take(kept).renumbered(where)
        if np.any(renumbered.left >= renumbered.right):
            raise ValueError("earlier evidence and documents are not in the same order")
        settled = np.zeros(len(ids), dtype=bool)
        settled[where[holds & np.asarray(self.searched, dtype=bool)]] = True
        return HeldEvidence(renumbered, settled)


def group_documents(groups: Sequence[str]) -> dict[str, int]:
    """Documents per language group, from each document's group name."""
    names, counts = np.unique(np.asarray(groups, dtype=str), return_counts=True)
    return dict(zip(names.tolist(), counts.tolist(), strict=True))


def link_documents(
    vectors: np.ndarray | VectorFile,
    offsets: np.ndarray,
    usable: np.ndarray,
    doc_groups: np.ndarray,
    numbers: tuple[np.ndarray, np.ndarray] | None,
    config: PipelineConfig,
    *,
    engine: Engine | None = None,
    stats: dict[str, StageStats] | None = None,
    earlier: HeldEvidence | None = None,
    folder: Path | None = None,
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
        numbers: the numbers of each sentence (:func:`~dedup.stages.align.number_table`,
            :func:`~dedup.stages.align.cached_number_table`), or None: none known.
        config: candidate, align and cluster settings (the cluster threshold
            decides which pairs keep their aligned sentences as evidence).
        engine: where null terms and alignments are computed.
        stats: wall time per stage is added here.
        earlier: evidence already computed for some pairs (``dedup add``: the
            state's pairs, documents numbered as given). Those pairs are not
            aligned again; their evidence is kept as it was, scored with the
            statistics of its time, and takes part in the linked-partner
            rounds like fresh evidence. Only the documents it does not settle
            search for neighbours, so every candidate has an unsettled
            document. None: every document searches, every candidate is aligned.
        folder: where the document vectors and align's null terms are kept, in
            unnamed files (see :meth:`~dedup.stages.embed.VectorFile.temporary`:
            ``n_docs x dim`` float32, 1.5 GB at a million documents, and the null
            terms about as much); None: in memory.
    """
    engine = engine or LocalEngine()
    stats = stats if stats is not None else {}
    sentence_doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    with timed(stats, "candidates", "pairs") as stage:
        centred, doc_vectors = _read_summaries(
            vectors, sentence_doc, usable, doc_groups, config, folder
        )
        # centred as read, a block at a time, like the sentence vectors
        doc_centred = CentredVectors(
            doc_vectors,
            doc_groups.astype(np.int64),
            language_means(
                doc_vectors, doc_groups, np.ones(len(doc_groups)), config.candidates.centering_prior
            ),
        )
        settled = earlier.settled if earlier is not None else np.zeros(len(doc_groups), bool)
        pairs = candidate_pairs(
            doc_centred,
            centred,
            sentence_doc,
            usable,
            config.candidates,
            queries=~settled if settled.any() else None,
        )
        stage.items = len(pairs)
    with timed(stats, "align", "pairs") as stage:
        inputs = AlignInputs.build(centred, offsets, usable, doc_groups, numbers, config.align)
        parts = []
        if earlier is not None and len(earlier.evidence):
            held = earlier.evidence
            parts.append(held)
            stage.cached = len(held)
            known = PairCodes.of(np.stack([held.left, held.right], axis=1), pairs.n_docs)
            fresh = known.new(pairs)
            pairs = known.union(fresh)
        else:
            fresh = pairs
        parts += _align(fresh, inputs, doc_groups, config, engine, "aligning", folder)
        del fresh
        # a story in dozens of languages: its versions link to each other through
        # their strong links, so the pairs among a document's linked partners are
        # aligned too, round after round, until no new pair is proposed
        for _ in range(config.candidates.link_rounds):
            linked = linked_partner_pairs(
                *_links(parts, config.cluster.threshold),
                config.cluster.threshold,
                config.candidates.linked_partners,
            )
            fresh = pairs.new(linked)
            if not len(fresh):
                break
            parts += _align(fresh, inputs, doc_groups, config, engine, "aligning linked", folder)
            pairs = pairs.union(fresh)
        stage.items = len(pairs)
        del pairs
        # pairs sorted, so the evidence depends neither on the chunks nor on the
        # rounds it came from; each pair copied once out of its chunk
        evidence = EvidenceTable.gather(parts, _sorted_positions(parts, len(doc_groups)))
    return Links(evidence, doc_vectors)


def _sorted_positions(parts: Sequence[EvidenceTable], n_docs: int) -> np.ndarray:
    """Where each pair of ``parts`` (one after another) goes when the pairs are sorted:
    its rank by one code a pair (pairs are distinct), int32 where the count allows.

    Only this rank is held while :meth:`EvidenceTable.gather` copies the pairs:
    the codes and the order that sorts them (8 bytes a pair each, 576 MB at a
    million documents) are gone by then."""
    codes = np.concatenate(
        [np.zeros(0, np.int64)] + [p.left * max(n_docs, 1) + p.right for p in parts]
    )
    order = np.argsort(codes, kind="stable")
    del codes
    position = np.empty(len(order), dtype=np.int32 if len(order) < 2**31 else np.int64)
    position[order] = np.arange(len(order), dtype=position.dtype)
    return position


def _links(
    parts: Sequence[EvidenceTable], threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``left``, ``right`` and ``score`` of the pairs of ``parts`` scoring at least
    ``threshold``, joined: all that :func:`linked_partner_pairs` reads (the three
    columns of every pair, joined, were ~0.9 GB at a million documents)."""
    strong = [part.score >= threshold for part in parts]
    return tuple(  # type: ignore[return-value]
        np.concatenate(
            [np.zeros(0, dtype=np.float64 if name == "score" else np.int64)]
            + [getattr(part, name)[kept] for part, kept in zip(parts, strong, strict=True)]
        )
        for name in ("left", "right", "score")
    )


def _align(
    pairs: PairCodes,
    inputs: AlignInputs,
    doc_groups: np.ndarray,
    config: PipelineConfig,
    engine: Engine,
    desc: str,
    folder: Path | None,
) -> list[EvidenceTable]:
    """The evidence of ``pairs``, computed by ``engine``: one table per chunk, the
    chunks in no fixed order of pairs (:meth:`EvidenceTable.gather` sorts them).
    The null terms are kept in unnamed files in ``folder`` (in memory if None)."""
    # the null terms each document needs, computed once (not once per worker);
    # the inputs are shipped once per run (Ray: the object store), not per chunk
    keys = null_keys(pairs, doc_groups)
    parts = engine.imap_chunks(
        null_quadratics, keys, desc="null model", shared=inputs, chunk_size=_CHUNK
    )
    terms = NullTerms.join(keys, (part for chunk in parts for part in chunk), inputs, folder)
    inputs = inputs.with_null_terms(terms)
    shared = (inputs, config.align, config.cluster.threshold)
    # chunks of pairs that share documents (fewer rows read), each cut when it is sent
    ordered = Permuted(pairs, locality_order(pairs, len(doc_groups)))
    return list(
        engine.map_chunks(_align_chunk, ordered, desc=desc, shared=shared, chunk_size=_CHUNK)
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
    folder: Path | None = None,
) -> tuple[CentredVectors, np.ndarray | VectorFile]:
    """The language-centred view of ``vectors`` and the document vectors, from one read.

    Centring subtracts each language's mean sentence vector, each document
    weighing 1 (:func:`~dedup.stages.candidates.language_means`). A document's
    vector is the mean of its usable sentence vectors (all of them if none is
    usable), L2-normalised. The language means count the same sentences:
    boilerplate is often in another language than the document (an English
    site footer under a Persian brief), and with it in the mean a language
    with a few short documents is centred on its footers' language, so its
    own sentences keep their common language direction and two unrelated
    ones look alike (two one-sentence Persian briefs under a ten-line English
    footer met at cosine 0.52). The document vectors are written to an
    unnamed file in ``folder``, or kept in memory if it is None.
    """
    n_docs = len(doc_groups)
    row_groups = doc_groups[sentence_doc]
    n_groups = int(doc_groups.max()) + 1 if n_docs else 0
    has_usable = np.bincount(sentence_doc[usable], minlength=n_docs) > 0
    # a sentence counts if it is usable, or if its document has no usable sentence
    counted = usable | ~has_usable[sentence_doc]
    weights = 1.0 / np.maximum(np.bincount(sentence_doc[counted], minlength=n_docs), 1)
    weights = np.where(counted, weights[sentence_doc], 0.0)
    mean_groups = np.where(counted, row_groups, -1)  # rows keyed -1 are left out of the sums
    dim = vectors.shape[1]
    if folder is None:
        doc_vectors: np.ndarray | VectorFile = np.zeros((n_docs, dim), dtype=np.float32)
        out: np.ndarray | VectorWriter = doc_vectors
    else:
        out, doc_vectors = VectorFile.temporary(n_docs, dim, np.float32, folder)
    group_sums, _ = group_sums_and_document_means(
        vectors, (mean_groups, n_groups, weights), sentence_doc, counted, n_docs, out
    )
    if isinstance(out, VectorWriter):
        out.close()
    mass = np.bincount(row_groups, weights=weights, minlength=n_groups)
    means = shrunk_means(group_sums, mass, config.candidates.centering_prior)
    return CentredVectors(vectors, row_groups.astype(np.int64), means), doc_vectors
