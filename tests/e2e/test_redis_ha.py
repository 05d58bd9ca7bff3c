"""Two app nodes on Redis that survives losing a node: a Sentinel group, then a Cluster.

The stack is tests/e2e/cluster.py's (Apache's balancer, two uWSGI nodes, real logins at a
provider), with ``SHIBWSGI_SESSION`` a ``redis+sentinel://`` or ``redis+cluster://`` URL over
the servers of tests/e2e/ha_redis.py. Eight clients log in, send mixed requests and log out
while a master is killed (or, in the cluster, handed over with ``CLUSTER FAILOVER``). Counted:
503s (the store unreachable), 500s (none), answers naming another user (none), sessions lost
(none written well before the fault), and the time until service resumed by itself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from ha_redis import RedisClusterSet, SentinelGroup, cli, running_redis_cluster, running_sentinel_group
from stack import Redis

from .cluster import (
    EXPECTED,
    USERS,
    Cluster,
    Outcome,
    Visitor,
    excerpt,
    logged_in_visitors,
    marker,
    running_cluster,
)
from .oidc_provider import Provider, running_provider
from .test_oidc import API, APP_COOKIE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.servers

CLIENTS = 8
#: A session written this long before the fault must survive it (replication is asynchronous).
SETTLED = 1.0
UNAVAILABLE = "the session store is unavailable"
#: Seconds without a 503 before service counts as resumed: longer than redis-py's Cluster
#: client waits between two topology refreshes (1 s), so no worker is left on the old map.
QUIET = 1.5


@dataclass
class Tally:
    """What the clients saw, each answer with the time it came back."""

    answers: list[tuple[float, str, Outcome]] = field(default_factory=list)
    logins: list[tuple[float, str]] = field(default_factory=list)  # (when, user) of each login done
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, user: str, outcome: Outcome) -> None:
        with self.lock:
            self.answers.append((time.monotonic(), user, outcome))


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("ha-provider"), USERS) as running:
        yield running


@contextlib.contextmanager
def nodes_on(folder: Path, provider: Provider, url: str, first: int, log: Path) -> Iterator[Cluster]:
    """Two app nodes behind Apache with their sessions at ``url``."""
    # cluster.py reads only the URL and the log; the process is the servers' own business.
    store = Redis(url, first, log, None)  # type: ignore[arg-type]
    with contextlib.ExitStack() as later, running_cluster(folder, provider, store, later) as running:
        yield running


@pytest.fixture(scope="module")
def sentinel_nodes(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider
) -> Iterator[tuple[Cluster, SentinelGroup]]:
    folder = tmp_path_factory.mktemp("ha-sentinel")
    with (
        running_sentinel_group(folder) as group,
        nodes_on(folder, provider, group.url, group.master.port, group.master.log) as nodes,
    ):
        yield nodes, group


@pytest.fixture(scope="module")
def cluster_nodes(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider
) -> Iterator[tuple[Cluster, RedisClusterSet]]:
    folder = tmp_path_factory.mktemp("ha-cluster")
    with (
        running_redis_cluster(folder) as servers,
        nodes_on(folder, provider, servers.url, servers.nodes[0].port, servers.nodes[0].log) as nodes,
    ):
        yield nodes, servers


def try_log_in(cluster: Cluster, user: str) -> tuple[int, str | None]:
    """A real login: its final status and, when it worked, the app's cookie."""
    with cluster.site.browser() as browser:
        landed = cluster.site.log_in(browser, f"/login?next=/api/me&n=I{marker()}", user)
        if landed.status_code == 200 and landed.json()["user"] == user:
            return 200, str(browser.cookies[APP_COOKIE])
        return landed.status_code, None


def log_out(visitor: Visitor) -> tuple[Outcome, Outcome | None]:
    """The app's /logout and, when it answered, the old cookie's next request (401 expected)."""
    site = visitor.cluster.site
    out = site.get(visitor.client, f"/logout?n=O{marker()}")
    done = Outcome(
        "logout", out.status_code, visitor.user if out.status_code == 302 else None, excerpt(out.text)
    )
    if out.status_code != 302:
        return done, None
    after = site.get(visitor.client, f"/api/me?n=A{marker()}", headers=API)
    seen = after.json().get("user") if after.ok else None
    return done, Outcome("after logout", after.status_code, seen, excerpt(after.text))


def client(cluster: Cluster, number: int, cookie: str, tally: Tally, stop: threading.Event) -> None:
    """One user: mixed requests, now and then a logout and a new login, until ``stop``."""
    user = USERS[number]["sub"]
    visitor = Visitor(cluster, user, cookie, seed=number)
    for turn in range(10_000):
        if stop.is_set():
            return
        if turn % 20 != 19:
            tally.add(user, visitor.request("H"))
            continue
        done, after = log_out(visitor)
        tally.add(user, done)
        if after is not None:
            tally.add(user, after)
        if done.status != 302:
            continue  # still logged in: carry on, log out later
        while not stop.is_set():
            status, new = try_log_in(cluster, user)
            tally.add(user, Outcome("login", status, user if new else None, ""))
            if new is not None:
                with tally.lock:
                    tally.logins.append((time.monotonic(), user))
                visitor = Visitor(cluster, user, new, seed=number + turn)
                break


@dataclass(frozen=True)
class Figures:
    requests: int
    unavailable: int
    recovered_after: float  # seconds from the fault to the first answer after the last 503


