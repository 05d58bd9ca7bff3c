"""A bounded soak: the full stack under mixed load, each uWSGI worker's memory watched.

Apache + mod_auth_openidc (the shipped openidc.conf, lazy, ``-DUWSGI_BALANCER``) in front of
two uWSGI nodes (the shipped uwsgi.ini, 2 workers each) sharing one redis-server for
sessions, real logins at oidc-provider-mock: tests/e2e/cluster.py's stack. Each client
loops: log in as a random user (one of them with a large group list), browse, create,
change and delete movies, deletes the rest of its movies, logs out (the old cookie must then
be anonymous) and switches to another user. Every answer must carry its own user.

``make soak`` runs it for 3 minutes; ``python -m bench.soak --seconds N``. Not part of the
test suite; tests/e2e/test_soak.py runs a 30 s version.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from e2e.cluster import EXPECTED, USERS, Cluster, Outcome, Visitor, running_cluster, worker_pids  # noqa: E402
from e2e.oidc_provider import running_provider  # noqa: E402
from stack import running_redis  # noqa: E402

from shibwsgi.sessions.manager import SESSION_CACHE_BYTES  # noqa: E402
from shibwsgi.sessions.redis import CACHE_BYTES as REDIS_CACHE_BYTES  # noqa: E402

__all__ = ["RSS_GROWTH_LIMIT_KB", "SoakReport", "soak"]

#: Claims with 400 groups: about 22 KB of identity variables, within the packet budget.
BIG_USER = {
    "sub": "soak-big",
    "name": "Soak Big Groups",
    "email": "soak-big@example.org",
    "groups": ["movie-editors", *(f"group-{n:05d}" for n in range(400))],
}
#: A worker growing more than this from the end of the warm-up to the end is a failure: what
#: the caches a session request fills may hold by design (the Redis store's decoded sessions,
#: the session manager's), plus 4 MiB. Every login here is a new session, so they fill.
RSS_GROWTH_LIMIT_KB = (REDIS_CACHE_BYTES + SESSION_CACHE_BYTES) // 1024 + 4 * 1024
WARM_UP_SECONDS = 5.0


@dataclass
class Worker:
    node: str
    pid: int
    rss_start_kb: int
    rss_middle_kb: int = 0
    rss_end_kb: int = 0

    @property
    def growth_kb(self) -> int:
        return self.rss_end_kb - self.rss_start_kb


@dataclass
class SoakReport:
    seconds: float
    clients: int
    requests: int = 0
    logins: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    respawned: list[int] = field(default_factory=list)  # worker pids gone during the run

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.latencies)

    @property
    def p99_ms(self) -> float:
        return 1000 * statistics.quantiles(self.latencies, n=100)[98]

    def text(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f} s, {self.clients} clients, 2 uWSGI nodes x 2 workers, Redis sessions",
            f"requests {self.requests} (logins {self.logins}), errors {len(self.errors)}, "
            f"{self.requests / self.seconds:.0f} req/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms",
            "worker RSS (KiB)   start   middle      end   growth",
            *(
                f"  {w.node} pid {w.pid:<7} {w.rss_start_kb:>8} {w.rss_middle_kb:>8} {w.rss_end_kb:>8}"
                f" {w.growth_kb:>+8}"
                for w in self.workers
            ),
        ]
        if self.respawned:
            lines.append(f"workers that died during the run: {self.respawned}")
        lines += [f"  error: {error}" for error in self.errors[:10]]
        return "\n".join(lines)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for {pid}")


class _Client:
    """One soak client: sessions of random users, one after another, until told to stop."""

    def __init__(self, cluster: Cluster, report: SoakReport, lock: threading.Lock, seed: int) -> None:
        self.cluster, self.report, self.lock = cluster, report, lock
        self.random = random.Random(seed)
        self.seed = seed

    def run(self, until: float) -> None:
        users = [user["sub"] for user in USERS] + [BIG_USER["sub"]]
        while time.monotonic() < until:
            user = self.random.choice(users)
            started = time.perf_counter()
            try:
                cookie = self.cluster.log_in(user)
            except (AssertionError, OSError) as exc:
                self.record(None, user, f"login of {user} failed: {exc}"[:300], started)
                continue
            self.record(None, user, None, started, login=True)
            visitor = Visitor(self.cluster, user, cookie, seed=self.random.randrange(1 << 30))
            for _ in range(self.random.randint(20, 60)):
                if time.monotonic() >= until:
                    break
                started = time.perf_counter()
                deleting = visitor.movies and self.random.random() < 0.05
                self.record(visitor.delete() if deleting else visitor.request("S"), user, None, started)
            # Each user's movies go with the session: the home page lists them all, and a
            # database that only grows would make the workers grow with it, leak or not.
            while visitor.movies:
                started = time.perf_counter()
                self.record(visitor.delete(), user, None, started)
            started = time.perf_counter()
            self.record(visitor.log_out(), user, None, started)

    def record(
        self, outcome: Outcome | None, user: str, error: str | None, started: float, *, login: bool = False
    ) -> None:
        elapsed = time.perf_counter() - started
        if outcome is not None and (outcome.status != EXPECTED[outcome.kind] or outcome.seen != user):
            error = f"{user} {outcome.kind}: {outcome.status} naming {outcome.seen!r}: {outcome.body[:200]}"
        with self.lock:
            self.report.requests += 1
            self.report.logins += login
            if error is None:
                self.report.latencies.append(elapsed)
            else:
                self.report.errors.append(error)


def soak(seconds: float, *, clients: int = 6, folder: Path | None = None) -> SoakReport:
    """Run the soak for ``seconds`` (after a warm-up) and return what it measured."""
    report = SoakReport(seconds, clients)
    lock = threading.Lock()
    with contextlib.ExitStack() as servers:
        if folder is None:
            folder = Path(servers.enter_context(tempfile.TemporaryDirectory(prefix="shibwsgi-soak-")))
        provider = servers.enter_context(running_provider(folder, [*USERS, BIG_USER]))
        redis = servers.enter_context(running_redis(folder, persist=True))
        later = servers.enter_context(contextlib.ExitStack())
        cluster = servers.enter_context(running_cluster(folder, provider, redis, later))
        began = time.monotonic()
        until = began + WARM_UP_SECONDS + seconds
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            runs = [pool.submit(_Client(cluster, report, lock, seed).run, until) for seed in range(clients)]
            time.sleep(WARM_UP_SECONDS)
            for name, node in zip("AB", cluster.nodes, strict=True):
                report.workers += [Worker(name, pid, rss_kb(pid)) for pid in worker_pids(node)]
            time.sleep(max(0.0, (until - time.monotonic()) / 2))
            _sample(report, "rss_middle_kb")
            for run in runs:
                run.result()
        report.seconds = time.monotonic() - began
        _sample(report, "rss_end_kb")
    return report


def _sample(report: SoakReport, attribute: str) -> None:
    for worker in report.workers:
        try:
            setattr(worker, attribute, rss_kb(worker.pid))
        except (OSError, LookupError):
            if worker.pid not in report.respawned:
                report.respawned.append(worker.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180, help="how long to load (default 180)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients (default 6)")
    options = parser.parse_args(argv)
    report = soak(options.seconds, clients=options.clients)
    print(report.text())
    grown = [w for w in report.workers if w.growth_kb > RSS_GROWTH_LIMIT_KB]
    failed = report.errors or report.respawned or grown
    if grown:
        print(f"FAIL: RSS grew more than {RSS_GROWTH_LIMIT_KB} KiB: {[w.pid for w in grown]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
