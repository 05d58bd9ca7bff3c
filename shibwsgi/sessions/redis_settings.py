"""Checks on the connection settings a Redis URL gives redis-py, made once at start-up.

redis-py reads ``?socket_timeout=nan`` or ``/-1`` without complaint and fails only when a
request connects: a timeout that is not a positive finite number raises ``ValueError`` or
``OverflowError`` from the socket (a 500, not a 503), ``0`` makes the socket non-blocking (every
request a 503), and a database outside Redis's range is refused by the server on every
request. A setting given twice is refused too: redis-py keeps the first, the Sentinel and
Cluster parser the last, and which one the operator meant is a guess. TLS settings are
tried at start-up as redis-py uses them at each connection: a CA or key file that is
missing, a key that is not its certificate's, or a cipher list or TLS version OpenSSL does not
know would otherwise fail every request (a 503, or a 500 for the version). A yes/no setting
must be a word every redis-py reads the same: it reads any word it does not know (``off`` in
older versions) as yes, so ``ssl_check_hostname=nope`` would quietly keep checking. A setting
redis-py wants as a Python object (``socket_keepalive_options``, ``credential_provider``,
``decode_responses``...) gets the URL's text, which fails at each connection (a 500 for some)
or reads as yes: refused. So are a FIFO or a device as a TLS file (reading it would hang
start-up or never end), an encoding Python does not know (a 500 at each request), and a
client name or read size Redis or the socket refuses.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import importlib.util
import inspect
import math
import os
import ssl
import stat
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_plus

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "DEFAULT_TIMEOUT",
    "bad_url",
    "check_query",
    "check_read_size",
    "check_settings",
    "has_blank",
    "socket_timeout",
    "with_timeouts",
]

#: Seconds: a longer socket wait is a hung worker, not a timeout.
MAX_TIMEOUT = 3600
#: Seconds, unless the URL says otherwise: a dead node costs a request at most this (twice).
DEFAULT_TIMEOUT = 1.0
#: Redis's database numbers are C ints (``databases`` in redis.conf bounds them further).
MAX_DB = 2**31 - 1
#: Bytes: redis-py allocates a buffer of socket_read_size for each read.
MAX_READ = 2**26
_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
#: redis-py's yes/no query settings, and the words its ``to_bool`` reads as each.
_YES_NO = (
    "socket_keepalive",
    "retry_on_timeout",
    "ssl_check_hostname",
    "ssl_validate_ocsp",
    "ssl_validate_ocsp_stapled",
    "legacy_responses",
)
_WORDS = {"1", "t", "true", "y", "yes", "0", "f", "false", "n", "no"}
#: redis-py's connection settings that take text; a URL gives any other one text too (a
#: number or yes/no setting is converted by redis-py's URL parser, and is no longer text).
_TEXT = {
    *("host", "path", "orig_host_address", "username", "password", "client_name", "lib_name"),
    *("lib_version", "encoding", "encoding_errors", "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs"),
    *("ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_password", "ssl_ciphers"),
}
_TLS_FILES = ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs")


def check_settings(kwargs: dict[str, Any], location: str) -> None:
    """Raise ``ConfigError`` unless redis-py's connection ``kwargs`` can work."""
    for name in _TIMEOUTS:
        value = kwargs.get(name)
        if value is not None and not (math.isfinite(value) and 0 < value < MAX_TIMEOUT):
            raise bad_url(location, f"{name} must be more than 0 and less than {MAX_TIMEOUT} seconds")
    db = kwargs.get("db", 0)
    if not 0 <= db <= MAX_DB:
        raise bad_url(location, f"the database must be a number from 0 to {MAX_DB}")
    port = kwargs.get("port")
    if port is not None and not 0 < port < 65536:
        raise bad_url(location, "the port must be a number from 1 to 65535")
    if has_blank(kwargs.get("host") or ""):
        raise bad_url(location, "the host name has a blank or a control character")
    _check_text(kwargs, location)
    if any(name.startswith("ssl_") for name in kwargs):
        _check_tls(kwargs, location)


def check_read_size(kwargs: dict[str, Any], location: str) -> None:
    """Raise ``ConfigError`` for a ``socket_read_size`` redis-py cannot use: called before a
    connection is made with it, which allocates its buffer (``MemoryError``, ``OverflowError``)."""
    size = kwargs.get("socket_read_size")
    if size is not None and not 0 < size <= MAX_READ:
        raise bad_url(location, f"socket_read_size must be a number of bytes from 1 to {MAX_READ}")


