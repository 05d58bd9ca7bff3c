"""Where an nginx value comes from: which variables a client controls.

``$http_*``, ``$cookie_*``, ``$arg_*``, the request line and its parts, ``$host``, regex
captures, and any variable ``set`` or ``map``-ped from one of them. A value built from
``$upstream_http_*`` (the auth_request answer, via ``auth_request_set``) is the front end's.
"""

from __future__ import annotations

import re

from .nginx import Block

__all__ = ["client_variables", "tainted_by"]

_VARIABLE = re.compile(r"\$\{?([A-Za-z0-9_]+)\}?")
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
    }
)
#: Bound the fixpoint: each round adds at least one variable.
_MAX_ROUNDS = 64


def _client(name: str) -> bool:
    return name.startswith(_CLIENT_PREFIXES) or name in _CLIENT or name.isdigit()


def tainted_by(value: str, tainted: frozenset[str]) -> list[str]:
    """The client-controlled variables ``value`` uses, as written (``$http_x_user``)."""
    return ["$" + name for name in _VARIABLE.findall(value) if _client(name.lower()) or name in tainted]


def client_variables(root: Block) -> frozenset[str]:
    """Variables the config sets (``set``, ``map``, ``auth_request_set`` aside) from client values."""
    assignments: list[tuple[str, str]] = []
    for block in root.walk():
        for directive in block.get("set"):
            if len(directive.args) >= 2:
                assignments.append((directive.args[0].lstrip("$"), directive.args[1]))
        if block.name == "map" and len(block.args) >= 2:
            target = block.args[1].lstrip("$")
            assignments.append((target, block.args[0]))  # the source decides unless all values are constants
            assignments += [(target, " ".join(d.args)) for d in block.directives]
    tainted: set[str] = set()
    for _ in range(_MAX_ROUNDS):
        grown = {name for name, value in assignments if tainted_by(value, frozenset(tainted))}
        if grown <= tainted:
            break
        tainted |= grown
    return frozenset(tainted)
