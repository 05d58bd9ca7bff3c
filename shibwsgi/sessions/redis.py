"""A session store in Redis, shared by every process and machine that can reach it.

Every read is one ``GET``. redis-py's client-side cache (RESP3 ``CLIENT TRACKING``) would
save that round trip, but it refuses servers older than 7.4 (Debian 12 ships 7.0), and on
7.0 with that check lifted (``python -m bench.redis_cache``) it is not safe for sessions:
a read right after another worker's delete still returned the deleted value in 6-18 % of
tries (the invalidation had not been read yet), processes forked after the parent had
cached a key served it after it was deleted, and a cached read, which polls the socket
for invalidations, was no cheaper than a loopback ``GET``. So the round trip stays; what
is saved is the JSON decode: the store keeps the bytes it last decoded per session and
reuses the result while Redis returns the same bytes. And a store made from a
``redis://`` or ``redis+sentinel://`` URL sends its commands on one connection per thread,
outside redis-py's client (:mod:`.redis_threads`): the client's pool checkout, retry
wrapper, event dispatch, metrics, command packer and socket polls cost as much again as the
loopback round trip itself (``make bench``). A Cluster store reads the same way from the
master redis-py's ``RedisCluster`` names for the key, and goes through ``RedisCluster``,
which follows slots as they move between nodes, for its writes and whenever that read fails
(:mod:`.redis_cluster`).

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

import re
import sys
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from ..errors import ConfigError, SessionError
from ..lru import BoundedLRU, footprint
from .base import check_ttl, dump, load
from .redis_cluster import ClusterReads
from .redis_ha import (
    HA_SCHEMES,
    Acknowledged,
    Replicas,
    cluster_client,
    cluster_master,
    on_master,
    sentinel_client,
    take_replicas,
)
from .redis_settings import (
    bad_url,
    check_read_size,
    check_settings,
    password_runs_on,
    socket_timeout,
    with_timeouts,
)
from .redis_threads import ThreadConnections, set_up

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RedisClient", "RedisStore", "mask_url"]

#: Bounds of the decode cache (bytes in memory: the text and the decoded data).
CACHE_ENTRIES = 1024
CACHE_BYTES = 2 * 1024 * 1024
#: More replicas than Redis Cluster's documented maximum of nodes could never all confirm.
MAX_REPLICAS = 1000
_HIDDEN = "***"
_ESCAPES = "percent-encode '/', '?', '#' and '@' in the password (%2F, %3F, %23, %40)"


#: What redis-py's own URLs start with (one server); HA_SCHEMES has the rest.
_PLAIN_SCHEMES = ("redis", "rediss", "unix")


class RedisClient(Protocol):
    """The part of ``redis.Redis`` the store uses."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> Any: ...

    def delete(self, *names: str) -> Any: ...


class _Writes(Protocol):
    """Where the store's writes go: its client, or :class:`Acknowledged` over it."""

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> Any: ...

    def delete(self, *names: str) -> Any: ...


