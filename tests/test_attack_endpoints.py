"""Attacks on whoami, the security headers, the roles hook and auth_request, against their promises.

Each test is named after an attack and asserts the safe behaviour: no credential on the
whoami page, never a 500, every own answer nosniff under the strict policy, the roles
hook failing closed with its slots freed, and no spelling of an original URI that an
upstream reads as a protected path judged by a more lenient rule.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, Identity, SSOMiddleware
from shibwsgi import roles as roles_module
from shibwsgi.authz import HasRole, LoggedIn, Public, Rule
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for
from shibwsgi.testing.client import HTTPS_ENVIRON
from shibwsgi.testing.signed import TestSigner
from tests.helpers import Clock, echo_app

KEY = "k" * 32
HTML = {"Accept": "text/html"}
FRONT_SESSION = "_c0ffee0123456789abcdef"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ6b2UifQ.c2lnbmF0dXJl"
START = 1_795_400_000.0


def whoami_client(attributes: dict[str, Any], released: dict[str, Any], **options: Any) -> TestApp:
    middleware = SSOMiddleware(echo_app, attributes=attributes, whoami_path="/whoami", **options)
    environ = environ_for("shibboleth", "zoe@example.org", released, session_id=FRONT_SESSION)
    environ.update({name: value for name, value in released.items() if isinstance(value, str)})
    return TestApp(middleware, extra_environ={**HTTPS_ENVIRON, **environ})


def bodies(client: TestApp) -> list[str]:
    return [client.get("/whoami", headers=headers).text for headers in ({}, HTML)]


# -- whoami: credentials under innocent names ----------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(JWT, id="a bare JWT"),
        pytest.param(f"Bearer {JWT}", id="a bearer JWT"),
        pytest.param(f" {JWT}", id="a JWT after a space"),
        pytest.param(f"https://app.example.org/cb#id_token={JWT}", id="a JWT inside a URL"),
        pytest.param(f"{JWT}.", id="a JWT with a trailing dot"),
        pytest.param(
            "ewogICJhbGciOiAiRVMyNTYiCn0.eyJzdWIiOiJ6b2UifQ.c2ln", id="a JWT whose header is pretty"
        ),
        pytest.param(JWT + ".aGVsbG8.d29ybGQ", id="a JWE (five parts)"),
    ],
)
def test_whoami_redacts_a_jwt_value_under_an_innocent_name(value: str) -> None:
    client = whoami_client({"profile_url": "homePage"}, {"homePage": value})
    assert client.get("/whoami").json["redacted"] == ["profile_url"]
    for body in bodies(client):
        assert "c2ln" not in body


@pytest.mark.parametrize(
    ("name", "source"),
    [
        pytest.param("ref", "AJP_Shib-Session-ID", id="the AJP spelling of Shib-Session-ID"),
        pytest.param("ref", "OIDC_refresh_token", id="a refresh token"),
        pytest.param("ref", "X-Forwarded-Access-Token", id="oauth2-proxy's access token"),
        pytest.param("ref", "X-Vouch-IdP-IdToken", id="vouch's ID token"),
        pytest.param("ref", "X-Ms-Token-Aad-Id-Token", id="Easy Auth's ID token"),
        pytest.param("ref", "X-authentik-jwt", id="authentik's JWT"),
        pytest.param("ref", "OIDC_CLAIM_session_state", id="an OIDC session_state claim"),
        pytest.param("ref", "MELLON_SAML_RESPONSE", id="mellon's SAML response dump"),
        pytest.param("ref", "CF_Authorization", id="Cloudflare's cookie"),
        pytest.param("SESSION", "x", id="the app name in capitals"),
    ],
)
def test_whoami_redacts_credential_sources_of_every_front_end(name: str, source: str) -> None:
    client = whoami_client({name: source}, {source: "opaque-secret-value"})
    assert client.get("/whoami").json["redacted"] == [name]
    for body in bodies(client):
        assert "opaque-secret-value" not in body


def test_whoami_redacts_the_front_end_session_id_among_other_values() -> None:
    client = whoami_client({"refs": Attribute("refs", multi=True)}, {"refs": ["a", FRONT_SESSION]})
    assert client.get("/whoami").json["redacted"] == ["refs"]
    for body in bodies(client):
        assert FRONT_SESSION not in body


def test_whoami_never_shows_the_front_end_session_id_in_any_field() -> None:
    client = whoami_client({"name": "displayName"}, {"displayName": "Zoe"})
    report = client.get("/whoami").json
    assert "session_id" not in report
    for body in bodies(client):
        assert FRONT_SESSION not in body


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("Shib-Session-ID", id="the SP session id"),
        pytest.param("OIDC_access_token", id="an access token"),
        pytest.param(["OIDC_id_token", "eppn"], id="an ID token first"),
        pytest.param("sid", id="a sid claim"),
    ],
)
def test_user_taken_from_a_credential_is_a_config_error(user: Any) -> None:
    with pytest.raises(ConfigError, match="user"):
        SSOMiddleware(echo_app, user=user, whoami_path="/whoami")


def test_user_from_a_credential_in_settings_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="user"):
        SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_USER": "eppn Shib-Session-ID"})


def test_whoami_escapes_markup_in_names_sources_values_and_user() -> None:
    evil = "<img src=x onerror=alert(1)>"
    middleware = SSOMiddleware(echo_app, attributes={evil: "mail"}, whoami_path="/whoami")
    environ = environ_for("shibboleth", evil, {"mail": evil})
    page = TestApp(middleware, extra_environ={**HTTPS_ENVIRON, **environ}).get(
        "/whoami", headers=HTML, status="*"
    )
    assert "<img" not in page.text


# -- whoami: odd identities are never a 500 --------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "-1e400",
        "9" * 400,
        "-" + "9" * 5000,
        "253402300800",
        "-62135596801",
        "0000-01-01T00:00:00Z",
        "2020-01-01T24:00:00Z",
        "2020-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59.9999999Z",
        "\u0661\u0662",
    ],
)
def test_whoami_with_an_odd_front_end_time_is_never_a_500(moment: str) -> None:
    environ = environ_for("shibboleth", "zoe@example.org", {"displayName": "Z"})
    environ["Shib-Authentication-Instant"] = environ["Shib-Session-Expires"] = moment
    for options in ({}, {"session": MemoryStore(), "secret_key": KEY}):
        middleware = SSOMiddleware(echo_app, whoami_path="/whoami", **options)
        client = TestApp(middleware, extra_environ={**HTTPS_ENVIRON, **environ})
        client.get("/login", status="*")
        for headers in ({}, HTML):
            assert client.get("/whoami", headers=headers, status="*").status_int < 500


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"name": "\ud800"}, id="a lone surrogate"),
        pytest.param({"name": "a\udfffb"}, id="a low surrogate inside"),
        pytest.param({"name": "\x00\x01"}, id="control characters"),
        pytest.param({"name": {"a": [1, {"b": None}]}}, id="an object"),
        pytest.param({"name": 1e308}, id="a huge number"),
        pytest.param({"name": "x" * 200_000}, id="a huge value"),
        pytest.param({"auth_time": float("nan")}, id="NaN auth_time"),
        pytest.param({"auth_time": "1700000000"}, id="auth_time as a string"),
        pytest.param({"auth_time": True}, id="auth_time as a boolean"),
    ],
)
def test_whoami_with_odd_signed_claims_is_never_a_500(claims: dict[str, Any]) -> None:
    signer = TestSigner("ES256")
    middleware = SSOMiddleware(
        echo_app,
        profile="pomerium",
        jwks=signer.jwks,
        issuer=signer.issuer,
        audience=signer.audience,
        whoami_path="/whoami",
        attributes={"name": "name"},
    )
    token = signer.sign(signer.claims("zoe@example.org", claims))
    client = TestApp(middleware, extra_environ=HTTPS_ENVIRON)
    for headers in ({}, HTML):
        response = client.get("/whoami", headers={**headers, "X-Pomerium-Jwt-Assertion": token}, status="*")
        assert response.status_int < 500
        assert "\\ud800" not in response.text


@pytest.mark.parametrize(
    "accept",
    [
        "text/html;q=nan",
        "text/html;q=inf",
        "text/html;q=1e999",
        "*/*;q=-1",
        ";;;,,,",
        "text/html;" + "a=b;" * 5000,
        "text/html," * 5000,
        "\xff\xfe",
        "text/html;q=0,application/json;q=0",
    ],
)
def test_odd_accept_header_is_never_a_500(accept: str) -> None:
    client = whoami_client({"name": "displayName"}, {"displayName": "Zoe"})
    response = client.get("/whoami", headers={"Accept": accept})
    assert response.content_type in ("application/json", "text/html")
    anonymous = TestApp(SSOMiddleware(echo_app, whoami_path="/whoami"))
    assert anonymous.get("/whoami", headers={"Accept": accept}, status=401).content_type in (
        "application/json",
        "text/html",
    )


# -- security headers on every own answer ----------------------------------------------------


def _strict(response: Any) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    assert "<script" not in response.text


def _hung_roles(release: threading.Event) -> SSOMiddleware:
    return SSOMiddleware(
        echo_app,
        roles=lambda identity: release.wait() and [],
        roles_timeout=0.05,
        whoami_path="/whoami",
        auth_path="/_auth",
    )


@pytest.mark.parametrize("headers", [pytest.param({}, id="JSON"), pytest.param(HTML, id="HTML")])
@pytest.mark.parametrize(
    ("path", "extra"),
    [
        pytest.param("/whoami", {}, id="whoami 503"),
        pytest.param("/_auth", {"HTTP_X_ORIGINAL_URI": "/", "HTTP_X_ORIGINAL_METHOD": "GET"}, id="auth 503"),
        pytest.param("/page", {}, id="app 503"),
    ],
)
def test_roles_timeout_answers_are_nosniff_and_strict(
    headers: dict[str, str], path: str, extra: dict[str, str]
) -> None:
    release = threading.Event()
    try:
        environ = {**HTTPS_ENVIRON, **environ_for("shibboleth", "zoe@example.org"), **extra}
        _strict(TestApp(_hung_roles(release)).get(path, headers=headers, extra_environ=environ, status=503))
    finally:
        release.set()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="missing original URI"),
        pytest.param({"HTTP_X_ORIGINAL_URI": "/x%00", "HTTP_X_ORIGINAL_METHOD": "GET"}, id="NUL"),
        pytest.param({"HTTP_X_ORIGINAL_URI": "/", "HTTP_X_ORIGINAL_METHOD": "G E T"}, id="bad method"),
    ],
)
def test_auth_endpoint_400_and_its_head_are_nosniff_and_strict(extra: dict[str, str]) -> None:
    client = TestApp(SSOMiddleware(echo_app, auth_path="/_auth"), extra_environ=HTTPS_ENVIRON)
    _strict(client.get("/_auth", extra_environ=extra, status=400))
    response = client.head("/_auth", extra_environ=extra, status=400)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_whoami_400_for_a_bad_identity_is_nosniff_and_strict() -> None:
    client = TestApp(SSOMiddleware(echo_app, whoami_path="/whoami"), extra_environ=HTTPS_ENVIRON)
    environ = environ_for("shibboleth", "zoe@example.org")
    environ["eppn"] = environ["REMOTE_USER"] = "zoe\x00@example.org"
    for headers in ({}, HTML):
        response = client.get("/whoami", headers=headers, extra_environ=environ, status="*")
        assert 400 <= response.status_int < 500
        _strict(response)


@pytest.mark.parametrize("headers", [pytest.param({}, id="JSON"), pytest.param(HTML, id="HTML")])
@pytest.mark.parametrize(
    ("released", "status"),
    [
        pytest.param({"mail": "x" * 300}, 431, id="431 over a cap"),
        pytest.param({}, 403, id="403 missing attribute"),
    ],
)
@pytest.mark.parametrize("path", ["/_auth", "/whoami", "/login"])
def test_refused_identity_at_every_endpoint_is_nosniff_and_strict(
    headers: dict[str, str], released: dict[str, str], status: int, path: str
) -> None:
    middleware = SSOMiddleware(
        echo_app,
        attributes={"email": Attribute("mail", required=True, max_bytes=64)},
        whoami_path="/whoami",
        auth_path="/_auth",
    )
    environ = {
        **environ_for("shibboleth", "zoe@example.org", released),
        "HTTP_X_ORIGINAL_URI": "/",
        "HTTP_X_ORIGINAL_METHOD": "GET",
    }
    client = TestApp(middleware, extra_environ=HTTPS_ENVIRON)
    _strict(client.get(path, headers=headers, extra_environ=environ, status=status))


# -- roles: hooks that misbehave -------------------------------------------------------------


def roles_client(hook: Any, **options: Any) -> TestApp:
    return TestApp(
        SSOMiddleware(echo_app, roles=hook, clock=options.pop("clock", Clock(START)), **options),
        extra_environ=HTTPS_ENVIRON,
    )


def person(user: str = "alice@example.org") -> dict[str, str]:
    return environ_for("shibboleth", user)


def roles_seen(client: TestApp, user: str = "alice@example.org") -> Any:
    return client.get("/page", extra_environ=person(user)).json["identity"]["roles"]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")


class Liar(str):
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no")


class Impostor:
    """Claims to be a str through ``__class__``, which ``isinstance`` believes."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str


