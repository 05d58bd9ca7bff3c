"""OpenID Connect end to end: a real provider, Apache + mod_auth_openidc from the shipped
apache/openidc.conf, uWSGI from the shipped apache/uwsgi.ini serving the movie app.

Everything runs on 127.0.0.1 and stops when the module ends: oidc-provider-mock (client
registration and nonces required), and three sites, each an Apache and a uWSGI with 4
workers registered at the provider with its own redirect URI: whole-site protection, lazy
protection with an SQLite session store, lazy with a Redis one (the variable dump runs a
fourth, one test long). The app is configured as docs/deployment.md says for mod_auth_openidc::

    SHIBWSGI_PROFILE=openidc  SHIBWSGI_ENCODING=base64url
    SHIBWSGI_ATTRIBUTES="name=name email=email groups=groups:multi"
    SHIBWSGI_USER=sub

The user is the ``sub`` claim, the profile's default: the one identifier OpenID Connect
guarantees stable and unique per provider (``email`` and ``preferred_username`` can change
or be reused). mod_auth_openidc's own ``REMOTE_USER`` is issuer-qualified (``sub@issuer``),
which the app does not read.

The main user's claims carry what breaks weaker integrations: a name outside latin-1 and a
group with a comma in it, which 2.4.12 joins unescaped into ``OIDC_CLAIM_groups``
(``movie-editors,cn=a,b,staff``); only the JSON documents keep it one value.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin

import pytest
import redis
import requests
from stack import (
    TLS,
    Uwsgi,
    apache_variables,
    running_apache,
    running_uwsgi,
    self_signed_certificate,
    session_settings,
    shared_directory,
    wait_for_log,
    watching,
)

from .oidc_provider import APP_SETTINGS as OIDC_APP_SETTINGS
from .oidc_provider import REDIRECT_PATH, RITA, ZOE, Provider, running_provider

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

pytestmark = pytest.mark.servers

MOVIE = {"title": "Spirited Away", "director": "Hayao Miyazaki", "main_actor": "Rumi Hiiragi"}
APP_SETTINGS = {"UWSGI_PROCESSES": "4", **OIDC_APP_SETTINGS}
#: A browser's Accept: mod_auth_openidc sends clients that do not take HTML a 401, not to login.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"
API = {"Accept": "application/json"}
MODULE_COOKIE = "mod_auth_openidc_session"
APP_COOKIE = "__Host-shibwsgi"  # SHIBWSGI_COOKIE_SECURE defaults to true
REDIS_PREFIX = "shibwsgi:session:"
LOAD_CLIENTS = 8
LOAD_WRITES = 500


@dataclass(frozen=True)
class Site:
    """The movie app behind Apache + mod_auth_openidc."""

    url: str
    root: Path
    uwsgi: Uwsgi
    tls: TLS
    provider: Provider

    def browser(self) -> requests.Session:
        """A fresh client with its own cookies, trusting the test certificate."""
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE & co would win over verify
        session.verify = str(self.tls.cert)
        session.headers["Accept"] = BROWSER_ACCEPT
        return session

    def get(self, browser: requests.Session, path: str, **kwargs: Any) -> requests.Response:
        return browser.get(self.url + path, allow_redirects=False, timeout=30, **kwargs)

    def follow(self, browser: requests.Session, response: requests.Response) -> requests.Response:
        """Follow redirects that stay on this site (a login or logout step elsewhere fails)."""
        for _ in range(10):
            if not response.is_redirect:
                return response
            location = urljoin(response.url, response.headers["Location"])
            assert location.startswith(f"{self.url}/"), f"left the site for {location}"
            response = browser.get(location, allow_redirects=False, timeout=30)
        raise AssertionError(f"redirect loop at {response.url}")

    def log_in(self, browser: requests.Session, path: str, sub: str) -> requests.Response:
        """Open ``path``, get sent to the provider, log in as ``sub``, follow the way back."""
        start = self.get(browser, path)
        assert start.status_code == 302, f"{start.status_code} {start.text[:500]}"
        authorize = start.headers["Location"]
        assert self.provider.is_login(authorize), authorize
        assert f"redirect_uri={quote(self.url + REDIRECT_PATH, safe='')}" in authorize
        callback = self.provider.log_in(browser, authorize, sub)
        return self.follow(browser, browser.get(callback, allow_redirects=False, timeout=30))

    def log_out(self, browser: requests.Session, *, module_session: bool) -> requests.Response:
        """The app's /logout, then mod_auth_openidc's, then the provider's; back on the site.

        Without a ``module_session`` (lazy protection, the module's session expired or its
        cookie gone) the module sends the browser straight back.
        """
        app = self.get(browser, "/logout")
        assert app.status_code == 302, app.text
        home = f"{self.url}/"
        assert app.headers["Location"] == f"{REDIRECT_PATH}?logout={quote(home, safe='')}"
        module = browser.get(urljoin(self.url, app.headers["Location"]), allow_redirects=False, timeout=30)
        assert module.status_code == 302, module.text
        if module_session:
            # The provider advertises end_session_endpoint: the module ends that session too.
            assert module.headers["Location"] != home
            assert self.provider.end_session(browser, module.headers["Location"]) == home
        else:
            assert module.headers["Location"] == home
        return browser.get(home, allow_redirects=False, timeout=30)

    def me(self, browser: requests.Session, **kwargs: Any) -> dict[str, Any]:
        answer = self.get(browser, "/api/me", **kwargs)
        assert answer.status_code == 200, f"{answer.status_code} {answer.text[:500]}"
        document: dict[str, Any] = answer.json()
        return document


@pytest.fixture(scope="module")
def tls() -> Iterator[TLS]:
    with self_signed_certificate() as certificate:
        yield certificate


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with (
        running_provider(tmp_path_factory.mktemp("oidc-provider"), [ZOE, RITA]) as running,
        watching(running.log),
    ):
        yield running


@contextlib.contextmanager
def movie_site(
    folder: Path, tls: TLS, provider: Provider, *switches: str, app_source: str | None = None, **settings: str
) -> Iterator[Site]:
    """uWSGI (4 workers, its SQLite file in ``folder``) behind Apache from openidc.conf.

    uWSGI serves the movie app, or the stub ``app_source`` (see ``running_uwsgi``).
    """
    app_settings = {**APP_SETTINGS, "MOVIES_DB": str(folder / "movies.sqlite3"), **settings}
    with (
        shared_directory("shibwsgi-e2e-oidc-") as root,
        running_uwsgi(folder, app_source, **app_settings) as uwsgi,
    ):
        # lazy-apps: each worker imports the app after the fork; until then it takes no request.
        workers = int(app_settings["UWSGI_PROCESSES"])
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready", count=workers, timeout=60)
        variables = apache_variables("openidc", root, tls, uwsgi.socket)
        url = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
        variables.update(provider.client_variables(url))
        with (
            watching(uwsgi.log),
            running_apache("openidc", root, variables, *switches),
            watching(root / "error.log", root / "access.log"),
        ):
            yield Site(url, root, uwsgi, tls, provider)


@pytest.fixture(scope="module")
def whole_site(tmp_path_factory: pytest.TempPathFactory, tls: TLS, provider: Provider) -> Iterator[Site]:
    with movie_site(tmp_path_factory.mktemp("whole-site"), tls, provider) as site:
        yield site


@pytest.fixture(scope="module")
def lazy_site(tmp_path_factory: pytest.TempPathFactory, tls: TLS, provider: Provider) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("lazy")
    with movie_site(
        folder,
        tls,
        provider,
        "-DPROTECTION_LAZY",
        **session_settings(folder),
    ) as site:
        yield site


@pytest.fixture(scope="module")
def redis_sessions(redis_url: str) -> str:
    """The test redis-server, in a database of its own: the keys seen are this module's."""
    return redis_url.rsplit("/", 1)[0] + "/7"


