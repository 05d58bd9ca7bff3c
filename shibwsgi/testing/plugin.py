"""pytest plugin (registered by entry point): log in to your app without an IdP.

Define a ``wsgi_app`` fixture returning your application wrapped in
:class:`~shibwsgi.SSOMiddleware`; then ask for ``sso_client``::

    def test_me(sso_client):
        client = sso_client("zoe@example.org", {"displayName": "Zoë"})
        assert client.get("/api/me").json["user"] == "zoe@example.org"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from ..profiles import get_profile
from .environ import environ_for

__all__ = ["sso_client", "sso_environ"]


@pytest.fixture
def sso_environ() -> Callable[..., dict[str, str]]:
    """The :func:`~shibwsgi.testing.environ_for` function."""
    return environ_for


@pytest.fixture
def sso_client(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Factory: a WebTest ``TestApp`` of the ``wsgi_app`` fixture, logged in as someone.

    ``sso_client(user, attributes, **environ_for_options)``; ``sso_client(None)`` is
    an anonymous client. In the headers channel the requests come from 127.0.0.1, as
    from a proxy on the same machine: put it in the app's ``trusted_proxies``.
    """
    from webtest import TestApp

    app = request.getfixturevalue("wsgi_app")

    def make(
        user: str | None = "alice@example.org",
        attributes: Mapping[str, str | Iterable[str]] | None = None,
        **options: Any,
    ) -> TestApp:
        if user is None:
            return TestApp(app)
        profile = get_profile(options.pop("profile", "shibboleth"))
        extra = environ_for(profile, user, attributes, **options)
        if options.get("channel", profile.channel) == "headers":
            extra["REMOTE_ADDR"] = "127.0.0.1"
        return TestApp(app, extra_environ=extra)

    return make
