"""Attacks on the pages the middleware serves, the error_page hook, the development front end and TestSigner files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from webtest import TestApp
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.authz import HasAttribute, Rule
from shibwsgi.flask import SSO, requires
from shibwsgi.testing import DevFrontEnd, environ_for
from shibwsgi.testing.frontend import SampleUser
from shibwsgi.testing.signed import TestSigner

HTML = {"Accept": "text/html"}
XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
ATTRIBUTES = {"name": "displayName", "groups": "isMemberOf:multi"}


def inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"inner"]


def middleware(**options: Any) -> SSOMiddleware:
    options.setdefault("attributes", ATTRIBUTES)
    options.setdefault("rules", [Rule("/admin", HasAttribute("groups", "admins"))])
    return SSOMiddleware(inner, whoami_path="/whoami", **options)


def assert_inert(body: bytes) -> None:
    """No markup from the request made it into the page unescaped."""
    text = body.decode("utf-8", "replace")
    for raw in ("<script", "<img"):
        assert raw not in text, raw


def assert_safe_headers(headers: Any, *, policy: bool = True) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    if policy:
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


# --- XSS and headers on the built-in pages -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "environ", "status"),
    [
        pytest.param("/admin", {}, 302, id="anonymous on a rule: login redirect"),
        pytest.param(
            "/admin",
            environ_for("shibboleth", XSS, {"displayName": XSS}),
            403,
            id="403 for a hostile user id",
        ),
        pytest.param(
            "/admin",
            environ_for("shibboleth", "zoe@example.org", {"isMemberOf": [XSS]}),
            403,
            id="403 hostile group",
        ),
        pytest.param("/whoami", {}, 401, id="anonymous whoami"),
        pytest.param("/x", {"eppn": "a\udcff<script>", "Shib-Session-ID": "_s"}, 400, id="undecodable user"),
        pytest.param("/admin\x00<script>", {}, 400, id="control character path"),
    ],
)
def test_built_in_page_escapes_and_carries_security_headers(
    path: str, environ: dict[str, str], status: int
) -> None:
    app = TestApp(middleware())
    response = app.get("/", extra_environ={**environ, "PATH_INFO": path}, headers=HTML, expect_errors=True)
    assert response.status_int == status, response.body[:300]
    assert_inert(response.body)
    assert_safe_headers(response.headers)


def test_whoami_escapes_user_attribute_values_names_and_sources() -> None:
    app = TestApp(middleware(attributes={"name": "displayName", "groups": "isMemberOf:multi", "x<b>": "sn"}))
    environ = environ_for("shibboleth", XSS, {"displayName": XSS, "isMemberOf": [XSS, "ok"], "sn": XSS})
    response = app.get("/whoami", extra_environ=environ, headers=HTML)
    assert_inert(response.body)
    assert "&lt;script&gt;" in response.text
    assert_safe_headers(response.headers)


@pytest.mark.parametrize(
    ("environ", "path"),
    [
        pytest.param({"HTTP_HOST": "evil.example"}, "/whoami", id="hostile Host"),
        pytest.param({"HTTP_X_FORWARDED_HOST": "evil.example"}, "/whoami", id="X-Forwarded-Host"),
        pytest.param({"SCRIPT_NAME": "//evil.example"}, "/whoami", id="scheme-relative SCRIPT_NAME"),
        pytest.param({"SCRIPT_NAME": "https://evil.example"}, "/whoami", id="absolute SCRIPT_NAME"),
        pytest.param({"SCRIPT_NAME": "//evil.example"}, "/admin", id="SCRIPT_NAME on a 403"),
        pytest.param({"SCRIPT_NAME": '/"><script>'}, "/whoami", id="markup in SCRIPT_NAME"),
    ],
)
def test_way_back_links_never_leave_the_site(environ: dict[str, str], path: str) -> None:
    app = middleware()
    signed_in = environ_for("shibboleth", "zoe@example.org", {"isMemberOf": ["staff"]})
    for extra in ({}, signed_in):
        # Straight to the app: WebTest refuses a SCRIPT_NAME that does not start with "/".
        request = EnvironBuilder(path=path, headers=HTML).get_environ()
        request.update(environ, **extra, PATH_INFO=path)
        response = Response.from_app(app, request)
        hrefs = [part.split('"', 1)[0] for part in response.get_data(as_text=True).split('href="')[1:]]
        hrefs += [response.headers["Location"]] if "Location" in response.headers else []
        assert hrefs
        for href in hrefs:
            assert href.startswith("/") and not href.startswith("//"), href
        assert "evil.example/" not in response.get_data(as_text=True).replace("/evil.example", "")
        assert_inert(response.data)


# --- the error_page hook ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: 1 / 0, id="raises"),
        pytest.param(lambda: b"<p>bytes</p>", id="bytes"),
        pytest.param(lambda: 404, id="number"),
        pytest.param(lambda: ["<p>", "list</p>"], id="list"),
        pytest.param(lambda: "page with a lone surrogate \ud800", id="lone surrogate"),
    ],
)
@pytest.mark.parametrize(
    ("path", "signed_in", "status"),
    [
        pytest.param("/admin", True, 403, id="403"),
        pytest.param("/whoami", False, 401, id="401"),
    ],
)
def test_error_page_hook_that_misbehaves_gives_the_built_in_page_not_a_500(
    answer: Any, path: str, signed_in: bool, status: int
) -> None:
    app = TestApp(middleware(error_page=lambda status, message, environ: answer()))
    environ = environ_for("shibboleth", "zoe@example.org", {"isMemberOf": ["staff"]}) if signed_in else {}
    response = app.get(path, extra_environ=environ, headers=HTML, expect_errors=True)
    assert response.status_int == status
    assert "<!doctype html>" in response.text
    assert_safe_headers(response.headers)


def test_error_page_hook_page_keeps_nosniff_and_no_store() -> None:
    app = TestApp(middleware(error_page=lambda status, message, environ: f"<p>{status}</p>"))
    response = app.get("/whoami", headers=HTML, expect_errors=True)
    assert (response.status_int, response.text) == (401, "<p>401</p>")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_error_page_hook_is_not_called_for_api_clients() -> None:
    calls: list[int] = []
    app = TestApp(middleware(error_page=lambda status, message, environ: calls.append(status) or "x"))
    response = app.get("/whoami", headers={"Accept": "application/json"}, expect_errors=True)
    assert (response.status_int, response.json["status"], calls) == (401, 401, [])


def test_error_page_hook_renders_a_flask_requires_refusal() -> None:
    app = Flask(__name__)
    SSO(app, attributes=ATTRIBUTES, error_page=lambda status, message, environ: f"<p>app page {status}</p>")

    @app.get("/editors")
    @requires(HasAttribute("groups", "movie-editors"))
    def editors() -> str:
        return "editors"

    environ = environ_for("shibboleth", "rob@example.org", {"isMemberOf": ["staff"]})
    response = app.test_client().get("/editors", headers=HTML, environ_base=environ)
    assert (response.status_code, response.get_data(as_text=True)) == (403, "<p>app page 403</p>")


# --- the development front end ---------------------------------------------------------------


def front_end(**options: Any) -> TestApp:
    return TestApp(DevFrontEnd(middleware(), **options))


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("10.0.0.1", id="private address"),
        pytest.param("::ffff:10.0.0.1", id="IPv4-mapped private"),
        pytest.param("", id="empty"),
        pytest.param("127.0.0.1, 10.0.0.1", id="list of addresses"),
        pytest.param("127.0.0.1%lo", id="scoped"),
        pytest.param("localhost", id="host name"),
    ],
)
def test_dev_front_end_serves_nobody_off_loopback(address: str) -> None:
    response = front_end().get("/Shibboleth.sso/Login", extra_environ={"REMOTE_ADDR": address}, status=403)
    assert_safe_headers(response.headers)


def test_dev_front_end_warns_loudly_when_made(caplog: pytest.LogCaptureFixture) -> None:
    front_end()
    assert any("DEVELOPMENT FRONT END" in record.getMessage() for record in caplog.records)


def test_dev_sign_in_form_escapes_the_target_and_the_users() -> None:
    users = {"x": SampleUser(XSS, {"displayName": XSS, "isMemberOf": (XSS,)})}
    app = front_end(users=users)
    response = app.get(
        "/Shibboleth.sso/Login", params={"target": XSS}, extra_environ={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert_inert(response.body)
    assert_safe_headers(response.headers)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("//evil.example/", id="scheme-relative"),
        pytest.param("https://evil.example/", id="absolute elsewhere"),
        pytest.param("/\\evil.example", id="backslash"),
        pytest.param("https://localhost@evil.example/", id="userinfo"),
        pytest.param("https://evil.example#@localhost/", id="fragment trick"),
    ],
)
def test_dev_sign_in_never_sends_the_browser_off_site(target: str) -> None:
    app = front_end()
    response = app.post(
        "/Shibboleth.sso/Login",
        {"user": "ada", "target": target},
        extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost"},
    )
    assert response.status_int == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"HTTP_EPPN": "admin@example.org"}, id="header user"),
        pytest.param({"HTTP_ISMEMBEROF": "admins"}, id="header group"),
    ],
)
def test_dev_front_end_passes_no_forged_user_through(forged: dict[str, str]) -> None:
    app = front_end()
    response = app.get("/admin", extra_environ={"REMOTE_ADDR": "127.0.0.1", **forged}, expect_errors=True)
    assert response.status_int in (401, 302)


@pytest.mark.parametrize(
    "users",
    [
        pytest.param({"x": SampleUser("x", {"displayName": 5})}, id="number as display name"),
        pytest.param({"x": SampleUser("x", {"isMemberOf": 3})}, id="number as groups"),
    ],
)
def test_dev_front_end_users_of_the_wrong_type_are_a_config_error(users: dict[str, SampleUser]) -> None:
    with pytest.raises(ConfigError, match="users"):
        DevFrontEnd(inner, users=users)


# --- a production middleware never takes the development key --------------------------------


def test_token_signed_by_the_demo_key_is_refused_by_a_configuration_with_other_keys() -> None:
    demo, real = TestSigner(), TestSigner()
    app = TestApp(
        SSOMiddleware(inner, profile="pomerium", jwks=real.jwks, issuer=real.issuer, audience=real.audience)
    )
    environ = environ_for("pomerium", "admin@example.org", signer=demo)
    response = app.get("/whoami", extra_environ=environ, expect_errors=True)
    assert response.status_int in (400, 401)


def test_token_signed_by_the_demo_key_with_the_real_kid_is_refused() -> None:
    real = TestSigner()
    forger = TestSigner(kid=real.kid, issuer=real.issuer, audience=real.audience)
    app = TestApp(
        SSOMiddleware(inner, profile="pomerium", jwks=real.jwks, issuer=real.issuer, audience=real.audience)
    )
    response = app.get(
        "/whoami",
        extra_environ=environ_for("pomerium", "admin@example.org", signer=forger),
        expect_errors=True,
    )
    assert response.status_int in (400, 401)


def test_demo_front_end_jwks_path_is_not_served_by_the_middleware_alone() -> None:
    app = TestApp(middleware())
    assert TestApp(middleware()).get("/devfrontend/jwks.json").text == "inner"
    assert app.get("/devfrontend/keys/x").text == "inner"


# --- TestSigner files ---------------------------------------------------------------------------


def test_saved_key_file_is_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        TestSigner().save(tmp_path / "a.json")
        TestSigner().save(tmp_path / "b.json", replace=False)
    finally:
        os.umask(old)
    for name in ("a.json", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_save_replace_false_loses_to_the_first_writer(tmp_path: Path) -> None:
    first, second = TestSigner(), TestSigner()
    first.save(tmp_path / "k.json", replace=False)
    with pytest.raises(FileExistsError):
        second.save(tmp_path / "k.json", replace=False)
    assert TestSigner.load(tmp_path / "k.json").kid == first.kid
    assert [path.name for path in tmp_path.iterdir()] == ["k.json"]  # no temporary file left


def test_save_does_not_write_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "k.json").symlink_to(victim)
    with pytest.raises(FileExistsError):
        TestSigner().save(tmp_path / "k.json", replace=False)
    TestSigner().save(tmp_path / "k.json")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe garbage", id="not UTF-8"),
        pytest.param(b"[1, 2]", id="a list"),
        pytest.param(b'"text"', id="a string"),
        pytest.param(b'{"private_key": 5}', id="number as key"),
        pytest.param(
            b'{"algorithm": "ES256", "kid": "k", "issuer": "i", "audience": "a", "private_key": 5}',
            id="number key, full",
        ),
        pytest.param(
            b'{"algorithm": "ES256", "kid": "k", "issuer": "i", "audience": "a", "private_key": "x"}',
            id="not PEM",
        ),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep JSON"),
    ],
)
def test_load_of_a_hostile_file_is_a_value_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        TestSigner.load(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("kid", 5, id="number kid"),
        pytest.param("issuer", ["a", "b"], id="list issuer"),
        pytest.param("algorithm", "HS256", id="symmetric algorithm"),
        pytest.param("algorithm", "RS256", id="algorithm of another key type"),
    ],
)
def test_load_of_a_file_with_mistyped_fields_is_a_value_error(tmp_path: Path, field: str, value: Any) -> None:
    path = tmp_path / "k.json"
    TestSigner().save(path)
    document = json.loads(path.read_text())
    document[field] = value
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError):
        TestSigner.load(path)


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("https://evil.example", id="another site"),
        pytest.param("null", id="opaque origin"),
        pytest.param("http://localhost.evil.example", id="look-alike host"),
        pytest.param("http://localhost:8081", id="another port"),
    ],
)
def test_dev_sign_in_refuses_a_cross_site_post(origin: str) -> None:
    response = front_end().post(
        "/Shibboleth.sso/Login",
        {"user": "ada", "target": "/"},
        headers={"Origin": origin},
        extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost"},
        status=403,
    )
    assert "Set-Cookie" not in response.headers
