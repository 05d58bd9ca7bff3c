"""``rediss://`` session stores against real TLS-only Redis servers, and TLS settings checked at start-up.

Each server listens on a TLS port only (``port 0``), with a certificate for 127.0.0.1 from a
CA made for the test run. The store must verify that certificate, refuse one it cannot
verify with a 503 (never a 500, never a plaintext fallback), present a client certificate
when the URL names one, and reach Sentinel's sentinels and a Cluster's nodes over TLS too.
TLS settings that cannot work are a ConfigError at start-up, not a 503 (or a 500) on every
request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import cli, running_redis_cluster, running_sentinel_group
from stack import KEY_PASSWORD, Certificates, running_redis
from webtest import TestApp

from shibwsgi import ConfigError, SessionError, SSOMiddleware
from shibwsgi.sessions import RedisStore
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from stack import Redis

pytest.importorskip("redis")

servers = pytest.mark.servers
KEY = "k" * 32
MARK = KEY_PASSWORD  # every secret here, the encrypted client key's password too
SCHEMES = [
    pytest.param("rediss://127.0.0.1:6379/0", id="plain"),
    pytest.param("rediss+sentinel://127.0.0.1:26379/sessions", id="sentinel"),
    pytest.param("rediss+cluster://127.0.0.1:6379/", id="cluster"),
]
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("tls-redis"), tls=certificates) as server:
        yield server


@pytest.fixture(scope="module")
def mutual_tls_redis(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Redis]:
    """A TLS-only server that refuses clients without a certificate from the CA."""
    folder = tmp_path_factory.mktemp("mtls-redis")
    with running_redis(folder, tls=certificates, client_certificates=True) as server:
        yield server


def round_trip(store: RedisStore) -> None:
    """set, get, a renewal (SET XX), delete, and a renewal of the deleted session refused."""
    try:
        store.set("alice", {"user": "alice"}, 60)
        assert store.get("alice") == {"user": "alice"}
        assert store.update("alice", {"user": "alice", "n": 2}, 60) is True
        assert store.get("alice") == {"user": "alice", "n": 2}
        store.delete("alice")
        assert store.get("alice") is None
        assert store.update("alice", {"user": "alice"}, 60) is False  # a logout stays a logout
        assert store.get("alice") is None
    finally:
        store.close()


def refused(url: str) -> SessionError:
    """The SessionError every store operation on ``url`` raises."""
    store = RedisStore(url)
    try:
        for operation in (
            lambda: store.get("alice"),
            lambda: store.set("alice", {"user": "alice"}, 60),
            lambda: store.update("alice", {"user": "alice"}, 60),
            lambda: store.delete("alice"),
        ):
            with pytest.raises(SessionError) as info:
                operation()
        return info.value
    finally:
        store.close()


# --- one server ----------------------------------------------------------------------------------


@servers
def test_store_round_trip_over_tls_verified_by_the_ca(tls_redis: Redis) -> None:
    round_trip(RedisStore(tls_redis.url))


@servers
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("?ssl_ca_certs={other}", id="another CA"),
        pytest.param("?ssl_ca_certs={other}&ssl_cert_reqs=required", id="another CA, required"),
        pytest.param("?ssl_cert_reqs=required", id="no CA: the system's do not know it"),
        pytest.param("", id="no settings"),
    ],
)
def test_server_certificate_from_an_unknown_ca_is_a_session_error(
    tls_redis: Redis, other_ca: Certificates, query: str
) -> None:
    error = refused(f"rediss://127.0.0.1:{tls_redis.port}/0" + query.format(other=other_ca.ca))
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)


@servers
def test_certificate_for_another_host_name_is_a_session_error(
    tls_redis: Redis, certificates: Certificates
) -> None:
    # localhost reaches the same server; the certificate names 127.0.0.1 only.
    error = refused(f"rediss://localhost:{tls_redis.port}/0?ssl_ca_certs={certificates.ca}")
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)


@servers
def test_plaintext_url_against_the_tls_port_is_a_quick_session_error(tls_redis: Redis) -> None:
    refused(f"redis://127.0.0.1:{tls_redis.port}/0?socket_timeout=0.5")


@servers
def test_tls_url_against_a_plaintext_server_never_falls_back_to_plaintext(
    tmp_path: Path, certificates: Certificates
) -> None:
    with running_redis(tmp_path) as plain:
        # The server reads the TLS hello as the start of a command and waits for its end: the
        # handshake times out (bounded), and no command ever reaches the server in plaintext.
        timeouts = "socket_timeout=0.3&socket_connect_timeout=0.3"
        refused(f"rediss://127.0.0.1:{plain.port}/0?ssl_ca_certs={certificates.ca}&{timeouts}")
        assert "cmdstat_" not in cli(plain.port, "INFO", "commandstats").replace("cmdstat_info", "")


@servers
def test_client_certificate_is_presented_to_a_server_that_requires_one(
    mutual_tls_redis: Redis, certificates: Certificates
) -> None:
    client = f"&ssl_certfile={certificates.client_cert}&ssl_keyfile={certificates.client_key}"
    round_trip(RedisStore(mutual_tls_redis.url + client))


@servers
@pytest.mark.parametrize(
    "client",
    [
        pytest.param("", id="no client certificate"),
        pytest.param("&ssl_certfile={other.client_cert}&ssl_keyfile={other.client_key}", id="another CA's"),
    ],
)
def test_client_without_a_certificate_from_the_ca_is_refused(
    mutual_tls_redis: Redis, other_ca: Certificates, client: str
) -> None:
    refused(mutual_tls_redis.url + client.format(other=other_ca))


@servers
def test_logged_in_request_through_the_middleware_over_tls(tls_redis: Redis) -> None:
    store = RedisStore(tls_redis.url)
    app = TestApp(SSOMiddleware(echo_app, session=store, secret_key=KEY), extra_environ=HTTPS)
    try:
        app.get("/login", extra_environ=environ_for("shibboleth", "alice@example.org"), status=302)
        assert app.get("/page", status=200).json["identity"]["user"] == "alice@example.org"
        app.get("/logout", status="*")
        assert app.get("/page", status=200).json["identity"] is None
    finally:
        store.close()


@servers
def test_unverifiable_server_is_a_503_through_the_middleware(
    tls_redis: Redis, other_ca: Certificates
) -> None:
    store = RedisStore(f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={other_ca.ca}")
    app = TestApp(SSOMiddleware(echo_app, session=store, secret_key=KEY), extra_environ=HTTPS)
    try:
        login = app.get("/login", extra_environ=environ_for("shibboleth", "alice@example.org"), status="*")
        assert login.status_int == 503
        assert "the session store is unavailable" in login.text
    finally:
        store.close()


@servers
def test_encrypted_client_key_is_opened_with_ssl_password_which_never_shows(
    mutual_tls_redis: Redis, certificates: Certificates, encrypted_client_key: Path
) -> None:
    client = f"&ssl_certfile={certificates.client_cert}&ssl_keyfile={encrypted_client_key}"
    store = RedisStore(f"{mutual_tls_redis.url}{client}&ssl_password={MARK}")
    assert MARK not in repr(store)
    round_trip(store)


# --- TLS settings that cannot work, refused at start-up ---------------------------------------------

BROKEN_TLS = [
    pytest.param("ssl_ca_certs={folder}/missing.pem", "ssl_ca_certs", id="CA file missing"),
    pytest.param("ssl_ca_certs={certificates.client_key}", "ssl_ca_certs", id="CA file not a certificate"),
    pytest.param(
        "ssl_certfile={folder}/missing.pem&ssl_keyfile={certificates.client_key}",
        "ssl_certfile",
        id="certificate missing",
    ),
    pytest.param(
        "ssl_certfile={certificates.client_cert}&ssl_keyfile={certificates.key}",
        "ssl_keyfile",
        id="another certificate's key",
    ),
    pytest.param("ssl_keyfile={certificates.client_key}", "ssl_certfile", id="key without its certificate"),
    pytest.param(
        "ssl_certfile={certificates.client_cert}&ssl_keyfile={encrypted}",
        "ssl_keyfile",
        id="encrypted key, no password",
    ),
    pytest.param(
        "ssl_certfile={certificates.client_cert}&ssl_keyfile={encrypted}&ssl_password={mark}-wrong",
        "ssl_keyfile",
        id="encrypted key, wrong password",
    ),
    pytest.param("ssl_ciphers=NO-SUCH-CIPHER", "ssl_ciphers", id="unknown cipher list"),
    pytest.param("ssl_min_version=999", "ssl_min_version", id="unknown TLS version (a 500 at every request)"),
]


@pytest.mark.parametrize("base", SCHEMES)
@pytest.mark.parametrize(("query", "setting"), BROKEN_TLS)
def test_tls_setting_that_cannot_work_is_refused_at_start_up(
    base: str, query: str, setting: str, certificates: Certificates, encrypted_client_key: Path
) -> None:
    folder = certificates.ca.parent
    settings = query.format(
        folder=folder, certificates=certificates, encrypted=encrypted_client_key, mark=MARK
    )
    with pytest.raises(ConfigError) as info:
        RedisStore(f"{base}?{settings}")
    assert setting in str(info.value)
    assert MARK not in str(info.value)


@pytest.mark.parametrize("base", SCHEMES)
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("ssl_check_hostname=nope", id="ssl_check_hostname=nope"),
        pytest.param("ssl_check_hostname=disabled", id="ssl_check_hostname=disabled"),
        pytest.param("ssl_check_hostname=off", id="ssl_check_hostname=off (yes to older redis-py)"),
        pytest.param("socket_keepalive=enabled", id="socket_keepalive=enabled"),
    ],
)
def test_yes_no_setting_in_a_word_redis_py_reads_as_yes_is_refused(base: str, query: str) -> None:
    with pytest.raises(ConfigError) as info:
        RedisStore(f"{base}?{query}")
    assert query.partition("=")[0] in str(info.value)


# --- Sentinel and Cluster ------------------------------------------------------------------------


@servers
def test_sentinel_group_over_tls_finds_the_master(tmp_path: Path, certificates: Certificates) -> None:
    with running_sentinel_group(tmp_path, tls=certificates) as group:
        assert group.url.startswith("rediss+sentinel://")
        round_trip(RedisStore(group.url))
        store = RedisStore(group.url)
        try:
            store.set("bob", {"user": "bob"}, 60)
            # Written to the master, replicated over TLS to the replica.
            assert cli(group.master.port, "WAIT", "1", "2000", tls=certificates) == "1"
            assert "bob" in cli(group.replica.port, "GET", "shibwsgi:session:bob", tls=certificates)
        finally:
            store.close()


@servers
def test_cluster_over_tls_serves_keys_on_every_master(tmp_path: Path, certificates: Certificates) -> None:
    with running_redis_cluster(tmp_path, tls=certificates, replicas=0) as cluster:
        assert cluster.url.startswith("rediss+cluster://")
        # One node listed: the other two are found through it, and reached over TLS too.
        store = RedisStore(
            f"rediss+cluster://127.0.0.1:{cluster.nodes[0].port}/?ssl_ca_certs={certificates.ca}", prefix=""
        )
        try:
            users = [f"user-{n}" for n in range(30)]
            for user in users:
                store.set(user, {"user": user}, 60)
            for user in users:
                assert store.get(user) == {"user": user}
                assert store.update(user, {"user": user, "n": 2}, 60) is True
            held = [int(cli(node.port, "DBSIZE", tls=certificates)) for node in cluster.nodes]
            assert all(held) and sum(held) == len(users)  # spread over all three masters
            for user in users:
                store.delete(user)
                assert store.get(user) is None
        finally:
            store.close()


@servers
def test_sentinels_listening_in_plaintext_are_reached_with_sentinel_ssl_no(
    tmp_path: Path, certificates: Certificates
) -> None:
    with running_sentinel_group(tmp_path, tls=certificates, sentinels_listen_tls=False) as group:
        assert group.url.endswith("&sentinel_ssl=no")
        round_trip(RedisStore(group.url))
        # Without it the store speaks TLS to plaintext sentinels: a 503, bounded.
        store = RedisStore(
            group.url.replace("&sentinel_ssl=no", "&socket_connect_timeout=0.2&socket_timeout=0.2")
        )
        try:
            with pytest.raises(SessionError):
                store.get("alice")
        finally:
            store.close()


# --- the sentinels' own TLS settings --------------------------------------------------------------


def sentinel_connections(url: str) -> tuple[Any, dict[str, Any], type]:
    """A Sentinel store's data node connection, and its sentinels' settings and connection class."""
    store = RedisStore(url)
    try:
        connection = store._client._connect()  # type: ignore[attr-defined]  # a thread's connection
        sentinel_pool = connection.connection_pool.sentinel_manager.sentinels[0].connection_pool
        return connection, sentinel_pool.connection_kwargs, sentinel_pool.connection_class
    finally:
        store.close()


def test_sentinels_get_the_data_nodes_tls_settings_by_default(certificates: Certificates) -> None:
    import redis

    data, sentinel, sentinel_class = sentinel_connections(
        f"rediss+sentinel://127.0.0.1:26379/svc?ssl_ca_certs={certificates.ca}&socket_timeout=2"
    )
    assert isinstance(data, redis.SSLConnection) and sentinel_class is redis.SSLConnection
    assert data.ca_certs == sentinel["ssl_ca_certs"] == str(certificates.ca)
    assert sentinel["socket_timeout"] == 2


@pytest.mark.parametrize(
    ("query", "data_tls", "sentinel_tls"),
    [
        pytest.param(
            "rediss+sentinel:{hosts}?ssl_ca_certs={ca}&sentinel_ssl=no",
            True,
            False,
            id="TLS data, plain sentinels",
        ),
        pytest.param(
            "redis+sentinel:{hosts}?sentinel_ssl=yes&sentinel_ssl_ca_certs={ca}",
            False,
            True,
            id="plain data, TLS sentinels",
        ),
    ],
)
def test_sentinel_ssl_sets_tls_to_the_sentinels_apart(
    certificates: Certificates, query: str, data_tls: bool, sentinel_tls: bool
) -> None:
    import redis

    url = query.format(hosts="//127.0.0.1:26379/svc", ca=certificates.ca)
    data, sentinel, sentinel_class = sentinel_connections(url)
    assert isinstance(data, redis.SSLConnection) is data_tls
    assert issubclass(sentinel_class, redis.SSLConnection) is sentinel_tls
    # Each side has only its own TLS settings.
    assert (getattr(data, "ca_certs", None) == str(certificates.ca)) is data_tls
    assert ("ssl_ca_certs" in sentinel) is sentinel_tls


def test_sentinel_ssl_setting_overrides_the_data_nodes_one_for_the_sentinels(
    certificates: Certificates, other_ca: Certificates
) -> None:
    data, sentinel, _ = sentinel_connections(
        f"rediss+sentinel://127.0.0.1:26379/svc?ssl_ca_certs={certificates.ca}&sentinel_ssl_ca_certs={other_ca.ca}"
    )
    assert data.ca_certs == str(certificates.ca)
    assert sentinel["ssl_ca_certs"] == str(other_ca.ca)


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param(
            "rediss+sentinel://h/svc?sentinel_ssl=nope", "sentinel_ssl", id="sentinel_ssl, not yes or no"
        ),
        pytest.param(
            "rediss+sentinel://h/svc?sentinel_ssl_ca_certs=/no/such.pem", "ssl_ca_certs", id="missing CA"
        ),
        pytest.param(
            "rediss+sentinel://h/svc?sentinel_ssl_min_version=x", "sentinel_ssl_min_version", id="bad version"
        ),
        pytest.param("rediss+sentinel://h/svc?sentinel_ssl_bogus=1", "ssl_bogus", id="unknown ssl setting"),
        pytest.param("rediss+sentinel://h/svc?sentinel_db=1", "sentinel_db", id="not a sentinel setting"),
        pytest.param(
            "redis+sentinel://h/svc?sentinel_ssl_ca_certs={ca}", "ssl_ca_certs", id="TLS setting, no TLS"
        ),
        pytest.param(
            "rediss+sentinel://h/svc?sentinel_socket_timeout=nan", "socket_timeout", id="NaN timeout"
        ),
        pytest.param("rediss+cluster://h/?sentinel_ssl=no", "sentinel_ssl", id="cluster"),
        pytest.param(
            "rediss+sentinel://h/svc?sentinel_ssl_certfile=/no/such.pem&sentinel_ssl_password={mark}",
            "ssl_certfile",
            id="missing certificate, its key's password hidden",
        ),
    ],
)
def test_sentinel_setting_that_cannot_work_is_refused_at_start_up(
    certificates: Certificates, url: str, part: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RedisStore(url.format(ca=certificates.ca, mark=MARK))
    assert part in str(info.value)
    assert MARK not in str(info.value)
