"""Fixtures for the session store tests: each kind of store, a clock that moves when told."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import HA_KINDS

from shibwsgi.sessions import MemoryStore, RedisStore, SessionStore, SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    MakeStore = Callable[[str], SessionStore]

ALL_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.servers),
]
ALL_KINDS += HA_KINDS
#: store kind -> (the fixture giving its server's URL, what the URL ends with)
REDIS_KINDS = {
    "redis": ("redis_url", ""),
    "sentinel": ("sentinel_url", ""),
    "cluster": ("cluster_url", ""),
    "sentinel min_replicas=1": ("sentinel_url", "?min_replicas=1"),
}


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    """A Redis key prefix of its own, to keep tests apart on the one shared server."""
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, prefix: str
) -> Iterator[MakeStore]:
    """Build a store of a given kind; SQLite and Redis stores are closed afterwards."""
    closers: list[Callable[[], None]] = []

    def make(kind: str) -> SessionStore:
        if kind == "memory":
            return MemoryStore(clock=clock)
        if kind == "sqlite":
            sqlite_store = SQLiteStore(tmp_path / "sessions.sqlite3", clock=clock)
            closers.append(sqlite_store.close)
            return sqlite_store
        pytest.importorskip("redis")
        fixture, options = REDIS_KINDS[kind]
        redis_store = RedisStore(request.getfixturevalue(fixture) + options, prefix=prefix)
        closers.append(redis_store.close)
        return redis_store

    yield make
    for close in closers:
        close()


@pytest.fixture(params=ALL_KINDS)
def store(request: pytest.FixtureRequest, make_store: MakeStore) -> SessionStore:
    return make_store(request.param)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
