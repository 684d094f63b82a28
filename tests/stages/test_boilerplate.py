"""boilerplate: which sentences count as evidence (real sentences, no model)."""

from __future__ import annotations

import numpy as np

from dedup.stages.boilerplate import (
    PrimaryView,
    boilerplate_mask,
    cached_key_hashes,
    key_hashes,
    usable_sentences,
)
from dedup.stages.document_cache import DocumentCache


def _offsets(docs: list[list[str]]) -> tuple[list[str], np.ndarray]:
    sentences = [s for doc in docs for s in doc]
    return sentences, np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)


FOOTER = "Subscribe to our newsletter for more news."


def test_sentence_in_three_unrelated_documents_is_boilerplate() -> None:
    docs = [
        ["The mayor opened a bridge.", "Traffic is expected to ease.", FOOTER],
        ["A storm hit the coast.", "Power was cut in two towns.", FOOTER],
        ["The central bank held rates.", "Markets barely moved.", FOOTER],
        ["A new museum opened.", "Entry is free on Sundays."],
    ]
    sentences, offsets = _offsets(docs)
    mask = boilerplate_mask(sentences, offsets, 3)
    assert [s for s, m in zip(sentences, mask, strict=True) if m] == [FOOTER] * 3


def test_two_documents_are_not_enough() -> None:
    docs = [["Story one.", FOOTER], ["Story two.", FOOTER], ["Story three."]]
    sentences, offsets = _offsets(docs)
    assert not boilerplate_mask(sentences, offsets, 3).any()
    assert boilerplate_mask(sentences, offsets, 2).sum() == 2


def test_variants_in_case_digits_and_punctuation_count_as_one_sentence() -> None:
    docs = [
        ["Story one.", "Follow us on Twitter!"],
        ["Story two.", "follow us on twitter"],
        ["Story three.", "FOLLOW US ON TWITTER (2024)."],
    ]
    sentences, offsets = _offsets(docs)
    assert boilerplate_mask(sentences, offsets, 3).tolist() == [False, True] * 3


def test_reposts_count_once() -> None:
    story = ["The mayor opened a bridge.", "Traffic is expected to ease.", "Work took two years."]
    docs = [story, list(story), [*story, "Photo: city hall."], ["Unrelated story.", "Other."]]
    sentences, offsets = _offsets(docs)
    assert not boilerplate_mask(sentences, offsets, 3).any()


def test_sentences_without_letters_are_never_evidence() -> None:
    docs = [["Story one.", "2024", "---"], ["Story two."]]
    sentences, offsets = _offsets(docs)
    assert boilerplate_mask(sentences, offsets, 3).tolist() == [False, True, True, False]


def test_lead_sentence_shared_by_an_article_and_two_one_sentence_excerpts() -> None:
    story = ["The mayor opened a bridge.", "Traffic is expected to ease.", "Work took two years."]
    docs = [story, story[:1], story[:1], ["Unrelated story.", "Other."]]
    sentences, offsets = _offsets(docs)
    assert not boilerplate_mask(sentences, offsets, 3).any()


def test_copies_inherit_boilerplate_by_key_and_do_not_count_towards_it() -> None:
    """Boilerplate is judged among primaries; a copy's rows follow its sentence keys."""
    story = ["The mayor opened the new bridge on Monday.", FOOTER]
    docs = [
        ["Rain is expected all week in the north.", FOOTER],
        ["The train strike ends on Friday.", FOOTER],
        story,
        list(story),  # a copy of the story: not a third "document" holding its lead
        list(story),
    ]
    sentences, offsets = _offsets(docs)
    view = PrimaryView.of(np.array([0, 1, 2]), offsets)
    usable = usable_sentences(key_hashes(sentences), view, 3)
    # the footer is in three primaries: furniture everywhere, copies included
    assert usable.tolist() == [True, False, True, False, True, False, True, False, True, False]


def test_the_primary_view_is_the_rows_of_the_primaries_one_after_another() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 6, 300)  # documents without sentences too
    offsets = np.r_[0, np.cumsum(lengths)]
    primaries = np.sort(rng.choice(300, size=170, replace=False))
    view = PrimaryView.of(primaries, offsets)
    spans = [list(range(offsets[d], offsets[d + 1])) for d in primaries]
    assert view.rows.tolist() == [row for span in spans for row in span]
    assert view.offsets.tolist() == np.r_[0, np.cumsum([len(s) for s in spans])].tolist()
    empty = PrimaryView.of(np.zeros(0, dtype=np.int64), offsets)
    assert len(empty.rows) == 0 and empty.offsets.tolist() == [0]


def test_cached_key_hashes_are_read_back_and_equal_the_computed_ones(tmp_path) -> None:
    """A second run reads every document's hashes from the document cache (counted), and
    they are the hashes of its sentences, a document without sentences included."""
    docs = [["Rain is expected.", FOOTER], [], ["Der Zug fährt.", "123", FOOTER], [FOOTER]]
    expected = key_hashes([sentence for doc in docs for sentence in doc])
    assert np.array_equal(cached_key_hashes(docs), expected)  # no cache
    with DocumentCache(tmp_path) as cache:
        assert np.array_equal(cached_key_hashes(docs, cache), expected)
        assert cache.hits["sentence_keys"] == 0
    with DocumentCache(tmp_path) as cache:
        again = cached_key_hashes([*docs, ["A new one."]], cache)
        assert cache.hits["sentence_keys"] == len(docs)
    assert np.array_equal(again, np.concatenate([expected, key_hashes(["A new one."])]))
    assert again.dtype == np.uint64
