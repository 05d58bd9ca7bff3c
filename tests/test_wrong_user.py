"""Wrong-user attacks on the profiles that read one identity from more than one place.

Three mechanisms gave a wrong user: documents merged without checking that they
name the same subject, list parsing applied to a single-valued user source, and
a claim shadowing a fixed source (or a dotted claim name shadowing the nested
claim). Each class is tried on every profile it applies to; the round trips check
that ``environ_for`` writes exactly what each front end sends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webtest import TestApp

from shibwsgi import Attribute, RequestError, SSOMiddleware, SubjectMismatchError
from shibwsgi.parsing import user_id_problem
from shibwsgi.profiles import PROFILES, REMOTE_USER
from shibwsgi.testing import environ_for
from shibwsgi.testing.signed import TestSigner
from tests.helpers import PROXY, b64, call, echo_app, mojibake, principal, user_of

HEADERS: dict[str, Any] = {"trusted_proxies": ["10.0.0.0/24"]}
NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


# -- 1. every source naming the subject must name the same one ---------------------------------

DISAGREEING_SOURCES = [
    pytest.param(
        {"profile": "kong-oidc", **HEADERS},
        {"HTTP_X_USERINFO": b64({"sub": "admin"}), "HTTP_X_ID_TOKEN": b64({"sub": "alice"})},
        "'sub' differs between X-Userinfo and X-ID-Token",
        id="kong userinfo names another sub than the id token",
    ),
    pytest.param(
        {"profile": "kong-oidc", "user": "preferred_username", **HEADERS},
        {
            "HTTP_X_USERINFO": b64({"sub": "s1", "preferred_username": "admin"}),
            "HTTP_X_ID_TOKEN": b64({"sub": "s1", "preferred_username": "alice"}),
        },
        "'preferred_username' differs",
        id="kong user claim differs, same sub",
    ),
    pytest.param(
        {"profile": "kong-oidc", "user": "email", **HEADERS},
        {"HTTP_X_USERINFO": b64({"email": "admin@x"}), "HTTP_X_ID_TOKEN": b64({"sub": "s1", "email": "a@x"})},
        "'sub' differs between X-Userinfo and X-ID-Token",
        id="kong introspection userinfo without sub, forged id token",
    ),
    pytest.param(
        {"profile": "openidc"},
        {
            "OIDC_userinfo_json": json.dumps({"sub": "admin"}),
            "OIDC_id_token_payload": json.dumps({"sub": "alice"}),
        },
        "'sub' differs between OIDC_userinfo_json and OIDC_id_token_payload",
        id="openidc userinfo names another sub than the id token",
    ),
    pytest.param(
        {"profile": "openidc", "user": "email"},
        {
            "OIDC_userinfo_json": json.dumps({"sub": "s1", "email": "admin@x"}),
            "OIDC_id_token_payload": json.dumps({"sub": "s1", "email": "alice@x"}),
        },
        "'email' differs",
        id="openidc user claim differs between documents",
    ),
    pytest.param(
        {"profile": "kong-oidc", **HEADERS},
        {
            "HTTP_X_USERINFO": b64({"sub": "admin", "iss": "https://op.example"}),
            "HTTP_X_ID_TOKEN": b64({"sub": "admin", "iss": "https://alice.example"}),
        },
        "'iss' differs",
        id="kong same sub from another issuer",
    ),
    pytest.param(
        {"profile": "openidc"},
        {"OIDC_CLAIM_sub": "admin", "OIDC_id_token_payload": json.dumps({"sub": "alice"})},
        "'sub' differs between the JSON claims and its claim variable",
        id="openidc claim variable names another sub than the JSON",
    ),
    pytest.param(
        {"profile": "oauth2-proxy"},
        {"X-Forwarded-User": "admin", "X-Auth-Request-User": "alice"},
        "'user' differs between X-Forwarded-User and X-Auth-Request-User",
        id="oauth2-proxy user in both prefixes differs",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "admin", "MELLON_uid_0": "alice", "MELLON_uid_N": "1"},
        "'uid' differs between MELLON_uid_0 .. and MELLON_uid",
        id="mellon series and its first value differ",
    ),
    pytest.param(
        {"profile": "oauth2-proxy", "channel": "headers", **HEADERS},
        {"HTTP_X_FORWARDED_USER": "admin", "HTTP_X_AUTH_REQUEST_USER": "alice"},
        "'user' differs",
        id="oauth2-proxy headers user in both prefixes differs",
    ),
]


# A source that is present but empty disagrees with one that names a user: the front end
# emptied its own header and a client's copy under the other spelling must not fill it in.
EMPTY_SOURCE_NEXT_TO_A_USER = [
    pytest.param(
        {"profile": "oauth2-proxy", "channel": "headers", **HEADERS},
        {"HTTP_X_FORWARDED_USER": "", "HTTP_X_AUTH_REQUEST_USER": "admin"},
        "'user' differs",
        id="oauth2-proxy headers empty X-Forwarded-User, client X-Auth-Request-User",
    ),
    pytest.param(
        {"profile": "oauth2-proxy", "channel": "headers", **HEADERS},
        {"HTTP_X_FORWARDED_USER": ",", "HTTP_X_AUTH_REQUEST_USER": "admin"},
        "'user' differs",
        id="oauth2-proxy headers X-Forwarded-User only a delimiter, client X-Auth-Request-User",
    ),
    # Was accepted as alice: the old test "oauth2-proxy empty second header is no value".
    pytest.param(
        {"profile": "oauth2-proxy"},
        {"X-Forwarded-User": "admin", "X-Auth-Request-User": ""},
        "'user' differs between X-Forwarded-User and X-Auth-Request-User",
        id="oauth2-proxy environ empty X-Auth-Request-User",
    ),
    pytest.param(
        {"profile": "openidc"},
        {"OIDC_CLAIM_sub": "", "OIDC_id_token_payload": json.dumps({"sub": "admin"})},
        "'sub' differs between the JSON claims and its claim variable",
        id="openidc empty claim variable, sub in the JSON",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "", "MELLON_uid_0": "admin", "MELLON_uid_N": "1"},
        "'uid' differs between MELLON_uid_0 .. and MELLON_uid",
        id="mellon empty base, series names a user",
    ),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "admin", "MELLON_uid_0": ""},
        "'uid' differs between MELLON_uid_0 .. and MELLON_uid",
        id="mellon base names a user, empty series",
    ),
    pytest.param(
        {"profile": "kong-oidc", "user": "email", **HEADERS},
        {
            "HTTP_X_USERINFO": b64({"sub": "s", "email": ""}),
            "HTTP_X_ID_TOKEN": b64({"sub": "s", "email": "admin@x"}),
        },
        "'email' differs between X-Userinfo and X-ID-Token",
        id="kong empty user claim in the userinfo, another in the ID token",
    ),
]


@pytest.mark.parametrize(("options", "environ", "logged"), DISAGREEING_SOURCES + EMPTY_SOURCE_NEXT_TO_A_USER)
def test_sources_naming_different_users_are_refused(
    options: dict[str, Any], environ: dict[str, str], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        status, body = call(environ, **options)
    assert status == 400
    assert "name different users" in body["error"]
    assert logged in caplog.text
    for value in ("admin", "alice"):
        assert value not in body["error"]
        assert value not in caplog.text


def test_subject_mismatch_is_a_request_error() -> None:
    profile = PROFILES["kong-oidc"]
    middleware = SSOMiddleware(echo_app, profile=profile, **HEADERS)
    environ = {
        "REMOTE_ADDR": PROXY,
        "HTTP_X_USERINFO": b64({"sub": "a"}),
        "HTTP_X_ID_TOKEN": b64({"sub": "b"}),
    }
    with pytest.raises(SubjectMismatchError):
        middleware.identify(environ)


AGREEING_SOURCES = [
    pytest.param(
        {"profile": "kong-oidc", **HEADERS},
        {
            "HTTP_X_USERINFO": b64({"sub": "alice", "email": "userinfo@x"}),
            "HTTP_X_ID_TOKEN": b64({"sub": "alice", "email": "token@x", "iss": "https://op"}),
        },
        "alice",
        {"email": ["userinfo@x"]},
        id="kong same sub, userinfo first",
    ),
    pytest.param(
        {"profile": "kong-oidc", **HEADERS},
        {"HTTP_X_USERINFO": b64({"sub": "alice", "email": "userinfo@x"})},
        "alice",
        {"email": ["userinfo@x"]},
        id="kong introspection: userinfo alone",
    ),
    pytest.param(
        {"profile": "openidc"},
        {
            "OIDC_CLAIM_sub": "Zoë ??",  # mod_auth_openidc's latin1: what latin-1 cannot hold is "?"
            "OIDC_userinfo_json": json.dumps({"sub": "Zoë 山田", "email": "userinfo@x"}),
            "OIDC_id_token_payload": json.dumps({"sub": "Zoë 山田", "email": "token@x"}),
        },
        "Zoë 山田",
        {"email": ["userinfo@x"]},
        id="openidc latin1 claim variable agrees with its JSON",
    ),
    pytest.param(
        {"profile": "openidc"},
        {"OIDC_CLAIM_sub": "a,b", "OIDC_id_token_payload": json.dumps({"sub": "a,b"})},
        "a,b",
        {},
        id="openidc sub with a comma: the JSON says one value",
    ),
]


@pytest.mark.parametrize(("options", "environ", "user", "attributes"), AGREEING_SOURCES)
def test_sources_naming_the_same_user_are_merged(
    options: dict[str, Any], environ: dict[str, str], user: str, attributes: dict[str, list[str]]
) -> None:
    status, body = call(environ, attributes={"email": "email"}, **options)
    assert status == 200, body
    assert body["identity"]["user"] == user
    assert body["identity"]["attributes"] == attributes


@pytest.mark.parametrize(
    ("options", "environ"),
    [
        pytest.param(
            {"profile": "oauth2-proxy"},
            {"X-Forwarded-User": "", "X-Auth-Request-User": ""},
            id="oauth2-proxy",
        ),
        pytest.param(
            {"profile": "oauth2-proxy", "channel": "headers", **HEADERS},
            {"HTTP_X_FORWARDED_USER": ",", "HTTP_X_AUTH_REQUEST_USER": ""},
            id="oauth2-proxy headers",
        ),
        pytest.param(
            {"profile": "openidc"},
            {"OIDC_CLAIM_sub": "", "OIDC_id_token_payload": json.dumps({"sub": ""})},
            id="openidc",
        ),
        pytest.param(
            {"profile": "mellon", "user": "uid"}, {"MELLON_uid": "", "MELLON_uid_0": ""}, id="mellon"
        ),
    ],
)
def test_every_user_source_empty_is_anonymous(options: dict[str, Any], environ: dict[str, str]) -> None:
    assert user_of(environ, **options) is None


def openidc_verified(signer: TestSigner, **options: Any) -> TestApp:
    return TestApp(
        SSOMiddleware(
            echo_app,
            profile="openidc",
            jwks=signer.jwks,
            issuer=signer.issuer,
            audience=signer.audience,
            **options,
        )
    )


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("OIDC_userinfo_json", id="userinfo"),
        pytest.param("OIDC_id_token_payload", id="id token payload"),
    ],
)
def test_openidc_json_naming_another_sub_than_the_verified_token_is_refused(variable: str) -> None:
    signer = TestSigner("RS256")
    environ = {
        "OIDC_id_token": signer.sign(signer.claims("alice")),
        variable: json.dumps({"sub": "admin"}),
    }
    response = openidc_verified(signer).get("/", extra_environ=environ, expect_errors=True)
    assert response.status_int == 400
    assert "admin" not in response.text and "alice" not in response.text


def test_openidc_claim_variable_naming_another_sub_than_the_verified_token_is_refused() -> None:
    signer = TestSigner("RS256")
    environ = {**environ_for("openidc", "admin"), "OIDC_id_token": signer.sign(signer.claims("alice"))}
    openidc_verified(signer).get("/", extra_environ=environ, status=400)


NOT_A_STRING = [
    pytest.param({"role": "admin"}, id="object"),
    pytest.param(["admin"], id="list of one"),
    pytest.param(7, id="number"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="boolean"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("value", NOT_A_STRING)
@pytest.mark.parametrize(
    ("options", "environ"),
    [
        pytest.param(
            {"profile": "kong-oidc", **HEADERS}, lambda v: {"HTTP_X_USERINFO": b64({"sub": v})}, id="kong"
        ),
        pytest.param(
            {"profile": "openidc"}, lambda v: {"OIDC_userinfo_json": json.dumps({"sub": v})}, id="openidc"
        ),
    ],
)
def test_user_claim_that_is_not_a_string_is_refused_not_turned_into_text(
    options: dict[str, Any], environ: Any, value: object
) -> None:
    status, body = call(environ(value), **options)
    assert status == 400
    assert "not a string" in body["error"]


@pytest.mark.parametrize("value", [7, True, None])
def test_azure_user_claim_that_is_not_a_string_is_refused(value: object) -> None:
    environ = {"HTTP_X_MS_CLIENT_PRINCIPAL": principal((NAME, value))}
    status, body = call(environ, profile="azure-easy-auth", user=NAME, **HEADERS)
    assert status == 400
    assert "not a string" in body["error"]


def test_signed_user_claim_that_is_a_number_is_refused() -> None:
    signer = TestSigner()
    app = TestApp(
        SSOMiddleware(
            echo_app,
            profile="pomerium",
            jwks=signer.jwks,
            issuer=signer.issuer,
            audience=signer.audience,
            user="uid",
        )
    )
    token = signer.sign(signer.claims("alice", {"uid": 1000}))
    app.get("/", extra_environ={"HTTP_X_POMERIUM_JWT_ASSERTION": token}, status=400)


# kong-oidc sets X-Userinfo in every mode, X-ID-Token only in the code flow: with introspection
# or a bearer JWT a client's X-ID-Token reaches the app, carrying the client's own sub.
@pytest.mark.parametrize(
    ("user", "userinfo", "id_token"),
    [
        pytest.param("email", {"sub": "m", "active": True}, {"sub": "m", "email": "admin@x"}, id="email"),
        pytest.param(
            "preferred_username",
            {"sub": "m", "email": "m@x"},
            {"sub": "m", "preferred_username": "admin"},
            id="preferred_username",
        ),
        pytest.param(
            "profile.name", {"sub": "m"}, {"sub": "m", "profile": {"name": "admin"}}, id="nested claim"
        ),
    ],
)
def test_kong_forged_id_token_with_own_sub_never_names_the_user(
    user: str, userinfo: dict[str, Any], id_token: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"HTTP_X_USERINFO": b64(userinfo), "HTTP_X_ID_TOKEN": b64(id_token)}
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        status, body = call(environ, profile="kong-oidc", user=user, **HEADERS)
    assert status == 400
    assert "name different users" in body["error"]
    assert f"{user!r} differs between X-Userinfo and X-ID-Token" in caplog.text
    assert "admin" not in caplog.text


@pytest.mark.parametrize(
    ("environ", "user"),
    [
        pytest.param(
            {"HTTP_X_USERINFO": b64({"sub": "s", "email": "ann@x"}), "HTTP_X_ID_TOKEN": b64({"sub": "s"})},
            "ann@x",
            id="userinfo holds it, the ID token does not",
        ),
        pytest.param(
            {
                "HTTP_X_USERINFO": b64({"sub": "s", "email": "ann@x"}),
                "HTTP_X_ID_TOKEN": b64({"sub": "s", "email": "ann@x"}),
            },
            "ann@x",
            id="both hold it",
        ),
        pytest.param(
            {"HTTP_X_ID_TOKEN": b64({"sub": "s", "email": "ann@x"})}, "ann@x", id="code flow without userinfo"
        ),
        pytest.param({"HTTP_X_USERINFO": b64({"sub": "s", "email": "ann@x"})}, "ann@x", id="introspection"),
        pytest.param(
            {"HTTP_X_USERINFO": b64({"sub": "s"}), "HTTP_X_ID_TOKEN": b64({"sub": "s"})},
            None,
            id="neither holds it",
        ),
    ],
)
def test_kong_user_claim_from_the_userinfo_serves_every_mode(
    environ: dict[str, str], user: str | None
) -> None:
    assert user_of(environ, profile="kong-oidc", user="email", **HEADERS) == user


# -- 2. a user source is read as its front end sends it: never list-parsed --------------------


@pytest.mark.parametrize(
    ("options", "environ", "user"),
    [
        pytest.param({"profile": "vouch"}, {"HTTP_X_VOUCH_USER": '"admin"'}, '"admin"', id="vouch quoted"),
        pytest.param(
            {"profile": "vouch"}, {"HTTP_X_VOUCH_USER": '"admin","'}, '"admin","', id="vouch quote comma"
        ),
        pytest.param({"profile": "vouch"}, {"HTTP_X_VOUCH_USER": '"a","b"'}, '"a","b"', id="vouch list form"),
        pytest.param(
            {"profile": "vouch"}, {"HTTP_X_VOUCH_USER": "smith, john"}, "smith, john", id="vouch comma"
        ),
        pytest.param(
            {"profile": "azure-easy-auth"},
            {"HTTP_X_MS_CLIENT_PRINCIPAL_NAME": '"a","b"'},
            '"a","b"',
            id="azure name",
        ),
        pytest.param(
            {"profile": "remote-user", "trusted_proxies": None}, {"REMOTE_USER": "a;b"}, "a;b", id="remote"
        ),
        pytest.param(
            {"profile": "mellon", "trusted_proxies": None}, {"REMOTE_USER": "a;b"}, "a;b", id="mellon"
        ),
    ],
)
def test_vouch_user_with_quotes_is_taken_verbatim(
    options: dict[str, Any], environ: dict[str, str], user: str
) -> None:
    # Fixed single-value sources: X-Vouch-User, Azure's principal headers, REMOTE_USER.
    options = {**HEADERS, **options}
    if options["trusted_proxies"] is None:
        del options["trusted_proxies"]
    assert user_of(environ, **options) == user


JOINED_USERS = [
    pytest.param(
        {"profile": "authelia", **HEADERS}, {"HTTP_REMOTE_USER": "admin,"}, id="authelia trailing comma"
    ),
    pytest.param({"profile": "authelia", **HEADERS}, {"HTTP_REMOTE_USER": "admin,alice"}, id="authelia list"),
    pytest.param(
        {"profile": "authentik", **HEADERS}, {"HTTP_X_AUTHENTIK_USERNAME": "admin|"}, id="authentik pipe"
    ),
    pytest.param(
        {"profile": "oauth2-proxy"}, {"X-Forwarded-User": "admin,"}, id="oauth2-proxy trailing comma"
    ),
    pytest.param({"profile": "shibboleth"}, {"eppn": "admin@x;"}, id="shibboleth trailing empty value"),
    pytest.param({"profile": "shibboleth", "encoding": "url"}, {"eppn": "admin%40x;"}, id="shibboleth url"),
    pytest.param({"profile": "adfs"}, {"ADFS_LOGIN": ";admin"}, id="adfs leading empty value"),
    pytest.param({"profile": "openidc"}, {"OIDC_CLAIM_sub": "admin,"}, id="openidc claim variable"),
    pytest.param(
        {"profile": "mellon", "user": "uid"},
        {"MELLON_uid": "admin;", "MELLON_uid_0": "admin;"},
        id="mellon attribute",
    ),
    pytest.param(
        {"profile": "vouch", "user": "email", **HEADERS},
        {"HTTP_X_VOUCH_IDP_CLAIMS_EMAIL": '"admin@x"'},
        id="vouch claim header in array form",
    ),
]


@pytest.mark.parametrize(("options", "environ"), JOINED_USERS)
def test_joined_user_is_refused_not_cut_to_its_non_empty_part(
    options: dict[str, Any], environ: dict[str, str]
) -> None:
    status, body = call(environ, **options)
    assert status == 400
    assert "one value" in body["error"]
    assert "admin" not in body["error"]


@pytest.mark.parametrize(
    ("options", "environ", "user"),
    [
        pytest.param({}, {"eppn": r"odd\;name@x"}, "odd;name@x", id="shibboleth escaped delimiter"),
        pytest.param(
            {"profile": "authentik", **HEADERS}, {"HTTP_X_AUTHENTIK_USERNAME": "a,b"}, "a,b", id="authentik"
        ),
        pytest.param(
            {"profile": "authelia", **HEADERS}, {"HTTP_REMOTE_USER": '"admin"'}, '"admin"', id="authelia"
        ),
        pytest.param(
            {"profile": "vouch", "user": "email", **HEADERS},
            {"HTTP_X_VOUCH_IDP_CLAIMS_EMAIL": "smith, john"},
            "smith, john",
            id="vouch scalar claim",
        ),
    ],
)
def test_user_without_the_profiles_list_syntax_is_one_value(
    options: dict[str, Any], environ: dict[str, str], user: str
) -> None:
    assert user_of(environ, **options) == user


# -- 3. fixed sources first; a dotted name is the nested claim ----------------------------------


@pytest.mark.parametrize(
    ("source", "header"),
    [
        pytest.param("principal-name", "HTTP_X_MS_CLIENT_PRINCIPAL_NAME", id="name"),
        pytest.param("principal-id", "HTTP_X_MS_CLIENT_PRINCIPAL_ID", id="id"),
        pytest.param("principal-idp", "HTTP_X_MS_CLIENT_PRINCIPAL_IDP", id="idp"),
    ],
)
def test_azure_principal_claim_never_shadows_the_fixed_header(source: str, header: str) -> None:
    environ = {header: "alice", "HTTP_X_MS_CLIENT_PRINCIPAL": principal((source, "admin"))}
    status, body = call(
        environ, profile="azure-easy-auth", user=source, attributes={"copy": source}, **HEADERS
    )
    assert status == 200
    assert body["identity"]["user"] == "alice"
    assert body["identity"]["attributes"] == {"copy": ["alice"]}


def test_azure_principal_claim_is_never_read_for_a_fixed_source() -> None:
    environ = {"HTTP_X_MS_CLIENT_PRINCIPAL": principal(("principal-name", "admin"), ("principal-idp", "aad"))}
    status, body = call(environ, profile="azure-easy-auth", **HEADERS)
    assert status == 200
    assert body["identity"] is None


def test_azure_provider_comes_from_the_idp_header_not_a_claim() -> None:
    environ = {
        "HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "alice",
        "HTTP_X_MS_CLIENT_PRINCIPAL_IDP": "aad",
        "HTTP_X_MS_CLIENT_PRINCIPAL": principal(("principal-idp", "evil")),
    }
    _, body = call(environ, profile="azure-easy-auth", **HEADERS)
    assert body["identity"]["provider"] == "aad"


def test_kong_access_token_claim_never_shadows_the_access_token_header() -> None:
    environ = {
        "HTTP_X_USERINFO": b64({"sub": "alice", "access-token": "forged"}),
        "HTTP_X_ACCESS_TOKEN": "real",
    }
    _, body = call(environ, profile="kong-oidc", attributes={"token": "access-token"}, **HEADERS)
    assert body["identity"]["attributes"] == {"token": ["real"]}


def test_vouch_claim_header_named_user_never_shadows_x_vouch_user() -> None:
    environ = {"HTTP_X_VOUCH_USER": "alice", "HTTP_X_VOUCH_IDP_CLAIMS_USER": "admin"}
    assert user_of(environ, profile="vouch", **HEADERS) == "alice"


NESTED = {"realm_access": {"roles": ["viewer"]}}
LITERAL = {"realm_access.roles": ["admin"]}
DOTTED_CASES = [
    pytest.param({**LITERAL, **NESTED}, ["viewer"], id="literal first"),
    pytest.param({**NESTED, **LITERAL}, ["viewer"], id="nested first"),
    pytest.param(LITERAL, None, id="literal alone"),
]


@pytest.mark.parametrize(("claims", "roles"), DOTTED_CASES)
@pytest.mark.parametrize(
    ("options", "environ"),
    [
        pytest.param({"profile": "kong-oidc", **HEADERS}, lambda c: {"HTTP_X_USERINFO": b64(c)}, id="kong"),
        pytest.param({"profile": "openidc"}, lambda c: {"OIDC_userinfo_json": json.dumps(c)}, id="openidc"),
    ],
)
def test_literal_dotted_claim_never_shadows_the_nested_claim(
    options: dict[str, Any], environ: Any, claims: dict[str, Any], roles: list[str] | None
) -> None:
    attributes = {"roles": Attribute("realm_access.roles", multi=True)}
    status, body = call(environ({"sub": "alice", **claims}), attributes=attributes, **options)
    assert status == 200
    assert body["identity"]["attributes"].get("roles") == roles


@pytest.mark.parametrize(("claims", "roles"), DOTTED_CASES)
def test_signed_literal_dotted_claim_never_shadows_the_nested_claim(
    claims: dict[str, Any], roles: list[str] | None
) -> None:
    signer = TestSigner()
    app = TestApp(
        SSOMiddleware(
            echo_app,
            profile="pomerium",
            jwks=signer.jwks,
            issuer=signer.issuer,
            audience=signer.audience,
            attributes={"roles": Attribute("realm_access.roles", multi=True)},
        )
    )
    token = signer.sign(signer.claims("alice", claims))
    identity = app.get("/", extra_environ={"HTTP_X_POMERIUM_JWT_ASSERTION": token}).json["identity"]
    assert identity["attributes"].get("roles") == roles


def test_uri_named_claim_is_one_name() -> None:
    claims = {"sub": "alice", "https://example.org/roles": ["editor"]}
    attributes = {"roles": Attribute("https://example.org/roles", multi=True)}
    _, body = call({"HTTP_X_USERINFO": b64(claims)}, profile="kong-oidc", attributes=attributes, **HEADERS)
    assert body["identity"]["attributes"] == {"roles": ["editor"]}


# -- round trips: environ_for writes each front end's wire form --------------------------------

UNSIGNED = sorted(name for name, profile in PROFILES.items() if not profile.signed)
USERS = ["alice@example.org", '"admin"', '"admin","', "a;b", "a|b", "Zoë 山田"]


def _refuses(profile_name: str, user: str) -> bool:
    """True when the profile's user source may hold a joined list and ``user`` looks like one."""
    profile = PROFILES[profile_name]
    source = profile.user[0]
    if source == REMOTE_USER or source in profile.source_variables or not profile.prefixes:
        return False
    if profile.quoted_lists:
        return user.startswith('"') and user.endswith('"')
    return profile.delimiter is not None and profile.delimiter in user and not profile.backslash_escapes


