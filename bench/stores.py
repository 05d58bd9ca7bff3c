"""Microseconds per session load, per store: ``python -m bench.stores [--groups N]``.

Times ``SessionManager.load`` (what every lazy-session request pays) for each store on an
unchanged session, plus a raw redis-py ``GET`` for reference. Not part of ``make bench``'s table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shibwsgi.identity import Identity
from shibwsgi.sessions import MemoryStore, SQLiteStore
from shibwsgi.sessions.manager import SessionManager

from .servers import redis_server

if TYPE_CHECKING:
    from collections.abc import Callable

    from shibwsgi.sessions import SessionStore

ROUNDS = 7


def per_op(operation: Callable[[], object], seconds: float = 0.2) -> float:
    """Median microseconds per call over ``ROUNDS`` rounds of about ``seconds`` each (GC off)."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            operation()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            break
        n *= 2
    n = max(1, int(n * seconds / elapsed))
    rounds = []
    gc.disable()
    try:
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(n):
                operation()
            rounds.append((time.perf_counter() - start) / n * 1e6)
    finally:
        gc.enable()
    return sorted(rounds)[ROUNDS // 2]


def identity(groups: int) -> Identity:
    attributes = {
        "mail": ("alice@example.org",),
        "displayName": ("Alice Example",),
        "affiliation": ("member@example.org", "staff@example.org"),
        "isMemberOf": tuple(f"urn:mace:example.org:group:{n:05d}" for n in range(groups)),
    }
    return Identity("alice@example.org", attributes, profile="shibboleth", session_id="_abc123")


def load_cost(store: SessionStore, groups: int) -> tuple[float, float]:
    """(store.get, SessionManager.load) in microseconds on one unchanged session."""
    manager = SessionManager(store, idle_timeout=3600, absolute_timeout=28800, clock=time.time)
    session = manager.start(identity(groups))
    assert manager.load(session.id) is not None
    return per_op(lambda: store.get(session.id)), per_op(lambda: manager.load(session.id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=3, help="isMemberOf values in the session")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        stores: list[tuple[str, SessionStore]] = [
            ("MemoryStore", MemoryStore()),
            ("SQLiteStore", SQLiteStore(Path(folder) / "sessions.sqlite3")),
        ]
        url = stack.enter_context(redis_server(Path(folder)))
        if url is not None:
            import redis

            from shibwsgi.sessions import RedisStore

            redis_store = RedisStore(url)
            stack.callback(redis_store.close)
            stores.append(("RedisStore", redis_store))
            client = redis.Redis.from_url(url)
            stack.callback(client.close)
            client.set("bench", "x" * 200)
            print(f"{'redis-py GET round trip':<28} {per_op(lambda: client.get('bench')):8.1f} us")
        print(f"{'store (groups=' + str(args.groups) + ')':<28} {'get':>8}    {'load':>8}")
        for name, store in stores:
            get, load = load_cost(store, args.groups)
            print(f"{name:<28} {get:8.1f} us {load:8.1f} us")


if __name__ == "__main__":
    main()
