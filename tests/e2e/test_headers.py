"""The header channel for real: nginx + oauth2-proxy in front of the movie app under uWSGI.

nginx runs from the shipped apache/nginx-oauth2-proxy.conf (lazy protection), uWSGI from
apache/uwsgi.ini serving app.wsgi with the ``oauth2-proxy`` profile in the headers channel.
A stand-in for oauth2-proxy (stack.FakeOAuth2Proxy) answers nginx's auth_request: the
cookie ``_oauth2_proxy=<user>`` signs in as that user.

Distinct loopback addresses make "another peer" real on one machine:

- nginx listens on 127.0.0.2, so ``$server_addr``, which the template sends as
  REMOTE_ADDR, is 127.0.0.2: the app's only trusted proxy;
- uWSGI also answers plain HTTP (UWSGI_HTTP_SOCKET) on 127.0.0.1, where REMOTE_ADDR is the
  TCP peer's address;
- the attacker connects from 127.0.0.3 (or from 127.0.0.1, the machine itself).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shlex
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from stack import (
    OAUTH2_PROXY_COOKIE,
    REPO,
    TLS,
    Uwsgi,
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

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

pytestmark = pytest.mark.servers

#: nginx listens here; the app trusts this address only.
NGINX_ADDRESS = "127.0.0.2"
#: Where a direct attacker connects from.
ATTACKER_ADDRESS = "127.0.0.3"
#: What the stand-in answers for alice (an editor) and bob (a reader), as /api/me shows it.
ALICE = {
    "user": "alice",
    "attributes": {"email": ["alice@example.org"], "groups": ["movie-editors", "staff"], "name": ["Alice"]},
}
BOB = {
    "user": "bob",
    "attributes": {"email": ["bob@example.org"], "groups": ["film-club", "staff"], "name": ["Bob"]},
}
#: Identity headers a client sends to pass as mallory, an editor.
FORGED_HEADERS = {
    "X-Forwarded-User": "mallory",
    "X-Forwarded-Email": "mallory@example.org",
    "X-Forwarded-Groups": "movie-editors",
    "X-Forwarded-Preferred-Username": "Mallory",
    "X-Auth-Request-User": "mallory",
    "X-Auth-Request-Email": "mallory@example.org",
    "X-Auth-Request-Groups": "movie-editors",
    "Remote-User": "mallory",
    "X-Remote-User": "mallory",
}
MALLORY = {
    "user": "mallory",
    "attributes": {"email": ["mallory@example.org"], "groups": ["movie-editors"], "name": ["Mallory"]},
}
#: The line of the template that its comment says to uncomment for a shared secret.
SECRET_HEADER = "X-Shibwsgi-Proxy-Secret"
MOVIE = {"title": "Heat", "director": "Michael Mann", "main_actor": "Al Pacino", "published": 1995}


@dataclass(frozen=True)
class Stack:
    https: str  # nginx: https://127.0.0.2:<port>
    http_socket: int  # port of uWSGI's plain-HTTP socket on 127.0.0.1
    uwsgi: Uwsgi
    tls: TLS
    proxy_secret: str | None


# --- starting the servers ------------------------------------------------------------------


@contextlib.contextmanager
def movie_stack(
    tls: TLS,
    oauth2_proxy: str,
    folder: Path,
    proxy_secret: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """The movie app under uWSGI (2 workers, plus a plain-HTTP socket) behind nginx.

    ``overrides``: app settings (``SHIBWSGI_*``, a profile among them) in place of the oauth2-proxy
    profile on the headers channel.
    """
    http_port = free_port()
    settings = {
        "UWSGI_PROCESSES": "2",
        "UWSGI_HTTP_SOCKET": f"127.0.0.1:{http_port}",
        "SHIBWSGI_TRUSTED_PROXIES": NGINX_ADDRESS,
        "MOVIES_DB": str(folder / "movies.sqlite3"),
    }
    if proxy_secret is not None:
        settings["SHIBWSGI_PROXY_SECRET"] = proxy_secret
    settings.update(overrides or {"SHIBWSGI_PROFILE": "oauth2-proxy", "SHIBWSGI_CHANNEL": "headers"})
    with (
        running_uwsgi(folder, None, **settings) as uwsgi,
        watching(uwsgi.log),
        shared_directory("shibwsgi-nginx-") as root,
    ):
        wait_for_port(http_port, process=uwsgi.process)
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2)
        variables = {
            **nginx_variables(tls, "lazy", oauth2_proxy, uwsgi.socket, proxy_secret or ""),
            "LISTEN_ADDRESS": NGINX_ADDRESS,
        }
        with running_nginx(root, variables):
            https = f"https://{NGINX_ADDRESS}:{variables['HTTPS_PORT']}"
            yield Stack(https, http_port, uwsgi, tls, proxy_secret)


@pytest.fixture(scope="module")
def tls() -> Iterator[TLS]:
    with self_signed_certificate() as certificate:
        yield certificate


@pytest.fixture(scope="module")
def oauth2_proxy() -> Iterator[str]:
    """The stand-in, configured like docs/deployment.md's oauth2-proxy (no --whitelist-domain)."""
    with running_fake_oauth2_proxy() as address:
        yield address


