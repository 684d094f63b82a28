"""Engines decide *where* the heavy stages run, never *what* they compute.

A stage hands an engine a pure function and an array of work items (sentence
batches, candidate pairs); the engine cuts the items into chunks, runs the
function on each chunk wherever it likes, and returns the results concatenated
in input order. Because chunks are pure and their results are put back in
order, every engine gives the same output. The local engine is the default
and needs nothing beyond the package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import numpy as np

Result = TypeVar("Result")


class Engine(Protocol):
    """Runs a chunk function over work items and returns the results in order."""

    def map_chunks(
        self,
        func: Callable[[np.ndarray], Sequence[Result]],
        items: np.ndarray,
        *,
        desc: str,
    ) -> list[Result]: ...


class LocalEngine:
    """Runs every chunk in this process, one after another, with a progress bar.

    Args:
        chunk_size: items per chunk (how often the progress bar moves).
        progress: show a tqdm bar on stderr.
    """

    def __init__(self, chunk_size: int = 512, *, progress: bool = False) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.progress = progress

    def map_chunks(
        self,
        func: Callable[[np.ndarray], Sequence[Result]],
        items: np.ndarray,
        *,
        desc: str,
    ) -> list[Result]:
        import sys

        from tqdm.auto import tqdm

        results: list[Result] = []
        with tqdm(total=len(items), desc=desc, disable=not self.progress, file=sys.stderr) as bar:
            for start in range(0, len(items), self.chunk_size):
                chunk = items[start : start + self.chunk_size]
                results.extend(func(chunk))
                bar.update(len(chunk))
        return results
