"""Command-line options shared by the commands that read a corpus (``run``, ``eval --sweep``).

Every default shown here is read from the dataclass that defines it
(:class:`~dedup.config.PipelineConfig`, :class:`~dedup.stages.ingest.IngestConfig`,
:class:`~dedup.stages.cluster.ClusterConfig`), never typed again, so
``--help`` and the API documentation cannot disagree
(``tests/test_cli.py::test_cli_defaults_are_the_dataclass_defaults``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dedup.config import PipelineConfig
from dedup.encoding import DEFAULT_MODEL, DEVICES
from dedup.stages.ingest import IngestConfig

Command = TypeVar("Command", bound=Callable[..., object])

#: where the cache is when no --cache-dir is given (see dedup.encoding.cache_root)
CACHE_DEFAULT = "$DEDUP_CACHE, else $XDG_CACHE_HOME/dedup, else ~/.cache/dedup"


def default(config: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config``."""
    for item in dataclasses.fields(config):
        if item.name == name:
            if item.default is dataclasses.MISSING:
                raise ValueError(f"{config.__name__}.{name} has no plain default")
            return item.default
    raise ValueError(f"{config.__name__} has no field {name!r}")


def _cache_alias(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """The deprecated ``--cache``: remembered for ``--cache-dir``, with a warning."""
    if value is not None:
        click.echo("Warning: --cache is deprecated; use --cache-dir.", err=True)
        ctx.meta["dedup.cache_alias"] = value


def _cache_dir(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    # click handles options given on the command line first, in their order, and
    # the missing ones after: a given --cache has been seen when --cache-dir is missing
    alias = ctx.meta.get("dedup.cache_alias")
    if value is not None and alias is not None and value != alias:
        raise click.UsageError("--cache (deprecated) and --cache-dir name different folders")
    return value if value is not None else alias


#: the options of :func:`corpus_options` that say where and how fast a run works,
#: not what it computes: all that ``dedup add`` takes (the rest is the state's)
MACHINE_OPTIONS = ("--cache-dir", "--cache", "--batch-size", "--device")


def corpus_options(when: str = "", only: tuple[str, ...] = ()) -> Callable[[Command], Command]:
    """``--model``, ``--cache-dir``, ``--id-field``, ``--text-field``, ``--batch-size``
    and ``--device``.

    ``--cache`` is kept as a hidden, deprecated spelling of ``--cache-dir``
    (the name ``dedup models`` and ``PipelineConfig.cache_dir`` use).

    Args:
        when: put before each help text (e.g. ``"With --sweep: "``), for a
            command that reads a corpus only in one of its modes.
        only: just these options (e.g. :data:`MACHINE_OPTIONS`); empty: all.
    """
    options = [
        click.option(
            "--model",
            default=default(PipelineConfig, "model"),
            metavar="NAME_OR_PATH",
            help=when + "Model profile name (see `dedup models`), sentence-transformers "
            f"folder, or a Hugging Face id already in the local cache. [default: {DEFAULT_MODEL}]",
        ),
        click.option(
            "--cache-dir",
            "cache_dir",
            default=default(PipelineConfig, "cache_dir"),
            type=click.Path(file_okay=False, path_type=Path),
            callback=_cache_dir,
            help=when + "Cache for built models, sentence vectors and links; a re-run encodes "
            f"only new sentences. [default: {CACHE_DEFAULT}]",
        ),
        click.option(
            "--cache",
            default=None,
            type=click.Path(file_okay=False, path_type=Path),
            expose_value=False,
            hidden=True,
            callback=_cache_alias,
            help="Deprecated: --cache-dir.",
        ),
        click.option(
            "--id-field",
            default=default(IngestConfig, "id_field"),
            show_default=True,
            help=when + "Id field of JSONL/CSV/Parquet.",
        ),
        click.option(
            "--text-field",
            default=default(IngestConfig, "text_field"),
            show_default=True,
            help=when + "Text field of JSONL/CSV/Parquet.",
        ),
        click.option(
            "--batch-size",
            default=default(PipelineConfig, "batch_size"),
            show_default=True,
            type=click.IntRange(1),
            help=when + "Texts per encoder pass with the default int8 backend (OpenVINO) "
            "and torch on a CPU (the ONNX backends and a GPU run fixed shapes of their "
            "own); a vector does not depend on it.",
        ),
        click.option(
            "--device",
            default=default(PipelineConfig, "device"),
            show_default=True,
            type=click.Choice(DEVICES),
            help=when + "Where the encoder runs: auto takes a CUDA GPU when torch (or "
            "onnxruntime-gpu) can use one, else the CPU; cuda fails where none is usable. "
            "Vectors are cached per device.",
        ),
    ]

    flags = (  # of ``options``, in their order
        "--model",
        "--cache-dir",
        "--cache",
        "--id-field",
        "--text-field",
        "--batch-size",
        "--device",
    )
    if only:
        options = [option for flag, option in zip(flags, options, strict=True) if flag in only]

    def decorate(command: Command) -> Command:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
