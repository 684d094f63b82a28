"""dedup.cache and `dedup cache`: what the cache holds, and pruning it in order."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dedup.cache import parse_size, prune, run_folder_lock, usage
from dedup.cli import main
from dedup.stages.embed import EmbeddingCache

DIM = 8


@pytest.mark.parametrize(
    ("text", "size"),
    [("4096", 4096), ("500M", 500 << 20), ("2G", 2 << 30), ("1.5GB", 3 << 29), ("10GiB", 10 << 30)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "5 parsecs", "-1G"])
def test_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def _age(path: Path, seconds_ago: float) -> None:
    moment = time.time() - seconds_ago
    os.utime(path, (moment, moment))


def _cache(root: Path) -> EmbeddingCache:
    """A cache root with a model file, two links files and three vector shards of 100 rows,
    oldest first: links a (300 s ago), b (200 s); shards of texts 0-99, 100-199, 200-299."""
    (root / "models" / "m").mkdir(parents=True)
    (root / "models" / "m" / "weights.bin").write_bytes(b"w" * 50_000)
    (root / "links").mkdir()
    for name, age in (("a", 300), ("b", 200)):
        (root / "links" / f"{name}.npz").write_bytes(b"l" * 10_000)
        _age(root / "links" / f"{name}.npz", age)
    embeddings = EmbeddingCache(root / "embeddings", "model-x", DIM)
    for shard, age in enumerate((150, 100, 50)):
        before = set(embeddings.folder.glob("*.vecs.npy"))
        texts = [f"text {shard * 100 + i}" for i in range(100)]
        embeddings.add([embeddings.key(t) for t in texts], np.ones((100, DIM)))
        (written,) = set(embeddings.folder.glob("*.vecs.npy")) - before
        _age(written, age)
    return embeddings


def test_stale_run_folders_go_and_a_live_run_stays(tmp_path: Path) -> None:
    killed, live = tmp_path / "runs" / "run-killed", tmp_path / "runs" / "run-live"
    for folder in (killed, live):
        folder.mkdir(parents=True)
        (folder / "vectors.npy").write_bytes(b"v" * 1000)
    with run_folder_lock(live):
        report = prune(tmp_path)
    assert [path for path, _ in report.removed] == [killed]
    assert not killed.exists() and live.exists()


def test_prune_to_a_size_drops_links_then_least_recently_used_shards(tmp_path: Path) -> None:
    embeddings = _cache(tmp_path)
    # a run reads the oldest shard: it becomes the most recently used
    assert embeddings.get(embeddings.key("text 5")) is not None
    embeddings.mark_used()
    sizes = usage(tmp_path)
    shard_bytes = sizes["embeddings"] // 3
    limit = sum(sizes.values()) - 2 * 10_000 - shard_bytes  # both links and one shard must go
    report = prune(tmp_path, limit)
    removed = [path.relative_to(tmp_path).parts[0] for path, _ in report.removed]
    assert removed == ["links", "links", "embeddings", "embeddings"]  # a shard: vectors + keys
    assert report.after <= limit and not report.unreachable
    survivor = EmbeddingCache(tmp_path / "embeddings", "model-x", DIM)
    # the shard of texts 100-199 was the least recently used once 0-99 was read
    assert survivor.get(survivor.key("text 150")) is None
    assert survivor.get(survivor.key("text 5")) is not None
    assert survivor.get(survivor.key("text 250")) is not None
    assert (tmp_path / "models" / "m" / "weights.bin").exists()


def test_models_are_never_pruned_and_a_dry_run_removes_nothing(tmp_path: Path) -> None:
    _cache(tmp_path)
    before = usage(tmp_path)
    dry = prune(tmp_path, 1000, dry_run=True)
    assert usage(tmp_path) == before and dry.removed
    report = prune(tmp_path, 1000)
    assert report.unreachable and report.after == usage(tmp_path)["models"] == before["models"]
    assert dry.after == report.after


def test_cli_shows_and_prunes(tmp_path: Path) -> None:
    _cache(tmp_path)
    runner = CliRunner()
    shown = runner.invoke(main, ["cache", "--cache-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "embeddings" in shown.output and "total" in shown.output
    pruned = runner.invoke(
        main, ["cache", "prune", "--cache-dir", str(tmp_path), "--max-size", "1K"]
    )
    assert pruned.exit_code == 0, pruned.output
    assert "removed links: 2" in pruned.output and "cannot get under 1K" in pruned.output
    bad = runner.invoke(main, ["cache", "prune", "--max-size", "lots"])
    assert bad.exit_code == 2 and "not a size" in bad.output
