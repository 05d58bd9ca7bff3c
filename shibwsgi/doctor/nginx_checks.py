"""Pitfalls in an nginx configuration: client copies of identity headers, cookies, sockets."""

from __future__ import annotations

from collections.abc import Callable

from .addresses import is_loopback, split_address
from .findings import ERROR, WARNING, Finding, Location
from .nginx import Block, NginxDirective
from .nginx_values import client_variables, tainted_by
from .settings import AppSettings, is_identity

__all__ = ["check_nginx"]


#: The directive that sends requests on -> the directive that sets what it sends, and how a name becomes an environ key.
_PASSES: dict[str, tuple[str, Callable[[str], str]]] = {
    "uwsgi_pass": ("uwsgi_param", str.upper),
    "fastcgi_pass": ("fastcgi_param", str.upper),
    "scgi_pass": ("scgi_param", str.upper),
    "proxy_pass": ("proxy_set_header", lambda name: _header_key(name)),
    "grpc_pass": ("grpc_set_header", lambda name: _header_key(name)),
}
_SETTERS = {setter: key for setter, key in _PASSES.values()}


def check_nginx(root: Block, app: AppSettings | None) -> list[Finding]:
    blocks = root.walk()
    upstreams = {b.args[0]: b for b in blocks if b.name == "upstream" and b.args}
    auth = _auth_targets(blocks)
    tainted = client_variables(root)
    findings: list[Finding] = []
    for block in blocks:
        to_app = False
        for name, (setter, key) in _PASSES.items():
            for passing in block.get(name):
                target = passing.args[0] if passing.args else ""
                if name == "uwsgi_pass":
                    findings += _upstream(target, upstreams, passing.where)
                if target in auth:
                    continue
                to_app = True
                module = name.partition("_")[0]
                if app is not None and app.channel == "headers" and _passes_client_headers(block, module):
                    findings += _headers(block, passing, app, setter, key)
                    if module in ("proxy", "grpc"):
                        findings += _underscores(block, app)
        if not (block.get("proxy_pass") and not to_app):
            findings += _copied(block, tainted, app)
        if to_app:
            findings += _auth_off(block, app.open_paths if app is not None else frozenset({"/logout"}))
    if app is not None and app.sessions and app.cookie_secure:
        for server in (b for b in blocks if b.name == "server"):
            findings += _plain_http(server)
    return list(dict.fromkeys(findings))


def _auth_targets(blocks: list[Block]) -> set[str]:
    """Where the auth_request subrequests go (oauth2-proxy...): not the app.

    A target that a location outside the auth service's own path (``/oauth2/...``) proxies
    to as well is the app answering the subrequests itself: every location passing there,
    its auth location too, is the app's.
    """
    uris = {d.args[0] for b in blocks for d in b.get("auth_request") if d.args and d.args[0] != "off"}
    locations = [b for b in blocks if b.name == "location" and b.args]
    targets = set()
    for uri in uris:
        exact = [b for b in locations if b.args[0] == "=" and b.args[-1] == uri]
        prefixes = [b for b in locations if len(b.args) == 1 and uri.startswith(b.args[0])]
        chosen = exact or sorted(prefixes, key=lambda b: len(b.args[0]))[-1:]
        targets |= {d.args[0] for b in chosen for d in b.get("proxy_pass") if d.args}
    services = {_first_segment(uri) for uri in uris}
    elsewhere = {
        d.args[0]
        for b in locations
        if not b.args[-1].startswith("@") and _first_segment(b.args[-1]) not in services
        for d in b.get("proxy_pass")
        if d.args
    }
    return targets - elsewhere


def _first_segment(path: str) -> str:
    """``/oauth2/auth`` -> ``oauth2``: the auth service's own part of the site."""
    return path.lstrip("/").partition("/")[0]


def _passes_client_headers(block: Block, module: str) -> bool:
    """False where ``<module>_pass_request_headers off`` keeps every client header back."""
    setting = block.inherited(f"{module}_pass_request_headers")
    return not (setting and setting[-1].args[:1] == ("off",))


