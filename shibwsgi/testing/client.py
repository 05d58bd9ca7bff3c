"""WebTest clients signed in through the front end an application's middleware expects.

The clients speak https (``wsgi.url_scheme``, ``HTTPS=on``): the session cookie
is ``Secure`` (``__Host-shibwsgi``), and a cookie jar never sends a Secure cookie
back over http, so over WebTest's default http the lazy (session) style would
silently stay anonymous. Needs WebTest (``pip install 'shibwsgi[testing]'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from webtest import TestApp

from ..middleware import SSOMiddleware
from ..profiles import get_profile
from .environ import environ_for

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["DEFAULT_USER", "HTTPS_ENVIRON", "find_middleware", "front_end_environ", "sso_test_app"]

#: Who :func:`sso_test_app` (and the ``sso_client`` fixture) signs in when no user is given.
DEFAULT_USER = "alice@example.org"
#: What a WSGI server behind TLS puts in the environ.
HTTPS_ENVIRON: Mapping[str, str] = {"wsgi.url_scheme": "https", "HTTPS": "on", "SERVER_PORT": "443"}

#: Attributes through which wrappers commonly reach the app they wrap (Werkzeug's
#: ProxyFix and the development front end: ``app``; Flask: ``wsgi_app``).
_WRAPPED = ("app", "wsgi_app", "application", "__wrapped__")
_MAX_DEPTH = 8


def find_middleware(app: object) -> SSOMiddleware | None:
    """The :class:`~shibwsgi.SSOMiddleware` in ``app``, or ``None``.

    Looks through wrappers that keep the wrapped app as ``app``, ``wsgi_app``,
    ``application`` or ``__wrapped__`` (a Flask app whose ``wsgi_app`` was
    wrapped, ProxyFix, :class:`~shibwsgi.testing.DevFrontEnd`), a few levels deep.
    """
    layer: list[object] = [app]
    seen: set[int] = set()
    for _ in range(_MAX_DEPTH):
        following: list[object] = []
        for candidate in layer:
            if isinstance(candidate, SSOMiddleware):
                return candidate
            if id(candidate) in seen:
                continue
            seen.add(id(candidate))
            following.extend(
                inner for name in _WRAPPED if (inner := getattr(candidate, name, None)) is not None
            )
        layer = following
    return None


def front_end_environ(
    middleware: SSOMiddleware | None,
    user: str,
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    **options: Any,
) -> dict[str, str]:
    """:func:`environ_for` the front end ``middleware`` is configured for.

    Its profile (with its encoding and prefix), channel and user sources are the
    defaults; ``options`` (``profile=``, ``channel=``, ... of :func:`environ_for`) win.
    In the headers channel ``REMOTE_ADDR`` is its first trusted proxy, or
    127.0.0.1 without a middleware (a ``proxy_secret`` is not known here: send
    its header with the request).
    """
    proxies: tuple[Any, ...] = ()
    if middleware is not None:
        profile = middleware.profile
        if middleware.parser.user_sources != profile.user:
            profile = replace(profile, user=middleware.parser.user_sources)
        options.setdefault("profile", profile)
        options.setdefault("channel", middleware.channel)
        proxies = middleware.gate.trusted_proxies
    spec = get_profile(options.pop("profile", "shibboleth"))
    environ = environ_for(spec, user, attributes, **options)
    if options.get("channel", spec.channel) == "headers":
        # The request comes from the proxy that sets the headers (by default one on this machine).
        environ["REMOTE_ADDR"] = str(proxies[0].network_address) if proxies else "127.0.0.1"
    return environ


def sso_test_app(
    app: WSGIApplication,
    user: str | None = DEFAULT_USER,
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    *,
    login: bool = False,
    **options: Any,
) -> TestApp:
    """A WebTest ``TestApp`` of ``app`` over https, signed in as ``user``.

    Whole-site style (default): every request carries the front end's variables
    for ``user``, built for the profile of the :class:`~shibwsgi.SSOMiddleware`
    found in ``app`` (see :func:`find_middleware`). ``login=True``, the lazy
    style: the client visits the middleware's login path once with those
    variables and then carries only the session cookie, as a browser does when
    only the login path is protected. ``user=None``: an anonymous client.
    ``options`` go to :func:`environ_for` (``profile=``, ``channel=``, ``encoding=``, ...).
    """
    if user is None:
        return TestApp(app, extra_environ=dict(HTTPS_ENVIRON))
    middleware = find_middleware(app)
    front = front_end_environ(middleware, user, attributes, **options)
    if not login:
        return TestApp(app, extra_environ={**HTTPS_ENVIRON, **front})
    if middleware is None or middleware.sessions is None or middleware.login_path is None:
        raise ValueError("login=True needs an SSOMiddleware in the app with a session store and a login path")
    client = TestApp(app, extra_environ=dict(HTTPS_ENVIRON))
    response = client.get(middleware.login_path, extra_environ=front, expect_errors=True)
    if response.status_int != 302 or not client.cookies:
        raise AssertionError(
            f"signing in at {middleware.login_path} gave {response.status} without a session cookie"
        )
    return client
