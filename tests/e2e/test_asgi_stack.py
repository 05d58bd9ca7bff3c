"""The ASGI shell behind real servers: uvicorn and hypercorn serving FastAPI (tests/e2e/asgi_site.py).

- nginx with ``auth_request`` to the oauth2-proxy stand-in (stack.FakeOAuth2Proxy, with its
  sign-in page) in front of each ASGI server, passing the identity as X-Forwarded-* headers
  with the proxy secret; websockets upgraded through nginx.
- A Pomerium-style ES256 signer (TestSigner) whose JWKS a loopback server publishes.
- Apache ``mod_proxy_http`` copying a front end's variables into headers with the proxy
  secret (docs/deployment.md, "Apache in front of an ASGI server"); Basic authentication
  stands in for mod_shib: it sets REMOTE_USER, the recipe copies it.
- Headless Chromium on the FastAPI page, through nginx; a screenshot in test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect, sync_playwright
from stack import (
    OAUTH2_PROXY_COOKIE,
    REPO,
    TLS,
    https_client,
    running_fake_oauth2_proxy,
    self_signed_certificate,
    serving,
    shared_directory,
)
from support import free_port, require_program, serving_jwks
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from shibwsgi.testing import TestSigner

pytestmark = pytest.mark.servers

HERE = Path(__file__).resolve().parent
ARTIFACTS = REPO / "test-artifacts"
SECRET = secrets.token_urlsafe(24)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SERVERS = ["uvicorn", "hypercorn"]
#: The identity headers nginx sets from oauth2-proxy's answer (a client's own copies are overwritten).
FORWARDED = {
    "X-Forwarded-User": "$sso_user",
    "X-Forwarded-Email": "$sso_email",
    "X-Forwarded-Groups": "$sso_groups",
    "X-Forwarded-Preferred-Username": "$sso_preferred_username",
    "X-Auth-Request-User": '""',
    "X-Auth-Request-Email": '""',
    "X-Auth-Request-Groups": '""',
}

NGINX = """
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 256; }
http {
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    underscores_in_headers off;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    %(servers)s
}
"""

NGINX_SERVER = """
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        auth_request /oauth2/auth;
        auth_request_set $sso_user $upstream_http_x_auth_request_user;
        auth_request_set $sso_email $upstream_http_x_auth_request_email;
        auth_request_set $sso_groups $upstream_http_x_auth_request_groups;
        auth_request_set $sso_preferred_username $upstream_http_x_auth_request_preferred_username;
        location / {
            error_page 401 = @login;
            proxy_pass http://127.0.0.1:%(app)d;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Shibwsgi-Proxy-Secret "%(secret)s";
            %(identity)s
        }
        location @login {
            auth_request off;
            return 302 /oauth2/start?rd=$request_uri;
        }
        location /oauth2/ {
            auth_request off;
            proxy_pass http://%(oauth2)s;
            proxy_set_header Host $host:$server_port;
        }
        location = /oauth2/auth {
            internal;
            auth_request off;
            proxy_pass http://%(oauth2)s;
            proxy_set_header Content-Length "";
            proxy_pass_request_body off;
        }
    }
"""


@dataclass(frozen=True)
class Site:
    url: str  # https://127.0.0.1:<nginx port>
    app: str  # http://127.0.0.1:<ASGI server port>, reached directly
    tls: TLS

    def get(self, path: str, user: str | None = None, **kwargs: Any) -> requests.Response:
        client = https_client(self.tls)
        if user is not None:
            client.cookies.set(OAUTH2_PROXY_COOKIE, user, domain="127.0.0.1", path="/")
        return client.get(self.url + path, allow_redirects=False, timeout=30, **kwargs)

    def websocket(self, path: str, user: str | None) -> str:
        """Open ``path`` through nginx as ``user``: the first message."""
        context = ssl.create_default_context(cafile=str(self.tls.cert))
        cookie = {"Cookie": f"{OAUTH2_PROXY_COOKIE}={user}"} if user else {}
        uri = self.url.replace("https://", "wss://") + path
        with connect(uri, ssl=context, additional_headers=cookie, open_timeout=15) as websocket:
            return str(websocket.recv(timeout=15))


def asgi_command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", "asgi_site:application", "--host", "127.0.0.1"),
            *("--port", str(port), "--no-proxy-headers", "--lifespan", "off", "--log-level", "warning"),
        ]
    return [sys.executable, "-m", "hypercorn", "asgi_site:application", "--bind", f"127.0.0.1:{port}"]


@contextlib.contextmanager
def running_asgi(server: str, root: Path, settings: Mapping[str, str]) -> Iterator[int]:
    """``server`` serving asgi_site.py with ``settings`` (SHIBWSGI_*); yields its port."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]),
        **settings,
    }
    folder = root / server
    folder.mkdir()
    with serving(asgi_command(server, port), folder, port, env):
        yield port


@pytest.fixture(scope="module")
def tls() -> Iterator[TLS]:
    with self_signed_certificate() as tls:
        yield tls


