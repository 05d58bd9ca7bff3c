"""Attacks on signed assertions and key handling, against their promises (issue 16 items 4-9, the README's
signed-assertions section, the docstrings of keys.py and assertions.py): wrong users, algorithm and kid tricks,
key URLs under attack, the caches, and malformed tokens that must never be a 500."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import socket
import threading
import time
import tracemalloc
import urllib.error
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from helpers import echo_app
from support import in_thread
from test_key_hardening import RedirectingServer
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, SSOMiddleware
from shibwsgi.assertions import AssertionVerifier, load_jwks
from shibwsgi.errors import InvalidAssertionError, KeysUnavailableError
from shibwsgi.keys import MAX_REMEMBERED_KIDS, RemoteKeys, http_get
from shibwsgi.testing.signed import TestSigner

POMERIUM = "HTTP_X_POMERIUM_JWT_ASSERTION"
ALB = "HTTP_X_AMZN_OIDC_DATA"
ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/movies/50dc6c495c0c9188"


@pytest.fixture(scope="module")
def signer() -> TestSigner:
    return TestSigner("ES256")


@pytest.fixture(scope="module")
def rsa_signer() -> TestSigner:
    return TestSigner("RS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def raw_token(header: bytes, payload: bytes, signature: bytes = b"sig") -> str:
    return f"{b64(header)}.{b64(payload)}.{b64(signature)}"


def signed_bytes(signer: TestSigner, payload: bytes, **header: Any) -> str:
    """A token whose payload is exactly ``payload``, really signed by ``signer``."""
    return jwt.api_jws.PyJWS().encode(
        payload, signer.private_key, signer.algorithm, {"kid": signer.kid, **header}
    )


def app_for(signer: TestSigner, profile: str = "pomerium", **options: Any) -> TestApp:
    defaults: dict[str, Any] = {
        "profile": profile,
        "jwks": signer.jwks,
        "issuer": signer.issuer,
        "audience": signer.audience,
    }
    return TestApp(SSOMiddleware(echo_app, **{**defaults, **options}))


def timed(claims: dict[str, Any]) -> dict[str, Any]:
    """``exp_in``/``nbf_in``: seconds from now, taken when the test runs (not when it is collected)."""
    now = int(time.time())
    return {
        name.removesuffix("_in"): now + value if name.endswith("_in") else value
        for name, value in claims.items()
    }


# -- never a 500: malformed token shapes ---------------------------------------------------------

HEADER = json.dumps({"alg": "ES256", "typ": "JWT"}).encode()
PAYLOAD = json.dumps({"sub": "alice"}).encode()

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("   ", id="whitespace only"),
    pytest.param(".", id="one dot"),
    pytest.param("..", id="two dots"),
    pytest.param("...", id="three dots"),
    pytest.param("abc", id="one segment"),
    pytest.param("abc.def", id="two segments"),
    pytest.param(raw_token(HEADER, PAYLOAD) + ".x", id="four segments"),
    pytest.param(raw_token(HEADER, PAYLOAD) + "..", id="five segments"),
    pytest.param("!!!." + b64(PAYLOAD) + ".c2ln", id="bad base64 header"),
    pytest.param(b64(HEADER) + ".!!!.c2ln", id="bad base64 payload"),
    pytest.param(b64(HEADER) + "." + b64(PAYLOAD) + ".!!!", id="bad base64 signature"),
    pytest.param("a.b.c", id="one-char segments"),
    pytest.param(b64(HEADER) + "=====." + b64(PAYLOAD) + ".c2ln", id="five padding chars"),
    pytest.param(raw_token(b"\xff\xfe\x00", PAYLOAD), id="header not utf-8"),
    pytest.param(raw_token(b"\xc0\xaf", PAYLOAD), id="header overlong utf-8"),
    pytest.param(raw_token(b'"\\ud800"', PAYLOAD), id="header lone surrogate string"),
    pytest.param(raw_token(b"[1,2]", PAYLOAD), id="header json array"),
    pytest.param(raw_token(b"null", PAYLOAD), id="header json null"),
    pytest.param(raw_token(b"1e999999", PAYLOAD), id="header huge float"),
    pytest.param(raw_token(b"9" * 5000, PAYLOAD), id="header integer over the digit limit"),
    pytest.param(raw_token(b'{"alg":"ES256","kid":' + b"9" * 5000 + b"}", PAYLOAD), id="kid huge integer"),
    pytest.param(raw_token(b"[" * 100_00 + b"]" * 100_00, PAYLOAD)[:16000], id="header deep nesting"),
    pytest.param(raw_token(b'{"alg":["ES256"]}', PAYLOAD), id="alg a list"),
    pytest.param(raw_token(b'{"alg":{"x":1}}', PAYLOAD), id="alg an object"),
    pytest.param(raw_token(b'{"alg":"ES256","kid":{"a":1}}', PAYLOAD), id="kid an object"),
    pytest.param(raw_token(b'{"alg":"ES256","kid":["a"]}', PAYLOAD), id="kid a list"),
    pytest.param(raw_token(b'{"alg":"ES256","kid":7}', PAYLOAD), id="kid a number"),
    pytest.param(raw_token(b'{"alg":"ES256","crit":"x"}', PAYLOAD), id="crit a string"),
    pytest.param(raw_token(b'{"alg":"ES256","crit":[{}]}', PAYLOAD), id="crit list of objects"),
    pytest.param(raw_token(b'{"alg":"ES256","b64":false}', PAYLOAD), id="b64 false"),
    pytest.param(raw_token(HEADER, b"[1]"), id="payload json array"),
    pytest.param(raw_token(HEADER, b"\xff"), id="payload not utf-8"),
    pytest.param(raw_token(HEADER, PAYLOAD) + "\x00", id="nul byte"),
    pytest.param(raw_token(HEADER, PAYLOAD).replace(".", ".\n", 1), id="newline inside"),
    pytest.param("é" + raw_token(HEADER, PAYLOAD), id="latin-1 byte"),
    pytest.param("\ufffd.\ufffd.\ufffd", id="replacement characters"),
    pytest.param("a" * 20000 + ".b.c", id="over the size cap"),
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_assertion_is_refused_never_a_500(signer: TestSigner, token: str) -> None:
    response = app_for(signer).get("/", extra_environ={POMERIUM: token}, status="*")
    assert response.status_int in (400, 401) or (response.status_int == 200 and not token.strip())
    assert "alice" not in response.text


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[1, 2]", id="json array"),
        pytest.param(b'"alice"', id="json string"),
        pytest.param(b"null", id="json null"),
        pytest.param(b"\xff\xfe", id="not utf-8"),
        pytest.param(b'{"sub": "alice", "exp": ' + b"9" * 5000 + b"}", id="exp over the digit limit"),
        pytest.param(b'{"sub": "alice", "exp": 1e999}', id="exp infinite"),
        pytest.param(b'{"sub": "alice", "exp": NaN}', id="exp NaN"),
        pytest.param(b'{"sub": "alice", "exp": Infinity}', id="exp Infinity literal"),
        pytest.param(b'{"sub": "alice", "exp": "99999999999"}', id="exp a numeric string"),
        pytest.param(b'{"sub": "alice", "exp": true}', id="exp true"),
        pytest.param(b'{"sub": "alice", "exp": [99999999999]}', id="exp a list"),
        pytest.param(b'{"sub": "alice", "exp": 99999999999, "nbf": Infinity}', id="nbf infinite"),
        pytest.param(b'{"sub": "alice", "exp": 99999999999, "nbf": "99999999999"}', id="nbf a future string"),
        pytest.param(b'{"sub": "alice", "exp": 99999999999, "aud": {"a": 1}}', id="aud an object"),
        pytest.param(b'{"sub": "alice", "exp": 99999999999, "iss": ["x"]}', id="iss a list"),
        pytest.param(b'{"sub": {"id": "alice"}, "exp": 99999999999}', id="sub an object"),
        pytest.param(b'{"sub": ["alice", "bob"], "exp": 99999999999}', id="sub a list"),
        pytest.param(b'{"sub": 7, "exp": 99999999999}', id="sub a number"),
        pytest.param(b'{"sub": "ali\\u0000ce", "exp": 99999999999}', id="sub with a nul"),
        pytest.param(b'{"sub": "\\ud800", "exp": 99999999999}', id="sub a lone surrogate"),
    ],
)
def test_signed_token_with_hostile_payload_is_refused_never_a_500(signer: TestSigner, payload: bytes) -> None:
    """Really signed, so only the claims are hostile: a 4xx, never a 500 and never another user."""
    claims = json.dumps({"iss": signer.issuer, "aud": signer.audience}).encode()[:-1]
    document = payload if not payload.startswith(b"{") else claims + b", " + payload[1:]
    token = signed_bytes(signer, document)
    response = app_for(signer).get("/", extra_environ={POMERIUM: token}, status="*")
    assert response.status_int in (400, 401), response.text
    assert "admin" not in response.text


def test_hostile_auth_time_in_a_valid_token_is_never_a_500(signer: TestSigner) -> None:
    for auth_time in ("1e300", "-1e300", "NaN", "Infinity", "99999999999999", '"9999-12-31T23:59:59-14:00"'):
        document = json.dumps(signer.claims("alice"))[:-1] + f', "auth_time": {auth_time}}}'
        token = signed_bytes(signer, document.encode())
        response = app_for(signer).get("/", extra_environ={POMERIUM: token}, status="*")
        assert response.status_int in (200, 400, 401), (auth_time, response.status)


# -- algorithm confusion --------------------------------------------------------------------------


def public_pem(signer: TestSigner) -> bytes:
    return signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hmac_with_public_key(signer: TestSigner, alg: str) -> str:
    claims = signer.claims("mallory")
    header = b64(json.dumps({"alg": alg, "kid": signer.kid}).encode())
    payload = b64(json.dumps(claims).encode())
    key = public_pem(signer)
    algorithm = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    signature = algorithm.sign(f"{header}.{payload}".encode(), key)
    return f"{header}.{payload}.{b64(signature)}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda s: raw_token(
                json.dumps({"alg": "none", "kid": s.kid}).encode(),
                json.dumps(s.claims("mallory")).encode(),
                b"",
            ),
            id="alg none",
        ),
        pytest.param(
            lambda s: raw_token(
                json.dumps({"alg": "None", "kid": s.kid}).encode(),
                json.dumps(s.claims("mallory")).encode(),
                b"",
            ),
            id="alg None",
        ),
        pytest.param(lambda s: hmac_with_public_key(s, "HS256"), id="HS256 with the public key as secret"),
        pytest.param(lambda s: hmac_with_public_key(s, "hs256"), id="hs256 lower case"),
        pytest.param(
            lambda s: TestSigner("RS256", kid=s.kid, issuer=s.issuer, audience=s.audience).sign(
                s.claims("mallory")
            ),
            id="RS256 by another key under the same kid",
        ),
        pytest.param(
            lambda s: TestSigner("ES256", kid=s.kid, issuer=s.issuer, audience=s.audience).sign(
                s.claims("mallory")
            ),
            id="ES256 by another key under the same kid",
        ),
    ],
)
def test_algorithm_confusion_never_signs_in(signer: TestSigner, make: Callable[[TestSigner], str]) -> None:
    app = app_for(signer, profile="jwt", assertion_header="X-Jwt", algorithms=["ES256", "RS256"])
    response = app.get("/", extra_environ={"HTTP_X_JWT": make(signer)}, status="*")
    assert response.status_int == 401
    assert "mallory" not in response.text


def es384_with_a_p256_key(signer: TestSigner) -> str:
    """ES384 (SHA-384) signed with a P-256 key: a signature PyJWT itself would not make."""
    header = b64(json.dumps({"alg": "ES384", "kid": signer.kid}).encode())
    payload = b64(json.dumps(signer.claims("alice")).encode())
    assert isinstance(signer.private_key, ec.EllipticCurvePrivateKey)
    der = signer.private_key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    return f"{header}.{payload}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.mark.parametrize(
    "with_alg", [pytest.param(True, id="jwk says ES256"), pytest.param(False, id="jwk without alg")]
)
def test_p256_key_does_not_verify_an_es384_token(signer: TestSigner, with_alg: bool) -> None:
    jwk = signer.jwk if with_alg else {k: v for k, v in signer.jwk.items() if k != "alg"}
    app = app_for(
        signer, profile="jwt", assertion_header="X-Jwt", algorithms=["ES256", "ES384"], jwks={"keys": [jwk]}
    )
    app.get("/", extra_environ={"HTTP_X_JWT": es384_with_a_p256_key(signer)}, status=401)


def test_token_with_a_null_iss_is_refused(signer: TestSigner) -> None:
    document = json.dumps({**signer.claims("alice"), "iss": None}).encode()
    app_for(signer).get("/", extra_environ={POMERIUM: signed_bytes(signer, document)}, status=401)


def test_jwk_whose_alg_does_not_fit_its_key_type_verifies_nothing(
    signer: TestSigner, rsa_signer: TestSigner
) -> None:
    """An EC key published with alg RS256 (a kty/alg mismatch) is not a key for ES256 tokens."""
    odd = {**signer.jwk, "alg": "RS256"}
    jwks = {"keys": [odd, rsa_signer.jwk]}
    app = app_for(signer, profile="jwt", assertion_header="X-Jwt", algorithms=["ES256", "RS256"], jwks=jwks)
    app.get("/", extra_environ={"HTTP_X_JWT": signer.sign(signer.claims("alice"))}, status=401)


def test_jwk_with_a_curve_other_than_its_key_is_not_used(signer: TestSigner) -> None:
    """kty EC with crv P-384 but P-256 coordinates: not a key."""
    odd = {**signer.jwk, "crv": "P-384"}
    other = TestSigner("ES256")
    app = app_for(other, jwks={"keys": [odd, other.jwk]})
    app.get("/", extra_environ={POMERIUM: signer.sign(signer.claims("alice"))}, status=401)


def test_encryption_key_in_the_jwks_does_not_verify(signer: TestSigner) -> None:
    other = TestSigner("ES256")
    jwks = {"keys": [{**signer.jwk, "use": "enc"}, other.jwk]}
    app = app_for(signer, jwks=jwks)
    app.get("/", extra_environ={POMERIUM: signer.sign(signer.claims("alice"))}, status=401)


def test_token_without_kid_is_refused_when_the_set_has_several_keys(signer: TestSigner) -> None:
    other = TestSigner("ES256", issuer=signer.issuer, audience=signer.audience)
    app = app_for(signer, jwks={"keys": [signer.jwk, other.jwk]})
    token = jwt.encode(signer.claims("alice"), signer.private_key, algorithm="ES256")  # no kid
    app.get("/", extra_environ={POMERIUM: token}, status=401)


def test_jku_and_x5u_and_embedded_jwk_headers_are_ignored(signer: TestSigner) -> None:
    attacker = TestSigner("ES256", kid=signer.kid, issuer=signer.issuer, audience=signer.audience)
    for extra in (
        {"jku": "https://evil.example.net/jwks"},
        {"x5u": "https://evil.example.net/cert"},
        {"jwk": attacker.jwk},
        {"x5c": ["MIIB"]},
    ):
        token = attacker.sign(attacker.claims("mallory"), headers=extra)
        app_for(signer).get("/", extra_environ={POMERIUM: token}, status=401)


# -- claims: time, audience, issuer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "options"),
    [
        pytest.param({"exp_in": -31}, {"leeway": 30}, id="expired past the leeway"),
        pytest.param({"nbf_in": 60}, {"leeway": 30}, id="nbf past the leeway"),
        pytest.param({"exp": 1.5}, {}, id="exp a float in 1970"),
        pytest.param({"aud": ["https://other.example.org"]}, {}, id="aud list without ours"),
        pytest.param({"aud": []}, {}, id="aud empty list"),
        pytest.param({"aud": ""}, {}, id="aud empty"),
        pytest.param({"aud": "https://app.example.org/"}, {}, id="aud with a trailing slash"),
        pytest.param({"aud": "HTTPS://APP.EXAMPLE.ORG"}, {}, id="aud in upper case"),
        pytest.param({"iss": "https://issuer.example.org/"}, {}, id="iss with a trailing slash"),
        pytest.param({"iss": "https://issuer.example.org."}, {}, id="iss with a trailing dot"),
        pytest.param({"iss": "https://ISSUER.example.org"}, {}, id="iss in upper case"),
    ],
)
def test_token_outside_its_time_audience_or_issuer_is_refused(
    signer: TestSigner, extra: dict[str, Any], options: dict[str, Any]
) -> None:
    token = signer.sign(signer.claims("alice", timed(extra)))
    app_for(signer, **options).get("/", extra_environ={POMERIUM: token}, status=401)


def test_token_missing_iss_is_refused_when_an_issuer_is_configured(signer: TestSigner) -> None:
    claims = signer.claims("alice")
    del claims["iss"]
    app_for(signer).get("/", extra_environ={POMERIUM: signer.sign(claims)}, status=401)


def test_aud_list_holding_ours_is_accepted(signer: TestSigner) -> None:
    token = signer.sign(signer.claims("alice", {"aud": ["https://other.example.org", signer.audience]}))
    assert app_for(signer).get("/", extra_environ={POMERIUM: token}).json["remote_user"] == "alice"


# -- unsigned companions and several assertion headers --------------------------------------------


@pytest.mark.parametrize(
    ("profile", "header", "companions"),
    [
        pytest.param(
            "pomerium",
            "X-Pomerium-Jwt-Assertion",
            {"HTTP_X_POMERIUM_CLAIM_EMAIL": "mallory@example.org", "HTTP_X_POMERIUM_CLAIM_SUB": "mallory"},
            id="pomerium claim headers",
        ),
        pytest.param(
            "iap",
            "X-Goog-Iap-Jwt-Assertion",
            {
                "HTTP_X_GOOG_AUTHENTICATED_USER_EMAIL": "accounts.google.com:mallory@example.org",
                "HTTP_X_GOOG_AUTHENTICATED_USER_ID": "accounts.google.com:mallory",
            },
            id="iap unsigned copies",
        ),
        pytest.param(
            "cloudflare-access",
            "Cf-Access-Jwt-Assertion",
            {"HTTP_CF_ACCESS_AUTHENTICATED_USER_EMAIL": "mallory@example.org"},
            id="cloudflare user email header",
        ),
        pytest.param(
            "authentik-jwt",
            "X-authentik-jwt",
            {"HTTP_X_AUTHENTIK_USERNAME": "mallory", "HTTP_X_AUTHENTIK_EMAIL": "mallory@example.org"},
            id="authentik meta headers",
        ),
        pytest.param(
            "oauth2-proxy-jwt",
            "Authorization",
            {
                "HTTP_X_FORWARDED_USER": "mallory",
                "HTTP_X_AUTH_REQUEST_EMAIL": "mallory@example.org",
                "HTTP_X_FORWARDED_EMAIL": "mallory@example.org",
                "HTTP_REMOTE_USER": "mallory",
            },
            id="oauth2-proxy forwarded headers",
        ),
    ],
)
def test_unsigned_companion_headers_never_shadow_the_signed_claims(
    profile: str, header: str, companions: dict[str, str]
) -> None:
    signer = TestSigner(
        "ES256" if profile in ("pomerium", "iap") else "RS256", issuer="https://issuer.example.org"
    )
    options: dict[str, Any] = {"user": "email", "attributes": {"email": "email"}}
    if profile == "iap":
        options["issuer"] = signer.issuer  # the built-in Google issuer replaced for the test
    app = app_for(signer, profile=profile, **options)
    token = signer.sign(signer.claims("alice", {"email": "alice@example.org"}))
    key = "HTTP_" + header.upper().replace("-", "_")
    value = f"Bearer {token}" if header == "Authorization" else token
    body = app.get("/", extra_environ={key: value, **companions}).json
    assert body["remote_user"] == "alice@example.org"
    assert not set(companions) & set(body["http_keys"])
    # Without the assertion the companions give nobody.
    assert app.get("/", extra_environ=companions).json["identity"] is None


def test_alb_unsigned_identity_header_is_not_the_user(signer: TestSigner) -> None:
    app = alb_app(signer)
    token = alb_token(signer, "alice")
    environ = {ALB: token, "HTTP_X_AMZN_OIDC_IDENTITY": "mallory", "HTTP_X_AMZN_OIDC_ACCESSTOKEN": "x"}
    body = app.get("/", extra_environ=environ).json
    assert body["remote_user"] == "alice"
    assert "HTTP_X_AMZN_OIDC_IDENTITY" not in body["http_keys"]


@pytest.mark.parametrize("joiner", [",", ", ", " ", ";"])
def test_two_assertions_joined_into_one_header_are_refused(signer: TestSigner, joiner: str) -> None:
    """A duplicated header arrives comma-joined: neither token's user is taken."""
    alice = signer.sign(signer.claims("alice"))
    mallory = signer.sign(signer.claims("mallory"))
    response = app_for(signer).get("/", extra_environ={POMERIUM: alice + joiner + mallory}, status="*")
    assert response.status_int in (400, 401)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic {token}", id="basic scheme"),
        pytest.param("Bearer{token}", id="no space"),
        pytest.param("Bearer {token}, Bearer {other}", id="two bearer tokens"),
        pytest.param("Bearer {other} {token}", id="two tokens in one"),
        pytest.param("Token {token}", id="another scheme"),
    ],
)
def test_oauth2_proxy_authorization_variants_never_sign_in_the_wrong_user(
    rsa_signer: TestSigner, authorization: str
) -> None:
    app = app_for(rsa_signer, profile="oauth2-proxy-jwt")
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    other = rsa_signer.sign(rsa_signer.claims("mallory"))
    value = authorization.format(token=token, other=other)
    response = app.get("/", extra_environ={"HTTP_AUTHORIZATION": value}, status="*")
    assert response.status_int in (200, 400, 401)
    if response.status_int == 200:
        assert response.json["identity"] is None


