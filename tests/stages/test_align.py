"""align: mechanics of the in-order alignment and the null.

Sentence vectors here are small synthetic numpy vectors: a "translation" is a
noisy copy of a sentence vector, an "unrelated" sentence is a random one.
These test the arithmetic, not how well any model separates real text.
"""

from __future__ import annotations

import itertools
import pickle
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from dedup.stages.align import (
    AlignConfig,
    AlignInputs,
    align_pairs,
    locality_order,
    monotone_alignment,
    number_table,
    sentence_numbers,
)
from dedup.stages.candidates import PairCodes

# --- monotone_alignment ------------------------------------------------------


def _inputs_of(vectors, offsets, usable, groups, sentences: list[str]) -> AlignInputs:
    """Align's inputs with the numbers of ``sentences``, default settings."""
    numbers = number_table(sentence_numbers(sentences))
    return AlignInputs.build(vectors, offsets, usable, groups, numbers, AlignConfig())


def test_identity_is_aligned_on_the_diagonal() -> None:
    total, pairs = monotone_alignment(np.eye(3))
    assert total == 3.0
    assert pairs == [(0, 0), (1, 1), (2, 2)]


def test_crossing_pairs_cannot_both_be_used() -> None:
    total, pairs = monotone_alignment(np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert total == 1.0 and len(pairs) == 1


def test_in_order_path_beats_a_stronger_single_decoy() -> None:
    weights = np.zeros((3, 4))
    weights[0, 1] = weights[1, 2] = weights[2, 3] = 0.8
    weights[2, 0] = 1.0  # strong, but out of order with the others
    total, pairs = monotone_alignment(weights)
    assert total == pytest.approx(2.4)
    assert pairs == [(0, 1), (1, 2), (2, 3)]


def test_two_weaker_in_order_pairs_beat_one_stronger() -> None:
    total, pairs = monotone_alignment(np.array([[0.5, 0.9], [0.9, 0.5]]))
    assert total == pytest.approx(1.0)
    assert pairs == [(0, 0), (1, 1)]


def test_rectangular_and_empty() -> None:
    total, pairs = monotone_alignment(np.array([[0.0, 0.0, 0.7, 0.0, 0.2]]))
    assert total == pytest.approx(0.7) and pairs == [(0, 2)]
    assert monotone_alignment(np.zeros((0, 4))) == (0.0, [])
    assert monotone_alignment(np.zeros((3, 0))) == (0.0, [])


def _best_brute_force(weights: np.ndarray) -> float:
    @cache
    def best(i: int, j: int) -> float:
        if i == 0 or j == 0:
            return 0.0
        return max(best(i - 1, j), best(i, j - 1), best(i - 1, j - 1) + weights[i - 1, j - 1])

    return best(*weights.shape)


@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force_on_random_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 7, size=2))
    weights = np.where(rng.random(shape) < 0.5, 0.0, rng.random(shape))
    total, pairs = monotone_alignment(weights)
    assert total == pytest.approx(_best_brute_force(weights))
    # the pairs are strictly increasing on both sides and carry the total
    for (i0, j0), (i1, j1) in itertools.pairwise(pairs):
        assert i0 < i1 and j0 < j1
    assert sum(weights[i, j] for i, j in pairs) == pytest.approx(total)


# --- align_pairs on synthetic vectors -------------------------------------------

