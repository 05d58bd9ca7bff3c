"""Flask integration: the ``SSO`` extension, the current identity and view decorators.

The only shibwsgi module that imports Flask (install the ``flask`` extra)::

    from shibwsgi.authz import HasAttribute
    from shibwsgi.flask import SSO, current_identity, login_required, requires

    app = Flask(__name__)
    app.config["SHIBWSGI_ATTRIBUTES"] = "email=mail groups=isMemberOf:multi"
    SSO(app)  # wraps app.wsgi_app: flask run, app.test_client() and uWSGI all see the identity

    @app.get("/movies")
    @login_required
    def movies():
        return f"hello {current_identity.user}"

    @app.post("/movies")
    @requires(HasAttribute("groups", "movie-editors"))
    def add_movie(): ...

Refusals are answered by :func:`shibwsgi.authz.deny`, exactly as path rules are.
A view or template that asks for the identity of a request the middleware did
not see raises :class:`RuntimeError` (rather than treating everyone as anonymous).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from flask import current_app, has_request_context, request
from werkzeug.local import LocalProxy

from .authz import AllOf, LoggedIn, Requirement, deny
from .discovery import find_middleware
from .errors import ConfigError
from .identity import Identity
from .middleware import ENVIRON_KEY, SSOMiddleware
from .paths import request_path, script_root
from .redirects import safe_next
from .settings import PREFIX, SETTINGS, parse_settings

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "SSO",
    "current_identity",
    "get_identity",
    "login_required",
    "login_url",
    "logout_url",
    "requires",
]

#: Where :class:`SSO` keeps itself in ``app.extensions``.
EXTENSION_KEY = "shibwsgi"

_MISSING = (
    "no shibwsgi SSOMiddleware ran for this request (environ['shibwsgi.identity'] is absent). "
    "Wrap the Flask app itself with shibwsgi.flask.SSO(app), or app.wsgi_app = SSOMiddleware(app.wsgi_app, ...): "
    "an `application = SSOMiddleware(app)` next to it is bypassed by `flask run` and app.test_client()"
)

F = TypeVar("F", bound=Callable[..., Any])


def get_identity() -> Identity | None:
    """The current request's :class:`~shibwsgi.identity.Identity`, or ``None``.

    Raises :class:`RuntimeError` when no :class:`~shibwsgi.SSOMiddleware` ran
    for the request: every user would otherwise look anonymous.
    """
    if ENVIRON_KEY not in request.environ:
        raise RuntimeError(_MISSING)
    identity = request.environ[ENVIRON_KEY]
    return identity if isinstance(identity, Identity) else None


class _IdentityProxy(LocalProxy["Identity | None"]):
    # LocalProxy answers False when its lookup raises RuntimeError: a missing
    # middleware would pass for an anonymous user in `if current_identity:`.
    def __bool__(self) -> bool:
        return get_identity() is not None


current_identity: LocalProxy[Identity | None] = _IdentityProxy(get_identity)
"""Proxy to :func:`get_identity`, for views and templates.

