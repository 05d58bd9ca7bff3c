"""Two app nodes behind Apache's mod_proxy_balancer, sessions in one redis-server.

Started from the shipped files: apache/openidc.conf with ``-DPROTECTION_LAZY
-DUWSGI_BALANCER`` (lazy style: the app keeps the identity in its Redis session), two uWSGI
instances from apache/uwsgi.ini (``UWSGI_SOCKET`` and ``UWSGI_SOCKET_2``, 2 workers each),
real logins at oidc-provider-mock. The balancer has no stickiness, so consecutive requests
alternate between the nodes; which node served a request is read from the nodes' own
request logs (each request carries a unique marker in its query string).

After a login the clients send only the app's cookie: the identity then comes from the
shared session store alone, which is what the nodes must agree on. The Redis fault runs
here too: redis-server stopped mid-run, then started again on the same port.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import re
import random
import secrets
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import requests
from stack import (
    Redis,
    Uwsgi,
    apache_variables,
    running_apache,
    running_redis,
    running_uwsgi,
    self_signed_certificate,
    shared_directory,
    stop,
    wait_for_log,
    watching,
)

from .oidc_provider import Provider, running_provider
from .test_oidc import API, APP_COOKIE, APP_SETTINGS, REDIRECT_PATH, Site

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.servers

CLIENTS = 8
REQUESTS_PER_CLIENT = 500
USERS = [
    {"sub": f"node-user-{n}", "name": f"Node User {n}", "email": f"u{n}@example.org", "groups": ["movie-editors"]}
    for n in range(CLIENTS)
]
_markers = itertools.count()


@dataclass(frozen=True)
class Cluster:
    site: Site  # site.uwsgi is node A
    nodes: tuple[Uwsgi, Uwsgi]
    redis: Redis
    folder: Path
    later: contextlib.ExitStack  # servers a test restarts, stopped with the cluster

    def served_by(self, marker: str) -> int:
        """Which node (0 or 1) logged the request carrying ``marker``."""
        pattern = rf"[?&]n={marker}[& ]"
        for _ in range(100):
            found = [n for n, node in enumerate(self.nodes) if _logged(node, pattern)]
            if found:
                (node,) = found
                return node
            time.sleep(0.05)
        raise AssertionError(f"no node logged the request {marker}")

    def app_client(self, cookie: str) -> requests.Session:
        """A client holding only the app's session cookie."""
        client = self.site.browser()
        client.cookies.set(APP_COOKIE, cookie, domain="127.0.0.1", path="/")
        return client

    def log_in(self, sub: str) -> str:
        """Log ``sub`` in for real; return the app's session cookie."""
        with self.site.browser() as browser:
            landed = self.site.log_in(browser, "/login?next=/api/me", sub)
            assert landed.status_code == 200, landed.text
            assert landed.json()["user"] == sub
            return str(browser.cookies[APP_COOKIE])


def _logged(node: Uwsgi, pattern: str) -> bool:
    return re.search(pattern, node.log.read_text(errors="replace")) is not None


def marker() -> str:
    return f"{next(_markers)}x{secrets.token_hex(3)}"


