"""langid: language of a document, with the script as the fallback group."""

from __future__ import annotations

import pytest

from dedup.records import LanguageGuess
from dedup.stages import langid
from dedup.stages.langid import dominant_script, identify

SAMPLES = {
    "en": (
        "The government announced a new plan on Tuesday to improve public transport in the "
        "capital city.",
        {"LATIN"},
    ),
    "de": (
        "Die Regierung hat am Dienstag einen neuen Plan zur Verbesserung des öffentlichen "
        "Verkehrs in der Hauptstadt angekündigt.",
        {"LATIN"},
    ),
    "ru": (
        "Правительство во вторник объявило о новом плане по улучшению общественного "
        "транспорта в столице.",
        {"CYRILLIC"},
    ),
    "el": (
        "Η κυβέρνηση ανακοίνωσε την Τρίτη ένα νέο σχέδιο για τη βελτίωση των δημόσιων "
        "συγκοινωνιών στην πρωτεύουσα.",
        {"GREEK"},
    ),
    "ar": (
        "أعلنت الحكومة يوم الثلاثاء عن خطة جديدة لتحسين وسائل النقل العام في العاصمة.",
        {"ARABIC"},
    ),
    "zh": ("政府周二宣布了一项改善首都公共交通的新计划。", {"CJK"}),
    "ja": (
        "政府は火曜日、首都の公共交通機関を改善するための新しい計画を発表した。",
        {"CJK", "HIRAGANA", "KATAKANA"},
    ),
}

# Scripts py3langid has no language for: Tamazight in Tifinagh, Santali in Ol Chiki.
TIFINAGH = "ⴰⵎⴰⵣⵉⵖ ⴰⵔ ⵉⵙⵙⵓⵜⵓⵢ ⵜⴰⵎⴰⵣⵉⵖⵜ ⴳ ⵜⵎⴰⵣⵉⵔⵜ ⵏⵏⵙ ⴷ ⵉⵙⵙⵏ ⴰⵡⴰⵍ"
TIFINAGH_2 = "ⵜⴰⵙⵏⴰⵡⴰⵍⵜ ⵜⴰⵏⴰⵎⵓⵔⵜ ⵜⵙⵙⵓⵙⵎ ⴰⵙⵖⵏ ⴰⵎⴰⵢⵏⵓ ⵉ ⵓⵙⵏⴼⵍ ⵏ ⵜⵡⵓⵔⵉ"
OL_CHIKI = "ᱥᱟᱱᱛᱟᱲᱤ ᱯᱟᱹᱨᱥᱤ ᱫᱚ ᱚᱞ ᱪᱤᱠᱤ ᱟᱠᱷᱚᱨ ᱛᱮ ᱚᱞ ᱦᱩᱭᱩᱜ ᱠᱟᱱᱟ"


@pytest.mark.parametrize("code", sorted(SAMPLES))
def test_languages_are_identified(code: str) -> None:
    text, scripts = SAMPLES[code]
    guess = identify(text)
    assert guess.lang == code
    assert guess.group == code
    assert guess.script in scripts
    assert langid.MIN_CONFIDENCE <= guess.confidence <= 1.0


@pytest.mark.parametrize(
    ("text", "script"),
    [(TIFINAGH, "TIFINAGH"), (TIFINAGH_2, "TIFINAGH"), (OL_CHIKI, "OL")],
    ids=["tifinagh", "tifinagh-2", "ol-chiki"],
)
def test_unknown_script_falls_back_to_script_group(text: str, script: str) -> None:
    # The model knows neither script, so whatever it guesses (Ol Chiki comes out
    # as Amharic with p > 0.99, Tifinagh as "zxx") must not be used as a language.
    guess = identify(text)
    assert guess.lang == "und"
    assert guess.script == script
    assert guess.group == f"und-{script}"


def test_two_texts_of_one_unknown_script_share_a_group() -> None:
    assert identify(TIFINAGH).group == identify(TIFINAGH_2).group
    assert identify(TIFINAGH).group != identify(OL_CHIKI).group


