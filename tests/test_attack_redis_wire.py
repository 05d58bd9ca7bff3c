"""Attacks on the Redis session store's own wire path (redis_wire, redis_threads, redis_cluster).

Each test is named after the attack and asserts the promise: never another key's value (a
reply is never read as the next command's), errors are a ``SessionError`` (a 503, never a
500 and never "no session"), every wait bounded by the socket timeout. Most run against a
fake Redis on a socket that sends hostile replies; the ``servers`` ones against redis-server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import RedisClusterSet, cli, running_redis_cluster, running_sentinel_group

from shibwsgi import SessionError
from shibwsgi.sessions import RedisStore, redis_cluster, redis_threads, redis_wire

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
                peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece its own packet
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


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"-ERR " + b"x" * (1 << 20), id="error text of 1 MB"),
        pytest.param(b"$" + b"0" * (1 << 20) + b"5", id="bulk length of 1 MB of digits"),
        pytest.param(b"+" + b"\r" * (1 << 20), id="simple string of 1 MB of CR"),
    ],
)
def test_endless_reply_line_is_invalid_not_read_until_the_timeout(line: bytes) -> None:
    pieces = [line[n : n + 65536] for n in range(0, len(line), 65536)]
    with fake_store(first_then_honest(*pieces), "socket_timeout=30") as (store, _):
        outcome = ran_within(10, lambda: store.get("alice"))
        assert isinstance(outcome, SessionError), outcome
        assert "not a reply the store expects" in str(outcome)
        assert store.get("bob") == {"user": "bob"}


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
        # fifth of its ~1600 lines, to keep it short). redis-py closes a socket it made only
        # on OSError: one interrupted before it connects is left to the garbage collector.
        pytest.param(
            KeyboardInterrupt,
            "get after close",
            5,
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


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own on the shared servers."""
    return f"atk-wire:{uuid.uuid4().hex}:"


ODD_DATA = [
    pytest.param({"user": "a\r\nb\r\n$5\r\n+OK\r\n"}, id="CRLF and RESP inside"),
    pytest.param({"user": "a\x00b", "\x00": "\x00"}, id="NUL"),
    pytest.param({"user": "Ålice 東京 😀", "lone": "\ud800"}, id="non-ASCII and a lone surrogate"),
    pytest.param({"user": "x" * (1 << 20)}, id="1 MB value"),
    pytest.param({"user": "y" * 65520}, id="value near the first read's size"),
]


@pytest.mark.servers
@pytest.mark.parametrize("data", ODD_DATA)
def test_odd_session_values_round_trip_exactly(redis_url: str, prefix: str, data: dict[str, Any]) -> None:
    store = RedisStore(redis_url, prefix=prefix)
    try:
        store.set("alice", data, 60)
        store.set("bob", {"user": "bob"}, 60)
        assert store.get("alice") == data
        assert store.get("bob") == {"user": "bob"}
        assert store.update("alice", {"user": "alice2"}, 60) is True
        assert store.get("alice") == {"user": "alice2"}
    finally:
        store.close()


@pytest.mark.servers
def test_session_ids_whose_key_length_digits_matter_are_each_their_own(redis_url: str, prefix: str) -> None:
    # Key lengths 1 under, at and 1 over each power of ten: a length written with one digit
    # too few or too many would read part of the key as a command or the next word.
    store = RedisStore(redis_url, prefix=prefix)
    lengths = sorted({n + d - len(prefix) for n in (10, 100, 1000, 10000, 100000) for d in (-1, 0, 1)} - {0})
    ids = [("\r\n" + "é\x00" * size)[: max(size, 1)] for size in lengths if size > 0]
    try:
        for number, session_id in enumerate(ids):
            store.set(session_id, {"n": number}, 60)
        for number, session_id in enumerate(ids):
            assert store.get(session_id) == {"n": number}
        store.delete(ids[0])
        assert store.get(ids[0]) is None
        assert store.get(ids[1]) == {"n": 1}
    finally:
        store.close()


@pytest.mark.servers
def test_threads_racing_get_set_delete_never_read_another_keys_value(redis_url: str, prefix: str) -> None:
    store = RedisStore(redis_url, prefix=prefix)
    wrong: list[str] = []
    shared_values = [{"user": f"shared{n}"} for n in range(4)]

    def work(number: int) -> None:
        own = f"t{number}"
        for round_ in range(150):
            data = {"user": own, "round": round_}
            store.set(own, data, 60)
            if (got := store.get(own)) != data:
                wrong.append(f"{own}: {got}")
            store.set("shared", shared_values[round_ % 4], 60)
            if (got := store.get("shared")) not in (*shared_values, None):
                wrong.append(f"shared: {got}")
            if round_ % 3 == 0:
                store.delete("shared")
            if store.update(own, data, 60) is not True:
                wrong.append(f"{own}: renewal found no session")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        store.close()
    assert wrong == []


