"""Pitfalls in an Apache configuration, alone and against the app's settings."""

from __future__ import annotations

from collections.abc import Iterable

from .addresses import is_loopback, port_of
from .apache import Directive, Section
from .apache_routes import Route, covers, location_handlers, parse_target, routes, under
from .apache_values import client_env, client_sources
from .findings import ERROR, WARNING, Finding, Location
from .settings import AppSettings, is_identity

__all__ = ["check_apache"]

#: mod_auth_openidc's OIDCPassClaimsAs encodings -> shibwsgi's
OIDC_ENCODINGS = {"latin1": "latin-1", "base64url": "base64url", "none": "utf-8"}
OIDC_DEFAULT_ENTRY = 16913
OIDC_MAX_ENTRY = 524288
OIDC_ENOUGH_ENTRY = 65536
#: Routes x RequestHeader lines in sections the header check matches one by one, at most.
_MAX_PAIRS = 2_000_000


def check_apache(directives: list[Directive], app: AppSettings | None) -> list[Finding]:
    active = [d for d in directives if d.active]
    findings: list[Finding] = []
    for check in (_shibboleth, _compat_valid_user, _handlers_proxied, _openidc, _mellon, _proxy_targets):
        findings += check(active, app)
    findings += _tls(directives, active, app)
    if app is not None and app.channel == "headers":
        findings += _client_headers(active, app)
    findings += _client_values(active, app)
    return findings