def test_oauth2_proxy_bearer_scheme_is_case_insensitive(rsa_signer: TestSigner) -> None:
    app = app_for(rsa_signer, profile="oauth2-proxy-jwt")
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    for scheme in ("bearer", "BEARER", "Bearer"):
        body = app.get("/", extra_environ={"HTTP_AUTHORIZATION": f"{scheme} {token}"}).json
        assert body["remote_user"] == "alice"


# -- AWS ALB: signer, padding, kids in the key URL ------------------------------------------------


class RecordingFetch:
    def __init__(self, document: Callable[[str], bytes]) -> None:
        self.document = document
        self.urls: list[str] = []

    def __call__(self, url: str, timeout: float) -> bytes:
        self.urls.append(url)
        return self.document(url)


def alb_app(signer: TestSigner, fetch: RecordingFetch | None = None) -> TestApp:
    middleware = SSOMiddleware(
        echo_app,
        profile="aws-alb",
        jwks_url="https://public-keys.auth.elb.eu-west-1.amazonaws.com/{kid}",
        issuer=signer.issuer,
        audience=ARN,
    )
    assert middleware.verifier is not None
    keys = middleware.verifier.keys
    assert isinstance(keys, RemoteKeys)
    keys._fetch = fetch or RecordingFetch(lambda url: signer.public_pem)
    return TestApp(middleware)


