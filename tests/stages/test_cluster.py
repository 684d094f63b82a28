"""cluster: average linkage over pair scores, with the one-per-language rule."""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest

from dedup.records import PairEvidence
from dedup.stages.cluster import Adoption, ClusterConfig, cluster_documents, pooled_groups

CONFIG = ClusterConfig(threshold=0.3)


def ev(left: int, right: int, score: float) -> PairEvidence:
    left, right = min(left, right), max(left, right)
    return PairEvidence(left, right, score, (), 1)


def _partition(keys: list[str], labels: np.ndarray) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for key, label in zip(keys, labels.tolist(), strict=True):
        groups.setdefault(label, set()).add(key)
    return {frozenset(g) for g in groups.values()}


def test_linked_pair_clusters_and_the_rest_stay_alone() -> None:
    keys = ["a", "b", "c"]
    labels = cluster_documents(keys, [ev(0, 1, 0.9), ev(1, 2, 0.1)], np.arange(3), CONFIG)
    assert labels.dtype == np.int64
    assert labels.tolist() == [0, 0, 1]


def test_pair_below_threshold_is_not_a_link() -> None:
    labels = cluster_documents(["a", "b"], [ev(0, 1, 0.29)], np.arange(2), CONFIG)
    assert labels[0] != labels[1]
    labels = cluster_documents(["a", "b"], [ev(0, 1, 0.3)], np.arange(2), CONFIG)
    assert labels[0] == labels[1]


def test_one_weak_edge_does_not_chain_two_clusters() -> None:
    # {0,1,2} and {3,4,5}, each fully linked, every document its own language;
    # one edge (2, 3) just over the threshold must not merge the two stories.
    evidence = [ev(a, b, 0.9) for a, b in itertools.combinations(range(3), 2)]
    evidence += [ev(a, b, 0.9) for a, b in itertools.combinations(range(3, 6), 2)]
    evidence.append(ev(2, 3, 0.35))
    labels = cluster_documents(list("abcdef"), evidence, np.arange(6), CONFIG)
    assert _partition(list("abcdef"), labels) == {frozenset("abc"), frozenset("def")}


def test_clusters_merge_when_most_cross_pairs_agree() -> None:
    evidence = [ev(0, 1, 0.9), ev(2, 3, 0.9), ev(0, 2, 0.6), ev(0, 3, 0.6), ev(1, 2, 0.5)]
    # cross pairs of {0,1} x {2,3}: 0.6 + 0.6 + 0.5 + 0 = 1.7 >= 0.3 * 4
    no_cohesion = ClusterConfig(threshold=CONFIG.threshold, cohesion=0.0)
    labels = cluster_documents(list("abcd"), evidence, np.arange(4), no_cohesion)
    assert len(set(labels.tolist())) == 1


def test_cohesion_keeps_apart_a_related_story_linked_far_below_its_own_links() -> None:
    # two stories, each translated twice (links 0.9), reporting one event (cross 0.5-0.6)
    evidence = [
        ev(0, 1, 0.9),
        ev(2, 3, 0.9),
        ev(0, 2, 0.6),
        ev(0, 3, 0.6),
        ev(1, 2, 0.5),
        ev(1, 3, 0.5),
    ]
    # cross average 0.55 clears the threshold 0.3 but not 0.7 x the inside average 0.9
    strict = ClusterConfig(threshold=CONFIG.threshold, cohesion=0.7)
    labels = cluster_documents(list("abcd"), evidence, np.arange(4), strict)
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]
    # without the cohesion test the two stories merge
    loose = ClusterConfig(threshold=CONFIG.threshold, cohesion=0.0)
    assert len(set(cluster_documents(list("abcd"), evidence, np.arange(4), loose).tolist())) == 1