@contextlib.contextmanager
def running_cluster(
    folder: Path, provider: Provider, redis: Redis, later: contextlib.ExitStack
) -> Iterator[Cluster]:
    settings = {
        **APP_SETTINGS,
        "UWSGI_PROCESSES": "2",
        "MOVIES_DB": str(folder / "movies.sqlite3"),
        "SHIBWSGI_SESSION": redis.url,
        "SHIBWSGI_SECRET_KEY": secrets.token_urlsafe(32),
    }
    with (
        shared_directory("shibwsgi-nodes-") as root,
        shared_directory("shibwsgi-node-a-") as folder_a,
        shared_directory("shibwsgi-node-b-") as folder_b,
        running_uwsgi(folder_a, None, **settings) as node_a,
        running_uwsgi(folder_b, None, **settings) as node_b,
        self_signed_certificate() as tls,
    ):
        for node in (node_a, node_b):
            wait_for_log(node.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2, timeout=60)
        variables = apache_variables("openidc", root, tls, node_a.socket)
        variables["UWSGI_SOCKET_2"] = node_b.socket
        url = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
        client = provider.register(url + REDIRECT_PATH)
        variables["OIDC_PROVIDER_METADATA_URL"] = provider.metadata_url
        variables["OIDC_CLIENT_ID"] = client.client_id
        variables["OIDC_CLIENT_SECRET"] = client.client_secret
        with (
            watching(node_a.log, node_b.log, redis.log),
            running_apache("openidc", root, variables, "-DPROTECTION_LAZY", "-DUWSGI_BALANCER"),
        ):
            yield Cluster(Site(url, root, node_a, tls, provider), (node_a, node_b), redis, folder, later)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("nodes")
    with (
        contextlib.ExitStack() as later,
        running_provider(folder, USERS) as provider,
        running_redis(folder, persist=True) as redis,
        running_cluster(folder, provider, redis, later) as running,
    ):
        yield running


def on_node(cluster: Cluster, node: int, request: Callable[[str], requests.Response]) -> requests.Response:
    """Send ``request`` (given a marker) until node ``node`` serves it; idempotent requests only."""
    for _ in range(8):
        mark = marker()
        answer = request(mark)
        if cluster.served_by(mark) == node:
            return answer
    raise AssertionError(f"node {node} never served the request")


def test_login_on_node_a_served_by_node_b_logout_on_b_ends_it_on_a(cluster: Cluster) -> None:
    site, user = cluster.site, USERS[0]["sub"]
    for _ in range(5):  # until the balancer's turns fall as the scenario needs (checked, not assumed)
        mark = marker()
        with site.browser() as browser:
            landed = site.log_in(browser, f"/login?next=/api/me&n={mark}", user)
            assert landed.json()["user"] == user
            cookie = browser.cookies[APP_COOKIE]
        node_a = cluster.served_by(mark)  # the node that created the session
        node_b = 1 - node_a
        with cluster.app_client(cookie) as client:
            on_b = on_node(cluster, node_b, lambda m: site.get(client, f"/api/me?n={m}", headers=API))
            assert on_b.status_code == 200, on_b.text
            assert on_b.json()["user"] == user
            on_node(cluster, node_a, lambda m: site.get(client, f"/api/me?n={m}", headers=API))
            # Byrequests alternates: this logout should go to B, and the request after it to A.
            mark = marker()
            logout = site.get(client, f"/logout?n={mark}")
            assert logout.status_code == 302, logout.text
            logout_node = cluster.served_by(mark)
        with cluster.app_client(cookie) as replay:
            mark = marker()
            after = site.get(replay, f"/api/me?n={mark}", headers=API)
            after_node = cluster.served_by(mark)
        if (logout_node, after_node) == (node_b, node_a):
            assert after.status_code == 401, after.text
            return
    raise AssertionError("the balancer never sent the logout to B and the next request to A")


# --- load: 8 clients x 500 mixed requests over both nodes --------------------------------------


@dataclass
class Outcome:
    kind: str
    status: int
    seen: str | None  # the user the response names, if any
    body: str
    movie: int | None = None  # the movie a successful write made or changed


