"""What the ``SHIBWSGI_*`` settings decide, for the checks: profile, channel, encoding, sizes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..attributes import DEFAULT_MAX_BYTES
from ..errors import ConfigError
from ..middleware import SSOMiddleware
from ..settings import PREFIX, boolean, parse_settings
from .addresses import is_loopback
from .findings import ERROR, Finding, Location

__all__ = ["AppSettings", "is_identity", "read_settings"]

#: Bytes a request carries besides the mapped attributes: CGI variables, headers, cookies
#: and the front end's own variables (Shibboleth's alone are ~0.55 KB; measured ~1.8 KB in all).
OVERHEAD = 4096
#: The uwsgi packet's vars block size is a 16-bit number.
UWSGI_MAX = 65535
#: Settings the doctor must not turn into objects: they would open databases, connect, or
#: import (and so run) the application's own code.
_SIDE_EFFECTS = ("SHIBWSGI_SESSION", "SHIBWSGI_SECRET_KEY", "SHIBWSGI_ROLES")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: ``package.module:function`` (or ``:Class.method``), as :func:`shibwsgi.roles.load_hook` reads it.
_HOOK = re.compile(rf"{_NAME}(\.{_NAME})*:{_NAME}(\.{_NAME})*")
#: Without the app's settings: names that look like an identity.
_IDENTITY_LIKE = re.compile(
    r"USER|EMAIL|GROUP|EPPN|UID|PRINCIPAL|ROLE|IDENTITY|ASSERTION|JWT|SHIB|OIDC|MELLON", re.IGNORECASE
)


@dataclass(frozen=True)
class AppSettings:
    """The middleware's configuration as far as the deployment files must agree with it."""

    profile: str
    channel: str
    encoding: str
    header_keys: frozenset[str]  # HTTP_* keys the app reads identity from (headers channel)
    identity_keys: frozenset[str]  # every environ key the app reads identity from, any channel
    open_paths: frozenset[str]  # the app's own paths that need no login (logout)
    variable_names: frozenset[str]  # the front end's names for them (headers or server variables)
    login_path: str | None
    probe_path: str | None
    sessions: bool
    cookie_secure: bool
    needed_buffer: int
    where: Mapping[str, Location]  # setting -> where it was set


def is_identity(key: str, app: AppSettings | None) -> bool:
    """Whether the app reads identity from environ ``key`` (without settings: whether it looks so)."""
    if app is None:
        return bool(_IDENTITY_LIKE.search(key))
    return key in app.identity_keys or key in app.header_keys or key == "REMOTE_USER"


def _noop_app(environ: object, start_response: object) -> list[bytes]:
    return []


def read_settings(
    settings: Mapping[str, str], where: Mapping[str, Location]
) -> tuple[AppSettings | None, list[Finding]]:
    """Validate ``settings`` as the middleware would; ``None`` (and the error) when invalid."""
    ours = {key: value for key, value in settings.items() if key.startswith(PREFIX)}
    inert = {key: value for key, value in ours.items() if key not in _SIDE_EFFECTS}
    try:
        options = parse_settings(inert)
        if "SHIBWSGI_ROLES" in ours:
            options["roles"] = _roles_hook(ours["SHIBWSGI_ROLES"])
        middleware = SSOMiddleware(_noop_app, **options)
        secure = boolean(ours.get("SHIBWSGI_COOKIE_SECURE", "true"))
    except (ConfigError, ValueError, TypeError, ImportError) as exc:
        # The middleware refuses a plain-http key URL too: the specific finding says more.
        specific = _jwks_url(ours, where)
        if specific:
            return None, specific
        setting = getattr(exc, "setting", "SHIBWSGI_*")
        setting = setting if setting.startswith(PREFIX) else PREFIX + setting.upper()
        location = where.get(setting, Location("settings"))
        fix = "correct it: the app will not start (see the README's configuration reference)."
        return None, [Finding(ERROR, "invalid-setting", location, f"{exc}.", fix)]
    caps = [
        attribute.max_bytes or options.get("max_attribute_bytes", DEFAULT_MAX_BYTES)
        for attribute in options.get("attributes", {}).values()
    ] or [options.get("max_attribute_bytes", DEFAULT_MAX_BYTES)]
    header_keys = frozenset(key for key in middleware.parser.read_keys() if key.startswith("HTTP_"))
    app = AppSettings(
        profile=middleware.profile.name,
        channel=middleware.channel,
        encoding=middleware.profile.encoding,
        header_keys=header_keys if middleware.channel == "headers" else frozenset(),
        identity_keys=frozenset(middleware.parser.read_keys()),
        open_paths=frozenset(p for p in (middleware.logout_path,) if p is not None),
        variable_names=frozenset(middleware.parser.variable_names() | set(middleware.profile.companions)),
        login_path=middleware.login_path,
        probe_path=middleware.probe.path if middleware.probe else None,
        sessions="SHIBWSGI_SESSION" in ours,
        cookie_secure=secure,
        needed_buffer=min(UWSGI_MAX, sum(caps) + OVERHEAD),
        where=where,
    )
    return app, _jwks_url(ours, where)


def _roles_hook(reference: str) -> Any:
    """Check ``module:function`` by its form only: importing it would run the app's code."""
    if not _HOOK.fullmatch(reference.strip()):
        raise ConfigError("SHIBWSGI_ROLES", f"{reference!r} is not module:function")
    return _noop_app


def _jwks_url(settings: Mapping[str, str], where: Mapping[str, Location]) -> list[Finding]:
    url = settings.get("SHIBWSGI_JWKS_URL", "").strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return []  # the middleware refused it already, or will
    if parts.scheme != "http" or is_loopback(host):
        return []
    https = parts._replace(scheme="https").geturl()
    return [
        Finding(
            ERROR,
            "jwks-over-http",
            where.get("SHIBWSGI_JWKS_URL", Location("settings")),
            f"SHIBWSGI_JWKS_URL {url} is plain http to {host}: whoever is on the path can serve their own keys and sign any identity.",
            f"SHIBWSGI_JWKS_URL={https}",
        )
    ]