def test_a_weak_language_version_joins_a_tight_cluster_a_same_event_report_does_not() -> None:
    """Cohesion and the average test for one document: its language's links set the bar.

    Three versions of a story in well-known languages link at 0.9; a fourth
    document links to each at 0.5. As a version in a language whose links all
    sit near 0.5 (four more stories, each linked at 0.5 to that language), it
    joins: 0.5 is what that language reaches. As a report in a language whose
    links sit at 0.9 (a second report of the event), it stays apart:
    0.5 < 0.6 x 0.9. (The linkage's rule: adoption, which could still take
    such a document in, is off here and tested on its own below.)
    """
    config = ClusterConfig(threshold=0.45, cohesion=0.6, orphan_share=0)

    def corpus(other_links: float) -> tuple[list[PairEvidence], np.ndarray]:
        evidence = [ev(0, 1, 0.9), ev(0, 2, 0.9), ev(1, 2, 0.9)]
        evidence += [ev(d, 3, 0.5) for d in range(3)]
        groups = [0, 1, 2, 3]  # the fourth document is language 3
        for _story in range(4):  # other stories: a language-3 version and a version in 4
            three, four = len(groups), len(groups) + 1
            groups += [3, 4]
            evidence.append(ev(three, four, other_links))
        return evidence, np.array(groups)

    weak_evidence, weak_groups = corpus(other_links=0.5)
    keys = [f"d{i:02d}" for i in range(len(weak_groups))]
    labels = cluster_documents(keys, weak_evidence, weak_groups, config)
    assert len({labels[d] for d in range(4)}) == 1
    strong_evidence, strong_groups = corpus(other_links=0.9)
    labels = cluster_documents(keys, strong_evidence, strong_groups, config)
    assert labels[0] == labels[1] == labels[2] != labels[3]

    # the average test too: one link at 0.5 and two pairs at 0.3 average 0.37,
    # under the threshold, but above 0.6 x 0.5 for a language that links at 0.5
    for evidence in (weak_evidence, strong_evidence):
        evidence[4:6] = [ev(1, 3, 0.3), ev(2, 3, 0.3)]
    labels = cluster_documents(keys, weak_evidence, weak_groups, config)
    assert len({labels[d] for d in range(4)}) == 1
    labels = cluster_documents(keys, strong_evidence, strong_groups, config)
    assert labels[0] == labels[1] == labels[2] != labels[3]


def test_two_documents_of_one_language_need_a_direct_link() -> None:
    groups = np.array([0, 1, 0])  # en, de, en
    keys = ["en-1", "de", "en-2"]
    evidence = [ev(0, 1, 0.9), ev(1, 2, 0.9)]  # both English texts match the German one
    labels = cluster_documents(keys, evidence, groups, CONFIG)
    assert labels[0] != labels[2]
    assert labels[1] in (labels[0], labels[2])

    # a repost: the two English texts also match each other, so they may share a cluster
    labels = cluster_documents(keys, [*evidence, ev(0, 2, 0.5)], groups, CONFIG)
    assert len(set(labels.tolist())) == 1


def test_same_language_pair_below_threshold_does_not_count_as_direct_link() -> None:
    """In the linkage; adoption then weighs what the pair says (the tests of
    ``_sibling_vetoes`` below)."""
    groups = np.array([0, 1, 0])
    evidence = [ev(0, 1, 0.9), ev(1, 2, 0.9), ev(0, 2, 0.2)]
    linkage_only = ClusterConfig(threshold=0.3, orphan_share=0)
    labels = cluster_documents(["x", "y", "z"], evidence, groups, linkage_only)
    assert labels[0] != labels[2]


def test_numbered_largest_first_then_smallest_id() -> None:
    keys = ["d", "c", "b", "a", "e", "f"]
    # clusters: {d, c} (size 2), {b} , {a, e, f} (size 3)
    evidence = [ev(0, 1, 0.8), ev(3, 4, 0.8), ev(4, 5, 0.8), ev(3, 5, 0.8)]
    labels = cluster_documents(keys, evidence, np.arange(6), CONFIG)
    label_of = dict(zip(keys, labels.tolist(), strict=True))
    assert label_of["a"] == label_of["e"] == label_of["f"] == 0
    assert label_of["c"] == label_of["d"] == 1
    assert label_of["b"] == 2
    # singletons by id: extra isolated documents are numbered in id order
    labels = cluster_documents(["z", "y", "x"], [], np.arange(3), CONFIG)
    assert labels.tolist() == [2, 1, 0]


def _random_graph(seed: int) -> tuple[list[str], list[tuple[str, str, float]], dict[str, int]]:
    rng = np.random.default_rng(seed)
    keys = [f"doc{i:02d}" for i in range(14)]
    lang = {k: int(rng.integers(0, 4)) for k in keys}
    story = {k: int(rng.integers(0, 5)) for k in keys}
    edges = []
    for a, b in itertools.combinations(keys, 2):
        if story[a] == story[b] and rng.random() < 0.8:
            edges.append((a, b, float(rng.uniform(0.3, 1.0))))
        elif rng.random() < 0.15:
            edges.append((a, b, float(rng.uniform(0.0, 0.45))))
    return keys, edges, lang


