"""report.html and report.md: every cluster present, all document text escaped, bounded.

The browser tests run Debian's headless chromium (``/usr/bin/chromium``; the
Makefile's test target installs it when run as root) on the written file
with ``--dump-dom``: a hostile document's script must not run, the page's own
script must run without a console message, and the text must show escaped.
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

import pytest
from click.testing import CliRunner

from dedup.api import PipelineConfig, choose_representatives
from dedup.records import SegmentedDocument, SkippedInput
from dedup.stages.report import write_report
from dedup.stages.report_views import ViewLimits, md_escape, render_html, render_markdown
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
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

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
    for doc in result.documents:
        assert doc.id in text
    for label in ("documents in", "clusters", "singletons", "languages", "Keep policy"):
        assert label in text
    assert "corpus.jsonl:7" in text and "malformed JSON" in text  # skipped inputs, reasons
    # the aligned pairs of the first link, side by side, with their scores
    assert "Δεύτερη πρόταση." in text and "0.900" in text and "5.0" in text


def test_html_escapes_all_document_text(written) -> None:
    _, out = written
    html = (out / "report.html").read_text(encoding="utf-8")
    page = _parse(html)
    text = " ".join(page.text)
    for payload in (SCRIPT, IMG, HOSTILE_ID, f"<i>{MARK}</i>"):
        assert payload in text  # shown as text...
    assert "&lt;script&gt;document.body" in html  # ...because escaped in the markup
    assert page.of("img") == [] and page.of("i") == []  # ...and no element was made
    assert not [t for t, _ in page.tags if MARK in t]
    assert len(page.scripts) == 1 and MARK not in page.scripts[0]  # only the report's own
    for _, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")]


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
    assert page.scripts == [script]
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
    text = " ".join(page.text)
    assert "1 more clusters in clusters.json" in text
    assert "1 more singletons in assignments.csv" in text
    pairs = render_html(result, report, ViewLimits(html_pairs=1))
    assert "2 more aligned pairs in clusters.json" in pairs


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
    from dedup.stages.report import _clusters, summary

    return {"summary": summary(result), "clusters": _clusters(result)}


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
        assert "&lt;script&gt;document.body.appendChild" in dom  # shown, escaped
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


def test_pages_of_many_clusters_in_a_browser(tmp_path: Path) -> None:
    result = make_result()
    report = _report(result)
    # 120 copies of the two multi-document clusters: 3 pages of 50
    many = [dict(c, id=f"c{k:04d}") for k, c in enumerate(report["clusters"][:2] * 60)]
    html = tmp_path / "many.html"
    html.write_text(render_html(result, {**report, "clusters": many}), encoding="utf-8")
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