def alb_token(signer: TestSigner, user: str, **header: Any) -> str:
    return signer.sign(signer.claims(user), headers={"signer": ARN, **header}, padded=True)


def test_alb_padded_token_is_accepted_and_its_unpadded_twin_is_not_another_user(signer: TestSigner) -> None:
    app = alb_app(signer)
    token = alb_token(signer, "alice")
    assert app.get("/", extra_environ={ALB: token}).json["remote_user"] == "alice"
    for variant in (token.replace("=", ""), token + "=", token.replace(".", "=.", 1)):
        response = app.get("/", extra_environ={ALB: variant}, status="*")
        assert response.status_int in (200, 401)
        if response.status_int == 200:
            assert response.json["remote_user"] == "alice"


@pytest.mark.parametrize(
    "signer_field",
    [
        pytest.param(None, id="no signer"),
        pytest.param(ARN + "x", id="another load balancer"),
        pytest.param([ARN], id="signer a list"),
        pytest.param({"arn": ARN}, id="signer an object"),
        pytest.param(ARN.upper(), id="signer in upper case"),
        pytest.param(ARN + " ", id="signer with a trailing space"),
    ],
)
def test_alb_token_from_another_load_balancer_is_refused(signer: TestSigner, signer_field: Any) -> None:
    app = alb_app(signer)
    token = signer.sign(signer.claims("alice"), headers={"signer": signer_field}, padded=True)
    app.get("/", extra_environ={ALB: token}, status=401)


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("../../../etc/passwd", id="dot dot slash"),
        pytest.param("a%2fb", id="encoded slash"),
        pytest.param("a/b", id="slash"),
        pytest.param("a?b=c", id="query"),
        pytest.param("a#b", id="fragment"),
        pytest.param("@evil.example.net", id="userinfo"),
        pytest.param("a\r\nHost: evil", id="crlf"),
        pytest.param("x" * 129, id="very long"),
        pytest.param("é", id="non-ascii"),
        pytest.param("\uff0e\uff0e", id="fullwidth dots"),
        pytest.param("", id="empty"),
        pytest.param("{kid}", id="template braces"),
        pytest.param("a\n", id="trailing newline"),
    ],
)
def test_alb_kid_with_url_bytes_never_reaches_the_key_url(signer: TestSigner, kid: str) -> None:
    fetch = RecordingFetch(lambda url: signer.public_pem)
    app = alb_app(signer, fetch)
    token = alb_token(signer, "alice", kid=kid)
    app.get("/", extra_environ={ALB: token}, status=401)
    assert fetch.urls == []


