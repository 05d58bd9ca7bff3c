"""Pitfalls in an Apache configuration, alone and against the app's settings."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from .addresses import is_loopback, port_of
from .apache import Directive, Section
from .findings import ERROR, WARNING, Finding, Location
from .settings import AppSettings

__all__ = ["check_apache"]

#: mod_auth_openidc's OIDCPassClaimsAs encodings -> shibwsgi's
OIDC_ENCODINGS = {"latin1": "latin-1", "base64url": "base64url", "none": "utf-8"}
OIDC_DEFAULT_ENTRY = 16913
OIDC_MAX_ENTRY = 524288
OIDC_ENOUGH_ENTRY = 65536


def check_apache(directives: list[Directive], app: AppSettings | None) -> list[Finding]:
    active = [d for d in directives if d.active]
    findings: list[Finding] = []
    for check in (_shibboleth, _compat_valid_user, _handlers_proxied, _openidc, _mellon, _proxy_targets):
        findings += check(active, app)
    findings += _tls(directives, active, app)
    if app is not None and app.channel == "headers":
        findings += _client_headers(active, app)
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
        auth_types = [d for d in active if d.name == "authtype" and d.sections == require.sections]
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


def _proxies(active: list[Directive]) -> list[Directive]:
    return _named(active, "proxypass", "proxypassmatch")


def _handlers_proxied(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    """The front end's own endpoints must not be proxied to the app."""
    endpoints = []
    if _uses(active, "shib"):
        endpoints.append(("/Shibboleth.sso", "the Shibboleth handler (ACS, Login, Logout)"))
    if _uses(active, "mellon"):
        paths = [d.arg(0) for d in _named(active, "mellonendpointpath")] or ["/mellon"]
        endpoints += [(path.rstrip("/") or "/", "mod_auth_mellon's endpoints") for path in paths]
    findings = []
    for proxy in _proxies(active):
        if proxy.name != "proxypass" or proxy.arg(0) != "/" or proxy.arg(1) == "!":
            continue
        before = [p for p in _proxies(active) if p.virtual_host == proxy.virtual_host and p.arg(1) == "!"]
        for path, what in endpoints:
            if not any(p.arg(0).rstrip("/") == path for p in before):
                findings.append(
                    Finding(
                        ERROR,
                        "handler-proxied",
                        proxy.where,
                        f"ProxyPass / sends {what} ({path}) to the app.",
                        f"ProxyPass {path} !  before this line.",
                    )
                )
    return findings


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
        through_uwsgi = any(p.arg(1).startswith("uwsgi:") for p in _proxies(active))
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


def _proxy_targets(active: list[Directive], app: AppSettings | None) -> list[Finding]:
    findings = []
    for proxy in _proxies(active):
        if "${" in proxy.arg(1):
            continue  # an undefined variable: nothing to judge
        target = urlsplit(proxy.arg(1))
        if target.scheme == "uwsgi" and not is_loopback(target.hostname):
            findings.append(
                Finding(
                    WARNING,
                    "socket-beyond-loopback",
                    proxy.where,
                    f"the app's uwsgi socket {target.netloc} is not on loopback: whoever reaches it can send any identity.",
                    "run uWSGI on 127.0.0.1 or a unix socket (unix:/run/app.sock|uwsgi://app/).",
                )
            )
        if app is not None and app.channel == "environ" and target.scheme in ("http", "https"):
            findings.append(
                Finding(
                    ERROR,
                    "proxy-http-environ",
                    proxy.where,
                    f"ProxyPass to {target.scheme}:// (mod_proxy_http) forwards no server variables: the app, reading the environ channel, sees nobody.",
                    "ProxyPass / uwsgi://127.0.0.1:3031/ (mod_proxy_uwsgi), or the headers channel with trusted_proxies.",
                )
            )
    return findings


def _client_headers(active: list[Directive], app: AppSettings) -> list[Finding]:
    proxies = [p for p in _proxies(active) if p.arg(1) != "!"]
    if not proxies:
        return []
    covered = {
        (d.virtual_host, "HTTP_" + d.arg(1).upper().replace("-", "_"))
        for d in _named(active, "requestheader")
        if d.arg(0).lower() in ("set", "unset")
    }
    findings = []
    for proxy in proxies:
        missing = sorted(
            k for k in app.header_keys if (proxy.virtual_host, k) not in covered and (None, k) not in covered
        )
        if missing:
            names = ", ".join(_header_name(k) for k in missing)
            findings.append(
                Finding(
                    ERROR,
                    "client-headers-not-unset",
                    proxy.where,
                    f"the app reads identity headers, but Apache passes clients' own copies of {names}.",
                    "RequestHeader unset NAME early (or set) for each, before the auth module sets them.",
                )
            )
    return findings


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
    for proxy in _proxies(active):
        if proxy.arg(1) == "!":
            continue
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
