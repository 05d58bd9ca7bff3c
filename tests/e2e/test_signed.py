"""Signed assertions for real: nginx in front of the movie app under uWSGI, keys over loopback HTTP.

- oauth2-proxy: the real OIDC provider (oidc-provider-mock) issues an ID token; the
  oauth2-proxy stand-in answers nginx's auth_request with ``Authorization: Bearer <id
  token>`` (``--set-authorization-header``); nginx, from the shipped
  apache/nginx-oauth2-proxy.conf, passes it on; the app (profile ``oauth2-proxy-jwt``)
  verifies it against the provider's JWKS.
- Pomerium-style: a small ES256 signer with its own JWKS on loopback signs the
  ``X-Pomerium-Jwt-Assertion`` that reaches the app through nginx.

Straight to uWSGI, a forged token is refused (401) and a genuine token replayed from
another peer identifies nobody (the apps keep ``trusted_proxies`` = nginx's address).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from stack import (
    TLS,
    running_fake_oauth2_proxy,
    self_signed_certificate,
)
from support import serving_jwks

from shibwsgi.testing.signed import TestSigner

from .oidc_provider import Provider, running_provider
from .test_headers import ATTACKER_ADDRESS, NGINX_ADDRESS, Stack, direct_http, movie_stack, through_nginx

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

pytestmark = pytest.mark.servers

ALICE = {"sub": "alice", "email": "alice@example.org", "name": "Alice", "groups": ["movie-editors", "staff"]}
ATTRIBUTES = "name=name email=email groups=groups:multi"
ROUTE = "movies.example.org"  # Pomerium's aud and iss: the route's domain


def signed_settings(**settings: str) -> dict[str, str]:
    """App settings for a signed profile; ``trusted_proxies`` (nginx) stays, to refuse replays."""
    return {"SHIBWSGI_ATTRIBUTES": ATTRIBUTES, **settings}


def me(stack: Stack, headers: Mapping[str, str], user: str | None = None) -> requests.Response:
    return through_nginx(stack, user, "GET", "/api/me", headers=headers)


def me_directly(
    stack: Stack, headers: Mapping[str, str], source: str = ATTACKER_ADDRESS
) -> requests.Response:
    """Straight to uWSGI, skipping nginx, from ``source``."""
    return direct_http(stack, source, "GET", "/api/me", headers=headers)


@pytest.fixture(scope="module")
def tls() -> Iterator[TLS]:
    with self_signed_certificate() as certificate:
        yield certificate


# --- oauth2-proxy + a real OIDC provider ----------------------------------------------------------


@dataclass(frozen=True)
class OidcSetup:
    provider: Provider
    client_id: str
    id_token: str


def id_token_for(provider: Provider, sub: str) -> tuple[str, str]:
    """Run the authorization code flow at the provider as ``sub``: (client id, ID token)."""
    redirect_uri = "https://127.0.0.1/oauth2/callback"
    client = provider.register(redirect_uri)
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    with requests.Session() as browser:
        browser.trust_env = False
        location = provider.log_in(browser, f"{provider.url}/oauth2/authorize?{urlencode(query)}", sub)
        code = parse_qs(urlsplit(location).query)["code"][0]
        answer = browser.post(
            f"{provider.url}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            auth=(client.client_id, client.client_secret),
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    return client.client_id, str(answer.json()["id_token"])


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcSetup]:
    with running_provider(tmp_path_factory.mktemp("provider"), [ALICE]) as provider:
        client_id, token = id_token_for(provider, "alice")
        yield OidcSetup(provider, client_id, token)


@pytest.fixture(scope="module")
def oauth2_site(tls: TLS, oidc: OidcSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    users = {"alice": {"X-Auth-Request-User": "alice", "Authorization": f"Bearer {oidc.id_token}"}}
    settings = signed_settings(
        SHIBWSGI_PROFILE="oauth2-proxy-jwt",
        SHIBWSGI_JWKS_URL=f"{oidc.provider.url}/jwks",
        SHIBWSGI_ISSUER=oidc.provider.url,
        SHIBWSGI_AUDIENCE=oidc.client_id,
    )
    folder = tmp_path_factory.mktemp("oauth2-jwt")
    with (
        running_fake_oauth2_proxy(users) as oauth2_proxy,
        movie_stack(tls, oauth2_proxy, folder, overrides=settings) as stack,
    ):
        yield stack


def test_oauth2_proxy_id_token_through_nginx_is_verified(oauth2_site: Stack) -> None:
    answer = me(oauth2_site, {}, user="alice")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["user"] == "alice"
    assert body["attributes"]["groups"] == ["movie-editors", "staff"]


def test_oauth2_proxy_without_session_is_anonymous_even_with_a_client_token(
    oauth2_site: Stack, oidc: OidcSetup
) -> None:
    # nginx never passes a client's own Authorization header.
    assert me(oauth2_site, {"Authorization": f"Bearer {oidc.id_token}"}).status_code == 401


def test_forged_id_token_straight_to_uwsgi_is_refused(oauth2_site: Stack, oidc: OidcSetup) -> None:
    header, payload, signature = oidc.id_token.split(".")
    claims = json.loads(_b64decode(payload))
    forged = _b64encode(json.dumps({**claims, "sub": "mallory"}).encode())
    # Even from nginx's own address the signature decides.
    answer = me_directly(
        oauth2_site, {"Authorization": f"Bearer {header}.{forged}.{signature}"}, NGINX_ADDRESS
    )
    assert answer.status_code == 401, answer.text
    assert "signed identity assertion was refused" in answer.json()["error"]


def test_replayed_id_token_straight_to_uwsgi_identifies_nobody(oauth2_site: Stack, oidc: OidcSetup) -> None:
    answer = me_directly(oauth2_site, {"Authorization": f"Bearer {oidc.id_token}"})
    assert answer.status_code == 401  # the app's own answer to an anonymous /api/me
    assert "alice" not in answer.text


# --- a Pomerium-style signer with its own JWKS ---------------------------------------------------


@dataclass(frozen=True)
class PomeriumStandIn:
    signer: TestSigner
    jwks_url: str
    fetches: list[str]

    def assertion(self, claims: Mapping[str, Any]) -> str:
        return self.signer.sign(self.signer.claims(claims["sub"], claims))


@pytest.fixture(scope="module")
def pomerium() -> Iterator[PomeriumStandIn]:
    signer = TestSigner("ES256", issuer=ROUTE, audience=ROUTE)
    fetches: list[str] = []

    with serving_jwks(lambda: signer.jwks, fetches=fetches) as url:
        yield PomeriumStandIn(signer, url, fetches)


@pytest.fixture(scope="module")
def pomerium_site(
    tls: TLS, pomerium: PomeriumStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    settings = signed_settings(
        SHIBWSGI_PROFILE="pomerium",
        SHIBWSGI_JWKS_URL=pomerium.jwks_url,
        SHIBWSGI_ISSUER=ROUTE,
        SHIBWSGI_AUDIENCE=ROUTE,
    )
    # The oauth2-proxy stand-in is only nginx's auth_request target here: nobody has a session.
    folder = tmp_path_factory.mktemp("pomerium")
    with (
        running_fake_oauth2_proxy() as oauth2_proxy,
        movie_stack(tls, oauth2_proxy, folder, overrides=settings) as stack,
    ):
        yield stack


def test_pomerium_assertion_through_nginx_is_verified(
    pomerium_site: Stack, pomerium: PomeriumStandIn
) -> None:
    headers = {
        "X-Pomerium-Jwt-Assertion": pomerium.assertion(ALICE),
        "X-Pomerium-Claim-Groups": "admins",  # an unsigned copy: never read
    }
    for _ in range(3):
        answer = me(pomerium_site, headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == "alice"
        assert answer.json()["attributes"]["groups"] == ["movie-editors", "staff"]
    # Each of the two workers fetched the key set once, then served from its cache.
    assert 1 <= len(pomerium.fetches) <= 2


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            lambda s: TestSigner("ES256", kid=s.kid, issuer=ROUTE, audience=ROUTE), id="attacker's key"
        ),
        pytest.param(
            lambda s: TestSigner("ES256", issuer=ROUTE, audience="wiki.example.org"), id="other route"
        ),
    ],
)
def test_forged_pomerium_assertion_is_refused(
    pomerium_site: Stack, pomerium: PomeriumStandIn, token: Any
) -> None:
    forger: TestSigner = token(pomerium.signer)
    forged = forger.sign(forger.claims("mallory"))
    for answer in (
        me(pomerium_site, {"X-Pomerium-Jwt-Assertion": forged}),
        me_directly(pomerium_site, {"X-Pomerium-Jwt-Assertion": forged}, NGINX_ADDRESS),
    ):
        assert answer.status_code == 401, answer.text
        assert "signed identity assertion was refused" in answer.json()["error"]


def test_genuine_pomerium_assertion_straight_to_uwsgi_identifies_nobody(
    pomerium_site: Stack, pomerium: PomeriumStandIn
) -> None:
    answer = me_directly(pomerium_site, {"X-Pomerium-Jwt-Assertion": pomerium.assertion(ALICE)})
    assert answer.status_code == 401
    assert "alice" not in answer.text


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