class RedisStore:
    """Sessions in Redis, expired by Redis itself (``SET key value EX ttl``).

    ``client_or_url`` is a ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``
    or ``redis+cluster://`` URL (see :mod:`shibwsgi.sessions.redis_ha`; the store then owns
    the client, see :meth:`close`) or a ``redis.Redis`` or ``RedisCluster`` client. Keys are
    ``prefix`` followed by the session id. ``min_replicas`` (also a URL query setting) makes
    every write wait until that many replicas confirmed it, at most ``wait_timeout``
    seconds, or fail. Needs redis-py: ``pip install shibwsgi[redis]``.
    """

    def __init__(
        self,
        client_or_url: str | RedisClient,
        *,
        prefix: str = "shibwsgi:session:",
        min_replicas: int = 0,
        wait_timeout: float = 0.5,
    ) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError("session", "RedisStore needs redis-py: pip install shibwsgi[redis]") from exc
        _check_arguments(client_or_url, prefix, min_replicas, wait_timeout)
        self._errors = (redis.RedisError, redis.exceptions.RedisClusterException)
        self._prefix = prefix
        self._cache: BoundedLRU[str, tuple[bytes, dict[str, Any]]] = BoundedLRU(
            max_entries=CACHE_ENTRIES, max_bytes=CACHE_BYTES
        )
        self._client: RedisClient
        self._close: Callable[[], object] | None = None
        self._hidden: tuple[str, ...] | None = ()
        replicas = Replicas(min_replicas, wait_timeout)
        master_for: Callable[[str, Exception | None], Any]
        if isinstance(client_or_url, str):
            self._location, self._hidden = _mask(client_or_url)
            self._parts(client_or_url)  # first: a query may be the end of a password
            url, asked = take_replicas(client_or_url, self._location, named=self._hidden is not None)
            if asked is not None:
                if replicas != Replicas():
                    raise ConfigError(
                        "session", "give min_replicas and wait_timeout in the URL or as arguments, not both"
                    )
                replicas = asked
            self._client, self._close, master_for = self._client_from(redis, url)
            if replicas.count and replicas.timeout >= socket_timeout(url):
                raise ConfigError(
                    "session",
                    f"Redis session store {self._location!r}: wait_timeout must be less than the "
                    f"socket_timeout ({socket_timeout(url)} s), or the socket gives up first",
                )
        else:
            self._location = _describe(client_or_url)
            self._client = client_or_url
            master_for = _master_finder(client_or_url)
        if not replicas.count and replicas.timeout != Replicas().timeout:
            raise ConfigError(
                "session",
                f"Redis session store {self._location!r}: wait_timeout has no effect without min_replicas",
            )
        if not 0 <= replicas.count <= MAX_REPLICAS or not 0 < replicas.timeout < 3600:
            raise ConfigError(
                "session",
                f"Redis session store {self._location!r}: min_replicas must be from 0 to {MAX_REPLICAS} and "
                "wait_timeout more than 0 and less than 3600 seconds",
            )
        self._writes: _Writes = (
            Acknowledged(master_for, replicas, redis.RedisError) if replicas.count else self._client
        )

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
            self._writes.delete(self._prefix + session_id)
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
            return bool(self._writes.set(self._prefix + session_id, text, ex=ttl, xx=xx))
        except self._errors as exc:
            raise self._error("write a session", exc) from exc

    def _client_from(
        self, redis: Any, url: str
    ) -> tuple[RedisClient, Callable[[], object], Callable[[str, Exception | None], Any]]:
        """The client for ``url``, the function closing it, and the one giving a key's master."""
        parts = self._parts(url)
        scheme = parts[0][:-1].lower()
        if scheme not in _PLAIN_SCHEMES and scheme not in HA_SCHEMES:
            known = ", ".join(f"{name}://" for name in (*_PLAIN_SCHEMES, *HA_SCHEMES))
            raise bad_url(self._location, f"the scheme must be one of {known}")
        mode = HA_SCHEMES.get(scheme, ("plain",))[0]
        if mode == "cluster":
            # Slots move between nodes: reads go by redis-py's slot table, writes through its client.
            cluster = ClusterReads(cluster_client(redis, url, self._location))
            return cluster, cluster.close, cluster.master_for
        if "max_connections" in dict(parse_qsl(urlsplit(url).query)):
            raise bad_url(
                self._location,
                "max_connections has no effect here: the store keeps one connection per thread "
                "and process (the server's threads and processes bound them); remove it",
            )
        pooled: Any
        if mode == "sentinel":
            pooled, close_pooled = sentinel_client(redis, url, self._location)
        else:
            if urlsplit(url).fragment:  # redis-py drops it, and any setting or password end in it
                raise bad_url(self._location, f"it has a fragment ('#...'); {_ESCAPES}")
            if parts[0].lower() != "unix:":
                path_db = re.fullmatch(r"/?([0-9]+/?)?", parts[2])
                if path_db is None:
                    raise bad_url(self._location, "the path must be the database number: /<db>")
                if path_db[1] and "db" in dict(parse_qsl(urlsplit(url).query)):
                    raise bad_url(self._location, "give the database in the path or as ?db=, not both")
            try:
                pooled = redis.Redis.from_url(with_timeouts(url))
                check_read_size(pooled.connection_pool.connection_kwargs, self._location)
                # An unknown query setting otherwise fails only at the first request.
                pooled.connection_pool.connection_class(**pooled.connection_pool.connection_kwargs)
            except (TypeError, ValueError, redis.RedisError) as exc:
                failure: str | None = self._scrub(exc)
            else:
                failure = None
            if failure is not None:  # raised here, not chained: redis-py's message may hold the password
                raise bad_url(self._location, failure)
            check_settings(pooled.connection_pool.connection_kwargs, self._location)
            close_pooled = pooled.close
        # A Sentinel connection asks the sentinels for the master each time it connects, and
        # a demoted master's READONLY answer is a ConnectionError: the retry finds the new one.
        pool = pooled.connection_pool
        pool.connection_kwargs["redis_connect_func"] = set_up  # the per-thread connections' and WAIT's
        connections = ThreadConnections(
            lambda: pool.connection_class(**pool.connection_kwargs),
            on_master if mode == "sentinel" else None,
        )

        def close_both() -> None:
            connections.close()
            close_pooled()

        return connections, close_both, lambda key, redirect: pooled

    def _parts(self, url: str) -> tuple[str, str, str, str]:
        """What :func:`_split` gives, or ``ConfigError`` if where the password ends is unclear."""
        parts = _split(url)
        if parts is None:
            raise ConfigError("session", f"bad Redis URL {self._location!r}: it does not parse as a URL")
        if "@" in parts[2] + parts[3]:
            raise ConfigError(
                "session",
                f"bad Redis URL {self._location!r}: it has an '@' after the first '/', '?' or '#', "
                f"so redis-py would use part of the password and another host; {_ESCAPES}",
            )
        if password_runs_on(parts[3].partition("#")[0][1:]):
            raise ConfigError(
                "session",
                f"bad Redis URL {self._location!r}: a part of the query after a password is no "
                "setting the store knows, so it may be the password's end: percent-encode '&' "
                "in the password as %26",
            )
        return parts

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
    ports = [host.rpartition("]")[2].partition(":")[2] for host in hostport.split(",")]
    if (
        "@" in path + rest
        or (not authority and "@" in url)
        or any(port and not (port.isascii() and port.isdigit()) for port in ports)
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
    if password_runs_on(query[1:]):
        return f"{head}{_HIDDEN}", None  # the password may go on past an '&'
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


def _check_arguments(
    client_or_url: object, prefix: object, min_replicas: object, wait_timeout: object
) -> None:
    """Raise ``ConfigError`` for an argument of the wrong type, which would fail (a 500) at
    the first request instead."""
    if not isinstance(client_or_url, str):
        missing = [
            name for name in ("get", "set", "delete") if not callable(getattr(client_or_url, name, None))
        ]
        if missing:
            raise ConfigError(
                "session",
                f"RedisStore needs a Redis URL or a redis-py client (redis.Redis, RedisCluster, "
                f"Sentinel(...).master_for(name)), not {type(client_or_url).__name__}: it lacks "
                f"{', '.join(missing)}",
            )
    if not isinstance(prefix, str):
        raise ConfigError("session", f"the Redis key prefix must be a string, not {type(prefix).__name__}")
    if isinstance(min_replicas, bool) or not isinstance(min_replicas, int):
        raise ConfigError("session", f"min_replicas must be a whole number, not {min_replicas!r}")
    if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, (int, float)):
        raise ConfigError("session", f"wait_timeout must be a number of seconds, not {wait_timeout!r}")


def _master_finder(client: Any) -> Callable[[str, Exception | None], Any]:
    """For a client passed in: the ``redis.Redis`` to send a key's acknowledged writes to."""
    if callable(getattr(client, "get_node_from_key", None)):  # a RedisCluster
        return lambda key, redirect: cluster_master(client, key, redirect)
    return lambda key, redirect: client


def _describe(client: object) -> str:
    """Say where a client connects, from its pool settings, without the password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"
