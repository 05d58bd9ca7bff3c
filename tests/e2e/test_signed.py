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
import contextlib
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from stack import (
    OAUTH2_PROXY_COOKIE,
    TLS,
    nginx_variables,
    running_fake_oauth2_proxy,
    running_nginx,
    running_uwsgi,
    self_signed_certificate,
    shared_directory,
    wait_for_log,
    watching,
)
from support import free_port, wait_for_port

from shibwsgi.testing.signed import TestSigner

from .oidc_provider import Provider, running_provider
from .test_headers import ATTACKER_ADDRESS, NGINX_ADDRESS, PoolOptions

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

pytestmark = pytest.mark.servers

ALICE = {"sub": "alice", "email": "alice@example.org", "name": "Alice", "groups": ["movie-editors", "staff"]}
ATTRIBUTES = "name=name email=email groups=groups:multi"
ROUTE = "movies.example.org"  # Pomerium's aud and iss: the route's domain


@dataclass(frozen=True)
class Site:
    https: str  # nginx
    http_socket: int  # uWSGI's plain-HTTP socket on 127.0.0.1
    tls: TLS

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, cookie: str | None = None
    ) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            session.verify = str(self.tls.cert)
            session.mount("https://", PoolOptions(assert_hostname="127.0.0.1"))
            if cookie is not None:
                session.headers["Cookie"] = cookie
            return session.get(self.https + path, headers=headers, allow_redirects=False, timeout=30)

    def direct(
        self, path: str, headers: Mapping[str, str], source: str = ATTACKER_ADDRESS
    ) -> requests.Response:
        """Straight to uWSGI, skipping nginx, from ``source``."""
        with requests.Session() as session:
            session.trust_env = False
            session.mount("http://", PoolOptions(source_address=(source, 0)))
            url = f"http://127.0.0.1:{self.http_socket}{path}"
            return session.get(url, headers=headers, allow_redirects=False, timeout=30)


