"""Attacks on the Redis session stores (one Redis, Sentinel, Cluster): odd URLs, failing servers.

Each test is named after the attack and asserts the safe behaviour: a bad URL is a
``ConfigError`` at start-up naming the part (never a 500 at the first request, never the
password), and a failing server is a ``SessionError`` (the middleware's 503) within a
bounded time, never another user's session and never a logged-out session back.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import RedisClusterSet, SentinelGroup, cli, running_redis_cluster, running_sentinel_group
from stack import running_redis
from webtest import TestApp

from shibwsgi import ConfigError, SessionError, SSOMiddleware
from shibwsgi.sessions import RedisStore, store_from_url
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing import Queue
    from pathlib import Path

    from webtest import TestResponse

# The prefix fixture, a key prefix of each test's own on the shared servers.
pytest_plugins = ["store_fixtures"]

MARK = "S3CR3T"
KEY = "k" * 32

pytest.importorskip("redis")


def refusal(url: str, **options: Any) -> ConfigError:
    """The ConfigError for ``url``, checked to hide the password everywhere it could show."""
    with pytest.raises(ConfigError) as info:
        RedisStore(url, **options)
    error = info.value
    for shown in (str(error), repr(error), str(error.__cause__), str(error.__context__)):
        assert MARK not in shown, shown
    assert error.setting == "session"
    return error


# --- URLs accepted at start-up that fail every request later ------------------------------------


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param("redis://127.0.0.1/0?socket_timeout=nan", "socket_timeout", id="plain, NaN timeout"),
        pytest.param("redis://127.0.0.1/0?socket_timeout=-1", "socket_timeout", id="plain, negative timeout"),
        pytest.param("redis://127.0.0.1/0?socket_timeout=0", "socket_timeout", id="plain, zero timeout"),
        pytest.param(
            "redis://127.0.0.1/0?socket_timeout=inf", "socket_timeout", id="plain, infinite timeout"
        ),
        pytest.param(
            "redis://127.0.0.1/0?socket_connect_timeout=1e308", "socket_connect_timeout", id="plain, huge"
        ),
        pytest.param("redis+sentinel://h/svc?socket_timeout=nan", "socket_timeout", id="sentinel, NaN"),
        pytest.param("redis+sentinel://h/svc?socket_timeout=-1", "socket_timeout", id="sentinel, negative"),
        pytest.param(
            "redis+sentinel://h/svc?socket_connect_timeout=0", "socket_connect_timeout", id="sentinel, zero"
        ),
        pytest.param("rediss+sentinel://h/svc?socket_timeout=inf", "socket_timeout", id="sentinel, inf"),
        pytest.param("redis+cluster://h:7000/?socket_timeout=-1", "socket_timeout", id="cluster, negative"),
        pytest.param("redis+cluster://h:7000/?socket_timeout=nan", "socket_timeout", id="cluster, NaN"),
    ],
)
def test_timeout_that_is_not_a_positive_finite_number_is_refused_at_start_up(url: str, part: str) -> None:
    # Accepted, it raised ValueError/OverflowError from the socket at every request: a 500.
    assert part in str(refusal(url))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1/-1", id="plain, negative"),
        pytest.param("redis://127.0.0.1/99999999999", id="plain, past a C int"),
        pytest.param("redis://127.0.0.1/0?db=-1", id="plain, negative in the query"),
        pytest.param("redis://127.0.0.1/abc", id="plain, not a number (redis-py: db 0)"),
        pytest.param("redis://127.0.0.1/1/2", id="plain, two numbers (redis-py: db 12)"),
        pytest.param("redis://127.0.0.1/\u0663", id="plain, Arabic-Indic digit"),
        pytest.param("redis+sentinel://h/svc/99999999999999999999", id="sentinel, past a C int"),
        pytest.param("redis+sentinel://h/svc/\u0663", id="sentinel, Arabic-Indic digit"),
        pytest.param("redis+sentinel://h/svc?db=-1", id="sentinel, negative in the query"),
    ],
)
def test_database_out_of_range_is_refused_at_start_up(url: str) -> None:
    assert "database" in str(refusal(url))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1/0?socket_timeout=1&socket_timeout=2", id="plain (redis-py: first)"),
        pytest.param("redis://127.0.0.1/0?db=1&db=x", id="plain, second one bad"),
        pytest.param("redis+sentinel://h/svc?min_replicas=1&min_replicas=0", id="min_replicas, last is 0"),
        pytest.param("redis+sentinel://h/svc?db=1&db=2", id="sentinel db"),
        pytest.param("redis+cluster://h:1/?password=a&password=b", id="cluster password"),
    ],
)
def test_setting_given_twice_is_refused(url: str) -> None:
    assert "more than once" in str(refusal(url))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1/0?socket_timeout=", id="plain timeout (redis-py: none)"),
        pytest.param("redis+sentinel://h/svc?socket_connect_timeout=&db=1", id="sentinel timeout"),
        pytest.param("redis+cluster://h:1/?password=", id="cluster password"),
        pytest.param("redis://127.0.0.1/0?min_replicas=", id="min_replicas"),
    ],
)
def test_blank_setting_is_refused_not_dropped(url: str) -> None:
    # From an unset variable (?socket_timeout=${T}): redis-py drops it, silently.
    assert "no value" in str(refusal(url))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://h/svc?min_replicas=99999999999999999999999", id="past WAIT's long"),
        pytest.param("redis+sentinel://h/svc?min_replicas=\u0663", id="Arabic-Indic digit"),
        pytest.param("redis+sentinel://h/svc?min_replicas=%2B1", id="plus sign"),
        pytest.param("redis://127.0.0.1/0?min_replicas=1001", id="more than a cluster's nodes"),
    ],
)
def test_min_replicas_that_no_server_can_meet_is_refused(url: str) -> None:
    assert "min_replicas" in str(refusal(url))


@pytest.mark.parametrize(
    ("url", "options"),
    [
        pytest.param(
            "redis+sentinel://h/svc?min_replicas=1&wait_timeout=2", {}, id="sentinel, default socket"
        ),
        pytest.param(
            "redis+cluster://h:1/?min_replicas=1&wait_timeout=0.5&socket_timeout=0.5", {}, id="cluster, equal"
        ),
        pytest.param("redis://127.0.0.1/0", {"min_replicas": 1, "wait_timeout": 1.5}, id="plain, arguments"),
    ],
)
def test_wait_timeout_the_socket_timeout_cuts_short_is_refused(url: str, options: dict[str, Any]) -> None:
    # The socket gave up first: the wait an operator asked for was silently shortened.
    assert "wait_timeout must be less than the socket_timeout" in str(refusal(url, **options))


@pytest.mark.parametrize(
    ("url", "options"),
    [
        pytest.param("redis+sentinel://h/svc?wait_timeout=0.2", {}, id="in the URL"),
        pytest.param("redis://127.0.0.1/0", {"wait_timeout": 0.2}, id="as an argument"),
    ],
)
def test_wait_timeout_without_min_replicas_is_refused(url: str, options: dict[str, Any]) -> None:
    assert "no effect without min_replicas" in str(refusal(url, **options))


@pytest.mark.parametrize(
    ("arguments", "options", "part"),
    [
        pytest.param((42,), {}, "not int", id="a number as the client"),
        pytest.param((b"redis://127.0.0.1/0",), {}, "not bytes", id="the URL as bytes"),
        pytest.param((None,), {}, "not NoneType", id="no client"),
        pytest.param(("redis://127.0.0.1/0",), {"prefix": None}, "prefix", id="no prefix"),
        pytest.param(("redis://127.0.0.1/0",), {"prefix": b"s:"}, "prefix", id="prefix as bytes"),
        pytest.param(("redis://127.0.0.1/0",), {"min_replicas": "1"}, "min_replicas", id="replicas as text"),
        pytest.param(("redis://127.0.0.1/0",), {"min_replicas": 1.5}, "min_replicas", id="half a replica"),
        pytest.param(("redis://127.0.0.1/0",), {"min_replicas": True}, "min_replicas", id="replicas as bool"),
        pytest.param(
            ("redis://127.0.0.1/0",),
            {"min_replicas": 1, "wait_timeout": "0.5"},
            "wait_timeout",
            id="text wait",
        ),
    ],
)
def test_argument_of_the_wrong_type_is_a_config_error(
    arguments: tuple[Any, ...], options: dict[str, Any], part: str
) -> None:
    # Accepted, each failed at the first request with AttributeError or TypeError: a 500.
    with pytest.raises(ConfigError, match=part):
        RedisStore(*arguments, **options)


def test_sentinel_manager_instead_of_its_master_client_is_refused() -> None:
    from redis.sentinel import Sentinel

    with pytest.raises(ConfigError, match="master_for"):
        RedisStore(Sentinel([("127.0.0.1", 26379)]))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "options"),
    [
        pytest.param("redis://127.0.0.1/0?min_replicas=0", {"min_replicas": 1}, id="URL says none"),
        pytest.param("redis+sentinel://h/svc?min_replicas=1", {"min_replicas": 2}, id="both ask"),
    ],
)
def test_min_replicas_in_the_url_and_as_an_argument_is_refused(url: str, options: dict[str, Any]) -> None:
    # The URL's explicit 0 was taken for "not given" and the argument silently won.
    assert "not both" in str(refusal(url, **options))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1/2?db=3", id="plain (redis-py: the query's)"),
        pytest.param("redis+sentinel://h/svc/2?db=3", id="sentinel (the query's)"),
    ],
)
def test_database_in_the_path_and_the_query_is_refused(url: str) -> None:
    assert "not both" in str(refusal(url))


def test_min_replicas_argument_past_any_cluster_is_refused() -> None:
    with pytest.raises(ConfigError, match="min_replicas"):
        RedisStore("redis://127.0.0.1/0", min_replicas=10**30)


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param("rediss+sentinel://h/svc?ssl_cert_reqs=bogus", "ssl", id="sentinel"),
        pytest.param("rediss+cluster://h:1/?ssl_cert_reqs=bogus", "ssl", id="cluster"),
        pytest.param("rediss://127.0.0.1/0?ssl_cert_reqs=bogus", "ssl", id="plain"),
    ],
)
def test_unknown_tls_setting_value_is_a_config_error(url: str, part: str) -> None:
    # It escaped the constructor as redis.RedisError, not as ConfigError.
    assert part in str(refusal(url)).lower()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://h :1/svc", id="sentinel, blank before the port"),
        pytest.param("redis+sentinel:// h:1/svc", id="sentinel, leading blank"),
        pytest.param("redis+cluster://a:1,h\x01:2/", id="cluster, control character"),
        pytest.param("redis://h :1/0", id="plain"),
    ],
)
def test_host_with_a_blank_is_refused(url: str) -> None:
    assert "host" in str(refusal(url))


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param("redis+sentinel://[::1]:0/svc", "port of host 1", id="IPv6, port 0"),
        pytest.param("redis+sentinel://h:0/svc", "port of host 1", id="port 0"),
        pytest.param("redis+sentinel://h:/svc", "port of host 1", id="empty port"),
        pytest.param("redis+sentinel://h:\u0663/svc", "port of host 1", id="Arabic-Indic digit"),
        pytest.param("redis+sentinel://h:\uff11/svc", "port of host 1", id="fullwidth digit"),
        pytest.param("redis+sentinel://a:1,h:+1/svc", "port of host 2", id="plus sign"),
        pytest.param(f"redis+sentinel://:{MARK}@h:99999/svc", "port of host 1", id="too high, password"),
        pytest.param(f"redis+cluster://u:{MARK}@/", "host 1 is empty", id="no host, password"),
        pytest.param("redis+sentinel://[::1/svc", "does not parse", id="unclosed bracket"),
        pytest.param("redis://127.0.0.1:0/0", "port", id="plain, port 0"),
        pytest.param(f"redis://u:{MARK}@h:99999/0", "Port", id="plain, too high, password"),
    ],
)
def test_malformed_host_or_port_names_the_part(url: str, part: str) -> None:
    assert part in str(refusal(url))


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"redis://u:{MARK}/0", id="password as the port"),
        pytest.param(f"redis://:{MARK}x/0", id="lone password as the port"),
        pytest.param(f"rediss://u:{MARK}%2F/0", id="encoded password as the port"),
        pytest.param(f"redis://u:{MARK}a?{MARK}b/0", id="'?' in it: the rest a blank setting"),
        pytest.param(f"redis://u:{MARK}a?{MARK}=1&{MARK}=2/0", id="'?' in it: the rest a repeated setting"),
    ],
)
def test_password_read_as_a_port_is_not_in_the_exception_chain(url: str) -> None:
    # redis-py's "Port could not be cast to integer value as '<password>'" was the __cause__.
    refusal(url)


def test_refused_url_logged_with_traceback_hides_the_password(caplog: pytest.LogCaptureFixture) -> None:
    try:
        RedisStore(f"redis://app:{MARK}/0")
    except ConfigError:
        logging.getLogger("shibwsgi.test").exception("start-up failed")
    assert "start-up failed" in caplog.text
    assert MARK not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"redis+sentinel://:{MARK}%40%3A%2F%25%23@h/svc", id="sentinel, every delimiter"),
        pytest.param(f"redis+sentinel://{MARK}@h/svc", id="sentinel, user part only"),
        pytest.param(f"redis+sentinel://:{MARK}%zz@h/svc", id="sentinel, broken escape"),
        pytest.param(f"redis+cluster://app:{MARK}@[::1]:7000,h:7001/", id="cluster, IPv6"),
        pytest.param(f"redis+sentinel://h/svc?sentinel_password={MARK}", id="sentinel password"),
        pytest.param(f"redis+sentinel://h/svc?password={MARK}&min_replicas=1", id="query password"),
    ],
)
def test_accepted_url_never_shows_the_password(url: str) -> None:
    store = RedisStore(url)
    try:
        assert MARK not in repr(store)
    finally:
        store.close()


def test_every_refusal_names_the_url_masked() -> None:
    error = refusal(f"redis+sentinel://:{MARK}@h:1/svc?socket_timeout=nan")
    assert re.search(r"'redis\+sentinel://:\*\*\*@h:1/svc\?socket_timeout=nan'", str(error))


def test_default_timeouts_bound_a_plain_url() -> None:
    # redis-py before 8 waits forever unless told: the store bounds one Redis as it bounds HA.
    store = RedisStore("redis://127.0.0.1:6379/0")
    try:
        connection = store._client._connect()  # type: ignore[attr-defined]  # a thread's connection
        assert (connection.socket_timeout, connection.socket_connect_timeout) == (1.0, 1.0)
    finally:
        store.close()


# --- Servers that fail: a bounded SessionError (the 503), never a 500 --------------------------------

#: Seconds a request may wait on a failing store here: the 1 s socket timeout, twice, and slack.
BOUND = 5


def answer_with(reply: bytes | None) -> Callable[[socket.socket], None]:
    """A fake server's handler: ``reply`` to every command (``None``: read and never answer)."""

    def handle(peer: socket.socket) -> None:
        with peer:
            while peer.recv(65536):
                if reply is not None:
                    peer.sendall(reply)

    return handle


