"""Evaluation: score a clustering against labelled truth, and sweep the threshold.

Two standard measures of a clustering against a reference clustering, both
over the documents of the truth:

* **pairwise** precision / recall / F1: over every unordered pair of
  documents, a pair is a true positive when both clusterings put the two
  together. Precision is 1 when no pair is predicted, recall is 1 when the
  truth has no pair (as in ``bench/score_reference.py``).
* **B-cubed** precision / recall / F1 (Bagga & Baldwin, 1998, "Algorithms for
  scoring coreference chains", LREC workshop): for each document ``d``,
  precision is ``|pred(d) ∩ truth(d)| / |pred(d)|`` and recall
  ``|pred(d) ∩ truth(d)| / |truth(d)|``; both averaged with equal weight over
  the documents, F1 their harmonic mean. Unlike pairwise figures, large
  clusters do not dominate.

Documents that appear on one side only are never dropped silently: a truth
document missing from the assignments is scored as a **singleton** of its
own (it was not found to duplicate anything), a document in the assignments
but not in the truth is **ignored** (unlabelled; predicted clusters are
restricted to truth documents before counting). Both lists are returned.
These are the rules of the project's independent reference scorer
``bench/score_reference.py``, whose figures these functions reproduce.

Everything is computed from the contingency table of (predicted, true)
cluster pairs, so scoring is linear in the number of documents.

:func:`threshold_sweep` and :func:`baseline_sweep` re-score one run at many
thresholds without re-embedding: the first re-clusters the run's pair
evidence, the second is the naive baseline of one vector per document with a
cosine threshold and connected components.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dedup.records import EvidenceTable
from dedup.stages.boilerplate import usable_counts
from dedup.stages.cluster import cluster_documents

if TYPE_CHECKING:
    from dedup.result import RunResult

ID_COLUMNS = ("doc_id", "id", "document")
CLUSTER_COLUMNS = ("cluster_id", "cluster")


class EvaluationInputError(ValueError):
    """A truth or assignments file cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class PRF:
    """Precision, recall and their harmonic mean (0 when both are 0)."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Scores of one clustering against the truth.

    Attributes:
        pairwise, bcubed: the two measures (see the module docstring).
        documents: documents scored (those of the truth).
        true_positives, false_positives, false_negatives: document pairs.
        missing: truth documents absent from the assignments, in truth order
            (scored as singletons).
        unlabelled: assigned documents absent from the truth, in assignment
            order (ignored).
    """

    pairwise: PRF
    bcubed: PRF
    documents: int
    true_positives: int
    false_positives: int
    false_negatives: int
    missing: tuple[str, ...]
    unlabelled: tuple[str, ...]


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def evaluate(predicted: Mapping[str, Hashable], truth: Mapping[str, Hashable]) -> Evaluation:
    """Pairwise and B-cubed scores of ``predicted`` (doc id -> cluster) against ``truth``.

    Raises:
        EvaluationInputError: the truth is empty.
    """
    if not truth:
        raise EvaluationInputError("the truth holds no documents")
    missing = tuple(d for d in truth if d not in predicted)
    unlabelled = tuple(d for d in predicted if d not in truth)
    # a missing document is its own cluster; tags keep the two key spaces apart
    pred = {d: ("c", predicted[d]) if d in predicted else ("missing", d) for d in truth}
    cells = Counter((pred[d], truth[d]) for d in truth)
    pred_sizes = Counter(pred.values())
    true_sizes = Counter(truth.values())
    tp = sum(_pairs(n) for n in cells.values())
    predicted_pairs = sum(_pairs(n) for n in pred_sizes.values())
    true_pairs = sum(_pairs(n) for n in true_sizes.values())
    n_docs = len(truth)
    return Evaluation(
        pairwise=PRF(
            tp / predicted_pairs if predicted_pairs else 1.0,
            tp / true_pairs if true_pairs else 1.0,
        ),
        bcubed=PRF(
            sum(n * n / pred_sizes[p] for (p, _), n in cells.items()) / n_docs,
            sum(n * n / true_sizes[t] for (_, t), n in cells.items()) / n_docs,
        ),
        documents=n_docs,
        true_positives=tp,
        false_positives=predicted_pairs - tp,
        false_negatives=true_pairs - tp,
        missing=missing,
        unlabelled=unlabelled,
    )


