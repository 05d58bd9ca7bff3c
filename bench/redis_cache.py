"""Is redis-py's client-side cache safe for sessions? ``python -m bench.redis_cache``.

redis-py refuses client-side caching on servers older than 7.4; Debian 12 ships 7.0, whose
``CLIENT TRACKING`` is the same protocol. To measure the mechanism anyway, this experiment
(and only it) lowers redis-py's version floor. It reports:

- microseconds per read: a plain ``GET`` round trip against a cached read;
- handoff: worker B deletes a key and tells worker A (as the browser's next request would);
  A reads at once. Any read that still returns the value is a logged-out session served;
- fork: a parent reads (and caches) a key, then forks, as a uWSGI master that loaded the app
  may; another client deletes the key; each child reads it.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from .servers import redis_server
from .stores import per_op

HANDOFFS = 2000
CHILDREN = 4


def cached_client(url: str) -> Any:
    import redis
    from redis.cache import CacheConfig
    from redis.connection import CacheProxyConnection

    CacheProxyConnection.MIN_ALLOWED_VERSION = "6.0.0"  # experiment only: redis-py requires 7.4
    return redis.Redis.from_url(url, protocol=3, cache_config=CacheConfig())


def _worker_b(url: str, ready: Any, deleted: Any, rounds: int) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for n in range(rounds):
        ready.recv()
        client.delete(f"session:{n}")
        deleted.send(time.perf_counter())


def handoff(url: str) -> tuple[int, int]:
    """(stale reads, rounds): A caches a key, B deletes it and says so, A reads at once."""
    import redis

    plain = redis.Redis.from_url(url)
    a = cached_client(url)
    context = multiprocessing.get_context("fork")
    ready_a, ready_b = context.Pipe()
    deleted_a, deleted_b = context.Pipe()
    b = context.Process(target=_worker_b, args=(url, ready_b, deleted_b, HANDOFFS), daemon=True)
    b.start()
    stale = 0
    for n in range(HANDOFFS):
        plain.set(f"session:{n}", "alice")
        a.get(f"session:{n}")
        a.get(f"session:{n}")  # now cached
        ready_a.send(n)
        deleted_a.recv()
        stale += a.get(f"session:{n}") is not None
    b.join()
    return stale, HANDOFFS


def _child_read(url: str, results: Any, client: Any) -> None:
    results.send(client.get("session:forked") is not None)


def fork(url: str) -> tuple[int, int]:
    """(children that served the deleted key, children)."""
    import redis

    plain = redis.Redis.from_url(url)
    plain.set("session:forked", "alice")
    parent = cached_client(url)
    parent.get("session:forked")
    parent.get("session:forked")
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    plain.delete("session:forked")
    time.sleep(0.05)  # the invalidation has long arrived on the (inherited) socket
    children = [context.Process(target=_child_read, args=(url, sender, parent)) for _ in range(CHILDREN)]
    for child in children:
        child.start()
    stale = sum(receiver.recv() for _ in children)
    for child in children:
        child.join()
    return stale, CHILDREN


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as url:
        if url is None:
            print("redis-server not installed")
            return
        import redis

        plain = redis.Redis.from_url(url)
        plain.set("bench", "x" * 200)
        cached = cached_client(url)
        cached.get("bench")
        print(f"GET round trip            {per_op(lambda: plain.get('bench')):8.1f} us")
        print(f"cached read (RESP3 + CSC) {per_op(lambda: cached.get('bench')):8.1f} us")
        stale, rounds = handoff(url)
        print(f"handoff: {stale} of {rounds} reads right after another worker's delete were stale")
        stale, children = fork(url)
        print(f"fork: {stale} of {children} children served a key deleted before they read it")


if __name__ == "__main__":
    main()
