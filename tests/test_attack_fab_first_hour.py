"""Attacks on shibwsgi.fab: forged users, user switches, account takeovers and role mapping on a real FAB app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shibwsgi.testing import environ_for
from tests.fab_site import create_app

HTML = {"Accept": "text/html"}
ZOE = {"mail": "zoe@example.org", "givenName": "Zoë", "sn": "Müller", "isMemberOf": ["movie-editors"]}
ROB = {"mail": "rob@example.org", "isMemberOf": ["staff"]}


def front(user: str, attributes: dict[str, Any] | None = None, **options: Any) -> dict[str, str]:
    """What Shibboleth passes for ``user``."""
    return environ_for("shibboleth", user, ZOE if attributes is None else attributes, **options)


def who(client: FlaskClient, environ: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.get("/who/", environ_base=environ or {})
    assert response.status_code == 200, response.status
    return response.json  # type: ignore[return-value]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(tmp_path)


def sm(app: Flask) -> Any:
    return app.appbuilder.sm  # type: ignore[attr-defined]


# --- forged users ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forged", "env_var"),
    [
        pytest.param({"HTTP_REMOTE_USER": "admin"}, "HTTP_REMOTE_USER", id="Remote-User"),
        pytest.param(
            {"HTTP_REMOTE_USER": "zoe@example.org, admin"}, "REMOTE_USER", id="comma-joined Remote-User"
        ),
        pytest.param({"HTTP_X_REMOTE_USER": "admin"}, "HTTP_X_REMOTE_USER", id="X-Remote-User"),
        pytest.param({"HTTP_X_FORWARDED_USER": "admin"}, "HTTP_X_FORWARDED_USER", id="X-Forwarded-User"),
        pytest.param(
            {"HTTP_EPPN": "admin", "HTTP_SHIB_SESSION_ID": "_x"}, "HTTP_EPPN", id="eppn as a header"
        ),
        pytest.param({"HTTP_AJP_EPPN": "admin"}, "REMOTE_USER", id="AJP_ prefixed header"),
        pytest.param({"REMOTE_USER_": "admin"}, "REMOTE_USER_", id="near-miss environ key"),
    ],
)
def test_forged_user_never_logs_in_even_where_fab_is_told_to_read(
    tmp_path: Path, forged: dict[str, str], env_var: str
) -> None:
    client = create_app(tmp_path, AUTH_REMOTE_USER_ENV_VAR=env_var).test_client()
    assert who(client, forged)["user"] is None
    response = client.get("/login/?next=/who/", headers=HTML, environ_base=forged)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    assert who(client)["user"] is None


def test_forged_header_beside_a_real_identity_does_not_change_the_user(app: Flask) -> None:
    environ = {**front("zoe@example.org"), "HTTP_REMOTE_USER": "admin", "HTTP_X_REMOTE_USER": "admin"}
    assert who(app.test_client(), environ)["user"] == "zoe@example.org"


# --- user switches and disappearing identities ------------------------------------------------


def test_switch_to_a_user_fab_refuses_logs_the_first_user_out(tmp_path: Path) -> None:
    app = create_app(tmp_path)
    client = app.test_client()
    assert who(client, front("zoe@example.org"))["user"] == "zoe@example.org"
    app.config["AUTH_USER_REGISTRATION"] = False  # FAB reads it at each use
    assert who(client, front("rob@example.org", ROB))["user"] is None


def test_switch_to_an_inactive_user_logs_the_first_user_out(app: Flask) -> None:
    client = app.test_client()
    who(client, front("rob@example.org", ROB))
    with app.app_context():
        rob = sm(app).find_user(username="rob@example.org")
        rob.active = False
        sm(app).update_user(rob)
    who(client, front("zoe@example.org"))
    assert who(client, front("rob@example.org", ROB))["user"] is None


def test_deactivated_user_is_out_at_the_next_request_of_the_same_login(app: Flask) -> None:
    client = app.test_client()
    environ = front("zoe@example.org", session_id="_same")
    assert who(client, environ)["user"] == "zoe@example.org"
    with app.app_context():
        zoe = sm(app).find_user(username="zoe@example.org")
        zoe.active = False
        sm(app).update_user(zoe)
    assert who(client, environ)["user"] is None
    response = client.get("/login/", headers=HTML, environ_base=environ)
    assert response.status_code == 403  # refused, not a redirect loop


def test_session_of_one_user_replayed_with_another_identity_is_that_identity(app: Flask) -> None:
    alice = app.test_client()
    who(alice, front("zoe@example.org", session_id="_s"))
    cookie = alice.get_cookie("session")
    assert cookie is not None
    bob = app.test_client()
    bob.set_cookie("session", cookie.value)
    assert who(bob, front("rob@example.org", ROB, session_id="_s"))["user"] == "rob@example.org"
    assert who(bob)["user"] is None


def test_identity_gone_mid_session_logs_out_on_every_page(app: Flask) -> None:
    client = app.test_client()
    who(client, front("zoe@example.org"))
    response = client.get("/login/", headers=HTML)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?")
    assert who(client)["user"] is None


def test_password_login_after_a_front_end_login_does_not_outlive_the_front_end_user(tmp_path: Path) -> None:
    """A password login on top of zoe's front-end login: zoe at the front end must not see admin's account."""
    from flask_appbuilder.const import AUTH_DB

    app = create_app(tmp_path, AUTH_TYPE=AUTH_DB)
    with app.app_context():
        sm(app).add_user(
            "admin", "A", "Admin", "admin@example.org", sm(app).find_role("Admin"), password="pw-123456"
        )
    client = app.test_client()
    environ = front("zoe@example.org", session_id="_z")
    assert who(client, environ)["user"] == "zoe@example.org"
    client.post("/login/", data={"username": "admin", "password": "pw-123456"}, environ_base=environ)
    assert who(client, environ)["user"] == "zoe@example.org"


# --- roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group",
    [
        pytest.param("Movie-Editors", id="other case"),
        pytest.param("movie-editors ", id="trailing space"),
        pytest.param(" movie-editors", id="leading space"),
        pytest.param("movie-editors\x00", id="NUL"),
        pytest.param("movie-editors\n", id="newline"),
        pytest.param("movie\u2010editors", id="unicode hyphen"),
        pytest.param("movie-editors;admins", id="delimiter inside one value"),
        pytest.param("ADMINS", id="admins upper case"),
        pytest.param("admins\u200b", id="zero-width space"),
        pytest.param("\uff41dmins", id="fullwidth a"),
    ],
)
def test_group_that_only_looks_like_a_mapped_one_grants_no_role(app: Flask, group: str) -> None:
    me = who(app.test_client(), front("zoe@example.org", {**ZOE, "isMemberOf": [group]}))
    assert me["roles"] == ["Viewer"]


@pytest.mark.parametrize(
    ("mapped", "roles"),
    [
        pytest.param("r&d;archive", ["Editor", "Viewer"], id="whole value maps"),
        pytest.param("r&d", ["Viewer"], id="part before the delimiter does not"),
        pytest.param("archive", ["Viewer"], id="part after the delimiter does not"),
    ],
)
def test_group_holding_the_delimiter_maps_as_one_value(tmp_path: Path, mapped: str, roles: list[str]) -> None:
    client = create_app(tmp_path, AUTH_ROLES_MAPPING={mapped: ["Editor"]}).test_client()
    assert who(client, front("zoe@example.org", {**ZOE, "isMemberOf": ["r&d;archive"]}))["roles"] == roles


def test_all_groups_removed_removes_every_mapped_role(app: Flask) -> None:
    client = app.test_client()
    assert "Editor" in who(client, front("zoe@example.org", session_id="_1"))["roles"]
    me = who(client, front("zoe@example.org", {"mail": "zoe@example.org"}, session_id="_2"))
    assert me["roles"] == ["Viewer"]


def test_role_granted_by_hand_is_not_kept_when_sync_at_login_is_on(app: Flask) -> None:
    client = app.test_client()
    who(client, front("zoe@example.org", session_id="_1"))
    with app.app_context():
        zoe = sm(app).find_user(username="zoe@example.org")
        zoe.roles.append(sm(app).find_role("Admin"))
        sm(app).update_user(zoe)
    assert "Admin" not in who(client, front("zoe@example.org", session_id="_2"))["roles"]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("//evil.example/", id="scheme-relative"),
        pytest.param("/\\evil.example/", id="backslash"),
        pytest.param("https:evil.example", id="scheme without slashes"),
        pytest.param("/%2F%2Fevil.example", id="encoded slashes"),
        pytest.param("/\r\nLocation:%20https://evil.example/", id="CRLF"),
    ],
)
def test_fab_login_page_next_never_leaves_the_site(app: Flask, target: str) -> None:
    client = app.test_client()
    signed_in = client.get("/login/", query_string={"next": target}, environ_base=front("zoe@example.org"))
    assert signed_in.headers["Location"] == "/"
    anonymous = client.get("/login/", query_string={"next": target}, environ_base={})
    assert anonymous.headers["Location"] == "/login?next=%2F"


def test_non_ascii_group_maps_exactly(tmp_path: Path) -> None:
    client = create_app(tmp_path, AUTH_ROLES_MAPPING={"équipe-éditeurs": ["Editor"]}).test_client()
    me = who(client, front("zoe@example.org", {**ZOE, "isMemberOf": ["équipe-éditeurs"]}))
    assert me["roles"] == ["Editor", "Viewer"]
    other = who(client, front("zoe@example.org", {**ZOE, "isMemberOf": ["equipe-editeurs"]}, session_id="_2"))
    assert other["roles"] == ["Viewer"]


def test_new_login_with_an_email_another_user_has_is_refused_not_a_500(app: Flask) -> None:
    app.testing = False
    client = app.test_client()
    who(client, front("zoe@example.org", {"mail": "zoe@example.org"}))
    rob = front(
        "rob@example.org", {"mail": "rob@example.org", "isMemberOf": ["movie-editors"]}, session_id="_1"
    )
    assert who(client, rob)["roles"] == ["Editor", "Viewer"]
    clash = front("rob@example.org", {"mail": "zoe@example.org", "isMemberOf": ["staff"]}, session_id="_2")
    assert who(client, clash)["user"] is None  # refused: never logged in with the old roles
    response = client.get("/login/", headers=HTML, environ_base=clash)
    assert response.status_code == 403
    later = front("rob@example.org", {"mail": "rob@example.org", "isMemberOf": ["staff"]}, session_id="_3")
    assert who(client, later)["roles"] == ["Viewer"]


# --- takeovers of accounts the front end did not create -----------------------------------------

ADMIN_PASSWORD = "pw-123456"
EVIL = {"mail": "x@evil.example", "isMemberOf": ["staff"]}


def add_password_admin(app: Flask) -> None:
    with app.app_context():
        sm(app).add_user(
            "admin", "A", "Admin", "admin@example.org", sm(app).find_role("Admin"), password=ADMIN_PASSWORD
        )


def admin_account(app: Flask) -> dict[str, Any]:
    with app.app_context():
        admin = sm(app).find_user(username="admin")
        return {
            "roles": sorted(role.name for role in admin.roles),
            "email": admin.email,
            "password works": sm(app).auth_user_db("admin", ADMIN_PASSWORD) is not None,
        }


UNTOUCHED_ADMIN = {"roles": ["Admin"], "email": "admin@example.org", "password works": True}


@pytest.mark.parametrize("sync", [pytest.param(True, id="sync on"), pytest.param(False, id="sync off")])
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("admin", id="exact name"),
        pytest.param("ADMIN", id="upper case"),
        pytest.param("Admin", id="capitalised"),
    ],
)
def test_identity_named_like_a_password_account_never_logs_in_to_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, sync: bool
) -> None:
    app = create_app(tmp_path, AUTH_ROLES_SYNC_AT_LOGIN=sync)
    add_password_admin(app)
    client = app.test_client()
    assert who(client, front(name, EVIL))["user"] is None
    assert client.get("/login/", headers=HTML, environ_base=front(name, EVIL)).status_code == 403
    assert admin_account(app) == UNTOUCHED_ADMIN
    assert "FAB login refused" in caplog.text


def test_password_account_refusal_says_how_to_let_the_front_end_in(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    add_password_admin(app)
    who(app.test_client(), front("admin", EVIL))
    assert "password account" in caplog.text and "AUTH_SHIBWSGI_ADOPT_USERS = True" in caplog.text


@pytest.mark.parametrize(
    "name",
    [pytest.param("Zoe@example.org", id="capitalised"), pytest.param("ZOE@EXAMPLE.ORG", id="upper case")],
)
def test_case_variant_of_a_front_end_account_does_not_log_in_to_it(
    app: Flask, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    client = app.test_client()
    assert who(client, front("zoe@example.org"))["roles"] == ["Editor", "Viewer"]
    assert who(client, front(name, EVIL, session_id="_other"))["user"] is None
    assert "not exactly the name of the account" in caplog.text
    with app.app_context():
        assert sm(app).find_user(username="zoe@example.org").email == "zoe@example.org"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("admin ", id="password account, trailing space"),
        pytest.param("zoe@example.org ", id="front-end account, trailing space"),
        pytest.param("ZOE@example.org", id="front-end account, other case"),
    ],
)
def test_database_matching_names_loosely_does_not_log_in_to_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A database whose collation ignores case and trailing spaces (MySQL's default), even with case folding off."""
    app = create_app(tmp_path, AUTH_USERNAME_CI=False)
    add_password_admin(app)
    client = app.test_client()
    who(client, front("zoe@example.org"))
    exact = sm(app).find_user
    monkeypatch.setattr(sm(app), "find_user", lambda username: exact(username=username.rstrip().lower()))
    response = client.get("/who/", environ_base=front(name, EVIL, session_id="_other"))
    if name != name.strip():  # the middleware refuses a padded user id before FAB sees it
        assert response.status_code == 400, response.status
    else:
        assert response.status_code == 200, response.status
        assert response.json["user"] is None
    monkeypatch.undo()
    assert admin_account(app) == UNTOUCHED_ADMIN