def cut_mid_reply(peer: socket.socket) -> None:
    with peer:
        peer.recv(65536)
        peer.sendall(b"$100\r\nabc")  # a bulk string announced 100 bytes long, then the end


@pytest.fixture
def fake_redis() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a TCP server on 127.0.0.1 running a handler per connection; give its port."""
    listeners: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    peer, _ = listener.accept()
                    threading.Thread(target=handle, args=(peer,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()


def bounded(call: Callable[[], object], seconds: float = BOUND) -> BaseException | None:
    """What ``call`` raised (``None``: it returned), failing the test if it runs past ``seconds``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the store was still waiting after {seconds} s"
    return outcome[0]


OPERATIONS = [
    pytest.param(lambda store: store.get("s"), id="get"),
    pytest.param(lambda store: store.set("s", {"a": 1}, 60), id="set"),
    pytest.param(lambda store: store.update("s", {"a": 1}, 60), id="update"),
    pytest.param(lambda store: store.delete("s"), id="delete"),
]
FAKE_URLS = [
    pytest.param("redis://127.0.0.1:{port}/0", id="one Redis"),
    pytest.param("redis+cluster://127.0.0.1:{port}/", id="cluster"),
    pytest.param("redis://127.0.0.1:{port}/0?min_replicas=1", id="min_replicas"),
]
FAULTS = [
    pytest.param(answer_with(None), id="never answers"),
    pytest.param(cut_mid_reply, id="closes mid-reply"),
    pytest.param(answer_with(b"-LOADING Redis is loading the dataset in memory\r\n"), id="LOADING"),
    pytest.param(answer_with(b"-READONLY You can't write against a read only replica.\r\n"), id="READONLY"),
    pytest.param(answer_with(b"-MASTERDOWN Link with MASTER is down\r\n"), id="MASTERDOWN"),
    pytest.param(answer_with(b"\x00\xff not RESP\r\n"), id="not Redis"),
    # redis-py's set-up reads ":1" as if it were HELLO's or AUTH's answer: AttributeError.
    pytest.param(answer_with(b":1\r\n"), id="handshake answered with an integer"),
    pytest.param(answer_with(b"*1\r\n:1\r\n"), id="handshake answered with an array"),
]