def round_trip_options(profile: str) -> dict[str, Any]:
    """Middleware options for ``profile``'s front end as ``environ_for`` writes it."""
    options: dict[str, Any] = {"profile": profile}
    if PROFILES[profile].channel == "headers":
        options.update(HEADERS)
    if profile == "openidc":
        options["encoding"] = "utf-8"  # latin1, mod_auth_openidc's default, would turn "山" into "?"
    return options


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("profile", UNSIGNED)
def test_environ_for_round_trips_the_user(profile: str, user: str) -> None:
    spec = PROFILES[profile]
    options = round_trip_options(profile)
    environ = environ_for(profile, user, {"groups": ["g1", "g2"]}, encoding=options.get("encoding"))
    status, body = call(environ, attributes={"groups": Attribute("groups", multi=True)}, **options)
    if _refuses(profile, user):
        assert status == 400
        return
    assert status == 200, body
    assert body["identity"]["user"] == user
    one_value = spec.delimiter is None and not spec.json_variables  # remote-user: one value per variable
    assert body["identity"]["attributes"] == {"groups": ["g1"] if one_value else ["g1", "g2"]}


@pytest.mark.parametrize(
    ("profile", "user", "attributes", "expected"),
    [
        pytest.param("vouch", '"admin"', {}, {"HTTP_X_VOUCH_USER": '"admin"'}, id="vouch user bare"),
        pytest.param(
            "vouch", "zoe", {"groups": ["a"]}, {"HTTP_X_VOUCH_IDP_CLAIMS_GROUPS": '"a"'}, id="vouch array"
        ),
        pytest.param(
            "vouch",
            "zoe",
            {"groups": ["a", "b"]},
            {"HTTP_X_VOUCH_IDP_CLAIMS_GROUPS": '"a","b"'},
            id="vouch arrays",
        ),
        pytest.param(
            "vouch", "zoe", {"name": '"x"'}, {"HTTP_X_VOUCH_IDP_CLAIMS_NAME": '"x"'}, id="vouch scalar"
        ),
        pytest.param(
            "azure-easy-auth",
            "a,b",
            {},
            {"HTTP_X_MS_CLIENT_PRINCIPAL_NAME": "a,b"},
            id="azure name header bare",
        ),
        pytest.param("authelia", "Zoë", {}, {"HTTP_REMOTE_USER": mojibake("Zoë")}, id="authelia utf-8 bytes"),
    ],
)
def test_environ_for_writes_the_front_ends_wire_form(
    profile: str, user: str, attributes: dict[str, Any], expected: dict[str, str]
) -> None:
    environ = environ_for(profile, user, attributes)
    assert {key: environ[key] for key in expected} == expected


