"""Redis past one server: clients for Sentinel and Cluster URLs, and writes acknowledged by replicas.

``redis+sentinel://[[user]:password@]host:port,host:port/<service>[/<db>]`` is served by
redis-py's ``Sentinel(...).master_for(service)``; ``redis+cluster://[[user]:password@]host:port,
host:port/`` by redis-py's ``RedisCluster``; ``rediss+...`` speaks TLS to every node (and, for
Sentinel, to the sentinels). Query settings are redis-py's connection settings, the store's
own ``min_replicas`` and ``wait_timeout``, and the sentinels' own: ``sentinel_`` followed by
``username``, ``password``, ``ssl`` (yes or no: TLS to the sentinels, by default as to the
data nodes) or an ``ssl_*`` or ``socket_*`` setting. The sentinels get the data nodes'
``socket_*`` settings, and their ``ssl_*`` ones when both speak TLS, unless a ``sentinel_``
setting says otherwise. Every command is bounded: 1 s socket and connect timeouts unless the URL sets
them, and at most one retry, so a request meets a dead master with a quick error (503), not a
hang, and the next one finds the new master by itself.

Replication is asynchronous: a write the master acknowledged can be lost if the master dies
before a replica has it. With ``min_replicas=N`` each write is followed by ``WAIT N`` on the
same connection and fails unless N replicas confirmed it within ``wait_timeout`` seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ..errors import ConfigError
from .redis_settings import (
    DEFAULT_TIMEOUT,
    MAX_DB,
    bad_url,
    check_query,
    check_read_size,
    check_settings,
    has_blank,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "HA_SCHEMES",
    "Acknowledged",
    "LazyCluster",
    "Replicas",
    "cluster_client",
    "cluster_master",
    "on_master",
    "sentinel_client",
    "take_replicas",
]

#: scheme -> (mode, TLS)
HA_SCHEMES = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
DEFAULT_PORTS = {"sentinel": 26379, "cluster": 6379}
#: Seconds a Sentinel connection is used before the sentinels are asked again where the master
#: is. A failover takes longer than the sentinels' down-after-milliseconds (default 30 s, seldom
#: under 1 s): a connection that sat idle through one, or kept talking to a master the sentinels
#: could not see, finds the new master before it reads from (or writes to) the old one.
MASTER_CHECK_EVERY = 0.5
_SENTINEL = "sentinel_"


@dataclass(frozen=True)
class Replicas:
    """How many replicas must confirm each write (0: none), and for how long to wait (seconds)."""

    count: int = 0
    timeout: float = 0.5  # below the 1 s socket timeout, which bounds the wait for WAIT's answer


def take_replicas(url: str, location: str, *, named: bool = True) -> tuple[str, Replicas | None]:
    """``url`` without ``min_replicas``/``wait_timeout`` in its query, and what they asked for
    (``None``: neither is there; ``named``: see :func:`check_query`)."""
    base, question, query = url.partition("?")
    query, hash_, fragment = query.partition("#")
    if not question:
        return url, None
    kept, found = [], {}
    pairs = parse_qsl(query, keep_blank_values=True)
    check_query(pairs, location, named=named)
    for name, value in pairs:
        if name in ("min_replicas", "wait_timeout"):
            found[name] = value
        else:
            kept.append((name, value))
    if not found:
        return url, None
    count = found.get("min_replicas", "0")
    try:
        if not (count.isascii() and count.isdigit()):
            raise ValueError(count)
        replicas = Replicas(int(count), float(found.get("wait_timeout", "0.5")))
    except ValueError:
        raise bad_url(location, "min_replicas must be a whole number and wait_timeout seconds") from None
    if "wait_timeout" in found and not replicas.count:  # even the default: it would do nothing
        raise bad_url(location, "wait_timeout has no effect without min_replicas")
    rebuilt = base + (f"?{urlencode(kept)}" if kept else "") + (hash_ + fragment)
    return rebuilt, replicas


@dataclass(frozen=True)
class _Parts:
    nodes: list[tuple[str, int]]
    path: list[str]
    kwargs: dict[str, Any]  # redis-py connection settings, from the user part and the query
    sentinel: dict[str, str]  # the query's sentinel_* settings, without the prefix
    tls: bool


def sentinel_client(redis: Any, url: str, location: str) -> tuple[Any, Callable[[], None]]:
    """A ``redis.Redis`` on the master of the URL's service, found and re-found by the
    sentinels, and the function that closes its connections and the sentinels'."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    parts = _parse(redis, url, location)
    if len(parts.path) not in (1, 2) or not parts.path[0]:
        raise bad_url(location, "the path must name the service: /<service_name>[/<db>]")
    service = unquote(parts.path[0])  # as redis-py reads the rest of a URL: %20 is a blank
    if has_blank(service):
        raise bad_url(location, "the service name has a blank or a control character")
    if len(parts.path) == 2:
        db = parts.path[1]
        if not (db.isascii() and db.isdigit() and int(db) <= MAX_DB):
            raise bad_url(
                location, f"the database after the service name must be a number from 0 to {MAX_DB}"
            )
        if "db" in parts.kwargs:
            raise bad_url(location, "give the database after the service name or as ?db=, not both")
        parts.kwargs["db"] = int(db)
    sentinel_kwargs = _sentinel_settings(redis, parts, location)
    manager = Sentinel(parts.nodes, sentinel_kwargs=sentinel_kwargs, **parts.kwargs)
    # One retry, at once: a refused connection asks the sentinels again for the master.
    client = manager.master_for(service, retry=Retry(NoBackoff(), 1))

    def close() -> None:
        for each in (client, *manager.sentinels):
            each.close()

    return client, close


