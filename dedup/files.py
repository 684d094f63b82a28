"""Files written whole or not at all: what a killed run leaves is never half a file.

Every writer of an output file (the report, the corpus writer) and of the
cache (embedding shards and their index, align's checkpoints) goes through
:func:`atomic_write`, so a ``kill -9`` at any moment leaves either the old
file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` with ``write(handle)``: into a temporary file beside it, then renamed.

    A killed run never leaves a half-written file, and a reader never sees
    one. The file gets the mode ``open`` would give it, ``0666`` less the
    umask: the temporary file is made ``0600`` (by :func:`tempfile.mkstemp`),
    which a colleague could not open.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask. Reading it means setting it, so it is set back at once;
    meanwhile it is ``077``, so a file another thread makes in that instant is at
    worst private, never more open than asked."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
