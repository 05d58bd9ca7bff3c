"""Declarative authorization: requirement objects, path rules and the refusal response.

Requirements say who may do something (:class:`LoggedIn`, :class:`HasAttribute`,
...); :class:`Rules` map paths and methods to requirements; :func:`deny` is the
one place that answers a refusal (login redirect, 401 or 403)::

    rules = Rules([
        Rule("/health", Public()),
        Rule("/admin", HasAttribute("groups", "movie-admins")),
        Rule("/roles", HasRole("admin")),
        Rule("/movies", HasAttribute("groups", "movie-editors"), methods=["POST", "PUT"]),
        Rule("/", LoggedIn()),
    ])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload
from urllib.parse import quote

from .errors import ConfigError, RequestError
from .identity import Identity
from .paths import has_control_character, request_path, resolved, script_root, wsgi_path
from .redirects import safe_next
from .responses import Response, error_response, redirect_response, wants_html

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "AllOf",
    "AnyOf",
    "Check",
    "HasAttribute",
    "HasRole",
    "LoggedIn",
    "Public",
    "Requirement",
    "Rule",
    "Rules",
    "check",
    "deny",
    "refusal",
]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

_SETTING = "rules"


class Requirement:
    """Base class of requirements: who may pass."""

    __slots__ = ()

    def allows(self, identity: Identity | None) -> bool:
        """True when ``identity`` (``None`` when not logged in) satisfies this requirement."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short phrase for error messages, e.g. ``a logged-in user``."""
        raise NotImplementedError


@dataclass(frozen=True)
class LoggedIn(Requirement):
    """Any authenticated identity."""

    def allows(self, identity: Identity | None) -> bool:
        return identity is not None

    def describe(self) -> str:
        return "a logged-in user"


@dataclass(frozen=True)
class Public(Requirement):
    """Anyone, logged in or not; exempts paths (health checks, static files) from a broader rule."""

    def allows(self, identity: Identity | None) -> bool:
        return True

    def describe(self) -> str:
        return "nothing (public)"


@dataclass(frozen=True, init=False)
class HasAttribute(Requirement):
    """The identity's attribute ``name`` holds any of ``values``.

    With no ``values``, the attribute must merely be present with a non-empty value.
    """

    name: str
    values: tuple[str, ...]

    def __init__(self, name: str, *values: str) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(_SETTING, "HasAttribute needs a non-empty attribute name")
        if not all(isinstance(value, str) for value in values):
            raise ConfigError(_SETTING, f"HasAttribute({name!r}) values must be strings")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "values", values)

    def allows(self, identity: Identity | None) -> bool:
        if identity is None:
            return False
        held = identity.attributes.get(self.name, ())
        if not self.values:
            return any(held)
        return not set(held).isdisjoint(self.values)

    def describe(self) -> str:
        if not self.values:
            return f"attribute {self.name!r}"
        if len(self.values) == 1:
            return f"{self.name!r} = {self.values[0]!r}"
        listed = ", ".join(repr(value) for value in self.values)
        return f"{self.name!r} in ({listed})"


