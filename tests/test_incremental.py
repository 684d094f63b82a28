"""``dedup add``: stable cluster ids, the change log, and a state never half updated.

The id rules (:func:`dedup.stages.lineage.carry_ids`) are tested on made-up
clusterings; the state's mechanics (locks, commit, recovery, duplicates) on
documents whose vectors come from a stand-in encoder (exact reposts still
join their primary's cluster through the copies stage); the whole workflow,
with the real model, on the seeds, including a ``kill -9`` in the middle of
an addition and two additions at once.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import dedup
from dedup import PipelineConfig, add, run, write_report
from dedup.cli import main
from dedup.records import EvidenceTable
from dedup.stages.lineage import carry_ids, cluster_number
from dedup.state import (
    CHANGES,
    COMMITTED,
    DOCUMENTS,
    LOCK,
    PENDING,
    StateError,
    commit,
    locked,
    recover,
)
from tests.caches import cache_without_vectors
from tests.stages.test_embed import CountingEncoder

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"


# --- the id rules, on made-up clusterings -------------------------------------------


def _evidence(pairs: list[tuple[int, int, float]]) -> EvidenceTable:
    left, right, score = (np.array(column) for column in zip(*pairs, strict=True))
    return EvidenceTable(
        left.astype(np.int64), right.astype(np.int64), score.astype(np.float64), np.ones(len(left))
    )


def _carry(labels, previous, pairs, next_number=10):
    ids = [f"d{i}" for i in range(len(labels))]
    return carry_ids(ids, np.array(labels), previous, next_number, _evidence(pairs), 0.5)


def test_a_cluster_keeps_its_id_when_a_new_document_joins_it() -> None:
    # d0, d1 were c0003; d2 was c0007; d3 is new and links to d1
    lineage = _carry(
        [0, 0, 1, 0], {"d0": "c0003", "d1": "c0003", "d2": "c0007"}, [(0, 1, 0.9), (1, 3, 0.8)]
    )
    assert lineage.names == ["c0003", "c0007"]
    (joined,) = lineage.changes
    assert (joined.event, joined.cluster_id, joined.doc_ids) == ("joined", "c0003", ("d3",))
    assert joined.why == ({"left": "d1", "right": "d3", "score": 0.8},)
    assert lineage.next_number == 10  # no id given out


def test_a_merge_keeps_the_older_id_and_records_the_other_with_the_links() -> None:
    # c0005 (d0, d1) and c0002 (d2) meet through the new d3
    lineage = _carry(
        [0, 0, 0, 0],
        {"d0": "c0005", "d1": "c0005", "d2": "c0002"},
        [(0, 1, 0.9), (0, 3, 0.7), (2, 3, 0.6), (1, 2, 0.3)],
    )
    assert lineage.names == ["c0002"]  # the older (smaller number)
    merged, joined = lineage.changes
    assert (merged.event, merged.cluster_id, merged.merged_id) == ("merged", "c0002", "c0005")
    assert merged.doc_ids == ("d0", "d1")
    # the links that carry c0005's members to the rest (0.3 is below the threshold)
    assert merged.why == ({"left": "d0", "right": "d3", "score": 0.7},)
    assert (joined.event, joined.doc_ids) == ("joined", ("d3",))


def test_new_clusters_get_fresh_ids_after_every_id_given_out() -> None:
    lineage = _carry([1, 0, 0, 2], {"d0": "c0001"}, [(1, 2, 0.9)], next_number=8)
    assert lineage.names == ["c0008", "c0001", "c0009"]
    assert lineage.next_number == 10
    events = [(c.event, c.cluster_id, c.doc_ids) for c in lineage.changes]
    assert events == [("new", "c0008", ("d1", "d2")), ("new", "c0009", ("d3",))]


def test_a_split_keeps_the_id_with_the_larger_part_and_logs_every_move() -> None:
    # c0004 held d0, d1, d2; the re-clustering keeps d0, d1 together and d2 apart
    lineage = _carry([0, 0, 1], dict.fromkeys(["d0", "d1", "d2"], "c0004"), [(0, 1, 0.9)])
    assert lineage.names == ["c0004", "c0010"]
    (moved,) = lineage.changes
    assert (moved.event, moved.from_id, moved.cluster_id, moved.doc_ids) == (
        "moved",
        "c0004",
        "c0010",
        ("d2",),
    )


def test_every_document_whose_id_changed_is_in_the_log() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 30))
        old_labels = rng.integers(0, 6, n)
        old = {f"d{i}": f"c{int(label) + 1:04d}" for i, label in enumerate(old_labels)}
        known = {k: v for k, v in old.items() if rng.random() < 0.7}
        labels = rng.integers(0, 5, n)
        labels = np.unique(labels, return_inverse=True)[1]
        pairs = [(i, j, 0.9) for i in range(n) for j in range(i + 1, n) if labels[i] == labels[j]]
        lineage = _carry(labels, known, pairs or [(0, 1, 0.1)], next_number=100)
        logged = {d for c in lineage.changes for d in c.doc_ids}
        for i in range(n):
            doc, name = f"d{i}", lineage.names[labels[i]]
            if known.get(doc) != name:
                assert doc in logged
        assert len(set(lineage.names)) == len(lineage.names)  # one id per cluster
        fresh = [cluster_number(x) for x in lineage.names if x not in known.values()]
        assert all(number >= 100 for number in fresh)


# --- the state's mechanics (stand-in vectors: only copies cluster) -----------------


_WORDS = [
    "harbour",
    "council",
    "budget",
    "storm",
    "vote",
    "river",
    "school",
    "bridge",
    "market",
    "strike",
    "train",
]


def _records(names: list[str]) -> list[dict[str, str]]:
    """One made-up story per name, no two alike (a copy is only a repost)."""

    def text(name: str) -> str:
        rng = random.Random(name)
        return " ".join(
            " ".join(rng.choices(_WORDS, k=9)).capitalize() + f" {rng.randrange(10**6)}."
            for _ in range(3)
        )

    return [{"id": name, "text": text(name)} for name in names]


def _state(tmp_path: Path, records: list[dict[str, str]]) -> tuple[Path, PipelineConfig]:
    config = PipelineConfig(cache_dir=tmp_path / "cache")
    state = tmp_path / "state"
    write_report(run(records, config, encoder=CountingEncoder()), state)
    return state, config


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a state but its (empty) lock file."""
    return {
        p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != LOCK
    }


