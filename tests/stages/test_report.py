"""report: the files of --out parse back and agree with the run result."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from dedup.config import PipelineConfig
from dedup.records import (
    AlignedPair,
    Document,
    LanguageGuess,
    PairEvidence,
    SegmentedDocument,
    SkippedInput,
)
from dedup.result import RunResult, StageStats
from dedup.stages.cluster import Adoption
from dedup.stages.keep import choose_representatives
from dedup.stages.report import cluster_ids, format_summary, summary, write_json, write_report

REPO = Path(__file__).resolve().parents[2]
SCORER = REPO / "bench" / "score_reference.py"
HEADER = [
    "doc_id",
    "cluster_id",
    "cluster_size",
    "lang",
    "script",
    "representative",
    "sentences",
    "cluster_languages",
    "title",
    "url",
    "date",
    "input_lang",
]
FILES = [
    "assignments.csv",
    "assignments.parquet",
    "clusters.json",
    "clusters.index.npy",
    "skipped.csv",
    "run.json",
    "report.html",
    "report.md",
    # the state dedup add grows (dedup.state); state.json last: a killed run leaves none
    "documents.jsonl.gz",
    "evidence.npz",
    "changes.jsonl",
    "state.json",
]

# id, language, script, sentences; stories: s1 = {el, en-full, en-excerpt}, s2 = {ru, "de,x"}
DOCS = [
    ("el/000", "el", "GREEK", ["Πρώτη πρόταση του άρθρου.", "Δεύτερη πρόταση.", "Τρίτη πρόταση."]),
    ("ru-1", "ru", "CYRILLIC", ["Первое предложение.", "Второе."]),
    ("en-full", "en", "LATIN", ["First sentence.", "Second sentence.", "Third.", "Footer."]),
    ("de,x", "de", "LATIN", ["Erster Satz.", "Zweiter."]),
    ("fa", "fa", "ARABIC", ["جمله اول."]),
    ("en-excerpt", "en", "LATIN", ["First sentence."]),
]
STORY = {
    "el/000": "s1",
    "en-full": "s1",
    "en-excerpt": "s1",
    "ru-1": "s2",
    "de,x": "s2",
    "fa": "s3",
}
LABELS = np.array([0, 1, 0, 1, 2, 0])
# the optional fields two records carry (the others carry none)
FIELDS = {
    "el/000": {
        "title": "Πρώτος τίτλος",
        "url": "https://el.example/1",
        "date": "2024-05-01",
        "lang": "el-GR",
        "extra": {"section": "κόσμος", "views": 10, "tags": ["a", "b"]},
    },
    "en-full": {
        "title": "First title",
        "url": "https://en.example/1?a=1&b=2",
        "date": "2024-05-02T10:00:00Z",
        "extra": {"section": "world", "views": 12},
    },
}


def _aligned(n: int) -> tuple[AlignedPair, ...]:
    return tuple(AlignedPair(i, i, 0.9, 5.0, 1.0) for i in range(n))


def make_result() -> RunResult:
    segmented = []
    for doc_id, lang, script, sentences in DOCS:
        fields = FIELDS.get(doc_id, {})
        doc = Document(
            id=doc_id,
            text=" ".join(sentences),
            origin=f"corpus.jsonl:{len(segmented) + 1}",
            # a dict of its own: a test may add a field without changing FIELDS
            **{**fields, "extra": dict(fields.get("extra", {}))},
        )
        segmented.append(
            SegmentedDocument(doc, LanguageGuess(lang, 0.99, script), tuple(sentences))
        )
    n_sent = sum(len(s.sentences) for s in segmented)
    usable = np.ones(n_sent, dtype=bool)
    usable[8] = False  # "Footer." of en-full is boilerplate
    evidence = [
        PairEvidence(0, 2, 0.75, _aligned(3), 3),
        PairEvidence(0, 5, 0.5, _aligned(1), 1),
        PairEvidence(2, 5, 0.5, _aligned(1), 1),
        PairEvidence(1, 3, 0.66, _aligned(2), 2),
        PairEvidence(1, 4, 0.1, (), 1),  # below the threshold: no link
    ]
    return RunResult(
        documents=[s.doc for s in segmented],
        skipped=[
            SkippedInput("corpus.jsonl:7", "malformed JSON (Expecting value at column 1)"),
            SkippedInput("corpus.jsonl:8", "duplicate id, first seen at corpus.jsonl:1", "el/000"),
        ],
        segmented=segmented,
        labels=LABELS.copy(),
        representatives=choose_representatives(LABELS, segmented, usable),
        evidence=evidence,
        usable=usable,
        primary_vectors=np.eye(len(segmented), 4, dtype=np.float32),
        doc_groups=np.array(
            [
                sorted({s.language.group for s in segmented}).index(s.language.group)
                for s in segmented
            ]
        ),
        group_names=sorted({s.language.group for s in segmented}),
        primary_of=np.arange(len(segmented)),
        stages={
            "ingest": StageStats(0.01, 6, "documents"),
            "langid": StageStats(0.02, 6, "documents", cached=4),
            "embed": StageStats(1.5, 13, "sentences"),
        },
        model_name="fake-model",
        model_fingerprint="fake-fingerprint",
        config=PipelineConfig(),
        encoded_sentences=13,
    )


@pytest.fixture
def written(tmp_path: Path) -> tuple[RunResult, Path, list[Path]]:
    result = make_result()
    out = tmp_path / "nested" / "out"
    return result, out, write_report(result, out)


def _assignments(out: Path) -> list[dict[str, str]]:
    with (out / "assignments.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == HEADER
        return list(reader)


def test_writes_exactly_the_report_and_state_files(written) -> None:
    _, out, paths = written
    assert paths == [out / n for n in FILES]
    # no temp files left; the lock a writer holds (dedup.state.locked) stays, empty
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, ".lock"])


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_users_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Not mkstemp's 0600: colleagues on a shared server can open a report the umask lets them."""
    previous = os.umask(umask)
    try:
        paths = write_report(make_result(), tmp_path / "out")
    finally:
        os.umask(previous)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths} == dict.fromkeys(FILES, mode)


