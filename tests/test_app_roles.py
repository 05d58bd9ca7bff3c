"""The movie app's own roles: the roles table, ``python -m app roles``, the admin API, and
writing with the editor role instead of the editor group."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from app_fixtures import EDITOR_GROUP, client, person, sso_app
from hypothesis import given, settings
from hypothesis import strategies as st
from webtest import TestApp

from app.__main__ import main
from app.db import all_roles, connect, grant_role, roles_of
from app.roles import valid_user
from shibwsgi import RequestError, SSOMiddleware
from shibwsgi.testing import environ_for
from tests.helpers import ROLES_TABLE

REPO = Path(__file__).resolve().parent.parent
ADA = "ada@example.org"  # the admin
RITA = "rita@example.org"  # a reader: no editor group
MOVIE = {"title": "Heat", "director": "Michael Mann", "main_actor": "Al Pacino", "published": 1995}


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "movies.sqlite3"
    monkeypatch.setenv("MOVIES_DB", str(path))  # what the CLI reads, as the app does
    return path


@pytest.fixture
def make_client(db_path: Path) -> Callable[..., TestApp]:
    """Factory: a client of the deployed stack signed in as ``user`` (``None``: anonymous).

    ``SHIBWSGI_ROLES_TTL=0``: every request sees the roles table as it is now.
    """
    wsgi_app = sso_app(db_path, {"SHIBWSGI_ROLES_TTL": "0"})

    def make(user: str | None, groups: tuple[str, ...] = ("staff",)) -> TestApp:
        if user is None:
            return client(wsgi_app, None)
        return client(wsgi_app, user, person(user.split("@")[0].title(), user, groups))

    return make


def grant(db_path: Path, user: str, role: str) -> None:
    with closing(connect(str(db_path))) as db:
        grant_role(db, user, role, by="test")


def roles_in_table(db_path: Path, user: str) -> list[str]:
    with closing(connect(str(db_path))) as db:
        return roles_of(db, user)


@pytest.fixture
def admin(make_client: Callable[..., TestApp], db_path: Path) -> TestApp:
    grant(db_path, ADA, "admin")
    return make_client(ADA)


# -- the editor role writes, as the editor group does ------------------------------------


def test_reader_with_the_editor_role_writes(make_client: Callable[..., TestApp], db_path: Path) -> None:
    rita = make_client(RITA)
    rita.post_json("/api/movies", MOVIE, status=403)
    grant(db_path, RITA, "editor")
    created = rita.post_json("/api/movies", MOVIE, status=201)
    assert created.json["created_by"] == RITA
    rita.put_json(created.location, {"published": 1996}, status=200)
    rita.delete(created.location, status=204)


def test_editor_group_still_writes_without_any_role(make_client: Callable[..., TestApp]) -> None:
    make_client("ed@example.org", ("staff", EDITOR_GROUP)).post_json("/api/movies", MOVIE, status=201)


@pytest.mark.parametrize("role", ["admin", "Editor", "editors"])
def test_other_roles_do_not_write(make_client: Callable[..., TestApp], db_path: Path, role: str) -> None:
    grant(db_path, RITA, role)
    make_client(RITA).post_json("/api/movies", MOVIE, status=403)


def test_revoked_editor_role_stops_writing(make_client: Callable[..., TestApp], db_path: Path) -> None:
    grant(db_path, RITA, "editor")
    rita = make_client(RITA)
    rita.post_json("/api/movies", MOVIE, status=201)
    assert main(["roles", "revoke", RITA, "editor"]) == 0
    rita.post_json("/api/movies", MOVIE, status=403)


def test_me_shows_the_roles(make_client: Callable[..., TestApp], db_path: Path) -> None:
    grant(db_path, RITA, "editor")
    grant(db_path, RITA, "admin")
    assert make_client(RITA).get("/api/me").json["roles"] == ["admin", "editor"]


def test_roles_table_change_is_seen_after_the_ttl_by_default(db_path: Path) -> None:
    """The deployed default: the answer is cached for roles_ttl (60 s), per worker."""
    wsgi_app = sso_app(db_path)
    assert isinstance(wsgi_app, SSOMiddleware) and wsgi_app.roles is not None
    assert wsgi_app.roles.ttl == 60
    rita = client(wsgi_app, RITA, person("Rita", RITA, ["staff"]))
    assert rita.get("/api/me").json["roles"] == []
    grant(db_path, RITA, "editor")
    assert rita.get("/api/me").json["roles"] == []  # cached
    wsgi_app.roles.clock = lambda: float("inf")  # the TTL is over
    assert rita.get("/api/me").json["roles"] == ["editor"]


def test_shibwsgi_roles_setting_replaces_the_roles_table(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ROLES_TABLE, RITA, ["editor"])
    wsgi_app = sso_app(db_path, {"SHIBWSGI_ROLES": "tests.helpers:table_roles"})
    rita = client(wsgi_app, RITA, person("Rita", RITA, ["staff"]))
    assert rita.get("/api/me").json["roles"] == ["editor"]
    rita.post_json("/api/movies", MOVIE, status=201)


def test_database_gone_is_503_not_500(make_client: Callable[..., TestApp], db_path: Path) -> None:
    rita = make_client(RITA)
    db_path.unlink()
    db_path.mkdir()  # not a database any more
    response = rita.get("/api/me", status=503)
    assert "roles hook" in response.json["error"]


# -- the command line -----------------------------------------------------------------------


def test_cli_grant_list_revoke(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roles", "grant", RITA, "editor"]) == 0
    assert main(["roles", "grant", ADA, "admin"]) == 0
    assert main(["roles", "grant", ADA, "editor"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"granted editor to {RITA}",
        f"granted admin to {ADA}",
        f"granted editor to {ADA}",
    ]
    assert main(["roles", "list"]) == 0
    assert capsys.readouterr().out == f"{ADA}\tadmin,editor\n{RITA}\teditor\n"
    assert main(["roles", "list", ADA]) == 0
    assert capsys.readouterr().out == f"{ADA}\tadmin,editor\n"
    assert main(["roles", "revoke", ADA, "editor"]) == 0
    assert capsys.readouterr().out == f"revoked editor from {ADA}\n"
    assert roles_in_table(db_path, ADA) == ["admin"]


def test_cli_grant_twice_and_revoke_what_is_not_held(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["roles", "grant", RITA, "editor"])
    assert main(["roles", "grant", RITA, "editor"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{RITA} already has editor"
    assert main(["roles", "revoke", RITA, "admin"]) == 1
    assert capsys.readouterr().err == f"{RITA} does not have admin\n"


def test_cli_warns_about_a_role_the_app_does_not_check(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["roles", "grant", RITA, "editr"]) == 0
    assert "only checks the roles admin, editor" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(["roles", "grant", RITA], id="no role"),
        pytest.param(["roles", "grant", RITA, "edit or"], id="space in the role"),
        pytest.param(["roles", "grant", RITA, "-editor"], id="role like an option"),
        pytest.param(["roles", "grant", RITA, "x" * 65], id="role too long"),
        pytest.param(["roles", "grant", " rita@example.org", "editor"], id="user with a space"),
        pytest.param(["roles", "grant", "rita\n@example.org", "editor"], id="user with a newline"),
        pytest.param(["roles", "grant", "", "editor"], id="empty user"),
        pytest.param(["roles", "promote", RITA, "editor"], id="unknown command"),
        pytest.param(["roles"], id="no command"),
    ],
)
def test_cli_refuses_bad_arguments(db_path: Path, arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert not db_path.exists()  # refused before touching the database


def test_python_dash_m_app_roles(db_path: Path) -> None:
    """The command as the README gives it, in its own process."""
    environment = {**os.environ, "MOVIES_DB": str(db_path), "PYTHONPATH": str(REPO)}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "roles", *arguments],
            env=environment,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    assert run("grant", RITA, "editor").returncode == 0
    listed = run("list")
    assert (listed.returncode, listed.stdout) == (0, f"{RITA}\teditor\n")
    assert run("revoke", RITA, "editor").returncode == 0
    assert run("revoke", RITA, "editor").returncode == 1
    assert run("list").stdout == ""


# -- the admin API ----------------------------------------------------------------------------


def test_admin_reads_every_holder_and_one_user(admin: TestApp, db_path: Path) -> None:
    grant(db_path, RITA, "editor")
    assert admin.get("/api/roles").json == {ADA: ["admin"], RITA: ["editor"]}
    assert admin.get(f"/api/roles/{RITA}").json == {"user": RITA, "roles": ["editor"]}
    assert admin.get("/api/roles/nobody@example.org").json == {"user": "nobody@example.org", "roles": []}


def test_admin_replaces_a_users_roles(
    admin: TestApp, make_client: Callable[..., TestApp], db_path: Path
) -> None:
    changed = admin.put_json(f"/api/roles/{RITA}", {"roles": ["editor", "editor"]}, status=200)
    assert changed.json == {"user": RITA, "roles": ["editor"]}
    make_client(RITA).post_json("/api/movies", MOVIE, status=201)  # at once: roles_ttl=0 here
    assert admin.put_json(f"/api/roles/{RITA}", {"roles": []}).json == {"user": RITA, "roles": []}
    make_client(RITA).post_json("/api/movies", MOVIE, status=403)
    with closing(connect(str(db_path))) as db:
        assert db.execute("SELECT COUNT(*) FROM roles WHERE user = ?", (RITA,)).fetchone()[0] == 0


def test_a_bare_array_of_roles_is_accepted_too(admin: TestApp) -> None:
    assert admin.put_json(f"/api/roles/{RITA}", ["admin", "editor"]).json == {
        "user": RITA,
        "roles": ["admin", "editor"],
    }


def test_admin_change_records_who_granted(admin: TestApp, db_path: Path) -> None:
    admin.put_json(f"/api/roles/{RITA}", {"roles": ["editor"]})
    with closing(connect(str(db_path))) as db:
        assert db.execute("SELECT granted_by FROM roles WHERE user = ?", (RITA,)).fetchone()[0] == ADA


def test_user_ids_with_special_characters_in_the_path(admin: TestApp) -> None:
    user = "https://idp.example.org/users/zoë"  # an OIDC sub may hold slashes
    admin.put_json("/api/roles/https://idp.example.org/users/zo%C3%AB", {"roles": ["editor"]})
    assert admin.get("/api/roles").json[user] == ["editor"]


@pytest.mark.parametrize(
    ("who", "status"),
    [
        pytest.param(RITA, 403, id="reader"),
        pytest.param("ed@example.org", 403, id="editor group is not admin"),
        pytest.param(None, 401, id="anonymous"),
    ],
)
@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(("GET", "/api/roles"), id="list"),
        pytest.param(("GET", f"/api/roles/{RITA}"), id="one"),
        pytest.param(("PUT", f"/api/roles/{RITA}"), id="change"),
    ],
)
def test_only_admins_use_the_roles_api(
    make_client: Callable[..., TestApp],
    db_path: Path,
    who: str | None,
    status: int,
    request_: tuple[str, str],
) -> None:
    grant(db_path, "ed@example.org", "editor")
    method, path = request_
    response = make_client(who).request(
        path, method=method, body=b'{"roles": ["admin"]}', content_type="application/json", status=status
    )
    assert response.content_type == "application/json"
    assert roles_in_table(db_path, RITA) == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b'{"roles": ["editor"]}', "text/plain", 415, id="not JSON"),
        pytest.param(b'{"roles": ["editor"]}', None, 415, id="no content type"),
        pytest.param(b'{"roles": [', "application/json", 400, id="broken JSON"),
        pytest.param(b"\xff\xfe", "application/json", 400, id="not UTF-8"),
        pytest.param(b"{}", "application/json", 400, id="no roles key"),
        pytest.param(b'{"roles": ["editor"], "user": "x"}', "application/json", 400, id="extra key"),
        pytest.param(b'{"role": ["editor"]}', "application/json", 400, id="misspelt key"),
        pytest.param(b'"editor"', "application/json", 400, id="a string"),
        pytest.param(b'{"roles": "editor"}', "application/json", 400, id="roles a string"),
        pytest.param(b'{"roles": null}', "application/json", 400, id="roles null"),
        pytest.param(b'{"roles": [1]}', "application/json", 400, id="a number"),
        pytest.param(b'{"roles": [""]}', "application/json", 400, id="empty name"),
        pytest.param(b'{"roles": ["a b"]}', "application/json", 400, id="space"),
        pytest.param(b'{"roles": ["\\u0000"]}', "application/json", 400, id="NUL"),
        pytest.param(b'{"roles": ["\\ud800"]}', "application/json", 400, id="lone surrogate"),
        pytest.param(b'{"roles": ["<script>"]}', "application/json", 400, id="markup"),
        pytest.param(b'{"roles": [' + b'"r",' * 60 + b'"r"]}', "application/json", 400, id="too many"),
        pytest.param(b"[" * 50_000, "application/json", 400, id="absurd nesting"),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(
    admin: TestApp, db_path: Path, body: bytes, content_type: str | None, status: int
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = admin.put(f"/api/roles/{RITA}", body, headers=headers, status=status)
    assert isinstance(response.json["error"], str)
    assert roles_in_table(db_path, RITA) == []


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/roles/%20rita", id="leading space"),
        pytest.param("/api/roles/rita%09x", id="control character"),
        pytest.param("/api/roles/" + "u" * 1025, id="too long"),
        pytest.param("/api/roles/%FF", id="not UTF-8"),
        pytest.param("/api/roles/rita%C3", id="a truncated UTF-8 sequence"),
        pytest.param("/api/roles/%ED%A0%80", id="an encoded surrogate"),
        pytest.param("/api/roles/%EF%BF%BD", id="the replacement character itself"),
        pytest.param("/api/roles/rita%7F", id="DEL"),
        pytest.param("/api/roles/rita%C2%85", id="a C1 control character"),
    ],
)
def test_user_id_the_middleware_never_produces_gets_no_roles(
    admin: TestApp, db_path: Path, path: str
) -> None:
    admin.put_json(path, {"roles": ["editor"]}, status=400)
    admin.get(path, status=400)
    with closing(connect(str(db_path))) as db:
        assert set(all_roles(db)) == {ADA}  # the admin, and nobody else


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("zoë@example.org", id="non-ASCII"),
        pytest.param("u" * 1024, id="the longest"),
        pytest.param("https://idp.example.org/users/a b", id="an inner space"),
    ],
)
def test_user_id_the_middleware_can_produce_gets_roles(admin: TestApp, user: str) -> None:
    assert admin.put_json(f"/api/roles/{quote(user)}", {"roles": ["editor"]}).json["user"] == user


@settings(max_examples=300, deadline=None)
@given(user=st.text(max_size=12) | st.sampled_from([" zoe", "zoe ", "\tzoe", "zoe\u3000", "\ufffd"]))
def test_roles_api_takes_exactly_the_user_ids_that_can_sign_in(user: str) -> None:
    """A padded " zoe" signed in but could never be given a role: one rule on both sides now."""
    try:
        identity = SSOMiddleware(lambda environ, start: []).identify(environ_for("remote-user", user))
    except RequestError:
        identity = None
    try:
        accepted = valid_user(user) == user
    except ValueError:
        accepted = False
    assert accepted is (identity is not None and identity.user == user)


def test_roles_api_method_not_allowed(admin: TestApp) -> None:
    admin.post_json("/api/roles", {"roles": []}, status=405)
    admin.delete(f"/api/roles/{RITA}", status=405)


def test_admin_role_from_the_api_lets_another_admin_in(
    admin: TestApp, make_client: Callable[..., TestApp]
) -> None:
    make_client(RITA).get("/api/roles", status=403)
    admin.put_json(f"/api/roles/{RITA}", {"roles": ["admin"]})
    assert make_client(RITA).get("/api/roles").status_int == 200


@pytest.mark.parametrize(
    ("granted", "groups", "access"),
    [
        pytest.param([], ("staff",), "reader", id="reader, no role"),
        pytest.param(["editor"], ("staff",), "editor", id="editor by role"),
        pytest.param(["admin"], ("movie-editors",), "editor", id="editor by group, other role"),
    ],
)
def test_home_page_and_whoami_agree_on_roles(
    db_path: Path, granted: list[str], groups: tuple[str, ...], access: str
) -> None:
    wsgi_app = sso_app(db_path, {"SHIBWSGI_ROLES_TTL": "0", "SHIBWSGI_WHOAMI_PATH": "/whoami"})
    for role in granted:
        grant(db_path, RITA, role)
    rita = client(wsgi_app, RITA, person("Rita", RITA, groups))
    whoami_roles = rita.get("/whoami", headers={"Accept": "application/json"}).json["roles"]
    assert whoami_roles == sorted(granted)
    home = rita.get("/", headers={"Accept": "text/html"}).text
    shown = re.search(r"<dt>Roles</dt><dd>([^<]*)</dd>", home)
    assert shown is not None
    assert shown.group(1) == (", ".join(whoami_roles) or "—")
    assert re.search(rf"<dt>Access</dt>\s*<dd>{access}\b", home)
