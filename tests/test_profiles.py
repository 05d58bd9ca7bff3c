"""Each profile, from environs written by hand the way each front end really sends them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, SSOMiddleware
from tests.helpers import echo_app, mojibake

GROUPS = Attribute("isMemberOf", multi=True)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def identity_of(environ: dict[str, str], **options: Any) -> dict[str, Any] | None:
    app = TestApp(SSOMiddleware(echo_app, **options))
    result: dict[str, Any] | None = app.get("/", extra_environ=environ).json["identity"]
    return result


CASES = [
    pytest.param(
        {"profile": "shibboleth", "attributes": {"name": "displayName", "groups": GROUPS}},
        {"eppn": "zoe@example.org", "displayName": mojibake("Zoë Müller"), "isMemberOf": "a;b;c"},
        "zoe@example.org",
        {"name": ["Zoë Müller"], "groups": ["a", "b", "c"]},
        id="shibboleth utf-8 name and groups",
    ),
    pytest.param(
        {"profile": "shibboleth", "attributes": {"groups": GROUPS}},
        {"eppn": "u@x", "isMemberOf": r"cn=a\;b;plain;;trailing;"},
        "u@x",
        {"groups": ["cn=a;b", "plain", "trailing"]},
        id="shibboleth escaped semicolon and empty values",
    ),
    pytest.param(
        {"profile": "shibboleth", "attributes": {"groups": GROUPS}},
        {"eppn": "u@x", "isMemberOf": r"C:\dir;x,y"},
        "u@x",
        {"groups": ["C:\\dir", "x,y"]},
        id="shibboleth backslash not before delimiter kept, comma kept",
    ),
    pytest.param(
        {"profile": "shibboleth", "attributes": {"name": "displayName"}},
        {"REMOTE_USER": "łukasz@example.pl", "displayName": mojibake("Łukasz Żółw")},
        "łukasz@example.pl",
        {"name": ["Łukasz Żółw"]},
        id="shibboleth falls back to REMOTE_USER",
    ),
    pytest.param(
        {"profile": "shibboleth", "attributes": {"name": "displayName"}},
        {"eppn": "ken@example.jp", "displayName": mojibake("山田 健")},
        "ken@example.jp",
        {"name": ["山田 健"]},
        id="shibboleth CJK",
    ),
    pytest.param(
        {"profile": "shibboleth", "attributes": {"name": "displayName"}},
        {"eppn": "u@x", "displayName": "Zo\xeb"},
        "u@x",
        {"name": ["Zoë"]},
        id="shibboleth latin-1 byte that is not UTF-8 kept",
    ),
    pytest.param(
        {"profile": "shibboleth", "encoding": "url", "attributes": {"name": "displayName", "groups": GROUPS}},
        {"eppn": "u@x", "displayName": "Zo%C3%AB%20M", "isMemberOf": "a%3Bb;c%2Cd"},
        "u@x",
        {"name": ["Zoë M"], "groups": ["a;b", "c,d"]},
        id="shibboleth URL encoding",
    ),
    pytest.param(
        {"profile": "adfs", "attributes": {"email": "EMAIL", "groups": Attribute("GROUP", multi=True)}},
        {"ADFS_LOGIN": "jdoe", "ADFS_EMAIL": "j.doe@cern.ch", "ADFS_GROUP": "it-dep;cern-users"},
        "jdoe",
        {"email": ["j.doe@cern.ch"], "groups": ["it-dep", "cern-users"]},
        id="adfs CERN names",
    ),
    pytest.param(
        {"profile": "openidc", "attributes": {"name": "name", "groups": Attribute("groups", multi=True)}},
        {"OIDC_CLAIM_sub": "abc", "OIDC_CLAIM_name": "Zo\xeb", "OIDC_CLAIM_groups": "a,b"},
        "abc",
        {"name": ["Zoë"], "groups": ["a", "b"]},
        id="openidc latin1 encoding, comma groups",
    ),
    pytest.param(
        {
            "profile": "openidc",
            "encoding": "base64url",
            "attributes": {"name": "name", "groups": Attribute("groups", multi=True)},
        },
        {"OIDC_CLAIM_sub": b64("abc"), "OIDC_CLAIM_name": b64("Łukasz"), "OIDC_CLAIM_groups": b64("x,y")},
        "abc",
        {"name": ["Łukasz"], "groups": ["x", "y"]},
        id="openidc base64url",
    ),
    pytest.param(
        {
            "profile": "openidc",
            "encoding": "utf-8",
            "attributes": {"name": "name", "groups": Attribute("groups", multi=True)},
        },
        {
            "OIDC_CLAIM_sub": "abc",
            "OIDC_CLAIM_groups": "a,b,c",
            "OIDC_id_token_payload": mojibake(
                json.dumps({"sub": "abc", "name": "山田", "groups": ["a,b", "c"]}, ensure_ascii=False)
            ),
        },
        "abc",
        {"name": ["山田"], "groups": ["a,b", "c"]},
        id="openidc id token JSON preferred: comma inside a group survives",
    ),
    pytest.param(
        {"profile": "openidc", "attributes": {"email": "email"}},
        {
            "OIDC_CLAIM_sub": "abc",
            "OIDC_userinfo_json": '{"sub": "abc", "email": "userinfo@x"}',
            "OIDC_id_token_payload": '{"sub": "abc", "email": "token@x"}',
        },
        "abc",
        {"email": ["userinfo@x"]},
        id="openidc userinfo JSON wins over id token",
    ),
    pytest.param(
        {"profile": "openidc", "prefix": "OIDC-CLAIM-", "attributes": {"email": "email"}},
        {"OIDC-CLAIM-sub": "abc", "OIDC-CLAIM-email": "a@x"},
        "abc",
        {"email": ["a@x"]},
        id="openidc custom claim prefix",
    ),
    pytest.param(
        {"profile": "mellon", "attributes": {"name": "cn", "groups": Attribute("groups", multi=True)}},
        {
            "REMOTE_USER": "jdoe",
            "MELLON_cn": mojibake("Zoë"),
            "MELLON_cn_0": mojibake("Zoë"),
            "MELLON_groups": "a;b",
            "MELLON_groups_0": "a;b",
            "MELLON_groups_1": "c",
            "MELLON_groups_N": "2",
        },
        "jdoe",
        {"name": ["Zoë"], "groups": ["a;b", "c"]},
        id="mellon series keeps semicolons",
    ),
    pytest.param(
        {"profile": "mellon", "attributes": {"groups": Attribute("groups", multi=True)}},
        {"REMOTE_USER": "jdoe", "MELLON_groups": "a;b;c"},
        "jdoe",
        {"groups": ["a", "b", "c"]},
        id="mellon merged variables",
    ),
    pytest.param(
        {
            "profile": "oauth2-proxy",
            "attributes": {"email": "email", "groups": Attribute("groups", multi=True)},
        },
        {"X-Forwarded-User": "jdoe", "X-Forwarded-Email": "j@x", "X-Forwarded-Groups": "g1,g2"},
        "jdoe",
        {"email": ["j@x"], "groups": ["g1", "g2"]},
        id="oauth2-proxy as uwsgi_param variables",
    ),
    pytest.param(
        {"profile": "oauth2-proxy", "attributes": {"email": "email"}},
        {"X-Auth-Request-User": "jdoe", "X-Auth-Request-Email": "j@x"},
        "jdoe",
        {"email": ["j@x"]},
        id="oauth2-proxy X-Auth-Request family",
    ),
    pytest.param(
        {"profile": "remote-user", "attributes": {"dept": "DEPARTMENT"}},
        {"REMOTE_USER": "jdoe", "DEPARTMENT": "a;b"},
        "jdoe",
        {"dept": ["a;b"]},
        id="remote-user with an extra variable, never split",
    ),
]


@pytest.mark.parametrize(("options", "environ", "user", "attributes"), CASES)
def test_profile_reads_front_end_environ(
    options: dict[str, Any], environ: dict[str, str], user: str, attributes: dict[str, list[str]]
) -> None:
    identity = identity_of(environ, **options)
    assert identity is not None
    assert identity["user"] == user
    assert identity["attributes"] == attributes


HEADER_CASES = [
    pytest.param(
        {
            "profile": "oauth2-proxy",
            "attributes": {"email": "email", "groups": Attribute("groups", multi=True)},
        },
        {"HTTP_X_FORWARDED_USER": "jdoe", "HTTP_X_FORWARDED_EMAIL": "j@x", "HTTP_X_FORWARDED_GROUPS": "a,b"},
        "jdoe",
        {"email": ["j@x"], "groups": ["a", "b"]},
        id="oauth2-proxy headers",
    ),
    pytest.param(
        {"profile": "shibboleth", "attributes": {"name": "displayName"}},
        {"HTTP_EPPN": "u@x", "HTTP_DISPLAYNAME": mojibake("Zoë")},
        "u@x",
        {"name": ["Zoë"]},
        id="shibboleth ShibUseHeaders",
    ),
    pytest.param(
        {"profile": "openidc", "attributes": {"email": "email"}},
        {"HTTP_OIDC_CLAIM_SUB": "abc", "HTTP_OIDC_CLAIM_EMAIL": "a@x"},
        "abc",
        {"email": ["a@x"]},
        id="openidc claims as headers",
    ),
    pytest.param(
        {"profile": "remote-user"},
        {"HTTP_REMOTE_USER": "jdoe"},
        "jdoe",
        {},
        id="remote-user header from the proxy",
    ),
]


@pytest.mark.parametrize(("options", "environ", "user", "attributes"), HEADER_CASES)
def test_header_channel_from_trusted_proxy(
    options: dict[str, Any], environ: dict[str, str], user: str, attributes: dict[str, list[str]]
) -> None:
    environ = {**environ, "REMOTE_ADDR": "10.0.0.5"}
    identity = identity_of(environ, channel="headers", trusted_proxies=["10.0.0.0/24"], **options)
    assert identity is not None
    assert identity["user"] == user
    assert identity["attributes"] == attributes


def test_shibboleth_standard_variables() -> None:
    identity = identity_of(
        {
            "eppn": "u@x",
            "Shib-Session-ID": "_abc123",
            "Shib-Identity-Provider": "https://idp.example.org/idp/shibboleth",
            "Shib-Authentication-Instant": "2026-11-23T10:00:00.123Z",
            "Shib-Session-Expires": "1795420800",
        }
    )
    assert identity is not None
    assert identity["session_id"] == "_abc123"
    assert identity["provider"] == "https://idp.example.org/idp/shibboleth"
    assert identity["authenticated_at"] == "2026-11-23T10:00:00.123000+00:00"
    assert identity["expires_at"] == datetime.fromtimestamp(1795420800, UTC).isoformat()
    assert identity["profile"] == "shibboleth"


def test_openidc_standard_fields_from_claims() -> None:
    identity = identity_of(
        {
            "OIDC_CLAIM_sub": "abc",
            "OIDC_id_token_payload": '{"sub":"abc","iss":"https://op.example","sid":"s1","auth_time":1795420800}',
            "OIDC_access_token_expires": "1795424400",
        },
        profile="openidc",
    )
    assert identity is not None
    assert identity["provider"] == "https://op.example"
    assert identity["session_id"] == "s1"
    assert identity["authenticated_at"] == datetime.fromtimestamp(1795420800, UTC).isoformat()
    assert identity["expires_at"] == datetime.fromtimestamp(1795424400, UTC).isoformat()


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="nothing at all"),
        pytest.param({"REMOTE_USER": "", "Shib-Handler": "https://sp/Shibboleth.sso"}, id="lazy location"),
        pytest.param({"eppn": "", "REMOTE_USER": ""}, id="empty eppn"),
        pytest.param({"eppn": ";;"}, id="only delimiters"),
    ],
)
def test_no_user_is_anonymous(environ: dict[str, str]) -> None:
    app = TestApp(SSOMiddleware(echo_app))
    body = app.get("/", extra_environ=environ).json
    assert body["identity"] is None
    assert body["remote_user"] is None


def test_multi_false_keeps_first_value() -> None:
    identity = identity_of({"eppn": "u@x", "mail": "a@x;b@x"}, attributes={"email": "mail"})
    assert identity is not None
    assert identity["attributes"] == {"email": ["a@x"]}


def test_unmapped_attributes_are_not_kept() -> None:
    identity = identity_of({"eppn": "u@x", "mail": "a@x", "secretThing": "s"}, attributes={"email": "mail"})
    assert identity is not None
    assert set(identity["attributes"]) == {"email"}


def test_thousands_of_groups() -> None:
    groups = [f"cn=group-{i:05d},ou=groups,dc=example,dc=org" for i in range(1400)]  # ~60 KB
    identity = identity_of({"eppn": "u@x", "isMemberOf": ";".join(groups)}, attributes={"groups": GROUPS})
    assert identity is not None
    assert identity["attributes"]["groups"] == groups


def test_remote_user_is_set_to_identity_user() -> None:
    app = TestApp(SSOMiddleware(echo_app))
    body = app.get("/", extra_environ={"eppn": "real@x", "REMOTE_USER": "other@x"}).json
    assert body["remote_user"] == "real@x"


def test_remote_user_is_never_split() -> None:
    identity = identity_of({"REMOTE_USER": "cn=a;b"}, profile="mellon")
    assert identity is not None
    assert identity["user"] == "cn=a;b"