class Iterating:
    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no")


def halfway() -> Iterator[str]:
    yield "admin"
    raise RuntimeError("database went away")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: {"admin": False}, id="a dict"),
        pytest.param(lambda: None, id="None"),
        pytest.param(halfway, id="a generator that raises midway"),
        pytest.param(Iterating, id="an iterable whose __iter__ raises"),
        pytest.param(lambda: [Impostor()], id="an object posing as str"),
        pytest.param(lambda: Liar("admin"), id="a str subclass as the answer"),
        pytest.param(lambda: iter([b"admin"]), id="bytes in a generator"),
        pytest.param(lambda: ["admin"] * 1 + [None], id="None among names"),
        pytest.param(lambda: [f"r{n}" for n in range(100_000)], id="a hundred thousand roles"),
        pytest.param(lambda: ["a" * 10_000], id="a huge name"),
        pytest.param(lambda: ["admin\u2028"], id="a line separator"),
        pytest.param(lambda: 42, id="a number"),
    ],
)
def test_roles_hook_answer_that_is_not_role_names_is_503(answer: Any) -> None:
    client = roles_client(lambda identity: answer())
    response = client.get("/page", extra_environ=person(), status=503)
    assert "admin" not in response.text


def test_roles_str_subclass_that_lies_about_equality_grants_only_its_text() -> None:
    client = roles_client(lambda identity: [Liar("viewer")], rules=[Rule("/admin", HasRole("admin"))])
    client.get("/admin", extra_environ=person(), status=403)
    assert roles_seen(client) == ["viewer"]