@pytest.mark.parametrize("seed", range(5))
def test_labels_do_not_depend_on_input_order(seed: int) -> None:
    keys, edges, lang = _random_graph(seed)

    def run(order: list[str], edge_order: list[tuple[str, str, float]]) -> dict[str, int]:
        index = {k: i for i, k in enumerate(order)}
        evidence = [ev(index[a], index[b], s) for a, b, s in edge_order]
        groups = np.array([lang[k] for k in order])
        labels = cluster_documents(order, evidence, groups, CONFIG)
        return dict(zip(order, labels.tolist(), strict=True))

    reference = run(keys, edges)
    rng = np.random.default_rng(100 + seed)
    for _ in range(5):
        order = [keys[i] for i in rng.permutation(len(keys))]
        edge_order = [edges[i] for i in rng.permutation(len(edges))]
        assert run(order, edge_order) == reference
    # and the numbering is largest first
    sizes = np.bincount(list(reference.values()))
    assert (np.diff(sizes) <= 0).all()


def test_every_document_gets_a_label_and_labels_are_contiguous() -> None:
    keys, edges, lang = _random_graph(11)
    index = {k: i for i, k in enumerate(keys)}
    evidence = [ev(index[a], index[b], s) for a, b, s in edges]
    labels = cluster_documents(keys, evidence, np.array([lang[k] for k in keys]), CONFIG)
    assert len(labels) == len(keys)
    assert sorted(set(labels.tolist())) == list(range(labels.max() + 1))


def test_no_documents() -> None:
    assert cluster_documents([], [], np.zeros(0, dtype=np.int64), CONFIG).shape == (0,)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01])
def test_cluster_config_validation(threshold: float) -> None:
    with pytest.raises(ValueError):
        ClusterConfig(threshold=threshold)
    assert ClusterConfig(threshold=1.0).threshold == 1.0


def _naive_average_linkage(
    keys: list[str],
    edges: list[tuple[str, str, float]],
    lang: dict[str, int],
    config: ClusterConfig,
    sentences: dict[str, int],
) -> set[frozenset[str]]:
    """The rule of ``cluster_documents`` read off a dense score matrix, every sum
    recomputed from scratch at each step, then the adoption of the documents
    left alone, every cluster weighed for each: slow and plain, an oracle."""
    score = {frozenset((a, b)): s for a, b, s in edges}

    def s(a: str, b: str) -> float:
        return score.get(frozenset((a, b)), 0.0)

    owner = {k: frozenset([k]) for k in keys}
    theta = config.threshold
    strong = sorted((e for e in edges if e[2] >= theta), key=lambda e: (-e[2], *sorted(e[:2])))
    # each language's level: the median of its links' scores, one per end
    ends: dict[int, list[float]] = {}
    for a, b, pair_score in strong:
        ends.setdefault(lang[a], []).append(pair_score)
        ends.setdefault(lang[b], []).append(pair_score)
    every = [v for values in ends.values() for v in values]
    overall = statistics.median(every) if every else 1.0
    level = {
        k: statistics.median(ends[lang[k]]) if len(ends.get(lang[k], [])) >= 5 else overall
        for k in keys
    }
    for a, b, _ in strong:
        x, y = owner[a], owner[b]
        if x == y:
            continue
        cross = [s(i, j) for i in x for j in y]
        links = sum(score >= theta for score in cross)
        single = [next(iter(c)) for c in (x, y) if len(c) == 1][:1]
        reach = level[single[0]] if single and config.cohesion else None
        need = theta if reach is None else min(theta, config.cohesion * reach)
        if sum(cross) < need * len(cross) and links < config.link_share * len(cross):
            continue
        if any(lang[i] == lang[j] and s(i, j) < theta for i in x for j in y):
            continue
        inside = [s(i, j) for c in (x, y) for i, j in itertools.combinations(sorted(c), 2)]
        if inside:
            reference = sum(inside) / len(inside)
            if reach is not None:
                reference = min(reference, reach)
            if sum(cross) / len(cross) < config.cohesion * reference:
                continue
        for d in x | y:
            owner[d] = x | y
    if not config.orphan_share:
        return set(owner.values())
    # adoption: a language with fewer than 5 link ends takes the threshold
    adopt_level = {
        k: statistics.median(ends[lang[k]]) if len(ends.get(lang[k], [])) >= 5 else theta
        for k in keys
    }
    clusters = set(owner.values())

    def v(a: str, b: str) -> float:  # a pair's share of an agreement
        return s(a, b) * min(sentences[a], sentences[b]) / max(sentences[a], sentences[b], 1)

    alone = [d for d in keys if len(owner[d]) == 1]
    agree: dict[str, dict[frozenset[str], float]] = {}
    best_of: dict[str, tuple[frozenset[str], float]] = {}
    for d in alone:
        agree[d] = {
            c: sum(v(d, j) for j in c) / len(c)
            for c in clusters
            if d not in c and any(frozenset((d, j)) in score for j in c)
        }
        ranked = sorted(
            ((c, a) for c, a in agree[d].items() if len(c) > 1),
            key=lambda item: (-item[1], min(item[0])),
        )
        if ranked:
            best_of[d] = ranked[0]

    def leans_to(e: str, cluster: frozenset[str]) -> bool:
        return best_of.get(e, (frozenset(), 0.0))[0] == cluster

    offers = []
    for d, (best, value) in best_of.items():
        # rivals: the other clusters, and the documents alone not leaning to best
        second = max(
            (
                a
                for c, a in agree[d].items()
                if c != best and not (len(c) == 1 and leans_to(next(iter(c)), best))
            ),
            default=0.0,
        )
        if value >= config.orphan_share * adopt_level[d] and value >= config.orphan_margin * second:
            offers.append((-value, d, best))
    grown = {c: set(c) for c in clusters}
    for negative_value, d, best in sorted(offers):
        # a member of d's language keeps it out unless linked to it, or sharing some
        # of it but less than the cluster as a whole does
        if all(
            lang[d] != lang[j] or s(d, j) >= theta or 0 < v(d, j) < -negative_value
            for j in grown[best]
        ):
            grown[best].add(d)
            grown.pop(owner[d])
    return {frozenset(c) for c in grown.values()}


