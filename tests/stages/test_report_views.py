"""report.html and report.md: every cluster present, all document text escaped, bounded.

report.html carries each cluster's members and evidence as JSON data that
its script turns into DOM when the cluster is opened: the static tests read
that data back, the browser tests see it rendered. The browser tests run
Debian's headless chromium (``/usr/bin/chromium``; the Makefile's test target
installs it when run as root) on the written file with ``--dump-dom``: a
hostile document's script must not run, the page's own script must run
without a console message, and the text must show escaped.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import json
import re
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dedup.config import PipelineConfig
from dedup.records import (
    AlignedPair,
    Document,
    LanguageGuess,
    PairEvidence,
    SegmentedDocument,
    SkippedInput,
)
from dedup.result import RunResult
from dedup.stages.keep import choose_representatives
from dedup.stages.report import write_report
from dedup.stages.report_views import (
    ViewLimits,
    md_escape,
    render_html,
    render_markdown,
    script_json,
)
from tests.stages.test_report import LABELS, make_result

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "dedup" / "templates"
CHROMIUM = Path("/usr/bin/chromium")

# A payload that leaves a trace in the DOM if it ever runs: an element named
# after the marker. Escaped, it shows as text and the element never exists.
MARK = "pwnedmarker"
SCRIPT = f'<script>document.body.appendChild(document.createElement("{MARK}-s"))</script>'
IMG = f"<img src=x onerror=\"document.body.appendChild(document.createElement('{MARK}-i'))\">"
MD_HOSTILE = "a | pipe, *stars*, _under_, [link](http://x.test) `code` <b>tag</b> # $x$"
HOSTILE_ID = f'ru"><img src=x onerror="document.title=\'{MARK}\'">'


def hostile_result():
    """make_result() with hostile text in a sentence, an id, a title, a text and a reason."""
    result = make_result()
    segmented = list(result.segmented)

    def edit(index: int, **changes) -> None:
        seg = segmented[index]
        doc = dataclasses.replace(seg.doc, **changes.pop("doc", {}))
        segmented[index] = SegmentedDocument(
            doc, seg.language, changes.get("sentences", seg.sentences)
        )

    # en-full: its second sentence is aligned with el/000's second
    sentences = ("First sentence.", SCRIPT, "Third.", "Footer.")
    edit(2, sentences=sentences, doc={"text": " ".join(sentences), "title": f"<i>{MARK}</i>"})
    # en-excerpt: its only sentence is aligned with el/000's first
    edit(5, sentences=(MD_HOSTILE,), doc={"text": MD_HOSTILE})
    edit(4, doc={"text": IMG})  # fa: a singleton, shown by its beginning
    edit(1, doc={"id": HOSTILE_ID})  # ru-1: an id in attributes and text
    result.segmented = segmented
    result.documents = [s.doc for s in segmented]
    result.skipped = [*result.skipped, SkippedInput("corpus.jsonl:9", f"bad {SCRIPT}", IMG)]
    return result


class _Page(HTMLParser):
    """Collects what the escaping tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.script_types: list[str | None] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")
            self.script_types.append(dict(attrs).get("type"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)

    def of(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (cls is None or cls in (a.get("class") or "").split())
        ]


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _data(page: _Page) -> dict:
    """The JSON data block of a parsed report.html: members and evidence per cluster."""
    (block,) = [s for s, t in zip(page.scripts, page.script_types, strict=True) if t]
    return json.loads(block)


@pytest.fixture
def written(tmp_path: Path):
    result = hostile_result()
    write_report(result, tmp_path)
    return result, tmp_path


# --- HTML, parsed back ---------------------------------------------------------------------


def test_html_has_every_cluster_and_document(written) -> None:
    result, out = written
    page = _parse((out / "report.html").read_text(encoding="utf-8"))
    clusters = json.loads((out / "clusters.json").read_text(encoding="utf-8"))["clusters"]
    multi = [c for c in clusters if c["size"] > 1]
    assert [a["id"] for a in page.of("details", "cluster")] == [c["id"] for c in multi]
    singles = page.of("tr", "item")
    assert len(singles) == len(clusters) - len(multi) == 1
    text = " ".join(page.text)
    data = _data(page)["clusters"]
    members = [[m["id"] for m in c["members"]] for c in data]
    assert members == [["el/000", "en-excerpt", "en-full"], [HOSTILE_ID, "de,x"]]
    single_ids = [c["members"][0]["id"] for c in clusters if c["size"] == 1]
    assert all(doc_id in text for doc_id in single_ids)  # singleton rows are in the markup
    assert sorted(sum(members, single_ids)) == sorted(d.id for d in result.documents)
    assert [m["keep"] for m in data[0]["members"]] == [True, False, False]
    for label in ("documents in", "clusters", "singletons", "languages", "Keep policy"):
        assert label in text
    assert "corpus.jsonl:7" in text and "malformed JSON" in text  # skipped inputs, reasons
    # the first link's aligned pairs: sentence numbers and scores, texts on the members
    link = data[0]["links"][0]
    assert (link["left"], link["right"], link["score"]) == (0, 2, 0.75)
    assert link["pairs"] == [[0, 0, 0.9, 5.0, 1.0], [1, 1, 0.9, 5.0, 1.0], [2, 2, 0.9, 5.0, 1.0]]
    assert data[0]["members"][0]["text"] == {
        "0": "Πρώτη πρόταση του άρθρου.",
        "1": "Δεύτερη πρόταση.",
        "2": "Τρίτη πρόταση.",
    }
    assert data[0]["members"][2]["text"]["1"] == SCRIPT


def test_html_escapes_all_document_text(written) -> None:
    _, out = written
    html = (out / "report.html").read_text(encoding="utf-8")
    page = _parse(html)
    text = " ".join(page.text)
    for payload in (IMG, HOSTILE_ID, f"bad {SCRIPT}"):  # singleton, summary, skipped input
        assert payload in text  # shown as text...
    assert "&lt;script&gt;document.body" in html  # ...because escaped in the markup
    assert page.of("img") == [] and page.of("i") == []  # ...and no element was made
    assert not [t for t, _ in page.tags if MARK in t]
    # the data block: every "<" escaped, so no text can end it; it reads back exact
    data, script = page.scripts
    assert page.script_types == ["application/json", None] and MARK not in script
    assert "<" not in data and "\\u003cscript>" in data
    members = {m["id"]: m for c in _data(page)["clusters"] for m in c["members"]}
    assert members["en-full"]["title"] == f"<i>{MARK}</i>"
    assert members["en-full"]["text"]["1"] == SCRIPT and HOSTILE_ID in members
    for _, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")]


def test_script_json_cannot_leave_its_script_element() -> None:
    hostile = {"t": "</script><script>x()</script>", "c": "<!--<script>", "ok": "a<b"}
    text = script_json(hostile)
    assert "<" not in text and json.loads(text) == hostile
    page = _parse(f'<script type="application/json">{text}</script><p>after</p>')
    assert len(page.scripts) == 1 and page.text == ["after"]


def test_html_is_self_contained_and_locked_down(written) -> None:
    _, out = written
    html = (out / "report.html").read_text(encoding="utf-8")
    page = _parse(html)
    assert not page.of("link") and not page.of("iframe")
    assert not [a for _, a in page.tags if "src" in a or "href" in a]  # nothing is fetched
    assert "http://" not in html.replace("http://x.test", "")
    assert "https://" not in html
    (csp,) = [a["content"] for a in page.of("meta") if a.get("http-equiv")]
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert page.scripts[1:] == [script]  # after the data block, which never runs
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_inline_js_writes_no_markup() -> None:
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_template_autoescapes_and_is_package_data() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"templates/*.j2"' in pyproject
    template = (TEMPLATES / "report.html.j2").read_text(encoding="utf-8")
    assert "|safe" not in template.replace(" ", "")


def test_html_rendering_is_bounded() -> None:
    result = make_result()
    report = _report(result)
    html = render_html(result, report, ViewLimits(html_clusters=1, html_singletons=0))
    page = _parse(html)
    assert [a["id"] for a in page.of("details", "cluster")] == ["c0001"]
    assert len(_data(page)["clusters"]) == 1
    text = " ".join(page.text)
    assert "1 more clusters in clusters.json" in text
    assert "1 more singletons in assignments.csv" in text
    links = _data(_parse(render_html(result, report, ViewLimits(html_pairs=1))))["clusters"]
    shown = [(len(k["pairs"]), k["more_pairs"]) for k in links[0]["links"]]
    assert shown == [(1, 2), (1, 0), (1, 0)]
    few = _data(_parse(render_html(result, report, ViewLimits(html_links=1))))["clusters"]
    assert [(len(c["links"]), c["more_links"]) for c in few] == [(1, 2), (1, 0)]


def test_html_members_are_bounded_and_keep_the_links_shown() -> None:
    result = mesh_result(12, 2)  # doc-000 is kept; links (000, 001), (000, 002), ...
    report = _report(result)
    (c,) = _data(_parse(render_html(result, report, ViewLimits(html_members=5, html_links=2))))[
        "clusters"
    ]
    assert [m["id"] for m in c["members"]] == [f"doc-{d:03d}" for d in range(5)]
    assert c["more_members"] == 7 and [k["right"] for k in c["links"]] == [1, 2]
    (c,) = _data(_parse(render_html(result, report, ViewLimits(html_members=2, html_links=2))))[
        "clusters"
    ]
    # a link to a member not listed is left out, and counted
    assert [m["id"] for m in c["members"]] == ["doc-000", "doc-001"]
    assert len(c["links"]) == 1 and c["more_links"] == 65


def test_html_data_has_a_budget_for_the_whole_file() -> None:
    result = make_result()
    report = _report(result)
    first, second = _data(_parse(render_html(result, report)))["clusters"]
    budget = len(script_json(first).encode("utf-8")) + len(script_json(second).encode()) - 1
    data = _data(_parse(render_html(result, report, ViewLimits(html_data_bytes=budget))))
    assert data["clusters"] == [first, None]  # the cluster past the budget: listed, no data


def mesh_result(n_docs: int, n_sentences: int) -> RunResult:
    """One story in ``n_docs`` versions, every pair linked, every sentence aligned: the
    most evidence per document a report can get (a link per pair, a pair per sentence)."""
    result = make_result()
    segmented = []
    for d in range(n_docs):
        sentences = tuple(
            f"Document {d:03d} says sentence {s:03d} of the story in its own words."
            for s in range(n_sentences)
        )
        doc = Document(id=f"doc-{d:03d}", text=" ".join(sentences), origin=f"c.jsonl:{d + 1}")
        segmented.append(SegmentedDocument(doc, LanguageGuess("en", 0.99, "LATIN"), sentences))
    aligned = tuple(AlignedPair(s, s, 0.9, 5.0, 1 / n_sentences) for s in range(n_sentences))
    labels = np.zeros(n_docs, dtype=np.int64)
    usable = np.ones(n_docs * n_sentences, dtype=bool)
    result.segmented = segmented
    result.documents = [seg.doc for seg in segmented]
    result.skipped = []
    result.labels = labels
    result.usable = usable
    result.primary_of = np.arange(n_docs)
    result.representatives = choose_representatives(labels, segmented, usable)
    result.evidence = [
        PairEvidence(i, j, 0.9, aligned, n_sentences)
        for i in range(n_docs)
        for j in range(i + 1, n_docs)
    ]
    return result


def test_html_size_is_linear_in_the_documents_not_the_evidence() -> None:
    """Each sentence text is in report.html once, however many links align it; what a
    link adds is five numbers a pair. Measured at 48 documents: 86 KB; the tables
    written out before, every pair with both texts, took 244 KB (each sentence of
    doc-000 forty times)."""
    limits = ViewLimits(excerpt=20)
    sizes = {}
    for n_docs in (12, 24, 48):  # 66, 276 and 1,128 links; 40 of them shown in each
        result = mesh_result(n_docs, 16)
        html = render_html(result, _report(result), limits)
        counts = [html.count(s) for seg in result.segmented for s in seg.sentences]
        assert max(counts) == 1 and counts[:16] == [1] * 16  # doc-000: in all 40 links shown
        sizes[n_docs] = len(html.encode("utf-8"))
    text_bytes = len(" ".join(mesh_result(1, 16).segmented[0].sentences))
    per_doc = (sizes[48] - sizes[24]) / 24
    assert per_doc < 1.5 * text_bytes, (per_doc, text_bytes)
    assert sizes[48] < 48 * 2 * text_bytes + 60_000, sizes


# --- Markdown ------------------------------------------------------------------------------

_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _tables(markdown: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append([c.strip() for c in _CELL_SPLIT.split(line)[1:-1]])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_parses_back(written) -> None:
    _result, out = written
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# dedup report\n")
    assert "- **documents in:** 9 (assigned 6, skipped 3)" in markdown
    assert re.findall(r"^### (c\d+):", markdown, re.M) == ["c0001", "c0002"]
    tables = _tables(markdown)
    for table in tables:  # escaped pipes never break a row
        assert len({len(row) for row in table}) == 1, table
    members = tables[0]
    assert members[0] == ["id", "lang", "sentences", "chars", "keep", "beginning"]
    assert [row[0] for row in members[2:]] == ["el/000", "en-excerpt", "en-full"]
    assert members[2][4] == "keep"
    singletons = next(
        t for t in tables if t[0] == ["id", "lang", "sentences", "chars", "beginning"]
    )
    assert [row[0] for row in singletons[2:]] == ["fa"]
    skipped = tables[-1]
    assert skipped[0] == ["origin", "id", "reason"] and len(skipped) == 2 + 3
    assert md_escape(HOSTILE_ID) in markdown


def test_markdown_escapes_significant_characters(written) -> None:
    _, out = written
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert md_escape(MD_HOSTILE) in markdown
    assert MD_HOSTILE not in markdown and SCRIPT not in markdown and IMG not in markdown
    assert "\\<script\\>" in markdown
    assert md_escape("a|b\nc") == "a\\|b c"
    assert md_escape("*x* _y_ [z](u) `c` <t> ~~s~~ # $m$ &amp; !") == (
        "\\*x\\* \\_y\\_ \\[z\\](u) \\`c\\` \\<t\\> \\~\\~s\\~\\~ \\# \\$m\\$ \\&amp; \\!"
    )
    assert md_escape("snake_case_id") == "snake_case_id"  # intraword: never emphasis
    assert md_escape("x" * 50, limit=10) == "x" * 9 + "…"


def test_markdown_is_bounded() -> None:
    result = make_result()
    report = _report(result)
    markdown = render_markdown(
        result, report, ViewLimits(md_detailed=1, md_table=0, md_singletons=0, md_pairs=1)
    )
    assert re.findall(r"^### (c\d+)", markdown, re.M) == ["c0001"]
    assert "1 more clusters in clusters.json." in markdown
    assert "1 more singletons in assignments.csv." in markdown
    assert "first 1 shown" in markdown
    table = render_markdown(result, report, ViewLimits(md_detailed=1, md_table=5))
    assert "### Next 1 clusters" in table and "| c0002 | 2 | de+ru | ru-1 |" in table


def _report(result) -> dict:
    from dedup.stages.report import ClusterRecords, summary

    return {"summary": summary(result), "clusters": list(ClusterRecords(result))}


# --- assignments.csv and clusters.json: language mix and keep policy -----------------------


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "assignments.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_assignments_have_the_cluster_language_mix(tmp_path: Path) -> None:
    write_report(make_result(), tmp_path)
    rows = _rows(tmp_path)
    assert {r["cluster_id"]: r["cluster_languages"] for r in rows} == {
        "c0001": "el+en",
        "c0002": "de+ru",
        "c0003": "fa",
    }
    clusters = json.loads((tmp_path / "clusters.json").read_text(encoding="utf-8"))["clusters"]
    assert [c["languages"] for c in clusters] == [{"el": 1, "en": 2}, {"de": 1, "ru": 1}, {"fa": 1}]


def test_keep_policy_default_is_most_complete(tmp_path: Path) -> None:
    write_report(make_result(), tmp_path)
    policy = json.loads((tmp_path / "clusters.json").read_text(encoding="utf-8"))["summary"][
        "keep_policy"
    ]
    assert policy["rule"] == "most-complete" and policy["prefer_languages"] == []
    assert "most non-boilerplate sentences" in policy["description"]
    assert "Keep policy" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_keep_policy_prefers_languages_in_order(tmp_path: Path) -> None:
    result = make_result()
    result.config = PipelineConfig(prefer_languages=("de", "en"))
    result.representatives = choose_representatives(
        LABELS, result.segmented, result.usable, result.config.prefer_languages
    )
    write_report(result, tmp_path)
    data = json.loads((tmp_path / "clusters.json").read_text(encoding="utf-8"))
    policy = data["summary"]["keep_policy"]
    assert policy["rule"] == "preferred-language-then-most-complete"
    assert policy["prefer_languages"] == ["de", "en"]
    # c0001 has no de: the most complete en member (en-full over en-excerpt) beats el/000;
    # c0002: de,x although ru-1 is as long; c0003 (fa only): falls back to fa
    assert [c["representative"] for c in data["clusters"]] == ["en-full", "de,x", "fa"]
    keep = {r["doc_id"] for r in _rows(tmp_path) if r["representative"] == "true"}
    assert keep == {"en-full", "de,x", "fa"}
    assert "de, en" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_choose_representatives_matches_codes_case_insensitively() -> None:
    result = make_result()
    chosen = choose_representatives(LABELS, result.segmented, result.usable, ("EN",))
    assert result.segmented[chosen[0]].doc.id == "en-full"
    unknown = choose_representatives(LABELS, result.segmented, result.usable, ("xx",))
    assert unknown == choose_representatives(LABELS, result.segmented, result.usable)


def test_cli_prefer_lang(monkeypatch, tmp_path: Path) -> None:
    import dedup.api
    from dedup.cli import main

    seen = {}

    def fake_run(input_path, config, **_):
        seen["config"] = config
        result = make_result()
        result.config = config
        result.representatives = choose_representatives(
            LABELS, result.segmented, result.usable, config.prefer_languages
        )
        return result

    monkeypatch.setattr(dedup.api, "run", fake_run)
    out = tmp_path / "out"
    cli = CliRunner().invoke(
        main, ["run", str(tmp_path), "--out", str(out), "--prefer-lang", " de, en ", "--quiet"]
    )
    assert cli.exit_code == 0, cli.output
    assert seen["config"].prefer_languages == ("de", "en")
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert "--prefer-lang" in CliRunner().invoke(main, ["run", "--help"]).output


# --- in a real browser ---------------------------------------------------------------------


def _chromium(profile: Path, url: str, *options: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.skip(
            "/usr/bin/chromium is missing: install Debian's chromium (`make test` does as root)"
        )
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *options,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str) -> list[str]:
    """Console messages of the page (errors, CSP violations, logs)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def browse(tmp_path: Path, html: Path, fragment: str = "") -> tuple[_Page, str, list[str]]:
    """The page's DOM after its scripts ran, the serialised DOM, and its console messages."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    proc = _chromium(profile, html.as_uri() + fragment, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _parse(proc.stdout), proc.stdout, _console(proc.stderr)


def screenshot(tmp_path: Path, html: Path, name: str) -> Path:
    png = tmp_path / name
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
    proc = _chromium(profile, html.as_uri(), "--window-size=1280,1400", f"--screenshot={png}")
    assert proc.returncode == 0 and png.stat().st_size > 10_000, proc.stderr[-2000:]
    return png


def test_hostile_text_never_runs_in_a_browser(written, tmp_path: Path) -> None:
    _, out = written
    html = out / "report.html"
    # without the Content-Security-Policy: escaping alone must keep the payloads inert
    bare = tmp_path / "no-csp.html"
    bare.write_text(
        re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html.read_text("utf-8")),
        encoding="utf-8",
    )
    for page_file in (html, bare):
        page, dom, console = browse(tmp_path, page_file)
        assert MARK not in "".join(t for t, _ in page.tags)  # no payload element made
        assert not page.of("img") and not page.of("i")
        assert "<title>dedup report" in dom and MARK not in dom.split("</title>")[0]
        # shown, escaped: a sentence of the first cluster's first link, a member's title
        assert "&lt;script&gt;document.body.appendChild" in dom
        assert f"&lt;i&gt;{MARK}&lt;/i&gt;" in dom and SCRIPT in " ".join(page.text)
        assert page.of("html")[0].get("data-ready") == "1"  # the report's own script ran
        assert console == [], console  # no error, no CSP violation, nothing blocked
    screenshot(tmp_path, html, "hostile.png")


def test_filter_box_filters_clusters_in_a_browser(tmp_path: Path) -> None:
    result = make_result()
    write_report(result, tmp_path)
    html = tmp_path / "report.html"
    # report.html#q=... opens filtered: by language, by id, by sentence text; singletons too
    for query, clusters, singletons in (
        ("#q=ru", ["c0002"], []),
        ("#q=EN-FULL", ["c0001"], []),
        ("#q=Zweiter", ["c0002"], []),
        ("#q=fa", [], ["c0003"]),
    ):
        page, _, console = browse(tmp_path, html, query)
        shown = [a["id"] for a in page.of("details", "cluster") if a.get("hidden") is None]
        assert shown == clusters, query
        shown = [a["data-key"].split()[0] for a in page.of("tr", "item") if a.get("hidden") is None]
        assert shown == singletons, query
        nomatch = [a.get("hidden") is None for a in page.of("p", "nomatch")]
        assert nomatch == [not clusters, not singletons], query
        assert console == []


def test_opening_a_cluster_shows_its_evidence_in_a_browser(tmp_path: Path) -> None:
    write_report(make_result(), tmp_path)
    html = tmp_path / "report.html"
    # as opened: the first cluster is open and built, with its first link's pairs
    page, _, console = browse(tmp_path, html)
    assert console == []
    text = " ".join(page.text)
    assert len(page.of("table", "members")) == 1 and len(page.of("table", "pairs")) == 1
    assert "Δεύτερη πρόταση." in text and "Second sentence." in text and "2↔2" in text
    assert "Zweiter." not in text  # c0002 is closed: not built yet
    # report.html#c0002 opens c0002: its members, and its one link's pairs with scores
    page, dom, console = browse(tmp_path, html, "#c0002")
    assert console == []
    (c2,) = [a for a in page.of("details", "cluster") if a["id"] == "c0002"]
    assert "open" in c2 and len(page.of("table", "pairs")) == 2
    text = " ".join(page.text)
    assert "Второе." in text and "Zweiter." in text
    row = re.search(r"<tr><td class=\"idx\">2↔2</td>(.*?)</tr>", dom.split('id="c0002"')[1])
    assert row is not None
    assert re.findall(r">([^<>]+)</td>", row.group(1)) == [
        "Второе.",
        "Zweiter.",
        "0.900",
        "5.0",
        "1.00",
    ]
    assert "ru" in text and "de" in text and "score 0.660 · coverage 1.00" in text
    # a cluster past the file's data budget says where its details are; a link, its
    # pairs past html_pairs
    result = make_result()
    report = _report(result)
    first = _data(_parse(render_html(result, report, ViewLimits(html_pairs=1))))["clusters"][0]
    limits = ViewLimits(html_data_bytes=len(script_json(first).encode("utf-8")), html_pairs=1)
    html.write_text(render_html(result, report, limits), encoding="utf-8")
    page, _, console = browse(tmp_path, html, "#c0002")
    assert console == [] and len(page.of("table", "members")) == 1
    text = " ".join(page.text)
    assert "Members and evidence of this cluster are in clusters.json" in text
    assert "2 more aligned pairs in clusters.json." in text


def test_pages_of_many_clusters_in_a_browser(tmp_path: Path) -> None:
    result = make_result()
    report = _report(result)
    # 120 copies of the two multi-document clusters: 3 pages of 50
    many = [dict(c, id=f"c{k:04d}") for k, c in enumerate(report["clusters"][:2] * 60)]
    html = tmp_path / "many.html"
    html.write_text(render_html(result, {**report, "clusters": many}), encoding="utf-8")
    # paged in the markup already, so the first layout is of one page only
    marked = _parse(html.read_text("utf-8")).of("details", "cluster")
    assert ["hidden" not in a for a in marked] == [True] * 50 + [False] * 70
    page, dom, console = browse(tmp_path, html)
    assert console == []
    shown = [a for a in page.of("details", "cluster") if a.get("hidden") is None]
    assert len(page.of("details", "cluster")) == 120 and len(shown) == 50
    assert "page 1 of 3" in dom


@pytest.mark.slow
def test_seed_report_in_a_browser(tmp_path: Path, dedup_cache: Path) -> None:
    from dedup.cli import main

    out = tmp_path / "report"
    cli = CliRunner().invoke(
        main,
        ["run", str(REPO / "seeds"), "--out", str(out), "--cache-dir", str(dedup_cache), "--quiet"],
    )
    assert cli.exit_code == 0, cli.output
    page, _, console = browse(tmp_path, out / "report.html")
    assert console == []
    clusters = json.loads((out / "clusters.json").read_text(encoding="utf-8"))["clusters"]
    assert [a["id"] for a in page.of("details", "cluster")] == [
        c["id"] for c in clusters if c["size"] > 1
    ]
    text = " ".join(page.text)
    for cluster in clusters:
        for member in cluster["members"]:
            assert member["id"] in text
    assert "000_814e0ab8402dad44" in text and "002_20e4596e9ffa5474" in text
    assert len(page.of("tr", "item")) == sum(c["size"] == 1 for c in clusters)
    screenshot(tmp_path, out / "report.html", "seeds.png")
