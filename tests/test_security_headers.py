"""Every answer the middleware (or the development front end) gives itself is nosniff and under a strict CSP.

Each answer path is listed once; the check reads the body too: a page's inline
``<style>`` must be allowed by its hash, and it may have no script at all.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from itsdangerous import TimestampSigner
from webtest import TestApp

from shibwsgi import Attribute, SSOMiddleware
from shibwsgi.authz import HasRole, LoggedIn, Rule
from shibwsgi.errors import SessionError
from shibwsgi.identity import Identity
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for
from shibwsgi.testing.client import HTTPS_ENVIRON
from shibwsgi.testing.frontend import DevFrontEnd
from shibwsgi.testing.signed import TestSigner
from tests.helpers import echo_app

KEY = "k" * 32
HTML = {"Accept": "text/html"}
LOOPBACK = {**HTTPS_ENVIRON, "REMOTE_ADDR": "127.0.0.1"}
RULES = [Rule("/admin", HasRole("admin")), Rule("/private", LoggedIn())]
ATTRIBUTES = {
    "email": Attribute("mail", required=True),
    "groups": Attribute("isMemberOf", multi=True, required=True, max_bytes=64),
}


def roles(identity: Identity) -> list[str]:
    if identity.user == "broken@example.org":
        raise RuntimeError("database down")
    return []


class BrokenStore(MemoryStore):
    def get(self, session_id: str) -> dict[str, Any] | None:
        raise SessionError("connection refused")


def middleware(**options: Any) -> SSOMiddleware:
    defaults: dict[str, Any] = {
        "attributes": ATTRIBUTES,
        "rules": RULES,
        "roles": roles,
        "whoami_path": "/whoami",
        "auth_path": "/_auth",
        "session": MemoryStore(),
        "secret_key": KEY,
    }
    return SSOMiddleware(echo_app, **{**defaults, **options})


def client(**options: Any) -> TestApp:
    return TestApp(middleware(**options), extra_environ=HTTPS_ENVIRON)


def person(user: str = "rob@example.org", **attributes: Any) -> dict[str, str]:
    values = {"mail": user, "isMemberOf": ["staff"], **attributes}
    return environ_for("shibboleth", user, {k: v for k, v in values.items() if v is not None})


def auth(uri: str, who: dict[str, str], **kwargs: Any) -> Any:
    headers = {"X-Original-URI": uri, "X-Original-Method": "GET", **kwargs.pop("headers", {})}
    return client().get("/_auth", headers=headers, extra_environ=who, **kwargs)


def store_down() -> Any:
    app = client(session=BrokenStore())
    app.set_cookie("__Host-shibwsgi", TimestampSigner(KEY, salt="shibwsgi.session").sign("some-id").decode())
    return app.get("/", status=503)


def signed_garbage() -> Any:
    signer = TestSigner("ES256")
    app = TestApp(
        SSOMiddleware(
            echo_app, profile="pomerium", jwks=signer.jwks, issuer=signer.issuer, audience=signer.audience
        ),
        extra_environ=HTTPS_ENVIRON,
    )
    return app.get("/", headers={"X-Pomerium-Jwt-Assertion": "a.b.c"}, status=401)


def front_end() -> TestApp:
    return TestApp(
        DevFrontEnd(middleware(), secret_key=KEY, protected_paths=["/private"]), extra_environ=LOOPBACK
    )


def front_end_signed_in() -> Any:
    app = front_end()
    app.post("/Shibboleth.sso/Login", {"user": "ada", "target": "/"})
    return app


ANSWERS: list[Any] = [
    # The middleware's refusals.
    pytest.param(lambda: client().get("/admin", extra_environ=person(), status=403), id="403 by a rule"),
    pytest.param(
        lambda: client().get("/admin", extra_environ=person(), headers=HTML, status=403), id="403 page"
    ),
    pytest.param(lambda: client().get("/private", status=401), id="401 to an API client"),
    pytest.param(lambda: client().get("/private", headers=HTML, status=302), id="302 to the login"),
    pytest.param(
        lambda: client().get("/", extra_environ=person(mail=None), status=403), id="403 missing attribute"
    ),
    pytest.param(
        lambda: client().get("/", extra_environ=person(isMemberOf=["g" * 100]), status=431),
        id="431 over a cap",
    ),
    pytest.param(
        lambda: client().get("/", extra_environ=person(isMemberOf=["g" * 100]), headers=HTML, status=431),
        id="431 page",
    ),
    pytest.param(
        lambda: client().get("/", extra_environ={**person(), "PATH_INFO": "/admin\n"}, status=400),
        id="400 control character",
    ),
    pytest.param(
        lambda: client().get("/", extra_environ=person("broken@example.org"), status=503), id="503 roles"
    ),
    pytest.param(store_down, id="503 session store"),
    pytest.param(signed_garbage, id="401 bad assertion"),
    # whoami.
    pytest.param(lambda: client().get("/whoami", extra_environ=person()), id="whoami JSON"),
    pytest.param(lambda: client().get("/whoami", extra_environ=person(), headers=HTML), id="whoami page"),
    pytest.param(lambda: client().get("/whoami", status=401), id="whoami 401"),
    pytest.param(lambda: client().post("/whoami", extra_environ=person(), status=405), id="whoami 405"),
    pytest.param(lambda: client().head("/whoami", extra_environ=person()), id="whoami HEAD"),
    # The auth_request endpoint.
    pytest.param(lambda: auth("/", person()), id="auth 200"),
    pytest.param(lambda: auth("/", {}, status=401), id="auth 401"),
    pytest.param(lambda: auth("/admin", person(), status=403), id="auth 403"),
    pytest.param(lambda: auth("/admin%0a", person(), status=400), id="auth 400"),
    pytest.param(lambda: client().post("/_auth", status=405), id="auth 405"),
    # Login and logout.
    pytest.param(lambda: client().get("/login", extra_environ=person(), status=302), id="login redirect"),
    pytest.param(lambda: client().get("/login", status="*"), id="login without a front-end identity"),
    pytest.param(lambda: client().get("/logout", extra_environ=person(), status=302), id="logout redirect"),
    # The development front end's own pages.
    pytest.param(lambda: front_end().get("/Shibboleth.sso/Login"), id="dev sign-in form"),
    pytest.param(lambda: front_end().head("/Shibboleth.sso/Login"), id="dev sign-in form HEAD"),
    pytest.param(
        lambda: front_end().post("/Shibboleth.sso/Login", {"user": "nobody"}, status=400),
        id="dev sign-in 400",
    ),
    pytest.param(
        lambda: front_end().post(
            "/Shibboleth.sso/Login", {"user": "ada"}, headers={"Origin": "https://evil.example"}, status=403
        ),
        id="dev sign-in cross-site 403",
    ),
    pytest.param(lambda: front_end().put("/Shibboleth.sso/Login", status=405), id="dev sign-in 405"),
    pytest.param(
        lambda: front_end().get("/", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=403),
        id="dev not loopback",
    ),
    pytest.param(lambda: front_end().get("/private", status=302), id="dev protected path redirect"),
    pytest.param(
        lambda: front_end().post("/Shibboleth.sso/Login", {"user": "ada", "target": "/"}),
        id="dev signed-in redirect",
    ),
    pytest.param(lambda: front_end().get("/Shibboleth.sso/Logout", status=302), id="dev logout redirect"),
]


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: values for name, *values in parsed}


@pytest.mark.parametrize("answer", ANSWERS)
def test_every_own_answer_is_nosniff_with_a_strict_policy(answer: Callable[[], Any]) -> None:
    response = answer()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "script-src" not in policy
    assert not any("unsafe" in value or value == "*" for values in policy.values() for value in values)
    body = response.text
    assert "<script" not in body
    assert not re.search(r"<[^>]+\son\w+=", body)  # no inline event handlers
    assert not re.search(r"<[^>]+\sstyle=", body)  # inline style attributes would be blocked
    for style in re.findall(r"<style>(.*?)</style>", body, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy["style-src"]
    if "<form" in body:
        assert policy["form-action"] == ["'self'"]
    else:
        assert policy["form-action"] in (["'none'"], ["'self'"])


def test_the_apps_own_answers_keep_their_headers() -> None:
    response = client().get("/", extra_environ=person())
    assert "Content-Security-Policy" not in response.headers
    assert "X-Content-Type-Options" not in response.headers
