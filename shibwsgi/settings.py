"""Building the middleware from string settings (``SHIBWSGI_*`` variables, ini files).

Each setting has a converter from text; an unknown ``SHIBWSGI_*`` name is an
error, so a typo in uwsgi.ini fails at start-up instead of being ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .attributes import Attribute
from .errors import ConfigError

__all__ = ["PREFIX", "SETTINGS", "parse_settings"]

PREFIX = "SHIBWSGI_"
_SEPARATORS = re.compile(r"[\s,]+")


def words(text: str) -> tuple[str, ...]:
    """Split a list written with commas and/or white space."""
    return tuple(word for word in _SEPARATORS.split(text.strip()) if word)


def integer(text: str) -> int:
    """A whole number."""
    return int(text.strip())


def boolean(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def attributes(text: str) -> dict[str, Attribute]:
    """``name=source[:multi][:required]`` entries, separated by commas or white space.

    Example: ``email=mail name=displayName groups=isMemberOf:multi``. A source may
    be a URI (``roles=http://schemas.microsoft.com/ws/2008/06/identity/claims/role:multi``):
    only trailing ``:word`` parts are flags.
    """
    result = {}
    for entry in words(text):
        name, equals, source = entry.partition("=")
        flags: list[str] = []
        while (parts := source.rpartition(":"))[1] and parts[2].isalpha():
            source, flags = parts[0], [parts[2], *flags]
        unknown = set(flags) - {"multi", "required"}
        if not equals or not name or not source or unknown:
            raise ValueError(f"{entry!r} is not name=source[:multi][:required]")
        result[name] = Attribute(source, multi="multi" in flags, required="required" in flags)
    return result


def text(value: str) -> str:
    """Text as given, surrounding white space removed."""
    return value.strip()


def optional_path(value: str) -> str | None:
    """A path, or ``none`` / empty to switch the feature off."""
    value = value.strip()
    return None if value.lower() in ("", "none", "off") else value


def number(text: str) -> float:
    """A number of seconds, whole or not (``2.5``)."""
    return float(text.strip())


def function(text: str) -> Any:
    """A function named ``module:function``, imported now (the roles hook)."""
    from .roles import load_hook

    return load_hook(text)


def headers(text: str) -> dict[str, str]:
    """``Header=source`` entries, separated by commas or white space; ``none`` for no headers.

    Example: ``X-Auth-Request-Email=email X-Auth-Request-Groups=groups``.
    """
    if text.strip().lower() == "none":
        return {}
    result = {}
    for entry in words(text):
        name, equals, source = entry.partition("=")
        if not equals or not name or not source:
            raise ValueError(f"{entry!r} is not Header=source")
        result[name] = source
    return result


def store(value: str) -> Any:
    """A session store URL (see :func:`shibwsgi.sessions.store_from_url`)."""
    from .sessions import store_from_url

    return store_from_url(value.strip())


#: setting name (after ``SHIBWSGI_``) -> (keyword argument, converter)
SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "PROFILE": ("profile", text),
    "USER": ("user", words),
    "ATTRIBUTES": ("attributes", attributes),
    "CHANNEL": ("channel", text),
    "TRUSTED_PROXIES": ("trusted_proxies", words),
    "PROXY_SECRET": ("proxy_secret", text),
    "PROXY_SECRET_HEADER": ("proxy_secret_header", text),
    "ENCODING": ("encoding", text),
    "PREFIX": ("prefix", text),
    "MAX_ATTRIBUTE_BYTES": ("max_attribute_bytes", integer),
    "MAX_ATTRIBUTE_VALUES": ("max_attribute_values", integer),
    "SESSION": ("session", store),
    "SECRET_KEY": ("secret_key", words),
    "IDLE_TIMEOUT": ("idle_timeout", integer),
    "ABSOLUTE_TIMEOUT": ("absolute_timeout", integer),
    "COOKIE_NAME": ("cookie_name", text),
    "COOKIE_SECURE": ("cookie_secure", boolean),
    "LOGIN_PATH": ("login_path", optional_path),
    "LOGOUT_PATH": ("logout_path", optional_path),
    "LOGIN_URL": ("login_url", text),
    "LOGOUT_URL": ("logout_url", text),
    "IDENTITY_CACHE_BYTES": ("identity_cache_bytes", integer),
    "COOKIE_CACHE_ENTRIES": ("cookie_cache_entries", integer),
    "ROLES": ("roles", function),
    "ROLES_TTL": ("roles_ttl", integer),
    "ROLES_TIMEOUT": ("roles_timeout", number),
    "AUTH_PATH": ("auth_path", optional_path),
    "AUTH_HEADERS": ("auth_headers", headers),
    "ASSERTION_HEADER": ("assertion_header", text),
    "JWKS_URL": ("jwks_url", text),
    "JWKS": ("jwks", text),
    "ISSUER": ("issuer", text),
    "AUDIENCE": ("audience", words),
    "ALGORITHMS": ("algorithms", words),
    "LEEWAY": ("leeway", integer),
}


def parse_settings(settings: Mapping[str, str]) -> dict[str, Any]:
    """Convert ``SHIBWSGI_*`` entries to keyword arguments; other keys are ignored."""
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name not in SETTINGS:
            known = ", ".join(PREFIX + known for known in sorted(SETTINGS))
            raise ConfigError(key, f"unknown setting; known settings are {known}")
        keyword, convert = SETTINGS[name]
        try:
            options[keyword] = convert(value)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(key, str(exc)) from None
    return options