@pytest.mark.parametrize("seed", range(20))
def test_clusters_match_a_naive_average_linkage(seed: int) -> None:
    # weak links across stories and pairs scored 0 included: the clustering
    # leaves out the pairs it can never read, which must change nothing
    keys, edges, lang = _random_graph(seed)
    rng = np.random.default_rng(500 + seed)
    taken = {frozenset(e[:2]) for e in edges}
    for a, b in itertools.combinations(keys, 2):
        if frozenset((a, b)) not in taken and rng.random() < 0.1:
            edges.append((a, b, 0.0))
    index = {k: i for i, k in enumerate(keys)}
    sentences = {k: int(rng.integers(1, 7)) for k in keys}
    evidence = [
        PairEvidence(
            min(index[a], index[b]), max(index[a], index[b]), s, (), min(sentences[a], sentences[b])
        )
        for a, b, s in edges
    ]
    groups = np.array([lang[k] for k in keys])
    configs = (
        CONFIG,
        ClusterConfig(threshold=0.5, cohesion=0.0),
        ClusterConfig(0.4, 0.9),
        ClusterConfig(0.4, 0.6, link_share=2.0),  # the average test alone
        ClusterConfig(0.4, 0.6, orphan_share=0.2, orphan_margin=1.0),  # adopting many
        ClusterConfig(orphan_share=0.0),  # the linkage alone
    )
    # every label trusted: the oracle applies the one-per-language rule to all
    trusted = np.zeros(groups.max() + 1, dtype=bool)
    lengths = np.array([sentences[k] for k in keys])
    for config in configs:
        labels = cluster_documents(keys, evidence, groups, config, trusted, doc_sentences=lengths)
        expected = _naive_average_linkage(keys, edges, lang, config, sentences)
        assert _partition(keys, labels) == expected


def _stories_under_one_label(n_stories: int, wrong_links: int = 0) -> tuple[list, np.ndarray]:
    """Each story: an English text (group 0) linked to two versions labelled "he" (group 1).

    The two "he" versions link the English one strongly but each other only
    weakly, as Hebrew and Yiddish translations do. With ``wrong_links`` the
    "he" group instead holds one version per story, and that many English
    texts are wrongly linked to a second story's version (one label, one
    language, a few wrong links).
    """
    evidence, groups = [], []
    for _story in range(n_stories):
        en = len(groups)
        if wrong_links:
            groups += [0, 1]
            evidence.append(ev(en, en + 1, 0.9))
        else:
            groups += [0, 1, 1]
            evidence += [ev(en, en + 1, 0.9), ev(en, en + 2, 0.9), ev(en + 1, en + 2, 0.25)]
    for story in range(wrong_links):
        evidence.append(ev(2 * story, 2 * story + 3, 0.5))
    return evidence, np.array(groups)


