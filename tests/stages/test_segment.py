"""segment: sentence-like units, in order, none empty, none too long."""

from __future__ import annotations

import itertools
import random

import pytest

from dedup.stages.segment import SegmenterConfig, split_sentences


def test_english_abbreviations_do_not_end_a_sentence() -> None:
    text = "Dr. Smith arrived at 3 p.m. yesterday. He left at noon."
    assert split_sentences(text, "en") == [
        "Dr. Smith arrived at 3 p.m. yesterday.",
        "He left at noon.",
    ]


def test_und_uses_english_rules() -> None:
    assert len(split_sentences("Dr. Smith spoke. Mr. Jones replied.", "und")) == 2


def test_newline_always_splits_and_blank_lines_vanish() -> None:
    text = "The minister said\nthat talks would resume\n\n\n  Final words  \n"
    assert split_sentences(text, "en") == [
        "The minister said",
        "that talks would resume",
        "Final words",
    ]


def test_khmer_full_stop() -> None:
    text = "ថ្ងៃនេះខ្ញុំទៅផ្សារ។ខ្ញុំទិញត្រី។"
    units = split_sentences(text, "km")
    assert units == ["ថ្ងៃនេះខ្ញុំទៅផ្សារ។", "ខ្ញុំទិញត្រី។"]


@pytest.mark.parametrize("stop", ["።", "፡፡"])
def test_ethiopic_full_stops(stop: str) -> None:
    text = f"ዛሬ ወደ ገበያ ሄድኩ{stop} ዓሣ ገዛሁ{stop}ቤት ተመለስኩ{stop}"
    assert split_sentences(text, "am") == [
        f"ዛሬ ወደ ገበያ ሄድኩ{stop}",
        f"ዓሣ ገዛሁ{stop}",
        f"ቤት ተመለስኩ{stop}",
    ]


def test_single_ethiopic_wordspace_does_not_split() -> None:
    assert split_sentences("ዛሬ፡ወደ፡ገበያ፡ሄድኩ።", "am") == ["ዛሬ፡ወደ፡ገበያ፡ሄድኩ።"]


def test_tibetan_shad_followed_by_space_splits() -> None:
    text = "ང་དེ་རིང་ཁྲོམ་ལ་སོང་། ང་ཉ་ཉོས། ང་ཁ་ལག་ཟས།"
    assert split_sentences(text, "bo") == ["ང་དེ་རིང་ཁྲོམ་ལ་སོང་།", "ང་ཉ་ཉོས།", "ང་ཁ་ལག་ཟས།"]


def test_tibetan_shad_without_space_does_not_split() -> None:
    text = "ང་དེ་རིང་ཁྲོམ་ལ་སོང་།ང་ཉ་ཉོས།"
    assert split_sentences(text, "bo") == [text]


def test_chinese_full_width_marks() -> None:
    text = "今天我去了市场。你呢！真的吗？是的。"
    assert split_sentences(text, "zh") == ["今天我去了市场。", "你呢！", "真的吗？", "是的。"]


def _thai_run_on(length: int) -> str:
    words = ["รัฐบาล", "ประกาศ", "แผน", "ใหม่", "เพื่อ", "ปรับปรุง", "ระบบ", "ขนส่ง", "สาธารณะ"]
    rng = random.Random(7)  # words in a varied order: no window repeats another
    text = ""
    for i, word in enumerate(rng.choice(words) for _ in itertools.count()):
        text += word + (" " if i % 7 == 6 else "")  # Thai: a space only between phrases
        if len(text) >= length:
            return text[:length]
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "config", [SegmenterConfig(), SegmenterConfig(max_chars=120, target_chars=60)]
)
def test_thai_run_on_line_is_cut_into_windows(config: SegmenterConfig) -> None:
    text = _thai_run_on(2000)
    assert "\n" not in text and len(text) == 2000
    units = split_sentences(text, "th", config)
    assert len(units) >= 2000 // config.max_chars
    assert all(0 < len(u) <= config.max_chars for u in units)
    # windows are cut at spaces: nothing is lost or reordered
    assert "".join(units).replace(" ", "") == text.replace(" ", "")
    # most windows end at a space, not inside a word
    words = set(text.split())
    assert sum(u.split()[-1] in words for u in units) >= len(units) - 1


def test_run_on_without_any_whitespace_is_cut_at_characters() -> None:
    rng = random.Random(3)  # Thai consonants in a varied order: no window repeats
    text = "".join(chr(rng.randrange(0x0E01, 0x0E2F)) for _ in range(2000))
    units = split_sentences(text, "th")
    assert all(len(u) <= 400 for u in units)
    assert "".join(units) == text


def test_units_without_letters_or_digits_are_dropped() -> None:
    text = "---\n* * *\n•\nA real sentence.\n...\n2024"
    assert split_sentences(text, "en") == ["A real sentence.", "2024"]


def test_empty_text_gives_no_units() -> None:
    assert split_sentences("", "en") == []
    assert split_sentences("\n \n", "en") == []


@pytest.mark.parametrize(("max_chars", "target_chars"), [(100, 200), (100, 0), (100, -5)])
def test_segmenter_config_validation(max_chars: int, target_chars: int) -> None:
    with pytest.raises(ValueError, match="target_chars"):
        SegmenterConfig(max_chars=max_chars, target_chars=target_chars)


def test_segmenter_config_accepts_equal_sizes() -> None:
    config = SegmenterConfig(max_chars=50, target_chars=50)
    assert all(len(u) <= 50 for u in split_sentences("word " * 100, "en", config))


def test_a_sentence_repeated_within_a_document_is_kept_once_at_its_first_place() -> None:
    text = "One fact. Two facts. One fact.\nThree facts. Two facts.\n" * 1000
    assert split_sentences(text, "en") == ["One fact.", "Two facts.", "Three facts."]
