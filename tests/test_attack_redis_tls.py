"""Attacks on TLS Redis URLs, the sentinels' own settings and the start-up checks (issue 19).

Promises checked: a setting that cannot work is a ``ConfigError`` naming it at start-up (never
a hang there, never a 503 or 500 at each request), yes/no settings only in words redis-py
reads the same, ``sentinel_*`` settings only where they mean something, passwords never shown
in any spelling, and an unverifiable server a 503 through the middleware.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import cli, running_redis_cluster, running_sentinel_group
from stack import KEY_PASSWORD, Certificates, running_redis
from webtest import TestApp

from shibwsgi import ConfigError, SessionError, SSOMiddleware
from shibwsgi.sessions import RedisStore, store_from_url
from shibwsgi.sessions.redis import mask_url
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from stack import Redis

pytest.importorskip("redis")

KEY = "k" * 32
MARK = KEY_PASSWORD  # every secret here, the encrypted client key's password too
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}
BASES = [
    pytest.param("rediss://127.0.0.1:6379/0", id="plain"),
    pytest.param("rediss+sentinel://127.0.0.1:26379/sessions", id="sentinel"),
    pytest.param("rediss+cluster://127.0.0.1:6379/", id="cluster"),
]


def refusal(url: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        RedisStore(url)
    return info.value


def chain(error: BaseException) -> str:
    """Every text an error and the ones chained to it would show in a traceback or a log."""
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


# --- files that are not files ---------------------------------------------------------------------


class Unblocker(threading.Thread):
    """Opens ``fifo`` for writing as soon as someone waits to read it, and notes that it did:
    a start-up check reading a FIFO would otherwise hang for ever."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.reader_was_waiting = False
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                writer = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                continue
            self.reader_was_waiting = True
            os.write(writer, b"not a certificate\n")
            os.close(writer)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Unblocker]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    unblocker = Unblocker(path)
    unblocker.start()
    yield unblocker
    unblocker.done.set()
    unblocker.join()


@pytest.mark.parametrize(
    ("query", "setting"),
    [
        pytest.param("ssl_ca_certs={fifo}", "ssl_ca_certs", id="CA"),
        pytest.param("ssl_certfile={fifo}", "ssl_certfile", id="certificate"),
        pytest.param("ssl_certfile={cert}&ssl_keyfile={fifo}", "ssl_keyfile", id="key"),
    ],
)
@pytest.mark.parametrize("base", BASES)
def test_fifo_as_a_tls_file_is_refused_without_hanging_start_up(
    fifo: Unblocker, certificates: Certificates, base: str, query: str, setting: str
) -> None:
    error = refusal(f"{base}?" + query.format(fifo=fifo.fifo, cert=certificates.client_cert))
    assert setting in str(error)
    assert not fifo.reader_was_waiting


def test_fifo_as_the_sentinels_ca_is_refused_without_hanging_start_up(fifo: Unblocker) -> None:
    error = refusal(f"rediss+sentinel://127.0.0.1:26379/sessions?sentinel_ssl_ca_certs={fifo.fifo}")
    assert "ssl_ca_certs" in str(error) and "sentinels" in str(error)
    assert not fifo.reader_was_waiting


