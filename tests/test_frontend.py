"""The development front end, in-process: sign-in form, cookie, injected environ, refusals."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, Profile, SSOMiddleware
from shibwsgi.profiles import PROFILES as BUILTIN
from shibwsgi.testing import environ_for, frontend
from shibwsgi.testing.frontend import SAMPLE_USERS, SOURCE_NAMES, DevFrontEnd, SampleUser, users_for_profile
from tests.helpers import echo_app

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
KEY = "k" * 32
ZOE = SAMPLE_USERS["zoe"]
PROFILES = [
    "shibboleth", "openidc", "oauth2-proxy", "mellon", "adfs",
    "authelia", "authentik", "vouch", "azure-easy-auth", "kong-oidc",
]  # fmt: skip


def passes_headers(profile: str) -> bool:
    return profile == "oauth2-proxy" or BUILTIN[profile].channel == "headers"


def sso(profile: str) -> SSOMiddleware:
    """The echo app behind SSOMiddleware, reading name, email and groups as ``profile`` names them."""
    names = SOURCE_NAMES[profile]
    attributes: dict[str, str | Attribute] = {
        "name": names["displayName"],
        "email": names["mail"],
        "groups": Attribute(names["isMemberOf"], multi=True),
    }
    # Header front ends: the app trusts the front end's address.
    headers: dict[str, Any] = (
        {"channel": "headers", "trusted_proxies": ["127.0.0.1"]} if passes_headers(profile) else {}
    )
    return SSOMiddleware(echo_app, profile=profile, attributes=attributes, **headers)


class Recorder:
    """An app that keeps the environ it was called with."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environ = dict(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


@pytest.fixture
def make_client() -> Callable[..., TestApp]:
    """Factory: a WebTest client of a DevFrontEnd (default: around ``sso(profile)``)."""

    def make(profile: str = "shibboleth", app: Any = None, **options: Any) -> TestApp:
        front = DevFrontEnd(app or sso(profile), profile=profile, secret_key=KEY, **options)
        return TestApp(front, extra_environ=LOOPBACK)

    return make


def sign_in(client: TestApp, user: str = "ada", target: str = "/") -> Any:
    return client.post(client.app.login_path, {"user": user, "target": target})


def me(client: TestApp) -> dict[str, Any] | None:
    identity: dict[str, Any] | None = client.get("/api/me").json["identity"]
    return identity


# -- the sign-in form and the session ---------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "login", "target_param", "logout", "return_param"),
    [
        pytest.param("shibboleth", "/Shibboleth.sso/Login", "target", "/Shibboleth.sso/Logout", "return"),
        pytest.param("openidc", "/devfrontend/login", "target", "/login/redirect_uri", "logout"),
        pytest.param("mellon", "/mellon/login", "ReturnTo", "/mellon/logout", "ReturnTo"),
        pytest.param("oauth2-proxy", "/oauth2/start", "rd", "/oauth2/sign_out", "rd"),
        pytest.param("adfs", "/Shibboleth.sso/Login", "target", "/Shibboleth.sso/Logout", "return"),
        pytest.param(
            "azure-easy-auth",
            "/.auth/login/aad",
            "post_login_redirect_uri",
            "/.auth/logout",
            "post_logout_redirect_uri",
        ),
        pytest.param("authelia", "/devfrontend/login", "target", "/devfrontend/logout", "return"),
    ],
)
def test_paths_and_parameters_follow_the_profile(
    make_client: Callable[..., TestApp],
    profile: str,
    login: str,
    target_param: str,
    logout: str,
    return_param: str,
) -> None:
    client = make_client(profile)
    page = client.get(login, {target_param: "/movies?id=3"})
    assert page.form["target"].value == "/movies?id=3"
    assert sign_in(client, target=page.form["target"].value).headers["Location"] == "/movies?id=3"
    assert me(client) is not None
    assert client.get(logout, {return_param: "/bye"}).headers["Location"] == "/bye"
    assert me(client) is None