@pytest.fixture(scope="module")
def redis_site(
    tmp_path_factory: pytest.TempPathFactory, tls: TLS, provider: Provider, redis_sessions: str
) -> Iterator[Site]:
    with movie_site(
        tmp_path_factory.mktemp("redis"),
        tls,
        provider,
        "-DPROTECTION_LAZY",
        SHIBWSGI_SESSION=redis_sessions,
        SHIBWSGI_SECRET_KEY=secrets.token_urlsafe(32),
    ) as site:
        yield site


@pytest.fixture(scope="module")
def reader(whole_site: Site) -> Iterator[requests.Session]:
    """Rita, logged in for real on the whole-site variant; she may read, not write."""
    with whole_site.browser() as browser:
        assert whole_site.log_in(browser, "/api/me", "rita").json()["user"] == "rita"
        yield browser


def assert_is_zoe(identity: Mapping[str, Any], provider: Provider) -> None:
    assert identity["user"] == "zoe"
    assert identity["profile"] == "openidc"
    assert identity["provider"] == provider.url  # the iss claim
    # UTF-8 intact through base64url; the comma group is one value (the JSON path), not
    # "cn=a" and "b" as a split of OIDC_CLAIM_groups would give.
    assert identity["attributes"] == {
        "name": ["Zoë Łukasz-Müller 山田"],
        "email": ["zoe@example.org"],
        "groups": ["movie-editors", "cn=a,b", "staff"],
    }
    assert identity["dropped"] == []
    # OIDC_access_token_expires arrives base64url-encoded too; decoded, it is about an hour away.
    now = datetime.now(UTC)
    expires_at = datetime.fromisoformat(identity["expires_at"])
    assert now < expires_at <= now + timedelta(hours=1, minutes=5)
    assert datetime.fromisoformat(identity["authenticated_at"]) <= now + timedelta(minutes=5)


