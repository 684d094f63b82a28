"""candidates: language centring and the neighbour search, on synthetic vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dedup.stages import candidates
from dedup.stages.candidates import (
    CandidateConfig,
    keyed_sums,
    language_centred,
)

DIM = 16


def candidate_pairs(*args: object, **kwargs: object) -> np.ndarray:
    """:func:`dedup.stages.candidates.candidate_pairs` as ``(m, 2)`` rows (it gives
    :class:`~dedup.stages.candidates.PairCodes`)."""
    found = candidates.candidate_pairs(*args, **kwargs)  # type: ignore[arg-type]
    assert isinstance(found, candidates.PairCodes)
    return found.pairs()


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


# --- language_centred ----------------------------------------------------------


def _two_languages(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of two groups, each offset by its own strong 'language' direction."""
    rng = np.random.default_rng(seed)
    accent = 3 * _unit(rng.standard_normal((2, DIM)))
    groups = np.array([0, 0, 0, 1, 1])
    vectors = rng.standard_normal((5, DIM)) * 0.3 + accent[groups]
    return vectors.astype(np.float32), groups


def _expected(vectors: np.ndarray, groups: np.ndarray, weights: np.ndarray, prior: float):
    overall = (vectors * weights[:, None]).sum(0) / weights.sum()
    out = np.empty_like(vectors, dtype=np.float64)
    for g in np.unique(groups):
        rows = groups == g
        mass = weights[rows].sum()
        group_mean = (vectors[rows] * weights[rows, None]).sum(0) / mass
        shrunk = (mass * group_mean + prior * overall) / (mass + prior)
        out[rows] = vectors[rows] - shrunk
    return _unit(out)


@pytest.mark.parametrize("prior", [0.0, 0.5, 2.0, 50.0])
def test_language_centred_subtracts_the_shrunken_group_mean(prior: float) -> None:
    vectors, groups = _two_languages()
    weights = np.array([1.0, 0.5, 0.5, 1.0, 1.0])
    got = language_centred(vectors, groups, weights, prior)
    assert got.shape == vectors.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, _expected(vectors, groups, weights, prior), atol=1e-5)


def test_language_centred_shrinks_towards_the_overall_mean() -> None:
    vectors, groups = _two_languages(1)
    weights = np.ones(len(vectors))
    overall = _unit(vectors - vectors.mean(0))
    by_group = language_centred(vectors, groups, weights, 0.0)
    distances = [
        np.abs(language_centred(vectors, groups, weights, prior) - overall).max()
        for prior in (0.0, 1.0, 4.0, 100.0, 1e6)
    ]
    assert np.abs(by_group - overall).max() > 0.1  # the two extremes differ
    assert all(a > b for a, b in itertools.pairwise(distances))
    assert distances[-1] < 1e-4  # an overwhelming prior: just the overall mean


def test_language_centred_removes_the_language_signal() -> None:
    # Story pairs across two languages: raw vectors pair by language, centred by story.
    rng = np.random.default_rng(2)
    stories = _unit(rng.standard_normal((4, DIM)))
    accent = 4 * _unit(rng.standard_normal((2, DIM)))
    groups = np.repeat([0, 1], 4)
    vectors = (np.concatenate([stories, stories]) + accent[groups]).astype(np.float32)
    vectors += 0.05 * rng.standard_normal(vectors.shape).astype(np.float32)

    def nearest(rows: np.ndarray) -> np.ndarray:
        sims = rows @ rows.T
        np.fill_diagonal(sims, -np.inf)
        return sims.argmax(axis=1)

    raw = _unit(vectors)
    assert all(groups[nearest(raw)] == groups)  # raw: another story of the same language
    centred = language_centred(vectors, groups, np.ones(8), 0.0)
    assert nearest(centred).tolist() == [4, 5, 6, 7, 0, 1, 2, 3]  # centred: the same story


