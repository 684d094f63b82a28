#!/usr/bin/env python3
"""What the document cache's table layout costs in writes: rowid tables against ``WITHOUT ROWID``.

    python bench/document_cache_writes.py --rows 400000

The document cache (``dedup/stages/document_cache.py``) commits a block of
new entries at a time, each keyed by a random 16-byte digest. Version 1 of
its file kept each table's rows in the key's B-tree (``WITHOUT ROWID``), so
every insert landed on a random page of row data, which the commit rewrote
together with its rollback-journal copy; version 2 uses rowid tables: rows
are appended, and only the small key index takes random inserts. This
script inserts ``--rows`` rows of ``--row-bytes`` bytes with random keys,
``--block`` a transaction, into a fresh file of each layout (the schema and
statements of the cache's ``sentences`` table) and prints the seconds, the
bytes written to the disk (``/proc/self/io``, Linux) and the file's size.
Compare the two lines of one run: the machine's other writes move both.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from pathlib import Path

LAYOUTS = {
    "WITHOUT ROWID (v1)": "CREATE TABLE t (key BLOB PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID",
    "rowid (v2)": "CREATE TABLE t (key BLOB PRIMARY KEY, v TEXT NOT NULL)",
}


def written_bytes() -> int | None:
    """Bytes this process has caused to be written to storage (Linux), or None."""
    try:
        with open("/proc/self/io", encoding="ascii") as stats:
            for line in stats:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def insert(path: Path, schema: str, rows: int, row_bytes: int, block: int) -> tuple[float, int]:
    """Seconds to insert the rows block by block, and the file's size."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(schema)
    keys = random.Random(0)
    value = "x" * row_bytes
    started = time.perf_counter()
    for start in range(0, rows, block):
        batch = [(keys.randbytes(16), value) for _ in range(min(block, rows - start))]
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO t VALUES (?, ?)", batch)
        db.execute("COMMIT")
    seconds = time.perf_counter() - started
    db.close()
    return seconds, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--row-bytes", type=int, default=1_500)
    parser.add_argument("--block", type=int, default=10_000, help="rows a transaction")
    parser.add_argument("--folder", type=Path, default=None, help="where the files are made")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
        for number, (name, schema) in enumerate(LAYOUTS.items()):
            before = written_bytes()
            seconds, size = insert(
                Path(scratch) / f"{number}.sqlite", schema, args.rows, args.row_bytes, args.block
            )
            after = written_bytes()
            wrote = f"{(after - before) / 2**20:.0f} MB" if None not in (before, after) else "n/a"
            print(
                f"{name:20s} {args.rows} rows of {args.row_bytes} bytes: {seconds:.2f} s, "
                f"written {wrote}, file {size / 2**20:.0f} MB"
            )


if __name__ == "__main__":
    main()
