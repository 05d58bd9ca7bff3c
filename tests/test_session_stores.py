"""The session stores: one contract for all, then what each backend adds."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import HA_KINDS, running_sentinel_group
from support import free_port

from shibwsgi.errors import ConfigError, SessionError
from shibwsgi.sessions import (
    MemoryStore,
    RedisStore,
    SessionStore,
    SQLiteStore,
    store_from_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from store_fixtures import FakeClock, MakeStore

# The store, make_store, clock, prefix and redis_client fixtures.
pytest_plugins = ["store_fixtures"]

CLOCKED_KINDS = ["memory", "sqlite"]
SHARED_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.servers),
    *HA_KINDS,
]

WORKERS = 4
SESSIONS_PER_WORKER = 200


# --- The contract every store keeps ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty"),
        pytest.param({"user": "alice@example.org", "n": 3, "ok": True, "none": None}, id="scalars"),
        pytest.param({"user": "zoë", "name": "Ζωή 山田 🎓"}, id="unicode"),
        pytest.param(
            {"identity": {"attributes": {"affiliation": ["member", "staff"]}, "at": 1.5}},
            id="nested",
        ),
    ],
)
def test_round_trip(store: SessionStore, data: dict[str, Any]) -> None:
    store.set("abc", data, ttl=60)
    assert store.get("abc") == data


def test_set_keeps_its_own_copy(store: SessionStore) -> None:
    data = {"groups": ["a"]}
    store.set("abc", data, ttl=60)
    data["groups"].append("changed after set")
    assert store.get("abc") == {"groups": ["a"]}


def test_set_overwrites(store: SessionStore) -> None:
    store.set("abc", {"v": 1, "old": True}, ttl=60)
    store.set("abc", {"v": 2}, ttl=60)
    assert store.get("abc") == {"v": 2}


def test_sessions_are_separate(store: SessionStore) -> None:
    store.set("one", {"v": 1}, ttl=60)
    store.set("two", {"v": 2}, ttl=60)
    store.delete("one")
    assert store.get("one") is None
    assert store.get("two") == {"v": 2}


def test_delete(store: SessionStore) -> None:
    store.set("abc", {"v": 1}, ttl=60)
    store.delete("abc")
    assert store.get("abc") is None


def test_delete_absent_is_not_an_error(store: SessionStore) -> None:
    store.delete("never-set")


def test_get_absent(store: SessionStore) -> None:
    assert store.get("never-set") is None


@pytest.mark.parametrize("ttl", [0, -5, 1.5, True, "60", None])
def test_ttl_must_be_positive_whole_seconds(store: SessionStore, ttl: Any) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.set("abc", {}, ttl=ttl)
    assert store.get("abc") is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"when": object()}, id="object"),
        pytest.param({"x": float("nan")}, id="nan"),
        pytest.param({"raw": b"bytes"}, id="bytes"),
    ],
)
def test_data_must_be_json(store: SessionStore, data: dict[str, Any]) -> None:
    with pytest.raises(SessionError, match="JSON"):
        store.set("abc", data, ttl=60)


def test_threads_share_the_store(store: SessionStore) -> None:
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(50):
                session_id = f"t{thread}-{i}"
                store.set(session_id, {"thread": thread, "i": i}, ttl=60)
                assert store.get(session_id) == {"thread": thread, "i": i}
                if i % 2:
                    store.delete(session_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.get("t3-10") == {"thread": 3, "i": 10}
    assert store.get("t3-11") is None


# --- Expiry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CLOCKED_KINDS)
def test_session_expires_after_ttl(make_store: MakeStore, clock: FakeClock, kind: str) -> None:
    store = make_store(kind)
    store.set("abc", {"v": 1}, ttl=60)
    clock.advance(59.9)
    assert store.get("abc") == {"v": 1}
    clock.advance(0.1)
    assert store.get("abc") is None


@pytest.mark.parametrize("write", ["set", "update"])
@pytest.mark.parametrize("kind", CLOCKED_KINDS)
def test_overwrite_renews_ttl(make_store: MakeStore, clock: FakeClock, kind: str, write: str) -> None:
    store = make_store(kind)
    store.set("abc", {"v": 1}, ttl=60)
    clock.advance(50)
    getattr(store, write)("abc", {"v": 2}, ttl=60)
    clock.advance(50)
    assert store.get("abc") == {"v": 2}


@pytest.mark.parametrize("kind", CLOCKED_KINDS)
def test_expired_session_can_be_set_again(make_store: MakeStore, clock: FakeClock, kind: str) -> None:
    store = make_store(kind)
    store.set("abc", {"v": 1}, ttl=60)
    clock.advance(61)
    store.set("abc", {"v": 2}, ttl=60)
    assert store.get("abc") == {"v": 2}


def test_memory_store_purges_expired_sessions_on_set(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    for i in range(50):
        store.set(f"old-{i}", {}, ttl=10)
    clock.advance(11)
    for i in range(100):
        store.set(f"new-{i}", {}, ttl=10)
    assert set(store._entries) == {f"new-{i}" for i in range(100)}


def test_sqlite_store_purges_expired_rows(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SQLiteStore(path, clock=clock)
    try:
        for i in range(50):
            store.set(f"old-{i}", {}, ttl=10)
        clock.advance(11)
        for i in range(100):
            store.set(f"new-{i}", {}, ttl=10)
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT id FROM shibwsgi_sessions").fetchall()
    assert {row[0] for row in rows} == {f"new-{i}" for i in range(100)}


@pytest.mark.servers
def test_redis_session_expires_after_ttl(make_store: MakeStore, redis_client: Any, prefix: str) -> None:
    store = make_store("redis")
    store.set("abc", {"v": 1}, ttl=1)
    assert 0 < redis_client.pttl(prefix + "abc") <= 1000

    deadline = time.monotonic() + 1.8
    while store.get("abc") is not None:
        assert time.monotonic() < deadline, "Redis kept the session past its ttl"
        time.sleep(0.05)


@pytest.mark.servers
def test_redis_overwrite_renews_ttl(make_store: MakeStore, redis_client: Any, prefix: str) -> None:
    store = make_store("redis")
    store.set("abc", {"v": 1}, ttl=5)
    store.set("abc", {"v": 2}, ttl=500)
    assert 5 < redis_client.ttl(prefix + "abc") <= 500


# --- Several worker processes on one store -----------------------------------------------------


def _expected(worker: int, i: int) -> dict[str, Any]:
    return {"worker": worker, "i": i, "user": f"zoë-{worker}-{i}", "groups": ["staff"]}


def _work_in_child(store: SessionStore, worker: int, start: Any) -> None:
    """Runs in a forked process: write this worker's sessions, read everyone's."""
    start.wait(timeout=30)
    neighbour = (worker + 1) % WORKERS
    for i in range(SESSIONS_PER_WORKER):
        store.set(f"w{worker}-{i}", _expected(worker, i), ttl=3600)
        assert store.get(f"w{worker}-{i}") == _expected(worker, i)
        assert store.get(f"w{neighbour}-{i}") in (None, _expected(neighbour, i))
        if i % 10 == 0:
            store.set(f"w{worker}-scratch", {"i": i}, ttl=3600)
            store.delete(f"w{worker}-scratch")
    assert store.get("parent") == {"from": "parent"}


@pytest.mark.skipif(sys.platform == "win32", reason="uWSGI-style workers are forked")
@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_forked_workers_share_sessions(make_store: MakeStore, kind: str) -> None:
    store = make_store(kind)
    # Used before the fork, as a uWSGI master that loaded the app might.
    store.set("parent", {"from": "parent"}, ttl=3600)

    context = multiprocessing.get_context("fork")
    start = context.Barrier(WORKERS)
    workers = [
        context.Process(target=_work_in_child, args=(store, n, start), daemon=True) for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
    for worker in workers:
        worker.close()

    for n in range(WORKERS):
        for i in range(SESSIONS_PER_WORKER):
            assert store.get(f"w{n}-{i}") == _expected(n, i)
        assert store.get(f"w{n}-scratch") is None
    assert store.get("parent") == {"from": "parent"}


def _report_connection(store: SQLiteStore, parents: sqlite3.Connection, results: Connection) -> None:
    """Runs in a forked process: say whether the store gave it the parent's connection."""
    results.send(store._handle().connection is parents)
    store.set("child", {"ok": True}, ttl=60)
    results.close()