def test_assignments_one_row_per_document_in_input_order(written) -> None:
    _result, out, _ = written
    rows = _assignments(out)
    assert [r["doc_id"] for r in rows] == [d[0] for d in DOCS]
    assert [r["cluster_id"] for r in rows] == ["c0001", "c0002", "c0001", "c0002", "c0003", "c0001"]
    assert [int(r["cluster_size"]) for r in rows] == [3, 2, 3, 2, 1, 3]
    assert [r["lang"] for r in rows] == [d[1] for d in DOCS]
    assert [r["script"] for r in rows] == [d[2] for d in DOCS]
    assert [int(r["sentences"]) for r in rows] == [len(d[3]) for d in DOCS]
    assert (out / "assignments.csv").read_text(encoding="utf-8").startswith(",".join(HEADER) + "\n")


def test_record_fields_come_out_in_assignments_and_clusters(written) -> None:
    _, out, _ = written
    rows = {r["doc_id"]: r for r in _assignments(out)}
    assert {k: rows["el/000"][k] for k in ("title", "url", "date", "input_lang")} == {
        "title": "Πρώτος τίτλος",
        "url": "https://el.example/1",
        "date": "2024-05-01",
        "input_lang": "el-GR",
    }
    assert rows["el/000"]["lang"] == "el"  # the language the run used
    assert [rows["en-full"][k] for k in ("title", "url", "date", "input_lang")] == [
        "First title",
        "https://en.example/1?a=1&b=2",
        "2024-05-02T10:00:00Z",
        "",
    ]
    assert [rows["fa"][k] for k in ("title", "url", "date", "input_lang")] == ["", "", "", ""]
    data = json.loads((out / "clusters.json").read_text(encoding="utf-8"))
    members = {m["id"]: m for c in data["clusters"] for m in c["members"]}
    assert members["el/000"]["title"] == "Πρώτος τίτλος"
    assert members["el/000"]["input_lang"] == "el-GR"
    assert members["en-full"]["url"] == "https://en.example/1?a=1&b=2"
    assert members["en-full"]["date"] == "2024-05-02T10:00:00Z"
    assert members["fa"]["title"] is None and members["fa"]["input_lang"] is None


def test_assignments_parquet_is_the_csv_typed(written) -> None:
    _, out, _ = written
    table = pq.read_table(out / "assignments.parquet")
    assert table.column_names == HEADER
    types = {f.name: str(f.type) for f in table.schema}
    assert types["cluster_size"] == types["sentences"] == "int64"
    assert types["representative"] == "bool"
    assert {
        types[k] for k in HEADER if k not in ("cluster_size", "sentences", "representative")
    } == {"string"}
    rows = table.to_pylist()
    csv_rows = _assignments(out)
    assert len(rows) == len(csv_rows) == len(DOCS)
    for typed, text in zip(rows, csv_rows, strict=True):
        spelled = {
            k: ("true" if v else "false") if isinstance(v, bool) else "" if v is None else str(v)
            for k, v in typed.items()
        }
        assert spelled == text
    assert rows[4]["title"] is None  # a missing field is null, not ""


