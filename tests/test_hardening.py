"""Regression tests for the adversarial review's findings, each named after its attack.

Every test here failed before its fix. Each class of flaw is tested with several
members, not only the example that found it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from shibwsgi import Attribute, ConfigError, Identity, Profile, SSOMiddleware
from shibwsgi.authz import HasAttribute, LoggedIn, Public, Rule
from shibwsgi.sessions import MemoryStore, SQLiteStore
from shibwsgi.testing import environ_for
from tests.helpers import echo_app, mojibake

SECRET = "0123456789abcdef-hardening"
GROUPS = {"groups": Attribute("isMemberOf", multi=True)}
READER = environ_for("shibboleth", "rob@example.org", {"isMemberOf": ["staff"]})
EDITOR = environ_for("shibboleth", "ed@example.org", {"isMemberOf": ["editors"]})


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Call a WSGI app with a raw environ (no client library in between): status, headers, body."""
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "sp.example.org",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "sp.example.org",
        "wsgi.url_scheme": "https",
        "wsgi.input": None,
        "wsgi.errors": None,
    }
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(headers)

    body = b"".join(app({**base, **environ}, start_response))
    return captured["status"], captured["headers"], body


def identity_json(body: bytes) -> dict[str, Any] | None:
    identity: dict[str, Any] | None = json.loads(body)["identity"]
    return identity


# -- 1. non-ASCII rule prefixes ---------------------------------------------------------

NON_ASCII_PREFIXES = ["/café", "/日本/admin", "/Zoë-Łukasz", "/🙂"]


@pytest.mark.parametrize("prefix", NON_ASCII_PREFIXES)
@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda p: p, id="exact"),
        pytest.param(lambda p: p + "/sub", id="below"),
        pytest.param(lambda p: "/x/.." + p, id="dot segments"),
        pytest.param(lambda p: "/" + p, id="double slash"),
        pytest.param(lambda p: p + "/", id="trailing slash"),
    ],
)
def test_non_ascii_rule_prefix_cannot_be_bypassed(prefix: str, spelling: Callable[[str], str]) -> None:
    rules = [Rule(prefix, HasAttribute("groups", "editors")), Rule("/", Public())]
    app = SSOMiddleware(echo_app, attributes=GROUPS, rules=rules)
    path = mojibake(spelling(prefix))  # PATH_INFO carries the UTF-8 bytes as latin-1 text
    assert call(app, {**READER, "PATH_INFO": path})[0] == 403
    assert call(app, {**EDITOR, "PATH_INFO": path})[0] == 200


def test_non_ascii_rule_prefix_does_not_match_a_longer_name() -> None:
    app = SSOMiddleware(echo_app, attributes=GROUPS, rules=[Rule("/café", LoggedIn())])
    assert call(app, {"PATH_INFO": mojibake("/cafés")})[0] == 200


@pytest.mark.parametrize("prefix", ["/caf%C3%A9", "/a%2Fb"])
def test_percent_escaped_rule_prefix_is_a_config_error(prefix: str) -> None:
    with pytest.raises(ConfigError, match="decoded path"):
        Rule(prefix, LoggedIn())


@pytest.mark.parametrize("setting", ["login_path", "logout_path"])
@pytest.mark.parametrize("path", ["/connexion-é", "/log%69n"])
def test_non_ascii_or_escaped_endpoint_path_is_a_config_error(setting: str, path: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        SSOMiddleware(echo_app, **{setting: path})


def test_endpoints_on_one_path_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="logout_path: must differ from login_path"):
        SSOMiddleware(echo_app, login_path="/sso", logout_path="/sso")


# -- 2. any bytes in any header: never a 500 ---------------------------------------------

HOSTILE_HEADER_VALUES = [
    pytest.param("legacy=caf\xe9", id="latin-1 byte in another cookie"),
    pytest.param("a=\xff\xfe\x80", id="bytes that are no UTF-8 at all"),
    pytest.param('x="unterminated', id="unpaired quote"),
    pytest.param("=\x00\x01\x7f", id="control characters"),
    pytest.param(";;;===;;", id="only separators"),
    pytest.param("a=" + "\xe9" * 8000, id="8 KB of latin-1"),
]


