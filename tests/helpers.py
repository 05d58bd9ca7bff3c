"""Small WSGI apps and helpers shared by the fast tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from shibwsgi import Identity


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer with what the middleware handed over: identity, REMOTE_USER, header keys."""
    identity: Identity | None = environ["shibwsgi.identity"]
    body = {
        "identity": identity.to_dict() if identity else None,
        "remote_user": environ.get("REMOTE_USER"),
        "http_keys": sorted(key for key in environ if key.startswith("HTTP_")),
    }
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Clock:
    """A clock for the middleware's ``clock=`` option that moves only when a test sets ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mojibake(text: str) -> str:
    """UTF-8 text as a WSGI server hands it over (PEP 3333: bytes decoded as latin-1)."""
    return text.encode("utf-8").decode("latin-1")


#: A roles table for :func:`table_roles`: user -> role names.
ROLES_TABLE: dict[str, list[str]] = {}


def table_roles(identity: Identity) -> list[str]:
    """A roles hook importable by name (``SHIBWSGI_ROLES=tests.helpers:table_roles``)."""
    return ROLES_TABLE.get(identity.user, [])
