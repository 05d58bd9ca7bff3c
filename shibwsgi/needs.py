"""Internal: which option needs which: an option that cannot take effect is a :class:`~shibwsgi.ConfigError`.

:data:`NEEDS` lists every option of :class:`~shibwsgi.SSOMiddleware` with what it needs
to take effect (``None``: it always does). An option counts as given when its value
differs from the signature's default, so string settings that spell out a default
(``SHIBWSGI_COOKIE_SECURE=true`` without a session) are not refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .profiles import REMOTE_USER, Profile

__all__ = [
    "NEEDS",
    "Need",
    "Setup",
    "check_needs",
    "given_options",
    "keyword_defaults",
    "markdown_table",
    "source_reads",
]


@dataclass(frozen=True)
class Setup:
    """What the configuration decided, as far as another option's effect depends on it."""

    profile: Profile
    channel: str  # "environ", "headers" or "signed"
    session: bool
    roles: bool
    jwks: bool  # jwks_url or jwks given
    proxy_secret: bool
    login_path: bool
    logout_path: bool
    auth_path: bool
    probe_token: bool
    uncapped_attributes: bool  # an attribute without its own max_bytes
    prefixed: bool = True  # a source is read through the profile's prefixes
    decoded: bool = True  # a variable is decoded with the profile's encoding

    @property
    def token_profile(self) -> bool:
        """The front end passes a signed token (an assertion, or an ID token to verify)."""
        return self.profile.signed or self.profile.id_token_variable is not None

    @property
    def verifies(self) -> bool:
        """A token is verified: a signed profile, or an ID token profile with keys."""
        return self.profile.signed or (self.profile.id_token_variable is not None and self.jwks)

    @property
    def reads_variables(self) -> bool:
        """Identity comes from variables or headers, decoded, not only from verified claims."""
        return not self.profile.signed or bool(self.profile.variables)


@dataclass(frozen=True)
class Need:
    """What an option needs to take effect: ``what`` says it, ``met`` checks it."""

    what: str
    met: Callable[[Setup], bool]


_SESSION = Need("session (a session store)", lambda s: s.session)
_ROLES = Need("roles (the roles hook)", lambda s: s.roles)
_VERIFIED = Need(
    "a verified token: a signed profile (pomerium, iap, aws-alb, ...) or jwks_url/jwks with "
    "a profile that passes a signed ID token (openidc)",
    lambda s: s.verifies,
)
_UNSIGNED = Need(
    "a profile that is not signed (a signed profile reads its token only)", lambda s: not s.profile.signed
)

#: option -> what it needs to take effect (``None``: nothing, it always does).
NEEDS: dict[str, Need | None] = {
    "profile": None,
    "user": None,
    "attributes": None,
    "channel": _UNSIGNED,
    "trusted_proxies": Need(
        "channel='headers' or a signed profile (server variables come from no proxy)",
        lambda s: s.channel != "environ",
    ),
    "proxy_secret": Need(
        "channel='headers' or a signed profile (server variables come from no proxy)",
        lambda s: s.channel != "environ",
    ),
    "proxy_secret_header": Need("proxy_secret", lambda s: s.proxy_secret),
    "encoding": Need(
        "a variable or header decoded with it (not only a signed token's claims, REMOTE_USER "
        "or JSON with its own json_encoding)",
        lambda s: s.reads_variables and s.decoded,
    ),
    "prefix": Need(
        "a profile that is not signed and a source read through the prefix (not only "
        "REMOTE_USER or the profile's fixed variables)",
        lambda s: not s.profile.signed and s.prefixed,
    ),
    "max_attribute_bytes": Need(
        "an attribute without its own Attribute(max_bytes=...)", lambda s: s.uncapped_attributes
    ),
    "max_attribute_values": None,  # the user's values count too
    "session": None,
    "secret_key": _SESSION,
    "idle_timeout": _SESSION,
    "absolute_timeout": _SESSION,
    "cookie_name": _SESSION,
    "cookie_secure": _SESSION,
    "login_path": None,
    "logout_path": None,
    "whoami_path": None,
    "login_url": Need(
        "login_path (the front end's login is where it sends anonymous users)", lambda s: s.login_path
    ),
    "logout_url": Need(
        "logout_path (the front end's logout is where it sends users)", lambda s: s.logout_path
    ),
    "rules": None,
    "identity_cache_bytes": Need(
        "a profile whose identity is not a verified token (verified tokens have their own cache)",
        lambda s: not s.verifies,
    ),
    "cookie_cache_entries": _SESSION,
    "roles": None,
    "roles_ttl": _ROLES,
    "roles_timeout": _ROLES,
    "auth_path": None,
    "auth_headers": Need("auth_path (the answers to nginx's auth_request carry them)", lambda s: s.auth_path),
    "assertion_header": Need("a signed profile (pomerium, iap, jwt, ...)", lambda s: s.profile.signed),
    "jwks_url": Need(
        "a profile that passes a signed token (a signed profile, or openidc)", lambda s: s.token_profile
    ),
    "jwks": Need(
        "a profile that passes a signed token (a signed profile, or openidc)", lambda s: s.token_profile
    ),
    "issuer": _VERIFIED,
    "audience": _VERIFIED,
    "algorithms": _VERIFIED,
    "leeway": _VERIFIED,
    "error_page": None,  # browsers' refusals, whatever the configuration
    "probe_path": Need(
        "probe_token (the probe answers only requests that carry it)", lambda s: s.probe_token
    ),
    "probe_token": None,
    "clock": None,  # a test seam: tests pass a fake one whether or not anything reads it
}


def source_reads(profile: Profile, sources: Iterable[str]) -> tuple[bool, bool]:
    """Whether ``profile`` reads one of ``sources`` (or its claims) through its prefixes, and
    whether it decodes any variable with its ``encoding``: the Setup's ``prefixed``/``decoded``."""
    names = [*sources, *profile.claims.values()]
    prefixed = any(name != REMOTE_USER and name not in profile.source_variables for name in names)
    decoded = (
        bool(profile.variables)
        or (bool(profile.json_variables) and profile.json_encoding is None)
        or (prefixed and bool(profile.prefixes))
        or any(name in profile.source_variables for name in names)
        or (REMOTE_USER in names and profile.encodes_remote_user)
    )
    return prefixed, decoded


def keyword_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only parameters of ``function`` and their defaults."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def given_options(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> set[str]:
    """The options of ``values`` set to something other than their default."""
    return {name for name, default in defaults.items() if not _is_default(values[name], default)}


def check_needs(given: set[str], setup: Setup) -> None:
    """Raise :class:`ConfigError` for the first given option whose need ``setup`` does not meet."""
    for name, need in NEEDS.items():
        if need is not None and name in given and not need.met(setup):
            raise ConfigError(
                name, f"cannot take effect here: it needs {need.what} (profile {setup.profile.name!r})"
            )


def markdown_table(settings: Mapping[str, str]) -> str:
    """The table as README shows it; ``settings`` maps a keyword to its ``SHIBWSGI_*`` name."""
    rows = ["| option | setting | needs |", "|---|---|---|"]
    for name, need in NEEDS.items():
        setting = f"`{settings[name]}`" if name in settings else "(in code)"
        rows.append(f"| `{name}` | {setting} | {need.what if need else '—'} |")
    return "\n".join(rows) + "\n"


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if isinstance(value, (list, tuple)) and isinstance(default, tuple):
        return tuple(value) == default
    return bool(value == default)
