"""Internal: verification keys of a signing front end: fetched from its URL, cached, rotated.

Keys come only from the configured source, never from a URL a token names
(``jku``/``x5u``). Requests read an immutable snapshot of the keys without a
lock; a fetch runs outside the lock, one at a time, under one deadline for the
whole fetch, while requests whose key is cached go on. A ``kid`` that is not
cached may start a fetch at most once per ``refetch_interval`` (6 s: at most
ten a minute, as jwks-rsa allows); a ``kid`` a fetch did not find is remembered
for ``miss_ttl`` and starts none meanwhile (at most 1024 are remembered; a ``kid``
over 256 characters starts no fetch). With one key per URL (AWS ALB) each fetch
goes to the most requested pending ``kid``, so a flood of made-up ones cannot
starve a real new key.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import string
import threading
import time
import urllib.error
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from .errors import ConfigError
from .logs import log, loggable

__all__ = ["KID_PATTERN", "KeysUnavailable", "RemoteKeys", "StaticKeys", "http_get"]

K = TypeVar("K")

#: Longest key document accepted from a key URL.
MAX_DOCUMENT_BYTES = 1 << 20
#: Key ids substituted into a URL template (AWS ALB: ``.../<kid>``) must look like this.
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Longest ``kid`` that may start a fetch: a longer one not cached is unknown, never remembered.
MAX_KID_LENGTH = 256
#: Redirects followed per fetch (on the key URL's own origin only).
MAX_REDIRECTS = 3
#: Unknown kids remembered: those a fetch did not find, and those waiting for one.
MAX_REMEMBERED_KIDS = 1024
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
#: A URL's user part (``user:password@``), hidden in messages.
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")

#: Turns a fetched document into ``kid -> key``.
Loader = Callable[[bytes], Mapping[str | None, K]]
#: ``fetch(url, seconds)``: the document at ``url``, all of it within ``seconds``.
Fetch = Callable[[str, float], bytes]


class KeysUnavailable(Exception):
    """The key URL failed and no cached key fits."""


def http_get(url: str, timeout: float) -> bytes:
    """GET ``url`` within ``timeout`` seconds in all, redirects included.

    A server that drips its answer is cut at the deadline, not after each slow
    read. Redirects must stay on the URL's origin (scheme, host and port), so an
    https key URL is never downgraded. At most :data:`MAX_DOCUMENT_BYTES`.
    Raises ``OSError`` (``TimeoutError``), ``ValueError``, ``http.client.HTTPException``
    or ``urllib.error.HTTPError`` (any status but 200).
    """
    deadline = time.monotonic() + timeout
    origin = _origin(url)
    for _ in range(MAX_REDIRECTS + 1):
        location, document = _get(url, deadline, timeout)
        if location is None:
            return document
        target = urllib.parse.urljoin(url, location)
        if _origin(target) != origin:
            raise ValueError(f"the key URL redirected to another origin: {loggable(target)}")
        url = target
    raise ValueError(f"the key URL redirected more than {MAX_REDIRECTS} times")


def _get(url: str, deadline: float, timeout: float) -> tuple[str | None, bytes]:
    """One GET: ``(redirect location, b"")`` or ``(None, document)``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port or 443, timeout=_left(deadline, timeout), context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port or 80, timeout=_left(deadline, timeout))
    expired = threading.Event()
    timer: threading.Timer | None = None
    response: http.client.HTTPResponse | None = None
    try:
        connection.connect()
        # The socket timeout bounds each read; the timer bounds them all together.
        # The socket, not the connection: a response that closes the connection keeps reading it.
        timer = threading.Timer(_left(deadline, timeout), _cut, (connection.sock, expired))
        timer.daemon = True
        timer.start()
        target = parts.path or "/"
        connection.request("GET", f"{target}?{parts.query}" if parts.query else target, headers=_HEADERS)
        response = connection.getresponse()
        if response.status in _REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                raise ValueError(f"the key URL answered {response.status} without a Location")
            return location, b""
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, response.reason, response.headers, None)
        document = response.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout:g} s") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if response is not None:
            response.close()
        connection.close()
    if expired.is_set():  # a body without a length, cut short by the deadline
        raise TimeoutError(f"no complete answer within {timeout:g} s")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the key document is over {MAX_DOCUMENT_BYTES} bytes")
    return None, document


_HEADERS = {"Accept": "application/json, */*"}


def _left(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"no complete answer within {timeout:g} s")
    return left


