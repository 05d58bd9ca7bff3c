"""Internal: validating :class:`~shibwsgi.SSOMiddleware`'s options, once, at construction.

Each function checks one kind of option and returns it in the form the request
path uses; a bad value raises :class:`~shibwsgi.ConfigError` naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from .attributes import Attribute
from .decoding import ENCODINGS
from .errors import ConfigError
from .paths import wsgi_path
from .profiles import Profile
from .redirects import safe_next

__all__ = [
    "attribute_map",
    "check_channel_options",
    "check_source_names",
    "customised",
    "endpoint_path",
    "function",
    "iterable",
    "non_negative",
    "one_of",
    "positive",
    "strings",
    "text",
    "token",
]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def one_of(setting: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` when it is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(setting, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def positive(setting: str, value: int) -> int:
    """A whole number above zero (``bool`` is refused: ``True`` is not a size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(setting, f"must be a positive integer, not {value!r}")
    return value


def non_negative(setting: str, value: int) -> int:
    """A whole number, zero or more (a cache size: 0 switches the cache off)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(setting, f"must be an integer >= 0 (0 switches it off), not {value!r}")
    return value


def strings(setting: str, values: str | Iterable[str], *, allow_empty: bool = False) -> tuple[str, ...]:
    """One string or several, as a tuple of strings."""
    if isinstance(values, str):
        given: Iterable[object] = (values,)
    elif isinstance(values, Iterable) and not isinstance(values, (bytes, Mapping)):
        given = values
    else:
        raise ConfigError(setting, f"expected a string or a list of strings, not {type(values).__name__}")
    items: list[str] = []
    for item in given:
        if not isinstance(item, str) or (not item and not allow_empty):
            raise ConfigError(setting, f"expected non-empty strings, got {item!r}")
        items.append(item)
    if not items and setting == "user":
        raise ConfigError(setting, "at least one source name is needed")
    return tuple(items)


def token(setting: str, name: str) -> str:
    """A header or cookie name (an RFC 9110 token)."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigError(setting, f"must be a header or cookie name such as 'X-Name', not {name!r}")
    return name


def text(setting: str, value: str | None) -> str | None:
    """A string (a URL, a template), or ``None``."""
    if value is not None and not isinstance(value, str):
        raise ConfigError(setting, f"expected a string, not {type(value).__name__}")
    return value


def function(setting: str, value: Callable[..., Any]) -> Callable[..., Any]:
    """A callable (a clock)."""
    if not callable(value):
        raise ConfigError(setting, f"expected a function, not {type(value).__name__}")
    return value


def iterable(setting: str, values: Iterable[Any]) -> Iterable[Any]:
    """A list (of rules)."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ConfigError(setting, f"expected a list, not {type(values).__name__}")
    return values


def endpoint_path(setting: str, path: str | None) -> str | None:
    """A path the middleware answers itself (login, logout, ...), in WSGI form; ``None``: off."""
    if path is None:
        return None
    if not isinstance(path, str) or safe_next(path, default="") != path or "?" in path or "#" in path:
        raise ConfigError(setting, f"must be a plain ASCII path starting with '/', not {path!r}")
    if "//" in path or {".", ".."} & set(path.split("/")):
        # Web servers normalise these away before the app sees the path: it could never match.
        raise ConfigError(setting, f"must be a normalised path (no '//', '.' or '..' segments), not {path!r}")
    try:
        return wsgi_path(path)
    except ValueError as exc:
        raise ConfigError(setting, str(exc)) from None


def attribute_map(attributes: Mapping[str, str | Attribute]) -> dict[str, Attribute]:
    """App attribute name -> :class:`Attribute` (a plain string is a source name)."""
    if not isinstance(attributes, Mapping):
        raise ConfigError("attributes", "expected a mapping of app name -> source name or Attribute")
    result = {}
    for name, spec in attributes.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("attributes", f"attribute names must be non-empty strings, not {name!r}")
        if isinstance(spec, str):
            spec = Attribute(spec)
        if not isinstance(spec, Attribute):
            raise ConfigError("attributes", f"{name!r}: expected a source name or Attribute, got {spec!r}")
        result[name] = spec
    return result


def customised(profile: Profile, *, encoding: str | None, prefix: str | Iterable[str] | None) -> Profile:
    """``profile`` with the ``encoding`` and ``prefix`` overrides applied."""
    if encoding is not None:
        profile = replace(profile, encoding=one_of("encoding", encoding, ENCODINGS))
    if prefix is not None:
        prefixes = (prefix,) if isinstance(prefix, str) else strings("prefix", prefix, allow_empty=True)
        try:
            profile = replace(profile, prefixes=prefixes)
        except ConfigError as exc:  # the profile names its field; the option is "prefix"
            raise ConfigError("prefix", str(exc).removeprefix(f"{exc.setting}: ")) from None
    return profile


def check_channel_options(
    channel: str, networks: tuple[object, ...], proxy_secret: str | None, profile: str
) -> None:
    """The headers channel needs trusted proxies (the environ channel takes none: see :mod:`.needs`)."""
    if channel == "headers" and not networks:
        raise ConfigError(
            "trusted_proxies",
            f"channel='headers' (profile {profile!r}) needs the addresses of the proxies that set "
            "the identity headers; anyone else could send them",
        )
    if proxy_secret is not None and (not isinstance(proxy_secret, str) or len(proxy_secret) < 16):
        raise ConfigError("proxy_secret", "must be a string of at least 16 characters")


def check_source_names(
    channel: str, names: Mapping[str, Iterable[str]], *, headers_only: bool = True
) -> None:
    """Refuse variable names that are WSGI header keys (``HTTP_*``).

    In the environ channel such a name is a client header that anyone can send;
    in the headers channel the header is named, not its environ key.
    ``names`` maps a setting to the variable names it makes the parser read. With
    ``headers_only`` (no JSON document can carry the source instead), a name that no
    header can have is refused in the headers channel too.
    """
    for setting, variables in names.items():
        for variable in variables:
            # A prefix is part of a name: it may be empty, not hold what no header name can.
            if channel == "headers" and headers_only and not _TOKEN.fullmatch(variable or "-"):
                raise ConfigError(
                    setting, f"{variable!r} is not a header name (RFC 9110 token): no request carries it"
                )
            if not variable.upper().startswith("HTTP_"):
                continue
            if channel == "environ":
                raise ConfigError(
                    setting,
                    f"{variable!r} is a client request header, which anyone can send: identity "
                    "headers need channel='headers' with trusted_proxies (and the header's name, "
                    "e.g. 'X-Auth-User', not its WSGI key)",
                )
            raise ConfigError(
                setting,
                f"{variable!r} is a WSGI environ key: in channel='headers' name the header itself "
                "(e.g. 'X-Auth-User' for HTTP_X_AUTH_USER)",
            )