def test_forked_child_never_uses_parents_sqlite_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    try:
        store.set("parent", {}, ttl=60)
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        with receiver, sender:
            child = context.Process(
                target=_report_connection, args=(store, store._handle().connection, sender), daemon=True
            )
            child.start()
            child.join(timeout=30)
            shared = receiver.recv() if receiver.poll(1) else None
        assert (shared, child.exitcode) == (False, 0)
        child.close()
        assert store.get("child") == {"ok": True}
    finally:
        store.close()


# --- SQLite failures ---------------------------------------------------------------------------


def _open_store(path: str, user: pwd.struct_passwd | None, results: Connection) -> None:
    """Runs in a forked process: open a store, as ``user`` if given, and report the error."""
    if user is not None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    try:
        SQLiteStore(path).close()
    except SessionError as exc:
        results.send(str(exc))
    else:
        results.send("")
    results.close()


def _error_opening(path: Path, *, user: pwd.struct_passwd | None) -> str:
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    with receiver, sender:
        child = context.Process(target=_open_store, args=(str(path), user, sender), daemon=True)
        child.start()
        child.join(timeout=30)
        message: str = receiver.recv() if receiver.poll(1) else f"child exited {child.exitcode}"
    child.close()
    return message


def _unwritable_directory(tmp_path: Path) -> Path:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "sessions.sqlite3"


