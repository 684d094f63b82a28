"""Fixtures shared by the whole suite.

``dedup_cache`` is the cache root (models and sentence vectors) of the tests
that run the real model: ``$DEDUP_CACHE`` when set (CI can keep it between
runs), else one temporary folder per session. It follows the same rule as
``model_cache`` in ``tests/encoding/conftest.py``, so with ``$DEDUP_CACHE``
set both share one model build.

``tests/__init__.py`` makes this folder a package, so ``tests/test_cli.py``
and ``tests/encoding/test_cli.py`` do not collide as one module name.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the tests may wait on a network (same rule as tests/encoding).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Each test session builds the models it uses in its own cache (the build is
# code under test), never reusing this machine's model store; the store's own
# tests set it themselves (tests/encoding/test_registry.py).
os.environ.setdefault("DEDUP_MODEL_STORE", "none")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dedup_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("DEDUP_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("dedup-cache")