@dataclass(frozen=True, init=False)
class HasRole(Requirement):
    """The identity holds any of the role ``names`` (from the ``roles=`` hook: ``identity.roles``)."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        if not names or not all(isinstance(name, str) and name for name in names):
            raise ConfigError(_SETTING, f"HasRole needs one or more non-empty role names, got {names!r}")
        object.__setattr__(self, "names", names)

    def allows(self, identity: Identity | None) -> bool:
        return identity is not None and not set(identity.roles).isdisjoint(self.names)

    def describe(self) -> str:
        if len(self.names) == 1:
            return f"role {self.names[0]!r}"
        return f"one of the roles {', '.join(repr(name) for name in self.names)}"


@dataclass(frozen=True)
class Check(Requirement):
    """An arbitrary test of a logged-in identity; ``description`` is shown on refusal."""

    predicate: Callable[[Identity], bool]
    description: str

    def __post_init__(self) -> None:
        if not callable(self.predicate):
            raise ConfigError(_SETTING, "Check predicate must be callable")
        if not isinstance(self.description, str) or not self.description:
            raise ConfigError(_SETTING, "Check needs a description for error messages")

    def allows(self, identity: Identity | None) -> bool:
        return identity is not None and bool(self.predicate(identity))

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True, init=False)
class AllOf(Requirement):
    """Every one of ``requirements``."""

    requirements: tuple[Requirement, ...]

    def __init__(self, *requirements: Requirement) -> None:
        object.__setattr__(self, "requirements", _requirements("AllOf", requirements))

    def allows(self, identity: Identity | None) -> bool:
        return all(requirement.allows(identity) for requirement in self.requirements)

    def describe(self) -> str:
        return " and ".join(_phrase(requirement) for requirement in self.requirements)


@dataclass(frozen=True, init=False)
class AnyOf(Requirement):
    """At least one of ``requirements``."""

    requirements: tuple[Requirement, ...]

    def __init__(self, *requirements: Requirement) -> None:
        object.__setattr__(self, "requirements", _requirements("AnyOf", requirements))

    def allows(self, identity: Identity | None) -> bool:
        return any(requirement.allows(identity) for requirement in self.requirements)

    def describe(self) -> str:
        return " or ".join(_phrase(requirement) for requirement in self.requirements)


def _requirements(kind: str, requirements: tuple[Requirement, ...]) -> tuple[Requirement, ...]:
    if not requirements:
        raise ConfigError(_SETTING, f"{kind}() needs at least one requirement")
    for requirement in requirements:
        if not isinstance(requirement, Requirement):
            raise ConfigError(_SETTING, f"{kind}() got {requirement!r}, not a requirement")
    return requirements


def _phrase(requirement: Requirement) -> str:
    text = requirement.describe()
    return f"({text})" if isinstance(requirement, (AllOf, AnyOf)) else text


_BAD_PREFIX = re.compile(r"[\x00-\x20\x7f?#\\]")


@dataclass(frozen=True, init=False)
class Rule:
    """``requirement`` applies to ``prefix`` and below, for ``methods`` (``None``: all).

    ``/api`` matches ``/api`` and ``/api/x`` but not ``/apix``; ``/`` matches
    every path. A trailing slash on the prefix is ignored. A rule for ``GET``
    also covers ``HEAD``, which frameworks route to the same view. ``prefix`` is
    the decoded path as the app's routes spell it (``/café``); it is matched
    against ``PATH_INFO`` byte for byte, in the WSGI representation.
    """

    prefix: str
    requirement: Requirement
    methods: frozenset[str] | None
    wsgi_prefix: str

    def __init__(
        self,
        prefix: str,
        requirement: Requirement,
        methods: Iterable[str] | None = None,
    ) -> None:
        object.__setattr__(self, "prefix", _prefix(prefix))
        object.__setattr__(self, "wsgi_prefix", wsgi_path(self.prefix))
        if not isinstance(requirement, Requirement):
            raise ConfigError(_SETTING, f"rule {prefix!r}: {requirement!r} is not a requirement")
        object.__setattr__(self, "requirement", requirement)
        object.__setattr__(self, "methods", _methods(prefix, methods))

    def matches(self, path: str, method: str) -> bool:
        """True when this rule applies to a request for ``path`` with ``method``."""
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return _under(path, self.wsgi_prefix)

    def covers(self, other: Rule) -> bool:
        """True when this rule matches every request ``other`` matches."""
        if not _under(other.prefix, self.prefix):
            return False
        if self.methods is None:
            return True
        return other.methods is not None and other.methods <= self.methods


def _prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ConfigError(_SETTING, f"rule prefix {prefix!r} must start with '/'")
    if _BAD_PREFIX.search(prefix) or "//" in prefix:
        raise ConfigError(_SETTING, f"rule prefix {prefix!r} must be a plain path")
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise ConfigError(_SETTING, f"rule prefix {prefix!r} must not contain '.' or '..'")
    try:
        wsgi_path(prefix)
    except ValueError as exc:
        raise ConfigError(_SETTING, f"rule prefix {prefix!r}: {exc}") from None
    return prefix.rstrip("/") or "/"


def _methods(prefix: str, methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        raise ConfigError(_SETTING, f"rule {prefix!r}: methods must be a list, not a string")
    normalised = set()
    for method in methods:
        verb = method.upper() if isinstance(method, str) else method
        if verb not in HTTP_METHODS:
            raise ConfigError(_SETTING, f"rule {prefix!r}: unknown HTTP method {method!r}")
        normalised.add(verb)
    if not normalised:
        raise ConfigError(_SETTING, f"rule {prefix!r}: empty methods would never match")
    if "GET" in normalised:
        normalised.add("HEAD")
    return frozenset(normalised)


def _under(path: str, prefix: str) -> bool:
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


class Rules:
    """An ordered list of :class:`Rule`; the first that matches a request wins.

    Order rules from specific to general (``Rule("/", LoggedIn())`` last). A rule
    that an earlier one always shadows is a mistake and raises ``ConfigError``.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        checked: list[Rule] = []
        for rule in rules:
            if not isinstance(rule, Rule):
                raise ConfigError(_SETTING, f"{rule!r} is not a Rule")
            for earlier in checked:
                if earlier.covers(rule):
                    raise ConfigError(
                        _SETTING,
                        f"rule {rule.prefix!r} is never reached: {earlier.prefix!r} comes first"
                        " (order rules from specific to general)",
                    )
            checked.append(rule)
        self.rules: tuple[Rule, ...] = tuple(checked)
        # What every path a rule matches starts with ("/" matches any path, even ""):
        # one C-level startswith rules out the usual request that no rule covers.
        self._starts = tuple("" if rule.wsgi_prefix == "/" else rule.wsgi_prefix for rule in checked)

    def __repr__(self) -> str:
        return f"Rules({list(self.rules)!r})"

    @overload
    def requirement_for(self, path: str, method: str, *, default: Requirement) -> Requirement: ...
    @overload
    def requirement_for(self, path: str, method: str, *, default: None = None) -> Requirement | None: ...
    def requirement_for(
        self, path: str, method: str, *, default: Requirement | None = None
    ) -> Requirement | None:
        """The requirement of the first rule matching ``path`` and ``method``, else ``default``.

        When collapsing slashes and resolving ``.``/``..`` in ``path`` leads to a
        different rule, both requirements apply: neither spelling bypasses a rule.
        Raises :class:`~shibwsgi.errors.RequestError` (400) for a path holding a
        control character, which no rule could be meant for.
        """
        if path.isprintable() and path.startswith("/") and "//" not in path and "/." not in path:
            # The usual path, decided in line (this runs on every request): no control
            # character, nothing to collapse or resolve (see resolved()), so one reading.
            return (self._first(path, method) or default) if path.startswith(self._starts) else default
        if has_control_character(path):
            raise RequestError(
                "the request path holds a control character (a decoded %00-%1F or %7F)",
                log_message="refused a request path holding a control character",
            )
        found = self._first(path, method) or default
        normalised = resolved(path)
        if normalised == path:
            return found
        other = self._first(normalised, method) or default
        if found is None or found == other:
            return other
        if other is None:
            return found
        return AllOf(found, other)

    def _first(self, path: str, method: str) -> Requirement | None:
        if not path.startswith(self._starts):
            return None
        for rule in self.rules:
            if rule.matches(path, method):
                return rule.requirement
        return None


