"""Server-side session stores: in memory, in an SQLite file, or in Redis."""

from __future__ import annotations

from ..errors import ConfigError
from .base import SessionStore
from .memory import MemoryStore
from .redis import RedisStore, mask_url
from .redis_ha import HA_SCHEMES
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "RedisStore", "SQLiteStore", "SessionStore", "store_from_url"]

_ACCEPTED = (
    "memory:, sqlite:///absolute/path.sqlite3, sqlite:relative/path.sqlite3, "
    "redis://[[user]:password@]host[:port][/db], rediss://..., unix:///path/to/socket, "
    "redis+sentinel://[[user]:password@]host:port,host:port/service[/db], "
    "redis+cluster://[[user]:password@]host:port,host:port/ or rediss+sentinel/rediss+cluster"
)


def store_from_url(url: str) -> SessionStore:
    """Build a store from a string setting such as ``sqlite:///var/lib/app/sessions.sqlite3``.

    Raises ``ConfigError`` for a URL that names no store.
    """
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if colon and scheme == "memory" and rest in ("", "//"):
        return MemoryStore()
    if colon and scheme == "sqlite":
        path = rest[2:] if rest.startswith("///") else rest
        if path and not path.startswith("//") and path != ":memory:":
            return SQLiteStore(path)
    if colon and scheme in ("redis", "rediss", "unix", *HA_SCHEMES):
        return RedisStore(url)
    raise ConfigError("session", f"cannot make a session store from {mask_url(url)!r}; use {_ACCEPTED}")