def on_master(connection: Any) -> bool:
    """True when the sentinels name ``connection``'s server as the master now.

    An old master that comes back after a failover still answers as a master until the
    sentinels demote it (seconds), and as a replica serving what it held before the resync
    after: its ``ROLE`` cannot tell, only the sentinels can. No sentinel naming a healthy
    master is redis-py's ``MasterNotFoundError`` (a ``ConnectionError``: a 503).
    """
    address = connection.connection_pool.get_master_address()
    return bool(address == (connection.host, connection.port))


def cluster_client(redis: Any, url: str, location: str) -> LazyCluster:
    """The ``RedisCluster`` of the URL, connected at first use."""
    parts = _parse(redis, url, location)
    if parts.sentinel:
        given = ", ".join(_SENTINEL + name for name in parts.sentinel)
        raise bad_url(location, f"{given}: sentinel_* settings are for redis+sentinel URLs")
    if parts.path not in ([""], ["0"]) or parts.kwargs.get("db", 0) != 0:
        raise bad_url(location, "a cluster has only database 0: end the URL with the last host or '/'")
    parts.kwargs.pop("db", None)
    # RedisCluster drops, without a word, the connection settings it does not pass on to its nodes.
    from redis.cluster import REDIS_ALLOWED_KEYS

    ignored = [name for name in parts.kwargs if name not in REDIS_ALLOWED_KEYS]
    if ignored:
        raise bad_url(location, f"{ignored[0]}: redis-py's RedisCluster does not use this setting")
    return LazyCluster(parts.nodes, parts.kwargs)


