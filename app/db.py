"""SQLite storage of the movies: one connection per request, WAL mode, seeded once.

uWSGI forks its workers after loading the app, and an SQLite connection must not
cross a fork; so no connection lives at module level or between requests:
:func:`get_db` opens one lazily for the current request and the app context's
teardown closes it.

Several workers write to one file. WAL lets readers run beside the writer; the
busy timeout makes a writer wait for the lock instead of failing; every write
runs in one ``BEGIN IMMEDIATE`` transaction, so it takes the write lock before
reading anything and never meets a stale snapshot. Ids come from
``INTEGER PRIMARY KEY AUTOINCREMENT``: SQLite never hands out an id twice, even
after the newest movie is deleted, and never two processes the same one.

The ``roles`` table holds the app's own roles (``editor``, ``admin``), one row per
user and role; :mod:`app.roles` manages it and feeds it to the middleware.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g

from shibwsgi import ConfigError
from shibwsgi.sessions.sqlite import use_wal

__all__ = [
    "BUSY_TIMEOUT",
    "FIELDS",
    "MAX_ID",
    "SEED_MOVIES",
    "Movie",
    "all_roles",
    "connect",
    "delete_movie",
    "get_db",
    "get_movie",
    "grant_role",
    "init_app",
    "init_db",
    "insert_movie",
    "list_movies",
    "revoke_role",
    "roles_of",
    "set_roles",
    "update_movie",
    "utc_now",
]

log = logging.getLogger(__name__)

Movie = dict[str, Any]

#: Seconds a connection waits for another process's write lock.
BUSY_TIMEOUT = 10.0
#: SQLite's largest integer, and so the largest movie id.
MAX_ID = 2**63 - 1

#: The fields a client may set, in column order.
FIELDS = ("title", "director", "main_actor", "published")

SEED_MOVIES: tuple[Mapping[str, str | int], ...] = (
    {"title": "Hunger Games", "director": "Gary Ross", "main_actor": "Jennifer Lawrence", "published": 2012},
    {
        "title": "Lord of the Rings (The Fellowship of the Ring)",
        "director": "Peter Jackson",
        "main_actor": "Elijah Wood",
        "published": 2001,
    },
    {"title": "Titanic", "director": "James Cameron", "main_actor": "Leonardo DiCaprio", "published": 1997},
)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS movies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        director TEXT,
        main_actor TEXT,
        published INTEGER,
        created_by TEXT,
        created_at TEXT NOT NULL,
        updated_by TEXT,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE TABLE IF NOT EXISTS app_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """
    CREATE TABLE IF NOT EXISTS roles (
        user TEXT NOT NULL,
        role TEXT NOT NULL,
        granted_by TEXT,
        granted_at TEXT NOT NULL,
        PRIMARY KEY (user, role)
    )
    """,
)

_INSERT = """
    INSERT INTO movies (title, director, main_actor, published, created_by, created_at, updated_by, updated_at)
    VALUES (:title, :director, :main_actor, :published, :user, :now, :user, :now)
