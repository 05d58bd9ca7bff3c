"""Internal: paths in one representation: the WSGI string, which carries the request's bytes.

PEP 3333 servers put the URL path in ``PATH_INFO`` as its raw bytes decoded as
latin-1, so ``/café`` arrives as ``"/caf\\xc3\\xa9"``. Every path the middleware
matches (rules, login, logout and other endpoints) is turned into that form once,
at construction, and compared with ``PATH_INFO`` as it comes: byte for byte.
A path is also read the ways other servers read it (:func:`resolved`,
:func:`readings`, :func:`folded`) so that no spelling slips past a rule.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "PATH_SAFE",
    "folded",
    "has_control_character",
    "odd_dot_segment",
    "readings",
    "request_path",
    "resolved",
    "script_root",
    "text_path",
    "wsgi_bytes",
    "wsgi_path",
]

#: Characters a URL path keeps as they are (RFC 3986 ``pchar`` and ``/``, less ``%``).
PATH_SAFE = "/!$&'()*+,;=:@"
_QUERY_SAFE = "/!$&'()*+,;=:@?%"
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# C0 controls and DEL: no route has them; "/admin\n" must not be a path other than "/admin".
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Path parameters: Tomcat and Jetty route "/admin;x" as "/admin" and "/public/..;/admin" as "/admin".
_PARAMETERS = re.compile(r";[^/]*")
# NTFS stream names: IIS serves "/admin::$DATA" as "/admin".
_STREAM = re.compile(r":[^/]*")


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


def script_root(environ: WSGIEnvironment) -> str:
    """``SCRIPT_NAME`` as the start of a URL path: escaped, no trailing ``/``, ``""`` at the root.

    Never two leading slashes: ``//host/login`` would send the browser to another site.
    """
    script = wsgi_bytes(environ.get("SCRIPT_NAME", "") or "").strip(b"/")
    return "/" + quote(script, safe=PATH_SAFE) if script else ""


def request_path(environ: WSGIEnvironment) -> str:
    """The request's site path and query, URL-quoted as the browser sent them (for ``next``)."""
    path = quote(wsgi_bytes(environ.get("PATH_INFO", "") or "/"), safe=PATH_SAFE)
    query = _STRAY_PERCENT.sub("%25", quote(wsgi_bytes(environ.get("QUERY_STRING", "")), safe=_QUERY_SAFE))
    return script_root(environ) + path + (f"?{query}" if query else "")


def has_control_character(path: str) -> bool:
    """True when ``path`` holds a C0 control character or DEL (a decoded ``%00``-``%1F``, ``%7F``)."""
    # A printable string holds none: one C-level test settles the usual path before the search.
    return not path.isprintable() and _CONTROL.search(path) is not None


def resolved(path: str) -> str:
    """``path`` with ``//`` collapsed and ``.``/``..`` resolved, as most servers route it."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path  # nothing to collapse or resolve: the common case, without normpath
    collapsed = posixpath.normpath("/" + path)
    collapsed = "/" + collapsed.lstrip("/")
    if path.endswith("/") and collapsed != "/":
        collapsed += "/"
    return collapsed


def readings(path: str) -> list[str]:
    """``path`` as each kind of server may read it: as it is, without ``;`` path parameters
    (Tomcat, Jetty), without NTFS stream names and the dots and spaces that end a segment
    (Windows, IIS), and both.

    Segments made of dots and spaces only are left as they are (see :func:`odd_dot_segment`).
    """
    without_parameters = _PARAMETERS.sub("", path)
    return list(dict.fromkeys([path, without_parameters, _trimmed(path), _trimmed(without_parameters)]))


def odd_dot_segment(path: str) -> bool:
    """True when a segment of ``path`` is dots and spaces only but not ``.`` or ``..``
    (``...``, ``.. ``), ignoring parameters and stream names: servers disagree on those."""
    segments = (_STREAM.sub("", segment) for segment in _PARAMETERS.sub("", path).split("/"))
    return any(segment and not segment.strip(". ") and segment not in (".", "..") for segment in segments)


def fold(text: str) -> str:
    """``text`` as a case-insensitive server compares it: compatibility forms (fullwidth
    letters, the Kelvin sign) as the letters they stand for, then case-folded.

    Upper-cased first: Windows and Java compare by upper case, where the dotless i
    (U+0131) is ``I``, which case-folding alone keeps apart from ``i``. The dotted
    capital I (U+0130) folds to ``i`` and a combining dot, and is ``i`` to Java.
    """
    upper = unicodedata.normalize("NFKC", text).upper()
    return unicodedata.normalize("NFKC", upper.casefold()).replace("i\u0307", "i")


def folded(path: str) -> str:
    """:func:`fold` of a path in the WSGI representation (IIS, a Windows or macOS disk).

    ``path`` must be UTF-8 (in the WSGI representation); raises ``UnicodeDecodeError`` if not.
    """
    return fold(path.encode("latin-1").decode("utf-8")).encode("utf-8").decode("latin-1")


def _trimmed(path: str) -> str:
    return "/".join(_windows_segment(segment) for segment in path.split("/"))


def _windows_segment(segment: str) -> str:
    bare = _STREAM.sub("", segment)
    if bare in (".", ".."):
        return bare
    return bare.rstrip(". ") or segment
