"""Verification keys of a signing front end: fetched from its URL, cached, rotated.

Keys come only from the configured source, never from a URL a token names
(``jku``/``x5u``). A ``kid`` that is not cached triggers one refetch, at most
once per ``refetch_interval``, so a flood of made-up ``kid`` values cannot be
turned into a flood of requests to the identity provider.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from .errors import ConfigError
from .logs import log, loggable

__all__ = ["KID_PATTERN", "KeysUnavailable", "RemoteKeys", "StaticKeys"]

K = TypeVar("K")

#: Longest key document accepted from a key URL.
MAX_DOCUMENT_BYTES = 1 << 20
#: Key ids substituted into a URL template (AWS ALB: ``.../<kid>``) must look like this.
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: Turns a fetched document into ``kid -> key``, or ``kid`` (for a template URL) into the URL.
Loader = Callable[[bytes], Mapping[str | None, K]]
Fetch = Callable[[str, float], bytes]


class KeysUnavailable(Exception):
    """The key URL failed and no cached key fits."""


def http_get(url: str, timeout: float) -> bytes:
    """GET ``url``; at most :data:`MAX_DOCUMENT_BYTES`; raises ``OSError``/``ValueError``."""
    request = urllib.request.Request(url, headers={"Accept": "application/json, */*"})  # noqa: S310 (scheme checked at construction)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        document: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(document) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"the key document is over {MAX_DOCUMENT_BYTES} bytes")
    return document


def check_url(setting: str, url: object) -> str:
    """An http(s) URL, or ConfigError naming ``setting``."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ConfigError(setting, f"must be an http(s) URL, not {url!r}")
    return url


class StaticKeys(Generic[K]):
    """Keys given in the configuration (``jwks=``): never fetched."""

    generation = 0

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
    key per ``kid`` (AWS ALB). ``generation`` changes whenever the cached keys
    change, so whoever caches verification results can drop them.
    """

    def __init__(
        self,
        url: str,
        load: Loader[K],
        *,
        setting: str = "jwks_url",
        timeout: float = 5.0,
        max_age: float = 3600.0,
        refetch_interval: float = 60.0,
        fetch: Fetch = http_get,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_url(setting, url)
        self.per_kid = "{kid}" in url
        self._load = load
        self._timeout = timeout
        self._max_age = max_age
        self._interval = refetch_interval
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str | None, K] = {}
        self._fetched_at: float | None = None  # last successful fetch of a key set
        self._tried_at: float | None = None  # last attempt, successful or not
        self._failure: str | None = None
        self._lock = threading.Lock()
        self.generation = 0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"RemoteKeys(url={self.url!r}, kids={sorted(map(str, self._keys))!r})"

    def get(self, kid: str | None) -> K | None:
        """The key for ``kid``, fetching when needed; ``None`` when the source has none.

        Raises :class:`KeysUnavailable` when the URL fails and no cached key fits.
        """
        key = _pick(self._keys, kid)
        if key is not None and not self._stale():
            return key
        if self.per_kid and (kid is None or not KID_PATTERN.fullmatch(kid)):
            return None
        with self._lock:
            key = _pick(self._keys, kid)
            if (key is None or self._stale()) and self._may_fetch():
                self._refresh(kid)
                key = _pick(self._keys, kid)
            if key is None and self._failure is not None:
                raise KeysUnavailable(self._failure)
            return key

    def _stale(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at > self._max_age

    def _may_fetch(self) -> bool:
        return self._tried_at is None or self._clock() - self._tried_at >= self._interval

    def _refresh(self, kid: str | None) -> None:
        url = self.url.format(kid=kid) if self.per_kid else self.url
        self._tried_at = self._clock()
        self.fetches += 1
        try:
            loaded = dict(self._load(self._fetch(url, self._timeout)))
        except urllib.error.HTTPError as exc:
            if not (self.per_kid and 400 <= exc.code < 500):
                self._failed(url, exc)
                return
            loaded = {}  # the key server does not know this kid: an unknown key, not an outage
        except Exception as exc:  # any failure of the IdP's endpoint is a 503, never a 500
            self._failed(url, exc)
            return
        self._failure = None
        if self.per_kid:
            # One key per URL: the key for this kid joins the others. Only a miss spends the
            # refetch budget, so two real kids in a row both load.
            if not loaded:
                return
            self._keys[kid] = next(iter(loaded.values()))
            self._tried_at = None
        else:
            # A key set replaces the previous one: a key removed upstream is retired here.
            self._keys = loaded
            self._fetched_at = self._tried_at
        self.generation += 1
        log.info("keys from %s: %s", url, ", ".join(sorted(map(str, self._keys))) or "none")

    def _failed(self, url: str, exc: Exception) -> None:
        self._failure = f"fetching keys from {url} failed: {loggable(exc)}"
        log.warning("%s; cached keys are kept", self._failure)


def _pick(keys: Mapping[str | None, K], kid: str | None) -> K | None:
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    return keys.get(kid)
