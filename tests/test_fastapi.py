"""FastAPI dependencies over the ASGI middleware, and the ASGI test clients that drive them."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket

from shibwsgi import ConfigError, Identity
from shibwsgi.asgi import SSOMiddleware
from shibwsgi.authz import AnyOf, HasAttribute, HasRole, LoggedIn, Public
from shibwsgi.fastapi import EXCEPTION_HANDLERS, CurrentIdentity, OptionalIdentity, require
from shibwsgi.testing import TestSigner, sso_asgi_client
from shibwsgi.testing.asgi import asgi_front_end

PROXY = "10.0.0.5"


def admins(identity: Identity) -> list[str]:
    return ["admin"] if identity.user == "root" else []


def api(*, handlers: bool = True) -> FastAPI:
    app = FastAPI(exception_handlers=EXCEPTION_HANDLERS if handlers else None)

    @app.get("/me")
    def me(identity: CurrentIdentity) -> dict[str, Any]:
        return {"user": identity.user, "groups": list(identity.attributes.get("groups", ()))}

    @app.get("/maybe")
    def maybe(identity: OptionalIdentity) -> dict[str, Any]:
        return {"user": identity.user if identity else None}

    @app.get("/admin", dependencies=[require(HasRole("admin"))])
    def admin() -> str:
        return "admin area"

    @app.get("/editors")
    def editors(identity: Annotated[Identity, require(HasAttribute("groups", "editors"))]) -> str:
        return identity.user

    @app.get("/either", dependencies=[require(AnyOf(HasRole("admin"), HasAttribute("groups", "ops")))])
    def either() -> str:
        return "either"

    @app.get("/open")
    def open_page(identity: Annotated[Identity | None, require(Public())]) -> dict[str, Any]:
        return {"user": identity.user if identity else None}

    @app.websocket("/ws")
    async def chat(websocket: WebSocket, identity: CurrentIdentity) -> None:
        await websocket.accept()
        await websocket.send_text(identity.user)
        await websocket.close()

    @app.websocket("/ws/admin")
    async def admin_chat(
        websocket: WebSocket, identity: Annotated[Identity, require(HasRole("admin"))]
    ) -> None:
        await websocket.accept()
        await websocket.send_text("admin " + identity.user)
        await websocket.close()

    app.add_middleware(
        SSOMiddleware,
        profile="oauth2-proxy",
        trusted_proxies=[PROXY],
        attributes={"groups": "groups"},
        roles=admins,
    )
    return app


def rules_body(status: int, message: str) -> dict[str, Any]:
    """What the middleware's rules answer an API client."""
    return {"error": message, "status": status}


ANONYMOUS = rules_body(401, "authentication required")


def get(
    app: Any,
    path: str,
    user: str | None = "alice",
    attributes: Any = None,
    accept: str = "application/json",
    **kwargs: Any,
) -> httpx.Response:
    """GET ``path`` through :func:`sso_asgi_client` signed in as ``user``."""

    async def run() -> httpx.Response:
        async with sso_asgi_client(app, user, attributes, **kwargs) as client:
            return await client.get(path, headers={"Accept": accept})

    return asyncio.run(run())


def handshake(
    app: Any,
    path: str,
    headers: list[tuple[bytes, bytes]],
    client: tuple[str, int] = (PROXY, 50000),
    *,
    http_response: bool = True,
) -> list[dict[str, Any]]:
    """Open a websocket on ``app``: the messages it sends."""
    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": client,
        "server": ("testserver", 443),
        "scheme": "wss",
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}} if http_response else {},
        "asgi": {"version": "3.0"},
    }
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("path", "user", "attributes", "status", "body"),
    [
        pytest.param(
            "/me", "alice", {"groups": ["staff"]}, 200, {"user": "alice", "groups": ["staff"]}, id="signed in"
        ),
        pytest.param("/me", None, None, 401, ANONYMOUS, id="anonymous gets the rules' 401"),
        pytest.param("/maybe", None, None, 200, {"user": None}, id="optional identity: anonymous"),
        pytest.param("/maybe", "bob", None, 200, {"user": "bob"}, id="optional identity: signed in"),
        pytest.param("/admin", "root", None, 200, "admin area", id="role held"),
        pytest.param(
            "/admin",
            "alice",
            None,
            403,
            rules_body(403, "access denied: requires role 'admin'"),
            id="role missing",
        ),
        pytest.param("/admin", None, None, 401, ANONYMOUS, id="role: anonymous gets 401, not 403"),
        pytest.param("/editors", "ed", {"groups": ["editors"]}, 200, "ed", id="attribute held"),
        pytest.param(
            "/editors",
            "alice",
            {"groups": ["staff"]},
            403,
            rules_body(403, "access denied: requires 'groups' = 'editors'"),
            id="attribute missing",
        ),
        pytest.param("/either", "olga", {"groups": ["ops"]}, 200, "either", id="any of: second held"),
        pytest.param("/open", None, None, 200, {"user": None}, id="public lets anonymous in"),
    ],
)
def test_dependencies_answer_as_the_rules(
    path: str, user: str | None, attributes: dict[str, Any] | None, status: int, body: Any
) -> None:
    response = get(api(), path, user, attributes)
    assert (response.status_code, response.json()) == (status, body)