@pytest.fixture(scope="module")
def stack(tls: TLS, oauth2_proxy: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with movie_stack(tls, oauth2_proxy, tmp_path_factory.mktemp("headers")) as running:
        yield running


@pytest.fixture(scope="module")
def secret_stack(tls: TLS, oauth2_proxy: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same, with SHIBWSGI_PROXY_SECRET and nginx sending it."""
    secret = secrets.token_urlsafe(24)
    with movie_stack(tls, oauth2_proxy, tmp_path_factory.mktemp("secret"), secret) as running:
        yield running


# --- clients -------------------------------------------------------------------------------


class PoolOptions(HTTPAdapter):
    """An adapter passing extra urllib3 pool options (source_address, assert_hostname)."""

    def __init__(self, **options: Any) -> None:
        self.options = options  # before super().__init__(), which builds the pool manager
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **kwargs, **self.options)


@contextlib.contextmanager
def browser(stack: Stack, user: str | None) -> Iterator[requests.Session]:
    """A client of nginx over TLS, signed in at the stand-in as ``user`` (None: anonymous)."""
    with requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would win over verify
        session.verify = str(stack.tls.cert)
        # The test certificate names 127.0.0.1; nginx listens on 127.0.0.2.
        session.mount("https://", PoolOptions(assert_hostname="127.0.0.1"))
        if user is not None:
            session.headers["Cookie"] = f"{OAUTH2_PROXY_COOKIE}={user}"
        yield session


def through_nginx(stack: Stack, user: str | None, method: str, path: str, **kwargs: Any) -> requests.Response:
    with browser(stack, user) as session:
        return session.request(method, stack.https + path, allow_redirects=False, timeout=30, **kwargs)


def direct_http(stack: Stack, source: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A request straight to uWSGI's plain-HTTP socket, connecting from ``source``."""
    with requests.Session() as session:
        session.trust_env = False
        session.mount("http://", PoolOptions(source_address=(source, 0)))
        url = f"http://127.0.0.1:{stack.http_socket}{path}"
        return session.request(method, url, allow_redirects=False, timeout=30, **kwargs)


def direct_uwsgi(port: int, source: str, path: str, variables: Mapping[str, str]) -> tuple[int, Any]:
    """GET ``path`` on uWSGI's uwsgi-protocol socket, connecting from ``source``; (status, JSON body)."""
    variables = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_PROTOCOL": "HTTP/1.0",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "443",
        "HTTPS": "on",
        **variables,
    }
    block = b"".join(
        struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
        for key, value in ((k.encode("latin-1"), v.encode("latin-1")) for k, v in variables.items())
    )
    address = ("127.0.0.1", port)
    with socket.create_connection(address, timeout=30, source_address=(source, 0)) as connection:
        connection.sendall(struct.pack("<BHB", 0, len(block), 0) + block)
        response = b"".join(iter(lambda: connection.recv(65536), b""))
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def who(response: requests.Response) -> dict[str, Any]:
    """The user and attributes of an /api/me answer."""
    assert response.status_code == 200, response.text
    identity = response.json()
    assert identity["profile"] == "oauth2-proxy"
    return {"user": identity["user"], "attributes": identity["attributes"]}


def assert_no_errors(log: Path) -> None:
    """uWSGI's log: no traceback, no dropped request, no 5xx answer."""
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    assert "invalid request" not in text, text[-4000:]
    assert not re.search(r"\(HTTP/1\.[01] 5\d\d\)", text), text[-4000:]


# --- through nginx -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [pytest.param("alice", ALICE, id="editor"), pytest.param("bob", BOB, id="reader")],
)
def test_signed_in_user_reaches_the_app_through_nginx(
    stack: Stack, user: str, expected: dict[str, Any]
) -> None:
    """Groups arrive comma-joined from oauth2-proxy and are split on ','."""
    assert who(through_nginx(stack, user, "GET", "/api/me")) == expected


