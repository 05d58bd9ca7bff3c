"""A session store in an SQLite file, shared by the worker processes of one machine.

Reads are cached per connection (one per thread of each process) and validated with
``PRAGMA data_version``, which changes when any other connection, in this process or
another, commits to the file. While nothing has changed, a load costs that pragma instead
of a ``SELECT`` and a JSON decode; after any change the cache starts again empty, so a
logout, a data change or a new session written elsewhere is seen by the very next read.
Expiry is checked against the clock on every read, cached or not.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import SessionError
from ..lru import BoundedLRU, footprint
from .base import check_ttl, dump, load

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SQLiteStore", "use_wal"]

PURGE_EVERY = 100
#: Bounds of each connection's read cache (bytes of decoded data in memory).
CACHE_ENTRIES = 1024
CACHE_BYTES = 2 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shibwsgi_sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS shibwsgi_sessions_expires ON shibwsgi_sessions (expires);
"""
_GET = "SELECT data, expires FROM shibwsgi_sessions WHERE id = ? AND expires > ?"
_VERSION = "PRAGMA data_version"
_SET = (
    "INSERT INTO shibwsgi_sessions (id, data, expires) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires"
)
_UPDATE = "UPDATE shibwsgi_sessions SET data = ?, expires = ? WHERE id = ? AND expires > ?"
_DELETE = "DELETE FROM shibwsgi_sessions WHERE id = ?"
_PURGE = "DELETE FROM shibwsgi_sessions WHERE expires <= ?"

# Connections that crossed a fork: the child must neither use nor close them
# (https://sqlite.org/howtocorrupt.html#fork), and dropping one would close it.
_INHERITED: list[sqlite3.Connection] = []


class SQLiteStore:
    """Sessions in an SQLite database file, safe across threads and forked processes.

    The default for one machine running several uWSGI worker processes: the file
    uses WAL journaling, writers wait up to ``timeout`` seconds for each other,
    and each thread of each process has its own connection (opened lazily, so
    forking after construction is fine). The file's directory must be writable
    by the user the application runs as. ``":memory:"`` gives each thread its
    own empty database, so it only suits single-threaded tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
    ) -> None:
        self._path = os.fspath(path)
        self._clock = clock
        self._timeout = timeout
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._sets = itertools.count(1)
        # Fail at configuration time, not at the first login.
        self._open().close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session's data, or ``None`` if it is absent or expired."""
        now = self._clock()
        try:
            handle = self._handle()
            connection, cache = handle.connection, handle.cache
            version = connection.execute(_VERSION).fetchone()[0]
            if version == handle.version:
                entry = cache.get(session_id)
                if entry is not None and entry[0] > now:
                    return entry[1]
            else:
                cache.clear()
                handle.version = version
            row = connection.execute(_GET, (session_id, now)).fetchone()
        except sqlite3.Error as exc:
            raise self._error("read a session", exc) from exc
        if row is None:
            cache.pop(session_id)
            return None
        text, expires = row
        data = load(text)
        cache.put(session_id, (expires, data), footprint(data))
        return data

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` for ``ttl`` seconds, replacing any previous data."""
        self._write(session_id, data, ttl, only_if_live=False)

    def update(self, session_id: str, data: dict[str, Any], ttl: int) -> bool:
        """Replace the data of a live session; ``False`` (nothing written) if it is gone."""
        return self._write(session_id, data, ttl, only_if_live=True)

    def delete(self, session_id: str) -> None:
        """Forget the session; absent sessions are not an error."""
        try:
            handle = self._handle()
            handle.cache.pop(session_id)
            handle.connection.execute(_DELETE, (session_id,))
        except sqlite3.Error as exc:
            raise self._error("delete a session", exc) from exc

    def _write(self, session_id: str, data: dict[str, Any], ttl: int, *, only_if_live: bool) -> bool:
        check_ttl(ttl)
        text = dump(data)
        now = self._clock()
        try:
            handle = self._handle()
            # This connection's own commits leave data_version as it is.
            handle.cache.pop(session_id)
            if only_if_live:
                cursor = handle.connection.execute(_UPDATE, (text, now + ttl, session_id, now))
                return cursor.rowcount == 1
            handle.connection.execute(_SET, (session_id, text, now + ttl))
            # Sessions that are never read again would otherwise stay forever.
            if next(self._sets) % PURGE_EVERY == 0:
                handle.connection.execute(_PURGE, (now,))
        except sqlite3.Error as exc:
            raise self._error("write a session", exc) from exc
        return True

    def close(self) -> None:
        """Close this process's connections; using the store again reopens them.

        Call it when no other thread is using the store.
        """
        self._local = threading.local()
        for handle in list(self._handles):
            handle.close()

    def _handle(self) -> _Handle:
        pid = os.getpid()
        handle: _Handle | None = getattr(self._local, "handle", None)
        if handle is not None and handle.pid == pid:
            return handle
        handle = _Handle(self._open(), pid)
        self._handles.add(handle)
        self._local.handle = handle
        return handle

    def _open(self) -> sqlite3.Connection:
        try:
            # Closing may happen on another thread (close(), or when a thread ends),
            # and each connection is only ever used by the thread that opened it.
            connection = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error("open the database", exc) from exc
        try:
            use_wal(connection, self._timeout)
            # Safe from corruption under WAL; a power cut may only lose the latest logins.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            connection.close()
            raise self._error("set up the database", exc) from exc
        return connection

    def _error(self, action: str, exc: sqlite3.Error) -> SessionError:
        return SessionError(
            f"SQLite session store {self._path!r} could not {action}: {exc}. Check that the "
            "file and its directory exist and are writable by the user the application runs "
            "as (the uWSGI user; SQLite also creates -wal and -shm files beside the database), "
            "that the disk is not full, and that it is on a local file system, not NFS."
        )


def use_wal(connection: sqlite3.Connection, timeout: float) -> str:
    """Switch the connection's file to WAL journaling; return the journal mode now in effect.

    The mode is stored in the file, so the first connection to get here switches it. The
    switch needs every other connection to the file gone, and SQLite answers "database is
    locked" at once instead of calling the busy handler: when worker processes open a new
    file together (uWSGI's lazy-apps), the others retry for up to ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            mode: str = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        return mode


class _Handle:
    """One thread's connection and read cache; the connection closes when the thread ends."""

    __slots__ = ("__weakref__", "cache", "close", "connection", "pid", "version")

    def __init__(self, connection: sqlite3.Connection, pid: int) -> None:
        self.connection = connection
        self.pid = pid
        self.cache: BoundedLRU[str, tuple[float, dict[str, Any]]] = BoundedLRU(
            max_entries=CACHE_ENTRIES, max_bytes=CACHE_BYTES
        )
        self.version: int | None = None
        self.close = weakref.finalize(self, _close_in_owner, connection, pid)


def _close_in_owner(connection: sqlite3.Connection, pid: int) -> None:
    if os.getpid() == pid:
        connection.close()
    else:
        _INHERITED.append(connection)
