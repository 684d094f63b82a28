"""Command-line options shared by the commands that read a corpus (``run``, ``eval --sweep``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

Command = TypeVar("Command", bound=Callable[..., object])


def corpus_options(when: str = "") -> Callable[[Command], Command]:
    """``--model``, ``--cache``, ``--id-field``, ``--text-field`` and ``--batch-size``.

    Args:
        when: put before each help text (e.g. ``"With --sweep: "``), for a
            command that reads a corpus only in one of its modes.
    """
    options = [
        click.option(
            "--model",
            default=None,
            metavar="NAME_OR_PATH",
            help=when + "Model profile name (see `dedup models`), sentence-transformers "
            "folder, or a Hugging Face id already in the local cache. "
            "[default: multilingual-e5-small]",
        ),
        click.option(
            "--cache",
            "cache_dir",
            default=None,
            type=click.Path(file_okay=False, path_type=Path),
            help=when + "Cache for built models and sentence vectors; a re-run encodes only "
            "new sentences. [default: $DEDUP_CACHE or ~/.cache/dedup]",
        ),
        click.option(
            "--id-field",
            default="id",
            show_default=True,
            help=when + "Id field of JSONL/CSV/Parquet.",
        ),
        click.option(
            "--text-field",
            default="text",
            show_default=True,
            help=when + "Text field of JSONL/CSV/Parquet.",
        ),
        click.option(
            "--batch-size",
            default=32,
            show_default=True,
            type=click.IntRange(1),
            help=when + "Texts per encoder pass with the torch backend (the ONNX backends "
            "run fixed shapes of their own).",
        ),
    ]

    def decorate(command: Command) -> Command:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
