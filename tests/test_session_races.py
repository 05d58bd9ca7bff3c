"""Sessions under concurrency: no write brings back a logged-out session, no cache serves a stale one."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import HA_KINDS
from webtest import TestApp

from shibwsgi import ConfigError, Identity, SSOMiddleware
from shibwsgi.lru import BoundedLRU
from shibwsgi.sessions import SQLiteStore
from shibwsgi.sessions.manager import TOUCH_INTERVAL, Session, SessionManager
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.synchronize import Event
    from pathlib import Path

    from store_fixtures import FakeClock, MakeStore

    from shibwsgi.sessions import SessionStore

# The store, make_store, clock, prefix and redis_client fixtures.
pytest_plugins = ["store_fixtures"]

ALL_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.servers),
    *HA_KINDS,
]
SHARED_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.servers),
    *HA_KINDS,
]
CLOCKED_KINDS = ["memory", "sqlite"]
LONG = 10**8
START = 1_700_000_000.0
TOUCHING_PROCESSES = 4
LOADS_AFTER_LOGOUT = 100
KEY = "k" * 32
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}

ALICE = Identity(
    "alice@example.org",
    {"groups": ("staff", "movie-editors"), "mail": ("alice@example.org",)},
    profile="shibboleth",
    session_id="_front-end-session",
)


def two_workers(make_store: MakeStore, kind: str) -> tuple[SessionStore, SessionStore]:
    """The same sessions seen through two workers' stores (memory: one process, one store)."""
    first = make_store(kind)
    return first, first if kind == "memory" else make_store(kind)


def manager(store: SessionStore, clock: Callable[[], float]) -> SessionManager:
    return SessionManager(store, idle_timeout=LONG, absolute_timeout=LONG, clock=clock)


def logged_in_on_two_workers(
    make_store: MakeStore, kind: str, clock: FakeClock
) -> tuple[SessionManager, SessionManager, Session]:
    """Alice logged in through worker A, whose request has just loaded her session."""
    store_a, store_b = two_workers(make_store, kind)
    worker_a, worker_b = manager(store_a, clock), manager(store_b, clock)
    loaded = worker_a.load(worker_a.start(ALICE).id)
    assert loaded is not None and loaded.identity == ALICE
    return worker_a, worker_b, loaded


# --- Logout racing a request that loaded the session just before ---------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_logout_racing_touch_cannot_resurrect_session(make_store: MakeStore, kind: str) -> None:
    store = make_store(kind)
    store.set("abc", {"user": "alice", "seen": 1}, ttl=60)
    loaded = store.get("abc")
    assert loaded is not None

    store.delete("abc")  # /logout
    assert store.update("abc", {**loaded, "seen": 2}, ttl=60) is False  # the racing request's touch

    assert store.get("abc") is None


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_logout_on_another_worker_racing_touch_cannot_resurrect_session(
    make_store: MakeStore, clock: FakeClock, kind: str
) -> None:
    worker_a, worker_b, loaded = logged_in_on_two_workers(make_store, kind, clock)
    worker_b.end(loaded.id)
    clock.advance(TOUCH_INTERVAL)
    assert worker_a.touch(loaded) is False

    assert worker_a.load(loaded.id) is None
    assert worker_b.load(loaded.id) is None


@pytest.mark.parametrize("kind", CLOCKED_KINDS)
def test_touch_after_expiry_cannot_revive_session(make_store: MakeStore, clock: FakeClock, kind: str) -> None:
    store = make_store(kind)
    store.set("abc", {"v": 1}, ttl=60)
    clock.advance(60)
    assert store.update("abc", {"v": 2}, ttl=60) is False
    assert store.get("abc") is None


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_touch_of_a_live_session_writes_it(make_store: MakeStore, kind: str) -> None:
    store_a, store_b = two_workers(make_store, kind)
    store_a.set("abc", {"v": 1}, ttl=60)
    assert store_b.get("abc") == {"v": 1}
    assert store_a.update("abc", {"v": 2}, ttl=60) is True
    assert store_b.get("abc") == {"v": 2}
    assert store_a.get("abc") == {"v": 2}


