"""A session store in Redis, shared by every process and machine that can reach it.

Every read is one ``GET``. redis-py's client-side cache (RESP3 ``CLIENT TRACKING``) would
save that round trip, but it refuses servers older than 7.4 (Debian 12 ships 7.0), and on
7.0 with that check lifted (``python -m bench.redis_cache``) it is not safe for sessions:
a read right after another worker's delete still returned the deleted value in 6-18 % of
tries (the invalidation had not been read yet), processes forked after the parent had
cached a key served it after it was deleted, and a cached read, which polls the socket
for invalidations, was no cheaper than a loopback ``GET``. So the round trip stays; what
is saved is the JSON decode: the store keeps the bytes it last decoded per session and
reuses the result while Redis returns the same bytes. And a store made from a URL sends
its commands on one connection per thread, outside redis-py's client: the client's
pool checkout, retry wrapper, event dispatch and metrics cost as much again as the
loopback round trip itself (``make bench``).

Renewing a session is ``SET ... XX``, which writes only if the key still exists: a request
racing ``/logout`` cannot bring the session back.

URLs are read the way redis-py reads them (:func:`urllib.parse.urlsplit`: the user part
ends at the first ``/``, ``?`` or ``#`` and is split at its last ``@``), and
:func:`mask_url` hides what redis-py would send as a password. A URL with an ``@`` after
that point, or a port that is not a number, is refused and shown as ``redis:***``: its
password most likely holds an unescaped ``/``, ``?`` or ``#``, and redis-py would connect
elsewhere with part of it.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, unquote_plus, urlsplit

from ..errors import ConfigError, SessionError
from ..lru import BoundedLRU, footprint
from .base import check_ttl, dump, load

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RedisClient", "RedisStore", "mask_url"]

#: Bounds of the decode cache (bytes in memory: the text and the decoded data).
CACHE_ENTRIES = 1024
CACHE_BYTES = 2 * 1024 * 1024
_HIDDEN = "***"
#: The path of a Redis URL: a database number.
_DATABASE = re.compile(r"/[0-9]+")
_ESCAPES = "percent-encode '/', '?', '#' and '@' in the password (%2F, %3F, %23, %40)"


class RedisClient(Protocol):
    """The part of ``redis.Redis`` the store uses."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> Any: ...

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
        self._cache: BoundedLRU[str, tuple[bytes, dict[str, Any]]] = BoundedLRU(
            max_entries=CACHE_ENTRIES, max_bytes=CACHE_BYTES
        )
        self._client: RedisClient
        self._close: Callable[[], object] | None = None
        self._hidden: tuple[str, ...] | None = ()
        if isinstance(client_or_url, str):
            self._location, self._hidden = _mask(client_or_url)
            connections = self._client_from(redis, client_or_url)
            self._client, self._close = connections, connections.close
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
        cache = self._cache
        if text is None:
            cache.pop(session_id)
            return None
        entry = cache.get(session_id)
        if entry is not None and entry[0] == text:
            return entry[1]
        data = load(text)
        cache.put(session_id, (text, data), sys.getsizeof(text) + footprint(data))
        return data

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        """Store ``data`` for ``ttl`` seconds, replacing any previous data."""
        self._write(session_id, data, ttl, xx=False)

    def update(self, session_id: str, data: dict[str, Any], ttl: int) -> bool:
        """Replace the data of a live session; ``False`` (nothing written) if it is gone."""
        return self._write(session_id, data, ttl, xx=True)

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

    def _write(self, session_id: str, data: dict[str, Any], ttl: int, *, xx: bool) -> bool:
        check_ttl(ttl)
        text = dump(data)
        try:
            # XX: only if the key exists, so a renewal never recreates a deleted session.
            return bool(self._client.set(self._prefix + session_id, text, ex=ttl, xx=xx))
        except self._errors as exc:
            raise self._error("write a session", exc) from exc

    def _client_from(self, redis: Any, url: str) -> _ThreadConnections:
        parts = _split(url)
        if parts is None:
            raise ConfigError("session", f"bad Redis URL {self._location!r}: it does not parse as a URL")
        if "@" in parts[2] + parts[3]:
            raise ConfigError(
                "session",
                f"bad Redis URL {self._location!r}: it has an '@' after the first '/', '?' or '#', "
                f"so redis-py would use part of the password and another host; {_ESCAPES}",
            )
        path = unquote(parts[2])
        if parts[0].lower() != "unix:" and path not in ("", "/") and not _DATABASE.fullmatch(path):
            # redis-py would silently use database 0 (or read "/1/2" as 12).
            raise ConfigError(
                "session", f"bad Redis URL {self._location!r}: the path must be a database number (/0)"
            )
        try:
            pool = redis.ConnectionPool.from_url(url)
            # An unknown query setting otherwise fails only at the first request.
            pool.connection_class(**pool.connection_kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError("session", f"bad Redis URL {self._location!r}: {self._scrub(exc)}") from exc
        for name, value in pool.connection_kwargs.items():
            # Else the socket refuses it at the first request (ValueError, a 500).
            if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    "session", f"bad Redis URL {self._location!r}: {name} must be a number >= 0, not {value}"
                )
        return _ThreadConnections(lambda: pool.connection_class(**pool.connection_kwargs))

    def _scrub(self, exc: Exception) -> str:
        if self._hidden is None:
            return f"{type(exc).__name__} (details withheld: they may hold the password)"
        text = str(exc)
        for secret in self._hidden:
            text = text.replace(secret, _HIDDEN)
        return text

    def _error(self, action: str, exc: Exception) -> SessionError:
        return SessionError(
            f"Redis session store {self._location!r} could not {action}: {self._scrub(exc)}. Check "
            "that the Redis server is running and reachable from this host, and the URL's "
            "password, database number and TLS settings."
        )


