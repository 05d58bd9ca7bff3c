"""Attacks on the Redis session store's own wire path (redis_wire, redis_threads, redis_cluster).

Each test is named after the attack and asserts the promise: never another key's value (a
reply is never read as the next command's), errors are a ``SessionError`` (a 503, never a
500 and never "no session"), every wait bounded by the socket timeout. Most run against a
fake Redis on a socket that sends hostile replies; the ``servers`` ones against redis-server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from shibwsgi import SessionError
from shibwsgi.sessions import RedisStore, redis_threads, redis_wire

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

redis = pytest.importorskip("redis")


def value_of(key: bytes) -> bytes:
    """The session text the fake server and the tests agree on for ``key``."""
    return json.dumps({"user": key.decode("utf-8", "surrogateescape")}).encode("utf-8", "surrogateescape")


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def honest(key: bytes, _: int) -> list[bytes]:
    return [bulk(value_of(key))]


class FakeRedis:
    """A Redis stand-in on 127.0.0.1: ``script(key, n)`` answers the n-th GET (from 0), ``+OK``
    or ``:1`` every other command. Counts the connections it accepted."""

    def __init__(self, script: Callable[[bytes, int], list[bytes]] = honest) -> None:
        self.script = script
        self.gets = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, query: str = "socket_timeout=0.5") -> str:
        return f"redis://127.0.0.1:{self.port}/0?{query}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                peer, _ = self.listener.accept()
                self.accepted += 1
                threading.Thread(target=self._handle, args=(peer,), daemon=True).start()

    def _handle(self, peer: socket.socket) -> None:
        with peer, contextlib.suppress(OSError):
            reader = peer.makefile("rb")
            while (words := _read_command(reader)) is not None:
                name = words[0].upper()
                if name == b"GET":
                    with self._lock:
                        n, self.gets = self.gets, self.gets + 1
                    for piece in self.script(words[1], n):
                        peer.sendall(piece)
                        time.sleep(0.001)
                elif name == b"HELLO":
                    peer.sendall(b"%2\r\n+server\r\n+redis\r\n+proto\r\n:" + words[1] + b"\r\n")
                elif name == b"DEL":
                    peer.sendall(b":1\r\n")
                else:
                    peer.sendall(b"+OK\r\n")

    def close(self) -> None:
        self.listener.close()


def _read_command(reader: Any) -> list[bytes] | None:
    line = reader.readline()
    if not line.startswith(b"*"):
        return None
    words = []
    for _ in range(int(line[1:])):
        size = int(reader.readline()[1:])
        words.append(reader.read(size + 2)[:-2])
    return words


@contextlib.contextmanager
def fake_store(
    script: Callable[[bytes, int], list[bytes]] = honest, query: str = "socket_timeout=0.5"
) -> Iterator[tuple[RedisStore, FakeRedis]]:
    server = FakeRedis(script)
    store = RedisStore(server.url(query), prefix="")
    try:
        yield store, server
    finally:
        store.close()
        server.close()


def first_then_honest(*first: bytes) -> Callable[[bytes, int], list[bytes]]:
    """The first GET gets ``first``, every later one its honest value."""
    return lambda key, n: list(first) if n == 0 else honest(key, n)


def ran_within(seconds: float, call: Callable[[], object]) -> BaseException | object:
    """What ``call`` returned or raised, or fail if it is still running after ``seconds`` (a hang)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s: a hang"
    return outcome[0]


