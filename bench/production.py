"""The movie app's production middleware around any app, and the plain stateless one beside it.

:func:`production` builds the middleware with :func:`app.make_application`, exactly
as production does (from the environment): its rules and its roles hook on the
movie database (SQLite). Swapping its Flask app for :func:`bench.apps.bare` leaves
the middleware's cost, told apart from Flask's. :func:`plain` is the same profile
and attributes without rules or roles: :mod:`bench.protected` and
:mod:`bench.stateless` serve the bare app in each, :mod:`bench.inprocess` times both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from app import default_settings, make_application
from shibwsgi import SSOMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["plain", "production"]


def production(app: WSGIApplication, environ: Mapping[str, str] | None = None) -> SSOMiddleware:
    """``app`` inside the movie app's middleware, configured from ``environ`` (default ``os.environ``)."""
    middleware = make_application(environ)
    middleware.app = app
    return middleware


def plain(app: WSGIApplication, environ: Mapping[str, str] | None = None) -> SSOMiddleware:
    """``app`` inside a plain stateless middleware: the movie app's settings, no rules, no roles."""
    source = os.environ if environ is None else environ
    return SSOMiddleware.from_mapping(app, {**default_settings(source), **source})
