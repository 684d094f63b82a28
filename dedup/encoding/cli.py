"""``dedup models``: list the known encoders and build the default one ahead of time.

Registered in ``dedup/cli.py`` with ``main.add_command(models_group)``. Neither
command imports torch, so both answer in well under a second (building aside).
"""

from __future__ import annotations

from pathlib import Path

import click

from dedup.cli_options import CACHE_DEFAULT
from dedup.encoding.registry import (
    DEFAULT_MODEL,
    ModelUnavailableError,
    ensure_model,
    load_profiles,
    model_folder,
)

_CACHE_HELP = f"Cache root for built models (as dedup run --cache-dir) [default: {CACHE_DEFAULT}]."


@click.group("models", invoke_without_command=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP)
@click.pass_context
def models_group(ctx: click.Context, cache_dir: Path | None) -> None:
    """List known models, where each one lives and whether it is built.

    A model that is not built yet is converted on first use (or with
    `dedup models build`); any --model may also be a local folder path.
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = [("NAME", "DIM", "LANGUAGES", "STATUS", "FOLDER")]
    for name, profile in load_profiles().items():
        label = f"{name} (default)" if name == DEFAULT_MODEL else name
        langs = "multilingual" if profile.multilingual else "English"
        try:
            folder = model_folder(profile, cache_dir)
        except ModelUnavailableError as exc:
            rows.append((label, str(profile.dim), langs, "unavailable", str(exc)))
            continue
        status = "built" if folder.is_dir() else "not built"
        rows.append((label, str(profile.dim), langs, status, str(folder)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


@models_group.command("build")
@click.argument("name", required=False, default=DEFAULT_MODEL)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help=_CACHE_HELP)
@click.pass_context
def build_command(ctx: click.Context, name: str, cache_dir: Path | None) -> None:
    """Build model NAME (default: the default model) now; print its folder(s).

    Also builds the model's fast backend where its profile names one (the
    default model's: int8 OpenVINO; printed on a second line). Useful before
    an offline batch job or in a container image, so that the first run does
    not spend ~5 s converting and ~25 s exporting and quantising. Safe to run
    concurrently.
    """
    if cache_dir is None and ctx.parent is not None:
        cache_dir = ctx.parent.params.get("cache_dir")  # `dedup models --cache-dir X build`
    profiles = load_profiles()
    if name not in profiles:
        raise click.BadParameter(
            f"unknown model {name!r}; known: {', '.join(profiles)}", param_hint="NAME"
        )
    try:
        folder = ensure_model(profiles[name], cache_dir)
    except ModelUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(folder))
    if profiles[name].backend != "torch":
        from dedup.encoding.encoder import ensure_backend

        click.echo(str(ensure_backend(name, cache_dir=cache_dir, backend=profiles[name].backend)))
