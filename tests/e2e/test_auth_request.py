"""nginx auth_request answered by shibwsgi: a static single-page front end and the API, one login.

nginx runs from the shipped apache/nginx-auth-request.conf, serving app/static/ and proxying
/api/ to uWSGI (apache/uwsgi.ini, the movie app with SHIBWSGI_AUTH_PATH); every request asks
shibwsgi's auth endpoint first. The identity is established at /login only, which nginx
protects with oauth2-proxy; the stand-in (stack.FakeOAuth2Proxy with its sign-in page) plays
oauth2-proxy and the provider: alice is an editor, bob a reader. The last tests drive
headless Chromium through the whole flow and save a screenshot in test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright
from stack import (
    OAUTH2_PROXY_COOKIE,
    REPO,
    TLS,
    Uwsgi,
    common_variables,
    https_client,
    running_fake_oauth2_proxy,
    running_nginx,
    running_uwsgi,
    self_signed_certificate,
    shared_directory,
    wait_for_log,
    watching,
)
from support import require_program

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.servers

ARTIFACTS = REPO / "test-artifacts"
AUTH_PATH = "/_auth"
SESSION_COOKIE = "__Host-shibwsgi"
MOVIE = {"title": "Heat", "director": "Michael Mann", "main_actor": "Al Pacino", "published": 1995}
#: What nginx answers when shibwsgi's auth endpoint refuses an /api/ request (403).
NGINX_403 = "access denied by the site's rules"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@dataclass(frozen=True)
class Site:
    url: str  # https://127.0.0.1:<port>
    root: Path  # nginx's directory: access.log, error.log
    uwsgi: Uwsgi
    database: Path
    tls: TLS

    def client(self) -> requests.Session:
        return https_client(self.tls)

    def get(self, client: requests.Session, path: str, **kwargs: Any) -> requests.Response:
        return client.get(self.url + path, allow_redirects=False, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("auth-request")
    database = folder / "movies.sqlite3"
    settings = {
        "UWSGI_PROCESSES": "2",
        "SHIBWSGI_PROFILE": "oauth2-proxy",
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
        "SHIBWSGI_SESSION": f"sqlite://{folder / 'sessions.sqlite3'}",
        "SHIBWSGI_SECRET_KEY": secrets.token_urlsafe(32),
        "SHIBWSGI_AUTH_PATH": AUTH_PATH,
        "MOVIES_DB": str(database),
    }
    with contextlib.ExitStack() as servers:
        tls = servers.enter_context(self_signed_certificate())
        oauth2_proxy = servers.enter_context(running_fake_oauth2_proxy(sign_in_page=True))
        uwsgi = servers.enter_context(running_uwsgi(folder, None, **settings))
        servers.enter_context(watching(uwsgi.log))
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2)
        root = servers.enter_context(shared_directory("shibwsgi-auth-request-"))
        # nginx's workers run as another user when started as root: a copy they can read.
        static = shutil.copytree(REPO / "app" / "static", root / "static")
        variables = {
            **common_variables(tls, uwsgi.socket),
            "OAUTH2_PROXY": oauth2_proxy,
            "STATIC_ROOT": str(static),
            "AUTH_PATH": AUTH_PATH,
            "PROXY_SECRET": "",
        }
        servers.enter_context(running_nginx(root, variables, "nginx-auth-request.conf"))
        yield Site(f"https://127.0.0.1:{variables['HTTPS_PORT']}", root, uwsgi, database, tls)


def log_in(site: Site, user: str) -> requests.Session:
    """A client signed in at the stand-in as ``user``, then at the app's /login."""
    client = site.client()
    client.cookies.set(OAUTH2_PROXY_COOKIE, user, domain="127.0.0.1", path="/")
    login = site.get(client, "/login?next=/")
    assert login.status_code == 302, login.text
    assert login.headers["Location"] == "/"
    assert SESSION_COOKIE in client.cookies
    return client