def test_low_confidence_falls_back_to_script(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unsure:
        def classify(self, text: str) -> tuple[str, float]:
            return "fr", 0.2

    monkeypatch.setattr(langid, "_identifier", lambda: Unsure())
    guess = identify("Quelques mots ambigus")
    assert guess == LanguageGuess(lang="und", confidence=0.2, script="LATIN")
    assert guess.group == "und-LATIN"


def test_text_without_letters() -> None:
    guess = identify("2024 — 12:30, 15/06 !!!")
    assert guess.script == "ZYYY"
    assert guess.lang == "und" and guess.group == "und-ZYYY"


def test_dominant_script() -> None:
    assert dominant_script("") == "ZYYY"
    assert dominant_script("12 345 ... !?") == "ZYYY"
    assert dominant_script("Hello Привет мир сегодня") == "CYRILLIC"
    assert dominant_script("NATO και ΕΕ: η Ελλάδα στη σύνοδο") == "GREEK"
    assert dominant_script("한국어 문장입니다 ABC") == "HANGUL"
    assert dominant_script("ሰላም ለዓለም") == "ETHIOPIC"
    # a tie goes to the script met first
    assert dominant_script("ab аб") == "LATIN" and dominant_script("аб ab") == "CYRILLIC"
    # only the head of a long document is read
    assert dominant_script("a" * langid.SAMPLE_CHARS + "я" * (2 * langid.SAMPLE_CHARS)) == "LATIN"


def test_supplied_lang_overrides_a_wrong_guess_and_is_normalised() -> None:
    from dedup.stages.langid import normalise_supplied, with_supplied

    guess = identify("Ɛnyo be míatsɔ nu siwo míesrɔ̃ la awɔ dɔ le agbenɔnɔ me. " * 5)
    assert with_supplied(guess, "ewe_Latn").lang == "ewe"
    assert with_supplied(guess, "ewe_Latn").confidence == 1.0
    assert with_supplied(guess, None) == guess
    assert with_supplied(guess, "not a code!") == guess
    assert [normalise_supplied(c) for c in ("en", "en-GB", "EN", "eng_Latn", "und", "")] == [
        "en",
        "en",
        "en",
        "eng",
        None,
        None,
    ]


def test_script_only_skips_the_classifier_and_keeps_the_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text whose language the input supplies gets its script alone, as identify finds
    it; the others are identified as before."""
    from dedup.stages.langid import identify_all, with_supplied

    texts = ["Το συμβούλιο ενέκρινε τον προϋπολογισμό τη Δευτέρα.", "The council met."]
    full = identify_all(texts)
    classified: list[str] = []
    real = langid.identify

    def counting(text: str) -> LanguageGuess:
        classified.append(text)
        return real(text)

    monkeypatch.setattr(langid, "identify", counting)
    partial = identify_all(texts, script_only=[True, False])
    assert classified == [texts[1]]
    assert partial[1] == full[1]
    assert (partial[0].lang, partial[0].script) == ("und", full[0].script) == ("und", "GREEK")
    assert with_supplied(partial[0], "el") == with_supplied(full[0], "el")


def test_scripts_and_guesses_come_back_from_the_cache_block_by_block(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across blocks of texts, script-only texts and classified ones each come back
    from the document cache on a second run, the same as computed, in order; a
    script-only entry is never taken for a classifier's guess of the same text."""
    from dedup.stages.document_cache import DocumentCache
    from dedup.stages.langid import dominant_script, identify_all

    monkeypatch.setattr(langid, "BLOCK_TEXTS", 3)
    texts = [
        "Το συμβούλιο ενέκρινε τον προϋπολογισμό τη Δευτέρα.",
        "The council met on Monday to approve the budget.",
        "Совет утвердил бюджет в понедельник.",
        "The council met on Monday to approve the budget.",  # also script-only below
        "評議会は月曜日に予算を承認した。",
        "12 34",
        "Le conseil a approuvé le budget lundi.",
    ]
    only = [True, False, True, True, False, True, False]
    cold = identify_all(texts, script_only=only)
    assert [g.script for g, o in zip(cold, only, strict=True) if o] == [
        dominant_script(t) for t, o in zip(texts, only, strict=True) if o
    ]
    assert cold[3].lang == "und" and cold[1].lang == "en"
    with DocumentCache(tmp_path) as cache:
        assert identify_all(texts, cache, script_only=only) == cold
    calls: list[str] = []
    monkeypatch.setattr(langid, "identify", lambda text: calls.append(text))
    monkeypatch.setattr(langid, "dominant_script", lambda text: calls.append(text))
    with DocumentCache(tmp_path) as cache:
        assert identify_all(texts, cache, script_only=only) == cold
        assert cache.hits["languages"] == len(texts) and not calls
