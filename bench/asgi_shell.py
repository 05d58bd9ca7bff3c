"""Per-request cost of both shells on the same request: WSGI and ASGI, against their baselines.

``python -m bench.asgi_shell`` times, in-process, the oauth2-proxy header request of
:mod:`bench.environs` (ten groups, a trusted peer) through: a bare WSGI app, the WSGI
middleware, a bare ASGI app, uvicorn's ``ProxyHeadersMiddleware`` (the ASGI goal: no more
than it), the ASGI middleware, a Starlette hello world and the same behind the ASGI
middleware (the goal: at most 8 % of it). Steady state: the same user's bytes again.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import Any

from shibwsgi import SSOMiddleware
from shibwsgi.asgi import SSOMiddleware as ASGIMiddleware

from .environs import PROFILE_CASES
from .inprocess import bare_app, check_identity
from .timing import CHUNK, Case, Loop, measure, wsgi_loop

CASE = next(case for case in PROFILE_CASES if case.key == "oauth2-proxy")


async def bare_asgi(scope: Any, receive: Any, send: Any) -> None:
    """The smallest ASGI app: 200, ``ok``."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def starlette_hello() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/api/me", hello)])


def scope_of(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The ASGI scope of the same request (headers from the environ's ``HTTP_*`` keys)."""
    headers = [
        (key[5:].lower().replace("_", "-").encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    headers.append((b"x-forwarded-for", b"198.51.100.7"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": environ["PATH_INFO"],
        "raw_path": environ["PATH_INFO"].encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": (environ["REMOTE_ADDR"], 52144),
        "server": ("movies.example.org", 443),
    }


def asgi_loop(app: Any, scope: Mapping[str, Any], loop: asyncio.AbstractEventLoop) -> Loop:
    """Call ``app`` on fresh scopes (new header bytes, as a server parses them) in one event loop."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def batch(scopes: list[dict[str, Any]]) -> float:
        started = time.perf_counter()
        for each in scopes:
            await app(each, receive, send)
        return time.perf_counter() - started

    def fresh() -> dict[str, Any]:
        return {**scope, "headers": [(bytes(name), bytes(value)) for name, value in scope["headers"]]}

    def run(n: int) -> float:
        elapsed = 0.0
        while n > 0:
            scopes = [fresh() for _ in range(min(n, CHUNK))]
            n -= len(scopes)
            elapsed += loop.run_until_complete(batch(scopes))
        return elapsed

    return run


def cases(loop: asyncio.AbstractEventLoop) -> list[Case]:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    environ = CASE.environ()
    scope = scope_of(environ)
    wsgi = SSOMiddleware(bare_app, **CASE.options())
    check_identity(wsgi, environ, CASE.user)
    options = {key: value for key, value in CASE.options().items() if key != "channel"}
    hello = starlette_hello()
    return [
        Case("wsgi:bare", "WSGI bare app", wsgi_loop(bare_app, environ)),
        Case("wsgi:shibwsgi", "WSGI SSOMiddleware", wsgi_loop(wsgi, environ)),
        Case("asgi:bare", "ASGI bare app", asgi_loop(bare_asgi, scope, loop)),
        Case(
            "asgi:proxyheaders",
            "uvicorn ProxyHeadersMiddleware",
            asgi_loop(ProxyHeadersMiddleware(bare_asgi, trusted_hosts="127.0.0.1"), scope, loop),
        ),
        Case(
            "asgi:shibwsgi",
            "ASGI SSOMiddleware",
            asgi_loop(ASGIMiddleware(bare_asgi, **options), scope, loop),
        ),
        Case("asgi:starlette", "Starlette hello", asgi_loop(hello, scope, loop)),
        Case(
            "asgi:starlette+shibwsgi",
            "Starlette hello + ASGI SSOMiddleware",
            asgi_loop(ASGIMiddleware(hello, **options), scope, loop),
        ),
    ]


def main() -> int:
    loop = asyncio.new_event_loop()
    try:
        timings = measure(cases(loop), progress=lambda line: print(line, file=sys.stderr))
    finally:
        loop.close()
    median = {key: timing.stats.median for key, timing in timings.items()}
    for key, timing in timings.items():
        print(f"{timing.label:40} {median[key] * 1e6:8.2f} µs")
    wsgi = median["wsgi:shibwsgi"] - median["wsgi:bare"]
    asgi = median["asgi:shibwsgi"] - median["asgi:bare"]
    proxy = median["asgi:proxyheaders"] - median["asgi:bare"]
    share = (median["asgi:starlette+shibwsgi"] - median["asgi:starlette"]) / median["asgi:starlette"]
    print(f"WSGI middleware overhead:            {wsgi * 1e6:8.2f} µs")
    print(f"ASGI middleware overhead:            {asgi * 1e6:8.2f} µs")
    print(f"ProxyHeadersMiddleware overhead:     {proxy * 1e6:8.2f} µs")
    print(f"ASGI middleware share of Starlette:  {share * 100:8.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
