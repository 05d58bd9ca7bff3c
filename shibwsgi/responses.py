"""Internal: small responses the middleware answers by itself: errors and redirects.

API clients get JSON ``{"error": ...}``; browsers (``Accept`` preferring
``text/html``) get a page written for people, with a way on (home, sign in),
or the application's own page from its ``error_page`` hook. Bodies never
contain attribute values; hints for the operator go to the log.
Every answer of the middleware's own carries :func:`security_headers`: it is
never sniffed as another type, loads nothing, runs no script and is never framed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import quote

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .pages import STYLE, Link, page
from .paths import request_path, script_root
from .redirects import safe_next

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


log = logging.getLogger("shibwsgi")

#: Where the middleware puts its ``error_page`` hook for this request.
ERROR_PAGE_KEY = "shibwsgi.error_page"
#: ``error_page(status, message, environ)``: the app's HTML for a refusal, or ``None`` for the built-in page.
ErrorPage = Callable[[int, str, "WSGIEnvironment"], "str | None"]

#: Headings for people, by status; others use the status phrase.
_HEADINGS = {
    400: "This request could not be handled",
    401: "Please sign in",
    403: "You don't have access to this page",
    405: "This page cannot be used that way",
    413: "This request is too large",
    431: "Your sign-in carries more than this site accepts",
    503: "This site is briefly unavailable",
}
#: What the person can do about it.
_ADVICE = {
    400: "Going back and trying again may help. If it keeps happening, contact the site's administrators.",
    401: "Sign in to continue.",
    403: "If you think you should have access, contact the site's administrators.",
    431: "Contact the site's administrators: your account has more groups or attributes than it takes.",
    503: "Please try again in a moment.",
}
__all__ = [
    "ERROR_PAGE_KEY",
    "POLICY",
    "ErrorPage",
    "Response",
    "content_security_policy",
    "error",
    "error_response",
    "redirect",
    "redirect_response",
    "security_headers",
    "wants_html",
]

Header = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    """An answer of the middleware's own, independent of the server interface.

    The WSGI shell sends it with :meth:`send`, the ASGI shell as ASGI messages.
    """

    status: int
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""

    @property
    def status_line(self) -> str:
        """``"401 Unauthorized"``: the status as WSGI spells it."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def adding(self, headers: Iterable[Header]) -> Response:
        """This answer with ``headers`` appended (Set-Cookie of the session, the probe's mark)."""
        extra = list(headers)
        return Response(self.status, [*self.headers, *extra], self.body) if extra else self

    def send(self, start_response: StartResponse) -> list[bytes]:
        """Answer through WSGI's ``start_response``."""
        start_response(self.status_line, self.headers)
        return [self.body] if self.body else []


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
#: The built-in pages: their one inline stylesheet, nothing else.
_PAGE_POLICY = content_security_policy(styles=[STYLE])


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
    """Answer ``status`` with ``message`` through WSGI (see :func:`error_response`)."""
    return error_response(environ, status, message, headers=headers).send(start_response)


def error_response(
    environ: WSGIEnvironment,
    status: int,
    message: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """``status`` with ``message`` as HTML or JSON, as the client prefers."""
    safety = security_headers()
    if wants_html(environ):
        custom = _custom(environ, status, message)
        if custom is None:
            body, safety = _html(environ, status, message).encode(), security_headers(_PAGE_POLICY)
        else:
            # The app's own layout loads the app's own styles and scripts: its policy, not ours.
            body, safety = custom, [("X-Content-Type-Options", "nosniff")]
        content_type = "text/html; charset=utf-8"
    else:
        body = json.dumps({"error": message, "status": status}).encode()
        content_type = "application/json"
    return Response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *safety,
            *headers,
        ],
        body,
    )


def _custom(environ: WSGIEnvironment, status: int, message: str) -> bytes | None:
    """The app's page from its ``error_page`` hook, encoded, or ``None`` for the built-in one."""
    hook = environ.get(ERROR_PAGE_KEY)
    if not callable(hook):
        return None
    try:
        custom = hook(status, message, environ)
        # Encoded here: a lone surrogate in the page fails like any other hook error.
        return str.encode(custom) if isinstance(custom, str) else None
    except Exception:  # the refusal must still be answered: never a 500
        log.exception("the error_page hook failed for a %d answer; the built-in page is shown", status)
        return None


def _html(environ: WSGIEnvironment, status: int, message: str) -> str:
    """The built-in page: what happened, what to do, and a way on."""
    advice = _ADVICE.get(status, "")
    body = f"<p>{html.escape(advice)}</p>" if advice else ""
    if message:
        body += f'<p class="muted">Details: {html.escape(message)}</p>'
    eyebrow = f"Error {status} · {HTTPStatus(status).phrase}"
    return page(
        _HEADINGS.get(status, HTTPStatus(status).phrase), body, links=_links(environ, status), eyebrow=eyebrow
    )


def _links(environ: WSGIEnvironment, status: int) -> list[Link]:
    """Sign in (when that is the way on), then the site's home page."""
    root = script_root(environ)
    links = []
    login_path = environ.get("shibwsgi.login_path")
    signs_in = (
        status == 401 and isinstance(login_path, str) and safe_next(login_path, default="") == login_path
    )
    # On the login path itself, signing in again would only come back here.
    if signs_in and (environ.get("PATH_INFO") or "/") != login_path:
        target = safe_next(request_path(environ), default=root + "/")
        links.append(Link("Sign in", f"{root}{login_path}?next={quote(target, safe='')}"))
    links.append(Link("Go to the home page", root + "/", main=not links))
    return links


def redirect(
    start_response: StartResponse,
    location: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer 302 to ``location`` through WSGI (see :func:`redirect_response`)."""
    return redirect_response(location, headers=headers).send(start_response)


def redirect_response(location: str, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """302 to ``location`` (which the caller has already validated)."""
    return Response(
        302,
        [
            ("Location", location),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
            *security_headers(),
            *headers,
        ],
    )
