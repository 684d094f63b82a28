"""Report views: ``report.html`` and ``report.md``, a run's clusters for people.

Both show the summary of the run (documents in, clusters, singletons,
languages, skipped inputs with their reasons), then the clusters largest
first: members (id, language, sentences, characters, the copy to keep) and,
for every link, the aligned sentence pairs side by side with their scores.

* ``report.html`` is one self-contained file: inline CSS and JS only, no
  network fetch (a Content-Security-Policy ``<meta>`` forbids any, and allows
  only the report's own script and style by hash, so even a text that slipped
  past escaping could not run). It is rendered by jinja2 with autoescaping
  from ``dedup/templates/report.html.j2``: every document text, id and
  reason is escaped, never concatenated into markup. Clusters are collapsed
  (``<details>``), paged, and a filter box narrows them by id, language or
  text. A cluster's members and evidence are not markup but one JSON block in
  the head (:func:`script_json`; each sentence text once, however many links
  align it), which the script turns into DOM with ``textContent`` when the
  cluster or link is opened: the file stays a few MB and opens in well under
  a second where written-out tables took hundreds of MB (README, "Outputs").
* ``report.md`` is for a terminal or a pull request: Markdown-significant
  characters in document text are backslash-escaped and newlines collapsed,
  so a text can neither break a table nor inject markup.

Huge corpora stay usable because rendering is bounded (:class:`ViewLimits`;
report.html also by the bytes of its JSON):
beyond the limits a view says how many it left out; ``clusters.json`` and
``assignments.csv`` always hold everything.

The views read the same ``{"summary", "clusters"}`` data that is written to
``clusters.json``, plus the document texts of the run for short excerpts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from dedup.records import SegmentedDocument
from dedup.result import RunResult
from dedup.stages.copies import FURNITURE_TEXTS

if TYPE_CHECKING:
    import jinja2


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """How much the views render; the rest is counted, and is in clusters.json.

    Attributes:
        html_clusters: multi-document clusters rendered in report.html.
        html_links: links per cluster shown with their aligned sentences
            (strongest first).
        html_pairs: aligned sentence pairs shown per link.
        html_members: members listed per cluster in report.html: the copy to
            keep, then the documents of the links shown, then by id.
        html_data_bytes: bytes of members and evidence (JSON) embedded in
            report.html in all, largest clusters first; with the counts above it
            bounds the file's size and its time to open whatever the corpus. A
            cluster past it is listed, and says its details are in clusters.json.
        html_singletons: singleton rows in report.html.
        html_skipped: skipped-input rows in report.html.
        html_page: clusters per page of report.html (singletons: 4x that).
        md_detailed: clusters shown with members and aligned sentences in
            report.md; the next ``md_table`` are one table row each.
        md_pairs: aligned sentence pairs per link in report.md.
        md_links: links per cluster in report.md.
        md_singletons, md_skipped: rows of those tables in report.md.
        excerpt: characters of a document shown as its excerpt.
        md_sentence: characters of a sentence shown in report.md.
    """

    html_clusters: int = 2000
    html_links: int = 40
    html_pairs: int = 200
    html_members: int = 200
    html_data_bytes: int = 8_000_000
    html_singletons: int = 5000
    html_skipped: int = 1000
    html_page: int = 50
    md_detailed: int = 20
    md_table: int = 500
    md_pairs: int = 8
    md_links: int = 6
    md_singletons: int = 200
    md_skipped: int = 50
    excerpt: int = 240
    md_sentence: int = 160


def _excerpt(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _language_counts(languages: dict[str, int]) -> str:
    return ", ".join(f"{lang} {n}" for lang, n in languages.items())


def _shown_members(cluster: dict, links: list[dict], limit: int | None) -> set[str]:
    """Ids of the members a view lists: all, or ``limit`` of them that keep the copy
    to keep and the documents of the links shown (a cluster of thousands of
    reposts would otherwise be thousands of rows, built when it is opened)."""
    ids = [m["id"] for m in cluster["members"]]
    if limit is None or len(ids) <= limit:
        return set(ids)
    ordered = [cluster["representative"]]
    for link in links:
        ordered += [link["left"], link["right"]]
    return set(list(dict.fromkeys(ordered + ids))[:limit])


def _view_model(result: RunResult, report: dict, limits: ViewLimits, html: bool) -> dict:
    """Plain data for the templates: clusters split into multi-document and singletons."""

    def by_id(doc_id: str) -> SegmentedDocument:  # read where it lies: only those shown
        return result.segmented[result.index_of(doc_id)]

    info = report["summary"]
    max_clusters = limits.html_clusters if html else limits.md_detailed + limits.md_table
    max_singles = limits.html_singletons if html else limits.md_singletons
    # only the clusters shown are made (report.ClusterRecords makes a record when
    # asked for), the others counted by size; a list of records works as well
    records = report["clusters"]
    if hasattr(records, "record_at"):
        sizes, record_at = records.sizes(), records.record_at
    else:
        sizes, record_at = [c["size"] for c in records], records.__getitem__
    multi_ranks = [rank for rank, size in enumerate(sizes) if size > 1]
    single_ranks = [rank for rank, size in enumerate(sizes) if size <= 1]
    n_multi, n_singles = len(multi_ranks), len(single_ranks)
    multi = [record_at(rank) for rank in multi_ranks[:max_clusters]]
    singles = [record_at(rank) for rank in single_ranks[:max_singles]]
    max_links = limits.html_links if html else limits.md_links
    max_pairs = limits.html_pairs if html else limits.md_pairs
    sentence_limit = None if html else limits.md_sentence
    clusters = []
    for rank, cluster in enumerate(multi):
        detailed = html or rank < limits.md_detailed
        shown_links = cluster["links"][:max_links] if detailed else []
        shown = _shown_members(cluster, shown_links, limits.html_members if html else None)
        shown_links = [k for k in shown_links if k["left"] in shown and k["right"] in shown]
        members = []
        langs = {}
        for m in cluster["members"]:
            if m["id"] not in shown:
                continue
            seg = by_id(m["id"])
            langs[m["id"]] = m["lang"]
            members.append(
                {
                    **m,
                    "keep": m["id"] == cluster["representative"],
                    "title": seg.doc.title or "",
                    "excerpt": _excerpt(seg.doc.text, limits.excerpt),
                }
            )
        members.sort(key=lambda m: (not m["keep"], m["id"]))
        links = []
        for link in shown_links:
            pairs = [
                {
                    **a,
                    "left_text": a["left_text"]
                    if sentence_limit is None
                    else _excerpt(a["left_text"], sentence_limit),
                    "right_text": a["right_text"]
                    if sentence_limit is None
                    else _excerpt(a["right_text"], sentence_limit),
                }
                for a in link["aligned"][:max_pairs]
            ]
            links.append(
                {
                    **link,
                    "kind": link.get("kind", "aligned"),
                    "why": _why(link),
                    "left_lang": langs.get(link["left"], ""),
                    "right_lang": langs.get(link["right"], ""),
                    "pairs": pairs,
                    "more_pairs": len(link["aligned"]) - len(pairs),
                }
            )
        clusters.append(
            {
                "id": cluster["id"],
                "size": cluster["size"],
                "mix": "+".join(cluster["languages"]),
                "languages": _language_counts(cluster["languages"]),
                "representative": cluster["representative"],
                "best": cluster["links"][0]["score"] if cluster["links"] else None,
                "members": members,
                "more_members": cluster["size"] - len(members),
                "links": links,
                "n_links": len(cluster["links"]),
                "more_links": len(cluster["links"]) - len(links),
                "detailed": detailed,
            }
        )
    singletons = []
    for cluster in singles:
        m = cluster["members"][0]
        seg = by_id(m["id"])
        singletons.append(
            {
                **m,
                "cluster": cluster["id"],
                "excerpt": _excerpt(seg.doc.title or seg.doc.text, limits.excerpt // 2),
            }
        )
    max_skipped = limits.html_skipped if html else limits.md_skipped
    skipped = [
        {"origin": s.origin, "doc_id": s.doc_id or "", "reason": s.reason}
        for s in result.skipped[:max_skipped]
    ]
    policy = info["keep_policy"]
    return {
        "info": info,
        "languages": _language_counts(info["languages"]),
        "n_languages": len(info["languages"]),
        "policy": policy["description"],
        "model": result.model_name,
        "threshold": result.config.cluster.threshold,
        "clusters": clusters,
        "n_multi": n_multi,
        "more_clusters": n_multi - len(clusters),
        "singletons": singletons,
        "n_singletons": n_singles,
        "more_singletons": n_singles - len(singletons),
        "skipped": skipped,
        "more_skipped": len(result.skipped) - len(skipped),
        "limits": limits,
    }


# --- HTML --------------------------------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # here, not at import: a run that writes no HTML does not pay for it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("dedup", "templates"),
        autoescape=True,  # every {{ }} is escaped, whatever the file name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def _asset(name: str) -> tuple[str, str]:
    """A static file of the template folder and its CSP hash source."""
    text = resources.files("dedup").joinpath("templates", name).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return text, f"'sha256-{digest}'"


def _member_data(member: dict) -> dict:
    """What report.js shows of a member (the view model carries more, for report.md)."""
    keys = ("id", "lang", "script", "sentences", "chars", "keep", "title", "excerpt")
    return {key: member[key] for key in keys}


def _cluster_data(cluster: dict) -> dict:
    """A cluster's members and evidence as compact data for report.js.

    Each sentence text is stored once, on its member (``text``: sentence number
    to text); an aligned pair is ``[left sentence, right sentence, similarity,
    z, weight]`` rounded as shown, and a link names its two documents by their
    position in ``members``. A sentence aligned in many links (a big cluster
    has up to ``html_links`` of them) therefore costs its text once, not once
    per link as a written-out table row did.
    """
    members = [_member_data(m) for m in cluster["members"]]
    texts: list[dict[int, str]] = [{} for _ in members]
    position = {m["id"]: i for i, m in enumerate(members)}
    links = []
    for link in cluster["links"]:
        left, right = position[link["left"]], position[link["right"]]
        if link["kind"] in ("copy", "adopted"):
            links.append({"kind": link["kind"], "left": left, "right": right, "why": link["why"]})
            continue
        for a in link["pairs"]:
            texts[left][a["left_sentence"]] = a["left_text"]
            texts[right][a["right_sentence"]] = a["right_text"]
        links.append(
            {
                "kind": "aligned",
                "left": left,
                "right": right,
                "score": link["score"],
                "coverage": link["coverage"],
                "pairs": [
                    [
                        a["left_sentence"],
                        a["right_sentence"],
                        round(a["similarity"], 3),
                        round(a["z"], 1),
                        round(a["weight"], 2),
                    ]
                    for a in link["pairs"]
                ],
                "more_pairs": link["more_pairs"],
            }
        )
    for member, text in zip(members, texts, strict=True):
        member["text"] = text
    return {
        "members": members,
        "more_members": cluster["more_members"],
        "links": links,
        "more_links": cluster["more_links"],
    }


def _within_budget(clusters: list[dict], budget: int) -> list[dict | None]:
    """Each cluster's data (:func:`_cluster_data`) while ``budget`` bytes last, in
    order (largest first); ``None`` for the cluster that would overspend it and
    every one after, so the page says where its details stop."""
    out: list[dict | None] = []
    for cluster in clusters:
        data = _cluster_data(cluster)
        size = len(script_json(data).encode("utf-8"))
        if size > budget:
            break
        budget -= size
        out.append(data)
    return out + [None] * (len(clusters) - len(out))


def script_json(value: object) -> str:
    """``value`` as JSON that is inert inside a ``<script>`` element.

    Every ``<`` becomes ``\\u003c`` (``<`` only occurs inside JSON strings,
    where the escape means the same character), so no text can close the
    element (``</script>``) or open a comment (``<!--``) that would change
    where the HTML parser ends it.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c")


