"""whoami_path: a signed-in user sees their own identity, never anyone else's, never a secret."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, SSOMiddleware
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for
from shibwsgi.testing.client import HTTPS_ENVIRON, sso_test_app
from shibwsgi.testing.signed import TestSigner
from tests.helpers import echo_app

SECRET = "k" * 32
PROXY_SECRET = "p" * 24
ATTRIBUTES = {
    "name": "displayName",
    "email": "mail",
    "groups": Attribute("isMemberOf", multi=True),
    "affiliation": Attribute("affiliation", multi=True, max_values=2),
}
ZOE = {
    "displayName": "Zoë <b>Müller</b> 山田",
    "isMemberOf": ["staff", "a;b"],
    "affiliation": ["a", "b", "c"],  # over its cap of 2 values: dropped
}
HTML = {"Accept": "text/html"}


def app(**options: Any) -> SSOMiddleware:
    return SSOMiddleware(echo_app, attributes=ATTRIBUTES, whoami_path="/whoami", **options)


def lazy(**options: Any) -> SSOMiddleware:
    return app(session=MemoryStore(), secret_key=SECRET, **options)


def test_whoami_reports_the_identity_as_json() -> None:
    client = sso_test_app(app(), "zoe@example.org", ZOE)
    report = client.get("/whoami").json
    assert report["user"] == "zoe@example.org"
    assert report["profile"] == "shibboleth"
    assert report["channel"] == "environ"
    assert report["provider"] == "https://idp.example.org/idp/shibboleth"
    assert report["attributes"] == {"name": ["Zoë <b>Müller</b> 山田"], "groups": ["staff", "a;b"]}
    assert report["sources"] == {
        "name": "displayName",
        "email": "mail",
        "groups": "isMemberOf",
        "affiliation": "affiliation",
    }
    assert report["not_released"] == ["email"]
    assert report["dropped"] == ["affiliation"]
    assert report["roles"] == []
    assert report["front_end_session_expires"] is not None
    assert report["session_expires"] is None  # stateless: no session of ours


def test_whoami_page_for_browsers_escapes_every_value() -> None:
    page = sso_test_app(app(), "zoe@example.org", ZOE).get("/whoami", headers=HTML)
    assert page.content_type == "text/html"
    assert "Zoë &lt;b&gt;Müller&lt;/b&gt; 山田" in page.text
    assert "<b>" not in page.text
    assert "not released by the front end" in page.text
    assert "dropped: over its size cap" in page.text
    assert "isMemberOf" in page.text


@pytest.mark.parametrize(
    ("headers", "content_type"),
    [
        pytest.param({}, "application/json", id="API client"),
        pytest.param(HTML, "text/html", id="browser"),
    ],
)
def test_anonymous_whoami_is_401(headers: dict[str, str], content_type: str) -> None:
    response = TestApp(app()).get("/whoami", headers=headers, status=401)
    assert response.content_type == content_type
    assert "sign in at /login" in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_whoami_answers_only_reads(method: str) -> None:
    client = sso_test_app(app(), "zoe@example.org")
    response = client.request("/whoami", method=method, status=405)
    assert response.headers["Allow"] == "GET, HEAD"


def test_whoami_head_has_no_body() -> None:
    response = sso_test_app(app(), "zoe@example.org").head("/whoami")
    assert response.status_int == 200
    assert response.body == b""


def test_whoami_is_off_by_default() -> None:
    client = sso_test_app(SSOMiddleware(echo_app), "zoe@example.org")
    assert "identity" in client.get("/whoami").json  # reached the app


def test_whoami_never_shows_a_secret() -> None:
    environ = environ_for("shibboleth", "zoe@example.org", ZOE, session_id="_frontendsessionid0123456789")
    client = TestApp(lazy(), extra_environ={**HTTPS_ENVIRON, **environ})
    client.get("/login", status=302)
    cookie = client.cookies["__Host-shibwsgi"]
    for headers in ({}, HTML):
        body = client.get("/whoami", headers=headers).text
        assert "frontendsessionid" not in body
        assert cookie not in body
        assert cookie.split(".")[0] not in body  # nor the session id inside the signed value
        assert SECRET not in body


def test_whoami_never_shows_the_proxy_secret() -> None:
    middleware = SSOMiddleware(
        echo_app,
        profile="oauth2-proxy",
        channel="headers",
        trusted_proxies=["127.0.0.1"],
        proxy_secret=PROXY_SECRET,
        whoami_path="/whoami",
    )
    environ = environ_for("oauth2-proxy", "zoe@example.org", channel="headers")
    environ.update(REMOTE_ADDR="127.0.0.1", HTTP_X_SHIBWSGI_PROXY_SECRET=PROXY_SECRET)
    report = TestApp(middleware).get("/whoami", extra_environ=environ)
    assert report.json["channel"] == "headers"
    assert PROXY_SECRET not in report.text


def test_lazy_whoami_comes_from_the_session_with_its_expiry() -> None:
    client = sso_test_app(lazy(idle_timeout=600), "zoe@example.org", ZOE, login=True)
    report = client.get("/whoami").json
    assert report["user"] == "zoe@example.org"
    assert report["attributes"]["groups"] == ["staff", "a;b"]
    assert report["session_expires"] is not None
    assert report["session_expires"] <= report["front_end_session_expires"]


def test_whoami_shows_the_front_end_user_not_the_sessions_previous_one() -> None:
    middleware = lazy()
    client = sso_test_app(middleware, "zoe@example.org", login=True)
    rob = environ_for("shibboleth", "rob@example.org", {"displayName": "Rob"})
    report = client.get("/whoami", extra_environ=rob).json
    assert report["user"] == "rob@example.org"
    assert report["attributes"] == {"name": ["Rob"]}
    assert "zoe" not in json.dumps(report)


def test_whoami_after_logout_is_401() -> None:
    client = sso_test_app(lazy(), "zoe@example.org", login=True)
    client.get("/logout", status=302)
    client.get("/whoami", status=401)


def test_whoami_path_from_settings() -> None:
    middleware = SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_WHOAMI_PATH": "/me/sso"})
    assert sso_test_app(middleware, "zoe@example.org").get("/me/sso").json["user"] == "zoe@example.org"


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"whoami_path": "/login"}, "whoami_path", id="same as login"),
        pytest.param({"whoami_path": "whoami"}, "whoami_path", id="relative"),
        pytest.param({"whoami_path": "/who%C3%A4mi"}, "whoami_path", id="percent-escaped"),
        pytest.param({"whoami_path": "/wer-bin-ich/ö"}, "whoami_path", id="not ASCII, like login_path"),
    ],
)
def test_bad_whoami_path_is_a_config_error(options: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(setting)):
        SSOMiddleware(echo_app, **options)


def test_whoami_shows_the_apps_roles_for_the_user() -> None:
    middleware = app(roles=lambda identity: ["editor", "admin"] if identity.user == "zoe@example.org" else [])
    assert sso_test_app(middleware, "zoe@example.org").get("/whoami").json["roles"] == ["admin", "editor"]
    assert sso_test_app(middleware, "rob@example.org").get("/whoami").json["roles"] == []


# -- credentials are never shown, whatever they are mapped as ------------------------------

FRONT_SESSION = "_c0ffee0123456789abcdef"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ6b2UifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("name", "source", "value"),
    [
        pytest.param("access_token", "OIDC_access_token", "ya29.opaque-bearer", id="an access token"),
        pytest.param(
            "login", "Shib-Session-ID", FRONT_SESSION, id="the SP session id under an innocent name"
        ),
        pytest.param("sessionid", "sessionKey", "opaque-value-1", id="named like a session"),
        pytest.param("idtoken", "OIDC_id_token", JWT, id="an ID token"),
        pytest.param("assertion", "Shib-Assertion-01", "https://sp/assertion/1", id="a SAML assertion URL"),
        pytest.param("proof", "Cf-Access-Jwt-Assertion", "opaque-value-2", id="a JWT assertion source"),
        pytest.param("data", "X-Amzn-Oidc-Data", JWT, id="a JWT under an innocent name"),
        pytest.param("crumbs", "Cookie", "a=b; c=d", id="a cookie"),
        pytest.param("pw", "userPassword", "{SSHA}hash", id="a password"),
        pytest.param("key", "client_secret", "opaque-value-3", id="a secret"),
        pytest.param("claim", "sid", "opaque-value-4", id="an OIDC sid claim"),
        pytest.param("cas", "casTicket", "ST-1-opaque", id="a CAS ticket"),
        pytest.param("raw", "SAMLResponse", "PHNhbWw+", id="a SAML response"),
        pytest.param("auth", "Authorization", "Negotiate YII", id="an Authorization variable"),
        pytest.param("k", "X-Api-Key", "opaque-value-5", id="an API key"),
        pytest.param("Session_Index", "idx", "opaque-value-6", id="the app's name says session"),
        pytest.param("ref", "mirror", FRONT_SESSION, id="a value equal to the front end's session id"),
    ],
)
def test_whoami_redacts_a_credential_mapped_as_an_attribute(name: str, source: str, value: str) -> None:
    middleware = SSOMiddleware(echo_app, attributes={name: source}, whoami_path="/whoami")
    environ = environ_for("shibboleth", "zoe@example.org", {source: value}, session_id=FRONT_SESSION)
    environ[source] = value  # exactly this value, even for a variable the builder also sets
    client = TestApp(middleware, extra_environ={**HTTPS_ENVIRON, **environ})
    report = client.get("/whoami").json
    assert report["redacted"] == [name]
    assert name not in report["attributes"]
    assert name not in report["not_released"]
    for headers in ({}, HTML):
        body = client.get("/whoami", headers=headers).text
        assert value not in body
        assert FRONT_SESSION not in body
    assert "redacted: it carries a credential" in client.get("/whoami", headers=HTML).text


def test_whoami_still_shows_ordinary_attributes_next_to_a_redacted_one() -> None:
    attributes = {"email": "mail", "token": "OIDC_access_token"}
    middleware = SSOMiddleware(echo_app, attributes=attributes, whoami_path="/whoami")
    environ = environ_for(
        "shibboleth", "zoe@example.org", {"mail": "zoe@example.org", "OIDC_access_token": "t"}
    )
    report = TestApp(middleware, extra_environ={**HTTPS_ENVIRON, **environ}).get("/whoami").json
    assert report["attributes"] == {"email": ["zoe@example.org"]}
    assert report["redacted"] == ["token"]


# -- extreme but valid times are shown, never a 500 ---------------------------------------

EXTREME_TIMES = [
    pytest.param("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+00:00", id="first day, east of UTC"),
    pytest.param("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59+00:00", id="last day, west of UTC"),
    pytest.param("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00", id="first instant in UTC"),
    pytest.param("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59+00:00", id="last instant in UTC"),
    pytest.param("253402300799", "9999-12-31T23:59:59+00:00", id="last epoch second"),
]


@pytest.mark.parametrize(("sent", "shown"), EXTREME_TIMES)
def test_whoami_shows_extreme_front_end_times_instead_of_a_500(sent: str, shown: str) -> None:
    environ = environ_for("shibboleth", "zoe@example.org", ZOE)
    environ["Shib-Authentication-Instant"] = environ["Shib-Session-Expires"] = sent
    client = TestApp(app(), extra_environ={**HTTPS_ENVIRON, **environ})
    report = client.get("/whoami").json
    assert report["authenticated_at"] == shown
    assert report["front_end_session_expires"] == shown
    assert "<h1>Who am I</h1>" in client.get("/whoami", headers=HTML).text


@pytest.mark.parametrize(("sent", "shown"), EXTREME_TIMES)
def test_extreme_front_end_times_with_a_session_are_not_a_500(sent: str, shown: str) -> None:
    environ = environ_for("shibboleth", "zoe@example.org", ZOE)
    environ["Shib-Authentication-Instant"] = environ["Shib-Session-Expires"] = sent
    client = TestApp(lazy(), extra_environ={**HTTPS_ENVIRON, **environ})
    client.get("/login", status=302)
    report = client.get("/whoami").json
    assert report["authenticated_at"] == shown


@pytest.mark.parametrize(
    "auth_time",
    [
        pytest.param(253402300799, id="last representable second"),
        pytest.param(253402300800, id="one second past year 9999"),
        pytest.param(10**20, id="huge"),
        pytest.param(-(10**20), id="huge negative"),
        pytest.param(-62135596800, id="first second of year 1"),
        pytest.param(-1, id="just before the epoch"),
        pytest.param(1e308, id="largest float"),
        pytest.param(0.5, id="fraction"),
    ],
)
def test_signed_auth_time_out_of_range_is_not_a_500(auth_time: float) -> None:
    signer = TestSigner("ES256")
    middleware = SSOMiddleware(
        echo_app,
        profile="pomerium",
        jwks=signer.jwks,
        issuer=signer.issuer,
        audience=signer.audience,
        whoami_path="/whoami",
    )
    token = signer.sign(signer.claims("zoe@example.org", {"auth_time": auth_time}))
    client = TestApp(middleware, extra_environ=HTTPS_ENVIRON)
    for headers in ({}, HTML):
        response = client.get(
            "/whoami", headers={**headers, "X-Pomerium-Jwt-Assertion": token}, expect_errors=True
        )
        assert response.status_int in (200, 400, 401)
    report = client.get("/whoami", headers={"X-Pomerium-Jwt-Assertion": token}, expect_errors=True)
    if report.status_int == 200:
        moment = report.json["authenticated_at"]
        assert moment is None or moment.startswith(("0001-", "9999-", "1969-", "1970-"))
