"""Internal: sessions, login and logout: binding the front end's identity to the browser.

``resolve`` decides each request's identity from the front end's and the
session's: the same login keeps its session, another user or front-end session
replaces it, and no front-end identity falls back to the session. The login path
starts a session (always under a new id) and the logout path ends it, then sends
the browser to the front end's own logout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from . import responses
from .cookies import SessionCookie
from .errors import ConfigError
from .frontend_urls import FrontEndURLs
from .identity import Identity
from .logs import log, log_refusal, loggable
from .options import non_negative, positive
from .redirects import safe_next
from .sessions.base import SessionStore, check_store
from .sessions.manager import SessionManager

#: The longest session: browsers cap a cookie's Max-Age at 400 days (RFC 6265bis, 5.5).
MAX_SESSION_SECONDS = 400 * 86400

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .responses import Response

__all__ = ["Flows", "Header", "next_parameter", "session_binding"]

Header = tuple[str, str]


class Flows:
    """The session binding of every request, and the login and logout endpoints."""

    def __init__(
        self,
        *,
        sessions: SessionManager | None,
        cookie: SessionCookie | None,
        front_end: FrontEndURLs,
        login_path: str | None,
        profile_name: str,
    ) -> None:
        self.sessions = sessions
        self.cookie = cookie
        self.front_end = front_end
        self.login_path = login_path
        self.profile_name = profile_name

    def resolve(
        self, environ: WSGIEnvironment, front: Identity | None
    ) -> tuple[Identity | None, list[Header]]:
        """The request's identity and any Set-Cookie headers the session needs."""
        if self.sessions is None or self.cookie is None:
            return front, []
        present, session_id = self.cookie.read(environ)
        session = self.sessions.load(session_id) if session_id else None
        headers = [self.cookie.clear_header()] if present and session is None else []
        if session is not None and (front is None or _same_login(session.identity, front)):
            self.sessions.touch(session)
            return front or session.identity, headers
        if front is None:
            return None, headers
        if session is not None:
            # Another user, or a new front-end session: never keep the old one.
            self.sessions.end(session.id)
        return front, [self.cookie.set_header(self.sessions.start(front).id)]

    def login(self, environ: WSGIEnvironment, front: Identity | None) -> Response:
        """Start a session for the front end's identity, or send the browser to the front end's login."""
        target = safe_next(next_parameter(environ))
        if front is None:
            return self._login_elsewhere(environ, target)
        headers = []
        if self.sessions is not None and self.cookie is not None:
            _, old_id = self.cookie.read(environ)
            if old_id:
                self.sessions.end(old_id)
            # A new id at every login: a session id planted before login is worthless.
            headers.append(self.cookie.set_header(self.sessions.start(front).id))
        log.info("login: %s via %s", loggable(front.user), self.profile_name)
        return responses.redirect_response(target, headers=headers)

    def logout(self, environ: WSGIEnvironment, front: Identity | None) -> Response:
        """End the session and send the browser to the front end's logout."""
        headers = []
        if self.sessions is not None and self.cookie is not None:
            present, session_id = self.cookie.read(environ)
            if session_id:
                self.sessions.end(session_id)
            if present:
                headers.append(self.cookie.clear_header())
        return_to = safe_next(next_parameter(environ))
        return responses.redirect_response(self.front_end.logout(environ, return_to), headers=headers)

    def _login_elsewhere(self, environ: WSGIEnvironment, target: str) -> Response:
        identity, headers = self.resolve(environ, None)
        if identity is not None:
            return responses.redirect_response(target, headers=headers)
        login_path = str(self.login_path)
        come_back = f"{login_path}?next={quote(target, safe='')}" if target != "/" else login_path
        front_end_login = self.front_end.login(environ, safe_next(come_back, default=login_path))
        if front_end_login is not None:
            return responses.redirect_response(front_end_login, headers=headers)
        log_refusal(
            environ,
            401,
            "no identity on the login path: it must be protected by the front end "
            "(for example Require shib-session, or AuthType openid-connect)",
        )
        return responses.error_response(
            environ,
            401,
            "signing in did not complete: the sign-in service did not say who you are",
            headers=headers,
        )


def session_binding(
    store: SessionStore | None,
    secret_key: str | Sequence[str] | None,
    idle_timeout: int,
    absolute_timeout: int,
    cookie_name: str | None,
    cookie_secure: bool,
    clock: Callable[[], float],
    cookie_cache_entries: int,
) -> tuple[SessionManager | None, SessionCookie | None]:
    """Validate the session options; the manager and cookie, or ``(None, None)`` when stateless."""
    idle = positive("idle_timeout", idle_timeout)
    absolute = positive("absolute_timeout", absolute_timeout)
    if absolute > MAX_SESSION_SECONDS:
        raise ConfigError(
            "absolute_timeout",
            f"must be at most {MAX_SESSION_SECONDS} seconds (400 days), not {absolute}: browsers keep "
            "a cookie no longer (RFC 6265bis), so a longer session could never take effect",
        )
    if idle > absolute:
        raise ConfigError("idle_timeout", "cannot be longer than absolute_timeout")
    if store is None:  # options that need a store were refused with it (shibwsgi.needs)
        return None, None
    check_store(store)
    if secret_key is None:
        raise ConfigError("secret_key", "a session store needs secret_key to sign the session cookie")
    cookie = SessionCookie(
        secret_key,
        name=cookie_name,
        secure=cookie_secure,
        max_age=absolute,
        cache_entries=non_negative("cookie_cache_entries", cookie_cache_entries),
    )
    return SessionManager(store, idle_timeout=idle, absolute_timeout=absolute, clock=clock), cookie


def next_parameter(environ: WSGIEnvironment) -> str | None:
    """The request's ``next`` query parameter, unvalidated (pass it through ``safe_next``)."""
    try:
        values = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=50).get("next")
    except ValueError:  # too many fields: not a link this middleware made
        return None
    return values[0] if values else None


def _same_login(stored: Identity, front: Identity) -> bool:
    if stored.user != front.user:
        return False
    return stored.session_id is None or front.session_id is None or stored.session_id == front.session_id
