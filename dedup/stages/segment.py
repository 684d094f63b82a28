"""Segment: split a document into sentence-like units for alignment.

Why sentences: translations keep sentence boundaries far better than they keep
anything else, so aligned sentence pairs are the evidence that two documents are
the same article (see ``align``). The splitter has three layers, each for a
failure seen on real multilingual news:

1. **Line breaks always end a unit.** Scraped news comes as a sentence a line,
   as paragraphs, or as one block; a line break is never inside a sentence in
   any of these layouts.
2. **sentencex** (Wikimedia's rule-based splitter for ~300 languages, with
   per-language abbreviation lists) splits each line, so "Dr." or "3 p.m."
   do not end a sentence. A line in another script than the document's
   (an English site footer under a Greek article) is split by the default
   rules, not the document language's: Greek reads ``;`` as a question mark,
   and would cut the footer into pieces found in no other document, so the
   boilerplate rule would miss them.
3. **Script-aware marks sentencex lacks**: the Khmer ``។``, the Ethiopic
   ``፡፡`` (two word separators used as a full stop in scraped Amharic and
   Tigrinya), Tibetan/Dzongkha ``།`` and ``༎`` shad, Mongolian ``᠃``, N'Ko
   ``߹``, Lisu ``꓿``, Syriac ``܀``.
4. **Fallback windows.** Text with no sentence marks at all (Thai and Lao put
   a space between sentences; some pages are one long run-on line) would leave
   a unit far longer than a sentence, which aligns with nothing. Any unit
   longer than ``max_chars`` is cut at the whitespace (or, without whitespace,
   at the character) nearest to ``target_chars``.

Units with no letters or digits (separators, lone punctuation) are dropped:
they are identical across unrelated documents and carry no evidence. A unit
repeated within one document is kept once, at its first place: repeating a
sentence adds no evidence, and a 13 MB page of three sentences repeated would
otherwise be 300,000 sentences to score against every candidate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import sentencex

from dedup.cache import completed
from dedup.stages.langid import dominant_script

if TYPE_CHECKING:
    from dedup.stages.document_cache import DocumentCache

# A mark ends a sentence; the lookbehind keeps it with the sentence it ends.
_EXTRA_TERMINALS = re.compile(
    r"(?<=[។៕᠃߹꓿܀༎])\s*"  # unambiguous full stops of their scripts
    r"|(?<=፡፡)\s*|(?<=።)\s*"  # Ethiopic: '።' and the scraped '፡፡'
    r"|(?<=།)\s+"  # Tibetan shad: ends a clause; only a shad followed by space
)
_HAS_WORD = re.compile(r"\w")
_SOFT_BREAK = re.compile(r"[,;:،؛、，；：]\s*|\s+")


@dataclass(frozen=True, slots=True)
class SegmenterConfig:
    """Settings of the sentence splitter.

    Attributes:
        max_chars: a unit longer than this is cut into windows. 400 characters
            is about three long news sentences in Latin script and about 100
            tokens, well inside any encoder's window.
        target_chars: the length a fallback window aims for (about one long
            sentence).
    """

    max_chars: int = 400
    target_chars: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.target_chars <= self.max_chars:
            raise ValueError(
                f"need 0 < target_chars <= max_chars, got {self.target_chars}, {self.max_chars}"
            )


@lru_cache(maxsize=512)
def _sentencex_language(lang: str) -> str:
    """sentencex takes ISO 639-1 codes and falls back itself; 'und' means English rules."""
    return "en" if lang in ("", "und") else lang.split("-")[0]


def _cut_long(unit: str, config: SegmenterConfig) -> list[str]:
    """Cut a run-on unit into windows of about ``target_chars`` at soft breaks."""
    pieces: list[str] = []
    rest = unit
    while len(rest) > config.max_chars:
        window = rest[: config.max_chars]
        # the last soft break (punctuation or space) past half the target
        cut = 0
        for match in _SOFT_BREAK.finditer(window, config.target_chars // 2):
            if match.end() > config.target_chars and cut:
                break
            cut = match.end()
        if cut == 0:
            cut = config.target_chars
        pieces.append(rest[:cut].strip())
        rest = rest[cut:]
    pieces.append(rest.strip())
    return [p for p in pieces if p]


def split_sentences(
    text: str,
    lang: str = "und",
    config: SegmenterConfig | None = None,
    script: str | None = None,
) -> list[str]:
    """Split ``text`` into sentence-like units, in order, none empty.

    Args:
        text: the document text (already normalised by ``ingest``).
        lang: an ISO 639-1 code from ``langid`` (or "und"); picks sentencex's
            abbreviation rules.
        config: window sizes for text without sentence marks.
        script: the script of ``lang`` as ``langid`` saw it (the document's
            own text, without furniture); None: the dominant script of ``text``.
            Lines in another script are split by the default rules.

    Returns:
        The units, stripped, each once; every unit holds at least one letter or digit.
    """
    config = config or SegmenterConfig()
    sx_lang = _sentencex_language(lang)
    text_script = script or dominant_script(text)
    units: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        line_lang = sx_lang if dominant_script(line) == text_script else _sentencex_language("und")
        for sentence in sentencex.segment(line_lang, line):
            for part in _EXTRA_TERMINALS.split(sentence):
                part = part.strip()
                if not part or not _HAS_WORD.search(part):
                    continue
                if len(part) > config.max_chars:
                    units.extend(_cut_long(part, config))
                else:
                    units.append(part)
    return list(dict.fromkeys(units))  # repeats once, first places kept in order


def split_all(
    texts: Sequence[str],
    langs: Sequence[str],
    config: SegmenterConfig | None = None,
    cache: DocumentCache | None = None,
    scripts: Sequence[str] | None = None,
) -> list[tuple[str, ...]]:
    """:func:`split_sentences` of each text in its language (and ``scripts``, see there);
    with a cache, only of the texts it lacks (then added)."""
    config = config or SegmenterConfig()
    rules = list(zip(langs, scripts or [""] * len(texts), strict=True))
    found = cache.sentences(texts, rules, config) if cache is not None else [None] * len(texts)

    def compute(block: list[int]) -> list[tuple[str, ...]]:
        return [
            tuple(split_sentences(texts[i], rules[i][0], config, rules[i][1] or None))
            for i in block
        ]

    def add(block: list[int], computed: list[tuple[str, ...]]) -> None:
        cache.add_sentences([texts[i] for i in block], [rules[i] for i in block], computed, config)

    return completed(found, compute, add, cache)
