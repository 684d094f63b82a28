"""Engines decide *where* the heavy stages run, never *what* they compute.

A stage hands an engine a pure function, a list or array of work items
(sentences to encode, candidate pairs) and one *shared* object every chunk
reads (the encoder, the align inputs); the engine cuts the items into chunks,
calls ``func(chunk, shared)`` on each wherever it likes, and returns the
results in input order. Because chunks are pure and their results are put
back in order, every engine gives the same output.

* :class:`LocalEngine` (the default) runs the chunks on this machine, in this
  process or in forked worker processes, and needs nothing beyond the package.
* :class:`dedup.engines.ray.RayEngine` runs them as Ray tasks, ``shared`` put
  in the object store once per call; import it only when asked for (it imports
  ``ray``, an optional dependency: ``pip install 'dedup[ray]'``).
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from dedup.records import gc_paused

Result = TypeVar("Result")

#: ``func(chunk, shared)``: the results of one chunk of items, one per item or per chunk.
ChunkFunc = Callable[[Any, Any], Sequence[Result]]


class EngineUnavailableError(RuntimeError):
    """An engine's optional dependency is missing or its cluster cannot be reached."""


class Engine(ABC):
    """Runs a chunk function over work items and returns the results in order.

    An engine writes :meth:`imap_chunks` (where chunks run); :meth:`map_chunks`
    is written once, here, on top of it.

    Attributes:
        shares_files: chunk functions can read the files this process writes
            (the same machine, or a shared file system). When False, a stage
            ships data by value instead of by path.
    """

    shares_files: bool = True

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
        """All results concatenated in input order (made with the garbage collector
        paused: a stage's results are many small records, see :func:`gc_paused`)."""
        with gc_paused():
            return [
                result
                for chunk in self.imap_chunks(
                    func, items, desc=desc, shared=shared, chunk_size=chunk_size
                )
                for result in chunk
            ]


class Permuted(Sequence[Any]):
    """``items[order]`` for an engine, each slice made when a chunk is cut.

    A stage that wants its items in another order (align: pairs that share
    documents side by side) would otherwise copy them all: 36 million pairs,
    576 MB at a million documents, held for the whole map. Slices only.
    """

    def __init__(self, items: np.ndarray, order: np.ndarray) -> None:
        self.items, self.order = items, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: Any) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("Permuted items are cut in slices")
        return self.items[self.order[index]]


def chunk_bounds(n_items: int, chunk_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each chunk of ``chunk_size`` items (the last may be shorter)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(start, min(start + chunk_size, n_items)) for start in range(0, n_items, chunk_size)]


class LocalEngine(Engine):
    """Runs the chunks on this machine, with a progress bar: in this process, or in
    ``processes`` forked worker processes.

    Forked workers inherit ``shared`` (nothing is pickled but the chunks and
    their results) and each holds BLAS to one thread, so two workers on two
    cores do about twice the work of one process. They are used for stages
    whose chunks are plain numpy work (the null terms and alignment), when
    there are at least ``processes`` chunks; the embedding stage always runs
    in this process, where the model already uses every core.

    Args:
        chunk_size: items per chunk (how often the progress bar moves).
        progress: show a tqdm bar on stderr.
        processes: worker processes (default: the CPUs this process may use;
            1: everything in this process).
    """

    def __init__(
        self, chunk_size: int = 512, *, progress: bool = False, processes: int | None = None
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if processes is not None and processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.chunk_size = chunk_size
        self.progress = progress
        self.processes = processes or usable_cpus()

    def in_process(self) -> LocalEngine:
        """This engine without worker processes (for stages that must not fork)."""
        return LocalEngine(self.chunk_size, progress=self.progress, processes=1)

    def imap_chunks(
        self,
        func: ChunkFunc,
        items: Sequence[Any],
        *,
        desc: str,
        shared: Any = None,
        chunk_size: int | None = None,
    ) -> Iterator[list[Result]]:
        bounds = chunk_bounds(len(items), chunk_size or self.chunk_size)
        with _progress_bar(len(items), desc, self.progress) as bar:
            if self.processes == 1 or len(bounds) < self.processes or not _CAN_FORK:
                for start, stop in bounds:
                    yield list(func(items[start:stop], shared))
                    bar.update(stop - start)
                return
            global _FORKED
            _FORKED = (func, shared)
            try:
                context = multiprocessing.get_context("fork")
                with context.Pool(self.processes) as pool:
                    chunks = (items[start:stop] for start, stop in bounds)
                    for (start, stop), result in zip(
                        bounds, pool.imap(_run_forked, chunks), strict=True
                    ):
                        yield result
                        bar.update(stop - start)
            finally:
                _FORKED = None


class _NoBar:
    """What a progress bar does when none is shown: nothing (and tqdm is not imported)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, _n: int) -> None:
        return None


def _progress_bar(total: int, desc: str, shown: bool) -> Any:
    """A tqdm bar on stderr when ``shown``, else a :class:`_NoBar`."""
    if not shown:
        return _NoBar()
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr)


#: worker processes are forked (shared data inherited, not pickled); where the
#: platform cannot fork (Windows), chunks run in this process
_CAN_FORK = "fork" in multiprocessing.get_all_start_methods()


def usable_cpus() -> int:
    """The CPUs this process may use (its affinity where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (Linux)
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def in_worker_process() -> bool:
    """True in a worker process a :class:`LocalEngine` forked (any process started by
    :mod:`multiprocessing`): what such a process loads stays out of the driver's memory."""
    return multiprocessing.parent_process() is not None


#: the function and shared object of the current forked map (inherited by the workers)
_FORKED: tuple[ChunkFunc, Any] | None = None


def _run_forked(chunk: Any) -> list[Any]:
    from threadpoolctl import threadpool_limits

    assert _FORKED is not None
    func, shared = _FORKED
    with threadpool_limits(1), gc_paused():
        return list(func(chunk, shared))
