"""A session store in a dict, for tests and single-process servers."""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from .base import check_ttl, dump, load

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MemoryStore"]

PURGE_EVERY = 100


class MemoryStore:
    """Sessions in this process's memory, thread-safe.

    Each process has its own sessions and loses them on restart, so with several
    uWSGI worker processes use :class:`~shibwsgi.sessions.SQLiteStore` or
    :class:`~shibwsgi.sessions.RedisStore` instead. Data goes through JSON once, when
    written, so a read costs a dict lookup.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._sets = itertools.count(1)

    def __repr__(self) -> str:
        return "MemoryStore(<this process>)"

    def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session's data, or ``None`` if it is absent or expired."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None:
                return None
            expires, data = entry
            if expires <= now:
                del self._entries[session_id]
                return None
        return data

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` for ``ttl`` seconds, replacing any previous data."""
        stored = _stored(data, ttl)
        now = self._clock()
        with self._lock:
            self._entries[session_id] = (now + ttl, stored)
            # Sessions that are never read again would otherwise stay forever.
            if next(self._sets) % PURGE_EVERY == 0:
                expired = [key for key, (expires, _) in self._entries.items() if expires <= now]
                for key in expired:
                    del self._entries[key]

    def update(self, session_id: str, data: dict[str, Any], ttl: int) -> bool:
        """Replace the data of a live session; ``False`` (nothing written) if it is gone."""
        stored = _stored(data, ttl)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None or entry[0] <= now:
                return False
            self._entries[session_id] = (now + ttl, stored)
        return True

    def delete(self, session_id: str) -> None:
        """Forget the session; absent sessions are not an error."""
        with self._lock:
            self._entries.pop(session_id, None)


def _stored(data: dict[str, Any], ttl: int) -> dict[str, Any]:
    """A private copy of ``data`` with the values JSON gives back, as the other stores return."""
    check_ttl(ttl)
    return load(dump(data))
