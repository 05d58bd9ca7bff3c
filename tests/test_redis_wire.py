"""The store's own reading of Redis replies off a socket (shibwsgi.sessions.redis_wire), and
what its per-thread connections make of them (shibwsgi.sessions.redis_threads).

A reply read wrong is a session read wrong: another command's reply taken for this one
(bytes past the reply), a value cut short, an error taken for a value. Each must be an
error that drops the connection (a 503), never a value.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from shibwsgi.sessions.redis_threads import ThreadConnections
from shibwsgi.sessions.redis_wire import exchange, take_over

if TYPE_CHECKING:
    from collections.abc import Iterator

redis = pytest.importorskip("redis")

GET = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the store's end, the server's end) of a connected pair."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield ours, theirs


def answer(server: socket.socket, *pieces: bytes) -> threading.Thread:
    """Read the command, then send ``pieces`` one by one, a moment apart (a reply split
    across reads, at any byte)."""

    def run() -> None:
        server.recv(65536)
        for piece in pieces:
            server.sendall(piece)
            time.sleep(0.002)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


VALUES = [
    pytest.param(b"$5\r\nhello\r\n", b"hello", id="bulk string"),
    pytest.param(b"$0\r\n\r\n", b"", id="empty bulk string"),
    pytest.param(b"$4\r\na\r\nb\r\n", b"a\r\nb", id="bulk string holding CRLF"),
    pytest.param(b"$-1\r\n", None, id="RESP2 null"),
    pytest.param(b"_\r\n", None, id="RESP3 null"),
    pytest.param(b"+OK\r\n", b"OK", id="simple string"),
    pytest.param(b":3\r\n", 3, id="integer"),
]


@pytest.mark.parametrize(("reply", "value"), VALUES)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "byte by byte"])
def test_reply_is_read_whole_and_exactly(
    pair: tuple[socket.socket, socket.socket], reply: bytes, value: Any, split: bool
) -> None:
    ours, theirs = pair
    thread = answer(theirs, *([reply[n : n + 1] for n in range(len(reply))] if split else [reply]))
    assert exchange(redis, ours, GET) == value
    thread.join()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param(b"-ERR unknown command\r\n", redis.ResponseError, id="ERR"),
        pytest.param(b"-WRONGTYPE Operation against a key\r\n", redis.ResponseError, id="WRONGTYPE"),
        pytest.param(b"-READONLY You can't write\r\n", redis.exceptions.ReadOnlyError, id="READONLY"),
        pytest.param(b"-MOVED 3999 127.0.0.1:7001\r\n", redis.exceptions.MovedError, id="MOVED"),
        pytest.param(b"-ASK 3999 127.0.0.1:7001\r\n", redis.exceptions.AskError, id="ASK"),
        pytest.param(b"-LOADING Redis is loading\r\n", redis.exceptions.BusyLoadingError, id="LOADING"),
    ],
)
def test_error_reply_raises_redis_pys_exception_never_a_value(
    pair: tuple[socket.socket, socket.socket], reply: bytes, error: type[Exception]
) -> None:
    ours, theirs = pair
    answer(theirs, reply)
    with pytest.raises(redis.RedisError) as raised:
        exchange(redis, ours, GET)
    assert type(raised.value) is error


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"$1\r\na\r\n$1\r\nb\r\n", id="a second reply behind the first"),
        pytest.param(b"+OK\r\n+OK\r\n", id="two simple strings"),
        pytest.param(b"$1\r\nab\r\n", id="bulk string longer than announced"),
        pytest.param(b"*1\r\n$1\r\na\r\n", id="array"),
        pytest.param(b"%1\r\n+a\r\n+b\r\n", id="RESP3 map"),
        pytest.param(b"$x\r\n", id="length not a number"),
        pytest.param(b":x\r\n", id="integer not a number"),
        pytest.param(b"_x\r\n", id="null with text"),
        pytest.param(b"\x00\xff not RESP\r\n", id="not Redis"),
    ],
)
def test_reply_out_of_step_or_unexpected_is_invalid_never_a_value(
    pair: tuple[socket.socket, socket.socket], reply: bytes
) -> None:
    ours, theirs = pair
    answer(theirs, reply)
    with pytest.raises(redis.exceptions.InvalidResponse):
        exchange(redis, ours, GET)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="before the reply"),
        pytest.param(b"$100\r\nabc", id="mid bulk string"),
        pytest.param(b"$10", id="mid header"),
    ],
)
def test_server_closing_mid_reply_is_a_connection_error(
    pair: tuple[socket.socket, socket.socket], reply: bytes
) -> None:
    ours, theirs = pair
    theirs.sendall(reply)
    theirs.shutdown(socket.SHUT_WR)
    with pytest.raises(redis.ConnectionError):
        exchange(redis, ours, GET)


class _Connection:
    """What take_over reads of a redis-py connection."""

    def __init__(self, sock: object, socket_timeout: float | None) -> None:
        self._sock = sock
        self.socket_timeout = socket_timeout


def test_taken_over_socket_that_never_answers_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    ours.settimeout(0.2)
    assert take_over(_Connection(ours, 0.2)) is ours
    assert ours.gettimeout() is None  # blocking: no poll before each send and receive
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            exchange(redis, ours, GET)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)  # without the kernel's timeout it would wait forever
    assert [type(exc) for exc in outcome] == [redis.TimeoutError]


def test_tls_socket_is_left_to_redis_py() -> None:
    class TLSLike(socket.socket):
        pass

    with TLSLike() as sock:
        sock.settimeout(1.0)
        assert take_over(_Connection(sock, 1.0)) is None
        assert sock.gettimeout() == 1.0


def readonly_master() -> tuple[socket.socket, list[socket.socket]]:
    """A fake Redis on 127.0.0.1: ``+OK`` to every command but ``SET``, which gets ``READONLY``
    (a master the sentinels have demoted); and the connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def handle(peer: socket.socket) -> None:
        with peer:
            while packet := peer.recv(65536):
                if b"SET\r\n" in packet:
                    peer.sendall(b"-READONLY You can't write against a read only replica.\r\n")
                else:
                    peer.sendall(b"+OK\r\n" * sum(line.startswith(b"*") for line in packet.split(b"\r\n")))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                peer, _ = listener.accept()
                accepted.append(peer)
                threading.Thread(target=handle, args=(peer,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener, accepted


@pytest.mark.parametrize(
    ("sentinel", "error", "connections"),
    [
        # Retried once on the master the sentinels name, then a 503; never used again.
        pytest.param(True, redis.ConnectionError, [2, 3], id="Sentinel"),
        # One server, READONLY is its answer: the connection is in step and kept.
        pytest.param(False, redis.exceptions.ReadOnlyError, [1, 1], id="one Redis"),
    ],
)
def test_readonly_answer_from_a_demoted_sentinel_master_moves_to_a_new_connection(
    sentinel: bool, error: type[Exception], connections: list[int]
) -> None:
    listener, accepted = readonly_master()
    port = listener.getsockname()[1]
    threads = ThreadConnections(
        lambda: redis.Connection(host="127.0.0.1", port=port, socket_timeout=2, protocol=2),
        (lambda connection: True) if sentinel else None,
    )
    try:
        with pytest.raises(redis.RedisError) as raised:
            threads.set("k", "v", 60, xx=True)
        assert type(raised.value) is error
        seen = [len(accepted)]
        assert threads.delete("k") == b"OK"
        assert [*seen, len(accepted)] == connections
    finally:
        threads.close()
        listener.close()
