"""Cross-site request forgery protection for the HTML forms.

A browser sends the front end's cookies with a form another site posts to this
one, and SameSite does not cover every front end's cookies nor same-site
subdomains. So every form carries a token signed with the app's key and bound to
the signed-in user and their front-end session; a POST without a valid one is
refused (400) before the view runs. The key is made once and kept in the
database, so every worker process (and every restart) shares it without setup.
"""

from __future__ import annotations

import functools
import secrets
import sqlite3
from collections.abc import Callable
from contextlib import closing
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.exceptions import BadRequest, Forbidden

from shibwsgi import Identity
from shibwsgi.flask import get_identity

from .db import connect

__all__ = ["FIELD", "MAX_AGE", "csrf_token", "init_app", "protected"]

#: The form field carrying the token.
FIELD = "csrf_token"
#: Seconds a page's forms stay usable: the Shibboleth SP's default session lifetime.
MAX_AGE = 8 * 3600

_SALT = "movies.csrf"
_CONFIG_KEY = "CSRF_SERIALIZER"

F = TypeVar("F", bound=Callable[..., Any])


def init_app(app: Flask) -> None:
    """Load (or make, once) the signing key from the app's database."""
    app.extensions[_CONFIG_KEY] = URLSafeTimedSerializer(_stored_key(app.config["DATABASE"]), salt=_SALT)


def csrf_token(identity: Identity) -> str:
    """A token for forms shown to ``identity``."""
    return str(_serializer().dumps(_binding(identity)))


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
        if bound != _binding(identity):
            raise BadRequest("the form has expired or did not come from this page: reload it and try again")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _binding(identity: Identity) -> list[str]:
    return [identity.user, identity.session_id or ""]


def _serializer() -> URLSafeTimedSerializer:
    serializer: URLSafeTimedSerializer = current_app.extensions[_CONFIG_KEY]
    return serializer


def _same_origin() -> bool:
    # Browsers send Origin with every cross-site POST; its absence proves nothing, the token does.
    # Hosts, not schemes: TLS often ends at the front end, so the app may see http.
    origin = request.headers.get("Origin")
    return origin is None or _host(urlsplit(origin).netloc) == _host(request.host)


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
