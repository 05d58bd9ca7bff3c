"""Attacks on the Redis session stores (one Redis, Sentinel, Cluster): odd URLs, failing servers.

Each test is named after the attack and asserts the safe behaviour: a bad URL is a
``ConfigError`` at start-up naming the part (never a 500 at the first request, never the
password), and a failing server is a ``SessionError`` (the middleware's 503) within a
bounded time, never another user's session and never a logged-out session back.
"""

from __future__ import annotations

import logging
import re

import pytest

from shibwsgi import ConfigError
from shibwsgi.sessions import RedisStore

MARK = "S3CR3T"

pytest.importorskip("redis")


def refusal(url: str) -> ConfigError:
    """The ConfigError for ``url``, checked to hide the password everywhere it could show."""
    with pytest.raises(ConfigError) as info:
        RedisStore(url)
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
        pytest.param("redis+sentinel://h/svc?min_replicas=99999999999999999999999", id="past WAIT's long"),
        pytest.param("redis+sentinel://h/svc?min_replicas=\u0663", id="Arabic-Indic digit"),
        pytest.param("redis+sentinel://h/svc?min_replicas=%2B1", id="plus sign"),
        pytest.param("redis://127.0.0.1/0?min_replicas=1001", id="more than a cluster's nodes"),
    ],
)
def test_min_replicas_that_no_server_can_meet_is_refused(url: str) -> None:
    assert "min_replicas" in str(refusal(url))


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
