"""Chunk results kept on disk as they arrive, so a killed run resumes where it stopped.

:class:`CheckpointEngine` wraps another engine (local or Ray). Each chunk of
each call is named by a digest of the call's description and the chunk's
items; a chunk whose result file exists is read back instead of being sent
to the inner engine, and every new result is written (to a temporary name,
then renamed: a ``kill -9`` leaves whole files only) as soon as it is back.
The inner engine still decides where the missing chunks run, and chunks are
pure functions of their items and the shared inputs, so a resumed run
gives the very bytes of an uninterrupted one.

What makes this safe is the folder, not the engine: a folder holds the
chunks of one corpus under one model and one set of settings (``dedup run``
names it by the link-cache key, see :mod:`dedup.api`), so the same items
under the same description mean the same result. A run deletes the folder
when it has finished; ``dedup cache prune`` sweeps the folders of killed
runs that nobody resumed.

This is stopes' memoised per-shard results ("44 already cached, 11 left to
compute") and datatrove's completion markers, for any stage that runs
through an engine; the embedding stage has its own shard cache and does not
need it.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dedup.engines import ChunkFunc, Engine, Result, chunk_bounds
from dedup.files import atomic_write


class CheckpointEngine(Engine):
    """``inner``, with each chunk's results kept in ``folder`` and read back on a re-run.

    Args:
        inner: the engine that runs the chunks not yet in ``folder``.
        folder: where the chunk files go (made if missing); one corpus and
            settings per folder (see the module docstring).
        log: called with one line per call that found chunks already computed.

    Attributes:
        reused: items whose chunk was read back from ``folder``, by call description.
        computed: items whose chunk was sent to ``inner``, by call description.
    """

    def __init__(
        self, inner: Engine, folder: Path, *, log: Callable[[str], None] | None = None
    ) -> None:
        self.inner = inner
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shares_files = inner.shares_files
        self.log = log or (lambda _line: None)
        self.reused: dict[str, int] = {}
        self.computed: dict[str, int] = {}

    def imap_chunks(
        self,
        func: ChunkFunc,
        items: Sequence[Any],
        *,
        desc: str,
        shared: Any = None,
        chunk_size: int | None = None,
    ) -> Iterator[list[Result]]:
        size = chunk_size or getattr(self.inner, "chunk_size", None)
        if size is None:
            raise ValueError(f"{desc}: a checkpointed call needs a chunk size")
        bounds = chunk_bounds(len(items), size)
        paths = [self._path(desc, items[start:stop]) for start, stop in bounds]
        missing = [i for i, path in enumerate(paths) if not path.is_file()]
        sent = sum(bounds[i][1] - bounds[i][0] for i in missing)
        self.reused[desc] = self.reused.get(desc, 0) + len(items) - sent
        self.computed[desc] = self.computed.get(desc, 0) + sent
        if len(missing) < len(bounds):
            self.log(
                f"{desc}: {len(bounds) - len(missing)} of {len(bounds)} chunks already "
                f"computed (in {self.folder}), {len(missing)} left"
            )
        # the missing chunks, one item each, so the inner engine cuts them as here
        fresh = self.inner.imap_chunks(
            _OneChunk(func),
            _Chunks(items, [bounds[i] for i in missing]),
            desc=desc,
            shared=shared,
            chunk_size=1,
        )
        for path in paths:
            if path.is_file():
                with open(path, "rb") as handle:
                    yield pickle.load(handle)
                continue
            (result,) = next(fresh)
            atomic_write(
                path, lambda handle, result=result: pickle.dump(result, handle, protocol=5)
            )
            yield result

    def _path(self, desc: str, chunk: Any) -> Path:
        digest = hashlib.blake2b(desc.encode(), digest_size=16)
        if isinstance(chunk, np.ndarray):
            digest.update(f"{chunk.dtype.str}{chunk.shape}".encode())
            digest.update(np.ascontiguousarray(chunk).tobytes())
        else:
            digest.update(pickle.dumps(chunk, protocol=5))
        return self.folder / f"{digest.hexdigest()}.pkl"


class _Chunks(Sequence[Any]):
    """The chunks ``bounds`` of ``items``, each cut when the inner engine asks for it
    (a list of them copied every missing item of lazily ordered items at once)."""

    def __init__(self, items: Sequence[Any], bounds: list[tuple[int, int]]) -> None:
        self.items, self.bounds = items, bounds

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start, stop = self.bounds[index]
        return self.items[start:stop]


class _OneChunk:
    """A chunk function over a list holding one chunk (how the missing chunks are sent)."""

    def __init__(self, func: ChunkFunc) -> None:
        self.func = func

    def __call__(self, chunks: Sequence[Any], shared: Any) -> list[list[Result]]:
        (chunk,) = chunks
        return [list(self.func(chunk, shared))]