@pytest.fixture
def odd_files(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    return {"empty": empty, "folder": folder, "loop": tmp_path / "loop-a"}


@pytest.mark.parametrize(
    ("query", "setting"),
    [
        pytest.param("ssl_ca_certs=/dev/zero", "ssl_ca_certs", id="CA /dev/zero"),
        pytest.param("ssl_ca_certs=/dev/null", "ssl_ca_certs", id="CA /dev/null"),
        pytest.param("ssl_ca_certs={folder}", "ssl_ca_certs", id="CA a directory"),
        pytest.param("ssl_ca_certs={empty}", "ssl_ca_certs", id="CA an empty file"),
        pytest.param("ssl_ca_certs={loop}", "ssl_ca_certs", id="CA a symlink loop"),
        pytest.param("ssl_ca_certs=/etc%00/ca.pem", "ssl_ca_certs", id="CA path with NUL"),
        pytest.param("ssl_certfile=/dev/zero", "ssl_certfile", id="certificate /dev/zero"),
        pytest.param("ssl_certfile={cert}&ssl_keyfile={loop}", "ssl_keyfile", id="key a symlink loop"),
        pytest.param("ssl_certfile={cert}&ssl_keyfile={folder}", "ssl_keyfile", id="key a directory"),
        pytest.param("ssl_ca_path=/no/such/folder", "ssl_ca_path", id="CA folder missing"),
        pytest.param("ssl_ca_path={empty}", "ssl_ca_path", id="CA folder a file"),
        pytest.param("ssl_ca_data=garbage", "ssl_ca_data", id="CA data not PEM"),
        pytest.param(
            "ssl_ca_certs={ca}&ssl_include_verify_flags=VERIFY_CRL_CHECK_LEAF",
            "ssl_include_verify_flags",
            id="CRL checks, no CRL",
        ),
        pytest.param(
            "ssl_include_verify_flags=VERIFY_CRL_CHECK_CHAIN",
            "ssl_include_verify_flags",
            id="CRLs, system CAs",
        ),
    ],
)
@pytest.mark.parametrize("base", BASES)
def test_tls_file_that_cannot_work_is_refused_at_start_up(
    base: str, query: str, setting: str, odd_files: dict[str, Path], certificates: Certificates
) -> None:
    error = refusal(f"{base}?" + query.format(cert=certificates.client_cert, ca=certificates.ca, **odd_files))
    assert setting in str(error)


def test_missing_ca_folder_for_the_sentinels_is_refused_at_start_up() -> None:
    error = refusal("rediss+sentinel://127.0.0.1:26379/sessions?sentinel_ssl_ca_path=/no/such/folder")
    assert "ssl_ca_path" in str(error) and "sentinels" in str(error)


# --- settings that cannot work, or do nothing ------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "setting"),
    [
        pytest.param(
            "socket_keepalive_options=x", "socket_keepalive_options", id="keepalive options (a 500)"
        ),
        pytest.param(
            "socket_keepalive=no&socket_keepalive_options=x", "socket_keepalive_options", id="unused"
        ),
        pytest.param("credential_provider=x", "credential_provider", id="credential provider"),
        pytest.param("socket_type=x", "socket_type", id="socket type"),
        pytest.param("decode_responses=no", "decode_responses", id="decode_responses=no (read as yes)"),
        pytest.param("encoding=no-such-codec", "encoding", id="unknown encoding (a 500)"),
        pytest.param(
            "encoding_errors=no-such-handler", "encoding_errors", id="unknown error handler (a 500)"
        ),
        pytest.param("client_name=two%20words", "client_name", id="client name Redis refuses"),
        pytest.param("client_name=line%0Abreak", "client_name", id="client name with a newline"),
        pytest.param("socket_read_size=0", "socket_read_size", id="reads of 0 bytes"),
        pytest.param(
            "socket_read_size=1000000000000", "socket_read_size", id="a buffer of 1 TB (MemoryError)"
        ),
        pytest.param("socket_read_size=99999999999999999999", "socket_read_size", id="OverflowError"),
        pytest.param(
            "ssl_min_version=99999999999999999999", "ssl_min_version", id="TLS version OverflowError"
        ),
        pytest.param(
            "ssl_include_verify_flags=__doc__", "ssl_include_verify_flags", id="verify flag __doc__"
        ),
        pytest.param(
            "ssl_exclude_verify_flags=__class__", "ssl_exclude_verify_flags", id="verify flag __class__"
        ),
        pytest.param(
            "ssl_include_verify_flags=VERIFY_X509_STRICT,mro",
            "ssl_include_verify_flags",
            id="verify flag mro",
        ),
        pytest.param(
            "ssl_validate_ocsp=yes&ssl_validate_ocsp_stapled=yes", "ssl_validate_ocsp", id="both OCSP checks"
        ),
    ],
)
@pytest.mark.parametrize("base", BASES)
def test_setting_that_fails_at_each_request_is_refused_at_start_up(
    base: str, query: str, setting: str
) -> None:
    assert setting in str(refusal(f"{base}?{query}"))


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("sentinel_socket_keepalive_options=x", id="keepalive options"),
        pytest.param("sentinel_socket_read_size=0", id="reads of 0 bytes"),
        pytest.param("sentinel_socket_read_size=1000000000000", id="a buffer of 1 TB"),
        pytest.param("sentinel_ssl_min_version=-99999999999999999999", id="TLS version OverflowError"),
        pytest.param("sentinel_ssl_include_verify_flags=__doc__", id="verify flag __doc__"),
        pytest.param("sentinel_ssl_validate_ocsp=yes&sentinel_ssl_validate_ocsp_stapled=yes", id="both OCSP"),
    ],
)
def test_sentinel_setting_that_fails_at_each_request_is_refused_at_start_up(query: str) -> None:
    error = refusal(f"rediss+sentinel://127.0.0.1:26379/sessions?{query}")
    assert "sentinels" in str(error)


@pytest.mark.parametrize("setting", ["health_check_interval=5", "retry_on_error=TimeoutError"])
def test_setting_redis_cluster_drops_is_refused(setting: str) -> None:
    error = refusal(f"rediss+cluster://127.0.0.1:6379/?{setting}")
    assert setting.partition("=")[0] in str(error)


@pytest.mark.parametrize(
    ("query", "setting"),
    [
        pytest.param(
            "ssl_check_hostname=yes&ssl_cert_reqs=none", "ssl_check_hostname", id="host check, no check"
        ),
        pytest.param("ssl_password=x", "ssl_password", id="key password without a key"),
        pytest.param("ssl_password=x&ssl_ca_certs={ca}", "ssl_password", id="key password with a CA only"),
    ],
)
@pytest.mark.parametrize("base", BASES)
def test_tls_setting_redis_py_would_drop_without_a_word_is_refused(
    base: str, query: str, setting: str, certificates: Certificates
) -> None:
    assert setting in str(refusal(f"{base}?" + query.format(ca=certificates.ca)))