@pytest.fixture(params=["memory", "sqlite"])
def session_app(request: pytest.FixtureRequest, tmp_path: Any) -> SSOMiddleware:
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.sqlite3")
    return SSOMiddleware(
        echo_app,
        session=store,
        secret_key=SECRET,
        auth_path="/_auth",
        whoami_path="/whoami",
        rules=[Rule("/admin", HasAttribute("groups", "x")), Rule("/", Public())],
    )


@pytest.mark.parametrize("cookie", HOSTILE_HEADER_VALUES)
@pytest.mark.parametrize("path", ["/", "/login", "/logout"])
def test_non_utf8_cookie_header_is_not_a_500(session_app: SSOMiddleware, cookie: str, path: str) -> None:
    status, _, _ = call(session_app, {"HTTP_COOKIE": cookie, "PATH_INFO": path})
    assert status in (200, 302, 401)


@pytest.mark.parametrize("cookie", HOSTILE_HEADER_VALUES)
def test_session_survives_another_apps_non_utf8_cookie(session_app: SSOMiddleware, cookie: str) -> None:
    status, headers, _ = call(session_app, {**READER, "PATH_INFO": "/login"})
    assert status == 302
    ours = headers["Set-Cookie"].split(";", 1)[0]
    for header in (f"{cookie}; {ours}", f"{ours}; {cookie}"):
        status, _, body = call(session_app, {"HTTP_COOKIE": header})
        assert status == 200
        identity = identity_json(body)
        assert identity is not None
        assert identity["user"] == "rob@example.org"


HEADERS = [
    "HTTP_COOKIE",
    "HTTP_HOST",
    "HTTP_ACCEPT",
    "HTTP_AUTHORIZATION",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_ORIGINAL_URI",
    "HTTP_X_ORIGINAL_METHOD",
    "QUERY_STRING",
]


@pytest.mark.parametrize("key", HEADERS)
@pytest.mark.parametrize("path", ["/", "/login", "/logout", "/café", "/_auth", "/whoami"])
def test_every_byte_in_a_header_is_answered_without_a_500(
    session_app: SSOMiddleware, key: str, path: str
) -> None:
    for code in range(256):
        for value in (chr(code), f"a{chr(code)}b=c{chr(code)}", "next=/" + chr(code)):
            environ = {key: value, "PATH_INFO": mojibake(path)}
            status, _, _ = call(session_app, environ)
            assert status < 500, (key, code, path)
            status, _, _ = call(session_app, {**environ, **READER})
            assert status < 500, (key, code, path)


# -- 3. REMOTE_USER decoded as its front end sends it ------------------------------------


@pytest.mark.parametrize(
    ("options", "remote_user", "expected"),
    [
        pytest.param(
            {"profile": "openidc", "encoding": "base64url"}, "YWRtaW4", "YWRtaW4", id="openidc base64url"
        ),
        pytest.param({"profile": "openidc", "encoding": "url"}, "a%64min", "a%64min", id="openidc url"),
        pytest.param({"profile": "openidc"}, mojibake("zoë@idp"), "zoë@idp", id="openidc latin-1 gets UTF-8"),
        pytest.param({"profile": "mellon"}, mojibake("zoë"), "zoë", id="mellon plain UTF-8"),
        pytest.param({"profile": "remote-user"}, "YWRtaW4", "YWRtaW4", id="remote-user"),
        pytest.param(
            {"profile": "shibboleth", "encoding": "url"},
            "zo%C3%AB%40x",
            "zoë@x",
            id="shibboleth URL-encodes it",
        ),
    ],
)
def test_plain_remote_user_is_not_decoded_as_a_claim(
    options: dict[str, Any], remote_user: str, expected: str
) -> None:
    app = SSOMiddleware(echo_app, user="REMOTE_USER", **options)
    status, _, body = call(app, {"REMOTE_USER": remote_user})
    assert status == 200
    identity = identity_json(body)
    assert identity is not None
    assert identity["user"] == expected