def test_exactly_one_representative_per_cluster(written) -> None:
    _, out, _ = written
    rows = _assignments(out)
    assert {r["representative"] for r in rows} == {"true", "false"}
    keep: dict[str, list[str]] = {}
    for r in rows:
        if r["representative"] == "true":
            keep.setdefault(r["cluster_id"], []).append(r["doc_id"])
    assert keep == {"c0001": ["el/000"], "c0002": ["ru-1"], "c0003": ["fa"]}
    # el/000 and en-full both have 3 usable sentences (en-full's 4th is
    # boilerplate and does not count), and el/000 has the longer text


def test_clusters_json(written) -> None:
    _result, out, _ = written
    data = json.loads((out / "clusters.json").read_text(encoding="utf-8"))
    clusters = data["clusters"]
    assert [c["id"] for c in clusters] == ["c0001", "c0002", "c0003"]
    assert [c["size"] for c in clusters] == [3, 2, 1]
    first = clusters[0]
    assert [m["id"] for m in first["members"]] == ["el/000", "en-excerpt", "en-full"]
    assert first["representative"] == "el/000"
    assert first["languages"] == {"el": 1, "en": 2}
    member = first["members"][0]
    assert "origin" not in member and member["sentences"] == 3  # order-independent bytes
    # links: pairs over the threshold inside the cluster, strongest first, with texts
    assert [(x["left"], x["right"]) for x in first["links"]] == [
        ("el/000", "en-full"),
        ("el/000", "en-excerpt"),
        ("en-full", "en-excerpt"),
    ]
    aligned = first["links"][0]["aligned"][1]
    assert (aligned["left_text"], aligned["right_text"]) == ("Δεύτερη πρόταση.", "Second sentence.")
    assert clusters[2]["links"] == []  # fa's only pair is below the threshold
    every_member = [m["id"] for c in clusters for m in c["members"]]
    assert sorted(every_member) == sorted(d[0] for d in DOCS)
    assert "Δεύτερη" in (out / "clusters.json").read_text(encoding="utf-8")  # UTF-8, not \\u


def test_summary_counts(written) -> None:
    result, out, _ = written
    info = json.loads((out / "clusters.json").read_text(encoding="utf-8"))["summary"]
    assert info == summary(result)
    assert info["documents_in"] == info["assigned"] + info["skipped"] == 8
    assert (info["assigned"], info["skipped"]) == (6, 2)
    assert (info["clusters"], info["multi_document_clusters"], info["singletons"]) == (3, 2, 1)
    assert info["duplicates_to_drop"] == 3
    assert info["boilerplate_sentences"] == 1 and info["sentences"] == 13
    assert (info["candidate_pairs"], info["linked_pairs"]) == (5, 4)
    assert info["languages"] == {"en": 2, "de": 1, "el": 1, "fa": 1, "ru": 1}


