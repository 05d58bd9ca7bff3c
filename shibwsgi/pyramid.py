"""Pyramid adapter: a security policy whose identity is the front end's.

The only shibwsgi module that imports Pyramid (install the ``pyramid`` extra)::

    from shibwsgi.pyramid import IdentitySecurityPolicy

    config.set_security_policy(IdentitySecurityPolicy(groups_attribute="groups"))
    application = SSOMiddleware(config.make_wsgi_app(), attributes={...})

Permissions come from ACLs (``__acl__``) over the principals ``system.Everyone``,
``system.Authenticated``, ``user:<id>``, ``group:<value>`` (each value of the groups
attribute) and ``role:<name>`` (``identity.roles``, when the app has a roles hook).

The user ids ``system.Everyone`` and ``system.Authenticated`` are Pyramid's own
principals, which Pyramid refuses as user ids: such an identity is anonymous here
(and logged).

Logging in and out belongs to the front end and :class:`~shibwsgi.SSOMiddleware`,
not to Pyramid: :meth:`~IdentitySecurityPolicy.remember` and
:meth:`~IdentitySecurityPolicy.forget` return no headers; send the browser to the
middleware's ``login_path`` (:func:`login_url`) or ``logout_path`` instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.interfaces import ISecurityPolicy
from zope.interface import implementer  # type: ignore[import-untyped]

from .errors import ConfigError
from .identity import Identity
from .logs import loggable
from .middleware import ENVIRON_KEY, LOGIN_PATH_KEY
from .paths import script_root

if TYPE_CHECKING:
    from pyramid.request import Request

__all__ = ["IdentitySecurityPolicy", "login_url"]

log = logging.getLogger("shibwsgi.pyramid")

#: Principals Pyramid gives everyone: never a user id (Pyramid's own policies refuse them too).
_RESERVED = frozenset((Everyone, Authenticated))


@implementer(ISecurityPolicy)
class IdentitySecurityPolicy:
    """Pyramid 2 security policy over ``environ["shibwsgi.identity"]``."""

    def __init__(self, *, groups_attribute: str = "groups") -> None:
        if not isinstance(groups_attribute, str) or not groups_attribute:
            raise ConfigError("groups_attribute", f"expected an attribute name, not {groups_attribute!r}")
        self.groups_attribute = groups_attribute
        self.acl = ACLHelper()

    def identity(self, request: Request) -> Identity | None:
        """The request's :class:`~shibwsgi.Identity`, or ``None`` when anonymous."""
        identity = request.environ.get(ENVIRON_KEY)
        if not isinstance(identity, Identity):
            return None
        if identity.user in _RESERVED:
            log.warning("identity refused: the user id %s is a Pyramid principal", loggable(identity.user))
            return None
        return identity

    def authenticated_userid(self, request: Request) -> str | None:
        identity = self.identity(request)
        return identity.user if identity is not None else None

    def principals(self, identity: Identity | None) -> list[str]:
        """The principals ``identity`` holds, for ACL checks."""
        if identity is None or identity.user in _RESERVED:
            return [Everyone]
        groups = identity.attributes.get(self.groups_attribute, ())
        # identity.roles comes from the app's roles hook, when it has one.
        roles = getattr(identity, "roles", ())
        return [
            Everyone,
            Authenticated,
            f"user:{identity.user}",
            *(f"group:{group}" for group in groups),
            *(f"role:{role}" for role in roles),
        ]

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        """An ``ACLAllowed``/``ACLDenied`` for ``permission`` on ``context``'s ACL."""
        return self.acl.permits(context, self.principals(self.identity(request)), permission)

    def remember(self, request: Request, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        """No headers: the front end logs users in (see :func:`login_url`)."""
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        """No headers: send the browser to the middleware's ``logout_path`` instead."""
        return []


def login_url(request: Request, next_path: str | None = None) -> str:
    """The middleware's login path under the app's ``SCRIPT_NAME``, coming back to ``next_path``.

    ``next_path`` defaults to this page (with its ``SCRIPT_NAME``); give one the same way.
    ``SCRIPT_NAME`` is percent-escaped, and a trailing or doubled leading ``/`` is dropped
    (``//host`` would name another site).
    """
    path = request.environ.get(LOGIN_PATH_KEY) or "/login"
    mount = script_root(request.environ)
    return f"{mount}{path}?next={quote(next_path or request.path_qs, safe='')}"