@pytest.mark.parametrize(
    "exception",
    [
        pytest.param(Unprintable(), id="str and repr raise"),
        pytest.param(SystemExit(3), id="SystemExit"),
        pytest.param(KeyboardInterrupt(), id="KeyboardInterrupt"),
        pytest.param(GeneratorExit(), id="GeneratorExit"),
        pytest.param(RecursionError(), id="RecursionError"),
        pytest.param(MemoryError(), id="MemoryError"),
    ],
)
def test_roles_hook_raising_anything_is_503(exception: BaseException) -> None:
    def hook(identity: Identity) -> list[str]:
        raise exception

    client = roles_client(hook)
    for headers in ({}, HTML):
        client.get("/page", extra_environ=person(), headers=headers, status=503)
    assert roles_client(lambda identity: ["x"]).get("/page", extra_environ=person()).status_int == 200


def test_roles_endless_answer_does_not_spin_its_slot_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roles_module, "MAX_RUNNING", 1)
    client = roles_client(lambda identity: itertools.repeat("admin"), roles_timeout=0.5, roles_ttl=0)
    client.get("/page", extra_environ=person(), status=503)
    # The one slot must come back: an endless answer is refused, not read forever.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = client.get("/page", extra_environ=person(), status=503)
        if "still busy" not in response.json["error"]:
            return
        time.sleep(0.05)
    pytest.fail("the slot taken by an endless answer never came back")