def _check_text(kwargs: dict[str, Any], location: str) -> None:
    """Raise ``ConfigError`` for a setting given as text that redis-py cannot use as such."""
    for name, value in kwargs.items():
        if isinstance(value, str) and name not in _TEXT:
            raise bad_url(
                location, f"{name} cannot be set in a URL: redis-py expects a Python value, not text"
            )
    for name, lookup in (("encoding", codecs.lookup), ("encoding_errors", codecs.lookup_error)):
        if kwargs.get(name) is not None:
            try:
                lookup(kwargs[name])
            except LookupError:
                raise bad_url(location, f"{name} is not one Python knows") from None
    if not all("!" <= char <= "~" for char in kwargs.get("client_name") or "!"):
        raise bad_url(location, "client_name may hold only ASCII letters, digits and signs, no blanks")


def _check_tls(kwargs: dict[str, Any], location: str) -> None:
    """Raise ``ConfigError`` unless the TLS context redis-py makes from ``kwargs`` can be made."""
    get = kwargs.get
    for name in _TLS_FILES:
        if get(name) is not None:
            with _failing(name, location):
                if not stat.S_ISREG(os.stat(kwargs[name]).st_mode):
                    raise ValueError("not a regular file (a FIFO or a device would hang or never end)")
    if get("ssl_ca_path") is not None and not os.path.isdir(kwargs["ssl_ca_path"]):
        raise bad_url(location, "ssl_ca_path must be a directory of CA certificates (OpenSSL's c_rehash)")
    _check_ocsp(kwargs, location)
    # redis-py drops these without a word: the operator meant something that does not happen.
    if get("ssl_check_hostname") and get("ssl_cert_reqs") == "none":
        raise bad_url(
            location, "ssl_check_hostname=yes does nothing with ssl_cert_reqs=none (no check at all)"
        )
    if get("ssl_password") is not None and not (get("ssl_certfile") or get("ssl_keyfile")):
        raise bad_url(
            location,
            "ssl_password is the client key's: it does nothing without ssl_certfile (and ssl_keyfile)",
        )
    context = ssl.create_default_context()
    if get("ssl_certfile") or get("ssl_keyfile"):
        with _failing("ssl_certfile and ssl_keyfile", location):
            if not get("ssl_certfile"):
                raise ValueError("ssl_keyfile needs ssl_certfile, the client certificate")
            # An empty password, not none: OpenSSL would ask for an encrypted key's on the terminal.
            context.load_cert_chain(kwargs["ssl_certfile"], get("ssl_keyfile"), get("ssl_password") or "")
            if get("ssl_password") is not None:
                with contextlib.suppress(ssl.SSLError):
                    context.load_cert_chain(kwargs["ssl_certfile"], get("ssl_keyfile"), "")
                    raise ValueError("ssl_password is given but the key is not encrypted: it does nothing")
    if any(get(name) is not None for name in ("ssl_ca_certs", "ssl_ca_path", "ssl_ca_data")):
        with _failing("ssl_ca_certs, ssl_ca_path and ssl_ca_data", location):
            context.load_verify_locations(get("ssl_ca_certs"), get("ssl_ca_path"), get("ssl_ca_data"))
    for name in ("ssl_include_verify_flags", "ssl_exclude_verify_flags"):
        # redis-py takes any attribute of ssl.VerifyFlags (__doc__...): a 500 at each connection.
        if not all(isinstance(flag, ssl.VerifyFlags) for flag in get(name) or ()):
            raise bad_url(location, f"{name} may hold only ssl's VERIFY_* flags, separated by commas")
    crl_checks = any(flag & ssl.VERIFY_CRL_CHECK_LEAF for flag in get("ssl_include_verify_flags") or ())
    if crl_checks and get("ssl_ca_path") is None and not context.cert_store_stats()["crl"]:
        # OpenSSL then refuses every server: "unable to get certificate CRL".
        raise bad_url(location, "ssl_include_verify_flags asks for CRL checks: put the CRLs in ssl_ca_certs")
    if get("ssl_min_version") is not None:
        with _failing("ssl_min_version", location):
            context.minimum_version = kwargs["ssl_min_version"]
    if get("ssl_ciphers"):
        with _failing("ssl_ciphers", location):
            context.set_ciphers(kwargs["ssl_ciphers"])