@pytest.mark.servers
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("url", FAKE_URLS)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_failing_server_is_a_bounded_session_error(
    fake_redis: Callable[[Callable[[socket.socket], None]], int],
    fault: Callable[[socket.socket], None],
    url: str,
    operation: Callable[[RedisStore], object],
) -> None:
    store = RedisStore(url.format(port=fake_redis(fault)))
    try:
        assert isinstance(bounded(lambda: operation(store)), SessionError)
    finally:
        store.close()


@pytest.mark.parametrize("url", FAKE_URLS)
def test_server_answering_the_handshake_with_an_integer_is_a_session_error(
    fake_redis: Callable[[Callable[[socket.socket], None]], int], url: str
) -> None:
    store = RedisStore(url.format(port=fake_redis(answer_with(b":1\r\n"))))
    try:
        with pytest.raises(SessionError):  # was AttributeError: a 500
            store.set("x", {"a": 1}, 60)
    finally:
        store.close()


@pytest.mark.servers
def test_unix_socket_server_that_never_answers_is_a_bounded_session_error(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        store = RedisStore(f"unix://{path}?db=0")
        try:
            assert isinstance(bounded(lambda: store.get("s")), SessionError)
        finally:
            store.close()


def answer_get_with(reply: bytes) -> Callable[[socket.socket], None]:
    """A fake server's handler: ``+OK`` to the connection's set-up commands, ``reply`` to GET."""

    def handle(peer: socket.socket) -> None:
        with peer:
            while packet := peer.recv(65536):
                commands = sum(line.startswith(b"*") for line in packet.split(b"\r\n"))
                peer.sendall(reply if b"GET" in packet else b"+OK\r\n" * commands)

    return handle


@pytest.mark.servers
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b":5\r\n", id="integer"),
        pytest.param(b"*1\r\n$2\r\n{}\r\n", id="array"),
        pytest.param(b"$5\r\n\xff\xfe\x00\x01\x02\r\n", id="binary"),
        pytest.param(b"$2\r\n[]\r\n", id="JSON list"),
    ],
)
def test_get_answered_with_something_other_than_session_text_is_a_session_error(
    fake_redis: Callable[[Callable[[socket.socket], None]], int], reply: bytes
) -> None:
    # A proxy or another service on the port: the decoder's TypeError was a 500.
    store = RedisStore(f"redis://127.0.0.1:{fake_redis(answer_get_with(reply))}/0?protocol=2")
    try:
        assert isinstance(bounded(lambda: store.get("s")), SessionError)
    finally:
        store.close()