# -- 4. a user value holding several values is refused, never truncated -------------------

MULTI_VALUED_USERS = [
    pytest.param(
        {"profile": "openidc", "user": "preferred_username"},
        {"OIDC_CLAIM_preferred_username": "admin,mallory"},
        id="openidc joined claim",
    ),
    pytest.param(
        {"profile": "openidc"},
        {"OIDC_id_token_payload": json.dumps({"sub": ["admin", "mallory"]})},
        id="openidc JSON list",
    ),
    pytest.param(
        {"profile": "oauth2-proxy", "channel": "headers", "trusted_proxies": ["127.0.0.1"]},
        {"HTTP_X_FORWARDED_USER": "admin, alice"},
        id="merged X-Forwarded-User",
    ),
    pytest.param({"profile": "shibboleth"}, {"eppn": "admin@x;alice@x"}, id="shibboleth eppn"),
    pytest.param({"profile": "adfs"}, {"ADFS_LOGIN": "admin;alice"}, id="adfs login"),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "admin", "MELLON_uid_0": "admin", "MELLON_uid_1": "alice"},
        id="mellon series",
    ),
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"}, {"eppn": "admin%40x;alice%40x"}, id="shibboleth url"
    ),
]


@pytest.mark.parametrize(("options", "environ"), MULTI_VALUED_USERS)
def test_user_value_that_splits_is_refused_not_truncated(
    options: dict[str, Any], environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = SSOMiddleware(echo_app, **options)
    status, _, body = call(app, environ)
    assert status == 400
    assert b"one value" in body
    assert b"admin" not in body and b"alice" not in body and b"mallory" not in body
    assert "single-valued attribute" in caplog.text


@pytest.mark.parametrize(
    ("options", "environ", "user"),
    [
        pytest.param({}, {"eppn": r"odd\;name@x"}, "odd;name@x", id="escaped delimiter is one value"),
        pytest.param({"profile": "remote-user"}, {"REMOTE_USER": "a;b"}, "a;b", id="REMOTE_USER never split"),
    ],
)
def test_single_user_values_still_work(options: dict[str, Any], environ: dict[str, str], user: str) -> None:
    status, _, body = call(SSOMiddleware(echo_app, **options), environ)
    assert status == 200
    identity = identity_json(body)
    assert identity is not None
    assert identity["user"] == user


def test_standard_claim_with_several_values_is_refused() -> None:
    app = SSOMiddleware(echo_app, profile="openidc")
    payload = json.dumps({"sub": "u", "sid": ["s1", "s2"]})
    assert call(app, {"OIDC_id_token_payload": payload})[0] == 400


# -- 5. hostile JSON claims --------------------------------------------------------------

HOSTILE_JSON = [
    pytest.param("[" * 1000 + "]" * 1000, 400, id="nested arrays 1000 deep"),
    pytest.param("[" * 100_000, 400, id="unclosed arrays 100000 deep"),
    pytest.param('{"a":' * 5000 + "1" + "}" * 5000, 400, id="nested objects 5000 deep"),
    pytest.param(
        json.dumps({"sub": "u", "name": json.loads("[" * 40 + "]" * 40)}), 400, id="read claim 40 deep"
    ),
    pytest.param("[]", 400, id="not an object"),
    pytest.param("{not json", 400, id="malformed"),
    pytest.param('{"sub": 1' + "0" * 5000 + "}", 400, id="integer past the digit limit"),
    pytest.param(json.dumps({"sub": "u", "big": "x" * 300_000}), 431, id="over the size cap"),
]


@pytest.mark.parametrize("variable", ["OIDC_userinfo_json", "OIDC_id_token_payload"])
@pytest.mark.parametrize(("document", "status"), HOSTILE_JSON)
def test_hostile_json_claims_are_refused_cleanly(variable: str, document: str, status: int) -> None:
    app = SSOMiddleware(echo_app, profile="openidc", attributes={"name": "name"})
    assert call(app, {variable: document})[0] == status


def test_deep_claim_that_is_not_read_does_not_matter() -> None:
    app = SSOMiddleware(echo_app, profile="openidc")
    payload = json.dumps({"sub": "u", "unused": json.loads("[" * 200 + "]" * 200)})
    assert call(app, {"OIDC_id_token_payload": payload})[0] == 200


# -- 6. lone surrogates never enter an Identity --------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param('{"sub": "u", "name": "Al\\ud800ice"}', id="lone high surrogate"),
        pytest.param('{"sub": "u", "name": "Al\\udc00ice"}', id="lone low surrogate"),
        pytest.param('{"sub": "u", "name": ["ok", "\\udfff\\ud800"]}', id="reversed pair in a list"),
        pytest.param('{"sub": "u", "name": {"k": "\\ud800"}}', id="nested in an object"),
    ],
)
def test_lone_surrogate_from_json_escape_is_replaced(payload: str) -> None:
    app = SSOMiddleware(echo_app, profile="openidc", attributes={"name": Attribute("name", multi=True)})
    status, _, body = call(app, {"OIDC_id_token_payload": payload})
    assert status == 200
    identity = identity_json(body)
    assert identity is not None
    for value in identity["attributes"]["name"]:
        value.encode("utf-8")
    assert any("\ufffd" in value for value in identity["attributes"]["name"])


