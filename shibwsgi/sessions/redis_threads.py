"""Each thread's own connection to one Redis server, for the store's ``GET``, ``SET`` and ``DEL``.

redis-py's client checks a connection out of a pool for every command, under a lock, and
wraps it in a retry, event dispatch and metrics; its command packer alone costs a quarter of
a loopback round trip (``make bench``). Here a thread keeps its connection, and the store's
three commands are packed here and sent on its socket (:mod:`.redis_wire`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .redis_ha import MASTER_CHECK_EVERY
from .redis_wire import exchange, take_over

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ThreadConnections", "pack", "set_up"]


class ThreadConnections:
    """The :class:`RedisClient` calls, each thread of each process on its own connection.

    No pool and no lock: a thread's connection is only ever used by that thread, and a
    process forked after a connection was opened opens its own. A connection is opened
    on first use and again after an error; a connection the server dropped (an idle
    timeout) is retried once on a new one, which every command here allows. Once redis-py
    has set a plain TCP or Unix connection up, its commands go straight on its socket
    (:mod:`.redis_wire`); a TLS one stays with redis-py. With ``on_master`` (Sentinel), a
    connection not asked about for ``MASTER_CHECK_EVERY`` seconds is used only if the
    sentinels still name its server the master.
    """

    def __init__(self, connect: Callable[[], Any], on_master: Callable[[Any], bool] | None = None) -> None:
        import redis

        self._redis = redis
        self._connect = connect
        self._on_master = on_master
        self._dropped = redis.ConnectionError
        self._refused = redis.ResponseError
        # A demoted Sentinel master's READONLY: retried on the master the sentinels name now.
        self._demoted: tuple[type[Exception], ...] = (redis.exceptions.ReadOnlyError,) if on_master else ()
        self._retried = (redis.ConnectionError, *self._demoted)
        self._local = threading.local()
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()

    def get(self, name: str) -> Any:
        key = name.encode()
        return self._run(b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key))

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> bool:
        return self._run(pack("SET", name, value, "EX", str(ex), *(("XX",) if xx else ()))) is not None

    def delete(self, *names: str) -> Any:
        return self._run(pack("DEL", *names))

    def close(self) -> None:
        """Close every thread's connection; the next command opens a new one.

        Call it when no other thread is using the store.
        """
        for connection in list(self._opened):
            connection.disconnect()
        self._local = threading.local()  # every thread's next command connects (and asks) anew

    def _run(self, command: bytes) -> Any:
        held = getattr(self._local, "held", None)
        # The fork check is a system call, kept on every command: uWSGI forks its workers
        # without running Python's fork hooks unless told to.
        if (
            held is None
            or held[5]
            or held[0] != os.getpid()
            or (self._on_master and time.monotonic() >= held[2])
        ):
            held = self._held(held)
        # Set until the reply is read: a command stopped anywhere before (an interrupt, even a
        # second one while the handler below runs) leaves its connection to be replaced.
        held[5] = True
        try:
            try:
                reply = held[4](command)
            except self._retried:
                held[1].disconnect()
                self._open(held)
                reply = held[4](command)
        except self._demoted:
            # As redis-py's Sentinel connection has it: the master was demoted (the retry
            # above went to the one the sentinels name); a 503, and a new connection next time.
            self._drop(held)
            raise self._dropped("the Sentinel master is now a replica") from None
        except self._refused:
            held[5] = False  # the server answered with an error: the connection is in step
            raise
        except BaseException:
            # An unread reply must never be read as the next command's: start afresh, on a
            # new connection (connect() again: a Sentinel one asks where the master is now).
            self._drop(held)
            raise
        held[5] = False
        return reply

    def _held(self, held: list[Any] | None) -> list[Any]:
        """This thread's ``[pid, connection, next master check, socket or None, send, in
        flight, closer]``, when ``held`` is none, another process's, a command's stopped mid-way, or
        due for the master check."""
        if held is not None and held[0] == os.getpid():
            if held[5]:  # its reply may be unread: never read it as another's
                held[1].disconnect()
                if held[3] is not None:  # also if redis-py's disconnect was the one stopped
                    held[3].close()
            elif self._on_master is not None:
                if self._on_master(held[1]):
                    held[2] = time.monotonic() + MASTER_CHECK_EVERY
                    return held
                held[1].disconnect()  # a demoted (or not yet demoted) old master: never read it again
        connection = self._connect()
        held = [os.getpid(), connection, 0.0, None, None, False, _Closer(connection)]
        self._opened.add(connection)
        self._open(held)
        self._local.held = held
        return held

    def _open(self, held: list[Any]) -> None:
        connection = held[1]
        # Explicitly: sending on an unconnected Sentinel connection would not ask the sentinels.
        connection.connect()
        held[2] = time.monotonic() + MASTER_CHECK_EVERY
        held[3] = sock = take_over(connection)
        if sock is not None:
            held[4] = functools.partial(exchange, self._redis, sock)
            return

        def send(command: bytes) -> Any:  # TLS: redis-py's send and read
            connection.send_packed_command((command,))
            return connection.read_response()

        held[4] = send

    def _drop(self, held: list[Any]) -> None:
        held[1].disconnect()
        self._local.held = None


class _Closer:
    """Closes a thread's connection once the thread's state is dropped (the thread ended, the
    store closed, a new connection took its place). redis-py's connections sit in reference
    cycles: left to the cycle collector, the socket may be finalized (with a ResourceWarning)
    before the connection closes it."""

    __slots__ = ("connection",)

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.disconnect()


def set_up(connection: Any) -> None:
    """redis-py's connection set-up (``HELLO``, ``AUTH``, ``SELECT``), where answers that are
    not Redis's are a ``ConnectionError`` (a 503): redis-py reads them as if they were, and a
    ``:1`` where a map belongs raises ``AttributeError`` (a 500)."""
    import redis

    try:
        connection.on_connect()
    except (AttributeError, TypeError, ValueError) as exc:
        raise redis.ConnectionError(
            f"the server's answers to the connection set-up are not Redis's ({type(exc).__name__}): "
            "is this host and port a Redis server?"
        ) from None


def pack(*words: str) -> bytes:
    """A command as Redis reads it (RESP: an array of bulk strings, UTF-8), packed here
    because redis-py's packer costs a quarter of a loopback round trip (``make bench``)."""
    encoded = [word.encode() for word in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%b\r\n" % (len(word), word) for word in encoded)
