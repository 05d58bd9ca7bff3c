"""What Apache proxies where: every form of ``ProxyPass``, and which request scope a directive covers.

Routes come from ``ProxyPass PATH URL`` and ``ProxyPassMatch REGEX URL`` at server or virtual
host level, the one-argument ``ProxyPass URL`` inside ``<Location>``/``<LocationMatch>``, and
``SetHandler "proxy:URL"``, and ``RewriteRule REGEX URL [P]`` where ``RewriteEngine On``
(conditional when ``RewriteCond`` lines precede it). A directive covers a route when it applies to every request the
route sends: at server or host level, or in a ``<Location>`` whose path holds the route's.
``<If>``, ``<Directory>``, ``<Files>`` and regex scopes are conditions, never full coverage.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from .apache import Directive, Section

__all__ = ["Route", "Target", "covers", "location_handlers", "parse_target", "routes", "under"]

_LOCATIONS = ("location", "locationmatch")
#: Regexes that match every path: a scope with one of them covers everything.
_EVERYTHING = {"", "^", "/", "^/", ".*", "^.*", "^/.*", "(.*)", "^(.*)", "^/(.*)"}


@dataclass(frozen=True)
class Target:
    """Where a route sends requests: ``scheme`` of the protocol, ``host`` (None: a unix socket)."""

    raw: str
    scheme: str
    host: str | None
    netloc: str
    path: str
    unix: bool


@dataclass(frozen=True)
class Route:
    directive: Directive
    path: str | None  # a path prefix
    regex: str | None  # or a regular expression
    target: str  # the URL as written, or "!" for an exclusion
    in_location: bool  # defined by a <Location> scope (one-argument ProxyPass, SetHandler)
    conditional: bool = False  # a RewriteRule under RewriteCond lines: its paths are not known

    @property
    def excluded(self) -> bool:
        return self.target == "!"

    def where_written(self) -> str:
        return self.path if self.path is not None else f"~ {self.regex}"

    def matches(self, path: str) -> bool | None:
        """Whether requests for ``path`` take this route (None: a regex Python cannot read)."""
        if self.path is not None:
            return under(path, self.path) if self.in_location else path.startswith(self.path)
        if self.regex is None:
            return None
        try:
            return re.search(self.regex, path) is not None
        except re.error:
            return None


def parse_target(raw: str) -> Target:
    """``uwsgi://host:port/``, ``unix:/path|uwsgi://name/``...; ValueError when httpd could not parse it."""
    unix = raw.lower().startswith("unix:")
    url = raw.partition("|")[2] if unix else raw
    parts: SplitResult = urlsplit(url)
    host, _ = parts.hostname, parts.port  # .port raises ValueError on a bad port
    if not parts.scheme or (not unix and not parts.netloc):
        raise ValueError(f"{raw!r} is not scheme://host[:port]/")
    return Target(raw, parts.scheme.lower(), None if unix else host, parts.netloc, parts.path or "/", unix)


def routes(active: list[Directive]) -> list[Route]:
    found = []
    rewriting = {d.section for d in active if d.name == "rewriteengine" and d.arg(0).lower() == "on"}
    conditions = False
    for d in active:
        location = _location(d)
        if d.name == "rewritecond":
            conditions = True
        elif d.name == "rewriterule":
            if d.section in rewriting and _proxied(d):
                negated = d.arg(0).startswith("!")
                pattern = None if negated else d.arg(0)
                found.append(Route(d, None, pattern, d.arg(1), False, conditional=conditions or negated))
            conditions = False
        if d.name in ("proxypass", "proxypassmatch"):
            regex = d.name == "proxypassmatch"
            if location is not None and d.args and not d.arg(0).startswith("/"):
                found.append(_in_location(d, location, d.arg(0)))
            elif len(d.args) >= 2:
                path, target = d.arg(0), d.arg(1)
                found.append(Route(d, None if regex else path, path if regex else None, target, False))
        elif d.name == "sethandler" and d.arg(0).lower().startswith("proxy:"):
            section = location or d.scope
            if section is not None and section.name in _LOCATIONS:
                found.append(_in_location(d, section, d.arg(0)[len("proxy:") :]))
            else:  # <Directory>, <Files>...: the paths are not known; the target still counts
                found.append(Route(d, None, None, d.arg(0)[len("proxy:") :], True))
    return found


def _proxied(rule: Directive) -> bool:
    """A ``RewriteRule PATTERN scheme://... [..., P, ...]``."""
    flags = rule.arg(2)
    return (
        "://" in rule.arg(1)
        and flags.startswith("[")
        and any(flag.strip().lower() in ("p", "proxy") for flag in flags.strip("[]").split(","))
    )


def _in_location(d: Directive, location: Section, target: str) -> Route:
    if location.name == "location":
        return Route(d, location.args[0] if location.args else "/", None, target, True)
    return Route(d, None, location.args[0] if location.args else "", target, True)


def _location(d: Directive) -> Section | None:
    scope = d.scope
    return scope if scope is not None and scope.name in _LOCATIONS else None


def location_handlers(active: list[Directive]) -> list[tuple[str, Directive]]:
    """``<Location PATH>`` scopes that set a handler of their own (not a proxy): (PATH, directive)."""
    return [
        (location.args[0], d)
        for d in active
        if d.name == "sethandler"
        and not d.arg(0).lower().startswith("proxy:")
        and (location := _location(d)) is not None
        and location.name == "location"
        and location.args
    ]


def covers(directive: Directive, route: Route) -> bool:
    """Whether ``directive`` applies to every request ``route`` proxies."""
    if directive.virtual_host not in (None, route.directive.virtual_host):
        return False
    scope = directive.scope
    if scope is None or scope is route.directive.scope:
        return True
    if scope.name == "location" and scope.args:
        return route.path is not None and (scope.args[0] == "/" or under(route.path, scope.args[0]))
    if scope.name == "locationmatch" and scope.args:
        return scope.args[0] in _EVERYTHING
    if scope.name == "proxy" and scope.args:
        # <Proxy URL> is a wildcard match on the target URL (<Proxy *>: every one)
        return fnmatch.fnmatchcase(route.target, scope.args[0]) or route.target.startswith(scope.args[0])
    return False


def under(path: str, prefix: str) -> bool:
    """httpd's ``<Location>`` match: ``/private`` holds ``/private`` and ``/private/x``, not ``/privatex``;
    ``/private/`` holds ``/private/x`` but not ``/private`` itself."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")
