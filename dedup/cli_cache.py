"""``dedup cache``: what the cache holds, and ``dedup cache prune`` to keep it bounded.

A thin click layer over :mod:`dedup.cache`; registered in ``dedup/cli.py``.
"""

from __future__ import annotations

from pathlib import Path

import click

from dedup.cache import PARTS, parse_size, prune, usage
from dedup.encoding import cache_root

_CACHE_HELP = "Cache root. [default: $DEDUP_CACHE or ~/.cache/dedup]"


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@click.group("cache", invoke_without_command=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP)
@click.pass_context
def cache_group(ctx: click.Context, cache_dir: Path | None) -> None:
    """Show what the cache holds, part by part (see `dedup cache prune`)."""
    if ctx.invoked_subcommand is not None:
        return
    root = cache_root(cache_dir)
    sizes = usage(root)
    click.echo(f"cache {root}")
    for part in PARTS:
        click.echo(f"  {part:<11} {_human(sizes[part]):>10}")
    click.echo(f"  {'total':<11} {_human(sum(sizes.values())):>10}")


@cache_group.command("prune")
@click.option(
    "--max-size",
    default=None,
    metavar="SIZE",
    help="Remove the least recently used links, sentence vectors and, last, the document "
    "cache until the cache is under SIZE (e.g. 500M, 2G). Without it only the folders of "
    "killed runs are removed. Built models are never removed.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP)
@click.pass_context
def prune_command(
    ctx: click.Context, max_size: str | None, dry_run: bool, cache_dir: Path | None
) -> None:
    """Keep the cache bounded: everything removed is recomputed when a run needs it.

    Removed in this order, least recently used first within each part: the
    scratch folders of runs that were killed (a live run's folder is locked
    and kept), the links of whole corpora, sentence-vector shards, then the
    per-document cache as a whole.
    """
    if cache_dir is None and ctx.parent is not None:
        cache_dir = ctx.parent.params.get("cache_dir")  # `dedup cache --cache-dir X prune`
    try:
        limit = parse_size(max_size) if max_size is not None else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--max-size") from err
    root = cache_root(cache_dir)
    report = prune(root, limit, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    by_part: dict[str, list[int]] = {}
    for path, size in report.removed:
        by_part.setdefault(path.relative_to(root).parts[0], []).append(size)
    for part, sizes in by_part.items():
        click.echo(f"{verb} {part}: {len(sizes)} file(s) or folder(s), {_human(sum(sizes))}")
    click.echo(f"{root}: {_human(report.before)} -> {_human(report.after)}")
    if report.unreachable:
        click.echo(
            f"cannot get under {max_size}: built models and live runs are kept "
            f"(`dedup models` lists the models)",
            err=True,
        )