def test_environ_for_kong_documents_name_one_subject() -> None:
    environ = environ_for("kong-oidc", "alice", {"email": "a@x"})
    documents = [json.loads(base64.b64decode(environ[key])) for key in ("HTTP_X_USERINFO", "HTTP_X_ID_TOKEN")]
    assert [document["sub"] for document in documents] == ["alice", "alice"]
    assert documents[0]["email"] == "a@x"


# Ids no Identity may hold (padded, U+FFFD: tests/test_attack_user.py) are not round trips.
PRINTABLE_USER = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda text: user_id_problem(text) is None)


@settings(max_examples=300, deadline=None)
@given(profile=st.sampled_from(UNSIGNED), user=PRINTABLE_USER)
def test_environ_for_round_trips_any_user_or_refuses_a_list(profile: str, user: str) -> None:
    options = round_trip_options(profile)
    middleware = SSOMiddleware(echo_app, **options)
    environ = {"REMOTE_ADDR": PROXY, **environ_for(profile, user, encoding=options.get("encoding"))}
    if _refuses(profile, user):
        # Never another user: refused, or anonymous when the list holds only delimiters ("|").
        with contextlib.suppress(RequestError):
            assert middleware.identify(environ) is None
        return
    identity = middleware.identify(environ)
    assert identity is not None
    assert identity.user == user
