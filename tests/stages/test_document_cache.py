"""Document cache: round trip, keys that follow the settings, and damaged or killed files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dedup import PipelineConfig, run
from dedup.records import LanguageGuess
from dedup.stages import copies, document_cache, langid
from dedup.stages.copies import CopyConfig, find_copies
from dedup.stages.document_cache import FILE_NAME, DocumentCache
from dedup.stages.segment import SegmenterConfig
from tests.stages.test_embed import CountingEncoder

REPO = Path(__file__).resolve().parents[2]
NTREX = REPO / "bench" / "data" / "ntrex-dev" / "corpus.jsonl"

TEXTS = ["Der Bürgermeister eröffnete die Brücke.", "市长周一为新桥揭幕。"]
GUESSES = [LanguageGuess("de", 0.99, "LATIN"), LanguageGuess("zh", 1.0, "CJK")]
SENTENCES = [("Der Bürgermeister eröffnete die Brücke.",), ("市长周一为新桥揭幕。", "第二句")]
DIGESTS = [b"a" * 16, b"b" * 16]


def _signatures(num_perm: int = 128) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    large = rng.integers(1 << 33, 1 << 62, num_perm, dtype=np.uint64)  # a 64-bit scheme
    return [small, large]


def _filled(folder: Path) -> None:
    with DocumentCache(folder) as cache:
        cache.add_languages(TEXTS, GUESSES)
        cache.add_sentences(TEXTS, [("de", "LATIN"), ("zh", "CJK")], SENTENCES, SegmenterConfig())
        cache.add_signatures(DIGESTS, _signatures(), CopyConfig())


def test_entries_come_back_as_they_went_in(tmp_path: Path) -> None:
    _filled(tmp_path)
    cache = DocumentCache(tmp_path)
    assert cache.languages(TEXTS) == GUESSES
    assert cache.sentences(TEXTS, [("de", "LATIN"), ("zh", "CJK")], SegmenterConfig()) == SENTENCES
    found = cache.signatures(DIGESTS, CopyConfig())
    for got, want in zip(found, _signatures(), strict=True):
        assert got is not None and np.array_equal(got, want)
    assert found[0].dtype == np.dtype("<u4") and found[1].dtype == np.dtype("<u8")
    assert cache.languages(["not cached"]) == [None]
    assert list(cache.summary()) == [("languages", 2, 3), ("sentences", 2, 2), ("signatures", 2, 2)]


def test_nothing_is_written_before_commit(tmp_path: Path) -> None:
    cache = DocumentCache(tmp_path)
    cache.add_languages(TEXTS, GUESSES)
    assert DocumentCache(tmp_path).languages(TEXTS) == [None, None]
    cache.commit()
    assert DocumentCache(tmp_path).languages(TEXTS) == GUESSES


def test_keys_change_with_what_the_results_depend_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _filled(tmp_path)
    cache = DocumentCache(tmp_path)
    # the settings each result depends on
    assert cache.sentences(
        TEXTS, [("de", "LATIN"), ("zh", "CJK")], SegmenterConfig(max_chars=300)
    ) == [None, None]
    assert (
        cache.sentences(TEXTS, [("und", "LATIN"), ("zh", "CJK")], SegmenterConfig())[0] is None
    )  # other language
    # the same language, another script (see split_sentences): split again
    assert cache.sentences(TEXTS, [("de", "GREEK"), ("zh", "CJK")], SegmenterConfig())[0] is None
    assert cache.signatures(DIGESTS, CopyConfig(shingle=5)) == [None, None]
    assert cache.signatures(DIGESTS, CopyConfig(num_perm=64)) == [None, None]
    # ... and not on the others: the copy threshold only decides which signatures match
    assert all(s is not None for s in cache.signatures(DIGESTS, CopyConfig(threshold=0.8)))
    # another library version or format of the cache
    monkeypatch.setattr(document_cache, "library_version", lambda name: "0.0-other")
    assert DocumentCache(tmp_path).languages(TEXTS) == [None, None]
    monkeypatch.undo()
    monkeypatch.setattr(document_cache, "FORMAT", document_cache.FORMAT + 1)
    assert DocumentCache(tmp_path).languages(TEXTS) == [None, None]


def test_a_file_of_the_earlier_format_is_removed_when_the_cache_is_opened(
    tmp_path: Path,
) -> None:
    old = tmp_path / "documents-v1.sqlite"
    old.write_bytes(b"an earlier format")
    messages: list[str] = []
    cache = DocumentCache(tmp_path, log=messages.append)
    assert not old.exists() and any("earlier format" in m for m in messages)
    cache.add_languages(TEXTS, GUESSES)
    cache.commit()
    assert DocumentCache(tmp_path).languages(TEXTS) == GUESSES


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    _filled(tmp_path)
    path = tmp_path / FILE_NAME
    data = path.read_bytes()
    path.write_bytes(
        {"garbage": b"not a database" * 100, "truncated": data[:5000], "empty": b""}[damage]
    )
    messages: list[str] = []
    cache = DocumentCache(tmp_path, log=messages.append)
    found = cache.languages(TEXTS)
    assert found in ([None, None], GUESSES)  # an empty file is a valid empty database
    cache.add_languages(TEXTS, GUESSES)
    cache.commit()
    assert DocumentCache(tmp_path).languages(TEXTS) == GUESSES
    assert damage == "empty" or any("rebuilding" in m for m in messages)


def test_an_unusable_folder_means_no_cache(tmp_path: Path) -> None:
    (tmp_path / "documents").write_text("a file where the folder should be")
    messages: list[str] = []
    cache = DocumentCache(tmp_path / "documents", log=messages.append)
    assert not cache.usable and messages
    cache.add_languages(TEXTS, GUESSES)
    cache.commit()
    assert cache.languages(TEXTS) == [None, None]


_KILLED_AT_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from dedup.records import LanguageGuess
    from dedup.stages.document_cache import DocumentCache

    class KillAtCommit:  # the transaction's rows are written, its COMMIT never runs
        def __init__(self, db):
            self.db = db
        def execute(self, sql, *args):
            if sql == "COMMIT":
                os.kill(os.getpid(), signal.SIGKILL)
            return self.db.execute(sql, *args)
        def executemany(self, sql, rows):
            return self.db.executemany(sql, rows)

    cache = DocumentCache(Path(sys.argv[1]))
    cache._db = KillAtCommit(cache._db)
    cache.add_languages(["killed"], [LanguageGuess("en", 0.9, "LATIN")])
    cache.commit()
    """
)


