"""A session store in Redis, shared by every process and machine that can reach it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, SessionError
from .base import check_ttl, dump, load

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RedisClient", "RedisStore", "mask_url"]

_USERINFO = re.compile(r"^(?P<head>[^:/?#]+://)(?P<userinfo>[^/?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


class RedisClient(Protocol):
    """The part of ``redis.Redis`` the store uses."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: str, ex: int) -> Any: ...

    def delete(self, *names: str) -> Any: ...


class RedisStore:
    """Sessions in Redis, expired by Redis itself (``SET key value EX ttl``).

    ``client_or_url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL (the store
    then owns the client; see :meth:`close`) or a ``redis.Redis`` client. Keys are
    ``prefix`` followed by the session id. Needs redis-py: ``pip install shibwsgi[redis]``.
    """

    def __init__(self, client_or_url: str | RedisClient, *, prefix: str = "shibwsgi:session:") -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError("session", "RedisStore needs redis-py: pip install shibwsgi[redis]") from exc
        self._errors = redis.RedisError
        self._prefix = prefix
        self._client: RedisClient
        self._close: Callable[[], object] | None = None
        if isinstance(client_or_url, str):
            self._location = mask_url(client_or_url)
            try:
                client = redis.Redis.from_url(client_or_url)
            except ValueError as exc:
                raise ConfigError("session", f"bad Redis URL {self._location!r}: {exc}") from exc
            self._client, self._close = client, client.close
        else:
            self._location = _describe(client_or_url)
            self._client = client_or_url

    def __repr__(self) -> str:
        return f"RedisStore({self._location!r}, prefix={self._prefix!r})"

    def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session's data, or ``None`` if it is absent or expired."""
        try:
            text = self._client.get(self._prefix + session_id)
        except self._errors as exc:
            raise self._error("read a session", exc) from exc
        return None if text is None else load(text)

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` for ``ttl`` seconds, replacing any previous data."""
        check_ttl(ttl)
        text = dump(data)
        try:
            self._client.set(self._prefix + session_id, text, ex=ttl)
        except self._errors as exc:
            raise self._error("write a session", exc) from exc

    def delete(self, session_id: str) -> None:
        """Forget the session; absent sessions are not an error."""
        try:
            self._client.delete(self._prefix + session_id)
        except self._errors as exc:
            raise self._error("delete a session", exc) from exc

    def close(self) -> None:
        """Close the client if the store made it from a URL; a client passed in is left open."""
        if self._close is not None:
            self._close()

    def _error(self, action: str, exc: Exception) -> SessionError:
        return SessionError(
            f"Redis session store {self._location!r} could not {action}: {exc}. Check that "
            "the Redis server is running and reachable from this host, and the URL's "
            "password, database number and TLS settings."
        )


def mask_url(url: str) -> str:
    """Return ``url`` with any password (in the user part or the query) replaced by ``***``."""

    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        # A lone user part may be a password to servers without users.
        return f"{match['head']}{user}:***@" if colon else f"{match['head']}***@"

    return _QUERY_PASSWORD.sub(r"\g<key>***", _USERINFO.sub(userinfo, url, count=1))


def _describe(client: object) -> str:
    """Say where a client connects, from its pool settings, without the password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
