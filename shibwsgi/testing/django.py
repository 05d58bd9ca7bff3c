"""Signing in Django's test clients, for settings-only mode (``shibwsgi.django.SSOMiddleware``).

::

    from shibwsgi.testing.django import force_identity

    def test_editor_sees_the_form(client):
        force_identity(client, "alice@example.org", {"isMemberOf": ["movie-editors"]})
        assert client.get("/movies/new").status_code == 200

The requests carry what the front end would send (:func:`~shibwsgi.testing.environ_for`), so
the middleware's trust gate and parser run as in production. Django's test clients ask for
``testserver``: add it to ``ALLOWED_HOSTS`` in the test settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.test import AsyncClient, Client

from .environ import environ_for

__all__ = ["clear_identity", "force_identity"]

#: Where the client remembers the keys :func:`force_identity` added to its defaults.
_ADDED = "_shibwsgi_identity_keys"
_HEADER = "HTTP_"


def force_identity(
    client: Client | AsyncClient,
    user: str = "alice@example.org",
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    *,
    profile: str = "shibboleth",
    **options: Any,
) -> dict[str, str]:
    """Make each following request of ``client`` come from ``user``, as ``profile``'s front end sends it.

    ``attributes`` and ``options`` are :func:`~shibwsgi.testing.environ_for`'s (``channel``,
    ``signer`` for a signed profile...). An :class:`~django.test.AsyncClient` (ASGI) carries
    request headers only: a profile's server variables are refused there with ``ValueError``.
    Returns the environ entries added.
    """
    environ = environ_for(profile, user, attributes, **options)
    if isinstance(client, AsyncClient):
        servers = sorted(key for key in environ if not key.startswith(_HEADER))
        if servers:
            raise ValueError(
                f"{profile!r} passes server variables ({', '.join(servers)}), which ASGI cannot carry: "
                'use Client (WSGI), or a header channel (channel="headers") or a signed profile'
            )
        # AsyncClient turns its defaults into header names (X_FORWARDED_USER -> x-forwarded-user).
        added = {key[len(_HEADER) :]: value for key, value in environ.items()}
    else:
        added = environ
    clear_identity(client)
    client.defaults.update(added)
    setattr(client, _ADDED, tuple(added))
    return environ


def clear_identity(client: Client | AsyncClient) -> None:
    """Undo :func:`force_identity`: the following requests carry no identity."""
    for key in getattr(client, _ADDED, ()):
        client.defaults.pop(key, None)
    setattr(client, _ADDED, ())
