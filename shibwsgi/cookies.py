"""The session cookie: a signed, opaque session id and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, TimestampSigner
from werkzeug.http import dump_cookie

from .errors import ConfigError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["SessionCookie"]

#: Shortest secret key accepted: shorter ones can be guessed offline.
MIN_KEY_LENGTH = 16


class SessionCookie:
    """Reads and writes the session cookie.

    ``secret_key`` may be a list, oldest to newest: the newest signs, all verify,
    so keys rotate without logging everyone out. A cookie older than ``max_age``
    seconds is refused whatever the store says.
    """

    def __init__(
        self, secret_key: str | Sequence[str], *, name: str | None, secure: bool, max_age: int
    ) -> None:
        keys = [secret_key] if isinstance(secret_key, str) else list(secret_key)
        if not keys or any(not isinstance(k, str) or len(k) < MIN_KEY_LENGTH for k in keys):
            raise ConfigError(
                "secret_key", f"needs one or more random strings of at least {MIN_KEY_LENGTH} characters"
            )
        if not isinstance(secure, bool):
            raise ConfigError("cookie_secure", "must be True or False")
        self.secure = secure
        self.name = name or ("__Host-shibwsgi" if secure else "shibwsgi")
        if self.name.startswith("__Host-") and not secure:
            raise ConfigError("cookie_name", "a __Host- cookie must be Secure (cookie_secure=True)")
        self.max_age = max_age
        self._signer = TimestampSigner(keys, salt="shibwsgi.session")

    def __repr__(self) -> str:
        return f"SessionCookie(name={self.name!r}, secure={self.secure}, secret_key='***')"

    def read(self, environ: WSGIEnvironment) -> tuple[bool, str | None]:
        """Return (cookie present, valid session id or None).

        Only this cookie is read, so other cookies in the header (another app's, in
        any bytes) cannot break it. When the name occurs several times, the first
        value that verifies wins.
        """
        header = environ.get("HTTP_COOKIE")
        if not header or self.name not in header:
            return False, None
        present = False
        for value in _values_named(header, self.name):
            present = True
            try:
                return True, self._signer.unsign(value, max_age=self.max_age).decode("ascii")
            except (BadSignature, UnicodeError, ValueError):
                continue
        return present, None

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