def test_a_run_killed_while_writing_leaves_the_previous_entries(tmp_path: Path) -> None:
    _filled(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_COMMIT, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
    )
    assert proc.returncode == -9, proc.stderr
    cache = DocumentCache(tmp_path)
    assert cache.languages([*TEXTS, "killed"]) == [*GUESSES, None]
    assert cache.usable


# --- the stages with a cache -----------------------------------------------------------

ARTICLE = (
    "The mayor opened the new bridge over the river on Monday. Traffic in the old town "
    "is expected to ease within weeks. Work on the bridge took two years and cost 40 "
    "million euros, the city said. Residents welcomed the opening with a street party."
)


def test_find_copies_gives_the_same_groups_from_cached_signatures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [
        ARTICLE,
        ARTICLE.replace("Monday", "Tuesday"),
        ARTICLE.upper(),
        ARTICLE[: len(ARTICLE) // 2],
        "A different story about the weather.",
    ]
    keys = list("abcde")
    config = CopyConfig()
    without = find_copies(texts, keys, config)
    cold = find_copies(texts, keys, config, cache=(cache := DocumentCache(tmp_path)))
    cache.commit()
    computed: list[int] = []
    real = copies.minhash_signatures

    def counting(texts, config):
        computed.append(len(texts))
        return real(texts, config)

    monkeypatch.setattr(copies, "minhash_signatures", counting)
    warm = find_copies(texts, keys, config, cache=DocumentCache(tmp_path))
    grown = find_copies([*texts, ARTICLE + " Update."], [*keys, "f"], config, cache=cache)
    assert without.tolist() == cold.tolist() == warm.tolist() == [1, 1, 1, 3, 4]
    assert grown.tolist() == [5, 5, 5, 3, 4, 5]
    assert computed == [1]  # warm: nothing; grown: only the new text


def test_a_warm_run_gives_the_cold_result_and_computes_nothing_before_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = NTREX.read_text(encoding="utf-8").splitlines()[:24]
    docs = [json.loads(line) for line in lines]
    docs.append({**docs[0], "id": "repost"})  # an exact copy
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    config = PipelineConfig(cache_dir=tmp_path / "cache")
    cold = run(corpus, config, encoder=CountingEncoder())

    def unavailable(*_args: object) -> None:
        raise AssertionError("computed on a warm run")

    monkeypatch.setattr(copies, "minhash_signatures", unavailable)
    monkeypatch.setattr(langid, "identify", unavailable)
    warm = run(corpus, config, encoder=CountingEncoder())
    assert warm.labels.tolist() == cold.labels.tolist()
    assert warm.evidence == cold.evidence
    assert list(warm.segmented) == list(cold.segmented)
    assert warm.primary_of.tolist() == cold.primary_of.tolist()
    assert [cold.stages[s].cached for s in ("copies", "langid", "segment")] == [0, 0, 0]
    distinct = len({d["text"] for d in docs})
    assert warm.stages["copies"].cached == distinct
    assert warm.stages["langid"].cached == warm.stages["langid"].items == distinct
    assert warm.stages["segment"].cached == len(docs)


def test_a_run_over_a_damaged_cache_gives_the_same_result(tmp_path: Path) -> None:
    lines = NTREX.read_text(encoding="utf-8").splitlines()[:12]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n", "utf-8")
    config = PipelineConfig(cache_dir=tmp_path / "cache")
    first = run(corpus, config, encoder=CountingEncoder())
    (tmp_path / "cache" / "documents" / FILE_NAME).write_bytes(b"\0" * 4096)
    messages: list[str] = []
    again = run(corpus, config, encoder=CountingEncoder(), log=messages.append)
    assert again.labels.tolist() == first.labels.tolist() and again.evidence == first.evidence
    assert any("rebuilding" in m for m in messages)
    assert run(corpus, config, encoder=CountingEncoder()).stages["segment"].cached == 12


def test_a_stage_killed_mid_way_keeps_the_blocks_it_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fill commits every COMMIT_DOCUMENTS documents: what a kill leaves is read back."""
    monkeypatch.setattr(document_cache, "COMMIT_DOCUMENTS", 2)
    texts = [f"The council met on day {i} and approved the budget." for i in range(7)]
    calls: list[list[int]] = []

    def dies_on_third_block(block: list[int]) -> list[LanguageGuess]:
        calls.append(block)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies here
        return [langid.identify(texts[i]) for i in block]

    with pytest.raises(KeyboardInterrupt), DocumentCache(tmp_path) as cache:
        cache.fill(
            list(range(7)),
            dies_on_third_block,
            lambda block, guesses: cache.add_languages([texts[i] for i in block], guesses),
        )
    assert calls == [[0, 1], [2, 3], [4, 5]]
    with DocumentCache(tmp_path) as cache:
        found = cache.languages(texts)
    assert [guess is not None for guess in found] == [True] * 4 + [False] * 3
    assert found[0] == langid.identify(texts[0])
