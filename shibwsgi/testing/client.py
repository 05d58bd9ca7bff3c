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

from ..discovery import find_middleware
from ..middleware import SSOMiddleware
from ..profiles import get_profile
from ._webtest import TestApp
from .environ import environ_for

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["DEFAULT_USER", "HTTPS_ENVIRON", "find_middleware", "front_end_environ", "sso_test_app"]

#: Who :func:`sso_test_app` (and the ``sso_client`` fixture) signs in when no user is given.
DEFAULT_USER = "alice@example.org"
#: What a WSGI server behind TLS puts in the environ.
HTTPS_ENVIRON: Mapping[str, str] = {"wsgi.url_scheme": "https", "HTTPS": "on", "SERVER_PORT": "443"}


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
        attributes = source_names(middleware, attributes)
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


def source_names(
    middleware: SSOMiddleware, attributes: Mapping[str, str | Iterable[str]] | None
) -> dict[str, str | Iterable[str]]:
    """``attributes`` with the app's names (``groups``) renamed to the front end's (``isMemberOf``).

    The front end sends its own names; a test that writes the name the app reads
    would otherwise sign in a user without that attribute. A name given both ways
    is refused.
    """
    mapped = middleware.parser.attributes
    sources = {*middleware.parser.user_sources, *(spec.source for spec in mapped.values())}
    result: dict[str, str | Iterable[str]] = {}
    given: dict[str, str] = {}
    for name, value in (attributes or {}).items():
        source = name if name in sources or name not in mapped else mapped[name].source
        if source in given:
            raise ValueError(
                f"the front end's attribute {source!r} is given twice ({given[source]!r} and {name!r}): "
                f"give it once, as {source!r}"
            )
        result[source], given[source] = value, name
    return result


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
    if middleware is None and "profile" not in options:
        raise ValueError(
            f"no SSOMiddleware found in {app!r}, so nothing would read the signed-in user: "
            "pass the wrapped application (SSOMiddleware(app, ...); for Flask, shibwsgi.flask.SSO(app)), "
            "or profile= to build a front end's variables for an app wrapped out of reach"
        )
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
