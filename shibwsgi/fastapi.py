"""FastAPI dependencies over :class:`shibwsgi.asgi.SSOMiddleware`: the identity, or the rules' refusal.

``CurrentIdentity`` is the signed-in :class:`~shibwsgi.Identity` or a 401,
``OptionalIdentity`` the identity or ``None``, and ``require(*requirements)`` the
identity when it satisfies every requirement of :mod:`shibwsgi.authz`, else 401
(nobody signed in) or 403 (signed in, refused). They read what the middleware put in
the scope and never a header, so an app the middleware does not wrap raises
``RuntimeError`` instead of taking everybody for anonymous. HTTP and websocket
endpoints alike::

    app = FastAPI(exception_handlers=shibwsgi.fastapi.EXCEPTION_HANDLERS)
    app.add_middleware(SSOMiddleware, profile="oauth2-proxy", trusted_proxies=["10.0.0.5"])

    @app.get("/me")
    def me(identity: CurrentIdentity) -> dict[str, str]:
        return {"user": identity.user}

    @app.get("/admin", dependencies=[require(HasRole("admin"))])
    def admin() -> str: ...

With ``EXCEPTION_HANDLERS`` a refusal is the middleware's own answer (JSON
``{"error", "status"}`` or an HTML page, by ``Accept``; a websocket is refused at
the handshake: HTTP 403 when the server can send one, else close code 1008).
Without it the status is the same and the body FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from .asgi import ENVIRON_KEY, POLICY_VIOLATION
from .authz import AllOf, LoggedIn, Requirement, refusal
from .errors import ConfigError
from .identity import Identity

__all__ = [
    "EXCEPTION_HANDLERS",
    "CurrentIdentity",
    "OptionalIdentity",
    "Refused",
    "current_identity",
    "optional_identity",
    "refusal_handler",
    "require",
]

_MISSING = (
    "shibwsgi.asgi.SSOMiddleware did not run for this request (no 'shibwsgi.identity' in the scope): "
    "wrap the application with it (app.add_middleware(SSOMiddleware, ...)) before using "
    "shibwsgi.fastapi's dependencies"
)
_HTTP_RESPONSE = "websocket.http.response"


class Refused(HTTPException):
    """A dependency refused the request: 401 (nobody signed in) or 403, with the rules' answer."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status, message)
        #: The middleware's own answer: headers and body as the rules send them.
        self.answer_headers = headers
        self.body = body


def optional_identity(connection: HTTPConnection) -> Identity | None:
    """The identity the middleware established, ``None`` when anonymous."""
    try:
        identity = connection.scope[ENVIRON_KEY]
    except KeyError:
        raise RuntimeError(_MISSING) from None
    if identity is not None and not isinstance(identity, Identity):
        raise RuntimeError(f"{ENVIRON_KEY!r} in the scope is a {type(identity).__name__}, not an Identity")
    return identity


def current_identity(connection: HTTPConnection) -> Identity:
    """The signed-in identity; anonymous: 401."""
    identity = optional_identity(connection)
    if identity is None:
        raise _refused(connection, None, LoggedIn())
    return identity


def require(*requirements: Requirement) -> Any:
    """A dependency: the identity when it satisfies all ``requirements``, else 401 or 403.

    ``Depends`` value, for ``dependencies=[require(...)]`` or
    ``identity: Annotated[Identity | None, require(...)]`` (``None`` only when the
    requirements let anonymous users in, as :class:`~shibwsgi.authz.Public` does).
    """
    if not requirements:
        raise ConfigError("require", "name at least one requirement (LoggedIn() for any signed-in user)")
    for requirement in requirements:
        if not isinstance(requirement, Requirement):
            raise ConfigError(
                "require", f"expected shibwsgi.authz requirements, got {type(requirement).__name__}"
            )
    wanted = requirements[0] if len(requirements) == 1 else AllOf(*requirements)
    return Depends(_checker(wanted))


def _checker(requirement: Requirement) -> Callable[[HTTPConnection], Identity | None]:
    def check(connection: HTTPConnection) -> Identity | None:
        identity = optional_identity(connection)
        if not requirement.allows(identity):
            raise _refused(connection, identity, requirement)
        return identity

    check.__qualname__ = f"require({requirement.describe()})"
    return check


def _refused(connection: HTTPConnection, identity: Identity | None, requirement: Requirement) -> Refused:
    """The rules' answer for this request, as an exception FastAPI routes to :func:`refusal_handler`."""
    scope = connection.scope
    root, path = scope.get("root_path", ""), scope.get("path", "/")
    environ = {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "SCRIPT_NAME": root,
        # ASGI's path includes the root path, WSGI's PATH_INFO does not.
        "PATH_INFO": path[len(root) :] if root and path.startswith(root) else path,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "HTTP_ACCEPT": connection.headers.get("accept", ""),
    }
    # Without the middleware's login path the rules answer 401, never a redirect.
    answer = refusal(environ, identity, requirement)
    message = (
        "authentication required" if identity is None else f"access denied: requires {requirement.describe()}"
    )
    return Refused(answer.status, message, answer.headers, answer.body)


async def refusal_handler(connection: HTTPConnection, exc: Exception) -> Response | None:
    """Send a :class:`Refused` as the middleware would; a websocket is refused at the handshake."""
    if not isinstance(exc, Refused):  # pragma: no cover - registered for Refused only
        raise exc
    if isinstance(connection, WebSocket) and _HTTP_RESPONSE not in (connection.scope.get("extensions") or {}):
        await connection.close(code=POLICY_VIOLATION)
        return None
    response = Response(exc.body, status_code=exc.status_code)
    response.raw_headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in exc.answer_headers
    ]
    return response


#: ``FastAPI(exception_handlers=EXCEPTION_HANDLERS)``: refusals answered as the rules answer them.
EXCEPTION_HANDLERS: dict[Any, Callable[..., Any]] = {Refused: refusal_handler}

#: The signed-in identity, or 401.
CurrentIdentity = Annotated[Identity, Depends(current_identity)]
#: The identity, or ``None`` when anonymous.
OptionalIdentity = Annotated[Identity | None, Depends(optional_identity)]
