"""The cache folder as a whole: what it holds, and keeping it bounded.

Every part of the cache is rebuilt on demand, so any of it may be deleted;
what it costs to lose differs, and pruning goes from the cheapest loss to
the dearest:

1. ``runs/run-*``: scratch folders of runs killed before they could clean up,
   and ``runs/resume-*``: the chunks a killed run had aligned, which a re-run
   of the same corpus would resume from (see :func:`resume_folder`; a live
   run holds a lock on its folders, and they are never touched);
2. ``links/``: the links of whole corpora (one file per corpus, re-aligned in
   seconds to minutes), least recently used first;
3. ``embeddings/``: sentence-vector shards, least recently used first (a run
   touches every shard it reads, see
   :meth:`dedup.stages.embed.EmbeddingCache.mark_used`); a dropped shard's
   sentences are encoded again by the next run that needs them;
4. ``documents/``: the per-document cache (languages, sentences, MinHash
   signatures) is one SQLite file: dropped whole, and only when still over
   the limit.

Built models (``models/``) are never pruned: they are what every run needs
first, and ``dedup models build`` makes them again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Protocol, TypeVar

from filelock import FileLock, Timeout

T = TypeVar("T")


class Fills(Protocol):
    """A cache that computes what it lacks a block at a time
    (:meth:`dedup.stages.document_cache.DocumentCache.fill`)."""

    def fill(
        self,
        missing: Sequence[int],
        compute: Callable[[list[int]], list[T]],
        add: Callable[[list[int], list[T]], None],
    ) -> list[T]: ...


def completed(
    found: list[T | None],
    compute: Callable[[list[int]], list[T]],
    add: Callable[[list[int], list[T]], None],
    cache: Fills | None,
) -> list[T]:
    """``found`` (a cache's look-ups, None where it has nothing) with the missing
    entries computed by ``compute`` (positions in, values out) and, with a cache,
    ``add``-ed and committed a block at a time: what every per-document stage
    does with the document cache."""
    missing = [i for i, value in enumerate(found) if value is None]
    computed = cache.fill(missing, compute, add) if cache is not None else compute(missing)
    for i, value in zip(missing, computed, strict=True):
        found[i] = value
    return found  # type: ignore[return-value]


#: the lock file a live run holds in its scratch folder.
_IN_USE = ".in-use.lock"
#: the parts of a cache root, in the order they are pruned (models never).
PARTS = ("runs", "links", "embeddings", "documents", "models")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


@contextmanager
def run_folder_lock(folder: Path) -> Iterator[None]:
    """Hold the in-use lock of a run's scratch folder while the run works in it.

    The lock is an OS lock (``filelock``): a run killed with ``kill -9``
    releases it, so its folder is then seen as stale.
    """
    with FileLock(folder / _IN_USE):
        yield


@contextmanager
def resume_folder(root: Path, key: str) -> Iterator[Path | None]:
    """The folder where a run keeps what it may resume from: ``runs/resume-<key>``,
    locked while the run works in it (None when another live run holds it: then
    this run keeps no checkpoints, and the other one's are left alone).

    ``key`` names what the folder's contents depend on (``dedup run`` uses the
    link-cache key: corpus, model and settings). :func:`finished` deletes it.
    """
    folder = Path(root) / "runs" / f"resume-{key[:32]}"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / _IN_USE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield None
        return
    try:
        yield folder
    finally:
        lock.release()


def finished(folder: Path) -> None:
    """Delete a :func:`resume_folder` whose run has finished (its results are kept
    elsewhere), while the run still holds its lock."""
    shutil.rmtree(folder, ignore_errors=True)


def parse_size(text: str) -> int:
    """Bytes in a size such as ``500M``, ``2G``, ``1.5GB``, ``10GiB`` or ``4096``.

    Raises:
        ValueError: not a size.
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 500M, 2G, 1.5GB)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def usage(root: Path) -> dict[str, int]:
    """Bytes held by each part of the cache (:data:`PARTS`), 0 for a missing part."""
    return {part: _size(root / part) if (root / part).exists() else 0 for part in PARTS}


@dataclass
class PruneReport:
    """What :func:`prune` removed (or, with ``dry_run``, would remove).

    Attributes:
        removed: ``(path, bytes)`` of each removed file or folder, in order.
        before, after: total bytes of the cache.
        unreachable: the limit is below what cannot be pruned (the models and
            the live runs); ``after`` is then as low as pruning can go.
    """

    removed: list[tuple[Path, int]] = field(default_factory=list)
    before: int = 0
    after: int = 0
    unreachable: bool = False


def _stale_runs(root: Path) -> list[Path]:
    """Scratch folders of runs that are no longer running (no one holds their lock)."""
    stale = []
    folders = [*(root / "runs").glob("run-*"), *(root / "runs").glob("resume-*")]
    for folder in sorted(folders):
        if not folder.is_dir():
            continue
        try:
            with FileLock(folder / _IN_USE, timeout=0):
                stale.append(folder)
        except Timeout:
            continue  # a live run
    return stale


def _by_last_use(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (p.stat().st_mtime, p.name))


def _shard_pairs(root: Path) -> list[list[Path]]:
    """Embedding shards as ``[vectors, keys]`` file pairs, least recently used first."""
    vectors = _by_last_use(list((root / "embeddings").glob("*/*.vecs.npy")))
    return [[v, v.with_name(v.name.replace(".vecs.", ".keys."))] for v in vectors]


def prune(root: Path, max_bytes: int | None = None, *, dry_run: bool = False) -> PruneReport:
    """Remove stale run folders, then, while the cache is over ``max_bytes``, links,
    embedding shards and the document cache, least recently used first.

    Args:
        root: the cache root (see :func:`dedup.encoding.cache_root`).
        max_bytes: the size to get under; None removes only stale run folders.
        dry_run: report what would be removed, remove nothing.
    """
    report = PruneReport(before=sum(usage(root).values()))
    total = report.before

    def remove(paths: list[Path]) -> None:
        nonlocal total
        sizes = [_size(p) if p.exists() else 0 for p in paths]
        for path, size in zip(paths, sizes, strict=True):
            report.removed.append((path, size))
            if not dry_run:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        total -= sum(sizes)

    for folder in _stale_runs(root):
        remove([folder])
    if max_bytes is not None:
        candidates: list[list[Path]] = [
            [path] for path in _by_last_use(list((root / "links").glob("*.npz")))
        ]
        candidates += _shard_pairs(root)
        documents = sorted(p for p in (root / "documents").glob("*") if p.is_file())
        candidates += [documents] if documents else []  # the database with its journal files
        for group in candidates:
            if total <= max_bytes:
                break
            remove(group)
        report.unreachable = total > max_bytes
    report.after = total
    return report


@cache
def library_version(distribution: str) -> str:
    """The installed version of ``distribution``: part of a cache key, so an upgrade
    that changes results invalidates what the old version stored."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


@cache
def source_digest(module: str) -> str:
    """Digest of a module's source file (of its name when it has no file), the module
    not imported: part of a cache key, so editing the code that computed an entry
    invalidates it."""
    spec = importlib.util.find_spec(module)
    path = spec.origin if spec is not None else None
    try:
        data = Path(path).read_bytes() if path else module.encode()
    except OSError:
        data = module.encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()