def test_a_repost_joins_its_original_and_a_present_record_is_listed(tmp_path: Path) -> None:
    state, config = _state(tmp_path, _records(["a", "b", "c"]))
    before = _assignments(state)
    repost = {"id": "a-again", "text": _records(["a"])[0]["text"]}
    added = add(
        [repost, _records(["b"])[0], *_records(["z"])], state, config, encoder=CountingEncoder()
    )
    after = _assignments(state)
    assert {doc: after[doc] for doc in before} == before  # no old document moved
    assert after["a-again"] == after["a"]
    assert after["z"] not in before.values()  # a fresh id
    events = {(c.event, c.doc_ids) for c in added.changes}
    assert ("joined", ("a-again",)) in events
    assert ("new", ("z",)) in events
    assert ("present", ("b",)) in events
    log = [json.loads(line) for line in (state / CHANGES).read_text().splitlines()]
    joined = next(line for line in log if line["event"] == "joined")
    assert joined["addition"] == 1 and joined["cluster_id"] == after["a"]
    assert joined["why"][0]["copy_jaccard"] == 1.0
    assert added.counts()["present"] == 1 and added.counts()["new_documents"] == 2
    skipped = (state / "skipped.csv").read_text()
    assert "already in the state" in skipped and "(addition 1)" in skipped
    info = json.loads((state / "state.json").read_text())
    assert info["additions"] == 1 and info["documents_in"] == 3 + 3


