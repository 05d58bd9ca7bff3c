"""Test clients of an ASGI app, signed in through the front end its middleware expects.

ASGI has no server variables: the front end's identity arrives as request headers
from a trusted proxy. The clients send the headers :func:`environ_for` builds for
the profile of the :class:`shibwsgi.asgi.SSOMiddleware` found in the app, from the
address of its first trusted proxy (``scope["client"]``), over https (the session
cookie is ``Secure``). Signed profiles need ``signer=`` (a
:class:`~shibwsgi.testing.TestSigner` whose keys the middleware trusts).
:func:`sso_asgi_client` is an ``httpx.AsyncClient`` (httpx has no synchronous ASGI
transport, nor websockets: drive a websocket with :func:`asgi_front_end`'s peer and headers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..asgi import SSOMiddleware
from ..discovery import find_wrapped
from ..profiles import get_profile
from .client import DEFAULT_USER, front_end_environ

if TYPE_CHECKING:
    import httpx

__all__ = [
    "asgi_front_end",
    "find_asgi_middleware",
    "proxy_peer",
    "sso_asgi_client",
]

#: The origin the clients speak to: https, so the ``Secure`` session cookie comes back.
BASE_URL = "https://testserver"
#: The proxy's source port in ``scope["client"]`` (any port: trust is by address).
PROXY_PORT = 50000
#: Attributes through which ASGI wrappers reach the app they wrap (Starlette's built
#: middleware stack, Quart's ``asgi_app``).
_WRAPPED = ("middleware_stack", "app", "asgi_app", "application", "__wrapped__")
_MAX_DEPTH = 12

Headers = list[tuple[bytes, bytes]]


def find_asgi_middleware(app: object) -> SSOMiddleware | None:
    """The :class:`shibwsgi.asgi.SSOMiddleware` in ``app``, or ``None``.

    Follows wrappers a few levels deep; a Starlette or FastAPI app's middleware
    stack is built first, as its first request would.
    """
    return find_wrapped(app, SSOMiddleware, _WRAPPED, _MAX_DEPTH, opening=_build_middleware_stack)


def _build_middleware_stack(candidate: object) -> None:
    build = getattr(candidate, "build_middleware_stack", None)
    if callable(build) and getattr(candidate, "middleware_stack", None) is None:
        candidate.middleware_stack = build()  # type: ignore[attr-defined]


def asgi_front_end(
    app: object,
    user: str = DEFAULT_USER,
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    **options: Any,
) -> tuple[tuple[str, int], Headers]:
    """The peer (``scope["client"]``) and headers the front end sends for ``user``.

    ``options`` go to :func:`~shibwsgi.testing.environ_for` (``profile=``, ``signer=``, ...).
    A ``proxy_secret`` is not known here: send its header with the request.
    """
    middleware = find_asgi_middleware(app)
    if middleware is None and "profile" not in options:
        raise ValueError(
            f"no shibwsgi.asgi.SSOMiddleware found in {app!r}, so nothing would read the signed-in user: "
            "pass the wrapped application, or profile= to build a front end's headers for an app "
            "wrapped out of reach"
        )
    profile = middleware.profile if middleware is not None else get_profile(options["profile"])
    if not profile.signed:
        options.setdefault("channel", "headers")
    environ = front_end_environ(cast("Any", middleware), user, attributes, **options)
    environ.pop("REMOTE_ADDR", None)
    variables = sorted(key for key in environ if not key.startswith("HTTP_"))
    if variables:
        raise ValueError(
            f"{', '.join(variables)}: server variables, which an ASGI server cannot receive; "
            "use channel='headers' (the front end copies them into request headers)"
        )
    headers = [
        (key[5:].lower().replace("_", "-").encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
    ]
    return proxy_peer(middleware), headers


def proxy_peer(middleware: SSOMiddleware | None) -> tuple[str, int]:
    """``scope["client"]`` of the front end: the middleware's first trusted proxy, else 127.0.0.1."""
    proxies = middleware.gate.trusted_proxies if middleware is not None else ()
    return (str(proxies[0].network_address) if proxies else "127.0.0.1", PROXY_PORT)


def sso_asgi_client(
    app: Any,
    user: str | None = DEFAULT_USER,
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    *,
    profile: str | None = None,
    signer: Any = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on ``app`` over httpx's ASGI transport, signed in as ``user``.

    ``user=None``: anonymous (the request still comes from the trusted proxy).
    ``kwargs`` go to ``httpx.AsyncClient`` (``headers=``, ``follow_redirects=`` ...).
    """
    import httpx

    peer, headers = _front(app, user, attributes, profile, signer)
    transport = httpx.ASGITransport(app=app, client=peer)
    return httpx.AsyncClient(
        transport=transport,
        base_url=BASE_URL,
        headers=_merged(headers, kwargs.pop("headers", None)),
        **kwargs,
    )


def _front(
    app: Any,
    user: str | None,
    attributes: Mapping[str, str | Iterable[str]] | None,
    profile: str | None,
    signer: Any,
) -> tuple[tuple[str, int], Headers]:
    options: dict[str, Any] = {}
    if profile is not None:
        options["profile"] = profile
    if signer is not None:
        options["signer"] = signer
    if user is None:
        return proxy_peer(find_asgi_middleware(app)), []
    return asgi_front_end(app, user, attributes, **options)


def _merged(front: Headers, extra: Mapping[str, str] | None) -> Headers:
    """The front end's headers as bytes (values are latin-1 text of UTF-8 bytes), then ``extra``."""
    given = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in (extra or {}).items()]
    return [*front, *given]
