"""What the per-worker caches hold at worst: 2,000 distinct users, each with a 64 KB isMemberOf.

Each user sends two requests (the memo keeps an identity from its second sight on).

The memo's own estimate is checked against what ``tracemalloc`` sees the middleware
keep once the requests are gone, and against the default bound.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from shibwsgi import SSOMiddleware
from shibwsgi.memo import DEFAULT_MAX_BYTES

from .environs import PROFILE_CASES, groups
from .inprocess import bare_app
from .timing import fresh_environs

__all__ = ["USERS", "run"]

USERS = 2000
GROUPS = 1800  # ~64 KB


def _user(number: int) -> dict[str, str]:
    user = f"user{number:05d}@example.org"
    return {"eppn": user, "mail": user, "Shib-Session-ID": f"_session-{number:012d}"}


def run(progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Serve :data:`USERS` users once each through one middleware; its caches' size."""
    case = PROFILE_CASES[0]
    environ = {**case.environ(), "isMemberOf": ";".join(groups(GROUPS))}
    build = fresh_environs(environ, _user)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        middleware = SSOMiddleware(bare_app, **case.options())
        started = time.perf_counter()
        for number in range(2 * USERS):
            (env,) = build(number // 2, 1)
            b"".join(middleware(env, lambda *args: None))
        elapsed = time.perf_counter() - started
        del env
        gc.collect()
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    memo = middleware.memo
    if progress:
        progress(f"memory: {len(memo.entries)} identities kept, {measured / 2**20:.1f} MiB")
    return {
        "users": USERS,
        "attribute_bytes": len(environ["isMemberOf"]),
        "limit_bytes": DEFAULT_MAX_BYTES,
        "entries_kept": len(memo.entries),
        "estimated_bytes": memo.size,
        "measured_bytes": measured,
        "seconds_under_tracemalloc": elapsed,
    }
