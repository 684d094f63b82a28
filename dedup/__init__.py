"""dedup: find translations and near-duplicates of the same news article across languages.

The public API is small::

    from dedup import PipelineConfig, run, write_report
    result = run("corpus.jsonl", PipelineConfig())
    write_report(result, "out/")

See :mod:`dedup.api` for the stages and :mod:`dedup.stages.report` for the files.
"""

from dedup.api import PipelineConfig, RunResult, run
from dedup.stages.report import write_report

__all__ = ["PipelineConfig", "RunResult", "run", "write_report"]
