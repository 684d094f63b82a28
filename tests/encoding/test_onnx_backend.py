"""The ONNX Runtime backends: same tokens, nearly the same vectors, faster; chosen and keyed.

The quality tests of the default backend (``e5_fast``, OpenVINO int8 since stop 34)
live here too: the same bars hold for every fast backend.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dedup.encoding import Encoder, load_profiles
from dedup.encoding.encoder import (
    BACKEND_ENV,
    ONNX_MAX_ROWS,
    ONNX_RUN_TOKENS,
    backend_folder,
    onnx_rows,
)
from dedup.encoding.onnx_backend import (
    META_FILE,
    MODEL_FILE,
    TABLE_FILE,
    TOKENIZER_FILE,
    BackendUnsupportedError,
    OnnxModel,
    check_supported,
    padded_batch,
)
from dedup.encoding.registry import resolve

# The quality bar of issue 8: cosine of the fast backend's vectors to fp32 torch's.
MIN_COSINE = 0.99


def test_padded_batch_right_pads_in_order() -> None:
    ids, mask = padded_batch([[5, 6, 7], [8], [9, 10]], pad_id=1)
    assert ids.dtype == mask.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1], [9, 10, 1]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def _module(name: str, **config) -> object:
    return type(name, (), {"get_config_dict": lambda self: config})()


def test_only_transformer_then_mean_pooling_is_supported() -> None:
    check_supported([_module("Transformer"), _module("Pooling", pooling_mode="mean")])
    check_supported(
        [_module("Transformer"), _module("Pooling", pooling_mode="mean"), _module("Normalize")]
    )
    with pytest.raises(BackendUnsupportedError, match="mean pooling"):
        check_supported([_module("Transformer"), _module("Pooling", pooling_mode="cls")])
    with pytest.raises(BackendUnsupportedError, match="Dense"):
        check_supported(
            [_module("Transformer"), _module("Pooling", pooling_mode="mean"), _module("Dense")]
        )


def test_unknown_backend_is_refused(
    e5_folder: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="backend"):
        Encoder(cache_dir=model_cache, backend="tensorrt")
    monkeypatch.setenv(BACKEND_ENV, "fast")
    with pytest.raises(ValueError, match=BACKEND_ENV):
        Encoder(cache_dir=model_cache)


def test_onnx_folder_sits_next_to_the_converted_model(e5_folder: Path, model_cache: Path) -> None:
    resolved = resolve(cache_dir=model_cache)
    folder = backend_folder(resolved, "onnx-int8", model_cache)
    assert folder.parent == e5_folder.parent
    assert folder.name.startswith(e5_folder.name + "-onnx-int8-")
    # a folder model: its folder name plus its weights digest
    other = SimpleNamespace(folder=Path("/x/model"), weights_id="abc123")
    assert backend_folder(other, "onnx", model_cache).name.startswith("model-abc123-onnx-")


def test_onnx_fp32_runs_a_fixed_row_count_per_width() -> None:
    """~ONNX_RUN_TOKENS tokens a run, 1 to ONNX_MAX_ROWS rows; never the batch size."""
    assert [onnx_rows(w) for w in (8, 16, 24, 32, 64, 128, 256, 512)] == [
        32, 16, 10, 8, 4, 2, 1, 1
    ]  # fmt: skip
    assert all(1 <= onnx_rows(w) <= ONNX_MAX_ROWS for w in range(8, 513, 8))
    assert all(onnx_rows(w) * w <= max(ONNX_RUN_TOKENS, w) for w in range(8, 513, 8))


@pytest.mark.slow
def test_default_backend_is_int8_openvino(e5_folder: Path, model_cache: Path, e5_fast: Encoder):
    assert load_profiles()["multilingual-e5-small"].backend == "openvino-int8"
    assert os.environ.get(BACKEND_ENV) is None
    enc = Encoder(cache_dir=model_cache)
    assert enc.backend == "openvino-int8" and enc.fingerprint == e5_fast.fingerprint


@pytest.mark.slow
def test_int8_backend_is_built_and_keyed_apart(
    e5_onnx_int8: Encoder, e5_fast: Encoder, e5_onnx: Encoder, e5: Encoder, e5_folder: Path
):
    int8 = e5_onnx_int8
    assert int8.backend == "onnx-int8" and e5_onnx.backend == "onnx" and e5.backend == "torch"
    assert (int8.dim, int8.max_tokens, int8.prefix) == (e5.dim, e5.max_tokens, e5.prefix)
    assert (e5_onnx.dim, e5_onnx.max_tokens, e5_onnx.prefix) == (e5.dim, e5.max_tokens, e5.prefix)
    # Another backend gives other vectors, so the embedding cache must not share them.
    prints = {int8.fingerprint, e5_fast.fingerprint, e5_onnx.fingerprint, e5.fingerprint}
    assert len(prints) == 4 and all(len(f) == 16 for f in prints)
    cache = e5_folder.parents[1]
    built = backend_folder(resolve(cache_dir=cache), "onnx-int8", cache)
    assert (built / MODEL_FILE).is_file() and (built / META_FILE).is_file()
    assert not list(built.parent.glob(f"{built.name}.tmp-*"))


@pytest.mark.slow
def test_the_word_table_lies_beside_the_graph_and_gives_the_same_vectors(
    e5_onnx_int8: Encoder, e5_folder: Path, tmp_path: Path
) -> None:
    """The built folder keeps the word-embedding table as external data: the graph
    file is small, the table file is the table. A folder with the table inside the
    graph (as built before) gives the same bytes."""
    import onnx

    cache = e5_folder.parents[1]
    built = backend_folder(resolve(cache_dir=cache), "onnx-int8", cache)
    assert (built / MODEL_FILE).stat().st_size < 64 << 20
    assert (built / TABLE_FILE).stat().st_size == 250_037 * 384 * 4
    inline = tmp_path / built.name
    inline.mkdir()
    onnx.save(onnx.load(str(built / MODEL_FILE)), str(inline / MODEL_FILE))  # table inside
    for name in (META_FILE, TOKENIZER_FILE):
        (inline / name).write_bytes((built / name).read_bytes())
    assert not (inline / TABLE_FILE).exists()
    apart, inside = OnnxModel(built, threads=1), OnnxModel(inline, threads=1)
    seqs = apart.tokenize(["Der Rat hat den Haushalt gebilligt.", "ሰላም", "x" * 300])
    ids, mask = padded_batch(seqs, apart.meta["pad_id"])
    assert apart.pooled(ids, mask).tobytes() == inside.pooled(ids, mask).tobytes()


@pytest.mark.slow
def test_environment_overrides_auto(
    e5_folder: Path, model_cache: Path, e5: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKEND_ENV, "torch")
    enc = Encoder(cache_dir=model_cache)
    assert enc.backend == "torch" and enc.fingerprint == e5.fingerprint


@pytest.mark.slow
def test_fast_backend_tokenizes_like_torch(e5_fast: Encoder, e5: Encoder, sample) -> None:
    texts = [row.text for row in sample] + ["", "x", "<unk> \u0301 \u200b", "Ω" * 600]
    assert e5_fast._content_ids(texts) == e5._content_ids(texts)
    assert e5_fast.token_counts(texts) == e5.token_counts(texts)


@pytest.fixture(scope="session")
def fast_sample_vectors(e5_fast: Encoder, sample) -> np.ndarray:
    return e5_fast.encode([row.text for row in sample])


@pytest.fixture(scope="session")
def torch_sample_vectors(e5: Encoder, sample) -> np.ndarray:
    return e5.encode([row.text for row in sample])


@pytest.mark.slow
def test_fast_backend_agrees_with_fp32_torch(
    sample, fast_sample_vectors: np.ndarray, torch_sample_vectors: np.ndarray
) -> None:
    fast, ref = fast_sample_vectors, torch_sample_vectors
    assert fast.shape == ref.shape == (len(sample), 384) and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cos = np.sum(fast * ref, axis=1)
    langs = sorted({row.lang for row in sample})
    worst = {
        lang: float(min(c for c, r in zip(cos, sample, strict=True) if r.lang == lang))
        for lang in langs
    }
    print(
        f"cosine int8 vs fp32 torch on {len(sample)} texts in {len(langs)} languages: "
        f"mean {cos.mean():.5f}, min {cos.min():.5f}; worst languages "
        f"{sorted(worst.items(), key=lambda kv: kv[1])[:3]}"
    )
    assert cos.mean() >= MIN_COSINE
    assert cos.min() >= MIN_COSINE


def _margins(sample, vectors: np.ndarray, source: str) -> list[float]:
    """For each ordered pair (A, B) of one group in two languages: sim(A, B) minus A's
    highest similarity to another group's text in B's language."""
    rows = [(i, r) for i, r in enumerate(sample) if r.source == source]
    margins = []
    for (i, a), (j, b) in itertools.permutations(rows, 2):
        if a.group != b.group or a.lang == b.lang:
            continue
        unrelated = [k for k, r in rows if r.lang == b.lang and r.group != a.group]
        if unrelated:
            margins.append(
                float(vectors[i] @ vectors[j] - max(vectors[i] @ vectors[k] for k in unrelated))
            )
    return margins


@pytest.mark.slow
def test_fast_backend_keeps_translations_closest(
    sample, fast_sample_vectors: np.ndarray, torch_sample_vectors: np.ndarray
) -> None:
    """Cross-lingual alignment survives int8.

    FLORES articles (true translations): every translation is closer than any
    other article in its language, as with fp32. NTREX lines (grouped by story,
    not aligned line by line): as many same-story pairs win as with fp32, and
    the nearest other-language text is of the same group as often.
    """
    flores = _margins(sample, fast_sample_vectors, "flores")
    print(f"FLORES: {len(flores)} translation pairs, smallest margin {min(flores):.3f}")
    assert len(flores) >= 50 and min(flores) > 0

    fast = _margins(sample, fast_sample_vectors, "ntrex")
    ref = _margins(sample, torch_sample_vectors, "ntrex")
    share = [np.mean([m > 0 for m in ms]) for ms in (fast, ref)]
    print(
        f"NTREX: same-story pair beats every other story: int8 {share[0]:.3f}, "
        f"fp32 {share[1]:.3f} of {len(fast)}"
    )
    assert share[0] >= share[1] - 0.01

    def nearest_is_same_group(vectors: np.ndarray) -> float:
        sims = vectors @ vectors.T
        hits = total = 0
        for i, row in enumerate(sample):
            others = [j for j, r in enumerate(sample) if r.lang != row.lang]
            if not any(sample[j].group == row.group for j in others):
                continue
            best = max(others, key=lambda j: sims[i, j])
            hits += sample[best].group == row.group
            total += 1
        return hits / total

    accuracy = [nearest_is_same_group(v) for v in (fast_sample_vectors, torch_sample_vectors)]
    print(
        f"nearest other-language text is of the same group: int8 {accuracy[0]:.3f}, "
        f"fp32 {accuracy[1]:.3f}"
    )
    assert accuracy[0] >= accuracy[1] - 0.03


@pytest.mark.slow
def test_onnx_int8_windows_and_batches(
    e5_onnx_int8: Encoder, e5: Encoder, model_cache: Path, sample
) -> None:
    e5_fast = e5_onnx_int8
    latin = ("eng_Latn", "deu_Latn", "spa_Latn")
    long_text = "\n".join(r.text for r in sample if r.source == "ntrex" and r.lang in latin)
    before = e5_fast.windowed_texts
    texts = ["short one", long_text, "", "x", sample[5].text]
    together = e5_fast.encode(texts)
    assert e5_fast.windowed_texts == before + 1
    # int8 activation scales are per run, so each window runs alone: a text's
    # vector is bit-identical whatever else is encoded with it (resume, Ray).
    alone = np.stack([e5_fast.encode([t])[0] for t in texts])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(e5_fast.encode(texts[::2]), together[::2])
    # a Ray worker runs one thread, the local engine one per core: the same bytes
    one_thread = Encoder(cache_dir=model_cache, backend="onnx-int8", threads=1)
    assert one_thread.encode(texts[::-1]).tobytes() == together[::-1].tobytes()
    assert np.sum(together * e5.encode(texts), axis=1).min() >= MIN_COSINE
    assert e5_fast.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_fp32_onnx_gives_torchs_vectors_bit_stable(
    e5_onnx: Encoder, model_cache: Path, sample, torch_sample_vectors: np.ndarray
) -> None:
    """fp32 ONNX: torch's vectors, and a text's bytes never depend on its batch.

    ONNX Runtime's last bits change with a tensor's row count, so the Encoder
    runs each width at one fixed shape (empty windows fill the last run).
    """
    texts = [row.text for row in sample]
    together = e5_onnx.encode(texts)
    cos = np.sum(together * torch_sample_vectors, axis=1)
    print(f"cosine fp32 onnx vs fp32 torch on {len(texts)} texts: min {cos.min():.7f}")
    assert cos.min() >= 0.99999
    latin = ("eng_Latn", "deu_Latn", "spa_Latn")
    long_text = "\n".join(r.text for r in sample if r.source == "ntrex" and r.lang in latin)
    texts += ["", "x", long_text]
    together = e5_onnx.encode(texts)
    rng = np.random.default_rng(0)
    picks = [*rng.choice(len(texts), 12, replace=False).tolist(), len(texts) - 1]
    alone = np.stack([e5_onnx.encode([texts[i]])[0] for i in picks])
    assert alone.tobytes() == together[picks].tobytes()
    subset = rng.permutation(len(texts))[: len(texts) // 3]
    try:
        e5_onnx.batch_size = 3  # does not apply: the run shapes are the backend's own
        assert e5_onnx.encode([texts[i] for i in subset]).tobytes() == together[subset].tobytes()
    finally:
        e5_onnx.batch_size = 32
    # a Ray worker runs one thread, the local engine one per core: the same bytes
    one_thread = Encoder(cache_dir=model_cache, backend="onnx", threads=1)
    assert one_thread.encode(texts[::-1]).tobytes() == together[::-1].tobytes()


@pytest.mark.slow
def test_onnxruntime_telemetry_stays_off(
    e5_onnx_int8: Encoder, model_cache: Path, tmp_path: Path
) -> None:
    """onnxruntime >= 1.29 on Linux writes a device id and events under ~/.cache/Microsoft
    and uploads them unless ORT_DISABLE_TELEMETRY is set before it starts."""
    code = (
        "from dedup.encoding import Encoder; import sys; "
        "Encoder(cache_dir=sys.argv[1], backend='onnx-int8').encode(['x'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME="")
    (tmp_path / "home").mkdir()
    subprocess.run([sys.executable, "-c", code, str(model_cache)], env=env, check=True, timeout=300)
    assert list((tmp_path / "home").rglob("*")) == []


@pytest.mark.slow
def test_onnx_fp32_export_of_another_model_matches_torch(
    minilm_folder: Path, tmp_path: Path, sample
) -> None:
    """The export is generic: MiniLM's fp32 ONNX gives torch's vectors; folders default to torch."""
    assert Encoder(str(minilm_folder), cache_dir=tmp_path).backend == "torch"
    ref = Encoder(str(minilm_folder), cache_dir=tmp_path, backend="torch")
    enc = Encoder(str(minilm_folder), cache_dir=tmp_path, backend="onnx")
    assert enc.backend == "onnx" and enc.fingerprint != ref.fingerprint
    assert (enc.dim, enc.max_tokens, enc.prefix) == (ref.dim, ref.max_tokens, ref.prefix)
    texts = [*[r.text for r in sample if r.lang == "eng_Latn"][:8], "", "x"]
    np.testing.assert_allclose(enc.encode(texts), ref.encode(texts), atol=2e-5)
    built = [p for p in (tmp_path / "models").glob("model-*-onnx-*") if p.is_dir()]
    assert len(built) == 1 and (built[0] / MODEL_FILE).is_file()
    # a second Encoder reuses the build
    again = Encoder(str(minilm_folder), cache_dir=tmp_path, backend="onnx")
    assert again.fingerprint == enc.fingerprint