@pytest.mark.parametrize("base", BASES)
def test_key_password_for_a_key_that_is_not_encrypted_is_refused(
    base: str, certificates: Certificates
) -> None:
    client = f"ssl_certfile={certificates.client_cert}&ssl_keyfile={certificates.client_key}"
    error = refusal(f"{base}?{client}&ssl_password={MARK}")
    assert "ssl_password" in str(error) and "not encrypted" in str(error)
    assert MARK not in chain(error)


def test_key_password_for_the_sentinels_without_their_key_is_refused() -> None:
    error = refusal("rediss+sentinel://127.0.0.1:26379/sessions?sentinel_ssl_password=x")
    assert "ssl_password" in str(error) and "sentinels" in str(error)


def test_symlink_to_a_fifo_as_the_key_is_refused(fifo: Unblocker, certificates: Certificates) -> None:
    link = fifo.fifo.with_name("key-link")
    link.symlink_to(fifo.fifo)
    error = refusal(f"rediss://127.0.0.1:6379/0?ssl_certfile={certificates.client_cert}&ssl_keyfile={link}")
    assert "ssl_keyfile" in str(error)
    assert not fifo.reader_was_waiting


@pytest.mark.parametrize(
    ("query", "setting"),
    [
        pytest.param(
            "ssl_validate_ocsp_stapled=yes", "ssl_validate_ocsp_stapled", id="staple, no key (a 500)"
        ),
        pytest.param(
            "ssl_validate_ocsp_stapled=yes&ssl_certfile={cert}",
            "ssl_validate_ocsp_stapled",
            id="staple, no key file",
        ),
        pytest.param("ssl_ocsp_expected_cert=x", "ssl_ocsp_expected_cert", id="expected cert as text"),
        pytest.param("ssl_ocsp_context=x", "ssl_ocsp_context", id="OCSP context as text"),
    ],
)
@pytest.mark.parametrize("base", BASES)
def test_ocsp_setting_that_fails_at_each_connection_is_refused(
    base: str, query: str, setting: str, certificates: Certificates
) -> None:
    assert setting in str(refusal(f"{base}?" + query.format(cert=certificates.client_cert)))


@pytest.mark.parametrize(
    ("query", "module"),
    [
        pytest.param("ssl_validate_ocsp=yes", "cryptography", id="OCSP without cryptography"),
        pytest.param(
            "ssl_validate_ocsp_stapled=yes&" + "ssl_certfile={cert}&ssl_keyfile={key}", "OpenSSL", id="staple"
        ),
    ],
)
def test_ocsp_check_without_its_module_is_refused_at_start_up(
    query: str, module: str, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name, *a)
    )
    settings = query.format(cert=certificates.client_cert, key=certificates.client_key)
    error = refusal(f"rediss://127.0.0.1:6379/0?{settings}")
    assert "pip install" in str(error)


def test_stapled_ocsp_with_the_client_files_is_taken(certificates: Certificates) -> None:
    client = f"ssl_certfile={certificates.client_cert}&ssl_keyfile={certificates.client_key}"
    RedisStore(f"rediss://127.0.0.1:6379/0?ssl_validate_ocsp_stapled=yes&{client}").close()


# --- words, duplicates and spellings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("sentinel_ssl_check_hostname=nope", id="sentinel_ssl_check_hostname=nope"),
        pytest.param("sentinel_socket_keepalive=enabled", id="sentinel_socket_keepalive=enabled"),
        pytest.param("sentinel_ssl=on", id="sentinel_ssl=on"),
        pytest.param("sentinel_ssl=%20no", id="sentinel_ssl with a leading blank"),
        pytest.param("ssl_validate_ocsp=off", id="ssl_validate_ocsp=off"),
        pytest.param("ssl_check_hostname=%EF%BD%8E%EF%BD%8F", id="fullwidth no"),
        pytest.param("ssl_check_hostname=no%00", id="no and NUL"),
        pytest.param("retry_on_timeout=disabled", id="retry_on_timeout=disabled"),
    ],
)
def test_yes_no_word_redis_py_reads_as_yes_is_refused(query: str) -> None:
    refusal(f"rediss+sentinel://127.0.0.1:26379/sessions?{query}")


