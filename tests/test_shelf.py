"""Records kept on disk (dedup.shelf): the sequences the stages take, read back as written."""

from __future__ import annotations

import pickle
import random
from operator import attrgetter
from pathlib import Path

import numpy as np
import pytest

from dedup import shelf as shelf_module
from dedup.records import Document, LanguageGuess, SegmentedDocument, SegmentedView
from dedup.shelf import FieldView, FlatRows, Picked, Shelf


def _documents(n: int) -> list[Document]:
    rng = random.Random(7)
    return [
        Document(
            id=f"d{i:04d}",
            text=" ".join(
                rng.choice(["ἀρχή", "word", "слово", "🔥", "\u200b"]) for _ in range(i % 50)
            ),
            origin=f"file:{i}",
            lang=None if i % 3 else "en",
            extra={"n": i, "tags": ["a"] * (i % 4)},
        )
        for i in range(n)
    ]


def test_a_shelf_reads_back_what_was_appended_by_index_slice_and_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shelf_module, "_BLOCK_BYTES", 512)  # many blocks, written and read
    documents = _documents(300)
    shelf = Shelf(documents[:100])
    shelf.extend(documents[100:])
    assert len(shelf) == 300
    assert list(shelf) == documents
    assert [shelf[i] for i in range(300)] == documents
    assert shelf[-1] == documents[-1]
    assert shelf[17:123] == documents[17:123]
    assert shelf[::7] == documents[::7]
    assert shelf[5:5] == []
    with pytest.raises(IndexError):
        shelf[300]
    shelf.append(documents[0])  # appended after reads: read back too
    assert shelf[300] == documents[0]
    assert len(list(shelf)) == 301


def test_views_read_in_the_order_and_field_asked() -> None:
    documents = _documents(50)
    shelf = Shelf(documents)
    order = np.array(sorted(range(50), key=lambda i: (-len(documents[i].text), i)))
    picked = Picked(shelf, order)
    assert list(picked) == [documents[i] for i in order]
    assert picked[3] == documents[order[3]]
    assert picked[2:9] == [documents[i] for i in order[2:9]]
    texts = FieldView(picked, lambda doc: doc.text)
    assert list(texts) == [documents[i].text for i in order]
    assert texts[-1] == documents[order[-1]].text


def test_a_reordered_shelf_holds_the_records_in_the_new_order() -> None:
    documents = _documents(200)
    shelf = Shelf(documents)
    order = np.random.default_rng(1).permutation(200)
    reordered = shelf.reordered(order)
    assert isinstance(reordered, Shelf)
    assert list(reordered) == [documents[i] for i in order]
    assert list(shelf) == documents  # the first one is unchanged


def test_flat_rows_are_the_sentences_of_the_documents_picked() -> None:
    rng = random.Random(3)
    per_doc = [tuple(f"s{d}.{k}" for k in range(rng.randint(0, 5))) for d in range(40)]
    shelf = Shelf(per_doc)
    offsets = np.cumsum([0] + [len(s) for s in per_doc])
    flat = [s for sentences in per_doc for s in sentences]
    rows = FlatRows(shelf, offsets)
    assert len(rows) == len(flat)
    assert list(rows) == flat
    for i in rng.sample(range(len(flat)), len(flat)):  # in any order
        assert rows[i] == flat[i]
    picked = np.array([d for d in range(40) if d % 3])
    picked_offsets = np.cumsum([0] + [len(per_doc[d]) for d in picked])
    sub = FlatRows(shelf, picked_offsets, docs=picked)
    expected = [s for d in picked for s in per_doc[d]]
    assert list(sub) == expected
    assert [sub[i] for i in range(len(expected))] == expected
    with pytest.raises(IndexError):
        sub[len(expected)]
    some = np.array(rng.sample(range(len(expected)), 20))
    assert sub.take(some) == [expected[i] for i in some]
    assert Picked(sub, some)[:] == [expected[i] for i in some]  # read by take
    with pytest.raises(IndexError):
        sub.take(np.array([len(expected)]))


def test_a_shelf_sent_to_another_process_arrives_as_a_list() -> None:
    documents = _documents(20)
    shelf = Shelf(documents)
    for sequence in (
        shelf,
        Picked(shelf, np.arange(19, -1, -1)),
        FieldView(shelf, attrgetter("id")),
    ):
        arrived = pickle.loads(pickle.dumps(sequence))
        assert isinstance(arrived, list)
        assert arrived == list(sequence)


def test_a_segmented_view_makes_the_records_of_its_three_sequences() -> None:
    documents = _documents(10)
    languages = [LanguageGuess("en", 0.9, "Latn")] * 10
    sentences = Shelf(tuple(doc.text.split()) for doc in documents)
    view = SegmentedView(documents, languages, sentences)
    expected = [
        SegmentedDocument(doc, lang, tuple(doc.text.split()))
        for doc, lang in zip(documents, languages, strict=True)
    ]
    assert list(view) == expected
    assert view[4] == expected[4]
    assert view[2:5] == expected[2:5]
    with pytest.raises(ValueError, match="9 languages"):
        SegmentedView(documents, languages[:9], sentences)


def test_a_folder_that_cannot_be_written_falls_back_to_the_temp_folder(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")  # a file where the folder would be: mkdir fails
    shelf = Shelf(["a", "b"], folder=blocked / "runs")
    assert list(shelf) == ["a", "b"]
    here = Shelf(["c"], folder=tmp_path / "runs")
    assert list(here) == ["c"] and (tmp_path / "runs").is_dir()


@pytest.mark.parametrize("gap", [0, 1 << 14])
def test_take_reads_any_positions_as_indexing_one_by_one_does(
    monkeypatch: pytest.MonkeyPatch, gap: int
) -> None:
    """Positions in any order, repeated, negative, scattered or side by side, through
    every view; records gathered into few reads (``gap``) or one read each (0);
    the shelf still takes appends after a take, and a position out of range raises."""
    monkeypatch.setattr(shelf_module, "_GAP_BYTES", gap)
    monkeypatch.setattr(shelf_module, "_BLOCK_BYTES", 2048)  # reads capped, runs split
    monkeypatch.setattr(shelf_module, "_ITER_RECORDS", 7)  # views iterate in many blocks
    documents = _documents(400)
    stored = Shelf(documents)
    rng = np.random.default_rng(3)
    for positions in (
        rng.integers(-400, 400, 500),
        np.arange(50, 180),
        np.array([5, 5, 399, 0, -1]),
        np.zeros(0, dtype=np.int64),
    ):
        assert stored.take(positions) == [documents[p] for p in positions.tolist()]
    order = rng.permutation(400)[:250]
    picked = Picked(stored, order)
    texts = FieldView(picked, attrgetter("text"))
    assert list(picked) == [documents[i] for i in order.tolist()]
    assert texts.take(np.array([3, 1, 3])) == [documents[order[i]].text for i in (3, 1, 3)]
    assert list(texts) == [documents[i].text for i in order.tolist()]
    sentences = Shelf(tuple(d.text.split()) for d in documents)
    offsets = np.r_[0, np.cumsum([len(sentences[d]) for d in order.tolist()])]
    rows = FlatRows(sentences, offsets, docs=order)
    flat = [s for d in order.tolist() for s in documents[d].text.split()]
    assert list(rows) == flat
    chosen = rng.integers(0, len(flat), 300)
    assert rows.take(chosen) == [flat[r] for r in chosen.tolist()]
    stored.append(documents[0])  # the offsets are not held by a take
    assert len(stored) == 401 and stored[-1] == documents[0]
    with pytest.raises(IndexError):
        stored.take(np.array([401]))
