"""The ASGI middleware: the same core as the WSGI one, behind an ASGI interface.

ASGI has no server variables: every unsigned identity field is a request header a
client could send, so identity headers are believed only from ``trusted_proxies``
(the peer is ``scope["client"]``; no client is no trust) or carry their own
signature (signed profiles). The scope's headers become an environ-shaped set of
facts (``HTTP_*`` keys, duplicates joined with ``,`` as WSGI servers join them, so a
duplicated identity header is judged as the WSGI gate judges a comma-joined one);
the core decides; every header the trust gate removed, and every identity header
spelled with underscores (``x_forwarded_user``, never read), is gone from the scope
the app sees. ``http`` and ``websocket`` scopes are judged alike, a refused websocket
is refused at the handshake; ``lifespan`` passes through. Nothing blocking runs on
the event loop: with a session store, a roles hook or a token whose keys may need
fetching, the core runs in a worker thread (an ``async def`` roles hook is awaited on
the loop); the stateless request whose identity is parsed or already verified is
decided inline, as it does no I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import operator
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, MutableMapping
from itertools import repeat
from typing import Any, cast

from .authz import refusal
from .core import ENVIRON_KEY, Core
from .errors import ConfigError
from .flows import Header
from .groups import expand_groups, shell_signature
from .identity import Identity
from .profiles import get_profile
from .responses import Response
from .settings import parse_settings

__all__ = ["ENVIRON_KEY", "AnonymousUser", "SSOCredentials", "SSOMiddleware", "SSOUser"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The websocket close code of a refused handshake when the server cannot send an HTTP answer.
POLICY_VIOLATION = 1008
_HTTP_RESPONSE = "websocket.http.response"
#: Header names seen before, with their environ key (``""``: an identity header spelled
#: with underscores, dropped). Browsers and proxies send the same few dozen names.
_NAMES_LIMIT = 512
_JOINERS = {"HTTP_COOKIE": "; "}
_SPECIAL_KEYS = {"CONTENT_TYPE": "CONTENT_TYPE", "CONTENT_LENGTH": "CONTENT_LENGTH"}
_WSGI_SCHEMES = {"wss": "https", "ws": "http"}
_NAME, _VALUE = operator.itemgetter(0), operator.itemgetter(1)

_DEPLOYMENT = (
    "an ASGI server has no server variables: proxy to it from Apache with mod_proxy_http, "
    'copy each variable into a request header (RequestHeader set X-Remote-User "%{REMOTE_USER}s" ...) '
    "with the proxy secret, and set channel='headers', trusted_proxies=[Apache's address] and "
    "proxy_secret (docs/deployment.md, 'Apache in front of an ASGI server')"
)


class SSOUser:
    """``scope["user"]`` for a signed-in user, shaped like Starlette's ``BaseUser``."""

    __slots__ = ("sso_identity",)

    def __init__(self, identity: Identity) -> None:
        #: The full :class:`~shibwsgi.Identity` (also at ``scope["shibwsgi.identity"]``).
        self.sso_identity = identity

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        """The user id (Starlette shows it as the user's name)."""
        return self.sso_identity.user

    @property
    def identity(self) -> str:
        """The user id, Starlette's unique identifier of the user."""
        return self.sso_identity.user

    def __repr__(self) -> str:
        return f"SSOUser({self.sso_identity.user!r})"


class AnonymousUser:
    """``scope["user"]`` without an identity, shaped like Starlette's ``UnauthenticatedUser``."""

    __slots__ = ()
    is_authenticated = False
    display_name = ""
    identity = ""
    sso_identity = None

    def __repr__(self) -> str:
        return "AnonymousUser()"


class SSOCredentials:
    """``scope["auth"]``, shaped like Starlette's ``AuthCredentials``: ``"authenticated"`` and the roles."""

    __slots__ = ("scopes",)

    def __init__(self, scopes: Iterable[str] = ()) -> None:
        self.scopes = list(scopes)

    def __repr__(self) -> str:
        return f"SSOCredentials({self.scopes!r})"


ANONYMOUS = AnonymousUser()