DIM = 64


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class Corpus:
    """Documents as blocks of sentence vectors, each in a language group."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.blocks: list[np.ndarray] = []
        self.groups: list[int] = []

    def random(self, n: int) -> np.ndarray:
        return _unit(self.rng.standard_normal((n, DIM)))

    def translate(self, rows: np.ndarray, noise: float = 0.3) -> np.ndarray:
        return _unit(rows + noise * self.rng.standard_normal(rows.shape) / np.sqrt(DIM))

    def add(self, rows: np.ndarray, group: int) -> int:
        self.blocks.append(np.asarray(rows, dtype=np.float32))
        self.groups.append(group)
        return len(self.blocks) - 1

    def fill(self, per_group: int = 12, sentences: int = 5) -> None:
        for group in (0, 1):
            for _ in range(per_group):
                self.add(self.random(sentences), group)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        vectors = np.concatenate(self.blocks).astype(np.float32)
        offsets = np.cumsum([0] + [len(b) for b in self.blocks]).astype(np.int64)
        return vectors, offsets, np.array(self.groups, dtype=np.int64)

    def align(self, pairs: list[tuple[int, int]], usable: np.ndarray | None = None):
        vectors, offsets, groups = self.arrays()
        if usable is None:
            usable = np.ones(len(vectors), dtype=bool)
        sentences = [f"s{i}" for i in range(len(vectors))]
        inputs = _inputs_of(vectors, offsets, usable, groups, sentences)
        return align_pairs(np.array(pairs), inputs, AlignConfig())


def test_planted_translation_scores_far_above_unrelated_documents() -> None:
    corpus = Corpus()
    story = corpus.random(5)
    source = corpus.add(story, 0)
    translation = corpus.add(corpus.translate(story), 1)
    unrelated = corpus.add(corpus.random(5), 1)
    corpus.fill()
    good, bad = corpus.align([(source, translation), (source, unrelated)])

    assert (good.left, good.right, good.shorter) == (source, translation, 5)
    assert good.score > 0.7
    assert [(a.left, a.right) for a in good.aligned] == [(i, i) for i in range(5)]
    assert all(a.z > 4 and a.weight == 1.0 for a in good.aligned)
    assert bad.score < 0.15
    # the score is the aligned weight over the shorter document plus a one-sentence prior
    assert good.score == pytest.approx(sum(a.weight for a in good.aligned) / (5 + 1), abs=1e-5)


def test_order_matters() -> None:
    corpus = Corpus(1)
    story = corpus.random(5)
    source = corpus.add(story, 0)
    in_order = corpus.add(corpus.translate(story), 1)
    reversed_ = corpus.add(corpus.translate(story[::-1]), 1)
    corpus.fill()
    good, scrambled = corpus.align([(source, in_order), (source, reversed_)])
    assert len(good.aligned) == 5
    assert len(scrambled.aligned) == 1
    assert scrambled.score < good.score / 3


def test_excerpt_is_scored_against_the_shorter_document() -> None:
    corpus = Corpus(2)
    story = corpus.random(6)
    source = corpus.add(story, 0)
    excerpt = corpus.add(corpus.translate(story[2:4]), 1)
    corpus.fill()
    (evidence,) = corpus.align([(source, excerpt)])
    assert evidence.shorter == 2
    assert [(a.left, a.right) for a in evidence.aligned] == [(2, 0), (3, 1)]
    assert evidence.score == pytest.approx(2 / 3, abs=0.01)
    assert evidence.coverage == 1.0


def test_boilerplate_is_not_evidence() -> None:
    corpus = Corpus(3)
    footer = corpus.random(1)
    first = corpus.add(np.concatenate([corpus.random(4), footer]), 0)
    second = corpus.add(np.concatenate([corpus.random(4), footer]), 1)
    corpus.fill()
    vectors, offsets, _ = corpus.arrays()

    (unmasked,) = corpus.align([(first, second)])
    footer_pairs = [a for a in unmasked.aligned if (a.left, a.right) == (4, 4)]
    assert len(footer_pairs) == 1 and footer_pairs[0].weight == 1.0

    usable = np.ones(len(vectors), dtype=bool)
    usable[[offsets[first] + 4, offsets[second] + 4]] = False
    (masked,) = corpus.align([(first, second)], usable)
    assert masked.shorter == 4
    assert all(a.left != 4 and a.right != 4 for a in masked.aligned)
    # what is left is chance alignment of unrelated sentences: little
    assert masked.score < unmasked.score / 2 and masked.score < 0.1


def test_aligned_indices_are_positions_in_the_document() -> None:
    corpus = Corpus(4)
    story = corpus.random(4)
    footer = corpus.random(1)
    source = corpus.add(np.concatenate([footer, story]), 0)
    translation = corpus.add(np.concatenate([footer, corpus.translate(story)]), 1)
    corpus.fill()
    vectors, offsets, _ = corpus.arrays()
    usable = np.ones(len(vectors), dtype=bool)
    usable[[offsets[source], offsets[translation]]] = False  # the leading footer
    (evidence,) = corpus.align([(source, translation)], usable)
    assert [(a.left, a.right) for a in evidence.aligned] == [(i, i) for i in range(1, 5)]
    assert evidence.shorter == 4


def test_document_without_usable_sentences_scores_zero() -> None:
    corpus = Corpus(5)
    story = corpus.random(3)
    source = corpus.add(story, 0)
    copy = corpus.add(story, 1)
    corpus.fill()
    vectors, offsets, _ = corpus.arrays()
    usable = np.ones(len(vectors), dtype=bool)
    usable[offsets[copy] : offsets[copy + 1]] = False
    (evidence,) = corpus.align([(source, copy)], usable)
    assert (evidence.score, evidence.aligned, evidence.shorter) == (0.0, (), 0)
    assert evidence.coverage == 0.0


def test_one_result_per_pair_in_order() -> None:
    corpus = Corpus(6)
    corpus.fill(per_group=4)
    pairs = [(0, 5), (1, 2), (3, 7), (0, 1)]
    evidence = corpus.align(pairs)
    assert [(e.left, e.right) for e in evidence] == pairs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"z_low": 4.0, "z_high": 4.0},
        {"z_low": 5.0, "z_high": 4.0},
        {"length_prior": -1.0},
        {"null_prior": 0.0},
        {"boilerplate_docs": 1},
    ],
)
def test_align_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AlignConfig(**kwargs)


def test_numbers_are_read_in_any_script_and_single_digits_ignored() -> None:
    numbers = list(
        sentence_numbers(["Track Palin, 26, served 1 year", "पालिन २९ वर्ष", "no numbers"])
    )
    assert numbers == [frozenset({26}), frozenset({29}), frozenset()]


def test_cached_number_tables_equal_the_table_of_every_sentence(tmp_path) -> None:
    """Per-document number tables, joined, equal one table of all sentences; the rows
    of some documents are picked out in order; a second run reads every document's
    table from the cache (counted), a number beyond 64 bits included."""
    from dedup.stages.align import cached_number_table, joined_number_tables, numbers_of_rows
    from dedup.stages.document_cache import DocumentCache

    docs = [
        ["Track Palin, 26, served 1 year", "पालिन २९ वर्ष"],
        [],
        ["no numbers", f"{10**30} and 12 and 2018", "2018"],
        ["1999"],
    ]
    flat = [sentence for doc in docs for sentence in doc]
    whole = number_table(sentence_numbers(flat))
    with DocumentCache(tmp_path) as cache:
        cold = cached_number_table(docs, cache)
    with DocumentCache(tmp_path) as cache:
        warm = joined_number_tables(
            [cached_number_table(docs[:2], cache), cached_number_table(docs[2:], cache)]
        )
        assert cache.hits["sentence_numbers"] == len(docs)
    for table in (cold, warm, cached_number_table(docs)):
        assert np.array_equal(table[0], whole[0]) and np.array_equal(table[1], whole[1])
    rows = np.array([4, 0, 5, 3])  # "2018", "Track ... 26", "1999", "... 10**30 and 12 ..."
    starts, values = numbers_of_rows(whole, rows)
    expected = number_table(sentence_numbers([flat[r] for r in rows]))
    assert np.array_equal(starts, expected[0]) and np.array_equal(values, expected[1])


def test_number_conflict_needs_numbers_on_both_sides_and_none_shared() -> None:
    from dedup.stages.kernels import numbers_conflict

    left = [frozenset({26}), frozenset({2018, 5}), frozenset()]
    right = [frozenset({29}), frozenset({2018}), frozenset()]
    starts, values = number_table(left + right)
    conflicts = [[numbers_conflict(starts, values, i, 3 + j) for j in range(3)] for i in range(3)]
    assert conflicts == [
        [True, True, False],
        [True, False, False],
        [False, False, False],
    ]


def test_number_table_keeps_numbers_beyond_64_bits_comparable() -> None:
    huge = 10**30
    starts, values = number_table([frozenset({huge, 12}), frozenset(), frozenset({huge})])
    assert starts.tolist() == [0, 2, 2, 3]
    assert values[2] in values[:2].tolist() and values.dtype == np.int64


def test_a_sentence_pair_with_conflicting_numbers_gets_no_weight() -> None:
    rng = np.random.default_rng(3)
    story = rng.standard_normal((4, 16))
    story /= np.linalg.norm(story, axis=1, keepdims=True)
    noise = rng.standard_normal((12, 16))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = np.concatenate([story, story, noise]).astype(np.float32)
    offsets = np.array([0, 4, 8, 12, 16, 20])
    groups = np.array([0, 1, 0, 1, 0])
    usable = np.ones(len(vectors), dtype=bool)
    agreeing = ["a 26", "b", "c", "d", "a 26", "b", "c", "d"] + ["x"] * 12
    clashing = ["a 26", "b", "c", "d", "a 29", "b", "c", "d"] + ["x"] * 12
    scores = []
    for sentences in (agreeing, clashing):
        inputs = _inputs_of(vectors, offsets, usable, groups, sentences)
        (evidence,) = align_pairs(np.array([[0, 1]]), inputs, AlignConfig())
        scores.append((evidence.score, {a.left for a in evidence.aligned}))
    assert 0 in scores[0][1] and 0 not in scores[1][1]
    assert scores[1][0] < scores[0][0]


def test_locality_order_is_a_permutation_that_keeps_neighbours_together() -> None:
    # 40 documents in 10 stories of 4; candidate pairs within stories, listed
    # by first document over a shuffled numbering, so sorted order scatters them
    rng = np.random.default_rng(2)
    numbering = rng.permutation(40)
    stories = numbering.reshape(10, 4)
    pairs = np.array(
        sorted(
            (min(a, b), max(a, b))
            for story in stories
            for a, b in itertools.combinations(story.tolist(), 2)
        )
    )
    order = locality_order(pairs, 40)
    assert sorted(order.tolist()) == list(range(len(pairs)))
    story_of = np.empty(40, dtype=np.int64)
    story_of[stories.reshape(-1)] = np.repeat(np.arange(10), 4)
    # in the new order each story's 6 pairs are consecutive: chunks of 6 pairs
    # touch 4 documents, not up to 12
    runs = story_of[pairs[order, 0]]
    assert (np.diff(runs) != 0).sum() == 9
    assert locality_order(np.zeros((0, 2), dtype=np.int64), 5).tolist() == []
    # the pairs as codes (what align holds) give the same order
    assert np.array_equal(locality_order(PairCodes.of(pairs, 40), 40), order)


def test_null_keys_found_a_block_of_pairs_at_a_time_are_those_of_all_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every (document, partner group) and (document, all groups) key of the pairs,
    sorted and distinct, however many pairs a block holds."""
    from dedup.stages import align

    rng = np.random.default_rng(5)
    doc_groups = rng.integers(0, 4, 50)
    pairs = np.unique(np.sort(rng.integers(0, 50, (400, 2)), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    slots = 5
    expected = sorted(
        {d * slots + slots - 1 for d in pairs.reshape(-1).tolist()}
        | {int(a) * slots + int(doc_groups[b]) for a, b in pairs.tolist()}
        | {int(b) * slots + int(doc_groups[a]) for a, b in pairs.tolist()}
    )
    for block in (7, 64, 1 << 21):
        monkeypatch.setattr(align, "_KEY_BLOCK", block)
        assert align.null_keys(pairs, doc_groups).tolist() == expected
        assert align.null_keys(PairCodes.of(pairs, 50), doc_groups).tolist() == expected


def test_a_document_with_no_sentence_in_the_last_language_group_aligns() -> None:
    """Issue 20: a letterless document (zero sentences) alone in the highest group.

    ``null_keys`` codes keys with the documents' group count, the null model
    used to infer it from the sentences' groups; they disagreed and a key
    decoded to a document past the end (IndexError in ``rows_of_docs``).
    """
    from dedup.stages.align import AlignConfig, AlignInputs, align_pairs

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((6, 8)).astype(np.float32)
    offsets = np.array([0, 3, 6, 6])  # document 2 has no sentence
    doc_groups = np.array([0, 0, 1])  # ... and is the only one of group 1
    inputs = AlignInputs.build(vectors, offsets, np.ones(6, bool), doc_groups, None, AlignConfig())
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    table = align_pairs(pairs, inputs, AlignConfig())
    assert len(table) == 3


# --- the null model against a brute-force computation ---------------------------


def _anisotropic_corpus(seed: int, dim: int = 384, docs: int = 60, groups: int = 3):
    """Pairs of versions of 30 stories (documents 2k, 2k + 1) in three language groups.

    Vectors have a decaying spectrum (variance 1/k along axis k) and a language
    offset, as real sentence vectors do, so a rank-64 summary of the second
    moments is an approximation, not exact; 15 % of rows are boilerplate."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1 + np.arange(dim))
    language = rng.standard_normal((groups, dim)) * scales
    stories = [rng.standard_normal((int(rng.integers(2, 9)), dim)) * scales for _ in range(docs)]
    blocks, doc_groups = [], []
    for d in range(docs):
        group = int(rng.integers(groups))
        story = stories[d // 2]
        rows = story + 0.3 * rng.standard_normal(story.shape) * scales + 0.3 * language[group]
        blocks.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
        doc_groups.append(group)
    vectors = np.concatenate(blocks).astype(np.float32)
    offsets = np.cumsum([0] + [len(b) for b in blocks]).astype(np.int64)
    usable = rng.random(len(vectors)) > 0.15
    return vectors, offsets, usable, np.array(doc_groups, dtype=np.int64)


def _brute_force_z(corpus, left: int, right: int, row_left: int, row_right: int, prior: float):
    """z of one sentence pair from its definition: each side's similarity to the other
    side's language crowd (usable rows of that group, neither document's), mixed with
    ``prior`` sentences of the corpus-wide crowd; the smaller of the two z."""
    vectors, offsets, usable, groups = corpus
    sentence_group = np.repeat(groups, np.diff(offsets))
    in_pair = np.zeros(len(vectors), dtype=bool)
    in_pair[offsets[left] : offsets[left + 1]] = True
    in_pair[offsets[right] : offsets[right + 1]] = True
    x = vectors[offsets[left] + row_left].astype(np.float64)
    y = vectors[offsets[right] + row_right].astype(np.float64)

    def z_against(v: np.ndarray, group: int) -> float:
        everyone = vectors[usable & ~in_pair].astype(np.float64) @ v
        crowd = vectors[usable & ~in_pair & (sentence_group == group)].astype(np.float64) @ v
        mean = (crowd.sum() + prior * everyone.mean()) / (len(crowd) + prior)
        second = ((crowd**2).sum() + prior * (everyone**2).mean()) / (len(crowd) + prior)
        return (x @ y - mean) / np.sqrt(second - mean * mean)

    return min(z_against(x, groups[right]), z_against(y, groups[left]))


@pytest.mark.parametrize("rank", [0, 64])
def test_closed_form_null_matches_brute_force(rank: int) -> None:
    """The z of every aligned sentence pair equals its definition computed row by row:
    exactly (to the 0.01 the records keep) in closed form, and within 0.5 % at rank 64
    (measured here: max 0.013, mean 0.09 % on 114 pairs; on NTREX vectors the spread
    is within 1 % on average, see SentenceNull)."""
    corpus = _anisotropic_corpus(1)
    vectors, offsets, usable, groups = corpus
    config = AlignConfig(null_rank=rank)
    inputs = AlignInputs.build(vectors, offsets, usable, groups, None, config)
    table = align_pairs(np.array([(2 * k, 2 * k + 1) for k in range(30)]), inputs, config)
    reported, expected = [], []
    for pair in table:
        for cell in pair.aligned:
            reported.append(cell.z)
            expected.append(
                _brute_force_z(
                    corpus, pair.left, pair.right, cell.left, cell.right, config.null_prior
                )
            )
    reported_z, expected_z = np.array(reported), np.array(expected)
    assert len(reported_z) >= 100  # most versions' sentences align
    if rank == 0:
        assert np.abs(reported_z - expected_z).max() <= 0.005 + 1e-9
    else:
        assert (np.abs(reported_z - expected_z) / expected_z).max() <= 0.005


def test_a_pairs_score_does_not_depend_on_the_pairs_aligned_beside_it() -> None:
    """The same bytes for a pair aligned alone and among 29 others: a run that
    aligns only some pairs (an addition, a resumed run) must score them as a
    run aligning all would. Matrix products of the null terms broke this on
    AVX-512 machines (BLAS kernels vary with the number of rows)."""
    vectors, offsets, usable, groups = _anisotropic_corpus(2)
    config = AlignConfig()
    inputs = AlignInputs.build(vectors, offsets, usable, groups, None, config)
    pairs = np.array([(2 * k, 2 * k + 1) for k in range(30)])
    together = align_pairs(pairs, inputs, config)
    for k, pair in enumerate(pairs):
        alone = align_pairs(pair[None, :], inputs, config)
        assert alone.score.tobytes() == together.score[k : k + 1].tobytes()


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_null_terms_in_files_equal_those_in_memory_whatever_the_chunks(
    tmp_path: Path, chunk: int
) -> None:
    """The null terms joined from chunks of keys (a document's keys split between two
    chunks at small sizes), in memory and in unnamed files in a folder: the same terms,
    the same own-document sums, the same bytes of evidence, and nothing left behind."""
    from dedup.engines import LocalEngine
    from dedup.stages.align import NullTerms, null_keys, null_quadratics

    vectors, offsets, usable, groups = _anisotropic_corpus(3)
    config = AlignConfig()
    inputs = AlignInputs.build(vectors, offsets, usable, groups, None, config)
    rng = np.random.default_rng(0)
    pairs = np.unique(np.sort(rng.integers(0, len(groups), (200, 2)), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    keys = null_keys(pairs, groups)
    engine = LocalEngine(processes=1)

    def joined(folder: Path | None) -> NullTerms:
        parts = engine.imap_chunks(
            null_quadratics, keys, desc="null", shared=inputs, chunk_size=chunk
        )
        return NullTerms.join(keys, (p for c in parts for p in c), inputs, folder)

    in_memory, in_files = joined(None), joined(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert np.array_equal(np.asarray(in_files.values), in_memory.values)
    assert np.array_equal(np.asarray(in_files.own), in_memory.own)
    codes = keys[rng.permutation(len(keys))[:50]].reshape(10, 5)
    for got, want in zip(in_files.local(codes), in_memory.local(codes), strict=True):
        assert np.array_equal(got, want)
    first, second = (
        align_pairs(pairs, inputs.with_null_terms(terms), config) for terms in (in_memory, in_files)
    )
    assert first == second and first.score.tobytes() == second.score.tobytes()
    with pytest.raises(KeyError):
        in_files.local(np.array([keys.max() + 1]))
    shipped = pickle.loads(pickle.dumps(in_files))  # how a Ray task gets them: arrays
    assert isinstance(shipped.values, np.ndarray) and isinstance(shipped.own, np.ndarray)
    assert np.array_equal(shipped.values, in_memory.values)
    assert in_files.resident() is in_files  # this process is no worker: nothing loaded
