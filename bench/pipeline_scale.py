#!/usr/bin/env python3
"""The whole pipeline, every stage, on N generated documents: time per stage and peak RSS.

    python bench/pipeline_scale.py --docs 10000
    python bench/pipeline_scale.py --docs 100000 --work /tmp/pscale --keep-work
    python bench/pipeline_scale.py --docs 10000,100000 --plot bench/pipeline_scale.png
    python bench/pipeline_scale.py --plot-from small.log 1m.log --plot bench/pipeline_scale.png

Unlike ``bench/scale.py`` (the stages after encoding, on synthetic vectors),
this runs ``dedup run`` itself, in a child process: reading JSONL, copies,
language identification, segmentation, boilerplate, embedding, candidates,
align, cluster, keep and the report files, with ``--kept`` and ``--dropped``.

**The encoder is a stand-in**, named so in every line printed: a
sentence-transformers ``StaticEmbedding`` model made of the default model's
input token embeddings (multilingual-e5-small's ``word_embeddings``, no
transformer layer run), built once into ``<cache>/models/``. It is a real
model loaded through ``--model PATH`` like any other folder, and a weak one;
``--standin-quality CORPUS TRUTH`` prints its pairwise F1 on a real corpus.
Transformer encoding costs what ``bench/encode_speed.py`` measures; this
benchmark is about everything else.

The generated corpus (``--seed``): ``--languages`` made-up languages (codes
``qaa``..., supplied in each record's ``lang``; Latin, Cyrillic, Greek and
Georgian scripts), each rendering a shared vocabulary of concepts as its own
pseudo-words, except a share (``--shared``) rendered alike in every language,
as loanwords are; names and numbers are alike everywhere. A story is 5-20
sentences of Zipf-distributed concepts; stories come in events of 1-3 that
share their names and numbers (same event, different article: the hard
negatives). A story has versions in 1-6 languages (1 in 50 stories in up to
all of them); a version drops, inserts and swaps words, sometimes merges two
sentences, and 1 in 10 versions is an excerpt (its first 30-60 %). Every
document carries its site's footer (boilerplate: one site per ~200
documents), and 1 in 25 documents is a repost of another (a copy, under
another site's footer half of the time). ``--shared`` sets how alike
translations look: the benchmark prints the median z-score of the aligned
sentence pairs it found between planted versions, which should lie in the
4-7 of real translations (not 11-13): 0.5 gives 4.2 at 3,000 documents,
where the default model gives 6.25 on ntrex-dev.

Last line: ``docs=N wall_s=... driver_peak_rss_mb=... worker_peak_rss_mb=...
pairwise_f1=...`` (F1 of the planted stories, a check that the pipeline still
finds them with a weak encoder, not a quality claim). Several sizes
(``--docs 10000,100000``) run one after another, each printing its lines;
``--plot PNG`` then draws each stage's seconds and the driver's peak RSS
against the number of documents, with a line linear from the first size;
``--plot-from LOG...`` draws it from the printed output of runs made
before (a million documents take the better part of an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

STANDIN = "standin-static-e5-input-embeddings"
SCRIPTS = {
    "Latn": ("bcdfghklmnprstvz", "aeiou"),
    "Cyrl": ("бвгдзклмнпрстфх", "аеиоуы"),
    "Grek": ("βγδζθκλμνξπρστφχ", "αεηιουω"),
    "Geor": ("ბგდვზთკლმნპჟრსტფქ", "აეიოუ"),
}
SCRIPT_CYCLE = ("Latn", "Latn", "Cyrl", "Latn", "Grek", "Latn", "Geor", "Latn")
VOCABULARY = 30_000


def standin_model(cache: Path) -> Path:
    """The stand-in encoder's folder: a StaticEmbedding of the default model's token embeddings.

    Built once (a few seconds) next to the default model in ``cache``, named after that
    model's folder (so a new default model gives a new stand-in).
    """
    from dedup.encoding import DEFAULT_MODEL, ensure_model, load_profiles
    from dedup.encoding.registry import build_atomically

    source = ensure_model(load_profiles()[DEFAULT_MODEL], cache)
    folder = cache / "models" / f"{STANDIN}-{source.name}"
    if folder.is_dir():
        return folder

    def build(tmp: Path) -> None:
        import torch
        from safetensors import safe_open
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import StaticEmbedding
        from tokenizers import Tokenizer

        with safe_open(str(source / "model.safetensors"), "pt") as weights:
            tokens = weights.get_tensor("embeddings.word_embeddings.weight").to(torch.float32)
        static = StaticEmbedding(Tokenizer.from_file(str(source / "tokenizer.json")), tokens)
        SentenceTransformer(modules=[static], device="cpu").save(str(tmp))

    return build_atomically(folder, build)


def _words(rng: np.random.Generator, script: str, count: int) -> np.ndarray:
    """``count`` distinct pseudo-words of 1-3 consonant-vowel syllables in ``script``."""
    consonants, vowels = (np.array(list(letters), dtype=object) for letters in SCRIPTS[script])
    words: dict[str, None] = {}
    while len(words) < count:
        size = 2 * count
        letters = np.empty((size, 7), dtype=object)
        letters[:, 0:6:2] = consonants[rng.integers(len(consonants), size=(size, 3))]
        letters[:, 1:6:2] = vowels[rng.integers(len(vowels), size=(size, 3))]
        letters[:, 6] = np.where(
            rng.random(size) < 0.3, consonants[rng.integers(len(consonants), size=size)], ""
        )
        syllables = rng.integers(1, 4, size=size)
        for row, n in zip(letters.tolist(), syllables.tolist(), strict=True):
            words["".join(row[: 2 * n]) + row[6]] = None
    return np.array(list(words)[:count], dtype=object)


class Story:
    """One story's sentences as concept ids (a name or number is ``-1 - its index in extras``)."""

    def __init__(self, ids: np.ndarray, sentence: np.ndarray, extras: np.ndarray) -> None:
        self.ids, self.sentence, self.extras = ids, sentence, extras


