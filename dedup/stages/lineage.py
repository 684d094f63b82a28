"""Lineage: cluster ids that outlive a run, and the change log of an addition.

``dedup run`` numbers clusters from scratch (``c0001`` is the largest). When
``dedup add`` clusters an archive again with new documents in it
(:mod:`dedup.incremental`), the new clusters are named after the old ones
they continue, so yesterday's ``c0042`` is today's ``c0042``:

* each old cluster has one *successor*: the new cluster that holds most of
  its members (a tie goes to the new cluster holding the smallest of the
  tied members' ids, so the choice never depends on numbering);
* a new cluster that is the successor of one old cluster takes its id; of
  several (a *merge*), the oldest id (the smallest number: numbers only grow),
  and the others are recorded as merged into it;
* every other new cluster gets a fresh id, numbered after every id the state
  ever gave out (a merged id is never given out again).

Every document whose cluster id is not what it was shows in the change log
(:class:`Change`): a new document ``joined`` an existing cluster or is in a
``new`` cluster; an old document either went with its cluster into a
``merged`` one or ``moved`` (the clustering, seeing new links, put it
elsewhere). Each change says why: the strongest links (pair scores at or
above the cluster threshold) or the copy join behind it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dedup.records import EvidenceTable
from dedup.stages.copies import CopyJoin

#: links quoted per change: enough to see why, few enough to read
LINKS_PER_CHANGE = 3


def cluster_number(cluster_id: str) -> int:
    """The number of a cluster id (``c0042`` -> 42), its age: numbers only grow.

    Raises:
        ValueError: not an id of the form ``c<digits>``.
    """
    if not (cluster_id[:1] == "c" and cluster_id[1:].isdigit()):
        raise ValueError(f"not a cluster id: {cluster_id!r} (expected c<digits>)")
    return int(cluster_id[1:])


def format_cluster_id(number: int, width: int = 4) -> str:
    """``c`` and a zero-padded number (``c0042``); wider numbers are written in full."""
    return f"c{number:0{width}d}"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log (``changes.jsonl``, one JSON object a line).

    Attributes:
        event: ``joined`` (a new document in an existing cluster), ``new`` (a
            cluster of new documents, and of old ones that moved into it),
            ``merged`` (``merged_id``'s members now under ``cluster_id``),
            ``moved`` (an old document whose cluster changed otherwise) or
            ``present`` (an input record already in the state, same text).
        cluster_id: the cluster the change ends in.
        doc_ids: the documents it concerns (sorted).
        merged_id: for ``merged``, the id that is no more.
        from_id: for ``moved``, the cluster the document was in.
        why: the strongest links behind it: ``{"left", "right", "score"}``, or a
            copy join ``{"left", "right", "copy_jaccard"}``.
    """

    event: str
    cluster_id: str | None
    doc_ids: tuple[str, ...]
    merged_id: str | None = None
    from_id: str | None = None
    why: tuple[dict[str, object], ...] = field(default=())

    def as_json(self, addition: int) -> dict[str, object]:
        """The log line of this change in addition number ``addition``."""
        line: dict[str, object] = {"addition": addition, "event": self.event}
        if self.cluster_id is not None:
            line["cluster_id"] = self.cluster_id
        if self.merged_id is not None:
            line["merged_id"] = self.merged_id
        if self.from_id is not None:
            line["from_id"] = self.from_id
        line["doc_ids"] = list(self.doc_ids)
        line["why"] = list(self.why)
        return line


@dataclass(frozen=True, slots=True)
class Lineage:
    """The ids of a re-clustering and how they came from the previous ones.

    Attributes:
        names: the id of each cluster number (``names[label]``).
        next_number: the number the next fresh id will get.
        changes: what changed, in a fixed order (merges, moves, joins, new).
    """

    names: list[str]
    next_number: int
    changes: list[Change]


def first_lineage(labels: np.ndarray) -> Lineage:
    """The ids of a fresh run: ``c0001`` for cluster number 0 (the largest), and so on."""
    count = int(labels.max()) + 1 if len(labels) else 0
    width = max(4, len(str(count)))
    return Lineage([format_cluster_id(n + 1, width) for n in range(count)], count + 1, [])


