"""Flask-AppBuilder (Superset, Airflow, any FAB app): log the shibwsgi identity in.

The security manager reads ``environ["shibwsgi.identity"]`` only, never a
header or ``AUTH_REMOTE_USER_ENV_VAR``: the middleware has verified it. A new
front-end login finds or creates the FAB user (``AUTH_USER_REGISTRATION``,
``AUTH_USER_REGISTRATION_ROLE``), maps the values of its groups attribute to
roles through ``AUTH_ROLES_MAPPING`` (``AUTH_ROLES_SYNC_AT_LOGIN``) and logs it
in; when the identity disappears, a user it logged in is logged out. Users who
logged in with a password are left alone, and so are their accounts: an
identity logs in only to an account of the front end's (created by this
manager, or without a password) whose username it equals exactly. Install the ``fab`` extra::

    FAB_SECURITY_MANAGER_CLASS = "shibwsgi.fab.SSOSecurityManager"  # any FAB app
    AUTH_TYPE = AUTH_REMOTE_USER  # FAB's login page sends people to the front end

Superset and Airflow have their own manager classes: combine
:class:`SSOSecurityMixin` with theirs (see ``examples/superset/``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import current_app, g, redirect, request, session
from flask_appbuilder import expose
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.views import AuthView
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from .errors import ConfigError
from .fingerprint import login_fingerprint
from .flask import get_identity, login_url, logout_url
from .identity import Identity
from .logs import loggable
from .redirects import safe_next
from .responses import error

__all__ = ["DEFAULT_USER_FIELDS", "SSOAuthView", "SSOSecurityManager", "SSOSecurityMixin"]

log = logging.getLogger("shibwsgi")

#: FAB user field -> identity attribute; ``AUTH_SHIBWSGI_USER_FIELDS`` replaces it.
DEFAULT_USER_FIELDS: Mapping[str, str] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
}
#: The identity attribute whose values are ``AUTH_ROLES_MAPPING`` keys; ``AUTH_SHIBWSGI_ROLES_ATTRIBUTE``.
DEFAULT_ROLES_ATTRIBUTE = "groups"
_FIELDS = frozenset(DEFAULT_USER_FIELDS)
#: Session key: the fingerprint of the front-end login this manager logged in.
SESSION_KEY = "_shibwsgi_login"
#: The password hash of the accounts this manager creates. No hash function produces it (werkzeug
#: reads ``method$salt$hash``), so no password logs in to them, and it tells them from password accounts.
SSO_PASSWORD_HASH = "!shibwsgi:front-end-only"  # noqa: S105  # a marker, not a secret


class SSOAuthView(AuthView):
    """FAB's login and logout pages under ``AUTH_REMOTE_USER``, delegated to the middleware.

    Login sends the browser to the middleware's login path (the front end signs the
    person in); a person the front end signed in but FAB refused gets 403, never a
    loop back to the login page. Logout ends the FAB login, then the front end's.
    """

    @expose("/login/")
    def login(self) -> Response:
        target = safe_next(request.args.get("next"), default=self.appbuilder.get_url_for_index)
        if g.user is not None and g.user.is_authenticated:
            return redirect(target)
        if get_identity() is not None:
            return current_app.response_class.from_app(
                lambda environ, start_response: error(
                    environ,
                    start_response,
                    403,
                    "you are signed in, but this application has no account for you: "
                    "ask its administrators for access",
                ),
                request.environ,
            )
        return redirect(login_url(next=target))

    @expose("/logout/")
    def logout(self) -> Response:
        user = g.user if g.user is not None and g.user.is_authenticated else None
        logout_user()
        session.pop(SESSION_KEY, None)
        on_logout = getattr(self.appbuilder.sm, "on_user_logout", None)  # FAB 5's hook
        if user is not None and on_logout is not None:
            on_logout(user)
        return redirect(logout_url(next=self.appbuilder.get_url_for_index))


class SSOSecurityMixin:
    """Log the shibwsgi identity in on every request; mix in before FAB's ``SecurityManager``.

    Settings (``app.config``): ``AUTH_SHIBWSGI_USER_FIELDS`` (FAB field -> identity
    attribute for ``first_name``, ``last_name``, ``email``; default the same names),
    ``AUTH_SHIBWSGI_ROLES_ATTRIBUTE`` (default ``groups``), ``AUTH_SHIBWSGI_ADOPT_USERS``
    (default ``False``: ``True`` lets an identity take over the password account of
    exactly its name, whose password then stops working), and FAB's own
    ``AUTH_USER_REGISTRATION``, ``AUTH_USER_REGISTRATION_ROLE``, ``AUTH_ROLES_MAPPING``
    and ``AUTH_ROLES_SYNC_AT_LOGIN``.
    """

    authremoteuserview = SSOAuthView

    def __init__(self, appbuilder: Any) -> None:
        super().__init__(appbuilder)  # type: ignore[call-arg]
        # FAB 4 reaches its app through appbuilder.get_app; FAB 5 runs this in its app context.
        config = appbuilder.get_app.config if hasattr(appbuilder, "get_app") else current_app.config
        self.sso_user_fields = _user_fields(config.get("AUTH_SHIBWSGI_USER_FIELDS", DEFAULT_USER_FIELDS))
        self.sso_roles_attribute = config.get("AUTH_SHIBWSGI_ROLES_ATTRIBUTE", DEFAULT_ROLES_ATTRIBUTE)
        if not isinstance(self.sso_roles_attribute, str) or not self.sso_roles_attribute:
            raise ConfigError("AUTH_SHIBWSGI_ROLES_ATTRIBUTE", "must be the name of an identity attribute")
        self.sso_adopt_users = config.get("AUTH_SHIBWSGI_ADOPT_USERS", False)
        if not isinstance(self.sso_adopt_users, bool):
            raise ConfigError("AUTH_SHIBWSGI_ADOPT_USERS", "must be True or False")

    def before_request(self) -> None:
        """FAB's per-request hook: first make the login match the identity."""
        self.sync_identity(get_identity())
        super().before_request()  # type: ignore[misc]

    def sync_identity(self, identity: Identity | None) -> None:
        """Log ``identity``'s user in (creating and syncing it), or out when it is gone."""
        ours = session.get(SESSION_KEY)
        if identity is None:
            if ours is not None:
                self._log_out()
            return
        fingerprint = login_fingerprint(identity)
        if ours == fingerprint and current_user.is_authenticated:
            return
        user = self.sso_user(identity)
        if user is None:
            # Refused: whoever was logged in is not the person at the front end.
            if current_user.is_authenticated:
                self._log_out()
            return
        login_user(user)
        session[SESSION_KEY] = fingerprint

    def sso_user(self, identity: Identity) -> Any:
        """The FAB user for ``identity``: found, or created when registration is on; ``None`` if refused."""
        sm: Any = self
        user = sm.find_user(username=identity.user)
        fields = self._fields(identity)
        if user is None:
            if not sm.auth_user_registration:
                log.info(
                    "FAB login refused: %s has no account (AUTH_USER_REGISTRATION is off)",
                    loggable(identity.user),
                )
                return None
            user = sm.add_user(
                username=identity.user,
                first_name=fields.get("first_name") or identity.user,
                last_name=fields.get("last_name") or "-",
                email=fields.get("email") or identity.user,
                role=self._roles(identity),
                hashed_password=SSO_PASSWORD_HASH,
            )
            if not user:
                log.warning("FAB login refused: could not create the user %s", loggable(identity.user))
                return None
            log.info("FAB user created: %s", loggable(identity.user))
        elif not user.is_active:
            log.info("FAB login refused: %s is inactive", loggable(identity.user))
            return None
        elif not self._may_log_in_as(user, identity):
            return None
        else:
            # Roles first: their queries would flush the changed fields outside update_user's error handling.
            if sm.auth_roles_sync_at_login:
                user.roles = self._roles(identity)
            for name, value in fields.items():
                setattr(user, name, value)
            # False when the database refuses (an email another user has): never log in with stale roles.
            if sm.update_user(user) is False:
                log.warning("FAB login refused: could not update the user %s", loggable(identity.user))
                return None
        sm.update_user_auth_stat(user)  # counts the login and saves the changes
        return user

    def _may_log_in_as(self, user: Any, identity: Identity) -> bool:
        """Whether ``identity`` may use the account ``find_user`` found: never a password account or a case variant."""
        if user.username != identity.user:
            log.warning(
                "FAB login refused: %s is not exactly the name of the account %s FAB found (AUTH_USERNAME_CI "
                "or the database's collation ignores case or spaces): rename the account to the exact name "
                "the front end sends",
                loggable(identity.user),
                loggable(user.username),
            )
            return False
        if user.password in (None, "", SSO_PASSWORD_HASH):  # no password: made for front-end logins
            return True
        if self.sso_adopt_users:
            user.password = SSO_PASSWORD_HASH  # saved with the login's changes
            log.warning(
                "FAB account %s taken over by the front end (AUTH_SHIBWSGI_ADOPT_USERS): "
                "its password no longer logs in",
                loggable(identity.user),
            )
            return True
        log.warning(
            "FAB login refused: %s is a password account the front end did not create: rename or "
            "delete it, or set AUTH_SHIBWSGI_ADOPT_USERS = True to let the front end take it over",
            loggable(identity.user),
        )
        return False

    def _fields(self, identity: Identity) -> dict[str, str]:
        fields = {}
        for field, attribute in self.sso_user_fields.items():
            value = identity.get(attribute)
            if value and attribute not in identity.dropped:
                fields[field] = value
        return fields

    def _roles(self, identity: Identity) -> list[Any]:
        """``AUTH_ROLES_MAPPING`` applied to the groups, plus the registration role (as FAB's OAuth does)."""
        sm: Any = self
        roles = set(sm.get_roles_from_keys(list(identity.attributes.get(self.sso_roles_attribute, ()))))
        if sm.auth_user_registration:
            role = sm.find_role(sm.auth_user_registration_role)
            if role is None:
                log.warning("AUTH_USER_REGISTRATION_ROLE %r is not a role", sm.auth_user_registration_role)
            else:
                roles.add(role)
        return list(roles)

    def _log_out(self) -> None:
        logout_user()
        session.pop(SESSION_KEY, None)


def _user_fields(fields: object) -> dict[str, str]:
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) and v for v in fields.values()):
        raise ConfigError(
            "AUTH_SHIBWSGI_USER_FIELDS", "expected a mapping of FAB field -> identity attribute"
        )
    unknown = set(fields) - _FIELDS
    if unknown:
        raise ConfigError(
            "AUTH_SHIBWSGI_USER_FIELDS",
            f"{sorted(unknown)} cannot be set from the identity: use {', '.join(sorted(_FIELDS))}",
        )
    return dict(fields)


class SSOSecurityManager(SSOSecurityMixin, SecurityManager):
    """FAB's SQLAlchemy security manager with :class:`SSOSecurityMixin`: ``FAB_SECURITY_MANAGER_CLASS``."""