# --- scenario 3: whole-site protection ----------------------------------------------------


def test_whole_site_login_crud_logout_and_login_again(whole_site: Site, provider: Provider) -> None:
    site = whole_site
    with site.browser() as browser:
        landed = site.log_in(browser, "/api/me", "zoe")
        assert landed.url == f"{site.url}/api/me"
        assert landed.status_code == 200, landed.text
        assert_is_zoe(landed.json(), provider)

        created = browser.post(f"{site.url}/api/movies", json={**MOVIE, "published": 2001}, timeout=30)
        assert created.status_code == 201, created.text
        movie = created.json()
        assert movie["created_by"] == "zoe"
        path = f"/api/movies/{movie['id']}"
        changed = browser.put(f"{site.url}{path}", json={"published": "2002"}, timeout=30)
        assert changed.status_code == 200, changed.text
        assert changed.json()["published"] == 2002
        assert changed.json()["updated_by"] == "zoe"
        deleted = browser.delete(f"{site.url}{path}", timeout=30)
        assert deleted.status_code == 204, deleted.text
        assert site.get(browser, path).status_code == 404

        old_cookie = browser.cookies[MODULE_COOKIE]
        with site.browser() as replay:  # the cookie alone is the session, from any client
            replay.cookies.set(MODULE_COOKIE, old_cookie, domain="127.0.0.1", path="/")
            assert site.me(replay, headers=API)["user"] == "zoe"
        after = site.log_out(browser, module_session=True)
        # Back on the home page: whole-site protection sends the browser to log in again.
        assert after.status_code == 302
        assert provider.is_login(after.headers["Location"])
        assert site.get(browser, "/api/me", headers=API).status_code == 401
        assert provider.is_login(site.get(browser, "/api/me").headers["Location"])

    # The old module session is gone at the server, not just its cookie from the browser.
    with site.browser() as replay:
        replay.cookies.set(MODULE_COOKIE, old_cookie, domain="127.0.0.1", path="/")
        assert site.get(replay, "/api/me", headers=API).status_code == 401

    with site.browser() as browser:
        again = site.log_in(browser, "/api/movies", "zoe")
        assert again.status_code == 200, again.text
        assert browser.cookies[MODULE_COOKIE] != old_cookie
        assert_is_zoe(site.me(browser), provider)


