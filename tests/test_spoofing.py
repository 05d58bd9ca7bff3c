"""Regression tests named after the attacks they block: a client must never set who it is."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, SSOMiddleware
from tests.helpers import echo_app

PROXY = "10.0.0.5"


def call(environ: dict[str, str], headers: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    app = TestApp(SSOMiddleware(echo_app, **options))
    body: dict[str, Any] = app.get("/", headers=headers or {}, extra_environ=environ).json
    return body


SPOOFED_HEADERS = [
    pytest.param("shibboleth", {"eppn": "admin@example.org"}, id="eppn"),
    pytest.param("shibboleth", {"Remote-User": "admin"}, id="Remote-User"),
    pytest.param("shibboleth", {"X-Remote-User": "admin"}, id="X-Remote-User"),
    pytest.param("shibboleth", {"Shib-Session-ID": "_stolen"}, id="Shib-Session-ID"),
    pytest.param("shibboleth", {"X-Forwarded-User": "admin"}, id="X-Forwarded-User"),
    pytest.param("openidc", {"OIDC-CLAIM-sub": "admin"}, id="OIDC-CLAIM-sub"),
    pytest.param("openidc", {"OIDC_CLAIM_sub": "admin"}, id="OIDC_CLAIM_sub with underscores"),
    pytest.param("openidc", {"OIDC-id-token-payload": '{"sub":"admin"}'}, id="OIDC id token payload"),
    pytest.param("mellon", {"Mellon-uid": "admin", "Mellon-uid-0": "admin"}, id="MELLON series"),
    pytest.param("adfs", {"ADFS-LOGIN": "admin"}, id="ADFS_LOGIN"),
    pytest.param("oauth2-proxy", {"X-Forwarded-User": "admin"}, id="oauth2-proxy X-Forwarded-User"),
    pytest.param("oauth2-proxy", {"X-Auth_Request-User": "admin"}, id="oauth2-proxy underscore variant"),
]


@pytest.mark.parametrize(("profile", "headers"), SPOOFED_HEADERS)
def test_client_header_cannot_authenticate(profile: str, headers: dict[str, str]) -> None:
    body = call({}, headers, profile=profile)
    assert body["identity"] is None
    assert body["remote_user"] is None


@pytest.mark.parametrize(("profile", "headers"), SPOOFED_HEADERS)
def test_client_header_lookalikes_are_removed_before_the_app(profile: str, headers: dict[str, str]) -> None:
    body = call({}, headers, profile=profile)
    assert body["http_keys"] == ["HTTP_HOST"]


def test_client_header_cannot_set_eppn_over_real_session() -> None:
    body = call(
        {"eppn": "alice@example.org", "mail": "alice@example.org"},
        {"eppn": "admin@example.org", "mail": "admin@example.org", "Remote-User": "admin"},
        attributes={"email": "mail"},
    )
    assert body["identity"]["user"] == "alice@example.org"
    assert body["identity"]["attributes"] == {"email": ["alice@example.org"]}
    assert body["remote_user"] == "alice@example.org"


def test_client_header_cannot_add_a_group() -> None:
    body = call(
        {"eppn": "alice@example.org"},
        {"isMemberOf": "admins"},
        attributes={"groups": Attribute("isMemberOf", multi=True)},
    )
    assert body["identity"]["attributes"] == {}


def test_client_header_cannot_change_front_end_session_id() -> None:
    body = call({"eppn": "a@x", "Shib-Session-ID": "_real"}, {"Shib-Session-ID": "_forged"})
    assert body["identity"]["session_id"] == "_real"


def test_anonymous_request_has_no_remote_user_even_if_server_left_one() -> None:
    # A lazy Shibboleth location without a session leaves REMOTE_USER empty.
    body = call({"REMOTE_USER": ""})
    assert "remote_user" in body
    assert body["remote_user"] is None


HEADER_OPTIONS: dict[str, Any] = {
    "profile": "oauth2-proxy",
    "channel": "headers",
    "trusted_proxies": ["10.0.0.0/24"],
    "attributes": {"email": "email"},
}
FORWARDED = {"X-Forwarded-User": "admin", "X-Forwarded-Email": "admin@x"}


def test_header_channel_from_untrusted_peer_is_anonymous(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        body = call({"REMOTE_ADDR": "203.0.113.9"}, FORWARDED, **HEADER_OPTIONS)
    assert body["identity"] is None
    assert "HTTP_X_FORWARDED_USER" not in body["http_keys"]
    assert "203.0.113.9" in caplog.text
    assert "admin" not in caplog.text


def test_untrusted_peer_warning_is_logged_once_per_peer(caplog: pytest.LogCaptureFixture) -> None:
    app = TestApp(SSOMiddleware(echo_app, **HEADER_OPTIONS))
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        for _ in range(3):
            app.get("/", headers=FORWARDED, extra_environ={"REMOTE_ADDR": "203.0.113.9"})
    assert caplog.text.count("203.0.113.9") == 1


def test_header_channel_from_trusted_peer_is_believed() -> None:
    body = call({"REMOTE_ADDR": PROXY}, FORWARDED, **HEADER_OPTIONS)
    assert body["identity"]["user"] == "admin"


def test_header_channel_trusted_peer_still_scrubs_headers_it_does_not_read() -> None:
    body = call(
        {"REMOTE_ADDR": PROXY},
        {**FORWARDED, "Remote-User": "root", "X-Remote-User": "root"},
        **HEADER_OPTIONS,
    )
    assert body["identity"]["user"] == "admin"
    assert "HTTP_REMOTE_USER" not in body["http_keys"]
    assert "HTTP_X_REMOTE_USER" not in body["http_keys"]


SECRET = "s3cret-shared-with-the-proxy"


@pytest.mark.parametrize(
    ("secret_header", "authenticated"),
    [
        pytest.param(SECRET, True, id="right secret"),
        pytest.param("wrong-secret-wrong-secret", False, id="wrong secret"),
        pytest.param(None, False, id="no secret"),
    ],
)
def test_header_channel_proxy_secret(secret_header: str | None, authenticated: bool) -> None:
    headers = dict(FORWARDED)
    if secret_header is not None:
        headers["X-Shibwsgi-Proxy-Secret"] = secret_header
    body = call({"REMOTE_ADDR": PROXY}, headers, proxy_secret=SECRET, **HEADER_OPTIONS)
    assert (body["identity"] is not None) is authenticated
    assert "HTTP_X_SHIBWSGI_PROXY_SECRET" not in body["http_keys"]


def test_x_auth_user_underscore_collision_cannot_pose_as_proxy_variable() -> None:
    # CVE-2015-0219: "X-Auth_User" and "X-Auth-User" both become HTTP_X_AUTH_USER.
    # In the environ channel the proxy passes the user as a server variable; both
    # client spellings are scrubbed and neither can authenticate.
    profile_options: dict[str, Any] = {"profile": "remote-user", "user": "X-Auth-User"}
    for spelling in ("X-Auth-User", "X-Auth_User"):
        body = call({}, {spelling: "admin"}, **profile_options)
        assert body["identity"] is None
        assert "HTTP_X_AUTH_USER" not in body["http_keys"]
    body = call({"X-Auth-User": "alice"}, {"X-Auth_User": "admin"}, **profile_options)
    assert body["identity"]["user"] == "alice"


def test_header_channel_ignores_server_variable_spelling() -> None:
    # In the header channel only HTTP_* keys count; a plain key is not read.
    body = call({"REMOTE_ADDR": PROXY, "X-Forwarded-User": "admin"}, {}, **HEADER_OPTIONS)
    assert body["identity"] is None