class Generator:
    """Languages, sites and stories of one corpus; :meth:`documents` yields its records."""

    def __init__(self, languages: int, shared: float, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.codes = [f"q{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(languages)]
        scripts = [SCRIPT_CYCLE[i % len(SCRIPT_CYCLE)] for i in range(languages)]
        common = _words(self.rng, "Latn", VOCABULARY)
        is_shared = self.rng.random(VOCABULARY) < shared
        self.lexicons = [
            np.where(is_shared, common, _words(self.rng, s, VOCABULARY)) for s in scripts
        ]
        zipf = 1.0 / np.arange(1, VOCABULARY + 1)
        self.zipf = np.cumsum(zipf / zipf.sum())
        self.names = np.array(
            [w.capitalize() for w in _words(self.rng, "Latn", 5000)], dtype=object
        )

    def _concepts(self, size: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.zipf, self.rng.random(size)), VOCABULARY - 1)

    def _story(self, extras: np.ndarray) -> Story:
        """5-20 sentences of 8-20 concepts; half of them name someone, a quarter a number."""
        rng = self.rng
        lengths = rng.integers(8, 21, size=int(rng.integers(5, 21)))
        ids = self._concepts(int(lengths.sum()))
        sentence = np.repeat(np.arange(len(lengths)), lengths)
        starts = np.cumsum(lengths) - lengths
        for share, low, high in ((0.5, 0, len(extras) - 1), (0.25, len(extras) - 1, len(extras))):
            chosen = starts[rng.random(len(lengths)) < share]
            at = chosen + rng.integers(0, 8, size=len(chosen))
            ids[at] = -1 - rng.integers(low, max(high, low + 1), size=len(chosen))
        return Story(ids, sentence, extras)

    def _render(self, story: Story, language: int, excerpt: bool) -> list[str]:
        """A version of ``story`` in ``language``: reworded a little, maybe cut short."""
        rng = self.rng
        ids, sentence = story.ids, story.sentence
        if excerpt:
            last = sentence[-1] + 1
            keep = sentence < max(2, int(last * rng.uniform(0.3, 0.6)))
            ids, sentence = ids[keep], sentence[keep]
        kept = rng.random(len(ids)) >= 0.1  # a word left out
        ids, sentence = ids[kept], sentence[kept]
        added = int(rng.binomial(len(ids), 0.1))  # a word added
        at = rng.integers(0, len(ids), size=added)
        ids, sentence = (
            np.insert(ids, at, self._concepts(added)),
            np.insert(sentence, at, sentence[at]),
        )
        # word order differs between languages: each word moves a place or so
        order = np.lexsort((np.arange(len(ids)) + rng.normal(0, 0.7, len(ids)), sentence))
        ids, sentence = ids[order], sentence[order]
        words = np.where(
            ids >= 0,
            self.lexicons[language][np.maximum(ids, 0)],
            story.extras[-1 - np.minimum(ids, -1)],
        )
        bounds = np.flatnonzero(np.diff(sentence)) + 1
        sentences = [" ".join(part) for part in np.split(words, bounds)]
        merge = rng.random(len(sentences)) < 0.05  # sometimes two sentences become one
        merged: list[str] = []
        for text, joins in zip(sentences, merge.tolist(), strict=True):
            if merged and joins:
                merged[-1] += ", " + text
            else:
                merged.append(text)
        return [text[0].upper() + text[1:] + "." for text in merged]

    def _footer(self, site: int, language: int) -> str:
        site_rng = np.random.default_rng(site)
        lexicon = self.lexicons[language]
        words = " ".join(lexicon[np.searchsorted(self.zipf, site_rng.random(7))])
        return (
            f"© {self.names[site % len(self.names)]} News {2000 + site % 25}. {words.capitalize()}."
        )

    def documents(self, n_docs: int) -> Iterator[tuple[dict[str, str], int]]:
        """Yield ``(record, story)`` pairs: ``n_docs`` JSONL records and their true story."""
        rng, made, story_id = self.rng, 0, 0
        sites = max(1, n_docs // (200 * len(self.codes)))  # per language
        recent: deque[tuple[dict[str, str], int]] = deque(maxlen=1000)
        while made < n_docs:
            names = self.names[rng.choice(len(self.names), int(rng.integers(2, 6)))]
            number = str(int(rng.integers(10, 100_000)))
            extras = np.array([*names, number], dtype=object)
            for _ in range(int(rng.integers(1, 4))):  # stories of one event
                story = self._story(extras)
                wide = rng.random() < 0.02
                versions = (
                    int(rng.integers(2, len(self.codes) + 1))
                    if wide
                    else min(int(rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6])), len(self.codes))
                )
                languages = rng.choice(len(self.codes), versions, replace=False).tolist()
                for rank, language in enumerate(languages):
                    if made >= n_docs:
                        return
                    if recent and rng.random() < 0.04:  # a repost of an earlier document
                        original, original_story = recent[int(rng.integers(len(recent)))]
                        record = {**original, "id": _doc_id(made)}
                        if rng.random() < 0.5:  # under another site's footer
                            lang = self.codes.index(original["lang"])
                            body = original["text"].rsplit("\n\n", 1)[0]
                            site = int(rng.integers(sites)) * len(self.codes) + lang
                            record["text"] = body + "\n\n" + self._footer(site, lang)
                        made += 1
                        yield record, original_story
                        continue
                    sentences = self._render(
                        story, language, excerpt=rank > 0 and rng.random() < 0.1
                    )
                    paragraphs = [
                        " ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)
                    ]
                    site = int(rng.integers(sites)) * len(self.codes) + language
                    record = {
                        "id": _doc_id(made),
                        "lang": self.codes[language],
                        "title": " ".join(sentences[0].split()[:6]),
                        "text": "\n\n".join([*paragraphs, self._footer(site, language)]),
                    }
                    made += 1
                    recent.append((record, story_id))
                    yield record, story_id
                story_id += 1


