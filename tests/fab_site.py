"""A Flask-AppBuilder app on SQLite with shibwsgi's security manager, as a FAB user sets it up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, g
from flask_appbuilder import AppBuilder, BaseView, expose
from flask_appbuilder.const import AUTH_REMOTE_USER

from shibwsgi.flask import SSO

try:  # Flask-AppBuilder 5
    from flask_appbuilder.utils.legacy import get_sqla_class

    SQLA: Any = get_sqla_class()
except ImportError:  # Flask-AppBuilder 4
    from flask_appbuilder import SQLA

CONFIG: dict[str, Any] = {
    "SECRET_KEY": "fab-test-secret-key-0123456789abcdef",
    "WTF_CSRF_ENABLED": False,
    "AUTH_TYPE": AUTH_REMOTE_USER,
    "FAB_SECURITY_MANAGER_CLASS": "shibwsgi.fab.SSOSecurityManager",
    "AUTH_USER_REGISTRATION": True,
    "AUTH_USER_REGISTRATION_ROLE": "Viewer",
    "AUTH_ROLES_MAPPING": {"movie-editors": ["Editor"], "admins": ["Admin"]},
    "AUTH_ROLES_SYNC_AT_LOGIN": True,
    "AUTH_SHIBWSGI_USER_FIELDS": {"first_name": "given_name", "last_name": "surname", "email": "email"},
    "SHIBWSGI_ATTRIBUTES": "email=mail given_name=givenName surname=sn groups=isMemberOf:multi",
}


class WhoAmI(BaseView):
    """``GET /who/``: FAB's idea of the user, as JSON."""

    route_base = "/who"

    @expose("/")
    def index(self) -> dict[str, Any]:
        user = g.user
        if not user.is_authenticated:
            return {"user": None}
        return {
            "user": user.username,
            "roles": sorted(role.name for role in user.roles),
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "login_count": user.login_count,
        }


def create_app(folder: Path, **config: Any) -> Flask:
    """The FAB app with its database in ``folder``; ``config`` overrides :data:`CONFIG`."""
    app = Flask(__name__)
    app.config.update(CONFIG, SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'fab.sqlite3'}")
    app.config.update(config)
    SSO(app)
    with app.app_context():
        db = SQLA(app)
        appbuilder = AppBuilder(app, db.session)
        for role in ("Editor", "Viewer"):
            appbuilder.sm.add_role(role)
        appbuilder.add_view_no_menu(WhoAmI)
    return app
