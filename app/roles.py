"""The app's own roles: who may write besides the editor group, and who manages roles.

Roles live in the movie database's ``roles`` table. The middleware asks
:func:`roles_hook` for a user's roles (``identity.roles``); ``python -m app roles``
and the admin API below change them::

    GET /api/roles           every user holding a role: {"alice@example.org": ["admin", "editor"]}
    GET /api/roles/<user>    one user's roles: {"user": ..., "roles": [...]}
    PUT /api/roles/<user>    replace them: body {"roles": ["editor"]} (or just ["editor"]);
                             an empty list removes them all

Only the ``admin`` role may use the API (403 for others, 401 when not logged in).
A change reaches a signed-in user within ``roles_ttl`` (60 s) when the front end
protects the whole site, and at their next login when only the login path is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing

from flask import Blueprint, Response, jsonify
from werkzeug.exceptions import BadRequest

from shibwsgi import Identity
from shibwsgi.authz import HasRole, Rule
from shibwsgi.flask import get_identity, requires
from shibwsgi.parsing import user_id_problem

from .db import all_roles, connect, get_db, roles_of, set_roles
from .movies import EDITOR_ROLE, json_body, writers

__all__ = [
    "ADMIN_ROLE",
    "APP_ROLES",
    "EDITOR_ROLE",
    "MAX_ROLES",
    "create_blueprint",
    "roles_hook",
    "rules",
    "valid_role",
    "valid_user",
]

#: May read and change everyone's roles through the API.
ADMIN_ROLE = "admin"
#: The roles this app checks; others may be stored but change nothing here.
APP_ROLES = (ADMIN_ROLE, EDITOR_ROLE)
#: Most roles one user may be given in one PUT.
MAX_ROLES = 50

_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def rules(editor_group: str) -> list[Rule]:
    """The middleware's rules: what the views check, so that nginx's auth_request asks the same."""
    return [
        Rule("/api/roles", HasRole(ADMIN_ROLE)),
        Rule("/api/movies", writers(editor_group), methods=["POST", "PUT", "PATCH", "DELETE"]),
        Rule("/movies", writers(editor_group)),  # the editors' HTML forms, every method
    ]


def roles_hook(database: str) -> Callable[[Identity], list[str]]:
    """The middleware's ``roles=`` hook: the user's roles from ``database``."""

    def roles_from_database(identity: Identity) -> list[str]:
        # Called outside any request context, in the middleware's own thread: its own connection.
        with closing(connect(database)) as db:
            return roles_of(db, identity.user)

    return roles_from_database


def valid_role(role: object) -> str:
    """``role`` when it is a role name (letters, digits, ``_.:-``; up to 64), else ``ValueError``."""
    if not isinstance(role, str) or not _ROLE.fullmatch(role):
        raise ValueError(
            f"{_shown(role)} is not a role name: letters, digits and _ . : - (up to 64, "
            "starting with a letter or digit)"
        )
    return role


def valid_user(user: object) -> str:
    """``user`` when the middleware could make it a user id (``identity.user``), else ``ValueError``.

    The middleware's own rule (:func:`shibwsgi.parsing.user_id_problem`): a path's
    ``%FF`` arrives as U+FFFD, which it refuses as undecodable.
    """
    if not isinstance(user, str):
        raise ValueError(f"{_shown(user)} is not a user id: it is not a string")
    problem = user_id_problem(user)
    if problem is not None:
        raise ValueError(f"{_shown(user)} is not a user id the middleware produces: it {problem}")
    return user


def create_blueprint() -> Blueprint:
    """The roles API, for the ``admin`` role only."""
    api = Blueprint("roles", __name__, url_prefix="/api")
    admin = requires(HasRole(ADMIN_ROLE))

    @api.get("/roles")
    @admin
    def every_holder() -> Response:
        return jsonify(all_roles(get_db()))

    @api.get("/roles/<path:user>")
    @admin
    def holder(user: str) -> Response:
        user = _user(user)
        return jsonify(user=user, roles=roles_of(get_db(), user))

    @api.put("/roles/<path:user>")
    @admin
    def change(user: str) -> Response:
        user = _user(user)
        roles = _roles(json_body())
        identity = get_identity()
        return jsonify(user=user, roles=set_roles(get_db(), user, roles, identity.user if identity else None))

    return api


def _user(user: str) -> str:
    try:
        return valid_user(user)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _roles(body: object) -> list[str]:
    roles = body["roles"] if isinstance(body, dict) and set(body) == {"roles"} else body
    if not isinstance(roles, list):
        raise BadRequest('the body must be {"roles": [role names]} or an array of role names')
    if len(roles) > MAX_ROLES:
        raise BadRequest(f'"roles" may hold at most {MAX_ROLES} role names')
    try:
        return [valid_role(role) for role in roles]
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _shown(value: object) -> str:
    # Client input in a message: quoted, and short.
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."