def test_alb_token_without_kid_never_fetches(signer: TestSigner) -> None:
    fetch = RecordingFetch(lambda url: signer.public_pem)
    app = alb_app(signer, fetch)
    claims = signer.claims("alice")
    token = jwt.encode(claims, signer.private_key, algorithm="ES256", headers={"signer": ARN})
    app.get("/", extra_environ={ALB: token}, status=401)
    assert fetch.urls == []


# -- openidc + jwks: the user is the one the ID token names ---------------------------------------


def openidc(signer: TestSigner, **options: Any) -> TestApp:
    return app_for(signer, profile="openidc", **options)


@pytest.mark.parametrize(
    ("remote_user", "sub", "iss"),
    [
        pytest.param("Alice", "alice", "https://issuer.example.org", id="case of the sub"),
        pytest.param(
            "alice@ISSUER.example.org", "alice", "https://issuer.example.org", id="case of the host"
        ),
        pytest.param("alice@issuer.example.org.", "alice", "https://issuer.example.org", id="trailing dot"),
        pytest.param("alice@issuer.example.org/", "alice", "https://issuer.example.org", id="trailing slash"),
        pytest.param(
            "alice@https://issuer.example.org", "alice", "https://issuer.example.org", id="scheme kept"
        ),
        pytest.param(
            "alice@issuer.example.org:443", "alice", "https://issuer.example.org", id="default port"
        ),
        pytest.param(
            "alice@issuer.example.org", "alice", "https://issuer.example.org:8443", id="port dropped"
        ),
        pytest.param(
            "alice@issuer.example.org", "alice", "https://issuer.example.org/realms/x", id="path dropped"
        ),
        pytest.param("alice@xn--bcher-kva.example", "alice", "https://bücher.example", id="idn as punycode"),
        pytest.param("alice", "alice@evil.example.org", "https://issuer.example.org", id="sub with @ cut"),
        pytest.param(" alice", "alice", "https://issuer.example.org", id="leading space"),
        pytest.param("alice ", "alice", "https://issuer.example.org", id="trailing space"),
        pytest.param("alice@", "alice", "https://issuer.example.org", id="bare at"),
        pytest.param(
            "alice@issuer.example.org@issuer.example.org", "alice", "https://issuer.example.org", id="twice"
        ),
        pytest.param("@issuer.example.org", "", "https://issuer.example.org", id="empty sub"),
    ],
)
def test_remote_user_must_be_the_id_tokens_sub_in_mod_auth_openidc_forms(
    rsa_signer: TestSigner, remote_user: str, sub: str, iss: str
) -> None:
    token = rsa_signer.sign(rsa_signer.claims(sub, {"iss": iss}))
    app = openidc(rsa_signer, user="REMOTE_USER", issuer=None)
    response = app.get("/", extra_environ={"REMOTE_USER": remote_user, "OIDC_id_token": token}, status="*")
    assert response.status_int in (400, 401), response.text


