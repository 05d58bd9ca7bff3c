"""Paths in one representation: the WSGI string, which carries the request's bytes.

PEP 3333 servers put the URL path in ``PATH_INFO`` as its raw bytes decoded as
latin-1, so ``/café`` arrives as ``"/caf\\xc3\\xa9"``. Every path the middleware
matches (rules, login, logout and other endpoints) is turned into that form once,
at construction, and compared with ``PATH_INFO`` as it comes: byte for byte.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["request_path", "script_root", "text_path", "wsgi_path"]

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def wsgi_path(path: str) -> str:
    """``path`` (text, as the app's routes spell it) in the WSGI representation of ``PATH_INFO``.

    Raises ``ValueError`` for a percent-escape (servers decode those before
    ``PATH_INFO``, so a path written escaped would never match) and for text
    that is not encodable as UTF-8.
    """
    if _PERCENT_ESCAPE.search(path):
        raise ValueError("write the decoded path ('/café'), not its percent-escaped form")
    return path.encode("utf-8").decode("latin-1")


def text_path(path: str) -> str:
    """The inverse of :func:`wsgi_path`, for messages (undecodable bytes are escaped)."""
    return path.encode("latin-1", "replace").decode("utf-8", "backslashreplace")


_PATH_SAFE = "/!$&'()*+,;=:@"
_QUERY_SAFE = "/!$&'()*+,;=:@?%"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _wsgi_bytes(text: str) -> bytes:
    # WSGI strings carry the request's bytes as latin-1.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def script_root(environ: WSGIEnvironment) -> str:
    """Where the app is mounted (``SCRIPT_NAME``), URL-quoted, without a trailing slash."""
    return quote(_wsgi_bytes(environ.get("SCRIPT_NAME", "")).rstrip(b"/"), safe=_PATH_SAFE)


def request_path(environ: WSGIEnvironment) -> str:
    """The request's site path and query, URL-quoted as the browser sent them (for ``next``)."""
    path = quote(_wsgi_bytes(environ.get("PATH_INFO", "") or "/"), safe=_PATH_SAFE)
    query = _STRAY_PERCENT.sub("%25", quote(_wsgi_bytes(environ.get("QUERY_STRING", "")), safe=_QUERY_SAFE))
    return script_root(environ) + path + (f"?{query}" if query else "")