def _beneath_a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain-file").write_text("")
    return tmp_path / "plain-file" / "sessions.sqlite3"


def _missing_directory(tmp_path: Path) -> Path:
    return tmp_path / "missing" / "sessions.sqlite3"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize(
    "make_path",
    [
        pytest.param(_unwritable_directory, id="directory not writable"),
        pytest.param(_beneath_a_file, id="parent is a file"),
        pytest.param(_missing_directory, id="directory missing"),
    ],
)
def test_sqlite_store_that_cannot_write_says_what_to_check(
    make_path: Callable[[Path], Path],
) -> None:
    # Root writes anywhere, so as root the store is opened by an unprivileged child.
    user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = make_path(Path(folder))
        message = _error_opening(path, user=user)
    assert str(path) in message
    assert "writable by the user the application runs as" in message
    assert "disk is not full" in message


# --- Redis specifics ---------------------------------------------------------------------------


@pytest.mark.servers
def test_redis_store_keys_use_the_prefix(make_store: MakeStore, redis_client: Any, prefix: str) -> None:
    make_store("redis").set("abc", {"v": 1}, ttl=60)
    assert redis_client.get(prefix + "abc") == b'{"v":1}'


@pytest.mark.servers
def test_redis_store_accepts_a_client(redis_client: Any, prefix: str) -> None:
    store = RedisStore(redis_client, prefix=prefix)
    store.set("abc", {"v": 1}, ttl=60)
    assert store.get("abc") == {"v": 1}
    port = redis_client.connection_pool.connection_kwargs["port"]
    assert repr(store).startswith(f"RedisStore('redis://127.0.0.1:{port}/0'")
    store.close()
    assert redis_client.ping()


# -- A store made from a URL: one connection per thread -------------------------------------------


@pytest.mark.servers
def test_redis_connection_dropped_by_the_server_is_reopened_without_an_error(
    make_store: MakeStore, redis_client: Any, prefix: str
) -> None:
    store = make_store("redis")
    store.set("abc", {"v": 1}, ttl=60)
    own = redis_client.client_id()
    # An idle timeout or a restart: the server closes every connection but this one.
    for client in redis_client.client_list():
        if int(client["id"]) != own:
            redis_client.client_kill_filter(_id=int(client["id"]))
    assert store.get("abc") == {"v": 1}
    assert store.update("abc", {"v": 2}, ttl=60)
    assert store.get("abc") == {"v": 2}


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["redis", "sentinel"])
@pytest.mark.parametrize("read_first", [0, 3], ids=["after the send", "midway through the reply"])
def test_redis_command_interrupted_midway_never_leaves_its_reply_to_the_next(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch, read_first: int, kind: str
) -> None:
    """A request interrupted between sending GET and reading the whole reply (a signal, a
    timeout): the next command on that thread must not read the stale reply as its own."""
    from shibwsgi.sessions import redis_threads

    armed: list[bool] = []
    original = redis_threads.exchange

    def interrupting(redis: Any, sock: Any, command: bytes) -> Any:
        if not armed:
            return original(redis, sock, command)
        armed.clear()
        sock.sendall(command)
        if read_first:
            sock.recv(read_first)
        raise KeyboardInterrupt

    monkeypatch.setattr(redis_threads, "exchange", interrupting)
    store = make_store(kind)
    store.set("alice", {"user": "alice"}, ttl=60)
    store.set("bob", {"user": "bob"}, ttl=60)
    armed.append(True)
    with pytest.raises(KeyboardInterrupt):
        store.get("alice")
    assert store.get("bob") == {"user": "bob"}
    assert store.get("alice") == {"user": "alice"}


