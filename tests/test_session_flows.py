"""Sessions, login and logout, in both deployment styles, in-process with WebTest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from itsdangerous import TimestampSigner
from webtest import TestApp

from shibwsgi import Attribute, SessionError, SSOMiddleware
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for
from tests.helpers import Clock, echo_app

KEY = "k" * 32
OLD_KEY = "o" * 32
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}
START = 1_795_400_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def make_app(clock: Clock) -> Callable[..., TestApp]:
    def make(**options: Any) -> TestApp:
        options.setdefault("session", MemoryStore(clock=clock))
        options.setdefault("secret_key", KEY)
        options.setdefault("attributes", {"groups": Attribute("isMemberOf", multi=True)})
        return TestApp(SSOMiddleware(echo_app, clock=clock, **options), extra_environ=HTTPS)

    return make


def front(user: str, **options: Any) -> dict[str, str]:
    """What a protected location (the login path) receives from Shibboleth."""
    options.setdefault("expires_at", datetime.fromtimestamp(START + 86_400, UTC))
    return environ_for("shibboleth", user, {"isMemberOf": ["staff"]}, **options)


def who(app: TestApp) -> str | None:
    identity = app.get("/page").json["identity"]
    return identity["user"] if identity else None


def login(app: TestApp, user: str, next_path: str = "/", **options: Any) -> Any:
    return app.get("/login", {"next": next_path}, extra_environ=front(user, **options), status=302)


# -- lazy style: only the login path carries the front end's identity -----------------


def test_lazy_login_browse_logout_login_again(make_app: Callable[..., TestApp]) -> None:
    app = make_app()
    assert who(app) is None
    response = login(app, "alice@example.org", "/movies?page=2")
    assert response.location == "/movies?page=2"
    assert who(app) == "alice@example.org"
    assert app.get("/page").json["remote_user"] == "alice@example.org"

    response = app.get("/logout", {"next": "/bye"}, status=302)
    assert response.location.startswith("/Shibboleth.sso/Logout?return=")
    assert unquote(response.location.split("return=")[1]) == "https://app.example.org/bye"
    assert who(app) is None

    login(app, "alice@example.org")
    assert who(app) == "alice@example.org"


def test_cookie_flags(make_app: Callable[..., TestApp]) -> None:
    cookie = login(make_app(), "a@x").headers["Set-Cookie"]
    assert cookie.startswith("__Host-shibwsgi=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert "Domain" not in cookie


def test_insecure_cookie_for_plain_http_development(make_app: Callable[..., TestApp]) -> None:
    app = make_app(cookie_secure=False)
    cookie = app.get("/login", extra_environ={**front("a@x"), "wsgi.url_scheme": "http"}).headers[
        "Set-Cookie"
    ]
    assert cookie.startswith("shibwsgi=")
    assert "Secure" not in cookie


def test_cookie_holds_only_a_signed_opaque_id(make_app: Callable[..., TestApp]) -> None:
    cookie = login(make_app(), "alice@example.org").headers["Set-Cookie"]
    assert "alice" not in cookie
    assert "staff" not in cookie


def test_login_always_issues_a_new_session_id(make_app: Callable[..., TestApp]) -> None:
    app = make_app()
    first = login(app, "a@x").headers["Set-Cookie"]
    second = login(app, "a@x").headers["Set-Cookie"]
    assert first != second


def test_planted_session_cookie_is_replaced_at_login(make_app: Callable[..., TestApp]) -> None:
    # Session fixation: an attacker's valid cookie planted in the victim's browser.
    attacker = make_app()
    login(attacker, "mallory@x")
    planted = attacker.cookies["__Host-shibwsgi"]
    victim = make_app(session=attacker.app.sessions.store)
    victim.set_cookie("__Host-shibwsgi", planted)
    login(victim, "victim@x")
    assert victim.cookies["__Host-shibwsgi"] != planted
    assert who(attacker) is None  # the planted session was ended at the victim's login


def test_login_without_identity_redirects_to_front_end_login(make_app: Callable[..., TestApp]) -> None:
    response = make_app().get("/login", {"next": "/movies"}, status=302)
    url = urlsplit(response.location)
    assert url.path == "/Shibboleth.sso/Login"
    target = parse_qs(url.query)["target"][0]
    assert target == "https://app.example.org/login?next=%2Fmovies"


@pytest.mark.parametrize(
    ("profile", "path"),
    [
        ("mellon", "/mellon/login"),
        ("oauth2-proxy", "/oauth2/start"),
        ("adfs", "/Shibboleth.sso/Login"),
    ],
)
def test_login_redirect_per_profile(make_app: Callable[..., TestApp], profile: str, path: str) -> None:
    response = make_app(profile=profile, attributes={}).get("/login", status=302)
    assert urlsplit(response.location).path == path


def test_login_without_identity_and_no_front_end_login_is_401_with_hint_in_the_log(
    make_app: Callable[..., TestApp], caplog: pytest.LogCaptureFixture
) -> None:
    # The hint is for the operator (the log); the person is told what happened.
    response = make_app(profile="openidc", attributes={}).get("/login", status=401)
    assert "did not say who you are" in response.json["error"]
    assert "Require shib-session" not in response.text
    assert "protected by the front end" in caplog.text


@pytest.mark.parametrize(
    ("profile", "prefix"),
    [
        ("openidc", "/login/redirect_uri?logout="),
        ("mellon", "/mellon/logout?ReturnTo="),
    ],
)
def test_logout_redirect_per_profile(make_app: Callable[..., TestApp], profile: str, prefix: str) -> None:
    response = make_app(profile=profile, attributes={}).get("/logout", status=302)
    assert response.location.startswith(prefix)
    assert unquote(response.location[len(prefix) :]) == "https://app.example.org/"


def test_oauth2_proxy_gets_site_paths_not_absolute_urls(make_app: Callable[..., TestApp]) -> None:
    # oauth2-proxy refuses an absolute rd outside --whitelist-domain and then loops.
    app = make_app(profile="oauth2-proxy", attributes={})
    assert app.get("/logout", {"next": "/bye"}, status=302).location == "/oauth2/sign_out?rd=%2Fbye"
    login = app.get("/login", {"next": "/movies"}, status=302).location
    assert login == "/oauth2/start?rd=%2Flogin%3Fnext%3D%252Fmovies"


def test_custom_logout_url(make_app: Callable[..., TestApp]) -> None:
    app = make_app(logout_url="https://sso.example.org/logout?back={return_to}")
    assert app.get("/logout", status=302).location.startswith("https://sso.example.org/logout?back=https%3A")


# -- whole-site style: every request carries the identity ----------------------------


def test_whole_site_without_session_store() -> None:
    app = TestApp(SSOMiddleware(echo_app), extra_environ=HTTPS)
    assert app.get("/page", extra_environ=front("a@x")).json["identity"]["user"] == "a@x"
    response = app.get("/login", {"next": "/x"}, extra_environ=front("a@x"), status=302)
    assert response.location == "/x"
    assert "Set-Cookie" not in response.headers
    assert app.get("/logout", status=302).location.startswith("/Shibboleth.sso/Logout?return=")


def test_whole_site_with_session_store_binds_on_first_request(make_app: Callable[..., TestApp]) -> None:
    app = make_app()
    environ = front("a@x")
    response = app.get("/page", extra_environ=environ)
    assert "Set-Cookie" in response.headers
    again = app.get("/page", extra_environ=environ)
    assert "Set-Cookie" not in again.headers


# -- consistency: user switch, front-end session change, expiry -----------------------


def test_user_switch_replaces_the_session(make_app: Callable[..., TestApp]) -> None:
    app = make_app()
    login(app, "alice@x")
    old_cookie = app.cookies["__Host-shibwsgi"]
    body = app.get("/page", extra_environ=front("bob@x")).json
    assert body["identity"]["user"] == "bob@x"
    assert app.cookies["__Host-shibwsgi"] != old_cookie
    assert who(app) == "bob@x"


def test_front_end_session_change_rebinds(make_app: Callable[..., TestApp]) -> None:
    app = make_app()
    login(app, "alice@x", session_id="_one")
    old_cookie = app.cookies["__Host-shibwsgi"]
    app.get("/page", extra_environ=front("alice@x", session_id="_two"))
    assert app.cookies["__Host-shibwsgi"] != old_cookie
    assert app.get("/page").json["identity"]["session_id"] == "_two"


def test_idle_timeout(make_app: Callable[..., TestApp], clock: Clock) -> None:
    app = make_app(idle_timeout=600)
    login(app, "a@x")
    clock.now += 599
    assert who(app) == "a@x"  # activity: the idle clock starts again
    clock.now += 599
    assert who(app) == "a@x"
    clock.now += 601
    assert who(app) is None


def test_absolute_timeout_despite_activity(make_app: Callable[..., TestApp], clock: Clock) -> None:
    app = make_app(idle_timeout=600, absolute_timeout=1800)
    login(app, "a@x")
    for _ in range(5):
        clock.now += 300
        assert who(app) == "a@x"
    clock.now += 301
    assert who(app) is None


def test_session_never_outlives_the_front_end(make_app: Callable[..., TestApp], clock: Clock) -> None:
    app = make_app()
    login(app, "a@x", expires_at=datetime.fromtimestamp(START + 120, UTC))
    clock.now += 119
    assert who(app) == "a@x"
    clock.now += 2
    assert who(app) is None


def test_expired_session_cookie_is_cleared(make_app: Callable[..., TestApp], clock: Clock) -> None:
    app = make_app(idle_timeout=60)
    login(app, "a@x")
    clock.now += 61
    response = app.get("/page")
    assert response.json["identity"] is None
    assert "Max-Age=0" in response.headers["Set-Cookie"]


# -- forged cookies and key rotation ---------------------------------------------------


def _signed(session_id: str, key: str) -> str:
    return TimestampSigner(key, salt="shibwsgi.session").sign(session_id).decode()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda real: real[:-2] + ("AA" if not real.endswith("AA") else "BB"), id="tampered signature"
        ),
        pytest.param(lambda real: "x" + real, id="tampered id"),
        pytest.param(lambda real: _signed("guessed-session-id", KEY), id="valid signature, unknown id"),
        pytest.param(
            lambda real: _signed(real.split(".")[0], "attacker-key-attacker-key"),
            id="forged with another key",
        ),
        pytest.param(lambda real: "garbage", id="garbage"),
        pytest.param(lambda real: "", id="empty"),
    ],
)
def test_bad_cookies_are_anonymous_and_cleared(
    make_app: Callable[..., TestApp], forge: Callable[[str], str]
) -> None:
    app = make_app()
    login(app, "a@x")
    real = app.cookies["__Host-shibwsgi"]
    app.set_cookie("__Host-shibwsgi", forge(real))
    response = app.get("/page")
    assert response.json["identity"] is None
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_cookie_older_than_absolute_timeout_is_refused_even_if_store_has_it(
    make_app: Callable[..., TestApp], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(absolute_timeout=3600, idle_timeout=3600)
    login(app, "a@x")
    # itsdangerous checks the signature's own timestamp against absolute_timeout.
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: START + 7200)
    assert app.get("/page").json["identity"] is None


def test_key_rotation_keeps_old_sessions_until_the_old_key_is_retired(
    make_app: Callable[..., TestApp], clock: Clock
) -> None:
    store = MemoryStore(clock=clock)
    old = make_app(session=store, secret_key=OLD_KEY)
    login(old, "a@x")
    cookie = old.cookies["__Host-shibwsgi"]

    rotated = make_app(session=store, secret_key=[OLD_KEY, KEY])
    rotated.set_cookie("__Host-shibwsgi", cookie)
    assert who(rotated) == "a@x"
    login(rotated, "b@x")
    assert rotated.cookies["__Host-shibwsgi"] != cookie  # the newest key signs

    retired = make_app(session=store, secret_key=[KEY])
    retired.set_cookie("__Host-shibwsgi", cookie)
    assert who(retired) is None


# -- open redirects -------------------------------------------------------------------

MALICIOUS_NEXT = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "http:evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.example",
    "\t//evil.example",
    "/\t/evil.example",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "/\r\nSet-Cookie: x=y",
    "/%0d%0aSet-Cookie:%20x=y",
    "evil.example",
    "../evil",
    "/\u2215evil.example",
    "/\uff0fevil.example",
    "//user@evil.example",
    "/" + "a" * 5000,
]


@pytest.mark.parametrize("value", MALICIOUS_NEXT)
@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_malicious_next_lands_on_site(make_app: Callable[..., TestApp], path: str, value: str) -> None:
    app = make_app()
    response = app.get(path, {"next": value}, extra_environ=front("a@x"), status=302)
    location = response.location
    if path == "/logout":
        location = unquote(parse_qs(urlsplit(location).query)["return"][0])
        assert location == "https://app.example.org/"
    else:
        assert location == "/"


def test_login_path_query_flood_is_not_a_500(make_app: Callable[..., TestApp]) -> None:
    query = "&".join(f"f{i}=1" for i in range(200)) + "&next=/x"
    response = make_app().get("/login?" + query, extra_environ=front("a@x"), status=302)
    assert response.location == "/"


# -- failures ---------------------------------------------------------------------------


class BrokenStore(MemoryStore):
    def get(self, session_id: str) -> dict[str, Any] | None:
        raise SessionError("connection refused")


def test_store_failure_is_503_not_500(
    make_app: Callable[..., TestApp], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(session=BrokenStore())
    app.set_cookie("__Host-shibwsgi", _signed("some-id", KEY))
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        response = app.get("/page", status=503)
    assert "session store" in response.json["error"]
    assert "connection refused" in caplog.text
    assert "connection refused" not in response.text
