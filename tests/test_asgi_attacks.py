"""The WSGI gate's attack tables, run against the ASGI middleware.

The tables come from :mod:`tests.test_spoofing` and :mod:`tests.test_hardening`; here
every identity field is a header (ASGI has no other channel), so the server-variable
profiles run in the headers channel behind a trusted proxy, and the attacker is any
other peer, or the proxy's client slipping in lookalike spellings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shibwsgi.asgi import SSOMiddleware
from shibwsgi.authz import HasAttribute, Public, Rule
from shibwsgi.profiles import get_profile
from shibwsgi.sessions import MemoryStore, SQLiteStore
from shibwsgi.testing import environ_for
from tests.asgi_support import HOST, Recorder, acall, as_headers, call, scope_for
from tests.test_hardening import HEADERS, HOSTILE_HEADER_VALUES
from tests.test_spoofing import SPOOFED_HEADERS

PROXY = "10.0.0.5"
ATTACKER = "203.0.113.9"
KEY = "0123456789abcdef-hardening"


def gate(profile: str, **options: Any) -> SSOMiddleware:
    if get_profile(profile).variables_only:
        options.setdefault("channel", "headers")
    return SSOMiddleware(Recorder(), profile=profile, trusted_proxies=[PROXY], **options)


def spellings(name: str) -> list[bytes]:
    """Every way a client can spell a header name: case, dashes, underscores."""
    dashed = name.replace("_", "-")
    return sorted(
        {
            spelled.encode("latin-1")
            for spelled in (
                name.lower(),
                dashed.lower(),
                dashed.lower().replace("-", "_"),
                dashed.upper().replace("-", "_"),
            )
        }
    )


@pytest.mark.parametrize(("profile", "headers"), SPOOFED_HEADERS)
def test_client_header_from_another_peer_cannot_authenticate(profile: str, headers: dict[str, str]) -> None:
    reply = call(gate(profile), "/", list(headers.items()), client=(ATTACKER, 1))
    assert reply.identity is None
    assert reply.app_headers == HOST


@pytest.mark.parametrize(("profile", "headers"), SPOOFED_HEADERS)
def test_client_header_in_every_spelling_is_removed_before_the_app(
    profile: str, headers: dict[str, str]
) -> None:
    sent = [
        (spelled, value.encode("latin-1")) for name, value in headers.items() for spelled in spellings(name)
    ]
    for client in ((ATTACKER, 1), None):
        reply = call(gate(profile), "/", sent, client=client)
        assert reply.identity is None
        assert reply.app_headers == HOST


@pytest.mark.parametrize(("profile", "headers"), SPOOFED_HEADERS)
def test_underscore_spelling_through_the_proxy_cannot_add_to_a_real_login(
    profile: str, headers: dict[str, str]
) -> None:
    # The proxy sends the real user; the client's underscore copies ride along.
    real = as_headers(environ_for(profile, "alice", channel="headers"))
    forged = [
        (name.replace("-", "_").lower().encode(), value.encode("latin-1")) for name, value in headers.items()
    ]
    forged = [(name, value) for name, value in forged if b"_" in name]
    reply = call(gate(profile), "/", [*real, *forged], client=(PROXY, 1))
    assert reply.status == 200
    assert reply.identity is not None
    assert reply.identity.user == "alice"
    assert not any(name in {n for n, _ in forged} for name, _ in reply.app_headers)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param([("X-Forwarded-User", "jd"), ("X-Forwarded-User", "admin")], 400, id="two users"),
        pytest.param([("X-Forwarded-User", "jd"), ("x-forwarded-user", "jd")], 400, id="the same user twice"),
        pytest.param([("X-Forwarded-User", "jd,admin")], 400, id="a comma-joined user"),
        pytest.param([("X-Forwarded-User", "jd"), (b"X-FORWARDED-USER", b"admin")], 400, id="case variants"),
    ],
)
def test_duplicate_user_headers_are_refused_as_wsgi_refuses_a_joined_value(headers: Any, status: int) -> None:
    reply = call(gate("oauth2-proxy"), "/", headers, client=(PROXY, 1))
    assert reply.status == status
    assert reply.scope is None


def with_sessions(store: Any) -> SSOMiddleware:
    return gate(
        "oauth2-proxy",
        session=store,
        secret_key=KEY,
        auth_path="/_auth",
        whoami_path="/whoami",
        rules=[Rule("/admin", HasAttribute("groups", "x")), Rule("/", Public())],
    )


@pytest.fixture(params=["memory", "sqlite"])
def session_app(request: pytest.FixtureRequest, tmp_path: Any) -> SSOMiddleware:
    return with_sessions(MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.sqlite3"))


@pytest.mark.parametrize("cookie", HOSTILE_HEADER_VALUES)
@pytest.mark.parametrize("path", ["/", "/login", "/logout"])
def test_non_utf8_cookie_header_is_not_a_500(session_app: SSOMiddleware, cookie: str, path: str) -> None:
    reply = call(session_app, path, [(b"cookie", cookie.encode("latin-1"))], client=(ATTACKER, 1))
    assert reply.status in (200, 302, 401)


@pytest.mark.parametrize("key", [key for key in HEADERS if key.startswith("HTTP_")])
@pytest.mark.parametrize("path", ["/", "/login", "/logout", "/café", "/_auth", "/whoami"])
def test_every_byte_in_a_header_is_answered_without_a_500(
    session_app: SSOMiddleware, key: str, path: str
) -> None:
    name = key[5:].lower().replace("_", "-").encode()

    async def every_byte() -> None:
        for code in range(256):
            for value in (bytes([code]), b"a" + bytes([code]) + b"b=c", b"next=/" + bytes([code])):
                for peer, extra in (((ATTACKER, 1), []), ((PROXY, 1), [(b"x-forwarded-user", b"rob")])):
                    reply = await acall(session_app, scope_for(path, [(name, value), *extra], client=peer))
                    assert 0 < reply.status < 500, (key, code, path)

    asyncio.run(every_byte())


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_oversized_identity_header_is_refused_cleanly(size: int) -> None:
    app = gate("oauth2-proxy", attributes={"groups": "groups"})
    reply = call(
        app, "/", [("X-Forwarded-User", "jd"), ("X-Forwarded-Groups", "g" * size)], client=(PROXY, 1)
    )
    assert reply.status < 500
    if reply.status == 200:
        assert "groups" in reply.identity.dropped