class SSOMiddleware(Core):
    """Judge every ``http`` and ``websocket`` request before ``app`` sees it.

    ``options`` are those of the WSGI :class:`shibwsgi.SSOMiddleware`, flat or grouped
    (:mod:`shibwsgi.groups`). Unsigned profiles read request headers (``channel="headers"``,
    the default here for header front ends) and need ``trusted_proxies``; profiles whose
    front end passes server variables only (shibboleth, openidc, mellon, adfs, remote-user)
    need ``channel="headers"`` and a web server that copies them into headers.
    """

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        if not callable(app):
            raise ConfigError("app", f"expected an ASGI application, got {type(app).__name__}")
        options = expand_groups(options)
        profile = get_profile(options.get("profile", "shibboleth"))
        channel = options.get("channel")
        if channel == "environ" or (channel is None and profile.variables_only and not profile.signed):
            raise ConfigError(
                "channel", f"profile {profile.name!r} passes identity as server variables: {_DEPLOYMENT}"
            )
        if channel is None and not profile.signed:
            options["channel"] = "headers"
        hook = options.get("roles")
        self._async_roles = inspect.iscoroutinefunction(hook)
        self._loop: asyncio.AbstractEventLoop | None = None
        if hook is not None and self._async_roles:
            options["roles"] = self._on_loop(hook)
        super().__init__(**options)
        self.app = app
        # Stateless and without a hook, only a key fetch could wait (see _settled).
        self._stateless = self.sessions is None and self.roles is None
        self._names: dict[bytes, str] = {}

    @classmethod
    def from_mapping(cls, app: ASGIApp, settings: Mapping[str, str], **overrides: Any) -> SSOMiddleware:
        """Build from string settings named ``SHIBWSGI_*`` (other keys are ignored); ``overrides`` win."""
        return cls(app, **{**parse_settings(settings), **overrides})

    @classmethod
    def from_env(cls, app: ASGIApp, **overrides: Any) -> SSOMiddleware:
        """Build from the process environment's ``SHIBWSGI_*`` variables."""
        return cls.from_mapping(app, os.environ, **overrides)

    def __repr__(self) -> str:
        store = type(self.sessions.store).__name__ if self.sessions else None
        return (
            f"<asgi.SSOMiddleware profile={self.profile.name!r} channel={self.channel!r} "
            f"session={store} app={self.app!r}>"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)  # lifespan and anything newer: not ours to judge
            return
        environ, keys, unbounded = self._facts(scope)
        if self._stateless and self.source.settled(environ):
            identity, headers, answer = self.decide(environ)
        else:
            if self._async_roles:
                self._loop = asyncio.get_running_loop()
            identity, headers, answer = await asyncio.to_thread(self.decide, environ)
        if answer is None and unbounded is not None:
            answer = self._judged(environ, unbounded, identity, headers)
        if answer is not None:
            await (_answer(answer, send) if kind == "http" else _refuse_handshake(answer, scope, send))
            return
        scope = dict(scope)
        scope["headers"] = _kept(scope["headers"], keys, environ)
        scope[ENVIRON_KEY] = identity
        if identity is None:
            scope["user"], scope["auth"] = ANONYMOUS, SSOCredentials()
        else:
            scope["user"] = SSOUser(identity)
            scope["auth"] = SSOCredentials(("authenticated", *identity.roles))
        await self.app(scope, receive, _adding(send, headers) if headers else send)

    def _facts(self, scope: Scope) -> tuple[dict[str, Any], list[str], str | None]:
        """The request as the core reads it (a WSGI-shaped environ), each header's key, and the
        path's other reading when it starts with ``root_path`` but not at a segment boundary."""
        root = scope.get("root_path", "")
        path = scope.get("path", "/")
        unbounded = None
        if root and path.startswith(root):
            rest = path[len(root) :]
            if not rest or rest[0] == "/":
                path = rest
            else:
                # "/admin" under root_path "/a" (hypercorn does not prefix the path with it):
                # Starlette routes the whole path, Quart what follows "/a"; both are judged.
                unbounded = _wsgi_string(rest)
        client, server = scope.get("client"), scope.get("server")
        scheme = scope.get("scheme", "http")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.get("method", "GET"),
            # WSGI strings: the request's bytes as latin-1 (PEP 3333), as the rules read them.
            "SCRIPT_NAME": _wsgi_string(root) if root else "",
            "PATH_INFO": _wsgi_string(path),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "REMOTE_ADDR": str(client[0]) if client else "",
            "SERVER_NAME": str(server[0]) if server else "",
            "SERVER_PORT": str(server[1]) if server and server[1] is not None else "",
            "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
            "wsgi.url_scheme": _WSGI_SCHEMES.get(scheme, scheme),
        }
        headers = scope["headers"]
        names = list(map(_NAME, headers))
        known = list(map(self._names.get, names))
        keys = (
            [self._key(name) if key is None else key for name, key in zip(names, known, strict=True)]
            if None in known
            else cast("list[str]", known)
        )
        if "" not in keys and len(set(keys)) == len(keys):
            # The usual request: known names, none twice. map/zip keep the loop in C.
            environ.update(
                zip(keys, map(bytes.decode, map(_VALUE, headers), repeat("latin-1")), strict=False)
            )
            return environ, keys, unbounded
        for key, (_, value) in zip(keys, headers, strict=True):
            if not key:
                continue  # an identity header spelled with underscores: never read
            if key in environ:
                environ[key] = environ[key] + _JOINERS.get(key, ",") + value.decode("latin-1")
            else:
                environ[key] = value.decode("latin-1")
        return environ, keys, unbounded

    def _judged(
        self, environ: dict[str, Any], path: str, identity: Identity | None, headers: list[Header]
    ) -> Response | None:
        """The refusal, if any, of the rules for ``path``: the request's other reading."""
        requirement = (
            self.rules.requirement_for(path, environ["REQUEST_METHOD"]) if self.rules.rules else None
        )
        if requirement is None or requirement.allows(identity):
            return None
        return refusal(environ, identity, requirement).adding(headers)

    def _key(self, name: bytes) -> str:
        """The environ key of header ``name``; ``""`` for an identity header spelled with ``_``."""
        text = name.decode("latin-1")
        upper = text.upper().replace("-", "_")
        key = _SPECIAL_KEYS.get(upper) or "HTTP_" + upper
        if "_" in text and self.gate.is_identity_key(key):
            key = ""  # nginx and Apache drop such names: nothing honest sends one
        if len(self._names) < _NAMES_LIMIT:
            self._names[name] = key
        return key

    def _on_loop(self, hook: Callable[[Identity], Coroutine[Any, Any, Any]]) -> Callable[[Identity], Any]:
        """An ``async def`` roles hook as the core calls it: from a worker thread, run on the loop."""

        def call(identity: Identity) -> Any:
            if self._loop is None:  # pragma: no cover - set before any request reaches the core
                raise RuntimeError("no event loop to run the roles hook on")
            return asyncio.run_coroutine_threadsafe(hook(identity), self._loop).result()

        call.__qualname__ = getattr(hook, "__qualname__", "roles")
        call.__module__ = getattr(hook, "__module__", __name__)
        return call


