"""Every finding id the doctor can report, in one place, with what it means.

A :class:`~shibwsgi.doctor.findings.Finding` with an id missing here is a programming
error (it raises), so this table is the complete list operators and scripts can rely on.
"""

from __future__ import annotations

__all__ = ["PITFALLS"]

PITFALLS: dict[str, str] = {
    # reading the files
    "unreadable-file": "a config file cannot be read, is not a regular file, or is not text",
    "file-too-large": "a config file, or all files together, over the doctor's size or count cap",
    "missing-include": "an Include/include naming a file (or a glob) that matches nothing",
    "include-loop": "files that include each other: the server refuses to start",
    "unterminated-section": "an Apache section or an nginx block left open, or closed twice",
    "server-refuses": "the installed server itself (apache2 -t, nginx -t) refuses the config",
    "server-check-incomplete": "the installed server could not test the config completely",
    "not-uwsgi-ini": "a uwsgi ini without a [uwsgi] section",
    # settings
    "invalid-setting": "a SHIBWSGI_* setting the middleware refuses at start-up",
    "jwks-over-http": "SHIBWSGI_JWKS_URL over plain http to a non-loopback host",
    # uWSGI
    "buffer-size": "uWSGI buffer-size missing, too small for the attribute caps, or over 65535",
    "socket-beyond-loopback": "the app's uwsgi socket reachable beyond loopback",
    "socket-world-writable": "a unix socket every local user can write to",
    "secret-in-ini": "a secret setting written in the uwsgi ini",
    # identity headers (header channel)
    "client-headers-not-unset": "the client's own copy of an identity header reaches the app",
    "client-value-copied": "an identity header set from a value the client controls ($http_*, $cookie_*, $arg_*...)",
    "conditional-header-set": "an identity header set only under a condition (env=, expr=): otherwise the client's passes",
    "auth-request-off": "an nginx location that switches auth_request off and proxies to the app",
    # Shibboleth
    "shib-use-headers": "ShibUseHeaders On: attributes as request headers",
    "shib-use-environment": "ShibUseEnvironment Off: no attribute in the environment",
    "shib-compat-valid-user": "Require valid-user under another AuthType with mod_shib loaded (AH01629)",
    "shib-encoding": "ShibRequestSetting encoding differs from SHIBWSGI_ENCODING",
    # proxying
    "handler-proxied": "the front end's own endpoints (/Shibboleth.sso, mellon) proxied to the app",
    "proxy-http-environ": "mod_proxy_http (no server variables) with the environ channel",
    "bad-proxy-url": "a ProxyPass/SetHandler target httpd cannot parse",
    # mod_auth_openidc
    "oidc-encoding": "OIDCPassClaimsAs encoding differs from SHIBWSGI_ENCODING, or is lossy latin1",
    "oidc-claims-not-in-environment": "OIDCPassClaimsAs puts no claim in the environment the app reads",
    "oidc-claims-twice": "OIDCPassClaimsAs both: every claim travels twice in the 64 KB packet",
    "oidc-claim-headers-dropped": "claim headers with '_' dropped by Apache before mod_proxy_uwsgi",
    "oidc-cache-entry-size": "OIDCCacheShmEntrySizeMax unset, too small, or over the module's maximum",
    # mellon
    "mellon-merge": "MellonMergeEnvVars On: values joined with an unescaped separator",
    # TLS and cookies
    "ssl-module-not-loaded": "SSLEngine on without mod_ssl loaded",
    "ssl-listen-inactive": "Listen 443 inside an <IfModule ssl_module> that is false",
    "ssl-listen-missing": "a TLS virtual host on a port nothing listens on",
    "ssl-session-cache": "no SSLSessionCache",
    "secure-cookie-on-http": "a Secure session cookie served over plain http (a login loop)",
    "cookie-not-secure": "SHIBWSGI_COOKIE_SECURE off on an https site",
    # the live probe (doctor --probe)
    "probe-unreachable": "the probe could not reach the site, or the probe endpoint is off",
    "probe-client-header-reached-app": "a header the client sent arrived in the app's environ as an identity variable",
    "probe-client-header-passed-gate": "a client's identity header passed the app's trust gate",
    "probe-client-header-stopped-by-gate": "the front end let a client's identity header through; the app's gate removed it",
    "probe-header-limit": "how large a header line and a request the front end accepts, and how it refuses beyond",
    "probe-header-limit-500": "the front end answers an over-large request with a 5xx, not 400/431",
    "probe-unprotected": "a protected path answers an anonymous request with 200",
    "probe-cookie-flags": "a cookie without Secure, HttpOnly or SameSite",
    "probe-plain-http": "the site is probed over plain http",
    "probe-environ-size": "the environ the app received, for the probe request",
    "probe-headers-let-through": "client headers the front end passes on, that the app does not read",
    "probe-tls": "the TLS version and cipher the site negotiated",
    "probe-identity-in-headers": "a signed-in probe saw the front end send identity variables as request headers too",
    "probe-cookie-not-signed-in": "the probe's --cookie did not sign it in: its request reached the app anonymous",
}