def test_thread_constructor_failure_is_503_and_frees_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    client = roles_client(lambda identity: ["admin"])

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "__init__", refuse)
        for _ in range(roles_module.MAX_RUNNING + 2):
            client.get("/page", extra_environ=person(), status=503)
    assert roles_seen(client) == ["admin"]


def test_many_first_sights_at_once_get_own_roles_or_503_then_recover() -> None:
    gate = threading.Event()

    def hook(identity: Identity) -> list[str]:
        gate.wait(5)
        return [identity.user]

    client = roles_client(hook, roles_timeout=10)
    users = [f"user{n}@example.org" for n in range(40)]

    def visit(user: str) -> tuple[str, int, Any]:
        response = client.get("/page", extra_environ=person(user), status="*")
        roles = response.json["identity"]["roles"] if response.status_int == 200 else None
        return user, response.status_int, roles

    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(visit, user) for user in users]
        time.sleep(0.5)
        gate.set()
        results = [future.result() for future in futures]
    for user, status, roles in results:
        assert status in (200, 503)
        if status == 200:
            assert roles == [user]
    assert sum(status == 503 for _, status, _ in results) >= len(users) - roles_module.MAX_RUNNING
    for user in users:  # every slot came back, and each user gets their own roles
        assert roles_seen(client, user) == [user]