def _header_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def _headers(
    block: Block, passing: NginxDirective, app: AppSettings, directive: str, key: Callable[[str], str]
) -> list[Finding]:
    """The identity headers this pass does not overwrite, reported once at the level that decides."""
    origin = _origin(block, directive)
    own = origin.get(directive) if origin is not None else []
    # A header spelled with "_" is another header: it leaves the client's dashed one in place.
    given = {
        key(d.args[0])
        for d in own
        if d.args
        and "if_not_empty" not in d.args[2:]
        and not (directive.endswith("_header") and "_" in d.args[0])
    }
    missing = sorted(app.header_keys - given)
    if not missing:
        return []
    hides = origin is not None and origin.parent is not None and bool(origin.parent.inherited(directive))
    hint = " (this block sets some of its own, so it inherits none from outer blocks)" if hides else ""
    lazy = [d.args[0] for d in own if d.args and "if_not_empty" in d.args[2:] and key(d.args[0]) in missing]
    if lazy:
        hint += f" ({', '.join(lazy)}: if_not_empty lets the client's copy through when the value is empty)"
    names = ", ".join(missing)
    spelled = [name if directive.endswith("_param") else _header_name(name) for name in missing]
    if origin is not None:
        where = own[0].where
    else:
        server = block.within("server") or block
        where = server.where if server is not block else passing.where
    return [
        Finding(
            ERROR,
            "client-headers-not-unset",
            where,
            f"the app reads identity headers, but {directive} does not overwrite the client's own {names} for the {passing.name} below{hint}.",
            "here: "
            + " ".join(f'{directive} {name} "";' for name in spelled)
            + " (or the auth_request_set variable of each).",
        )
    ]


def _origin(block: Block, directive: str) -> Block | None:
    """The level whose ``directive`` list applies to ``block`` (nginx: the innermost that sets any)."""
    return block.defining(directive)


def _header_name(key: str) -> str:
    return "-".join(part.capitalize() for part in key.removeprefix("HTTP_").split("_"))


def _underscores(block: Block, app: AppSettings) -> list[Finding]:
    """Client headers spelled with ``_`` let through: ``X_Forwarded_User`` is not ``X-Forwarded-User``.

    ``proxy_set_header`` replaces only the dashed header; a WSGI server behind turns both into
    ``HTTP_X_FORWARDED_USER``. (The uwsgi/fastcgi params replace both spellings: nginx compares
    them with ``-`` read as ``_``.)
    """
    letting = [
        d
        for name, value in (("underscores_in_headers", "on"), ("ignore_invalid_headers", "off"))
        for d in block.inherited(name)[-1:]
        if d.args[:1] == (value,)
    ]
    if not letting:
        return []
    d = letting[0]
    spelled = ", ".join(sorted(_header_name(key).replace("-", "_") for key in app.header_keys))
    return [
        Finding(
            ERROR,
            "client-headers-not-unset",
            d.where,
            f"{d.name} {d.args[0]} lets clients send {spelled}: proxy_set_header replaces only the dashed spelling, and the WSGI server reads both as the same identity variable.",
            f"remove {d.name} {d.args[0]} (nginx then drops header names with '_'), or pass to the app with uwsgi_pass.",
        )
    ]


def _settings_of(d: NginxDirective) -> list[tuple[str, str]]:
    """(environ key, value) pairs a directive sets: ``proxy_set_header NAME VALUE``, ``more_set_input_headers "NAME: VALUE"``."""
    if d.name == "more_set_input_headers":  # headers-more: rewrites the request's own headers
        pairs = [arg.partition(":") for arg in d.args if not arg.startswith("-") and ":" in arg]
        return [(_header_key(name.strip()), value.strip()) for name, _, value in pairs]
    if d.name in _SETTERS and len(d.args) >= 2:
        return [(_SETTERS[d.name](d.args[0]), d.args[1])]
    return []