def test_lone_surrogate_in_a_raw_environ_value_is_replaced() -> None:
    # Not what a PEP 3333 server sends, but what an in-process caller might.
    app = SSOMiddleware(echo_app, attributes={"name": "displayName"})
    status, _, body = call(app, {"eppn": "u@x", "displayName": "Al\ud800ice"})
    assert status == 200
    identity = identity_json(body)
    assert identity is not None
    assert identity["attributes"]["name"] == ["Al\ufffdice"]


def test_lone_surrogate_in_a_user_id_is_refused() -> None:
    app = SSOMiddleware(echo_app, profile="openidc")
    assert call(app, {"OIDC_id_token_payload": '{"sub": "ad\\ud800min"}'})[0] == 400


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_identity_with_replaced_surrogate_is_storable(store_kind: str, tmp_path: Any) -> None:
    store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "s.sqlite3")
    app = SSOMiddleware(
        echo_app, profile="openidc", attributes={"name": "name"}, session=store, secret_key=SECRET
    )
    environ = {"OIDC_id_token_payload": '{"sub": "u", "name": "Al\\ud800ice"}', "PATH_INFO": "/login"}
    status, headers, _ = call(app, environ)
    assert status == 302
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    for _ in range(3):
        status, _, body = call(app, {"HTTP_COOKIE": cookie})
        assert status == 200
        identity = identity_json(body)
        assert identity is not None
        assert Identity.from_dict(identity).attributes["name"] == ("Al\ufffdice",)


# -- 9. log injection ------------------------------------------------------------------------

INJECTIONS = [
    pytest.param({"PATH_INFO": "/x\r\n2026-01-01 WARNING forged line"}, id="CRLF in path"),
    pytest.param({"REQUEST_METHOD": "GET\nFORGED"}, id="newline in method"),
    pytest.param({"PATH_INFO": "/\x1b[2J\x1b[31m"}, id="terminal escapes in path"),
    pytest.param({"PATH_INFO": "/\u2028next"}, id="unicode line separator"),
]


@pytest.mark.parametrize("environ", INJECTIONS)
def test_request_text_cannot_forge_log_lines(
    environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="shibwsgi")
    app = SSOMiddleware(echo_app, attributes=GROUPS, rules=[Rule("/", HasAttribute("groups", "x"))])
    call(app, {**READER, **environ})  # a 403: a refusal log line with the path and method
    call(app, {**environ, "eppn": "a@x;b@x"})  # a 400
    assert caplog.records
    for record in caplog.records:
        message = record.getMessage()
        assert message.isprintable(), repr(message)