@pytest.mark.parametrize(
    ("remote_user", "sub", "iss"),
    [
        pytest.param("alice@issuer.example.org:8443", "alice", "https://issuer.example.org:8443", id="port"),
        pytest.param(
            "alice@issuer.example.org/realms/x", "alice", "https://issuer.example.org/realms/x", id="path"
        ),
        pytest.param("a@b.org@issuer.example.org", "a@b.org", "https://issuer.example.org", id="sub with @"),
        pytest.param("a@b.org", "a@b.org", "https://issuer.example.org", id="sub with @ bare"),
    ],
)
def test_remote_user_in_the_sub_at_issuer_form_is_accepted(
    rsa_signer: TestSigner, remote_user: str, sub: str, iss: str
) -> None:
    token = rsa_signer.sign(rsa_signer.claims(sub, {"iss": iss}))
    app = openidc(rsa_signer, user="REMOTE_USER", issuer=None)
    body = app.get("/", extra_environ={"REMOTE_USER": remote_user, "OIDC_id_token": token}).json
    assert body["remote_user"] == remote_user


@pytest.mark.parametrize(
    ("options", "environ"),
    [
        pytest.param({}, {"OIDC_CLAIM_sub": "mallory"}, id="claim variable sub"),
        pytest.param({}, {"OIDC_userinfo_json": json.dumps({"sub": "mallory"})}, id="userinfo sub"),
        pytest.param(
            {}, {"OIDC_id_token_payload": json.dumps({"sub": "mallory"})}, id="id token payload sub"
        ),
        pytest.param(
            {"user": "preferred_username"},
            {"OIDC_CLAIM_preferred_username": "mallory", "OIDC_userinfo_json": json.dumps({"sub": "alice"})},
            id="user claim only in a variable",
        ),
        pytest.param(
            {"user": "preferred_username"},
            {"OIDC_userinfo_json": json.dumps({"sub": "alice", "preferred_username": "mallory"})},
            id="user claim only in userinfo",
        ),
        pytest.param(
            {"user": ["preferred_username", "sub"]},
            {"OIDC_id_token_payload": json.dumps({"sub": "alice", "preferred_username": "mallory"})},
            id="first user claim only in the payload variable",
        ),
        pytest.param(
            {"user": "email"},
            {"OIDC_CLAIM_email": "ALICE@example.org"},
            id="user claim variable differs in case",
        ),
    ],
)
def test_alices_id_token_replayed_with_mallorys_variables_is_refused(
    rsa_signer: TestSigner, options: dict[str, Any], environ: dict[str, str]
) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice", {"email": "alice@example.org"}))
    response = openidc(rsa_signer, **options).get(
        "/", extra_environ={**environ, "OIDC_id_token": token}, status="*"
    )
    assert response.status_int in (400, 401), response.text
    assert "mallory" not in response.text.lower()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"aud": "another-client"}, id="another audience"),
        pytest.param({"iss": "https://evil.example.org"}, id="another issuer"),
        pytest.param({"nbf_in": 3600}, id="not yet valid"),
    ],
)
def test_openidc_id_token_for_another_app_or_issuer_is_refused(
    rsa_signer: TestSigner, extra: dict[str, Any]
) -> None:
    token = rsa_signer.sign(rsa_signer.claims("alice", timed(extra)))
    app = openidc(rsa_signer, user="REMOTE_USER")
    app.get("/", extra_environ={"REMOTE_USER": "alice", "OIDC_id_token": token}, status=401)


