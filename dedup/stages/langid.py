"""Language identification: which language, and which script, a document is in.

The language decides two things downstream: the sentence splitter's rules
(``segment``) and, above all, which documents compete with each other
(``candidates``/``cluster`` centre vectors per language and ask whether a
document is another's best match *among the documents of its language*).

py3langid (a numpy port of langid.py, with its model bundled in the wheel, so
it runs offline) names ~140 languages. Documents in languages it does not
know get a low-confidence guess; rather than trust that guess we fall back to
the dominant **script** (``und-ETHIOPIC``, ``und-TIBETAN``...), which is
exact and still groups documents of one writing system together.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from dedup.cache import completed
from dedup.records import LanguageGuess

if TYPE_CHECKING:
    from dedup.stages.document_cache import DocumentCache

#: below this normalised probability the language is reported as "und".
MIN_CONFIDENCE = 0.5
#: characters of a document used for the guess: the head is enough, and bounded.
SAMPLE_CHARS = 4000
#: scripts (as named by :func:`dominant_script`) of the languages py3langid
#: knows. Text in any other script (Ol Chiki, Tifinagh, Cherokee...) matches
#: no feature of the model, so its guess is the model's prior, often with a
#: high probability (Santali in Ol Chiki comes out as Amharic at 0.99).
KNOWN_SCRIPTS = frozenset(
    "LATIN CYRILLIC GREEK ARMENIAN GEORGIAN ARABIC HEBREW DEVANAGARI BENGALI GURMUKHI"  # noqa: SIM905
    " GUJARATI ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA THAI LAO TIBETAN MYANMAR"
    " KHMER ETHIOPIC HANGUL CJK HIRAGANA KATAKANA".split()
)
#: py3langid's label for text without linguistic content; not a language.
NO_LANGUAGE = "zxx"


@lru_cache(maxsize=1)
def _identifier():
    from py3langid import langid

    return langid.LanguageIdentifier.from_modelpath(
        langid.MODEL_DIR / langid.MODEL_FILE, norm_probs=True
    )


#: an ASCII letter (the only letters of an ASCII text, all of them Latin)
_ASCII_LETTER = re.compile("[A-Za-z]")


@lru_cache(maxsize=1 << 16)
def _script_of(ch: str) -> str | None:
    """The first word of a letter's Unicode name is its script (LATIN, CYRILLIC, CJK...)."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return None
    head = name.split(" ", 1)[0]
    # CJK ideographs, Hiragana, Katakana and Hangul are distinct scripts but
    # one family for grouping purposes only when the language id fails.
    return head


def dominant_script(text: str) -> str:
    """The script of most letters in ``text`` ("ZYYY" when it has no letters).

    A tie goes to the script met first: characters are counted first (in
    order of first appearance), then each distinct character's script.
    """
    sample = text[:SAMPLE_CHARS]
    if sample.isascii():  # its letters are a-z and A-Z: Latin, nothing to count
        return "LATIN" if _ASCII_LETTER.search(sample) else "ZYYY"
    counts: Counter[str] = Counter()
    for ch, n in Counter(sample).items():
        script = _script_of(ch)
        if script:
            counts[script] += n
    return counts.most_common(1)[0][0] if counts else "ZYYY"


def identify(text: str) -> LanguageGuess:
    """Guess the language and script of one document."""
    sample = text[:SAMPLE_CHARS]
    lang, prob = _identifier().classify(sample)
    script = dominant_script(sample)
    if prob < MIN_CONFIDENCE or lang == NO_LANGUAGE or script not in KNOWN_SCRIPTS:
        lang = "und"
    return LanguageGuess(lang=str(lang), confidence=round(float(prob), 4), script=script)