class Visitor:
    """One client with only the app's session cookie, sending mixed requests; every answer
    is checked for the user it names."""

    def __init__(self, cluster: Cluster, user: str, cookie: str, seed: int) -> None:
        self.cluster = cluster
        self.user = user
        self.client = cluster.app_client(cookie)
        self.random = random.Random(seed)
        self.movies: list[int] = []

    def request(self, tag: str) -> Outcome:
        site, mark = self.cluster.site, f"{tag}{marker()}"
        roll = self.random.random()
        if roll < 0.35:
            answer = site.get(self.client, f"/api/me?n={mark}", headers=API)
            return self._outcome("me", answer, lambda d: d.get("user"))
        if roll < 0.55:
            answer = site.get(self.client, f"/?n={mark}")
            seen = self.user if answer.ok and f"<dd>{self.user}</dd>" in answer.text else None
            return Outcome("page", answer.status_code, seen, answer.text[:300])
        if roll < 0.75 or not self.movies:
            answer = self.client.post(
                f"{site.url}/api/movies?n={mark}", json={"title": f"{self.user} {mark}"}, headers=API, timeout=30
            )
            return self._outcome("create", answer, lambda d: d.get("created_by"))
        movie = self.random.choice(self.movies)
        if roll < 0.95:
            answer = self.client.put(
                f"{site.url}/api/movies/{movie}?n={mark}", json={"director": mark}, headers=API, timeout=30
            )
            return self._outcome("update", answer, lambda d: d.get("updated_by"))
        answer = site.get(self.client, f"/api/movies/{movie}?n={mark}", headers=API)
        return self._outcome("read", answer, lambda d: d.get("created_by"))

    def _outcome(self, kind: str, answer: requests.Response, named: Callable[[Any], Any]) -> Outcome:
        seen, movie = None, None
        if answer.ok:
            document = answer.json()
            seen, movie = named(document), document.get("id")
            if kind == "create":
                self.movies.append(movie)
        return Outcome(kind, answer.status_code, seen, answer.text[:300], movie)


def logged_in_visitors(cluster: Cluster, count: int) -> list[Visitor]:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        cookies = list(pool.map(cluster.log_in, [user["sub"] for user in USERS[:count]]))
    return [Visitor(cluster, USERS[n]["sub"], cookies[n], seed=n) for n in range(count)]


EXPECTED = {"me": 200, "page": 200, "create": 201, "update": 200, "read": 200}


def test_eight_clients_mixed_requests_over_two_nodes_never_mix_identities(cluster: Cluster) -> None:
    visitors = logged_in_visitors(cluster, CLIENTS)

    def run(visitor: Visitor) -> list[Outcome]:
        return [visitor.request("L") for _ in range(REQUESTS_PER_CLIENT)]

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = dict(zip(visitors, pool.map(run, visitors), strict=True))
    errors = [(v.user, o) for v, done in outcomes.items() for o in done if o.status != EXPECTED[o.kind]]
    strangers = [(v.user, o) for v, done in outcomes.items() for o in done if o.seen != v.user]
    assert sum(len(done) for done in outcomes.values()) == CLIENTS * REQUESTS_PER_CLIENT
    assert errors == []
    assert strangers == []
    shares = [len(re.findall(r"[?&]n=L\d", node.log.read_text(errors="replace"))) for node in cluster.nodes]
    print(f"\n{CLIENTS} x {REQUESTS_PER_CLIENT} mixed requests: node A served {shares[0]}, node B {shares[1]}")
    assert sum(shares) == CLIENTS * REQUESTS_PER_CLIENT
    assert min(shares) > CLIENTS * REQUESTS_PER_CLIENT // 4


# --- faults ------------------------------------------------------------------------------------


@contextlib.contextmanager
def visiting(visitors: list[Visitor], tag: str) -> Iterator[dict[Visitor, list[Outcome]]]:
    """Every visitor sends mixed requests in its own thread until the block ends.

    The dict yielded is filled with each visitor's outcomes when the block ends.
    """
    stop = threading.Event()
    outcomes: dict[Visitor, list[Outcome]] = {}

    def run(visitor: Visitor) -> list[Outcome]:
        done = []
        while not stop.is_set():
            done.append(visitor.request(tag))
        return done

    with concurrent.futures.ThreadPoolExecutor(len(visitors)) as pool:
        futures = {visitor: pool.submit(run, visitor) for visitor in visitors}
        try:
            time.sleep(1)  # the load is running before the fault
            yield outcomes
        finally:
            stop.set()
            outcomes.update({visitor: future.result() for visitor, future in futures.items()})


