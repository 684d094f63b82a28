"""The keep stage: which member of each cluster the deduplicated corpus keeps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dedup.records import LanguageGuess, SegmentedDocument
from dedup.stages.boilerplate import usable_counts


def choose_representatives(
    labels: np.ndarray,
    segmented: Sequence[SegmentedDocument],
    usable: np.ndarray,
    prefer_languages: tuple[str, ...] = (),
) -> dict[int, int]:
    """The keep policy: in each cluster, keep the most complete version.

    Most complete = most non-boilerplate sentences (an excerpt loses to the
    full article), then the longest text, then the smallest id, so the choice
    is deterministic. With ``prefer_languages`` (codes such as ``("en", "de")``,
    compared case-insensitively with the detected language or its group), a
    cluster keeps the most complete member in the first preferred language it
    contains, and the most complete member overall when it contains none.

    Reads every document; :func:`representatives` is the same choice from
    what a run holds already (its per-document counts), without reading any.
    """
    docs = list(segmented)
    offsets = np.cumsum([0] + [len(seg.sentences) for seg in docs])
    return representatives(
        labels,
        [seg.language for seg in docs],
        usable_counts(usable, offsets),
        np.array([len(seg.doc.text) for seg in docs], dtype=np.int64),
        [seg.doc.id for seg in docs],
        prefer_languages,
    )


def representatives(
    labels: np.ndarray,
    languages: Sequence[LanguageGuess],
    usable_sentences: np.ndarray,
    text_lengths: np.ndarray,
    ids: Sequence[str],
    prefer_languages: tuple[str, ...] = (),
) -> dict[int, int]:
    """:func:`choose_representatives` from each document's language, usable sentence
    count, text length and id: one sort over arrays, not a loop over documents."""
    preference = {code.strip().lower(): rank for rank, code in enumerate(prefer_languages)}
    rank_of: dict[tuple[str, str], int] = {}  # per distinct (language, group): a few hundred

    def preferred(language: LanguageGuess) -> int:
        codes = (language.lang.lower(), language.group.lower())
        if codes not in rank_of:
            rank_of[codes] = min(
                (preference[c] for c in codes if c in preference), default=len(preference)
            )
        return rank_of[codes]

    n = len(labels)
    if not n:
        return {}
    language_rank = np.fromiter(map(preferred, languages), dtype=np.int64, count=n)
    id_rank = np.empty(n, dtype=np.int64)  # the run's documents are in id order already
    id_rank[sorted(range(n), key=ids.__getitem__)] = np.arange(n)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.lexsort(
        (
            id_rank,
            -np.asarray(text_lengths, dtype=np.int64),
            -np.asarray(usable_sentences, dtype=np.int64),
            language_rank,
            labels,
        )
    )
    first = order[np.r_[True, labels[order][1:] != labels[order][:-1]]]
    return dict(zip(labels[first].tolist(), first.tolist(), strict=True))
