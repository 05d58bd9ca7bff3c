"""The interface every session store implements, and the JSON encoding they share."""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..errors import SessionError

__all__ = ["SessionStore"]


class SessionStore(Protocol):
    """Server-side storage of session data, keyed by opaque URL-safe session ids.

    Data is kept as JSON text, so :meth:`get` returns a fresh dict equal to what
    was stored, never the same object. Backend failures raise ``SessionError``.
    """

    def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session's data, or ``None`` if it is absent or expired."""
        ...

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` for ``ttl`` seconds (> 0), replacing any previous data."""
        ...

    def delete(self, session_id: str) -> None:
        """Forget the session; absent sessions are not an error."""
        ...


def check_ttl(ttl: int) -> None:
    """Raise ``ValueError`` unless ``ttl`` is a positive whole number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"session ttl must be a positive whole number of seconds, not {ttl!r}")


def dump(data: dict[str, Any]) -> str:
    """Encode session data as compact JSON text."""
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SessionError(f"session data is not JSON-serialisable: {exc}") from exc


def load(text: str | bytes) -> dict[str, Any]:
    """Decode what :func:`dump` produced."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SessionError(f"stored session data is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SessionError("stored session data is not a JSON object")
    return data