def test_single_document_language_keeps_its_content_with_a_prior() -> None:
    vectors, groups = _two_languages(3)
    vectors, groups = vectors[:4], groups[:4]  # group 1 has one document
    alone = vectors[3] - vectors.mean(0)
    without_prior = language_centred(vectors, groups, np.ones(4), 0.0)
    with_prior = language_centred(vectors, groups, np.ones(4), 2.0)
    assert np.allclose(without_prior[3], 0.0)  # its own mean: nothing left
    assert float(with_prior[3] @ _unit(alone)) > 0.9


def test_language_centred_empty() -> None:
    empty = np.zeros((0, DIM), dtype=np.float32)
    out = language_centred(empty, np.zeros(0, dtype=np.int64), np.zeros(0), 2.0)
    assert out.shape == (0, DIM)


# --- candidate_pairs -----------------------------------------------------------


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six documents, near-twins (0,1), (2,3), (4,5); two sentences each.

    Both sentences of a document point its way (so each sentence's nearest
    sentence in another document is in its twin), except that documents 0 and
    5, which are not twins, share one identical sentence.
    """
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((3, DIM)))
    doc_vectors = _unit(np.repeat(topics, 2, axis=0) + 0.05 * rng.standard_normal((6, DIM)))
    second = doc_vectors.copy()
    second[0] = second[5] = _unit(rng.standard_normal(DIM))
    sentences = np.stack([doc_vectors, second], axis=1).reshape(12, DIM).astype(np.float32)
    sentence_doc = np.repeat(np.arange(6), 2)
    return doc_vectors.astype(np.float32), sentences, sentence_doc


def test_document_neighbours_find_the_planted_twins() -> None:
    docs, sentences, sentence_doc = _planted()
    config = CandidateConfig(doc_neighbours=1, sentence_neighbours=0)
    pairs = candidate_pairs(docs, sentences, sentence_doc, np.ones(12, dtype=bool), config)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    assert pairs.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_sentence_neighbours_add_a_pair_the_document_vectors_miss() -> None:
    docs, sentences, sentence_doc = _planted()
    config = CandidateConfig(doc_neighbours=1, sentence_neighbours=1)
    pairs = candidate_pairs(docs, sentences, sentence_doc, np.ones(12, dtype=bool), config)
    assert pairs.tolist() == [[0, 1], [0, 5], [2, 3], [4, 5]]


def test_unusable_sentences_are_never_a_reason_to_pair() -> None:
    docs, sentences, sentence_doc = _planted()
    usable = np.ones(12, dtype=bool)
    usable[[1, 11]] = False  # the shared sentence of documents 0 and 5 is boilerplate
    config = CandidateConfig(doc_neighbours=1, sentence_neighbours=1)
    pairs = candidate_pairs(docs, sentences, sentence_doc, usable, config)
    assert pairs.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_pairs_are_unique_ordered_and_never_self() -> None:
    rng = np.random.default_rng(7)
    docs = _unit(rng.standard_normal((9, DIM))).astype(np.float32)
    sentences = _unit(rng.standard_normal((30, DIM))).astype(np.float32)
    sentence_doc = np.sort(rng.integers(0, 9, size=30))
    config = CandidateConfig(doc_neighbours=3, sentence_neighbours=2)
    pairs = candidate_pairs(docs, sentences, sentence_doc, np.ones(30, dtype=bool), config)
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)
    assert pairs.tolist() == sorted(pairs.tolist())
    # every document has at least its doc_neighbours nearest documents paired
    for doc in range(9):
        assert np.count_nonzero((pairs == doc).any(axis=1)) >= 3


def test_all_pairs_when_neighbours_exceed_documents() -> None:
    rng = np.random.default_rng(8)
    docs = _unit(rng.standard_normal((4, DIM))).astype(np.float32)
    pairs = candidate_pairs(
        docs, docs, np.arange(4), np.ones(4, dtype=bool), CandidateConfig(doc_neighbours=20)
    )
    assert pairs.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def test_one_or_no_document_gives_no_pairs() -> None:
    one = _unit(np.ones((1, DIM))).astype(np.float32)
    config = CandidateConfig()
    assert candidate_pairs(
        one, one, np.zeros(1, dtype=np.int64), np.ones(1, bool), config
    ).shape == (0, 2)
    none = np.zeros((0, DIM), dtype=np.float32)
    assert candidate_pairs(none, none, np.zeros(0, np.int64), np.zeros(0, bool), config).shape == (
        0,
        2,
    )


@pytest.mark.parametrize(
    "kwargs", [{"doc_neighbours": 0}, {"sentence_neighbours": -1}, {"centering_prior": -0.1}]
)
def test_candidate_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CandidateConfig(**kwargs)


def test_keyed_sums_match_a_loop_across_read_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import dedup.stages.candidates as candidates

    monkeypatch.setattr(candidates, "BLOCK_ROWS", 7)  # rows read in several blocks
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((30, 4)).astype(np.float16)
    groups = rng.integers(0, 3, size=30)
    docs = np.where(rng.random(30) < 0.3, -1, rng.integers(0, 5, size=30))  # -1: left out
    weights = rng.random(30)
    by_group, by_doc = keyed_sums(rows, [(groups, 3, weights), (docs, 5, None)])
    expected_group, expected_doc = np.zeros((3, 4)), np.zeros((5, 4))
    for row, group, doc, weight in zip(rows.astype(np.float64), groups, docs, weights, strict=True):
        expected_group[group] += weight * row
        if doc >= 0:
            expected_doc[doc] += row
    np.testing.assert_allclose(by_group, expected_group, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(by_doc, expected_doc, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("block_rows", [3, 7, 64])  # documents across blocks, and within one
def test_document_means_are_those_of_summing_everything_first(
    monkeypatch: pytest.MonkeyPatch, block_rows: int
) -> None:
    import dedup.stages.candidates as candidates

    rng = np.random.default_rng(11)
    lengths = np.array([0, 5, 1, 9, 0, 2, 14, 3, 0])  # empty documents too
    sentence_doc = np.repeat(np.arange(len(lengths)), lengths)
    rows = rng.standard_normal((len(sentence_doc), 4)).astype(np.float16)
    counted = rng.random(len(sentence_doc)) < 0.7
    groups = rng.integers(0, 3, size=len(sentence_doc))
    weights = rng.random(len(sentence_doc))
    # what the whole-corpus float64 sums give (all in one block)
    monkeypatch.setattr(candidates, "BLOCK_ROWS", 1 << 20)
    (expected_groups,) = keyed_sums(rows, [(groups, 3, weights)])
    (sums,) = keyed_sums(rows, [(np.where(counted, sentence_doc, -1), len(lengths), None)])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    expected_means = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    monkeypatch.setattr(candidates, "BLOCK_ROWS", block_rows)
    by_group, means = candidates.group_sums_and_document_means(
        rows, (groups, 3, weights), sentence_doc, counted, len(lengths)
    )
    np.testing.assert_allclose(by_group, expected_groups, rtol=1e-12)
    assert np.array_equal(means, expected_means)  # the same bits
    assert not means[[0, 4, 8]].any()


def test_linked_partners_of_a_document_are_paired_with_each_other() -> None:
    from dedup.stages.candidates import PairCodes, linked_partner_pairs

    # 0 links to 1, 2, 3 (a star, as one hub version of a story in many
    # languages); 4-5 is a weak pair and must not propose anything
    left = np.array([0, 0, 0, 4, 1])
    right = np.array([1, 2, 3, 5, 4])
    score = np.array([0.9, 0.8, 0.5, 0.3, 0.2])
    pairs = linked_partner_pairs(left, right, score, 0.45, partners=64)
    assert pairs.tolist() == [[1, 2], [1, 3], [2, 3]]
    # the two strongest partners only: 3 (0.5) is left out
    assert linked_partner_pairs(left, right, score, 0.45, partners=2).tolist() == [[1, 2]]
    # nothing above the threshold: nothing proposed
    assert linked_partner_pairs(left, right, score, 0.95, partners=64).shape == (0, 2)
    # the pair order does not matter
    shuffled = np.array([3, 1, 4, 0, 2])
    again = linked_partner_pairs(left[shuffled], right[shuffled], score[shuffled], 0.45, 64)
    assert again.tolist() == pairs.tolist()
    held = PairCodes.of(np.array([[1, 3]]), 6)
    assert held.new(pairs).pairs().tolist() == [[1, 2], [2, 3]]
    assert PairCodes.of(np.zeros((0, 2)), 6).new(pairs).pairs().tolist() == pairs.tolist()
    assert held.union(held.new(pairs)).pairs().tolist() == pairs.tolist()
    assert held.new(pairs)[np.array([1])].tolist() == [[2, 3]]


def test_pair_codes_read_like_the_pairs_they_code() -> None:
    from dedup.stages.candidates import PairCodes

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 500, 3000), rng.integers(0, 500, 3000)
    keep = a < b
    pairs = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0)
    codes = PairCodes.of(pairs[::-1], 500)  # any order in, sorted out
    assert len(codes) == len(pairs) and codes.pairs().tolist() == pairs.tolist()
    assert codes[10:20].tolist() == pairs[10:20].tolist()
    left, right = codes.columns(np.int32)
    assert left.dtype == np.int32 and (left.tolist(), right.tolist()) == (
        pairs[:, 0].tolist(),
        pairs[:, 1].tolist(),
    )
    other = PairCodes.of(pairs[::3], 500)
    assert codes.union(other).pairs().tolist() == pairs.tolist()
    assert len(codes.new(pairs)) == 0 and len(codes.new(codes)) == 0
    some = PairCodes.of(pairs[::2], 500)
    expected = np.setdiff1d(codes.codes, some.codes)
    assert np.array_equal(some.new(pairs).codes, expected)  # numpy's set difference
    with pytest.raises(ValueError, match="coded for"):
        codes.union(PairCodes.of(pairs, 501))


@pytest.mark.parametrize("partners", [2, 5, 64])
def test_linked_partner_pairs_equal_a_pair_by_pair_reading(partners: int) -> None:
    """Random link graphs with hubs of every size: the pairs computed by group size equal
    those of each document's strongest ``partners`` links, paired one by one."""
    from dedup.stages.candidates import linked_partner_pairs

    rng = np.random.default_rng(partners)
    n = 300
    left = rng.integers(0, n, 4000)
    right = rng.integers(0, n, 4000)
    left[:200] = 7  # a hub with ~200 links: more than any partners setting
    keep = left != right
    left, right = np.minimum(left, right)[keep], np.maximum(left, right)[keep]
    score = np.round(rng.random(len(left)), 2)  # ties, broken by partner number
    expected: set[tuple[int, int]] = set()
    for doc in range(n):
        links = [
            (-s, other)
            for a, b, s in zip(left.tolist(), right.tolist(), score.tolist(), strict=True)
            if s >= 0.45 and doc in (a, b)
            for other in [b if a == doc else a]
        ]
        chosen = sorted(other for _, other in sorted(links)[:partners])
        expected |= {(x, y) for i, x in enumerate(chosen) for y in chosen[i + 1 :]}
    pairs = linked_partner_pairs(left, right, score, 0.45, partners)
    assert [tuple(p) for p in pairs.tolist()] == sorted(expected)