def test_an_addition_appends_its_documents_to_the_states_copy(tmp_path: Path) -> None:
    """The state's documents file is copied, not packed again: its bytes start the new
    one, whose next gzip member holds the new documents (every field), in id order."""
    state, config = _state(tmp_path, _records(["a", "b", "c"]))
    before = (state / DOCUMENTS).read_bytes()
    fresh = [{**_records(["z"])[0], "title": "Zed", "extra": 7}, *_records(["m"])]
    add(fresh, state, config, encoder=CountingEncoder())
    after = (state / DOCUMENTS).read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    appended = gzip.decompress(after[len(before) :]).decode().splitlines()
    assert [json.loads(line) for line in appended] == [fresh[1], fresh[0]]
    every = [json.loads(line) for line in gzip.decompress(after).decode().splitlines()]
    assert [r["id"] for r in every] == ["a", "b", "c", "m", "z"]
    # a second addition reads them all back (the present one is recognised)
    again = add([fresh[0], *_records(["k"])], state, config, encoder=CountingEncoder())
    assert again.counts()["present"] == 1 and again.counts()["new_documents"] == 1
    assert len(_assignments(state)) == 6


def test_an_addition_copies_the_report_lines_of_the_clusters_it_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """clusters.json after an addition: the bytes a full write of its result gives,
    with only the clusters the new documents joined or started made again."""
    from dedup.stages.report import CLUSTER_INDEX, ClusterRecords, report_files

    names = [f"s{i:02d}" for i in range(12)]
    records = _records(names)
    reposts = [{"id": f"r{i}", "text": records[i]["text"]} for i in range(4)]
    state, config = _state(tmp_path, records + reposts)
    made: list[int] = []
    make = ClusterRecords._record

    def counted(self: ClusterRecords, label: int) -> dict:
        made.append(label)
        return make(self, label)

    monkeypatch.setattr(ClusterRecords, "_record", counted)
    repost = {"id": "r-new", "text": records[5]["text"]}
    added = add([repost, *_records(["z"])], state, config, encoder=CountingEncoder())
    clusters = json.loads((state / "clusters.json").read_text(encoding="utf-8"))["clusters"]
    # the cluster the repost joined and the new one; 12 - 4 + 1 others copied
    assert len(clusters) == 13 and len(set(made)) == 2
    again = tmp_path / "again"
    again.mkdir()
    for name, write in report_files(added.result).items():
        if name in ("clusters.json", CLUSTER_INDEX, "report.html", "report.md"):
            with (again / name).open("wb") as handle:
                write(handle)
            assert (again / name).read_bytes() == (state / name).read_bytes(), name
    # a state without the index (made by an older dedup): every record is made, and
    # the index written for the next addition
    (state / CLUSTER_INDEX).unlink()
    made.clear()
    add(_records(["y"]), state, config, encoder=CountingEncoder())
    assert len(set(made)) == 14 and (state / CLUSTER_INDEX).exists()


def _pairs_by_id(state: Path) -> dict[tuple[str, str], float]:
    """The state's ``evidence.npz`` as ``{(left id, right id): score}``."""
    evidence, extra = EvidenceTable.load(state / "evidence.npz")
    ids = extra["doc_ids"].tolist()
    return {
        (ids[a], ids[b]): s
        for a, b, s in zip(
            evidence.left.tolist(), evidence.right.tolist(), evidence.score.tolist(), strict=True
        )
    }


def test_an_addition_aligns_only_the_pairs_the_state_does_not_hold(tmp_path: Path) -> None:
    state, config = _state(tmp_path, _records([f"old{i}" for i in range(8)]))
    before = _pairs_by_id(state)
    assert before  # eight documents: every pair is a candidate
    # one document in eight: the statistics have not moved (REFRESH_GROWTH)
    added = add(_records(["new0"]), state, config, encoder=CountingEncoder())
    after = _pairs_by_id(state)
    # every earlier pair kept with its score; the new ones are pairs with the new document
    assert {pair: after[pair] for pair in before} == before
    assert all("new0" in pair for pair in after.keys() - before)
    assert added.result.stages["align"].cached == len(before)
    assert added.result.stages["align"].items == len(after)
    # only the new document searched: the search proposed its pairs alone (8 others;
    # all nine searching would propose all 36 pairs)
    assert 0 < added.result.stages["candidates"].items <= 8
    # four more: the corpus grew by half, its statistics moved, every pair is scored again
    grown = add(
        _records([f"new{i}" for i in range(1, 5)]), state, config, encoder=CountingEncoder()
    )
    assert not grown.result.stages["align"].cached


