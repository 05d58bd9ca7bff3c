"""Small responses the middleware answers by itself: errors and redirects.

API clients get JSON ``{"error": ...}``; browsers (``Accept`` preferring
``text/html``) get a short HTML page. Bodies never contain attribute values.
Every answer of the middleware's own carries :func:`security_headers`: it is
never sniffed as another type, loads nothing, runs no script and is never framed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["POLICY", "content_security_policy", "error", "redirect", "security_headers", "wants_html"]

_STRICT = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def content_security_policy(*, styles: Iterable[str] = (), forms: bool = False) -> str:
    """The policy of a page that loads nothing and runs no script.

    ``styles`` are the exact texts of the page's inline ``<style>`` elements,
    allowed by hash (no ``'unsafe-inline'``); ``forms`` lets it post forms to this site.
    """
    directives = [_STRICT, "form-action 'self'" if forms else "form-action 'none'"]
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}'" for style in styles
    ]
    if hashes:
        directives.append("style-src " + " ".join(hashes))
    return "; ".join(directives)


#: The policy of every answer that needs nothing at all (errors, JSON, redirects).
POLICY = content_security_policy()


def security_headers(policy: str = POLICY) -> list[tuple[str, str]]:
    """``X-Content-Type-Options: nosniff`` and ``policy`` as the Content-Security-Policy."""
    return [("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", policy)]


def wants_html(environ: WSGIEnvironment) -> bool:
    """True when the client prefers an HTML page to JSON (a browser)."""
    accept = parse_accept_header(environ.get("HTTP_ACCEPT"), MIMEAccept)
    return accept.best_match(["application/json", "text/html"]) == "text/html"


def error(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    status: int,
    message: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer ``status`` with ``message`` as HTML or JSON, as the client prefers."""
    title = HTTPStatus(status).phrase
    if wants_html(environ):
        body = (
            f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{status} {title}</title>'
            f"</head><body><h1>{title}</h1><p>{html.escape(message)}</p></body></html>\n"
        ).encode()
        content_type = "text/html; charset=utf-8"
    else:
        body = json.dumps({"error": message, "status": status}).encode()
        content_type = "application/json"
    start_response(
        f"{status} {title}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *security_headers(),
            *headers,
        ],
    )
    return [body]


def redirect(
    start_response: StartResponse,
    location: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer 302 to ``location`` (which the caller has already validated)."""
    start_response(
        "302 Found",
        [
            ("Location", location),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
            *security_headers(),
            *headers,
        ],
    )
    return []
