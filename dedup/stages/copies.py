"""Copies: exact and near-exact duplicates, found cheaply before any encoding.

Reposts, mirrored feeds and lightly edited re-publications are the same text
in the same language; they need no multilingual model to be found, and a
corpus full of them should not pay to encode each one. This stage groups
them first, so only one *primary* per copy group goes through the expensive
stages; the copies join their primary's cluster afterwards.

* exact copies: the same text after case-folding and collapsing whitespace;
* near-exact copies: MinHash LSH (datasketch, Broder 1997; Leskovec,
  Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3) over character
  shingles of the same normalised text, each LSH hit confirmed by the exact
  Jaccard similarity of the two shingle sets, so a false LSH hit never joins
  two documents. Character shingles work in every script, with or without
  spaces between words; they are 64-bit hashes made with numpy
  (:func:`shingle_hashes`), and only the LSH candidates' are kept.

The LSH step is banding over the ``(n, num_perm)`` matrix of MinHash
signatures, done with numpy (:func:`lsh_bands` chooses the bands): documents
whose signatures agree on every row of some band are candidates. Signatures
can come from a cache (see :mod:`dedup.stages.document_cache`), so a re-run
neither computes them nor imports datasketch (whose LSH module imports
scipy); the grouping is the same wherever they came from.

Shared page furniture (a site footer, navigation) makes two *different*
short items look like copies: their full texts are mostly the same footer.
So a line found in at least :data:`FURNITURE_TEXTS` distinct texts is a
furniture candidate, and a verified pair is rejected when both sides have
text of their own (non-furniture lines) and neither side's own text is
mostly (``>= OWN_FOUND``) found among the other's shingles. A repost with a
typo keeps its typo'd line as own text, yet most of that line's shingles are
in the original, so it still joins; briefs under one footer do not.

Excerpts (the first half of an article) are *not* copies here: their
Jaccard similarity to the whole article is far below ``threshold``; the
sentence aligner finds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from dedup.cache import completed
from dedup.records import concat_ranges, sorted_unique
from dedup.shelf import LazySequence, Picked, take_from

FURNITURE_TEXTS = 3
"""A line in this many distinct texts is furniture (as align's boilerplate rule)."""
OWN_FOUND = 0.5
"""Least share of one side's own shingles found in the other for a copy."""
SIGNATURE_BLOCK = 10_000
"""Distinct texts whose MinHash signatures are held at once (then kept as band keys)."""


@dataclass(frozen=True, slots=True)
class CopyConfig:
    """Settings of the near-duplicate pass.

    Attributes:
        threshold: least Jaccard similarity of two texts' shingle sets for them
            to be copies. 0.9 joins reposts with edited bylines, typos or a
            changed sentence, and nothing that was rewritten.
        shingle: characters per shingle. 8 characters is about a word and a
            half in Latin script and two or three words in CJK.
        num_perm: MinHash permutations; more gives fewer LSH misses and costs
            time linearly.
    """

    threshold: float = 0.9
    shingle: int = 8
    num_perm: int = 128

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.shingle < 1 or self.num_perm < 16:
            raise ValueError("need shingle >= 1 and num_perm >= 16")


def _normalise(text: str) -> str:
    """Case-folded, every run of whitespace one space, stripped.

    ``str.split()`` splits on exactly what ``re``'s ``\\s`` matches
    (``str.isspace``), 2.4x faster than ``re.sub``; it runs over every line
    of every document.
    """
    return " ".join(text.casefold().split())


#: odd 64-bit multipliers of a shingle's code points (powers of the FNV prime)
_POWERS = np.array([pow(0x100000001B3, k, 1 << 64) for k in range(64)], dtype=np.uint64)


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """The distinct 64-bit hashes of every run of ``size`` characters of ``text``, sorted.

    A text of ``size`` characters or fewer is one shingle. Computed with numpy
    over the code points (a polynomial hash, then splitmix64's finaliser), so a
    10,000-character article costs about 50 µs, not ten thousand Python
    objects; two different shingles share a hash with probability ~2**-64, so
    the exact Jaccard of two texts is that of their hash sets.
    """
    if size > len(_POWERS):
        raise ValueError(f"shingles of at most {len(_POWERS)} characters, not {size}")
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    codes = codes.astype(np.uint64)
    if len(codes) <= size:
        windows, powers = codes[None, :], _POWERS[: len(codes)]
    else:
        windows, powers = np.lib.stride_tricks.sliding_window_view(codes, size), _POWERS[:size]
    return sorted_unique(_mix64((windows * powers).sum(axis=1, dtype=np.uint64)))


def _common(a: np.ndarray, b: np.ndarray) -> int:
    """How many values two sorted, distinct arrays share."""
    return int(np.intersect1d(a, b, assume_unique=True).size)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    common = _common(a, b)
    return common / max(len(a) + len(b) - common, 1)


class SignatureCache(Protocol):
    """Where :func:`find_copies` finds and keeps MinHash signatures (see
    :class:`dedup.stages.document_cache.DocumentCache`).

    ``digests`` are 16-byte digests of normalised texts; a signature is the
    ``(num_perm,)`` ``hashvalues`` array of datasketch's MinHash under ``config``.
    """

    def signatures(
        self, digests: Sequence[bytes], config: CopyConfig
    ) -> list[np.ndarray | None]: ...

    def add_signatures(
        self, digests: Sequence[bytes], signatures: Sequence[np.ndarray], config: CopyConfig
    ) -> None: ...

    def fill(
        self,
        missing: Sequence[int],
        compute: Callable[[list[int]], list[np.ndarray]],
        add: Callable[[list[int], list[np.ndarray]], None],
    ) -> list[np.ndarray]: ...


@lru_cache(maxsize=64)
def lsh_bands(
    threshold: float, num_perm: int, weights: tuple[float, float] = (0.1, 0.9)
) -> tuple[int, int]:
    """``(b, r)``: split signatures into ``b`` bands of ``r`` rows for a Jaccard ``threshold``.

    Two sets of Jaccard similarity ``s`` agree on all ``r`` rows of a band
    with probability ``s**r``, so they become candidates with probability
    ``1 - (1 - s**r)**b`` (the S-curve). The choice minimises
    ``weights[0] * FP + weights[1] * FN``, FP the area under the curve below
    ``threshold`` (candidates that are not copies) and FN the area above it
    over ``threshold..1`` (copies never compared), with ``b * r <= num_perm``.
    Every candidate is verified exactly, so a false candidate costs only time
    while a miss loses a copy: misses weigh 9:1 by default.

    This is datasketch's ``MinHashLSH`` parameter choice (same objective, same
    order of search, so the same bands), computed with numpy: the curve is a
    polynomial of degree ``b * r <= num_perm``, which Gauss-Legendre
    quadrature with ``num_perm // 2 + 1`` nodes integrates exactly.
    """
    nodes, node_weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    pairs = np.array(
        [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)],
        dtype=np.float64,
    )
    b, r = pairs[:, :1], pairs[:, 1:]

    def area(lo: float, hi: float, curve: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        return curve(s) @ node_weights * (hi - lo) / 2

    def candidate(s: np.ndarray) -> np.ndarray:
        return 1 - (1 - s**r) ** b

    false_positive = area(0.0, threshold, candidate)
    false_negative = area(threshold, 1.0, lambda s: 1 - candidate(s))
    best = int(np.argmin(weights[0] * false_positive + weights[1] * false_negative))
    return int(pairs[best, 0]), int(pairs[best, 1])


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``(n, bands)`` uint64: a 64-bit hash of each band of ``rows`` signature values.

    Two signatures agree on a band exactly when its values are equal; their
    keys are then equal, and two different bands share a key with probability
    ~2**-64. A shared key only makes a candidate, and every candidate is
    verified by its exact Jaccard, so the copies found are those the full
    signatures give, from 8 bytes a band instead of 8 bytes a value.
    """
    values = np.ascontiguousarray(signatures[:, : bands * rows], dtype=np.uint64)
    values = values.reshape(len(signatures), bands, rows)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for row in range(rows):  # a polynomial hash of the band's values, then mixed
            keys = keys * np.uint64(0x100000001B3) + _mix64(values[:, :, row])
        return _mix64(keys)


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves about half the output bits."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _band_groups(keys_of_bands: np.ndarray) -> Iterator[np.ndarray]:
    """Row numbers (ascending) of the texts that share one band's key, for each band
    and each key shared by two or more texts (``keys_of_bands``: :func:`band_keys`)."""
    for band in range(keys_of_bands.shape[1]):
        keys = keys_of_bands[:, band]
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        for members in np.split(order, starts[1:]):
            if len(members) > 1:
                yield members


def minhash_signatures(texts: Sequence[str], config: CopyConfig) -> list[np.ndarray]:
    """datasketch MinHash ``hashvalues`` of each normalised text's shingles (imports datasketch).

    The shingles enter as the low 32 bits of :func:`shingle_hashes`, permuted
    by datasketch's default scheme (``affine32``, seed 1) with its own
    permutations; the loop over shingles and permutations is compiled
    (:func:`dedup.stages.kernels.minhash32`, the bytes ``MinHash.update_batch``
    gives: datasketch calls a hash function per shingle in Python, 60 % of
    the copy pass's time).
    """
    from datasketch import MinHash

    from dedup.stages import kernels

    a, b = MinHash(num_perm=config.num_perm).permutations.astype(np.uint64)
    low = np.uint64(0xFFFFFFFF)
    hashes = [(shingle_hashes(text, config.shingle) & low).astype(np.uint32) for text in texts]
    starts = np.zeros(len(hashes) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in hashes], out=starts[1:])
    out = np.empty((len(hashes), config.num_perm), dtype=np.uint32)
    flat = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint32)
    kernels.minhash32(flat, starts, a, b, out)
    return list(out)


def find_copies(
    texts: Sequence[str],
    keys: Sequence[str],
    config: CopyConfig,
    *,
    cache: SignatureCache | None = None,
    furniture: FurnitureLines | None = None,
    digests_of: Sequence[bytes] | None = None,
) -> np.ndarray:
    """For each text, the index of its copy group's primary (itself if it leads its group).

    Args:
        texts: the documents' texts.
        keys: their ids; the primary of a group is its longest text, then the
            smallest id, so the result does not depend on input order.
        config: threshold and MinHash settings.
        cache: where MinHash signatures are looked up first, and the missing
            ones added; datasketch is imported only when one is missing.
        furniture: :func:`distinct_furniture` of ``texts`` when the caller has
            it (:func:`copy_joins` needs it too); None: computed here.
        digests_of: the digest of each normalised text (:attr:`TextLines.digests`)
            when the caller has them; None: computed here.

    Returns:
        ``(n,)`` int64 array ``primary`` with ``primary[primary[i]] == primary[i]``.
    """
    n = len(texts)
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    # exact copies: one representative each for the near-exact pass
    first_of: dict[bytes, int] = {}
    distinct: list[int] = []
    digests: list[bytes] = []
    # (the normalised texts are not kept: as large as the corpus; made again where needed)
    if digests_of is None:
        digests_of = [
            hashlib.blake2b(_normalise(text).encode("utf-8"), digest_size=16).digest()
            for text in texts
        ]
    for index, digest in enumerate(digests_of):
        if digest in first_of:
            join(first_of[digest], index)
        else:
            first_of[digest] = index
            distinct.append(index)
            digests.append(digest)

    if config.threshold < 1 and len(distinct) > 1:
        # shingles of the LSH candidates only, each made once however often compared
        shingles: dict[int, np.ndarray] = {}

        def shingles_of(index: int) -> np.ndarray:
            if index not in shingles:
                shingles[index] = shingle_hashes(_normalise(texts[index]), config.shingle)
            return shingles[index]

        if furniture is None:
            furniture = furniture_lines(Picked(texts, np.array(distinct, dtype=np.int64)))
        own: dict[int, np.ndarray] = {}

        def own_of(index: int) -> np.ndarray:
            if index not in own:
                own[index] = own_shingles(texts[index], furniture, config.shingle)
            return own[index]

        def similar(a: int, b: int) -> bool:
            if _jaccard(shingles_of(a), shingles_of(b)) < config.threshold:
                return False
            found = own_text_found(own_of(a), own_of(b), shingles_of(a), shingles_of(b))
            return found is None or found >= OWN_FOUND

        # signatures a block at a time, each block kept only as its LSH band keys
        # (8 bytes a band, not 8 bytes a permutation: 64 bytes a text, not 1 KB)
        bands, rows = lsh_bands(config.threshold, config.num_perm)
        keys_of_bands = np.empty((len(digests), bands), dtype=np.uint64)

        def compute(block: list[int]) -> list[np.ndarray]:
            read = take_from(texts, np.array([distinct[k] for k in block], dtype=np.int64))
            return minhash_signatures([_normalise(text) for text in read], config)

        def add(block: list[int], computed: list[np.ndarray]) -> None:
            cache.add_signatures([digests[k] for k in block], computed, config)

        for start in range(0, len(digests), SIGNATURE_BLOCK):
            stop = min(start + SIGNATURE_BLOCK, len(digests))
            found = (
                cache.signatures(digests[start:stop], config)
                if cache is not None
                else [None] * (stop - start)
            )
            missing = [start + k for k, signature in enumerate(found) if signature is None]
            if missing:
                computed = (
                    cache.fill(missing, compute, add) if cache is not None else compute(missing)
                )
                for k, signature in zip(missing, computed, strict=True):
                    found[k - start] = signature
            signatures = np.stack([np.asarray(s, dtype=np.uint64) for s in found])
            keys_of_bands[start:stop] = band_keys(signatures, bands, rows)
        for members in _band_groups(keys_of_bands):
            _link_candidates([distinct[m] for m in members], root, join, similar)

    groups: dict[int, list[int]] = {}
    for index in range(n):
        groups.setdefault(root(index), []).append(index)
    primary = np.empty(n, dtype=np.int64)
    for members in groups.values():
        if len(members) > 1:
            primary[members] = min(members, key=lambda i: (-len(texts[i]), keys[i]))
        else:
            primary[members] = members
    return primary


FurnitureLines = frozenset[int]
"""Furniture lines, as 64-bit hashes of their normalised text (:func:`_line_key`).

Hashes, not the lines: counting every line of a corpus by its text held each
distinct line in memory (a paragraph a line: the corpus's size again)."""


def _line_key(normalised_line: str) -> int:
    """A stable 64-bit hash of a normalised line (two lines share one with p ~ 2**-64)."""
    digest = hashlib.blake2b(normalised_line.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def on_furniture(line: str, furniture: FurnitureLines) -> bool:
    """Whether ``line`` (as it is in a text, not normalised) is a furniture line."""
    return _line_key(_normalise(line)) in furniture


def furniture_lines(texts: Iterable[str]) -> FurnitureLines:
    """Normalised lines found in at least :data:`FURNITURE_TEXTS` of ``texts`` (distinct
    texts), as :data:`FurnitureLines`; counted as 8-byte hashes in arrays."""
    per_text = [_text_lines(text)[1] for text in texts]
    return _counted_furniture(np.concatenate(per_text) if per_text else _NO_KEYS)


def _counted_furniture(line_keys: np.ndarray) -> FurnitureLines:
    """The line keys found :data:`FURNITURE_TEXTS` times or more in ``line_keys`` (the
    distinct line keys of each text, one text after another)."""
    if not len(line_keys):
        return frozenset()
    lines, counts = np.unique(line_keys, return_counts=True)
    return frozenset(lines[counts >= FURNITURE_TEXTS].tolist())


_NO_KEYS = np.zeros(0, dtype=np.uint64)


def _text_lines(text: str) -> tuple[bytes, np.ndarray]:
    """The 16-byte digest of ``text`` normalised (exact copies share it) and the sorted
    keys of its distinct normalised lines (what furniture is counted from)."""
    digest = hashlib.blake2b(_normalise(text).encode("utf-8"), digest_size=16).digest()
    keys = {_line_key(line) for line in map(_normalise, text.splitlines()) if line}
    return digest, np.sort(np.fromiter(keys, dtype=np.uint64, count=len(keys)))


class TextLinesCache(Protocol):
    """Where :func:`text_lines` finds and keeps each text's digest and line keys (see
    :class:`dedup.stages.document_cache.DocumentCache`)."""

    def text_lines(self, texts: Sequence[str]) -> list[tuple[bytes, np.ndarray] | None]: ...

    def add_text_lines(
        self, texts: Sequence[str], lines: Sequence[tuple[bytes, np.ndarray]]
    ) -> None: ...

    def fill(
        self,
        missing: Sequence[int],
        compute: Callable[[list[int]], list[tuple[bytes, np.ndarray]]],
        add: Callable[[list[int], list[tuple[bytes, np.ndarray]]], None],
    ) -> list[tuple[bytes, np.ndarray]]: ...


@dataclass(frozen=True)
class TextLines:
    """What the copy pass and language identification count furniture from, per text.

    Normalising and hashing every line is most of the furniture count's time,
    and the copy pass, its furniture and langid's furniture read the same
    lines: made once (:func:`text_lines`, cached per text), the counts are
    array work.

    Attributes:
        digests: the 16-byte digest of each normalised text (exact copies share one).
        line_keys: ``(m,)`` uint64, each text's distinct line keys, one text after
            another (8 bytes a line, not an array per text).
        starts: ``(n + 1,)`` where each text's keys start in ``line_keys``.
    """

    digests: list[bytes]
    line_keys: np.ndarray
    starts: np.ndarray

    def furniture(self, texts: np.ndarray | None = None) -> FurnitureLines:
        """:func:`furniture_lines` of the texts numbered ``texts`` (all when None)."""
        if texts is None:
            return _counted_furniture(self.line_keys)
        rows, _ = concat_ranges(self.starts[texts], self.starts[np.asarray(texts) + 1])
        return _counted_furniture(self.line_keys[rows])

    def holds(self, furniture: FurnitureLines, texts: np.ndarray) -> np.ndarray:
        """``(len(texts),)`` bool: whether each of the texts numbered ``texts`` has a
        line in ``furniture``."""
        texts = np.asarray(texts, dtype=np.int64)
        rows, _ = concat_ranges(self.starts[texts], self.starts[texts + 1])
        found = np.isin(self.line_keys[rows], np.fromiter(furniture, dtype=np.uint64))
        # furniture lines per text: differences of the running count at the texts' ends
        running = np.concatenate([[0], np.cumsum(found, dtype=np.int64)])
        ends = np.cumsum(self.starts[texts + 1] - self.starts[texts])
        return np.diff(running[np.concatenate([[0], ends])]) > 0

    def distinct_furniture(self) -> FurnitureLines:
        """:func:`distinct_furniture` of the texts (the first of each digest)."""
        first_of: dict[bytes, int] = {}
        for index, digest in enumerate(self.digests):
            first_of.setdefault(digest, index)
        return self.furniture(np.array(sorted(first_of.values()), dtype=np.int64))


def text_lines(texts: Sequence[str], cache: TextLinesCache | None = None) -> TextLines:
    """:class:`TextLines` of ``texts``; with a cache, only of the texts it lacks (then
    added, a block of texts a transaction)."""
    found = cache.text_lines(texts) if cache is not None else [None] * len(texts)

    def compute(block: list[int]) -> list[tuple[bytes, np.ndarray]]:
        return [_text_lines(text) for text in take_from(texts, np.array(block, dtype=np.int64))]

    def add(block: list[int], computed: list[tuple[bytes, np.ndarray]]) -> None:
        assert cache is not None
        cache.add_text_lines(take_from(texts, np.array(block, dtype=np.int64)), computed)

    every = completed(found, compute, add, cache)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(lines[1]) for lines in every], out=starts[1:])
    keys = [lines[1] for lines in every]
    return TextLines(
        [lines[0] for lines in every],
        np.concatenate(keys) if keys else _NO_KEYS,
        starts,
    )


def own_text(text: str, furniture: FurnitureLines) -> str:
    """The lines of ``text`` that are not furniture, as they are (not normalised), or
    all of it when no letter is left.

    Used beyond the copy pass: language identification reads a brief's own
    text, not the site footer that outweighs it (forty briefs under one
    English footer are not English).
    """
    own = "\n".join(
        line
        for line in text.splitlines()
        if line.strip() and not (furniture and on_furniture(line, furniture))
    )
    return own if any(ch.isalpha() for ch in own) else text


class OwnTexts(LazySequence[str]):
    """:func:`own_text` of each of ``texts``, made as it is read.

    ``holds[i]``: whether text ``i`` has a furniture line at all
    (:meth:`TextLines.holds`); the others are not hashed line by line again
    (most texts of a corpus, and most of the cost).
    """

    def __init__(self, texts: Sequence[str], furniture: FurnitureLines, holds: np.ndarray) -> None:
        self._texts = texts
        self._furniture = furniture
        self._holds = np.asarray(holds, dtype=bool)

    def __len__(self) -> int:
        return len(self._texts)

    def _own(self, text: str, position: int) -> str:
        return own_text(text, self._furniture if self._holds[position] else frozenset())

    def _item(self, position: int) -> str:
        return self._own(self._texts[position], position)

    def take(self, positions: np.ndarray) -> list[str]:
        positions = np.asarray(positions, dtype=np.int64)
        read = take_from(self._texts, positions)
        return [self._own(text, p) for text, p in zip(read, positions.tolist(), strict=True)]


def own_shingles(text: str, furniture: FurnitureLines, size: int) -> np.ndarray:
    """The shingle hashes of the lines of ``text`` that are not furniture (empty if none is)."""
    own = [
        line
        for line in (_normalise(line) for line in text.splitlines())
        if line and _line_key(line) not in furniture
    ]
    return shingle_hashes(" ".join(own), size) if own else np.zeros(0, dtype=np.uint64)


def own_text_found(
    own_a: np.ndarray, own_b: np.ndarray, all_a: np.ndarray, all_b: np.ndarray
) -> float | None:
    """The larger share of one side's own shingles found among the other's; None when
    either side has no text of its own (then the full-text Jaccard decides alone)."""
    if not len(own_a) or not len(own_b):
        return None
    return max(_common(own_a, all_b) / len(own_a), _common(own_b, all_a) / len(own_b))


@dataclass(frozen=True, slots=True)
class CopyJoin:
    """Why a document was set aside as a copy of its group's primary (the report shows it).

    Attributes:
        copy, primary: document indices.
        jaccard: Jaccard similarity of the two full texts' shingle sets.
        own_text_found: :func:`own_text_found` of the pair; None when one side
            is all furniture.
        furniture_share: share of the copy's characters on furniture lines.
    """

    copy: int
    primary: int
    jaccard: float
    own_text_found: float | None
    furniture_share: float


def distinct_furniture(texts: Sequence[str]) -> FurnitureLines:
    """:func:`furniture_lines` of the distinct texts (the first of each normalised
    text), as :func:`find_copies` and :func:`copy_joins` count furniture."""
    return text_lines(texts).distinct_furniture()


def copy_joins(
    texts: Sequence[str],
    primary: np.ndarray,
    config: CopyConfig,
    furniture: FurnitureLines | None = None,
) -> list[CopyJoin]:
    """The figures of each copy against its primary (:class:`CopyJoin`), copies in order.

    A copy may have joined its group through another member; its figures are
    measured against the primary, the document kept in its place.
    ``furniture`` is :func:`distinct_furniture` of ``texts`` where the caller
    has it (None: computed here).
    """
    copies = np.flatnonzero(primary != np.arange(len(primary))).tolist()
    if not copies:
        return []
    if furniture is None:
        furniture = distinct_furniture(texts)
    joins = []
    for copy in copies:
        lead = int(primary[copy])
        sa = shingle_hashes(_normalise(texts[copy]), config.shingle)
        sb = shingle_hashes(_normalise(texts[lead]), config.shingle)
        own_a = own_shingles(texts[copy], furniture, config.shingle)
        own_b = own_shingles(texts[lead], furniture, config.shingle)
        lines = [_normalise(line) for line in texts[copy].splitlines()]
        furniture_chars = sum(len(line) for line in lines if _line_key(line) in furniture)
        joins.append(
            CopyJoin(
                copy=copy,
                primary=lead,
                jaccard=_jaccard(sa, sb),
                own_text_found=own_text_found(own_a, own_b, sa, sb),
                furniture_share=furniture_chars / max(sum(len(line) for line in lines), 1),
            )
        )
    return joins


def _link_candidates(
    members: list[int],
    root: Callable[[int], int],
    join: Callable[[int, int], None],
    similar: Callable[[int, int], bool],
) -> None:
    """Join every pair of ``members`` (candidates of one band) that ``similar`` confirms.

    The groups found are the connected components of the confirmed pairs: a
    pair already in one group is not compared, and a member is compared with
    another group only until one of that group's members confirms it. A band
    shared by 10,000 reposts of one story then costs about 10,000
    comparisons, not 50 million.
    """
    seen: dict[int, list[int]] = {}  # group root -> members of this band in that group
    for member in members:
        for old in [r for r in seen if root(r) != r]:  # groups joined since: re-key
            seen.setdefault(root(old), []).extend(seen.pop(old))
        for group_root, others in seen.items():
            if root(member) == root(group_root):  # joined by this loop already
                continue
            for other in others:
                if similar(other, member):
                    join(other, member)
                    break
        seen.setdefault(root(member), []).append(member)
