"""Superset behind single sign-on: shibwsgi verifies the front end, Superset's users follow it.

Put this file on Superset's PYTHONPATH (or point SUPERSET_CONFIG_PATH at it),
install shibwsgi with the fab extra next to Superset, and set the middleware's
SHIBWSGI_* variables in Superset's environment (see the README, "Superset,
Airflow and Flask-AppBuilder apps"):

    SHIBWSGI_PROFILE=shibboleth
    SHIBWSGI_ATTRIBUTES="email=mail first_name=givenName last_name=sn groups=isMemberOf:multi"
"""

from __future__ import annotations

from flask_appbuilder.const import AUTH_REMOTE_USER
from superset.security import SupersetSecurityManager

from shibwsgi import SSOMiddleware
from shibwsgi.fab import SSOSecurityMixin


class SecurityManager(SSOSecurityMixin, SupersetSecurityManager):
    """Superset's security manager, logging in whom the front end signed in."""


CUSTOM_SECURITY_MANAGER = SecurityManager
# Superset wraps app.wsgi_app with each of these: every request passes the middleware.
ADDITIONAL_MIDDLEWARE = [SSOMiddleware.from_env]

# FAB's login page sends people to the front end (the middleware's /login).
AUTH_TYPE = AUTH_REMOTE_USER
# First sight of a user creates it, with this role...
AUTH_USER_REGISTRATION = True
AUTH_USER_REGISTRATION_ROLE = "Gamma"
# ...plus the roles its groups map to, recomputed at each new front-end login.
AUTH_ROLES_MAPPING = {
    "superset-admins": ["Admin"],
    "data-analysts": ["Alpha"],
}
AUTH_ROLES_SYNC_AT_LOGIN = True
# Which identity attributes fill the user's fields, and which one holds the groups.
AUTH_SHIBWSGI_USER_FIELDS = {"first_name": "first_name", "last_name": "last_name", "email": "email"}
AUTH_SHIBWSGI_ROLES_ATTRIBUTE = "groups"
# The admin `superset fab create-admin` made keeps its password: a front-end user of the same
# name (in any case) is refused, unless True lets it take over the account of exactly its name.
AUTH_SHIBWSGI_ADOPT_USERS = False
