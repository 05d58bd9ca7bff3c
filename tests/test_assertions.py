"""Signed assertions (JWT): every attack is refused with 401, keys rotate, companions are scrubbed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from helpers import echo_app
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, SSOMiddleware
from shibwsgi.assertions import MAX_ASSERTION_BYTES
from shibwsgi.testing import environ_for
from shibwsgi.testing.signed import TestSigner

POMERIUM = "HTTP_X_POMERIUM_JWT_ASSERTION"


class Recorder:
    """The inner app, remembering every identity it was handed."""

    def __init__(self) -> None:
        self.identities: list[Any] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.identities.append(environ["shibwsgi.identity"])
        return echo_app(environ, start_response)


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return TestSigner("ES256")


@pytest.fixture(scope="module")
def rsa_signer() -> TestSigner:
    return TestSigner("RS256")


def pomerium_app(signer: TestSigner, recorder: Recorder | None = None, **options: Any) -> TestApp:
    defaults = {
        "profile": "pomerium",
        "jwks": signer.jwks,
        "issuer": signer.issuer,
        "audience": signer.audience,
    }
    return TestApp(SSOMiddleware(recorder or echo_app, **{**defaults, **options}))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


# -- the attack table ---------------------------------------------------------------------------

Attack = Callable[[TestSigner, TestSigner], str]


def alg_none(signer: TestSigner, rsa: TestSigner) -> str:
    return unsigned({"alg": "none", "kid": signer.kid}, signer.claims("mallory"))


def hs256_with_public_key(signer: TestSigner, rsa: TestSigner) -> str:
    # The classic confusion: the verifier's RSA public key (PEM) used as an HMAC secret.
    header = b64(json.dumps({"alg": "HS256", "kid": rsa.kid}).encode())
    payload = b64(json.dumps(rsa.claims("mallory")).encode())
    mac = hmac.new(rsa.public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def rs256_to_es256_profile(signer: TestSigner, rsa: TestSigner) -> str:
    return rsa.sign(rsa.claims("mallory"))


def expired(signer: TestSigner, rsa: TestSigner) -> str:
    now = int(time.time())
    return signer.sign(signer.claims("alice", {"iat": now - 600, "exp": now - 60}))


def nbf_in_the_future(signer: TestSigner, rsa: TestSigner) -> str:
    return signer.sign(signer.claims("alice", {"nbf": int(time.time()) + 600}))


def wrong_iss(signer: TestSigner, rsa: TestSigner) -> str:
    return signer.sign(signer.claims("alice", {"iss": "https://evil.example.net"}))


def wrong_aud(signer: TestSigner, rsa: TestSigner) -> str:
    return signer.sign(signer.claims("alice", {"aud": "https://evil.example.net"}))


def token_for_another_app(signer: TestSigner, rsa: TestSigner) -> str:
    # Genuinely issued by the same front end and key, for a sibling application.
    return signer.sign(signer.claims("alice", {"aud": ["https://wiki.example.org"]}))


def tampered_payload(signer: TestSigner, rsa: TestSigner) -> str:
    header, _, signature = signer.sign(signer.claims("alice")).split(".")
    forged = b64(json.dumps(signer.claims("admin")).encode())
    return f"{header}.{forged}.{signature}"


def kid_not_in_jwks(signer: TestSigner, rsa: TestSigner) -> str:
    stranger = TestSigner("ES256", issuer=signer.issuer, audience=signer.audience)
    return stranger.sign(stranger.claims("mallory"))


def jku_to_attacker_keys(signer: TestSigner, rsa: TestSigner) -> str:
    attacker = TestSigner("ES256", kid=signer.kid, issuer=signer.issuer, audience=signer.audience)
    headers = {"jku": "https://attacker.example.net/jwks.json", "x5u": "https://attacker.example.net/cert"}
    return attacker.sign(attacker.claims("mallory"), headers=headers)


def unknown_crit(signer: TestSigner, rsa: TestSigner) -> str:
    return signer.sign(
        signer.claims("alice"), headers={"crit": ["urn:example:policy"], "urn:example:policy": 1}
    )


def oversized(signer: TestSigner, rsa: TestSigner) -> str:
    return signer.sign(signer.claims("alice", {"padding": "x" * MAX_ASSERTION_BYTES}))


def garbage(signer: TestSigner, rsa: TestSigner) -> str:
    return "not.a.jwt%%%"


def garbage_without_dots(signer: TestSigner, rsa: TestSigner) -> str:
    return "Z" * 300


def non_ascii_bytes(signer: TestSigner, rsa: TestSigner) -> str:
    token = signer.sign(signer.claims("alice"))
    return token[:20] + "Ã©" + token[20:]  # UTF-8 "é" as the WSGI server hands it over


def deeply_nested_header(signer: TestSigner, rsa: TestSigner) -> str:
    token = signer.sign(signer.claims("alice"))
    return b64(b"[" * 4000 + b"]" * 4000) + token[token.index(".") :]


def json_array_payload(signer: TestSigner, rsa: TestSigner) -> str:
    header = b64(json.dumps({"alg": "ES256", "kid": signer.kid}).encode())
    payload = b64(b'["alice"]')
    signature = jwt.get_algorithm_by_name("ES256").sign(f"{header}.{payload}".encode(), signer.private_key)
    return f"{header}.{payload}.{b64(signature)}"


def no_exp(signer: TestSigner, rsa: TestSigner) -> str:
    claims = signer.claims("alice")
    del claims["exp"]
    return signer.sign(claims)


ATTACKS = [
    pytest.param(alg_none, id="alg: none"),
    pytest.param(hs256_with_public_key, id="HS256 signed with the RSA public key as the secret"),
    pytest.param(rs256_to_es256_profile, id="RS256 token to an ES256-only profile"),
    pytest.param(expired, id="expired"),
    pytest.param(nbf_in_the_future, id="nbf in the future"),
    pytest.param(wrong_iss, id="wrong iss"),
    pytest.param(wrong_aud, id="wrong aud"),
    pytest.param(token_for_another_app, id="a valid token for another app (audience substitution)"),
    pytest.param(tampered_payload, id="tampered payload"),
    pytest.param(kid_not_in_jwks, id="kid not in the JWKS"),
    pytest.param(jku_to_attacker_keys, id="jku pointing at the attacker's keys"),
    pytest.param(unknown_crit, id="unknown crit extension"),
    pytest.param(oversized, id="oversized token"),
    pytest.param(garbage, id="random garbage"),
    pytest.param(garbage_without_dots, id="garbage without dots"),
    pytest.param(non_ascii_bytes, id="non-ASCII bytes"),
    pytest.param(deeply_nested_header, id="deeply nested JSON header"),
    pytest.param(json_array_payload, id="payload not a JSON object"),
    pytest.param(no_exp, id="no exp: a token valid forever"),
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused_with_401(
    attack: Attack, signer: TestSigner, rsa_signer: TestSigner, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    # The RSA key is published too: only the profile's algorithms may stop its tokens.
    jwks = {"keys": [signer.jwk, rsa_signer.jwk]}
    app = pomerium_app(signer, recorder, jwks=jwks)
    token = attack(signer, rsa_signer)
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        response = app.get("/", extra_environ={POMERIUM: token}, status=401)
    assert recorder.identities == []
    assert response.json["status"] == 401
    assert "signed assertion refused" in caplog.text
    assert token not in caplog.text and token[-40:] not in caplog.text  # never the token


def test_valid_token_gives_the_identity(signer: TestSigner) -> None:
    recorder = Recorder()
    app = pomerium_app(signer, recorder)
    environ = environ_for("pomerium", "alice@example.org", signer=signer)
    assert app.get("/", extra_environ=environ).json["remote_user"] == "alice@example.org"
    assert recorder.identities[0].user == "alice@example.org"


def test_no_assertion_is_anonymous(signer: TestSigner) -> None:
    response = pomerium_app(signer).get("/")
    assert response.json["identity"] is None


def test_leeway_accepts_clock_skew(signer: TestSigner) -> None:
    now = int(time.time())
    token = signer.sign(signer.claims("alice", {"exp": now - 5}))
    pomerium_app(signer).get("/", extra_environ={POMERIUM: token}, status=401)
    assert pomerium_app(signer, leeway=30).get("/", extra_environ={POMERIUM: token}).json["identity"]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        pytest.param("HTTP_X_POMERIUM_CLAIM_JWT", "{token}", id="owned lookalike prefix"),
        pytest.param("HTTP_X_FORWARDED_USER", "{token}", id="common identity header"),
        pytest.param("HTTP_AUTHORIZATION", "Bearer {token}", id="Authorization to a Pomerium profile"),
        pytest.param("HTTP_X_JWT_ASSERTION", "{token}", id="an unrelated header"),
    ],
)
def test_valid_token_in_a_lookalike_header_is_ignored(signer: TestSigner, header: str, value: str) -> None:
    token = signer.sign(signer.claims("alice"))
    response = pomerium_app(signer).get("/", extra_environ={header: value.format(token=token)})
    assert response.json["identity"] is None


@pytest.mark.parametrize(
    ("profile", "companion"),
    [
        ("pomerium", "HTTP_X_POMERIUM_CLAIM_EMAIL"),
        ("iap", "HTTP_X_GOOG_AUTHENTICATED_USER_EMAIL"),
        ("iap", "HTTP_X_GOOG_AUTHENTICATED_USER_ID"),
        ("cloudflare-access", "HTTP_CF_ACCESS_AUTHENTICATED_USER_EMAIL"),
        ("aws-alb", "HTTP_X_AMZN_OIDC_IDENTITY"),
        ("aws-alb", "HTTP_X_AMZN_OIDC_ACCESSTOKEN"),
        ("oauth2-proxy-jwt", "HTTP_X_FORWARDED_EMAIL"),
        ("oauth2-proxy-jwt", "HTTP_X_AUTH_REQUEST_USER"),
        ("authentik-jwt", "HTTP_X_AUTHENTIK_USERNAME"),
        ("jwt", "HTTP_REMOTE_USER"),
    ],
)
@pytest.mark.parametrize("with_token", [True, False], ids=["with a valid token", "without a token"])
def test_unsigned_companion_is_scrubbed(profile: str, companion: str, with_token: bool) -> None:
    signer = TestSigner(
        "RS256" if profile in ("cloudflare-access", "oauth2-proxy-jwt", "authentik-jwt") else "ES256"
    )
    options: dict[str, Any] = {"assertion_header": "X-Signed"} if profile == "jwt" else {}
    audience = (
        "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/a/1" if profile == "aws-alb" else None
    )
    signer.audience = audience or signer.audience
    app = TestApp(
        SSOMiddleware(
            echo_app,
            profile=profile,
            jwks=signer.jwks,
            issuer=signer.issuer,
            audience=signer.audience,
            **options,
        )
    )
    environ = {companion: "admin@example.org"}
    if with_token and profile == "jwt":
        environ["HTTP_X_SIGNED"] = signer.sign(signer.claims("alice"))
    elif with_token:
        environ.update(environ_for(profile, "alice", signer=signer))
    body = app.get("/", extra_environ=environ).json
    assert companion not in body["http_keys"]
    assert (body["remote_user"] == "alice") is with_token


def test_claims_map_to_the_identity(signer: TestSigner) -> None:
    attributes = {
        "groups": Attribute("groups", multi=True),
        "realm_roles": Attribute("realm_access.roles", multi=True),
        "email": "email",
    }
    app = pomerium_app(signer, user="email", attributes=attributes)
    claims = {
        "email": "zoë@example.org",
        "groups": ["a,b", "c;d"],
        "realm_access": {"roles": ["editor", "viewer"]},
        "sid": "session-1",
    }
    token = signer.sign(signer.claims("sub-1", claims))
    identity = app.get("/", extra_environ={POMERIUM: token}).json["identity"]
    assert identity["user"] == "zoë@example.org"
    assert identity["attributes"] == {
        "groups": ["a,b", "c;d"],  # arrays stay lists: no joining, no splitting
        "realm_roles": ["editor", "viewer"],
        "email": ["zoë@example.org"],
    }
    assert identity["provider"] == signer.issuer
    assert identity["session_id"] == "session-1"
    assert identity["expires_at"] is not None


def test_audience_list_accepts_any_of_them(signer: TestSigner) -> None:
    app = pomerium_app(signer, audience=["https://other.example.org", signer.audience])
    token = signer.sign(signer.claims("alice"))
    assert app.get("/", extra_environ={POMERIUM: token}).json["remote_user"] == "alice"


def test_authorization_bearer_token(rsa_signer: TestSigner) -> None:
    app = pomerium_app(rsa_signer, profile="oauth2-proxy-jwt")
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    assert (
        app.get("/", extra_environ={"HTTP_AUTHORIZATION": f"Bearer {token}"}).json["remote_user"] == "alice"
    )
    # Another scheme carries no assertion: anonymous, not refused.
    basic = app.get("/", extra_environ={"HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0"})
    assert basic.json["identity"] is None


def test_trusted_proxies_still_narrow_who_may_send_the_assertion(signer: TestSigner) -> None:
    app = pomerium_app(signer, trusted_proxies=["10.0.0.1"])
    environ = environ_for("pomerium", "alice", signer=signer)
    assert app.get("/", extra_environ={**environ, "REMOTE_ADDR": "10.0.0.1"}).json["remote_user"] == "alice"
    assert app.get("/", extra_environ={**environ, "REMOTE_ADDR": "10.0.0.2"}).json["identity"] is None


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"algorithms": ["HS256"]}, "algorithms", id="HMAC refused at construction"),
        pytest.param({"algorithms": ["none"]}, "algorithms", id="none refused at construction"),
        pytest.param({"algorithms": ["ES256", "HS512"]}, "algorithms", id="HMAC among others refused"),
        pytest.param({"audience": None}, "audience", id="audience is required"),
        pytest.param({"audience": ""}, "audience", id="empty audience"),
        pytest.param({"jwks": None}, "jwks_url", id="no key source"),
        pytest.param({"jwks_url": "https://idp.example.org/jwks"}, "jwks_url", id="two key sources"),
        pytest.param({"jwks": {"keys": []}}, "jwks", id="JWKS without keys"),
        pytest.param({"jwks": "{not json"}, "jwks", id="JWKS not JSON"),
        pytest.param({"leeway": -1}, "leeway", id="negative leeway"),
        pytest.param({"user": "REMOTE_USER"}, "user", id="REMOTE_USER is no claim"),
    ],
)
def test_bad_signed_configuration_raises(signer: TestSigner, options: dict[str, Any], setting: str) -> None:
    arguments: dict[str, Any] = {
        "profile": "pomerium",
        "jwks": signer.jwks,
        "audience": signer.audience,
        **options,
    }
    with pytest.raises(ConfigError) as excinfo:
        SSOMiddleware(echo_app, **arguments)
    assert excinfo.value.setting == setting


def test_generic_profile_needs_the_header(signer: TestSigner) -> None:
    with pytest.raises(ConfigError, match="assertion_header"):
        SSOMiddleware(echo_app, profile="jwt", jwks=signer.jwks, audience=signer.audience)


def test_symmetric_jwks_entries_are_never_keys(signer: TestSigner) -> None:
    secret = {"kty": "oct", "kid": "hmac", "k": b64(b"public knowledge")}
    with pytest.raises(ConfigError, match="no public signing key"):
        SSOMiddleware(echo_app, profile="jwt", assertion_header="X-A", jwks={"keys": [secret]}, audience="a")


def test_every_option_reads_from_settings(signer: TestSigner) -> None:
    settings = {
        "SHIBWSGI_PROFILE": "jwt",
        "SHIBWSGI_ASSERTION_HEADER": "X-Signed-Identity",
        "SHIBWSGI_JWKS": json.dumps(signer.jwks),
        "SHIBWSGI_ISSUER": signer.issuer,
        "SHIBWSGI_AUDIENCE": f"https://other.example.org, {signer.audience}",
        "SHIBWSGI_ALGORITHMS": "ES256",
        "SHIBWSGI_LEEWAY": "10",
        "SHIBWSGI_USER": "email",
    }
    middleware = SSOMiddleware.from_mapping(echo_app, settings)
    assert middleware.verifier is not None
    assert middleware.verifier.audience == ("https://other.example.org", signer.audience)
    assert middleware.verifier.leeway == 10
    token = signer.sign(signer.claims("sub-1", {"email": "alice@example.org"}))
    response = TestApp(middleware).get("/", extra_environ={"HTTP_X_SIGNED_IDENTITY": token})
    assert response.json["remote_user"] == "alice@example.org"


def test_jwks_url_setting_is_read() -> None:
    middleware = SSOMiddleware.from_mapping(
        echo_app,
        {"SHIBWSGI_PROFILE": "iap", "SHIBWSGI_AUDIENCE": "/projects/1/global/backendServices/2"},
    )
    assert middleware.verifier is not None
    assert "gstatic.com/iap/verify/public_key-jwk" in repr(middleware.verifier.keys)


# -- the verified-token cache -------------------------------------------------------------------


def test_repeated_token_costs_a_lookup_not_a_verification(
    signer: TestSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr("shibwsgi.assertions.jwt.decode", counting_decode)
    app = pomerium_app(signer)
    environ = environ_for("pomerium", "alice", signer=signer)
    for _ in range(5):
        assert app.get("/", extra_environ=environ).json["remote_user"] == "alice"
    assert len(calls) == 1


def test_cached_token_expires_with_its_exp(signer: TestSigner) -> None:
    app = pomerium_app(signer)
    exp = int(time.time()) + 2  # at least a second ahead: the first request is in time
    token = signer.sign(signer.claims("alice", {"exp": exp}))
    assert app.get("/", extra_environ={POMERIUM: token}).json["remote_user"] == "alice"
    time.sleep(exp + 0.1 - time.time())
    app.get("/", extra_environ={POMERIUM: token}, status=401)


# -- defense in depth for mod_auth_openidc ------------------------------------------------------


def openidc_app(signer: TestSigner) -> TestApp:
    return TestApp(
        SSOMiddleware(
            echo_app,
            profile="openidc",
            jwks=signer.jwks,
            issuer=signer.issuer,
            audience=signer.audience,
            attributes={"groups": Attribute("groups", multi=True)},
        )
    )


def test_openidc_id_token_is_verified_and_wins(rsa_signer: TestSigner) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice", {"groups": ["staff"]}))
    # The unverified copies name the same user (else 400: tests/test_wrong_user.py); the token's claims win.
    environ = {**environ_for("openidc", "alice", {"groups": ["root"]}), "OIDC_id_token": token}
    body = openidc_app(rsa_signer).get("/", extra_environ=environ).json
    assert body["remote_user"] == "alice"
    assert body["identity"]["attributes"] == {"groups": ["staff"]}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda s: tampered_payload(s, s), id="tampered id token"),
        pytest.param(
            lambda s: s.sign(s.claims("alice", {"aud": "another-client"})), id="another client's id token"
        ),
        pytest.param(lambda s: TestSigner("RS256").sign(s.claims("alice")), id="id token from another key"),
        pytest.param(lambda s: None, id="id token missing while a user is present"),
    ],
)
def test_openidc_bad_id_token_is_refused(
    rsa_signer: TestSigner, token: Callable[[TestSigner], str | None]
) -> None:
    value = token(rsa_signer)
    environ = {**environ_for("openidc", "alice"), **({"OIDC_id_token": value} if value else {})}
    openidc_app(rsa_signer).get("/", extra_environ=environ, status=401)


def test_openidc_expired_id_token_still_proves_the_login(rsa_signer: TestSigner) -> None:
    # mod_auth_openidc keeps its session for hours after the ID token's exp: it owns the lifetime.
    now = int(time.time())
    token = rsa_signer.sign(rsa_signer.claims("alice", {"iat": now - 7200, "exp": now - 3600}))
    environ = {**environ_for("openidc", "alice"), "OIDC_id_token": token}
    assert openidc_app(rsa_signer).get("/", extra_environ=environ).json["remote_user"] == "alice"


def test_openidc_anonymous_without_id_token(rsa_signer: TestSigner) -> None:
    assert openidc_app(rsa_signer).get("/").json["identity"] is None


def test_openidc_client_cannot_send_the_id_token(rsa_signer: TestSigner) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    response = openidc_app(rsa_signer).get("/", extra_environ={"HTTP_OIDC_ID_TOKEN": token})
    assert response.json["identity"] is None
    assert "HTTP_OIDC_ID_TOKEN" not in response.json["http_keys"]


def test_openidc_id_token_in_base64url_like_every_module_value(rsa_signer: TestSigner) -> None:
    # OIDCPassClaimsAs environment base64url encodes OIDC_id_token too.
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    app = TestApp(
        SSOMiddleware(
            echo_app,
            profile="openidc",
            encoding="base64url",
            jwks=rsa_signer.jwks,
            issuer=rsa_signer.issuer,
            audience=rsa_signer.audience,
        )
    )
    environ = {**environ_for("openidc", "alice", encoding="base64url"), "OIDC_id_token": b64(token.encode())}
    assert app.get("/", extra_environ=environ).json["remote_user"] == "alice"
    environ["OIDC_id_token"] = token  # not what the module sends in this encoding
    app.get("/", extra_environ=environ, status=401)


def test_verified_token_cache_is_bounded_by_entries_and_bytes() -> None:
    from shibwsgi.assertions import TokenCache

    cache = TokenCache(max_entries=3, max_bytes=10_000)
    for index in range(5):
        cache.put(f"token-{index}", index, None, 0)
    assert [cache.get(f"token-{index}", 0) is not None for index in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    small = TokenCache(max_entries=100, max_bytes=2 * 1400)  # two 1000-character tokens and their values
    for index in range(3):
        small.put(f"{index}" * 1000, index, None, 0)
    assert small.get("0" * 1000, 0) is None
    assert small.get("2" * 1000, 0) is not None
    small.put("x" * 100_000, "huge", None, 0)  # larger than the whole cache: not kept
    assert small.get("x" * 100_000, 0) is None
    assert small.get("2" * 1000, 0) is not None


def test_test_signer_is_importable_from_shibwsgi_testing() -> None:
    from shibwsgi import testing

    assert testing.TestSigner is TestSigner
