"""Declarative authorization rules on the middleware, and sessions on a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, SSOMiddleware
from shibwsgi.authz import Check, HasAttribute, LoggedIn, Public, Rule
from shibwsgi.sessions import RedisStore
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

RULES = [
    Rule("/health", Public()),
    Rule("/api/movies", HasAttribute("groups", "movie-editors"), methods=["POST", "PUT", "DELETE"]),
    Rule("/admin", Check(lambda identity: identity.user.endswith("@example.org"), "an example.org account")),
    Rule("/", LoggedIn()),
]
EDITOR = environ_for("shibboleth", "ed@example.org", {"isMemberOf": ["staff", "movie-editors"]})
READER = environ_for("shibboleth", "rob@other.org", {"isMemberOf": ["staff"]})
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def app() -> TestApp:
    middleware = SSOMiddleware(
        echo_app, attributes={"groups": Attribute("isMemberOf", multi=True)}, rules=RULES
    )
    return TestApp(middleware)


@pytest.mark.parametrize(
    ("method", "path", "who", "headers", "status"),
    [
        pytest.param("GET", "/health", None, JSON, 200, id="public health check"),
        pytest.param("GET", "/api/movies", None, JSON, 401, id="anonymous API client 401"),
        pytest.param("GET", "/api/movies", None, HTML, 302, id="anonymous browser redirected"),
        pytest.param("GET", "/api/movies", READER, JSON, 200, id="reader reads"),
        pytest.param("POST", "/api/movies", READER, JSON, 403, id="reader cannot write"),
        pytest.param("DELETE", "/api/movies/1", READER, HTML, 403, id="reader cannot delete, HTML"),
        pytest.param("POST", "/api/movies", EDITOR, JSON, 200, id="editor writes"),
        pytest.param("PUT", "/api/movies/1", EDITOR, JSON, 200, id="editor updates"),
        pytest.param("GET", "/admin", READER, JSON, 403, id="callable requirement refuses"),
        pytest.param("GET", "/admin", EDITOR, JSON, 200, id="callable requirement allows"),
        pytest.param("GET", "/api/movies/../../admin", READER, JSON, 403, id="dot segments do not bypass"),
        pytest.param("GET", "//admin", READER, JSON, 403, id="double slash does not bypass"),
    ],
)
def test_rules_table(
    app: TestApp, method: str, path: str, who: dict[str, str] | None, headers: dict[str, str], status: int
) -> None:
    environ = {**(who or {}), "REQUEST_METHOD": method}
    response = app.get(path, headers=headers, extra_environ=environ, expect_errors=True)
    assert response.status_int == status
    if status == 302:
        assert response.location == "/login?next=%2Fapi%2Fmovies"
    if status in (401, 403) and headers is JSON:
        assert "error" in response.json
    if status == 403 and who is READER:
        assert "staff" not in response.text


def test_refusal_names_the_requirement_not_the_users_values(app: TestApp) -> None:
    response = app.post_json("/api/movies", {}, headers=JSON, extra_environ=READER, status=403)
    assert "movie-editors" in response.json["error"]
    assert "rob@other.org" not in response.text


@pytest.mark.servers
def test_lazy_login_with_redis_sessions(redis_url: str) -> None:
    store = RedisStore(redis_url)
    try:
        options: dict[str, Any] = {"session": store, "secret_key": "r" * 32, "rules": [Rule("/", LoggedIn())]}
        app = TestApp(SSOMiddleware(echo_app, **options), extra_environ={"wsgi.url_scheme": "https"})
        app.get("/page", headers=JSON, status=401)
        app.get("/login", {"next": "/page"}, extra_environ=READER, status=302)
        assert app.get("/page", headers=JSON).json["identity"]["user"] == "rob@other.org"
        # A second application process sharing the store sees the same session.
        other = TestApp(SSOMiddleware(echo_app, **options), extra_environ={"wsgi.url_scheme": "https"})
        other.set_cookie("__Host-shibwsgi", app.cookies["__Host-shibwsgi"])
        assert other.get("/page", headers=JSON).json["identity"]["user"] == "rob@other.org"
        app.get("/logout", status=302)
        assert other.get("/page", headers=JSON, expect_errors=True).status_int == 401
    finally:
        store.close()