def test_a_label_holding_two_languages_is_measured_as_pooled() -> None:
    evidence, groups = _stories_under_one_label(20)
    assert pooled_groups(evidence, groups, CONFIG.threshold).tolist() == [False, True]
    # then every story is one cluster: both "he" versions with their English text
    labels = cluster_documents([f"d{i:02d}" for i in range(60)], evidence, groups, CONFIG)
    assert len(set(labels.tolist())) == 20
    assert all(labels[3 * s] == labels[3 * s + 1] == labels[3 * s + 2] for s in range(20))


def test_a_few_wrong_links_leave_a_label_trusted() -> None:
    evidence, groups = _stories_under_one_label(20, wrong_links=2)
    assert not pooled_groups(evidence, groups, CONFIG.threshold).any()
    # and a one-language group with one wrong link among two documents stays trusted
    groups = np.array([0, 1, 0])  # en, de, en: both English texts match the German one
    assert not pooled_groups([ev(0, 1, 0.9), ev(1, 2, 0.9)], groups, CONFIG.threshold).any()


def test_the_rule_is_off_only_for_the_pooled_groups_given() -> None:
    groups = np.array([0, 1, 0])
    # both "English" texts translate the German one, and were never compared
    evidence = [ev(0, 1, 0.9), ev(1, 2, 0.9)]
    keys = ["en-1", "de", "en-2"]
    trusted = cluster_documents(keys, evidence, groups, CONFIG, np.array([False, False]))
    assert trusted[0] != trusted[2]
    pooled = cluster_documents(keys, evidence, groups, CONFIG, np.array([True, False]))
    assert len(set(pooled.tolist())) == 1


def test_a_majority_of_links_merges_where_the_average_falls_short() -> None:
    """Three versions linked to each other; a fourth linked to two of them at 0.5
    and never proposed with the third averages 0.33 < 0.45 against the three, yet
    two of its three pairs are links: it joins (and not without link_share)."""
    evidence = [ev(0, 1, 0.9), ev(1, 2, 0.9), ev(0, 2, 0.5), ev(3, 0, 0.5), ev(3, 1, 0.5)]
    config = ClusterConfig(threshold=0.45, cohesion=0.0, orphan_share=0)  # the linkage's rule
    assert len(set(cluster_documents(list("abcd"), evidence, np.arange(4), config).tolist())) == 1
    average_only = ClusterConfig(threshold=0.45, cohesion=0.0, link_share=2.0, orphan_share=0)
    labels = cluster_documents(list("abcd"), evidence, np.arange(4), average_only)
    assert labels[3] != labels[0]


def test_components_clustered_apart_give_the_merges_of_one_pass_over_all_pairs() -> None:
    """Per link component, in chunks, in forked workers or not: the same labels as the
    average linkage run once over every pair (weak pairs across components included)."""
    from dedup.engines import LocalEngine
    from dedup.records import EvidenceTable
    from dedup.stages.cluster import (
        _merge_clusters,
        canonical_labels,
        language_levels,
        largest_component,
        link_components,
    )

    rng = np.random.default_rng(5)
    n = 400
    keys = [f"k{i:04x}" for i in rng.permutation(n)]
    groups = rng.integers(0, 6, size=n)
    pairs = {tuple(sorted(p)) for p in rng.integers(0, n, size=(1500, 2)).tolist() if p[0] != p[1]}
    evidence = [ev(a, b, float(rng.choice([0.1, 0.2, 0.35, 0.5, 0.8, 0.95]))) for a, b in pairs]
    table = EvidenceTable.of(evidence)
    # the linkage, split or not (adoption, a pass over the whole corpus after
    # it, is compared with its oracle in test_clusters_match_a_naive_average_linkage)
    config = ClusterConfig(threshold=0.45, orphan_share=0)
    links = table.score >= config.threshold
    levels = language_levels(groups, table.left[links], table.right[links], table.score[links])
    whole = canonical_labels(
        np.array(
            _merge_clusters(
                keys, table.left, table.right, table.score, groups, levels[groups], config
            ),
            np.int64,
        ),
        keys,
    )
    strong = table.score >= 0.45
    component = link_components(n, table.left[strong], table.right[strong])
    assert 1 < largest_component(component) < n  # several components, not one
    no_pooling = np.zeros(6, dtype=bool)
    for engine in (None, LocalEngine(chunk_size=3, processes=2)):
        labels = cluster_documents(keys, evidence, groups, config, no_pooling, engine=engine)
        assert labels.tolist() == whole.tolist()
        # no cluster spans two components
        assert all(len(set(component[labels == c].tolist())) == 1 for c in set(labels.tolist()))


