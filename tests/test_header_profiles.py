"""The header front ends (authelia, authentik, vouch, Azure App Service, kong-oidc).

Environs are written by hand the way each front end's own source builds its
headers (see docs/front-ends.md); lookalikes from clients, underscore spellings
included, never authenticate; malformed JSON principals get a 400, never a 500.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from webtest import TestApp

from app import make_application
from shibwsgi import Attribute, ConfigError, Profile, SSOMiddleware
from shibwsgi.profiles import PROFILES
from shibwsgi.settings import parse_settings
from shibwsgi.testing import environ_for
from shibwsgi.testing.frontend import SOURCE_NAMES
from tests.helpers import echo_app, mojibake

PROXY = "10.0.0.5"
TRUSTED = {"trusted_proxies": ["10.0.0.0/24"]}
HEADER_PROFILES = ["authelia", "authentik", "vouch", "azure-easy-auth", "kong-oidc"]
ROLE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"


def multi(source: str) -> Attribute:
    return Attribute(source, multi=True)


def b64(document: object) -> str:
    """Standard, padded base64 of UTF-8 JSON, as ``ngx.encode_base64(cjson.encode(...))``."""
    return base64.b64encode(json.dumps(document, ensure_ascii=False).encode()).decode()


def principal(*claims: tuple[str, object], **extra: object) -> str:
    """An ``X-MS-CLIENT-PRINCIPAL`` value: base64 of ``{auth_typ, claims: [{typ, val}], ...}``."""
    document = {
        "auth_typ": "aad",
        "claims": [{"typ": typ, "val": val} for typ, val in claims],
        "name_typ": EMAIL,
        "role_typ": ROLE,
        **extra,
    }
    return b64(document)


def call(
    environ: dict[str, str], headers: dict[str, str] | None = None, **options: Any
) -> tuple[int, dict[str, Any]]:
    app = TestApp(SSOMiddleware(echo_app, **options))
    response = app.get("/", headers=headers or {}, extra_environ=environ, expect_errors=True)
    return response.status_int, response.json


# -- what each front end really sends ------------------------------------------------------

CASES = [
    pytest.param(
        "authelia",
        {"name": "name", "email": "email", "groups": multi("groups")},
        {
            "HTTP_REMOTE_USER": "zoe",
            "HTTP_REMOTE_GROUPS": "admins,dev",
            "HTTP_REMOTE_NAME": mojibake("Zoë Łukasz 山田"),
            "HTTP_REMOTE_EMAIL": "zoe@example.org",
        },
        "zoe",
        {"name": ["Zoë Łukasz 山田"], "email": ["zoe@example.org"], "groups": ["admins", "dev"]},
        id="authelia utf-8 name, comma groups",
    ),
    pytest.param(
        "authelia",
        {"groups": multi("groups"), "email": "email"},
        {"HTTP_REMOTE_USER": "rob", "HTTP_REMOTE_GROUPS": "", "HTTP_REMOTE_EMAIL": ""},
        "rob",
        {},
        id="authelia user without groups or email: empty headers",
    ),
    pytest.param(
        "authentik",
        {"name": "name", "email": "email", "uid": "uid", "groups": multi("groups")},
        {
            "HTTP_X_AUTHENTIK_USERNAME": "akadmin",
            "HTTP_X_AUTHENTIK_GROUPS": "authentik Admins|cn=a,dc=example|movie-editors",
            "HTTP_X_AUTHENTIK_EMAIL": "root@localhost",
            "HTTP_X_AUTHENTIK_NAME": mojibake("authentik Default Admin Zoë"),
            "HTTP_X_AUTHENTIK_UID": "900347b8a29876b45ca6f75722635ecfedf0e931c6022e3a29a8aa13fb5516fb",
        },
        "akadmin",
        {
            "name": ["authentik Default Admin Zoë"],
            "email": ["root@localhost"],
            "uid": ["900347b8a29876b45ca6f75722635ecfedf0e931c6022e3a29a8aa13fb5516fb"],
            "groups": ["authentik Admins", "cn=a,dc=example", "movie-editors"],
        },
        id="authentik pipe groups keep commas",
    ),
    pytest.param(
        "authentik",
        {"groups": multi("groups"), "name": "name"},
        {"HTTP_X_AUTHENTIK_USERNAME": "u", "HTTP_X_AUTHENTIK_GROUPS": "|a||b|"},
        "u",
        {"groups": ["a", "b"]},
        id="authentik empty groups dropped, name missing",
    ),
    pytest.param(
        "vouch",
        {
            "groups": multi("groups"),
            "family": "family-name",
            "flag": "boolean-claim",
            "color": "www-example-com-favorite-color",
        },
        {
            "HTTP_X_VOUCH_USER": "testuser",
            "HTTP_X_VOUCH_IDP_CLAIMS_GROUPS": '"Website Users","Test Group"',
            "HTTP_X_VOUCH_IDP_CLAIMS_FAMILY_NAME": "Tester, Jr.",
            "HTTP_X_VOUCH_IDP_CLAIMS_BOOLEAN_CLAIM": "true",
            "HTTP_X_VOUCH_IDP_CLAIMS_WWW_EXAMPLE_COM_FAVORITE_COLOR": "blue",
        },
        "testuser",
        {
            "groups": ["Website Users", "Test Group"],
            "family": ["Tester, Jr."],
            "flag": ["true"],
            "color": ["blue"],
        },
        id="vouch quoted list split, bare value with a comma kept",
    ),
    pytest.param(
        "vouch",
        {"groups": multi("groups"), "name": "name"},
        {
            "HTTP_X_VOUCH_USER": "zoe@example.org",
            "HTTP_X_VOUCH_IDP_CLAIMS_GROUPS": '"a,b","c"',
            "HTTP_X_VOUCH_IDP_CLAIMS_NAME": mojibake("Zoë"),
        },
        "zoe@example.org",
        {"groups": ["a,b", "c"], "name": ["Zoë"]},
        id="vouch comma inside a quoted group",
    ),
    pytest.param(
        "azure-easy-auth",
        {
            "roles": multi(ROLE),
            "groups": multi("groups"),
            "name": "name",
            "email": EMAIL,
            "oid": "principal-id",
        },
        {
            "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "zoe@contoso.com",
            "HTTP_X_MS_CLIENT_PRINCIPAL_ID": "5b5450db-eb26-4c1a-981c-ba1d25f0483d",
            "HTTP_X_MS_CLIENT_PRINCIPAL_IDP": "aad",
            "HTTP_X_MS_CLIENT_PRINCIPAL": principal(
                ("groups", "f08bbbea-b793-4a36-a5fc-136c18d8aa8f"),
                ("groups", "14a87ffa-0801-49bf-a515-3d259a2a9f8f"),
                ("name", "Zoë Łukasz 山田"),
                (EMAIL, "zoe@contoso.com"),
                (ROLE, "Movie.Editor"),
                (ROLE, "Movie.Reader"),
            ),
        },
        "zoe@contoso.com",
        {
            "roles": ["Movie.Editor", "Movie.Reader"],
            "groups": ["f08bbbea-b793-4a36-a5fc-136c18d8aa8f", "14a87ffa-0801-49bf-a515-3d259a2a9f8f"],
            "name": ["Zoë Łukasz 山田"],
            "email": ["zoe@contoso.com"],
            "oid": ["5b5450db-eb26-4c1a-981c-ba1d25f0483d"],
        },
        id="azure repeated claim types, role URI, utf-8",
    ),
    pytest.param(
        "azure-easy-auth",
        {"series": "SeriesId", "groups": multi("groups")},
        {
            "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "u@x",
            "HTTP_X_MS_CLIENT_PRINCIPAL": principal(("SeriesId", 10000), ("groups", "a,b;c|d")),
        },
        "u@x",
        {"series": ["10000"], "groups": ["a,b;c|d"]},
        id="azure number value, delimiters inside a value",
    ),
    pytest.param(
        "azure-easy-auth",
        {"groups": multi("groups")},
        {"HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "u@x"},
        "u@x",
        {},
        id="azure name without a principal",
    ),
    pytest.param(
        "kong-oidc",
        {"name": "name", "username": "preferred_username", "groups": multi("groups")},
        {
            "HTTP_X_USERINFO": b64(
                {
                    "sub": "c858bc01-0b3b-4437-a0ee-a5e64890019d",
                    "id": "c858bc01-0b3b-4437-a0ee-a5e64890019d",
                    "preferred_username": "admin",
                    "username": "admin",
                    "name": "ĄĘŚÓŁŻŹĆ",
                    "groups": ["a,b", "c"],
                }
            ),
            "HTTP_X_ID_TOKEN": b64(
                {"sub": "c858bc01-0b3b-4437-a0ee-a5e64890019d", "iss": "https://op/realms/x"}
            ),
            "HTTP_X_ACCESS_TOKEN": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        },
        "c858bc01-0b3b-4437-a0ee-a5e64890019d",
        {"name": ["ĄĘŚÓŁŻŹĆ"], "username": ["admin"], "groups": ["a,b", "c"]},
        id="kong-oidc base64 userinfo, lists lossless",
    ),
    pytest.param(
        "kong-oidc",
        {"email": "email", "token": "access-token"},
        {
            "HTTP_X_ID_TOKEN": b64({"sub": "abc", "email": "id@x"}),
            "HTTP_X_ACCESS_TOKEN": "opaque-token",
        },
        "abc",
        {"email": ["id@x"], "token": ["opaque-token"]},
        id="kong-oidc id token alone, access token mapped",
    ),
]


@pytest.mark.parametrize(("profile", "attributes", "environ", "user", "expected"), CASES)
def test_header_profile_reads_what_the_front_end_sends(
    profile: str, attributes: dict[str, Any], environ: dict[str, str], user: str, expected: dict[str, Any]
) -> None:
    status, body = call({**environ, "REMOTE_ADDR": PROXY}, profile=profile, attributes=attributes, **TRUSTED)
    assert status == 200
    assert body["identity"]["user"] == user
    assert body["identity"]["attributes"] == expected
    assert body["identity"]["profile"] == profile


def test_kong_oidc_standard_fields_from_the_id_token() -> None:
    environ = {
        "HTTP_X_USERINFO": b64({"sub": "abc", "email": "a@x"}),
        "HTTP_X_ID_TOKEN": b64(
            {"sub": "abc", "iss": "https://op.example/realms/x", "sid": "s1", "auth_time": 1795420800}
        ),
        "REMOTE_ADDR": PROXY,
    }
    _, body = call(environ, profile="kong-oidc", **TRUSTED)
    assert body["identity"]["provider"] == "https://op.example/realms/x"
    assert body["identity"]["session_id"] == "s1"
    assert body["identity"]["authenticated_at"] == "2026-11-23T08:00:00+00:00"


def test_kong_oidc_userinfo_wins_over_id_token() -> None:
    environ = {
        "HTTP_X_USERINFO": b64({"sub": "abc", "email": "userinfo@x"}),
        "HTTP_X_ID_TOKEN": b64({"sub": "abc", "email": "token@x"}),
        "REMOTE_ADDR": PROXY,
    }
    _, body = call(environ, profile="kong-oidc", attributes={"email": "email"}, **TRUSTED)
    assert body["identity"]["attributes"] == {"email": ["userinfo@x"]}


def test_kong_oidc_reads_the_standard_base64_alphabet_with_padding() -> None:
    # "?>" and "ÿ" encode to "+" and "/" in standard base64; base64url would refuse them.
    userinfo = b64({"sub": "abc", "name": "?>?>ÿÿ"})
    assert "+" in userinfo or "/" in userinfo
    assert userinfo.endswith("=")
    _, body = call(
        {"HTTP_X_USERINFO": userinfo, "REMOTE_ADDR": PROXY},
        profile="kong-oidc",
        attributes={"name": "name"},
        **TRUSTED,
    )
    assert body["identity"]["attributes"] == {"name": ["?>?>ÿÿ"]}


def test_kong_oidc_plain_json_of_older_plugins_is_a_loud_encoding_mismatch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # kong-oidc before 0234853 (2018) set X-Userinfo to cjson.encode(user), not base64.
    environ = {"HTTP_X_USERINFO": '{"sub":"abc","email":"a@x"}', "REMOTE_ADDR": PROXY}
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        status, body = call(environ, profile="kong-oidc", attributes={"email": "email"}, **TRUSTED)
    assert status == 400
    assert "json_encoding='base64'" in body["error"]
    assert "'X-Userinfo' arrives unencoded" in caplog.text
    assert "json_encoding" in caplog.text


def test_azure_provider_is_the_principal_idp() -> None:
    environ = {
        "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "u@x",
        "HTTP_X_MS_CLIENT_PRINCIPAL_IDP": "aad",
        "REMOTE_ADDR": PROXY,
    }
    _, body = call(environ, profile="azure-easy-auth", **TRUSTED)
    assert body["identity"]["provider"] == "aad"


def test_azure_user_can_be_the_stable_object_id() -> None:
    environ = {
        "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "renamed@contoso.com",
        "HTTP_X_MS_CLIENT_PRINCIPAL_ID": "5b5450db-eb26-4c1a-981c-ba1d25f0483d",
        "REMOTE_ADDR": PROXY,
    }
    _, body = call(environ, profile="azure-easy-auth", user="principal-id", **TRUSTED)
    assert body["identity"]["user"] == "5b5450db-eb26-4c1a-981c-ba1d25f0483d"


@pytest.mark.parametrize("profile", HEADER_PROFILES)
def test_no_identity_headers_is_anonymous(profile: str) -> None:
    status, body = call({"REMOTE_ADDR": PROXY}, profile=profile, **TRUSTED)
    assert status == 200
    assert body["identity"] is None


@pytest.mark.parametrize(
    ("fields", "setting"),
    [
        pytest.param({"json_encoding": "rot13"}, "json_encoding", id="unknown JSON encoding"),
        pytest.param({"json_shape": "saml"}, "json_shape", id="unknown JSON shape"),
        pytest.param({"prefixes": ()}, "prefixes", id="no prefixes and nothing else to read"),
        pytest.param(
            {"json_variables": ("X-Userinfo",), "user_document": "X-Id-Token"},
            "user_document",
            id="user document not among the JSON variables",
        ),
    ],
)
def test_profile_fields_are_checked(fields: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as error:
        Profile(name="corp", **fields)
    assert error.value.setting == setting


# -- the channel ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", HEADER_PROFILES)
def test_header_profile_alone_demands_trusted_proxies(profile: str) -> None:
    with pytest.raises(ConfigError) as error:
        SSOMiddleware(echo_app, profile=profile)
    assert error.value.setting == "trusted_proxies"
    assert repr(profile) in str(error.value)


@pytest.mark.parametrize("profile", HEADER_PROFILES)
def test_header_profile_defaults_to_the_headers_channel(profile: str) -> None:
    assert PROFILES[profile].channel == "headers"
    assert SSOMiddleware(echo_app, profile=profile, **TRUSTED).channel == "headers"


def test_header_profile_from_settings_needs_trusted_proxies() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_PROFILE": "authentik"})
    middleware = SSOMiddleware.from_mapping(
        echo_app, {"SHIBWSGI_PROFILE": "authentik", "SHIBWSGI_TRUSTED_PROXIES": "10.0.0.0/24"}
    )
    assert middleware.channel == "headers"


def test_claim_type_uris_map_from_a_settings_string() -> None:
    options = parse_settings(
        {"SHIBWSGI_ATTRIBUTES": f"roles={ROLE}:multi email={EMAIL} groups=groups:multi:required"}
    )
    assert options["attributes"]["roles"] == Attribute(ROLE, multi=True)
    assert options["attributes"]["email"] == Attribute(EMAIL)
    assert options["attributes"]["groups"] == Attribute("groups", multi=True, required=True)


def test_authentik_as_uwsgi_params_in_the_environ_channel() -> None:
    # nginx: uwsgi_param X-authentik-username $authentik_username; the exact name, case kept.
    environ = {"X-authentik-username": "akadmin", "X-authentik-groups": "a|b"}
    status, body = call(
        environ,
        {"X-authentik-username": "admin", "X_authentik_groups": "root"},
        profile="authentik",
        channel="environ",
        attributes={"groups": multi("groups")},
    )
    assert status == 200
    assert body["identity"]["user"] == "akadmin"
    assert body["identity"]["attributes"] == {"groups": ["a", "b"]}
    assert body["http_keys"] == ["HTTP_HOST"]


# -- spoofing ---------------------------------------------------------------------------------

SPOOFED = [
    pytest.param("authelia", {"Remote-User": "admin", "Remote-Groups": "admins"}, id="authelia"),
    pytest.param("authelia", {"Remote_User": "admin", "Remote_Groups": "admins"}, id="authelia underscores"),
    pytest.param(
        "authentik", {"X-authentik-username": "admin", "X-authentik-groups": "admins"}, id="authentik"
    ),
    pytest.param("authentik", {"X_authentik_username": "admin"}, id="authentik underscores (CVE-2025-64484)"),
    pytest.param(
        "authentik", {"X-Authentik-Username": "admin", "X-authentik-jwt": "e30"}, id="authentik other case"
    ),
    pytest.param("vouch", {"X-Vouch-User": "admin", "X-Vouch-IdP-Claims-Groups": '"admins"'}, id="vouch"),
    pytest.param("vouch", {"X_Vouch_User": "admin", "X-Vouch-IdP-IdToken": "e30"}, id="vouch underscores"),
    pytest.param(
        "azure-easy-auth",
        {"X-MS-CLIENT-PRINCIPAL-NAME": "admin", "X-MS-CLIENT-PRINCIPAL": principal(("roles", "admin"))},
        id="azure",
    ),
    pytest.param("azure-easy-auth", {"X_MS_CLIENT_PRINCIPAL_NAME": "admin"}, id="azure underscores"),
    pytest.param(
        "kong-oidc", {"X-Userinfo": b64({"sub": "admin"}), "X-Access-Token": "forged"}, id="kong-oidc"
    ),
    pytest.param("kong-oidc", {"X_ID_Token": b64({"sub": "admin"})}, id="kong-oidc underscores"),
]


@pytest.mark.parametrize(("profile", "headers"), SPOOFED)
def test_identity_headers_from_an_untrusted_peer_are_anonymous_and_removed(
    profile: str, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        status, body = call(
            {"REMOTE_ADDR": "203.0.113.9"},
            headers,
            profile=profile,
            attributes={"groups": multi("groups")},
            **TRUSTED,
        )
    assert status == 200
    assert body["identity"] is None
    assert body["remote_user"] is None
    assert body["http_keys"] == ["HTTP_HOST"]
    assert "203.0.113.9" in caplog.text
    assert "admin" not in caplog.text


@pytest.mark.parametrize(("profile", "headers"), SPOOFED)
def test_identity_headers_in_the_environ_channel_are_removed(profile: str, headers: dict[str, str]) -> None:
    status, body = call(
        {}, headers, profile=profile, channel="environ", attributes={"groups": multi("groups")}
    )
    assert status == 200
    assert body["identity"] is None
    assert body["http_keys"] == ["HTTP_HOST"]


def test_trusted_proxy_still_scrubs_identity_headers_the_profile_does_not_read() -> None:
    headers = {"X-authentik-username": "alice", "Remote-User": "root", "X-authentik-meta-app": "forged"}
    _, body = call({"REMOTE_ADDR": PROXY}, headers, profile="authentik", **TRUSTED)
    assert body["identity"]["user"] == "alice"
    assert body["http_keys"] == ["HTTP_HOST", "HTTP_X_AUTHENTIK_USERNAME"]


def test_kong_oidc_claims_never_come_from_a_plain_header() -> None:
    # The userinfo lacks "email": a client's "Email" header, passed on by the proxy, is not read.
    environ = {"HTTP_X_USERINFO": b64({"sub": "abc"}), "HTTP_EMAIL": "admin@x", "REMOTE_ADDR": PROXY}
    _, body = call(environ, profile="kong-oidc", attributes={"email": "email"}, **TRUSTED)
    assert body["identity"]["attributes"] == {}


def test_azure_claims_never_come_from_a_plain_header() -> None:
    environ = {
        "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "u@x",
        "HTTP_X_MS_CLIENT_PRINCIPAL": principal(("name", "U")),
        "HTTP_ROLES": "admin",
        "REMOTE_ADDR": PROXY,
    }
    _, body = call(environ, profile="azure-easy-auth", attributes={"roles": multi("roles")}, **TRUSTED)
    assert body["identity"]["attributes"] == {}


# -- malformed JSON: a clear 400 ---------------------------------------------------------------

DEEP = "[" * 50_000 + "]" * 50_000


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


MALFORMED = [
    pytest.param("azure-easy-auth", "%%% not base64 %%%", 400, "not base64", id="azure not base64"),
    pytest.param("azure-easy-auth", "eyJhdXRo", 400, "not valid JSON", id="azure truncated base64"),
    pytest.param(
        "azure-easy-auth", base64.b64encode(b"\xff\xfe{}").decode(), 400, "UTF-8", id="azure not UTF-8"
    ),
    pytest.param("azure-easy-auth", base64.b64encode(b"not json").decode(), 400, "JSON", id="azure not JSON"),
    pytest.param("azure-easy-auth", b64([1, 2]), 400, "object", id="azure JSON array"),
    pytest.param("azure-easy-auth", b64({"auth_typ": "aad"}), 400, "claims", id="azure no claims"),
    pytest.param("azure-easy-auth", b64({"claims": "admin"}), 400, "claims", id="azure claims not a list"),
    pytest.param(
        "azure-easy-auth", b64({"claims": [{"val": "admin"}]}), 400, "typ", id="azure claim without typ"
    ),
    pytest.param(
        "azure-easy-auth", b64({"claims": [{"typ": 1, "val": "a"}]}), 400, "typ", id="azure typ not a string"
    ),
    pytest.param("azure-easy-auth", b64({"claims": ["admin"]}), 400, "typ", id="azure claim not an object"),
    pytest.param(
        "azure-easy-auth",
        b64({"claims": [{"typ": "roles", "val": {"a": 1}}]}),
        400,
        "structured",
        id="azure object value",
    ),
    pytest.param(
        "azure-easy-auth", base64.b64encode(DEEP.encode()).decode(), 400, "nested", id="azure deep nesting"
    ),
    pytest.param("azure-easy-auth", "A" * 300_000, 431, "bytes", id="azure oversized"),
    pytest.param("kong-oidc", "e30=!", 400, "not base64", id="kong userinfo not base64"),
    pytest.param(
        "kong-oidc", base64.b64encode(b'{"sub": ').decode(), 400, "JSON", id="kong userinfo cut JSON"
    ),
    pytest.param("kong-oidc", b64("admin"), 400, "object", id="kong userinfo a JSON string"),
    pytest.param(
        "kong-oidc", b64({"sub": "abc", "groups": nested(40)}), 400, "nested", id="kong deep claim read"
    ),
]


@pytest.mark.parametrize(("profile", "value", "status", "reason"), MALFORMED)
def test_malformed_json_principal_is_a_clear_4xx(
    profile: str, value: str, status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    variable = PROFILES[profile].json_variables[0]
    key = "HTTP_" + variable.upper().replace("-", "_")
    environ = {key: value, "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "u@x", "REMOTE_ADDR": PROXY}
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        answer, body = call(environ, profile=profile, attributes={"groups": multi("groups")}, **TRUSTED)
    assert answer == status
    assert reason in body["error"]
    assert value[:20] not in json.dumps(body)
    assert reason in caplog.text
    assert value[:20] not in caplog.text


# -- round trips through environ_for -----------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
)
USER = TEXT.filter(lambda user: user.isprintable() and user.strip() == user)

LOSSLESS = [
    ("authentik", lambda value: "|" not in value),
    # A scalar that is itself wrapped in quotes reads as an array of one: lossy at the source.
    (
        "vouch",
        lambda value: (
            '",' not in value and ',"' not in value and not (len(value) > 1 and value[0] == value[-1] == '"')
        ),
    ),
    ("azure-easy-auth", lambda value: True),
    ("kong-oidc", lambda value: True),
    ("authelia", lambda value: "," not in value),
]


@settings(max_examples=60, deadline=None)
@given(user=USER, values=st.lists(TEXT, min_size=1, max_size=6), case=st.sampled_from(LOSSLESS))
def test_environ_for_round_trips(user: str, values: list[str], case: Any) -> None:
    profile, representable = case
    assume(representable(user))
    values = [value for value in values if representable(value)] or ["x"]
    environ = environ_for(profile, user, {"groups": values, "name": values[0]}) | {"REMOTE_ADDR": PROXY}
    middleware = SSOMiddleware(
        echo_app, profile=profile, attributes={"groups": multi("groups"), "name": "name"}, **TRUSTED
    )
    identity = middleware.identify(environ)
    assert identity is not None
    assert identity.user == user
    assert identity.attributes["groups"] == tuple(values)
    assert identity.attributes["name"] == (values[0],)


@pytest.mark.parametrize("profile", HEADER_PROFILES)
def test_environ_for_gives_header_keys_by_default(profile: str) -> None:
    environ = environ_for(profile, "zoe@example.org", {"groups": ["a", "b"]})
    assert environ
    assert all(key.startswith("HTTP_") for key in environ)
    assert "REMOTE_USER" not in environ


@pytest.mark.parametrize("profile", HEADER_PROFILES)
def test_demo_app_defaults_follow_the_header_profile(tmp_path: Path, profile: str) -> None:
    # As with `SHIBWSGI_PROFILE=<profile> SHIBWSGI_TRUSTED_PROXIES=127.0.0.1 make demo`.
    settings = {
        "SHIBWSGI_PROFILE": profile,
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
        "MOVIES_DB": str(tmp_path / "movies.sqlite3"),
    }
    names = SOURCE_NAMES[profile]
    attributes = {names["displayName"]: "Zoë", names["mail"]: "z@x", names["isMemberOf"]: ["a,b", "c"]}
    environ = environ_for(profile, "zoe", attributes) | {"REMOTE_ADDR": "127.0.0.1"}
    me = TestApp(make_application(settings)).get("/api/me", extra_environ=environ).json
    assert me["user"] == "zoe"
    assert me["attributes"]["name"] == ["Zoë"]
    assert me["attributes"]["email"] == ["z@x"]
    groups = ["a", "b", "c"] if profile == "authelia" else ["a,b", "c"]  # authelia's commas: lossy
    assert me["attributes"]["groups"] == groups


@pytest.fixture
def wsgi_app() -> SSOMiddleware:
    """The app the ``sso_client`` fixture of shibwsgi's pytest plugin talks to."""
    return SSOMiddleware(
        echo_app, profile="authentik", trusted_proxies=["127.0.0.1"], attributes={"groups": multi("groups")}
    )


def test_pytest_plugin_signs_in_through_a_header_front_end(sso_client: Any) -> None:
    client = sso_client("zoe", {"groups": ["a,b", "c"]}, profile="authentik")
    identity = client.get("/").json["identity"]
    assert identity["user"] == "zoe"
    assert identity["attributes"] == {"groups": ["a,b", "c"]}
    assert sso_client(None).get("/").json["identity"] is None