@contextlib.contextmanager
def movie_site(tls: TLS, oauth2_proxy: str, folder: Path, settings: Mapping[str, str]) -> Iterator[Site]:
    """The movie app under uWSGI (plus a plain-HTTP socket) behind nginx on 127.0.0.2, lazy protection."""
    http_port = free_port()
    variables = {
        "UWSGI_PROCESSES": "2",
        "UWSGI_HTTP_SOCKET": f"127.0.0.1:{http_port}",
        "SHIBWSGI_TRUSTED_PROXIES": NGINX_ADDRESS,
        "SHIBWSGI_ATTRIBUTES": ATTRIBUTES,
        "MOVIES_DB": str(folder / "movies.sqlite3"),
        **settings,
    }
    with (
        running_uwsgi(folder, None, **variables) as uwsgi,
        watching(uwsgi.log),
        shared_directory("shibwsgi-nginx-") as root,
    ):
        wait_for_port(http_port, process=uwsgi.process)
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2)
        nginx = {**nginx_variables(tls, "lazy", oauth2_proxy, uwsgi.socket), "LISTEN_ADDRESS": NGINX_ADDRESS}
        with running_nginx(root, nginx):
            yield Site(f"https://{NGINX_ADDRESS}:{nginx['HTTPS_PORT']}", http_port, tls)


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
def oauth2_site(tls: TLS, oidc: OidcSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    users = {"alice": {"X-Auth-Request-User": "alice", "Authorization": f"Bearer {oidc.id_token}"}}
    settings = {
        "SHIBWSGI_PROFILE": "oauth2-proxy-jwt",
        "SHIBWSGI_JWKS_URL": f"{oidc.provider.url}/jwks",
        "SHIBWSGI_ISSUER": oidc.provider.url,
        "SHIBWSGI_AUDIENCE": oidc.client_id,
    }
    with (
        running_fake_oauth2_proxy(users) as oauth2_proxy,
        movie_site(tls, oauth2_proxy, tmp_path_factory.mktemp("oauth2-jwt"), settings) as site,
    ):
        yield site


def test_oauth2_proxy_id_token_through_nginx_is_verified(oauth2_site: Site) -> None:
    me = oauth2_site.get("/api/me", cookie=f"{OAUTH2_PROXY_COOKIE}=alice")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"] == "alice"
    assert body["attributes"]["groups"] == ["movie-editors", "staff"]


def test_oauth2_proxy_without_session_is_anonymous_even_with_a_client_token(
    oauth2_site: Site, oidc: OidcSetup
) -> None:
    # nginx never passes a client's own Authorization header.
    me = oauth2_site.get("/api/me", headers={"Authorization": f"Bearer {oidc.id_token}"})
    assert me.status_code == 401


def test_forged_id_token_straight_to_uwsgi_is_refused(oauth2_site: Site, oidc: OidcSetup) -> None:
    header, payload, signature = oidc.id_token.split(".")
    claims = json.loads(_b64decode(payload))
    forged = _b64encode(json.dumps({**claims, "sub": "mallory"}).encode())
    # Even from nginx's own address the signature decides.
    answer = oauth2_site.direct(
        "/api/me", {"Authorization": f"Bearer {header}.{forged}.{signature}"}, NGINX_ADDRESS
    )
    assert answer.status_code == 401, answer.text
    assert "signed identity assertion was refused" in answer.json()["error"]


def test_replayed_id_token_straight_to_uwsgi_identifies_nobody(oauth2_site: Site, oidc: OidcSetup) -> None:
    answer = oauth2_site.direct("/api/me", {"Authorization": f"Bearer {oidc.id_token}"})
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

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            body = json.dumps(signer.jwks).encode()
            self.send_response(200 if self.path == "/.well-known/pomerium/jwks.json" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/pomerium/jwks.json"
        yield PomeriumStandIn(signer, url, fetches)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def pomerium_site(
    tls: TLS, pomerium: PomeriumStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    settings = {
        "SHIBWSGI_PROFILE": "pomerium",
        "SHIBWSGI_JWKS_URL": pomerium.jwks_url,
        "SHIBWSGI_ISSUER": ROUTE,
        "SHIBWSGI_AUDIENCE": ROUTE,
    }
    # The oauth2-proxy stand-in is only nginx's auth_request target here: nobody has a session.
    with (
        running_fake_oauth2_proxy() as oauth2_proxy,
        movie_site(tls, oauth2_proxy, tmp_path_factory.mktemp("pomerium"), settings) as site,
    ):
        yield site


def test_pomerium_assertion_through_nginx_is_verified(pomerium_site: Site, pomerium: PomeriumStandIn) -> None:
    headers = {
        "X-Pomerium-Jwt-Assertion": pomerium.assertion(ALICE),
        "X-Pomerium-Claim-Groups": "admins",  # an unsigned copy: never read
    }
    for _ in range(3):
        me = pomerium_site.get("/api/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["user"] == "alice"
        assert me.json()["attributes"]["groups"] == ["movie-editors", "staff"]
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
    pomerium_site: Site, pomerium: PomeriumStandIn, token: Any
) -> None:
    forger: TestSigner = token(pomerium.signer)
    forged = forger.sign(forger.claims("mallory"))
    for answer in (
        pomerium_site.get("/api/me", headers={"X-Pomerium-Jwt-Assertion": forged}),
        pomerium_site.direct("/api/me", {"X-Pomerium-Jwt-Assertion": forged}, NGINX_ADDRESS),
    ):
        assert answer.status_code == 401, answer.text
        assert "signed identity assertion was refused" in answer.json()["error"]


def test_genuine_pomerium_assertion_straight_to_uwsgi_identifies_nobody(
    pomerium_site: Site, pomerium: PomeriumStandIn
) -> None:
    answer = pomerium_site.direct("/api/me", {"X-Pomerium-Jwt-Assertion": pomerium.assertion(ALICE)})
    assert answer.status_code == 401
    assert "alice" not in answer.text


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