def _story_and_stranger(
    stranger_scores: list[float], lengths: list[int] | None = None, elsewhere: float = 0.0
) -> tuple[list[str], list[PairEvidence], np.ndarray, np.ndarray]:
    """Three versions of a story linked at 0.9 (documents 0-2, languages 0-2),
    a document 3 (language 3) with ``stranger_scores`` against them, all
    under the threshold, and a second story (documents 4-5, languages 4-5)
    that document 3 scores ``elsewhere`` against. ``lengths``: usable
    sentences of documents 0-3 (the second story's are 4)."""
    lengths = lengths or [4, 4, 4, 4]
    sentences = np.array([*lengths, 4, 4])
    evidence = [ev(0, 1, 0.9), ev(0, 2, 0.9), ev(1, 2, 0.9), ev(4, 5, 0.9)]
    pairs = [(d, 3, score) for d, score in enumerate(stranger_scores)]
    pairs += [(3, 4, elsewhere), (3, 5, elsewhere)] if elsewhere else []
    evidence += [
        PairEvidence(min(a, b), max(a, b), score, (), int(min(sentences[a], sentences[b])))
        for a, b, score in pairs
    ]
    return [f"d{i}" for i in range(6)], evidence, np.arange(6), sentences


def test_a_document_without_a_link_that_agrees_with_one_story_alone_is_adopted() -> None:
    """A weak-language version at 0.3-0.4 against every version (no link, so the
    linkage never weighs it) joins the story; its language has no links to
    measure, so its bar is 0.4 x the threshold."""
    keys, evidence, groups, sentences = _story_and_stranger([0.35, 0.3, 0.4])
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] == labels[1] == labels[2] == labels[3] != labels[4]
    off = cluster_documents(
        keys, evidence, groups, ClusterConfig(orphan_share=0), doc_sentences=sentences
    )
    assert len({off[0], off[3]}) == 2


def test_a_document_agreeing_with_two_stories_alike_is_not_adopted() -> None:
    """The margin: 0.35 against the first story and 0.3 against the second is
    a document of their topic, not a version of either (0.35 < 1.3 x 0.3)."""
    keys, evidence, groups, sentences = _story_and_stranger([0.35, 0.35, 0.35], elsewhere=0.3)
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert len({labels[0], labels[3], labels[4]}) == 3
    # far behind, the second story no longer stands in the way
    keys, evidence, groups, sentences = _story_and_stranger([0.35, 0.35, 0.35], elsewhere=0.2)
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] == labels[3] != labels[4]


def test_a_few_sentences_shared_with_a_long_article_are_not_a_version() -> None:
    """A three-sentence brief matching part of 15-sentence articles scores as
    much as a weak translation, but counts for its share of them: 0.4 x 3/15."""
    keys, evidence, groups, sentences = _story_and_stranger([0.4, 0.4, 0.4], [15, 15, 15, 3])
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] != labels[3]
    # the same scores between documents of equal length: adopted
    keys, evidence, groups, sentences = _story_and_stranger([0.4, 0.4, 0.4], [3, 3, 3, 3])
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] == labels[3]


def test_adoption_bar_is_the_documents_language_level() -> None:
    """A language whose links sit at 0.9 (five more stories linked at 0.9 to it)
    needs 0.4 x 0.9 = 0.36: 0.3 against every version is not enough for it,
    while a language with no links to measure needs 0.4 x 0.45 = 0.18."""
    keys, evidence, groups, sentences = _story_and_stranger([0.3, 0.3, 0.3])
    keys, groups, sentences = list(keys), list(groups), list(sentences)
    for story in range(5):  # a language-3 version and a language-6 version each
        a, b = len(keys), len(keys) + 1
        keys += [f"e{story}a", f"e{story}b"]
        groups += [3, 6]
        sentences += [4, 4]
        evidence.append(PairEvidence(a, b, 0.9, (), 4))
    labels = cluster_documents(
        keys, evidence, np.array(groups), ClusterConfig(), doc_sentences=np.array(sentences)
    )
    assert labels[0] != labels[3]
    keys, evidence, groups, sentences = _story_and_stranger([0.3, 0.3, 0.3])
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] == labels[3]


