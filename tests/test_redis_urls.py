"""Redis URLs: passwords never show, wherever a URL is shown, and what is hidden is what redis-py uses."""

from __future__ import annotations

import re
import subprocess
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from support import free_port, require_program, wait_for_port

from shibwsgi import ConfigError, SessionError, SSOMiddleware
from shibwsgi.sessions import RedisStore, store_from_url
from shibwsgi.sessions.redis import mask_url
from tests.helpers import echo_app

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

MARK = "s3cr3t"  # in every password below; must never be shown, in any case
KEY = "k" * 32

PASSWORDS = [
    pytest.param("S3CR3Ta", id="plain"),
    pytest.param("Zm9vYmFy/S3CR3Tb", id="slash"),
    pytest.param("S3CR3Ta?S3CR3Tb", id="question mark"),
    pytest.param("S3CR3Ta#S3CR3Tb", id="hash"),
    pytest.param("S3CR3Ta@S3CR3Tb", id="at sign"),
    pytest.param("S3CR3Ta:S3CR3Tb", id="colon"),
    pytest.param("S3CR3Ta%2FS3CR3Tb", id="percent escape"),
    pytest.param("S3CR3Ta&password=S3CR3Tb", id="query lookalike"),
    pytest.param("/?#@:%S3CR3T", id="every delimiter"),
    pytest.param("S3CR3Tä ü\t", id="non-ASCII and blanks"),
    pytest.param("S3CR3Ta\uff03S3CR3Tb", id="fullwidth hash (NFKC)"),
    pytest.param("[S3CR3T]", id="brackets"),
]

TEMPLATES = [
    pytest.param("redis://:{raw}@127.0.0.1:{port}/0", id="password"),
    pytest.param("redis://app:{raw}@127.0.0.1:{port}/0", id="user and password"),
    pytest.param("redis://app:{quoted}@127.0.0.1:{port}/0", id="percent-encoded"),
    pytest.param("rediss://{quoted}@127.0.0.1:{port}/0", id="lone user part"),
    pytest.param("redis://127.0.0.1:{port}/0?password={quoted}", id="query"),
    pytest.param("redis://127.0.0.1:{port}/0?db=0&password={raw}", id="query, raw"),
    pytest.param("redis://127.0.0.1:{port}/0?pass%77ord={quoted}", id="query, encoded name"),
    pytest.param("unix://:{quoted}@/tmp/shibwsgi-missing.sock?db=0", id="unix with password"),
    pytest.param("unix:///tmp/shibwsgi-missing.sock?password={quoted}", id="unix, query"),
    pytest.param("redis+sentinel://:{quoted}@127.0.0.1:{port},127.0.0.1:{port}/sessions/0", id="sentinel"),
    pytest.param("redis+sentinel://:{raw}@127.0.0.1:{port}/sessions", id="sentinel, raw"),
    pytest.param(
        "redis+sentinel://127.0.0.1:{port}/sessions?sentinel_password={quoted}", id="sentinel's own"
    ),
    pytest.param("rediss+cluster://app:{quoted}@127.0.0.1:{port},127.0.0.1:{port}/", id="cluster"),
    pytest.param("redis+cluster://127.0.0.1:{port}/?password={quoted}&min_replicas=1", id="cluster, query"),
]


def url_for(template: str, password: str) -> str:
    return template.format(raw=password, quoted=quote(password, safe=""), port=free_port())


def assert_hidden(text: str) -> None:
    assert MARK not in text.lower(), text


@pytest.fixture(params=PASSWORDS)
def password(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=TEMPLATES)
def url(request: pytest.FixtureRequest, password: str) -> str:
    pytest.importorskip("redis")
    return url_for(request.param, password)


def test_password_before_a_missing_host_is_hidden() -> None:
    # With an '@' it would be a valid URL naming the host, so only here, apart.
    for password in ("S3CR3Ta", "Zm9vYmFy/S3CR3Tb", "S3CR3Ta?S3CR3Tb", "S3CR3Ta:S3CR3Tb", "S3CR3Ta#b"):
        url = f"redis://app:{password}/0"
        assert_hidden(mask_url(url))
        for text in shown(lambda: store_from_url(url)):  # noqa: B023 (called at once)
            assert_hidden(text)


def shown(make: Callable[[], Any]) -> list[str]:
    """Everything a store made from a URL shows: its repr and its errors, or the ConfigError."""
    try:
        store = make()
    except ConfigError as exc:
        return [str(exc)]
    try:
        with pytest.raises(SessionError) as info:
            store.get("abc")
        return [repr(store), str(info.value)]
    finally:
        if isinstance(store, RedisStore):
            store.close()


def test_mask_url_hides_hostile_password(url: str) -> None:
    assert_hidden(mask_url(url))


def test_redis_store_hides_hostile_password_in_repr_and_errors(url: str) -> None:
    for text in shown(lambda: RedisStore(url)):
        assert_hidden(text)


def test_store_from_url_hides_hostile_password(url: str) -> None:
    for text in shown(lambda: store_from_url(url)):
        assert_hidden(text)