def grant(site: Site, *arguments: str) -> str:
    """``python -m app roles ...`` on the site's database, as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "app", "roles", *arguments],
        env={**os.environ, "MOVIES_DB": str(site.database)},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


# -- the contract, with a plain HTTP client ----------------------------------------------------


def test_anonymous_page_goes_to_the_login_and_api_gets_401(site: Site) -> None:
    client = site.client()
    page = site.get(client, "/")
    assert (page.status_code, page.headers["Location"]) == (302, "/login?next=/")
    api = site.get(client, "/api/me")
    assert api.status_code == 401
    assert api.json()["error"].startswith("authentication required")
    assert api.headers["Cache-Control"] == "no-store"
    login = site.get(client, "/login?next=/")
    assert login.status_code == 302
    assert login.headers["Location"].startswith("/oauth2/sign_in?rd=")  # the stand-in's sign-in page


def test_signed_in_reader_gets_the_page_and_the_api(site: Site) -> None:
    bob = log_in(site, "bob")
    del bob.cookies[OAUTH2_PROXY_COOKIE]  # from now on shibwsgi's session alone
    page = site.get(bob, "/")
    assert page.status_code == 200
    assert '<script src="app.js" defer></script>' in page.text
    assert site.get(bob, "/app.js").headers["Content-Type"] == "application/javascript"
    me = site.get(bob, "/api/me")
    assert me.status_code == 200, me.text
    assert (me.json()["user"], me.json()["attributes"]["name"]) == ("bob", ["Bob"])
    assert "Titanic" in [movie["title"] for movie in site.get(bob, "/api/movies").json()]
    wait_for_log(site.root / "access.log", r'user=bob \[[^]]+\] "GET /api/me ')


@pytest.mark.parametrize(
    ("user", "status"), [pytest.param("bob", 403, id="reader"), pytest.param("alice", 201, id="editor")]
)
def test_writes_pass_the_auth_check_with_their_method_and_body(site: Site, user: str, status: int) -> None:
    """The subrequest is a bodiless GET; the original POST still reaches the app whole."""
    client = log_in(site, user)
    response = client.post(site.url + "/api/movies", json=MOVIE, allow_redirects=False, timeout=30)
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["created_by"] == "alice"
        assert response.json()["title"] == "Heat"
    else:  # refused by the auth endpoint for the original POST: the app never saw it
        assert response.json()["error"] == NGINX_403


def test_auth_endpoint_is_not_reachable_from_outside(site: Site) -> None:
    alice = log_in(site, "alice")
    for path in (AUTH_PATH, "/%5Fauth", "/api/..%2F_auth"):
        response = alice.get(
            site.url + path,
            headers={"X-Original-URI": "/api/me", "X-Original-Method": "GET"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code in (400, 404), (path, response.status_code)
        assert "X-Auth-Request-User" not in response.headers


def test_absolute_form_request_target_is_judged_by_its_path(site: Site) -> None:
    """``GET https://host/api/me``: nginx's $request_uri is the path, which the endpoint takes."""
    session = log_in(site, "bob").cookies[SESSION_COOKIE]
    port = int(site.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(site.tls.cert))
    request = (
        f"GET {site.url}/api/me HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Cookie: {SESSION_COOKIE}={session}\r\nConnection: close\r\n\r\n"
    )
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(request.encode())
        response = b"".join(iter(lambda: connection.recv(65536), b""))
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    assert b'"user":"bob"' in response.replace(b" ", b"")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/me%0a", id="LF"),
        pytest.param("/api/me%0d%0a", id="CRLF"),
        pytest.param("/api/me%7f", id="DEL"),
        pytest.param("/api/movies%5c..%5cme", id="backslashes"),
        pytest.param("/api/%252e%252e/api/me", id="double encoding"),
        pytest.param("/api/%c0%ae%c0%ae/api/me", id="overlong UTF-8"),
        pytest.param("/%0a", id="the page, LF"),
    ],
)
def test_path_servers_read_differently_is_400_through_nginx_never_500(site: Site, path: str) -> None:
    bob = log_in(site, "bob")
    response = site.get(bob, path)
    assert response.status_code == 400, (response.status_code, response.text)
    assert "X-Auth-Request-User" not in response.headers


def test_forged_identity_and_original_request_headers_change_nothing(site: Site) -> None:
    forged = {
        "X-Forwarded-User": "alice",
        "X-Auth-Request-User": "alice",
        "X-Original-URI": "/index.html",
        "X-Original-Method": "GET",
        "Cookie": f"{SESSION_COOKIE}=forged",
    }
    client = site.client()
    assert site.get(client, "/api/me", headers=forged).status_code == 401
    assert site.get(client, "/", headers=forged).status_code == 302


def test_logout_ends_the_session_for_page_and_api(site: Site) -> None:
    alice = log_in(site, "alice")
    logout = site.get(alice, "/logout?next=/")
    assert logout.status_code == 302
    assert logout.headers["Location"] == "/oauth2/sign_out?rd=%2F"
    signed_out = site.get(alice, logout.headers["Location"])
    assert signed_out.headers["Location"] == "/"
    assert SESSION_COOKIE not in alice.cookies and OAUTH2_PROXY_COOKIE not in alice.cookies
    assert site.get(alice, "/api/me").status_code == 401
    assert site.get(alice, "/").headers["Location"] == "/login?next=/"


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        pytest.param("editor", "POST", "/api/movies", id="editor role writes"),
        pytest.param("admin", "GET", "/api/roles", id="admin role reads the roles"),
    ],
)
def test_role_granted_in_the_database_applies_at_the_next_login(
    site: Site, role: str, method: str, path: str
) -> None:
    """The lazy style: roles are resolved at login and kept with the session."""
    bob = log_in(site, "bob")
    before = bob.request(method, site.url + path, json=MOVIE, timeout=30)
    assert (before.status_code, before.json()["error"]) == (403, NGINX_403)
    assert grant(site, "grant", "bob", role) == f"granted {role} to bob\n"
    try:
        assert bob.request(method, site.url + path, json=MOVIE, timeout=30).status_code == 403
        again = log_in(site, "bob")
        assert site.get(again, "/api/me").json()["roles"] == [role]
        after = again.request(method, site.url + path, json=MOVIE, timeout=30)
        assert after.status_code in (200, 201), after.text
    finally:
        grant(site, "revoke", "bob", role)