def deny(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    identity: Identity | None,
    requirement: Requirement,
) -> list[bytes]:
    """Answer a refused request through WSGI (see :func:`refusal`)."""
    return refusal(environ, identity, requirement).send(start_response)


def refusal(environ: WSGIEnvironment, identity: Identity | None, requirement: Requirement) -> Response:
    """The answer to a refused request.

    Not logged in: browsers are redirected to the login path with ``next`` set to
    the current site path and query; API clients get 401. Logged in: 403 naming
    ``requirement`` (never the user's own attribute values).
    """
    if identity is not None:
        return error_response(environ, 403, f"access denied: requires {requirement.describe()}")
    login_path = environ.get("shibwsgi.login_path")
    if not isinstance(login_path, str) or safe_next(login_path, default="") != login_path:
        return error_response(environ, 401, "authentication required")
    login_url = script_root(environ) + login_path
    if not wants_html(environ):
        return error_response(environ, 401, f"authentication required: log in at {login_url}")
    separator = "&" if "?" in login_url else "?"
    target = safe_next(request_path(environ), default=script_root(environ) + "/")
    return redirect_response(f"{login_url}{separator}next={quote(target, safe='')}")


def check(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    requirement: Requirement,
) -> list[bytes] | None:
    """``None`` when the request's identity satisfies ``requirement``, else the refusal."""
    identity = environ.get("shibwsgi.identity")
    if not isinstance(identity, Identity):
        identity = None
    if requirement.allows(identity):
        return None
    return deny(environ, start_response, identity, requirement)
