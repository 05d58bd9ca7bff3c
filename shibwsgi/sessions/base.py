"""The interface every session store implements, and the JSON encoding and cache they share.

A store writes a session in two ways. ``set`` creates or replaces it (a login). ``update``
writes only if the session still exists, atomically in the backend (Redis ``SET ... XX``, an
SQLite ``UPDATE`` whose row count is checked, a check under the lock in memory): a request
that loaded a session just before ``/logout`` deleted it must not write it back when it
records activity, or the logged-out cookie would work again. A conditional write was chosen
over tombstones because it needs no extra keys, no extra reads and no tombstone expiry.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..errors import ConfigError, SessionError

__all__ = ["SessionStore"]

#: The methods a session store must have.
STORE_METHODS = ("get", "set", "update", "delete")


class SessionStore(Protocol):
    """Server-side storage of session data, keyed by opaque URL-safe session ids.

    Data is kept as JSON text. :meth:`get` returns data equal to what was stored; a store
    may hand the same dict to several callers, so treat it as read-only. Backend failures
    raise ``SessionError``.
    """

    def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session's data, or ``None`` if it is absent or expired."""
        ...

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` for ``ttl`` seconds (> 0), replacing any previous data."""
        ...

    def update(self, session_id: str, data: dict[str, Any], ttl: int) -> bool:
        """Like :meth:`set`, but only if the session still exists and has not expired.

        Returns whether it was written. Never brings back a deleted session.
        """
        ...

    def delete(self, session_id: str) -> None:
        """Forget the session; absent sessions are not an error."""
        ...


def check_store(store: object) -> None:
    """Raise ``ConfigError`` unless ``store`` has every method of :class:`SessionStore`."""
    missing = [name for name in STORE_METHODS if not callable(getattr(store, name, None))]
    if missing:
        raise ConfigError(
            "session", f"{store!r} is not a session store: it lacks {', '.join(missing)} (see SessionStore)"
        )


def check_ttl(ttl: int) -> None:
    """Raise ``ValueError`` unless ``ttl`` is a positive whole number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"session ttl must be a positive whole number of seconds, not {ttl!r}")


def dump(data: dict[str, Any]) -> str:
    """Encode session data as compact, pure-ASCII JSON text.

    Escaping every non-ASCII character keeps any Python string storable, lone surrogates
    (``"Al\\ud800ice"``) included, in backends that only take valid UTF-8 (SQLite, Redis),
    and it round-trips exactly.
    """
    try:
        return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SessionError(f"session data is not JSON-serialisable: {exc}") from exc


def load(text: str | bytes) -> dict[str, Any]:
    """Decode what :func:`dump` produced."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:  # TypeError: a server's reply that is not a string
        raise SessionError(f"stored session data is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SessionError("stored session data is not a JSON object")
    return data