# --- files -------------------------------------------------------------------------------


def load_truth(path: str | Path) -> dict[str, str]:
    """``id<TAB>cluster`` lines after one header line; blank lines are skipped.

    Raises:
        EvaluationInputError: unreadable file, a line without exactly two
            fields, or an id given twice.
    """
    path = Path(path)
    truth: dict[str, str] = {}
    seen: dict[str, int] = {}
    for number, line in enumerate(_lines(path), start=1):
        if number == 1 or not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[0]:
            raise EvaluationInputError(
                f"{path}:{number}: expected 'id<TAB>cluster', got {line.rstrip()[:80]!r}"
            )
        doc_id, cluster = fields
        if doc_id in seen:
            raise EvaluationInputError(
                f"{path}:{number}: id {doc_id!r} given twice (first at line {seen[doc_id]})"
            )
        seen[doc_id] = number
        truth[doc_id] = cluster
    return truth


def load_assignments(path: str | Path) -> dict[str, str]:
    """Doc id -> cluster from a CSV/TSV with a header, or a clusters.json.

    CSV/TSV: the id column is the first of ``doc_id``, ``id``, ``document``
    present, the cluster column the first of ``cluster_id``, ``cluster``;
    tab-separated when the header has more tabs than commas. JSON: an object
    whose ``clusters`` list holds objects with ``members`` (ids, or objects
    with ``id``) and optionally an ``id``.

    Raises:
        EvaluationInputError: unreadable, columns missing, or an id assigned twice.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _load_json_assignments(path)
    lines = _lines(path)
    if not lines:
        raise EvaluationInputError(f"{path}: empty file")
    header = lines[0]
    delimiter = "\t" if header.count("\t") > header.count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    columns = [c.strip() for c in next(reader)]
    id_col = next((columns.index(c) for c in ID_COLUMNS if c in columns), None)
    cluster_col = next((columns.index(c) for c in CLUSTER_COLUMNS if c in columns), None)
    if id_col is None or cluster_col is None:
        raise EvaluationInputError(
            f"{path}: needs an id column ({'|'.join(ID_COLUMNS)}) and a cluster column "
            f"({'|'.join(CLUSTER_COLUMNS)}); the header has {', '.join(columns) or 'nothing'}"
        )
    out: dict[str, str] = {}
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) <= max(id_col, cluster_col):
            raise EvaluationInputError(f"{path}:{number}: too few fields")
        _assign(out, row[id_col], row[cluster_col], f"{path}:{number}")
    return out


def _load_json_assignments(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        clusters = data["clusters"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvaluationInputError(f"{path}: cannot read ({err})") from err
    except (KeyError, TypeError) as err:
        raise EvaluationInputError(f"{path}: no 'clusters' list") from err
    out: dict[str, str] = {}
    for k, cluster in enumerate(clusters):
        cluster_id = str(cluster.get("id", k))
        for member in cluster.get("members", []):
            doc_id = member["id"] if isinstance(member, dict) else member
            _assign(out, str(doc_id), cluster_id, f"{path}: cluster {cluster_id}")
    return out


def _assign(out: dict[str, str], doc_id: str, cluster: str, where: str) -> None:
    if doc_id in out:
        raise EvaluationInputError(f"{where}: document {doc_id!r} is assigned twice")
    out[doc_id] = cluster


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise EvaluationInputError(f"{path}: cannot read ({err})") from err


# --- sweeps ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One threshold of a sweep: its scores and the number of clusters (all documents)."""

    threshold: float
    evaluation: Evaluation
    clusters: int


def recluster(result: RunResult, threshold: float) -> np.ndarray:
    """The labels ``dedup run`` would give at ``threshold``, from a run's pair evidence.

    As in :func:`dedup.api.run`: the primary documents are clustered with
    :func:`~dedup.stages.cluster.cluster_documents` on the evidence, with the
    run's cluster settings but ``threshold``, and each copy
    (``result.primary_of``) joins its primary's cluster. Nothing is
    re-embedded or re-aligned, so the result at the run's own threshold is
    the run's partition.
    """
    n_docs = len(result.documents)
    primary_of = getattr(result, "primary_of", None)
    if primary_of is None:
        primary_of = np.arange(n_docs)
    primaries = np.flatnonzero(primary_of == np.arange(n_docs))
    local = np.full(n_docs, -1, dtype=np.int64)
    local[primaries] = np.arange(len(primaries))
    offsets = np.r_[0, np.cumsum([len(seg.sentences) for seg in result.segmented])]
    labels = cluster_documents(
        [result.ids[d] for d in primaries],
        EvidenceTable.of(result.evidence).renumbered(local),
        np.asarray(result.doc_groups)[primaries],
        replace(result.config.cluster, threshold=threshold),
        doc_sentences=usable_counts(np.asarray(result.usable), offsets)[primaries],
    )
    return labels[local[primary_of]]


