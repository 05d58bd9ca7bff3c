"""The store's reads on each thread's own socket (one Redis, Sentinel, and Cluster by the
slot table): never another key's value, never a value older than the last write on any node,
never an error taken for a missing session."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from ha_redis import RedisClusterSet, cli, running_redis_cluster

from shibwsgi import SessionError
from shibwsgi.sessions import RedisStore
from shibwsgi.sessions.redis_ha import LazyCluster
from tests.test_attack_redis import _slot_owner

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytest_plugins = ["store_fixtures"]
pytestmark = pytest.mark.servers
redis = pytest.importorskip("redis")

MODES = ["redis_url", "sentinel_url", "cluster_url"]


def direct_client(url: str) -> Any:
    """A plain redis-py client on the URL's servers, outside the store."""
    parts = urlsplit(url)
    nodes = [
        (host, int(port)) for host, _, port in (node.rpartition(":") for node in parts.netloc.split(","))
    ]
    if parts.scheme == "redis+cluster":
        return redis.RedisCluster(host=nodes[0][0], port=nodes[0][1])
    if parts.scheme == "redis+sentinel":
        return redis.sentinel.Sentinel(nodes).master_for(parts.path.split("/")[1])
    return redis.Redis.from_url(url)


@pytest.fixture(params=MODES)
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def test_reads_on_many_threads_get_only_their_own_sessions(url: str, prefix: str) -> None:
    store = RedisStore(url, prefix=prefix)
    try:
        owners = [f"user{n}" for n in range(24)]  # keys over every cluster master
        for owner in owners:
            store.set(owner, {"owner": owner, "pad": "x" * len(owner)}, 60)
        wrong: list[str] = []

        def read(mine: list[str]) -> None:
            for _ in range(200):
                for owner in mine:
                    data = store.get(owner)
                    if data != {"owner": owner, "pad": "x" * len(owner)}:
                        wrong.append(f"{owner} got {data}")

        threads = [threading.Thread(target=read, args=(owners[n::6],)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []
    finally:
        store.close()


def test_read_sees_the_last_write_and_the_logout_made_on_another_node(url: str, prefix: str) -> None:
    here, there = RedisStore(url, prefix=prefix), RedisStore(url, prefix=prefix)
    try:
        there.set("s", {"user": "alice", "seen": 1}, 60)
        assert here.get("s") == {"user": "alice", "seen": 1}  # now held in here's decode cache
        assert there.update("s", {"user": "alice", "seen": 2}, 60)  # same length, other bytes
        assert here.get("s") == {"user": "alice", "seen": 2}
        there.delete("s")  # the logout, on another node
        assert here.get("s") is None
        assert not here.update("s", {"user": "alice", "seen": 3}, 60)  # and it stays logged out
        assert there.get("s") is None
    finally:
        here.close()
        there.close()


def test_error_answer_to_a_read_is_a_session_error_not_a_missing_session(url: str, prefix: str) -> None:
    store = RedisStore(url, prefix=prefix)
    client = direct_client(url)
    try:
        store.set("s", {"user": "alice"}, 60)
        assert store.get("s") == {"user": "alice"}  # the thread's connection is open
        client.delete(prefix + "s")
        client.rpush(prefix + "s", "not a session")  # GET answers WRONGTYPE
        with pytest.raises(SessionError):
            store.get("s")
        client.delete(prefix + "s")
        assert store.get("s") is None  # the connection is still in step
    finally:
        client.close()
        store.close()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterSet]:
    """A cluster of the test's own: these tests move its slots."""
    with running_redis_cluster(tmp_path) as cluster:
        yield cluster


def test_cluster_read_follows_a_slot_moved_to_another_master(
    redis_cluster: RedisClusterSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStore(redis_cluster.url, prefix="p:")
    try:
        store.set("alice", {"user": "alice", "seen": 1}, 60)
        with monkeypatch.context() as patched:  # the read is the thread's own, not RedisCluster's
            patched.setattr(LazyCluster, "get", lambda self, name: pytest.fail("read through RedisCluster"))
            assert store.get("alice") == {"user": "alice", "seen": 1}
        store.delete("alice")  # a master refuses to give up a slot it holds keys of
        slot, owner, other, other_id = _slot_owner(redis_cluster, "p:alice")
        for port in (other, owner, *(p for p in redis_cluster.masters() if p not in (owner, other))):
            cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", other_id)
        cli(other, "SET", "p:alice", '{"user":"alice","seen":2}')
        # The thread's connection to the old master gets MOVED: RedisCluster follows it.
        assert store.get("alice") == {"user": "alice", "seen": 2}
        with monkeypatch.context() as patched:  # and the next read goes to the new master itself
            patched.setattr(LazyCluster, "get", lambda self, name: pytest.fail("read through RedisCluster"))
            assert store.get("alice") == {"user": "alice", "seen": 2}
        cli(other, "DEL", "p:alice")
        assert store.get("alice") is None
    finally:
        store.close()