def _client_values(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    """Identity headers or variables set from what the client sent: anyone can be anyone."""
    tainted = client_env(active)
    findings = []
    for d in _named(active, "requestheader"):
        if d.arg(0).lower() in ("unset", "edit", "edit*") or not is_identity(_key(d.arg(1)), app):
            continue
        sources = client_sources(d.arg(2), tainted)
        if sources:
            origins = sorted({f"line {tainted[s[2:-2]].where.line}" for s in sources if s[2:-2] in tainted})
            via = f" (set at {', '.join(origins)})" if origins else ""
            findings.append(
                Finding(
                    ERROR,
                    "client-value-copied",
                    d.where,
                    f"RequestHeader {' '.join(d.args)}: {', '.join(sources)}{via} is what the client sent, so any client can claim any identity.",
                    f"RequestHeader set {d.arg(1)} from the front end's own variable (%{{REMOTE_USER}}s), or unset it.",
                )
            )
    for name, d in tainted.items():
        if is_identity(name, app):
            findings.append(
                Finding(
                    ERROR,
                    "client-value-copied",
                    d.where,
                    f"{' '.join((d.name, *d.args))}: sets the variable {name}, which the app reads identity from, to what the client sent.",
                    f"set {name} only from the front end (the module that authenticates), never from the request.",
                )
            )
    return findings


def _named(directives: Iterable[Directive], *names: str) -> list[Directive]:
    return [d for d in directives if d.name in names]


def _on(directive: Directive) -> bool:
    return directive.arg(0).lower() == "on"


#: front end -> (AuthType, directives that switch it on for a location)
_FRONT_ENDS = {
    "shib": ("shibboleth", ()),
    "mellon": ("mellon", ("mellonenable",)),
    "oidc": ("openid-connect", ("oidcprovidermetadataurl", "oidcproviderissuer")),
}


def _uses(active: list[Directive], front_end: str) -> bool:
    """Whether a location authenticates with ``front_end`` (loading the module is not enough)."""
    auth_type, switches = _FRONT_ENDS[front_end]
    return any(
        (d.name == "authtype" and d.arg(0).lower() == auth_type)
        or (d.name in switches and d.arg(0).lower() != "off")
        for d in active
    )


def _first_use(active: list[Directive], front_end: str) -> Location:
    return next(d.where for d in active if _uses([d], front_end))


def _shibboleth(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    findings = []
    for d in _named(active, "shibuseheaders"):
        if _on(d):
            findings.append(
                Finding(
                    ERROR,
                    "shib-use-headers",
                    d.where,
                    "ShibUseHeaders On passes attributes as request headers too; any hop after mod_shib can reintroduce forged ones.",
                    "ShibUseHeaders Off: shibwsgi reads server variables, which clients cannot set.",
                )
            )
    for d in _named(active, "shibuseenvironment"):
        if not _on(d):
            findings.append(
                Finding(
                    ERROR,
                    "shib-use-environment",
                    d.where,
                    "ShibUseEnvironment Off: no attribute reaches the app's environ.",
                    "ShibUseEnvironment On (the default).",
                )
            )
    url_encoded = [
        d
        for d in _named(active, "shibrequestsetting")
        if d.arg(0).lower() == "encoding" and d.arg(1).lower() == "url"
    ]
    if app is not None and app.profile in ("shibboleth", "adfs") and _uses(active, "shib"):
        where = app.where.get("SHIBWSGI_ENCODING")
        if url_encoded and app.encoding != "url":
            findings.append(
                Finding(
                    ERROR,
                    "shib-encoding",
                    url_encoded[0].where,
                    f"ShibRequestSetting encoding URL, but the app decodes {app.encoding}: values arrive percent-encoded.",
                    "SHIBWSGI_ENCODING=url",
                )
            )
        elif not url_encoded and app.encoding == "url" and where is not None:
            findings.append(
                Finding(
                    ERROR,
                    "shib-encoding",
                    where,
                    "SHIBWSGI_ENCODING=url, but no ShibRequestSetting encoding URL: values with % are misread.",
                    "add ShibRequestSetting encoding URL, or drop SHIBWSGI_ENCODING.",
                )
            )
    return findings


def _compat_valid_user(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    if not any(d.name == "loadmodule" and "mod_shib" in d.arg(1) for d in active):
        return []
    compat = _named(active, "shibcompatvaliduser")
    findings = []
    for require in _named(active, "require"):
        if [a.lower() for a in require.args] != ["valid-user"]:
            continue
        auth_types = [d for d in active if d.name == "authtype" and d.section is require.section]
        if auth_types and auth_types[-1].arg(0).lower() == "shibboleth":
            continue
        host = require.virtual_host
        if any(_on(c) and c.virtual_host in (None, host) for c in compat):
            continue
        findings.append(
            Finding(
                ERROR,
                "shib-compat-valid-user",
                require.where,
                "Require valid-user under another AuthType fails (AH01629) once mod_shib is loaded.",
                "ShibCompatValidUser On in this virtual host.",
            )
        )
    return findings


def _app_routes(active: list[Directive]) -> list[Route]:
    """Routes that proxy somewhere (not the ``!`` exclusions)."""
    return [route for route in routes(active) if not route.excluded]


def _endpoints(active: list[Directive]) -> list[tuple[str, str]]:
    endpoints = []
    if _uses(active, "shib"):
        endpoints.append(("/Shibboleth.sso", "the Shibboleth handler (ACS, Login, Logout)"))
    if _uses(active, "mellon"):
        paths = [d.arg(0) for d in _named(active, "mellonendpointpath")] or ["/mellon"]
        endpoints += [(path.rstrip("/") or "/", "mod_auth_mellon's endpoints") for path in paths]
    return endpoints


def _handlers_proxied(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    """The front end's own endpoints must not be proxied to the app, whatever form the proxying takes."""
    order = {id(d): index for index, d in enumerate(active)}
    every = routes(active)
    handlers = location_handlers(active)
    findings = []
    for path, what in _endpoints(active):
        probe = path + "/Login"
        for route in _app_routes(active):
            if (
                route.conditional
                or not route.matches(probe)
                or _excluded(route, probe, every, handlers, order)
            ):
                continue
            if not route.in_location:
                fix = f"ProxyPass {path} !  before line {route.directive.where.line}."
            elif "Shibboleth" in path:
                fix = f"<Location {path}> SetHandler shib </Location> after this Location."
            else:
                fix = f"ProxyPass {path} !  and no proxy handler over {path}."
            findings.append(
                Finding(
                    ERROR,
                    "handler-proxied",
                    route.directive.where,
                    f"{_written(route)} sends {what} ({path}) to the app.",
                    fix,
                )
            )
    return findings


def _excluded(
    route: Route, path: str, every: list[Route], handlers: list[tuple[str, Directive]], order: dict[int, int]
) -> bool:
    """Whether ``path`` is kept from ``route``: a ``!`` exclusion httpd sees first, or a handler of its own."""
    host = route.directive.virtual_host
    if any(
        other.excluded
        and other.matches(path)
        and other.directive.virtual_host in (None, host)
        # httpd takes the first matching ProxyPass; a <Location> one is merged by specificity.
        and (
            route.in_location or other.in_location or order[id(other.directive)] < order[id(route.directive)]
        )
        for other in every
    ):
        return True
    # A more specific <Location> with its own handler (SetHandler shib) wins over a Location-level proxy.
    return route.in_location and any(
        d.virtual_host in (None, host) and len(prefix) > len(route.path or "") and under(path, prefix)
        for prefix, d in handlers
    )


def _written(route: Route) -> str:
    d = route.directive
    return f"{_directive_name(d)} {' '.join(d.args)}".strip() + (
        f" (in <Location {route.where_written()}>)" if route.in_location else ""
    )


def _directive_name(d: Directive) -> str:
    return {"proxypass": "ProxyPass", "proxypassmatch": "ProxyPassMatch", "sethandler": "SetHandler"}.get(
        d.name, d.name
    )


def _openidc(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    if not _uses(active, "oidc"):
        return []
    findings = []
    passes = _named(active, "oidcpassclaimsas")
    mode = passes[-1].arg(0, "both").lower() if passes else "both"
    encoding = passes[-1].arg(1, "latin1").lower() if passes else "latin1"
    where = passes[-1].where if passes else _first_use(active, "oidc")
    if encoding == "latin1":
        findings.append(
            Finding(
                WARNING,
                "oidc-encoding",
                where,
                "claims pass as latin1 (the module's default): characters outside latin-1 become '?'.",
                "OIDCPassClaimsAs environment base64url, and SHIBWSGI_ENCODING=base64url.",
            )
        )
    if mode == "both":
        findings.append(
            Finding(
                WARNING,
                "oidc-claims-twice",
                where,
                "OIDCPassClaimsAs both (the module's default): every claim travels twice, as a header and as a variable, in the 64 KB uwsgi packet.",
                f"OIDCPassClaimsAs environment {encoding}",
            )
        )
    if app is not None and app.profile == "openidc":
        expected = OIDC_ENCODINGS.get(encoding)
        if expected is not None and expected != app.encoding:
            findings.append(
                Finding(
                    ERROR,
                    "oidc-encoding",
                    where,
                    f"OIDCPassClaimsAs encodes claims as {encoding}, but the app decodes {app.encoding}: names arrive garbled.",
                    f"SHIBWSGI_ENCODING={expected}",
                )
            )
        if app.channel == "environ" and mode in ("headers", "none"):
            findings.append(
                Finding(
                    ERROR,
                    "oidc-claims-not-in-environment",
                    where,
                    f"OIDCPassClaimsAs {mode}: no claim reaches the server variables the app reads.",
                    "OIDCPassClaimsAs environment base64url",
                )
            )
        prefixes = _named(active, "oidcclaimprefix")
        prefix = prefixes[-1].arg(0) if prefixes else "OIDC_CLAIM_"
        through_uwsgi = any(_scheme(r.target) == "uwsgi" for r in _app_routes(active))
        if app.channel == "headers" and mode in ("headers", "both") and "_" in prefix and through_uwsgi:
            findings.append(
                Finding(
                    ERROR,
                    "oidc-claim-headers-dropped",
                    prefixes[-1].where if prefixes else where,
                    f"claim headers named {prefix}*: Apache drops headers with '_' from what mod_proxy_uwsgi sends, so no claim reaches the app.",
                    "OIDCPassClaimsAs environment base64url with the environ channel (or OIDCClaimPrefix OIDC-CLAIM-).",
                )
            )
    cache = [d for d in active if d.name == "oidccachetype"]
    if cache and cache[-1].arg(0).lower() != "shm":
        return findings
    sizes = _named(active, "oidccacheshmentrysizemax")
    if not sizes:
        findings.append(
            Finding(
                WARNING,
                "oidc-cache-entry-size",
                where,
                f"OIDCCacheShmEntrySizeMax is not set: the default {OIDC_DEFAULT_ENTRY} bytes make the login callback fail with 500 for users with many groups or large claims.",
                "OIDCCacheShmEntrySizeMax 131072 (at most 524288).",
            )
        )
        return findings
    try:
        size = int(sizes[-1].arg(0))
    except ValueError:
        return findings
    if size > OIDC_MAX_ENTRY:
        findings.append(
            Finding(
                ERROR,
                "oidc-cache-entry-size",
                sizes[-1].where,
                f"OIDCCacheShmEntrySizeMax {size} is over the module's maximum ({OIDC_MAX_ENTRY}).",
                "OIDCCacheShmEntrySizeMax 131072",
            )
        )
    elif size < OIDC_ENOUGH_ENTRY:
        findings.append(
            Finding(
                WARNING,
                "oidc-cache-entry-size",
                sizes[-1].where,
                f"OIDCCacheShmEntrySizeMax {size} is too small for large claims: the login callback fails with 500.",
                "OIDCCacheShmEntrySizeMax 131072 (at most 524288).",
            )
        )
    return findings


def _mellon(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    return [
        Finding(
            WARNING,
            "mellon-merge",
            d.where,
            "MellonMergeEnvVars On joins values with an unescaped separator: a value containing it splits.",
            "MellonMergeEnvVars Off with MellonEnvVarsSetCount On (the lossless _0.._N series).",
        )
        for d in _named(active, "mellonmergeenvvars")
        if _on(d)
    ]


def _scheme(raw: str) -> str:
    """The protocol of a target, even one with an undefined ${VAR} in it."""
    url = raw.partition("|")[2] if raw.lower().startswith("unix:") else raw
    return url.partition("://")[0].lower()


def _proxy_targets(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    findings = []
    targets: list[tuple[str, Directive, Route | None]] = [
        (r.target, r.directive, r) for r in _app_routes(active)
    ]
    targets += [(d.arg(0), d, None) for d in _named(active, "balancermember") if d.args]
    for raw, directive, route in targets:
        if "${" in raw or raw.lower().startswith("balancer:"):
            continue  # an undefined variable, or the members are checked themselves
        try:
            target = parse_target(raw)
        except ValueError as exc:
            findings.append(
                Finding(
                    ERROR,
                    "bad-proxy-url",
                    directive.where,
                    f"{_directive_name(directive)} target {raw!r} cannot be parsed ({exc}): httpd refuses it.",
                    "write it as uwsgi://127.0.0.1:PORT/ (IPv6: uwsgi://[::1]:PORT/).",
                )
            )
            continue
        if target.scheme == "uwsgi" and not target.unix and not is_loopback(target.host):
            port = port_of(target.netloc) or "3031"
            findings.append(
                Finding(
                    WARNING,
                    "socket-beyond-loopback",
                    directive.where,
                    f"the app's uwsgi socket {target.netloc} is not on loopback: whoever reaches it can send any identity.",
                    f"uwsgi://127.0.0.1:{port}{target.path} (with uWSGI's socket = 127.0.0.1:{port}), or a unix socket.",
                )
            )
        if app is not None and app.channel == "environ" and target.scheme in ("http", "https") and route:
            path = route.path if route.path is not None and not route.in_location else route.where_written()
            findings.append(
                Finding(
                    ERROR,
                    "proxy-http-environ",
                    directive.where,
                    f"{_written(route)} proxies with mod_proxy_http, which forwards no server variables: the app, reading the environ channel, sees nobody.",
                    f"ProxyPass {path} uwsgi://{target.netloc}/ (mod_proxy_uwsgi, to uWSGI's socket), or the headers channel with trusted_proxies.",
                )
            )
    return findings


def _client_headers(active: list[Directive], app: AppSettings) -> list[Finding]:
    """Each route to the app must unset (or set) every identity header, unconditionally, in a scope covering it."""
    # Per header: the hosts an unconditional line outside any request scope covers (None: all of
    # them), and the other lines, which are matched route by route.
    hosts: dict[str, set[Section | None]] = {key: set() for key in app.header_keys}
    scoped: dict[str, list[Directive]] = {key: [] for key in app.header_keys}
    for d in _named(active, "requestheader"):
        key = _key(d.arg(1))
        # X_Forwarded_User is another header: unsetting it leaves the client's X-Forwarded-User.
        if d.arg(0).lower() in ("set", "unset") and key in hosts and "_" not in d.arg(1):
            if d.scope is None and not _conditional(d):
                hosts[key].add(d.virtual_host)
            else:
                scoped[key].append(d)
    every = _app_routes(active)
    pairs = len(every) * sum(map(len, scoped.values()))
    if pairs > _MAX_PAIRS:
        return [_too_many(every[0].directive, len(every), pairs // len(every))]
    findings = []
    reported: set[int] = set()
    for route in every:
        missing = []
        for key in sorted(app.header_keys):
            if hosts[key] & {None, route.directive.virtual_host}:
                continue
            mine = [d for d in scoped[key] if covers(d, route)]
            if any(not _conditional(d) for d in mine):
                continue
            conditional = [d for d in mine if _conditional(d)]
            if conditional:
                for d in conditional:
                    if id(d) not in reported:
                        reported.add(id(d))
                        findings.append(_conditional_finding(d))
                continue
            missing.append(key)
        if missing:
            names = ", ".join(_header_name(k) for k in missing)
            fix = "; ".join(f"RequestHeader unset {_header_name(k)} early" for k in missing)
            scope = route.directive.virtual_host
            at = f" in the <VirtualHost> of line {scope.where.line}" if scope is not None else ""
            findings.append(
                Finding(
                    ERROR,
                    "client-headers-not-unset",
                    route.directive.where,
                    f"the app reads identity headers, but {_written(route)} passes clients' own copies of {names} (no unconditional RequestHeader set/unset covers these paths).",
                    f"{fix}{at}, outside any <Location>/<If>.",
                )
            )
    return findings


def _too_many(first: Directive, routes: int, lines: int) -> Finding:
    return Finding(
        ERROR,
        "file-too-large",
        first.where,
        f"{routes} proxied routes against {lines} RequestHeader lines inside sections: too many for the doctor to match (more than {_MAX_PAIRS} pairs), so the identity headers are not checked.",
        "unset the identity headers once at virtual-host level (RequestHeader unset NAME early), outside any section.",
    )


def _key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _condition(d: Directive) -> str | None:
    """The ``env=``/``expr=`` condition of a RequestHeader line (after the value, which may be ``expr=`` too)."""
    start = 2 if d.arg(0).lower() == "unset" else 3
    return next((a for a in d.args[start:] if a.lower().startswith(("env=", "expr="))), None)


def _conditional(d: Directive) -> bool:
    return _condition(d) is not None


def _conditional_finding(d: Directive) -> Finding:
    condition = _condition(d)
    name = d.arg(1)
    return Finding(
        ERROR,
        "conditional-header-set",
        d.where,
        f"RequestHeader {d.arg(0)} {name} only when {condition}: otherwise the client's own {name} reaches the app.",
        f"RequestHeader unset {name} early  before this line, without a condition.",
    )


def _header_name(key: str) -> str:
    return "-".join(part.capitalize() for part in key[len("HTTP_") :].split("_"))


def _tls(directives: list[Directive], active: list[Directive], app: AppSettings | None) -> list[Finding]:
    findings = []
    ssl_loaded = any(d.name == "loadmodule" and d.arg(0) == "ssl_module" for d in active)
    tls_hosts = {d.virtual_host for d in _named(active, "sslengine") if _on(d)}
    listens = _named(directives, "listen")
    active_ports = {port_of(d.arg(0)) for d in listens if d.active}
    for host in tls_hosts:
        if host is None:
            continue
        if not ssl_loaded:
            findings.append(
                Finding(
                    ERROR,
                    "ssl-module-not-loaded",
                    host.where,
                    "SSLEngine on, but mod_ssl is not loaded.",
                    "a2enmod ssl (Debian), or LoadModule ssl_module.",
                )
            )
        findings += _tls_listen(host, listens, active_ports)
    if tls_hosts and any(d.active for d in listens) and not _named(active, "sslsessioncache"):
        first = next(d for d in _named(active, "sslengine") if _on(d))
        findings.append(
            Finding(
                WARNING,
                "ssl-session-cache",
                first.where,
                "no SSLSessionCache: mod_ssl logs AH01873 and every connection needs a full handshake.",
                "SSLSessionCache shmcb:ssl_scache(512000) at server level (Debian: a2enmod ssl brings it).",
            )
        )
    if app is not None and app.sessions:
        findings += _cookie_scheme(active, tls_hosts, app)
    return findings


def _tls_listen(host: Section, listens: list[Directive], active_ports: set[str]) -> list[Finding]:
    ports = {port_of(address) for address in host.args}
    if not ports or ports & active_ports:
        return []
    port = sorted(ports)[0]
    behind_ssl = [
        d
        for d in listens
        if not d.active
        and port_of(d.arg(0)) == port
        and any(s.name == "ifmodule" and s.args[:1] in (("ssl_module",), ("mod_ssl.c",)) for s in d.sections)
    ]
    if behind_ssl:
        return [
            Finding(
                ERROR,
                "ssl-listen-inactive",
                behind_ssl[0].where,
                f"Listen {port} is inside <IfModule ssl_module>, which is false when this file is read: nothing listens on {port} (apache2ctl -t still says Syntax OK).",
                "a2enmod ssl, so mod_ssl is loaded before ports.conf.",
            )
        ]
    if not active_ports:
        return []  # no Listen in these files: the server's own ports.conf is elsewhere
    return [
        Finding(
            ERROR,
            "ssl-listen-missing",
            host.where,
            f"a TLS virtual host on port {port}, but no active Listen for it: nothing answers there.",
            f"Listen {port} https",
        )
    ]


def _cookie_scheme(
    active: list[Directive], tls_hosts: set[Section | None], app: AppSettings
) -> list[Finding]:
    findings = []
    for route in _app_routes(active):
        proxy = route.directive
        tls = proxy.virtual_host in tls_hosts
        if app.cookie_secure and not tls:
            findings.append(
                Finding(
                    ERROR,
                    "secure-cookie-on-http",
                    proxy.where,
                    "the app's session cookie is Secure, but this host serves it over plain http: browsers never send it back (a login loop).",
                    "serve the app over https (SSLEngine on), redirecting http to https.",
                )
            )
        elif not app.cookie_secure and tls:
            where = app.where.get("SHIBWSGI_COOKIE_SECURE", proxy.where)
            findings.append(
                Finding(
                    WARNING,
                    "cookie-not-secure",
                    where,
                    "SHIBWSGI_COOKIE_SECURE is off on an https site: the session id may travel over plain http.",
                    "drop SHIBWSGI_COOKIE_SECURE (Secure is the default).",
                )
            )
    return findings
