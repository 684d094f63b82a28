"""Copies: exact and near-exact duplicates are grouped before any encoding."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedup.stages.copies import (
    CopyConfig,
    OwnTexts,
    _band_groups,
    _jaccard,
    _normalise,
    band_keys,
    copy_joins,
    distinct_furniture,
    find_copies,
    furniture_lines,
    lsh_bands,
    on_furniture,
    own_text,
    shingle_hashes,
    text_lines,
)

ARTICLE = (
    "The mayor opened the new bridge over the river on Monday. Traffic in the old town "
    "is expected to ease within weeks. Work on the bridge took two years and cost 40 "
    "million euros, the city said. Residents welcomed the opening with a street party."
)


def test_exact_copies_with_other_case_and_spacing_join_one_group() -> None:
    texts = [ARTICLE, ARTICLE.upper(), "  ".join(ARTICLE.split(" ")), "A different story."]
    primary = find_copies(texts, ["a", "b", "c", "d"], CopyConfig())
    assert primary.tolist()[:3] == [primary[0]] * 3
    assert primary[3] == 3


def test_light_edits_are_copies_but_an_excerpt_or_a_rewrite_is_not() -> None:
    edited = ARTICLE.replace("Monday", "Tuesday")
    excerpt = ARTICLE[: len(ARTICLE) // 2]
    rewrite = "On Monday the mayor inaugurated a bridge; traffic should ease, the city said."
    primary = find_copies([ARTICLE, edited, excerpt, rewrite], list("abcd"), CopyConfig())
    assert primary[0] == primary[1]
    assert primary[2] == 2 and primary[3] == 3


def test_primary_is_the_longest_then_smallest_id_whatever_the_order() -> None:
    texts = [ARTICLE + " Update.", ARTICLE, ARTICLE]
    keys = ["z", "b", "a"]
    primary = find_copies(texts, keys, CopyConfig())
    assert primary.tolist() == [0, 0, 0]
    order = [2, 0, 1]
    shuffled = find_copies([texts[i] for i in order], [keys[i] for i in order], CopyConfig())
    assert [keys[order[i]] for i in shuffled] == ["z", "z", "z"]


def test_ten_thousand_near_identical_reposts_are_one_group() -> None:
    rng = random.Random(7)
    # a news-length article (~2,000 characters): one edited word changes < 1 % of it
    long_article = " ".join(
        f"Paragraph {n}: {ARTICLE.replace('bridge', f'bridge number {n * 7}')}" for n in range(8)
    )
    words = long_article.split(" ")
    texts = []
    for _ in range(10_000):
        edited = list(words)
        edited[rng.randrange(len(edited))] += "x"  # one edited word per repost
        texts.append(" ".join(edited))
    primary = find_copies(texts, [f"r{i:05d}" for i in range(len(texts))], CopyConfig())
    assert len(set(primary.tolist())) == 1


def test_scripts_without_spaces_are_shingled_by_characters() -> None:
    chinese = (
        "市长周一为河上的新桥揭幕。预计老城区的交通将在几周内缓解。该市表示，这座桥花了两年时间建成。"
        * 3
    )
    chinese += "居民们举行了街头派对庆祝大桥开通，许多商店也延长了营业时间。"
    other = "今天天气很好，我们去公园散步，看到了很多花和树，还有很多孩子在玩耍。" * 3
    edited = chinese[:-2] + "了。"  # the last characters changed
    primary = find_copies([chinese, edited, other], list("abc"), CopyConfig())
    assert primary[0] == primary[1] and primary[2] == 2


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"shingle": 0}, {"num_perm": 4}])
def test_config_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CopyConfig(**kwargs)


def _candidate_probability(s: float, bands: int, rows: int) -> float:
    return 1 - (1 - s**rows) ** bands


def test_bands_catch_copies_and_rarely_anything_else() -> None:
    bands, rows = lsh_bands(0.9, 128)
    assert bands * rows <= 128
    assert _candidate_probability(0.9, bands, rows) > 0.75  # the rest: a second band, or lost
    assert _candidate_probability(0.95, bands, rows) > 0.99
    assert _candidate_probability(0.6, bands, rows) < 0.01
    # misses weigh more than false hits: fewer rows per band, more candidates
    even = lsh_bands(0.9, 128, (0.5, 0.5))
    assert _candidate_probability(0.9, *even) < _candidate_probability(0.9, bands, rows)
    # a lower threshold needs fewer rows per band
    assert lsh_bands(0.5, 128)[1] < rows


@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9, 0.95])
def test_bands_are_those_datasketch_would_choose(threshold: float, num_perm: int) -> None:
    lsh = pytest.importorskip("datasketch.lsh")
    if not hasattr(lsh, "_optimal_param"):
        pytest.skip("datasketch no longer has _optimal_param")
    assert lsh_bands(threshold, num_perm) == lsh._optimal_param(threshold, num_perm, 0.1, 0.9)


def test_band_groups_are_the_rows_that_agree_on_a_whole_band() -> None:
    signatures = np.array(
        [[1, 2, 3, 4], [1, 2, 9, 9], [7, 2, 3, 4], [1, 2, 3, 4], [5, 5, 5, 5]], dtype=np.uint64
    )
    groups = [g.tolist() for g in _band_groups(band_keys(signatures, bands=2, rows=2))]
    assert sorted(groups) == [[0, 1, 3], [0, 2, 3]]


def test_band_keys_tell_bands_apart_as_their_values_do() -> None:
    """Equal bands give equal keys; bands that differ in one value, in its position or
    by a swap of two values give different keys (a collision would only cost a check)."""
    rng = np.random.default_rng(5)
    signatures = rng.integers(0, 2**32, size=(2000, 8), dtype=np.uint64)
    signatures[1000:1100] = signatures[:100]  # equal rows
    signatures[1100:1200] = signatures[:100, ::-1]  # values in another order
    signatures[1200:1300] = signatures[:100] ^ np.uint64(1)  # one bit of every value
    keys = band_keys(signatures, bands=2, rows=4)
    assert np.array_equal(keys[1000:1100], keys[:100])
    assert not (keys[1100:1300] == np.tile(keys[:100], (2, 1))).any()
    assert len(np.unique(keys[:1000, 0])) == 1000


def briefs_under_one_footer() -> tuple[list[str], list[str]]:
    """40 briefs of 40 different ntrex-dev stories (the lead sentence of one version
    of each, in whatever language that version is: a multilingual site) and each
    brief with one site's ten-line footer under it (the texts).

    One brief per story: two sentences of one story are the same news item
    told twice, which is not what this tests."""
    import json
    from pathlib import Path

    corpus = Path(__file__).resolve().parents[2] / "bench/data/ntrex-dev/corpus.jsonl"
    docs = [json.loads(line) for line in corpus.open(encoding="utf-8")]
    story = dict(line.rstrip("\n").split("\t") for line in (corpus.parent / "truth.tsv").open())
    one_each = {story[d["id"]]: d for d in sorted(docs, key=lambda d: d["id"], reverse=True)}
    briefs = []
    for _, doc in sorted(one_each.items())[:40]:
        paragraphs = [p.strip() for p in doc["text"].split("\n") if p.strip()]
        # the lead after the headline; its first sentence where sentences end in ". "
        lead = paragraphs[1] if len(paragraphs) > 1 else paragraphs[0]
        briefs.append(lead.split(". ")[0][:300])
    assert len(set(briefs)) == 40
    footer = "\n".join(
        [
            "About us: The Daily Ledger is an independent, reader-funded newsroom founded in"
            " 1998, covering local politics, business, culture and sport across the region.",
            "Subscribe to our free newsletter and get the morning briefing, the evening"
            " round-up and our weekend long reads delivered straight to your inbox.",
            "Comments are moderated: please read our community guidelines before posting;"
            " personal attacks, spam and off-topic remarks will be removed without notice.",
            "Follow us on Facebook, X, Instagram and WhatsApp for live updates, photo"
            " galleries and breaking news alerts as the story develops through the day.",
            "Advertise with us: our print and digital editions reach over two million"
            " readers every month; contact the commercial team for rates and packages.",
            "Corrections and clarifications: if you spot an error in this article, please"
            " contact the standards editor, who will review it within two working days.",
            "Privacy policy | Terms of use | Cookie settings | Accessibility statement |"
            " Contact us | Site map | Help centre | Manage your subscription",
            "Careers at the Daily Ledger: see our current vacancies, paid internships and"
            " the graduate journalism scheme, open to applicants from every background.",
            "Got a story? Send us a tip securely through our encrypted contact form, or call"
            " the newsdesk on 020 7946 0000; we protect the identity of our sources.",
            "Copyright 2024 The Daily Ledger Media Group Limited. All rights reserved."
            " Registered in England and Wales, company number 01234567.",
        ]
    )
    return briefs, [brief + "\n" + footer for brief in briefs]


def test_briefs_sharing_one_long_footer_are_not_copies() -> None:
    briefs, texts = briefs_under_one_footer()
    primary = find_copies(texts, [f"b{i:02d}" for i in range(len(texts))], CopyConfig())
    assert len(set(briefs)) == len(briefs)
    assert list(primary) == list(range(len(texts)))


def test_shared_furniture_gives_what_each_step_counts_alone() -> None:
    """The run counts furniture once for find_copies and copy_joins: the same lines
    each counts on its own, so the same groups and the same figures."""
    _briefs, texts = briefs_under_one_footer()
    texts = [*texts, texts[0].upper(), texts[1] + " Updated."]  # an exact and a near copy
    keys = [f"b{i:02d}" for i in range(len(texts))]
    furniture = distinct_furniture(texts)
    footer = [line for line in texts[0].splitlines() if "copyright 2024" in line.lower()]
    assert footer and all(on_furniture(line, furniture) for line in footer)
    primary = find_copies(texts, keys, CopyConfig())
    assert np.array_equal(find_copies(texts, keys, CopyConfig(), furniture=furniture), primary)
    assert (primary != np.arange(len(texts))).sum() == 2
    joins = copy_joins(texts, primary, CopyConfig())
    assert copy_joins(texts, primary, CopyConfig(), furniture) == joins


def test_text_lines_count_the_furniture_each_text_shows_and_are_read_from_the_cache(
    tmp_path,
) -> None:
    """The furniture of any subset of texts, counted from their cached line keys, is what
    hashing those texts' lines gives; the digests are the exact-copy keys; a second
    reading of the same texts comes from the document cache (counted)."""
    import hashlib

    from dedup.stages.document_cache import DocumentCache

    _briefs, texts = briefs_under_one_footer()
    texts = [*texts, texts[0].upper(), "", "no lines\n\n  \n", texts[3]]
    cold = text_lines(texts)
    for subset in ([0, 1, 2], [0, 1], list(range(len(texts))), [40, 41, 42]):
        picked = np.array(subset, dtype=np.int64)
        assert cold.furniture(picked) == furniture_lines([texts[i] for i in subset])
    # the distinct texts: the first of each normalised text (texts[40] repeats texts[0])
    first: dict[str, int] = {}
    for index, text in enumerate(texts):
        first.setdefault(_normalise(text), index)
    assert cold.distinct_furniture() == furniture_lines([texts[i] for i in first.values()])
    assert cold.digests[40] == cold.digests[0] != cold.digests[1]
    expected = hashlib.blake2b(_normalise(texts[5]).encode(), digest_size=16).digest()
    assert cold.digests[5] == expected
    with DocumentCache(tmp_path) as cache:
        text_lines(texts, cache)
    with DocumentCache(tmp_path) as cache:
        warm = text_lines(texts, cache)
        assert cache.hits["text_lines"] == len(texts)
    assert warm.digests == cold.digests
    assert np.array_equal(warm.line_keys, cold.line_keys)
    assert np.array_equal(warm.starts, cold.starts)


def test_own_texts_skip_only_the_texts_without_furniture() -> None:
    """OwnTexts gives own_text of every text (blank lines, CRLF, all-furniture texts
    included) while hashing the lines of only those that hold furniture."""
    _briefs, texts = briefs_under_one_footer()
    texts = [*texts, "Plain story.\r\n\r\nSecond line.", "", "12 34\n\n", texts[2].upper()]
    lines = text_lines(texts)
    numbers = np.arange(len(texts))
    furniture = lines.furniture(numbers)
    holds = lines.holds(furniture, numbers)
    expected = [any(on_furniture(line, furniture) for line in t.splitlines()) for t in texts]
    assert holds.tolist() == expected and any(expected) and not all(expected)
    own = OwnTexts(texts, furniture, holds)
    assert list(own) == [own_text(text, furniture) for text in texts]
    assert own.take(np.array([41, 0])) == [own_text(texts[41], furniture), own[0]]
    assert lines.holds(furniture, np.array([41, 42, 0])).tolist() == [False, False, True]


def test_normalise_folds_case_and_every_unicode_space_as_a_regex_would() -> None:
    import re
    import sys

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(r"\s", chr(c))]
    assert "\u00a0" in spaces and "\u3000" in spaces
    text = "  Ünïcode" + "".join(spaces) + "SPACES\n\tend "
    assert _normalise(text) == re.sub(r"\s+", " ", text.casefold()).strip() == "ünïcode spaces end"


def test_shingle_hashes_stand_for_the_shingles_themselves() -> None:
    """One hash per distinct run of characters, in any script, so the Jaccard of two
    texts' hash sets is that of their shingle sets."""

    def shingles(text: str, size: int) -> set[str]:
        return {text[i : i + size] for i in range(max(len(text) - size + 1, 1))}

    texts = [
        "the council approved the budget on monday",
        "the council approved the budget on tuesday",
        "το συμβούλιο ενέκρινε τον προϋπολογισμό",
        "市议会周一批准了预算。市议会周一批准了预算。",
        "short",
        "",
    ]
    for text in texts:
        assert len(shingle_hashes(text, 8)) == len(shingles(text, 8))
    for a in texts:
        for b in texts:
            sa, sb = shingles(a, 8), shingles(b, 8)
            assert _jaccard(shingle_hashes(a, 8), shingle_hashes(b, 8)) == pytest.approx(
                len(sa & sb) / len(sa | sb)
            )


def test_minhash_signatures_are_datasketchs_own() -> None:
    """The compiled MinHash gives the hash values datasketch's ``MinHash`` gives for the
    same shingles (its default scheme and seed), for texts empty, shorter than a
    shingle, and long, in several scripts."""
    from datasketch import MinHash

    from dedup.stages.copies import CopyConfig, minhash_signatures, shingle_hashes

    config = CopyConfig()
    rng = random.Random(1)
    words = ["word", "слово", "ἀρχή", "🔥", "news", "\u200b"]
    texts = ["", "a", "ab cd", "x" * config.shingle]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 400))) for _ in range(60)]
    low = np.uint64(0xFFFFFFFF)
    shingles = ((shingle_hashes(t, config.shingle) & low).astype(np.uint32) for t in texts)
    expected = [
        np.asarray(m.hashvalues)
        for m in MinHash.generator(shingles, num_perm=config.num_perm, hashfunc=int)
    ]
    got = minhash_signatures(texts, config)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
