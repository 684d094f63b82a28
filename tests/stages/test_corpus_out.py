"""corpus_out: the kept and dropped corpora parse back with every field, in every format."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dedup.config import PipelineConfig
from dedup.stages.corpus_out import (
    DUPLICATE_OF,
    corpus_format,
    kept_records,
    write_dropped,
    write_kept,
)
from dedup.stages.ingest import IngestConfig
from tests.stages.test_report import DOCS, FIELDS, make_result

FORMATS = ["kept.jsonl", "kept.jsonl.gz", "kept.parquet"]
# make_result's clusters: {el/000, en-full, en-excerpt} keeps el/000, {ru-1, de,x} ru-1, {fa};
# records come in the order of result.documents (DOCS here, id order after dedup.run)
KEPT = ["el/000", "ru-1", "fa"]
DROPPED = {"en-full": "el/000", "de,x": "ru-1", "en-excerpt": "el/000"}


def read_corpus(path: Path) -> list[dict[str, object]]:
    """The records of a written corpus, whatever its format."""
    if path.name.endswith(".parquet"):
        rows = pq.read_table(path).to_pylist()
        # a column is null where a record lacks the field: drop those, as JSONL has them
        return [{k: v for k, v in row.items() if v is not None} for row in rows]
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def _expected(doc_id: str) -> dict[str, object]:
    """The input record of ``doc_id``: id, text and every optional field it had."""
    sentences = next(d[3] for d in DOCS if d[0] == doc_id)
    fields = dict(FIELDS.get(doc_id, {}))
    extra = fields.pop("extra", {})
    return {"id": doc_id, "text": " ".join(sentences), **fields, **extra}


@pytest.mark.parametrize("name", FORMATS)
def test_kept_is_one_record_per_cluster_with_every_field(tmp_path: Path, name: str) -> None:
    result = make_result()
    path = tmp_path / name
    assert write_kept(result, path) == len(KEPT) == int(result.labels.max()) + 1
    records = read_corpus(path)
    assert [r["id"] for r in records] == KEPT
    assert records == [_expected(doc_id) for doc_id in KEPT]
    # the fields of el/000, its list and number included, typed as they were read
    assert records[0]["tags"] == ["a", "b"] and records[0]["views"] == 10
    assert records[0]["lang"] == "el-GR" and records[0]["title"] == "Πρώτος τίτλος"


@pytest.mark.parametrize("name", [n.replace("kept", "dropped") for n in FORMATS])
def test_dropped_are_the_others_each_with_the_id_it_duplicates(tmp_path: Path, name: str) -> None:
    result = make_result()
    path = tmp_path / name
    assert write_dropped(result, path) == len(DROPPED) == len(result.documents) - len(KEPT)
    records = read_corpus(path)
    assert {r["id"]: r[DUPLICATE_OF] for r in records} == DROPPED
    assert [r["id"] for r in records] == list(DROPPED)
    for record in records:
        assert {k: v for k, v in record.items() if k != DUPLICATE_OF} == _expected(record["id"])


def test_kept_and_dropped_partition_the_documents(tmp_path: Path) -> None:
    result = make_result()
    write_kept(result, tmp_path / "kept.jsonl")
    write_dropped(result, tmp_path / "dropped.jsonl")
    kept = [r["id"] for r in read_corpus(tmp_path / "kept.jsonl")]
    dropped = [r["id"] for r in read_corpus(tmp_path / "dropped.jsonl")]
    assert sorted(kept + dropped) == sorted(d.id for d in result.documents)
    assert sorted(kept) == sorted(result.kept_ids())


def test_the_inputs_own_field_names_are_kept(tmp_path: Path) -> None:
    result = make_result()
    result.config = PipelineConfig(ingest=IngestConfig(id_field="url_id", text_field="body"))
    record = next(kept_records(result))
    assert (record["url_id"], record["body"][:5]) == ("el/000", "Πρώτη")
    assert "id" not in record and "text" not in record


def test_gzip_bytes_are_reproducible(tmp_path: Path) -> None:
    """No time stamp or temporary file name in the gzip header: the same run, the same bytes."""
    result = make_result()
    write_kept(result, tmp_path / "a.jsonl.gz")
    write_kept(result, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert b".tmp" not in (tmp_path / "a.jsonl.gz").read_bytes()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_corpus_files_get_the_users_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        write_kept(make_result(), tmp_path / "kept.parquet")
        write_dropped(make_result(), tmp_path / "dropped.jsonl.gz")
    finally:
        os.umask(previous)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dropped.jsonl.gz", "kept.parquet"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {mode}


def test_format_comes_from_the_extension() -> None:
    assert corpus_format("out/Kept.JSONL") == "jsonl"
    assert corpus_format("a.ndjson.gz") == "jsonl.gz"
    assert corpus_format("a.parquet") == "parquet"
    for bad in ("kept.csv", "kept.json", "kept.gz", "kept"):
        with pytest.raises(ValueError, match="unknown corpus format"):
            corpus_format(bad)


def test_a_field_named_duplicate_of_is_a_clear_error(tmp_path: Path) -> None:
    result = make_result()
    doc = result.documents[2]  # en-full, dropped
    doc.extra[DUPLICATE_OF] = "something"
    with pytest.raises(ValueError, match="duplicate_of"):
        write_dropped(result, tmp_path / "dropped.jsonl")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_parquet_names_a_field_of_mixed_types(tmp_path: Path) -> None:
    result = make_result()
    result.documents[4].extra["views"] = "many"  # fa's; el/000's is 10: no column holds both
    with pytest.raises(ValueError, match=r"'views'.*jsonl"):
        write_kept(result, tmp_path / "kept.parquet")
    assert not list(tmp_path.iterdir())
    write_kept(result, tmp_path / "kept.jsonl")  # JSONL keeps them as they are
    assert [r.get("views") for r in read_corpus(tmp_path / "kept.jsonl")] == [10, None, "many"]
