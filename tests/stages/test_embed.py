"""embed: the cache mechanics (a counting stand-in encoder; no claim about quality)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from dedup.stages import embed
from dedup.stages.embed import EmbeddingCache, embed_sentences

DIM = 8


class CountingEncoder:
    """Deterministic pseudo-vectors per text; records every text it is asked to encode."""

    def __init__(self, fingerprint: str = "fake-model/1", dim: int = DIM) -> None:
        self.fingerprint = fingerprint
        self.dim = dim
        self.calls: list[list[str]] = []

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vec = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return vec / np.linalg.norm(vec)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dim))


SENTENCES = ["alpha", "beta", "alpha", "gamma", "beta", "délta"]


def _cache(root: Path, encoder: CountingEncoder) -> EmbeddingCache:
    return EmbeddingCache(root, encoder.fingerprint, encoder.dim)


def test_duplicates_are_encoded_once(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    vectors, encoded = embed_sentences(SENTENCES, encoder, _cache(tmp_path, encoder))
    assert encoded == 4
    assert sorted(encoder.encoded) == ["alpha", "beta", "délta", "gamma"]
    assert vectors.shape == (len(SENTENCES), DIM) and vectors.dtype == np.float32
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[1], vectors[4])
    for row, text in enumerate(SENTENCES):  # float16 storage: about 3 decimal digits
        np.testing.assert_allclose(vectors[row], encoder.vector(text), atol=2e-3)


def test_second_call_encodes_nothing_and_returns_the_same_vectors(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = _cache(tmp_path, encoder)
    first, _ = embed_sentences(SENTENCES, encoder, cache)
    encoder.calls.clear()
    second, encoded = embed_sentences(list(reversed(SENTENCES)), encoder, cache)
    assert encoded == 0 and encoder.calls == []
    # a cold and a warm cache must give identical vectors, or a re-run could cluster differently
    assert np.array_equal(second, first[::-1])


def test_new_instance_on_the_same_folder_finds_the_shards(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    first, _ = embed_sentences(SENTENCES, encoder, _cache(tmp_path, encoder))

    again = CountingEncoder()
    cache = _cache(tmp_path, again)
    assert len(cache) == 4
    vectors, encoded = embed_sentences([*SENTENCES, "epsilon"], again, cache)
    assert encoded == 1 and again.encoded == ["epsilon"]
    assert np.array_equal(vectors[: len(SENTENCES)], first)
    assert len(_cache(tmp_path, again)) == 5


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
def test_reading_cached_vectors_leaves_no_shard_mapped(tmp_path: Path) -> None:
    """A mapped shard's pages count in the process's memory for as long as the map
    is open: a warm run over 1.27 million cached sentences held ~1 GB of them."""
    encoder = CountingEncoder()
    first, _ = embed_sentences(SENTENCES, encoder, _cache(tmp_path, encoder))
    cache = _cache(tmp_path, encoder)
    again, encoded = embed_sentences(SENTENCES, encoder, cache)
    assert encoded == 0 and np.array_equal(again, first)
    assert ".vecs.npy" not in Path("/proc/self/maps").read_text()


def test_stray_temp_file_and_orphan_keys_are_ignored(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = _cache(tmp_path, encoder)
    embed_sentences(SENTENCES, encoder, cache)
    folder = cache.folder
    # what a run killed mid-write can leave: a temp file, and a keys file without vectors
    (folder / "tmpabc123.tmp").write_bytes(b"\x93NUMPY half a file")
    keys = np.frombuffer(cache.key("orphan") + cache.key("zeta"), dtype="V16")
    np.save(folder / "0123456789abcdef0123.keys.npy", keys)
    # and a pair whose vectors file is torn
    np.save(folder / "fedcba9876543210fedc.keys.npy", np.frombuffer(cache.key("eta"), "V16"))
    (folder / "fedcba9876543210fedc.vecs.npy").write_bytes(b"\x93NUMPY torn")

    reopened = _cache(tmp_path, encoder)
    assert len(reopened) == 4
    assert reopened.get(cache.key("orphan")) is None
    encoder.calls.clear()
    _, encoded = embed_sentences(["zeta", "eta", "alpha"], encoder, reopened)
    assert encoded == 2 and sorted(encoder.encoded) == ["eta", "zeta"]


def test_shard_of_another_dimension_is_ignored(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    embed_sentences(SENTENCES, encoder, _cache(tmp_path, encoder))
    assert len(EmbeddingCache(tmp_path, encoder.fingerprint, DIM + 1)) == 0


def test_different_fingerprint_gets_a_separate_folder(tmp_path: Path) -> None:
    one, two = CountingEncoder("model-a"), CountingEncoder("model-b")
    cache_one = _cache(tmp_path, one)
    embed_sentences(SENTENCES, one, cache_one)
    cache_two = _cache(tmp_path, two)
    assert cache_two.folder != cache_one.folder
    assert cache_two.folder.parent == cache_one.folder.parent == tmp_path
    assert len(cache_two) == 0
    _, encoded = embed_sentences(SENTENCES, two, cache_two)
    assert encoded == 4 and len(two.encoded) == 4


def test_shards_are_flushed_every_shard_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embed, "SHARD_ROWS", 3)
    encoder = CountingEncoder()
    cache = _cache(tmp_path, encoder)
    sizes: list[int] = []
    texts = [f"sentence {i}" for i in range(7)]
    _, encoded = embed_sentences(texts, encoder, cache, on_batch=sizes.append)
    assert encoded == 7 and sizes == [3, 3, 1]
    assert [len(c) for c in encoder.calls] == [3, 3, 1]
    assert len(list(cache.folder.glob("*.keys.npy"))) == 3
    assert len(list(cache.folder.glob("*.vecs.npy"))) == 3
    assert not list(cache.folder.glob("*.tmp"))


def test_without_a_cache_every_distinct_text_is_encoded_each_time() -> None:
    encoder = CountingEncoder()
    vectors, encoded = embed_sentences(SENTENCES, encoder)
    assert encoded == 4
    np.testing.assert_array_equal(vectors[3], encoder.vector("gamma"))
    _, encoded = embed_sentences(SENTENCES, encoder)
    assert encoded == 4


def test_empty_input(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    vectors, encoded = embed_sentences([], encoder, _cache(tmp_path, encoder))
    assert vectors.shape == (0, DIM) and encoded == 0 and encoder.calls == []


def test_vector_writer_fills_a_file_that_vector_file_and_numpy_read(tmp_path: Path) -> None:
    """Rows written in any order, a slice or scattered, one row broadcast or many, across
    buffer flushes; unwritten rows are zeros."""
    from dedup.stages.embed import VectorFile, VectorWriter

    rng = np.random.default_rng(0)
    expected = np.zeros((300, 8), dtype=np.float16)
    path = tmp_path / "vectors.npy"
    writer = VectorFile.create(path, 300, 8)
    writer.BUFFER_ROWS = 40  # several flushes
    expected[10:60] = block = rng.standard_normal((50, 8)).astype(np.float16)
    writer[10:60] = block
    scattered = rng.permutation(np.arange(100, 300))[:150]
    for rows in np.array_split(scattered, 7):
        values = rng.standard_normal((len(rows), 8)).astype(np.float16)
        writer[rows] = values
        expected[rows] = values
    writer[[5, 7]] = np.ones(8)  # one row for both
    expected[[5, 7]] = 1
    writer.close()
    assert np.array_equal(np.load(path), expected)
    assert np.array_equal(VectorFile(path)[np.arange(300)], expected)
    with pytest.raises(ValueError, match="twice"):
        twice = VectorWriter(tmp_path / "twice.npy", 4, 8)
        twice[[1, 1]] = np.zeros(8)
        twice.flush()


def test_a_temporary_float32_vector_file_reads_what_was_written_and_pickles_as_its_rows(
    tmp_path: Path,
) -> None:
    """The run's document vectors: no path (nothing left behind), float32 kept exactly,
    ``numpy.asarray`` reads every row, and a pickle carries the rows themselves."""
    import pickle

    from dedup.stages.embed import VectorFile

    rows = np.random.default_rng(2).standard_normal((500, 6)).astype(np.float32)
    writer, vectors = VectorFile.temporary(500, 6, np.float32, tmp_path)
    writer.BUFFER_ROWS = 64
    for start in range(0, 500, 90):
        writer[start : start + 90] = rows[start : start + 90]
    writer.close()
    assert list(tmp_path.iterdir()) == []  # unnamed
    assert vectors.dtype == np.float32 and vectors.shape == (500, 6)
    assert np.array_equal(vectors[np.array([3, 4, 5, 499, 0])], rows[[3, 4, 5, 499, 0]])
    assert np.array_equal(np.asarray(vectors), rows)
    copied = pickle.loads(pickle.dumps(vectors))
    assert copied.path is None and np.array_equal(copied[:], rows)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_vector_file_reads_rows_in_any_order_with_repeats_and_runs(
    tmp_path: Path, dtype: type[np.floating]
) -> None:
    """Rows asked for in any order, with repeats, gaps and runs, read as ``rows[index]``;
    indices outside the file are an error."""
    from dedup.stages.embed import VectorFile

    rng = np.random.default_rng(5)
    rows = rng.standard_normal((2_000, 3)).astype(dtype)
    writer, vectors = VectorFile.temporary(*rows.shape, dtype, tmp_path)
    writer[:] = rows
    writer.close()
    firsts, lengths = range(0, 2_000, 97), range(1, 22)
    runs = np.concatenate([np.arange(a, a + n) for a, n in zip(firsts, lengths, strict=True)])
    cases = [
        runs,
        rng.integers(0, 2_000, 700),
        np.sort(rng.integers(0, 2_000, 700)),
        np.array([1_999, 0, 0, 1_999]),
        np.arange(2_000),
        np.zeros(0, dtype=np.int64),
    ]
    for index in cases:
        read = vectors[index]
        assert read.dtype == dtype and np.array_equal(read, rows[index])
    with pytest.raises(IndexError):
        vectors[np.array([0, 2_000])]


def test_key_index_finds_keys_sharing_a_first_half_and_the_last_value_wins() -> None:
    from dedup.stages.embed import KeyIndex

    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**63, size=(500, 2), dtype=np.uint64)
    keys[10:20, 0] = keys[9, 0]  # eleven keys share one first half
    values = np.arange(500, dtype=np.int64)
    # a key made twice (a sentence in two shards): the later entry counts
    index = KeyIndex(np.concatenate([keys, keys[[3, 15]]]), np.r_[values, 1000, 1001])
    assert len(index) == 500
    expected = values.copy()
    expected[[3, 15]] = [1000, 1001]
    assert np.array_equal(index.find(keys[::-1]), expected[::-1])
    absent = keys[[9, 12]].copy()
    absent[:, 1] += np.uint64(1)  # a known first half, an unknown second one
    absent = np.vstack([absent, rng.integers(0, 2**63, size=(5, 2), dtype=np.uint64)])
    assert np.array_equal(index.find(absent), np.full(7, -1))
    empty = KeyIndex(np.zeros((0, 2), np.uint64), np.zeros(0, np.int64))
    assert np.array_equal(empty.find(keys[:3]), [-1, -1, -1])


def test_cached_vectors_are_read_from_many_shards_in_any_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embed, "SHARD_ROWS", 4)
    monkeypatch.setattr(embed, "READ_ROWS", 3)
    encoder = CountingEncoder()
    texts = [f"sentence {i % 23}" for i in range(60)]  # 23 distinct, repeated
    first, encoded = embed_sentences(texts, encoder, _cache(tmp_path, encoder))
    assert encoded == 23 and len(list(_cache(tmp_path, encoder).folder.glob("*.keys.npy"))) == 6
    # first-occurrence order: the shards hold the texts in the order they came
    assert encoder.encoded == [f"sentence {i}" for i in range(23)]
    order = np.random.default_rng(2).permutation(60)
    again, encoded = embed_sentences([texts[i] for i in order], encoder, _cache(tmp_path, encoder))
    assert encoded == 0 and np.array_equal(again, first[order])


def test_the_saved_index_is_mapped_not_rebuilt_and_follows_added_and_pruned_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embed, "SHARD_ROWS", 3)
    encoder = CountingEncoder()
    texts = [f"sentence {i}" for i in range(9)]
    first, _ = embed_sentences(texts, encoder, _cache(tmp_path, encoder))
    folder = _cache(tmp_path, encoder).folder
    assert (folder / "index.json").is_file()
    loaded: list[str] = []
    real_load = np.load

    def counting_load(path: Path, *args: object, **kwargs: object) -> np.ndarray:
        loaded.append(Path(path).name)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", counting_load)
    reopened = _cache(tmp_path, encoder)
    assert len(reopened) == 9 and not [name for name in loaded if name.endswith(".keys.npy")]
    # a shard added by another run after the index was saved: its key file is read
    embed_sentences(["sentence 9"], encoder, _cache(tmp_path, encoder))
    loaded.clear()
    again, encoded = embed_sentences([*texts, "sentence 9"], encoder, _cache(tmp_path, encoder))
    assert encoded == 0 and np.array_equal(again[:9], first)
    # a pruned shard (both files gone): its sentences are encoded again, the rest are not
    shard = sorted(folder.glob("*.keys.npy"))[0]
    lost = {np.load(shard).tobytes()[i : i + 16] for i in range(0, 48, 16)}
    shard.unlink()
    shard.with_name(shard.name.replace(".keys.", ".vecs.")).unlink()
    encoder.calls.clear()
    after, encoded = embed_sentences(texts, encoder, _cache(tmp_path, encoder))
    keys = {_cache(tmp_path, encoder).key(text) for text in encoder.encoded}
    assert keys == lost and encoded == len(lost) == 3
    assert np.array_equal(after, first)