def _check_ocsp(kwargs: dict[str, Any], location: str) -> None:
    """Raise ``ConfigError`` unless redis-py's OCSP checks can run (at each connection they
    fail otherwise: a 503, or a 500 for a missing module or client key)."""
    direct, stapled = kwargs.get("ssl_validate_ocsp"), kwargs.get("ssl_validate_ocsp_stapled")
    if direct and stapled:
        raise bad_url(location, "give ssl_validate_ocsp or ssl_validate_ocsp_stapled, not both")
    needed = ("cryptography",) if direct else ("cryptography", "OpenSSL") if stapled else ()
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        setting = "ssl_validate_ocsp" if direct else "ssl_validate_ocsp_stapled"
        modules = {"cryptography": "cryptography", "OpenSSL": "pyOpenSSL"}
        raise bad_url(
            location, f"{setting} needs {', '.join(modules[name] for name in missing)}: pip install it"
        )
    if stapled and not (kwargs.get("ssl_certfile") and kwargs.get("ssl_keyfile")):
        # redis-py asks for the staple on a second connection made with the client's own files.
        raise bad_url(location, "ssl_validate_ocsp_stapled needs ssl_certfile and ssl_keyfile")


@contextlib.contextmanager
def _failing(names: str, location: str) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        raise bad_url(location, f"TLS with {names} fails: {exc}") from None


def has_blank(host: str) -> bool:
    """Whether a host name holds a blank or a control character (no resolver would find it)."""
    return any(char.isspace() or not char.isprintable() for char in host)


def with_timeouts(url: str) -> str:
    """``url`` with ``socket_timeout`` and ``socket_connect_timeout`` added where it has none.

    redis-py before 8 waits forever by default: a server that accepts connections and never
    answers (stopped, or across a half-open link) would hold every worker, not answer 503.
    """
    base, hash_, fragment = url.partition("#")
    given = {name for name, _ in parse_qsl(base.partition("?")[2], keep_blank_values=True)}
    added = "&".join(f"{name}={DEFAULT_TIMEOUT}" for name in _TIMEOUTS if name not in given)
    if not added:
        return url
    return base + ("&" if "?" in base else "?") + added + hash_ + fragment


def socket_timeout(url: str) -> float:
    """The ``socket_timeout`` a URL's connections get (checked by :func:`check_settings`)."""
    query = url.partition("#")[0].partition("?")[2]
    return float(dict(parse_qsl(query)).get("socket_timeout", DEFAULT_TIMEOUT))


def check_query(pairs: Iterable[tuple[str, str]], location: str, *, named: bool) -> None:
    """Raise ``ConfigError`` if a query setting is given more than once, or blank (redis-py
    drops it: ``?socket_timeout=`` from an unset variable would mean no timeout at all).

    ``named``: whether the error may name the setting (not when the "query" may be the end
    of a password holding a ``?``).
    """
    seen: set[str] = set()
    for name, value in pairs:
        shown = name if named else "a setting"
        if name in seen:
            raise bad_url(location, f"the query gives {shown} more than once")
        if not value:
            raise bad_url(location, f"the query gives {shown} no value")
        yes_no = name.removeprefix("sentinel_") in _YES_NO or name == "sentinel_ssl"
        if yes_no and value.lower() not in _WORDS:
            raise bad_url(location, f"{shown} must be true or false (or yes, no, 1, 0)")
        seen.add(name)


def bad_url(location: str, message: str) -> ConfigError:
    return ConfigError("session", f"bad Redis URL {location!r}: {message}")


@functools.cache
def known_settings() -> frozenset[str]:
    """Every query setting a Redis URL may give: redis-py's connection settings and the store's.
    Without redis-py, none (so nothing after a password counts as a setting)."""
    try:
        import redis
    except ImportError:
        return frozenset()
    names: set[str] = {"min_replicas", "wait_timeout", "ssl"}
    for kind in (redis.connection.AbstractConnection, redis.Connection, redis.SSLConnection):
        names.update(inspect.signature(kind.__init__).parameters)
    names.discard("self")
    names.discard("kwargs")
    return frozenset(names)


def password_runs_on(query: str) -> bool:
    """True when a field of ``query`` (no ``?``) right after a password is no known setting:
    the password may hold an ``&``, and what follows it would be shown as a setting."""
    after_password = False
    for field in query.split("&"):
        name, equals, value = field.partition("=")
        name = unquote_plus(name).lower()
        if after_password:
            setting = name.removeprefix("sentinel_")
            if not equals or setting not in known_settings():
                return True
        after_password = bool(equals and value) and "password" in name
    return False
