"""The store's commands on a connection's own socket: one send, one read, nothing else.

redis-py connects and sets a connection up (``HELLO``, ``AUTH``, ``SELECT``); then
:func:`take_over` moves the socket's timeout into the kernel (``SO_RCVTIMEO`` and
``SO_SNDTIMEO``) and makes the socket blocking, and :func:`exchange` sends a packed command
and reads its one reply. CPython polls a socket that has a timeout before every send and
every receive: two system calls per command on top of the round trip's two, plus
redis-py's health check, event dispatch and parser layers (``make bench`` shows the
profile). The kernel's timeout still bounds every wait: a server that stops answering is a
``TimeoutError`` within the connection's ``socket_timeout``; one that trickles a reply in
pieces, each within it, is one once the pieces took longer than the ``socket_timeout``.

Only the replies the store's ``GET``, ``SET`` and ``DEL`` can get are read (bulk string,
null, simple string, integer, error, in RESP2 or RESP3); anything else, or bytes past the
reply, is ``InvalidResponse`` and the caller drops the connection: a reply is never read as
the next command's.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

__all__ = ["exchange", "take_over"]

#: Bytes asked of the socket at once for a reply's first part.
READ_SIZE = 65536
#: Bytes of a reply's first line: Redis's are a type and a length, or an error's short text.
MAX_LINE = 4096
#: Redis's own limit on a bulk string (``proto-max-bulk-len``'s default): a longer announced
#: length is not Redis's.
MAX_BULK = 512 * 1024 * 1024
_TIMEVAL = struct.Struct("@ll")


def take_over(connection: Any) -> socket.socket | None:
    """The connected ``connection``'s socket, made blocking with the kernel enforcing its
    ``socket_timeout``; ``None`` (leave it to redis-py) for TLS or where that cannot be set."""
    sock = getattr(connection, "_sock", None)
    if type(sock) is not socket.socket:  # TLS (an SSLSocket), or a redis-py that keeps it elsewhere
        return None
    timeout = connection.socket_timeout
    seconds = 0 if timeout is None else int(timeout)
    # Zero means no timeout to the kernel: a timeout under a microsecond waits one.
    micros = 0 if timeout is None else max(round((timeout - seconds) * 1e6), 0 if seconds else 1)
    try:
        value = _TIMEVAL.pack(seconds, micros)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        sock.settimeout(None)  # also OSError: closed meanwhile (close() from another thread)
    except (OSError, struct.error):
        return None
    return sock


def exchange(redis: Any, sock: socket.socket, command: bytes) -> Any:
    """Send ``command`` on ``sock`` and return its reply: bytes, ``None`` or an int (``redis``:
    the redis-py module, whose exceptions are raised). An error reply raises
    redis-py's exception for it; socket failures redis-py's ``TimeoutError`` or
    ``ConnectionError``; a reply that is none of these ``InvalidResponse``."""
    try:
        sock.sendall(command)
        data = sock.recv(READ_SIZE)
        end = data.find(b"\r\n")
        more = _More(sock)
        while end < 0:
            if len(data) > MAX_LINE:  # a reply's first line: a type, a length, an error's text
                raise ValueError(f"a reply line longer than {MAX_LINE} bytes")
            data = more(data, READ_SIZE)
            end = data.find(b"\r\n")
        if data[0] == 36:  # "$", a bulk string: a session's text, or none
            size = int(data[1:end])
            if size == -1:
                total, reply = end + 2, None
            elif not 0 <= size <= MAX_BULK:  # -2 is no null, and no length is worth a 500
                raise ValueError(f"a bulk string of length {size}")
            else:
                total = end + size + 4
                while len(data) < total:
                    data = more(data, min(total - len(data), READ_SIZE))
                if not data.endswith(b"\r\n"):
                    raise ValueError("a bulk string longer than announced")
                reply = data[end + 2 : -2]
        else:
            total, reply = end + 2, _simple(data[:1], data[1:end], redis)
        if len(data) != total:
            raise ValueError("bytes past the reply")
    except (BlockingIOError, TimeoutError):  # the kernel's timeout (EAGAIN), or _More's
        raise redis.TimeoutError("Timeout reading from or writing to the Redis server") from None
    except (OSError, _Closed) as exc:
        raise redis.ConnectionError(f"Error talking to the Redis server: {exc}") from None
    except ValueError as exc:  # also a header int() cannot read
        raise redis.exceptions.InvalidResponse(f"not a reply the store expects: {exc}") from None
    if isinstance(reply, Exception):
        raise reply
    return reply


class _Closed(Exception):
    """The server closed the connection."""


class _More:
    """The rest of a reply that did not come in one piece, within the socket's timeout in all:
    the kernel bounds each wait, not a server sending a byte at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline = 0.0

    def __call__(self, data: bytes, size: int) -> bytes:
        now = time.monotonic()
        if not self._deadline:  # the first piece late: only now is the timeout read
            seconds, micros = _TIMEVAL.unpack(
                self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL.size)
            )
            self._deadline = now + (seconds + micros / 1e6 or float("inf"))
        elif now > self._deadline:
            raise TimeoutError("the reply took longer than the socket timeout")
        chunk = self._sock.recv(size)
        if not chunk:
            raise _Closed("the server closed the connection")
        return data + chunk


def _simple(kind: bytes, text: bytes, redis: Any) -> Any:
    """The reply of a one-line type: ``+`` simple string, ``:`` integer, ``_`` null, ``-`` error
    (the exception, raised by the caller once the reply is known to be whole)."""
    if kind == b"+":
        return text
    if kind == b":":
        return int(text)
    if kind == b"_" and not text:
        return None
    if kind == b"-":
        from redis._parsers import BaseParser

        return BaseParser.parse_error(text.decode("utf-8", "replace"))  # type: ignore[no-untyped-call]
    raise ValueError(f"a reply of type {kind!r}")
