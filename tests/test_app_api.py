"""The demo movie app in-process: API, authorization, validation, home page, wsgi.py."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from app_fixtures import EDITOR_GROUP, SEED_TITLES, client, person, sso_app
from webtest import TestApp

from app import create_app, make_application
from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.testing import environ_for

Client = Callable[..., TestApp]

ALICE = ("alice@example.org", person("Alice Editor", "alice@example.org", ["staff", EDITOR_GROUP]))
BEN = ("ben@example.org", person("Ben Editor", "ben@example.org", [EDITOR_GROUP]))
RITA = ("rita@example.org", person("Rita Reader", "rita@example.org", ["staff"]))
ZOE_GROUPS = [f"urn:mace:example.org:group:{number:03d}" for number in range(299)] + [EDITOR_GROUP]
ZOE = ("zoe@example.org", person("Zoë Müller", "zoë@example.org", ZOE_GROUPS))

HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "movies.sqlite3"


@pytest.fixture
def wsgi_app(db_path: Path) -> SSOMiddleware:
    return sso_app(db_path)


@pytest.fixture
def login_as(wsgi_app: SSOMiddleware) -> Client:
    """Factory: ``login_as(ALICE)`` or ``login_as(None)`` for an anonymous client."""

    def make(who: tuple[str, dict[str, Any]] | None) -> TestApp:
        return client(wsgi_app, None) if who is None else client(wsgi_app, *who)

    return make


@pytest.fixture
def editor(login_as: Client) -> TestApp:
    return login_as(ALICE)


@pytest.fixture
def reader(login_as: Client) -> TestApp:
    return login_as(RITA)


@pytest.fixture
def anonymous(login_as: Client) -> TestApp:
    return login_as(None)


def _error(response: Any) -> str:
    assert response.content_type == "application/json"
    message = response.json["error"]
    assert isinstance(message, str) and message
    return message


def _is_utc_iso(value: str) -> bool:
    moment = datetime.fromisoformat(value)
    return value.endswith("Z") and moment.utcoffset() == UTC.utcoffset(None)


# Reading


def test_new_database_holds_the_three_classic_movies(reader: TestApp) -> None:
    movies = reader.get("/api/movies").json
    assert [movie["title"] for movie in movies] == SEED_TITLES
    assert [(m["published"], m["director"], m["main_actor"]) for m in movies] == [
        (2012, "Gary Ross", "Jennifer Lawrence"),
        (2001, "Peter Jackson", "Elijah Wood"),
        (1997, "James Cameron", "Leonardo DiCaprio"),
    ]
    assert all(movie["created_by"] is None and _is_utc_iso(movie["created_at"]) for movie in movies)


def test_all_is_an_alias_of_the_list(reader: TestApp) -> None:
    assert reader.get("/api/movies/all").json == reader.get("/api/movies").json


def test_get_one_movie(reader: TestApp) -> None:
    movie = reader.get("/api/movies/3").json
    assert movie["id"] == 3
    assert movie["title"] == "Titanic"


@pytest.mark.parametrize(
    ("query", "status", "title"),
    [
        pytest.param("id=2", 200, SEED_TITLES[1], id="found"),
        pytest.param("id=999", 404, None, id="missing"),
        pytest.param("id=abc", 400, None, id="not a number"),
        pytest.param("id=-1", 400, None, id="negative"),
        pytest.param("id=", 400, None, id="empty"),
        pytest.param("id=9223372036854775807", 404, None, id="largest sqlite integer"),
        pytest.param("id=9223372036854775808", 404, None, id="past 64 bits"),
        pytest.param("id=" + "9" * 30, 400, None, id="far past 64 bits"),
    ],
)
def test_old_query_form(reader: TestApp, query: str, status: int, title: str | None) -> None:
    response = reader.get(f"/api/movies?{query}", expect_errors=True)
    assert response.status_int == status
    if title is None:
        _error(response)
    else:
        assert response.json["title"] == title


@pytest.mark.parametrize("movie_id", ["9223372036854775808", "18446744073709551616", "9" * 40])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_movie_id_past_64_bits_is_404_not_500(editor: TestApp, method: str, movie_id: str) -> None:
    response = editor.request(
        f"/api/movies/{movie_id}",
        method=method,
        body=b'{"title": "x"}',
        content_type="application/json",
        expect_errors=True,
    )
    assert response.status_int == 404
    _error(response)


# Writing


def test_editor_full_crud(editor: TestApp) -> None:
    created = editor.post_json(
        "/api/movies",
        {
            "title": "Amélie",
            "director": "Jean-Pierre Jeunet",
            "main_actor": "Audrey Tautou",
            "published": 2001,
        },
        status=201,
    )
    movie = created.json
    assert created.headers["Location"].endswith(f"/api/movies/{movie['id']}")
    assert editor.get(created.headers["Location"]).json == movie
    assert movie["title"] == "Amélie"

    changed = editor.put_json(f"/api/movies/{movie['id']}", {"main_actor": "Mathieu Kassovitz"}).json
    assert changed["main_actor"] == "Mathieu Kassovitz"
    assert editor.get(f"/api/movies/{movie['id']}").json == changed

    response = editor.delete(f"/api/movies/{movie['id']}", status=204)
    assert response.body == b""
    assert "Content-Type" not in response.headers
    assert editor.get(f"/api/movies/{movie['id']}", status=404).json["error"]
    assert [m["title"] for m in editor.get("/api/movies").json] == SEED_TITLES


def test_put_changes_only_the_given_fields(editor: TestApp) -> None:
    before = editor.get("/api/movies/2").json
    after = editor.put_json("/api/movies/2", {"director": "P. Jackson", "published": None}).json
    assert after["director"] == "P. Jackson"
    assert after["published"] is None
    unchanged = ("id", "title", "main_actor", "created_by", "created_at")
    assert {key: after[key] for key in unchanged} == {key: before[key] for key in unchanged}


def test_post_leaves_missing_optional_fields_empty(editor: TestApp) -> None:
    movie = editor.post_json("/api/movies", {"title": "Untitled"}, status=201).json
    assert (movie["director"], movie["main_actor"], movie["published"]) == (None, None, None)


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        pytest.param(("post_json", {"title": "Nope"}), "/api/movies", id="POST"),
        pytest.param(("put_json", {"title": "Nope"}), "/api/movies/1", id="PUT"),
        pytest.param(("delete", None), "/api/movies/1", id="DELETE"),
    ],
)
def test_reader_cannot_write(reader: TestApp, request_: tuple[str, Any], path: str) -> None:
    method, body = request_
    call = getattr(reader, method)
    response = call(path, body, status=403) if body is not None else call(path, status=403)
    assert EDITOR_GROUP in _error(response)
    assert [movie["title"] for movie in reader.get("/api/movies", status=200).json] == SEED_TITLES


def test_editor_group_is_configurable(db_path: Path) -> None:
    app = sso_app(db_path, {"MOVIES_EDITOR_GROUP": "film-crew"})
    crew = client(app, "carl@example.org", person("Carl", "carl@example.org", ["film-crew"]))
    default_editor = client(app, *ALICE)
    crew.post_json("/api/movies", {"title": "Crew pick"}, status=201)
    default_editor.post_json("/api/movies", {"title": "Nope"}, status=403)


# Anonymous visitors


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/api/movies", id="list"),
        pytest.param("GET", "/api/movies/all", id="all"),
        pytest.param("GET", "/api/movies/1", id="one"),
        pytest.param("GET", "/api/movies?id=1", id="query form"),
        pytest.param("GET", "/api/me", id="me"),
        pytest.param("POST", "/api/movies", id="create"),
        pytest.param("PUT", "/api/movies/1", id="update"),
        pytest.param("DELETE", "/api/movies/1", id="delete"),
    ],
)
def test_anonymous_api_client_gets_401_json(anonymous: TestApp, method: str, path: str) -> None:
    body = json.dumps({"title": "x"}) if method in ("POST", "PUT") else ""
    response = anonymous.request(
        path, method=method, body=body.encode(), headers=JSON, content_type="application/json", status=401
    )
    assert "authentication required" in _error(response)


def test_anonymous_browser_is_sent_to_login(anonymous: TestApp) -> None:
    response = anonymous.get("/api/movies?id=1", headers=HTML, status=302)
    assert response.headers["Location"] == "/login?next=%2Fapi%2Fmovies%3Fid%3D1"
    api = anonymous.get("/api/movies", headers=JSON, status=401)
    assert "/login" in _error(api)


# Errors are JSON


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/api/movies/999", id="get"),
        pytest.param("PUT", "/api/movies/999", id="put"),
        pytest.param("DELETE", "/api/movies/999", id="delete"),
        pytest.param("GET", "/api/movies/abc", id="id not a number"),
        pytest.param("GET", "/api/nothing-here", id="unknown path"),
    ],
)
def test_missing_is_404_json(editor: TestApp, method: str, path: str) -> None:
    response = editor.request(
        path, method=method, body=b'{"title": "x"}', content_type="application/json", status=404
    )
    _error(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("PATCH", "/api/movies/1", id="PATCH movie"),
        pytest.param("POST", "/api/movies/1", id="POST to a movie"),
        pytest.param("DELETE", "/api/movies", id="DELETE the list"),
        pytest.param("PUT", "/api/movies/all", id="PUT all"),
        pytest.param("POST", "/api/me", id="POST me"),
    ],
)
def test_wrong_method_is_405_json(editor: TestApp, method: str, path: str) -> None:
    response = editor.request(path, method=method, status=405)
    _error(response)
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        pytest.param("POST", "/api/movies", "application/x-www-form-urlencoded", id="POST form"),
        pytest.param("POST", "/api/movies", "text/plain", id="POST text"),
        pytest.param("PUT", "/api/movies/1", "multipart/form-data; boundary=x", id="PUT multipart"),
        pytest.param("PUT", "/api/movies/1", "", id="PUT without content type"),
    ],
)
def test_body_that_is_not_json_is_415(editor: TestApp, method: str, path: str, content_type: str) -> None:
    response = editor.request(
        path, method=method, body=b"title=Nope", content_type=content_type or None, status=415
    )
    assert "JSON" in _error(response)


def test_json_with_a_structured_suffix_is_json(editor: TestApp) -> None:
    editor.request(
        "/api/movies",
        method="POST",
        body=b'{"title": "Suffix"}',
        content_type="application/vnd.movie+json",
        status=201,
    )


def test_oversized_body_is_413_json(editor: TestApp) -> None:
    response = editor.post_json("/api/movies", {"title": "x" * 100_000}, status=413)
    _error(response)


# Validation

LONG = "x" * 501


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        pytest.param("POST", {"director": "Someone"}, "'title' is required", id="missing title"),
        pytest.param(
            "POST", {"title": 42}, "'title' must be a string, not a number", id="title not a string"
        ),
        pytest.param("POST", {"title": ""}, "'title' must not be empty", id="empty title"),
        pytest.param("POST", {"title": "  \t "}, "'title' must not be empty", id="blank title"),
        pytest.param("PUT", {"title": None}, "'title' must be a string, not null", id="title null on PUT"),
        pytest.param("POST", {"title": "x", "rating": 5}, "unknown field(s): 'rating'", id="unknown field"),
        pytest.param("POST", {"title": "x", "Title": "y"}, "'Title'", id="field names are case sensitive"),
        pytest.param(
            "POST", {"title": "x", "published": "abc"}, "'published' must be a year", id="published abc"
        ),
        pytest.param("POST", {"title": "x", "published": 1700}, "from 1870 to 2100", id="published 1700"),
        pytest.param("POST", {"title": "x", "published": 2101}, "from 1870 to 2100", id="published 2101"),
        pytest.param("POST", {"title": "x", "published": "12345"}, "must be a year", id="published 5 digits"),
        pytest.param("POST", {"title": "x", "published": " 2001"}, "must be a year", id="published padded"),
        pytest.param("POST", {"title": "x", "published": 2001.0}, "must be a year", id="published float"),
        pytest.param("POST", {"title": "x", "published": True}, "must be a year", id="published boolean"),
        pytest.param(
            "POST", {"title": "x", "published": "١٩٩٧"}, "must be a year", id="published arabic digits"
        ),
        pytest.param("POST", {"title": {"en": "x"}}, "not an object", id="nested object"),
        pytest.param("POST", {"title": "x", "director": ["a", "b"]}, "not an array", id="array field"),
        pytest.param("POST", [{"title": "x"}], "must be a JSON object, not an array", id="array body"),
        pytest.param("POST", "Titanic", "must be a JSON object, not a string", id="string body"),
        pytest.param("POST", None, "must be a JSON object, not null", id="null body"),
        pytest.param("POST", b'{"title": "x"', "not valid JSON", id="malformed JSON"),
        pytest.param("POST", b"", "not valid JSON", id="empty body"),
        pytest.param("POST", b'{"title": "\xff"}', "not valid JSON", id="invalid UTF-8"),
        pytest.param("POST", b"[" * 50_000, "not valid JSON", id="absurdly nested"),
        pytest.param("POST", b'{"title": "\\ud800"}', "not valid Unicode", id="lone surrogate"),
        pytest.param("POST", {"title": LONG}, "longer than 500", id="too long title"),
        pytest.param("PUT", {"main_actor": LONG}, "longer than 500", id="too long actor"),
        pytest.param(
            "PUT", {"id": 7, "title": "x"}, "read-only field(s) cannot be set: 'id'", id="id on PUT"
        ),
        pytest.param("PUT", {"id": 1}, "'id'", id="same id on PUT"),
        pytest.param("POST", {"id": 99, "title": "x"}, "'id'", id="id on POST"),
        pytest.param(
            "POST", {"title": "x", "created_by": "mallory"}, "'created_by'", id="forged audit field"
        ),
        pytest.param("PUT", {}, "nothing to change", id="empty PUT"),
    ],
)
def test_invalid_body_is_400_and_changes_nothing(
    editor: TestApp, method: str, body: Any, message: str
) -> None:
    path = "/api/movies" if method == "POST" else "/api/movies/1"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    before = editor.get("/api/movies").json
    response = editor.request(path, method=method, body=data, content_type="application/json", status=400)
    assert message in _error(response)
    assert editor.get("/api/movies").json == before


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        pytest.param({"published": "2001"}, {"published": 2001}, id="published as four digits"),
        pytest.param({"published": 1870}, {"published": 1870}, id="first year"),
        pytest.param({"published": "2100"}, {"published": 2100}, id="last year"),
        pytest.param({"published": None}, {"published": None}, id="published cleared"),
        pytest.param({"director": None}, {"director": None}, id="director cleared"),
        pytest.param({"director": ""}, {"director": ""}, id="empty director"),
        pytest.param({"title": "x" * 500}, {"title": "x" * 500}, id="longest title"),
        pytest.param({"title": "Léon 🎬 <b>"}, {"title": "Léon 🎬 <b>"}, id="unicode and markup kept"),
    ],
)
def test_valid_values_are_stored(editor: TestApp, body: dict[str, Any], stored: dict[str, Any]) -> None:
    created = editor.post_json("/api/movies", {"title": "Base", **body}, status=201).json
    assert {key: created[key] for key in stored} == stored
    updated = editor.put_json("/api/movies/1", body).json
    assert {key: updated[key] for key in stored} == stored


# Audit trail and ids


def test_changes_record_who_and_when(login_as: Client) -> None:
    alice, ben = login_as(ALICE), login_as(BEN)
    created = alice.post_json("/api/movies", {"title": "Heat"}, status=201).json
    assert created["created_by"] == created["updated_by"] == "alice@example.org"
    assert created["created_at"] == created["updated_at"]
    assert _is_utc_iso(created["created_at"])

    updated = ben.put_json(f"/api/movies/{created['id']}", {"published": 1995}).json
    assert updated["created_by"] == "alice@example.org"
    assert updated["updated_by"] == "ben@example.org"
    assert updated["created_at"] == created["created_at"]
    assert _is_utc_iso(updated["updated_at"])
    assert datetime.fromisoformat(updated["updated_at"]) >= datetime.fromisoformat(created["created_at"])


def test_deleted_ids_are_never_reused(editor: TestApp) -> None:
    ids = [editor.post_json("/api/movies", {"title": f"M{n}"}, status=201).json["id"] for n in range(3)]
    assert ids == [4, 5, 6]
    editor.delete(f"/api/movies/{ids[-1]}", status=204)
    assert editor.post_json("/api/movies", {"title": "Next"}, status=201).json["id"] == 7

    for movie in editor.get("/api/movies").json:
        editor.delete(f"/api/movies/{movie['id']}", status=204)
    assert editor.post_json("/api/movies", {"title": "After all"}, status=201).json["id"] == 8


def test_ids_survive_a_restart(db_path: Path) -> None:
    first = client(sso_app(db_path), *ALICE)
    movie_id = first.post_json("/api/movies", {"title": "Last"}, status=201).json["id"]
    first.delete(f"/api/movies/{movie_id}", status=204)
    second = client(sso_app(db_path), *ALICE)
    assert second.post_json("/api/movies", {"title": "New"}, status=201).json["id"] > movie_id


# Seeding


def test_seeding_happens_once_in_the_life_of_the_database(db_path: Path) -> None:
    editor = client(sso_app(db_path), *ALICE)
    for movie in editor.get("/api/movies").json:
        editor.delete(f"/api/movies/{movie['id']}", status=204)
    create_app({"DATABASE": str(db_path)})
    create_app({"DATABASE": str(db_path)})
    assert client(sso_app(db_path), *ALICE).get("/api/movies").json == []


def test_database_is_in_wal_mode(db_path: Path) -> None:
    sso_app(db_path)
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        pytest.param({"DATABASE": ":memory:"}, "MOVIES_DB", id="in-memory database"),
        pytest.param({"EDITOR_GROUP": " "}, "MOVIES_EDITOR_GROUP", id="blank editor group"),
    ],
)
def test_unusable_settings_fail_at_start(tmp_path: Path, config: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app({"DATABASE": str(tmp_path / "m.sqlite3"), **config})
    assert caught.value.setting == setting


# /api/me


def test_me_returns_the_identity(login_as: Client) -> None:
    response = login_as(ZOE).get("/api/me", headers=JSON)
    me = response.json
    assert me["user"] == "zoe@example.org"
    assert me["profile"] == "shibboleth"
    assert me["attributes"]["name"] == ["Zoë Müller"]
    assert me["attributes"]["email"] == ["zoë@example.org"]
    assert me["attributes"]["groups"] == ZOE_GROUPS
    assert response.headers["Cache-Control"] == "no-store"


# The home page


def test_home_page_shows_who_you_are_and_the_movies(login_as: Client) -> None:
    response = login_as(ZOE).get("/", headers=HTML)
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    page = response.text
    assert '<meta charset="utf-8">' in page
    assert "Zoë Müller" in page
    assert "Zoë Müller".encode() in response.body
    assert "zoë@example.org" in page
    assert "300 groups" in page
    assert "<details>" in page
    assert page.count("urn:mace:example.org:group:") == 299
    assert all(title in page for title in SEED_TITLES)
    assert 'href="/logout"' in page
    assert "/login" not in page


def test_home_page_for_anonymous_visitors_asks_to_log_in(anonymous: TestApp) -> None:
    page = anonymous.get("/", headers=HTML).text
    assert 'href="/login?next=/"' in page
    assert "Log in" in page
    assert "/logout" not in page
    assert "<table" not in page
    assert not any(title in page for title in SEED_TITLES)


def test_home_page_respects_the_mount_point(login_as: Client) -> None:
    page = login_as(None).get("/", extra_environ={"SCRIPT_NAME": "/films"}).text
    assert 'href="/films/login?next=/films/"' in page


def test_movie_title_cannot_inject_html(editor: TestApp) -> None:
    editor.post_json("/api/movies", {"title": "<script>alert(1)</script>"}, status=201)
    page = editor.get("/").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_display_name_cannot_inject_html(login_as: Client) -> None:
    page = login_as(("eve@example.org", person("<img src=x onerror=alert(1)>", "e@x", []))).get("/").text
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


# app/wsgi.py


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch, db_path: Path) -> Path:
    """MOVIES_DB set to a temporary file, no SHIBWSGI_* or other MOVIES_* variables."""
    for name in list(os.environ):
        if name.startswith(("SHIBWSGI_", "MOVIES_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MOVIES_DB", str(db_path))
    return db_path


def _import_wsgi() -> Any:
    module = sys.modules.get("app.wsgi")
    return importlib.import_module("app.wsgi") if module is None else importlib.reload(module)


def test_wsgi_application_defaults(clean_environ: Path) -> None:
    wsgi = _import_wsgi()
    application = wsgi.application
    assert isinstance(application, SSOMiddleware)
    assert application.profile.name == "shibboleth"
    assert clean_environ.exists()

    me = client(application, *ZOE).get("/api/me").json
    assert me["attributes"] == {
        "name": ["Zoë Müller"],
        "email": ["zoë@example.org"],
        "groups": ZOE_GROUPS,
    }
    client(application, *ZOE).post_json("/api/movies", {"title": "Default editors"}, status=201)
    client(application, *RITA).post_json("/api/movies", {"title": "Nope"}, status=403)


def test_wsgi_user_falls_back_to_remote_user(clean_environ: Path) -> None:
    # No eppn released: the SP's REMOTE_USER (its own choice of attribute) is the user.
    application = _import_wsgi().application
    environ = {"REMOTE_USER": "rita@example.org", "displayName": "Rita", "isMemberOf": "staff"}
    me = TestApp(application, extra_environ=environ).get("/api/me").json
    assert me["user"] == "rita@example.org"


def test_wsgi_settings_from_the_environment_win(clean_environ: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIBWSGI_ATTRIBUTES", "groups=memberOf:multi")
    monkeypatch.setenv("MOVIES_EDITOR_GROUP", "film-crew")
    application = _import_wsgi().application
    crew = client(application, "carl@example.org", {"memberOf": ["film-crew"], "displayName": "Carl"})
    me = crew.get("/api/me").json
    assert me["attributes"] == {"groups": ["film-crew"]}
    crew.post_json("/api/movies", {"title": "Crew pick"}, status=201)


def test_wsgi_rejects_a_misspelt_setting(clean_environ: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIBWSGI_ATRIBUTES", "name=displayName")
    with pytest.raises(ConfigError):
        _import_wsgi()


@pytest.mark.parametrize(
    ("profile", "attributes", "extra"),
    [
        pytest.param(
            "openidc",
            {"name": "Zoë", "email": "z@x", "groups": ["a,b", "c"]},
            {"id_token": True},
            id="openidc",
        ),
        pytest.param("mellon", {"cn": "Zoë", "mail": "z@x", "groups": ["a,b", "c"]}, {}, id="mellon"),
        pytest.param(
            "oauth2-proxy",
            {"preferred-username": "Zoë", "email": "z@x", "groups": ["a,b", "c"]},
            {"channel": "headers"},
            id="oauth2-proxy",
        ),
    ],
)
def test_default_settings_follow_the_profile(
    tmp_path: Path, profile: str, attributes: dict[str, Any], extra: dict[str, Any]
) -> None:
    # Only the profile is set: user and attributes default to that front end's own names.
    settings = {"SHIBWSGI_PROFILE": profile, "MOVIES_DB": str(tmp_path / "movies.sqlite3")}
    if profile == "oauth2-proxy":
        settings |= {"SHIBWSGI_CHANNEL": "headers", "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1"}
    environ = environ_for(profile, "zoe", attributes, **extra) | {"REMOTE_ADDR": "127.0.0.1"}
    me = TestApp(make_application(settings)).get("/api/me", extra_environ=environ).json
    assert me["user"] == "zoe"
    assert me["attributes"]["name"] == ["Zoë"]
    assert me["attributes"]["email"] == ["z@x"]
    groups = ["a,b", "c"] if profile != "oauth2-proxy" else ["a", "b", "c"]  # comma-joined header: lossy
    assert me["attributes"]["groups"] == groups


@pytest.mark.parametrize(
    ("name", "source"),
    [
        pytest.param("access_token", "OIDC_access_token", id="an access token"),
        pytest.param("sessionIndex", "Shib-Session-Index", id="the SAML session index"),
        pytest.param("sid", "sid", id="an OpenID Connect session id claim"),
        pytest.param("assertion", "Shib-Assertion-01", id="an assertion's URL"),
        pytest.param("client_secret", "clientSecret", id="a secret"),
    ],
)
def test_me_never_hands_session_ids_or_tokens_to_page_javascript(
    db_path: Path, name: str, source: str
) -> None:
    attributes = f"name=displayName email=mail groups=isMemberOf:multi {name}={source}"
    app = sso_app(db_path, {"SHIBWSGI_ATTRIBUTES": attributes})
    secret = "_c2VjcmV0LXNlc3Npb24ta2V5"
    environ = environ_for("shibboleth", *ZOE, session_id=secret)
    environ[source] = "credential-value"
    response = TestApp(app, extra_environ=environ).get("/api/me", headers=JSON)
    assert secret not in response.text and "credential-value" not in response.text
    assert "session_id" not in response.json and name not in response.json["attributes"]
    assert response.json["attributes"]["name"] == ["Zoë Müller"]  # the rest is still there


@pytest.mark.parametrize("name", ["side", "consider", "passage"])
def test_me_keeps_attributes_whose_names_only_look_like_secrets(db_path: Path, name: str) -> None:
    app = sso_app(db_path, {"SHIBWSGI_ATTRIBUTES": f"name=displayName {name}=extra"})
    environ = environ_for("shibboleth", *ZOE)
    environ["extra"] = "shown"
    assert TestApp(app, extra_environ=environ).get("/api/me").json["attributes"][name] == ["shown"]
