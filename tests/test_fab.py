"""Flask-AppBuilder: shibwsgi's security manager on a real FAB app with SQLite."""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_appbuilder import AppBuilder
from flask_appbuilder.const import AUTH_DB

from shibwsgi import ConfigError, Identity
from shibwsgi.testing import environ_for
from tests.fab_site import SQLA, WhoAmI, create_app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

HTML = {"Accept": "text/html"}
ZOE = {
    "mail": "zoe@example.org",
    "givenName": "Zoë",
    "sn": "Müller",
    "isMemberOf": ["movie-editors", "staff"],
}


def front(
    user: str = "zoe@example.org", attributes: dict[str, Any] | None = None, **options: Any
) -> dict[str, str]:
    """What Shibboleth passes for ``user``."""
    return environ_for("shibboleth", user, ZOE if attributes is None else attributes, **options)


def who(client: FlaskClient, environ: dict[str, str] | None = None) -> dict[str, Any]:
    return client.get("/who/", environ_base=environ or {}).json  # type: ignore[return-value]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(tmp_path)


def test_first_sight_creates_the_user_with_mapped_roles(app: Flask) -> None:
    me = who(app.test_client(), front())
    assert me == {
        "user": "zoe@example.org",
        "roles": ["Editor", "Viewer"],  # movie-editors -> Editor, plus AUTH_USER_REGISTRATION_ROLE
        "email": "zoe@example.org",
        "first_name": "Zoë",
        "last_name": "Müller",
        "login_count": 1,
    }


def test_requests_within_one_login_do_not_log_in_again(app: Flask) -> None:
    client = app.test_client()
    environ = front(session_id="_one")
    for _ in range(3):
        me = who(client, environ)
    assert me["login_count"] == 1


def test_a_new_login_resyncs_roles_and_fields(app: Flask) -> None:
    client = app.test_client()
    assert who(client, front(session_id="_first"))["roles"] == ["Editor", "Viewer"]
    later = {**ZOE, "isMemberOf": ["staff"], "sn": "Łukasz-Müller"}
    me = who(client, front(attributes=later, session_id="_second"))
    assert (me["roles"], me["last_name"], me["login_count"]) == (["Viewer"], "Łukasz-Müller", 2)


def test_roles_kept_without_sync_at_login(tmp_path: Path) -> None:
    client = create_app(tmp_path, AUTH_ROLES_SYNC_AT_LOGIN=False).test_client()
    who(client, front(session_id="_first"))
    later = {**ZOE, "isMemberOf": ["staff"]}
    assert who(client, front(attributes=later, session_id="_second"))["roles"] == ["Editor", "Viewer"]


def test_no_account_without_registration_is_403_not_a_login_loop(tmp_path: Path) -> None:
    client = create_app(tmp_path, AUTH_USER_REGISTRATION=False).test_client()
    assert who(client, front())["user"] is None
    response = client.get("/login/?next=/who/", headers=HTML, environ_base=front())
    assert response.status_code == 403
    assert "no account" in response.get_data(as_text=True)


def test_anonymous_login_page_sends_to_the_front_end(app: Flask) -> None:
    response = app.test_client().get("/login/?next=/who/", headers=HTML)
    assert (response.status_code, response.headers["Location"]) == (302, "/login?next=%2Fwho%2F")


def test_signed_in_login_page_goes_to_next_on_this_site_only(app: Flask) -> None:
    client = app.test_client()
    for target, location in [("/who/", "/who/"), ("https://evil.example/", "/")]:
        response = client.get("/login/", query_string={"next": target}, environ_base=front())
        assert (response.status_code, response.headers["Location"]) == (302, location)


def test_identity_gone_logs_out(app: Flask) -> None:
    client = app.test_client()
    assert who(client, front())["user"] == "zoe@example.org"
    assert who(client)["user"] is None


def test_another_user_at_the_front_end_switches_user(app: Flask) -> None:
    client = app.test_client()
    assert who(client, front())["user"] == "zoe@example.org"
    rob = front("rob@example.org", {"mail": "rob@example.org", "isMemberOf": ["staff"]})
    assert who(client, rob)["user"] == "rob@example.org"


def test_logout_ends_fab_login_then_the_front_ends(app: Flask) -> None:
    client = app.test_client()
    who(client, front())
    response = client.get("/logout/", environ_base=front())
    assert (response.status_code, response.headers["Location"]) == (302, "/logout?next=%2F")


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"HTTP_REMOTE_USER": "admin"}, id="Remote-User header"),
        pytest.param({"HTTP_X_FORWARDED_USER": "admin"}, id="a proxy's user header"),
        pytest.param({"HTTP_X_REMOTE_USER": "admin"}, id="header FAB was told to read"),
    ],
)
def test_forged_remote_user_is_ignored(tmp_path: Path, forged: dict[str, str]) -> None:
    # Even with FAB told to read a header, only the middleware's identity counts.
    app = create_app(tmp_path, AUTH_REMOTE_USER_ENV_VAR="HTTP_X_REMOTE_USER")
    client = app.test_client()
    assert who(client, forged)["user"] is None
    response = client.get("/login/?next=/who/", headers=HTML, environ_base=forged)
    assert response.headers["Location"].startswith("/login?next=")  # to the front end, not logged in
    assert who(client)["user"] is None


