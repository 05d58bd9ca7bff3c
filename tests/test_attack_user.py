"""Attacks on the unsigned profiles' user: every way to get a wrong user or a 500.

Written against the promises (README "What may enter an Identity", "One subject",
the profile table, docs/front-ends.md), not against the parser: two sources naming
different subjects, user values with odd bytes and list syntax, dotted paths,
spoofed headers, the identity memo and ``environ_for`` round trips. Every test
asserts the safe answer: the right user, anonymous, or a 4xx, never another user.
"""

from __future__ import annotations

import base64
import json
import threading
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webtest import TestApp

from shibwsgi import Attribute, RequestError, SSOMiddleware
from shibwsgi.profiles import PROFILES
from shibwsgi.testing import environ_for
from shibwsgi.testing.environ import LossyEncodingWarning
from shibwsgi.testing.signed import TestSigner
from tests.helpers import PROXY, b64, call, echo_app, mojibake, principal, user_of

HEADERS: dict[str, Any] = {"trusted_proxies": ["10.0.0.0/24"]}
SECRET = "a-proxy-secret-of-24-chars"
NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


KONG: dict[str, Any] = {"profile": "kong-oidc", **HEADERS}
OIDC: dict[str, Any] = {"profile": "openidc"}
AZURE: dict[str, Any] = {"profile": "azure-easy-auth", **HEADERS}
VOUCH: dict[str, Any] = {"profile": "vouch", **HEADERS}


# -- two sources, two subjects: refused -------------------------------------------------------

TWO_SUBJECTS = [
    pytest.param(
        KONG,
        {
            "HTTP_X_USERINFO": b64({"active": True, "username": "bob"}),
            "HTTP_X_ID_TOKEN": b64({"sub": "admin"}),
        },
        id="kong introspection answer without sub, forged id token names admin",
    ),
    pytest.param(
        OIDC,
        {
            "OIDC_userinfo_json": json.dumps({"email": "a@x"}),
            "OIDC_id_token_payload": json.dumps({"sub": "admin"}),
        },
        id="openidc userinfo without sub next to an id token",
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": "Zo\u00eb"}), "HTTP_X_ID_TOKEN": b64({"sub": "Zoe\u0308"})},
        id="kong sub NFC against NFD",
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": "Admin"}), "HTTP_X_ID_TOKEN": b64({"sub": "admin"})},
        id="kong case",
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": "admin "}), "HTTP_X_ID_TOKEN": b64({"sub": "admin"})},
        id="kong trailing space",
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": ""}), "HTTP_X_ID_TOKEN": b64({"sub": "admin"})},
        id="kong empty sub",
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": None}), "HTTP_X_ID_TOKEN": b64({"sub": "admin"})},
        id="kong null sub",
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": ["admin"]}), "HTTP_X_ID_TOKEN": b64({"sub": "admin"})},
        id="kong sub as a list of the same value",
    ),
    pytest.param(
        {**KONG, "user": "email"},
        {
            "HTTP_X_USERINFO": b64({"sub": "s", "email": "a@x", "iss": 1}),
            "HTTP_X_ID_TOKEN": b64({"sub": "s", "email": "a@x", "iss": True}),
        },
        id="kong iss 1 against true (equal in Python, not in JSON)",
    ),
    pytest.param(
        {**KONG, "user": "profile.name"},
        {
            "HTTP_X_USERINFO": b64({"sub": "s", "profile": {"name": "bob"}}),
            "HTTP_X_ID_TOKEN": b64({"sub": "s", "profile": {"name": "admin"}}),
        },
        id="kong nested user claim differs",
    ),
    pytest.param(
        OIDC,
        {"OIDC_CLAIM_sub": "alice", "OIDC_userinfo_json": '{"sub": "alice", "sub": "admin"}'},
        id="openidc duplicate sub in the json against its claim variable",
    ),
    pytest.param(
        OIDC,
        {"OIDC_CLAIM_sub": "admin", "OIDC_userinfo_json": json.dumps({"sub": ""})},
        id="openidc empty json sub, claim variable names admin",
    ),
    pytest.param(
        {**OIDC, "encoding": "base64url"},
        {
            "OIDC_CLAIM_sub": base64.urlsafe_b64encode(b"admin").decode().rstrip("="),
            "OIDC_userinfo_json": base64.urlsafe_b64encode(json.dumps({"sub": "alice"}).encode()).decode(),
        },
        id="openidc base64url claim variable against its json",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "", "MELLON_uid_0": "", "MELLON_uid_1": "admin", "MELLON_uid_N": "2"},
        id="mellon series of an empty value and admin",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "alice", "MELLON_uid_0": "alice", "MELLON_uid_1": "admin", "MELLON_uid_N": "1"},
        id="mellon count says one, series holds two",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "alice", "MELLON_uid_0": "alice", "MELLON_uid_2": "admin", "MELLON_uid_N": "2"},
        id="mellon gap in the series, count says two",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid", "channel": "headers", **HEADERS},
        {
            "HTTP_MELLON_UID": "alice",
            "HTTP_MELLON_UID_0": "alice",
            "HTTP_MELLON_UID_1": "admin",
            "HTTP_MELLON_UID_N": "1",
        },
        id="mellon value added after the proxy's series",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid", "channel": "headers", **HEADERS},
        {"HTTP_MELLON_UID": "alice", "HTTP_MELLON_UID_0": "alice", "HTTP_MELLON_UID_1": "admin"},
        id="mellon series through a trusted proxy",
    ),
    pytest.param(
        {"profile": "oauth2-proxy", "channel": "headers", **HEADERS},
        {"HTTP_X_FORWARDED_USER": "alice", "HTTP_X_AUTH_REQUEST_USER": "Alice"},
        id="oauth2-proxy header families differ in case",
    ),
]


