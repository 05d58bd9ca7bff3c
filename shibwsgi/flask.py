"""Flask helpers: the current identity and view decorators.

The only shibwsgi module that imports Flask (install the ``flask`` extra)::

    from shibwsgi.authz import HasAttribute
    from shibwsgi.flask import current_identity, login_required, requires

    @app.get("/movies")
    @login_required
    def movies():
        return f"hello {current_identity.user}"

    @app.post("/movies")
    @requires(HasAttribute("groups", "movie-editors"))
    def add_movie(): ...

Refusals are answered by :func:`shibwsgi.authz.deny`, exactly as path rules are.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, request
from werkzeug.local import LocalProxy

from .authz import AllOf, LoggedIn, Requirement, deny
from .errors import ConfigError
from .identity import Identity

__all__ = ["current_identity", "get_identity", "login_required", "requires"]

F = TypeVar("F", bound=Callable[..., Any])


def get_identity() -> Identity | None:
    """The current request's :class:`~shibwsgi.identity.Identity`, or ``None``."""
    identity = request.environ.get("shibwsgi.identity")
    return identity if isinstance(identity, Identity) else None


current_identity: LocalProxy[Identity | None] = LocalProxy(get_identity)
"""Proxy to :func:`get_identity`, for views and templates.

The proxy object itself is never ``None``: test it with ``if current_identity:``
(it is falsy when nobody is logged in), not ``is None``.
"""


def requires(*requirements: Requirement) -> Callable[[F], F]:
    """Decorate a view so it runs only when every one of ``requirements`` allows the user."""
    if not requirements:
        raise ConfigError("rules", "requires() needs at least one requirement")
    requirement = requirements[0] if len(requirements) == 1 else AllOf(*requirements)
    if not isinstance(requirement, Requirement):
        raise ConfigError("rules", f"requires() got {requirement!r}, not a requirement")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            identity = get_identity()
            if requirement.allows(identity):
                return view(*args, **kwargs)
            return current_app.response_class.from_app(
                lambda environ, start_response: deny(environ, start_response, identity, requirement),
                request.environ,
            )

        return cast(F, wrapper)

    return decorate


def login_required(view: F) -> F:
    """Decorate a view so it runs only for a logged-in user."""
    return requires(LoggedIn())(view)
