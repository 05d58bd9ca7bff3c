"""Signing keys over real HTTP on loopback: first use, cache, rotation, rate-limited refetch, outages, AWS ALB."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import echo_app
from support import in_thread
from webtest import TestApp

from shibwsgi import SSOMiddleware
from shibwsgi.assertions import AssertionVerifier, load_jwks
from shibwsgi.keys import RemoteKeys
from shibwsgi.testing import environ_for
from shibwsgi.testing.signed import TestSigner

POMERIUM = "HTTP_X_POMERIUM_JWT_ASSERTION"
ALB = "HTTP_X_AMZN_OIDC_DATA"
ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/movies/50dc6c495c0c9188"


class KeyServer:
    """A JWKS (or per-kid PEM) endpoint on 127.0.0.1 that counts its requests."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.pems: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.down = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.down:
                    self.send_error(503)
                    return
                if self.path == "/jwks.json":
                    body = json.dumps(server.jwks).encode()
                elif self.path.lstrip("/") in server.pems:
                    body = server.pems[self.path.lstrip("/")]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def publish(self, *signers: TestSigner) -> None:
        self.jwks = {"keys": [signer.jwk for signer in signers]}


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    with in_thread(server.httpd):
        yield server


def new_signer() -> TestSigner:
    return TestSigner("ES256", issuer="https://authenticate.example.org", audience="movies.example.org")


def pomerium(server: KeyServer, signer: TestSigner) -> TestApp:
    middleware = SSOMiddleware(
        echo_app,
        profile="pomerium",
        jwks_url=server.url + "/jwks.json",
        issuer=signer.issuer,
        audience=signer.audience,
    )
    return TestApp(middleware)


def verifier_over(
    server: KeyServer, signer: TestSigner, clock: FakeClock
) -> tuple[AssertionVerifier, RemoteKeys[Any]]:
    """A Pomerium verifier whose keys come from ``server``, refetched at most once a minute of ``clock``."""
    keys = RemoteKeys(server.url + "/jwks.json", load_jwks, refetch_interval=60, clock=clock)
    verifier = AssertionVerifier(
        key=POMERIUM, keys=keys, audience=(signer.audience,), algorithms=("ES256",), issuer=signer.issuer
    )
    return verifier, keys


def user_of(app: TestApp, token: str, status: int = 200) -> str | None:
    response = app.get("/", extra_environ={POMERIUM: token}, status=status)
    return response.json.get("remote_user") if status == 200 else None


def test_keys_fetched_on_first_use_then_cached(key_server: KeyServer) -> None:
    signer = new_signer()
    key_server.publish(signer)
    app = pomerium(key_server, signer)
    assert key_server.requests == []  # nothing fetched at start-up
    for user in ("alice", "bob", "carol"):
        assert user_of(app, signer.sign(signer.claims(user))) == user
    assert key_server.requests == ["/jwks.json"]


def test_a_flood_of_random_kids_cannot_hammer_the_identity_provider(key_server: KeyServer) -> None:
    signer = new_signer()
    key_server.publish(signer)
    app = pomerium(key_server, signer)
    assert user_of(app, signer.sign(signer.claims("alice"))) == "alice"
    for _ in range(50):
        token = signer.sign(signer.claims("mallory"), headers={"kid": secrets.token_hex(8)})
        user_of(app, token, status=401)
    # The first fetch, then no refetch inside the interval (the first load counts as the last try).
    assert len(key_server.requests) == 1


def test_rotation_retires_removed_keys_and_admits_new_ones(key_server: KeyServer) -> None:
    old, new = new_signer(), new_signer()
    key_server.publish(old)
    clock = FakeClock()
    verifier, keys = verifier_over(key_server, old, clock)
    old_token = old.sign(old.claims("alice"))
    assert verifier.claims({POMERIUM: old_token})["sub"] == "alice"

    key_server.publish(new)  # the front end rotates: the old key is gone upstream
    clock.now += 61
    assert verifier.claims({POMERIUM: new.sign(new.claims("bob"))})["sub"] == "bob"
    assert keys.fetches == 2
    with pytest.raises(Exception, match="refused"):
        verifier.claims({POMERIUM: old_token})  # even though it verified (and was cached) before
    with pytest.raises(Exception, match="refused"):
        verifier.claims({POMERIUM: old.sign(old.claims("alice"))})
    assert keys.fetches == 2  # at most one refetch per interval

    clock.now += 61
    with pytest.raises(Exception, match="refused"):
        verifier.claims({POMERIUM: old.sign(old.claims("alice"))})
    assert keys.fetches == 3  # the next interval allows one more look


