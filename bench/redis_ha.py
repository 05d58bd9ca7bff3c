"""The Redis session path against a raw round trip, on one Redis, Sentinel and Cluster: ``python -m bench.redis_ha``.

For each mode, on loopback: a raw socket ``GET`` of a session-sized value (one round trip and
nothing else, the floor), ``RedisStore.get`` and ``SessionManager.load`` of an unchanged
session (what a lazy-session request pays), each as a ratio to the raw round trip; then the
writes (``set``, ``delete``) without and with ``min_replicas=1`` (``WAIT 1`` after each), whose
difference is what acknowledged writes cost. Servers: tests/ha_redis.py's (a master, a replica
and three sentinels; three masters with a replica each). Not part of ``make bench``'s table.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shibwsgi.sessions import RedisStore
from shibwsgi.sessions.manager import SessionManager

from .servers import ROOT, redis_server
from .stores import ROUNDS, identity

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PREFIX = "bench:"


def raw_get(port: int, key: str) -> Callable[[], bytes]:
    """One ``GET`` on a bare socket: send, read until the whole bulk reply is in."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = f"*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n".encode()

    def get() -> bytes:
        sock.sendall(request)
        reply = sock.recv(65536)
        size = int(reply[1 : reply.index(b"\r\n")])
        while len(reply) < size + len(str(size)) + 5:
            reply += sock.recv(65536)
        return reply

    return get


def master_port(store: RedisStore, key: str) -> int:
    """The port of the master holding ``key``, from the store's own client."""
    client = store._client
    if hasattr(client, "master_for"):  # Cluster
        return int(client.master_for(key).connection_pool.connection_kwargs["port"])
    connection = client._connect()  # one Redis or Sentinel: a thread's connection
    connection.connect()
    try:
        return int(connection.port)
    finally:
        connection.disconnect()


def measure(url: str, *, replicas: bool, seconds: float) -> dict[str, float]:
    """Seconds per operation on one mode: the raw ``GET``, the store's read, the session load,
    the writes, and (``replicas``) the writes with ``min_replicas=1``."""
    plain = RedisStore(url, prefix=PREFIX)
    acknowledged = RedisStore(url + ("&" if "?" in url else "?") + "min_replicas=1", prefix=PREFIX)
    try:
        manager = SessionManager(plain, idle_timeout=3600, absolute_timeout=28800, clock=time.time)
        session = manager.start(identity(3))
        key = PREFIX + session.id
        data = session.to_data()
        timed = {
            "raw_get": raw_get(master_port(plain, key), key),
            "store_get": lambda: plain.get(session.id),
            "load": lambda: manager.load(session.id),
            "set": lambda: plain.set("w", data, ttl=60),
            "delete": lambda: plain.delete("w"),
        }
        if replicas:
            timed["set_min_replicas_1"] = lambda: acknowledged.set("w", data, ttl=60)
            timed["delete_min_replicas_1"] = lambda: acknowledged.delete("w")
        return interleaved(timed, seconds)
    finally:
        plain.close()
        acknowledged.close()


def interleaved(timed: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Median seconds per call of each operation; ``<name>_per_raw_get``: the median over
    rounds of its ratio to the raw ``GET`` timed in the same round (a busy machine slows a
    round, not a ratio); ``<name>_cpu``: this process's CPU seconds per call. Each round
    times every operation in turn; GC is off while timing."""
    counts = {name: calibrate(operation, seconds) for name, operation in timed.items()}
    rounds: dict[str, list[float]] = {name: [] for name in timed}
    ratios: dict[str, list[float]] = {name: [] for name in timed}
    cpu: dict[str, list[float]] = {name: [] for name in timed}
    gc.disable()
    try:
        for _ in range(ROUNDS):
            for name, operation in timed.items():
                n = counts[name]
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(n):
                    operation()
                rounds[name].append((time.perf_counter() - start) / n)
                cpu[name].append((time.process_time() - start_cpu) / n)
            for name in timed:
                ratios[name].append(rounds[name][-1] / rounds["raw_get"][-1])
    finally:
        gc.enable()
    figures = {name: statistics.median(values) for name, values in rounds.items()}
    # This process's CPU per call: what the client adds to the round trip, unblurred by the
    # other processes that share the cores.
    figures.update({f"{name}_cpu": statistics.median(cpu[name]) for name in ("raw_get", "store_get", "load")})
    figures.update({f"{name}_per_raw_get": statistics.median(ratios[name]) for name in ("store_get", "load")})
    return figures


def calibrate(operation: Callable[[], object], seconds: float) -> int:
    """How many calls take about ``seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            operation()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            return max(1, int(n * seconds / elapsed))
        n *= 2


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[list[tuple[str, str, bool]]]:
    """(mode, URL, has replicas) for one Redis, a Sentinel group and a Cluster."""
    from ha_redis import running_redis_cluster, running_sentinel_group

    for part in ("plain", "sentinel", "cluster"):
        (folder / part).mkdir()
    with (
        redis_server(folder / "plain") as url,
        running_sentinel_group(folder / "sentinel") as group,
        running_redis_cluster(folder / "cluster") as cluster,
    ):
        yield [("one Redis", str(url), False), ("Sentinel", group.url, True), ("Cluster", cluster.url, True)]


def run(folder: Path, *, seconds: float, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every mode's figures (seconds per operation), or why they were not measured."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        return {"skipped": "skipped: redis-server or redis-cli not installed"}
    modes: dict[str, Any] = {}
    with servers(folder) as found:
        for name, url, replicas in found:
            progress(f"Redis round trip: {name}")
            modes[name] = measure(url, replicas=replicas, seconds=seconds)
    return {"modes": modes}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        found = run(Path(folder), seconds=0.2, progress=lambda message: None)
    for name, figures in found.get("modes", {}).items():
        raw = figures["raw_get"]
        print(
            f"{name:<10} raw GET {raw * 1e6:6.1f} us | store.get {figures['store_get_per_raw_get']:4.2f}x"
            f" | load {figures['load_per_raw_get']:4.2f}x | CPU raw {figures['raw_get_cpu'] * 1e6:.1f} us,"
            f" load {figures['load_cpu'] * 1e6:.1f} us | "
            + ", ".join(
                f"{key} {value * 1e6:.1f} us"
                for key, value in figures.items()
                if key.startswith(("set", "delete"))
            )
        )
    print(found.get("skipped", ""), end="")


if __name__ == "__main__":
    main()