def failover_under_load(cluster: Cluster, fault: Callable[[], None], over: Callable[[], bool]) -> Figures:
    """Run the clients, cause ``fault``, wait until the servers say it is ``over`` and the
    clients are served again, and check every answer; return the counts."""
    resting = logged_in_visitors(cluster, CLIENTS)  # written before, not used until after
    working = logged_in_visitors(cluster, CLIENTS)
    tally, stop = Tally(), threading.Event()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        futures = [
            pool.submit(client, cluster, n, working[n].client.cookies[APP_COOKIE], tally, stop)
            for n in range(CLIENTS)
        ]
        try:
            time.sleep(1.5)
            struck = time.monotonic()
            fault()
            # Not done before the servers have failed over: until then the clients may not
            # have met the fault yet (no session on the lost master, a request in flight).
            failed_over = back = False
            deadline = struck + 20
            while not back and time.monotonic() < deadline:
                failed_over = failed_over or over()
                back = failed_over and resumed(tally, struck, quiet=QUIET)
                time.sleep(0.2)
        finally:
            stop.set()
            for future in futures:
                future.result()
    assert failed_over, "the servers did not fail over within 20 s"
    answers = tally.answers
    late_logins = {user: when for when, user in tally.logins if when > struck - SETTLED}
    unavailable = [o for _, _, o in answers if o.status == 503]
    assert [o for _, _, o in answers if o.status >= 500 and o.status != 503] == []
    assert [o for o in unavailable if UNAVAILABLE not in o.body and o.kind != "login"] == []
    assert [(u, o) for _, u, o in answers if o.status < 300 and o.seen != u] == []
    # A 401 is a session lost by the failover: only one written just before it may be.
    lost = [(u, o) for _, u, o in answers if o.status == 401 and o.kind != "after logout"]
    assert [(u, o) for u, o in lost if u not in late_logins] == []
    undone = [o for _, _, o in answers if o.kind == "after logout" and o.status == 200]
    others = [o for _, _, o in answers if o.status not in (EXPECTED.get(o.kind, 200), 503, 401)]
    assert others == [], others
    for visitor in resting:
        # A worker that served nobody since the fault may still have to find the new master.
        for _ in range(10):
            answer = cluster.site.get(visitor.client, f"/api/me?n=Z{marker()}", headers=API)
            if answer.status_code != 503:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == visitor.user
    assert back, "service did not resume within 20 s"
    assert resumed(tally, struck), "a 503 came after service had resumed"
    last_503 = max((when for when, _, o in answers if o.status == 503), default=struck)
    after = min(when for when, _, o in answers if when > last_503 and o.status != 503)
    figures = Figures(len(answers), len(unavailable), round(after - struck, 2))
    print(f"\n{figures}, sessions lost: {len(lost)}, logouts undone: {len(undone)}")
    return figures


def resumed(tally: Tally, since: float, quiet: float = 0) -> bool:
    """Every client has had a good answer after the last 503 that came after ``since``, and
    that 503 is at least ``quiet`` seconds old."""
    with tally.lock:
        answers = list(tally.answers)
    last_503 = max((when for when, _, o in answers if o.status == 503 and when > since), default=since)
    good = {user for when, user, o in answers if when > last_503 and o.status < 400}
    return len(good) == CLIENTS and time.monotonic() - last_503 >= quiet


# --- Sentinel -------------------------------------------------------------------------------------


def test_sentinel_master_killed_under_load(sentinel_nodes: tuple[Cluster, SentinelGroup]) -> None:
    cluster, group = sentinel_nodes
    before = group.master_port()
    figures = failover_under_load(
        cluster, group.master.process.kill, lambda: group.master_port() == group.replica.port
    )
    assert group.master_port() == group.replica.port != before
    assert figures.recovered_after < 10


# --- Cluster --------------------------------------------------------------------------------------


def test_cluster_sessions_are_spread_over_the_three_masters(
    cluster_nodes: tuple[Cluster, RedisClusterSet],
) -> None:
    cluster, servers = cluster_nodes
    for _ in range(3):  # 24 sessions: all of 8 on two of three masters is a 12 % chance, of 24 0.02 %
        logged_in_visitors(cluster, CLIENTS)
    counts = {port: int(cli(port, "DBSIZE")) for port in servers.masters()}
    assert len(counts) == 3
    assert all(counts.values()), counts


def test_cluster_failover_handed_over_under_load(cluster_nodes: tuple[Cluster, RedisClusterSet]) -> None:
    cluster, servers = cluster_nodes
    servers.wait_settled()
    masters = servers.masters()
    replica = next(n for n in servers.nodes if n.port not in masters and n.process.poll() is None)
    replication = cli(replica.port, "INFO", "replication")
    master = int(replication.partition("master_port:")[2].split()[0])
    figures = failover_under_load(
        cluster, lambda: cli(replica.port, "CLUSTER", "FAILOVER"), lambda: servers.moved_off(master)
    )
    assert replica.port in servers.masters()
    assert figures.recovered_after < 10


def test_cluster_master_killed_under_load(cluster_nodes: tuple[Cluster, RedisClusterSet]) -> None:
    cluster, servers = cluster_nodes
    servers.wait_settled()  # the previous test's failover left a replica to sync
    victim = next(iter(servers.masters().values()))
    figures = failover_under_load(cluster, victim.process.kill, lambda: servers.moved_off(victim.port))
    assert victim.port not in servers.masters() and len(servers.masters()) == 3
    assert figures.recovered_after < 10
