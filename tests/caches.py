"""Cache roots for tests that must start without sentence vectors but not rebuild the model."""

from __future__ import annotations

from pathlib import Path


def cache_without_vectors(folder: Path, dedup_cache: Path) -> Path:
    """A cache root in ``folder`` that shares the built models of ``dedup_cache``
    (symbolic links) but nothing else: no sentence vectors, documents or links."""
    (folder / "models").mkdir(parents=True)
    for model in (dedup_cache / "models").iterdir():
        if model.is_dir():
            (folder / "models" / model.name).symlink_to(model)
    return folder
