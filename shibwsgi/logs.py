"""Internal: log lines that a client cannot forge.

Request-controlled text (paths, methods, peer addresses) is written with every
byte outside printable ASCII percent-escaped, so a ``\\r\\n`` in a path cannot
start a new log line and a terminal escape cannot reach the operator's screen.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["log", "log_refusal", "loggable", "loggable_path"]

log = logging.getLogger("shibwsgi")

#: Longest piece of request text written to a log line.
MAX_LOGGED = 300

# Printable ASCII but "%" itself, which escapes the rest.
_PATH_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


def loggable(value: object, *, limit: int | None = MAX_LOGGED) -> str:
    """Text for a log line: characters that are not printable become ``\\xNN`` escapes."""
    text = value if isinstance(value, str) else repr(value)
    if not text.isprintable():
        text = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
    return text if limit is None else _bounded(text, limit)


def loggable_path(value: object) -> str:
    """A WSGI path for a log line: bytes outside printable ASCII percent-escaped, as in a URL."""
    text = value if isinstance(value, str) else repr(value)
    if not (text.isascii() and text.isprintable() and "%" not in text and " " not in text):
        try:
            raw = text.encode("latin-1")  # WSGI strings carry the request's bytes
        except UnicodeEncodeError:
            raw = text.encode("utf-8", "backslashreplace")
        text = quote(raw, safe=_PATH_SAFE)
    return _bounded(text, MAX_LOGGED)


def log_refusal(environ: WSGIEnvironment, status: int, message: str) -> None:
    """Log that the middleware answered ``status`` itself, and why (``message`` names no values)."""
    method = loggable(environ.get("REQUEST_METHOD", "GET"))
    path = loggable_path(environ.get("PATH_INFO") or "/")
    log.warning("%s %s refused with %d: %s", method, path, status, loggable(message, limit=None))


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