def test_openidc_id_token_signed_by_another_key_is_refused(rsa_signer: TestSigner) -> None:
    forger = TestSigner("RS256", kid=rsa_signer.kid, issuer=rsa_signer.issuer, audience=rsa_signer.audience)
    token = forger.sign(forger.claims("mallory"))
    response = openidc(rsa_signer).get(
        "/", extra_environ={"OIDC_CLAIM_sub": "mallory", "OIDC_id_token": token}, status=401
    )
    assert "mallory" not in response.text


def test_openidc_user_without_an_id_token_is_refused(rsa_signer: TestSigner) -> None:
    openidc(rsa_signer, user="REMOTE_USER").get("/", extra_environ={"REMOTE_USER": "mallory"}, status=401)


def test_openidc_id_token_alone_in_a_client_header_is_ignored(rsa_signer: TestSigner) -> None:
    """The environ channel: a client's OIDC_id_token header is never the server variable."""
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    body = openidc(rsa_signer).get("/", extra_environ={"HTTP_OIDC_ID_TOKEN": token}).json
    assert body["identity"] is None
    assert "HTTP_OIDC_ID_TOKEN" not in body["http_keys"]


def test_openidc_headers_channel_token_from_an_untrusted_peer_with_claims_is_anonymous(
    rsa_signer: TestSigner,
) -> None:
    app = openidc(rsa_signer, channel="headers", trusted_proxies=["10.0.0.0/24"])
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    environ = {"HTTP_OIDC_ID_TOKEN": token, "HTTP_OIDC_CLAIM_SUB": "alice", "REMOTE_ADDR": "192.0.2.7"}
    body = app.get("/", extra_environ=environ).json
    assert body["identity"] is None


def test_openidc_verified_claims_are_not_shared_between_requests(rsa_signer: TestSigner) -> None:
    """The cached claims of one token must not carry a previous request's variables."""
    app = openidc(rsa_signer, attributes={"team": "team"})
    token = rsa_signer.sign(rsa_signer.claims("alice"))
    first = app.get("/", extra_environ={"OIDC_id_token": token, "OIDC_CLAIM_team": "red"}).json
    second = app.get("/", extra_environ={"OIDC_id_token": token}).json
    assert first["identity"]["attributes"]["team"] == ["red"]
    assert "team" not in second["identity"]["attributes"]


# -- keys under attack ----------------------------------------------------------------------------


class DripServer:
    """Loopback socket server: after accepting, sends ``first`` then one byte of ``drip`` every ``pause`` s."""

    def __init__(self, first: bytes, drip: bytes, pause: float = 0.1) -> None:
        self.first, self.drip, self.pause = first, drip, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                try:
                    connection.settimeout(0.5)
                    with contextlib.suppress(TimeoutError):
                        connection.recv(65536)
                    connection.sendall(self.first)
                    for byte in self.drip:
                        if self.stop.wait(self.pause):
                            return
                        connection.sendall(bytes([byte]))
                except OSError:
                    continue

    def __enter__(self) -> DripServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()


def test_https_key_url_that_drips_its_tls_handshake_is_cut_at_the_total_deadline() -> None:
    """A TLS record announcing 16 KB, then a byte every 0.1 s: each read is quick, the whole is 27 minutes."""
    with DripServer(b"\x16\x03\x03\x40\x00", b"\x00" * 16384) as server:
        started = time.monotonic()
        with pytest.raises((TimeoutError, OSError)):
            http_get(f"https://127.0.0.1:{server.port}/jwks.json", 0.5)
        assert time.monotonic() - started < 5


def test_key_url_with_a_huge_body_is_refused_within_the_memory_cap() -> None:
    body = b"x" * (3 << 20)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with DripServer(head + body, b"", pause=0) as server, pytest.raises(ValueError, match="over"):
        http_get(f"http://127.0.0.1:{server.port}/jwks.json", 5)


def remote(document: Callable[[str], bytes], **options: Any) -> tuple[RemoteKeys[Any], RecordingFetch]:
    fetch = RecordingFetch(document)
    return RemoteKeys("https://idp.example.org/jwks", load_jwks, fetch=fetch, **options), fetch


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"not json", id="garbage"),
        pytest.param(b"[]", id="json array"),
        pytest.param(b'{"keys": {}}', id="keys an object"),
        pytest.param(b'{"keys": [1, "x", null, {}]}', id="junk entries"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep nesting"),
        pytest.param(b"\xff\xfe", id="not utf-8"),
    ],
)
def test_garbage_key_document_is_a_503_or_401_never_a_500(signer: TestSigner, document: bytes) -> None:
    keys, _ = remote(lambda url: document)
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    with pytest.raises((InvalidAssertionError, KeysUnavailableError)) as excinfo:
        verifier.claims({POMERIUM: signer.sign(signer.claims("alice"))})
    assert excinfo.value.status in (401, 503)


def test_jwks_with_ten_thousand_keys_still_finds_the_real_one(signer: TestSigner) -> None:
    junk = [{**TestSigner("ES256").jwk, "kid": f"k{n}"} for n in range(20)] * 500
    for number, entry in enumerate(junk):
        junk[number] = {**entry, "kid": f"k{number}"}
    document = json.dumps({"keys": [*junk, signer.jwk]}).encode()
    assert len(document) < 1 << 21
    keys = load_jwks(document)
    assert keys[signer.kid].key is not None