def test_password_login_is_left_alone(tmp_path: Path) -> None:
    app = create_app(tmp_path, AUTH_TYPE=AUTH_DB)
    with app.app_context():
        sm: Any = app.appbuilder.sm  # type: ignore[attr-defined]
        sm.add_user(
            "admin", "Ada", "Admin", "admin@example.org", sm.find_role("Admin"), password="s3cret-pass"
        )
    client = app.test_client()
    client.post("/login/", data={"username": "admin", "password": "s3cret-pass"})
    assert who(client)["user"] == "admin"  # no identity: the password login stays
    assert who(client)["user"] == "admin"
    # The front end's identity wins when it is there.
    assert who(client, front())["user"] == "zoe@example.org"


def test_users_created_through_the_front_end_have_no_usable_password(tmp_path: Path) -> None:
    app = create_app(tmp_path, AUTH_TYPE=AUTH_DB)
    client = app.test_client()
    who(client, front())
    client.get("/logout/")
    for password in ("", "-", "zoe@example.org"):
        client.post("/login/", data={"username": "zoe@example.org", "password": password})
        assert who(client)["user"] is None


def test_missing_middleware_is_an_error(tmp_path: Path) -> None:
    app = create_app(tmp_path)
    app.wsgi_app = app.wsgi_app.app  # type: ignore[attr-defined,method-assign]  # unwrap
    app.testing = True
    with pytest.raises(RuntimeError, match="no shibwsgi SSOMiddleware ran"):
        app.test_client().get("/who/")


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        pytest.param(
            {"AUTH_SHIBWSGI_USER_FIELDS": {"password": "x"}}, "AUTH_SHIBWSGI_USER_FIELDS", id="password field"
        ),
        pytest.param(
            {"AUTH_SHIBWSGI_USER_FIELDS": {"email": ""}}, "AUTH_SHIBWSGI_USER_FIELDS", id="empty source"
        ),
        pytest.param(
            {"AUTH_SHIBWSGI_ROLES_ATTRIBUTE": ""}, "AUTH_SHIBWSGI_ROLES_ATTRIBUTE", id="no roles attribute"
        ),
        pytest.param(
            {"AUTH_SHIBWSGI_ADOPT_USERS": "yes"}, "AUTH_SHIBWSGI_ADOPT_USERS", id="adopt users not a bool"
        ),
    ],
)
def test_bad_settings_fail_at_start_up(tmp_path: Path, config: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match=setting):
        create_app(tmp_path, **config)


def test_superset_example_config_logs_people_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/superset/superset_config.py, applied the way Superset applies it, on FAB."""
    from flask_appbuilder.security.sqla.manager import SecurityManager

    # Superset is not installed here: its manager is FAB's with more views and permissions.
    superset = types.ModuleType("superset")
    security = types.ModuleType("superset.security")
    security.SupersetSecurityManager = SecurityManager  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "superset", superset)
    monkeypatch.setitem(sys.modules, "superset.security", security)
    monkeypatch.setenv("SHIBWSGI_ATTRIBUTES", "email=mail first_name=givenName groups=isMemberOf:multi")
    config = runpy.run_path(str(EXAMPLES / "superset" / "superset_config.py"))
    settings = {key: value for key, value in config.items() if key.isupper()}

    app = Flask(__name__)
    app.config.update(settings, SECRET_KEY="s" * 32, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 's.db'}")
    for middleware in settings["ADDITIONAL_MIDDLEWARE"]:  # as Superset's app initializer does
        app.wsgi_app = middleware(app.wsgi_app)  # type: ignore[method-assign]
    with app.app_context():
        db = SQLA(app)
        appbuilder = AppBuilder(app, db.session, security_manager_class=settings["CUSTOM_SECURITY_MANAGER"])
        for role in ("Gamma", "Alpha"):
            appbuilder.sm.add_role(role)
        appbuilder.add_view_no_menu(WhoAmI)
    analyst = front(
        attributes={"mail": "zoe@example.org", "givenName": "Zoë", "isMemberOf": ["data-analysts"]}
    )
    me = who(app.test_client(), analyst)
    assert (me["user"], me["roles"], me["first_name"]) == ("zoe@example.org", ["Alpha", "Gamma"], "Zoë")


def test_fab_resync_fingerprint_is_the_injective_one() -> None:
    """A crafted attribute value must not make two logins look alike (a revoked group kept)."""
    from shibwsgi.fingerprint import login_fingerprint

    crafted = Identity("zoe", {"g": ("a\x1fh\x1f1\x1fb",)})
    other = Identity("zoe", {"g": ("a",), "h": ("b",)})
    assert login_fingerprint(crafted) != login_fingerprint(other)