def _read_own_sessions(store: SessionStore, thread: int, wrong: list[str]) -> None:
    for round_ in range(200):
        session_id = f"t{thread}-{round_ % 5}"
        data = store.get(session_id)
        if data != {"thread": thread, "n": round_ % 5}:
            wrong.append(f"thread {thread} read {data!r} for {session_id}")


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["redis", "sentinel", "cluster"])
def test_thread_that_ends_closes_its_redis_connection_without_the_cycle_collector(
    make_store: MakeStore, kind: str
) -> None:
    """redis-py's connections sit in reference cycles: a thread's connection left to the cycle
    collector may have its socket finalized first (an unclosed-socket ResourceWarning)."""
    store = make_store(kind)
    store.set("abc", {"v": 1}, ttl=60)
    sockets: list[Any] = []

    def read() -> None:
        assert store.get("abc") == {"v": 1}
        client = store._client  # type: ignore[attr-defined]
        connections = client._nodes.values() if kind == "cluster" else [client]
        sockets.extend(each._local.held[3] for each in connections)

    gc.disable()
    try:
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        assert sockets and all(sock.fileno() == -1 for sock in sockets)
    finally:
        gc.enable()


@pytest.mark.servers
def test_redis_threads_each_read_their_own_replies(make_store: MakeStore) -> None:
    store = make_store("redis")
    for thread in range(8):
        for n in range(5):
            store.set(f"t{thread}-{n}", {"thread": thread, "n": n}, ttl=60)
    wrong: list[str] = []
    threads = [threading.Thread(target=_read_own_sessions, args=(store, t, wrong)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def _read_in_a_loop(store: SessionStore, session_id: str, start: Any, reply: Connection | None) -> list[Any]:
    start.wait(timeout=30)
    wrong = [data for data in (store.get(session_id) for _ in range(300)) if data != {"id": session_id}]
    if reply is not None:
        reply.send(wrong)
    return wrong


@pytest.mark.servers
def test_redis_connection_opened_before_a_fork_is_not_shared(make_store: MakeStore) -> None:
    """uWSGI forks its workers from a master that may have used the store: parent and child
    reading at the same moment on one inherited socket would read each other's replies."""
    store = make_store("redis")
    for session_id in ("parent", "child"):
        store.set(session_id, {"id": session_id}, ttl=60)  # the parent's connection is open
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_a_loop, args=(store, "child", start, send), daemon=True)
    child.start()
    assert _read_in_a_loop(store, "parent", start, None) == []
    assert receive.recv() == []
    child.join(timeout=30)
    assert child.exitcode == 0
    assert store.get("parent") == {"id": "parent"}  # the child's exit closed nothing of ours


@pytest.mark.servers
def test_redis_error_reply_is_a_session_error_and_the_connection_stays_in_step(
    make_store: MakeStore, redis_client: Any, prefix: str
) -> None:
    store = make_store("redis")
    redis_client.rpush(prefix + "listed", "not a session")  # GET answers WRONGTYPE
    with pytest.raises(SessionError, match="WRONGTYPE"):
        store.get("listed")
    store.set("abc", {"v": 1}, ttl=60)
    assert store.get("abc") == {"v": 1}


@pytest.mark.servers
def test_redis_store_close_then_use_reopens(make_store: MakeStore) -> None:
    store = make_store("redis")
    store.set("abc", {"v": 1}, ttl=60)
    store.close()  # type: ignore[attr-defined]
    assert store.get("abc") == {"v": 1}


def test_redis_store_unreachable_raises_session_error() -> None:
    pytest.importorskip("redis")
    store = RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(SessionError, match="Redis server is running") as info:
            store.get("abc")
        assert "s3cret" not in str(info.value)
    finally:
        store.close()


def test_redis_store_without_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError, match=r"pip install shibwsgi\[redis\]") as info:
        RedisStore("redis://localhost/0")
    assert info.value.setting == "session"


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, shibwsgi.sessions; assert 'redis' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- store_from_url and repr -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "shown"),
    [
        pytest.param("memory:", MemoryStore, "MemoryStore(", id="memory:"),
        pytest.param("memory://", MemoryStore, "MemoryStore(", id="memory://"),
        pytest.param("MEMORY:", MemoryStore, "MemoryStore(", id="scheme case"),
        # {tmp} starts with "/", so this reads sqlite:///tmp/...
        pytest.param("sqlite://{tmp}/s.sqlite3", SQLiteStore, "'{tmp}/s.sqlite3'", id="absolute"),
        pytest.param("sqlite:rel/s.sqlite3", SQLiteStore, "'rel/s.sqlite3'", id="relative"),
        pytest.param("redis://localhost:6379/0", RedisStore, "'redis://localhost:6379/0'", id="redis"),
        pytest.param("rediss://cache.example:6380/2", RedisStore, "rediss://cache", id="rediss"),
        pytest.param("unix:///run/redis.sock?db=1", RedisStore, "'unix:///run/redis.sock?db=1'", id="unix"),
    ],
)
def test_store_from_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, kind: type, shown: str
) -> None:
    if kind is RedisStore:
        pytest.importorskip("redis")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    store = store_from_url(url.format(tmp=tmp_path))
    try:
        assert type(store) is kind
        assert shown.format(tmp=tmp_path) in repr(store)
    finally:
        if isinstance(store, (SQLiteStore, RedisStore)):
            store.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("memory", id="no colon"),
        pytest.param("memory:extra", id="memory with a path"),
        pytest.param("sqlite:", id="sqlite without a path"),
        pytest.param("sqlite://host/s.sqlite3", id="sqlite with a host"),
        pytest.param("sqlite::memory:", id="sqlite in memory"),
        pytest.param("postgresql://db/sessions", id="unknown scheme"),
        pytest.param("/var/lib/app/sessions.sqlite3", id="bare path"),
    ],
)
def test_store_from_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError, match="use memory:, sqlite:///") as info:
        store_from_url(url)
    assert info.value.setting == "session"