@pytest.mark.parametrize("word", ["TRUE", "No", "Y", "f", "0", "1"])
def test_yes_no_word_in_any_case_is_taken(word: str) -> None:
    RedisStore(
        f"rediss+sentinel://127.0.0.1:26379/sessions?sentinel_ssl={word}&ssl_check_hostname={word}"
    ).close()


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("ssl_ca_certs=/a.pem&ssl_ca_certs=/a.pem", id="same twice"),
        pytest.param("ssl_ca_certs=/a.pem&ssl%5Fca_certs=/b.pem", id="twice, once percent-encoded"),
        pytest.param("ssl_ca_certs=/a.pem&SSL_CA_CERTS=/b.pem", id="twice, once upper case"),
        pytest.param("SSL_CA_CERTS=/a.pem", id="upper case"),
        pytest.param("ssl_ca_certs%20=/a.pem", id="name with a blank"),
        pytest.param("ssl_ca_certs%0A=/a.pem", id="name with a newline"),
        pytest.param("sentinel_ssl=no&sentinel_ssl=yes", id="sentinel_ssl twice"),
        pytest.param("sentinel_ssl_ca_certs=/a.pem&sentinel_ssl_ca_certs=/b.pem", id="sentinel CA twice"),
        pytest.param("Sentinel_ssl=no", id="Sentinel_ prefix in another case"),
        pytest.param("sentinel_SSL=no", id="sentinel_SSL"),
        pytest.param("sentinel_db=1", id="sentinel_db"),
        pytest.param("sentinel_=1", id="bare sentinel_"),
        pytest.param("sentinel_ssl=no&sentinel_ssl_ca_certs=/a.pem", id="sentinel TLS file without TLS"),
        pytest.param("sentinel_min_replicas=1", id="sentinel_min_replicas"),
        pytest.param("ssl_ca_certs=", id="blank value"),
    ],
)
def test_ambiguous_or_unknown_sentinel_url_setting_is_refused(query: str) -> None:
    refusal(f"rediss+sentinel://127.0.0.1:26379/sessions?{query}")


@pytest.mark.parametrize(
    "query",
    ["sentinel_ssl=no", "sentinel_password=x", "sentinel_ssl_ca_certs=/a.pem", "sentinel_socket_timeout=1"],
)
@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
def test_sentinel_setting_on_a_cluster_url_is_refused(scheme: str, query: str) -> None:
    assert query.partition("=")[0] in str(refusal(f"{scheme}://127.0.0.1:6379/?{query}"))


def test_tls_setting_on_a_plaintext_url_is_refused() -> None:
    for url in (
        "redis://127.0.0.1:6379/0?ssl_ca_certs=/a.pem",
        "redis+sentinel://127.0.0.1:26379/sessions?ssl_cert_reqs=none",
        "redis+cluster://127.0.0.1:6379/?ssl_check_hostname=no",
        "unix:///tmp/redis.sock?ssl_ca_certs=/a.pem",
    ):
        with pytest.raises(ConfigError):
            RedisStore(url)


@pytest.mark.parametrize("value", ["NONE", "Required", "none%20", "optional,required"])
def test_ssl_cert_reqs_outside_redis_py_words_is_refused(value: str) -> None:
    refusal(f"rediss://127.0.0.1:6379/0?ssl_cert_reqs={value}")
    refusal(f"rediss+sentinel://127.0.0.1:26379/sessions?sentinel_ssl_cert_reqs={value}")


# --- malformed URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param("rediss+sentinel://127.0.0.1:26379,/sessions", "host 2", id="empty second host"),
        pytest.param("rediss+sentinel://,127.0.0.1:26379/sessions", "host 1", id="empty first host"),
        pytest.param("rediss+sentinel://127.0.0.1:%32/sessions", "port", id="percent-encoded port"),
        pytest.param("rediss+sentinel://127.0.0.1:\uff12\uff16/sessions", "port", id="fullwidth port"),
        pytest.param("rediss+sentinel://127.0.0.1:0/sessions", "port", id="port 0"),
        pytest.param("rediss+sentinel://[::1]:/sessions", "port", id="IPv6, empty port"),
        pytest.param("rediss+sentinel://127.0.0.1:26379/sessions/\uff11", "database", id="fullwidth db"),
        pytest.param("rediss+sentinel://127.0.0.1:26379/sessions/1/2", "path", id="two databases"),
        pytest.param("rediss+sentinel://127.0.0.1:26379/", "service", id="no service"),
        pytest.param("rediss+sentinel://127.0.0.1:26379/sessions/1?db=1", "database", id="db twice"),
        pytest.param("rediss+cluster://127.0.0.1:6379/1", "database 0", id="cluster database 1"),
        pytest.param("rediss+cluster://127.0.0.1:6379/?db=1", "database 0", id="cluster ?db=1"),
        pytest.param("rediss+cluster://127.0.0.1:6379/#x", "fragment", id="cluster fragment"),
    ],
)
def test_malformed_url_names_the_wrong_part(url: str, part: str) -> None:
    assert part in str(refusal(url))


@pytest.mark.parametrize(
    ("url", "part"),
    [
        pytest.param("rediss+sentinel://127.0.0.1:26379/my%20service", "service", id="blank in the service"),
        pytest.param("rediss+sentinel://127.0.0.1:26379/svc%0A", "service", id="newline after the service"),
        pytest.param(
            "rediss+sentinel://127.0.0.1%20:26379/svc", "host 1", id="encoded blank in a sentinel host"
        ),
        pytest.param("rediss+cluster://127.0.0.1:6379,n%0A2:6379/", "host 2", id="encoded newline in a node"),
    ],
)
def test_percent_encoded_blank_in_a_host_or_service_is_refused(url: str, part: str) -> None:
    assert part in str(refusal(url))