def test_two_documents_of_one_language_alone_the_stronger_is_adopted() -> None:
    """The one-document-per-language rule holds for adoption: of two documents
    of one language that both agree with a story, only the stronger joins,
    whatever the order of the documents."""
    keys, evidence, groups, sentences = _story_and_stranger([0.35, 0.35, 0.35])
    keys = [*keys, "d6"]
    groups = np.r_[groups, 3]
    sentences = np.r_[sentences, 4]
    evidence += [PairEvidence(d, 6, 0.4, (), 4) for d in range(3)]
    for order in (list(range(7)), [6, 5, 4, 3, 2, 1, 0]):
        position = {d: i for i, d in enumerate(order)}
        shuffled = [
            PairEvidence(*sorted((position[e.left], position[e.right])), e.score, (), e.shorter)
            for e in evidence
        ]
        labels = cluster_documents(
            [keys[d] for d in order],
            shuffled,
            groups[order],
            ClusterConfig(),
            doc_sentences=sentences[order],
        )
        back = labels[[position[d] for d in range(7)]]
        assert back[0] == back[6] != back[3]


def test_a_same_label_member_closer_than_the_story_keeps_a_document_out() -> None:
    """A second report of an event in the language of one version is closer to that
    version than to the story's other versions (one language, one event): 0.3 to the
    sibling against 0.22 to the others keeps it out, under the threshold. The
    same document sharing 0.1 with the sibling and 0.3 with the others is one more
    translation under a label that holds two languages here (Manipuri read as
    Bengali): it joins. Sharing nothing with the sibling (a pair never proposed,
    or nothing aligned) reads as another text: out."""

    def joins(sibling_score: float | None, others: float) -> bool:
        keys, evidence, groups, sentences = _story_and_stranger(
            [sibling_score or 0, others, others]
        )
        groups[3] = 0  # the stranger has document 0's label
        if sibling_score is None:
            evidence = [e for e in evidence if (e.left, e.right) != (0, 3)]
        labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
        return bool(labels[0] == labels[3])

    assert not joins(0.3, 0.22)
    assert joins(0.1, 0.3)
    assert not joins(0.0, 0.3)
    assert not joins(None, 0.3)
    # linked to the sibling (a repost or a second version of one text): the rule lets it in
    assert joins(0.5, 0.3)
    # a label of one language in this story (a different label): the agreement decides
    keys, evidence, groups, sentences = _story_and_stranger([0.3, 0.22, 0.22])
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] == labels[3]
    # the adoption names the member it joined beside, and what they share
    keys, evidence, groups, sentences = _story_and_stranger([0.1, 0.3, 0.3])
    groups[3] = 0
    adoptions: list[Adoption] = []
    cluster_documents(
        keys, evidence, groups, ClusterConfig(), doc_sentences=sentences, adoptions=adoptions
    )
    (adopted,) = adoptions
    assert (adopted.document, adopted.beside) == (3, 0)
    assert (adopted.beside_score, adopted.beside_value) == (0.1, 0.1)


def test_two_weak_versions_of_one_story_do_not_stand_in_each_others_way() -> None:
    """Two documents alone (languages 3 and 6) agree with the story at 0.3 and with
    each other at 0.4: each is the other's best unit, but both lean to the story,
    so neither is the other's rival and both join. A document alone that leans
    elsewhere (or nowhere) still is a rival: the margin keeps the first one out."""
    keys, evidence, groups, sentences = _story_and_stranger([0.3, 0.3, 0.3])
    keys = [*keys, "d6"]
    groups = np.r_[groups, 6]
    sentences = np.r_[sentences, 4]
    evidence += [PairEvidence(d, 6, 0.3, (), 4) for d in range(3)]
    evidence.append(PairEvidence(3, 6, 0.4, (), 4))
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[0] == labels[3] == labels[6] != labels[4]
    # document 6 agreeing with no cluster: a rival of document 3 (0.3 < 1.3 x 0.4)
    evidence = [e for e in evidence if not (e.right == 6 and e.left < 3)]
    labels = cluster_documents(keys, evidence, groups, ClusterConfig(), doc_sentences=sentences)
    assert labels[3] != labels[0] and labels[6] != labels[0]