@pytest.mark.servers
def test_renewal_racing_logout_never_brings_the_session_back(redis_url: str, prefix: str) -> None:
    store = RedisStore(redis_url, prefix=prefix)
    other = RedisStore(redis_url, prefix=prefix)  # another node
    try:
        for n in range(200):
            store.set(f"s{n}", {"user": "alice"}, 60)
            racer = threading.Thread(target=other.delete, args=(f"s{n}",))
            racer.start()
            store.update(f"s{n}", {"user": "alice", "seen": n}, 60)
            racer.join()
            assert other.get(f"s{n}") is None
            assert store.get(f"s{n}") is None  # no stale value after the other node's logout
    finally:
        store.close()
        other.close()


@pytest.mark.parametrize("busy", [False, True], ids=["after use", "while another thread reads"])
def test_forked_child_reads_its_own_values_on_its_own_connection(busy: bool) -> None:
    with fake_store() as (store, server):
        assert store.get("parent") == {"user": "parent"}
        stop = threading.Event()
        wrong: list[object] = []

        def read() -> None:
            while not stop.is_set():
                if (got := store.get("other")) != {"user": "other"}:
                    wrong.append(got)

        other = threading.Thread(target=read)
        if busy:
            other.start()
            time.sleep(0.01)
        before = server.accepted
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its answers through the pipe, then out without cleanup
            try:
                answers = [store.get(f"child{n}") == {"user": f"child{n}"} for n in range(200)]
                os.write(writer, b"ok" if all(answers) else b"wrong")
            finally:
                os._exit(0)
        os.close(writer)
        try:
            for n in range(200):
                assert store.get(f"parent{n}") == {"user": f"parent{n}"}
        finally:
            with os.fdopen(reader, "rb") as pipe:
                child_says = pipe.read()
            os.waitpid(pid, 0)
            stop.set()
            if busy:
                other.join()
        assert child_says == b"ok"
        assert wrong == []
        assert server.accepted == before + 1  # the child's own; the parent kept its