# --- A real redis-server that stops answering, through the middleware ------------------------------

HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}
UNAVAILABLE = "the session store is unavailable"


def paused(process: subprocess.Popen[bytes]) -> contextlib.AbstractContextManager[None]:
    """SIGSTOP ``process`` for the block: it keeps accepting connections and never answers."""

    @contextlib.contextmanager
    def pause() -> Iterator[None]:
        os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(process.pid, signal.SIGCONT)

    return pause()


def page(app: TestApp, status: int | str = "*") -> TestResponse:
    """GET /page without any front-end identity, within BOUND seconds."""
    responses: list[TestResponse] = []
    assert bounded(lambda: responses.append(app.get("/page", status=status))) is None
    return responses[0]


def user_of(response: TestResponse) -> str | None:
    identity = response.json["identity"]
    return None if identity is None else str(identity["user"])


@pytest.mark.servers
def test_paused_redis_is_a_503_that_neither_logs_out_nor_logs_in_another_user(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        store = RedisStore(server.url)
        app = TestApp(SSOMiddleware(echo_app, session=store, secret_key=KEY), extra_environ=HTTPS)
        try:
            app.get("/login", extra_environ=environ_for("shibboleth", "alice@example.org"), status=302)
            assert user_of(page(app, 200)) == "alice@example.org"
            with paused(server.process):
                refused = page(app, 503)
                assert UNAVAILABLE in refused.text
                assert "Set-Cookie" not in refused.headers  # the cookie is kept: no silent logout
                out: list[TestResponse] = []
                assert bounded(lambda: out.append(app.get("/logout", status="*"))) is None
                assert out[0].status_int == 503  # a logout the store did not record is not a success
            # Back by itself, on the same worker: the session is still Alice's.
            assert user_of(page(app, 200)) == "alice@example.org"
            app.get("/logout", status=302)
            assert user_of(page(app, 200)) is None
        finally:
            store.close()


# --- Processes forked after the store was used (uWSGI's workers) -----------------------------------


def _read_own_session_many_times(store: RedisStore, session_id: str, done: Queue[str]) -> None:
    wrong = sum(store.get(session_id) != {"owner": session_id} for _ in range(300))
    done.put(f"{session_id}: {wrong} wrong")


@pytest.mark.servers
@pytest.mark.parametrize("fixture", ["redis_url", "sentinel_url", "cluster_url"])
def test_forked_workers_never_read_each_others_replies(
    request: pytest.FixtureRequest, fixture: str, prefix: str
) -> None:
    store = RedisStore(request.getfixturevalue(fixture), prefix=prefix)
    try:
        ids = [f"worker{n}" for n in range(4)]
        for session_id in ids:
            store.set(session_id, {"owner": session_id}, 60)
        assert store.get(ids[0]) == {"owner": ids[0]}  # a connection opened before the fork
        context = multiprocessing.get_context("fork")
        done: Queue[str] = context.Queue()
        workers = [
            context.Process(target=_read_own_session_many_times, args=(store, sid, done)) for sid in ids[1:]
        ]
        for worker in workers:
            worker.start()
        _read_own_session_many_times(store, ids[0], done)
        reports = sorted(done.get(timeout=BOUND * 4) for _ in ids)
        for worker in workers:
            worker.join(BOUND)
        assert reports == sorted(f"{sid}: 0 wrong" for sid in ids)
        assert [worker.exitcode for worker in workers] == [0] * len(workers)
    finally:
        store.close()


# --- Sentinel: its master or its sentinels stop answering -------------------------------------------


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A Sentinel group of the test's own: these tests stop and fail over its servers."""
    with running_sentinel_group(tmp_path) as group:
        yield group


def until_served(store: RedisStore, session_id: str, seconds: float = 15) -> dict[str, Any] | None:
    """The session once the store answers again (the failure ended by itself)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return store.get(session_id)
        except SessionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.servers
def test_sentinel_master_that_stops_answering_is_a_bounded_503_then_served_again(
    sentinel_group: SentinelGroup,
) -> None:
    store = RedisStore(sentinel_group.url)
    try:
        store.set("alice", {"user": "alice"}, 60)
        cli(sentinel_group.master.port, "WAIT", "1", "1000")  # on the replica too: it may be promoted
        assert store.get("alice") == {"user": "alice"}  # this thread's connection is open
        with paused(sentinel_group.master.process):
            for _ in range(3):
                assert isinstance(bounded(lambda: store.get("alice")), SessionError)
            assert isinstance(bounded(lambda: store.update("alice", {"user": "alice"}, 60)), SessionError)
        assert until_served(store, "alice") == {"user": "alice"}  # not logged out, and back by itself
    finally:
        store.close()


@pytest.mark.servers
def test_every_sentinel_paused_is_a_bounded_503_for_a_new_connection(sentinel_group: SentinelGroup) -> None:
    store = RedisStore(sentinel_group.url)
    try:
        with contextlib.ExitStack() as stack:
            for sentinel in sentinel_group.sentinels:
                stack.enter_context(paused(sentinel.process))
            # Three sentinels that accept and never answer: 1 s each, asked twice.
            assert isinstance(bounded(lambda: store.get("x"), seconds=10), SessionError)
        assert until_served(store, "x") is None
    finally:
        store.close()


@pytest.mark.servers
def test_logged_out_session_stays_dead_and_live_one_stays_live_through_a_failover(
    sentinel_group: SentinelGroup,
) -> None:
    store = RedisStore(sentinel_group.url)
    kept, ended = "kept", "ended"
    store.set(kept, {"user": "alice"}, 60)
    store.set(ended, {"user": "bob"}, 60)
    store.delete(ended)
    cli(sentinel_group.master.port, "WAIT", "1", "1000")  # the logout reached the replica
    seen: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            for action in (
                lambda: seen.append(f"kept read {store.get(kept) is not None}"),
                lambda: seen.append(f"kept touch {store.update(kept, {'user': 'alice'}, 60)}"),
                lambda: seen.append(f"ended read {store.get(ended) is not None}"),
                lambda: seen.append(f"ended touch {store.update(ended, {'user': 'bob'}, 60)}"),
            ):
                with contextlib.suppress(SessionError):
                    action()
            time.sleep(0.002)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        sentinel_group.master.process.kill()
        assert until_served(store, kept) == {"user": "alice"}
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND)
        store.close()
    assert sentinel_group.master_port() == sentinel_group.replica.port  # the failover happened
    assert "kept read False" not in seen  # never a silent logout
    assert "kept touch False" not in seen
    assert "ended read True" not in seen  # never a logged-out session back
    assert "ended touch True" not in seen
    assert "kept read True" in seen and "ended read False" in seen


def worker_thread() -> tuple[Callable[[Callable[[], object]], object], Callable[[], None]]:
    """A thread of its own that runs what it is given (its own Redis connection), and its stop."""
    jobs: queue.Queue[Callable[[], object] | None] = queue.Queue()
    answers: queue.Queue[object] = queue.Queue()

    def serve() -> None:
        while (job := jobs.get()) is not None:
            try:
                answers.put(job())
            except Exception as exc:  # handed to the test
                answers.put(exc)

    threading.Thread(target=serve, daemon=True).start()

    def run(job: Callable[[], object]) -> object:
        jobs.put(job)
        return answers.get(timeout=BOUND * 2)

    return run, lambda: jobs.put(None)


@pytest.mark.servers
def test_idle_thread_never_reads_a_logged_out_session_from_a_resurrected_old_master(
    sentinel_group: SentinelGroup,
) -> None:
    store = RedisStore(sentinel_group.url, prefix="p:")
    run, stop = worker_thread()
    try:
        store.set("bob", {"user": "bob"}, 100)
        cli(sentinel_group.master.port, "WAIT", "1", "1000")
        assert run(lambda: store.get("bob")) == {
            "user": "bob"
        }  # that thread holds a connection to the master
        os.kill(sentinel_group.master.process.pid, signal.SIGSTOP)  # a stall, a partition
        try:
            deadline = time.monotonic() + 15
            while sentinel_group.master_port() != sentinel_group.replica.port and time.monotonic() < deadline:
                time.sleep(0.1)
            logout, stop_logout = worker_thread()  # another worker thread, its connection new
            # On the new master. Until the promotion settles the store may answer 503
            # (SessionError), as documented for a failover: ask again, boundedly.
            settled = time.monotonic() + 10
            while isinstance(outcome := logout(lambda: store.delete("bob")), SessionError):
                assert time.monotonic() < settled, outcome
                time.sleep(0.2)
            assert outcome is None
            stop_logout()
        finally:
            os.kill(sentinel_group.master.process.pid, signal.SIGCONT)  # back, not yet demoted
        assert run(lambda: store.get("bob")) is None  # was {'user': 'bob'} for about 10 s
        assert run(lambda: store.update("bob", {"user": "bob"}, 100)) is False  # nor renewed there
    finally:
        stop()
        store.close()


@pytest.mark.servers
def test_writes_the_paused_replica_cannot_confirm_are_refused_with_min_replicas(
    sentinel_group: SentinelGroup,
) -> None:
    store = RedisStore(sentinel_group.url + "?min_replicas=1&wait_timeout=0.3")
    try:
        store.set("alice", {"user": "alice"}, 60)
        with paused(sentinel_group.replica.process):
            for write in (
                lambda: store.set("bob", {"user": "bob"}, 60),
                lambda: store.update("alice", {"user": "alice"}, 60),
                lambda: store.delete("alice"),
            ):
                assert isinstance(bounded(write), SessionError)  # not a success the failover may undo
            assert bounded(lambda: store.get("bob")) is None  # reads need no replica
        store.set("carol", {"user": "carol"}, 60)  # the replica is back: writes are confirmed again
    finally:
        store.close()


# --- Cluster: slots spread, moved and uncovered -----------------------------------------------------


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterSet]:
    """A cluster of the test's own: these tests move and remove its slots."""
    with running_redis_cluster(tmp_path) as cluster:
        yield cluster


@pytest.mark.servers
@pytest.mark.parametrize("options", ["", "?min_replicas=1"])
def test_sessions_over_every_slot_owner_never_cross_slots(
    cluster_url: str, prefix: str, options: str
) -> None:
    import redis

    store = RedisStore(cluster_url + options, prefix=prefix)
    first = cluster_url.removeprefix("redis+cluster://").partition(",")[0]
    client = redis.RedisCluster(host="127.0.0.1", port=int(first.rpartition(":")[2]))
    try:
        ids = [f"session{n}" for n in range(60)]
        for session_id in ids:
            store.set(session_id, {"owner": session_id}, 60)
            assert store.update(session_id, {"owner": session_id, "seen": 1}, 60)
        owners = {client.get_node_from_key(prefix + session_id).port for session_id in ids}
        assert len(owners) == 3
        assert all(store.get(session_id) == {"owner": session_id, "seen": 1} for session_id in ids)
        for session_id in ids:
            store.delete(session_id)
        assert all(store.get(session_id) is None for session_id in ids)
    finally:
        client.close()
        store.close()


def _slot_owner(cluster: RedisClusterSet, key: str) -> tuple[int, str, int, str]:
    """(the slot of ``key``, its master's port, another master's port, that master's node id)."""
    slot = int(cli(cluster.nodes[0].port, "CLUSTER", "KEYSLOT", key))
    for line in cli(cluster.nodes[0].port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if "master" not in fields[2]:
            continue
        for served in fields[8:]:
            low, _, high = served.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                owner = int(fields[1].partition("@")[0].rpartition(":")[2])
    other = next(port for port in cluster.masters() if port != owner)
    return slot, owner, other, cli(other, "CLUSTER", "MYID")


@pytest.mark.servers
def test_acknowledged_writes_follow_a_slot_moved_to_another_master(redis_cluster: RedisClusterSet) -> None:
    store = RedisStore(redis_cluster.url + "?min_replicas=1", prefix="p:")
    try:
        store.set("alice", {"user": "alice"}, 60)  # the store has looked up the slot's master
        store.delete("alice")
        slot, owner, other, other_id = _slot_owner(redis_cluster, "p:alice")
        for port in (other, owner, *(p for p in redis_cluster.masters() if p not in (owner, other))):
            cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", other_id)
        # Refused with MOVED on every write until a read updated the slot table: a 503 per login.
        store.set("alice", {"user": "alice"}, 60)
        assert cli(other, "GET", "p:alice") == '{"user":"alice"}'
        assert store.update("alice", {"user": "alice", "seen": 1}, 60)
        store.delete("alice")
        assert store.get("alice") is None
    finally:
        store.close()


@pytest.mark.servers
def test_acknowledged_writes_follow_a_slot_being_migrated(redis_cluster: RedisClusterSet) -> None:
    # The redirect is under test, not the replica's speed: a generous wait for its confirmation.
    store = RedisStore(redis_cluster.url + "?min_replicas=1&wait_timeout=2&socket_timeout=3", prefix="p:")
    try:
        store.set("alice", {"user": "alice"}, 60)
        slot, owner, other, other_id = _slot_owner(redis_cluster, "p:alice")
        cli(other, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", cli(owner, "CLUSTER", "MYID"))
        cli(owner, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", other_id)
        cli(owner, "MIGRATE", "127.0.0.1", str(other), "p:alice", "0", "5000")
        # The source answers ASK for a key it no longer has: the write goes to the importing node.
        assert store.update("alice", {"user": "alice", "seen": 1}, 60)
        assert store.get("alice") == {"user": "alice", "seen": 1}
        store.delete("alice")
        assert store.get("alice") is None
        assert not store.update("alice", {"user": "alice"}, 60)  # a logged-out session stays dead
    finally:
        store.close()


@pytest.mark.servers
def test_uncovered_slot_is_a_bounded_503_then_served_again(redis_cluster: RedisClusterSet) -> None:
    store = RedisStore(redis_cluster.url, prefix="p:")
    try:
        store.set("alice", {"user": "alice"}, 60)
        slot, owner, _, _ = _slot_owner(redis_cluster, "p:alice")
        owner_id = cli(owner, "CLUSTER", "MYID")
        cli(owner, "CLUSTER", "DELSLOTS", str(slot))
        try:
            for call in (lambda: store.get("alice"), lambda: store.update("alice", {"user": "a"}, 60)):
                assert isinstance(bounded(call), SessionError)
        finally:
            cli(owner, "CLUSTER", "ADDSLOTS", str(slot))
            for server in redis_cluster.nodes:
                cli(server.port, "CLUSTER", "SETSLOT", str(slot), "NODE", owner_id)
        assert until_served(store, "alice") == {"user": "alice"}  # never a silent logout
    finally:
        store.close()


def _replica_of(cluster: RedisClusterSet, master: int) -> int:
    """The port of the live replica of the master at port ``master``."""
    for node in cluster.nodes:
        if (
            node.process.poll() is None
            and f"master_port:{master}" in cli(node.port, "INFO", "replication").split()
        ):
            return node.port
    raise AssertionError(f"no replica of {master}")


def _until_moved_off(cluster: RedisClusterSet, port: int) -> float:
    """When every other node saw the slots of ``port`` served elsewhere (failed over)."""
    deadline = time.monotonic() + 15
    while not cluster.moved_off(port):
        assert time.monotonic() < deadline, f"the slots of {port} were not failed over"
        time.sleep(0.05)
    return time.monotonic()


@pytest.mark.servers
def test_killed_master_is_a_bounded_503_then_every_thread_is_served_by_its_replica(
    redis_cluster: RedisClusterSet,
) -> None:
    store = RedisStore(redis_cluster.url, prefix="p:")
    calls: list[tuple[float, float, str]] = []  # (start, end, outcome) of every call
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            for call in (lambda: store.get("alice"), lambda: store.update("alice", {"user": "alice"}, 60)):
                start = time.monotonic()
                try:
                    outcome = repr(call())
                except SessionError:
                    outcome = "503"
                except Exception as exc:  # a 500: reported by the test
                    outcome = repr(exc)
                calls.append((start, time.monotonic(), outcome))
            time.sleep(0.005)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        store.set("alice", {"user": "alice"}, 60)
        # As under the e2e load: the topology changed once already (a replica took over by hand).
        _, owner, _, _ = _slot_owner(redis_cluster, "p:alice")
        cli(_replica_of(redis_cluster, owner), "CLUSTER", "FAILOVER")
        _until_moved_off(redis_cluster, owner)
        redis_cluster.wait_settled()
        _, victim, _, _ = _slot_owner(redis_cluster, "p:alice")
        cli(victim, "WAIT", "1", "1000")  # on the replica too: it will be promoted
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        killed = time.monotonic()
        next(node for node in redis_cluster.nodes if node.port == victim).process.kill()
        over = _until_moved_off(redis_cluster, victim)
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join(BOUND)
        store.close()
    assert {outcome for *_, outcome in calls} <= {"{'user': 'alice'}", "True", "503"}  # no 500, no logout
    assert [start for start, _, outcome in calls if outcome == "503" and start > killed]  # the fault was met
    assert max(end - start for start, end, _ in calls) < BOUND  # a 503 is quick, never a hang
    # Within redis-py's interval between two topology refreshes (1 s) of the failover, every
    # thread is served again, by itself.
    assert [start - over for start, _, outcome in calls if outcome == "503" and start > over + 1.5] == []


@pytest.mark.servers
@pytest.mark.parametrize(
    ("credentials", "sentinel_user"),
    [
        pytest.param(f"app:{MARK}%2F%40x@", "", id="data nodes' ACL user"),
        pytest.param("", "&sentinel_username=nobody", id="sentinels' ACL user"),
    ],
)
def test_sentinel_errors_never_show_the_passwords(
    sentinel_url: str, credentials: str, sentinel_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No such users on the servers: every connection is refused with WRONGPASS.
    url = sentinel_url.replace("://", f"://{credentials}", 1) + f"?sentinel_password={MARK}s{sentinel_user}"
    store = RedisStore(url)
    app = TestApp(SSOMiddleware(echo_app, session=store, secret_key=KEY), extra_environ=HTTPS)
    try:
        with caplog.at_level(logging.DEBUG):
            error = bounded(lambda: store.get("x"))
            response = app.get("/login", extra_environ=environ_for("shibboleth", "a@x"), status="*")
        assert isinstance(error, SessionError)
        assert response.status_int == 503
        for shown in (str(error), repr(error), str(error.__cause__), caplog.text, response.text):
            assert MARK not in shown
    finally:
        store.close()


@pytest.mark.servers
def test_users_on_many_threads_through_a_failover_get_only_themselves_or_503(
    sentinel_group: SentinelGroup,
) -> None:
    store = RedisStore(sentinel_group.url)
    middleware = SSOMiddleware(echo_app, session=store, secret_key=KEY)
    users = [f"user{n}@example.org" for n in range(6)]
    apps = {user: TestApp(middleware, extra_environ=HTTPS) for user in users}
    for user, app in apps.items():
        app.get("/login", extra_environ=environ_for("shibboleth", user), status=302)
    cli(sentinel_group.master.port, "WAIT", "1", "1000")
    answers: list[tuple[str, int, str | None]] = []
    stop = threading.Event()

    def browse(user: str) -> None:
        while not stop.is_set():
            response = apps[user].get("/page", status="*")
            answers.append(
                (user, response.status_int, user_of(response) if response.status_int == 200 else None)
            )

    threads = [threading.Thread(target=browse, args=(user,)) for user in users]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        sentinel_group.master.process.kill()
        until_served(store, "anything")
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND)
        store.close()
    statuses = {status for _, status, _ in answers}
    assert statuses <= {200, 503}, statuses  # never a 500
    assert 503 in statuses  # the failover was seen
    assert all(seen == user for user, status, seen in answers if status == 200)  # never someone else
    last = {user: (status, seen) for user, status, seen in answers}
    assert last == {user: (200, user) for user in users}  # nobody was logged out


@pytest.mark.servers
def test_logged_out_session_stays_dead_and_live_one_stays_live_when_a_cluster_master_dies(
    redis_cluster: RedisClusterSet,
) -> None:
    store = RedisStore(redis_cluster.url, prefix="p:")
    _, owner, _, _ = _slot_owner(redis_cluster, "p:kept")
    ended = next(f"ended{n}" for n in range(10_000) if _slot_owner(redis_cluster, f"p:ended{n}")[1] == owner)
    store.set("kept", {"user": "alice"}, 60)
    store.set(ended, {"user": "bob"}, 60)
    store.delete(ended)
    cli(owner, "WAIT", "1", "1000")  # the logout reached the replica that will be promoted
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            for label, action in (
                ("kept read", lambda: store.get("kept") is not None),
                ("kept touch", lambda: store.update("kept", {"user": "alice"}, 60)),
                ("ended read", lambda: store.get(ended) is not None),
                ("ended touch", lambda: store.update(ended, {"user": "bob"}, 60)),
            ):
                with contextlib.suppress(SessionError):
                    seen.add(f"{label} {action()}")
            time.sleep(0.002)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        next(server for server in redis_cluster.nodes if server.port == owner).process.kill()
        assert until_served(store, "kept") == {"user": "alice"}
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND)
        store.close()
    assert owner not in redis_cluster.masters()
    assert seen == {"kept read True", "kept touch True", "ended read False", "ended touch False"}


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://s1:26379,s2:26379/service", id="README, Sentinel"),
        pytest.param("redis+cluster://n1:6379,n2:6379/", id="README, Cluster"),
        pytest.param(
            "redis+sentinel://s1:26379,s2:26379,s3:26379/sessions?min_replicas=1",
            id="deployment, min_replicas",
        ),
        pytest.param("redis://[::1]:6379/0", id="IPv6"),
        pytest.param("rediss+cluster://[::1]:7000,[::1]:7001/?ssl_cert_reqs=none", id="TLS, IPv6"),
    ],
)
def test_documented_urls_are_accepted_as_written(url: str) -> None:
    store = store_from_url(url)
    try:
        assert isinstance(store, RedisStore)
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("rediss+cluster://127.0.0.1:7000/", id="one node"),
        pytest.param("rediss+cluster://app:pw@a:7000,b:7001/?ssl_ca_certs={ca}", id="as documented"),
    ],
)
def test_tls_cluster_url_is_accepted_and_speaks_tls(url: str) -> None:
    import certifi

    # Refused at start-up: "sentinel_username and sentinel_password are for redis+sentinel URLs".
    # The CA file must exist: a missing one is refused at start-up too.
    store = RedisStore(url.format(ca=certifi.where()))
    try:
        assert store._client._cluster._settings["ssl"] is True  # type: ignore[attr-defined]  # ClusterReads's LazyCluster
    finally:
        store.close()