def test_session_setting_hides_hostile_password(url: str) -> None:
    settings = {"SHIBWSGI_SESSION": url, "SHIBWSGI_SECRET_KEY": KEY}
    try:
        middleware = SSOMiddleware.from_mapping(echo_app, settings)
    except ConfigError as exc:
        assert_hidden(str(exc))
    else:
        assert middleware.sessions is not None
        assert_hidden(repr(middleware.sessions.store))
        middleware.sessions.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("scheme", ["postgresql", "redis+proxy", "memcached"])
def test_unknown_store_url_hides_hostile_password(scheme: str, password: str) -> None:
    for template in ("{scheme}://app:{raw}@db/sessions", "{scheme}://db/sessions?password={quoted}"):
        url = template.format(scheme=scheme, raw=password, quoted=quote(password, safe=""))
        with pytest.raises(ConfigError, match="cannot make a session store") as info:
            store_from_url(url)
        assert_hidden(str(info.value))


def test_what_redis_py_would_send_as_password_is_hidden(url: str) -> None:
    redis = pytest.importorskip("redis")
    try:
        kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
    except ValueError:
        return  # redis-py refuses it too; the tests above show the refusal hides it
    masked = mask_url(url)
    assert not kwargs.get("password") or kwargs["password"] not in masked
    if "host" in kwargs and masked != "redis:***":
        assert kwargs["host"].lower() in masked.lower()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://:S3CR3Ta/S3CR3Tb@cache.example/0", id="slash"),
        pytest.param("redis://app:S3CR3Ta?S3CR3Tb@cache.example/0", id="question mark"),
        pytest.param("redis://app:S3CR3Ta#S3CR3Tb@cache.example/0", id="hash"),
        pytest.param("redis://cache.example/0?password=S3CR3Ta@S3CR3Tb", id="at sign in the query"),
        pytest.param("unix://:S3CR3Ta/S3CR3Tb@/run/redis.sock", id="unix"),
    ],
)
def test_password_cut_short_by_a_delimiter_is_refused(url: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError, match=r"percent-encode '/', '\?', '#' and '@'") as info:
        RedisStore(url)
    assert info.value.setting == "session"
    assert_hidden(str(info.value))


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0", id="password"),
        pytest.param("redis://app:s3cret@host/0", "redis://app:***@host/0", id="user and password"),
        pytest.param("redis://app:p@ss@host/0", "redis://app:***@host/0", id="at sign: split at the last"),
        pytest.param("redis://:Zm9vYmFy/c2VjcmV0@host/0", "redis:***", id="slash: all hidden"),
        pytest.param("redis://h/0?password=a@b", "redis:***", id="at sign in the query: all hidden"),
        pytest.param("redis:/:s3cret@host", "redis:***", id="no authority"),
        pytest.param("redis://app:a:b@host/0", "redis://app:***@host/0", id="colon"),
        pytest.param("redis://app:s3cret/0", "redis:***", id="no host: port is not a number"),
        pytest.param(
            "redis://host/0?db=1&password=x&socket_timeout=2",
            "redis://host/0?db=1&password=***&socket_timeout=2",
            id="query",
        ),
        pytest.param(
            "redis://host/0?db=1&password=x&y=2", "redis:***", id="no setting after a password: all hidden"
        ),
        pytest.param(
            "redis://host/0?password=x&y", "redis:***", id="a bare word after a password: all hidden"
        ),
        pytest.param("redis://host/0#s3cret", "redis://host/0#***", id="fragment"),
        pytest.param("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1", id="unix"),
        pytest.param("redis://[::1]:6379/0", "redis://[::1]:6379/0", id="IPv6"),
        pytest.param("redis://[::1/0", "redis:***", id="unparsable"),
        pytest.param("memory:", "memory:", id="no password"),
    ],
)
def test_mask_url_shows_the_rest(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_unknown_setting_in_redis_url_is_a_config_error_at_start_up() -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError, match=r"bad Redis URL.*'PASSWORD'") as info:
        RedisStore("redis://127.0.0.1/0?PASSWORD=s3cret")
    assert_hidden(str(info.value))


# --- A real server whose password holds every delimiter -----------------------------------------

HOSTILE = "p/a?s#s@w:o%r d&S3CR3T"