def _cut(sock: socket.socket | None, expired: threading.Event) -> None:
    """At the deadline: wake the reading thread (shutdown, unlike close, interrupts a blocked read)."""
    expired.set()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def check_url(setting: str, url: object) -> str:
    """An https URL (plain http only to a loopback address), or ConfigError naming ``setting``."""
    if isinstance(url, str):
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError on a malformed port)
        except ValueError:
            parts = None
        secure = parts is not None and parts.scheme == "https"
        local = parts is not None and parts.scheme == "http" and _loopback(parts.hostname or "")
        if parts is not None and parts.hostname and (secure or local):
            if "{" in url or "}" in url:  # "{kd}" would be fetched literally
                _check_template(setting, url)
            return url
    raise ConfigError(
        setting,
        f"must be an https URL, not {_shown(url)}: keys fetched over plain http could be swapped on the way "
        "(http is accepted only to a loopback address)",
    )


def _check_template(setting: str, url: str) -> None:
    """A one-key-per-kid URL: ``{kid}`` in its path or query, and no other replacement field."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(url)]
    except ValueError:  # an unbalanced brace
        fields = [("", None, None)]
    named = [field for field in fields if field[0] is not None]
    if (
        not named
        or any(field != ("kid", "", None) for field in named)
        or "{kid}" in urllib.parse.urlsplit(url).netloc  # the token would choose the host
    ):
        raise ConfigError(
            setting,
            f"{_shown(url)}: a key URL template takes {{kid}} in its path and no other braces "
            "(AWS ALB: https://public-keys.auth.elb.<region>.amazonaws.com/{kid})",
        )


def _shown(url: object) -> str:
    """``url`` for an error message, without the password its user part may hold."""
    return repr(_USERINFO.sub("***@", url)) if isinstance(url, str) else type(url).__name__


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StaticKeys(Generic[K]):
    """Keys given in the configuration (``jwks=``): never fetched."""

    generation = 0
    stale = False

    def __init__(self, keys: Mapping[str | None, K]) -> None:
        self._keys = dict(keys)

    def __repr__(self) -> str:
        return f"StaticKeys(kids={sorted(map(str, self._keys))!r})"

    def get(self, kid: str | None) -> K | None:
        """The key for ``kid``; without a ``kid``, the only key when there is one."""
        return _pick(self._keys, kid)


class RemoteKeys(Generic[K]):
    """Keys fetched from ``url`` on first use, cached for ``max_age`` seconds.

    ``url`` is a key set (JWKS) URL, or a template with ``{kid}`` that serves one
    key per ``kid`` (AWS ALB). ``timeout`` bounds each fetch as a whole;
    ``refetch_interval`` spaces the fetches an unknown ``kid`` may start;
    ``miss_ttl`` is how long a ``kid`` a fetch did not find starts none.
    ``generation`` changes whenever a cached key is retired or replaced, so
    whoever caches verification results can drop them.
    """

    def __init__(
        self,
        url: str,
        load: Loader[K],
        *,
        setting: str = "jwks_url",
        timeout: float = 5.0,
        max_age: float = 3600.0,
        refetch_interval: float = 6.0,
        miss_ttl: float = 30.0,
        fetch: Fetch = http_get,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_url(setting, url)
        self.per_kid = "{kid}" in url
        self._load = load
        self._timeout = timeout
        self._max_age = max_age
        self._interval = refetch_interval
        self._miss_ttl = miss_ttl
        self._fetch = fetch
        self._clock = clock
        # Replaced, never changed in place: readers take no lock.
        self._keys: dict[str | None, K] = {}
        self._fetched_at: float | None = None  # last successful fetch of a key set
        self._next_fetch = float("-inf")  # no fetch starts before this
        self._failure: str | None = None
        self._fetching: str | bool | None = False  # the kid being fetched (True: the whole set)
        self._misses: OrderedDict[str | None, float] = OrderedDict()  # kid -> when a fetch missed it
        self._wanted: dict[str | None, int] = {}  # kid -> requests waiting for a fetch
        self._done = threading.Condition(threading.Lock())
        self.generation = 0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"RemoteKeys(url={self.url!r}, kids={sorted(map(str, self._keys))!r})"

    def get(self, kid: str | None) -> K | None:
        """The key for ``kid``, fetching when needed; ``None`` when the source has none.

        Raises :class:`KeysUnavailable` when the URL fails and no cached key fits.
        """
        key = _pick(self._keys, kid)
        if key is not None and not self.stale:
            return key
        if kid is not None and len(kid) > MAX_KID_LENGTH:
            return None  # remembered, a made-up kid would cost the memory of its length
        if self.per_kid and (kid is None or not KID_PATTERN.fullmatch(kid)):
            return None
        return self._fetched(kid, key)

    @property
    def stale(self) -> bool:
        """True when the key set is older than ``max_age`` and a refetch may start (the next lookup's)."""
        now = self._clock()
        return (
            self._fetched_at is not None
            and now - self._fetched_at > self._max_age
            and now >= self._next_fetch
        )

    def _fetched(self, kid: str | None, cached: K | None) -> K | None:
        """The key for ``kid`` after starting, awaiting or skipping a fetch."""
        with self._done:
            now = self._clock()
            if cached is None:
                key = _pick(self._keys, kid)
                if key is not None:
                    return key
                if self._missed(kid, now):
                    return self._unknown()
                self._want(kid)
            if self._fetching is not False:
                if cached is not None:
                    return cached  # a refresh is running: the cached key serves meanwhile
                if self._fetching is True or self._fetching == kid:
                    self._done.wait(self._timeout + 1)  # the fetch may bring this kid
                key = _pick(self._keys, kid)
                return key if key is not None else self._unknown()
            if now < self._next_fetch:
                return cached if cached is not None else self._unknown()
            target = self._choose(kid) if self.per_kid else None
            self._fetching = target if self.per_kid else True
            self._next_fetch = now + self._interval
            self.fetches += 1
        url = self.url.format(kid=target) if self.per_kid else self.url
        try:
            outcome: dict[str | None, K] | Exception = dict(self._load(self._fetch(url, self._timeout)))
        except Exception as exc:  # any failure of the IdP's endpoint is a 503, never a 500
            outcome = exc
        with self._done:
            try:
                if self.per_kid:
                    self._apply_one(url, target, outcome)
                else:
                    self._apply_set(url, outcome)
            finally:
                self._fetching = False
                self._done.notify_all()
            key = _pick(self._keys, kid)
            return key if key is not None else self._unknown()

    def _missed(self, kid: str | None, now: float) -> bool:
        missed_at = self._misses.get(kid)
        if missed_at is None:
            return False
        if now - missed_at < self._miss_ttl:
            return True
        del self._misses[kid]
        return False

    def _want(self, kid: str | None) -> None:
        wanted = self._wanted
        if kid not in wanted and len(wanted) >= MAX_REMEMBERED_KIDS:
            # The least wanted goes (the oldest among equals): a real new kid, asked for by
            # every request of its users, outlasts a flood of made-up ones asked for once each.
            del wanted[min(wanted, key=wanted.__getitem__)]
        wanted[kid] = wanted.get(kid, 0) + 1

    def _choose(self, kid: str | None) -> str | None:
        """The pending kid with the most requests (the oldest among equals)."""
        return max(self._wanted, key=self._wanted.__getitem__, default=kid)

    def _miss(self, kid: str | None, now: float) -> None:
        self._misses[kid] = now
        self._misses.move_to_end(kid)
        while len(self._misses) > MAX_REMEMBERED_KIDS:
            self._misses.popitem(last=False)

    def _unknown(self) -> K | None:
        """No key: ``None`` (a 401), or :class:`KeysUnavailable` (a 503) while the URL fails."""
        if self._failure is not None:
            raise KeysUnavailable(self._failure)
        return None

    def _apply_one(self, url: str, kid: str | None, outcome: dict[str | None, K] | Exception) -> None:
        """One key per URL: the key for ``kid`` joins the others."""
        if isinstance(outcome, urllib.error.HTTPError) and 400 <= outcome.code < 500:
            outcome = {}  # the key server does not know this kid: an unknown key, not an outage
        if isinstance(outcome, Exception):
            self._failed(url, outcome)
            return
        self._failure = None
        self._wanted.pop(kid, None)
        if not outcome:
            self._miss(kid, self._clock())
            return
        self._keys = {**self._keys, kid: next(iter(outcome.values()))}
        self._misses.pop(kid, None)
        log.info("key %s loaded from %s", kid, url)

    def _apply_set(self, url: str, outcome: dict[str | None, K] | Exception) -> None:
        """A key set replaces the previous one: a key removed upstream is retired here."""
        if isinstance(outcome, Exception):
            self._failed(url, outcome)
            return
        now = self._clock()
        old, self._keys = self._keys, outcome
        self._fetched_at, self._failure = now, None
        if any(outcome.get(kid) != key for kid, key in old.items()):
            self.generation += 1
        for kid in self._wanted:
            if kid not in outcome:
                self._miss(kid, now)
        self._wanted.clear()
        for kid in outcome:
            self._misses.pop(kid, None)
        if set(old) != set(outcome):
            log.info("keys from %s: %s", url, ", ".join(sorted(map(str, outcome))) or "none")

    def _failed(self, url: str, exc: Exception) -> None:
        self._failure = f"fetching keys from {url} failed: {loggable(exc)}"
        log.warning("%s; cached keys are kept", self._failure)


def _pick(keys: Mapping[str | None, K], kid: str | None) -> K | None:
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    return keys.get(kid)
