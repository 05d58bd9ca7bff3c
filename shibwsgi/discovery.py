"""Finding the :class:`~shibwsgi.SSOMiddleware` inside a wrapped application.

Test clients and the Flask helpers need the middleware's profile and paths;
wrappers keep the app they wrap under a handful of conventional attribute names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .middleware import SSOMiddleware

__all__ = ["find_middleware", "find_wrapped"]

T = TypeVar("T")

#: Attributes through which wrappers commonly reach the app they wrap (Werkzeug's
#: ProxyFix and the development front end: ``app``; Flask: ``wsgi_app``).
_WRAPPED = ("app", "wsgi_app", "application", "__wrapped__")
_MAX_DEPTH = 8


def find_middleware(app: object) -> SSOMiddleware | None:
    """The :class:`~shibwsgi.SSOMiddleware` in ``app``, or ``None``.

    Looks through wrappers that keep the wrapped app as ``app``, ``wsgi_app``,
    ``application`` or ``__wrapped__`` (a Flask app whose ``wsgi_app`` was
    wrapped, ProxyFix, :class:`~shibwsgi.testing.DevFrontEnd`), a few levels deep.
    """
    return find_wrapped(app, SSOMiddleware, _WRAPPED, _MAX_DEPTH)


def find_wrapped(
    app: object,
    kind: type[T],
    wrapped: tuple[str, ...],
    depth: int,
    opening: Callable[[object], None] | None = None,
) -> T | None:
    """The first ``kind`` found in ``app`` through the attributes named ``wrapped``.

    Breadth first, ``depth`` levels at most, each object looked at once;
    ``opening(candidate)`` runs before a candidate's attributes are read.
    """
    layer: list[object] = [app]
    seen: set[int] = set()
    for _ in range(depth):
        following: list[object] = []
        for candidate in layer:
            if isinstance(candidate, kind):
                return candidate
            if id(candidate) in seen:
                continue
            seen.add(id(candidate))
            if opening is not None:
                opening(candidate)
            following.extend(
                inner for name in wrapped if (inner := getattr(candidate, name, None)) is not None
            )
        layer = following
    return None
