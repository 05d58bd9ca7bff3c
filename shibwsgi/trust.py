"""Internal: the trust gate: which channel identity may come from, and scrubbing lookalikes.

In the ``environ`` channel identity comes only from server variables, and every
client header that could pass for one of them is deleted before the app runs.
In the ``headers`` channel identity headers are believed only from a trusted
proxy (and, optionally, only with its shared secret); from anyone else they
are deleted and the request is anonymous. In the ``signed`` channel the
assertion header is kept for verification (its signature is the trust; with
``trusted_proxies``, only from those peers) and every other lookalike goes.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .errors import ConfigError
from .logs import loggable
from .parsing import channel_key

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["CHANNELS", "DEFAULT_SECRET_HEADER", "TrustGate"]

log = logging.getLogger("shibwsgi")

CHANNELS = ("environ", "headers")
#: The channel of signed profiles (chosen by the profile, not by the ``channel`` option).
SIGNED = "signed"
DEFAULT_SECRET_HEADER = "X-Shibwsgi-Proxy-Secret"  # noqa: S105 (a header name, not a secret)

#: Headers that downstream code commonly trusts as "the user": always scrubbed
#: from clients, whatever the profile reads.
COMMON_IDENTITY_HEADERS = ("Remote-User", "X-Remote-User", "X-Forwarded-User", "X-User")

#: How many distinct untrusted peers are remembered for the once-per-peer warning.
_WARNED_PEERS_LIMIT = 1024
#: How many environ keys found harmless are remembered: a browser and a front end send the
#: same few dozen on every request; beyond this many (made-up headers) new ones are checked
#: every time, as before.
_SAFE_KEYS_LIMIT = 512
#: How many peer addresses keep their trusted-or-not verdict.
_PEERS_REMEMBERED = 256

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse IP addresses / CIDR blocks, raising ConfigError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except (ValueError, TypeError, AttributeError):
            raise ConfigError("trusted_proxies", f"{value!r} is not an IP address or CIDR block") from None
    return tuple(networks)


class TrustGate:
    """Decides whether a request's identity variables may be read, scrubbing the rest."""

    def __init__(
        self,
        *,
        channel: str,
        variables: Iterable[str],
        read_keys: Iterable[str],
        owned_prefixes: Iterable[str],
        trusted_proxies: tuple[IPNetwork, ...] = (),
        proxy_secret: str | None = None,
        proxy_secret_header: str = DEFAULT_SECRET_HEADER,
        series_keys: Iterable[str] = (),
    ) -> None:
        self.channel = channel
        # mod_auth_mellon's <key>_0 .. <key>_N: read too, found by trying indexes.
        self._series_keys = frozenset(series_keys) if channel != "environ" else frozenset()
        self._trusted = trusted_proxies
        self._secret = proxy_secret.encode() if proxy_secret else None
        self._secret_key = channel_key(proxy_secret_header, "headers")
        names = {*variables, *COMMON_IDENTITY_HEADERS}
        self._lookalike_keys = frozenset(channel_key(name, "headers") for name in names)
        self._lookalike_prefixes = tuple(channel_key(prefix, "headers") for prefix in owned_prefixes)
        self._read_keys = frozenset(read_keys) if channel != "environ" else frozenset()
        # A signed assertion needs no trusted peer; listed proxies still narrow who may send it.
        self._any_peer = channel == SIGNED and not trusted_proxies
        self._warned: set[str] = set()
        self._warned_lock = threading.Lock()
        # Keys found harmless; the second set adds the identity keys a trusted proxy may send.
        self._safe_keys: set[str] = set()
        self._safe_from_proxy: set[str] = set(self._read_keys)
        # The proxies send from a few addresses: parse each once, not on every request.
        self._peer_trusted = functools.lru_cache(maxsize=_PEERS_REMEMBERED)(self._peer_in_networks)

    def __repr__(self) -> str:
        secret = "'***'" if self._secret else "None"
        proxies = [str(network) for network in self._trusted]
        return f"TrustGate(channel={self.channel!r}, trusted_proxies={proxies!r}, proxy_secret={secret})"

    @property
    def trusted_proxies(self) -> tuple[IPNetwork, ...]:
        """The networks whose identity headers are believed (headers channel)."""
        return self._trusted

    def is_identity_key(self, key: str) -> bool:
        """True when the environ ``key`` (``HTTP_...``) could carry identity or the proxy secret."""
        return (
            key == self._secret_key or key in self._lookalike_keys or key.startswith(self._lookalike_prefixes)
        )

    def admit(self, environ: WSGIEnvironment) -> bool:
        """Scrub ``environ``; True when its identity variables may be believed."""
        presented_secret = environ.pop(self._secret_key, None)
        if self.channel == "environ":
            self._scrub(environ)
            return True
        peer = str(environ.get("REMOTE_ADDR", ""))
        if (self._any_peer or self._peer_trusted(peer)) and self._secret_matches(presented_secret):
            self._scrub(environ, from_proxy=True)
            return True
        if self._scrub(environ):
            self._warn_once(peer)
        return False

    def _scrub(self, environ: WSGIEnvironment, *, from_proxy: bool = False) -> bool:
        """Delete identity lookalikes (a trusted proxy's own stay); True if any went."""
        # Whether a key is a lookalike depends on the key alone, so keys once found harmless
        # need no second look: the common request is one C-level subset test (the dict
        # already holds each key's hash). Only keys not seen before get the prefix pass.
        safe = self._safe_from_proxy if from_proxy else self._safe_keys
        if safe.issuperset(environ):
            return False
        doomed = []
        for key in environ.keys() - safe:
            if key in self._lookalike_keys or key.startswith(self._lookalike_prefixes):
                if not (from_proxy and self._read(key)):
                    doomed.append(key)
            elif len(self._safe_keys) < _SAFE_KEYS_LIMIT:
                self._safe_keys.add(key)
                self._safe_from_proxy.add(key)
        for key in doomed:
            del environ[key]
        return bool(doomed)

    def _read(self, key: str) -> bool:
        """True for a key the parser reads: one of its keys, or a series member
        ``<key>_<index>`` or count ``<key>_N``."""
        if key in self._read_keys:
            return True
        base, _, index = key.rpartition("_")
        counted = index == "N" or (index.isascii() and index.isdigit())
        return counted and base in self._series_keys

    def _peer_in_networks(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def _secret_matches(self, presented: object) -> bool:
        if self._secret is None:
            return True
        if not isinstance(presented, str):
            return False
        return hmac.compare_digest(presented.encode("latin-1", "replace"), self._secret)

    def _warn_once(self, peer: str) -> None:
        with self._warned_lock:
            if peer in self._warned or len(self._warned) >= _WARNED_PEERS_LIMIT:
                return
            self._warned.add(peer)
        log.warning(
            "identity headers from %s ignored: not a trusted proxy (or wrong proxy secret); "
            "the request is anonymous. If this peer is your proxy, add it to trusted_proxies.",
            loggable(peer) or "an unknown peer",
        )