def test_a_state_without_evidence_is_aligned_whole_and_one_unreadable_is_an_error(
    tmp_path: Path,
) -> None:
    state, config = _state(tmp_path, _records([f"old{i}" for i in range(8)]))
    (state / "evidence.npz").unlink()  # a state an older dedup made
    said: list[str] = []
    added = add(_records(["new0"]), state, config, encoder=CountingEncoder(), log=said.append)
    assert any("no evidence.npz" in line for line in said)
    assert not added.result.stages["align"].cached
    assert _pairs_by_id(state)  # written again for the next addition
    (state / "evidence.npz").write_bytes(b"torn")
    before = _files(state)
    with pytest.raises(StateError, match=r"evidence\.npz: unreadable"):
        add(_records(["new1"]), state, config, encoder=CountingEncoder())
    assert _files(state) == before


def test_a_changed_text_under_a_known_id_is_an_error_and_nothing_changes(
    tmp_path: Path,
) -> None:
    state, config = _state(tmp_path, _records(["a", "b"]))
    before = _files(state)
    changed = {"id": "b", "text": "Another text under the same id."}
    with pytest.raises(StateError, match=r"'b' is in .* with another text"):
        add([*_records(["c"]), changed], state, config, encoder=CountingEncoder())
    assert _files(state) == before


def test_an_addition_needs_the_states_settings_and_model(tmp_path: Path) -> None:
    state, config = _state(tmp_path, _records(["a"]))
    before = _files(state)
    other = PipelineConfig(cache_dir=config.cache_dir, prefer_languages=("de",))
    with pytest.raises(StateError, match="other settings"):
        add(_records(["b"]), state, other, encoder=CountingEncoder())
    with pytest.raises(StateError, match="fingerprint"):
        add(_records(["b"]), state, config, encoder=CountingEncoder("another-model/2"))
    with pytest.raises(StateError, match="not a dedup state"):
        add(_records(["b"]), tmp_path / "nowhere", config, encoder=CountingEncoder())
    assert not (tmp_path / "nowhere").exists()  # nothing made for a mistyped path
    assert _files(state) == before


def test_a_second_addition_while_one_holds_the_state_is_refused(tmp_path: Path) -> None:
    state, config = _state(tmp_path, _records(["a"]))
    before = _files(state)
    with locked(state), pytest.raises(StateError, match="another dedup add"):
        add(_records(["b"]), state, config, encoder=CountingEncoder())
    result = run(_records(["a", "b"]), config, encoder=CountingEncoder())
    with locked(state), pytest.raises(StateError, match="another dedup add"):
        write_report(result, state)  # nor a dedup run --out into it
    assert _files(state) == before


def test_ten_additions_give_the_one_shot_clusters_with_stable_ids(tmp_path: Path) -> None:
    names = [f"s{i:02d}" for i in range(30)]
    records = _records(names)
    # reposts: some of an earlier batch's story, some of a later one's
    reposts = [{"id": f"r{i:02d}", "text": records[(i * 7) % 30]["text"]} for i in range(10)]
    everything = records + reposts
    random.Random(5).shuffle(everything)
    batches = [everything[i::11] for i in range(11)]
    state, config = _state(tmp_path, batches[0])
    ids_seen: dict[str, str] = {}
    for batch in batches[1:]:
        add(batch, state, config, encoder=CountingEncoder())
        now = _assignments(state)
        assert all(now[doc] == cluster for doc, cluster in ids_seen.items())  # no move
        ids_seen = now
    one_shot = run(everything, config, encoder=CountingEncoder())
    grouped = {frozenset(c.members) for c in one_shot.clusters()}
    by_id: dict[str, set[str]] = {}
    for doc, cluster in _assignments(state).items():
        by_id.setdefault(cluster, set()).add(doc)
    assert {frozenset(m) for m in by_id.values()} == grouped
    assert len(_assignments(state)) == len(everything)