def _pooled_by_sets(table, groups: np.ndarray, threshold: float) -> np.ndarray:
    """``pooled_groups`` as it was first written, with Python sets and dicts: the
    reference its array version must agree with."""
    from scipy.special import bdtrc

    from dedup.stages.cluster import OPENER_RATE, POOLED_P_VALUE

    n_groups = int(groups.max()) + 1 if len(groups) else 0
    strong = table.score >= threshold
    left, right = table.left[strong].tolist(), table.right[strong].tolist()
    links = {(min(a, b), max(a, b)) for a, b in zip(left, right, strict=True)}
    partners: dict[int, dict[int, list[int]]] = {}
    for a, b in zip(left, right, strict=True):
        partners.setdefault(a, {}).setdefault(int(groups[b]), []).append(b)
        partners.setdefault(b, {}).setdefault(int(groups[a]), []).append(a)
    openers: set[int] = set()
    for by_group in partners.values():
        for siblings in by_group.values():
            for i, a in enumerate(siblings):
                for b in siblings[i + 1 :]:
                    if (min(a, b), max(a, b)) not in links:
                        openers.update((a, b))
    linked = np.bincount(groups[list(partners)], minlength=n_groups)
    opening = np.bincount(groups[list(openers)], minlength=n_groups)
    chance = bdtrc(np.maximum(opening - 1, 0), linked, OPENER_RATE)
    return (opening > 0) & (chance < POOLED_P_VALUE)


def _random_pairs(rng: np.random.Generator, n: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct document pairs ``left < right`` among ``n``, from ``draws`` random draws."""
    ends = rng.integers(0, n, (2, draws))
    low, high = ends.min(axis=0), ends.max(axis=0)
    codes = np.unique(low[low != high] * n + high[low != high])
    return np.divmod(codes, n)


def test_pooled_groups_agree_with_the_set_and_dict_reference() -> None:
    """300 random link graphs (no links, sparse, dense, one group or several) at three
    thresholds: the same pooled labels as the first, Python-object version."""
    from dedup.records import EvidenceTable

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 80))
        left, right = _random_pairs(rng, n, int(rng.integers(0, 400)))
        table = EvidenceTable(left, right, rng.random(len(left)), np.ones(len(left), np.int64))
        groups = rng.integers(0, int(rng.integers(1, 6)), n)
        for threshold in (0.2, 0.5, 0.9):
            expected = _pooled_by_sets(table, groups, threshold)
            assert np.array_equal(pooled_groups(table, groups, threshold), expected)


def test_adoption_is_the_same_whatever_range_of_documents_is_grouped_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``adopt_alone`` groups the entries of the documents alone a range at a time: with
    ranges of a few entries (many ranges, a document's entries never split) the owners
    and every adoption's figures are those of one range holding everything."""
    from dedup.records import EvidenceTable
    from dedup.stages import cluster
    from dedup.stages.cluster import adopt_alone

    rng = np.random.default_rng(4)
    for _ in range(40):
        n = int(rng.integers(2, 120))
        left, right = _random_pairs(rng, n, int(rng.integers(1, 600)))
        if not len(left):
            continue
        table = EvidenceTable(left, right, rng.random(len(left)), rng.integers(1, 9, len(left)))
        owner = np.arange(n)
        members = rng.permutation(n)[: n // 2]
        owner[members] = members[rng.integers(0, max(len(members) // 3, 1), len(members))]
        owner = owner[owner]  # owners own themselves
        args = (
            owner,
            table,
            rng.integers(1, 20, n).astype(np.float64),
            rng.integers(0, 4, n),
            np.full(n, 0.2),
            [f"d{i:04d}" for i in rng.permutation(n)],
            ClusterConfig(),
        )
        monkeypatch.setattr(cluster, "_ORPHAN_ENTRIES", 1 << 22)
        whole = adopt_alone(*args)
        monkeypatch.setattr(cluster, "_ORPHAN_ENTRIES", int(rng.integers(1, 6)))
        ranged = adopt_alone(*args)
        assert np.array_equal(whole[0], ranged[0])
        assert whole[1] == ranged[1]
