"""Paths in one representation: the WSGI string, which carries the request's bytes.

PEP 3333 servers put the URL path in ``PATH_INFO`` as its raw bytes decoded as
latin-1, so ``/café`` arrives as ``"/caf\\xc3\\xa9"``. Every path the middleware
matches (rules, login, logout and other endpoints) is turned into that form once,
at construction, and compared with ``PATH_INFO`` as it comes: byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["PATH_SAFE", "script_name_url", "text_path", "wsgi_bytes", "wsgi_path"]

#: Characters a URL path keeps as they are (RFC 3986 ``pchar`` and ``/``, less ``%``).
PATH_SAFE = "/!$&'()*+,;=:@"

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


def wsgi_bytes(text: str) -> bytes:
    """The bytes a WSGI string (``PATH_INFO``, ``SCRIPT_NAME``, ...) carries as latin-1."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def script_name_url(environ: Mapping[str, Any]) -> str:
    """``SCRIPT_NAME`` as the start of a URL path: escaped, no trailing ``/``, ``""`` at the root.

    Never two leading slashes: ``//host/login`` would send the browser to another site.
    """
    script = wsgi_bytes(environ.get("SCRIPT_NAME", "") or "").strip(b"/")
    return "/" + quote(script, safe=PATH_SAFE) if script else ""