def test_fifty_requests_during_a_slow_first_fetch_start_one_fetch_and_all_get_the_key(
    signer: TestSigner,
) -> None:
    release = threading.Event()

    def slow(url: str) -> bytes:
        assert release.wait(10)
        return json.dumps(signer.jwks).encode()

    keys, fetch = remote(slow)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(keys.get(signer.kid))) for _ in range(50)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(15)
    assert len(fetch.urls) == 1
    assert len(results) == 50
    assert all(result is not None for result in results)


def test_retired_key_stops_verifying_at_the_refetch_and_its_cached_tokens_go(signer: TestSigner) -> None:
    new = TestSigner("ES256", issuer=signer.issuer, audience=signer.audience)
    published = [signer]
    keys, _ = remote(
        lambda url: json.dumps({"keys": [s.jwk for s in published]}).encode(), refetch_interval=0
    )
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    old_token = signer.sign(signer.claims("alice"))
    assert verifier.claims({POMERIUM: old_token})["sub"] == "alice"
    published[:] = [new]  # rotation without overlap
    # A token with the new kid starts the refetch that retires the old key.
    assert verifier.claims({POMERIUM: new.sign(new.claims("bob"))})["sub"] == "bob"
    with pytest.raises(InvalidAssertionError, match="refused"):
        verifier.claims({POMERIUM: old_token})


def test_retired_key_with_its_kid_reused_by_the_new_key_is_not_served_from_cache(signer: TestSigner) -> None:
    """The provider rotates the key behind an unchanged kid: cached tokens of the old key go at the refetch."""
    clock = [1000.0]
    replacement = TestSigner("ES256", kid=signer.kid, issuer=signer.issuer, audience=signer.audience)
    published = [signer]
    fetch = RecordingFetch(lambda url: json.dumps({"keys": [s.jwk for s in published]}).encode())
    keys = RemoteKeys("https://idp.example.org/jwks", load_jwks, fetch=fetch, clock=lambda: clock[0])
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    old_token = signer.sign(signer.claims("alice"))
    verifier.claims({POMERIUM: old_token})
    published[:] = [replacement]
    clock[0] += 3601  # the hourly refresh
    with pytest.raises(InvalidAssertionError, match="refused"):
        verifier.claims({POMERIUM: old_token})
    with pytest.raises(InvalidAssertionError, match="refused"):
        verifier.claims({POMERIUM: old_token})  # and not from the cache either


def test_one_made_up_kid_asked_often_does_not_starve_a_real_new_alb_key(signer: TestSigner) -> None:
    """Each window the attacker repeats one made-up kid more often than the real users ask for theirs."""
    clock = [1000.0]
    real = TestSigner("ES256", issuer=signer.issuer, audience=signer.audience)

    def fetch_one(url: str, timeout: float) -> bytes:
        if url.endswith("/" + real.kid):
            return real.public_pem
        raise urllib.error.HTTPError(url, 404, "Not Found", Message(), None)

    keys = RemoteKeys(
        "https://public-keys.auth.elb.eu-west-1.amazonaws.com/{kid}",
        lambda doc: {None: doc},
        fetch=fetch_one,
        clock=lambda: clock[0],
    )
    found = None
    for window in range(10):  # a minute
        for _ in range(50):
            keys.get(f"madeup{window}")
        for _ in range(5):
            found = keys.get(real.kid) or found
        clock[0] += 6.1
    assert found is not None


def test_long_made_up_kids_do_not_hold_megabytes(signer: TestSigner) -> None:
    """1024 remembered kids, each as long as a 16 KiB token allows: the memory of what is remembered is bounded."""
    keys, _ = remote(lambda url: json.dumps(signer.jwks).encode(), refetch_interval=0)
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for number in range(2 * MAX_REMEMBERED_KIDS):
            kid = f"{number:06d}" + "k" * 11000
            token = raw_token(json.dumps({"alg": "ES256", "kid": kid}).encode(), b"{}")
            with pytest.raises(InvalidAssertionError):
                verifier.claims({POMERIUM: token})
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 4 << 20, f"{held / 2**20:.1f} MiB held for made-up kids"


# -- the verified-token cache ---------------------------------------------------------------------


def test_token_cache_with_huge_claims_stays_within_8_mib(signer: TestSigner) -> None:
    app = app_for(
        signer,
        attributes={"groups": Attribute("groups", multi=True, max_bytes=20000)},
        max_attribute_values=4000,
    )
    middleware = app.app
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for number in range(150):
            groups = [f"{n}" for n in range(1700)]
            token = signer.sign(signer.claims(f"user{number}", {"groups": groups}))
            assert len(token) < 16384
            middleware.source.read({POMERIUM: token})
        del token
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < (8 << 20) * 1.25 + (1 << 20), f"{held / 2**20:.1f} MiB held"


def test_token_differing_only_in_whitespace_or_signature_junk_is_never_another_user(
    signer: TestSigner,
) -> None:
    app = app_for(signer)
    alice = signer.sign(signer.claims("alice"))
    assert app.get("/", extra_environ={POMERIUM: alice}).json["remote_user"] == "alice"
    for variant in (f" {alice} ", alice + "\t", alice + "!", alice[:-2], alice + "A"):
        response = app.get("/", extra_environ={POMERIUM: variant}, status="*")
        assert response.status_int in (200, 401)
        if response.status_int == 200:
            assert response.json["remote_user"] == "alice"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://{kid}.keys.example.org/", id="kid in the host"),
        pytest.param("https://keys.example.org:{kid}/", id="kid in the port"),
        pytest.param("https://keys.example.org/{region}/{kid}", id="another field"),
        pytest.param("https://keys.example.org/{kid!r}", id="a conversion"),
        pytest.param("https://keys.example.org/{kid:>10}", id="a format spec"),
        pytest.param("https://keys.example.org/{kid.__class__}", id="an attribute"),
        pytest.param("https://keys.example.org/{kid}/{", id="an unbalanced brace"),
    ],
)
def test_key_url_template_with_kid_outside_its_path_or_other_fields_is_refused_at_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="jwks_url"):
        SSOMiddleware(echo_app, profile="aws-alb", jwks_url=url, audience=ARN)


def test_flood_of_tiny_distinct_tokens_keeps_at_most_4096_in_the_cache(signer: TestSigner) -> None:
    middleware = app_for(signer).app
    claims = signer.claims("alice")
    for number in range(4200):
        token = signer.sign({**claims, "n": number})
        middleware.source.read({POMERIUM: token})
    assert len(middleware.verifier.cache._tokens) == 4096


