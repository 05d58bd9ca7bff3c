"""The demo movie API behind single sign-on.

``create_app()`` builds the Flask app; ``make_application()`` wraps it in
:class:`shibwsgi.SSOMiddleware`, configured from the environment, and
:mod:`app.wsgi` serves that to uWSGI. The app's settings come from the
environment and may be overridden by ``create_app``'s ``config`` (tests):

- ``MOVIES_DB`` (config ``DATABASE``): the SQLite file; default ``movies.sqlite3``
  in the Flask instance folder.
- ``MOVIES_EDITOR_GROUP`` (config ``EDITOR_GROUP``): the value of the ``groups``
  attribute that may create, change and delete movies; default ``movie-editors``.
  The ``editor`` role in the database's ``roles`` table may too (:mod:`app.roles`,
  ``python -m app roles``).

The middleware's ``SHIBWSGI_*`` settings default to :func:`default_settings`
(a Shibboleth SP releasing eduPersonPrincipalName, displayName, mail and
isMemberOf, or the same attributes under another profile's names); any of them
set in the environment wins.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers import Response as BaseResponse

from shibwsgi import PROFILES, ConfigError, SSOMiddleware
from shibwsgi.paths import script_root

from . import csrf
from .db import init_app
from .movies import create_blueprint
from .pages import blueprint as pages
from .roles import create_blueprint as create_roles_blueprint
from .roles import roles_hook, rules

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["DEFAULT_ATTRIBUTES", "DEFAULT_EDITOR_GROUP", "create_app", "default_settings", "make_application"]

DEFAULT_EDITOR_GROUP = "movie-editors"
DEFAULT_PROFILE = "shibboleth"
#: The app's attributes (name, email, groups) under each front end's own names (its
#: profile's ``sample_sources``): the ``SHIBWSGI_ATTRIBUTES`` used when the environment does not set it.
DEFAULT_ATTRIBUTES: Mapping[str, str] = {
    profile.name: " ".join(
        f"{role}={source}{':multi' if role == 'groups' else ''}"
        for role, source in profile.sample_sources.items()
        if role in ("name", "email", "groups")
    )
    for profile in PROFILES.values()
}
#: Largest request body accepted; a movie is a few hundred bytes.
MAX_CONTENT_LENGTH = 64 * 1024

_ENVIRONMENT = {"MOVIES_DB": "DATABASE", "MOVIES_EDITOR_GROUP": "EDITOR_GROUP"}


def create_app(config: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None) -> Flask:
    """Build the app and create (and seed, once) its database.

    ``environ`` defaults to ``os.environ``; ``config`` keys win over it.
    """
    app = _MovieApp(__name__)
    app.config.from_mapping(EDITOR_GROUP=DEFAULT_EDITOR_GROUP, MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH)
    source = os.environ if environ is None else environ
    app.config.from_mapping({key: source[name] for name, key in _ENVIRONMENT.items() if name in source})
    app.config.from_mapping(config or {})
    if app.config.get("DATABASE"):
        app.config["DATABASE"] = os.fsdecode(app.config["DATABASE"])
    else:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["DATABASE"] = os.path.join(app.instance_path, "movies.sqlite3")
    editor_group = app.config["EDITOR_GROUP"]
    if not isinstance(editor_group, str) or not editor_group.strip():
        raise ConfigError("MOVIES_EDITOR_GROUP", "must be a non-empty group name")
    app.config["EDITOR_GROUP"] = editor_group = editor_group.strip()

    init_app(app)
    csrf.init_app(app)
    app.register_blueprint(create_blueprint(editor_group))
    app.register_blueprint(create_roles_blueprint())
    app.register_blueprint(pages)
    app.before_request(_utf8_query)
    app.context_processor(_mount)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(sqlite3.OperationalError, _database_error)
    app.after_request(_no_store)
    return app


def default_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``SHIBWSGI_*`` defaults for the profile ``environ`` names (Shibboleth when none).

    The user id comes from the profile's own default sources (``eppn`` then
    ``REMOTE_USER`` for Shibboleth, ``sub`` for OpenID Connect, ...).
    """
    profile = (os.environ if environ is None else environ).get("SHIBWSGI_PROFILE", DEFAULT_PROFILE)
    return {"SHIBWSGI_PROFILE": profile, "SHIBWSGI_ATTRIBUTES": DEFAULT_ATTRIBUTES.get(profile, "")}


def make_application(environ: Mapping[str, str] | None = None) -> SSOMiddleware:
    """The app inside the middleware, configured from ``environ`` (default ``os.environ``).

    The middleware's roles come from the movie database's ``roles`` table unless
    ``SHIBWSGI_ROLES`` names another hook; its rules are the views' own checks, which
    the auth_request endpoint (``SHIBWSGI_AUTH_PATH``) applies for nginx.
    """
    settings = {**default_settings(environ), **(os.environ if environ is None else environ)}
    app = create_app(environ=settings)
    own_roles = {} if "SHIBWSGI_ROLES" in settings else {"roles": roles_hook(app.config["DATABASE"])}
    return _MovieMiddleware.from_mapping(app, settings, rules=rules(app.config["EDITOR_GROUP"]), **own_roles)


class _MovieMiddleware(SSOMiddleware):
    """The middleware, which also ends the forms' CSRF binding at each login and logout."""

    def __init__(self, app: WSGIApplication, **options: Any) -> None:
        super().__init__(app, **options)
        self._session_paths = frozenset(path for path in (self.login_path, self.logout_path) if path)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Every request comes through here: one set lookup, then the middleware itself.
        if (environ.get("PATH_INFO") or "/") in self._session_paths:
            start_response = csrf.clearing(environ, start_response)
        return super().__call__(environ, start_response)


class _MovieApp(Flask):
    def make_default_options_response(self) -> Response:
        # OPTIONS says which methods a path takes (Allow) and nothing else: 204, no body.
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def _mount() -> dict[str, str]:
    # Where the app is mounted, escaped for links; never "//host", which is another site.
    return {"mount": script_root(request.environ)}


def _utf8_query() -> None:
    # Browsers percent-escape; a client sending raw bytes that are not UTF-8 would make
    # every read of request.args raise: refuse it once, here.
    try:
        request.query_string.decode()
    except UnicodeDecodeError:
        raise BadRequest("the query string is not valid UTF-8: percent-escape it") from None


def _error_body(message: str, status: int) -> Response:
    """The JSON error shape shared with the middleware: ``{"error": ..., "status": N}``."""
    return jsonify(error=message, status=status)


def _http_error(exc: HTTPException) -> BaseResponse:
    # API clients get JSON, browsers the site's own page; Allow (405) and other headers survive.
    response = exc.get_response()
    status = response.status_code
    message = exc.description or exc.name
    if request.path.startswith("/api/"):
        response.set_data(_error_body(message, status).get_data())
        response.content_type = "application/json"
    else:
        page = render_template("error.html", status=status, name=exc.name, message=message)
        response.set_data(page)
        response.content_type = "text/html; charset=utf-8"
    return response


def _database_error(exc: sqlite3.OperationalError) -> tuple[Response, int, dict[str, str]]:
    # Only a write lock held past the busy timeout is worth retrying; anything else is a bug.
    message = str(exc).lower()
    if "locked" not in message and "busy" not in message:
        raise exc
    return _error_body("the database is busy; try again", 503), 503, {"Retry-After": "1"}


def _no_store(response: Response) -> Response:
    # Every page is per user: a shared cache must never hand one user's identity to another.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
