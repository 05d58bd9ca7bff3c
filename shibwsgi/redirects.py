"""Internal: Open-redirect protection for ``next`` / return-to values.

A value supplied by the client is only ever used as a redirect target when it
is a path on this site: it starts with a single ``/``, is plain ASCII URL
syntax, and stays so however many times a later component percent-decodes it.
Everything else is replaced by a default the application chose.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from werkzeug.wsgi import get_host

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["MAX_LENGTH", "absolute_url", "safe_next"]

MAX_LENGTH = 2048
"""Longest value :func:`safe_next` accepts."""

# Percent-decoding rounds inspected; a value that still decodes after that is refused.
# Each round is a chance for some layer (proxy, framework, the app) to decode once more.
_DECODE_ROUNDS = 3

# RFC 3986 path, query and fragment characters (plus "[" "]", common in query keys).
# No space, no backslash, no control characters, nothing outside ASCII: the browser
# and every proxy agree on what such a string means.
_RAW = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

# Characters some parsers, IDNA mapping or a careless eye read as "/" or "\".
# Anything whose NFKC form contains a slash is caught separately.
_SLASH_LOOKALIKES = frozenset(
    "\u2044\u2215\u2216\u2571\u2572\u27cb\u27cd\u29f5\u29f8\u29f9\u3033\ufe68\uff0f\uff3c\u0337\u0338\u1735"
)
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def safe_next(value: str | None, default: str = "/") -> str:
    """Return ``value`` if it is a same-site path reference, else ``default``.

    Accepted values look like ``/movies?id=3#x``. Refused: absolute and
    scheme-relative URLs (also when only resolving ``.`` and ``..`` makes them
    so, as in ``/.//evil.example``), backslashes, control characters, non-ASCII
    characters, relative paths, values over :data:`MAX_LENGTH`, and anything
    whose percent-decoding (repeated up to three times) would turn it into one
    of those. ``default`` is trusted and returned as is.
    """
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        return default
    if not _RAW.fullmatch(value) or not _is_local(value):
        return default
    decoded = value
    for _ in range(_DECODE_ROUNDS):
        if not _ESCAPE.search(decoded):
            return value
        decoded = _decode(decoded)
        if not _is_local(decoded):
            return default
    return value if not _ESCAPE.search(decoded) else default


def absolute_url(environ: WSGIEnvironment, path: str) -> str:
    """Return ``path`` as an absolute URL on the request's own scheme and host.

    ``path`` must already pass :func:`safe_next` unchanged; ``ValueError``
    otherwise, or when the request has no usable host (werkzeug's
    :func:`~werkzeug.wsgi.get_host` rejects malformed ``Host`` headers).
    """
    if not path or safe_next(path, default="") != path:
        raise ValueError("not a same-site path")
    scheme = environ.get("wsgi.url_scheme")
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r}")
    host = get_host(environ)
    if not host:
        # "http://" + "" + "/x" would let a browser read the path as the host.
        raise ValueError("request has no usable host")
    return f"{scheme}://{host}{path}"


def _without_dot_segments(text: str) -> str:
    """The path part of ``text`` with ``.`` and ``..`` resolved (RFC 3986, 5.2.4)."""
    path = text.split("?", 1)[0].split("#", 1)[0]
    resolved: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if resolved:
                resolved.pop()
        elif segment != ".":
            resolved.append(segment)
    return "/" + "/".join(resolved)


def _decode(text: str) -> str:
    raw = unquote_to_bytes(text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Servers that decode as latin-1 (WSGI's PATH_INFO does) see C1 controls here.
        return raw.decode("latin-1")


def _is_local(text: str) -> bool:
    if not text.startswith("/") or text[1:2] in ("/", "\\"):
        return False
    if "/." in text and _without_dot_segments(text).startswith("//"):
        return False  # "/.//evil.example": a layer that resolves dot segments makes it off-site
    for char in text:
        if char == "\\" or char in _SLASH_LOOKALIKES:
            return False
        if char.isascii():
            if not char.isprintable():
                return False
            continue
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return False
        folded = unicodedata.normalize("NFKC", char)
        if "/" in folded or "\\" in folded:
            return False
    return True