def test_roles_for_other_attributes_are_never_served_under_concurrency() -> None:
    def hook(identity: Identity) -> list[str]:
        time.sleep(0.001)
        return list(identity.attributes.get("groups", ()))

    client = roles_client(hook, attributes={"groups": Attribute("isMemberOf", multi=True)})

    def visit(n: int) -> tuple[list[str], list[str]]:
        groups = ["admins"] if n % 2 else ["staff"]
        environ = environ_for("shibboleth", "alice@example.org", {"isMemberOf": groups})
        return groups, client.get("/page", extra_environ=environ).json["identity"]["roles"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        for groups, roles in pool.map(visit, range(200)):
            assert roles == groups


def test_roles_changed_in_the_database_are_served_after_the_ttl() -> None:
    table = {"alice@example.org": ["admin"]}
    clock = Clock(START)
    client = roles_client(lambda identity: table.get(identity.user, []), roles_ttl=30, clock=clock)
    assert roles_seen(client) == ["admin"]
    table["alice@example.org"] = []
    clock.now += 30
    assert roles_seen(client) == []


def test_slow_old_lookup_finishing_late_does_not_outlive_its_ttl() -> None:
    clock = Clock(START)
    answers = itertools.chain([["admin"]], itertools.repeat([]))
    slow, proceed = threading.Event(), threading.Event()

    def hook(identity: Identity) -> list[str]:
        answer = next(answers)
        if answer:
            slow.set()
            proceed.wait(5)
        return answer

    client = roles_client(hook, roles_ttl=30, roles_timeout=10, clock=clock)
    with ThreadPoolExecutor(max_workers=1) as pool:
        old = pool.submit(roles_seen, client)
        slow.wait(5)
        clock.now += 31  # the revoke is asked for and answered while the old lookup still runs
        assert roles_seen(client) == []
        proceed.set()
        assert old.result() == ["admin"]
    assert roles_seen(client) == []  # the old answer, asked 31 s ago, is past its TTL


@pytest.mark.parametrize(
    "ttl", [pytest.param(10**400, id="past float's range"), pytest.param(10**30, id="huge")]
)
def test_roles_ttl_beyond_float_range_is_never_a_500(ttl: int) -> None:
    client = roles_client(lambda identity: ["admin"], roles_ttl=ttl)
    for _ in range(3):  # the second request reads the cache
        assert roles_seen(client) == ["admin"]


@pytest.mark.parametrize("timeout", [1e300, threading.TIMEOUT_MAX * 2])
def test_roles_timeout_no_wait_can_take_is_a_config_error(timeout: float) -> None:
    with pytest.raises(ConfigError, match="roles_timeout"):
        SSOMiddleware(echo_app, roles=lambda identity: [], roles_timeout=timeout)


def test_roles_timeout_at_the_platform_maximum_still_waits_for_a_slow_hook() -> None:
    def slow(identity: Identity) -> list[str]:
        time.sleep(0.05)
        return ["admin"]

    assert roles_seen(roles_client(slow, roles_timeout=threading.TIMEOUT_MAX)) == ["admin"]


# -- auth_request: spellings an upstream reads as a protected path ---------------------------

AUTH_RULES = [
    Rule("/public", Public()),
    Rule("/admin", HasRole("admin")),
    Rule("/secret", HasRole("admin")),
    Rule("/", LoggedIn()),
]


def auth_client(**options: Any) -> TestApp:
    options.setdefault("rules", AUTH_RULES)
    middleware = SSOMiddleware(echo_app, roles=lambda identity: [], auth_path="/_auth", **options)
    return TestApp(middleware, extra_environ=HTTPS_ENVIRON)


def ask(client: TestApp, uri: str, method: str = "GET", **environ: str) -> int:
    extra = {
        **person("rob@example.org"),
        "HTTP_X_ORIGINAL_URI": uri,
        "HTTP_X_ORIGINAL_METHOD": method,
        **environ,
    }
    status: int = client.get("/_auth", extra_environ=extra, status="*").status_int
    return status


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/admin%3f", id="an encoded ? ending the path (Apache's %3F confusion)"),
        pytest.param("/admin%3F.php", id="an encoded ? before a suffix"),
        pytest.param("/admin%23", id="an encoded # ending the path"),
        pytest.param("/admin%23x", id="an encoded # before more"),
        pytest.param("/admin%EF%BC%8E", id="a fullwidth trailing dot"),
        pytest.param("/ADMIN%EF%BC%8E", id="capitals and a fullwidth trailing dot"),
        pytest.param("/admin%EF%BC%9A%EF%BC%84DATA", id="a fullwidth stream name"),
        pytest.param("/admin%C2%A0", id="a trailing no-break space"),
        pytest.param("/admin%E3%80%80", id="a trailing ideographic space"),
        pytest.param("/public/..%EF%BC%BCadmin", id="a fullwidth backslash"),
        pytest.param("/%EF%BC%85%36%31dmin", id="a fullwidth percent"),
        pytest.param("/adm%C4%B1n", id="a dotless i (Java and Windows upper-case it to I)"),
        pytest.param("/%C5%BFecret", id="a long s"),
        pytest.param("/adm%C4%B0n", id="a dotted capital I (Java lower-cases it to i)"),
        pytest.param("/ADM%C4%B0N", id="capitals with a dotted capital I"),
        pytest.param("/admin%00", id="NUL"),
        pytest.param("/admin%0d%0a", id="CRLF"),
        pytest.param("/admin%c2%85", id="NEL"),
        pytest.param("/admin%3b", id="an encoded ;"),
        pytest.param("/public/..%3b/admin", id="an encoded ..;"),
        pytest.param("/public/..;x=1/admin", id="..; with a parameter"),
        pytest.param("/admin::$DATA", id="a stream name"),
        pytest.param("/admin%20.", id="a trailing space and dot"),
        pytest.param("/public/%252e%252e/admin", id="double encoding"),
        pytest.param("/public/%25252e%25252e/admin", id="triple encoding"),
        pytest.param("/public/%c0%ae%c0%ae/admin", id="overlong dots"),
        pytest.param("/public/..%c0%afadmin", id="an overlong slash"),
        pytest.param("/public/..%5cadmin", id="an encoded backslash"),
        pytest.param("/public\\..\\admin", id="raw backslashes"),
        pytest.param("//admin", id="a double slash"),
        pytest.param("/./admin", id="a dot segment"),
        pytest.param("/public/..//admin", id="dot-dot then a double slash"),
        pytest.param("/public%2f..%2fadmin", id="encoded slashes"),
        pytest.param("/ADMIN", id="capitals"),
        pytest.param("/%EF%BD%81dmin", id="a fullwidth letter"),
        pytest.param("http://host/admin", id="an absolute URI"),
        pytest.param("/public#/../admin", id="a fragment"),
        pytest.param("/public/...", id="three dots"),
        pytest.param("/admin%", id="a stray percent"),
        pytest.param("/admin%zz", id="a percent before non-hex"),
        pytest.param("/admin%25", id="an encoded percent"),
        pytest.param("/public/%EF%BC%8E%EF%BC%8E%EF%BC%8E/admin", id="three fullwidth dots"),
    ],
)
def test_original_uri_read_as_a_protected_path_is_never_allowed(uri: str) -> None:
    assert ask(auth_client(), uri) in (400, 403)


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/public?x=/../admin", id="dot-dot in the query"),
        pytest.param("/public/app.js?%0a", id="an encoded newline in the query"),
        pytest.param("/public/a%20b", id="a space inside a name"),
        pytest.param("/public/caf%C3%A9", id="UTF-8"),
    ],
)
def test_public_original_uris_stay_public(uri: str) -> None:
    assert ask(auth_client(), uri) == 200