HOSTILE_FIRST_REPLIES = [
    pytest.param([b"$-2\r\n"], id="bulk length -2"),
    pytest.param([b"$-5\r\n"], id="bulk length -5"),
    pytest.param([b"$-0\r\n"], id="bulk length -0 with no body"),
    pytest.param([b"$99999999999\r\nabc"], id="bulk length 99999999999"),
    pytest.param([b"$" + b"9" * 40 + b"\r\nabc"], id="bulk length past 64 bits"),
    pytest.param([b"$1e3\r\n"], id="bulk length 1e3"),
    pytest.param([b"$\r\n"], id="bulk length empty"),
    pytest.param([b"$5\r\nabc\r\n"], id="bulk body shorter than announced"),
    pytest.param([b"$2\r\nabcdef\r\n"], id="bulk body longer than announced"),
    pytest.param([b"$3\r\nabcXY"], id="bulk body not ended by CRLF"),
    pytest.param([b"*1\r\n$2\r\n{}\r\n"], id="array"),
    pytest.param([b"%1\r\n+a\r\n+b\r\n"], id="RESP3 map"),
    pytest.param([b"~1\r\n$2\r\n{}\r\n"], id="RESP3 set"),
    pytest.param(
        [b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", bulk(b"{}")], id="RESP3 push before the reply"
    ),
    pytest.param(
        [b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\n{}\r\n", bulk(b"{}")], id="pubsub push before the reply"
    ),
    pytest.param([b"|1\r\n+a\r\n+b\r\n", bulk(b"{}")], id="RESP3 attribute before the reply"),
    pytest.param([b"!10\r\nERR failed\r\n"], id="RESP3 blob error"),
    pytest.param([b"=6\r\ntxt:{}\r\n"], id="RESP3 verbatim string"),
    pytest.param([b",1.5\r\n"], id="RESP3 double"),
    pytest.param([b"#t\r\n"], id="RESP3 boolean"),
    pytest.param([b"(12345678901234567890\r\n"], id="RESP3 big number"),
    pytest.param([b":1\r\n"], id="integer for a GET"),
    pytest.param([b"+OK\r\n"], id="simple string for a GET"),
    pytest.param([b"-ERR \xff\xfe not utf-8\r\n"], id="error with non-UTF-8 bytes"),
    pytest.param([b"-\r\n"], id="error with no text"),
    pytest.param([b"\r\n"], id="empty line"),
    pytest.param([bulk(b"{}") + bulk(b'{"user": "other"}')], id="a second reply behind the first"),
]


@pytest.mark.parametrize("first", HOSTILE_FIRST_REPLIES)
def test_hostile_reply_is_a_session_error_and_the_next_read_is_its_own(first: list[bytes]) -> None:
    with fake_store(first_then_honest(*first)) as (store, _):
        outcome = ran_within(5, lambda: store.get("alice"))
        assert isinstance(outcome, SessionError), outcome
        for key in ("bob", "carol"):
            assert store.get(key) == {"user": key}


@pytest.mark.parametrize(
    "length",
    [
        pytest.param(b"+2", id="plus sign"),
        pytest.param(b" 2", id="leading blank"),
        pytest.param(b"2 ", id="trailing blank"),
        pytest.param(b"02", id="leading zero"),
        pytest.param(b"0_2", id="underscore"),
        pytest.param("\u0662".encode(), id="Arabic-Indic digit"),
    ],
)
def test_odd_bulk_length_spelling_never_yields_another_value(length: bytes) -> None:
    with fake_store(first_then_honest(b"$" + length + b"\r\n{}\r\n")) as (store, _):
        outcome = ran_within(5, lambda: store.get("alice"))
        assert outcome == {} or isinstance(outcome, SessionError), outcome
        assert store.get("bob") == {"user": "bob"}


def test_reply_split_at_every_byte_boundary_is_read_whole() -> None:
    text = json.dumps({"user": "a\r\nb", "n": "x" * 40}).encode()
    reply = bulk(text)

    def script(key: bytes, n: int) -> list[bytes]:
        cut = n % (len(reply) + 1)
        return [reply[:cut], reply[cut:]] if 0 < cut < len(reply) else [reply]

    with fake_store(script) as (store, server):
        for _ in range(len(reply) + 1):
            store.get("alice")
            assert store.get("alice") == json.loads(text)
        assert server.accepted == 1  # every split read on the one connection, in step


def test_server_closing_mid_reply_is_a_session_error_never_no_session() -> None:
    def script(key: bytes, n: int) -> list[bytes]:
        raise OSError("close")  # the handler drops the connection after reading the GET

    with fake_store(script) as (store, _), pytest.raises(SessionError):
        store.get("alice")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("socket_timeout=0.0001", id="0.0001 s"),
        pytest.param("socket_timeout=0.0000001", id="under a microsecond"),
        pytest.param("socket_timeout=0.3", id="0.3 s"),
        pytest.param("socket_timeout=1.9999999", id="a hair under 2 s"),
        pytest.param("", id="unset"),
    ],
)
def test_server_sending_nothing_times_out_as_a_session_error(query: str) -> None:
    with fake_store(lambda key, n: [], query) as (store, _):
        outcome = ran_within(10, lambda: store.get("alice"))
        assert isinstance(outcome, SessionError), outcome


