"""Internal: binding identities to server-side sessions: start, load, touch, end."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..identity import Identity
from ..lru import BoundedLRU, footprint
from .base import SessionStore, check_store

__all__ = ["Session", "SessionManager"]

log = logging.getLogger("shibwsgi")

#: ``seen`` is written back at most this often (seconds): a store write on every
#: request would cost more than the idle timeout's precision is worth.
TOUCH_INTERVAL = 60
#: Sessions rebuilt from the store, kept per session id; bounded by entries and by the
#: bytes they occupy in memory. The store is still asked on every request: while it
#: hands back the very data it gave last time (its own cache), the session is reused
#: whole; otherwise only the identity is (a new login is a new id, so it never changes).
SESSION_CACHE_ENTRIES = 1024
SESSION_CACHE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Session:
    """A stored session: who, since when, last seen when (epoch seconds)."""

    id: str
    identity: Identity
    created: float
    seen: float

    def to_data(self) -> dict[str, Any]:
        return {"identity": self.identity.to_dict(), "created": self.created, "seen": self.seen}


class SessionManager:
    """Session lifecycle over a :class:`SessionStore`, with idle and absolute timeouts.

    A session never outlives the front end's own (``Identity.expires_at``). ``store``
    must have every :class:`SessionStore` method (``ConfigError`` otherwise).
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        idle_timeout: int,
        absolute_timeout: int,
        clock: Callable[[], float],
    ) -> None:
        check_store(store)
        self.store = store
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.clock = clock
        # session id -> (the store's data, the session built from it, when it ends)
        self._sessions: BoundedLRU[str, tuple[dict[str, Any], Session, float]] = BoundedLRU(
            max_entries=SESSION_CACHE_ENTRIES, max_bytes=SESSION_CACHE_BYTES
        )

    def start(self, identity: Identity) -> Session:
        """Store a new session, under a new id, for ``identity``."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), identity, now, now)
        self._save(session)
        return session

    def load(self, session_id: str) -> Session | None:
        """The live session with this id, or ``None`` (expired ones are deleted)."""
        data = self.store.get(session_id)
        if data is None:
            return None
        cached = self._sessions.get(session_id)
        if cached is not None and cached[0] is data:
            _, session, deadline = cached
        else:
            try:
                session, deadline = self._rebuild(session_id, data, cached[1].identity if cached else None)
            except (KeyError, TypeError, ValueError):
                log.warning("discarding a session whose stored data is not readable")
                self.end(session_id)
                return None
        if deadline <= self.clock():
            self.end(session_id)
            return None
        return session

    def touch(self, session: Session) -> bool:
        """Record activity, writing to the store at most every ``TOUCH_INTERVAL`` seconds.

        Returns ``False`` if the write found the session ended meanwhile (a logout on
        another request); the write never brings it back.
        """
        now = self.clock()
        if now - session.seen < TOUCH_INTERVAL:
            return True
        touched = replace(session, seen=now)
        ttl = self._ttl(touched)
        if ttl is not None and self.store.update(session.id, touched.to_data(), ttl):
            return True
        self._sessions.pop(session.id)
        return False

    def end(self, session_id: str) -> None:
        """Delete the session (no error if it is already gone)."""
        self._sessions.pop(session_id)
        self.store.delete(session_id)

    def _rebuild(
        self, session_id: str, data: dict[str, Any], identity: Identity | None
    ) -> tuple[Session, float]:
        if identity is None:
            identity = Identity.from_dict(data["identity"])
        session = Session(session_id, identity, float(data["created"]), float(data["seen"]))
        deadline = self.deadline(session)
        # An upper bound: the data is often the store's own cached object, shared with it.
        self._sessions.put(
            session_id, (data, session, deadline), footprint(data) + footprint(identity.attributes)
        )
        return session, deadline

    def deadline(self, session: Session) -> float:
        """When the session ends: idle, absolute or the front end's expiry, whichever first."""
        limits = [session.seen + self.idle_timeout, session.created + self.absolute_timeout]
        if session.identity.expires_at is not None:
            limits.append(session.identity.expires_at.timestamp())
        return min(limits)

    def _save(self, session: Session) -> None:
        ttl = self._ttl(session)
        if ttl is not None:
            self.store.set(session.id, session.to_data(), ttl)

    def _ttl(self, session: Session) -> int | None:
        """Whole seconds the session may still be kept, or ``None`` (and a log line) if none."""
        remaining = self.deadline(session) - self.clock()
        if remaining <= 0:
            log.warning(
                "not storing a session for %s: the front end's session has already expired",
                session.identity.profile,
            )
            return None
        return max(1, int(remaining + 0.999))
