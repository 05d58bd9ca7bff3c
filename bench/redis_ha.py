"""The Redis session path against a raw round trip, on one Redis, Sentinel and Cluster: ``python -m bench.redis_ha``.

For each mode, on loopback: a raw socket ``GET`` of a session-sized value (one round trip and
nothing else, the floor), ``RedisStore.get`` and ``SessionManager.load`` of an unchanged
session (what a lazy-session request pays), each as a ratio to the raw round trip timed in
the same round; then the writes (``set``, ``delete``) without and with ``min_replicas=1``
(``WAIT 1`` after each), whose difference is what acknowledged writes cost. What the session
path pays beyond the round trip is broken down by timing it in steps, each one adding a layer:
the store's own send and reply parse on its socket, the per-thread client (connection lookup,
the fork check, packing; the slot lookup for a Cluster), the store (key, decode cache), the
session manager (session cache, deadline). Servers: tests/ha_redis.py's (a master, a replica
and three sentinels; three masters with a replica each). ``make bench`` runs it and reports
the ratio of each mode against the target (``bench/report.py``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
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
from shibwsgi.sessions.redis_wire import exchange

from .servers import ROOT, redis_server
from .stores import identity

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


def thread_socket(store: RedisStore, key: str) -> Any:
    """The socket of this thread's connection the store reads ``key`` on (after one read)."""
    client = store._client
    if hasattr(client, "_nodes"):  # Cluster: the connections to the key's master
        client = client._nodes[client._cluster.cluster().get_node_from_key(key).name]
    return client._local.held[3]


def measure(url: str, *, replicas: bool, seconds: float) -> dict[str, Any]:
    """Seconds per operation on one mode: the raw ``GET``, the steps of the session load, the
    writes, and (``replicas``) the writes with ``min_replicas=1``."""
    import redis

    plain = RedisStore(url, prefix=PREFIX)
    acknowledged = RedisStore(url + ("&" if "?" in url else "?") + "min_replicas=1", prefix=PREFIX)
    try:
        manager = SessionManager(plain, idle_timeout=3600, absolute_timeout=28800, clock=time.time)
        session = manager.start(identity(3))
        key = PREFIX + session.id
        data = session.to_data()
        manager.load(session.id)
        sock = thread_socket(plain, key)
        command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key.encode())
        timed = {
            "raw_get": raw_get(master_port(plain, key), key),
            # partial, not lambda: no call frame of the benchmark's own in what is timed
            "wire_get": functools.partial(exchange, redis, sock, command),
            "client_get": functools.partial(plain._client.get, key),
            "store_get": functools.partial(plain.get, session.id),
            "load": functools.partial(manager.load, session.id),
            "set": lambda: plain.set("w", data, ttl=60),
            "delete": lambda: plain.delete("w"),
            "fork_check": os.getpid,  # a system call the per-thread client makes on every command
        }
        if replicas:
            timed["set_min_replicas_1"] = lambda: acknowledged.set("w", data, ttl=60)
            timed["delete_min_replicas_1"] = lambda: acknowledged.delete("w")
        return interleaved(timed, seconds)
    finally:
        plain.close()
        acknowledged.close()


#: The steps of the session load, each adding a layer to the one before (see the docstring).
STEPS = ("raw_get", "wire_get", "client_get", "store_get", "load")
#: What each step adds to the one before it, as the report names it.
LAYERS = {
    "wire_get": "send + reply parse",
    "client_get": "per-thread client",
    "store_get": "store + decode cache",
    "load": "session manager",
}


#: Rounds of the interleaved timing, each timing every operation for a third of ``seconds``.
ROUNDS = 9


def interleaved(timed: dict[str, Callable[[], object]], seconds: float) -> dict[str, Any]:
    """Median seconds per call of each operation, and ``<name>_cpu``: this process's CPU seconds
    per call, over rounds that time every operation in turn. ``<name>_per_raw_get``: the median over rounds of the ratio of :func:`paired`'s medians, with
    ``<name>_per_raw_get_rounds`` every round's and ``<name>_paired`` the medians of the round
    with the median ratio; ``profile``: the seconds each layer of the session load adds to the
    one before, from those ratios (median over rounds). GC is off while timing."""
    counts = {name: calibrate(operation, seconds / 3) for name, operation in timed.items()}
    rounds: dict[str, list[float]] = {name: [] for name in timed}
    ratios: dict[str, list[float]] = {name: [] for name in STEPS[1:]}
    pairs: dict[str, list[tuple[float, float]]] = {name: [] for name in STEPS[1:]}
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
            for name in STEPS[1:]:
                pair = paired(timed["raw_get"], timed[name], counts[name] // 2)
                ratios[name].append(pair[0] / pair[1])
                pairs[name].append(pair)
    finally:
        gc.enable()
    figures: dict[str, Any] = {name: statistics.median(values) for name, values in rounds.items()}
    # This process's CPU per call: what the client adds to the round trip, unblurred by the
    # other processes that share the cores.
    figures.update({f"{name}_cpu": statistics.median(cpu[name]) for name in STEPS})
    for name in STEPS[1:]:
        figures[f"{name}_per_raw_get"] = statistics.median(ratios[name])
        figures[f"{name}_per_raw_get_rounds"] = ratios[name]
        # The pair's own medians (seconds): what the ratio divides, from the round with the median ratio.
        figures[f"{name}_paired"] = sorted(pairs[name], key=lambda pair: pair[0] / pair[1])[
            len(pairs[name]) // 2
        ]
    # What each layer adds, in seconds of a paired call: its ratio step times the raw GET.
    ratios["raw_get"] = [1.0] * ROUNDS
    raws = [raw for _, raw in pairs["load"]]
    figures["profile"] = {
        LAYERS[name]: statistics.median(
            (ratios[name][index] - ratios[previous][index]) * raws[index] for index in range(ROUNDS)
        )
        for previous, name in itertools.pairwise(STEPS)
    }
    return figures


def paired(raw: Callable[[], object], operation: Callable[[], object], n: int) -> tuple[float, float]:
    """The median seconds of ``operation`` and of ``raw``, timed call by call, one after the
    other, ``n`` times each: both meet the same machine, microseconds apart (a busy neighbour
    slows the pair, not their ratio; the median drops the calls it interrupted)."""
    clock = time.perf_counter_ns
    raws, operations = [0] * n, [0] * n
    for index in range(n):
        start = clock()
        raw()
        middle = clock()
        operation()
        operations[index] = clock() - middle
        raws[index] = middle - start
    return statistics.median(operations) / 1e9, statistics.median(raws) / 1e9


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
        spread = sorted(figures["load_per_raw_get_rounds"])
        print(
            f"{name:<10} raw GET {raw * 1e6:6.1f} us | store.get {figures['store_get_per_raw_get']:4.2f}x"
            f" | load {figures['load_per_raw_get']:4.2f}x (rounds {spread[0]:.2f}-{spread[-1]:.2f};"
            " steps " + " ".join(f"{figures[step + '_per_raw_get']:.3f}" for step in STEPS[1:]) + ")"
            f" | CPU raw {figures['raw_get_cpu'] * 1e6:.1f} us, load {figures['load_cpu'] * 1e6:.1f} us"
            " | beyond the round trip: "
            + ", ".join(f"{layer} {value * 1e6:+.2f} us" for layer, value in figures["profile"].items())
            + " | "
            + ", ".join(
                f"{key} {value * 1e6:.1f} us"
                for key, value in figures.items()
                if key.startswith(("set", "delete"))
            )
        )
    print(found.get("skipped", ""), end="")


if __name__ == "__main__":
    main()