def _touch_until_logged_out(
    store: SessionStore, session_id: str, logged_out: Event, touches: Any, ticks: Any
) -> None:
    """Runs in a forked worker: load and touch as requests do; fail if a load after logout succeeds."""

    def clock() -> float:
        # One clock for all workers, TOUCH_INTERVAL later at every reading: every touch writes.
        with ticks.get_lock():
            ticks.value += 1
            return START + TOUCH_INTERVAL * float(ticks.value)

    worker = manager(store, clock)
    loads_after = 0
    deadline = time.monotonic() + 60
    while loads_after < LOADS_AFTER_LOGOUT and time.monotonic() < deadline:
        ended = logged_out.is_set()
        session = worker.load(session_id)
        if session is not None:
            assert not ended, "a session loaded after its logout had finished"
            time.sleep(random.uniform(0, 0.002))  # the request goes on; /logout may run meanwhile
            worker.touch(session)
            with touches.get_lock():
                touches.value += 1
        loads_after += ended
    assert loads_after == LOADS_AFTER_LOGOUT


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_logout_racing_touch_in_other_processes_cannot_resurrect_session(
    make_store: MakeStore, kind: str
) -> None:
    store = make_store(kind)
    session_id = manager(store, lambda: START).start(ALICE).id
    logout = make_store(kind)  # yet another worker's store
    context = multiprocessing.get_context("fork")
    logged_out, touches, ticks = context.Event(), context.Value("i", 0), context.Value("q", 0)
    workers = [
        context.Process(
            target=_touch_until_logged_out,
            args=(store, session_id, logged_out, touches, ticks),
            daemon=True,
        )
        for _ in range(TOUCHING_PROCESSES)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while touches.value < 20 * TOUCHING_PROCESSES and time.monotonic() < deadline:
        time.sleep(0.005)
    assert touches.value >= 20 * TOUCHING_PROCESSES, "the workers did not get going"

    logout.delete(session_id)
    logged_out.set()
    for worker in workers:
        worker.join(timeout=90)
    assert [worker.exitcode for worker in workers] == [0] * TOUCHING_PROCESSES
    for worker in workers:
        worker.close()
    assert store.get(session_id) is None
    assert logout.get(session_id) is None


# --- Per-worker read caches never serve a stale session -----------------------------------------


def _ended(writer: SessionStore, session_id: str) -> None:
    writer.delete(session_id)


def _changed(writer: SessionStore, session_id: str) -> None:
    writer.set(session_id, {"user": "alice", "groups": ["changed"]}, ttl=60)


def _touched(writer: SessionStore, session_id: str) -> None:
    assert writer.update(session_id, {"user": "alice", "groups": ["touched"]}, ttl=60)


def _replaced_by_a_shorter_one(writer: SessionStore, session_id: str) -> None:
    writer.set(session_id, {"user": "alice", "groups": []}, ttl=60)


CHANGES = [
    pytest.param(_ended, None, id="session ended on another worker"),
    pytest.param(_changed, {"user": "alice", "groups": ["changed"]}, id="data changed"),
    pytest.param(_touched, {"user": "alice", "groups": ["touched"]}, id="touched elsewhere"),
    pytest.param(_replaced_by_a_shorter_one, {"user": "alice", "groups": []}, id="data shrank"),
]
ORIGINAL = {"user": "alice", "groups": ["staff"]}


@pytest.mark.parametrize(("change", "expected"), CHANGES)
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_change_by_another_worker_is_seen_on_the_very_next_read(
    make_store: MakeStore,
    kind: str,
    change: Callable[[SessionStore, str], None],
    expected: dict[str, Any] | None,
) -> None:
    reader, writer = two_workers(make_store, kind)
    reader.set("abc", ORIGINAL, ttl=60)
    assert reader.get("abc") == ORIGINAL
    assert reader.get("abc") == ORIGINAL  # now served from the reader's cache, if it has one
    change(writer, "abc")
    assert reader.get("abc") == expected


@pytest.mark.parametrize(("change", "expected"), CHANGES)
@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_change_by_another_process_is_seen_on_the_very_next_read(
    make_store: MakeStore,
    kind: str,
    change: Callable[[SessionStore, str], None],
    expected: dict[str, Any] | None,
) -> None:
    reader, writer = make_store(kind), make_store(kind)
    reader.set("abc", ORIGINAL, ttl=60)
    assert reader.get("abc") == ORIGINAL
    assert reader.get("abc") == ORIGINAL
    context = multiprocessing.get_context("fork")
    child = context.Process(target=change, args=(writer, "abc"), daemon=True)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    child.close()
    assert reader.get("abc") == expected


@pytest.mark.parametrize(("change", "expected"), CHANGES)
def test_sqlite_change_by_another_thread_is_seen_on_the_very_next_read(
    make_store: MakeStore, change: Callable[[SessionStore, str], None], expected: dict[str, Any] | None
) -> None:
    store = make_store("sqlite")  # each thread has its own connection
    store.set("abc", ORIGINAL, ttl=60)
    assert store.get("abc") == ORIGINAL
    assert store.get("abc") == ORIGINAL
    thread = threading.Thread(target=change, args=(store, "abc"))
    thread.start()
    thread.join()
    assert store.get("abc") == expected


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_new_session_written_elsewhere_is_found(make_store: MakeStore, kind: str) -> None:
    reader, writer = two_workers(make_store, kind)
    assert reader.get("new") is None
    writer.set("new", ORIGINAL, ttl=60)
    assert reader.get("new") == ORIGINAL


@pytest.mark.parametrize("kind", CLOCKED_KINDS)
def test_cached_session_still_expires(make_store: MakeStore, clock: FakeClock, kind: str) -> None:
    store = make_store(kind)
    store.set("abc", ORIGINAL, ttl=60)
    assert store.get("abc") == store.get("abc") == ORIGINAL
    clock.advance(60)
    assert store.get("abc") is None


@pytest.mark.parametrize("kind", CLOCKED_KINDS)
def test_session_expiry_reached_ends_it_for_the_manager(
    make_store: MakeStore, clock: FakeClock, kind: str
) -> None:
    store = make_store(kind)
    worker = SessionManager(store, idle_timeout=600, absolute_timeout=3600, clock=clock)
    session_id = worker.start(ALICE).id
    assert worker.load(session_id) is not None
    assert worker.load(session_id) is not None
    clock.advance(600)
    assert worker.load(session_id) is None


def test_unchanged_sqlite_store_costs_one_pragma_per_read(make_store: MakeStore) -> None:
    store = make_store("sqlite")
    assert isinstance(store, SQLiteStore)
    store.set("abc", ORIGINAL, ttl=60)
    first = store.get("abc")
    statements: list[str] = []
    store._handle().connection.set_trace_callback(statements.append)
    assert store.get("abc") is first
    assert statements == ["PRAGMA data_version"]

    with sqlite3.connect(store._path) as other:  # any other connection's commit
        other.execute("UPDATE shibwsgi_sessions SET expires = expires + 1 WHERE id = 'abc'")
    statements.clear()
    again = store.get("abc")
    assert again == first and again is not first
    assert [s.split()[0] for s in statements] == ["PRAGMA", "SELECT"]


# --- Through the middleware: two workers sharing one store ----------------------------------------


def _log_out(app: TestApp) -> None:
    app.get("/logout", status=302)


def _log_out_in_another_process(app: TestApp) -> None:
    child = multiprocessing.get_context("fork").Process(target=_log_out, args=(app,), daemon=True)
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    child.close()


@pytest.mark.parametrize("log_out", [_log_out, _log_out_in_another_process], ids=["worker", "process"])
@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_logout_on_another_worker_is_anonymous_on_the_very_next_request(
    make_store: MakeStore, kind: str, log_out: Callable[[TestApp], None]
) -> None:
    def worker() -> TestApp:
        return TestApp(SSOMiddleware(echo_app, session=make_store(kind), secret_key=KEY), extra_environ=HTTPS)

    worker_a, worker_b = worker(), worker()
    worker_b.cookiejar = worker_a.cookiejar  # one browser
    front = environ_for("shibboleth", "alice@example.org", {})
    worker_a.get("/login", extra_environ=front, status=302)
    for app in (worker_a, worker_b, worker_a, worker_b):
        assert app.get("/page").json["identity"]["user"] == "alice@example.org"

    cookie = worker_a.cookies.copy()
    log_out(worker_b)
    # The logged-out cookie, replayed, is worthless on every worker.
    for app in (worker_a, worker_b):
        for name, value in cookie.items():
            app.set_cookie(name, value)
        assert app.get("/page").json["identity"] is None


# --- Unencodable text and the store interface ---------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lone_surrogate_is_stored_and_read_back_exactly(make_store: MakeStore, kind: str) -> None:
    store = make_store(kind)
    data = {"user": "Al\ud800ice", "groups": ["\udfff", "zoë \U0001f393"], "\ud83d": "key"}
    store.set("abc", data, ttl=60)
    assert store.get("abc") == data
    assert store.update("abc", {**data, "seen": 2}, ttl=60)
    assert store.get("abc") == {**data, "seen": 2}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_identity_with_lone_surrogate_survives_a_session(make_store: MakeStore, kind: str) -> None:
    odd = Identity("Al\ud800ice", {"name": ("Al\udfffice",)}, profile="openidc")
    worker = manager(make_store(kind), time.time)
    session = worker.start(odd)
    loaded = manager(make_store(kind) if kind != "memory" else worker.store, time.time).load(session.id)
    assert loaded is not None and loaded.identity == odd


class _OldStore:
    """A store written for the interface before conditional updates."""

    def get(self, session_id: str) -> None:
        return None

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        pass

    def delete(self, session_id: str) -> None:
        pass


def test_store_without_conditional_update_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="lacks update") as info:
        SSOMiddleware(echo_app, session=_OldStore(), secret_key=KEY)  # type: ignore[arg-type]
    assert info.value.setting == "session"


