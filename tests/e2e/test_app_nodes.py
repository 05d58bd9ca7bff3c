"""Two app nodes behind Apache's mod_proxy_balancer, sessions in one redis-server.

The stack is tests/e2e/cluster.py's (the shipped openidc.conf with ``-DUWSGI_BALANCER``, two
uWSGI instances, a real provider). A login on one node is served by the other and a
logout on one ends the session on the other; 8 clients x 500 mixed requests never see an
error or another client's identity; then the faults: redis-server stopped mid-run and
started again on the same port, and ``kill -9`` of a uWSGI worker under write load.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import signal
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

import pytest
from stack import running_redis, stop, wait_for_log

from .cluster import (
    EXPECTED,
    USERS,
    Cluster,
    Outcome,
    Visitor,
    logged_in_visitors,
    marker,
    running_cluster,
    worker_pids,
)
from .oidc_provider import running_provider
from .test_oidc import API, APP_COOKIE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

pytestmark = pytest.mark.servers

CLIENTS = 8
REQUESTS_PER_CLIENT = 500


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
    print(
        f"\n{CLIENTS} x {REQUESTS_PER_CLIENT} mixed requests: node A served {shares[0]}, node B {shares[1]}"
    )
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
        restarted = cluster.later.enter_context(
            running_redis(cluster.folder, cluster.redis.port, persist=True)
        )
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
        # Apache's own page (its wording), not the app's.
        assert "misconfiguration" in outcome.body or "Proxy Error" in outcome.body, outcome
    assert len(lost) <= 2 * 2, lost  # at most the dead worker's two threads, then a retry or two
    assert [(v.user, o) for v, o in answers if o.status < 300 and o.seen != v.user] == []
    assert all("Traceback" not in node.log.read_text(errors="replace") for node in cluster.nodes)
    print(f"\nkill -9 of worker {victim}: {len(answers)} requests, {len(lost)} failed at Apache")
