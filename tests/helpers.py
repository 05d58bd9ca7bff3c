"""Small WSGI apps and helpers shared by the fast tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from shibwsgi import Identity, SSOMiddleware

#: The address of the trusted proxy in the header-profile tests (``trusted_proxies=["10.0.0.0/24"]``).
PROXY = "10.0.0.5"


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


def b64(document: object) -> str:
    """Standard, padded base64 of UTF-8 JSON, as kong-oidc and App Service send it
    (``ngx.encode_base64(cjson.encode(...))``); a str is taken as the JSON text itself."""
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)
    return base64.b64encode(text.encode()).decode()


def principal(*claims: tuple[str, object], **extra: object) -> str:
    """An ``X-MS-CLIENT-PRINCIPAL`` value: base64 of ``{auth_typ, claims: [{typ, val}], ...}``."""
    return b64({"auth_typ": "aad", "claims": [{"typ": typ, "val": val} for typ, val in claims], **extra})


def call(
    environ: dict[str, str], headers: dict[str, str] | None = None, **options: Any
) -> tuple[int, dict[str, Any]]:
    """Status and :func:`echo_app`'s answer for one GET from :data:`PROXY` through ``SSOMiddleware(**options)``."""
    from webtest import TestApp  # here: a -W error run imports this module before WebOb's warning is filtered

    app = TestApp(SSOMiddleware(echo_app, **options))
    extra = {"REMOTE_ADDR": PROXY, **environ}
    response = app.get("/", headers=headers or {}, extra_environ=extra, expect_errors=True)
    return response.status_int, response.json


def user_of(environ: dict[str, str], **options: Any) -> str | None:
    """The user :func:`call` got (``None``: anonymous); the request must succeed."""
    status, body = call(environ, **options)
    assert status == 200, body
    return body["identity"]["user"] if body["identity"] else None
