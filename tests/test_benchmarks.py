"""End to end on the development benchmarks: the quality bars of the pipeline issue.

One set of default settings for all four sets; scores come from the
independent reference scorer (``bench/score_reference.py``), not from our own
code. The first run of each set encodes ~3,000-3,700 sentences (2-4 minutes on
two cores); sentence vectors are cached in ``dedup_cache`` for the rest of
the session.

The tool never reads the ``truth.tsv`` files: only this test does.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from dedup import PipelineConfig, run, write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from run_benchmarks import score  # noqa: E402

BARS = {
    # set: least pairwise F1 and least B-cubed F1, issue 20's bars (measured: README,
    # Quality; in-sample)
    "ntrex-dev": 0.99,
    "ntrex-wide": 0.97,
    # 0.843 before documents without a link were adopted (cluster.adopt_alone), 0.863
    # after, 0.865 with the sibling and rival rules of adoption
    "flores-dev": 0.86,
    # stories in 25-60 languages: 0.655 before linked-partner candidates, 0.828 after,
    # 0.852 with the language-label trust measure and the majority-of-links merge,
    # 0.874 with adoption, 0.884 with its sibling and rival rules (issue 20's bar: 0.85)
    "flores-many": 0.86,
}
#: least recall of the approximate neighbour search (0.926 measured, see the test)
RECALL_FLOOR = 0.90


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BARS))
def test_benchmark_quality_bar(name: str, tmp_path: Path, dedup_cache: Path) -> None:
    data = REPO / "bench" / "data" / name
    result = run(data / "corpus.jsonl", PipelineConfig(cache_dir=dedup_cache))
    write_report(result, tmp_path)
    scores = score(tmp_path / "assignments.csv", data / "truth.tsv")
    print(name, scores)
    assert scores["pairwise_f1"] >= BARS[name], scores
    assert scores["bcubed_f1"] >= BARS[name], scores
    # every document of the corpus is assigned, none is skipped
    lines = (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(result.documents) == len(lines) and not result.skipped
    # adoption joins a document to its own story (none wrong measured on these sets)
    story = dict(
        line.split("\t") for line in (data / "truth.tsv").read_text().split("\n")[1:] if line
    )
    ids = [doc.id for doc in result.documents]
    wrong = [a for a in result.adoptions if story[ids[a.document]] != story[ids[a.closest]]]
    assert len(wrong) <= 0.1 * len(result.adoptions), wrong
    if name.startswith("flores"):  # where weak-language versions are many
        assert len(result.adoptions) >= 5, result.adoptions


@pytest.mark.slow
def test_stories_in_dozens_of_languages_have_their_pairs_proposed(dedup_cache: Path) -> None:
    """The candidate stage's recall on flores-many (clusters up to 60): the share of
    true pairs that were aligned at all. 20 neighbours per document proposed 0.59;
    linked-partner rounds raise it to 0.83 (in-sample). The link cache holds the
    benchmark test's result, so this costs the clustering only."""
    data = REPO / "bench" / "data" / "flores-many"
    result = run(data / "corpus.jsonl", PipelineConfig(cache_dir=dedup_cache))
    truth = dict(
        line.split("\t")[:2]
        for line in (data / "truth.tsv").read_text(encoding="utf-8").splitlines()[1:]
    )
    story = [truth[doc.id].strip() for doc in result.documents]
    primaries = {int(p) for p in result.primary_of}
    aligned = {
        (int(a), int(b)) for a, b in zip(result.evidence.left, result.evidence.right, strict=True)
    }
    versions: dict[str, list[int]] = {}
    for index in sorted(primaries):
        versions.setdefault(story[index], []).append(index)
    true_pairs = [pair for group in versions.values() for pair in itertools.combinations(group, 2)]
    recall = sum(pair in aligned for pair in true_pairs) / len(true_pairs)
    print(f"candidate recall {recall:.3f}")
    assert recall >= 0.78, recall
    largest = max(set(story), key=story.count)
    members = [i for i, s in enumerate(story) if s == largest]
    labels = {int(result.labels[i]) for i in members}
    # the 60-version story: most of it in one cluster (the rest are versions the
    # encoder barely links: Ol Chiki, Tifinagh, Dzongkha)
    biggest = max(labels, key=lambda c: sum(int(result.labels[i]) == c for i in members))
    assert sum(int(result.labels[i]) == biggest for i in members) >= 0.7 * len(members)


@pytest.mark.slow
def test_approximate_neighbour_search_recall_on_real_vectors(dedup_cache: Path) -> None:
    """Above ``exact_search_limit`` rows the neighbour search is an IVF index: its
    recall of the exact nearest neighbours, measured on the real model's vectors
    of every sentence of the four development sets (language-centred, as the
    candidate stage searches them): 20,035 distinct sentences. Measured: 0.922 of
    the exact 13 nearest found (8 probes of 70 lists, 8-bit re-ranking codes;
    0.926 with float16 ones). The vectors are the
    benchmark runs' (cached)."""
    from dedup.encoding import cache_root, lazy_encoder
    from dedup.stages.candidates import (
        CandidateConfig,
        CentredVectors,
        _knn,
        language_means,
        row_reader,
    )
    from dedup.stages.embed import EmbeddingCache, embed_sentences

    sentences: list[str] = []
    groups: list[int] = []
    for name in BARS:
        result = run(
            REPO / "bench/data" / name / "corpus.jsonl", PipelineConfig(cache_dir=dedup_cache)
        )
        offset = len(set(groups)) and max(groups) + 1
        for seg, group in zip(result.segmented, result.doc_groups.tolist(), strict=True):
            sentences += seg.sentences
            groups += [offset + group] * len(seg.sentences)
    distinct = dict.fromkeys(sentences)  # a sentence once, in its first language
    group_of = dict(zip(sentences, groups, strict=True))
    texts = list(distinct)
    encoder = lazy_encoder(None, cache_dir=dedup_cache)
    cache = EmbeddingCache(cache_root(dedup_cache) / "embeddings", encoder.fingerprint, encoder.dim)
    raw, _ = embed_sentences(texts, encoder, cache)
    row_groups = np.array([group_of[t] for t in texts], dtype=np.int64)
    # the default settings, and the approximate path whatever the exact row count
    config = CandidateConfig(exact_search_limit=10_000)
    assert len(texts) > 20_000
    weights = np.ones(len(texts))
    means = language_means(raw, row_groups, weights, config.centering_prior)
    read = row_reader(CentredVectors(raw, row_groups, means))
    rows = np.arange(len(texts))
    k = config.sentence_neighbours + 8  # what the sentence channel asks for
    approximate = _knn(read, rows, k, config)
    exact = _knn(read, rows, k, CandidateConfig(exact_search_limit=len(texts)))
    found = sum(
        len(set(a) & set(e)) for a, e in zip(approximate.tolist(), exact.tolist(), strict=True)
    )
    recall = found / exact.size
    print(f"rows {len(texts)} approximate recall of the exact {k} nearest: {recall:.3f}")
    assert recall >= RECALL_FLOOR, recall