def test_case_variant_without_case_folding_gets_its_own_account(tmp_path: Path) -> None:
    client = create_app(tmp_path, AUTH_USERNAME_CI=False).test_client()
    assert who(client, front("zoe@example.org"))["roles"] == ["Editor", "Viewer"]
    other = who(client, front("Zoe@example.org", {"mail": "other@example.org"}, session_id="_other"))
    assert (other["user"], other["roles"]) == ("Zoe@example.org", ["Viewer"])


def test_adopt_users_takes_over_the_exact_name_only(tmp_path: Path) -> None:
    app = create_app(tmp_path, AUTH_SHIBWSGI_ADOPT_USERS=True)
    add_password_admin(app)
    client = app.test_client()
    assert who(client, front("ADMIN", EVIL))["user"] is None
    assert admin_account(app) == UNTOUCHED_ADMIN
    me = who(client, front("admin", {"mail": "admin@example.org", "isMemberOf": ["admins"]}, session_id="_2"))
    assert (me["user"], me["roles"]) == ("admin", ["Admin", "Viewer"])
    assert admin_account(app)["password works"] is False  # the front end's account now


def test_account_added_without_a_password_logs_in_with_registration_off(tmp_path: Path) -> None:
    """What FAB's user form under AUTH_REMOTE_USER makes: an account with no password, for the front end."""
    app = create_app(tmp_path, AUTH_USER_REGISTRATION=False)
    with app.app_context():
        sm(app).add_user("rob@example.org", "Rob", "R", "rob@example.org", sm(app).find_role("Viewer"))
        rob = sm(app).find_user(username="rob@example.org")
        rob.password = None
        sm(app).update_user(rob)
    assert who(app.test_client(), front("rob@example.org", ROB))["user"] == "rob@example.org"
