"""Internal: the session cookie: a signed, opaque session id and nothing else.

Checking a signature is a pure function of the cookie text and the keys, so each
:class:`SessionCookie` (one key set) remembers the Cookie headers whose session
cookie it verified, with the id and the signing time; the age is still checked
against the clock on every request. A new key set is a new cache: a retired key
stops validating at once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, TimestampSigner
from werkzeug.http import dump_cookie

from .errors import ConfigError
from .lru import BoundedLRU

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["SessionCookie"]

#: Shortest secret key accepted: shorter ones can be guessed offline.
MIN_KEY_LENGTH = 16
#: Verified Cookie headers kept per worker (about one per active browser).
DEFAULT_CACHE_ENTRIES = 10_000
#: Their bytes: Cookie headers are at most 8 KB (Apache's LimitRequestFieldSize).
CACHE_BYTES = 4 * 1024 * 1024
_ENTRY_OVERHEAD = 300  # the id, the tuple, the dict slot


class SessionCookie:
    """Reads and writes the session cookie.

    ``secret_key`` may be a list, oldest to newest: the newest signs, all verify,
    so keys rotate without logging everyone out. A cookie older than ``max_age``
    seconds is refused whatever the store says.
    """

    def __init__(
        self,
        secret_key: str | Sequence[str],
        *,
        name: str | None,
        secure: bool,
        max_age: int,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        if isinstance(secret_key, str):
            keys = [secret_key]
        elif isinstance(secret_key, Sequence) and not isinstance(secret_key, (bytes, bytearray)):
            keys = list(secret_key)
        else:  # a set has no order, and the newest key must be the one that signs
            raise ConfigError(
                "secret_key",
                f"expected a string or a list of strings, oldest to newest, not {type(secret_key).__name__}",
            )
        if not keys or any(not isinstance(k, str) or len(k) < MIN_KEY_LENGTH for k in keys):
            raise ConfigError(
                "secret_key", f"needs one or more random strings of at least {MIN_KEY_LENGTH} characters"
            )
        if not isinstance(secure, bool):
            raise ConfigError("cookie_secure", "must be True or False")
        self.secure = secure
        self.name = name or ("__Host-shibwsgi" if secure else "shibwsgi")
        # Browsers match the prefixes in any case and drop such a cookie unless it is Secure.
        if self.name.lower().startswith(("__host-", "__secure-")) and not secure:
            raise ConfigError(
                "cookie_name",
                f"a {self.name.split('-')[0]}- cookie must be Secure (cookie_secure=True): "
                "browsers refuse it otherwise",
            )
        self.max_age = max_age
        self._signer = TimestampSigner(keys, salt="shibwsgi.session")
        #: Cookie header -> its verified (session id, signed at) pairs, in header order.
        self.verified: BoundedLRU[str, tuple[tuple[str, int], ...]] = BoundedLRU(
            max_entries=cache_entries, max_bytes=CACHE_BYTES
        )

    def __repr__(self) -> str:
        return f"SessionCookie(name={self.name!r}, secure={self.secure}, secret_key='***')"

    def read(self, environ: WSGIEnvironment) -> tuple[bool, str | None]:
        """Return (cookie present, valid session id or None).

        Only this cookie is read, so other cookies in the header (another app's, in
        any bytes) cannot break it. When the name occurs several times, the first
        value that verifies (and is not too old) wins.
        """
        header = environ.get("HTTP_COOKIE")
        if not header or self.name not in header:
            return False, None
        verified = self.verified.get(header)
        if verified is None:
            values = _values_named(header, self.name)
            if not values:
                return False, None
            verified = tuple(found for found in map(self._verify, values) if found is not None)
            if not verified:
                return True, None
            self.verified.put(header, verified, sys.getsizeof(header) + _ENTRY_OVERHEAD * len(verified))
        # itsdangerous's own rule and clock, so a cached cookie expires exactly like a fresh one.
        now = self._signer.get_timestamp()
        for session_id, signed_at in verified:
            if 0 <= now - signed_at <= self.max_age:
                return True, session_id
        return True, None

    def _verify(self, value: str) -> tuple[str, int] | None:
        """(session id, signed at) when ``value``'s signature checks out, else ``None``."""
        try:
            session_id, signed_at = self._signer.unsign(value, return_timestamp=True)
            return session_id.decode("ascii"), int(signed_at.timestamp())
        except (BadSignature, UnicodeError, ValueError):
            return None

    def set_header(self, session_id: str) -> tuple[str, str]:
        """``Set-Cookie`` carrying ``session_id``, for the browser's session only."""
        value = self._signer.sign(session_id).decode("ascii")
        return ("Set-Cookie", self._dump(value, max_age=None))

    def clear_header(self) -> tuple[str, str]:
        """``Set-Cookie`` that removes the cookie."""
        return ("Set-Cookie", self._dump("", max_age=0))

    def _dump(self, value: str, *, max_age: int | None) -> str:
        return dump_cookie(
            self.name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="Lax"
        )


def _values_named(header: str, name: str) -> list[str]:
    """The values of the cookies called ``name`` in a ``Cookie`` header (RFC 6265 syntax)."""
    values = []
    for pair in header.split(";"):
        key, equals, value = pair.partition("=")
        if equals and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values.append(value)
    return values
