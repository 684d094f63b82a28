"""News pages built from the seed articles, inside the furniture of a real site.

The HTML input tests need pages the way sites serve them: a cookie banner,
navigation, a byline, the article, a "related news" list naming other
articles, and a footer. Every page of the site shares all of it, so it must
not reach ``Document.text`` (two articles of one site would share evidence).
"""

from __future__ import annotations

import html
from pathlib import Path

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
GREEK, ENGLISH = "000_814e0ab8402dad44", "002_20e4596e9ffa5474"  # one article, two languages
OTHERS = ("001_4e64db9b5379e9f5", "003_9a615df48e056c31", "004_c5d0abd407fd8be3")

#: text of the site furniture, each absent from an extracted article
FURNITURE = (
    "We use cookies",
    "Accept all cookies",
    "Subscribe to the newsletter",
    "Science and Technology",
    "Related news",
    "All rights reserved",
    "Editorial office",
    "Privacy policy",
)
DATE = "2025-03-14"


def paragraphs(stem: str) -> list[str]:
    """The paragraphs of a seed article."""
    text = (SEEDS / f"{stem}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def headline(stem: str) -> str:
    """A seed article's first sentence, standing in for its headline."""
    return paragraphs(stem)[0].split(". ")[0]


def news_page(stem: str, *, lang: str = "en") -> str:
    """The seed article ``stem`` as a page of the site, the other seeds as related links."""
    title = html.escape(" ".join(headline(stem).split()[:10]))
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs(stem))
    related = "\n".join(
        f'<li><a href="/news/{other}">{html.escape(headline(other))}</a></li>'
        for other in (ENGLISH, *OTHERS)
        if other != stem
    )
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>{title} | Provincial Daily</title>
<meta property="article:published_time" content="{DATE}T08:30:00+07:00">
<link rel="canonical" href="https://daily.example.org/{lang}/{stem}">
</head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience on
Provincial Daily. By continuing to browse you accept our cookie policy.
<button>Accept all cookies</button></div>
<header><nav><ul>
<li><a href="/">Home</a></li><li><a href="/politics">Politics</a></li>
<li><a href="/economy">Economy</a></li><li><a href="/science">Science and Technology</a></li>
<li><a href="/subscribe">Subscribe to the newsletter</a></li>
</ul></nav></header>
<main>
<article>
<h1>{title}</h1>
<p class="byline">Provincial Daily, 14 March 2025</p>
{body}
</article>
<aside class="related"><h2>Related news</h2><ul>
{related}
</ul></aside>
</main>
<footer>
<p>Copyright 2025 Provincial Daily. All rights reserved.</p>
<p>Editorial office: 12 Tran Phu Street. Contact the newsroom at newsroom@daily.example.org.</p>
<a href="/privacy">Privacy policy</a> <a href="/terms">Terms of use</a>
</footer>
</body>
</html>
"""