def test_anonymous_request_through_nginx_is_not_logged_in(stack: Stack) -> None:
    response = through_nginx(stack, None, "GET", "/api/me")
    assert response.status_code == 401, response.text


def test_editor_creates_changes_and_deletes_a_movie_through_nginx(stack: Stack) -> None:
    created = through_nginx(stack, "alice", "POST", "/api/movies", json=MOVIE)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "alice"
    location = created.headers["Location"]
    assert location == f"/api/movies/{created.json()['id']}"

    changed = through_nginx(stack, "alice", "PUT", location, json={"main_actor": "Robert De Niro"})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        **created.json(),
        "main_actor": "Robert De Niro",
        "updated_by": "alice",
        "updated_at": changed.json()["updated_at"],
    }
    assert through_nginx(stack, "bob", "GET", location).json() == changed.json()

    deleted = through_nginx(stack, "alice", "DELETE", location)
    assert deleted.status_code == 204, deleted.text
    assert through_nginx(stack, "alice", "GET", location).status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize(
    ("user", "status"),
    [pytest.param("bob", 403, id="reader"), pytest.param(None, 401, id="anonymous")],
)
def test_only_editors_write_through_nginx(stack: Stack, user: str | None, status: int, method: str) -> None:
    movie_id = through_nginx(stack, "bob", "GET", "/api/movies").json()[0]["id"]
    path = "/api/movies" if method == "POST" else f"/api/movies/{movie_id}"
    response = through_nginx(stack, user, method, path, json=MOVIE if method != "DELETE" else None)
    assert response.status_code == status, response.text
    assert through_nginx(stack, "bob", "GET", f"/api/movies/{movie_id}").status_code == 200


@pytest.mark.parametrize(
    ("user", "expected"),
    [pytest.param("bob", BOB, id="reader"), pytest.param(None, None, id="anonymous")],
)
def test_client_identity_headers_cannot_pass_nginx(stack: Stack, user: str | None, expected: Any) -> None:
    """nginx overwrites the identity headers with the stand-in's answer (empty without one)
    and drops the underscore spelling; a forged editor group gives no write access."""
    headers = {**FORGED_HEADERS, "X-Forwarded_User": "mallory"}
    me = through_nginx(stack, user, "GET", "/api/me", headers=headers)
    if expected is None:
        assert me.status_code == 401, me.text
    else:
        assert who(me) == expected
    write = through_nginx(stack, user, "POST", "/api/movies", headers=headers, json=MOVIE)
    assert write.status_code == (403 if user else 401), write.text


def test_logout_goes_through_oauth2_proxy_sign_out_and_back(stack: Stack) -> None:
    logout = through_nginx(stack, "alice", "GET", "/logout")
    assert logout.status_code == 302, logout.text
    sign_out = logout.headers["Location"]
    assert sign_out.startswith("/oauth2/sign_out?rd=")
    signed_out = through_nginx(stack, "alice", "GET", sign_out)
    assert signed_out.status_code == 302
    assert signed_out.headers["Set-Cookie"].startswith(f"{OAUTH2_PROXY_COOKIE}=;")
    assert signed_out.headers["Location"] != sign_out, "oauth2-proxy sends the browser back to sign_out"
    assert signed_out.headers["Location"] == "/"  # the site path the app asked for


# --- straight to uWSGI ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(ATTACKER_ADDRESS, id="another host"),
        pytest.param("127.0.0.1", id="this machine, not nginx's address"),
    ],
)
def test_identity_headers_sent_straight_to_uwsgi_are_ignored(stack: Stack, source: str) -> None:
    me = direct_http(stack, source, "GET", "/api/me", headers=FORGED_HEADERS)
    write = direct_http(stack, source, "POST", "/api/movies", headers=FORGED_HEADERS, json=MOVIE)
    assert me.status_code == 401, me.text
    assert write.status_code == 401, write.text
    wait_for_log(stack.uwsgi.log, rf"identity headers from {re.escape(source)} ignored: not a trusted proxy")
    assert_no_errors(stack.uwsgi.log)