@pytest.fixture(scope="module")
def sites(tls: TLS) -> Iterator[dict[str, Site]]:
    """Each ASGI server behind its own nginx server block, one nginx."""
    settings = {
        "SHIBWSGI_PROFILE": "oauth2-proxy",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
        "SHIBWSGI_PROXY_SECRET": SECRET,
    }
    identity = "\n            ".join(f"proxy_set_header {name} {value};" for name, value in FORWARDED.items())
    with contextlib.ExitStack() as stack:
        oauth2 = stack.enter_context(running_fake_oauth2_proxy(sign_in_page=True))
        root = stack.enter_context(shared_directory("shibwsgi-asgi-stack-"))
        apps = {server: stack.enter_context(running_asgi(server, root, settings)) for server in SERVERS}
        ports = {server: free_port() for server in SERVERS}
        blocks = [
            NGINX_SERVER
            % {
                "port": ports[server],
                "cert": tls.cert,
                "key": tls.key,
                "app": apps[server],
                "secret": SECRET,
                "identity": identity,
                "oauth2": oauth2,
            }
            for server in SERVERS
        ]
        nginx_root = root / "nginx"
        nginx_root.mkdir()
        config = nginx_root / "nginx.conf"
        config.write_text(NGINX % {"servers": "".join(blocks)})
        nginx = require_program("nginx", "nginx")
        command = [nginx, "-p", f"{nginx_root}/", "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
        stack.enter_context(serving(command, nginx_root, ports[SERVERS[-1]]))
        yield {
            server: Site(f"https://127.0.0.1:{ports[server]}", f"http://127.0.0.1:{apps[server]}", tls)
            for server in SERVERS
        }


@pytest.mark.parametrize("server", SERVERS)
def test_signed_in_user_is_seen_through_nginx(sites: dict[str, Site], server: str) -> None:
    answer = sites[server].get("/me", "alice")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"user": "alice", "groups": ["movie-editors", "staff"], "roles": ["admin"]}


@pytest.mark.parametrize("server", SERVERS)
def test_role_refusal_is_the_rules_403_through_nginx(sites: dict[str, Site], server: str) -> None:
    answer = sites[server].get("/admin", "bob", headers={"Accept": "application/json"})
    assert (answer.status_code, answer.json()) == (
        403,
        {"error": "access denied: requires role 'admin'", "status": 403},
    )


@pytest.mark.parametrize("server", SERVERS)
def test_client_copies_of_identity_headers_through_nginx_are_overwritten(
    sites: dict[str, Site], server: str
) -> None:
    forged = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "admins", "X-Auth-Request-User": "alice"}
    answer = sites[server].get("/me", "bob", headers=forged)
    assert answer.json()["user"] == "bob"
    assert "admins" not in answer.json()["groups"]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Forwarded-User": "alice"}, id="identity header"),
        pytest.param({"X-Forwarded-User": "alice", "X-Shibwsgi-Proxy-Secret": "guess"}, id="wrong secret"),
        pytest.param({"X-Forwarded_User": "alice"}, id="underscore spelling"),
    ],
)
def test_forged_headers_straight_to_the_asgi_server_identify_nobody(
    sites: dict[str, Site], server: str, headers: dict[str, str]
) -> None:
    answer = requests.get(sites[server].app + "/me", headers=headers, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {"user": None})


@pytest.mark.parametrize("server", SERVERS)
def test_websocket_through_nginx_sees_the_user(sites: dict[str, Site], server: str) -> None:
    assert sites[server].websocket("/ws", "alice") == "hello alice"
    assert sites[server].websocket("/ws/admin", "alice") == "admin alice"