def test_tls_sentinel_url_speaks_tls_to_the_sentinels_too() -> None:
    import redis

    store = RedisStore("rediss+sentinel://127.0.0.1:26379/svc")
    try:
        connection = store._client._connect()  # type: ignore[attr-defined]  # a thread's connection
        sentinels = connection.connection_pool.sentinel_manager.sentinels
        assert isinstance(connection, redis.SSLConnection)
        assert all(s.connection_pool.connection_class is redis.SSLConnection for s in sentinels)
    finally:
        store.close()


def test_crlf_escaped_sentinel_service_is_refused_at_start_up() -> None:
    # The service name is percent-decoded as the rest of a Redis URL is: CRLF is refused.
    with pytest.raises(ConfigError, match="service name"):
        RedisStore("redis+sentinel://127.0.0.1:26379/svc%0D%0AFLUSHALL/0")


@pytest.mark.servers
@pytest.mark.parametrize("service", [pytest.param("no-such", id="unknown")])
def test_unknown_sentinel_service_is_a_bounded_503_and_injects_nothing(
    sentinel_url: str, prefix: str, service: str
) -> None:
    witness = RedisStore(sentinel_url, prefix=prefix)
    store = RedisStore(sentinel_url.replace("/sessions/", f"/{service}/"), prefix=prefix)
    try:
        witness.set("kept", {"user": "alice"}, 60)
        assert isinstance(bounded(lambda: store.get("kept")), SessionError)
        assert witness.get("kept") == {"user": "alice"}
    finally:
        store.close()
        witness.close()