def test_percent_encoded_host_and_service_are_read_as_redis_py_reads_a_url() -> None:
    """Taken literally, ``local%68ost`` never resolves and ``my%2Dservice`` is no sentinel's:
    a 503 at every request."""
    data, _, _ = both_sides("rediss+sentinel://local%68ost:26379/my%2Dservice")
    pool = data.connection_pool
    assert pool.service_name == "my-service"
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["host"] == "localhost"
    nodes = cluster_of("rediss+cluster://local%68ost:6379,[fe80::1%25eth0]:6379/")._nodes
    assert nodes == [("localhost", 6379), ("fe80::1%eth0", 6379)]


def test_ipv6_sentinels_are_taken() -> None:
    RedisStore("rediss+sentinel://[::1]:26379,[::1]/sessions/0").close()


@pytest.mark.parametrize(
    ("query", "part"),
    [
        pytest.param("min_replicas=%EF%BC%91", "min_replicas", id="fullwidth min_replicas"),
        pytest.param("min_replicas=-1", "min_replicas", id="negative"),
        pytest.param("min_replicas=1.0", "min_replicas", id="not whole"),
        pytest.param("min_replicas=1001", "min_replicas", id="more than a cluster can hold"),
        pytest.param("min_replicas=1&wait_timeout=nan", "wait_timeout", id="NaN wait"),
        pytest.param("min_replicas=1&wait_timeout=inf", "wait_timeout", id="endless wait"),
        pytest.param("min_replicas=1&wait_timeout=0", "wait_timeout", id="no wait"),
        pytest.param("min_replicas=1&wait_timeout=1", "socket_timeout", id="wait as long as the socket"),
        pytest.param(
            "min_replicas=1&wait_timeout=0.4&socket_timeout=0.4", "socket_timeout", id="socket first"
        ),
        pytest.param("wait_timeout=0.2", "min_replicas", id="wait without replicas"),
        pytest.param("min_replicas=1&min_replicas=2", "min_replicas", id="min_replicas twice"),
        pytest.param("min_replicas=", "min_replicas", id="blank"),
        pytest.param("wait_timeout=0.5", "min_replicas", id="default wait without replicas"),
        pytest.param("min_replicas=0&wait_timeout=0.5", "min_replicas", id="wait with 0 replicas"),
    ],
)
@pytest.mark.parametrize("base", BASES)
def test_bad_min_replicas_or_wait_timeout_is_refused_naming_it(base: str, query: str, part: str) -> None:
    assert part in str(refusal(f"{base}?{query}"))


def test_min_replicas_in_the_url_and_as_an_argument_is_refused() -> None:
    with pytest.raises(ConfigError):
        RedisStore("rediss+cluster://127.0.0.1:6379/?min_replicas=1", min_replicas=1)


def test_very_long_sentinel_list_is_taken_without_connecting() -> None:
    hosts = ",".join(f"127.0.0.{n % 250 + 1}:{20000 + n}" for n in range(2000))
    RedisStore(f"rediss+sentinel://{hosts}/sessions").close()


# --- passwords never shown ----------------------------------------------------------------------------