#: What ``inspect.signature`` shows: every option by name (the Flask extension checks by it).
SSOMiddleware.__signature__ = shell_signature(Core.__init__)  # type: ignore[attr-defined]


def _wsgi_string(text: str) -> str:
    """ASGI text as the WSGI string of its bytes (PEP 3333), as the rules read paths.

    A lone surrogate no server decodes bytes to (not U+DC80-U+DCFF) keeps its own
    UTF-8-style bytes rather than failing the request: judged, never a 500.
    """
    try:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _kept(
    headers: list[tuple[bytes, bytes]], keys: list[str], environ: Mapping[str, Any]
) -> list[tuple[bytes, bytes]]:
    """``headers`` without those the gate removed (or never read): the app sees what the gate kept."""
    for key in keys:
        if key not in environ:  # "" (never read) is no environ key either
            return [header for header, key in zip(headers, keys, strict=True) if key in environ]
    return headers


def _encoded(headers: Iterable[Header]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _adding(send: Send, headers: list[Header]) -> Send:
    """``send`` that appends ``headers`` (Set-Cookie) to the app's response start or websocket accept."""
    extra = _encoded(headers)
    starts = ("http.response.start", "websocket.accept", "websocket.http.response.start")

    async def send_with_headers(message: Message) -> None:
        if message["type"] in starts:
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_headers


async def _answer(answer: Response, send: Send) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": _encoded(answer.headers)})
    await send({"type": "http.response.body", "body": answer.body})


async def _refuse_handshake(answer: Response, scope: Scope, send: Send) -> None:
    """Refuse a websocket before the app sees it: the HTTP answer when the server can send one."""
    if _HTTP_RESPONSE in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": answer.status,
                "headers": _encoded(answer.headers),
            }
        )
        await send({"type": "websocket.http.response.body", "body": answer.body})
    else:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