@pytest.fixture(scope="module")
def guarded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server on 127.0.0.1 with ``requirepass HOSTILE``; yields its port."""
    program = require_program("redis-server", "redis-server")
    port = free_port()
    folder: Path = tmp_path_factory.mktemp("guarded-redis")
    command = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(folder), "--requirepass", HOSTILE]
    with (folder / "redis.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    try:
        wait_for_port(port, process=process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.servers
def test_percent_encoded_hostile_password_logs_in(guarded_redis: int) -> None:
    pytest.importorskip("redis")
    store = RedisStore(f"redis://:{quote(HOSTILE, safe='')}@127.0.0.1:{guarded_redis}/0")
    try:
        store.set("abc", {"v": 1}, ttl=60)
        assert store.get("abc") == {"v": 1}
        assert_hidden(repr(store))
    finally:
        store.close()


@pytest.mark.servers
def test_wrong_password_error_hides_it(guarded_redis: int) -> None:
    pytest.importorskip("redis")
    store = RedisStore(f"redis://:{quote(HOSTILE[:-1], safe='')}@127.0.0.1:{guarded_redis}/0")
    try:
        with pytest.raises(SessionError, match="password") as info:
            store.get("abc")
        assert_hidden(str(info.value))
    finally:
        store.close()


# --- Sentinel and Cluster URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param("redis+sentinel://127.0.0.1:26379", "must name the service", id="no service"),
        pytest.param("redis+sentinel://127.0.0.1:26379/", "must name the service", id="empty service"),
        pytest.param(
            "redis+sentinel://h:26379/svc/x", "database after the service name", id="db not a number"
        ),
        pytest.param("redis+sentinel://h:26379/svc/0/1", "must name the service", id="too long a path"),
        pytest.param("redis+sentinel://:s3cret@h:abc/svc", "port of host 1", id="port not a number"),
        pytest.param("redis+sentinel://h:1,h:2,h:99999/svc", "port of host 3", id="port too high"),
        pytest.param("redis+sentinel://h:1,:2/svc", "host 2 is empty", id="empty host"),
        pytest.param("redis+sentinel://h:1,,h:2/svc", "host 2 is empty", id="doubled comma"),
        pytest.param("redis+sentinel://h/svc#s3cret", "fragment", id="fragment"),
        pytest.param(
            "redis+sentinel://h/svc?bogus=1", "unknown setting in the query ('bogus')", id="unknown"
        ),
        pytest.param("redis+sentinel://h/svc?socket_timeout=soon", "'socket_timeout'", id="bad timeout"),
        pytest.param(
            "redis+sentinel://h/svc?min_replicas=one", "min_replicas must be", id="bad min_replicas"
        ),
        pytest.param("redis+sentinel://h/svc?min_replicas=-1", "min_replicas must be", id="negative"),
        pytest.param("redis+sentinel://h/svc?min_replicas=1&wait_timeout=0", "wait_timeout", id="no wait"),
        pytest.param("redis+cluster://h:7000/1", "only database 0", id="cluster db"),
        pytest.param("redis+cluster://h:7000/?db=2", "only database 0", id="cluster db in the query"),
        pytest.param(
            "redis+cluster://h/?sentinel_password=s3cret", "for redis+sentinel URLs", id="sentinel's"
        ),
        pytest.param("rediss+cluster://[::1/", "does not parse", id="unparsable"),
    ],
)
def test_malformed_sentinel_or_cluster_url_names_the_wrong_part(url: str, part: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError, match=re.escape(part)) as info:
        store_from_url(url)
    assert info.value.setting == "session"
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "redis+sentinel://:s3cret@a:26379,b:26380/sessions/2?sentinel_password=s3cret",
            "redis+sentinel://:***@a:26379,b:26380/sessions/2?sentinel_password=***",
            id="sentinel",
        ),
        pytest.param(
            "rediss+cluster://app:s3cret@a:7000,[::1]:7001/",
            "rediss+cluster://app:***@a:7000,[::1]:7001/",
            id="cluster",
        ),
        pytest.param(
            "redis+cluster://app:s3cret,x/", "redis+cluster:***", id="password before a missing host"
        ),
    ],
)
def test_sentinel_and_cluster_urls_are_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_sentinel_url_settings_reach_redis_py() -> None:
    pytest.importorskip("redis")
    store = store_from_url(
        "rediss+sentinel://app:pw%2F1@a:26379,[::1]/sessions/3?sentinel_password=spw&socket_timeout=2.5"
    )
    try:
        connection = store._client._connect()  # type: ignore[attr-defined]  # a thread's connection
        assert (connection.username, connection.password, connection.db) == ("app", "pw/1", 3)
        assert connection.socket_timeout == 2.5
        assert connection.socket_connect_timeout == 1.0  # bounded even when the URL does not say
        assert "SSL" in type(connection).__name__
        pool = connection.connection_pool  # it asks the sentinels for the master of this service
        assert pool.service_name == "sessions"
        sentinels = pool.sentinel_manager.sentinels
        addresses = [s.connection_pool.connection_kwargs for s in sentinels]
        assert [(a["host"], a["port"]) for a in addresses] == [("a", 26379), ("::1", 26379)]
        assert all(a["password"] == "spw" and a["socket_timeout"] == 2.5 for a in addresses)
    finally:
        store.close()


def test_cluster_that_is_down_at_start_up_is_a_session_error_not_a_crash() -> None:
    pytest.importorskip("redis")
    store = store_from_url(f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/")
    try:
        with pytest.raises(SessionError, match="could not read a session"):
            store.get("abc")
    finally:
        store.close()


def test_min_replicas_both_in_the_url_and_as_an_argument_is_refused() -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError, match="not both"):
        RedisStore("redis://127.0.0.1/0?min_replicas=1", min_replicas=2)
