"""dedup: find translations and near-duplicates of the same news article across languages.

The public API is small::

    from dedup import PipelineConfig, run, write_report
    result = run("corpus.jsonl", PipelineConfig())
    write_report(result, "out/")

``run`` also takes documents in memory: a list of dicts (``id``, ``text``,
any other fields), ``(id, text)`` pairs, a pandas DataFrame or a Hugging Face
``datasets.Dataset``::

    result = run([("a", "First article."), ("b", "Another one.")])
    result.clusters()          # typed Cluster records, largest first
    result.kept_ids()          # the id each cluster keeps
    result.cluster_of("a")     # a cluster number, in O(1)
    result.to_pandas()         # the assignments as a DataFrame
    write_kept(result, "kept.jsonl.gz")      # the deduplicated corpus, every field kept
    write_dropped(result, "dropped.parquet") # the others, each with duplicate_of

A folder ``write_report`` (or ``dedup run --out``) made is a state that new
documents can join, cluster ids kept (:mod:`dedup.incremental`)::

    added = add("today.jsonl", "out/")
    added.changes              # who joined which cluster, which merged, and why

See :mod:`dedup.api` for the stages, :mod:`dedup.stages.report` for the
report files and :mod:`dedup.stages.corpus_out` for the corpus files.
"""

from dedup.api import run
from dedup.config import PipelineConfig
from dedup.incremental import AddResult, add
from dedup.result import Cluster, RunResult
from dedup.stages.corpus_out import write_dropped, write_kept
from dedup.stages.report import write_report

__all__ = [
    "AddResult",
    "Cluster",
    "PipelineConfig",
    "RunResult",
    "add",
    "run",
    "write_dropped",
    "write_kept",
    "write_report",
]
