"""pytest plugin (registered by entry point): log in to your app without an IdP.

Define a ``wsgi_app`` fixture returning your application with
:class:`~shibwsgi.SSOMiddleware` inside; then ask for ``sso_client``::

    def test_me(sso_client):
        client = sso_client("zoe@example.org", {"displayName": "Zoë"})
        assert client.get("/api/me").json["user"] == "zoe@example.org"

Needs WebTest: ``pip install 'shibwsgi[testing]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .environ import environ_for

__all__ = ["sso_client", "sso_environ", "wsgi_app"]


@pytest.fixture
def wsgi_app() -> Any:
    """Your application: override this fixture (it may be parametrised)."""
    pytest.fail(
        "sso_client needs a wsgi_app fixture: define one in your conftest.py that returns "
        "your WSGI application wrapped in shibwsgi.SSOMiddleware",
        pytrace=False,
    )


@pytest.fixture
def sso_environ() -> Callable[..., dict[str, str]]:
    """The :func:`~shibwsgi.testing.environ_for` function."""
    return environ_for


@pytest.fixture
def sso_client(wsgi_app: Any) -> Callable[..., Any]:
    """Factory: a WebTest ``TestApp`` of ``wsgi_app`` over https, signed in as someone.

    ``sso_client(user="alice@example.org", attributes=None, *, login=False, **options)``:
    the front end's variables come from the profile, channel and user sources of the
    ``SSOMiddleware`` in ``wsgi_app``; ``login=True`` signs in once at the login path
    and then relies on the session cookie (the lazy style); ``sso_client(None)`` is
    anonymous. See :func:`shibwsgi.testing.client.sso_test_app`.
    """
    from .client import sso_test_app

    def make(*args: Any, **kwargs: Any) -> Any:
        return sso_test_app(wsgi_app, *args, **kwargs)

    return make