def test_whole_site_reader_may_read_but_not_write(whole_site: Site, reader: requests.Session) -> None:
    site = whole_site
    identity = site.me(reader)
    assert identity["user"] == "rita"
    assert identity["attributes"]["groups"] == ["staff"]
    movies = site.get(reader, "/api/movies")
    assert movies.status_code == 200
    some_id = movies.json()[0]["id"]
    assert reader.post(f"{site.url}/api/movies", json=MOVIE, timeout=30).status_code == 403
    assert reader.put(f"{site.url}/api/movies/{some_id}", json={"title": "x"}, timeout=30).status_code == 403
    assert reader.delete(f"{site.url}/api/movies/{some_id}", timeout=30).status_code == 403


def test_whole_site_anonymous_api_client_gets_401(whole_site: Site) -> None:
    with whole_site.browser() as browser:
        answer = whole_site.get(browser, "/api/me", headers=API)
    assert answer.status_code == 401
    assert "zoe" not in answer.text


# --- what the module sends ------------------------------------------------------------------

#: A stub app/wsgi.py answering with the text values of its environ.
ECHO_APP = """\
import json


def application(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def base64url(value: str) -> str:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")


def test_module_sends_every_claim_base64url_and_joins_lists_unescaped(
    tmp_path: Path, tls: TLS, provider: Provider
) -> None:
    """mod_auth_openidc's variables as uWSGI receives them: why the app reads the JSON documents."""
    with (
        movie_site(tmp_path, tls, provider, app_source=ECHO_APP, UWSGI_PROCESSES="1") as site,
        site.browser() as browser,
    ):
        environ = site.log_in(browser, "/api/me", "zoe").json()
        # Lookalikes of the module's variables, the dash ones not in openidc.conf's unset list.
        forged = {"OIDC-CLAIM-aud": "evil", "OIDC_CLAIM_aud": "evil", "OIDC-access-token-expires": "1"}
        again = site.me(browser, headers=forged)
    # Plain: the module's own variables.
    assert environ["REMOTE_USER"] == f"zoe@{provider.url}"  # OIDCRemoteUserClaim default sub@
    assert environ["AUTH_TYPE"] == "openid-connect"
    # base64url: every claim, the JSON documents and the access token's expiry too.
    assert base64url(environ["OIDC_CLAIM_sub"]) == "zoe"
    assert base64url(environ["OIDC_CLAIM_name"]) == ZOE["name"]
    assert base64url(environ["OIDC_CLAIM_groups"]) == "movie-editors,cn=a,b,staff"  # ambiguous
    for document in ("OIDC_id_token_payload", "OIDC_userinfo_json"):
        claims = json.loads(base64url(environ[document]))
        assert claims["name"] == ZOE["name"]
        assert claims["groups"] == ZOE["groups"]
    assert int(base64url(environ["OIDC_access_token_expires"])) > time.time()
    assert environ["OIDC_access_token"]
    # The module scrubs its lookalikes (dash or underscore): none reaches the app, no value changes.
    assert not [key for key in {**environ, **again} if key.startswith("HTTP_OIDC")]
    assert again["OIDC_CLAIM_aud"] == environ["OIDC_CLAIM_aud"]
    assert again["OIDC_access_token_expires"] == environ["OIDC_access_token_expires"]


# --- scenario 3: lazy protection ------------------------------------------------------------