class _ThreadConnections:
    """The :class:`RedisClient` calls, each thread of each process on its own connection.

    No pool and no lock: a thread's connection is only ever used by that thread, and a
    process forked after a connection was opened opens its own. A connection is opened
    on first use and again after an error; a connection the server dropped (an idle
    timeout) is retried once on a new one, which every command here allows.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        import redis

        self._connect = connect
        self._dropped = redis.ConnectionError
        self._refused = redis.ResponseError
        self._local = threading.local()
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()

    def get(self, name: str) -> Any:
        return self._run("GET", name)

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> bool:
        return self._run("SET", name, value, "EX", ex, *(("XX",) if xx else ())) is not None

    def delete(self, *names: str) -> Any:
        return self._run("DEL", *names)

    def close(self) -> None:
        """Close every thread's connection; the next command opens a new one.

        Call it when no other thread is using the store.
        """
        for connection in list(self._opened):
            connection.disconnect()

    def _run(self, *command: Any) -> Any:
        connection = self._connection()
        try:
            try:
                connection.send_command(*command)
                return connection.read_response()
            except self._dropped:
                connection.disconnect()
                connection.send_command(*command)
                return connection.read_response()
        except self._refused:
            raise  # the server answered with an error: the connection is in step
        except BaseException:
            # An unread reply must never be read as the next command's: start afresh.
            connection.disconnect()
            raise

    def _connection(self) -> Any:
        pid = os.getpid()
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == pid:
            return held[1]
        connection = self._connect()
        self._opened.add(connection)
        self._local.held = (pid, connection)
        return connection


def mask_url(url: str) -> str:
    """Return ``url`` with its passwords replaced by ``***``.

    Hidden: the password of the user part (a lone user part too), a ``password`` setting in
    the query and the fragment; and everything after the scheme when an ``@`` follows the
    first ``/``, ``?`` or ``#``, or when the port is not a number (a password before a
    missing ``@host``).
    """
    return _mask(url)[0]


def _split(url: str) -> tuple[str, str, str, str] | None:
    """``(scheme + ':', '//' + netloc or '', path, '?query#fragment')`` as urlsplit reads them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    # urlsplit drops leading blanks and every tab and newline before splitting.
    cleaned = url.lstrip("".join(map(chr, range(33)))).replace("\t", "").replace("\r", "").replace("\n", "")
    head = f"{parts.scheme}:" if parts.scheme else ""
    authority = "//" + parts.netloc if cleaned[len(head) : len(head) + 2] == "//" else ""
    before_fragment = cleaned[len(head) + len(authority) :].partition("#")[0]
    rest = (f"?{parts.query}" if "?" in before_fragment else "") + (
        f"#{parts.fragment}" if parts.fragment else ""
    )
    return head, authority, parts.path, rest


def _mask(url: str) -> tuple[str, tuple[str, ...] | None]:
    """The masked URL and the texts it hid, to scrub from error messages (``None``: all of it)."""
    split = _split(url)
    if split is None:
        scheme, colon, rest = url.partition(":")
        return (f"{scheme}:{_HIDDEN}" if colon else _HIDDEN), None
    head, authority, path, rest = split
    userinfo, at, hostport = authority[2:].rpartition("@")
    port = hostport.rpartition("]")[2].partition(":")[2]
    if (
        "@" in path + rest
        or (not authority and "@" in url)
        or (port and not (port.isascii() and port.isdigit()))
    ):
        # Where the password ends is anyone's guess: hide everything but the scheme.
        return f"{head}{_HIDDEN}", None
    hidden: list[str] = []
    if at:
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        hidden += [secret, unquote(secret)]
        userinfo = f"{user}:{_HIDDEN}" if colon else _HIDDEN
    query, hash_, fragment = rest.partition("#")
    if fragment:
        hidden.append(fragment)
    fields = []
    for field in query[1:].split("&") if query else ():
        name, equals, value = field.partition("=")
        if equals and value and "password" in unquote_plus(name).lower():
            hidden += [value, unquote_plus(value)]
            field = f"{name}={_HIDDEN}"
        fields.append(field)
    masked_query = "?" + "&".join(fields) if query else ""
    masked_authority = ("//" + userinfo + at + hostport) if authority else ""
    masked = head + masked_authority + path + masked_query + (hash_ + _HIDDEN if fragment else hash_)
    return masked, tuple(sorted({text for text in hidden if text}, key=len, reverse=True))


def _describe(client: object) -> str:
    """Say where a client connects, from its pool settings, without the password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
