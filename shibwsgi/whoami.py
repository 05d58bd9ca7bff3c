"""Internal: the ``whoami_path`` endpoint: a signed-in user's own identity, for finding a missing attribute.

It answers only for the identity of the request itself (front end or session),
so nobody sees anyone else's; anonymous requests get 401. It shows what the
front end released and how shibwsgi read it, never a secret: no cookie, no
session id, no proxy secret, and no attribute that carries a credential (its
name, its source's name or its value says so: a token, a session id, an
assertion...), which is listed as redacted instead. JSON, or an HTML page for browsers.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import responses
from .attributes import Attribute
from .credentials import holds_jose, names_credential
from .flows import Flows, Header
from .identity import Identity
from .pages import STYLE, Link, page
from .paths import script_root
from .responses import POLICY, Response, content_security_policy, security_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["WhoAmI"]

_METHODS = ("GET", "HEAD")

#: The middleware's own resolution of a request's identity (session and roles included).
Resolve = Callable[["WSGIEnvironment", "Identity | None"], "tuple[Identity | None, list[Header]]"]


class WhoAmI:
    """The endpoint; ``attributes`` are the middleware's (app name -> :class:`Attribute`).

    ``resolve`` is how the middleware turns the front end's identity into the
    request's (:meth:`SSOMiddleware._resolve`): the page shows what the app would get.
    """

    def __init__(
        self, *, resolve: Resolve, flows: Flows, channel: str, attributes: Mapping[str, Attribute]
    ) -> None:
        self.resolve = resolve
        self.flows = flows
        self.channel = channel
        self.sources = {name: attribute.source for name, attribute in attributes.items()}

    def __call__(self, environ: WSGIEnvironment, front: Identity | None) -> Response:
        if environ.get("REQUEST_METHOD", "GET") not in _METHODS:
            return responses.error_response(
                environ, 405, "only GET and HEAD", headers=[("Allow", ", ".join(_METHODS))]
            )
        identity, headers = self.resolve(environ, front)
        if identity is None:
            login = self.flows.login_path
            where = f": sign in at {login} first" if login else ""
            return responses.error_response(environ, 401, f"not logged in{where}", headers=headers)
        report = self.report(identity, self._session_expires(environ, identity))
        if responses.wants_html(environ):
            body, media_type = _page(report, script_root(environ)).encode(), "text/html; charset=utf-8"
            policy = _PAGE_POLICY
        else:
            body, media_type, policy = (
                json.dumps(report, ensure_ascii=False).encode(),
                "application/json",
                POLICY,
            )
        return _respond(environ, body, media_type, [*security_headers(policy), *headers])

    def report(self, identity: Identity, session_expires: datetime | None) -> dict[str, Any]:
        """What the page shows, as JSON-ready data."""
        present = set(identity.attributes) | set(identity.dropped)
        redacted = sorted(
            name
            for name, values in identity.attributes.items()
            if _credential(name, self.sources.get(name, ""), values, identity.session_id)
        )
        return {
            "user": identity.user,
            "profile": identity.profile,
            "channel": self.channel,
            "provider": identity.provider,
            "attributes": {
                name: list(values) for name, values in identity.attributes.items() if name not in redacted
            },
            "sources": self.sources,
            "not_released": sorted(name for name in self.sources if name not in present),
            "dropped": list(identity.dropped),
            "redacted": redacted,
            "roles": list(identity.roles),
            "authenticated_at": _iso(identity.authenticated_at),
            "front_end_session_expires": _iso(identity.expires_at),
            "session_expires": _iso(session_expires),
        }

    def _session_expires(self, environ: WSGIEnvironment, identity: Identity) -> datetime | None:
        """When this user's shibwsgi session ends if left idle; ``None`` without one."""
        sessions, cookie = self.flows.sessions, self.flows.cookie
        if sessions is None or cookie is None:
            return None
        _, session_id = cookie.read(environ)
        session = sessions.load(session_id) if session_id else None
        if session is None or session.identity.user != identity.user:
            return None
        return datetime.fromtimestamp(sessions.deadline(session), UTC)


def _credential(name: str, source: str, values: tuple[str, ...], session_id: str | None) -> bool:
    """True when attribute ``name`` (read from ``source``) holds a credential."""
    if names_credential(name) or names_credential(source):
        return True
    return any(value == session_id or holds_jose(value) for value in values)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _respond(environ: WSGIEnvironment, body: bytes, media_type: str, headers: list[Header]) -> Response:
    return Response(
        200,
        [
            ("Content-Type", media_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Vary", "Accept, Cookie"),
            *headers,
        ],
        b"" if environ.get("REQUEST_METHOD") == "HEAD" else body,
    )


_PAGE_POLICY = content_security_policy(styles=[STYLE])


def _page(report: Mapping[str, Any], root: str) -> str:
    """The report as a small HTML page; every value is escaped."""
    esc = html.escape
    rows = [
        ("User", esc(report["user"])),
        ("Profile", esc(report["profile"])),
        ("Channel", esc(report["channel"])),
        ("Identity provider", esc(report["provider"] or "—")),
        ("Signed in at", esc(report["authenticated_at"] or "—")),
        ("Front-end session ends", esc(report["front_end_session_expires"] or "—")),
        ("This site's session ends", esc(report["session_expires"] or "— (no session)")),
        ("Roles", esc(", ".join(report["roles"]) or "—")),
    ]
    attributes = []
    for name, source in report["sources"].items():
        values = report["attributes"].get(name)
        if name in report["redacted"]:
            shown = '<span class="muted">redacted: it carries a credential</span>'
        elif name in report["dropped"]:
            shown = '<span class="muted">dropped: over its size cap (see the log)</span>'
        elif values is None:
            shown = '<span class="muted">not released by the front end</span>'
        else:
            shown = "<ul>" + "".join(f"<li>{esc(value)}</li>" for value in values) + "</ul>"
        attributes.append((f"{esc(name)} <span class='muted'>({esc(source)})</span>", shown))
    table = "".join(f"<tr><th>{head}</th><td>{cell}</td></tr>" for head, cell in rows)
    attribute_table = "".join(f"<tr><th>{head}</th><td>{cell}</td></tr>" for head, cell in attributes)
    body = (
        f"<table>{table}</table>"
        "<h2>Attributes</h2><p class='muted'>As the application names them (the front end's name in "
        f"brackets).</p><table>{attribute_table or '<tr><td>none configured</td></tr>'}</table>"
    )
    return page("Who am I", body, links=[Link("Go to the home page", root + "/")], wide=True)