# --- The bounded cache the stores share -----------------------------------------------------------


def test_cache_is_bounded_by_entries() -> None:
    cache: BoundedLRU[int, str] = BoundedLRU(max_entries=3, max_bytes=1000)
    for key in range(10):
        cache.put(key, "x", 1)
        assert len(cache) <= 3
    assert cache.get(9) == "x"


def test_cache_is_bounded_by_bytes() -> None:
    cache: BoundedLRU[int, str] = BoundedLRU(max_entries=100, max_bytes=100)
    for key in range(10):
        cache.put(key, "x" * 40, 40)
        assert cache.size <= 100
    cache.put(99, "too big", 101)
    assert cache.get(99) is None
    assert cache.size <= 100


def test_cache_replaces_and_forgets() -> None:
    cache: BoundedLRU[str, str] = BoundedLRU(max_entries=10, max_bytes=100)
    cache.put("a", "one", 30)
    cache.put("a", "two", 20)
    assert (cache.get("a"), cache.size) == ("two", 20)
    cache.pop("a")
    cache.pop("never")
    assert (cache.get("a"), cache.size, len(cache)) == (None, 0, 0)


# --- The manager's per-worker session cache -------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_manager_reuses_the_session_while_the_store_data_is_unchanged(
    make_store: MakeStore, clock: FakeClock, kind: str
) -> None:
    worker_a, worker_b, first = logged_in_on_two_workers(make_store, kind, clock)
    assert worker_a.load(first.id) is first

    clock.advance(TOUCH_INTERVAL)
    on_b = worker_b.load(first.id)
    assert on_b is not None and worker_b.touch(on_b)
    touched = worker_a.load(first.id)
    assert touched is not None and touched is not first
    assert touched.seen == clock.now and touched.identity is first.identity


