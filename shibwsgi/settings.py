"""Building the middleware from string settings (``SHIBWSGI_*`` variables, ini files).

Each setting has a converter from text; an unknown ``SHIBWSGI_*`` name is an
error, so a typo in uwsgi.ini fails at start-up instead of being ignored. A
name that misses the prefix itself (``SHIBWSG_PROFILE``, ``shibwsgi-profile``)
is not read, and logs a warning naming the setting it looks like.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from .attributes import Attribute
from .errors import ConfigError

__all__ = ["PREFIX", "SETTINGS", "duration", "near_misses", "parse_settings"]

log = logging.getLogger("shibwsgi")

PREFIX = "SHIBWSGI_"
_SEPARATORS = re.compile(r"[\s,]+")
_DURATION = re.compile(r"([0-9]+)\s*([smhd]?)", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: How alike (difflib ratio) a name's prefix must be to ``SHIBWSGI`` to count as a near miss.
_NEAR = 0.8


def words(text: str) -> tuple[str, ...]:
    """Split a list written with commas and/or white space."""
    return tuple(word for word in _SEPARATORS.split(text.strip()) if word)


def integer(text: str) -> int:
    """A whole number."""
    return int(text.strip())


def duration(text: str) -> int:
    """Seconds: ``90``, or a number with a unit: ``90s``, ``15m``, ``1h``, ``1d``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: write seconds (3600) or a whole number with "
            "s, m, h or d (90s, 15m, 1h, 1d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


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
        if name in result:
            raise ValueError(f"{name!r} is given twice")
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
    result: dict[str, str] = {}
    for entry in words(text):
        name, equals, source = entry.partition("=")
        if not equals or not name or not source:
            raise ValueError(f"{entry!r} is not Header=source")
        if name.lower() in (known.lower() for known in result):
            raise ValueError(f"{name!r} is given twice")
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
    "IDLE_TIMEOUT": ("idle_timeout", duration),
    "ABSOLUTE_TIMEOUT": ("absolute_timeout", duration),
    "COOKIE_NAME": ("cookie_name", text),
    "COOKIE_SECURE": ("cookie_secure", boolean),
    "LOGIN_PATH": ("login_path", optional_path),
    "LOGOUT_PATH": ("logout_path", optional_path),
    "WHOAMI_PATH": ("whoami_path", optional_path),
    "LOGIN_URL": ("login_url", text),
    "LOGOUT_URL": ("logout_url", text),
    "IDENTITY_CACHE_BYTES": ("identity_cache_bytes", integer),
    "COOKIE_CACHE_ENTRIES": ("cookie_cache_entries", integer),
    "ROLES": ("roles", function),
    "ROLES_TTL": ("roles_ttl", duration),
    "ROLES_TIMEOUT": ("roles_timeout", number),
    "AUTH_PATH": ("auth_path", optional_path),
    "AUTH_HEADERS": ("auth_headers", headers),
    "ASSERTION_HEADER": ("assertion_header", text),
    "JWKS_URL": ("jwks_url", text),
    "JWKS": ("jwks", text),
    "ISSUER": ("issuer", text),
    "AUDIENCE": ("audience", words),
    "ALGORITHMS": ("algorithms", words),
    "LEEWAY": ("leeway", duration),
    "ERROR_PAGE": ("error_page", function),
    "PROBE_PATH": ("probe_path", text),
    "PROBE_TOKEN": ("probe_token", text),
}


#: The Django adapter's own settings (``settings.py``): the middleware's settings never spell them.
DJANGO_ADAPTER_SETTINGS = frozenset({"USER_FIELDS", "GROUPS_ATTRIBUTE", "GROUPS_PREFIX"})


def parse_settings(settings: Mapping[str, str]) -> dict[str, Any]:
    """Convert ``SHIBWSGI_*`` entries to keyword arguments; other keys are ignored.

    Keys that look like a misspelt prefix are logged (see :func:`near_misses`).
    """
    for key, meant in near_misses(settings):
        log.warning("%s is not read: did you mean %s? (settings are spelt SHIBWSGI_NAME)", key, meant)
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name in DJANGO_ADAPTER_SETTINGS:
            raise ConfigError(
                key,
                "is a setting of the Django adapter (shibwsgi.django), read from Django's "
                "settings.py, not from the environment: move it there",
            )
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f"did you mean {PREFIX}{close[0]}? " if close else ""
            known = ", ".join(PREFIX + known for known in sorted(SETTINGS))
            raise ConfigError(key, f"unknown setting; {hint}known settings are {known}")
        keyword, convert = SETTINGS[name]
        try:
            options[keyword] = convert(value)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(key, str(exc)) from None
    return options


def near_misses(keys: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(key, setting)`` for each key that is a setting's name under a misspelt prefix.

    ``SHIBWSG_PROFILE``, ``SHIBWSGI-PROFILE``, ``shibwsgi_profile``, ``SHIB_WSGI_PROFILE``
    all give ``SHIBWSGI_PROFILE``: the name must be a known setting's, the prefix
    close to ``SHIBWSGI`` once case, dashes and underscores are set aside.
    """
    stem = PREFIX.rstrip("_")
    for key in keys:
        if key.startswith(PREFIX):
            continue
        spelt = key.upper().replace("-", "_")
        for name in SETTINGS:
            head = spelt[: -len(name)].replace("_", "")
            if spelt.endswith(name) and head and difflib.SequenceMatcher(None, head, stem).ratio() >= _NEAR:
                yield key, PREFIX + name
                break