# --- commit and recovery ------------------------------------------------------------


def _writer(text: str):
    return lambda handle: handle.write(text.encode())


def test_a_commit_killed_between_its_renames_is_finished_by_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / name).write_text("old")
    real_replace = os.replace

    def dying_replace(src, dst):  # killed after moving "a" into place, before "b"
        if Path(dst) == folder / "b":
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        commit(folder, {name: _writer("new") for name in ("a", "b", "c")})
    monkeypatch.setattr(os, "replace", real_replace)
    assert (folder / PENDING / COMMITTED).exists()
    assert [(folder / n).read_text() for n in "abc"] == ["new", "old", "old"]  # half moved
    assert recover(folder) == "finished"
    assert {p.name: p.read_text() for p in folder.iterdir()} == dict.fromkeys("abc", "new")


def test_a_commit_killed_before_it_was_complete_is_rolled_back(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "a").write_text("old")

    def dies(_handle):
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        commit(folder, {"a": _writer("new"), "b": dies})
    assert recover(folder) == "rolled back"
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a": "old"}
    assert recover(folder) is None


# --- the workflow with the real model, on the seeds -------------------------------


def _assignments(state: Path) -> dict[str, str]:
    lines = (state / "assignments.csv").read_text(encoding="utf-8").splitlines()[1:]
    return {line.split(",")[0]: line.split(",")[1] for line in lines}


def _seed_files(tmp_path: Path) -> tuple[Path, Path]:
    """The seeds as an archive without the English Vinh Yen article, and a batch with it
    (and a record the archive already holds)."""
    records = [
        {"id": p.stem, "text": p.read_text(encoding="utf-8")} for p in sorted(SEEDS.glob("*.txt"))
    ]
    english = next(r for r in records if r["id"].startswith("002_"))
    archive = [r for r in records if r is not english]
    lines = lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # noqa: E731
    (tmp_path / "archive.jsonl").write_text(lines(archive), encoding="utf-8")
    (tmp_path / "today.jsonl").write_text(lines([english, archive[0]]), encoding="utf-8")
    return tmp_path / "archive.jsonl", tmp_path / "today.jsonl"


@pytest.mark.slow
def test_dedup_add_on_the_seeds_joins_the_translation_to_its_cluster(
    tmp_path: Path, dedup_cache: Path
) -> None:
    archive, today = _seed_files(tmp_path)
    cache = ["--cache-dir", str(dedup_cache)]
    runner = CliRunner()
    state = tmp_path / "state"
    ran = runner.invoke(main, ["run", str(archive), "--out", str(state), "--quiet", *cache])
    assert ran.exit_code == 0, ran.output
    before = _assignments(state)
    added = runner.invoke(main, ["add", str(today), "--to", str(state), *cache])
    assert added.exit_code == 0, added.output
    assert "1 new document(s), 1 already present" in added.output
    after = _assignments(state)
    assert {doc: after[doc] for doc in before} == before
    assert after["002_20e4596e9ffa5474"] == after["000_814e0ab8402dad44"]  # el + en
    (joined,) = [
        json.loads(x) for x in (state / CHANGES).read_text().splitlines() if '"joined"' in x
    ]
    assert joined["doc_ids"] == ["002_20e4596e9ffa5474"]
    assert joined["why"][0]["score"] >= 0.45
    # the same clusters as one run over everything
    whole = tmp_path / "whole"
    runner.invoke(main, ["run", str(SEEDS), "--out", str(whole), "--quiet", *cache])
    groups = lambda a: {frozenset(d for d in a if a[d] == c) for c in a.values()}  # noqa: E731
    assert groups(_assignments(whole)) == groups(after)
    again = runner.invoke(main, ["add", str(today), "--to", str(state), "--quiet", *cache])
    assert again.exit_code == 0 and _assignments(state) == after  # both present now


_KILLABLE = """
import sys
from dedup import PipelineConfig, add
add(sys.argv[1], sys.argv[2], PipelineConfig(cache_dir=sys.argv[3]))
"""