def test_server_trickling_a_reply_is_bounded_by_the_socket_timeout() -> None:
    # A byte a millisecond: every receive well under the 0.2 s timeout, the whole reply 3 s.
    trickle = [bytes([byte]) for byte in b"$100000\r\n" + b"x" * 3000]
    with fake_store(lambda key, n: trickle, "socket_timeout=0.2") as (store, _):
        outcome = ran_within(2, lambda: store.get("alice"))
        assert isinstance(outcome, SessionError), outcome


def interrupted_at(line: int, error: type[BaseException], call: Callable[[], object], then: int = 0) -> bool:
    """Run ``call`` raising ``error`` at its ``line``-th line (counted in the store's wire
    modules and redis-py's connection module) and, with ``then``, again at the ``then``-th
    call or return after that, as a second interrupt while the first is being handled.
    Whether it got to that line. (Python stops calling a tracer that raises, but not the other
    kind: the first is a line tracer's, the second a profiler's.)"""
    watched = (redis_wire.__file__, redis_threads.__file__, redis.connection.__file__)
    seen = events = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal seen
        if event == "line":
            seen += 1
            if seen == line:
                raise error
        return local

    def start(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename in watched and not in_finalizer(frame) else None

    def second(frame: FrameType, event: str, arg: object) -> None:
        nonlocal events
        if seen >= line and frame.f_code.co_filename in watched and not in_finalizer(frame):
            events += 1
            if events == then:
                raise error

    sys.settrace(start)
    if then:
        sys.setprofile(second)
    try:
        call()
    except (error, SessionError):
        pass
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return seen >= line


def in_finalizer(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs in a ``__del__``: an old connection let go of, whose errors
    Python ignores (not the store's command)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


@pytest.mark.parametrize(
    ("error", "command", "stride", "interrupts"),
    [
        *(
            pytest.param(error, command, 1, [0], id=f"{error.__name__} in {command}")
            for error in (KeyboardInterrupt, SystemExit, MemoryError)
            for command in ("get", "set", "delete")
        ),
        # A second interrupt while the first one is being handled, 1 to 6 calls later.
        *(
            pytest.param(
                KeyboardInterrupt, command, 1, range(1, 7), id=f"two KeyboardInterrupts in {command}"
            )
            for command in ("get", "set")
        ),
        # close(), then a command: interrupted in redis-py's connect and set-up too (every
        # third of its ~1600 lines, to keep it short). redis-py closes a socket it made only
        # on OSError: one interrupted before it connects is left to the garbage collector.
        pytest.param(
            KeyboardInterrupt,
            "get after close",
            3,
            [0],
            id="KeyboardInterrupt in get after close",
            marks=pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning"),
        ),
    ],
)
def test_interrupt_at_every_line_of_a_command_never_leaves_its_reply_to_the_next(
    error: type[BaseException], command: str, stride: int, interrupts: Sequence[int]
) -> None:
    with fake_store() as (store, _):
        store.get("warm")  # interrupted on a connection in use, then on each new one
        calls = {
            "get": lambda: store.get("alice"),
            "set": lambda: store.set("alice", {"user": "alice"}, 60),
            "delete": lambda: store.delete("alice"),
            "get after close": lambda: (store.close(), store.get("alice")),
        }
        line = 1
        while True:
            for then in interrupts:
                if not interrupted_at(line, error, calls[command], then):
                    break
                time.sleep(0.002)  # the interrupted command's reply is in
                assert store.get(f"bob{line}") == {"user": f"bob{line}"}
                assert store.get(f"carol{line}") == {"user": f"carol{line}"}
            else:
                line += stride
                continue
            break
        assert line > 10  # the attack reached into the command