def _copied(block: Block, tainted: frozenset[str], app: AppSettings | None) -> list[Finding]:
    """An identity variable set from a value the client sends: anyone can be anyone."""
    return [
        finding
        for d in block.directives
        for key, value in _settings_of(d)
        if is_identity(key, app)
        for finding in _client_value(block, d, value, tainted)
    ]


def _client_value(block: Block, d: NginxDirective, value: str, tainted: frozenset[str]) -> list[Finding]:
    sources = tainted_by(value, tainted)
    if _basic_auth(block):  # auth_basic checked the password: $remote_user is nginx's answer
        sources = [source for source in sources if source != "$remote_user"]
    if not sources:
        return []
    answers = [a.args[0] for a in block.inherited("auth_request_set") if a.args]
    better = answers[0] if answers else "$upstream_http_x_auth_request_user (via auth_request_set)"
    written = f"{d.name} {' '.join(d.args)}"
    return [
        Finding(
            ERROR,
            "client-value-copied",
            d.where,
            f"{written}: {', '.join(sources)} is what the client sent, so any client can claim any identity.",
            f'set it from {better} (a value from the auth_request answer), or clear it with "".',
        )
    ]


def _basic_auth(block: Block) -> bool:
    setting = block.inherited("auth_basic")
    return bool(setting) and setting[-1].args[:1] != ("off",)


def _auth_off(block: Block, open_paths: frozenset[str]) -> list[Finding]:
    """``auth_request off`` in a location that passes to the app, under a level that authenticates.

    Named and internal locations (reached only from the config) and the app's own logout
    path (``location = /logout``) are meant to be open.
    """
    offs = [d for d in block.get("auth_request") if d.args[:1] == ("off",)]
    named = block.args[:1] and block.args[-1].startswith("@")
    logout = len(block.args) == 2 and block.args[0] == "=" and block.args[1] in open_paths
    if not offs or named or logout or block.get("internal") or block.parent is None:
        return []
    if not any(d.args and d.args[0] != "off" for d in block.parent.inherited("auth_request")):
        return []
    path = " ".join(block.args)
    return [
        Finding(
            WARNING,
            "auth-request-off",
            offs[0].where,
            f"location {path} switches auth_request off and passes to the app: requests here reach it unauthenticated.",
            f"remove auth_request off from location {path}, unless the app itself guards every path under it.",
        )
    ]


def _upstream(target: str, upstreams: dict[str, Block], where: Location) -> list[Finding]:
    if target in upstreams:
        servers = [d for d in upstreams[target].get("server") if d.args]
        addresses = [(d.args[0], d.where) for d in servers]
    else:
        addresses = [(target, where)]
    findings = []
    for address, location in addresses:
        if address.startswith(("unix:", "$")) or not address:
            continue
        host, _ = split_address(address)
        if not is_loopback(host):
            findings.append(
                Finding(
                    WARNING,
                    "socket-beyond-loopback",
                    location,
                    f"the app's uwsgi socket {address} is not on loopback: whoever reaches it can send any identity.",
                    f"socket = 127.0.0.1:{split_address(address)[1]} in uWSGI, and uwsgi_pass 127.0.0.1:{split_address(address)[1]}; (or a unix socket).",
                )
            )
    return findings


def _plain_http(server: Block) -> list[Finding]:
    listens = server.get("listen")
    tls = any("ssl" in d.args for d in listens) or any(d.args[:1] == ("on",) for d in server.get("ssl"))
    passes = [d for b in server.walk() for d in b.directives if d.name in ("uwsgi_pass", "proxy_pass")]
    app_passes = [d for d in passes if "oauth2" not in (d.args[0] if d.args else "")]
    if tls or not app_passes:
        return []
    return [
        Finding(
            ERROR,
            "secure-cookie-on-http",
            app_passes[0].where,
            "the app's session cookie is Secure, but this server serves it over plain http: browsers never send it back (a login loop).",
            "listen ... ssl, and make the plain-http server only redirect to https.",
        )
    ]