def render_html(result: RunResult, report: dict, limits: ViewLimits | None = None) -> str:
    """``report.html``: the summary and clusters as one self-contained, escaped page.

    Args:
        result: the run (document texts for excerpts, skipped inputs, settings).
        report: ``{"summary": ..., "clusters": [...]}`` as written to clusters.json.
        limits: how much to render (defaults: :class:`ViewLimits`).
    """
    from markupsafe import Markup

    limits = limits or ViewLimits()
    script, script_hash = _asset("report.js")
    style, style_hash = _asset("report.css")
    csp = (
        f"default-src 'none'; script-src {script_hash}; style-src {style_hash}; "
        "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )
    view = _view_model(result, report, limits, html=True)
    data = {"clusters": _within_budget(view["clusters"], limits.html_data_bytes)}
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            **view,
            data=Markup(script_json(data)),  # JSON with every "<" escaped: inert in <script>
            csp=csp,
            script=Markup(script),  # our own static file, not data
            style=Markup(style),
        )
    )


# --- Markdown ----------------------------------------------------------------------------

# Characters with a meaning somewhere in CommonMark / GitHub Markdown: emphasis,
# code, links, HTML, tables, strikethrough, headings, entities, math.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#&$!])")
# ...except an underscore inside a word (snake_case ids), which CommonMark never
# reads as emphasis: unescaped again for readability in a terminal.
_INTRAWORD_UNDERSCORE = re.compile(r"(?<=[^\W_])\\_(?=[^\W_])")