def test_close_while_other_threads_read_never_gives_another_keys_value() -> None:
    with fake_store() as (store, _):
        stop = threading.Event()
        wrong: list[object] = []

        def read(number: int) -> None:
            while not stop.is_set():
                try:
                    got = store.get(f"u{number}")
                except SessionError:
                    continue  # a connection closed under it: a 503, acceptable
                if got != {"user": f"u{number}"}:
                    wrong.append(got)

        threads = [threading.Thread(target=read, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for _ in range(60):
            store.close()
            time.sleep(0.005)
        stop.set()
        for thread in threads:
            thread.join()
        assert wrong == []
        assert store.get("after") == {"user": "after"}  # close() then use: works


def test_store_used_after_close_reconnects() -> None:
    with fake_store() as (store, server):
        assert store.get("a") == {"user": "a"}
        store.close()
        assert store.get("b") == {"user": "b"}
        store.close()
        store.close()
        assert store.get("c") == {"user": "c"}
        assert server.accepted == 3


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A cluster of this module's own: these tests move slots and fail masters over."""
    with running_redis_cluster(tmp_path_factory.mktemp("wire-cluster")) as servers:
        yield servers


def cluster_store(servers: RedisClusterSet, prefix: str) -> RedisStore:
    return RedisStore(f"{servers.url}?socket_timeout=0.5", prefix=prefix)


def slot_owner(servers: RedisClusterSet, key: str) -> tuple[int, int]:
    """(the key's slot, the port of the master serving it now)."""
    port = next(iter(servers.masters()))
    slot = int(cli(port, "CLUSTER", "KEYSLOT", key))
    for line in cli(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "master" not in fields[2]:
            continue
        for part in fields[8:]:
            low, _, high = part.partition("-")
            if part[0] != "[" and int(low) <= slot <= int(high or low):
                return slot, int(fields[1].split(":")[1].split("@")[0])
    raise AssertionError(f"no master serves slot {slot}")


def node_id(port: int) -> str:
    return cli(port, "CLUSTER", "MYID").strip()


@pytest.mark.servers
def test_cluster_read_through_a_full_slot_memory_is_never_another_keys(cluster_url: str, prefix: str) -> None:
    store = RedisStore(cluster_url, prefix=prefix)
    ids = [f"s{n}" for n in range(redis_cluster.SLOTS_REMEMBERED + 600)]
    try:
        for session_id in ids:
            store.set(session_id, {"user": session_id}, 60)
        for session_id in ids[::-1] + ids:
            assert store.get(session_id) == {"user": session_id}
        assert len(store._client._slots) <= redis_cluster.SLOTS_REMEMBERED  # type: ignore[attr-defined]
    finally:
        store.close()


@pytest.mark.servers
def test_cluster_slot_migrating_then_moved_reads_the_current_value(
    own_cluster: RedisClusterSet, prefix: str
) -> None:
    store, other = cluster_store(own_cluster, prefix), cluster_store(own_cluster, prefix)
    try:
        store.set("alice", {"user": "alice", "v": 1}, 60)
        assert store.get("alice") == {"user": "alice", "v": 1}  # slot remembered, connection open
        slot, source = slot_owner(own_cluster, prefix + "alice")
        target = next(port for port in own_cluster.masters() if port != source)
        cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", node_id(source))
        cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", node_id(target))
        cli(source, "MIGRATE", "127.0.0.1", str(target), "", "0", "5000", "KEYS", prefix + "alice")
        assert store.get("alice") == {"user": "alice", "v": 1}  # ASK from the source
        other.set("alice", {"user": "alice", "v": 2}, 60)
        assert store.get("alice") == {"user": "alice", "v": 2}
        for port in own_cluster.masters():
            cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", node_id(target))
        other.set("alice", {"user": "alice", "v": 3}, 60)
        assert store.get("alice") == {"user": "alice", "v": 3}  # MOVED from the source
        other.delete("alice")
        assert store.get("alice") is None  # logged out on another node: gone here too
        assert store.update("alice", {"user": "alice"}, 60) is False
    finally:
        store.close()
        other.close()


@pytest.mark.servers
def test_cluster_master_turned_replica_never_serves_a_stale_read(
    own_cluster: RedisClusterSet, prefix: str
) -> None:
    own_cluster.wait_settled()
    store, other = cluster_store(own_cluster, prefix), cluster_store(own_cluster, prefix)
    try:
        store.set("bob", {"user": "bob", "v": 1}, 60)
        assert store.get("bob") == {"user": "bob", "v": 1}
        _, master = slot_owner(own_cluster, prefix + "bob")
        replica = next(
            line.split()[1].split(":")[1].split("@")[0]
            for line in cli(master, "CLUSTER", "REPLICAS", node_id(master)).splitlines()
        )
        cli(int(replica), "CLUSTER", "FAILOVER")
        deadline = time.monotonic() + 20
        while slot_owner(own_cluster, prefix + "bob")[1] != int(replica):
            assert time.monotonic() < deadline, "the failover did not happen"
            time.sleep(0.05)
        other.set("bob", {"user": "bob", "v": 2}, 60)  # a fresh client: to the new master
        # The old master, a replica now, answers MOVED (never its own copy), even before
        # this store's slot table knows.
        assert store.get("bob") == {"user": "bob", "v": 2}
        other.delete("bob")
        assert store.get("bob") is None
    finally:
        store.close()
        other.close()


@pytest.mark.servers
@pytest.mark.parametrize("fault", [signal.SIGSTOP, signal.SIGKILL], ids=["stalled", "killed"])
def test_cluster_failed_master_is_a_bounded_session_error_or_the_value(
    own_cluster: RedisClusterSet, prefix: str, fault: signal.Signals
) -> None:
    # Last of the module's cluster tests: the killed one leaves a master dead.
    own_cluster.wait_settled()
    # Written to a replica too: a write the replica never had is Redis's loss, not the store's.
    store = RedisStore(f"{own_cluster.url}?socket_timeout=0.5&min_replicas=1&wait_timeout=0.3", prefix=prefix)
    _, master = slot_owner(own_cluster, prefix + "carol")
    process = next(node for node in own_cluster.nodes if node.port == master).process
    try:
        store.set("carol", {"user": "carol"}, 60)
        assert store.get("carol") == {"user": "carol"}
        process.send_signal(fault)
        for _ in range(4):  # before and during the replica's takeover
            outcome = ran_within(15, lambda: store.get("carol"))
            assert outcome == {"user": "carol"} or isinstance(outcome, SessionError), outcome
    finally:
        if fault == signal.SIGSTOP:
            process.send_signal(signal.SIGCONT)
        store.close()


@pytest.mark.servers
def test_sentinel_old_master_back_after_a_failover_never_serves_a_stale_read(
    tmp_path_factory: pytest.TempPathFactory, prefix: str
) -> None:
    with running_sentinel_group(tmp_path_factory.mktemp("wire-sentinel")) as group:
        # The first writes on a replica too (else the failover may lose them: Redis's loss).
        store = RedisStore(f"{group.url}?socket_timeout=0.5&min_replicas=1&wait_timeout=0.3", prefix=prefix)
        other = RedisStore(f"{group.url}?socket_timeout=0.5", prefix=prefix)  # another node
        try:
            store.set("alice", {"user": "alice", "v": 1}, 60)
            store.set("bob", {"user": "bob"}, 60)
            assert store.get("alice") == {"user": "alice", "v": 1}  # a connection to the master
            group.master.process.send_signal(signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 30
                while group.master_port() != group.replica.port:
                    assert time.monotonic() < deadline, "no failover"
                    time.sleep(0.05)
                changed = False
                while not changed:  # the new master takes writes once it is one
                    try:
                        other.update("alice", {"user": "alice", "v": 2}, 60)
                        other.delete("bob")
                        changed = True
                    except SessionError:
                        assert time.monotonic() < deadline, "the new master never took a write"
                        time.sleep(0.05)
            finally:
                group.master.process.send_signal(signal.SIGCONT)
            # The old master answers again, as a master, until the sentinels demote it.
            for _ in range(40):
                for key, fresh in (("alice", {"user": "alice", "v": 2}), ("bob", None)):
                    outcome = ran_within(10, lambda key=key: store.get(key))
                    assert outcome == fresh or isinstance(outcome, SessionError), (key, outcome)
                time.sleep(0.05)
        finally:
            store.close()
            other.close()


class _SlotTable:
    """What ClusterReads reads of a RedisCluster: its slot table and key hashing."""

    def __init__(self, node: object) -> None:
        self.nodes_manager = type("NodesManager", (), {"slots_cache": {7: [node]}})()

    def keyslot(self, name: str) -> int:
        return 7


class _Cluster:
    """A LazyCluster whose RedisCluster answers every GET itself (the fallback)."""

    def __init__(self, node: object) -> None:
        self.table = _SlotTable(node)

    def cluster(self) -> _SlotTable:
        return self.table

    def get(self, name: str) -> bytes:
        return b"from RedisCluster"


def test_cluster_slot_moved_to_a_node_redis_py_has_not_connected_yet_falls_back() -> None:
    # RedisCluster puts a MOVED's new node in its slot table before it connects to it (another
    # thread may read the table in between): that read must go through RedisCluster, not 500.
    node = redis.cluster.ClusterNode("127.0.0.1", 7001, redis.cluster.PRIMARY)
    assert node.redis_connection is None
    reads = redis_cluster.ClusterReads(_Cluster(node))  # type: ignore[arg-type]
    assert reads.get("k") == b"from RedisCluster"


@pytest.mark.servers
@pytest.mark.parametrize("fixture", ["redis_url", "sentinel_url", "cluster_url"])
def test_every_mode_works_after_close(request: pytest.FixtureRequest, fixture: str, prefix: str) -> None:
    store = RedisStore(request.getfixturevalue(fixture), prefix=prefix)
    try:
        store.set("alice", {"user": "alice"}, 60)
        assert store.get("alice") == {"user": "alice"}
        store.close()
        assert store.get("alice") == {"user": "alice"}
        store.close()
        store.delete("alice")
        assert store.get("alice") is None
    finally:
        store.close()


@pytest.mark.servers
@pytest.mark.parametrize("protocol", ["2", "3"])
def test_resp2_and_resp3_replies_read_the_same(redis_url: str, prefix: str, protocol: str) -> None:
    store = RedisStore(f"{redis_url}?protocol={protocol}", prefix=prefix)
    try:
        assert store.get("nobody") is None
        assert store.update("nobody", {"user": "x"}, 60) is False  # XX on a missing key: a null
        store.set("alice", {"user": "alice"}, 60)
        assert store.get("alice") == {"user": "alice"}
        store.delete("alice")
        assert store.get("alice") is None
    finally:
        store.close()