# -- extra: encoding mismatches are loud ---------------------------------------------------

CLAIMS = {"sub": "sub-123", "iss": "https://idp.example.org", "name": "Ada"}


@pytest.mark.parametrize(
    ("options", "environ"),
    [
        pytest.param(
            {"profile": "openidc"},
            {"OIDC_id_token_payload": b64(json.dumps(CLAIMS)), "OIDC_CLAIM_sub": b64("sub-123")},
            id="base64url JSON under the latin-1 default",
        ),
        pytest.param(
            {"profile": "openidc", "encoding": "utf-8"},
            {"OIDC_userinfo_json": b64(json.dumps(CLAIMS))},
            id="base64url userinfo under utf-8",
        ),
        pytest.param(
            {"profile": "openidc"},
            {"OIDC_CLAIM_sub": b64("sub-123"), "OIDC_CLAIM_iss": b64("https://idp.example.org")},
            id="base64url claims without JSON: the issuer tells",
        ),
        pytest.param(
            {"profile": "openidc"},
            {"OIDC_CLAIM_sub": b64("sub-123"), "OIDC_access_token_expires": b64("1900000000")},
            id="base64url expiry tells",
        ),
        pytest.param(
            {"profile": "openidc", "encoding": "base64url"},
            {"OIDC_CLAIM_sub": "sub-123", "OIDC_id_token_payload": json.dumps(CLAIMS)},
            id="plain values under base64url",
        ),
        pytest.param(
            {"profile": "openidc", "encoding": "base64url"},
            {"OIDC_CLAIM_sub": "admin"},
            id="plain user claim under base64url",
        ),
        pytest.param(
            {"profile": "shibboleth"},
            {"eppn": "u@x", "Shib-Identity-Provider": "https%3A%2F%2Fidp.example.org%2Fidp"},
            id="URL-encoded shibboleth under utf-8",
        ),
        pytest.param(
            {"profile": "shibboleth", "encoding": "url"},
            {"eppn": "50%", "Shib-Session-ID": "_x"},
            id="stray percent under url",
        ),
    ],
)
def test_encoding_mismatch_is_refused_with_an_operator_message(
    options: dict[str, Any], environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = SSOMiddleware(echo_app, **options)
    status, _, body = call(app, environ)
    assert status == 400
    assert b"encoding" in body
    assert b"c3ViLTEyMw" not in body and b"sub-123" not in body
    assert "SHIBWSGI_ENCODING" in caplog.text


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8", "base64url"])
def test_matching_encoding_still_builds_the_identity(encoding: str) -> None:
    environ = environ_for("openidc", "sub-123", {"name": "Ada"}, encoding=encoding, id_token=True)
    status, _, body = call(SSOMiddleware(echo_app, profile="openidc", encoding=encoding), environ)
    assert status == 200
    identity = identity_json(body)
    assert identity is not None
    assert identity["user"] == "sub-123"


# -- extra: HTTP_* source names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "options"),
    [
        pytest.param("user", {"user": "HTTP_X_AUTH_USER"}, id="user"),
        pytest.param("user", {"profile": "remote-user", "user": "http_x_user"}, id="user lower case"),
        pytest.param("attributes", {"attributes": {"email": "HTTP_X_EMAIL"}}, id="attribute"),
        pytest.param("prefix", {"profile": "openidc", "prefix": "HTTP_OIDC_"}, id="prefix"),
        pytest.param(
            "profile",
            {"profile": Profile(name="custom", json_variables=("HTTP_X_CLAIMS",))},
            id="custom profile JSON variable",
        ),
    ],
)
@pytest.mark.parametrize("channel", ["environ", "headers"])
def test_http_source_names_are_a_config_error(setting: str, options: dict[str, Any], channel: str) -> None:
    extra = {"trusted_proxies": ["127.0.0.1"]} if channel == "headers" else {}
    with pytest.raises(ConfigError, match=f"^{setting}: "):
        SSOMiddleware(echo_app, channel=channel, **extra, **options)