def md_escape(text: object, limit: int | None = None) -> str:
    """``text`` as literal Markdown: one line, special characters backslash-escaped.

    Safe in a table cell (``|`` escaped, newlines collapsed) and in running text
    (no emphasis, link, code, HTML tag, entity or math can form).
    """
    flat = " ".join(str(text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    escaped = _MD_SPECIAL.sub(r"\\\1", flat)
    return _INTRAWORD_UNDERSCORE.sub("_", escaped)


def copy_evidence(link: dict) -> str:
    """Why a copy link was made, in words: its Jaccard, and its own text beside the furniture."""
    words = f"Jaccard {link['jaccard']:.3f} on the whole text"
    if link["furniture_share"]:
        words += (
            f", {link['furniture_share']:.0%} of it on lines shared by "
            f"{FURNITURE_TEXTS}+ texts (furniture)"
        )
    if link["own_text_found"] is not None:
        words += f"; {link['own_text_found']:.0%} of the own text found in the other"
    return words


def adoption_evidence(link: dict) -> str:
    """Why a document without a link of its own was adopted, in words (see
    :func:`dedup.stages.cluster.adopt_alone`)."""
    words = (
        f"agreement {link['agreement']:.3f} with the cluster's {link['members']} "
        f"documents (mean of score x shorter / longer, {link['scored']} of them scored); "
        f"its language's bar {link['bar']:.3f}; its next best {link['next_best']:.3f}; "
        f"highest with {link['left']}"
    )
    if link.get("beside"):  # a member of its language label (cluster._sibling_vetoes)
        words += (
            f"; beside {link['beside']} of its language label: pair score "
            f"{link['beside_score']:.3f}, shared {link['beside_value']:.3f} (a link, or less "
            f"than its agreement: another language under one label)"
        )
    return words


def _why(link: dict) -> str:
    kind = link.get("kind", "aligned")
    if kind == "copy":
        return copy_evidence(link)
    return adoption_evidence(link) if kind == "adopted" else ""


def _row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render_markdown(result: RunResult, report: dict, limits: ViewLimits | None = None) -> str:
    """``report.md``: the summary, the largest clusters in detail, then compact tables.

    Args: as :func:`render_html`. The first ``limits.md_detailed`` clusters
    show members and aligned sentences, the next ``limits.md_table`` one row
    each; singletons and skipped inputs are tables, all bounded.
    """
    limits = limits or ViewLimits()
    view = _view_model(result, report, limits, html=False)
    info = view["info"]
    e = md_escape
    out = [
        "# dedup report",
        "",
        f"- **documents in:** {info['documents_in']} (assigned {info['assigned']}, "
        f"skipped {info['skipped']})",
        f"- **clusters:** {info['clusters']} ({info['multi_document_clusters']} with several "
        f"documents, {info['singletons']} singletons; {info['duplicates_to_drop']} copies "
        "to drop)",
        f"- **languages ({view['n_languages']}):** {e(view['languages'])}",
        f"- **keep policy:** {e(view['policy'])}",
        f"- **model:** {e(view['model'])}; **threshold:** {view['threshold']}; "
        f"**pairs:** {info['candidate_pairs']} aligned, {info['linked_pairs']} linked",
        "",
        "Everything is in `clusters.json` and `assignments.csv`; this file is bounded.",
        "",
        f"## Clusters with several documents ({view['n_multi']}, largest first)",
        "",
    ]
    if not view["clusters"]:
        out += ["None.", ""]
    detailed = [c for c in view["clusters"] if c["detailed"]]
    compact = [c for c in view["clusters"] if not c["detailed"]]
    for c in detailed:
        out += [
            f"### {c['id']}: {c['size']} documents, {e(c['mix'])}",
            "",
            f"Keep **{e(c['representative'])}**.",
            "",
            _row(["id", "lang", "sentences", "chars", "keep", "beginning"]),
            _row(["---", "---", "---:", "---:", "---", "---"]),
        ]
        for m in c["members"]:
            out.append(
                _row(
                    [
                        e(m["id"]),
                        e(m["lang"]),
                        m["sentences"],
                        m["chars"],
                        "keep" if m["keep"] else "",
                        e(m["title"] or m["excerpt"], limits.md_sentence // 2),
                    ]
                )
            )
        out.append("")
        for link in c["links"]:
            if link["kind"] == "copy":
                out += [
                    f"**{e(link['right'])}** is a copy of **{e(link['left'])}** (found before "
                    f"alignment): {copy_evidence(link)}.",
                    "",
                ]
                continue
            if link["kind"] == "adopted":
                out += [
                    f"**{e(link['right'])}** ({e(link['right_lang'])}) has no link of its own "
                    f"and was adopted: {e(link['why'])}.",
                    "",
                ]
                continue
            shown = len(link["pairs"])
            more = f", first {shown} shown" if link["more_pairs"] else ""
            out += [
                f"**{e(link['left'])}** ({e(link['left_lang'])}) ↔ **{e(link['right'])}** "
                f"({e(link['right_lang'])}): score {link['score']:.3f}, coverage "
                f"{link['coverage']:.2f}, {shown + link['more_pairs']} aligned sentence "
                f"pairs{more}",
                "",
                _row(["#", e(link["left_lang"]), e(link["right_lang"]), "sim", "z", "weight"]),
                _row(["---", "---", "---", "---:", "---:", "---:"]),
            ]
            for a in link["pairs"]:
                out.append(
                    _row(
                        [
                            f"{a['left_sentence'] + 1}↔{a['right_sentence'] + 1}",
                            e(a["left_text"]),
                            e(a["right_text"]),
                            f"{a['similarity']:.3f}",
                            f"{a['z']:.1f}",
                            f"{a['weight']:.2f}",
                        ]
                    )
                )
            out.append("")
        if c["more_links"]:
            out += [f"{c['more_links']} more links in clusters.json.", ""]
    if compact:
        out += [
            f"### Next {len(compact)} clusters",
            "",
            _row(["cluster", "size", "languages", "keep", "members"]),
            _row(["---", "---:", "---", "---", "---"]),
        ]
        for c in compact:
            ids = ", ".join(e(m["id"]) for m in c["members"][:8])
            if len(c["members"]) > 8:
                ids += f", … (+{len(c['members']) - 8})"
            out.append(_row([c["id"], c["size"], e(c["mix"]), e(c["representative"]), ids]))
        out.append("")
    if view["more_clusters"]:
        out += [f"{view['more_clusters']} more clusters in clusters.json.", ""]
    out += [f"## Singletons ({view['n_singletons']})", ""]
    if view["singletons"]:
        out += [
            _row(["id", "lang", "sentences", "chars", "beginning"]),
            _row(["---", "---", "---:", "---:", "---"]),
        ]
        out += [
            _row([e(s["id"]), e(s["lang"]), s["sentences"], s["chars"], e(s["excerpt"])])
            for s in view["singletons"]
        ]
        out.append("")
    else:
        out += ["None.", ""]
    if view["more_singletons"]:
        out += [f"{view['more_singletons']} more singletons in assignments.csv.", ""]
    out += [f"## Skipped inputs ({info['skipped']})", ""]
    if view["skipped"]:
        out += [_row(["origin", "id", "reason"]), _row(["---", "---", "---"])]
        out += [_row([e(s["origin"]), e(s["doc_id"]), e(s["reason"])]) for s in view["skipped"]]
        out.append("")
    else:
        out += ["None.", ""]
    if view["more_skipped"]:
        out += [f"{view['more_skipped']} more in skipped.csv.", ""]
    return "\n".join(out).rstrip("\n") + "\n"