def test_manager_cache_is_bounded_by_bytes(make_store: MakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from shibwsgi.sessions import manager as manager_module

    monkeypatch.setattr(manager_module, "SESSION_CACHE_BYTES", 300_000)
    worker = manager(make_store("memory"), time.time)
    for n in range(10):
        big = Identity(f"user{n}", {"groups": tuple(f"group-{n}-{i:05d}" for i in range(5_000))})
        session = worker.load(worker.start(big).id)
        assert session is not None and session.identity == big
        assert worker._sessions.size <= 300_000


# --- Workers opening a new SQLite file together -------------------------------------------------

OPENING_PROCESSES = 8
OPENING_ROUNDS = 20


def _open_and_write(path: str, barrier: Any, worker: int) -> None:
    """Runs in a forked worker: construct the store as uWSGI's lazy-apps does, then write and read."""
    barrier.wait(timeout=30)
    store = SQLiteStore(path)
    store.set(f"session-{worker}", {"worker": worker}, ttl=60)
    assert store.get(f"session-{worker}") == {"worker": worker}


def test_workers_opening_a_new_sqlite_file_together_all_start(tmp_path: Path) -> None:
    """One worker switching a new file to WAL made the others fail with "database is locked";
    under uWSGI's need-app that one failed worker took the whole instance down."""
    context = multiprocessing.get_context("fork")
    for round_ in range(OPENING_ROUNDS):
        path = str(tmp_path / f"sessions-{round_}.sqlite3")
        barrier = context.Barrier(OPENING_PROCESSES)
        workers = [
            context.Process(target=_open_and_write, args=(path, barrier, worker), daemon=True)
            for worker in range(OPENING_PROCESSES)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * OPENING_PROCESSES, f"round {round_}"
        for worker in workers:
            worker.close()
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert db.execute("SELECT count(*) FROM shibwsgi_sessions").fetchone() == (OPENING_PROCESSES,)