@pytest.mark.parametrize("server", SERVERS)
def test_refused_websocket_handshake_is_403_through_nginx(sites: dict[str, Site], server: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        sites[server].websocket("/ws/admin", "bob")
    assert refused.value.response.status_code == 403


# -- Pomerium: a signed assertion, its key set served on loopback --------------------------------


def test_pomerium_assertion_verified_through_the_asgi_shell(tmp_path: Path) -> None:
    route = "https://movies.example.org"
    signer = TestSigner("ES256", issuer=route, audience=route)
    with serving_jwks(lambda: signer.jwks) as jwks_url, shared_directory("shibwsgi-asgi-pomerium-") as root:
        settings = {
            "SHIBWSGI_PROFILE": "pomerium",
            "SHIBWSGI_JWKS_URL": jwks_url,
            "SHIBWSGI_ISSUER": route,
            "SHIBWSGI_AUDIENCE": route,
        }
        with running_asgi("uvicorn", root, settings) as port:
            url = f"http://127.0.0.1:{port}/me"
            token = signer.sign(signer.claims("alice", {"groups": ["movie-editors"]}))
            answer = requests.get(url, headers={"X-Pomerium-Jwt-Assertion": token}, timeout=30)
            assert answer.json() == {"user": "alice", "groups": ["movie-editors"], "roles": ["admin"]}
            forger = TestSigner("ES256", kid=signer.kid, issuer=route, audience=route)
            forged = forger.sign(forger.claims("alice"))
            refused = requests.get(url, headers={"X-Pomerium-Jwt-Assertion": forged}, timeout=30)
            assert refused.status_code in (401, 403), refused.text
            unsigned = requests.get(url, headers={"X-Pomerium-Claim-Email": "alice"}, timeout=30)
            assert unsigned.json() == {"user": None}


# -- Apache mod_proxy_http: a front end's variables as headers, with the proxy secret ------------

APACHE = """
ServerRoot "%(root)s"
ServerName 127.0.0.1
Listen 127.0.0.1:%(port)d
DefaultRuntimeDir .
PidFile httpd.pid
ErrorLog error.log
LogLevel warn
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
%(user)s
<Location />
    # Basic authentication stands in for mod_shib: it sets REMOTE_USER as the module does.
    AuthType Basic
    AuthName "front end"
    AuthUserFile "%(root)s/users"
    Require valid-user
    # The recipe of docs/deployment.md: unset the client's copies, set each from the module.
    RequestHeader unset Authorization
    RequestHeader unset eppn
    RequestHeader unset isMemberOf
    RequestHeader set isMemberOf "movie-editors;staff" "expr=%%{REMOTE_USER} == 'alice'"
    RequestHeader set isMemberOf "film-club;staff" "expr=%%{REMOTE_USER} == 'bob'"
    RequestHeader unset Remote-User
    RequestHeader set Remote-User "expr=%%{REMOTE_USER}" "expr=-n %%{REMOTE_USER}"
    RequestHeader set X-Shibwsgi-Proxy-Secret "%(secret)s"
</Location>
ProxyPass / http://127.0.0.1:%(app)d/
ProxyPassReverse / http://127.0.0.1:%(app)d/
"""
PASSWORDS = {"alice": secrets.token_urlsafe(12), "bob": secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def apache_site() -> Iterator[tuple[str, str]]:
    """Apache in front of uvicorn (profile shibboleth, channel headers): its URL and the app's."""
    apache2 = require_program("apache2", "apache2")
    settings = {
        "SHIBWSGI_PROFILE": "shibboleth",
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
        "SHIBWSGI_PROXY_SECRET": SECRET,
        "SITE_GROUPS_SOURCE": "isMemberOf",
    }
    with shared_directory("shibwsgi-asgi-apache-") as root, running_asgi("uvicorn", root, settings) as app:
        (root / "users").write_text(
            "".join(f"{user}:{{SHA}}{_sha(password)}\n" for user, password in PASSWORDS.items())
        )
        port = free_port()
        user = "User www-data\nGroup www-data" if os.geteuid() == 0 else ""
        config = root / "httpd.conf"
        config.write_text(APACHE % {"root": root, "port": port, "app": app, "secret": SECRET, "user": user})
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        with serving([apache2, "-d", str(root), "-f", str(config), "-DFOREGROUND"], root, port, env):
            yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{app}"


def _sha(password: str) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def test_apache_passes_the_front_end_identity_as_headers_with_the_secret(
    apache_site: tuple[str, str],
) -> None:
    url, _ = apache_site
    answer = requests.get(url + "/me", auth=("alice", PASSWORDS["alice"]), timeout=30)
    assert answer.json() == {"user": "alice", "groups": ["movie-editors", "staff"], "roles": ["admin"]}


def test_apache_overwrites_the_client_s_copies(apache_site: tuple[str, str]) -> None:
    url, _ = apache_site
    forged = {"Remote-User": "alice", "eppn": "alice", "isMemberOf": "admins"}
    answer = requests.get(url + "/me", auth=("bob", PASSWORDS["bob"]), headers=forged, timeout=30)
    assert answer.json() == {"user": "bob", "groups": ["film-club", "staff"], "roles": []}


def test_apache_without_a_login_lets_nothing_through(apache_site: tuple[str, str]) -> None:
    url, _ = apache_site
    assert requests.get(url + "/me", headers={"Remote-User": "alice"}, timeout=30).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Remote-User": "alice", "isMemberOf": "movie-editors"}, id="variables as headers"),
        pytest.param({"Remote-User": "alice", "X-Shibwsgi-Proxy-Secret": "guess"}, id="guessed secret"),
    ],
)
def test_headers_straight_to_the_asgi_server_behind_apache_identify_nobody(
    apache_site: tuple[str, str], headers: dict[str, str]
) -> None:
    _, app = apache_site
    assert requests.get(app + "/me", headers=headers, timeout=30).json() == {"user": None}


# -- a real browser ------------------------------------------------------------------------------


def test_browser_signs_in_and_the_fastapi_page_and_websocket_see_the_user(sites: dict[str, Site]) -> None:
    chromium = require_program("chromium", "chromium")
    site = sites["uvicorn"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 900, "height": 500})
            page = context.new_page()
            page.goto(site.url + "/page")
            page.get_by_role("button", name="Sign in as alice").click()  # the stand-in's sign-in page
            page.wait_for_url(site.url + "/page")
            expect(page.locator("#user")).to_have_text("alice")
            expect(page.locator("#groups")).to_have_text("movie-editors, staff")
            expect(page.locator("#socket")).to_have_text("hello alice")  # the websocket, through nginx
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "asgi-fastapi-page.png"), full_page=True)
            context.close()
        finally:
            browser.close()
