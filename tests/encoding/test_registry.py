"""Profiles, cache location, atomic builds, and resolving --model without a network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dedup.encoding import registry
from dedup.encoding.registry import (
    DEFAULT_MODEL,
    ModelUnavailableError,
    build_atomically,
    cache_root,
    load_profiles,
    model_folder,
    resolve,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_profiles() -> None:
    profiles = load_profiles()
    assert DEFAULT_MODEL in profiles
    e5, minilm = profiles["multilingual-e5-small"], profiles["all-minilm-l6-v2"]
    assert (e5.prefix, e5.max_tokens, e5.dim, e5.multilingual) == ("passage: ", 512, 384, True)
    assert (minilm.prefix, minilm.max_tokens, minilm.dim) == ("", 256, 384)
    assert not minilm.multilingual
    assert dict(e5.calibration) == {}
    # the default model on int8 OpenVINO (bit-stable, the fastest, F1 of fp32 on the dev
    # sets); others on torch
    assert (e5.backend, minilm.backend) == ("openvino-int8", "torch")


def test_profiles_are_the_repository_models_folder() -> None:
    """The package reads models/ itself (through the profiles link), not a copy."""
    assert registry.PROFILES_DIR.resolve() == (REPO / "models").resolve()


def test_profile_file_problems_are_named(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(
        json.dumps(
            {
                "name": "x",
                "description": "",
                "source": {"kind": "ftp"},
                "prefix": "",
                "max_tokens": 512,
                "dim": 8,
                "multilingual": False,
            }
        )
    )
    with pytest.raises(ValueError, match=r"x\.json.*source kind"):
        load_profiles(tmp_path)
    profile = json.loads((tmp_path / "x.json").read_text())
    profile["source"] = {"kind": "package-folder", "package": "p", "path": "m"}
    profile["backend"] = "gpu"
    (tmp_path / "x.json").write_text(json.dumps(profile))
    with pytest.raises(ValueError, match=r"x\.json.*backend 'gpu'"):
        load_profiles(tmp_path)


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DEDUP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "dedup"
    monkeypatch.setenv("DEDUP_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_default_model_folder_is_keyed_by_source_and_converter(tmp_path: Path) -> None:
    folder = model_folder(load_profiles()[DEFAULT_MODEL], tmp_path)
    assert folder.parent == tmp_path / "models"
    assert folder.name.startswith("multilingual-e5-small-") and len(folder.name) == 22 + 12


def test_source_digest_is_kept_in_the_models_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dedup.encoding import convert

    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    models = tmp_path / "models"
    models.mkdir()
    reads: list[Path] = []
    monkeypatch.setattr(convert, "file_sha256", lambda path: reads.append(path) or "d1")

    def key() -> str:
        registry._source_key.cache_clear()  # a new process
        return registry._build_key(source, models)

    first = key()
    assert key() == first and len(reads) == 1  # the second "process" read the memo
    os.utime(source, ns=(1, 1))  # a replaced file: read again
    monkeypatch.setattr(convert, "file_sha256", lambda path: reads.append(path) or "d2")
    assert key() != first and len(reads) == 2
    (models / registry.SOURCE_DIGESTS).write_text("[not a memo")
    assert key() != first and len(reads) == 3
    registry._source_key.cache_clear()


def _fake_build(log: Path, seconds: float = 0.0):
    def build(tmp: Path) -> None:
        with open(log, "a") as fh:
            fh.write("built\n")
        time.sleep(seconds)
        (tmp / "weights").write_text("ok")

    return build


def test_build_is_atomic_and_cleans_a_killed_build(tmp_path: Path) -> None:
    final = tmp_path / "models" / "m-123"
    final.parent.mkdir()
    leftover = final.parent / "m-123.tmp-dead"  # what a killed build leaves behind
    leftover.mkdir()
    (leftover / "half.safetensors").write_text("garbage")
    log = tmp_path / "log"
    assert build_atomically(final, _fake_build(log)) == final
    assert (final / "weights").read_text() == "ok"
    assert not leftover.exists()
    assert build_atomically(final, _fake_build(log)) == final
    assert log.read_text().count("built") == 1


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "m-1"

    def boom(tmp: Path) -> None:
        (tmp / "partial").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        build_atomically(final, boom)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["m-1.lock"])


_CONCURRENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dedup.encoding.registry import build_atomically

    final, log = Path(sys.argv[1]), Path(sys.argv[2])

    def build(tmp):
        with open(log, "a") as fh:
            fh.write("built\\n")
        time.sleep(1.5)
        (tmp / "weights").write_text("ok")

    print(build_atomically(final, build))
    """
)


def test_concurrent_builds_share_one_folder(tmp_path: Path) -> None:
    """Two processes ask at once: one builds, the other waits on the lock and reuses."""
    final, log = tmp_path / "models" / "m-abc", tmp_path / "log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT, str(final), str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(final), str(final)]
    assert log.read_text().count("built") == 1
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] == []