def _doc_id(index: int) -> str:
    return "d" + hashlib.blake2b(str(index).encode(), digest_size=6).hexdigest()


def generate(n_docs: int, folder: Path, languages: int, shared: float, seed: int) -> Path:
    """Write ``corpus.jsonl`` and ``truth.tsv`` into ``folder`` (kept across runs of one size)."""
    corpus = folder / "corpus.jsonl"
    marker = folder / "generated.json"
    wanted = {"docs": n_docs, "languages": languages, "shared": shared, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return corpus
    folder.mkdir(parents=True, exist_ok=True)
    with corpus.open("w", encoding="utf-8") as out, (folder / "truth.tsv").open("w") as truth:
        truth.write("id\tstory\n")
        for record, story in Generator(languages, shared, seed).documents(n_docs):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            truth.write(f"{record['id']}\ts{story}\n")
    marker.write_text(json.dumps(wanted))
    return corpus


def child(args: list[str]) -> None:
    """Run ``dedup run ARGS`` in this process; print its and its workers' peak RSS as JSON."""
    from dedup.cli import main

    main(args, standalone_mode=False)
    usage = resource.getrusage
    print(
        json.dumps(
            {
                "driver_peak_rss_mb": usage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_peak_rss_mb": usage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def planted_z(out: Path, truth: dict[str, str]) -> float:
    """Median z-score of the aligned sentence pairs of linked planted versions (report's pairs)."""
    clusters = json.loads((out / "clusters.json").read_text())
    scores = [
        aligned["z"]
        for cluster in clusters["clusters"]
        for link in cluster.get("links", [])
        if truth.get(link["left"]) == truth.get(link["right"])
        for aligned in link.get("aligned", [])
    ]
    return float(np.median(scores)) if scores else float("nan")


def run_dedup(
    corpus: Path, folder: Path, model: Path, engine: str
) -> tuple[float, dict[str, float], dict[str, object], Path]:
    """``dedup run`` on ``corpus`` in a child process, from an empty cache in ``folder``:
    its wall time, peak RSS (driver, workers), run.json and output folder."""
    cache, out = folder / "cache", folder / "out"
    shutil.rmtree(cache, ignore_errors=True)  # every run computes everything
    shutil.rmtree(out, ignore_errors=True)
    command = [
        "run", str(corpus), "--out", str(out), "--model", str(model), "--cache-dir", str(cache),
        "--engine", engine, "--recompute-links", "--quiet",
        "--kept", str(out / "kept.jsonl.gz"), "--dropped", str(out / "dropped.jsonl.gz"),
    ]  # fmt: skip
    begin = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", *command],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    wall = time.perf_counter() - begin
    if done.returncode:
        sys.exit(f"dedup run failed:\n{done.stderr[-3000:]}")
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, rss, json.loads((out / "run.json").read_text()), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--docs",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[10_000],
        help="documents to generate (comma-separated sizes: one run each)",
    )
    parser.add_argument("--plot", type=Path, help="with several sizes: a PNG of time and memory")
    parser.add_argument(
        "--plot-from",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="instead of running: --plot the runs whose printed output these files hold",
    )
    parser.add_argument("--languages", type=int, default=16)
    parser.add_argument("--shared", type=float, default=0.5, help="share of loanwords")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dedup-pipeline-scale"))
    parser.add_argument("--keep-work", action="store_true", help="keep the run's report")
    parser.add_argument(
        "--model-cache", type=Path, help="where the stand-in is built (default: dedup's cache)"
    )
    parser.add_argument("--engine", default="local", choices=("local", "ray"))
    parser.add_argument(
        "--standin-quality",
        nargs=2,
        type=Path,
        metavar=("CORPUS", "TRUTH"),
        help="instead: the stand-in's pairwise P/R/F1 on a real corpus and its truth.tsv",
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return

    if args.plot_from:
        if not args.plot:
            parser.error("--plot-from needs --plot")
        runs = [run for log in args.plot_from for run in printed_runs(log)]
        plot(sorted(runs, key=lambda run: run["docs"]), args.plot)
        print(f"plot: {args.plot}")
        return

    from dedup.encoding import cache_root

    model = standin_model(cache_root(args.model_cache))
    if args.standin_quality:
        from dedup.evaluation import evaluate, load_assignments, load_truth

        corpus, truth_file = args.standin_quality
        _, _, _, out = run_dedup(corpus, args.work / "standin-quality", model, args.engine)
        scores = evaluate(load_assignments(out / "assignments.csv"), load_truth(truth_file))
        print(f"{STANDIN} on {corpus}: pairwise P/R/F1 {scores.pairwise.precision:.3f}/"
              f"{scores.pairwise.recall:.3f}/{scores.pairwise.f1:.3f}")  # fmt: skip
        return
    runs = [measure(size, args, model) for size in args.docs]
    if args.plot and len(runs) > 1:
        plot(runs, args.plot)
        print(f"plot: {args.plot}")


def measure(n_docs: int, args: argparse.Namespace, model: Path) -> dict[str, Any]:
    """One size: generate, run, print the stage table and the last line; the figures."""
    from dedup.evaluation import evaluate, load_assignments, load_truth

    folder = args.work / f"docs-{n_docs}"
    begin = time.perf_counter()
    corpus = generate(n_docs, folder, args.languages, args.shared, args.seed)
    print(f"generated {n_docs} documents in {time.perf_counter() - begin:.1f} s: {corpus}")
    wall, rss, run_info, out = run_dedup(corpus, folder, model, args.engine)
    truth = load_truth(folder / "truth.tsv")
    scores = evaluate(load_assignments(out / "assignments.csv"), truth)
    print(f"encoder: {STANDIN} (stand-in: static token embeddings, not the default model)")
    stages: dict[str, dict[str, float]] = run_info["stages"]  # type: ignore[assignment]
    for name, stage in stages.items():
        cached = f", {stage['cached']} cached" if "cached" in stage else ""
        print(
            f"  {name:12s} {stage['seconds']:9.1f} s  driver peak {stage['peak_rss_mb']:6d} MB "
            f"{stage['items']:>11} {stage['unit']}{cached}"
        )
    summary = run_info["summary"]  # type: ignore[index]
    print(f"largest link component: {summary['largest_link_component']} documents")
    print(
        f"median z of aligned sentence pairs between planted versions: {planted_z(out, truth):.2f}"
    )
    print(f"pairwise P/R/F1 {scores.pairwise.precision:.3f}/{scores.pairwise.recall:.3f}/"
          f"{scores.pairwise.f1:.3f}")  # fmt: skip
    if not args.keep_work:
        shutil.rmtree(out)
    print(
        f"docs={n_docs} wall_s={wall:.1f} driver_peak_rss_mb={rss['driver_peak_rss_mb']:.0f} "
        f"worker_peak_rss_mb={rss['worker_peak_rss_mb']:.0f} pairwise_f1={scores.pairwise.f1:.3f}"
    )
    return {"docs": n_docs, "wall_s": wall, "stages": stages, **rss}


_STAGE_LINE = re.compile(r"^  (.{12}) +([\d.]+) s  driver peak +(\d+) MB")
_LAST_LINE = re.compile(
    r"^docs=(\d+) wall_s=([\d.]+) driver_peak_rss_mb=(\d+) worker_peak_rss_mb=(\d+)"
)


def printed_runs(log: Path) -> list[dict[str, Any]]:
    """The runs a file of this benchmark's printed output holds, as :func:`measure`
    returns them (stage seconds and peaks, wall, peaks): runs of several sizes made
    at different times plot together (``--plot-from``)."""
    runs: list[dict[str, Any]] = []
    stages: dict[str, dict[str, float]] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if stage := _STAGE_LINE.match(line):
            name, seconds, peak = stage.groups()
            stages[name.strip()] = {"seconds": float(seconds), "peak_rss_mb": int(peak)}
        elif last := _LAST_LINE.match(line):
            docs, wall, driver, workers = last.groups()
            runs.append(
                {
                    "docs": int(docs),
                    "wall_s": float(wall),
                    "stages": stages,
                    "driver_peak_rss_mb": int(driver),
                    "worker_peak_rss_mb": int(workers),
                }
            )
            stages = {}
    if not runs:
        sys.exit(f"{log}: no run of this benchmark in it")
    return runs


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Seconds per stage and the driver's peak RSS against documents, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = np.array([run["docs"] for run in runs], dtype=float)
    fig, (time_axis, rss_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = list(runs[-1]["stages"])
    for name in names:
        seconds = [max(run["stages"].get(name, {}).get("seconds", 0.0), 0.01) for run in runs]
        time_axis.loglog(docs, seconds, marker="o", label=name)
    walls = np.array([run["wall_s"] for run in runs], dtype=float)
    time_axis.loglog(docs, walls, marker="s", color="k", label="wall (whole run)")
    time_axis.loglog(docs, walls[0] * docs / docs[0], "k:", label="linear from the first size")
    time_axis.set(xlabel="documents", ylabel="seconds", title=f"time per stage ({STANDIN})")
    time_axis.legend(fontsize=7, ncol=2)
    rss = [run["driver_peak_rss_mb"] for run in runs]
    rss_axis.loglog(docs, rss, marker="o", label="driver peak RSS")
    rss_axis.axhline(2048, color="r", linestyle="--", label="2 GB")
    rss_axis.set(xlabel="documents", ylabel="MB", title="driver peak memory")
    rss_axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
