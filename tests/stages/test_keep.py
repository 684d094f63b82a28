"""The keep policy: one sort over arrays chooses what a loop over the documents chose."""

from __future__ import annotations

import numpy as np
import pytest

from dedup.records import LanguageGuess
from dedup.stages.keep import representatives


def _one_by_one(labels, languages, usable, lengths, ids, prefer):
    """The policy read literally: per cluster, the member of least (preferred
    language rank, -usable sentences, -length, id)."""
    preference = {code.lower(): rank for rank, code in enumerate(prefer)}
    best: dict[int, tuple[tuple[int, int, int, str], int]] = {}
    for index, label in enumerate(labels.tolist()):
        language = languages[index]
        codes = (language.lang.lower(), language.group.lower())
        rank = (
            min((preference[c] for c in codes if c in preference), default=len(preference)),
            -int(usable[index]),
            -int(lengths[index]),
            ids[index],
        )
        if label not in best or rank < best[label][0]:
            best[label] = (rank, index)
    return {label: index for label, (_, index) in best.items()}


@pytest.mark.parametrize("prefer", [(), ("DE",), ("xx", "und-Cyrillic", "en")])
def test_representatives_equal_the_policy_read_one_document_at_a_time(prefer) -> None:
    rng = np.random.default_rng(len(prefer))
    n = 3000
    labels = rng.integers(0, 400, n)
    kinds = [
        LanguageGuess("en", 0.9, "Latin"),
        LanguageGuess("de", 0.8, "Latin"),
        LanguageGuess("und", 0.0, "Cyrillic"),
    ]
    languages = [kinds[k] for k in rng.integers(0, 3, n)]
    usable = rng.integers(0, 4, n)  # many ties, broken by length, then by id
    lengths = rng.integers(100, 104, n)
    ids = [f"d{k:05d}" for k in rng.permutation(n)]  # not in document order
    expected = _one_by_one(labels, languages, usable, lengths, ids, prefer)
    assert representatives(labels, languages, usable, lengths, ids, prefer) == expected
    assert representatives(labels[:0], [], usable[:0], lengths[:0], [], prefer) == {}