def identify_all(
    texts: Sequence[str],
    cache: DocumentCache | None = None,
    *,
    script_only: Sequence[bool] | None = None,
) -> list[LanguageGuess]:
    """:func:`identify` of each text; with a cache, only of the texts it lacks (then added).

    Where ``script_only[i]`` is true, text ``i`` gets its script alone (language
    ``und``, confidence 0; cached apart from the classifier's guesses): for a
    document whose input supplies its language, :func:`with_supplied` keeps
    nothing of the guess but the script, and the classifier is most of this
    stage's time. The texts are read :data:`BLOCK_TEXTS` at a time, in order
    (they may lie on disk, see :mod:`dedup.shelf`).
    """
    only = list(script_only) if script_only is not None else [False] * len(texts)
    guesses: list[LanguageGuess] = []
    for start in range(0, len(texts), BLOCK_TEXTS):
        block, flags = texts[start : start + BLOCK_TEXTS], only[start : start + BLOCK_TEXTS]
        guessed = iter(_guesses_of([t for t, f in zip(block, flags, strict=True) if not f], cache))
        scripts = iter(_scripts_of([t for t, f in zip(block, flags, strict=True) if f], cache))
        guesses.extend(next(scripts) if f else next(guessed) for f in flags)
    return guesses


#: texts read and looked up at a time (the document cache commits as often)
BLOCK_TEXTS = 10_000


def _guesses_of(texts: list[str], cache: DocumentCache | None) -> list[LanguageGuess]:
    """:func:`identify` of each text; with a cache, only of the texts it lacks."""
    guesses = cache.languages(texts) if cache is not None else [None] * len(texts)

    def compute(block: list[int]) -> list[LanguageGuess]:
        return [identify(texts[i]) for i in block]

    def add(block: list[int], computed: list[LanguageGuess]) -> None:
        assert cache is not None
        cache.add_languages([texts[i] for i in block], computed)

    return completed(guesses, compute, add, cache)


def _scripts_of(texts: Sequence[str], cache: DocumentCache | None) -> list[LanguageGuess]:
    """The script-only guess (``und``, confidence 0) of each text; with a cache, only
    of the texts it lacks (then added): counting the scripts of 4,000 characters
    is ~20 µs a text, a lookup a few."""
    guesses = cache.scripts(texts) if cache is not None else [None] * len(texts)

    def compute(block: list[int]) -> list[LanguageGuess]:
        return [LanguageGuess("und", 0.0, dominant_script(texts[i][:SAMPLE_CHARS])) for i in block]

    def add(block: list[int], computed: list[LanguageGuess]) -> None:
        assert cache is not None
        cache.add_scripts([texts[i] for i in block], computed)

    return completed(guesses, compute, add, cache)


def normalise_supplied(code: str | None) -> str | None:
    """A language code the input supplied, as a group key; None when unusable.

    Why: a user's label is better evidence than a guess, but it comes in many
    spellings. Only the primary language subtag is kept, lower-cased
    (``EN``, ``en-GB``, ``en_US`` -> ``en``; ``eng_Latn`` -> ``eng``). Anything
    that is not 2-3 ASCII letters before an optional ``-``/``_`` tail is not a
    language code and is ignored (the guess stands). Known limit: ISO 639-3
    codes are not mapped to py3langid's 639-1 codes, so ``eng`` and a guessed
    ``en`` are different groups.
    """
    if not code:
        return None
    head = re.split(r"[-_]", code.strip(), maxsplit=1)[0].lower()
    return head if re.fullmatch(r"[a-z]{2,3}", head) and head not in ("und", NO_LANGUAGE) else None


def with_supplied(guess: LanguageGuess, supplied: str | None) -> LanguageGuess:
    """``guess`` with the input's own language label, when it has a usable one.

    A supplied label is trusted (confidence 1.0): it replaces the identifier's
    guess, so a language py3langid lacks is not read as a wrong known one.
    """
    lang = normalise_supplied(supplied)
    return guess if lang is None else LanguageGuess(lang=lang, confidence=1.0, script=guess.script)


def language_confidence(text: str) -> float:
    """How confidently the identifier reads ``text`` as some language (0..1).

    Used by ingest to choose between decodings of a legacy-encoded file: the
    right decoding reads as a language, a wrong one as noise.
    """
    return float(_identifier().classify(text[:SAMPLE_CHARS])[1])