def test_store_from_url_rejection_masks_password() -> None:
    with pytest.raises(ConfigError) as info:
        store_from_url("postgresql://app:s3cret@db/sessions")
    assert "s3cret" not in str(info.value)
    assert "postgresql://app:***@db/sessions" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0", id="password"),
        pytest.param("redis://app:s3cret@host/0", "redis://app:***@host/0", id="user and password"),
        pytest.param("rediss://s3cret@host/0", "rediss://***@host/0", id="lone user part"),
        pytest.param(
            "unix:///run/redis.sock?db=1&password=s3cret",
            "unix:///run/redis.sock?db=1&password=***",
            id="password in query",
        ),
        pytest.param("redis://host:6379/0", "redis://host:6379/0", id="no password"),
    ],
)
def test_redis_store_repr_masks_password(url: str, shown: str) -> None:
    pytest.importorskip("redis")
    store = RedisStore(url)
    try:
        assert "s3cret" not in repr(store)
        assert repr(store) == f"RedisStore({shown!r}, prefix='shibwsgi:session:')"
    finally:
        store.close()


def test_repr_shows_kind_and_location(tmp_path: Path) -> None:
    sqlite_store = SQLiteStore(tmp_path / "s.sqlite3")
    sqlite_store.close()
    assert repr(sqlite_store) == f"SQLiteStore({str(tmp_path / 's.sqlite3')!r})"
    assert repr(MemoryStore()) == "MemoryStore(<this process>)"


@pytest.mark.servers
def test_write_fewer_replicas_confirm_than_min_replicas_asks_is_a_session_error(sentinel_url: str) -> None:
    pytest.importorskip("redis")
    store = RedisStore(sentinel_url + "?min_replicas=2&wait_timeout=0.05", prefix=f"test:{uuid.uuid4().hex}:")
    try:
        with pytest.raises(SessionError, match="confirmed by 1 of the 2 replicas"):
            store.set("abc", {"v": 1}, ttl=60)
        with pytest.raises(SessionError, match="could not delete a session"):
            store.delete("abc")
    finally:
        store.close()


@pytest.mark.servers
def test_logout_no_replica_confirmed_is_refused_not_left_for_a_failover_to_undo(tmp_path: Path) -> None:
    """With min_replicas=1 a logout the replica has not got is an error (503), not a success
    that a failover within the replication lag could undo; once the replica is back it works."""
    pytest.importorskip("redis")
    with running_sentinel_group(tmp_path) as group:
        store = RedisStore(group.url + "?min_replicas=1&wait_timeout=0.2")
        unconfirmed = RedisStore(group.url)
        try:
            store.set("abc", {"user": "alice"}, ttl=60)
            os.kill(group.replica.process.pid, signal.SIGSTOP)  # the replica stops reading
            try:
                with pytest.raises(SessionError, match="confirmed by 0 of the 1 replicas"):
                    store.delete("abc")
                unconfirmed.delete("abc")  # the same logout without min_replicas: "done"
            finally:
                os.kill(group.replica.process.pid, signal.SIGCONT)
            store.set("abc", {"user": "alice"}, ttl=60)
            store.delete("abc")
            assert store.get("abc") is None
        finally:
            store.close()
            unconfirmed.close()
