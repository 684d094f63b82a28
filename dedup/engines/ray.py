"""The Ray engine: the same chunks as :class:`~dedup.engines.LocalEngine`, run as Ray tasks.

Only this module imports ``ray`` (an optional dependency, ``pip install
'dedup[ray]'``), and only :mod:`dedup.cli` or a caller who asks for the Ray
engine imports this module.

How a call runs:

* ``shared`` (the align inputs: centred vectors, null model; or the encoder's
  description) is put in the object store **once**; every task gets a
  reference to it, and each worker process deserialises it once (numpy
  arrays are read in place from shared memory on the node), not once per
  chunk. A tuple is put element by element, and an element that the previous
  call shared too (the same object) is not put again: the align inputs serve
  both the null-model and the alignment calls of a run. So a shared object
  must not be changed between two calls.
* every chunk of items is one task, ``max_retries=3``: a task whose worker
  dies (killed, out of memory, node lost) is run again by Ray. Chunks are
  pure, so a retried chunk gives the very same result. An exception raised by
  the chunk function itself is a bug, not bad luck: it is not retried and
  reaches the caller.
* results are gathered in input order (``ray.wait`` over the tasks in flight,
  a progress bar over finished chunks), at most ``max_in_flight`` tasks
  submitted or waiting to be handed back at a time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from dedup.engines import ChunkFunc, Engine, EngineUnavailableError, Result, chunk_bounds

try:
    import ray
except ImportError as err:  # pragma: no cover - exercised by a test that hides ray
    raise EngineUnavailableError(
        "the Ray engine needs ray, which is not installed: pip install 'dedup[ray]'"
    ) from err

# Per worker process: the values of the shared objects of the call being run,
# by object id; a call's objects replace the last call's.
_SHARED: dict[str, Any] = {}


def _shared_value(refs: list[Any], is_tuple: bool) -> Any:
    """The shared object behind ``refs``, each part fetched once per worker process."""
    keys = [ref.hex() for ref in refs]
    if set(keys) != set(_SHARED):
        kept = {key: _SHARED[key] for key in keys if key in _SHARED}
        _SHARED.clear()
        for key, ref in zip(keys, refs, strict=True):
            _SHARED[key] = kept[key] if key in kept else ray.get(ref)
    parts = tuple(_SHARED[key] for key in keys)
    return parts if is_tuple else parts[0]


@ray.remote(max_retries=3)
def _run_chunk(func: ChunkFunc, chunk: Any, refs: list[Any], is_tuple: bool) -> list[Any]:
    # ``refs`` is a list so that Ray passes the references themselves (not
    # their values) and this worker can keep the values between chunks.
    return list(func(chunk, _shared_value(refs, is_tuple)))


class RayEngine(Engine):
    """Runs chunks as Ray tasks on a local Ray instance or an existing cluster.

    Args:
        address: a running cluster to join (``HEAD:6379``, or ``"auto"``);
            None starts a local Ray instance with ``num_cpus`` CPUs (no
            dashboard, quiet logging). When Ray is already initialised in this
            process, that instance is used and left running.
        num_cpus: CPUs of the local instance (default: all); ignored with
            ``address``.
        chunk_size: items per task when the stage does not fix it (candidate
            pairs: a few hundred is a second or two of work per task).
        max_in_flight: tasks submitted but not yet handed back, at most
            (default: four per CPU of the cluster); bounds memory on the driver.
        progress: show a tqdm bar of finished chunks on stderr.
        shared_files: every node sees the driver's files at the same paths (the
            cache folder on NFS or another shared file system): the run's
            vectors then go to the workers as the path of their file, each
            task reading the rows it needs, instead of by value through the
            object store (the driver then never holds them all). The output
            is the same either way.

    Raises:
        EngineUnavailableError: the cluster at ``address`` cannot be joined.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        chunk_size: int = 256,
        max_in_flight: int | None = None,
        progress: bool = False,
        shared_files: bool = False,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.chunk_size = chunk_size
        self.progress = progress
        # by default a cluster's nodes need not share a file system: vectors go by value
        self.shares_files = shared_files
        self._started = False
        self._puts: dict[int, tuple[Any, Any]] = {}  # id -> (object, ref) of the last call
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
                else:
                    ray.init(
                        num_cpus=num_cpus,
                        include_dashboard=False,
                        logging_level=logging.ERROR,
                        log_to_driver=False,
                    )
            except ConnectionError as err:
                raise EngineUnavailableError(
                    f"cannot join the Ray cluster at {address}: {err}"
                ) from err
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(4, 4 * cpus)

    def close(self) -> None:
        """Shut down the Ray instance this engine started (one it joined is left alone)."""
        self._puts = {}
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def imap_chunks(
        self,
        func: ChunkFunc,
        items: Sequence[Any],
        *,
        desc: str,
        shared: Any = None,
        chunk_size: int | None = None,
    ) -> Iterator[list[Result]]:
        from tqdm.auto import tqdm

        bounds = chunk_bounds(len(items), chunk_size or self.chunk_size)
        if not bounds:
            return
        func_ref = ray.put(func)
        refs, is_tuple = self._put(shared)
        pending: dict[Any, int] = {}
        finished: dict[int, list[Result]] = {}
        submitted = handed = 0
        try:
            with tqdm(
                total=len(items), desc=desc, disable=not self.progress, file=sys.stderr
            ) as bar:
                while handed < len(bounds):
                    while (
                        submitted < len(bounds)
                        and len(pending) + len(finished) < self.max_in_flight
                    ):
                        start, stop = bounds[submitted]
                        chunk = items[start:stop]
                        pending[_run_chunk.remote(func_ref, chunk, refs, is_tuple)] = submitted
                        submitted += 1
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    for ref in ready:
                        index = pending.pop(ref)
                        finished[index] = ray.get(ref)
                        bar.update(bounds[index][1] - bounds[index][0])
                    while handed in finished:
                        yield finished.pop(handed)
                        handed += 1
        finally:
            for ref in pending:
                ray.cancel(ref)

    def _put(self, shared: Any) -> tuple[list[Any], bool]:
        """Object refs of ``shared`` (of each element of a tuple), reusing the last call's."""
        is_tuple = type(shared) is tuple
        last, self._puts = self._puts, {}
        refs = []
        for part in shared if is_tuple else (shared,):
            entry = last.get(id(part))
            if entry is None or entry[0] is not part:
                entry = (part, ray.put(part))
            self._puts[id(part)] = entry
            refs.append(entry[1])
        return refs, is_tuple