def test_the_gate_is_the_peer_address_so_only_nginx_may_reach_uwsgi(stack: Stack) -> None:
    """What the app checks is REMOTE_ADDR, nothing else.

    On the plain-HTTP socket REMOTE_ADDR is the TCP peer: anyone who can connect from
    nginx's address (another process on nginx's host, a container sharing its network) is
    believed, whatever identity headers it sends. On the uwsgi socket REMOTE_ADDR is a
    variable the sender writes, so anyone who reaches that socket, from anywhere, passes
    the check. Hence: bind uWSGI's sockets where only nginx can reach them (loopback on
    nginx's host, or a unix socket), never expose UWSGI_HTTP_SOCKET, and use a shared
    secret (next tests) when the socket's reach cannot be controlled.
    """
    me = direct_http(stack, NGINX_ADDRESS, "GET", "/api/me", headers=FORGED_HEADERS)
    assert who(me) == MALLORY
    forged_peer = {"REMOTE_ADDR": NGINX_ADDRESS, "HTTP_X_FORWARDED_USER": "mallory"}
    status, identity = direct_uwsgi(stack.uwsgi.port, ATTACKER_ADDRESS, "/api/me", forged_peer)
    assert (status, identity["user"]) == (200, "mallory")
    assert_no_errors(stack.uwsgi.log)


# --- with a shared secret ------------------------------------------------------------------


def test_with_proxy_secret_nginx_still_passes_the_identity(secret_stack: Stack) -> None:
    assert who(through_nginx(secret_stack, "alice", "GET", "/api/me")) == ALICE
    assert through_nginx(secret_stack, None, "GET", "/api/me").status_code == 401


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        pytest.param(None, 401, id="no secret"),
        pytest.param("wrong-but-long-enough-secret", 401, id="wrong secret"),
        pytest.param("right", 200, id="the secret: whoever knows it is believed"),
    ],
)
def test_with_proxy_secret_the_trusted_address_alone_is_not_enough(
    secret_stack: Stack, secret: str | None, expected: int
) -> None:
    presented = secret_stack.proxy_secret if secret == "right" else secret
    assert presented is not None or secret is None
    headers = {**FORGED_HEADERS, **({SECRET_HEADER: presented} if presented else {})}
    me = direct_http(secret_stack, NGINX_ADDRESS, "GET", "/api/me", headers=headers)
    assert me.status_code == expected, me.text
    variables = {"REMOTE_ADDR": NGINX_ADDRESS, "HTTP_X_FORWARDED_USER": "mallory"}
    if presented:
        variables["HTTP_X_SHIBWSGI_PROXY_SECRET"] = presented
    status, _ = direct_uwsgi(secret_stack.uwsgi.port, ATTACKER_ADDRESS, "/api/me", variables)
    assert status == expected
    if expected == 200:
        assert who(me) == MALLORY
    assert_no_errors(secret_stack.uwsgi.log)


# --- the deployment guide ------------------------------------------------------------------


def documented_app_settings() -> dict[str, str]:
    """The SHIBWSGI_* lines of docs/deployment.md's "nginx + oauth2-proxy" section."""
    text = (REPO / "docs" / "deployment.md").read_text()
    section = text[text.index("## nginx + oauth2-proxy") :]
    section = section[: section.find("\n## ", 1)]
    # Read as the shell reads the env file the guide writes (quotes, comments).
    lines = re.findall(r"^\s*SHIBWSGI_[A-Z_]+=.*$", section, re.MULTILINE)
    settings = dict(
        word.split("=", 1) for line in lines for word in shlex.split(line, comments=True) if "=" in word
    )
    assert settings["SHIBWSGI_PROFILE"] == "oauth2-proxy", section
    return settings


def test_deployment_guide_settings_identify_the_user(tmp_path: Path) -> None:
    """The app configured exactly as the guide says, sent what nginx sends for alice."""
    settings = documented_app_settings()
    with running_uwsgi(
        tmp_path, None, UWSGI_PROCESSES="1", MOVIES_DB=str(tmp_path / "movies.sqlite3"), **settings
    ) as uwsgi:
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready")
        nginx_sends = {
            "REMOTE_ADDR": settings["SHIBWSGI_TRUSTED_PROXIES"],
            "HTTP_X_FORWARDED_USER": "alice",
            "HTTP_X_FORWARDED_EMAIL": "alice@example.org",
            "HTTP_X_FORWARDED_GROUPS": "movie-editors,staff",
            "HTTP_X_FORWARDED_PREFERRED_USERNAME": "Alice",
        }
        status, body = direct_uwsgi(uwsgi.port, "127.0.0.1", "/api/me", nginx_sends)
    assert status == 200, body
    assert {"user": body["user"], "attributes": body["attributes"]} == ALICE