@pytest.mark.parametrize(("options", "environ"), TWO_SUBJECTS)
def test_two_sources_naming_different_subjects_are_refused(
    options: dict[str, Any], environ: dict[str, str]
) -> None:
    status, body = call(environ, **options)
    assert status == 400, body
    assert "admin" not in body["error"]


def test_user_id_bytes_that_are_not_utf8_never_spell_another_users_id() -> None:
    # 0xEF alone (latin-1 "ï") and C3 AF (UTF-8 "ï") would both have been "admïn".
    assert user_of({"eppn": mojibake("admïn")}) == "admïn"
    status, _ = call({"eppn": "adm\xefn"})
    assert status == 400


def test_attribute_that_is_not_utf8_is_still_kept_as_latin1() -> None:
    environ = {"eppn": "zoe@x", "displayName": "Zo\xeb"}
    status, body = call(environ, attributes={"name": "displayName"})
    assert status == 200
    assert body["identity"]["attributes"] == {"name": ["Zoë"]}


def test_kong_userinfo_without_sub_alone_is_still_read() -> None:
    # Introspection sets X-Userinfo alone; its answer may lack sub (RFC 7662 2.2).
    environ = {"HTTP_X_USERINFO": b64({"active": True, "username": "bob"})}
    assert user_of(environ, user="username", **KONG) == "bob"


def test_mellon_series_through_a_trusted_proxy_keeps_every_value() -> None:
    environ = environ_for("mellon", "alice", {"groups": ["g1", "g2"]}, channel="headers")
    status, body = call(
        {**environ, "HTTP_MELLON_GROUPS_X": "forged"},
        profile="mellon",
        channel="headers",
        attributes={"groups": Attribute("groups", multi=True)},
        **HEADERS,
    )
    assert status == 200
    assert body["identity"]["attributes"] == {"groups": ["g1", "g2"]}
    assert "HTTP_MELLON_GROUPS_N" in body["http_keys"]
    assert "HTTP_MELLON_GROUPS_X" not in body["http_keys"]


@pytest.mark.parametrize(
    ("groups", "count"),
    [
        pytest.param(["g1", "g2"], "3", id="a value missing"),
        pytest.param(["g1", "g2"], "1", id="a value added"),
    ],
)
def test_mellon_attribute_series_its_count_does_not_match_is_refused(groups: list[str], count: str) -> None:
    environ = {**environ_for("mellon", "alice", {"groups": groups}), "MELLON_groups_N": count}
    status, body = call(environ, profile="mellon", attributes={"groups": Attribute("groups", multi=True)})
    assert status == 400
    assert "g1" not in body["error"]