def threshold_sweep(
    result: RunResult, truth: Mapping[str, Hashable], thresholds: Iterable[float]
) -> list[SweepRow]:
    """dedup's own clustering of one run's evidence (:func:`recluster`) at each threshold."""
    ids = result.ids
    rows = []
    for theta in thresholds:
        predicted = dict(zip(ids, recluster(result, theta).tolist(), strict=True))
        rows.append(SweepRow(theta, evaluate(predicted, truth), len(set(predicted.values()))))
    return rows


def baseline_sweep(
    doc_ids: Sequence[str],
    doc_vectors: np.ndarray,
    truth: Mapping[str, Hashable],
    thresholds: Iterable[float],
    block: int = 2048,
) -> list[SweepRow]:
    """The naive baseline: connected components of ``cosine >= threshold``.

    One vector per document (the raw mean of its sentence vectors, not
    language-centred: ``RunResult.doc_vectors``), every pair whose cosine
    reaches the threshold linked, clusters = connected components. Pairs are
    found once, blockwise, for the lowest threshold; higher thresholds union
    a prefix of them.
    """
    thresholds = sorted(thresholds, reverse=True)
    if not thresholds:
        return []
    vectors = np.asarray(doc_vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    n_docs = len(vectors)
    block = max(1, min(block, 2**26 // max(n_docs, 1)))  # at most ~256 MB of scores at once
    lows, highs, sims = [], [], []
    for start in range(0, n_docs, block):
        scores = vectors[start : start + block] @ vectors.T
        rows, cols = np.nonzero(scores >= thresholds[-1])
        keep = cols > rows + start
        lows.append(rows[keep] + start)
        highs.append(cols[keep])
        sims.append(scores[rows[keep], cols[keep]])
    left = np.concatenate(lows) if lows else np.zeros(0, np.int64)
    right = np.concatenate(highs) if highs else np.zeros(0, np.int64)
    sim = np.concatenate(sims) if sims else np.zeros(0, np.float32)
    order = np.argsort(-sim, kind="stable")
    left, right, sim = left[order], right[order], sim[order]

    parent = list(range(n_docs))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows_out = []
    done = 0
    for theta in thresholds:
        while done < len(sim) and sim[done] >= theta:
            a, b = find(int(left[done])), find(int(right[done]))
            if a != b:
                parent[max(a, b)] = min(a, b)
            done += 1
        predicted = {doc_ids[d]: find(d) for d in range(n_docs)}
        rows_out.append(SweepRow(theta, evaluate(predicted, truth), len(set(predicted.values()))))
    return sorted(rows_out, key=lambda row: row.threshold)


def threshold_range(spec: str) -> tuple[float, ...]:
    """Thresholds from ``START:STOP:STEP`` (STOP included) or a comma list.

    >>> threshold_range("0.2:0.3:0.05")
    (0.2, 0.25, 0.3)
    >>> threshold_range("0.5,0.4")
    (0.4, 0.5)

    Raises:
        ValueError: malformed, a step <= 0, or a value outside (0, 1].
    """
    spec = spec.strip()
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f"expected START:STOP:STEP, got {spec!r}")
        start, stop, step = (float(p) for p in parts)
        if step <= 0 or stop < start:
            raise ValueError(f"need STEP > 0 and STOP >= START, got {spec!r}")
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        values = [round(start + i * step, 6) for i in range(count)]
    else:
        values = [float(p) for p in spec.split(",") if p.strip()]
    if not values or any(not 0 < v <= 1 for v in values):
        raise ValueError(f"thresholds must lie in (0, 1], got {spec!r}")
    return tuple(sorted(set(values)))
