#!/usr/bin/env python3
"""What a corpus full of reposts costs: the same corpus with and without them.

Writes a second corpus holding every document of CORPUS and ``--reposts``
lightly edited copies of each (the way feeds and aggregators re-publish:
whitespace reflowed, a letter typo, a "Source:" line added or a byline
line changed; each repost gets one or two of these, drawn with ``--seed``), then runs
``dedup.run`` on each corpus in a fresh process with an empty vector cache
(the built model shared, as in ``bench/warm_cold.py``). Prints both runs'
wall time and sentences encoded, the time ratio beside the ratio of
documents, how many reposts the copy pass found, and how many ended in
their original's cluster.

    python bench/reposts.py [CORPUS] [--reposts 9] [--cache-dir DIR]

The copy pass (``dedup/stages/copies.py``: exact text, then MinHash LSH over
character shingles, each hit confirmed by exact Jaccard) runs before language
identification and encoding, so a repost costs its MinHash signature and
nothing after it: the ratio of times should stay far below the ratio of
documents.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from warm_cold import DEFAULT_CORPUS, empty_cache, stage_times, timed_run

_OUTLETS = ("Wire Service", "Daily Courier", "Evening Post", "News Digest", "Metro Desk")


def repost(text: str, rng: random.Random) -> str:
    """``text`` as another outlet might re-publish it: one or two light edits."""
    edits = rng.sample(range(4), k=rng.randint(1, 2))
    for edit in sorted(edits):
        if edit == 0:  # reflowed: paragraphs joined or split, spaces doubled
            text = text.replace("\n\n", "\n", 1).replace(". ", ".  ", 3)
        elif edit == 1:  # a typo: two neighbouring letters of one word swapped
            words = text.split(" ")
            long_words = [i for i, word in enumerate(words) if len(word) > 3]
            if long_words:
                at = rng.choice(long_words)
                word = words[at]
                k = rng.randrange(len(word) - 1)
                words[at] = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
            text = " ".join(words)
        elif edit == 2:  # a source line at the end
            text = f"{text}\n\nSource: {rng.choice(_OUTLETS)}"
        else:  # a byline at the top
            text = f"By {rng.choice(_OUTLETS)} staff\n\n{text}"
    return text


def write_with_reposts(corpus: Path, out: Path, reposts: int, seed: int) -> dict[str, str]:
    """Write ``corpus`` plus ``reposts`` edited copies of each document to ``out``
    (JSONL); returns the original id of every repost."""
    from dedup.stages.ingest import read_documents

    rng = random.Random(seed)
    original_of: dict[str, str] = {}
    with out.open("w", encoding="utf-8") as handle:
        for doc in read_documents(corpus).documents:
            handle.write(json.dumps({"id": doc.id, "text": doc.text}, ensure_ascii=False) + "\n")
            for r in range(reposts):
                repost_id = f"{doc.id}~repost{r + 1}"
                original_of[repost_id] = doc.id
                record = {"id": repost_id, "text": repost(doc.text, rng)}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return original_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--reposts", type=int, default=9, help="edited copies per document")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir", "--cache", dest="cache", type=Path, help="cache with the built model"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dedup-reposts-") as scratch:
        reposted = Path(scratch) / "with-reposts.jsonl"
        original_of = write_with_reposts(args.corpus, reposted, args.reposts, args.seed)
        with empty_cache(args.cache) as cache:
            plain_wall, plain = timed_run(args.corpus, cache)
        with empty_cache(args.cache) as cache:
            reposted_wall, with_reposts = timed_run(reposted, cache)
    n_plain, n_reposted = len(plain["cluster_of"]), len(with_reposts["cluster_of"])
    cluster_of = with_reposts["cluster_of"]
    copy_of = with_reposts["copy_of"]  # the primary of a copy group is its longest text
    found = sum(copy_of.get(r, r) == copy_of.get(o, o) for r, o in original_of.items())
    joined = sum(cluster_of[r] == cluster_of[o] for r, o in original_of.items())
    print(f"corpus: {args.corpus}")
    print(
        f"without reposts: {n_plain:6d} documents, {plain['encoded']:6d} sentences encoded, "
        f"{plain_wall:7.2f} s wall"
    )
    print(
        f"with {args.reposts} reposts each: {n_reposted:6d} documents, "
        f"{with_reposts['encoded']:6d} sentences encoded, {reposted_wall:7.2f} s wall"
    )
    print(
        f"{n_reposted / n_plain:.1f}x the documents cost {reposted_wall / plain_wall:.2f}x "
        f"the time and {with_reposts['encoded'] / max(plain['encoded'], 1):.2f}x the encoding"
    )
    total = len(original_of)
    print(f"reposts found by the copy pass (in their original's copy group): {found} / {total}")
    print(f"reposts in their original's cluster: {joined} / {total}")
    print(f"with reposts, seconds per stage: {stage_times(with_reposts['stages'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
