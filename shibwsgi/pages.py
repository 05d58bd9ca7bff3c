"""The layout of the HTML pages the middleware serves itself: errors, whoami, the development sign-in.

One small stylesheet, inline (the middleware serves no files), a centred card,
and a row of links so that nobody is left on a dead end. Callers pass body
HTML they have escaped; :func:`page` escapes the title and the links.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["STYLE", "STYLE_HASH", "Link", "page"]

STYLE = (
    ":root{--ink:#1f2328;--muted:#656d76;--line:#d8dee4;--paper:#fff;--wash:#f6f8fa;--accent:#0b5cad}"
    "*{box-sizing:border-box}"
    "body{margin:0;padding:8vh 1rem 2rem;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "color:var(--ink);background:var(--wash)}"
    "main{max-width:34rem;margin:0 auto;background:var(--paper);border:1px solid var(--line);"
    "border-radius:10px;padding:1.5rem 1.75rem}"
    "main.wide{max-width:52rem}"
    "h1{font-size:1.4rem;line-height:1.3;margin:0 0 .75rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}"
    "p{margin:.5rem 0}.muted{color:var(--muted)}.eyebrow{font-size:.8rem;letter-spacing:.06em;"
    "text-transform:uppercase;color:var(--muted);margin:0 0 .25rem}"
    "nav{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:1.5rem}"
    ".button,button{display:inline-block;font:inherit;font-weight:600;padding:.45rem 1rem;border-radius:6px;"
    "border:1px solid var(--accent);background:var(--accent);color:#fff;text-decoration:none;cursor:pointer}"
    ".button.secondary{background:var(--paper);color:var(--accent)}"
    ".warning{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.6rem .9rem;color:#4d3800}"
    ".alert{background:#ffebe9;border:1px solid #ffcecb;border-radius:6px;padding:.6rem .9rem;color:#b42318}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;"
    "border-bottom:1px solid var(--line);overflow-wrap:anywhere}th{width:35%;font-weight:600}"
    "ul{margin:0;padding-left:1.2rem}td ul{max-height:15rem;overflow:auto}"
    "ul.choices{list-style:none;padding:0;margin:1rem 0}ul.choices li{margin:.4rem 0}"
    "ul.choices label{display:flex;gap:.6rem;align-items:baseline;padding:.6rem .75rem;"
    "border:1px solid var(--line);border-radius:6px;cursor:pointer}"
    "ul.choices label:has(input:checked){border-color:var(--accent);background:#ddf4ff}"
    "code{font-size:.9em;overflow-wrap:anywhere}"
    "@media (max-width:30rem){main{padding:1.25rem 1rem}th,td{display:block;width:auto}"
    "th{border:0;padding-bottom:0;color:var(--muted)}}"
)
#: The stylesheet as a Content-Security-Policy source (``style-src 'self' <STYLE_HASH>``).
STYLE_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"


class Link(NamedTuple):
    """A way on from the page: ``label`` to ``href``, drawn as a main or a secondary button."""

    label: str
    href: str
    main: bool = True


def page(title: str, body: str, *, links: Sequence[Link] = (), eyebrow: str = "", wide: bool = False) -> str:
    """A whole HTML document: ``title`` as its heading, ``body`` (escaped HTML), then ``links``."""
    esc = html.escape
    nav = ""
    if links:
        buttons = (
            f'<a class="button{"" if link.main else " secondary"}" href="{esc(link.href)}">{esc(link.label)}</a>'
            for link in links
        )
        nav = f"<nav>{''.join(buttons)}</nav>"
    above = f'<p class="eyebrow">{esc(eyebrow)}</p>' if eyebrow else ""
    main = '<main class="wide">' if wide else "<main>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body>{main}{above}<h1>{esc(title)}</h1>{body}{nav}</main></body></html>\n"
    )
