"""Finding the :class:`~shibwsgi.SSOMiddleware` inside a wrapped application.

Test clients and the Flask helpers need the middleware's profile and paths;
wrappers keep the app they wrap under a handful of conventional attribute names.
"""

from __future__ import annotations

from .middleware import SSOMiddleware

__all__ = ["find_middleware"]

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
    layer: list[object] = [app]
    seen: set[int] = set()
    for _ in range(_MAX_DEPTH):
        following: list[object] = []
        for candidate in layer:
            if isinstance(candidate, SSOMiddleware):
                return candidate
            if id(candidate) in seen:
                continue
            seen.add(id(candidate))
            following.extend(
                inner for name in _WRAPPED if (inner := getattr(candidate, name, None)) is not None
            )
        layer = following
    return None