class LazyCluster:
    """redis-py's ``RedisCluster``, made at its first command.

    Making one connects to the cluster: made at start-up, a cluster that is down would stop
    the application from starting instead of answering 503 until it is back.
    """

    def __init__(self, nodes: list[tuple[str, int]], settings: dict[str, Any]) -> None:
        self._nodes = nodes
        self._settings = settings
        self._lock = threading.Lock()
        self._cluster: Any = None

    def get(self, name: str) -> Any:
        return self.cluster().get(name)

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> Any:
        return self.cluster().set(name, value, ex=ex, xx=xx)

    def delete(self, *names: str) -> Any:
        return self.cluster().delete(*names)

    def master_for(self, key: str, redirect: Exception | None = None) -> Any:
        """The ``redis.Redis`` of the master holding ``key`` now (see :func:`cluster_master`)."""
        return cluster_master(self.cluster(), key, redirect)

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None

    def cluster(self) -> Any:
        cluster = self._cluster
        if cluster is not None:
            return cluster
        from redis.backoff import ConstantBackoff
        from redis.cluster import ClusterNode, RedisCluster
        from redis.retry import Retry

        with self._lock:
            if self._cluster is None:
                self._cluster = RedisCluster(
                    startup_nodes=[ClusterNode(host, port) for host, port in self._nodes],  # type: ignore[no-untyped-call]
                    retry=Retry(ConstantBackoff(0.05), 1),
                    **self._settings,
                )
            return self._cluster


def cluster_master(cluster: Any, key: str, redirect: Exception | None) -> Any:
    """The ``redis.Redis`` of the node ``cluster`` sends ``key`` to, or that a ``MOVED`` or
    ``ASK`` answer (``redirect``) for it named. A write outside ``RedisCluster`` (with
    ``WAIT``) must follow them itself while slots are resharded."""
    from redis.exceptions import MovedError

    if redirect is None:
        return cluster.get_redis_connection(cluster.get_node_from_key(key))
    if isinstance(redirect, MovedError):
        cluster.exists(key)  # through RedisCluster, which learns where the slot is now
    node = cluster.get_node(host=getattr(redirect, "host", None), port=getattr(redirect, "port", None))
    if node is None:
        raise redirect
    return cluster.get_redis_connection(node)


def _parse(redis: Any, url: str, location: str) -> _Parts:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise bad_url(location, f"it does not parse as a URL ({exc})") from None
    mode, tls = HA_SCHEMES[parts.scheme.lower()]
    if parts.fragment:
        raise bad_url(location, "it has a fragment ('#...'); percent-encode '#' in a password as %23")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    nodes = [
        _node(host, DEFAULT_PORTS[mode], number, location) for number, host in enumerate(hosts.split(","), 1)
    ]
    settings = dict(parse_qsl(parts.query, keep_blank_values=True))
    sentinel = {
        name[len(_SENTINEL) :]: settings.pop(name) for name in list(settings) if name.startswith(_SENTINEL)
    }
    plain = f"{'rediss' if tls else 'redis'}://{userinfo}{at}localhost/?{urlencode(settings)}"
    try:
        kwargs = redis.connection.parse_url(plain)
    except ValueError as exc:
        raise bad_url(location, str(exc)) from None
    for name in ("host", "port", "connection_class"):
        kwargs.pop(name, None)
    for name in ("socket_timeout", "socket_connect_timeout"):
        kwargs.setdefault(name, DEFAULT_TIMEOUT)
    _check_connection(redis, tls, kwargs, location)
    if tls:
        kwargs["ssl"] = True
    return _Parts(nodes, parts.path.split("/")[1:] or [""], kwargs, sentinel, tls)


def _check_connection(redis: Any, tls: bool, kwargs: dict[str, Any], location: str) -> None:
    """Raise ``ConfigError`` unless a redis-py connection with these settings can work."""
    connection = redis.SSLConnection if tls else redis.Connection
    check_read_size(kwargs, location)
    try:
        # An unknown setting otherwise fails only at the first request.
        connection(**kwargs)
    except TypeError as exc:
        raise bad_url(location, f"unknown setting in the query ({_setting(exc)})") from None
    except (ValueError, redis.RedisError) as exc:  # an ssl_* value redis-py does not know
        raise bad_url(location, str(exc)) from None
    check_settings(kwargs, location)