"""


def utc_now() -> str:
    """The current time in UTC, ISO 8601 (``2024-05-01T12:30:00.123Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(path: str) -> sqlite3.Connection:
    """A new connection in autocommit mode; :func:`_transaction` opens transactions explicitly."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


def init_db(path: str) -> None:
    """Create the tables and add the example movies, once in the life of the file.

    Safe when several worker processes start at the same moment: the first to
    take the write lock seeds, the others find the marker and skip. A database
    whose movies were all deleted stays empty.
    """
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigError("MOVIES_DB", "must be a file: every request opens its own connection")
    try:
        _create(path)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise
        raise _unusable(path, exc) from exc


def _create(path: str) -> None:
    with closing(connect(path)) as db:
        _use_wal(db)
        with _transaction(db):
            for statement in _SCHEMA:
                db.execute(statement)
            marker = db.execute(
                "INSERT OR IGNORE INTO app_meta (key, value) VALUES ('seeded_at', ?)", (utc_now(),)
            )
            if marker.rowcount == 1:
                now = utc_now()
                for movie in SEED_MOVIES:
                    db.execute(_INSERT, {**movie, "user": None, "now": now})


def _unusable(path: str, exc: sqlite3.OperationalError) -> ConfigError:
    """Name the file and what to fix: SQLite's own message names neither."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        fix = f"its folder {folder} does not exist: create it, writable by the app's user (e.g. www-data)"
    else:
        fix = f"the folder {folder} and the file must be writable by the app's user (e.g. www-data)"
    return ConfigError("MOVIES_DB", f"cannot open the database {path} ({exc}): {fix}")


def _use_wal(db: sqlite3.Connection) -> None:
    # Workers starting together all try to switch a new file; use_wal makes the others wait.
    mode = use_wal(db, BUSY_TIMEOUT)
    if mode != "wal":
        log.warning("SQLite database cannot use WAL (journal mode %s); writers will block readers", mode)


def init_app(app: Flask) -> None:
    """Create the app's database now (fail at start-up, not at the first request)."""
    init_db(app.config["DATABASE"])
    app.teardown_appcontext(_close_db)


def get_db() -> sqlite3.Connection:
    """The current request's connection, opened on first use."""
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    db: sqlite3.Connection = g.db
    return db


def _close_db(exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE: take the write lock (waiting up to the busy timeout) before the first read.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # some errors (SQLITE_FULL, ...) have rolled back already
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def list_movies(db: sqlite3.Connection) -> list[Movie]:
    """Every movie, oldest first."""
    return [dict(row) for row in db.execute("SELECT * FROM movies ORDER BY id")]


def is_storable_id(movie_id: int) -> bool:
    """True when SQLite can hold ``movie_id`` (a larger id names no movie: querying it overflows)."""
    return 0 < movie_id <= MAX_ID


def get_movie(db: sqlite3.Connection, movie_id: int) -> Movie | None:
    """The movie ``movie_id``, or ``None``."""
    if not is_storable_id(movie_id):
        return None
    row: sqlite3.Row | None = db.execute("SELECT * FROM movies WHERE id = ?", (movie_id,)).fetchone()
    return None if row is None else dict(row)


def insert_movie(db: sqlite3.Connection, fields: Mapping[str, Any], user: str) -> Movie:
    """Store a new movie made by ``user``; return it with its new id."""
    values = {field: fields.get(field) for field in FIELDS}
    with _transaction(db):
        cursor = db.execute(_INSERT, {**values, "user": user, "now": utc_now()})
        movie = get_movie(db, int(cursor.lastrowid or 0))
    if movie is None:
        raise RuntimeError("the movie just inserted is missing")
    return movie


def update_movie(
    db: sqlite3.Connection, movie_id: int, changes: Mapping[str, Any], user: str
) -> Movie | None:
    """Change the given fields of ``movie_id`` as ``user``; ``None`` if there is no such movie."""
    with _transaction(db):
        movie = get_movie(db, movie_id)
        if movie is None:
            return None
        values = {field: changes.get(field, movie[field]) for field in FIELDS}
        db.execute(
            """
            UPDATE movies
            SET title = :title, director = :director, main_actor = :main_actor, published = :published,
                updated_by = :user, updated_at = :now
            WHERE id = :id
            """,
            {**values, "user": user, "now": utc_now(), "id": movie_id},
        )
        return get_movie(db, movie_id)


def delete_movie(db: sqlite3.Connection, movie_id: int) -> bool:
    """Delete ``movie_id``; ``False`` if there was no such movie."""
    if not is_storable_id(movie_id):
        return False
    with _transaction(db):
        return db.execute("DELETE FROM movies WHERE id = ?", (movie_id,)).rowcount == 1


def roles_of(db: sqlite3.Connection, user: str) -> list[str]:
    """The roles ``user`` holds, sorted."""
    return [row[0] for row in db.execute("SELECT role FROM roles WHERE user = ? ORDER BY role", (user,))]


def all_roles(db: sqlite3.Connection) -> dict[str, list[str]]:
    """Every user holding a role -> their roles, sorted by user then role."""
    holders: dict[str, list[str]] = {}
    for user, role in db.execute("SELECT user, role FROM roles ORDER BY user, role"):
        holders.setdefault(user, []).append(role)
    return holders


def grant_role(db: sqlite3.Connection, user: str, role: str, by: str | None) -> bool:
    """Give ``user`` the ``role`` (``by``: who did it); ``False`` if they held it already."""
    with _transaction(db):
        added = db.execute(
            "INSERT OR IGNORE INTO roles (user, role, granted_by, granted_at) VALUES (?, ?, ?, ?)",
            (user, role, by, utc_now()),
        )
        return added.rowcount == 1


def revoke_role(db: sqlite3.Connection, user: str, role: str) -> bool:
    """Take the ``role`` from ``user``; ``False`` if they did not hold it."""
    with _transaction(db):
        return db.execute("DELETE FROM roles WHERE user = ? AND role = ?", (user, role)).rowcount == 1


def set_roles(db: sqlite3.Connection, user: str, roles: Iterable[str], by: str | None) -> list[str]:
    """Make ``roles`` exactly the roles of ``user``; return them, sorted."""
    wanted = sorted(set(roles))
    with _transaction(db):
        db.execute(
            f"DELETE FROM roles WHERE user = ? AND role NOT IN ({', '.join('?' * len(wanted))})",  # noqa: S608
            (user, *wanted),
        )
        now = utc_now()
        db.executemany(
            "INSERT OR IGNORE INTO roles (user, role, granted_by, granted_at) VALUES (?, ?, ?, ?)",
            [(user, role, by, now) for role in wanted],
        )
        return roles_of(db, user)
