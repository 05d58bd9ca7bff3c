"""Redis that survives losing a node, on loopback: a Sentinel group and a Cluster.

``running_sentinel_group``: one master, one replica, three sentinels (the same redis-server
binary with ``--sentinel``), quorum 2, a master declared down after 500 ms.
``running_redis_cluster``: three masters with one replica each (``--cluster-enabled yes``,
``redis-cli --cluster create``), a node declared failed after 1000 ms.
Each server has its own config file, which sentinels and cluster nodes rewrite as they go.
Given ``tls`` (see ``stack.make_certificates``), every server and sentinel speaks TLS only,
to its clients and to the others (replication, the sentinels' links, the cluster bus).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from stack import Certificates, listening
from support import free_port, require_program

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: Session store kinds (see store_fixtures.py): the store's contract through redis-py's Sentinel
#: and Cluster clients, and with writes acknowledged by a replica.
HA_KINDS = [
    pytest.param("sentinel", id="sentinel", marks=pytest.mark.servers),
    pytest.param("cluster", id="cluster", marks=pytest.mark.servers),
    pytest.param("sentinel min_replicas=1", id="sentinel, min_replicas=1", marks=pytest.mark.servers),
]
SERVICE = "sessions"
DOWN_AFTER_MS = 500
NODE_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class Server:
    port: int
    log: Path
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class SentinelGroup:
    url: str  # redis+sentinel://127.0.0.1:<port>,.../sessions/0
    master: Server
    replica: Server
    sentinels: tuple[Server, ...]
    tls: Certificates | None = None
    sentinel_tls: Certificates | None = None  # how the sentinels listen: tls, or in plaintext

    def master_port(self) -> int:
        """The master's port as the sentinels see it now."""
        answer = cli(
            self.sentinels[0].port, "SENTINEL", "get-master-addr-by-name", SERVICE, tls=self.sentinel_tls
        )
        return int(answer.split()[1])


@dataclass(frozen=True)
class RedisClusterSet:
    url: str  # redis+cluster://127.0.0.1:<port>,.../
    nodes: tuple[Server, ...]
    tls: Certificates | None = None

    def wait_settled(self) -> None:
        """Until every live node sees the cluster ok and every replica is in sync with its master.

        A replica still syncing (after a failover made it one) cannot take over a master
        killed now: a fault test must start from here.
        """
        live = [node for node in self.nodes if node.process.poll() is None]
        _until(
            "every node sees the cluster ok and every replica is in sync",
            lambda: all(
                "cluster_state:ok" in cli(node.port, "CLUSTER", "INFO", tls=self.tls)
                and _in_sync(cli(node.port, "INFO", "replication", tls=self.tls))
                for node in live
            ),
        )

    def moved_off(self, port: int) -> bool:
        """Every other live node sees the cluster ok and no slot on the server at ``port``:
        a failover of its slots (killed, or handed over) is over, on every node."""
        for node in self.nodes:
            if node.port == port or node.process.poll() is not None:
                continue
            try:
                if "cluster_state:ok" not in cli(node.port, "CLUSTER", "INFO", tls=self.tls):
                    return False
                listed = cli(node.port, "CLUSTER", "NODES", tls=self.tls)
            except subprocess.CalledProcessError:
                return False
            for line in listed.splitlines():
                fields = line.split()
                if _port(fields[1]) == port and fields[8:]:
                    return False
        return True

    def masters(self) -> dict[int, Server]:
        """Port -> server of each live master, from CLUSTER NODES."""
        by_port = {server.port: server for server in self.nodes if server.process.poll() is None}
        for server in by_port.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                listed = cli(server.port, "CLUSTER", "NODES", tls=self.tls)
                break
        masters = {}
        for line in listed.splitlines():
            fields = line.split()
            port = _port(fields[1])
            if "master" in fields[2] and "fail" not in fields[2] and port in by_port:
                masters[port] = by_port[port]
        return masters


def _port(address: str) -> int:
    """The port of a ``CLUSTER NODES`` address, ``host:port@cluster_port``."""
    return int(address.partition("@")[0].rpartition(":")[2])