def test_lazy_login_keeps_the_identity_in_the_app_session(lazy_site: Site, provider: Provider) -> None:
    site = lazy_site
    with site.browser() as browser:
        home = site.get(browser, "/")
        assert home.status_code == 200, home.text
        assert site.get(browser, "/api/me", headers=API).status_code == 401

        landed = site.log_in(browser, "/login?next=/api/movies", "zoe")
        assert landed.url == f"{site.url}/api/movies"
        assert landed.status_code == 200, landed.text
        assert {movie["title"] for movie in landed.json()} >= {"Titanic"}
        assert APP_COOKIE in browser.cookies
        app_cookie = browser.cookies[APP_COOKIE]

    # Only the app's cookie, not mod_auth_openidc's: anonymous to the module, the app
    # session alone carries the identity, name and groups intact.
    with site.browser() as app_only:
        app_only.cookies.set(APP_COOKIE, app_cookie, domain="127.0.0.1", path="/")
        assert_is_zoe(site.me(app_only), provider)
        created = app_only.post(f"{site.url}/api/movies", json=MOVIE, timeout=30)
        assert created.status_code == 201, created.text
        assert created.json()["created_by"] == "zoe"

        # Logging out with the app session only (as when the module's own session has
        # timed out, after 300 s idle by default) ends it, and logging in again works.
        assert site.log_out(app_only, module_session=False).status_code == 200
        assert site.get(app_only, "/api/me", headers=API).status_code == 401
        assert site.log_in(app_only, "/login?next=/api/me", "zoe").json()["user"] == "zoe"


# --- scenario 3: spoofed identity headers -----------------------------------------------------

SPOOFED = [
    pytest.param({"OIDC-CLAIM-sub": "zoe"}, id="OIDC-CLAIM-sub"),
    pytest.param({"OIDC_CLAIM_sub": "zoe"}, id="OIDC_CLAIM_sub"),
    pytest.param({"Remote-User": "zoe"}, id="Remote-User"),
    pytest.param({"X-Remote-User": "zoe"}, id="X-Remote-User"),
    pytest.param({"eppn": "zoe"}, id="eppn"),
    pytest.param({"X-Forwarded-User": "zoe"}, id="X-Forwarded-User"),
    pytest.param({"OIDC-CLAIM-groups": "movie-editors"}, id="OIDC-CLAIM-groups"),
    pytest.param({"OIDC_CLAIM_groups": "movie-editors"}, id="OIDC_CLAIM_groups"),
]


@pytest.mark.parametrize("headers", SPOOFED)
def test_client_header_cannot_change_a_real_oidc_identity(
    whole_site: Site, reader: requests.Session, headers: dict[str, str]
) -> None:
    identity = whole_site.me(reader, headers=headers)
    assert identity["user"] == "rita"
    assert identity["attributes"]["groups"] == ["staff"]
    forged = reader.post(f"{whole_site.url}/api/movies", json=MOVIE, headers=headers, timeout=30)
    assert forged.status_code == 403, forged.text


@pytest.mark.parametrize("headers", SPOOFED)
def test_client_header_never_authenticates_an_anonymous_request(
    whole_site: Site, lazy_site: Site, headers: dict[str, str]
) -> None:
    with whole_site.browser() as browser:
        # Whole site: the module stops it before the app (401 for an API client).
        assert whole_site.get(browser, "/api/me", headers={**API, **headers}).status_code == 401
    with lazy_site.browser() as browser:
        # Lazy: the request reaches the app anonymous, and stays anonymous.
        assert lazy_site.get(browser, "/api/me", headers={**API, **headers}).status_code == 401
        forged = browser.post(
            f"{lazy_site.url}/api/movies", json=MOVIE, headers={**API, **headers}, timeout=30
        )
        assert forged.status_code == 401, forged.text


# --- scenario 7: load and integrity -------------------------------------------------------------


