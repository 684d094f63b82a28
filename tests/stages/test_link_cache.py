"""link_cache: links of an unchanged corpus come back exactly; anything else misses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dedup.records import ALIGNED_DTYPE, AlignedPair, AlignedPairs, PairEvidence
from dedup.stages.align import AlignConfig
from dedup.stages.link_cache import LinkCache, links_key

SENTENCES = ["One.", "Two.", "Eins.", "Zwei."]


def _key(**changes: object) -> str:
    parts: dict[str, object] = {
        "fingerprint": "model-a",
        "settings": (AlignConfig(),),
        "sentences": SENTENCES,
        "offsets": np.array([0, 2, 4]),
        "usable": np.ones(4, dtype=bool),
        "doc_groups": np.array([0, 1]),
        "group_names": ["de", "en"],
    }
    parts.update(changes)
    return links_key(**parts)  # type: ignore[arg-type]


def _evidence() -> list[PairEvidence]:
    records = np.array([(0, 0, 0.9, 6.0, 1.0), (1, 1, 0.8, 5.0, 1.0)], dtype=ALIGNED_DTYPE)
    return [
        PairEvidence(0, 1, 0.666667, AlignedPairs(records), 2),
        PairEvidence(0, 2, 0.1, (), 2),
        PairEvidence(1, 2, 0.5, (AlignedPair(1, 0, 0.7, 4.5, 1.0),), 1),
    ]


def test_round_trip_gives_equal_evidence_and_vectors(tmp_path: Path) -> None:
    cache = LinkCache(tmp_path)
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert cache.get(_key()) is None
    cache.put(_key(), _evidence(), vectors)
    evidence, doc_vectors = cache.get(_key())  # type: ignore[misc]
    assert evidence == _evidence()
    assert np.array_equal(doc_vectors, vectors) and doc_vectors.dtype == np.float32


def test_key_changes_with_everything_links_depend_on() -> None:
    base = _key()
    assert _key() == base
    changed = [
        _key(fingerprint="model-b"),
        _key(settings=(AlignConfig(z_low=1.5),)),
        _key(sentences=["One.", "Two.", "Eins.", "Drei."]),
        _key(sentences=["One.Two.", "", "Eins.", "Zwei."]),
        _key(offsets=np.array([0, 1, 4])),
        _key(usable=np.array([True, False, True, True])),
        _key(doc_groups=np.array([0, 0])),
        _key(group_names=["de", "fr"]),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_a_damaged_file_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    path = tmp_path / f"{_key()}.npz"
    path.write_bytes(b"not a zip file")
    assert LinkCache(tmp_path).get(_key()) is None
    assert not path.exists()


def test_only_the_most_recently_used_files_are_kept(tmp_path: Path) -> None:
    cache = LinkCache(tmp_path, keep=2)
    vectors = np.zeros((3, 2), dtype=np.float32)
    for i, name in enumerate(["a", "b", "c"]):
        cache.put(_key(fingerprint=name), _evidence(), vectors)
        path = tmp_path / f"{_key(fingerprint=name)}.npz"
        stamp = 1_000_000 + i
        os.utime(path, (stamp, stamp))
    assert cache.get(_key(fingerprint="a")) is None  # dropped when c came
    assert len(list(tmp_path.glob("*.npz"))) == 2