def _start_add(script: Path, batch: Path, state: Path, cache: Path) -> subprocess.Popen:
    """Run an addition in a child process; return once it holds the state's lock (its
    imports done, its work begun: the lock file appears)."""
    (state / LOCK).unlink(missing_ok=True)  # left by an earlier (dead) holder
    proc = subprocess.Popen([sys.executable, str(script), str(batch), str(state), str(cache)])
    while not (state / LOCK).exists() and proc.poll() is None:
        time.sleep(0.005)
    return proc


@pytest.mark.slow
def test_kill_during_add_leaves_the_old_state_or_the_new_one(
    tmp_path: Path, dedup_cache: Path
) -> None:
    archive, today = _seed_files(tmp_path)
    cache = cache_without_vectors(tmp_path / "cache", dedup_cache)
    state, reference = tmp_path / "state", tmp_path / "reference"
    config = PipelineConfig(cache_dir=cache)
    write_report(run(str(archive), config), state)
    write_report(run(str(archive), config), reference)
    old = _files(state)
    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE)
    proc = _start_add(script, today, reference, cache)
    start = time.perf_counter()
    assert proc.wait() == 0
    took = time.perf_counter() - start  # from taking the lock to the end
    new = _assignments(reference)
    assert new != _assignments(state)
    outcomes = []
    for attempt in range(4):
        proc = _start_add(script, today, state, cache)
        time.sleep(random.Random(attempt).uniform(0, took))
        proc.kill()
        proc.wait()
        committed = _assignments(state) == new
        assert committed or _files(state) == old, "a half-updated state"
        outcomes.append(committed)
        if committed:
            break
    add(str(today), state, config)  # finishes or undoes what the kill left, then adds
    assert _assignments(state) == new
    assert not (state / PENDING).exists()
    log = [json.loads(line) for line in (state / CHANGES).read_text().splitlines()]
    assert [line["doc_ids"] for line in log if line["event"] == "joined"] == [
        ["002_20e4596e9ffa5474"]
    ], f"kills: {outcomes}"  # the addition happened once


@pytest.mark.slow
def test_two_adds_at_once_one_waits_its_turn_or_is_refused(
    tmp_path: Path, dedup_cache: Path
) -> None:
    archive, today = _seed_files(tmp_path)
    state = tmp_path / "state"
    config = PipelineConfig(cache_dir=dedup_cache)
    write_report(run(str(archive), config), state)
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps({"id": "brief", "text": "A short unrelated brief."}) + "\n")
    procs = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dedup"),
                "add",
                str(batch),
                "--to",
                str(state),
                "--quiet",
                "--cache-dir",
                str(dedup_cache),
            ],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in (today, second)
    ]
    outcomes = [(p.wait(), p.stderr.read()) for p in procs]
    assert any(code == 0 for code, _ in outcomes)
    for code, err in outcomes:
        assert code == 0 or (code == 2 and "another dedup add" in err), err
    info = json.loads((state / "state.json").read_text())
    assert info["additions"] == sum(1 for code, _ in outcomes if code == 0)
    docs = _assignments(state)
    assert ("002_20e4596e9ffa5474" in docs) == (outcomes[0][0] == 0)
    assert ("brief" in docs) == (outcomes[1][0] == 0)


def test_the_command_names_a_missing_state_and_explains_itself(tmp_path: Path) -> None:
    feed = tmp_path / "today.jsonl"
    feed.write_text(json.dumps({"id": "a", "text": "A brief."}) + "\n")
    runner = CliRunner()
    missing = runner.invoke(main, ["add", str(feed), "--to", str(tmp_path / "state")])
    assert missing.exit_code == 2
    assert "not a dedup state (no state.json); make one with dedup run" in missing.output
    helped = runner.invoke(main, ["add", "--help"])
    assert helped.exit_code == 0 and "Existing clusters keep their ids" in helped.output
    assert "--model" not in helped.output and "--cache-dir" in helped.output


def test_the_package_exports_add() -> None:
    assert dedup.add is add and "add" in dedup.__all__