def cli(port: int, *command: str, tls: Certificates | None = None) -> str:
    program = require_program("redis-cli", "redis-tools")
    done = subprocess.run(
        [program, "-h", "127.0.0.1", "-p", str(port), *_cli_tls(tls), *command],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout.strip()


def _cli_tls(tls: Certificates | None) -> list[str]:
    """redis-cli's options to talk to a server set up with ``tls`` (with a client certificate)."""
    if tls is None:
        return []
    return ["--tls", "--cacert", str(tls.ca), "--cert", str(tls.client_cert), "--key", str(tls.client_key)]


def _start(
    folder: Path,
    name: str,
    lines: list[str],
    later: contextlib.ExitStack,
    *options: str,
    tls: Certificates | None = None,
    listen_tls: bool = True,
) -> Server:
    program = require_program("redis-server", "redis-server")
    port = free_port()
    config = folder / f"{name}.conf"
    if tls is None:
        listen = [f"port {port}"]
    else:  # the cluster bus and replication over TLS too; ignored where they do not apply
        settings = [*tls.redis_settings(), ("tls-replication", "yes"), ("tls-cluster", "yes")]
        ports = ["port 0", f"tls-port {port}"] if listen_tls else [f"port {port}"]
        listen = [*ports, *(f"{key} {value}" for key, value in settings)]
    config.write_text("\n".join([*listen, "bind 127.0.0.1", f"dir {folder}", *lines]) + "\n")
    log = folder / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen([program, str(config), *options], stdout=output, stderr=subprocess.STDOUT)
    later.enter_context(listening(process, port, log))
    return Server(port, log, process)


def _in_sync(replication: str) -> bool:
    """A master, or a replica whose link is up and not loading a full sync."""
    if "role:master" in replication:
        return True
    return "master_link_status:up" in replication and "master_sync_in_progress:1" not in replication


def _until(condition: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError, ValueError, IndexError):
            if check():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {condition}")


# No files, and a replica's first sync at once (not after redis-server's 5 s of waiting for more).
DATA = ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]


@contextlib.contextmanager
def running_sentinel_group(
    folder: Path, tls: Certificates | None = None, *, sentinels_listen_tls: bool = True
) -> Iterator[SentinelGroup]:
    """With ``tls`` but not ``sentinels_listen_tls``: the sentinels talk TLS to the master
    and the replica but listen in plaintext (the URL says ``sentinel_ssl=no``)."""
    sentinel_tls = tls if sentinels_listen_tls else None
    with contextlib.ExitStack() as later:
        master = _start(folder, "master", DATA, later, tls=tls)
        replica = _start(folder, "replica", [*DATA, f"replicaof 127.0.0.1 {master.port}"], later, tls=tls)
        watch = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} 3000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        sentinels = tuple(
            _start(
                folder, f"sentinel-{n}", watch, later, "--sentinel", tls=tls, listen_tls=sentinels_listen_tls
            )
            for n in range(3)
        )
        _until(
            "the replica is in sync",
            lambda: "master_link_status:up" in cli(replica.port, "INFO", "replication", tls=tls),
        )
        _until(
            "every sentinel knows the replica and the other sentinels",
            lambda: all(
                "num-slaves\n1" in (info := cli(s.port, "SENTINEL", "master", SERVICE, tls=sentinel_tls))
                and "num-other-sentinels\n2" in info
                for s in sentinels
            ),
        )
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        url = f"{_scheme('sentinel', tls)}://{hosts}/{SERVICE}/0{_ca_query(tls)}"
        if tls and not sentinels_listen_tls:
            url += "&sentinel_ssl=no"
        yield SentinelGroup(url, master, replica, sentinels, tls, sentinel_tls)


@contextlib.contextmanager
def running_redis_cluster(
    folder: Path, tls: Certificates | None = None, *, replicas: int = 1
) -> Iterator[RedisClusterSet]:
    """Three masters, with ``replicas`` replicas each."""
    with contextlib.ExitStack() as later:
        nodes = tuple(
            _start(
                folder,
                f"node-{n}",
                [
                    *DATA,
                    "cluster-enabled yes",
                    f"cluster-config-file nodes-{n}.conf",
                    f"cluster-node-timeout {NODE_TIMEOUT_MS}",
                    f"cluster-port {free_port()}",  # not the default port + 10000: it may be over 65535
                ],
                later,
                tls=tls,
            )
            for n in range(3 * (1 + replicas))
        )
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        program = require_program("redis-cli", "redis-tools")
        subprocess.run(
            [
                *(program, *_cli_tls(tls), "--cluster", "create", *addresses),
                *("--cluster-replicas", str(replicas), "--cluster-yes"),
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        url = f"{_scheme('cluster', tls)}://{','.join(addresses[:3])}/{_ca_query(tls)}"
        cluster = RedisClusterSet(url, nodes, tls)
        cluster.wait_settled()
        yield cluster


def _scheme(mode: str, tls: Certificates | None) -> str:
    return f"{'rediss' if tls else 'redis'}+{mode}"


def _ca_query(tls: Certificates | None) -> str:
    return "" if tls is None else f"?ssl_ca_certs={tls.ca}"