def test_approximate_search_hits_do_not_depend_on_the_query_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The index is filled and queried SEARCH_ROWS rows at a time (memory); any batch
    size gives the same hits."""

    rng = np.random.default_rng(2)
    centres = rng.standard_normal((300, 64)).astype(np.float32)
    rows = centres[rng.integers(0, 300, 6000)] + 0.5 * rng.standard_normal((6000, 64))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    config = CandidateConfig(exact_search_limit=1000)
    read = candidates.row_reader(rows)
    default = candidates._knn(read, np.arange(6000), 9, config)
    monkeypatch.setattr(candidates, "SEARCH_ROWS", 700)
    assert np.array_equal(candidates._knn(read, np.arange(6000), 9, config), default)


def test_candidate_pairs_do_not_depend_on_the_query_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each batch of queries becomes pair codes before the next is searched (memory at a
    million documents); batches of any size, and a batch that ends inside a document's
    lead sentences, give the same pairs, whoever is queried."""

    rng = np.random.default_rng(4)
    n_docs, n_sent = 1500, 9000
    topics = rng.standard_normal((150, 48)).astype(np.float32)
    sentence_doc = np.sort(rng.integers(0, n_docs, n_sent))
    sentences = topics[sentence_doc % 150] + 0.6 * rng.standard_normal((n_sent, 48))
    sentences = (sentences / np.linalg.norm(sentences, axis=1, keepdims=True)).astype(np.float32)
    docs = np.zeros((n_docs, 48), dtype=np.float32)
    np.add.at(docs, sentence_doc, sentences)
    docs /= np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-9)
    usable = rng.random(n_sent) > 0.1
    config = CandidateConfig(exact_search_limit=500)  # both channels approximate
    for queries in (None, rng.random(n_docs) > 0.6):
        default = candidate_pairs(docs, sentences, sentence_doc, usable, config, queries=queries)
        with monkeypatch.context() as patched:
            patched.setattr(candidates, "SEARCH_ROWS", 333)
            batched = candidate_pairs(
                docs, sentences, sentence_doc, usable, config, queries=queries
            )
        assert len(default) > n_docs
        assert np.array_equal(batched, default)