def test_concurrent_writers_lose_nothing(whole_site: Site, provider: Provider) -> None:
    site = whole_site
    users = [f"loader-{n}" for n in range(LOAD_CLIENTS)]
    for user in users:
        provider.set_user(
            {
                "sub": user,
                "name": f"Loader {user[-1]}",
                "email": f"{user}@example.org",
                "groups": ["movie-editors"],
            }
        )
    shares = [LOAD_WRITES // LOAD_CLIENTS + (n < LOAD_WRITES % LOAD_CLIENTS) for n in range(LOAD_CLIENTS)]
    ready = threading.Barrier(LOAD_CLIENTS + 1)

    def client(user: str, share: int) -> list[tuple[int, str, Any]]:
        with site.browser() as browser:
            try:
                assert site.log_in(browser, "/api/me", user).json()["user"] == user
            finally:
                ready.wait(timeout=120)
            results = []
            for k in range(share):
                answer = browser.post(f"{site.url}/api/movies", json={"title": f"{user} #{k}"}, timeout=60)
                results.append(
                    (answer.status_code, f"{user} #{k}", answer.json() if answer.ok else answer.text)
                )
            return results

    with concurrent.futures.ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        futures = [pool.submit(client, user, share) for user, share in zip(users, shares, strict=True)]
        ready.wait(timeout=120)  # every client logged in: time the writes only
        started = time.monotonic()
        results = [result for future in futures for result in future.result()]
        elapsed = time.monotonic() - started
    print(
        f"\n{LOAD_WRITES} writes by {LOAD_CLIENTS} clients through Apache + uWSGI (4 workers): {elapsed:.2f} s"
    )

    errors = [(status, title, body) for status, title, body in results if status != 201]
    assert not errors, errors[:5]
    assert len(results) == LOAD_WRITES
    ids = [body["id"] for _, _, body in results]
    assert len(set(ids)) == LOAD_WRITES
    with site.browser() as browser:
        site.log_in(browser, "/api/me", "rita")
        stored = site.get(browser, "/api/movies").json()
    rows = {movie["id"]: movie for movie in stored if movie["created_by"] in users}
    assert sorted(rows) == sorted(ids)
    for _, title, body in results:
        row = rows[body["id"]]
        assert row["title"] == title
        assert row["created_by"] == title.split(" #")[0]


# --- scenario R: Redis session store ---------------------------------------------------------------


def test_redis_session_serves_every_worker_and_logout_deletes_it(
    redis_site: Site, redis_sessions: str
) -> None:
    site = redis_site
    with redis.Redis.from_url(redis_sessions) as store:
        assert store.keys(f"{REDIS_PREFIX}*") == []
        with site.browser() as browser:
            landed = site.log_in(browser, "/login?next=/api/me", "zoe")
            assert landed.status_code == 200, landed.text
            app_cookie = browser.cookies[APP_COOKIE]
            (key,) = store.keys(f"{REDIS_PREFIX}*")
            session_id = key.decode().removeprefix(REDIS_PREFIX)
            assert app_cookie and app_cookie.startswith(f"{session_id}.")  # the signed id
            assert 0 < store.ttl(key) <= 3600

            # 20 requests with only the app cookie, sent at once: more than the 4 workers'
            # 8 threads can take together, so they spread over the workers (checked below).
            together = threading.Barrier(20)

            def request(n: int) -> tuple[int, str | None]:
                with site.browser() as app_only:
                    app_only.cookies.set(APP_COOKIE, app_cookie, domain="127.0.0.1", path="/")
                    together.wait(timeout=30)
                    answer = site.get(app_only, f"/api/me?probe={n}", headers=API)
                    return answer.status_code, answer.json().get("user")

            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                answers = list(pool.map(request, range(20)))
            assert answers == [(200, "zoe")] * 20
            wait_for_log(site.uwsgi.log, r"GET /api/me\?probe=", count=20)
            log = site.uwsgi.log.read_text(errors="replace")
            workers = set(re.findall(r"\[pid: (\d+)\|[^\]]*\] [^\n]* GET /api/me\?probe=", log))
            print(f"\n20 requests on the Redis session served by {len(workers)} uWSGI workers")
            assert len(workers) > 1, "every request went to one worker: nothing shows the session is shared"

            site.log_out(browser, module_session=True)
            assert store.keys(f"{REDIS_PREFIX}*") == []

        with site.browser() as app_only:
            app_only.cookies.set(APP_COOKIE, app_cookie, domain="127.0.0.1", path="/")
            assert site.get(app_only, "/api/me", headers=API).status_code == 401
