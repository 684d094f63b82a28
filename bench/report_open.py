#!/usr/bin/env python3
"""How quickly ``report.html`` opens: its size and its time to a laid-out page.

Opens each given report in Debian's headless Chromium (``/usr/bin/chromium``)
``--repeat`` times, each in a fresh profile, and prints its size and the
median and best time from navigation start until the page is parsed, its own
script has run and the first layout is done: a probe script appended to a
copy of the report reads ``performance.now()`` in the ``load`` handler after
forcing layout, and writes it into an attribute that ``--dump-dom`` prints.
The copy drops the Content-Security-Policy (the probe is not in its hashes);
the report itself is not changed. The wall time of the whole Chromium process
(start-up included) is printed beside it, and the same for an empty page, the
reference measured in the same run.

``--synthetic DIR`` first writes report.html for a corpus past every limit of
report.html into ``DIR`` (with the code on the path, so the same command
measures two versions): 2,500 stories in 8 versions of 20 sentences, every
pair of versions linked with every sentence aligned (70,000 links), and 6,000
singletons; that ``report.html`` is measured with the others.

    python bench/report_open.py OUT/report.html [MORE.html ...] [--repeat 5]
    python bench/report_open.py --synthetic /tmp/large
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
PROBE = (
    "<script>addEventListener('load', function () {"
    " document.body.getBoundingClientRect();"
    " document.documentElement.setAttribute('data-open-ms', performance.now().toFixed(1));"
    " });</script>"
)
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')
_OPENED = re.compile(r'data-open-ms="([0-9.]+)"')


def probed(html: str) -> str:
    """The report without its CSP and with the timing probe before ``</body>``."""
    head, _, tail = _CSP.sub("", html).rpartition("</body>")
    return f"{head}{PROBE}</body>{tail}"


def open_once(page: Path, work: Path) -> tuple[float | None, float]:
    """(ms to a laid-out page as the page measured it, or None without the probe;
    wall seconds of the Chromium process)."""
    profile = tempfile.mkdtemp(prefix="profile-", dir=work)
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri(),
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    wall = time.perf_counter() - start
    found = _OPENED.search(proc.stdout)
    return (float(found.group(1)) if found else None), wall


def synthetic(
    out: Path, stories: int = 2500, versions: int = 8, sentences: int = 20, singletons: int = 6000
) -> Path:
    """Write the report of the synthetic corpus (see the module doc) into ``out``."""
    from dedup.config import PipelineConfig
    from dedup.records import AlignedPair, Document, LanguageGuess, PairEvidence, SegmentedDocument
    from dedup.result import RunResult
    from dedup.stages.keep import choose_representatives
    from dedup.stages.report import ClusterRecords, summary
    from dedup.stages.report_views import render_html

    english = LanguageGuess("en", 0.99, "LATIN")
    aligned = tuple(AlignedPair(s, s, 0.9, 5.0, 1 / sentences) for s in range(sentences))
    segmented, labels, evidence = [], [], []
    for story in range(stories):
        first = len(segmented)
        for version in range(versions):
            texts = tuple(
                f"Story {story:05d} version {version:02d} sentence {s:02d}: the words of "
                "this sentence in its language."
                for s in range(sentences)
            )
            doc = Document(id=f"s{story:05d}-{version:02d}", text=" ".join(texts), origin="x")
            segmented.append(SegmentedDocument(doc, english, texts))
            labels.append(story)
        evidence += [
            PairEvidence(first + i, first + j, 0.9, aligned, sentences)
            for i in range(versions)
            for j in range(i + 1, versions)
        ]
    for single in range(singletons):
        text = f"Singleton {single:06d}: one sentence of news text, long enough to show."
        doc = Document(id=f"single-{single:06d}", text=text, origin="x")
        segmented.append(SegmentedDocument(doc, english, (text,)))
        labels.append(stories + single)
    label_array = np.array(labels)
    usable = np.ones(sum(len(seg.sentences) for seg in segmented), dtype=bool)
    result = RunResult(
        documents=[seg.doc for seg in segmented],
        skipped=[],
        segmented=segmented,
        labels=label_array,
        representatives=choose_representatives(label_array, segmented, usable),
        evidence=evidence,
        usable=usable,
        primary_vectors=np.zeros((len(segmented), 1), dtype=np.float32),
        doc_groups=np.zeros(len(segmented), dtype=np.int64),
        group_names=["en"],
        primary_of=np.arange(len(segmented)),
        stages={},
        model_name="synthetic",
        model_fingerprint="synthetic",
        config=PipelineConfig(),
    )
    # report.html only: clusters.json would hold all 1.4 million pairs with their texts
    out.mkdir(parents=True, exist_ok=True)
    html = render_html(result, {"summary": summary(result), "clusters": ClusterRecords(result)})
    (out / "report.html").write_text(html, encoding="utf-8")
    return out / "report.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--synthetic", type=Path, help="write the synthetic report here first")
    parser.add_argument(
        "--stories", type=int, default=2500, help="of the synthetic corpus (8 versions each)"
    )
    args = parser.parse_args(argv)
    if args.synthetic:
        start = time.perf_counter()
        args.reports.append(synthetic(args.synthetic, stories=args.stories))
        print(f"synthetic report written in {time.perf_counter() - start:.1f} s")
    with tempfile.TemporaryDirectory(prefix="report-open-") as tmp:
        work = Path(tmp)
        empty = work / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
        walls = [open_once(empty, work)[1] for _ in range(args.repeat)]
        print(f"empty page: chromium wall {statistics.median(walls):.2f} s (median)")
        for number, report in enumerate(args.reports):
            page = work / f"probed-{number}.html"
            page.write_text(probed(report.read_text(encoding="utf-8")), encoding="utf-8")
            runs = [open_once(page, work) for _ in range(args.repeat)]
            opened = [ms for ms, _ in runs if ms is not None]
            if len(opened) != len(runs):
                sys.exit(f"{report}: the probe did not run")
            print(
                f"{report}: {report.stat().st_size / 1e6:.2f} MB; laid out in "
                f"{statistics.median(opened):.0f} ms (median of {len(runs)}, best "
                f"{min(opened):.0f} ms); chromium wall "
                f"{statistics.median(w for _, w in runs):.2f} s"
            )


if __name__ == "__main__":
    main()
