"""The WSGI middleware: the environ is the request's facts, the core decides.

The request path itself (profile -> trust gate -> parser -> roles -> session ->
rules) lives in :mod:`shibwsgi.core`; this shell only passes the environ in and
sends the core's answer, or calls the app with the identity published.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .core import ENVIRON_KEY, LOGIN_PATH_KEY, OPTION_DEFAULTS, Core, expose
from .errors import ConfigError
from .flows import Header
from .groups import expand_groups, shell_signature
from .settings import parse_settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_KEY", "LOGIN_PATH_KEY", "OPTION_DEFAULTS", "SSOMiddleware", "expose"]


class SSOMiddleware(Core):
    """Turn what the front end passed into ``environ["shibwsgi.identity"]`` and ``REMOTE_USER``.

    ``options`` are those of :class:`shibwsgi.core.Core`, as keywords or grouped
    (``sessions=Sessions(...)``, ``roles=Roles(...)``,
    ``signed_assertions=SignedAssertions(...)``, ``proxy_trust=ProxyTrust(...)``: see
    :mod:`shibwsgi.groups`); every one is validated here, once, and a bad one raises
    :class:`~shibwsgi.ConfigError` naming it. With a session store, the identity seen
    on ``login_path`` is kept in a server-side session so that only the login path
    needs protecting by the front end.
    """

    def __init__(self, app: WSGIApplication, **options: Any) -> None:
        if not callable(app):
            raise ConfigError("app", f"expected a WSGI callable, got {type(app).__name__}")
        super().__init__(**expand_groups(options))
        self.app = app

    @classmethod
    def from_mapping(
        cls, app: WSGIApplication, settings: Mapping[str, str], **overrides: Any
    ) -> SSOMiddleware:
        """Build from string settings named ``SHIBWSGI_*`` (other keys are ignored).

        Keyword ``overrides`` win over the settings.
        """
        return cls(app, **{**parse_settings(settings), **overrides})

    @classmethod
    def from_env(cls, app: WSGIApplication, **overrides: Any) -> SSOMiddleware:
        """Build from the process environment's ``SHIBWSGI_*`` variables."""
        return cls.from_mapping(app, os.environ, **overrides)

    def __repr__(self) -> str:
        store = type(self.sessions.store).__name__ if self.sessions else None
        return (
            f"<SSOMiddleware profile={self.profile.name!r} channel={self.channel!r} "
            f"session={store} app={self.app!r}>"
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        _, headers, answer = self.decide(environ)
        if answer is not None:
            return answer.send(start_response)
        if headers:
            start_response = adding(start_response, headers)
        return self.app(environ, start_response)


#: What ``inspect.signature`` shows: every option by name (the Flask extension checks by it).
SSOMiddleware.__signature__ = shell_signature(Core.__init__)  # type: ignore[attr-defined]


def adding(start_response: StartResponse, headers: list[Header]) -> StartResponse:
    """``start_response`` that appends ``headers`` to the app's."""

    def start_with_headers(status: str, response_headers: list[Header], exc_info: Any = None) -> Any:
        return start_response(status, [*response_headers, *headers], exc_info)

    return start_with_headers