@pytest.mark.parametrize(
    ("mount", "uri", "allowed"),
    [
        pytest.param("/app", "/application/admin", False, id="a prefix of the mount's name"),
        pytest.param("/app", "/app/../admin", False, id="dot-dot out of the mount"),
        pytest.param("/app", "/app/%2e%2e/admin", False, id="encoded dot-dot out of the mount"),
        pytest.param("/app", "/app;x/admin", False, id="a parameter on the mount"),
        pytest.param("/app", "/APP/admin", False, id="the mount in capitals"),
        pytest.param("/app", "/app/admin", False, id="the app's own rule"),
        pytest.param("/app", "/app/public/x", True, id="the app's public path"),
        pytest.param("/app/", "/app/admin", False, id="a mount with a trailing slash"),
        pytest.param("/app", "/public", False, id="another app's public path"),
    ],
)
def test_mounted_app_judges_only_its_own_uris(mount: str, uri: str, allowed: bool) -> None:
    status = ask(auth_client(), uri, SCRIPT_NAME=mount)
    assert status == 200 if allowed else status in (400, 403)


CASE_CONFLICTS = [
    pytest.param([Rule("/Admin", Public()), Rule("/admin", HasRole("admin"))], id="one prefix in two cases"),
    pytest.param(
        [Rule("/Admin/x", Public()), Rule("/admin", HasRole("admin"))], id="nested only once folded"
    ),
    pytest.param([Rule("/\ufb01le", Public()), Rule("/file", HasRole("admin"))], id="a ligature"),
    pytest.param(
        [
            Rule("/ADMIN", Public(), methods=["GET"]),
            Rule("/admin", HasRole("admin"), methods=["GET", "POST"]),
        ],
        id="overlapping methods",
    ),
]


