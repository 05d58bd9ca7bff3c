"""Starlette behind the ASGI middleware: request.user, request.auth and requires() work unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from shibwsgi import Identity, ProxyTrust, Roles
from shibwsgi.asgi import SSOMiddleware
from tests.asgi_support import scope_for

PROXY = "10.0.0.5"


async def home(request: Request) -> JSONResponse:
    identity = request.scope["shibwsgi.identity"]
    return JSONResponse(
        {
            "authenticated": request.user.is_authenticated,
            "display_name": request.user.display_name,
            "scopes": request.auth.scopes,
            "user": identity.user if identity else None,
        }
    )


@requires("authenticated")
async def private(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.user.identity}")


@requires("editor")
async def edit(request: Request) -> PlainTextResponse:
    return PlainTextResponse("edited")


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.user.display_name if websocket.user.is_authenticated else "anonymous")
    await websocket.close()


def editors(identity: Identity) -> list[str]:
    return ["editor"] if identity.user == "ed" else []


def site() -> Starlette:
    return Starlette(
        routes=[
            Route("/", home),
            Route("/private", private),
            Route("/edit", edit),
            WebSocketRoute("/chat", chat),
        ],
        middleware=[
            Middleware(
                SSOMiddleware,
                profile="oauth2-proxy",
                proxy_trust=ProxyTrust([PROXY]),
                roles=Roles(editors),
            )
        ],
    )


def get(path: str, headers: dict[str, str], peer: str = PROXY) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=site(), client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://app.example.org") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(run())


def test_request_user_and_auth_carry_the_identity_and_roles() -> None:
    body = get("/", {"X-Forwarded-User": "ed"}).json()
    assert body == {
        "authenticated": True,
        "display_name": "ed",
        "scopes": ["authenticated", "editor"],
        "user": "ed",
    }


def test_anonymous_request_user_is_unauthenticated() -> None:
    body = get("/", {}).json()
    assert body == {"authenticated": False, "display_name": "", "scopes": [], "user": None}


@pytest.mark.parametrize(
    ("path", "user", "status"),
    [
        pytest.param("/private", "jd", 200, id="requires authenticated, signed in"),
        pytest.param("/private", None, 403, id="requires authenticated, anonymous"),
        pytest.param("/edit", "ed", 200, id="requires a role the hook gives"),
        pytest.param("/edit", "jd", 403, id="requires a role the user lacks"),
    ],
)
def test_starlette_requires_works_unchanged(path: str, user: str | None, status: int) -> None:
    headers = {"X-Forwarded-User": user} if user else {}
    assert get(path, headers).status_code == status


def test_forged_header_sent_straight_to_the_app_identifies_nobody() -> None:
    response = get("/private", {"X-Forwarded-User": "ed"}, peer="203.0.113.9")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("peer", "expected"),
    [pytest.param(PROXY, "jd", id="from the proxy"), pytest.param("203.0.113.9", "anonymous", id="forged")],
)
def test_starlette_websocket_sees_the_user(peer: str, expected: str) -> None:
    scope = scope_for("/chat", [("X-Forwarded-User", "jd")], client=(peer, 1), kind="websocket")
    sent: list[Any] = []
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(site()(scope, receive, send))
    assert sent[0]["type"] == "websocket.accept"
    assert sent[1]["text"] == expected


def readme_quick_start() -> dict[str, Any]:
    """The README's Starlette quick start, run as written."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Use it with any ASGI app (Starlette)", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    ("path", "peer", "user", "status", "body"),
    [
        pytest.param("/", PROXY, "ada", 200, "hello ada ['ada@example.org']", id="signed in"),
        pytest.param("/edit", PROXY, "ada", 200, "edited", id="role from the async hook"),
        pytest.param("/edit", PROXY, "bob", 403, None, id="no role"),
        pytest.param("/", "203.0.113.9", "ada", 403, None, id="forged from another peer"),
    ],
)
def test_readme_starlette_quick_start_runs(
    path: str, peer: str, user: str, status: int, body: str | None
) -> None:
    app = readme_quick_start()["app"]

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="https://app.example.org") as client:
            headers = {"X-Forwarded-User": user, "X-Forwarded-Email": f"{user}@example.org"}
            return await client.get(path, headers=headers)

    response = asyncio.run(run())
    assert response.status_code == status
    if body is not None:
        assert response.text == body