The proxy object itself is never ``None``: test it with ``if current_identity:``
(it is falsy when nobody is logged in), not ``is None``.
"""


def requires(*requirements: Requirement) -> Callable[[F], F]:
    """Decorate a view so it runs only when every one of ``requirements`` allows the user."""
    if not requirements:
        raise ConfigError("rules", "requires() needs at least one requirement")
    requirement = requirements[0] if len(requirements) == 1 else AllOf(*requirements)
    if not isinstance(requirement, Requirement):
        raise ConfigError("rules", f"requires() got {requirement!r}, not a requirement")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            identity = get_identity()
            if requirement.allows(identity):
                return view(*args, **kwargs)
            return current_app.response_class.from_app(
                lambda environ, start_response: deny(environ, start_response, identity, requirement),
                request.environ,
            )

        return cast(F, wrapper)

    return decorate


def login_required(view: F) -> F:
    """Decorate a view so it runs only for a logged-in user."""
    return requires(LoggedIn())(view)


def login_url(next: str | None = None) -> str:
    """The middleware's login path (under the app's ``SCRIPT_NAME``), coming back to ``next``.

    ``next`` defaults to the current page; a value that is not a path on this
    site is replaced by the site's root. For views and templates (``{{ login_url() }}``).
    """
    middleware = _middleware()
    if middleware.login_path is None:
        raise RuntimeError("login_url(): the SSOMiddleware's login_path is off (login_path=None)")
    return _endpoint_url(middleware.login_path, next, default_current=True)


def logout_url(next: str | None = None) -> str:
    """The middleware's logout path (under the app's ``SCRIPT_NAME``); ``next``: where to land after."""
    middleware = _middleware()
    if middleware.logout_path is None:
        raise RuntimeError("logout_url(): the SSOMiddleware's logout_path is off (logout_path=None)")
    return _endpoint_url(middleware.logout_path, next, default_current=False)


def _endpoint_url(path: str, next: str | None, *, default_current: bool) -> str:
    environ = request.environ if has_request_context() else {}
    root = script_root(environ)
    if next is None:
        if not (default_current and environ):
            return root + path
        next = request_path(environ)
    target = safe_next(next, default=root + "/")
    return f"{root}{path}?next={quote(target, safe='')}"


def _middleware() -> SSOMiddleware:
    """The current app's middleware (its paths), wherever in its ``wsgi_app`` it sits."""
    middleware = find_middleware(current_app)
    if middleware is None:
        raise RuntimeError(_MISSING)
    return middleware


class SSO:
    """The Flask extension: wraps ``app.wsgi_app`` in :class:`~shibwsgi.SSOMiddleware`.

    Options come from ``app.config``'s ``SHIBWSGI_*`` entries (text as in
    uwsgi.ini, or Python values: ``SHIBWSGI_SESSION = MemoryStore()``), and the
    keyword ``options`` given here win. Wrapping ``wsgi_app`` rather than the app
    means ``flask run``, ``app.test_client()`` and any WSGI server serving ``app``
    all pass through the middleware. Templates get ``current_identity``,
    ``login_url`` and ``logout_url``. Application factories: ``sso = SSO()``, then
    ``sso.init_app(app)`` for each app.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        known = inspect.signature(SSOMiddleware).parameters
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(name, f"not an SSOMiddleware option{hint}")
        self.options = options
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<SSO options={sorted(self.options)!r}>"

    def init_app(self, app: Flask) -> SSOMiddleware:
        """Wrap ``app.wsgi_app`` once and register the template helpers; returns the middleware."""
        if EXTENSION_KEY in app.extensions:
            raise ConfigError("app", f"shibwsgi.flask.SSO is already set up on {app.name!r}")
        middleware = SSOMiddleware(app.wsgi_app, **{**config_options(app.config), **self.options})
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.extensions[EXTENSION_KEY] = self
        app.context_processor(_template_helpers)
        return middleware


def config_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options from a Flask config's ``SHIBWSGI_*`` entries.

    Text goes through the same converters as :meth:`SSOMiddleware.from_mapping`;
    any other value is taken as the option's Python value. An unknown
    ``SHIBWSGI_*`` name is a :class:`~shibwsgi.ConfigError`, as there.
    """
    options = parse_settings({key: value for key, value in config.items() if isinstance(value, str)})
    for key, value in config.items():
        if not key.startswith(PREFIX) or isinstance(value, str):
            continue
        name = key[len(PREFIX) :]
        if name not in SETTINGS:
            parse_settings({key: ""})  # raises the unknown-setting error, with its "did you mean"
        options[SETTINGS[name][0]] = value
    return options


def _template_helpers() -> dict[str, Any]:
    return {"current_identity": current_identity, "login_url": login_url, "logout_url": logout_url}
