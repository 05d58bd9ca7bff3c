"""Pitfalls in an nginx configuration: client copies of identity headers, cookies, sockets."""

from __future__ import annotations

from collections.abc import Callable

from .addresses import is_loopback, split_address
from .findings import ERROR, WARNING, Finding, Location
from .nginx import Block
from .settings import AppSettings

__all__ = ["check_nginx"]


def check_nginx(root: Block, app: AppSettings | None) -> list[Finding]:
    blocks = root.walk()
    upstreams = {b.args[0]: b for b in blocks if b.name == "upstream" and b.args}
    findings: list[Finding] = []
    for block in blocks:
        for passing in block.get("uwsgi_pass"):
            findings += _upstream(passing.args[0] if passing.args else "", upstreams, passing.where)
            if app is not None and app.channel == "headers" and _passes_client_headers(block, "uwsgi"):
                findings += _headers(block, app, "uwsgi_param", str.upper)
        auth_service = any(d.args[:1] == ("off",) for d in block.get("auth_request"))
        if (
            block.get("proxy_pass")
            and app is not None
            and app.channel == "headers"
            and not auth_service
            and _passes_client_headers(block, "proxy")
        ):
            findings += _headers(block, app, "proxy_set_header", _header_key)
    if app is not None and app.sessions and app.cookie_secure:
        for server in (b for b in blocks if b.name == "server"):
            findings += _plain_http(server)
    return findings


def _passes_client_headers(block: Block, module: str) -> bool:
    """False where ``<module>_pass_request_headers off`` keeps every client header back."""
    setting = block.inherited(f"{module}_pass_request_headers")
    return not (setting and setting[-1].args[:1] == ("off",))


def _header_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def _headers(block: Block, app: AppSettings, directive: str, key: Callable[[str], str]) -> list[Finding]:
    given = {key(d.args[0]) for d in block.inherited(directive) if d.args}
    missing = sorted(app.header_keys - given)
    if not missing:
        return []
    own = block.get(directive)
    hint = (
        " (this block sets some of its own, so it inherits none from outer blocks)"
        if own and block.parent and block.parent.inherited(directive)
        else ""
    )
    names = ", ".join(missing)
    return [
        Finding(
            ERROR,
            "client-headers-not-unset",
            block.where,
            f"the app reads identity headers, but {directive} does not overwrite the client's own {names} here{hint}.",
            f"{directive} for each, set from auth_request_set variables (empty when anonymous).",
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
                    "run uWSGI on 127.0.0.1 or a unix socket.",
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
