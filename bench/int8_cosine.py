#!/usr/bin/env python3
"""Cosine of the int8 backends' vectors to fp32's on every sentence of the development sets.

The quality bar of an int8 encoder (issue 18): cosine to fp32 >= 0.99 on
*every* sentence of the four development sets, reported by language with the
worst ten listed. Each set's documents are split into sentences as the
pipeline splits them (the language from the set's ``langs.tsv`` where it has
one, else dedup's identifier), every distinct sentence is encoded once by fp32
ONNX (torch's vectors, cosine 1.00000 to them) and by each backend, and the
cosines are summarised per set and per language.

    python bench/int8_cosine.py [SET ...] [--backends openvino-int8,onnx-int8] [--worst 10]

Its last line: ``min_cosine <backend>=<min> ...`` over all sets. ``--smoke``
(CI): 20 sentences of ntrex-dev, that it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))  # calibration_sample's reader of langs.tsv
SETS = ("ntrex-dev", "ntrex-wide", "flores-dev", "flores-many")


def set_sentences(name: str) -> dict[str, str]:
    """Every distinct sentence of set ``name`` -> the language of its (first) document."""
    from calibration_sample import read_langs

    from dedup.stages.langid import identify
    from dedup.stages.segment import split_sentences

    folder = REPO / "bench/data" / name
    langs = read_langs(folder)
    sentences: dict[str, str] = {}
    with (folder / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            lang = langs.get(doc["id"]) or identify(doc["text"]).lang
            for sentence in split_sentences(doc["text"], lang.split("_")[0]):
                sentences.setdefault(sentence, lang)
    return sentences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", default=list(SETS), help=f"[{' '.join(SETS)}]")
    parser.add_argument("--backends", default="openvino-int8,onnx-int8", help="held to fp32")
    parser.add_argument("--worst", type=int, default=10, help="languages listed [10]")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache root")
    parser.add_argument("--smoke", action="store_true", help="20 sentences of ntrex-dev (CI)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from dedup.encoding import Encoder

    backends = [b for b in args.backends.split(",") if b]
    sets = ["ntrex-dev"] if args.smoke else args.sets
    encoders = {b: Encoder(cache_dir=args.cache_dir, backend=b) for b in ["onnx", *backends]}
    by_lang: dict[str, dict[str, list[float]]] = {b: defaultdict(list) for b in backends}
    overall: dict[str, float] = {b: 1.0 for b in backends}
    for name in sets:
        sentences = set_sentences(name)
        texts = list(sentences)[: 20 if args.smoke else None]
        ref = encoders["onnx"].encode(texts, progress=True)
        cells = []
        for backend in backends:
            cos = np.sum(encoders[backend].encode(texts, progress=True) * ref, axis=1)
            for text, c in zip(texts, cos, strict=True):
                by_lang[backend][sentences[text]].append(float(c))
            overall[backend] = min(overall[backend], float(cos.min()))
            cells.append(
                f"{backend} mean {cos.mean():.5f} min {cos.min():.5f} below 0.99: "
                f"{int(np.sum(cos < 0.99))}"
            )
        print(f"{name:12s} {len(texts):6d} sentences | " + " | ".join(cells), flush=True)
    first = backends[0]
    worst = sorted(by_lang[first], key=lambda lang: min(by_lang[first][lang]))[: args.worst]
    print(f"worst {len(worst)} languages by {first}'s least cosine (sentences; least per backend):")
    for lang in worst:
        mins = "  ".join(f"{b} {min(by_lang[b][lang]):.5f}" for b in backends)
        print(f"  {lang:12s} {len(by_lang[first][lang]):5d}  {mins}")
    print(f"languages: {len(by_lang[first])}")
    print("min_cosine " + " ".join(f"{b}={overall[b]:.5f}" for b in backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