def test_sign_in_form_lists_the_users(make_client: Callable[..., TestApp]) -> None:
    page = make_client().get("/Shibboleth.sso/Login", {"target": "/x"})
    assert page.content_type == "text/html"
    assert [option[0] for option in page.form["user"].options] == ["ada", "rob", "zoe"]
    for text in ("Ada Editor", "ada@example.org", "(2 groups)", "Rob Reader", "(1 group)"):
        assert text in page.text
    assert "Zoë Łukasz-Müller 山田" in page.text
    assert "(402 groups)" in page.text


def test_sign_in_form_answers_head_without_a_body(make_client: Callable[..., TestApp]) -> None:
    response = make_client().head("/Shibboleth.sso/Login")
    assert response.status_int == 200
    assert response.body == b""


def test_sign_in_sets_a_front_end_session_and_redirects(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    response = sign_in(client, target="/movies?id=3#top")
    assert response.status_int == 302
    assert response.headers["Location"] == "/movies?id=3#top"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("_devfrontend_session=")
    for flag in ("HttpOnly", "Path=/", "SameSite=Lax"):
        assert flag in cookie
    identity = me(client)
    assert identity is not None
    assert identity["user"] == "ada@example.org"


def test_unknown_user_is_refused_with_the_form(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    response = client.post("/Shibboleth.sso/Login", {"user": "mallory", "target": "/x"}, status=400)
    assert response.form["target"].value == "/x"
    assert me(client) is None


def test_login_path_allows_only_get_and_post(make_client: Callable[..., TestApp]) -> None:
    response = make_client().put("/Shibboleth.sso/Login", status=405)
    assert response.headers["Allow"] == "GET, HEAD, POST"


def test_cross_site_sign_in_post_is_refused(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    form = {"user": "ada", "target": "/"}
    client.post("/Shibboleth.sso/Login", form, headers={"Origin": "https://evil.example"}, status=403)
    assert me(client) is None
    client.post("/Shibboleth.sso/Login", form, headers={"Origin": "http://localhost"}, status=302)
    assert me(client) is not None


def test_logout_clears_the_session(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    sign_in(client)
    response = client.get("/Shibboleth.sso/Logout", {"return": "http://localhost/bye"})
    assert response.headers["Location"] == "/bye"
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert me(client) is None


def test_anonymous_request_passes_through(make_client: Callable[..., TestApp]) -> None:
    body = make_client().get("/").json
    assert body["identity"] is None
    assert body["remote_user"] is None


def test_front_end_session_id_is_stable_and_new_at_each_sign_in(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    sign_in(client)
    first = me(client)
    assert first is not None
    assert me(client) == first
    sign_in(client, "rob")
    second = me(client)
    assert second is not None
    assert second["user"] == "rob@example.org"
    assert second["session_id"] != first["session_id"]


# -- what reaches the application ---------------------------------------------------------------


@pytest.mark.parametrize("profile", [*PROFILES, "remote-user"])
def test_injected_environ_is_exactly_environ_for(
    make_client: Callable[..., TestApp], monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any], dict[str, str]]] = []

    def spy(*args: Any, **kwargs: Any) -> dict[str, str]:
        result = environ_for(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(frontend, "environ_for", spy)
    recorder = Recorder()
    client = make_client(profile, recorder)
    client.get("/page")
    baseline = recorder.environ
    sign_in(client, "zoe")
    client.get("/page")

    (args, kwargs, injected) = calls[-1]
    assert args == (client.app.profile, "zoe@example.org", users_for_profile(profile)["zoe"].attributes)
    assert kwargs["channel"] == ("headers" if passes_headers(profile) else "environ")
    added = {key: value for key, value in recorder.environ.items() if key not in baseline}
    added.pop("HTTP_COOKIE")
    assert added == injected


@pytest.mark.parametrize("profile", PROFILES)
def test_app_sees_the_utf8_name_and_every_group(make_client: Callable[..., TestApp], profile: str) -> None:
    client = make_client(profile)
    sign_in(client, "zoe")
    identity = me(client)
    assert identity is not None
    assert identity["user"] == "zoe@example.org"
    assert identity["attributes"] == {
        "name": ["Zoë Łukasz-Müller 山田"],
        "email": ["zoe@example.org"],
        "groups": list(ZOE.attributes["isMemberOf"]),
    }
    assert "urn:mace:example.org:group:r&d;archive" in identity["attributes"]["groups"]
    assert len(identity["attributes"]["groups"]) == 402


@pytest.mark.parametrize(
    ("profile", "headers"),
    [
        pytest.param("oauth2-proxy", {"X-Forwarded-User": "admin"}, id="oauth2-proxy user header"),
        pytest.param("oauth2-proxy", {"X-Auth-Request-User": "admin"}, id="oauth2-proxy xauthrequest"),
        pytest.param("shibboleth", {"eppn": "admin", "Remote-User": "admin"}, id="shibboleth eppn header"),
        pytest.param("authelia", {"Remote-User": "admin", "Remote_Groups": "admins"}, id="authelia headers"),
        pytest.param("authentik", {"X_authentik_username": "admin"}, id="authentik underscore header"),
        pytest.param("vouch", {"X-Vouch-User": "admin"}, id="vouch user header"),
        pytest.param("azure-easy-auth", {"X-MS-CLIENT-PRINCIPAL-NAME": "admin"}, id="azure principal name"),
        pytest.param("kong-oidc", {"X-Userinfo": "eyJzdWIiOiJhZG1pbiJ9"}, id="kong-oidc userinfo"),
    ],
)
def test_client_header_cannot_sign_in_through_the_front_end(
    make_client: Callable[..., TestApp], profile: str, headers: dict[str, str]
) -> None:
    body = make_client(profile).get("/", headers=headers).json
    assert body["identity"] is None
    assert body["http_keys"] == ["HTTP_HOST"]


def test_client_header_cannot_change_user_or_groups_over_a_session(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client("oauth2-proxy")
    sign_in(client, "rob")
    spoofed = {"X-Forwarded-User": "ada@example.org", "X-Forwarded-Groups": "movie-editors"}
    identity = client.get("/", headers=spoofed).json["identity"]
    assert identity["user"] == "rob@example.org"
    assert identity["attributes"]["groups"] == ["staff"]


def test_protected_path_sends_anonymous_visitors_to_sign_in(make_client: Callable[..., TestApp]) -> None:
    client = make_client(protected_paths=["/private"])
    response = client.get("/private/page", {"q": "1"}, status=302)
    location = urlsplit(response.headers["Location"])
    assert location.path == "/Shibboleth.sso/Login"
    assert parse_qs(location.query) == {"target": ["/private/page?q=1"]}
    assert client.get("/privateer").json["identity"] is None
    sign_in(client, target="/private/page?q=1")
    assert client.get("/private/page").json["identity"]["user"] == "ada@example.org"


def test_full_lazy_login_through_the_middleware_login_path(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    form = client.get("/login", {"next": "/there"}).follow()
    assert form.request.path == "/Shibboleth.sso/Login"
    assert form.form["target"].value == "http://localhost/login?next=%2Fthere"
    back = form.form.submit().follow()
    assert back.headers["Location"] == "/there"
    assert me(client) is not None


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "192.168.1.5", "2001:db8::1", "::ffff:10.0.0.1", "0.0.0.0", "localhost", "", None],
)
@pytest.mark.parametrize("path", ["/", "/Shibboleth.sso/Login", "/Shibboleth.sso/Logout"])
def test_non_loopback_client_is_refused(
    make_client: Callable[..., TestApp], address: str | None, path: str
) -> None:
    client = make_client()
    environ = {} if address is None else {"REMOTE_ADDR": address}
    client.extra_environ = environ
    response = client.get(path, status=403)
    assert response.content_type == "text/plain"
    assert "loopback" in response.text


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_client_is_served(make_client: Callable[..., TestApp], address: str) -> None:
    client = make_client()
    client.extra_environ = {"REMOTE_ADDR": address}
    assert client.get("/").status_int == 200


MALICIOUS_TARGETS = [
    pytest.param("//evil.example", id="scheme-relative"),
    pytest.param("https://evil.example/", id="absolute elsewhere"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("http://localhost@evil.example/", id="userinfo"),
    pytest.param("http://localhost.evil.example/", id="host suffix"),
    pytest.param("http://localhost:8443/x", id="other port"),
    pytest.param("/\\evil.example", id="backslash"),
    pytest.param("/%2F%2Fevil.example", id="encoded slashes"),
    pytest.param("http://[::1", id="malformed URL"),
    pytest.param("movies", id="relative"),
]


@pytest.mark.parametrize("target", MALICIOUS_TARGETS)
def test_malicious_sign_in_target_lands_on_root(make_client: Callable[..., TestApp], target: str) -> None:
    assert sign_in(make_client(), target=target).headers["Location"] == "/"


@pytest.mark.parametrize("target", MALICIOUS_TARGETS)
def test_malicious_logout_return_lands_on_root(make_client: Callable[..., TestApp], target: str) -> None:
    response = make_client().get("/Shibboleth.sso/Logout", {"return": target})
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("target", "location"),
    [
        pytest.param("http://localhost/movies?id=3#x", "/movies?id=3#x", id="same host"),
        pytest.param("HTTP://LOCALHOST:80/movies", "/movies", id="default port and case"),
        pytest.param("https://localhost", "/", id="no path"),
    ],
)
def test_same_host_absolute_target_becomes_a_path(
    make_client: Callable[..., TestApp], target: str, location: str
) -> None:
    assert sign_in(make_client(), target=target).headers["Location"] == location


def cookie_after_sign_in(front: DevFrontEnd, user: str = "ada") -> str:
    response = TestApp(front, extra_environ=LOOPBACK).post(front.login_path, {"user": user, "target": "/"})
    value: str = response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    return value


def identity_with_cookie(front: DevFrontEnd, value: str) -> Any:
    headers = {"Cookie": f"_devfrontend_session={value}"}
    return TestApp(front, extra_environ=LOOPBACK).get("/", headers=headers).json["identity"]


def edited_payload(token: str) -> str:
    """``token`` with the signed user key changed from ada to zoe, signature kept."""
    payload, signature = token.split(".", 1)
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b'"ada"' in data
    edited = base64.urlsafe_b64encode(data.replace(b'"ada"', b'"zoe"')).decode().rstrip("=")
    return f"{edited}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda token: token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), id="tampered"),
        pytest.param(lambda token: edited_payload(token), id="payload edited"),
        pytest.param(lambda token: "not-a-token", id="garbage"),
        pytest.param(lambda token: "", id="empty"),
    ],
)
def test_forged_cookie_is_anonymous(forge: Callable[[str], str]) -> None:
    front = DevFrontEnd(sso("shibboleth"), secret_key=KEY)
    token = cookie_after_sign_in(front)
    assert identity_with_cookie(front, token)["user"] == "ada@example.org"
    assert identity_with_cookie(front, forge(token)) is None


def test_cookie_signed_with_another_key_is_anonymous() -> None:
    token = cookie_after_sign_in(DevFrontEnd(sso("shibboleth"), secret_key="other" * 8))
    assert identity_with_cookie(DevFrontEnd(sso("shibboleth"), secret_key=KEY), token) is None
    # Without a key each front end draws its own.
    token = cookie_after_sign_in(DevFrontEnd(sso("shibboleth")))
    assert identity_with_cookie(DevFrontEnd(sso("shibboleth")), token) is None


def test_cookie_for_a_user_no_longer_offered_is_anonymous() -> None:
    token = cookie_after_sign_in(DevFrontEnd(sso("shibboleth"), secret_key=KEY), "rob")
    only_ada = {"ada": SAMPLE_USERS["ada"]}
    assert identity_with_cookie(DevFrontEnd(sso("shibboleth"), secret_key=KEY, users=only_ada), token) is None


def test_expired_front_end_session_is_anonymous(monkeypatch: pytest.MonkeyPatch) -> None:
    front = DevFrontEnd(sso("shibboleth"), secret_key=KEY)
    token = cookie_after_sign_in(front)
    later = time.time() + 9 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert identity_with_cookie(front, token) is None


# -- construction -----------------------------------------------------------------------------


def test_construction_logs_one_loud_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        client = TestApp(DevFrontEnd(sso("shibboleth")), extra_environ=LOOPBACK)
        client.get("/")
        sign_in(client)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert (
        "DEVELOPMENT FRONT END: anyone who can reach this port can be anyone; never expose it" in messages[0]
    )


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"profile": "kerberos"}, "profile", id="unknown profile"),
        pytest.param({"channel": "pigeon"}, "channel", id="unknown channel"),
        pytest.param({"users": {}}, "users", id="no users"),
        pytest.param({"users": {"x": ("", {})}}, "users", id="empty user id"),
        pytest.param({"users": {"x": ("x@y", ["mail"])}}, "users", id="attributes not a mapping"),
        pytest.param({"secret_key": "short"}, "secret_key", id="short key"),
        pytest.param({"cookie_name": "a b"}, "cookie_name", id="bad cookie name"),
        pytest.param({"protected_paths": ["login"]}, "protected_paths", id="relative protected path"),
    ],
)
def test_bad_settings_fail_at_construction(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        DevFrontEnd(echo_app, **options)
    assert info.value.setting == setting


def test_repr_does_not_show_the_key() -> None:
    assert KEY not in repr(DevFrontEnd(echo_app, secret_key=KEY))


def test_users_are_renamed_for_each_profile() -> None:
    custom = {"x": SampleUser("x@example.org", {"mail": "x@example.org", "shoeSize": "44"})}
    assert users_for_profile("openidc", custom)["x"].attributes == {
        "email": "x@example.org",
        "shoeSize": "44",
    }
    assert users_for_profile("remote-user", custom)["x"].attributes == {"shoeSize": "44"}
    assert users_for_profile(Profile(name="custom"), custom)["x"] == custom["x"]
    assert "affiliation" not in users_for_profile("openidc")["ada"].attributes


@pytest.mark.parametrize(
    ("profile", "options", "message"),
    [
        pytest.param(
            "shibboleth", {"signer": "signer"}, "passes no signed assertion", id="signer for unsigned"
        ),
        pytest.param("jwt", {}, "names no assertion header", id="jwt without a header"),
        pytest.param("pomerium", {"signer": "RS256"}, "RS256 is not one of pomerium's", id="wrong algorithm"),
    ],
)
def test_signed_front_end_options_are_checked(profile: str, options: dict[str, Any], message: str) -> None:
    from shibwsgi.testing.signed import TestSigner

    if "signer" in options:
        options = {"signer": TestSigner("RS256")}
    with pytest.raises(ConfigError, match=message):
        DevFrontEnd(echo_app, profile=profile, **options)


def test_signed_front_end_signs_what_its_key_set_verifies() -> None:
    front = DevFrontEnd(echo_app, profile="iap")
    assert front.signer is not None
    assert front.signer.issuer == "https://cloud.google.com/iap"  # the vendor's own issuer
    app = SSOMiddleware(echo_app, profile="iap", jwks=front.signer.jwks, audience=front.signer.audience)
    front.app = app
    client = TestApp(front, extra_environ=LOOPBACK)
    client.post(front.login_path, {"user": "ada", "target": "/"}, status=302)
    identity = client.get("/").json["identity"]
    assert identity["user"] == "ada@example.org"
    assert identity["provider"] == "https://cloud.google.com/iap"