SECRET_URLS = [
    pytest.param("rediss://:{m}@127.0.0.1:1/0?ssl_ca_certs=/no/such.pem", id="user part, bad CA"),
    pytest.param("rediss://:S3%43R3T@127.0.0.1:1/0?ssl_ca_certs=/no/such.pem", id="percent-encoded"),
    pytest.param("rediss://:{m}@127.0.0.1:1/0?ssl_password={m}&ssl_certfile=/no/such.pem", id="twice"),
    pytest.param("rediss://127.0.0.1:1/0?ssl%5Fpassword={m}&ssl_certfile=/no/such.pem", id="encoded name"),
    pytest.param("rediss://127.0.0.1:1/0?SSL_PASSWORD={m}", id="upper-case name"),
    pytest.param("rediss://127.0.0.1:1/0?ssl_password={m}&ssl_password={m}", id="setting twice"),
    pytest.param("rediss://127.0.0.1:1/0?ssl_password=a%23{m}&ssl_ca_certs=/no/such.pem", id="%23 in it"),
    pytest.param("rediss://127.0.0.1:1/0?ssl_password=a#{m}&ssl_ca_certs=/no/such.pem", id="# in it"),
    pytest.param("rediss://127.0.0.1:1/0?ssl_password=a#{m}", id="# in it, nothing else to refuse"),
    pytest.param("rediss://127.0.0.1:1/0?ssl_password=a?{m}&ssl_ca_certs=/no/such.pem", id="? in it"),
    pytest.param("rediss://127.0.0.1:1/0?ssl_password=a@{m}&ssl_ca_certs=/no/such.pem", id="@ in it"),
    pytest.param("rediss://:a@{m}@127.0.0.1:1/0?socket_timeout=nan", id="@ in the user part"),
    pytest.param("rediss://:a#{m}@127.0.0.1:1/0", id="# in the user part"),
    pytest.param("rediss://:a?{m}@127.0.0.1:1/0", id="? in the user part"),
    pytest.param("rediss://:{m}@127.0.0.1:x/0", id="before a port that is not a number"),
    pytest.param("rediss://:{m}@127.0.0.1:\uff11/0", id="before a fullwidth port"),
    pytest.param("rediss://:{m}@[::1/0", id="before a broken IPv6 host"),
    pytest.param("rediss+sentinel://:{m}@127.0.0.1:1/sessions?sentinel_bogus=1", id="sentinel, unknown"),
    pytest.param(
        "rediss+sentinel://127.0.0.1:1/sessions?sentinel_password={m}&sentinel_db=1", id="sentinel pw"
    ),
    pytest.param("rediss+sentinel://127.0.0.1:1/sessions?sentinel_password=a#{m}", id="sentinel pw, #"),
    pytest.param("rediss+sentinel://127.0.0.1:1/sessions?SENTINEL_PASSWORD={m}", id="SENTINEL_PASSWORD"),
    pytest.param(
        "rediss+sentinel://127.0.0.1:1/sessions?sentinel_ssl_password={m}&sentinel_ssl_certfile=/no/such.pem",
        id="sentinel TLS key password",
    ),
    pytest.param("rediss+sentinel://:{m}@127.0.0.1:1,:2/sessions", id="sentinel, empty host"),
    pytest.param("rediss+sentinel://:a,{m}@127.0.0.1:1,x:y/sessions", id="sentinel, comma in it"),
    pytest.param("rediss+cluster://:{m}@127.0.0.1:1/?sentinel_password={m}", id="cluster, sentinel pw"),
    pytest.param("rediss+cluster://:{m}@127.0.0.1:1/?ssl_password={m}&ssl_certfile=/no", id="cluster TLS"),
    pytest.param("rediss+cluster://:{m}@127.0.0.1:1%/", id="cluster, bad port"),
    pytest.param("rediss+cluster://:{m}@127.0.0.1:1/?min_replicas=x", id="cluster, bad min_replicas"),
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_password_never_shows_in_a_start_up_refusal(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as info:
        store_from_url(url.format(m=MARK))
    assert MARK not in chain(info.value) + caplog.text


CLIENT = "ssl_certfile={cert}&ssl_keyfile={key}"
SECRET_STORES = [
    pytest.param("rediss://:{m}@127.0.0.1:1/0", id="plain"),
    pytest.param("rediss://:a%40{m}@127.0.0.1:1/0?ssl_password={m}&" + CLIENT, id="plain, @ and TLS key"),
    pytest.param("rediss+sentinel://:{m}@127.0.0.1:1/sessions?sentinel_password={m}", id="sentinel"),
    pytest.param(
        "rediss+sentinel://[::1]:1/sessions?sentinel_ssl_password={m}&ssl_password={m}&" + CLIENT, id="TLS"
    ),
    pytest.param("rediss+cluster://:{m}@127.0.0.1:1/?ssl_password={m}&" + CLIENT, id="cluster"),
]


@pytest.mark.parametrize("url", SECRET_STORES)
def test_password_never_shows_when_the_store_is_down(
    url: str, certificates: Certificates, encrypted_client_key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = store_from_url(url.format(m=MARK, cert=certificates.client_cert, key=encrypted_client_key))
    try:
        assert MARK not in repr(store)
        with pytest.raises(SessionError) as info:
            store.get("alice")
        assert MARK not in chain(info.value) + caplog.text
        app = TestApp(SSOMiddleware(echo_app, session=store, secret_key=KEY), extra_environ=HTTPS)
        login = app.get("/login", extra_environ=environ_for("shibboleth", "alice@example.org"), status="*")
        assert login.status_int == 503
        assert MARK not in login.text + str(login.headers) + caplog.text
    finally:
        store.close()


# --- real servers: what cannot be verified is a 503 ---------------------------------------------------


def login_status(store: RedisStore, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    app = TestApp(SSOMiddleware(echo_app, session=store, secret_key=KEY), extra_environ=HTTPS)
    try:
        login = app.get("/login", extra_environ=environ_for("shibboleth", "alice@example.org"), status="*")
        return login.status_int, login.text + caplog.text
    finally:
        store.close()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Redis]:
    with running_redis(tmp_path_factory.mktemp("tls-redis"), tls=certificates) as server:
        yield server


@pytest.mark.servers
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("ssl_ca_certs={other}", id="another CA"),
        pytest.param("ssl_ca_certs={other}&ssl_check_hostname=no", id="another CA, no host name check"),
        pytest.param("ssl_ca_path={folder}", id="a CA folder without the CA"),
        pytest.param("ssl_ca_certs={other}&ssl_cert_reqs=optional", id="another CA, optional"),
    ],
)
def test_unverifiable_tls_server_is_a_503_and_no_password_shows(
    tls_redis: Redis,
    certificates: Certificates,
    other_ca: Certificates,
    query: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = query.format(other=other_ca.ca, ca=certificates.ca, folder=other_ca.ca.parent)
    status, shown = login_status(
        RedisStore(f"rediss://:{MARK}@127.0.0.1:{tls_redis.port}/0?{settings}"), caplog
    )
    assert status == 503
    assert MARK not in shown


@pytest.mark.servers
def test_wrong_password_over_tls_is_a_503_that_never_shows_it(
    tmp_path: Path, certificates: Certificates, encrypted_client_key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_redis(tmp_path, tls=certificates) as server:
        cli(server.port, "CONFIG", "SET", "requirepass", "another-password", tls=certificates)
        client = CLIENT.format(cert=certificates.client_cert, key=encrypted_client_key)
        url = f"rediss://:{MARK}@127.0.0.1:{server.port}/0?ssl_ca_certs={certificates.ca}&ssl_password={MARK}&{client}"
        status, shown = login_status(RedisStore(url), caplog)
        assert status == 503
        assert "WRONGPASS" in shown or "invalid" in shown  # the log says why
        assert MARK not in shown


@pytest.fixture(scope="module")
def tls_sentinels(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Any]:
    with running_sentinel_group(tmp_path_factory.mktemp("tls-sentinels"), tls=certificates) as group:
        yield group


@pytest.mark.servers
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("ssl_ca_certs={other}", id="data nodes and sentinels"),
        pytest.param("ssl_ca_certs={ca}&sentinel_ssl_ca_certs={other}", id="the sentinels only"),
        pytest.param("ssl_ca_certs={other}&sentinel_ssl_ca_certs={ca}", id="the data nodes only"),
        pytest.param("ssl_ca_certs={ca}&sentinel_ssl=no&socket_timeout=0.3", id="plaintext to TLS sentinels"),
    ],
)
def test_unverifiable_sentinel_group_is_a_503(
    tls_sentinels: Any,
    certificates: Certificates,
    other_ca: Certificates,
    query: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = tls_sentinels.url.split("?")[0]
    url = f"{base}?{query.format(ca=certificates.ca, other=other_ca.ca)}&sentinel_password={MARK}"
    status, shown = login_status(RedisStore(url), caplog)
    assert status == 503
    assert MARK not in shown


@pytest.mark.servers
def test_sentinel_store_with_its_own_settings_works_over_tls(
    tls_sentinels: Any, certificates: Certificates
) -> None:
    base = tls_sentinels.url.split("?")[0]
    url = (
        f"{base}?ssl_ca_certs={certificates.ca}&sentinel_ssl_ca_certs={certificates.ca}"
        "&sentinel_socket_timeout=0.5&sentinel_ssl_check_hostname=yes&min_replicas=1&wait_timeout=0.5"
    )
    store = RedisStore(url)
    try:
        store.set("alice", {"user": "alice"}, 60)
        assert store.get("alice") == {"user": "alice"}
        store.delete("alice")
        assert store.update("alice", {"user": "alice"}, 60) is False
    finally:
        store.close()


@pytest.mark.servers
def test_unverifiable_cluster_is_a_503(
    tmp_path: Path,
    certificates: Certificates,
    other_ca: Certificates,
    encrypted_client_key: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_redis_cluster(tmp_path, tls=certificates, replicas=0) as cluster:
        base = cluster.url.split("?")[0]
        client = CLIENT.format(cert=certificates.client_cert, key=encrypted_client_key)
        url = f"{base}?ssl_ca_certs={other_ca.ca}&ssl_password={MARK}&{client}"
        status, shown = login_status(RedisStore(url), caplog)
        assert status == 503
        assert MARK not in shown
        # The same cluster, verified: the refusal was the certificate, not the cluster.
        store = RedisStore(cluster.url)
        try:
            store.set("alice", {"user": "alice"}, 60)
            assert store.get("alice") == {"user": "alice"}
        finally:
            store.close()


# --- the sentinels' settings: which side gets what ----------------------------------------------------


def both_sides(url: str) -> tuple[Any, dict[str, Any], type]:
    """A Sentinel store's data node connection, and its sentinels' settings and connection class."""
    store = RedisStore(url)
    try:
        connection = store._client._connect()  # type: ignore[attr-defined]  # a thread's connection
        pool = connection.connection_pool.sentinel_manager.sentinels[0].connection_pool
        return connection, pool.connection_kwargs, pool.connection_class
    finally:
        store.close()


def test_sentinels_inherit_the_data_nodes_client_certificate_and_socket_settings(
    certificates: Certificates,
) -> None:
    import redis

    client = f"ssl_certfile={certificates.client_cert}&ssl_keyfile={certificates.client_key}"
    data, sentinel, sentinel_class = both_sides(
        f"RediSS+Sentinel://127.0.0.1:26379/sessions?ssl_ca_certs={certificates.ca}&{client}"
        "&ssl_check_hostname=no&socket_connect_timeout=0.7&socket_keepalive=no"
    )
    assert isinstance(data, redis.SSLConnection) and sentinel_class is redis.SSLConnection
    for name, value in [
        ("ssl_certfile", str(certificates.client_cert)),
        ("ssl_keyfile", str(certificates.client_key)),
        ("ssl_check_hostname", False),
        ("socket_connect_timeout", 0.7),
        ("socket_keepalive", False),
    ]:
        assert sentinel[name] == value, name


def test_sentinel_ssl_no_gives_the_sentinels_the_socket_settings_but_no_tls_ones(
    certificates: Certificates,
) -> None:
    import redis

    _, sentinel, sentinel_class = both_sides(
        f"rediss+sentinel://127.0.0.1:26379/sessions?ssl_ca_certs={certificates.ca}&socket_timeout=0.6"
        "&sentinel_ssl=no"
    )
    assert not issubclass(sentinel_class, redis.SSLConnection)
    assert sentinel["socket_timeout"] == 0.6
    assert not [name for name in sentinel if name.startswith("ssl")]


def test_each_side_gets_only_its_own_credentials() -> None:
    data, sentinel, _ = both_sides(
        "rediss+sentinel://app:data-pw@127.0.0.1:26379/sessions"
        "?sentinel_username=watcher&sentinel_password=sentinel-pw"
    )
    assert (data.username, data.password) == ("app", "data-pw")
    assert (sentinel["username"], sentinel["password"]) == ("watcher", "sentinel-pw")


def test_sentinel_password_with_escapes_reaches_the_sentinels_decoded_once() -> None:
    _, sentinel, _ = both_sides(
        "rediss+sentinel://127.0.0.1:26379/sessions?sentinel_password=a%2525b%26c%2Bd+e"
    )
    assert sentinel["password"] == "a%25b&c+d e"


def cluster_of(url: str) -> Any:
    """The (not yet connected) cluster client a Cluster URL makes."""
    import redis

    from shibwsgi.sessions.redis_ha import cluster_client

    return cluster_client(redis, url, "test")


@pytest.mark.parametrize("scheme", ["RediSS+Cluster", "REDISS+CLUSTER"])
def test_tls_cluster_scheme_in_any_case_speaks_tls(scheme: str) -> None:
    RedisStore(f"{scheme}://127.0.0.1:6379/").close()
    assert cluster_of(f"{scheme}://127.0.0.1:6379/")._settings["ssl"] is True


# --- no hang: a node that accepts and never speaks ----------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("rediss://127.0.0.1:{port}/0", id="plain"),
        pytest.param("rediss+sentinel://127.0.0.1:{port}/sessions", id="sentinel"),
        pytest.param("rediss+sentinel://127.0.0.1:{port}/sessions?sentinel_ssl=no", id="plaintext sentinel"),
        pytest.param("rediss+cluster://127.0.0.1:{port}/", id="cluster"),
    ],
)
def test_tls_handshake_with_a_silent_node_is_a_session_error_not_a_hang(silent_port: int, url: str) -> None:
    store = RedisStore(
        url.format(port=silent_port)
        + ("&" if "?" in url else "?")
        + "socket_connect_timeout=0.2&socket_timeout=0.2"
    )
    try:
        with pytest.raises(SessionError):
            store.get("alice")
    finally:
        store.close()


# --- the documented examples, as written -----------------------------------------------------------


def test_documented_tls_urls_work_with_real_files(certificates: Certificates) -> None:
    from pathlib import Path

    text = Path(__file__).parent.parent.joinpath("docs", "deployment.md").read_text()
    section = text.partition("### TLS")[2].partition("###")[0]
    urls = [
        line.partition("=")[2].strip("'")
        for line in section.splitlines()
        if line.startswith("SHIBWSGI_SESSION=")
    ]
    assert len(urls) >= 4
    for url in urls:
        real = (
            url.replace("/etc/ssl/redis-ca.pem", str(certificates.ca))
            .replace("/etc/ssl/app.pem", str(certificates.client_cert))
            .replace("/etc/ssl/private/app.key", str(certificates.client_key))
        )
        store_from_url(real).close()  # type: ignore[attr-defined]
        with pytest.raises(ConfigError):  # as written: the files are missing here
            store_from_url(url)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("rediss://127.0.0.1:6379/0?ssl_password=a&S3CR3T", id="ssl_password, bare tail"),
        pytest.param("rediss+sentinel://127.0.0.1:26379/svc?sentinel_password=a&S3CR3T=b", id="sentinel"),
        pytest.param("redis://127.0.0.1/0?password=a&S3CR3T=b&db=1", id="plain password, then a setting"),
        pytest.param("redis+cluster://127.0.0.1:7000/?password=a%26b&S3CR3T", id="after an escaped one"),
        pytest.param("rediss://127.0.0.1/0?sentinel_ssl_password=a&sentinel_S3CR3T=1", id="sentinel_ prefix"),
    ],
)
def test_password_holding_an_unescaped_ampersand_never_shows_its_tail(url: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError) as refused:
        RedisStore(url)
    assert "S3CR3T" not in str(refused.value)
    assert "%26" in str(refused.value)
    assert "S3CR3T" not in mask_url(url)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1/0?max_connections=2", id="one Redis"),
        pytest.param("redis+sentinel://127.0.0.1:26379/svc?max_connections=2", id="Sentinel"),
    ],
)
def test_max_connections_that_the_per_thread_connections_ignore_is_refused(url: str) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigError, match="max_connections has no effect"):
        RedisStore(url)