@pytest.mark.parametrize("rules", CASE_CONFLICTS)
def test_rules_one_upstream_place_cannot_follow_are_a_config_error(rules: list[Rule]) -> None:
    with pytest.raises(ConfigError, match="rules"):
        auth_client(rules=[*rules, Rule("/", LoggedIn())])


@pytest.mark.parametrize("rules", CASE_CONFLICTS)
def test_rules_differing_in_case_stay_valid_without_auth_request(rules: list[Rule]) -> None:
    SSOMiddleware(echo_app, rules=rules)


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param(
            [Rule("/Admin", HasRole("admin")), Rule("/admin", HasRole("admin"))], id="same requirement"
        ),
        pytest.param(
            [Rule("/Admin", Public(), methods=["GET"]), Rule("/admin", HasRole("admin"), methods=["POST"])],
            id="disjoint methods",
        ),
        pytest.param(
            [Rule("/admin/Public", Public()), Rule("/admin", HasRole("admin"))], id="nested as written"
        ),
        pytest.param([Rule("/Public", Public()), Rule("/", HasRole("admin"))], id="under the root"),
    ],
)
def test_rules_that_agree_once_folded_are_accepted(rules: list[Rule]) -> None:
    auth_client(rules=rules)


@pytest.mark.parametrize("method", ["post", "Post", "PoSt"])
def test_original_method_in_another_case_meets_the_method_rule(method: str) -> None:
    rules = [Rule("/api", HasRole("admin"), methods=["POST"]), Rule("/", LoggedIn())]
    assert ask(auth_client(rules=rules), "/api/x", method) == 403


@pytest.mark.parametrize("extra", [{"HTTP_X_ORIGINAL_URI": "/public,/admin"}, {"HTTP_X_ORIGINAL_URI": ""}])
def test_duplicate_or_empty_original_uri_is_not_allowed_to_a_protected_path(extra: dict[str, str]) -> None:
    client = auth_client()
    environ = {**person("rob@example.org"), "HTTP_X_ORIGINAL_METHOD": "GET", **extra}
    response = client.get("/_auth", extra_environ=environ, status="*")
    assert response.status_int in (200, 400, 403)
    if extra["HTTP_X_ORIGINAL_URI"] == "":
        assert response.status_int == 400


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/admin\x00", id="NUL"),
        pytest.param("/admin\r\n", id="CRLF"),
        pytest.param("/admin\x7f", id="DEL"),
        pytest.param("/public/../admin", id="dot-dot"),
        pytest.param("//admin", id="a double slash"),
    ],
)
def test_request_path_spellings_meet_the_rule(path: str) -> None:
    client = auth_client()
    response = client.get("/", extra_environ={**person("rob@example.org"), "PATH_INFO": path}, status="*")
    assert response.status_int in (400, 403)


def test_auth_request_is_never_a_500_for_any_encoded_byte_or_pair() -> None:
    client = auth_client()
    for first, second in itertools.product(range(0x80, 0x100, 7), range(256)):
        status = ask(client, f"/admin/%{first:02x}%{second:02x}")
        assert status < 500, f"%{first:02x}%{second:02x} gave {status}"
