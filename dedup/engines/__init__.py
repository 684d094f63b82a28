"""Engines decide *where* the heavy stages run, never *what* they compute.

A stage hands an engine a pure function, a list or array of work items
(sentences to encode, candidate pairs) and one *shared* object every chunk
reads (the encoder, the align inputs); the engine cuts the items into chunks,
calls ``func(chunk, shared)`` on each wherever it likes, and returns the
results in input order. Because chunks are pure and their results are put
back in order, every engine gives the same output.

* :class:`LocalEngine` (the default) runs the chunks one after another in this
  process and needs nothing beyond the package.
* :class:`dedup.engines.ray.RayEngine` runs them as Ray tasks, ``shared`` put
  in the object store once per call; import it only when asked for (it imports
  ``ray``, an optional dependency: ``pip install 'dedup[ray]'``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

Result = TypeVar("Result")

#: ``func(chunk, shared)``: the results of one chunk of items, one per item or per chunk.
ChunkFunc = Callable[[Any, Any], Sequence[Result]]


class EngineUnavailableError(RuntimeError):
    """An engine's optional dependency is missing or its cluster cannot be reached."""


class Engine(ABC):
    """Runs a chunk function over work items and returns the results in order.

    An engine writes :meth:`imap_chunks` (where chunks run); :meth:`map_chunks`
    is written once, here, on top of it.
    """

    @abstractmethod
    def imap_chunks(
        self,
        func: ChunkFunc,
        items: Sequence[Any],
        *,
        desc: str,
        shared: Any = None,
        chunk_size: int | None = None,
    ) -> Iterator[list[Result]]:
        """Each chunk's results, chunk by chunk in input order, as soon as they are ready.

        ``chunk_size`` overrides the engine's own where the stage's result depends
        on how items are grouped (the embedding stage writes one cache shard a chunk).
        """
        ...

    def map_chunks(
        self,
        func: ChunkFunc,
        items: Sequence[Any],
        *,
        desc: str,
        shared: Any = None,
        chunk_size: int | None = None,
    ) -> list[Result]:
        """All results concatenated in input order."""
        return [
            result
            for chunk in self.imap_chunks(
                func, items, desc=desc, shared=shared, chunk_size=chunk_size
            )
            for result in chunk
        ]


def chunk_bounds(n_items: int, chunk_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each chunk of ``chunk_size`` items (the last may be shorter)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(start, min(start + chunk_size, n_items)) for start in range(0, n_items, chunk_size)]


class LocalEngine(Engine):
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

    def imap_chunks(
        self,
        func: ChunkFunc,
        items: Sequence[Any],
        *,
        desc: str,
        shared: Any = None,
        chunk_size: int | None = None,
    ) -> Iterator[list[Result]]:
        import sys

        from tqdm.auto import tqdm

        with tqdm(total=len(items), desc=desc, disable=not self.progress, file=sys.stderr) as bar:
            for start, stop in chunk_bounds(len(items), chunk_size or self.chunk_size):
                yield list(func(items[start:stop], shared))
                bar.update(stop - start)