def test_threads_verifying_while_keys_rotate_never_get_another_users_identity(signer: TestSigner) -> None:
    """Alice's and bob's tokens under two keys, the key set flipping between fetches, 8 threads at once."""
    second = TestSigner("ES256", issuer=signer.issuer, audience=signer.audience)
    sets = [{"keys": [signer.jwk, second.jwk]}, {"keys": [signer.jwk]}, {"keys": [second.jwk]}]
    turn = [0]

    def document(url: str) -> bytes:
        turn[0] += 1
        return json.dumps(sets[turn[0] % 3]).encode()

    keys, _ = remote(document, refetch_interval=0, miss_ttl=0)
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    tokens = {signer.sign(signer.claims("alice")): "alice", second.sign(second.claims("bob")): "bob"}
    wrong: list[str] = []

    def hammer() -> None:
        for _ in range(100):
            for token, user in tokens.items():
                try:
                    claims = verifier.claims({POMERIUM: token})
                except (InvalidAssertionError, KeysUnavailableError):
                    continue
                if claims is None or claims["sub"] != user:
                    wrong.append(f"{user} got {claims and claims['sub']}")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []


def long_named_chain(levels: int, name_length: int, leaves: int) -> dict[str, Any]:
    """Nested claims whose names are long: each leaf's dotted name repeats every name above it."""
    document: dict[str, Any] = {str(number): 0 for number in range(leaves)}
    for level in range(levels):
        document = {f"{level:02d}".ljust(name_length, "n"): document}
    return document


def test_signed_claims_with_long_nested_names_do_not_flatten_to_megabytes(signer: TestSigner) -> None:
    """A 16 KiB token of 30 nested 280-character names over 440 leaves: 470 names of 8 KB each (4 MiB)."""
    claims = signer.claims("alice", {"deep": long_named_chain(30, 280, 440)})
    token = signer.sign(claims)
    assert len(token) < 16384
    middleware = app_for(signer).app
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        identity = middleware.source.read({POMERIUM: token})
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert identity is not None
    assert identity.user == "alice"
    assert peak < 2 << 20, f"{peak / 2**20:.1f} MiB to flatten one 16 KiB token"
    assert identity.attributes == {}


@pytest.fixture
def redirecting(signer: TestSigner) -> Iterator[RedirectingServer]:
    server = RedirectingServer(signer.jwks)
    with in_thread(server.httpd):
        yield server


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("//evil.example.net/jwks.json", id="protocol relative"),
        pytest.param(
            "http://127.0.0.1:{port}@evil.example.net/jwks.json", id="userinfo looking like the host"
        ),
        pytest.param("http://evil.example.net#@127.0.0.1:{port}/jwks.json", id="fragment trick"),
        pytest.param("http://127.0.0.1:{port}.evil.example.net/jwks.json", id="host suffix"),
        pytest.param("gopher://127.0.0.1:{port}/jwks.json", id="gopher"),
        pytest.param("http://[::1]:{port}/jwks.json", id="another loopback spelling"),
        pytest.param("http://2130706433:{port}/jwks.json", id="decimal ip"),
    ],
)
def test_redirect_tricks_never_leave_the_key_urls_origin(
    redirecting: RedirectingServer, location: str
) -> None:
    port = redirecting.origin.rsplit(":", 1)[1]
    redirecting.redirects["/moved"] = location.format(port=port)
    with pytest.raises((ValueError, OSError)):
        http_get(redirecting.origin + "/moved", 2)


def test_token_without_aud_is_refused(signer: TestSigner) -> None:
    claims = signer.claims("alice")
    del claims["aud"]
    app_for(signer).get("/", extra_environ={POMERIUM: signer.sign(claims)}, status=401)


def test_cached_tokens_are_served_from_the_cache_while_the_stale_keys_cannot_be_refetched(
    signer: TestSigner,
) -> None:
    """Past the hour with the key URL down: one request per refetch interval tries it, the rest hit the cache."""
    clock = [1000.0]
    up = [True]

    def document(url: str) -> bytes:
        if not up[0]:
            raise ConnectionRefusedError("down")
        return json.dumps(signer.jwks).encode()

    fetch = RecordingFetch(document)
    keys = RemoteKeys("https://idp.example.org/jwks", load_jwks, fetch=fetch, clock=lambda: clock[0])
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    token = signer.sign(signer.claims("alice"))
    verifier.claims({POMERIUM: token})
    up[0] = False
    clock[0] += 3601
    verified: list[str] = []
    check = verifier._verify

    def counting(token: str) -> dict[str, Any]:
        verified.append(token)
        return check(token)

    verifier._verify = counting  # type: ignore[method-assign]
    for _ in range(20):
        assert verifier.claims({POMERIUM: token})["sub"] == "alice"  # type: ignore[index]
    assert len(fetch.urls) == 2
    assert len(verified) == 1


@pytest.mark.parametrize("encoding", [None, "base64url", "url"])
@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_openidc_id_token_is_refused_never_a_500(
    rsa_signer: TestSigner, encoding: str | None, token: str
) -> None:
    app = openidc(rsa_signer, **({"encoding": encoding} if encoding else {}))
    environ = {"OIDC_CLAIM_sub": "alice", "OIDC_id_token": token}
    response = app.get("/", extra_environ=environ, status="*")
    assert response.status_int in (400, 401)


def test_refused_tokens_never_put_the_token_or_its_claims_in_the_log(
    signer: TestSigner, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-claim-value"
    other = TestSigner("ES256", kid=signer.kid, issuer=signer.issuer, audience=signer.audience)
    tokens = [
        other.sign(other.claims(secret)),  # bad signature
        signer.sign(signer.claims(secret, {"aud": secret})),  # wrong audience
        signer.sign(signer.claims(secret, {"iss": secret})),  # wrong issuer
        signer.sign(signer.claims(secret, {"exp": 1})),  # expired
        signed_bytes(signer, json.dumps([secret]).encode()),  # not an object
        signed_bytes(signer, b'{"sub": "' + secret.encode() + b'", "exp": "x"}'),  # exp not a number
    ]
    app = app_for(signer)
    with caplog.at_level("DEBUG"):
        for token in tokens:
            response = app.get("/", extra_environ={POMERIUM: token}, status="*")
            assert secret not in response.text
    assert secret not in caplog.text
    for token in tokens:
        assert token.rsplit(".", 1)[1] not in caplog.text
