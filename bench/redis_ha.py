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
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shibwsgi.sessions import RedisStore
from shibwsgi.sessions.manager import SessionManager

from .servers import ROOT, redis_server
from .stores import identity, per_op

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


def measure(name: str, url: str) -> None:
    plain = RedisStore(url, prefix=PREFIX)
    acknowledged = RedisStore(url + ("&" if "?" in url else "?") + "min_replicas=1", prefix=PREFIX)
    try:
        manager = SessionManager(plain, idle_timeout=3600, absolute_timeout=28800, clock=time.time)
        session = manager.start(identity(3))
        key = PREFIX + session.id
        raw = per_op(raw_get(master_port(plain, key), key))
        get = per_op(lambda: plain.get(session.id))
        load = per_op(lambda: manager.load(session.id))
        data = session.to_data()
        writes = [
            (label, per_op(lambda s=store: s.set("w", data, ttl=60)), per_op(lambda s=store: s.delete("w")))
            for label, store in (("", plain), ("min_replicas=1", acknowledged))
            if label == "" or name != "one Redis"
        ]
    finally:
        plain.close()
        acknowledged.close()
    print(
        f"{name:<12} raw GET {raw:6.1f} us | store.get {get:6.1f} us ({get / raw:4.2f}x)"
        f" | load {load:6.1f} us ({load / raw:4.2f}x)"
    )
    for label, write, delete in writes:
        print(f"{'':<12} set {write:6.1f} us, delete {delete:6.1f} us {label}")


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[list[tuple[str, str]]]:
    from ha_redis import running_redis_cluster, running_sentinel_group

    with (
        redis_server(folder / "plain") as url,
        running_sentinel_group(folder / "sentinel") as group,
        running_redis_cluster(folder / "cluster") as cluster,
    ):
        modes = [("Sentinel", group.url), ("Cluster", cluster.url)]
        yield ([("one Redis", url)] if url else []) + modes


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for part in ("plain", "sentinel", "cluster"):
            (Path(folder) / part).mkdir()
        with servers(Path(folder)) as modes:
            for name, url in modes:
                measure(name, url)


if __name__ == "__main__":
    main()
