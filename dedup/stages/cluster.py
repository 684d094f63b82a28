"""Cluster: group documents into articles without chaining through weak links.

Connected components over accepted pairs turn one wrong link into a merge of
two whole clusters (``design.md``: 82 wrong links gave clusters of pairwise
precision 0.18). Instead this is greedy **average linkage** over the sparse
pair scores:

* pairs are visited strongest first; visiting (a, b) merges their clusters
  only if the *average* score over all cross pairs of the two clusters is at
  least ``threshold`` (a pair that was never a candidate counts 0), so a
  cluster joins another only when most of its members agree;
* a merge also needs the link between two clusters to be comparable to the
  links inside them (``cohesion``), so a story does not absorb a related
  story whose translations agree among themselves far better than with it;
* a translation cluster holds about one document per language: two clusters
  whose merge would put together two documents of one language that do not
  themselves score ``threshold`` (as a repost or a second version of the same
  text does) are kept apart. This is the negative evidence connected
  components cannot use.

The cross-cluster sums are kept up to date as clusters merge, so each merge
costs the number of neighbours of the cluster with fewer of them, not the
product of the cluster sizes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dedup.records import EvidenceTable, PairEvidence, gc_paused


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Settings of the clustering.

    Attributes:
        threshold: the least pair score (share of the shorter document's
            sentences aligned in order with confident partners, with a
            one-sentence prior) and the least average cross-cluster score for
            a merge. Lower finds more excerpts and weak-language translations;
            higher keeps more same-event reports apart. ``dedup eval --sweep``
            shows the trade-off on a labelled sample.
        cohesion: a merge also needs the average cross-cluster score to reach
            this share of the average score *within* the two clusters (the
            "relative closeness" of Chameleon clustering, Karypis, Han &
            Kumar 1999). Two outlets' reports of one football match link at
            0.5-0.6 while each report's translations link at 0.85-0.95: an
            absolute threshold cannot tell them apart, the ratio can. 0 turns
            it off.
    """

    threshold: float = 0.45
    cohesion: float = 0.6

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 0 <= self.cohesion <= 1:
            raise ValueError(f"cohesion must be in [0, 1], got {self.cohesion}")


def cluster_documents(
    doc_keys: Sequence[str],
    evidence: Sequence[PairEvidence],
    doc_groups: np.ndarray,
    config: ClusterConfig,
) -> np.ndarray:
    """A cluster number for every document, numbered largest cluster first.

    Args:
        doc_keys: document ids; they break ties, so the result does not depend
            on input order.
        evidence: scored candidate pairs from ``align``.
        doc_groups: language group of each document.
        config: the threshold.

    Returns:
        ``(n_docs,)`` int64; clusters numbered by (size descending, smallest
        member id), so equal inputs give equal numbers.
    """
    with gc_paused():  # millions of small lists and dict entries, no cycles
        owner = _merge_clusters(doc_keys, evidence, doc_groups, config)
    return canonical_labels(np.array(owner, dtype=np.int64), doc_keys)


def _merge_clusters(
    doc_keys: Sequence[str],
    evidence: Sequence[PairEvidence],
    doc_groups: np.ndarray,
    config: ClusterConfig,
) -> list[int]:
    """The greedy average linkage of :func:`cluster_documents`; the cluster of each document."""
    n_docs = len(doc_keys)
    theta = config.threshold
    table = EvidenceTable.of(evidence)
    left, right, score = table.left, table.right, table.score
    groups = np.asarray(doc_groups)
    both_ok = (groups[left] == groups[right]) & (score >= theta)
    # link[x][y] = [sum of scores over cross pairs, same-language cross pairs >= theta]
    link: dict[int, dict[int, list[float]]] = {d: {} for d in range(n_docs)}
    for a, b, pair_score, ok in zip(
        left.tolist(), right.tolist(), score.tolist(), both_ok.tolist(), strict=True
    ):
        shared = [pair_score, float(ok)]  # one list seen from both ends, updated in place
        link[a][b] = shared
        link[b][a] = shared
    members: dict[int, list[int]] = {d: [d] for d in range(n_docs)}
    inside: dict[int, float] = dict.fromkeys(range(n_docs), 0.0)  # sum of scores within
    languages: dict[int, Counter[int]] = {d: Counter([g]) for d, g in enumerate(groups.tolist())}
    owner = list(range(n_docs))
    # strongest first; ties by the ids of the pair (smaller id first), so the
    # order does not depend on the order of the documents
    key_rank = np.empty(n_docs, dtype=np.int64)
    key_rank[sorted(range(n_docs), key=doc_keys.__getitem__)] = np.arange(n_docs)
    strong = np.flatnonzero(score >= theta)
    low = np.minimum(key_rank[left[strong]], key_rank[right[strong]])
    high = np.maximum(key_rank[left[strong]], key_rank[right[strong]])
    edges = strong[np.lexsort((high, low, -score[strong]))]
    for a, b in zip(left[edges].tolist(), right[edges].tolist(), strict=True):
        x, y = owner[a], owner[b]
        if x == y:
            continue
        total, same_ok = link[x][y]
        if total < theta * len(members[x]) * len(members[y]):
            continue
        same_pairs = sum(n * languages[y][g] for g, n in languages[x].items())
        if same_ok < same_pairs:
            continue
        if config.cohesion:
            size_x, size_y = len(members[x]), len(members[y])
            pairs_in = size_x * (size_x - 1) / 2 + size_y * (size_y - 1) / 2
            if pairs_in and total / (size_x * size_y) < config.cohesion * (
                (inside[x] + inside[y]) / pairs_in
            ):
                continue
        # y joins x; whichever has fewer neighbours is y, as its entries move
        if len(link[x]) < len(link[y]):
            x, y = y, x
        link_x = link[x]
        for z, entry in link.pop(y).items():
            link_z = link[z]
            del link_z[y]
            if z == x:
                continue
            into = link_x.get(z)
            if into is None:  # a new neighbour of x: y's entry becomes x's
                link_x[z] = link_z[x] = entry
            else:
                into[0] += entry[0]
                into[1] += entry[1]
        inside[x] += inside.pop(y) + total
        for d in members[y]:
            owner[d] = x
        members[x].extend(members.pop(y))
        languages[x].update(languages.pop(y))
    return owner


def canonical_labels(labels: np.ndarray, doc_keys: Sequence[str]) -> np.ndarray:
    """Renumber clusters by (size descending, smallest member id): 0 is the largest.

    Equal partitions get equal numbers whatever the original numbering or
    the order of the documents.
    """
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        members.setdefault(label, []).append(index)
    ordered = sorted(members.values(), key=lambda m: (-len(m), min(doc_keys[d] for d in m)))
    out = np.empty(len(labels), dtype=np.int64)
    for number, group in enumerate(ordered):
        out[group] = number
    return out
