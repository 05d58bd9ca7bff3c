"""Options grouped by what they configure: sessions, roles, signed assertions, proxy trust.

Each group is a frozen object that checks its own fields when it is made, so a
mistake fails where it was written. Both middlewares accept a group or the same
options as flat keywords (``session=``, ``secret_key=``, ``roles_ttl=`` ...): the
flat keywords and ``SHIBWSGI_*`` settings are another spelling of the same groups,
and giving one option both ways is a :class:`~shibwsgi.ConfigError`. What depends
on the rest of the configuration (an option that needs another, keys against the
profile) is checked by the middleware, in :mod:`shibwsgi.needs`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .cookies import DEFAULT_CACHE_ENTRIES, SessionCookie
from .errors import ConfigError
from .keys import check_url
from .options import non_negative, positive, strings, text, token
from .roles import DEFAULT_ROLES_TIMEOUT, DEFAULT_ROLES_TTL, RolesHook, check_roles_options
from .sessions.base import SessionStore, check_store
from .trust import DEFAULT_SECRET_HEADER, parse_networks

__all__ = ["ProxyTrust", "Roles", "Sessions", "SignedAssertions", "expand_groups", "shell_signature"]

#: See :data:`shibwsgi.core.DEFAULT_IDLE_TIMEOUT` (the Shibboleth SP's own defaults).
_IDLE, _ABSOLUTE = 3600, 28800


@dataclass(frozen=True, repr=False)
class Sessions:
    """Server-side sessions: the login path's identity kept for later requests.

    - ``store``: where sessions live (``MemoryStore``, ``SQLiteStore``, ``RedisStore``).
    - ``secret_key``: signs the session cookie; a list rotates keys (oldest first, the newest signs).
    - ``idle_timeout``: seconds of inactivity that end a session (3600).
    - ``absolute_timeout``: seconds after login that end it whatever happens (28800).
    - ``cookie_name``: the cookie's name (default ``__Host-shibwsgi`` when secure, else ``shibwsgi``).
    - ``cookie_secure``: send the cookie over HTTPS only (True).
    - ``cookie_cache_entries``: verified cookies remembered per worker (0: verify every time).
    """

    store: SessionStore
    secret_key: str | Sequence[str] | None = None
    idle_timeout: int = _IDLE
    absolute_timeout: int = _ABSOLUTE
    cookie_name: str | None = None
    cookie_secure: bool = True
    cookie_cache_entries: int = DEFAULT_CACHE_ENTRIES

    def __post_init__(self) -> None:
        check_store(self.store)
        if self.secret_key is None:
            raise ConfigError("secret_key", "a session store needs secret_key to sign the session cookie")
        if positive("idle_timeout", self.idle_timeout) > positive("absolute_timeout", self.absolute_timeout):
            raise ConfigError("idle_timeout", "cannot be longer than absolute_timeout")
        non_negative("cookie_cache_entries", self.cookie_cache_entries)
        # The cookie checks its own key, name and Secure flag: made once here, then dropped.
        SessionCookie(
            self.secret_key,
            name=None if self.cookie_name is None else token("cookie_name", self.cookie_name),
            secure=self.cookie_secure,
            max_age=self.absolute_timeout,
            cache_entries=0,
        )

    def __repr__(self) -> str:
        return (
            f"Sessions(store={self.store!r}, secret_key='***', idle_timeout={self.idle_timeout}, "
            f"absolute_timeout={self.absolute_timeout}, cookie_name={self.cookie_name!r})"
        )


@dataclass(frozen=True)
class Roles:
    """Roles from the application's own data (:mod:`shibwsgi.roles`).

    - ``hook``: identity -> role names; under ASGI it may be an ``async def`` function.
    - ``ttl``: seconds an answer is reused for the same user and attributes (60; 0: never).
    - ``timeout``: seconds the hook may take before the request gets 503 (5).
    """

    hook: RolesHook
    ttl: int = DEFAULT_ROLES_TTL
    timeout: float = DEFAULT_ROLES_TIMEOUT

    def __post_init__(self) -> None:
        check_roles_options(self.hook, self.ttl, self.timeout)


@dataclass(frozen=True)
class SignedAssertions:
    """How a signed assertion (Pomerium, IAP, Cloudflare Access, ALB) or ID token is verified.

    Unset fields take the profile's own values.

    - ``jwks_url``: where the front end publishes its keys (https; http only to loopback).
    - ``jwks``: the keys themselves (a JWKS document, mapping or PEM), instead of ``jwks_url``.
    - ``issuer``: the ``iss`` the token must carry.
    - ``audience``: the ``aud`` value(s), one of which the token must carry.
    - ``algorithms``: the signature algorithms accepted (never ``none``).
    - ``leeway``: seconds of clock skew allowed on ``exp``/``nbf`` (0).
    - ``assertion_header``: the header that carries the token, when not the profile's.
    """

    jwks_url: str | None = None
    jwks: Mapping[str, Any] | str | None = None
    issuer: str | None = None
    audience: str | Iterable[str] | None = None
    algorithms: str | Iterable[str] | None = None
    leeway: int = 0
    assertion_header: str | None = None

    def __post_init__(self) -> None:
        if self.jwks_url is not None:
            check_url("jwks_url", self.jwks_url)
        text("issuer", self.issuer)
        if self.audience is not None:
            object.__setattr__(self, "audience", strings("audience", self.audience))
        if self.algorithms is not None:
            object.__setattr__(self, "algorithms", strings("algorithms", self.algorithms))
        non_negative("leeway", self.leeway)
        if self.assertion_header is not None:
            token("assertion_header", self.assertion_header)


@dataclass(frozen=True, repr=False)
class ProxyTrust:
    """Which peers' identity headers are believed (the ``headers`` channel; ASGI's only one).

    - ``trusted_proxies``: the proxies' IP addresses or CIDR blocks.
    - ``proxy_secret``: a secret the proxy adds to every request; without it the headers are ignored.
    - ``proxy_secret_header``: the header carrying it (``X-Shibwsgi-Proxy-Secret``).
    """

    trusted_proxies: Iterable[str] = ()
    proxy_secret: str | None = None
    proxy_secret_header: str = DEFAULT_SECRET_HEADER

    def __post_init__(self) -> None:
        proxies = strings("trusted_proxies", self.trusted_proxies, allow_empty=True)
        parse_networks(proxies)
        object.__setattr__(self, "trusted_proxies", proxies)
        text("proxy_secret", self.proxy_secret)
        token("proxy_secret_header", self.proxy_secret_header)

    def __repr__(self) -> str:
        secret = "'***'" if self.proxy_secret else "None"
        return f"ProxyTrust(trusted_proxies={list(self.trusted_proxies)!r}, proxy_secret={secret})"


#: group keyword -> (its class, group field -> flat keyword)
_GROUPS: dict[str, tuple[type, dict[str, str]]] = {
    "sessions": (
        Sessions,
        {
            "store": "session",
            **{name: name for name in ("secret_key", "idle_timeout", "absolute_timeout")},
            **{name: name for name in ("cookie_name", "cookie_secure", "cookie_cache_entries")},
        },
    ),
    "roles": (Roles, {"hook": "roles", "ttl": "roles_ttl", "timeout": "roles_timeout"}),
    "signed_assertions": (
        SignedAssertions,
        {field.name: field.name for field in dataclasses.fields(SignedAssertions)},
    ),
    "proxy_trust": (ProxyTrust, {field.name: field.name for field in dataclasses.fields(ProxyTrust)}),
}


def expand_groups(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with each group object replaced by its flat keywords.

    A flat keyword given beside the group that holds it is a ConfigError: one
    option, one place.
    """
    flat = dict(options)
    for keyword, (group_type, fields) in _GROUPS.items():
        group = flat.get(keyword)
        if not isinstance(group, group_type):
            if keyword != "roles" and keyword in flat:
                raise ConfigError(keyword, f"expected {group_type.__name__}(...), got {type(group).__name__}")
            continue
        del flat[keyword]
        for field, name in fields.items():
            if name in flat:
                raise ConfigError(name, f"given twice: as a keyword and in {group_type.__name__}(...)")
            flat[name] = getattr(group, field)
    return flat


def shell_signature(options: Callable[..., Any]) -> inspect.Signature:
    """A middleware's signature: ``app``, then ``options``' keywords and the group keywords.

    The middlewares take ``**options`` and pass them on; this keeps ``inspect.signature``
    (and whoever lists the options by it, like the Flask extension) telling the truth.
    """
    keywords = [
        parameter for name, parameter in inspect.signature(options).parameters.items() if name != "self"
    ]
    groups = [
        inspect.Parameter(
            keyword, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f"{kind.__name__} | None"
        )
        for keyword, (kind, _) in _GROUPS.items()
        if keyword not in {parameter.name for parameter in keywords}
    ]
    app = inspect.Parameter("app", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature([app, *keywords, *groups])
