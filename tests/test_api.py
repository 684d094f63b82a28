"""The Python API: ``dedup.run`` on every input form, and what a RunResult answers.

The fast tests use a stand-in encoder (tests/stages/test_embed.py): every
form must give the same result as the same documents read from a file,
whatever the vectors. The slow ones compare every form with ``dedup run`` and
the real model, on the seeds and on ntrex-dev.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import dedup
from dedup import Cluster, PipelineConfig, RunResult, run, write_dropped, write_kept
from dedup.cli import main
from dedup.records import Document
from dedup.stages.ingest import IngestConfig, InputError
from tests.stages.test_corpus_out import read_corpus
from tests.stages.test_embed import CountingEncoder

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
NTREX = REPO / "bench" / "data" / "ntrex-dev" / "corpus.jsonl"


def seed_records() -> list[dict[str, object]]:
    """The seeds as records, plus a repost of the first under another id: exact copies
    join one cluster without any encoder, so the clusters are not all singletons."""
    records: list[dict[str, object]] = [
        {"id": p.stem, "text": p.read_text(encoding="utf-8")} for p in sorted(SEEDS.glob("*.txt"))
    ]
    return [*records, {"id": "repost", "text": records[0]["text"]}]


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _forms(records: list[dict[str, object]]) -> dict[str, object]:
    """The same documents in every in-memory form dedup.run takes."""
    return {
        "dicts": records,
        "pairs": [(r["id"], r["text"]) for r in records],
        "generator": (r for r in records),
        "DataFrame": pd.DataFrame(records),
        "Dataset": datasets.Dataset.from_list(records),
    }


def _outcome(result: RunResult) -> tuple[list[Cluster], list[str]]:
    return result.clusters(), [d.id for d in result.documents]


# --- every form, the same result (a stand-in encoder) ---------------------------------


@pytest.mark.parametrize("form", ["dicts", "pairs", "generator", "DataFrame", "Dataset"])
def test_every_form_gives_the_result_of_the_file(tmp_path: Path, form: str) -> None:
    records = seed_records()
    config = PipelineConfig(cache_dir=tmp_path / "cache")
    expected = run(
        _write_jsonl(tmp_path / "seeds.jsonl", records), config, encoder=CountingEncoder()
    )
    got = run(_forms(records)[form], config, encoder=CountingEncoder())
    assert _outcome(got) == _outcome(expected)
    assert got.cluster_of("repost") == got.cluster_of(records[0]["id"])  # the copy joined
    assert got.documents_in == len(records) and not got.skipped


def test_a_path_may_be_a_string(tmp_path: Path) -> None:
    config = PipelineConfig(cache_dir=tmp_path / "cache")
    by_string = run(str(SEEDS), config, encoder=CountingEncoder())
    assert _outcome(by_string) == _outcome(run(SEEDS, config, encoder=CountingEncoder()))


def test_every_field_of_a_record_comes_out_again(tmp_path: Path) -> None:
    """title, url, date, lang and any other field: in to_pandas (and so assignments),
    and all of them in the kept and dropped corpora."""
    records = seed_records()
    records[0] |= {
        "title": "Vĩnh Yên",
        "url": "https://vi.example/1",
        "date": "2024-05-01",
        "lang": "vi-VN",
        "section": "science",
        "views": 3,
        "tags": ["a", "b"],
    }
    records[-1] |= {"title": "Repost", "source": "aggregator"}
    result = run(records, PipelineConfig(cache_dir=tmp_path / "cache"), encoder=CountingEncoder())
    first = records[0]["id"]
    frame = result.to_pandas().set_index("doc_id")
    assert frame.loc[first, ["title", "url", "date", "input_lang"]].tolist() == [
        "Vĩnh Yên",
        "https://vi.example/1",
        "2024-05-01",
        "vi-VN",
    ]
    assert frame.loc[first, "lang"] == "vi"  # the supplied language, as the run used it
    assert frame.loc["repost", "title"] == "Repost"
    assert pd.isna(frame.loc[records[1]["id"], "title"])
    # the seed and its repost have the same text: the smaller id is kept
    write_kept(result, tmp_path / "kept.jsonl.gz")
    write_dropped(result, tmp_path / "dropped.parquet")
    kept = {r["id"]: r for r in read_corpus(tmp_path / "kept.jsonl.gz")}
    dropped = {r["id"]: r for r in read_corpus(tmp_path / "dropped.parquet")}
    assert kept[first] == records[0]
    assert dropped["repost"] == {**records[-1], "duplicate_of": first}
    assert len(kept) == len(result.clusters())
    assert len(dropped) == len(records) - len(result.clusters())


def test_a_dataframes_gaps_are_absent_fields_not_nan(tmp_path: Path) -> None:
    records = seed_records()
    records[0]["title"] = "Only this one has a title"
    frame = pd.DataFrame(records)
    assert frame["title"].isna().sum() == len(records) - 1
    result = run(frame, PipelineConfig(cache_dir=tmp_path / "cache"), encoder=CountingEncoder())
    titles = {d.id: d.title for d in result.documents}
    assert titles.pop(records[0]["id"]) == "Only this one has a title"
    assert set(titles.values()) == {None}
    assert all("title" not in d.extra for d in result.documents)


def test_other_field_names(tmp_path: Path) -> None:
    records = [{"url": r["id"], "body": r["text"]} for r in seed_records()]
    config = PipelineConfig(
        cache_dir=tmp_path / "cache", ingest=IngestConfig(id_field="url", text_field="body")
    )
    result = run(pd.DataFrame(records), config, encoder=CountingEncoder())
    assert sorted(d.id for d in result.documents) == sorted(r["url"] for r in records)
    pairs = run([(r["url"], r["body"]) for r in records], config, encoder=CountingEncoder())
    assert _outcome(pairs) == _outcome(result)


def test_bad_records_are_skipped_with_their_number(tmp_path: Path) -> None:
    records = [
        ("a", "An article about the harbour."),
        ("b", "x", "one too many"),
        42,
        {"id": "c"},
        ("a", "The same id again."),
        ("d", "  "),
    ]
    result = run(records, PipelineConfig(cache_dir=tmp_path / "cache"), encoder=CountingEncoder())
    assert [d.id for d in result.documents] == ["a"]
    assert [(s.origin, s.reason) for s in result.skipped] == [
        ("record 2", "a sequence of 3 items, not an (id, text) pair"),
        ("record 3", "not a mapping or an (id, text) pair (int)"),
        ("record 4", "'text' is missing"),
        ("record 5", "duplicate id, first seen at record 1"),
        ("record 6", "empty text"),
    ]
    assert result.documents_in == len(records)


@pytest.mark.parametrize(
    ("documents", "error", "message"),
    [
        ({"id": "a", "text": "One record, not a list."}, TypeError, "not a mapping"),
        (datasets.DatasetDict(), TypeError, r"dataset\['train'\]"),
        (42, TypeError, "not int"),
        (pd.DataFrame({"id": ["a"], "body": ["Text."]}), InputError, "lacks column.*text"),
        (datasets.Dataset.from_dict({"text": ["Text."]}), InputError, "lacks column.*id"),
    ],
)
def test_a_wrong_input_is_a_clear_error(tmp_path: Path, documents, error, message) -> None:
    with pytest.raises(error, match=message):
        run(documents, PipelineConfig(cache_dir=tmp_path / "cache"), encoder=CountingEncoder())


# --- what a RunResult answers ------------------------------------------------------------


def test_clusters_kept_ids_and_cluster_of_agree(tmp_path: Path) -> None:
    records = seed_records()
    result = run(records, PipelineConfig(cache_dir=tmp_path / "cache"), encoder=CountingEncoder())
    clusters = result.clusters()
    assert [c.label for c in clusters] == list(range(len(clusters)))
    assert [c.id for c in clusters] == [f"c{n:04d}" for n in range(1, len(clusters) + 1)]
    assert sorted(m for c in clusters for m in c.members) == sorted(r["id"] for r in records)
    assert [c.size for c in clusters] == sorted((c.size for c in clusters), reverse=True)
    for cluster in clusters:
        assert all(result.cluster_of(m) == cluster.label for m in cluster.members)
        assert cluster.representative in cluster.members
        assert cluster.representative not in cluster.duplicates
        assert len(cluster.duplicates) == cluster.size - 1
    assert result.kept_ids() == [c.representative for c in clusters]
    # the sentence offsets the run kept are those its documents' sentences give
    counted = np.r_[0, np.cumsum([len(seg.sentences) for seg in result.segmented])]
    assert np.array_equal(result.offsets(), counted) and counted[-1] == len(result.usable)
    frame = result.to_pandas()
    assert sorted(frame[frame.representative].doc_id) == sorted(result.kept_ids())
    assert frame.cluster_size.dtype == np.int64 and frame.representative.dtype == bool
    with pytest.raises(KeyError, match="no-such-id"):
        result.cluster_of("no-such-id")


def test_a_copys_document_vector_is_its_primarys(tmp_path: Path) -> None:
    records = seed_records()  # the last is a repost of the first
    result = run(records, PipelineConfig(cache_dir=tmp_path / "cache"), encoder=CountingEncoder())
    vectors = result.doc_vectors
    position = {doc.id: i for i, doc in enumerate(result.documents)}
    assert len(result.primary_vectors) == len(records) - 1 == len(vectors) - 1
    assert np.array_equal(vectors[position["repost"]], vectors[position[records[0]["id"]]])
    primaries = np.flatnonzero(result.primary_of == np.arange(len(records)))
    assert np.array_equal(vectors[primaries], result.primary_vectors)


def test_cluster_of_is_a_lookup_not_a_scan() -> None:
    """100,000 look-ups among 100,000 documents: a scan per look-up would take minutes."""
    count = 100_000
    documents = [Document(id=f"doc-{i:06d}", text="x", origin="memory") for i in range(count)]
    result = RunResult(
        documents=documents,
        skipped=[],
        segmented=[],
        labels=np.arange(count) // 2,
        representatives={},
        evidence=[],
        usable=np.ones(0, dtype=bool),
        primary_vectors=np.zeros((count, 1), dtype=np.float32),
        doc_groups=np.zeros(count, dtype=np.int64),
        group_names=["en"],
        primary_of=np.arange(count),
        stages={},
        model_name="none",
        model_fingerprint="none",
        config=PipelineConfig(),
    )
    start = time.perf_counter()
    labels = [result.cluster_of(doc.id) for doc in reversed(documents)]
    assert time.perf_counter() - start < 5.0
    assert labels[0] == (count - 1) // 2 and labels[-1] == 0


def test_the_package_exports_the_api() -> None:
    for name in ("run", "PipelineConfig", "RunResult", "Cluster", "write_report"):
        assert name in dedup.__all__ and hasattr(dedup, name)
    assert {"write_kept", "write_dropped"} <= set(dedup.__all__)


# --- every form against the CLI, with the real model ---------------------------------------


def _cli_assignments(corpus: Path, out: Path, cache: Path) -> dict[str, tuple[str, str]]:
    """doc_id -> (cluster_id, representative) from `dedup run`."""
    result = CliRunner().invoke(
        main, ["run", str(corpus), "--out", str(out), "--cache-dir", str(cache), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    with (out / "assignments.csv").open(encoding="utf-8", newline="") as handle:
        return {r["doc_id"]: (r["cluster_id"], r["representative"]) for r in csv.DictReader(handle)}


def _api_assignments(result: RunResult) -> dict[str, tuple[str, str]]:
    frame = result.to_pandas()
    return {
        doc_id: (cluster_id, "true" if keep else "false")
        for doc_id, cluster_id, keep in zip(
            frame.doc_id, frame.cluster_id, frame.representative, strict=True
        )
    }


def _compare_with_cli(records: list[dict[str, object]], corpus: Path, tmp_path: Path, cache: Path):
    expected = _cli_assignments(corpus, tmp_path / "cli", cache)
    config = PipelineConfig(cache_dir=cache)
    forms = _forms(records)
    del forms["generator"]  # a list read lazily: covered by the fast test
    for form, documents in forms.items():
        assert _api_assignments(run(documents, config)) == expected, form


@pytest.mark.slow
def test_every_form_gives_the_clusters_of_the_cli_on_the_seeds(
    tmp_path: Path, dedup_cache: Path
) -> None:
    records = [
        {"id": p.stem, "text": p.read_text(encoding="utf-8")} for p in sorted(SEEDS.glob("*.txt"))
    ]
    _compare_with_cli(records, SEEDS, tmp_path, dedup_cache)


@pytest.mark.slow
def test_every_form_gives_the_clusters_of_the_cli_on_ntrex_dev(
    tmp_path: Path, dedup_cache: Path
) -> None:
    lines = NTREX.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    _compare_with_cli(records, NTREX, tmp_path, dedup_cache)