# -- a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", "chromium")


@contextlib.contextmanager
def browser_page(chromium: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 800})
            yield context.new_page()
            context.close()
        finally:
            browser.close()


def at_the_login(page: Page, site: Site) -> None:
    """Wait until the page has been sent to the stand-in's sign-in page."""
    page.wait_for_url(re.compile(re.escape(site.url) + r"/oauth2/sign_in\?"))


def sign_in(page: Page, site: Site, user: str) -> None:
    """From wherever the page is sent to the login: press ``user``'s button at the stand-in."""
    at_the_login(page, site)
    page.get_by_role("button", name=f"Sign in as {user}").click()


def test_browser_reader_signs_in_sees_the_list_is_refused_a_write_and_is_sent_back_after_logout(
    site: Site, chromium: str
) -> None:
    with browser_page(chromium) as page:
        page.goto(site.url + "/")
        sign_in(page, site, "bob")  # anonymous: sent to the login
        page.wait_for_url(site.url + "/")
        expect(page.locator("#greeting")).to_have_text("Signed in as Bob")
        expect(page.locator("#user")).to_have_text("bob")
        expect(page.locator("#groups")).to_contain_text("film-club")
        expect(page.locator("#movies tbody")).to_contain_text("Titanic")  # fetched by the page's script
        # A seeded movie has no author: a dash, never a made-up name.
        expect(page.locator("#movies tbody tr", has_text="Titanic").locator("td").last).to_have_text("\u2014")

        page.fill("input[name=title]", "Alien")
        page.fill("input[name=published]", "1979")
        with page.expect_response(site.url + "/api/movies") as write:
            page.get_by_role("button", name="Add").click()
        assert write.value.status == 403
        expect(page.locator("#form-message")).to_contain_text("Not added: access denied")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "auth-request-reader.png"), full_page=True)

        # Log out in another tab; this page's next fetch gets 401 and goes to the login.
        other = page.context.new_page()
        other.goto(site.url + "/logout?next=/")
        at_the_login(other, site)  # both sessions are gone: the sign-in page again
        other.close()
        with page.expect_response(site.url + "/api/movies") as refresh:
            page.get_by_role("button", name="Refresh").click()
        assert refresh.value.status == 401
        at_the_login(page, site)


def test_browser_editor_adds_a_movie_from_the_page(site: Site, chromium: str) -> None:
    with browser_page(chromium) as page:
        page.goto(site.url + "/")
        sign_in(page, site, "alice")
        page.wait_for_url(site.url + "/")
        expect(page.locator("#greeting")).to_have_text("Signed in as Alice")
        page.fill("input[name=title]", "Zoë's <b>Film</b>")
        page.fill("input[name=director]", "山田")
        page.fill("input[name=published]", "2001")
        page.get_by_role("button", name="Add").click()
        expect(page.locator("#form-message")).to_have_text("Added.")
        row = page.locator("#movies tbody tr", has_text="Zoë's <b>Film</b>")  # text, not markup
        expect(row).to_contain_text("山田")
        expect(row).to_contain_text("alice")
        page.screenshot(path=str(ARTIFACTS / "auth-request-editor.png"), full_page=True)


CLIENT_FLOODS = [
    # Past the uwsgi packet's 65535 bytes nginx would answer 500 itself ("uwsgi request is too big").
    pytest.param({f"X-Big-{n}": "b" * 8000 for n in range(9)}, id="72 KB in nine headers"),
    pytest.param({f"X-{n}": "" for n in range(4500)}, id="4500 empty headers"),
]


@pytest.mark.parametrize("flood", CLIENT_FLOODS)
def test_signed_in_client_over_the_head_cap_gets_431_never_500(site: Site, flood: dict[str, str]) -> None:
    client = log_in(site, "alice")
    # A mark of this request alone: uWSGI may log the sign-in's own request after the client has it.
    mark = f"flood-{uuid.uuid4().hex}"
    answer = site.get(client, f"/api/movies?{mark}", headers=flood)
    assert answer.status_code in (400, 431), answer.text[:300]
    time.sleep(0.2)
    assert mark not in site.uwsgi.log.read_text(errors="replace"), "the request reached uWSGI"


def test_signed_in_client_with_ordinary_big_headers_is_served(site: Site) -> None:
    client = log_in(site, "alice")
    big = {"Authorization": "Negotiate YII" + "A" * 8000}
    client.cookies.set("other-app", "v" * 3000, domain="127.0.0.1", path="/")
    assert site.get(client, "/api/movies", headers=big).status_code == 200
