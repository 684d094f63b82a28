"""Link (candidates then align) with evidence from before: kept, never aligned twice."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dedup import PipelineConfig
from dedup.engines import LocalEngine
from dedup.engines.checkpoint import CheckpointEngine
from dedup.records import EvidenceTable
from dedup.stages.embed import VectorFile
from dedup.stages.link import REFRESH_GROWTH, EarlierEvidence, HeldEvidence, link_documents

REPO = Path(__file__).resolve().parents[2]


def _aligned(engine: CheckpointEngine) -> int:
    """Pairs ``engine`` was asked to align (first round and linked rounds)."""
    return sum(engine.computed.get(desc, 0) for desc in ("aligning", "aligning linked"))


def test_earlier_pairs_are_kept_and_only_the_others_aligned(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from scale import make_corpus

    make_corpus(300, tmp_path, languages=4, topics=5, seed=3)
    vectors = VectorFile(tmp_path / "vectors.npy")
    offsets, groups = np.load(tmp_path / "offsets.npy"), np.load(tmp_path / "groups.npy")
    usable = np.ones(len(vectors), dtype=bool)

    def link(earlier: EvidenceTable | None, folder: str) -> tuple[EvidenceTable, int]:
        engine = CheckpointEngine(LocalEngine(), tmp_path / folder)
        stats: dict = {}
        links = link_documents(
            vectors, offsets, usable, groups, None, PipelineConfig(), engine=engine,
            stats=stats,
            earlier=None if earlier is None else HeldEvidence(earlier, np.zeros(len(groups), bool)),
        )  # fmt: skip
        assert stats["align"].cached == (len(earlier) if earlier is not None else None)
        return links.evidence, _aligned(engine)

    everything, aligned_all = link(None, "all")
    assert aligned_all == len(everything) > 1000
    # a third of the pairs known from before, with the scores they had: the same
    # evidence comes out, and only the other pairs are aligned
    third = np.arange(0, len(everything), 3)
    same, aligned = link(everything.take(third), "third")
    assert same == everything
    assert aligned == len(everything) - len(third)
    # an earlier score is kept as it was, not recomputed with today's statistics
    marked = everything.take(third)
    marked.score[:] = 0.0
    kept, _ = link(marked, "marked")
    pairs = {
        (int(a), int(b)): float(s)
        for a, b, s in zip(kept.left, kept.right, kept.score, strict=True)
    }
    assert all(
        pairs[(int(a), int(b))] == 0.0 for a, b in zip(marked.left, marked.right, strict=True)
    )


def _table(pairs: list[tuple[int, int, float]]) -> EvidenceTable:
    left, right, score = (np.array(column) for column in zip(*pairs, strict=True))
    return EvidenceTable(left, right, score, np.ones(len(left), dtype=np.int64))


def _earlier(basis: dict[str, int]) -> EarlierEvidence:
    """a, b, c, d (usable sentences 3, 3, 2, 4) in English but d (German), three
    pairs, and e, a copy (never searched)."""
    pairs = _table([(0, 1, 0.9), (1, 3, 0.8), (2, 3, 0.4)])
    searched = np.array([True, True, True, True, False])
    return EarlierEvidence(
        ["a", "b", "c", "d", "e"], pairs, np.array([3, 3, 2, 4, 3]), searched, basis
    )


def _kept(table: EvidenceTable) -> list[tuple[int, int, float]]:
    return list(zip(table.left.tolist(), table.right.tolist(), table.score.tolist(), strict=True))


def test_earlier_evidence_is_renumbered_and_loses_documents_not_there() -> None:
    earlier = _earlier({"en": 3, "de": 1})
    # b is a copy now (not among the documents linked); x is new, in a new group
    among = earlier.among(["a", "c", "d", "x"], np.array([3, 2, 4, 5]), ["en", "en", "de", "fr"])
    assert _kept(among.evidence) == [(1, 2, 0.4)]
    # a, c and d searched before and hold; x is new: it searches
    assert among.settled.tolist() == [True, True, True, False]
    assert len(earlier.among(["x"], np.array([1]), ["en"]).evidence) == 0
    # e was a copy, is a primary now: never searched, so not settled
    assert earlier.among(["a", "e"], np.array([3, 3]), ["en", "en"]).settled.tolist() == [
        True,
        False,
    ]
    with pytest.raises(ValueError, match="same order"):
        earlier.among(["d", "c"], np.array([4, 2]), ["de", "en"])


def test_a_pair_is_scored_again_when_its_statistics_or_sentences_moved() -> None:
    earlier = _earlier({"en": 3, "de": 1})
    ids, groups = ["a", "b", "c", "d"], ["en", "en", "en", "de"]
    same = earlier.among(ids, np.array([3, 3, 2, 4]), groups)
    assert _kept(same.evidence) == _kept(earlier.evidence)
    assert same.settled.all()
    # c lost a sentence to boilerplate: its pair goes, and c searches again
    lost = earlier.among(ids, np.array([3, 3, 1, 4]), groups)
    assert _kept(lost.evidence) == [(0, 1, 0.9), (1, 3, 0.8)]
    assert lost.settled.tolist() == [True, True, False, True]
    # German grew from one document to two: its statistics moved, its pairs go
    grown = earlier.among([*ids, "x"], np.array([3, 3, 2, 4, 1]), [*groups, "de"])
    assert _kept(grown.evidence) == [(0, 1, 0.9)]
    assert grown.settled.tolist() == [True, True, True, False, False]
    assert earlier.basis_after({"en": 3, "de": 2}) == {"en": 3, "de": 2}
    # English by one document in three: within REFRESH_GROWTH, kept, basis unchanged
    assert REFRESH_GROWTH < 4 / 3
    assert earlier.refreshed({"en": 4, "de": 1}) == {"en"}
    assert earlier.refreshed({"en": 3, "de": 1}) == set()
    assert earlier.basis_after({"en": 3, "de": 1, "fr": 2}) == {"en": 3, "de": 1, "fr": 2}


def test_language_means_leave_boilerplate_out() -> None:
    """A language's mean is that of its documents' own sentences: a footer in
    another language under its documents does not move it. Two documents of
    language 0 (one sentence each, plus a boilerplate footer sentence in the
    direction of language 1) and one of language 1: language 0's mean is
    its own two sentences' mean shrunk towards the corpus mean, whatever the
    footers hold."""
    from dedup.stages.candidates import shrunk_means
    from dedup.stages.link import _read_summaries

    own = np.array([[1.0, 0.2, 0, 0], [1.0, -0.2, 0, 0]])
    footer = np.array([0, 0, 1.0, 0])
    vectors = np.array([own[0], footer, own[1], footer, [0, 0, 0.9, 0.1]], dtype=np.float32)
    sentence_doc = np.array([0, 0, 1, 1, 2])
    usable = np.array([True, False, True, False, True])
    config = PipelineConfig()
    centred, _ = _read_summaries(vectors, sentence_doc, usable, np.array([0, 0, 1]), config)
    counted = vectors[usable].astype(np.float64)
    sums = np.stack([counted[:2].sum(axis=0), counted[2]])
    expected = shrunk_means(sums, np.array([2.0, 1.0]), config.candidates.centering_prior)
    np.testing.assert_allclose(centred.means, expected, rtol=1e-6)
    assert centred.means[0][2] < 0.5 * centred.means[1][2]  # not pulled to the footer


@pytest.mark.parametrize("exact_search_limit", [20_000, 50])
def test_document_vectors_kept_in_a_file_link_as_those_in_memory(
    tmp_path: Path, exact_search_limit: int
) -> None:
    """``folder``: the document vectors in an unnamed file, read a block at a time by
    the candidate search (exact, and approximate over 300 documents): the same
    evidence and the same vectors as in memory, and no file left in the folder."""
    from dataclasses import replace

    sys.path.insert(0, str(REPO / "bench"))
    from scale import make_corpus

    make_corpus(300, tmp_path, languages=4, topics=5, seed=4)
    vectors = VectorFile(tmp_path / "vectors.npy")
    offsets, groups = np.load(tmp_path / "offsets.npy"), np.load(tmp_path / "groups.npy")
    usable = np.ones(len(vectors), dtype=bool)
    config = PipelineConfig()
    config = replace(
        config, candidates=replace(config.candidates, exact_search_limit=exact_search_limit)
    )
    kept = tmp_path / "kept"
    kept.mkdir()
    in_memory, on_disk = (
        link_documents(vectors, offsets, usable, groups, None, config, folder=folder)
        for folder in (None, kept)
    )
    assert isinstance(in_memory.doc_vectors, np.ndarray)
    assert isinstance(on_disk.doc_vectors, VectorFile) and list(kept.iterdir()) == []
    assert np.array_equal(np.asarray(on_disk.doc_vectors), in_memory.doc_vectors)
    assert on_disk.evidence == in_memory.evidence and len(in_memory.evidence) > 500