def test_a_killed_build_leaves_no_folder_and_is_redone(tmp_path: Path) -> None:
    final, log = tmp_path / "models" / "m-abc", tmp_path / "log"
    proc = subprocess.Popen([sys.executable, "-c", _CONCURRENT, str(final), str(log)])
    deadline = time.monotonic() + 30
    while not log.exists() and time.monotonic() < deadline:  # building, inside the lock
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not final.exists()
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] != []
    assert build_atomically(final, _fake_build(log)) == final
    assert (final / "weights").read_text() == "ok"
    assert [p.name for p in final.parent.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.slow
def test_default_model_is_built_once_then_reused(e5_folder: Path, model_cache: Path) -> None:
    before = (e5_folder / "model.safetensors").stat().st_mtime_ns
    resolved = resolve(None, cache_dir=model_cache)
    assert resolved.folder == e5_folder and resolved.name == DEFAULT_MODEL
    assert resolved.weights_id == e5_folder.name
    assert (e5_folder / "model.safetensors").stat().st_mtime_ns == before


def test_resolve_a_folder_reads_its_prefix_and_window(minilm_folder: Path) -> None:
    resolved = resolve(str(minilm_folder))
    assert resolved.folder == minilm_folder and resolved.profile is None
    assert (resolved.prefix, resolved.max_tokens) == ("", 256)
    assert resolve("all-minilm-l6-v2").folder == minilm_folder


def test_missing_folder_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve(str(tmp_path / "nope"))


_UNAVAILABLE = textwrap.dedent(
    """
    import time
    from dedup.encoding import Encoder, ModelUnavailableError
    start = time.monotonic()
    try:
        Encoder("someone/does-not-exist")
    except ModelUnavailableError as exc:
        print(f"{time.monotonic() - start:.3f}")
        print(exc)
    """
)


@pytest.mark.parametrize("offline", [None, "1"], ids=["HF_HUB_OFFLINE-unset", "HF_HUB_OFFLINE=1"])
def test_unknown_hub_id_fails_at_once(offline: str | None, tmp_path: Path) -> None:
    """No network wait whether or not the user set offline mode (fresh process each)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if offline:
        env["HF_HUB_OFFLINE"] = offline
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty Hugging Face cache
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", _UNAVAILABLE], env=env, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    seconds, message = out.stdout.split("\n", 1)
    assert float(seconds) < 2 and elapsed < 10
    assert "someone/does-not-exist" in message
    assert "dedup models" in message and "folder" in message


_FROM_HF_CACHE = textwrap.dedent(
    """
    from dedup.encoding.registry import resolve
    resolved = resolve("someone/minilm")
    print(resolved.folder)
    print(repr(resolved.prefix), resolved.max_tokens)
    """
)


def test_hub_id_in_the_local_cache_resolves_to_its_snapshot(
    minilm_folder: Path, tmp_path: Path
) -> None:
    """A model already in the Hugging Face cache is used as it is, offline or not."""
    repo = tmp_path / "hf" / "hub" / "models--someone--minilm"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(minilm_folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HOME"] = str(tmp_path / "hf")
    out = subprocess.run(
        [sys.executable, "-c", _FROM_HF_CACHE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(snapshot), "'' 256"]


def test_a_model_built_in_the_machine_store_serves_every_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run with its own --cache-dir reuses the folders built in the machine's
    model store (same name: same source digest, converter and backend versions),
    and builds into its cache only what the store lacks; its own build wins."""
    from dedup.encoding.encoder import backend_folder
    from dedup.encoding.registry import MODEL_STORE_ENV, ResolvedModel, model_folder

    profile = load_profiles()["multilingual-e5-small"]
    store, cache = tmp_path / "store", tmp_path / "cache"
    monkeypatch.setenv(MODEL_STORE_ENV, "none")
    in_cache = model_folder(profile, cache)
    assert in_cache.parent == cache / "models"
    resolved = ResolvedModel(profile.name, in_cache, in_cache.name, "", 512, profile)
    backend_in_cache = backend_folder(resolved, "openvino-int8", cache)
    monkeypatch.setenv(MODEL_STORE_ENV, str(store))
    assert model_folder(profile, cache) == in_cache  # nothing built anywhere yet
    for name in (in_cache.name, backend_in_cache.name):
        (store / name).mkdir(parents=True)
    assert model_folder(profile, cache) == store / in_cache.name
    assert backend_folder(resolved, "openvino-int8", cache) == store / backend_in_cache.name
    assert backend_folder(resolved, "onnx", cache).parent == cache / "models"  # not in store
    in_cache.mkdir(parents=True)
    assert model_folder(profile, cache) == in_cache
    monkeypatch.setenv(MODEL_STORE_ENV, "none")
    assert backend_folder(resolved, "openvino-int8", cache) == backend_in_cache
    monkeypatch.delenv(MODEL_STORE_ENV)
    default_models = tmp_path / "default" / "models"  # unset: the default cache's models
    monkeypatch.setenv("DEDUP_CACHE", str(default_models.parent))
    (default_models / backend_in_cache.name).mkdir(parents=True)
    assert backend_folder(resolved, "openvino-int8", cache).parent == default_models
