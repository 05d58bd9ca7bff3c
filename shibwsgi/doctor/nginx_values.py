"""Where an nginx value comes from: which variables a client controls.

``$http_*``, ``$cookie_*``, ``$arg_*``, the request line and its parts, ``$host``, the TLS
server name, regex captures (numbered, and named ones of ``location``, ``server_name`` and
``rewrite``), and any variable ``set``, ``map``-ped, ``auth_request_set`` or captured by an
``if``/``map`` regex from one of them. A value built from ``$upstream_http_*`` (the
auth_request answer, via ``auth_request_set``) is the front end's. nginx variable names are
case-insensitive, so they are compared in lower case.
"""

from __future__ import annotations

import re

from .nginx import Block

__all__ = ["client_variables", "tainted_by"]

_VARIABLE = re.compile(r"\$\{?([A-Za-z0-9_]+)\}?")
#: A named group in a PCRE regex: (?<name>...), (?P<name>...), (?'name'...).
_NAMED_GROUP = re.compile(r"\(\?P?(?:<([A-Za-z_][A-Za-z0-9_]*)>|'([A-Za-z_][A-Za-z0-9_]*)')")
_CLIENT_PREFIXES = ("http_", "cookie_", "arg_")
_CLIENT = frozenset(
    {
        "args",
        "query_string",
        "request",
        "request_uri",
        "uri",
        "document_uri",
        "request_body",
        "request_method",
        "remote_user",  # the user name of the client's own Basic Authorization header
        "host",
        "content_type",
        "content_length",
        "proxy_add_x_forwarded_for",
        "is_args",
        "request_filename",
        "invalid_referer",
        "ssl_server_name",  # the client's SNI
        "fastcgi_path_info",  # parts of the URI
        "fastcgi_script_name",
    }
)
#: Bound the fixpoint: each round adds at least one variable.
_MAX_ROUNDS = 64


def _client(name: str) -> bool:
    return name.startswith(_CLIENT_PREFIXES) or name in _CLIENT or name.isdigit()


def tainted_by(value: str, tainted: frozenset[str]) -> list[str]:
    """The client-controlled variables ``value`` uses, as written (``$http_x_user``)."""
    return [
        "$" + name for name in _VARIABLE.findall(value) if _client(name.lower()) or name.lower() in tainted
    ]


def client_variables(root: Block) -> frozenset[str]:
    """Variables (lower case) the config sets from client values, directly or through others."""
    assignments: list[tuple[str, str]] = []
    captured: set[str] = set()  # named captures of what the client sent: the URI, the Host
    for block in root.walk():
        for directive in block.get("set") + block.get("auth_request_set"):
            if len(directive.args) >= 2:
                assignments.append((directive.args[0].lstrip("$"), directive.args[1]))
        if block.name == "map" and len(block.args) >= 2:
            target = block.args[1].lstrip("$")
            assignments.append((target, block.args[0]))  # the source decides unless all values are constants
            for d in block.directives:
                assignments.append((target, " ".join(d.args)))
                assignments += [(name, block.args[0]) for name in _named_groups(d.name)]
        elif block.name == "if":
            condition = " ".join(block.args)
            assignments += [(name, condition) for name in _named_groups(condition)]
        elif block.name == "location":
            captured.update(_named_groups(" ".join(block.args)))
        for directive in block.get("server_name") + block.get("rewrite"):
            captured.update(_named_groups(" ".join(directive.args)))
    tainted: set[str] = {name.lower() for name in captured}
    for _ in range(_MAX_ROUNDS):
        grown = {name.lower() for name, value in assignments if tainted_by(value, frozenset(tainted))}
        if grown <= tainted:
            break
        tainted |= grown
    return frozenset(tainted)


def _named_groups(regex: str) -> list[str]:
    return [angle or quote for angle, quote in _NAMED_GROUP.findall(regex)]
