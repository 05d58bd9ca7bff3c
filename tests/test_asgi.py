"""The ASGI middleware: the same judgement as the WSGI one, over ASGI scopes (raw apps)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from shibwsgi import Attribute, ConfigError, Identity, Roles, SessionError, Sessions
from shibwsgi.asgi import POLICY_VIOLATION, SSOMiddleware
from shibwsgi.authz import HasRole, LoggedIn, Public, Rule
from shibwsgi.sessions import MemoryStore, SQLiteStore
from shibwsgi.testing import TestSigner, environ_for
from tests.asgi_support import Recorder, acall, as_headers, call, scope_for

PROXY = "10.0.0.5"
CLIENT = "203.0.113.9"
SECRET = "s3cret-shared-with-the-proxy"
KEY = "k" * 32


def middleware(**options: Any) -> SSOMiddleware:
    options.setdefault("profile", "oauth2-proxy")
    options.setdefault("trusted_proxies", [PROXY])
    return SSOMiddleware(Recorder(), **options)


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["shibboleth", "openidc", "mellon", "adfs", "remote-user"])
def test_server_variable_profile_is_a_config_error_saying_how_to_proxy(profile: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(Recorder(), profile=profile)
    assert info.value.setting == "channel"
    assert "mod_proxy_http" in str(info.value)
    assert "proxy_secret" in str(info.value)


def test_environ_channel_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(Recorder(), profile="oauth2-proxy", channel="environ", trusted_proxies=[PROXY])
    assert info.value.setting == "channel"


@pytest.mark.parametrize("profile", ["oauth2-proxy", "authelia", "vouch", "kong-oidc"])
def test_header_profile_without_trusted_proxies_is_a_config_error(profile: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(Recorder(), profile=profile)
    assert info.value.setting == "trusted_proxies"


def test_server_variable_profile_works_with_the_headers_channel() -> None:
    app = middleware(profile="shibboleth", channel="headers", proxy_secret=SECRET)
    environ = environ_for("shibboleth", "alice@example.org", channel="headers")
    reply = call(app, "/", [*as_headers(environ), ("X-Shibwsgi-Proxy-Secret", SECRET)], client=(PROXY, 1))
    assert reply.identity.user == "alice@example.org"
    assert all(name != b"x-shibwsgi-proxy-secret" for name, _ in reply.app_headers)


def test_app_must_be_callable() -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware("not an app", profile="oauth2-proxy", trusted_proxies=[PROXY])  # type: ignore[arg-type]
    assert info.value.setting == "app"


def test_from_mapping_reads_the_same_settings_as_wsgi() -> None:
    app = SSOMiddleware.from_mapping(
        Recorder(), {"SHIBWSGI_PROFILE": "authelia", "SHIBWSGI_TRUSTED_PROXIES": PROXY, "OTHER": "x"}
    )
    reply = call(app, "/", [("Remote-User", "jd")], client=(PROXY, 1))
    assert reply.identity.user == "jd"


# -- the trust boundary -----------------------------------------------------------------


def test_trusted_proxy_identity_reaches_the_app() -> None:
    reply = call(
        middleware(), "/", [("X-Forwarded-User", "jd"), ("X-Forwarded-Email", "jd@x")], client=(PROXY, 1)
    )
    assert reply.status == 200
    assert reply.identity.user == "jd"
    assert reply.scope is not None
    assert reply.scope["user"].is_authenticated
    assert reply.scope["user"].display_name == "jd"
    assert reply.scope["auth"].scopes == ["authenticated"]


@pytest.mark.parametrize(
    "client",
    [
        pytest.param((CLIENT, 1), id="another peer"),
        pytest.param(None, id="no client in the scope"),
        pytest.param(("not-an-address", 1), id="a peer that is no address"),
    ],
)
def test_forged_identity_from_an_untrusted_peer_is_anonymous_and_removed(client: Any) -> None:
    reply = call(middleware(), "/", [("X-Forwarded-User", "admin"), ("Remote-User", "admin")], client=client)
    assert reply.identity is None
    assert reply.scope is not None
    assert not reply.scope["user"].is_authenticated
    assert reply.scope["auth"].scopes == []
    assert reply.app_headers == [(b"host", b"app.example.org")]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(b"x_forwarded_user", id="underscores"),
        pytest.param(b"x-forwarded_user", id="mixed"),
        pytest.param(b"X_FORWARDED_USER", id="upper case underscores"),
        pytest.param(b"remote_user", id="common header with underscore"),
        pytest.param(b"x_auth_request_user", id="owned prefix with underscores"),
    ],
)
def test_identity_header_spelled_with_underscores_is_never_read_nor_passed(name: bytes) -> None:
    reply = call(middleware(), "/", [(name, b"admin")], client=(PROXY, 1))
    assert reply.identity is None
    assert reply.app_headers == [(b"host", b"app.example.org")]


def test_identity_header_with_underscores_does_not_override_the_proxy() -> None:
    reply = call(
        middleware(), "/", [("X-Forwarded-User", "jd"), (b"x_forwarded_user", b"admin")], client=(PROXY, 1)
    )
    assert reply.identity.user == "jd"
    assert (b"x_forwarded_user", b"admin") not in reply.app_headers


def test_duplicate_user_headers_are_joined_like_wsgi_and_refused() -> None:
    # WSGI servers join repeated headers with ","; the gate refuses a user that is a list.
    reply = call(
        middleware(), "/", [("X-Forwarded-User", "jd"), ("X-Forwarded-User", "admin")], client=(PROXY, 1)
    )
    assert reply.status == 400
    assert reply.scope is None


def test_duplicate_multi_valued_headers_join_into_one_list() -> None:
    app = middleware(attributes={"groups": Attribute("groups", multi=True)})
    headers = [("X-Forwarded-User", "jd"), ("X-Forwarded-Groups", "a"), ("X-Forwarded-Groups", "b")]
    reply = call(app, "/", headers, client=(PROXY, 1))
    assert reply.identity.attributes["groups"] == ("a", "b")


def test_duplicate_identity_headers_from_an_untrusted_peer_are_all_removed() -> None:
    headers = [("X-Forwarded-User", "a"), ("X-Forwarded-User", "b"), ("Accept", "text/html")]
    reply = call(middleware(), "/", headers, client=(CLIENT, 1))
    assert reply.identity is None
    assert reply.app_headers == [(b"host", b"app.example.org"), (b"accept", b"text/html")]


@pytest.mark.parametrize(
    ("secret", "authenticated"),
    [
        pytest.param(SECRET, True, id="right secret"),
        pytest.param("wrong-secret-wrong-secret", False, id="wrong secret"),
        pytest.param(None, False, id="no secret"),
    ],
)
def test_proxy_secret_is_required_and_never_reaches_the_app(secret: str | None, authenticated: bool) -> None:
    headers = [("X-Forwarded-User", "jd")] + ([("X-Shibwsgi-Proxy-Secret", secret)] if secret else [])
    reply = call(middleware(proxy_secret=SECRET), "/", headers, client=(PROXY, 1))
    assert (reply.identity is not None) is authenticated
    assert all(name != b"x-shibwsgi-proxy-secret" for name, _ in reply.app_headers)


def test_non_utf8_header_bytes_are_judged_as_wsgi_reads_them() -> None:
    reply = call(middleware(), "/", [(b"x-forwarded-user", "Zoë".encode())], client=(PROXY, 1))
    assert reply.identity.user == "Zoë"


def test_oversized_identity_header_is_431_not_500() -> None:
    app = middleware(attributes={"email": Attribute("email", required=True, max_bytes=100)})
    headers = [("X-Forwarded-User", "jd"), ("X-Forwarded-Email", "e" * 200)]
    reply = call(app, "/", headers, client=(PROXY, 1))
    assert reply.status == 431
    assert reply.scope is None


# -- answers: status, bodies, security headers ------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        pytest.param("application/json", "application/json", id="api client"),
        pytest.param("text/html", "text/html; charset=utf-8", id="browser"),
    ],
)
def test_refusal_body_follows_accept_with_security_headers(accept: str, media_type: str) -> None:
    app = middleware(rules=[Rule("/admin", HasRole("admin"))], login_path=None)
    reply = call(app, "/admin", [("X-Forwarded-User", "jd"), ("Accept", accept)], client=(PROXY, 1))
    assert reply.status == 403
    assert reply.header("content-type") == media_type
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header("content-security-policy")
    assert reply.scope is None


def test_anonymous_api_request_to_a_protected_path_is_401() -> None:
    reply = call(middleware(rules=[Rule("/", LoggedIn())]), "/", [], client=(CLIENT, 1))
    assert reply.status == 401
    assert reply.json()["status"] == 401


def test_anonymous_browser_is_sent_to_the_login_path_under_root_path() -> None:
    app = middleware(rules=[Rule("/", LoggedIn())])
    reply = call(
        app, "/private", [("Accept", "text/html")], client=(CLIENT, 1), root_path="/app", query=b"a=1"
    )
    assert reply.status == 302
    assert reply.header("location") == "/app/login?next=%2Fapp%2Fprivate%3Fa%3D1"


def test_public_rule_lets_anonymous_through() -> None:
    app = middleware(rules=[Rule("/health", Public()), Rule("/", LoggedIn())])
    assert call(app, "/health", [], client=(CLIENT, 1)).status == 200


def test_whoami_and_auth_path_answer_as_in_wsgi() -> None:
    app = middleware(whoami_path="/whoami", auth_path="/_auth")
    whoami = call(app, "/whoami", [("X-Forwarded-User", "jd")], client=(PROXY, 1))
    assert whoami.status == 200
    assert whoami.json()["user"] == "jd"
    headers = [("X-Forwarded-User", "jd"), ("X-Original-URI", "/x"), ("X-Original-Method", "GET")]
    auth = call(app, "/_auth", headers, client=(PROXY, 1))
    assert auth.status == 200
    assert auth.header("x-auth-request-user") == "jd"
    assert call(app, "/_auth", headers[1:], client=(PROXY, 1)).status == 401


# -- sessions ---------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def session_app(request: pytest.FixtureRequest, tmp_path: Any) -> SSOMiddleware:
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.sqlite3")
    return middleware(sessions=Sessions(store, secret_key=KEY), rules=[Rule("/", LoggedIn())])


def _cookie(reply: Any) -> str:
    (set_cookie,) = reply.headers_named("set-cookie")
    return str(set_cookie.split(";", 1)[0])


def test_login_starts_a_session_that_later_requests_use(session_app: SSOMiddleware) -> None:
    login = call(session_app, "/login", [("X-Forwarded-User", "jd")], client=(PROXY, 1), query=b"next=/p")
    assert login.status == 302
    assert login.header("location") == "/p"
    later = call(session_app, "/p", [("Cookie", _cookie(login))], client=(CLIENT, 1))
    assert later.status == 200
    assert later.identity.user == "jd"
    logout = call(session_app, "/logout", [("Cookie", _cookie(login))], client=(CLIENT, 1))
    assert logout.status == 302
    assert call(session_app, "/p", [("Cookie", _cookie(login))], client=(CLIENT, 1)).status == 401


def test_session_cookie_set_for_the_app_response(session_app: SSOMiddleware) -> None:
    reply = call(session_app, "/", [("X-Forwarded-User", "jd")], client=(PROXY, 1))
    assert reply.status == 200
    assert reply.header("set-cookie")


def test_session_store_failure_is_503_not_500() -> None:
    class Failing(MemoryStore):
        down = False

        def get(self, session_id: str) -> Any:
            if self.down:
                raise SessionError("connection refused")
            return super().get(session_id)

    store = Failing()
    app = middleware(session=store, secret_key=KEY)
    login = call(app, "/login", [("X-Forwarded-User", "jd")], client=(PROXY, 1))
    store.down = True
    reply = call(app, "/", [("Cookie", _cookie(login))], client=(CLIENT, 1))
    assert reply.status == 503
    assert reply.scope is None


# -- off the event loop -----------------------------------------------------------------


def test_sync_roles_hook_runs_off_the_event_loop() -> None:
    threads: list[int] = []

    def roles(identity: Identity) -> list[str]:
        threads.append(threading.get_ident())
        return ["editor"]

    async def run() -> tuple[Any, int]:
        reply = await acall(
            middleware(roles=roles), scope_for("/", [("X-Forwarded-User", "jd")], client=(PROXY, 1))
        )
        return reply, threading.get_ident()

    reply, loop_thread = asyncio.run(run())
    assert reply.scope is not None
    assert reply.scope["auth"].scopes == ["authenticated", "editor"]
    assert threads and loop_thread not in threads


def test_async_roles_hook_is_awaited_on_the_loop() -> None:
    loops: list[Any] = []

    async def roles(identity: Identity) -> list[str]:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return ["admin"]

    app = middleware(roles=Roles(roles, ttl=0), rules=[Rule("/admin", HasRole("admin"))])

    async def run() -> tuple[Any, Any]:
        reply = await acall(app, scope_for("/admin", [("X-Forwarded-User", "jd")], client=(PROXY, 1)))
        return reply, asyncio.get_running_loop()

    reply, loop = asyncio.run(run())
    assert reply.status == 200
    assert reply.identity.roles == ("admin",)
    assert loops == [loop]


def test_async_roles_hook_is_refused_by_the_wsgi_middleware() -> None:
    from shibwsgi import SSOMiddleware as WSGIMiddleware

    async def roles(identity: Identity) -> list[str]:
        return []

    with pytest.raises(ConfigError) as info:
        WSGIMiddleware(lambda e, s: [], roles=roles)
    assert info.value.setting == "roles"


def test_stateless_parsed_identity_is_decided_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a thread hop for a request that does no I/O")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    reply = call(middleware(), "/", [("X-Forwarded-User", "jd")], client=(PROXY, 1))
    assert reply.identity.user == "jd"


# -- signed profiles --------------------------------------------------------------------


@pytest.fixture
def signer() -> TestSigner:
    return TestSigner()


def signed_app(signer: TestSigner, **options: Any) -> SSOMiddleware:
    return SSOMiddleware(
        Recorder(),
        profile="pomerium",
        jwks=signer.jwks,
        issuer=signer.issuer,
        audience=signer.audience,
        **options,
    )


def test_signed_assertion_identifies_from_any_peer(signer: TestSigner) -> None:
    environ = environ_for("pomerium", "alice@example.org", signer=signer)
    reply = call(signed_app(signer), "/", as_headers(environ), client=(CLIENT, 1))
    assert reply.identity.user == "alice@example.org"


def test_forged_assertion_is_401(signer: TestSigner) -> None:
    other = TestSigner()
    environ = environ_for("pomerium", "admin@example.org", signer=other)
    reply = call(signed_app(signer), "/", as_headers(environ), client=(CLIENT, 1))
    assert reply.status == 401
    assert reply.scope is None


def test_verified_token_is_decided_on_the_loop_the_second_time(
    signer: TestSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = signed_app(signer)
    headers = as_headers(environ_for("pomerium", "alice@example.org", signer=signer))
    hops: list[Any] = []
    real = asyncio.to_thread

    async def counting(function: Any, *args: Any) -> Any:
        hops.append(function)
        return await real(function, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)

    async def twice() -> list[Any]:
        return [await acall(app, scope_for("/", headers, client=(CLIENT, 1))) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert first.identity.user == second.identity.user == "alice@example.org"
    assert len(hops) == 1  # the first verification; the repeat is a cache hit on the loop


def test_key_fetch_runs_off_the_loop_once_for_concurrent_requests(signer: TestSigner) -> None:
    app = SSOMiddleware(
        Recorder(),
        profile="pomerium",
        jwks_url="https://keys.example.org/jwks",
        issuer=signer.issuer,
        audience=signer.audience,
    )
    released, fetched = threading.Event(), []

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append(url)
        # Released by a coroutine: were this fetch on the event loop, nothing could release it.
        assert released.wait(10), "the event loop was blocked during the key fetch"
        return json.dumps(signer.jwks).encode()

    assert app.verifier is not None
    app.verifier.keys._fetch = fetch  # type: ignore[union-attr]
    headers = as_headers(environ_for("pomerium", "alice@example.org", signer=signer))

    async def run() -> list[Any]:
        requests = [
            asyncio.create_task(acall(app, scope_for("/", headers, client=(CLIENT, 1)))) for _ in range(5)
        ]
        await asyncio.sleep(0)
        released.set()
        return list(await asyncio.gather(*requests))

    replies = asyncio.run(run())
    assert [reply.identity.user for reply in replies] == ["alice@example.org"] * 5
    assert fetched == ["https://keys.example.org/jwks"]


# -- websockets -------------------------------------------------------------------------

HTTP_RESPONSE = {"websocket.http.response": {}}


def test_websocket_forged_identity_on_the_upgrade_is_anonymous() -> None:
    reply = call(middleware(), "/ws", [("X-Forwarded-User", "admin")], client=(CLIENT, 1), kind="websocket")
    assert reply.status == 101
    assert reply.identity is None
    assert reply.app_headers == [(b"host", b"app.example.org")]


def test_websocket_from_the_proxy_gets_the_identity() -> None:
    reply = call(middleware(), "/ws", [("X-Forwarded-User", "jd")], client=(PROXY, 1), kind="websocket")
    assert reply.identity.user == "jd"
    assert reply.scope is not None
    assert reply.scope["user"].is_authenticated


def test_refused_websocket_gets_403_at_the_handshake_when_the_server_can_send_it() -> None:
    app = middleware(rules=[Rule("/ws", HasRole("admin"))])
    reply = call(
        app,
        "/ws",
        [("X-Forwarded-User", "jd")],
        client=(PROXY, 1),
        kind="websocket",
        extensions=HTTP_RESPONSE,
    )
    assert reply.status == 403
    assert reply.scope is None
    assert [m["type"] for m in reply.messages] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]


def test_refused_websocket_is_closed_with_1008_without_the_extension() -> None:
    app = middleware(rules=[Rule("/ws", LoggedIn())])
    reply = call(app, "/ws", [("X-Forwarded-User", "admin")], client=(CLIENT, 1), kind="websocket")
    assert reply.status == POLICY_VIOLATION
    assert reply.scope is None
    assert reply.messages == [{"type": "websocket.close", "code": POLICY_VIOLATION}]


def test_websocket_handshake_with_a_session_cookie_is_the_sessions_user(session_app: SSOMiddleware) -> None:
    login = call(session_app, "/login", [("X-Forwarded-User", "jd")], client=(PROXY, 1))
    reply = call(session_app, "/ws", [("Cookie", _cookie(login))], client=(CLIENT, 1), kind="websocket")
    assert reply.status == 101
    assert reply.identity.user == "jd"


def test_websocket_handshake_with_a_forged_session_cookie_is_refused(session_app: SSOMiddleware) -> None:
    cookie = "__Host-shibwsgi=forged.cookie.value"
    reply = call(session_app, "/ws", [("Cookie", cookie)], client=(CLIENT, 1), kind="websocket")
    assert reply.status == POLICY_VIOLATION
    assert reply.scope is None


def test_websocket_accept_carries_the_new_session_cookie(session_app: SSOMiddleware) -> None:
    reply = call(session_app, "/ws", [("X-Forwarded-User", "jd")], client=(PROXY, 1), kind="websocket")
    assert reply.status == 101
    assert reply.header("set-cookie")
    assert reply.header("x-app") == "accepted"


# -- lifespan ---------------------------------------------------------------------------


def test_lifespan_passes_through_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        message = await receive()
        await send({"type": "lifespan.startup.complete", "echo": message["type"]})

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.run(SSOMiddleware(app, profile="oauth2-proxy", trusted_proxies=[PROXY])(scope, receive, send))
    assert seen == [scope]
    assert seen[0] is scope
    assert sent == [{"type": "lifespan.startup.complete", "echo": "lifespan.startup"}]
