"""Flask helpers: ``current_identity``, ``login_required`` and ``requires``."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from webtest import TestApp

from shibwsgi.authz import Check, HasAttribute, LoggedIn
from shibwsgi.errors import ConfigError
from shibwsgi.flask import current_identity, get_identity, login_required, requires
from shibwsgi.identity import Identity

EDITOR = Identity("alice@example.org", {"groups": ("movie-editors",)})
VIEWER = Identity("bob@example.org", {"groups": ("staff",)})

HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


def _is_alice(identity: Identity) -> bool:
    return identity.user == "alice@example.org"


@pytest.fixture
def client() -> TestApp:
    app = Flask(__name__)

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        identity = get_identity()
        return {"user": None if identity is None else identity.user, "proxy": bool(current_identity)}

    @app.get("/movies")
    @login_required
    def movies() -> str:
        return f"movies for {current_identity.user}"  # type: ignore[attr-defined]

    @app.post("/movies")
    @requires(HasAttribute("groups", "movie-editors"))
    def add_movie() -> tuple[str, int]:
        return "added", 201

    @app.get("/movies/<int:movie_id>/secret")
    @requires(LoggedIn(), Check(_is_alice, "the user alice"))
    def secret(movie_id: int) -> str:
        return f"secret {movie_id}"

    return TestApp(app)


def _env(identity: Identity | None) -> dict[str, Any]:
    return {"shibwsgi.identity": identity, "shibwsgi.login_path": "/login"}


@pytest.mark.parametrize(
    ("method", "path", "identity", "headers", "status"),
    [
        pytest.param("GET", "/movies", EDITOR, HTML, 200, id="login_required/logged in"),
        pytest.param("GET", "/movies", None, HTML, 302, id="login_required/browser"),
        pytest.param("GET", "/movies", None, JSON, 401, id="login_required/api"),
        pytest.param("POST", "/movies", EDITOR, JSON, 201, id="requires/editor"),
        pytest.param("POST", "/movies", VIEWER, JSON, 403, id="requires/viewer api"),
        pytest.param("POST", "/movies", VIEWER, HTML, 403, id="requires/viewer browser"),
        pytest.param("POST", "/movies", None, JSON, 401, id="requires/anonymous api"),
        pytest.param("POST", "/movies", None, HTML, 302, id="requires/anonymous browser"),
        pytest.param("GET", "/movies/7/secret", EDITOR, JSON, 200, id="all of/alice"),
        pytest.param("GET", "/movies/7/secret", VIEWER, JSON, 403, id="all of/bob"),
        pytest.param("GET", "/movies/7/secret", None, JSON, 401, id="all of/anonymous"),
    ],
)
def test_status_table(
    client: TestApp,
    method: str,
    path: str,
    identity: Identity | None,
    headers: dict[str, str],
    status: int,
) -> None:
    response = client.request(
        path, method=method, headers=headers, environ=_env(identity), expect_errors=True
    )
    assert response.status_int == status


def test_login_redirect_carries_next(client: TestApp) -> None:
    response = client.get("/movies?page=2", headers=HTML, extra_environ=_env(None), status=302)
    assert response.headers["Location"] == "/login?next=%2Fmovies%3Fpage%3D2"


def test_forbidden_names_requirement(client: TestApp) -> None:
    response = client.get("/movies/7/secret", headers=JSON, extra_environ=_env(VIEWER), status=403)
    assert response.json["error"] == ("access denied: requires a logged-in user and the user alice")
    assert "bob" not in response.text


def test_view_receives_arguments_and_identity(client: TestApp) -> None:
    assert client.get("/movies/7/secret", extra_environ=_env(EDITOR)).text == "secret 7"
    assert client.get("/movies", extra_environ=_env(EDITOR)).text == ("movies for alice@example.org")


@pytest.mark.parametrize(
    ("identity", "user"),
    [
        pytest.param(EDITOR, "alice@example.org", id="logged in"),
        pytest.param(None, None, id="anonymous"),
        pytest.param("alice@example.org", None, id="spoofed non-Identity ignored"),
    ],
)
def test_current_identity(client: TestApp, identity: Any, user: str | None) -> None:
    # The proxy is never None itself; it is falsy when nobody is logged in.
    expected = {"user": user, "proxy": user is not None}
    assert client.get("/whoami", extra_environ=_env(identity)).json == expected


def test_decorators_preserve_view_name() -> None:
    def listing() -> str:
        """List movies."""
        return ""

    assert login_required(listing).__name__ == "listing"
    assert requires(LoggedIn())(listing).__doc__ == "List movies."


def test_requires_without_requirements_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        requires()


def test_requires_rejects_non_requirement() -> None:
    with pytest.raises(ConfigError):
        requires("movie-editors")  # type: ignore[arg-type]


def test_non_ascii_flask_route_cannot_be_bypassed() -> None:
    """The decorator guards the view whatever spelling of the path routes to it."""
    app = Flask(__name__)

    @app.get("/café/édition")
    @requires(HasAttribute("groups", "movie-editors"))
    def edit() -> str:
        return "edited"

    client = TestApp(app)
    for path in ("/caf%C3%A9/%C3%A9dition", "/caf%C3%A9/%C3%A9dition/", "//caf%C3%A9/%C3%A9dition"):
        response = client.get(path, headers=JSON, extra_environ=_env(VIEWER), expect_errors=True)
        assert response.status_int in (403, 404, 308), path
        assert response.text != "edited"
    assert client.get("/caf%C3%A9/%C3%A9dition", extra_environ=_env(EDITOR)).text == "edited"
    browser = client.get("/caf%C3%A9/%C3%A9dition?x=1", headers=HTML, extra_environ=_env(None), status=302)
    assert browser.headers["Location"] == "/login?next=%2Fcaf%25C3%25A9%2F%25C3%25A9dition%3Fx%3D1"
