"""Cross-site request forgery protection for the HTML forms.

A browser sends the front end's cookies with a form another site posts to this
one, and SameSite does not cover every front end's cookies nor same-site
subdomains. So every form carries a token signed with the app's key and bound to
the signed-in user, their front-end session (when the front end names one) and
this browser's login: a random value in the app's own HttpOnly cookie, made when
a form is first shown and dropped at each login and logout (:func:`clearing`; it
also ends with the browser). Not when a request arrives without a user: front ends
often leave static files unprotected. A POST without a valid token is
refused (400) before the view runs; a token from before a logout, or from another
browser, is not valid. The key is made once and kept in the database, so every
worker process (and every restart) shares it without setup.
"""

from __future__ import annotations

import functools
import secrets
import sqlite3
from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request
from flask.wrappers import Response
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.exceptions import BadRequest, Forbidden
from werkzeug.http import dump_cookie

from shibwsgi import Identity
from shibwsgi.flask import get_identity
from shibwsgi.paths import script_root

from .db import connect

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["COOKIE", "FIELD", "MAX_AGE", "clearing", "csrf_token", "init_app", "protected"]

#: The form field carrying the token.
FIELD = "csrf_token"
#: Seconds a page's forms stay usable: the Shibboleth SP's default session lifetime.
MAX_AGE = 8 * 3600
#: The cookie holding this browser's login value, which tokens are bound to.
COOKIE = "movies_csrf"

_SALT = "movies.csrf"
_NONCE_LENGTH = len(secrets.token_urlsafe(32))
_CONFIG_KEY = "CSRF_SERIALIZER"

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    """Load (or make, once) the signing key from the app's database; keep the cookie up to date."""
    app.extensions[_CONFIG_KEY] = URLSafeTimedSerializer(_stored_key(app.config["DATABASE"]), salt=_SALT)
    app.after_request(_update_cookie)


def csrf_token(identity: Identity) -> str:
    """A token for forms shown to ``identity`` in this browser."""
    nonce = g.get("csrf_new_nonce") or _nonce()
    if nonce is None:
        nonce = g.csrf_new_nonce = secrets.token_urlsafe(32)
    return str(_serializer().dumps(_binding(identity, nonce)))


def clearing(environ: WSGIEnvironment, start_response: StartResponse) -> StartResponse:
    """``start_response`` that also drops the cookie: for the login and logout paths."""
    header = ("Set-Cookie", _cookie(environ, "", secure=False, max_age=0))

    def start_clearing(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, header], exc_info)

    return start_clearing


def protected(view: F) -> F:
    """Refuse a POST whose token is missing, forged, expired or someone else's."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        identity = get_identity()
        if identity is None:  # the view's own login check answers this one
            return view(*args, **kwargs)
        if not _same_origin():
            raise Forbidden("this form was posted from another site")
        try:
            bound = _serializer().loads(request.form.get(FIELD, ""), max_age=MAX_AGE)
        except BadData:
            bound = None
        nonce = _nonce()
        if nonce is None or bound != _binding(identity, nonce):
            raise BadRequest("the form has expired or did not come from this page: reload it and try again")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _binding(identity: Identity, nonce: str) -> list[str]:
    return [identity.user, identity.session_id or "", nonce]


def _nonce() -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value and len(value) == _NONCE_LENGTH and value.isascii() else None


def _update_cookie(response: Response) -> Response:
    new = g.get("csrf_new_nonce")
    if new is not None:
        response.headers.add("Set-Cookie", _cookie(request.environ, new, secure=request.is_secure))
    return response


def _cookie(environ: WSGIEnvironment, value: str, *, secure: bool, max_age: int | None = None) -> str:
    # A browser session cookie: it ends with the browser, a login or a logout. One path for
    # setting and dropping it (a browser drops only a cookie of the very same path).
    path = script_root(environ) or "/"
    return dump_cookie(
        COOKIE, value, max_age=max_age, path=path, secure=secure, httponly=True, samesite="Lax"
    )


def _serializer() -> URLSafeTimedSerializer:
    serializer: URLSafeTimedSerializer = current_app.extensions[_CONFIG_KEY]
    return serializer


def _same_origin() -> bool:
    # Browsers send Origin with every cross-site POST; its absence proves nothing, the token does.
    # Hosts, not schemes: TLS often ends at the front end, so the app may see http.
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # "http://[::1": no site at all
        return False
    return _host(netloc) == _host(request.host)


def _host(netloc: str) -> str:
    """``netloc`` lower-cased, without a default port (browsers leave it out of Origin)."""
    netloc = netloc.lower()
    return netloc.removesuffix(":80").removesuffix(":443")


def _stored_key(path: str) -> str:
    with closing(connect(path)) as db:
        db.execute(
            "INSERT OR IGNORE INTO app_meta (key, value) VALUES ('csrf_key', ?)", (secrets.token_urlsafe(32),)
        )
        row: sqlite3.Row = db.execute("SELECT value FROM app_meta WHERE key = 'csrf_key'").fetchone()
    return str(row["value"])
