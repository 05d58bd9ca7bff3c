"""Where an Apache value comes from: environment variables and expressions the client controls.

``SetEnvIf``/``BrowserMatch`` copying a back-reference of what they matched (any attribute
but the addresses: a request header, the URI; an unknown name is looked up as a request
header first), ``RewriteRule ... [E=VAR:VALUE]`` with a back-reference or a request
variable (``%{HTTP:X}``, ``%{QUERY_STRING}``...), and any variable set from one of those.
An expression value (``expr=...``) reading ``%{HTTP:X}``, ``req()``/``http()`` is the client's too.
"""

from __future__ import annotations

import re

from .apache import Directive

__all__ = ["client_env", "client_sources"]

_BACK_REFERENCE = re.compile(r"[$%][0-9]")
_REQUEST_VARIABLE = re.compile(
    r"%\{(?:HTTP[:_][^}]*|REQ(?:_NOVARY)?:[^}]*|QUERY_STRING|REQUEST_URI|THE_REQUEST|PATH_INFO|"
    r"REQUEST_FILENAME|SCRIPT_FILENAME)\}|\b(?:req|http|req_novary)\s*\([^)]*\)",
    re.IGNORECASE,
)
#: References to an environment variable: %{NAME}e (mod_headers), %{ENV:NAME}, env('NAME').
_ENV_REFERENCE = re.compile(
    r"%\{([^}:]+)\}e|%\{ENV:([^}]+)\}|\b(?:env|reqenv)\s*\(\s*['\"]([^'\"]+)['\"]", re.IGNORECASE
)
_ADDRESSES = frozenset({"remote_addr", "server_addr"})
_SETENVIF = {"setenvif": 0, "setenvifnocase": 0, "browsermatch": None, "browsermatchnocase": None}
#: Bound the fixpoint: each round adds at least one variable.
_MAX_ROUNDS = 64


def client_env(active: list[Directive]) -> dict[str, Directive]:
    """Environment variables set from what the client sent -> the directive that sets each."""
    direct: dict[str, Directive] = {}
    assignments: list[tuple[str, str, Directive]] = []
    for d in active:
        if d.name in _SETENVIF:
            attribute = "user-agent" if _SETENVIF[d.name] is None else d.arg(0).lower()
            settings = d.args[1:] if _SETENVIF[d.name] is None else d.args[2:]
            for name, value in _pairs(settings, "="):
                if attribute not in _ADDRESSES and _BACK_REFERENCE.search(value):
                    direct.setdefault(name, d)
        elif d.name == "setenvifexpr":
            for name, value in _pairs(d.args[1:], "="):
                if _BACK_REFERENCE.search(value):
                    direct.setdefault(name, d)
        elif d.name == "rewriterule" and len(d.args) >= 3:
            for name, value in _pairs(_flags(d.args[-1], ("e", "env")), ":"):
                if _BACK_REFERENCE.search(value) or _REQUEST_VARIABLE.search(value):
                    direct.setdefault(name, d)
                else:
                    assignments.append((name, value, d))
    tainted = dict(direct)
    for _ in range(_MAX_ROUNDS):
        grown = {
            name: d
            for name, value, d in assignments
            if name not in tainted and _env_references(value) & tainted.keys()
        }
        if not grown:
            break
        tainted.update(grown)
    return tainted


def client_sources(value: str, tainted: dict[str, Directive]) -> list[str]:
    """What in a mod_headers value comes from the client: request variables, tainted env names."""
    sources = [f"%{{{name}}}e" for name in _env_references(value) if name in tainted]
    if value.lower().startswith("expr="):
        sources += _REQUEST_VARIABLE.findall(value)
    return sources


def _env_references(value: str) -> set[str]:
    return {next(filter(None, groups)) for groups in _ENV_REFERENCE.findall(value)}


def _pairs(words: tuple[str, ...] | list[str], separator: str) -> list[tuple[str, str]]:
    """``NAME=VALUE`` settings (``!NAME`` unsets: none), as (NAME, VALUE)."""
    pairs = []
    for word in words:
        name, found, value = word.partition(separator)
        if found and name and not name.startswith("!"):
            pairs.append((name, value))
    return pairs


def _flags(word: str, names: tuple[str, ...]) -> list[str]:
    """The ``[E=VAR:VALUE,...]`` flags of a RewriteRule: their ``VAR:VALUE`` parts."""
    if not (word.startswith("[") and word.endswith("]")):
        return []
    found = []
    for flag in word[1:-1].split(","):
        name, equals, rest = flag.strip().partition("=")
        if equals and name.lower() in names:
            found.append(rest)
    return found