def _sentinel_settings(redis: Any, parts: _Parts, location: str) -> dict[str, Any]:
    """The sentinels' connection settings: the data nodes' ``socket_*`` ones, their ``ssl_*``
    ones when the sentinels speak TLS too, and the ``sentinel_*`` ones over them."""
    own = dict(parts.sentinel)
    unknown = [
        name
        for name in own
        if not (name in ("username", "password", "ssl") or name.startswith(("ssl_", "socket_")))
    ]
    if unknown:
        raise bad_url(location, f"unknown sentinel setting in the query ({_SENTINEL}{unknown[0]})")
    tls = parts.tls if "ssl" not in own else redis.connection.to_bool(own.pop("ssl"))
    # As given: some redis-py versions decode query values twice.
    credentials = {name: own.pop(name) for name in ("username", "password") if name in own}
    try:
        parsed = redis.connection.parse_url(f"redis://localhost/?{urlencode(own)}")
    except ValueError as exc:
        raise bad_url(location, str(exc).replace("for '", f"for '{_SENTINEL}")) from None
    for name in ("host", "port", "connection_class"):
        parsed.pop(name, None)
    parsed.update(credentials)
    inherited = ("socket_", "ssl_") if tls and parts.tls else ("socket_",)
    settings = {name: value for name, value in parts.kwargs.items() if name.startswith(inherited)}
    settings.update(parsed)
    try:
        _check_connection(redis, tls, settings, location)
    except ConfigError as exc:  # the data nodes' passed: say which side failed
        raise ConfigError(exc.setting, f"{str(exc).partition(': ')[2]} (the sentinels' settings)") from None
    if tls:
        settings["ssl"] = True
    return settings


def _node(text: str, default_port: int, number: int, location: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not colon:
        host, port = text, str(default_port)
    # Decoded as redis-py decodes a redis:// URL's host (%25 in an IPv6 zone is its '%').
    host = unquote(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    if not host:
        raise bad_url(location, f"host {number} is empty: list hosts as host:port,host:port")
    if has_blank(host):
        raise bad_url(location, f"host {number} has a blank or a control character")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise bad_url(location, f"the port of host {number} is not a number from 1 to 65535")
    return host, int(port)


def _setting(exc: TypeError) -> str:
    """The setting's name from ``__init__() got an unexpected keyword argument 'name'``."""
    return str(exc).rpartition(" ")[2]


class Acknowledged:
    """Writes followed by ``WAIT count timeout`` on the same connection (WAIT counts that
    connection's writes only), so that they survive the master's loss."""

    def __init__(
        self, master_for: Callable[[str, Exception | None], Any], replicas: Replicas, refused: type[Exception]
    ) -> None:
        self._master_for = master_for
        self._count = replicas.count
        self._milliseconds = max(1, round(replicas.timeout * 1000))
        self._refused = refused

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> bool:
        return bool(self._run(name, lambda pipe: pipe.set(name, value, ex=ex, xx=xx)))

    def delete(self, *names: str) -> Any:
        return self._run(names[0], lambda pipe: pipe.delete(*names))

    def _run(self, name: str, command: Callable[[Any], object]) -> Any:
        from redis.exceptions import AskError, MovedError

        try:
            return self._acknowledged(self._master_for(name, None), command, asking=False)
        except AskError as redirect:  # a cluster's slot moved (MOVED, an AskError too) or is moving
            master = self._master_for(name, redirect)
            return self._acknowledged(master, command, asking=not isinstance(redirect, MovedError))

    def _acknowledged(self, master: Any, command: Callable[[Any], object], *, asking: bool) -> Any:
        with master.pipeline(transaction=False) as pipe:
            if asking:  # the importing node takes the key's command only right after ASKING
                pipe.execute_command("ASKING")
            command(pipe)
            pipe.execute_command("WAIT", self._count, self._milliseconds)
            *_, reply, confirmed = pipe.execute()
        if confirmed < self._count:
            raise self._refused(
                f"the write was confirmed by {confirmed} of the {self._count} replicas "
                f"min_replicas asks for within {self._milliseconds} ms"
            )
        return reply
