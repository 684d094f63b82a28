"""The keep stage: which member of each cluster the deduplicated corpus keeps."""

from __future__ import annotations

import numpy as np

from dedup.records import SegmentedDocument


def choose_representatives(
    labels: np.ndarray,
    segmented: list[SegmentedDocument],
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
    """
    preference = {code.strip().lower(): rank for rank, code in enumerate(prefer_languages)}

    def preferred(seg: SegmentedDocument) -> int:
        codes = (seg.language.lang.lower(), seg.language.group.lower())
        return min((preference[c] for c in codes if c in preference), default=len(preference))

    offsets = np.cumsum([0] + [len(s.sentences) for s in segmented])
    best: dict[int, tuple[tuple[int, int, int, str], int]] = {}
    for index, seg in enumerate(segmented):
        rank = (
            preferred(seg),
            -int(usable[offsets[index] : offsets[index + 1]].sum()),
            -len(seg.doc.text),
            seg.doc.id,
        )
        label = int(labels[index])
        if label not in best or rank < best[label][0]:
            best[label] = (rank, index)
    return {label: index for label, (_, index) in best.items()}