def test_skipped_csv(written) -> None:
    _result, out, _ = written
    with (out / "skipped.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["origin", "doc_id", "reason"]
    assert rows[1:] == [
        ["corpus.jsonl:7", "", "malformed JSON (Expecting value at column 1)"],
        ["corpus.jsonl:8", "el/000", "duplicate id, first seen at corpus.jsonl:1"],
    ]


def test_run_json(written) -> None:
    result, out, _ = written
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert info["model"] == {"name": "fake-model", "fingerprint": "fake-fingerprint"}
    assert info["config"]["cluster"]["threshold"] == result.config.cluster.threshold
    assert info["config"]["cache_dir"] is None
    assert info["summary"]["documents_in"] == 8
    embed = {"seconds": 1.5, "items": 13, "unit": "sentences", "peak_rss_mb": 0}
    assert info["stages"]["embed"] == embed
    assert info["stages"]["langid"]["cached"] == 4  # found in the document cache
    assert info["versions"]["numpy"] == np.__version__


@pytest.mark.parametrize("name", ["assignments.csv", "clusters.json"])
def test_reference_scorer_reads_the_report(written, tmp_path: Path, name: str) -> None:
    _, out, _ = written
    truth = tmp_path / "truth.tsv"
    truth.write_text("id\tstory\n" + "".join(f"{k}\t{v}\n" for k, v in STORY.items()))
    proc = subprocess.run(
        [sys.executable, str(SCORER), str(out / name), str(truth), "--min-f1", "1.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "missing=0" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "pairwise_f1=1.0000"


def test_rewriting_gives_identical_files(written) -> None:
    result, out, _ = written
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_report(result, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_format_summary(written) -> None:
    result, out, _ = written
    text = format_summary(result, out)
    assert "documents in      8  (assigned 6, skipped 2)" in text
    assert "3 duplicates to drop" in text
    assert str(out) in text
    assert "WARNING" not in text


def test_cluster_ids_are_zero_padded_and_widen() -> None:
    assert cluster_ids(SimpleNamespace(labels=np.array([1, 0, 2]))) == ["c0001", "c0002", "c0003"]
    many = cluster_ids(SimpleNamespace(labels=np.arange(12345)))
    assert many[0] == "c00001" and many[-1] == "c12345"
    assert cluster_ids(SimpleNamespace(labels=np.zeros(0, dtype=np.int64))) == []


def test_write_json_streams_one_key_and_one_list_item_a_line(written) -> None:
    """clusters.json is written value by value: it reads back as the document, with
    each top-level key, and each item of a top-level list, on a line of its own."""
    _result, out, _ = written
    documents = [
        json.loads((out / "clusters.json").read_text(encoding="utf-8")),
        json.loads((out / "run.json").read_text(encoding="utf-8")),
        {},
        {"empty": [], "none": None, "text": 'a\nb "ü" 中', "nested": [[1, {"x": []}], {}]},
        {"clusters": [{"members": ["a", "b"], "links": []}, {"members": []}]},
    ]
    for document in documents:
        handle = io.BytesIO()
        write_json(document, handle)
        text = handle.getvalue().decode("utf-8")
        assert json.loads(text) == document and text.endswith("}\n")
        lines = text.splitlines()[1:-1]
        # a list opens on its key's line, an item a line, and closes on its own
        expected = [len(v) + 2 if isinstance(v, list) and v else 1 for v in document.values()]
        assert len(lines) == sum(expected)
    clusters = json.loads((out / "clusters.json").read_text(encoding="utf-8"))["clusters"]
    lines = (out / "clusters.json").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line.rstrip(",")) for line in lines if line.startswith("  {")] == clusters


def test_cluster_records_are_made_as_read_the_same_each_time() -> None:
    from dedup.stages.report import ClusterRecords
    from dedup.stages.report_views import render_html, render_markdown

    result = make_result()
    records = ClusterRecords(result)
    first = list(records)
    assert list(records) == first and len(records) == len(first) == 3
    assert [c["id"] for c in first] == cluster_ids(result)
    # a view asks for sizes and for the records it shows, one by one: the same records
    assert records.sizes() == [c["size"] for c in first]
    assert [records.record_at(rank) for rank in range(len(first))] == first
    report = {"summary": summary(result), "clusters": records}
    listed = {**report, "clusters": first}
    assert render_html(result, report) == render_html(result, listed)
    assert render_markdown(result, report) == render_markdown(result, listed)
    streamed, whole = io.BytesIO(), io.BytesIO()
    write_json(report, streamed)
    write_json(listed, whole)
    assert streamed.getvalue() == whole.getvalue()
    empty = dataclasses.replace(
        result, labels=np.zeros(0, dtype=np.int64), evidence=[], copy_joins=[]
    )
    written = io.BytesIO()
    write_json({"clusters": ClusterRecords(empty)}, written)
    assert json.loads(written.getvalue()) == {"clusters": []}


def test_a_cluster_left_as_it_was_is_copied_from_the_earlier_clusters_json(
    tmp_path: Path,
) -> None:
    """An addition's report copies the line of each cluster whose fingerprint the
    state's index holds; a cluster whose evidence or member language changed is made
    again; either way the files are those a full write gives."""
    from dedup.stages.report import ClusterLines, ClusterRecords
    from dedup.stages.report_views import render_html, render_markdown

    result = make_result()
    out = tmp_path / "state"
    write_report(result, out)
    earlier = ClusterLines.read(out)
    assert earlier is not None
    unchanged = ClusterRecords(result, earlier)

    def never(label: int) -> dict:
        raise AssertionError(f"cluster {label} made again")

    unchanged._record = never  # type: ignore[method-assign]
    copied = io.BytesIO()
    write_json({"summary": summary(result), "clusters": unchanged}, copied)
    assert copied.getvalue() == (out / "clusters.json").read_bytes()

    # the first story's strongest pair scored again, the second story's Russian
    # document read with another confidence: their clusters change, the third not
    evidence = list(result.evidence)
    evidence[0] = dataclasses.replace(evidence[0], score=0.8)
    segmented = list(result.segmented)
    segmented[1] = dataclasses.replace(segmented[1], language=LanguageGuess("ru", 0.5, "CYRILLIC"))
    changed = dataclasses.replace(result, evidence=evidence, segmented=segmented)
    fresh, reused = ClusterRecords(changed), ClusterRecords(changed, earlier)
    before = ClusterRecords(result).fingerprints
    kept = [a == b for a, b in zip(before, fresh.fingerprints, strict=True)]
    assert kept == [False, False, True]  # clusters in size order: s1, s2, then fa alone
    made = []

    def counted(label: int) -> dict:
        made.append(label)
        return ClusterRecords._record(reused, label)

    reused._record = counted  # type: ignore[method-assign]
    report = {"summary": summary(changed), "clusters": reused}
    whole = {"summary": summary(changed), "clusters": fresh}
    for view in (render_html, render_markdown):
        assert view(changed, report) == view(changed, whole)
    streamed, full = io.BytesIO(), io.BytesIO()
    write_json(report, streamed)
    write_json(whole, full)
    assert streamed.getvalue() == full.getvalue()
    assert sorted(set(made)) == [0, 1]  # the two changed clusters' labels
    earlier.close()
    # a span that does not point at its cluster's line (an index of another file) is
    # not copied: the record is made again
    index = np.load(out / "clusters.index.npy")
    index["start"] += 1
    np.save(out / "clusters.index.npy", index)
    shifted = ClusterLines.read(out)
    assert shifted is not None
    remade = ClusterRecords(result, shifted)
    assert list(remade) == list(ClusterRecords(result))
    shifted.close()
    # an index that does not fit its file is not trusted
    (out / "clusters.json").write_bytes(b"{}\n")
    assert ClusterLines.read(out) is None


def test_an_adopted_document_shows_why_in_every_file(tmp_path: Path) -> None:
    """A document joined without a link of its own (``cluster.adopt_alone``) has
    the figures that decided as its cluster's evidence: clusters.json, report.md
    and the data report.html renders."""
    labels = np.array([0, 1, 0, 1, 0, 0])  # fa (4) adopted by the first cluster
    result = dataclasses.replace(
        make_result(),
        labels=labels,
        adoptions=[Adoption(4, 0, 0.3312, 0.1204, 0.18, 3, 3)],
    )
    result = dataclasses.replace(
        result,
        representatives=choose_representatives(labels, result.segmented, result.usable),
    )
    out = tmp_path / "out"
    write_report(result, out)
    data = json.loads((out / "clusters.json").read_text(encoding="utf-8"))
    first = data["clusters"][0]
    (adopted,) = [link for link in first["links"] if link["kind"] == "adopted"]
    assert (adopted["left"], adopted["right"]) == ("el/000", "fa")
    assert (adopted["agreement"], adopted["next_best"], adopted["bar"]) == (0.3312, 0.1204, 0.18)
    assert (adopted["scored"], adopted["members"], adopted["aligned"]) == (3, 3, [])
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "**fa** (fa) has no link of its own and was adopted: agreement 0.331" in markdown
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '"kind": "adopted"' in html or '"kind":"adopted"' in html
    assert "its next best 0.120" in html
    assert adopted["beside"] is None and "beside" not in markdown

    # joined beside a member of its language label (cluster._sibling_vetoes): named
    result = dataclasses.replace(
        result, adoptions=[Adoption(4, 0, 0.3312, 0.1204, 0.18, 3, 3, 2, 0.21, 0.14)]
    )
    write_report(result, out)
    data = json.loads((out / "clusters.json").read_text(encoding="utf-8"))
    (adopted,) = [link for link in data["clusters"][0]["links"] if link["kind"] == "adopted"]
    assert (adopted["beside"], adopted["beside_score"], adopted["beside_value"]) == (
        result.ids[2],
        0.21,
        0.14,
    )
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert f"beside {result.ids[2]} of its language label: pair score 0.210" in markdown
