"""The movie app as a newcomer meets it: editing on the page (CSRF-protected), errors, OPTIONS, start-up."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from app_fixtures import EDITOR_GROUP, SEED_TITLES, client, person, sso_app
from markupsafe import escape
from webtest import TestApp

from app import create_app, csrf
from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.testing import environ_for

ADA = ("ada@example.org", person("Ada Editor", "ada@example.org", [EDITOR_GROUP]))
BEN = ("ben@example.org", person("Ben Editor", "ben@example.org", [EDITOR_GROUP]))
ROB = ("rob@example.org", person("Rob Reader", "rob@example.org", ["staff"]))
HTML = {"Accept": "text/html"}

Login = Callable[..., TestApp]

#: Every request only editors may make on the pages.
EDITOR_REQUESTS = [
    pytest.param("POST", "/movies", id="add"),
    pytest.param("GET", "/movies/1/edit", id="edit page"),
    pytest.param("POST", "/movies/1/edit", id="edit"),
    pytest.param("POST", "/movies/1/delete", id="delete"),
]


@pytest.fixture
def wsgi_app(tmp_path: Path) -> SSOMiddleware:
    return sso_app(tmp_path / "movies.sqlite3")


@pytest.fixture
def login_as(wsgi_app: SSOMiddleware) -> Login:
    def make(who: tuple[str, dict[str, Any]] | None, **options: Any) -> TestApp:
        if who is None:
            return client(wsgi_app, None)
        return TestApp(wsgi_app, extra_environ=environ_for("shibboleth", *who, **options))

    return make


def titles(page: Any) -> list[str]:
    return re.findall(r'<td class="title">([^<]*)</td>', page.text)


def token_of(page: Any) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


# Editing on the page


def test_editor_adds_edits_and_deletes_with_the_forms(login_as: Login) -> None:
    ada = login_as(ADA)
    home = ada.get("/", headers=HTML)
    form = home.forms["add-movie"]  # the "Add a movie" form
    form["title"] = "Metropolis"
    form["director"] = "Fritz Lang"
    form["published"] = "1927"
    added = form.submit(headers=HTML, status=303).follow(headers=HTML)
    assert "Movie added." in added.text
    assert titles(added) == [*SEED_TITLES, "Metropolis"]
    movie = ada.get("/api/movies").json[-1]
    assert movie["created_by"] == "ada@example.org"
    assert (movie["director"], movie["main_actor"], movie["published"]) == ("Fritz Lang", None, 1927)

    edit_page = added.click(href=f"/movies/{movie['id']}/edit")
    edit_form = edit_page.forms["edit-movie"]
    assert edit_form["title"].value == "Metropolis"
    edit_form["main_actor"] = "Brigitte Helm"
    updated = edit_form.submit(headers=HTML, status=303).follow(headers=HTML)
    assert "Movie updated." in updated.text
    assert ada.get(f"/api/movies/{movie['id']}").json["main_actor"] == "Brigitte Helm"

    delete_form = next(f for f in updated.forms.values() if f.action == f"/movies/{movie['id']}/delete")
    deleted = delete_form.submit(headers=HTML, status=303).follow(headers=HTML)
    assert "Movie deleted." in deleted.text
    assert titles(deleted) == SEED_TITLES


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"title": " "}, "'title' must not be empty", id="blank title"),
        pytest.param({"title": "X", "published": "1492"}, "from 1870 to 2100", id="year out of range"),
        pytest.param({"title": "X", "published": "soon"}, "must be a year", id="year not a number"),
        pytest.param({"title": "X" * 501}, "longer than 500", id="title too long"),
    ],
)
def test_invalid_form_is_shown_again_with_the_reason(
    login_as: Login, fields: dict[str, str], message: str
) -> None:
    ada = login_as(ADA)
    form = ada.get("/", headers=HTML).forms["add-movie"]
    for name, value in fields.items():
        form[name] = value
    page = form.submit(headers=HTML, status=400)
    assert escape(message) in page.text
    assert page.forms["add-movie"]["title"].value == fields["title"]  # what was typed is kept
    assert titles(ada.get("/")) == SEED_TITLES


def test_invalid_edit_is_shown_again(login_as: Login) -> None:
    ada = login_as(ADA)
    form = ada.get("/movies/1/edit", headers=HTML).forms["edit-movie"]
    form["title"] = ""
    page = form.submit(headers=HTML, status=400)
    assert escape("'title' must not be empty") in page.text
    assert ada.get("/api/movies/1").json["title"] == SEED_TITLES[0]


def test_reader_sees_why_they_cannot_edit(login_as: Login) -> None:
    page = login_as(ROB).get("/", headers=HTML)
    assert "You can read, not edit" in page.text
    assert f"<code>{EDITOR_GROUP}</code>" in page.text
    assert "<form" not in page.text
    assert "/edit" not in page.text


@pytest.mark.parametrize(("method", "path"), EDITOR_REQUESTS)
def test_reader_is_refused_even_with_a_valid_token(login_as: Login, method: str, path: str) -> None:
    rob = login_as(ROB)
    token = token_of(login_as(ADA).get("/"))  # a token is no permission
    rob.request(
        path,
        method=method,
        POST={"title": "X", "csrf_token": token} if method == "POST" else None,
        headers=HTML,
        status=403,
    )
    assert titles(rob.get("/")) == SEED_TITLES


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({}, id="no token"),
        pytest.param({"csrf_token": ""}, id="empty token"),
        pytest.param({"csrf_token": "forged.token.value"}, id="made-up token"),
        pytest.param("ben", id="another editor's token"),
        pytest.param("other session", id="ada's token from another front-end session"),
    ],
)
@pytest.mark.parametrize("path", ["/movies", "/movies/1/edit", "/movies/1/delete"])
def test_cross_site_post_without_a_valid_token_is_refused(login_as: Login, forged: Any, path: str) -> None:
    ada = login_as(ADA, session_id="_ada-session-1")
    if forged == "ben":
        forged = {"csrf_token": token_of(login_as(BEN).get("/"))}
    elif forged == "other session":
        forged = {"csrf_token": token_of(login_as(ADA, session_id="_ada-session-2").get("/"))}
    response = ada.post(path, {"title": "Pwned", **forged}, headers=HTML, status=400)
    assert "reload it and try again" in response.text
    assert titles(ada.get("/")) == SEED_TITLES


def test_post_from_another_origin_is_refused_even_with_a_token(login_as: Login) -> None:
    ada = login_as(ADA)
    token = token_of(ada.get("/"))
    ada.post(
        "/movies/1/delete", {"csrf_token": token}, headers={"Origin": "https://evil.example"}, status=403
    )
    ada.post("/movies/1/delete", {"csrf_token": token}, headers={"Origin": "http://localhost"}, status=303)


@pytest.mark.parametrize(("method", "path"), EDITOR_REQUESTS)
def test_auth_request_answers_for_the_forms_as_the_views_do(tmp_path: Path, method: str, path: str) -> None:
    """nginx's auth_request in front of the pages asks the middleware's rules, not the views."""
    app = sso_app(tmp_path / "movies.sqlite3", {"SHIBWSGI_AUTH_PATH": "/_auth"})
    original = {"X-Original-URI": path, "X-Original-Method": method}
    answers = [
        TestApp(app, extra_environ=environ_for("shibboleth", *who) if who else {})
        .get("/_auth", headers=original, expect_errors=True)
        .status_int
        for who in (ADA, ROB, None)
    ]
    assert answers == [200, 403, 401]
    reader = TestApp(app, extra_environ=environ_for("shibboleth", *ROB))
    assert reader.get("/_auth", headers={**original, "X-Original-URI": "/"}).status_int == 200


def test_anonymous_form_post_goes_to_login(login_as: Login) -> None:
    response = login_as(None).post("/movies", {"title": "X"}, headers=HTML, status=302)
    assert response.headers["Location"].startswith("/login?next=")


def test_token_survives_a_restart_and_is_shared_by_workers(tmp_path: Path) -> None:
    # Every worker process builds its own app from the same database: one key for all.
    first, second = sso_app(tmp_path / "m.sqlite3"), sso_app(tmp_path / "m.sqlite3")
    ada = environ_for("shibboleth", *ADA, session_id="_ada-session")
    browser = TestApp(first, extra_environ=ada)
    token = token_of(browser.get("/"))
    elsewhere = TestApp(second, extra_environ=ada)
    elsewhere.set_cookie(csrf.COOKIE, browser.cookies[csrf.COOKIE])  # the same browser, another worker
    elsewhere.post("/movies/1/delete", {"csrf_token": token}, status=303)


# Tokens end with the login they were made in


def lazy_app(db_path: Path) -> Any:
    """Only /login is protected: the middleware's own session carries the identity (no session id)."""
    settings = {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": "k" * 32, "SHIBWSGI_COOKIE_SECURE": "0"}
    return sso_app(db_path, settings)


def test_token_without_a_front_end_session_id_dies_with_logout_and_login(tmp_path: Path) -> None:
    app = lazy_app(tmp_path / "m.sqlite3")
    browser = TestApp(app)
    browser.get("/login?next=/", extra_environ=environ_for("shibboleth", *ADA), status=302)
    token = token_of(browser.get("/"))
    browser.get("/logout", status=302)
    browser.get("/login?next=/", extra_environ=environ_for("shibboleth", *ADA), status=302)
    browser.post("/movies/1/delete", {"csrf_token": token}, status=400)
    fresh = token_of(browser.get("/"))
    browser.post("/movies/1/delete", {"csrf_token": fresh}, status=303)


@pytest.mark.parametrize("path", ["/login?next=/", "/logout"])
def test_login_and_logout_drop_the_forms_cookie(login_as: Login, path: str) -> None:
    ada = login_as(ADA)
    token_of(ada.get("/"))
    assert csrf.COOKIE in ada.cookies
    ada.get(path, status=302)
    assert csrf.COOKIE not in ada.cookies


def test_token_from_another_browser_of_the_same_user_is_refused(login_as: Login) -> None:
    """Without a front-end session id, a token bound to the user alone would work in any browser."""
    token = token_of(login_as(ADA).get("/"))
    victim = login_as(ADA)
    token_of(victim.get("/"))  # the victim's browser has its own cookie
    victim.post("/movies/1/delete", {"csrf_token": token}, status=400)
    assert titles(victim.get("/")) == SEED_TITLES


def test_forms_cookie_is_httponly_and_samesite(login_as: Login) -> None:
    response = login_as(ADA).get("/")
    cookie = next(value for value in response.headers.getall("Set-Cookie") if value.startswith(csrf.COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


def test_seed_movies_show_no_made_up_author(login_as: Login) -> None:
    page = login_as(ROB).get("/", headers=HTML).text
    assert "example" not in re.sub(r"[\w.]+@example\.org", "", page)
    assert 'title="in the database from the start">—<' in page


def test_page_has_its_stylesheet(login_as: Login) -> None:
    page = login_as(ROB).get("/", headers=HTML)
    assert '<link rel="stylesheet" href="/static/pages.css">' in page.text
    css = login_as(ROB).get("/static/pages.css")
    assert css.content_type == "text/css"


# One error shape, OPTIONS


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        pytest.param(None, "GET", "/api/movies", 401, id="middleware-style 401"),
        pytest.param(ROB, "POST", "/api/movies", 403, id="not an editor"),
        pytest.param(ADA, "GET", "/api/movies/999", 404, id="app 404"),
        pytest.param(ADA, "PATCH", "/api/movies/1", 405, id="app 405"),
        pytest.param(ADA, "POST", "/api/movies", 415, id="app 415"),
    ],
)
def test_every_json_error_has_one_shape(
    login_as: Login, who: Any, method: str, path: str, status: int
) -> None:
    response = login_as(who).request(path, method=method, body=b"x", status=status)
    assert response.content_type == "application/json"
    assert set(response.json) == {"error", "status"}
    assert response.json["status"] == status


@pytest.mark.parametrize("who", [pytest.param(None, id="anonymous"), pytest.param(ROB, id="reader")])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        pytest.param("/api/movies", {"GET", "HEAD", "OPTIONS", "POST"}, id="collection"),
        pytest.param("/api/movies/1", {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}, id="one movie"),
    ],
)
def test_options_is_204_with_allow_and_no_body(
    login_as: Login, who: Any, path: str, allowed: set[str]
) -> None:
    response = login_as(who).options(path, status=204)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed
    assert response.body == b""
    assert "Content-Type" not in response.headers


# Start-up


def test_database_that_cannot_be_opened_names_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "movies.sqlite3"
    with pytest.raises(ConfigError) as caught:
        create_app({"DATABASE": str(missing)})
    assert caught.value.setting == "MOVIES_DB"
    assert str(missing) in str(caught.value)
    assert f"its folder {missing.parent} does not exist" in str(caught.value)


def test_every_token_of_a_first_page_shares_one_cookie(tmp_path: Path) -> None:
    """A page may hold several forms: each token it gets is bound to the one cookie it sets."""
    from itsdangerous import URLSafeTimedSerializer

    from shibwsgi import Identity

    flask_app = create_app({"DATABASE": str(tmp_path / "forms.sqlite3")})
    serializer: URLSafeTimedSerializer = flask_app.extensions["CSRF_SERIALIZER"]
    with flask_app.test_request_context("/"):
        tokens = [csrf.csrf_token(Identity(ADA[0])) for _ in range(3)]
        nonces = {serializer.loads(token)[-1] for token in tokens}
        response = flask_app.process_response(flask_app.response_class())
    assert len(nonces) == 1
    assert response.headers["Set-Cookie"].startswith(f"{csrf.COOKIE}={nonces.pop()};")