@pytest.mark.parametrize("exact_search_limit", [20_000, 100])
def test_queried_documents_find_their_pairs_and_settled_ones_search_no_more(
    monkeypatch: pytest.MonkeyPatch, exact_search_limit: int
) -> None:
    """``dedup add``: only the unsettled documents search (the index still holds every
    row, exact or approximate), and ask for ``QUERY_REACH`` times the neighbours, so
    they also find the pairs a run would find from a settled document's side."""

    rng = np.random.default_rng(5)
    n_docs = 400
    topics = _unit(rng.standard_normal((80, DIM)))
    docs = _unit(topics[rng.integers(0, 80, n_docs)] + 0.4 * rng.standard_normal((n_docs, DIM)))
    sentence_doc = np.repeat(np.arange(n_docs), 3)
    sentences = _unit(docs[sentence_doc] + 0.3 * rng.standard_normal((len(sentence_doc), DIM)))
    docs, sentences = docs.astype(np.float32), sentences.astype(np.float32)
    usable = np.ones(len(sentence_doc), dtype=bool)
    config = CandidateConfig(
        doc_neighbours=5, sentence_neighbours=2, exact_search_limit=exact_search_limit
    )
    queries = np.zeros(n_docs, dtype=bool)
    queries[rng.choice(n_docs, 40, replace=False)] = True

    def pairs(mask: np.ndarray | None) -> set[tuple[int, int]]:
        found = candidate_pairs(docs, sentences, sentence_doc, usable, config, queries=mask)
        return set(map(tuple, found.tolist()))

    everything = pairs(None)
    theirs = {p for p in everything if queries[p[0]] or queries[p[1]]}
    wide = pairs(queries)
    assert all(queries[a] or queries[b] for a, b in wide)
    monkeypatch.setattr(candidates, "QUERY_REACH", 1)
    own = pairs(queries)
    # reach 1 finds what the queried documents themselves propose in a run; reach 2
    # more of the pairs a run finds from the other side as well
    assert own <= everything and own < theirs
    assert own <= wide
    assert len(wide & theirs) > len(own & theirs)
    assert len(wide & theirs) >= 0.9 * len(theirs)