def stored_movies(cluster: Cluster) -> dict[int, str]:
    """Movie id -> created_by, read from the database file both nodes share."""
    with contextlib.closing(sqlite3.connect(cluster.folder / "movies.sqlite3")) as database:
        return dict(database.execute("SELECT id, created_by FROM movies").fetchall())


def test_redis_stopped_mid_run_gives_503_then_service_resumes(cluster: Cluster) -> None:
    visitors = logged_in_visitors(cluster, 4)
    before = stored_movies(cluster)
    with visiting(visitors, "R") as outcomes:
        stop(cluster.redis.process)
        time.sleep(3)
        restarted = cluster.later.enter_context(running_redis(cluster.folder, cluster.redis.port, persist=True))
        time.sleep(3)
    assert restarted.port == cluster.redis.port
    answers = [(v, o) for v, done in outcomes.items() for o in done]
    unavailable = [o for _, o in answers if o.status == 503]
    assert unavailable, "no request met the stopped redis-server"
    for visitor, outcome in answers:
        assert outcome.status in (EXPECTED[outcome.kind], 503), outcome
        if outcome.status == 503:
            assert "the session store is unavailable" in outcome.body, outcome
        else:
            assert outcome.seen == visitor.user, outcome
    # A refused write wrote nothing (not even as anonymous); an accepted one is there, as its user.
    created = {o.movie: v.user for v, o in answers if o.kind == "create" and o.status == 201}
    assert {movie: user for movie, user in stored_movies(cluster).items() if movie not in before} == created
    # Service resumed without restarting uWSGI: the sessions (saved by redis-server) work again.
    for visitor in visitors:
        assert [visitor.request("S").status for _ in range(6)].count(503) == 0
    assert all("Traceback" not in node.log.read_text(errors="replace") for node in cluster.nodes)


def worker_pids(node: Uwsgi) -> list[int]:
    """The node's live worker processes, from its log."""
    pids = [int(pid) for pid in re.findall(r"uWSGI worker \d+ \(pid: (\d+)", node.log.read_text(errors="replace"))]
    return [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_9_of_a_worker_under_write_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    visitors = logged_in_visitors(cluster, CLIENTS)
    node = cluster.nodes[0]
    victim = worker_pids(node)[0]
    with visiting(visitors, "K") as outcomes:
        os.kill(victim, signal.SIGKILL)
        wait_for_log(node.log, rf"worker \d+ \(pid: {victim}\) died, killed by signal 9", timeout=30)
        time.sleep(2)
    answers = [(v, o) for v, done in outcomes.items() for o in done]
    stored = stored_movies(cluster)
    acknowledged = [(v, o) for v, o in answers if o.kind == "create" and o.status == 201]
    assert acknowledged
    assert [(v.user, o) for v, o in acknowledged if stored.get(o.movie) != v.user] == []
    lost = [o for _, o in answers if o.status != EXPECTED[o.kind]]
    for outcome in lost:
        # Only the requests the dead worker held fail, answered by Apache itself: mod_proxy_uwsgi
        # says 500 when the connection closes before the status line, 502 when it cannot read.
        assert outcome.status in (500, 502), outcome
        assert outcome.body.startswith("<!DOCTYPE HTML PUBLIC"), outcome  # Apache's page, not the app's
    assert len(lost) <= 2 * 2, lost  # at most the dead worker's two threads, then a retry or two
    assert [(v.user, o) for v, o in answers if o.status < 300 and o.seen != v.user] == []
    assert all("Traceback" not in node.log.read_text(errors="replace") for node in cluster.nodes)
    print(f"\nkill -9 of worker {victim}: {len(answers)} requests, {len(lost)} failed at Apache")