def test_mellon_series_from_an_untrusted_peer_is_removed() -> None:
    environ = {"REMOTE_ADDR": "203.0.113.9", "HTTP_MELLON_UID_0": "admin", "HTTP_REMOTE_USER": "admin"}
    app = TestApp(SSOMiddleware(echo_app, profile="mellon", channel="headers", user="uid", **HEADERS))
    body = app.get("/", extra_environ=environ).json
    assert body["identity"] is None
    assert body["http_keys"] == ["HTTP_HOST"]


# -- a user value read exactly as sent ----------------------------------------------------------

AS_SENT = [
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"}, {"eppn": "admin%3Bx"}, "admin;x", id="shib url %3B"
    ),
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"},
        {"eppn": "admin%2541"},
        "admin%41",
        id="shib url decoded once",
    ),
    pytest.param(
        {"profile": "shibboleth"}, {"eppn": "admin\\\\;bob"}, "admin\\;bob", id="shib escaped backslash"
    ),
    pytest.param({"profile": "shibboleth"}, {"eppn": "\\;"}, ";", id="shib escaped delimiter alone"),
    pytest.param({"profile": "shibboleth"}, {"eppn": mojibake("Zoë")}, "Zoë", id="shib utf-8 repaired"),
    pytest.param({"profile": "openidc"}, {"OIDC_CLAIM_sub": "adm\xefn"}, "admïn", id="openidc latin1 mode"),
    pytest.param({"profile": "shibboleth"}, {"eppn": "山田"}, "山田", id="text already decoded"),
    pytest.param(
        {"profile": "shibboleth"}, {"eppn": "", "REMOTE_USER": "alice"}, "alice", id="shib empty eppn"
    ),
    pytest.param(
        {"profile": "adfs"}, {"ADFS_LOGIN": "alice", "eppn": "admin"}, "alice", id="adfs reads LOGIN"
    ),
    pytest.param(
        {"profile": "openidc"},
        {"OIDC_CLAIM_sub": "alice", "REMOTE_USER": "admin"},
        "alice",
        id="openidc sub, not REMOTE_USER",
    ),
    pytest.param(VOUCH, {"HTTP_X_VOUCH_USER": '["admin"]'}, '["admin"]', id="vouch user json text"),
    pytest.param(VOUCH, {"HTTP_X_VOUCH_USER": '"admin'}, '"admin', id="vouch user half quote"),
    pytest.param(
        {**VOUCH, "user": "email"}, {"HTTP_X_VOUCH_IDP_CLAIMS_EMAIL": '"a'}, '"a', id="vouch claim half"
    ),
    pytest.param(
        {**VOUCH, "user": "email"}, {"HTTP_X_VOUCH_IDP_CLAIMS_EMAIL": '""'}, None, id="vouch empty array"
    ),
    pytest.param(
        VOUCH,
        {"HTTP_X_VOUCH_USER": "", "HTTP_X_VOUCH_IDP_CLAIMS_USER": "admin"},
        None,
        id="vouch claim named user",
    ),
    pytest.param(AZURE, {"HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "a,b"}, "a,b", id="azure name with comma"),
    pytest.param(
        AZURE,
        {
            "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "alice",
            "HTTP_X_MS_CLIENT_PRINCIPAL": principal((NAME, "admin")),
        },
        "alice",
        id="azure name header, not the principal's name claim",
    ),
    pytest.param(
        AZURE,
        {
            "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "",
            "HTTP_X_MS_CLIENT_PRINCIPAL": principal(("principal-name", "admin")),
        },
        None,
        id="azure empty name header, claim typed principal-name",
    ),
    pytest.param(
        {"profile": "authelia", **HEADERS}, {"HTTP_REMOTE_USER": ","}, None, id="authelia only a comma"
    ),
    pytest.param(
        {**KONG, "user": "profile.name"},
        {"HTTP_X_USERINFO": b64({"sub": "s", "profile.name": "admin"}), "HTTP_X_ID_TOKEN": b64({"sub": "s"})},
        None,
        id="kong literal dotted user claim is not the path",
    ),
    pytest.param(
        {**KONG, "user": "names.0"},
        {"HTTP_X_USERINFO": b64({"sub": "s", "names": ["admin"]})},
        None,
        id="kong array",
    ),
    pytest.param(
        {**KONG, "user": "profile.name"},
        {"HTTP_X_USERINFO": b64({"sub": "s", "profile": "admin"})},
        None,
        id="kong path through a string",
    ),
]


@pytest.mark.parametrize(("options", "environ", "user"), AS_SENT)
def test_user_is_read_exactly_as_its_front_end_sends_it(
    options: dict[str, Any], environ: dict[str, str], user: str | None
) -> None:
    assert user_of(environ, **options) == user


REFUSED_USERS = [
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"}, {"eppn": "admin;x"}, id="shib url raw delimiter"
    ),
    pytest.param({"profile": "shibboleth", "encoding": "url"}, {"eppn": "admin%00"}, id="shib url NUL"),
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"}, {"eppn": "%C0%AFadmin"}, id="shib url overlong"
    ),
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"}, {"eppn": "admin%"}, id="shib url stray percent"
    ),
    pytest.param({"profile": "shibboleth"}, {"eppn": "adm\xc2\x85n"}, id="C1 control in utf-8"),
    pytest.param({"profile": "shibboleth"}, {"eppn": mojibake("ad\u200bmin")}, id="zero width space"),
    pytest.param({"profile": "shibboleth"}, {"eppn": mojibake("\u202eadmin")}, id="bidi override"),
    pytest.param({"profile": "shibboleth"}, {"eppn": mojibake("\u00a0")}, id="no-break space"),
    pytest.param({"profile": "shibboleth"}, {"eppn": "\xed\xa0\x80admin"}, id="utf-8 encoded surrogate"),
    pytest.param({"profile": "shibboleth"}, {"eppn": "adm\xefn"}, id="latin-1 byte, not utf-8"),
    pytest.param({"profile": "shibboleth"}, {"eppn": "\xc0\xafadmin"}, id="overlong utf-8"),
    pytest.param(
        {"profile": "shibboleth", "encoding": "url"}, {"eppn": "adm\xefn"}, id="url raw latin-1 byte"
    ),
    pytest.param({"profile": "shibboleth"}, {"REMOTE_USER": "adm\xefn"}, id="shib REMOTE_USER latin-1"),
    pytest.param({"profile": "remote-user"}, {"REMOTE_USER": "adm\xefn"}, id="remote-user latin-1"),
    pytest.param(
        {"profile": "openidc", "user": ["sub", "REMOTE_USER"]},
        {"REMOTE_USER": "adm\xefn"},
        id="openidc REMOTE_USER latin-1 (plain UTF-8 in every claim encoding)",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "adm\xefn", "MELLON_uid_0": "adm\xefn"},
        id="mellon series latin-1",
    ),
    pytest.param(AZURE, {"HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "adm\xefn"}, id="azure name latin-1"),
    pytest.param(VOUCH, {"HTTP_X_VOUCH_USER": "adm\xefn"}, id="vouch user latin-1"),
    pytest.param(
        {"profile": "openidc", "encoding": "utf-8"},
        {"OIDC_userinfo_json": '{"sub": "adm\xefn"}'},
        id="openidc utf-8 json not utf-8",
    ),
    pytest.param({"profile": "shibboleth"}, {"eppn": "a" * 1025}, id="over-long"),
    pytest.param({"profile": "shibboleth"}, {"eppn": "a" * 5000 + ";"}, id="over-long list"),
    pytest.param({"profile": "shibboleth"}, {"eppn": "admin\r\n"}, id="CRLF"),
    pytest.param(
        {"profile": "openidc", "encoding": "base64url"}, {"OIDC_CLAIM_sub": "+/8="}, id="b64 alphabet"
    ),
    pytest.param(
        {"profile": "openidc", "encoding": "base64url"},
        {"OIDC_CLAIM_sub": base64.urlsafe_b64encode(b"admin,bob").decode()},
        id="base64url list",
    ),
    pytest.param(
        {"profile": "openidc", "encoding": "base64url"},
        {"OIDC_CLAIM_sub": base64.urlsafe_b64encode(b"adm\xffn").decode()},
        id="base64url of non-utf-8",
    ),
    pytest.param(
        KONG, {"HTTP_X_USERINFO": b64("\ufeff" + json.dumps({"sub": "a"}))}, id="kong json with BOM"
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": base64.urlsafe_b64encode(json.dumps({"sub": "a?>>"}).encode()).decode()},
        id="kong base64url alphabet",
    ),
    pytest.param(
        KONG, {"HTTP_X_USERINFO": base64.b64encode(b'{"sub":"\xff"}').decode()}, id="kong non-utf-8"
    ),
    pytest.param(
        KONG, {"HTTP_X_USERINFO": b64({"sub": "alice"}) + b64({"sub": "admin"})}, id="kong two documents"
    ),
    pytest.param(
        KONG,
        {"HTTP_X_USERINFO": b64({"sub": "alice"}) + "," + b64({"sub": "admin"})},
        id="kong copies joined by the server",
    ),
    pytest.param(KONG, {"HTTP_X_USERINFO": b64({"sub": "ad\u0000min"})}, id="kong NUL in sub"),
    pytest.param(KONG, {"HTTP_X_USERINFO": b64('{"sub":"\\ud800admin"}')}, id="kong lone surrogate escape"),
    pytest.param(
        KONG, {"HTTP_X_USERINFO": b64('{"sub":' + "9" * 5000 + "}")}, id="kong sub a 5000-digit number"
    ),
    pytest.param(
        KONG, {"HTTP_X_USERINFO": b64('{"sub":"a","x":' + '{"a":' * 3000 + "1" + "}" * 3001)}, id="kong deep"
    ),
    pytest.param(KONG, {"HTTP_X_USERINFO": b64(["admin"])}, id="kong document is a list"),
    pytest.param(
        {**AZURE, "user": "n"},
        {"HTTP_X_MS_CLIENT_PRINCIPAL": b64({"claims": [{"typ": 1, "val": "admin"}]})},
        id="azure claim type a number",
    ),
    pytest.param(AZURE, {"HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "admin\x00"}, id="azure NUL"),
    pytest.param(
        {**AZURE, "user": NAME},
        {"HTTP_X_MS_CLIENT_PRINCIPAL": principal((NAME, ""), (NAME, "admin"))},
        id="azure user claim type given twice, one empty",
    ),
    pytest.param(
        {"profile": "authentik", **HEADERS}, {"HTTP_X_AUTHENTIK_USERNAME": "ad\\|min"}, id="authentik \\|"
    ),
    pytest.param(
        {"profile": "authelia", **HEADERS}, {"HTTP_REMOTE_USER": "admin, alice"}, id="authelia list"
    ),
    pytest.param(
        {**VOUCH, "user": "email"}, {"HTTP_X_VOUCH_IDP_CLAIMS_EMAIL": '"admin",""'}, id="vouch array"
    ),
]


@pytest.mark.parametrize(("options", "environ"), REFUSED_USERS)
def test_unusable_user_value_is_a_400_not_a_user(options: dict[str, Any], environ: dict[str, str]) -> None:
    status, body = call(environ, **options)
    assert status == 400, body
    assert "admin" not in body["error"]


# -- spoofing through the gate -------------------------------------------------------------------

UNTRUSTED_PEERS = [
    pytest.param("::ffff:10.0.0.5", id="ipv4-mapped ipv6"),
    pytest.param("10.0.0.5:1234", id="with a port"),
    pytest.param(" 10.0.0.5", id="leading space"),
    pytest.param("010.000.000.005", id="leading zeros"),
    pytest.param("", id="empty"),
    pytest.param("10.0.1.5", id="next network"),
]


@pytest.mark.parametrize("peer", UNTRUSTED_PEERS)
def test_identity_headers_from_a_peer_outside_trusted_proxies_are_anonymous(peer: str) -> None:
    environ = {"HTTP_REMOTE_USER": "admin", "HTTP_X_FORWARDED_FOR": PROXY, "REMOTE_ADDR": peer}
    status, body = call(environ, profile="authelia", **HEADERS)
    assert status == 200
    assert body["identity"] is None
    assert body["http_keys"] == ["HTTP_HOST", "HTTP_X_FORWARDED_FOR"]


@pytest.mark.parametrize(
    "presented",
    [
        pytest.param(None, id="missing"),
        pytest.param(SECRET.upper(), id="other case"),
        pytest.param(f"{SECRET},{SECRET}", id="duplicates joined"),
        pytest.param(" " + SECRET, id="leading space"),
        pytest.param(SECRET[:-1], id="prefix"),
        pytest.param(SECRET + "x", id="longer"),
    ],
)
def test_wrong_proxy_secret_is_anonymous(presented: str | None) -> None:
    environ = {"HTTP_REMOTE_USER": "admin"}
    if presented is not None:
        environ["HTTP_X_SHIBWSGI_PROXY_SECRET"] = presented
    status, body = call(environ, profile="authelia", proxy_secret=SECRET, **HEADERS)
    assert status == 200
    assert body["identity"] is None
    assert "HTTP_X_SHIBWSGI_PROXY_SECRET" not in body["http_keys"]


def test_right_proxy_secret_is_believed_and_removed() -> None:
    environ = {"HTTP_REMOTE_USER": "alice", "HTTP_X_SHIBWSGI_PROXY_SECRET": SECRET}
    status, body = call(environ, profile="authelia", proxy_secret=SECRET, **HEADERS)
    assert status == 200
    assert body["identity"]["user"] == "alice"
    assert "HTTP_X_SHIBWSGI_PROXY_SECRET" not in body["http_keys"]


ENVIRON_CHANNEL_CLIENT_COPIES = [
    pytest.param("azure-easy-auth", {"X-MS-CLIENT-PRINCIPAL-NAME": "admin"}, id="azure"),
    pytest.param("oauth2-proxy", {"X-Forwarded-User": "admin"}, id="oauth2-proxy forwarded"),
    pytest.param("oauth2-proxy", {"X-Auth-Request-User": "admin"}, id="oauth2-proxy auth request"),
    pytest.param("oauth2-proxy", {"X_Auth_Request_User": "admin"}, id="oauth2-proxy underscores"),
    pytest.param("remote-user", {"Remote-User": "admin"}, id="remote-user"),
    pytest.param("mellon", {"Mellon-Uid-0": "admin", "Remote-User": "admin"}, id="mellon series"),
    pytest.param(
        "openidc", {"OIDC-Claim-Sub": "admin", "OIDC_userinfo_json": '{"sub":"admin"}'}, id="openidc"
    ),
    pytest.param("shibboleth", {"Eppn": "admin", "Shib-Session-ID": "x"}, id="shibboleth"),
    pytest.param("adfs", {"ADFS-LOGIN": "admin"}, id="adfs"),
]


@pytest.mark.parametrize(("profile", "headers"), ENVIRON_CHANNEL_CLIENT_COPIES)
def test_client_copies_of_front_end_variables_never_authenticate(
    profile: str, headers: dict[str, str]
) -> None:
    app = TestApp(SSOMiddleware(echo_app, profile=profile, channel="environ", user=None))
    body = app.get("/", headers=headers).json
    assert body["identity"] is None
    assert body["remote_user"] is None


def test_remote_user_variable_is_not_read_in_the_headers_channel() -> None:
    assert user_of({"REMOTE_USER": "admin"}, profile="remote-user", channel="headers", **HEADERS) is None


# -- the identity memo --------------------------------------------------------------------------

MEMO_CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "shibboleth": (
        {"profile": "shibboleth", "attributes": {"g": Attribute("isMemberOf", multi=True)}},
        ["eppn", "REMOTE_USER", "isMemberOf", "Shib-Session-ID"],
    ),
    "mellon": (
        {
            "profile": "mellon",
            "user": ["uid", "REMOTE_USER"],
            "attributes": {"g": Attribute("g", multi=True)},
        },
        ["REMOTE_USER", "MELLON_uid", "MELLON_uid_0", "MELLON_uid_1", "MELLON_g_0", "MELLON_g_1"],
    ),
    "openidc": (
        {"profile": "openidc", "encoding": "utf-8", "attributes": {"g": Attribute("groups", multi=True)}},
        ["OIDC_CLAIM_sub", "OIDC_userinfo_json", "OIDC_id_token_payload", "OIDC_CLAIM_groups"],
    ),
    "oauth2-proxy": (
        {"profile": "oauth2-proxy", "attributes": {"g": Attribute("groups", multi=True)}},
        ["X-Forwarded-User", "X-Auth-Request-User", "X-Forwarded-Groups"],
    ),
    "azure": (
        {"profile": "azure-easy-auth", **HEADERS, "attributes": {"g": "roles"}},
        ["HTTP_X_MS_CLIENT_PRINCIPAL_NAME", "HTTP_X_MS_CLIENT_PRINCIPAL", "HTTP_X_MS_CLIENT_PRINCIPAL_IDP"],
    ),
}
MEMO_VALUES = [
    "alice",
    "alice2",
    "admin",
    "",
    "a;b",
    json.dumps({"sub": "alice"}),
    json.dumps({"sub": "admin", "groups": ["x"]}),
    principal(("roles", "r")),
]


def _outcome(middleware: SSOMiddleware, environ: dict[str, str]) -> object:
    try:
        identity = middleware.identify({**environ, "REMOTE_ADDR": PROXY})
    except RequestError as error:
        return type(error).__name__
    if identity is None:
        return None
    return {**identity.to_dict(), "authenticated_at": None, "expires_at": None}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=st.sampled_from(sorted(MEMO_CASES)), data=st.data())
def test_memo_never_answers_what_a_fresh_parse_would_not(case: str, data: st.DataObject) -> None:
    options, keys = MEMO_CASES[case]
    environs = st.dictionaries(st.sampled_from(keys), st.sampled_from(MEMO_VALUES), max_size=len(keys))
    first, second = data.draw(environs), data.draw(environs)
    memoised = SSOMiddleware(echo_app, **options)
    fresh = SSOMiddleware(echo_app, identity_cache_bytes=0, **options)
    for _ in range(3):  # kept from the second sight on
        _outcome(memoised, first)
    assert _outcome(memoised, second) == _outcome(fresh, second)


def test_memo_of_one_profile_is_not_read_by_another() -> None:
    environ = {"eppn": "alice", "REMOTE_USER": "admin", "Shib-Session-ID": "_s"}
    shibboleth = SSOMiddleware(echo_app, profile="shibboleth")
    remote = SSOMiddleware(echo_app, profile="remote-user")
    for _ in range(3):
        assert _user(shibboleth, environ) == "alice"
    assert _user(remote, environ) == "admin"


def _user(middleware: SSOMiddleware, environ: dict[str, str]) -> str | None:
    identity = middleware.identify(dict(environ))
    return identity.user if identity else None


# -- environ_for round trips, in every channel and encoding --------------------------------------

UNSIGNED = sorted(name for name, profile in PROFILES.items() if not profile.signed)
ENCODINGS: dict[str, list[str | None]] = {
    "shibboleth": [None, "url"],
    "adfs": [None, "url"],
    "openidc": [None, "utf-8", "base64url"],
}
SETUPS = [
    (profile, encoding, channel)
    for profile in UNSIGNED
    for encoding in ENCODINGS.get(profile, [None])
    for channel in ("environ", "headers")
]


def _latin1_lossy(user: str) -> str:
    return user.encode("latin-1", "replace").decode("latin-1")


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(setup=st.sampled_from(SETUPS), user=st.text(min_size=1, max_size=24), id_token=st.booleans())
def test_environ_for_any_user_in_any_channel_parses_back_as_that_user_or_is_refused(
    setup: tuple[str, str | None, str], user: str, id_token: bool
) -> None:
    profile, encoding, channel = setup
    id_token = id_token and profile == "openidc"
    options: dict[str, Any] = {"profile": profile, "channel": channel}
    if encoding:
        options["encoding"] = encoding
    if channel == "headers":
        options.update(HEADERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossyEncodingWarning)
        environ = environ_for(profile, user, channel=channel, encoding=encoding, id_token=id_token)
    try:
        identity = SSOMiddleware(echo_app, **options).identify({"REMOTE_ADDR": PROXY, **environ})
    except RequestError:
        return
    if identity is None:
        return
    lossy = profile == "openidc" and encoding is None and not id_token  # latin1: documented "?"
    assert identity.user in ({user, _latin1_lossy(user)} if lossy else {user})


@pytest.mark.parametrize("profile", UNSIGNED)
def test_environ_for_refuses_attributes_naming_another_user(profile: str) -> None:
    source = PROFILES[profile].user[0]
    with pytest.raises(ValueError, match="names another user"):
        environ_for(profile, "alice", {source: "admin"})


def test_environ_for_signed_refuses_a_sub_naming_another_user() -> None:
    with pytest.raises(ValueError, match="names another user"):
        environ_for("pomerium", "alice", {"sub": "admin"}, signer=TestSigner())


@pytest.mark.parametrize(
    "value", [pytest.param("alice", id="scalar"), pytest.param(["alice"], id="list of the user")]
)
def test_environ_for_accepts_the_user_source_naming_the_user(value: str | list[str]) -> None:
    environ = environ_for("shibboleth", "alice", {"eppn": value})
    assert _user(SSOMiddleware(echo_app), environ) == "alice"


def test_memo_under_threads_never_hands_one_user_anothers_identity() -> None:
    middleware = SSOMiddleware(echo_app, attributes={"groups": Attribute("isMemberOf", multi=True)})
    wrong: list[tuple[str, object]] = []

    def sign_in(seed: int) -> None:
        for index in range(400):
            user = f"u{(seed * 7 + index) % 12}@x"
            environ = {"eppn": user, "isMemberOf": f"g;{user}", "Shib-Session-ID": "_" + user[:2]}
            identity = middleware.identify(environ)
            if identity is None or identity.user != user or identity.attributes["groups"] != ("g", user):
                wrong.append((user, identity))

    threads = [threading.Thread(target=sign_in, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


MELLON_PROXY_KEYS = [
    "HTTP_MELLON_UID",
    "HTTP_MELLON_UID_0",
    "HTTP_MELLON_UID_1",
    "HTTP_MELLON_UID_N",
    "HTTP_MELLON_G_0",
    "HTTP_MELLON_G_1",
    "HTTP_MELLON_G_N",
    "HTTP_REMOTE_USER",
]
MELLON_PROXY = SSOMiddleware(
    echo_app,
    profile="mellon",
    channel="headers",
    user=["uid", "REMOTE_USER"],
    attributes={"g": Attribute("g", multi=True)},
    **HEADERS,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    environ=st.dictionaries(
        st.sampled_from(MELLON_PROXY_KEYS),
        st.text(max_size=6) | st.sampled_from(["0", "1", "2", "N", "alice", "a;b"]),
        max_size=len(MELLON_PROXY_KEYS),
    )
)
def test_mellon_series_through_a_proxy_gives_one_user_or_a_4xx(environ: dict[str, str]) -> None:
    try:
        identity = MELLON_PROXY.identify({**environ, "REMOTE_ADDR": PROXY})
    except RequestError:
        return
    if identity is not None and "HTTP_MELLON_UID_0" in environ:
        assert environ.get("HTTP_MELLON_UID_1") is None


# -- a user id padded with whitespace looks like another user: refused everywhere -----------------

PADDED = [
    pytest.param(" zoe", id="leading space"),
    pytest.param("zoe ", id="trailing space"),
    pytest.param("  zoe  ", id="both"),
]


@pytest.mark.parametrize("user", PADDED)
@pytest.mark.parametrize("setup", SETUPS, ids=lambda setup: "-".join(part for part in setup if part))
def test_user_id_padded_with_spaces_is_refused_not_another_users_lookalike(
    setup: tuple[str, str | None, str], user: str
) -> None:
    profile, encoding, channel = setup
    options: dict[str, Any] = {
        "profile": profile,
        "channel": channel,
        **({"encoding": encoding} if encoding else {}),
    }
    if channel == "headers":
        options.update(HEADERS)
    environ = environ_for(profile, user, channel=channel, encoding=encoding)
    with pytest.raises(RequestError, match="leading or trailing whitespace") as error:
        SSOMiddleware(echo_app, **options).identify({"REMOTE_ADDR": PROXY, **environ})
    assert error.value.status == 400
    assert "zoe" not in str(error.value)


@pytest.mark.parametrize("user", PADDED)
def test_signed_sub_padded_with_spaces_is_refused(user: str) -> None:
    signer = TestSigner("ES256")
    app = TestApp(
        SSOMiddleware(
            echo_app, profile="pomerium", jwks=signer.jwks, issuer=signer.issuer, audience=signer.audience
        )
    )
    app.get("/", extra_environ=environ_for("pomerium", user, signer=signer), status=400)
