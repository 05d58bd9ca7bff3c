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
