"""Small responses the middleware answers by itself: errors and redirects.

API clients get JSON ``{"error": ...}``; browsers (``Accept`` preferring
``text/html``) get a short HTML page. Bodies never contain attribute values.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["error", "redirect", "wants_html"]


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
        [("Location", location), ("Content-Length", "0"), ("Cache-Control", "no-store"), *headers],
    )
    return []