def test_key_set_is_refetched_when_it_gets_old(key_server: KeyServer) -> None:
    signer = new_signer()
    key_server.publish(signer)
    clock = FakeClock()
    keys = RemoteKeys(key_server.url + "/jwks.json", load_jwks, max_age=3600, clock=clock)
    assert keys.get(signer.kid) is not None
    clock.now += 3601
    assert keys.get(signer.kid) is not None
    assert keys.fetches == 2


def test_jwks_down_at_first_use_is_503_not_500(caplog: pytest.LogCaptureFixture) -> None:
    server = KeyServer()
    server.httpd.server_close()  # nothing listens there
    signer = new_signer()
    app = pomerium(server, signer)
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        response = app.get("/", extra_environ={POMERIUM: signer.sign(signer.claims("alice"))}, status=503)
    assert "signing keys are unavailable" in response.json["error"]
    assert f"fetching keys from {server.url}/jwks.json failed" in caplog.text


def test_jwks_down_later_keeps_cached_keys_and_refuses_unknown_ones_with_503(key_server: KeyServer) -> None:
    signer, stranger = new_signer(), new_signer()
    key_server.publish(signer)
    clock = FakeClock()
    verifier, _ = verifier_over(key_server, signer, clock)
    assert verifier.claims({POMERIUM: signer.sign(signer.claims("alice"))})
    key_server.down = True
    clock.now += 61
    assert verifier.claims({POMERIUM: signer.sign(signer.claims("bob"))})["sub"] == "bob"
    with pytest.raises(Exception, match="unavailable") as excinfo:
        verifier.claims({POMERIUM: stranger.sign(stranger.claims("mallory"))})
    assert excinfo.value.status == 503  # type: ignore[attr-defined]


def test_jwks_answering_garbage_is_503(key_server: KeyServer) -> None:
    signer = new_signer()
    key_server.jwks = {"not": "a key set"}
    app = pomerium(key_server, signer)
    app.get("/", extra_environ={POMERIUM: signer.sign(signer.claims("alice"))}, status=503)


# -- AWS ALB: one PEM per kid, padded tokens, the signer ARN ---------------------------------


def alb(server: KeyServer, signer: TestSigner) -> TestApp:
    middleware = SSOMiddleware(
        echo_app,
        profile="aws-alb",
        jwks_url=server.url + "/{kid}",
        issuer=signer.issuer,
        audience=ARN,
        user="email",
    )
    return TestApp(middleware)


def alb_token(signer: TestSigner, signer_arn: str = ARN, **headers: Any) -> str:
    claims = signer.claims("0f1e2d", {"email": "alice@example.org"})
    del claims["aud"]  # ALB tokens name the load balancer in the header, not an aud claim
    return signer.sign(claims, headers={"signer": signer_arn, "iss": signer.issuer, **headers}, padded=True)


def test_alb_padded_token_verifies_against_the_pem_for_its_kid(key_server: KeyServer) -> None:
    signer = new_signer()
    key_server.pems[signer.kid] = signer.public_pem
    app = alb(key_server, signer)
    token = alb_token(signer)
    assert "=" in token  # the padding PyJWT 2.14.0 refused (pyjwt issue #1209)
    assert app.get("/", extra_environ={ALB: token}).json["remote_user"] == "alice@example.org"
    assert app.get("/", extra_environ=environ_for("aws-alb", "0f1e2d", signer=signer_with_arn(signer)))
    assert key_server.requests == [f"/{signer.kid}"]


def signer_with_arn(signer: TestSigner) -> TestSigner:
    signer.audience = ARN
    return signer


@pytest.mark.parametrize(
    "signer_arn",
    [
        pytest.param(ARN.replace("movies", "wiki"), id="another load balancer's ARN"),
        pytest.param("", id="empty signer"),
    ],
)
def test_alb_token_from_another_load_balancer_is_refused(key_server: KeyServer, signer_arn: str) -> None:
    signer = new_signer()
    key_server.pems[signer.kid] = signer.public_pem
    alb(key_server, signer).get("/", extra_environ={ALB: alb_token(signer, signer_arn)}, status=401)


def test_alb_unknown_kid_is_401_and_fetched_once(key_server: KeyServer) -> None:
    signer = new_signer()
    app = alb(key_server, signer)
    for _ in range(10):
        app.get("/", extra_environ={ALB: alb_token(signer, kid=secrets.token_hex(8))}, status=401)
    assert len(key_server.requests) == 1


def test_alb_kid_cannot_walk_the_key_url(key_server: KeyServer) -> None:
    signer = new_signer()
    key_server.pems[signer.kid] = signer.public_pem
    app = alb(key_server, signer)
    for kid in ("../admin", "x/../../y", "a?b=c", "%2e%2e"):
        app.get("/", extra_environ={ALB: alb_token(signer, kid=kid)}, status=401)
    assert key_server.requests == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