def carry_ids(
    doc_ids: Sequence[str],
    labels: np.ndarray,
    previous: Mapping[str, str],
    next_number: int,
    evidence: EvidenceTable,
    threshold: float,
    copy_joins: Sequence[CopyJoin] = (),
) -> Lineage:
    """Name the clusters ``labels`` after the ones ``previous`` gave the same documents.

    Args:
        doc_ids: the id of each document index.
        labels: the new cluster number of each document.
        previous: the old cluster id of each document that had one.
        next_number: the number of the next fresh id (above every id given out).
        evidence: the run's scored pairs, document indices as ``doc_ids``.
        threshold: the score a pair needs to be a link (the cluster threshold).
        copy_joins: the run's copy joins (a copy's link to its primary).
    """
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    old_members: dict[str, list[int]] = {}
    for index, doc_id in enumerate(doc_ids):
        if doc_id in previous:
            old_members.setdefault(previous[doc_id], []).append(index)
    # each old cluster's successor: the new cluster holding most of its members
    claims: dict[int, list[str]] = {}
    for old_id, members in old_members.items():
        overlap = Counter(int(labels[i]) for i in members)
        smallest = {}
        for i in members:  # members are in id order: the first seen is the smallest
            smallest.setdefault(int(labels[i]), doc_ids[i])
        successor = min(overlap, key=lambda label: (-overlap[label], smallest[label]))
        claims.setdefault(successor, []).append(old_id)
    names: list[str] = [""] * n_labels
    merged_into: dict[str, str] = {}
    for label, old_ids in claims.items():
        old_ids.sort(key=cluster_number)
        names[label] = old_ids[0]
        merged_into.update((other, old_ids[0]) for other in old_ids[1:])
    width = max((len(name) - 1 for name in names if name), default=4)
    for label in range(n_labels):  # fresh ids in cluster-number order: the largest first
        if not names[label]:
            names[label] = format_cluster_id(next_number, width)
            next_number += 1

    why = _Reasons(doc_ids, labels, evidence, threshold, copy_joins)
    changes: list[Change] = []
    for old_id, kept in sorted(merged_into.items(), key=lambda item: cluster_number(item[0])):
        members = old_members[old_id]
        moved_along = [i for i in members if names[int(labels[i])] == kept]
        changes.append(
            Change(
                "merged",
                kept,
                tuple(doc_ids[i] for i in moved_along),
                merged_id=old_id,
                why=why.across(moved_along),
            )
        )
    joined: dict[str, list[int]] = {}
    for index, doc_id in enumerate(doc_ids):
        name = names[int(labels[index])]
        if doc_id not in previous:
            joined.setdefault(name, []).append(index)
            continue
        before = previous[doc_id]
        if name != before and merged_into.get(before) != name:
            changes.append(
                Change("moved", name, (doc_id,), from_id=before, why=why.within([index]))
            )
    for name in sorted(joined, key=cluster_number):
        members = joined[name]
        event = "joined" if name in old_members else "new"
        changes.append(
            Change(event, name, tuple(doc_ids[i] for i in members), why=why.within(members))
        )
    return Lineage(names, next_number, changes)


class _Reasons:
    """The links (and copy joins) that explain where documents ended up: each
    document's links within its cluster, found through an index by document
    (an addition's changes touch a few documents of millions of links)."""

    def __init__(
        self,
        doc_ids: Sequence[str],
        labels: np.ndarray,
        evidence: EvidenceTable,
        threshold: float,
        copy_joins: Sequence[CopyJoin],
    ) -> None:
        linked = evidence.score >= threshold
        left, right = evidence.left[linked], evidence.right[linked]
        same = labels[left] == labels[right]
        self._left, self._right = left[same], right[same]
        self._score = evidence.score[linked][same]
        # the positions of each document's links, grouped by document
        ends = np.concatenate([self._left, self._right])
        self._by_doc = np.argsort(ends, kind="stable") % max(len(self._left), 1)
        self._starts = np.searchsorted(np.sort(ends), np.arange(len(doc_ids) + 1))
        self._doc_ids = doc_ids
        self._copy_of = {join.copy: join for join in copy_joins}

    def _links_of(self, members: Sequence[int]) -> np.ndarray:
        parts = [self._by_doc[self._starts[i] : self._starts[i + 1]] for i in members]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def within(self, members: Sequence[int]) -> tuple[dict[str, object], ...]:
        """The strongest links of ``members`` to others of their cluster."""
        return self._quote(self._links_of(members), members)

    def across(self, members: Sequence[int]) -> tuple[dict[str, object], ...]:
        """The strongest links from ``members`` to the rest of their cluster."""
        positions = self._links_of(members)
        inside = np.isin(self._left[positions], members) & np.isin(self._right[positions], members)
        return self._quote(positions[~inside], members)

    def _quote(
        self, positions: np.ndarray, members: Sequence[int]
    ) -> tuple[dict[str, object], ...]:
        order = positions[np.argsort(-self._score[positions], kind="stable")][:LINKS_PER_CHANGE]
        quoted: list[dict[str, object]] = [
            {
                "left": self._doc_ids[int(self._left[p])],
                "right": self._doc_ids[int(self._right[p])],
                "score": round(float(self._score[p]), 4),
            }
            for p in order.tolist()
        ]
        for index in members:  # a copy is in its cluster through its primary
            join = self._copy_of.get(index)
            if join is not None and len(quoted) < LINKS_PER_CHANGE:
                quoted.append(
                    {
                        "left": self._doc_ids[join.primary],
                        "right": self._doc_ids[join.copy],
                        "copy_jaccard": round(join.jaccard, 4),
                    }
                )
        return tuple(quoted)
