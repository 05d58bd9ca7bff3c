"""Settings-only Django mode: :class:`~shibwsgi.SSOMiddleware` as a Django middleware.

Listed in ``MIDDLEWARE`` and configured by ``SHIBWSGI = {...}`` in settings.py, the
core middleware runs on ``request.META`` (the WSGI environ under WSGI), so
``runserver``, Django's test ``Client`` and ASGI see the identity without a wrapped
``wsgi.py``. A thin bridge: the core scrubs ``request.META`` and publishes the
identity there; its own answers (login, logout, refusals) become ``HttpResponse``\\ s
and the headers it adds to the app's answer (session cookies) reach Django's.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse

from . import settings as string_settings
from .errors import ConfigError
from .middleware import ENVIRON_KEY
from .middleware import SSOMiddleware as CoreMiddleware
from .trust import CHANNELS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["SETTING", "SSOMiddleware", "core_options"]

#: The Django setting holding the middleware's options.
SETTING = "SHIBWSGI"
#: Where the bridge hands the request to the inner WSGI app (removed before the view runs).
_REQUEST_KEY = "shibwsgi.django.request"
_SERVER_CHANNEL = CHANNELS[0]
#: Options whose converters only split or strip text the core takes as it is.
_VERBATIM = (string_settings.text, string_settings.words)

_OPTIONS = frozenset(inspect.signature(CoreMiddleware).parameters) - {"app"}
_CONVERTERS = {keyword: convert for keyword, convert in string_settings.SETTINGS.values()}

Header = tuple[str, str]


def core_options(value: object) -> dict[str, Any]:
    """The core middleware's keyword options from the ``SHIBWSGI`` setting's value.

    Keys are :class:`~shibwsgi.SSOMiddleware`'s keyword names. Text given for an
    option that takes another type (``"session": "redis://..."``, ``"idle_timeout":
    "1h"``, ``"roles": "module:function"``) is converted as in uwsgi.ini.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(SETTING, f"expected a dict of SSOMiddleware options, not {type(value).__name__}")
    options: dict[str, Any] = {}
    for name, given in value.items():
        if name not in _OPTIONS:
            close = difflib.get_close_matches(str(name), _OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{SETTING}[{name!r}]", f"not an SSOMiddleware option{hint}")
        convert = _CONVERTERS.get(name)
        if isinstance(given, str) and convert is not None and convert not in _VERBATIM:
            try:
                given = convert(given)
            except (ValueError, ConfigError) as exc:
                raise ConfigError(f"{SETTING}[{name!r}]", str(exc)) from None
        options[name] = given
    return options


def build_core(app: Callable[..., Iterable[bytes]]) -> CoreMiddleware:
    """The core middleware around ``app``, from the ``SHIBWSGI`` setting."""
    if not hasattr(settings, SETTING):
        raise ConfigError(
            SETTING,
            "shibwsgi.django.SSOMiddleware is in MIDDLEWARE but settings.py has no SHIBWSGI = {...} "
            '(for instance SHIBWSGI = {"profile": "shibboleth"})',
        )
    return CoreMiddleware(app, **core_options(getattr(settings, SETTING)))


class SSOMiddleware:
    """shibwsgi's trust gate, parser, sessions, endpoints and rules, as a Django middleware.

    Place it before ``SessionMiddleware``'s users: before
    ``AuthenticationMiddleware`` and :class:`~shibwsgi.django.IdentityMiddleware`
    (first in ``MIDDLEWARE`` is simplest, so no other middleware reads the headers it
    scrubs). Under ASGI, ``request.META`` holds request headers only: header and
    signed profiles work there, a server-variable profile is refused.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if get_response is None:
            raise ValueError("get_response must be provided.")
        self.get_response = get_response
        self.core = build_core(self._inner)
        from .django_checks import check_middleware

        # After the auth middlewares, it would read the identity once they had logged everyone out.
        misplaced = [str(message) for message in check_middleware() if message.id == "shibwsgi.E003"]
        if misplaced:
            raise ImproperlyConfigured(misplaced[0])

    def __repr__(self) -> str:
        return f"<shibwsgi.django.SSOMiddleware core={self.core!r}>"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        environ = request.META
        if ENVIRON_KEY in environ:
            raise ImproperlyConfigured(
                "shibwsgi ran twice: wsgi.py wraps the application in SSOMiddleware and "
                "shibwsgi.django.SSOMiddleware is in MIDDLEWARE; keep one of them"
            )
        if isinstance(request, ASGIRequest):
            self._check_asgi(environ, request)
        captured: list[tuple[str, list[Header]]] = []

        def start_response(
            status: str, headers: list[Header], exc_info: Any = None
        ) -> Callable[[bytes], Any]:
            captured.append((status, headers))
            return _no_write

        environ[_REQUEST_KEY] = request
        try:
            body = self.core(environ, start_response)
            try:
                content = b"".join(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            response = environ.pop(_REQUEST_KEY + ".response", None)
        finally:
            environ.pop(_REQUEST_KEY, None)
        status, headers = captured[-1]
        if response is None:
            # The core answered itself: an endpoint, a rule's refusal, a 4xx or a 503.
            code, _, reason = status.partition(" ")
            response = HttpResponse(content, status=int(code), reason=reason or None)
            del response.headers["Content-Type"]
        _add_headers(response, headers)
        return response

    def _inner(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI app the core wraps: Django's own handling of the request."""
        request: HttpRequest = environ.pop(_REQUEST_KEY)
        # request.headers may have been read (and cached) before the gate scrubbed META.
        request.__dict__.pop("headers", None)
        response = self.get_response(request)
        environ[_REQUEST_KEY + ".response"] = response
        # No headers of its own: whatever the core adds to this call is the core's (cookies).
        start_response(f"{response.status_code} {response.reason_phrase}", [])
        return []

    def _check_asgi(self, environ: WSGIEnvironment, request: HttpRequest) -> None:
        if self.core.channel == _SERVER_CHANNEL:
            raise ImproperlyConfigured(
                f"shibwsgi.django.SSOMiddleware: the {self.core.profile.name!r} profile reads server "
                "variables (the environ channel), which an ASGI server never passes: every request "
                "would be anonymous. Serve the project over WSGI (uWSGI, mod_wsgi) to read them, "
                'or have the front end pass request headers (SHIBWSGI = {..., "channel": "headers", '
                '"trusted_proxies": [...]}) or use a signed profile'
            )
        environ.setdefault("wsgi.url_scheme", request.scheme)


def _no_write(data: bytes) -> None:
    raise RuntimeError("shibwsgi.django.SSOMiddleware: the write() callable is not supported")


def _add_headers(response: HttpResponse, headers: Iterable[Header]) -> None:
    """Copy WSGI headers onto ``response``; each ``Set-Cookie`` becomes one of its cookies."""
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(value)
            for key, morsel in cookie.items():
                response.cookies[key] = morsel
        elif name in response.headers:
            # A repeated header is a list (RFC 9110): keep every value rather than the last.
            response.headers[name] = f"{response.headers[name]}, {value}"
        else:
            response.headers[name] = value