def test_refusal_body_is_the_middleware_s_own_without_values() -> None:
    response = get(api(), "/editors", "alice", {"groups": ["secret-team"]})
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert "secret-team" not in response.text


def test_browser_refusal_is_the_html_page() -> None:
    response = get(api(), "/admin", accept="text/html")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "role &#x27;admin&#x27;" in response.text or "role 'admin'" in response.text


def test_without_handlers_the_status_is_kept() -> None:
    response = get(api(handlers=False), "/me", None)
    assert (response.status_code, response.json()) == (401, {"detail": "authentication required"})


@pytest.mark.parametrize("path", ["/me", "/maybe", "/admin"])
def test_dependency_without_middleware_raises_instead_of_anonymous(path: str) -> None:
    bare = FastAPI()

    @bare.get("/me")
    def me(identity: CurrentIdentity) -> str:
        return identity.user

    @bare.get("/maybe")
    def maybe(identity: OptionalIdentity) -> str:
        return str(identity)

    @bare.get("/admin", dependencies=[require(HasRole("admin"))])
    def admin() -> str:
        return "admin"

    with pytest.raises(RuntimeError, match="SSOMiddleware did not run"):
        get(bare, path, profile="oauth2-proxy")


def test_forged_identity_header_from_an_untrusted_peer_is_nobody() -> None:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=api(), client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            return await client.get("/me", headers={"X-Forwarded-User": "root", "Accept": "application/json"})

    response = asyncio.run(run())
    assert (response.status_code, response.json()) == (401, ANONYMOUS)


def test_websocket_sees_the_signed_in_user() -> None:
    app = api()
    peer, headers = asgi_front_end(app, "alice")
    sent = handshake(app, "/ws", headers, peer)
    assert [message["type"] for message in sent][:2] == ["websocket.accept", "websocket.send"]
    assert sent[1]["text"] == "alice"


@pytest.mark.parametrize(
    ("path", "user", "status"),
    [
        pytest.param("/ws", None, 401, id="anonymous handshake"),
        pytest.param("/ws/admin", "alice", 403, id="handshake without the role"),
    ],
)
def test_refused_websocket_handshake_is_an_http_answer(path: str, user: str | None, status: int) -> None:
    app = api()
    peer, headers = asgi_front_end(app, user) if user else ((PROXY, 1), [])
    sent = handshake(app, path, headers, peer)
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == status
    assert json.loads(sent[1]["body"])["status"] == status


def test_refused_websocket_closes_1008_without_the_http_response_extension() -> None:
    app = api()
    peer, headers = asgi_front_end(app, "alice")
    sent = handshake(app, "/ws/admin", headers, peer, http_response=False)
    assert [(message["type"], message.get("code")) for message in sent] == [("websocket.close", 1008)]


def test_forged_identity_on_the_websocket_upgrade_is_nobody() -> None:
    sent = handshake(api(), "/ws", [(b"x-forwarded-user", b"root")], ("203.0.113.9", 4000))
    assert sent[0]["status"] == 401


@pytest.mark.parametrize(
    "requirements",
    [pytest.param((), id="nothing required"), pytest.param(("admin",), id="a string, not a requirement")],
)
def test_require_refuses_a_silent_no_op(requirements: tuple[Any, ...]) -> None:
    with pytest.raises(ConfigError, match="require"):
        require(*requirements)


def test_several_requirements_must_all_hold() -> None:
    app = api()

    @app.get("/both", dependencies=[require(LoggedIn(), HasAttribute("groups", "ops"), HasRole("admin"))])
    def both() -> str:
        return "both"

    assert get(app, "/both", "olga", {"groups": ["ops"]}).status_code == 403
    assert get(app, "/both", "root", {"groups": ["ops"]}).status_code == 200


def test_async_client_signs_in_over_the_asgi_transport() -> None:
    async def run() -> tuple[int, Any, int]:
        async with sso_asgi_client(api(), "zoë", {"groups": ["staff"]}) as client:
            signed = await client.get("/me")
        async with sso_asgi_client(api(), None) as client:
            anonymous = await client.get("/me")
        return signed.status_code, signed.json(), anonymous.status_code

    assert asyncio.run(run()) == (200, {"user": "zoë", "groups": ["staff"]}, 401)


def test_signed_profile_client_carries_the_signer_s_token() -> None:
    signer = TestSigner(issuer="https://pomerium.example.org", audience="app.example.org")
    app = FastAPI()

    @app.get("/me")
    def me(identity: CurrentIdentity) -> str:
        return identity.user

    wrapped = SSOMiddleware(
        app, profile="pomerium", jwks=signer.jwks, issuer=signer.issuer, audience=signer.audience
    )
    assert get(wrapped, "/me", "alice@example.org", signer=signer).json() == "alice@example.org"


def test_server_variables_cannot_reach_an_asgi_client() -> None:
    with pytest.raises(ValueError, match="server variables"):
        asgi_front_end(FastAPI(), "alice", profile="shibboleth", channel="environ")
