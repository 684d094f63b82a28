"""``dedup eval``: score assignments against a labelled truth, or sweep the threshold.

A thin click layer over :mod:`dedup.evaluation` (metrics, file readers,
sweeps) and :func:`dedup.api.run`; registered on the main group in
:mod:`dedup.cli`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from dedup.cli_options import corpus_options
from dedup.evaluation import (
    Evaluation,
    EvaluationInputError,
    SweepRow,
    baseline_sweep,
    evaluate,
    load_assignments,
    load_truth,
    threshold_range,
)

DEFAULT_THRESHOLDS = "0.2:0.8:0.05"
DEFAULT_BASELINE = "0.8:0.99:0.01"
CORPUS_SUFFIXES = (".jsonl", ".ndjson", ".parquet")


class _Range(click.ParamType):
    name = "RANGE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return threshold_range(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


def _ids(ids: Sequence[str], show: int) -> str:
    shown = ", ".join(ids[:show])
    return shown + (f", ... (+{len(ids) - show})" if len(ids) > show else "")


def format_coverage(evaluation: Evaluation, source: str, show: int = 5) -> list[str]:
    """Lines that say which documents were scored and which were on one side only."""
    lines = [f"scored {evaluation.documents} documents (those of the truth)"]
    if evaluation.missing:
        lines.append(
            f"missing from {source}: {len(evaluation.missing)} "
            f"({_ids(evaluation.missing, show)}); scored as singletons"
        )
    else:
        lines.append(f"missing from {source}: 0")
    if evaluation.unlabelled:
        lines.append(
            f"not in the truth: {len(evaluation.unlabelled)} "
            f"({_ids(evaluation.unlabelled, show)}); ignored"
        )
    else:
        lines.append("not in the truth: 0")
    return lines


def format_scores(evaluation: Evaluation) -> list[str]:
    p, b = evaluation.pairwise, evaluation.bcubed
    return [
        f"pairwise  P={p.precision:.4f}  R={p.recall:.4f}  F1={p.f1:.4f}  "
        f"(pairs: tp={evaluation.true_positives} fp={evaluation.false_positives} "
        f"fn={evaluation.false_negatives})",
        f"B-cubed   P={b.precision:.4f}  R={b.recall:.4f}  F1={b.f1:.4f}",
    ]


def format_sweep(rows: list[SweepRow], label: str, default: float | None = None) -> list[str]:
    """A table: one row per threshold; ``*`` marks ``default``; the best F1 rows named."""
    lines = [
        f"  {label:>9}  clusters | pairwise P      R     F1 | B-cubed P      R     F1",
    ]
    for row in rows:
        e = row.evaluation
        mark = "*" if default is not None and abs(row.threshold - default) < 1e-9 else " "
        lines.append(
            f"{mark} {row.threshold:>9.2f}  {row.clusters:>8} |"
            f"     {e.pairwise.precision:.4f} {e.pairwise.recall:.4f} {e.pairwise.f1:.4f} |"
            f"    {e.bcubed.precision:.4f} {e.bcubed.recall:.4f} {e.bcubed.f1:.4f}"
        )
    if rows:
        best_p = max(rows, key=lambda r: (r.evaluation.pairwise.f1, -r.threshold))
        best_b = max(rows, key=lambda r: (r.evaluation.bcubed.f1, -r.threshold))
        lines.append(
            f"  best pairwise F1 {best_p.evaluation.pairwise.f1:.4f} at {best_p.threshold:.2f}; "
            f"best B-cubed F1 {best_b.evaluation.bcubed.f1:.4f} at {best_b.threshold:.2f}"
        )
    return lines


@click.command("eval")
@click.argument("input_path", metavar="ASSIGNMENTS|INPUT", type=click.Path(path_type=Path))
@click.option(
    "--truth",
    "truth_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labelled truth: 'id<TAB>cluster' lines after a header line.",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="INPUT is a corpus (as for `dedup run`): run the pipeline once, then score "
    "dedup's clustering at every --thresholds value and the one-vector-per-document "
    "baseline at every --baseline-thresholds value, without re-embedding.",
)
@click.option(
    "--thresholds",
    default=DEFAULT_THRESHOLDS,
    show_default=True,
    type=_Range(),
    help="dedup thresholds of the sweep: START:STOP:STEP (STOP included) or a comma list.",
)
@click.option(
    "--baseline-thresholds",
    default=DEFAULT_BASELINE,
    show_default=True,
    type=_Range(),
    help="Cosine thresholds of the baseline in the sweep.",
)
@corpus_options(when="With --sweep: ")
@click.option("--show", default=5, show_default=True, type=click.IntRange(0), help="Ids listed.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def eval_command(
    input_path: Path,
    truth_path: Path,
    sweep: bool,
    thresholds: tuple[float, ...],
    baseline_thresholds: tuple[float, ...],
    model: str | None,
    cache_dir: Path | None,
    id_field: str,
    text_field: str,
    batch_size: int,
    device: str,
    show: int,
    quiet: bool,
    debug: bool,
) -> None:
    """Score a clustering against labelled truth: pairwise and B-cubed P, R, F1.

    \b
    dedup eval out/assignments.csv --truth truth.tsv
    dedup eval corpus.jsonl --truth truth.tsv --sweep

    ASSIGNMENTS is dedup's assignments.csv or clusters.json, or any CSV/TSV
    with a header naming an id column (doc_id|id) and a cluster column
    (cluster_id|cluster). Only documents of the truth are scored: one missing
    from the assignments counts as a singleton, one not in the truth is
    ignored; both are counted and the first few listed (the rules of
    bench/score_reference.py). B-cubed follows Bagga & Baldwin (1998).
    """
    try:
        truth = load_truth(truth_path)
        if sweep:
            _sweep(
                input_path,
                truth,
                thresholds,
                baseline_thresholds,
                model=model,
                cache_dir=cache_dir,
                id_field=id_field,
                text_field=text_field,
                batch_size=batch_size,
                device=device,
                show=show,
                quiet=quiet,
            )
            return
        if input_path.is_dir() or input_path.suffix.lower() in CORPUS_SUFFIXES:
            raise EvaluationInputError(
                f"{input_path}: looks like a corpus, not assignments; add --sweep to run the "
                "pipeline on it, or pass an assignments.csv / clusters.json"
            )
        evaluation = evaluate(load_assignments(input_path), truth)
    except EvaluationInputError as err:
        if debug:
            raise
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)
    click.echo("\n".join(format_coverage(evaluation, "the assignments", show)))
    click.echo("\n".join(format_scores(evaluation)))


def _sweep(
    input_path: Path,
    truth: dict[str, str],
    thresholds: tuple[float, ...],
    baseline_thresholds: tuple[float, ...],
    *,
    model: str | None,
    cache_dir: Path | None,
    id_field: str,
    text_field: str,
    batch_size: int,
    device: str,
    show: int,
    quiet: bool,
) -> None:
    from dedup.api import PipelineConfig, run
    from dedup.encoding import DeviceUnavailableError, ModelUnavailableError
    from dedup.evaluation import threshold_sweep
    from dedup.stages.ingest import IngestConfig, InputError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = PipelineConfig(
        model=model,
        cache_dir=cache_dir,
        batch_size=batch_size,
        device=device,
        ingest=IngestConfig(id_field=id_field, text_field=text_field),
    )
    default = config.cluster.threshold
    thresholds = tuple(sorted({*thresholds, default}))
    log = None if quiet else (lambda message: click.echo(message, err=True))
    start = time.perf_counter()
    try:
        result = run(input_path, config, progress=not quiet, log=log)
    except (InputError, ModelUnavailableError, DeviceUnavailableError) as err:
        raise EvaluationInputError(str(err)) from err
    pipeline_s = time.perf_counter() - start
    start = time.perf_counter()
    ids = result.ids
    ours = threshold_sweep(result, truth, thresholds)
    naive = baseline_sweep(ids, result.doc_vectors, truth, baseline_thresholds)
    sweep_s = time.perf_counter() - start
    lines = format_coverage(ours[0].evaluation, "the run", show)
    if result.skipped:
        lines.append(f"skipped inputs of the run: {len(result.skipped)} (see `dedup run`)")
    lines += [
        "",
        "dedup: in-order sentence alignment, average linkage; threshold = least pair score",
        *format_sweep(ours, "threshold", default),
        f"  * = default (dedup run --threshold {default})",
        "",
        "baseline: one mean vector per document (not language-centred), "
        "cosine >= threshold, connected components",
        *format_sweep(naive, "cosine"),
        "",
        f"pipeline {pipeline_s:.1f}s once; {len(thresholds) + len(baseline_thresholds)} "
        f"clusterings {sweep_s:.1f}s (no re-embedding)",
    ]
    click.echo("\n".join(lines))
