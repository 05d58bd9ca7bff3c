"""Attacks on ``shibwsgi doctor`` and the probe: false clean, hangs, tracebacks, leaks.

The CLI runs as a subprocess with a timeout: whatever it is fed, it ends with findings or a
usage error, never a traceback. Hostile sites are raw sockets on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stack import self_signed_certificate
from test_doctor import HEADERS, Case, edited
from test_doctor_false_clean import OAUTH2_USER_LINE, UNSET_ALL, header_site, nginx_app, shib_site
from webtest import TestApp

from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.doctor import ERROR, WARNING, diagnose, globs
from shibwsgi.doctor.probe_http import Site
from shibwsgi.probe import DEFAULT_PROBE_PATH, MARKER, REACHED_HEADER, TOKEN_HEADER

TOKEN = "a-probe-token-of-some-length"
SHIB = {"SHIBWSGI_PROFILE": "shibboleth"}
WORKTREE = Path(__file__).resolve().parent.parent


def doctor(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess; it must end by itself, without a traceback."""
    environ = {**os.environ, "PYTHONPATH": str(WORKTREE), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "shibwsgi", "doctor", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def pitfalls(case: Case, folder: Path) -> dict[str, str]:
    """pitfall -> severity of what the doctor finds in ``case``."""
    return {f.pitfall: f.severity for f in case.run(folder)}


# --- nginx: client values reaching identity headers through indirection ------------------------


def _in_server(line: str) -> str:
    return nginx_app("").replace("listen 443 ssl;", "listen 443 ssl;\n        " + line)


def _in_http(line: str) -> str:
    return nginx_app("").replace("http {", "http {\n    " + line, 1)


def _user_from(value: str, before: str = "") -> str:
    return nginx_app(f"{before}            proxy_set_header X-Forwarded-User {value};")


@pytest.mark.parametrize(
    "nginx",
    [
        pytest.param(
            _user_from("$who").replace("location / {", "location ~ ^/u/(?<who>[^/]+) {"),
            id="named capture of a location regex",
        ),
        pytest.param(
            _user_from("$who").replace(
                "listen 443 ssl;", "listen 443 ssl;\n        server_name ~^(?<who>.+)\\.example\\.org$;"
            ),
            id="named capture of a server_name regex (the client's Host)",
        ),
        pytest.param(
            _user_from("$who", '            rewrite "^/as/(?P<who>[^/]+)" /home;\n'),
            id="named capture of a rewrite regex",
        ),
        pytest.param(
            _user_from("$who", '            if ($http_x_user ~ "^(?<who>.+)$") { }\n'),
            id="named capture of an if on a client header",
        ),
        pytest.param(
            _in_http('map $http_x_user $who { default "nobody"; "~^(?<name>.+)$" $name; }').replace(
                "$sso_user;\n", "$sso_user;\n            proxy_set_header X-Forwarded-User $name;\n", 1
            ),
            id="named capture of a map on a client header used outside the map",
        ),
        pytest.param(
            _user_from("$u").replace(
                "auth_request_set $sso_user",
                "auth_request_set $u $http_x_user;\n        auth_request_set $sso_user",
            ),
            id="auth_request_set from the client's header",
        ),
        pytest.param(
            _user_from("$who", "            set $WHO $http_x_user;\n"), id="set in upper case, used in lower"
        ),
        pytest.param(
            _user_from('"u=${who}"', '            set $a $cookie_u;\n            set $who "x$A";\n'),
            id="nested variables in braces, mixed case",
        ),
        pytest.param(_user_from("$ssl_server_name"), id="the client's TLS server name"),
        pytest.param(_user_from("$fastcgi_path_info"), id="a part of the URI"),
        pytest.param(_user_from('"u=$http_x_user;v=1"'), id="client header inside a larger string"),
        pytest.param(
            nginx_app('            more_set_input_headers "X-Forwarded-User: $http_x_evil";'),
            id="more_set_input_headers from a client header",
        ),
        pytest.param(
            nginx_app('            more_set_input_headers -t "text/html" "X-Forwarded-User:$arg_u";'),
            id="more_set_input_headers with a type filter, from an argument",
        ),
    ],
)
def test_nginx_identity_from_a_client_value_through_indirection_is_an_error(
    tmp_path: Path, nginx: str
) -> None:
    assert pitfalls(Case(nginx=nginx, settings=HEADERS), tmp_path).get("client-value-copied") == ERROR


@pytest.mark.parametrize(
    "nginx",
    [
        pytest.param(_in_server("underscores_in_headers on;"), id="underscores_in_headers on"),
        pytest.param(_in_http("underscores_in_headers on;"), id="underscores_in_headers on at http level"),
        pytest.param(_in_server("ignore_invalid_headers off;"), id="ignore_invalid_headers off"),
    ],
)
def test_nginx_proxy_letting_underscored_client_headers_through_is_an_error(
    tmp_path: Path, nginx: str
) -> None:
    assert pitfalls(Case(nginx=nginx, settings=HEADERS), tmp_path).get("client-headers-not-unset") == ERROR


@pytest.mark.parametrize(
    "nginx",
    [
        pytest.param(nginx_app(""), id="the template"),
        pytest.param(
            _in_http('map $sso_user $who { default ""; "~^(?<local>[^@]+)@" $local; }').replace(
                "$sso_user;\n", "$sso_user;\n            proxy_set_header X-Forwarded-User $who;\n", 1
            ),
            id="named capture of a map on the auth answer",
        ),
        pytest.param(
            _user_from("$u").replace(
                "auth_request_set $sso_user",
                "auth_request_set $u $upstream_http_x_auth_request_email;\n        auth_request_set $sso_user",
            ),
            id="auth_request_set from the auth answer",
        ),
        pytest.param(
            _user_from("$who")
            .replace("location / {", "location ~ ^/u/(?<page>[^/]+) {")
            .replace(
                "proxy_set_header X-Forwarded-User $who;",
                "proxy_set_header X-Forwarded-User $sso_user;\n            proxy_set_header X-Page $page;",
            ),
            id="named capture into a header that is no identity",
        ),
        pytest.param(_in_server("underscores_in_headers off;"), id="underscores_in_headers off"),
        pytest.param(
            edited(
                "nginx-oauth2-proxy.conf",
                OAUTH2_USER_LINE,
                OAUTH2_USER_LINE + "\n        underscores_in_headers on;",
            ),
            id="underscores_in_headers on with uwsgi_param, which replaces both spellings",
        ),
    ],
)
def test_nginx_safe_twin_stays_clean(tmp_path: Path, nginx: str) -> None:
    found = pitfalls(Case(nginx=nginx, settings=HEADERS), tmp_path)
    assert not {p for p, severity in found.items() if severity == ERROR}, found


APP_ANSWERS_AUTH = nginx_app("").replace(
    "proxy_pass http://127.0.0.1:4180;", "proxy_pass http://127.0.0.1:8000;"
)
CLEARING = (
    'proxy_set_header X-Auth-Request-User "";\n            proxy_set_header X-Forwarded-User $sso_user;\n'
)


@pytest.mark.parametrize("app_location", ["location / {", "location /app/ {", "location ~ ^/api {"])
def test_nginx_app_answering_auth_request_on_its_own_target_is_still_checked(
    tmp_path: Path, app_location: str
) -> None:
    spoofable = APP_ANSWERS_AUTH.replace(
        CLEARING, "proxy_set_header X-Forwarded-User $http_x_user;\n"
    ).replace("location / {", app_location)
    found = pitfalls(Case(nginx=spoofable, settings=HEADERS), tmp_path)
    assert found.get("client-value-copied") == ERROR
    assert found.get("client-headers-not-unset") == ERROR


def test_nginx_app_answering_auth_request_with_headers_cleared_stays_clean(tmp_path: Path) -> None:
    server_level = CLEARING.replace("            ", "        ")
    safe = APP_ANSWERS_AUTH.replace(CLEARING, "").replace(
        "auth_request /oauth2/auth;\n", "auth_request /oauth2/auth;\n        " + server_level
    )
    found = pitfalls(Case(nginx=safe, settings=HEADERS), tmp_path)
    assert not {p for p, severity in found.items() if severity == ERROR}, found


# --- Apache: every form of proxying, values copied from the client ---------------------------

UNSET_AUTH = "    RequestHeader unset X-Auth-Request-User early\n"
REWRITE_PROXY = "RewriteEngine On\n    RewriteRule ^/(.*)$ uwsgi://127.0.0.1:3031/$1 [P,L]"


def _rewrite_site(outside: str = "") -> str:
    return header_site(outside=outside).replace("ProxyPass / uwsgi://127.0.0.1:3031/", REWRITE_PROXY)


@pytest.mark.parametrize(
    ("apache", "settings", "pitfall"),
    [
        pytest.param(
            _rewrite_site(),
            HEADERS,
            "client-headers-not-unset",
            id="RewriteRule P passes the client's headers",
        ),
        pytest.param(
            shib_site("    " + REWRITE_PROXY),
            SHIB,
            "handler-proxied",
            id="RewriteRule P swallows Shibboleth.sso",
        ),
        pytest.param(
            shib_site("    " + REWRITE_PROXY.replace("uwsgi://127.0.0.1:3031", "http://127.0.0.1:8000")),
            SHIB,
            "proxy-http-environ",
            id="RewriteRule P to http with the environ channel",
        ),
        pytest.param(
            header_site(
                outside=UNSET_AUTH
                + '    SetEnvIf X-Client-User "(.+)" RU=$1\n    RequestHeader set X-Forwarded-User "%{RU}e"'
            ),
            HEADERS,
            "client-value-copied",
            id="SetEnvIf copies a client header into the identity header",
        ),
        pytest.param(
            header_site(
                outside=UNSET_AUTH
                + '    SetEnvIfNoCase Request_URI "^/as/(.+)" RU=$1\n    RequestHeader set X-Forwarded-User "u:%{RU}e"'
            ),
            HEADERS,
            "client-value-copied",
            id="SetEnvIfNoCase copies the URI into the identity header",
        ),
        pytest.param(
            header_site(
                outside=UNSET_AUTH
                + "    RewriteEngine On\n    RewriteRule .* - [E=RU:%{HTTP:X-Client-User}]\n"
                '    RewriteRule .* - [E=WHO:%{ENV:RU}]\n    RequestHeader set X-Forwarded-User "%{WHO}e"'
            ),
            HEADERS,
            "client-value-copied",
            id="RewriteRule E= from a client header, through another variable",
        ),
        pytest.param(
            header_site(
                outside=UNSET_AUTH + '    RequestHeader set X-Forwarded-User "expr=%{req:X-Client-User}"'
            ),
            HEADERS,
            "client-value-copied",
            id="expression value reading a client header",
        ),
        pytest.param(
            header_site(
                outside=UNSET_AUTH + '    RequestHeader set X-Forwarded-User "expr=%{HTTP:X-Client}" early'
            ),
            HEADERS,
            "client-value-copied",
            id="expression value with early",
        ),
        pytest.param(
            shib_site('    SetEnvIf X-Evil "(.+)" eppn=$1'),
            SHIB,
            "client-value-copied",
            id="SetEnvIf sets an identity variable of the environ channel",
        ),
        pytest.param(
            shib_site("    RewriteEngine On\n    RewriteRule .* - [E=REMOTE_USER:%{QUERY_STRING}]"),
            SHIB,
            "client-value-copied",
            id="RewriteRule E= sets REMOTE_USER from the query",
        ),
        pytest.param(
            header_site(
                outside=UNSET_AUTH
                + '    BrowserMatch "^(.+)$" RU=$1\n    RequestHeader setifempty X-Forwarded-User "%{RU}e"'
            ),
            HEADERS,
            "client-value-copied",
            id="BrowserMatch copies the User-Agent",
        ),
    ],
)
def test_apache_spoofable_setup_is_an_error(
    tmp_path: Path, apache: str, settings: dict[str, str], pitfall: str
) -> None:
    assert pitfalls(Case(apache=apache, settings=settings), tmp_path).get(pitfall) == ERROR


@pytest.mark.parametrize(
    ("apache", "settings"),
    [
        pytest.param(
            UNSET_ALL + "\n" + _rewrite_site(), HEADERS, id="RewriteRule P under a server-level unset"
        ),
        pytest.param(
            header_site(outside=UNSET_AUTH + '    RequestHeader set X-Forwarded-User "expr=%{REMOTE_USER}"'),
            HEADERS,
            id="expression value of the front end's own user",
        ),
        pytest.param(
            header_site(outside=UNSET_AUTH + '    RequestHeader set X-Forwarded-User "%{REMOTE_USER}s"'),
            HEADERS,
            id="value of the front end's own user",
        ),
        pytest.param(
            header_site(
                outside=UNSET_ALL
                + '\n    SetEnvIf X-Client "(.+)" NOCACHE=1\n    SetEnvIf Remote_Addr "(.+)" PEER=$1'
            ),
            HEADERS,
            id="SetEnvIf with a constant, or from the peer address",
        ),
        pytest.param(
            shib_site(
                "    RewriteEngine On\n    RewriteCond %{REQUEST_URI} !^/Shibboleth.sso\n"
                "    RewriteRule ^/(.*)$ uwsgi://127.0.0.1:3031/$1 [P]"
            ),
            SHIB,
            id="RewriteRule P with a condition keeping Shibboleth.sso out",
        ),
        pytest.param(
            shib_site("    RewriteRule ^/(.*)$ http://127.0.0.1:8000/$1 [P]"),
            SHIB,
            id="RewriteRule P without RewriteEngine On does nothing",
        ),
        pytest.param(
            shib_site("    <Location /secure>\n        ShibUseHeaders Off\n    </Location>"),
            SHIB,
            id="ShibUseHeaders Off",
        ),
    ],
)
def test_apache_safe_twin_stays_clean(tmp_path: Path, apache: str, settings: dict[str, str]) -> None:
    found = pitfalls(Case(apache=apache, settings=settings), tmp_path)
    assert not {p for p, severity in found.items() if severity == ERROR}, found


@pytest.mark.parametrize(
    "shib_use_headers",
    ["ShibUseHeaders on", 'SHIBUSEHEADERS "ON"', "shibuseheaders On"],
)
@pytest.mark.parametrize("where", ["<Location /secure>", "<Directory /var/www>", '<If "true">'])
def test_apache_shib_use_headers_in_any_spelling_and_scope_is_an_error(
    tmp_path: Path, shib_use_headers: str, where: str
) -> None:
    name = where[1:].split()[0]
    site = shib_site(f"    {where}\n        {shib_use_headers}\n    </{name}>")
    assert pitfalls(Case(apache=site, settings=SHIB), tmp_path).get("shib-use-headers") == ERROR


@pytest.mark.parametrize(
    ("case", "pitfall"),
    [
        pytest.param(
            Case(
                apache=header_site(outside=UNSET_ALL.replace("X-Forwarded-User", "X_Forwarded_User")),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache unset of the underscored spelling leaves the dashed header",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("").replace(
                    'proxy_set_header X-Auth-Request-User "";', 'proxy_set_header X_Auth_Request_User "";'
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="nginx proxy_set_header of the underscored spelling leaves the dashed header",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("            proxy_set_header Host $host;")
                .replace(
                    'proxy_set_header X-Auth-Request-User "";\n            proxy_set_header X-Forwarded-User $sso_user;\n',
                    "",
                )
                .replace(
                    "auth_request /oauth2/auth;",
                    'auth_request /oauth2/auth;\n        proxy_set_header X-Auth-Request-User "";',
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="nginx location proxy_set_header hides the server's clearing",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("").replace(
                    "    server {",
                    "    server {\n        listen 80;\n        location / { proxy_pass http://127.0.0.1:8000; }\n    }\n    server {",
                    1,
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="nginx second server proxying without clearing",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside="    RequestHeader unset X-Auth-Request-User early\n    RequestHeader add X-Forwarded-User x"
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache RequestHeader add keeps the client's value",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside="    <LocationMatch ^/login>\n" + UNSET_ALL + "\n    </LocationMatch>"
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache unset in a LocationMatch covering part of the site",
        ),
        pytest.param(
            Case(
                apache=header_site(outside="    <Directory />\n" + UNSET_ALL + "\n    </Directory>"),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache unset in a Directory, which proxied requests never enter",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside="    Header unset X-Forwarded-User\n    Header unset X-Auth-Request-User"
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache Header (the response) instead of RequestHeader",
        ),
        pytest.param(
            Case(
                apache="<VirtualHost *:80>\n" + UNSET_ALL + "\n</VirtualHost>\n" + header_site(),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache unset in another virtual host",
        ),
        pytest.param(
            Case(
                apache="ProxyPass / uwsgi://127.0.0.1:3031/\n<VirtualHost *:443>\n"
                + UNSET_ALL
                + "\n</VirtualHost>\n",
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            id="apache global ProxyPass, unset in one virtual host only",
        ),
        pytest.param(
            Case(
                apache=shib_site(
                    '    <FilesMatch "\\.py$">\n        SetHandler "proxy:http://127.0.0.1:8000/"\n    </FilesMatch>'
                ),
                settings=SHIB,
            ),
            "proxy-http-environ",
            id="apache SetHandler proxy http in FilesMatch with the environ channel",
        ),
        pytest.param(
            Case(apache=shib_site("    ProxyPass /app/ http://127.0.0.1:3031/"), settings=SHIB),
            "proxy-http-environ",
            id="apache http:// to the uwsgi socket with the environ channel",
        ),
    ],
)
def test_header_coverage_attack_is_an_error(tmp_path: Path, case: Case, pitfall: str) -> None:
    assert pitfalls(case, tmp_path).get(pitfall) == ERROR


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Case(
                apache=header_site(
                    outside=UNSET_ALL.replace("RequestHeader unset X-", "requestheader UNSET x-")
                ),
                settings=HEADERS,
            ),
            id="apache unset in other cases",
        ),
        pytest.param(
            Case(apache=header_site(outside=UNSET_ALL.replace(" early", "")), settings=HEADERS),
            id="apache unset without early",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside='    <Location "/">\n' + UNSET_ALL.replace(" early", "") + "\n    </Location>"
                ),
                settings=HEADERS,
            ),
            id="apache unset in Location /",
        ),
        pytest.param(
            Case(apache=UNSET_ALL + "\n" + header_site(), settings=HEADERS), id="apache unset at server level"
        ),
        pytest.param(
            Case(
                nginx=nginx_app("            proxy_pass_request_headers off;").replace(
                    'proxy_set_header X-Auth-Request-User "";', ""
                ),
                settings=HEADERS,
            ),
            id="nginx proxy_pass_request_headers off",
        ),
    ],
)
def test_header_coverage_safe_twin_stays_clean(tmp_path: Path, case: Case) -> None:
    found = pitfalls(case, tmp_path)
    assert not {p for p, severity in found.items() if severity == ERROR}, found


LOCATION_APP_SLASH = header_site(
    outside="    <Location /app/>\n" + UNSET_ALL.replace(" early", "") + "\n    </Location>"
).replace("ProxyPass / ", "ProxyPass /app ")


def test_apache_unset_in_location_with_a_slash_does_not_cover_the_bare_path(tmp_path: Path) -> None:
    # <Location /app/> does not hold /app, which ProxyPass /app sends to the app
    found = pitfalls(Case(apache=LOCATION_APP_SLASH, settings=HEADERS), tmp_path)
    assert found.get("client-headers-not-unset") == ERROR


@pytest.mark.parametrize(
    "apache",
    [
        LOCATION_APP_SLASH.replace("ProxyPass /app ", "ProxyPass /app/ "),
        LOCATION_APP_SLASH.replace("<Location /app/>", "<Location /app>"),
    ],
    ids=["both with a slash", "Location without a slash"],
)
def test_apache_unset_in_a_location_holding_the_route_stays_clean(tmp_path: Path, apache: str) -> None:
    found = pitfalls(Case(apache=apache, settings=HEADERS), tmp_path)
    assert not {p for p, severity in found.items() if severity == ERROR}, found


@pytest.mark.parametrize(
    ("option", "severity"),
    [
        ("fastcgi-socket", ERROR),
        ("fastcgi-nph-socket", ERROR),
        ("scgi-socket", ERROR),
        ("SOCKET", ERROR),
        ("uwsgi_socket", ERROR),
        ("https-socket", WARNING),
    ],
)
@pytest.mark.parametrize("address", ["0.0.0.0:3031", ":3031", "[::]:3031", "*:3031"])
def test_uwsgi_socket_carrying_server_variables_beyond_loopback_is_reported(
    tmp_path: Path, option: str, severity: str, address: str
) -> None:
    ini = f"[uwsgi]\n{option} = {address},cert.pem,key.pem\nbuffer-size = 65535\n"
    assert pitfalls(Case(uwsgi=ini, settings=SHIB), tmp_path).get("socket-beyond-loopback") == severity


def test_nginx_relative_include_resolves_against_the_main_config_not_the_including_file(
    tmp_path: Path,
) -> None:
    # Debian: sites-enabled/site includes snippets/clear.conf, which nginx reads from /etc/nginx/
    site = nginx_app("").replace(CLEARING, "include snippets/clear.conf;\n")
    _tree(
        tmp_path,
        {
            "nginx.conf": "include sites-enabled/*.conf;\n",
            "sites-enabled/site.conf": site.replace("events {}\n", ""),
            "snippets/clear.conf": "proxy_set_header X-Forwarded-User $http_x_user;\n",
            "sites-enabled/snippets/clear.conf": CLEARING,  # nginx never reads this one
        },
    )
    found = {f.pitfall for f in diagnose(nginx=[tmp_path / "nginx.conf"], environ=HEADERS)[0]}
    assert "client-value-copied" in found
    assert "missing-include" not in found


# --- never a hang, a traceback or a blow-up ---------------------------------------------------


def _nested_routes(levels: int) -> str:
    opened = "<IfModule !mod_nothing.c>\nProxyPass / uwsgi://127.0.0.1:3031/\nRequestHeader unset X-Forwarded-User\n"
    return "<VirtualHost *:443>\n" + opened * levels + "</IfModule>\n" * levels + "</VirtualHost>\n"


def _flat_routes(count: int) -> str:
    lines = [
        f"<Location /p{i}>\nRequestHeader unset X-Forwarded-User\n</Location>\nProxyPass /p{i} uwsgi://127.0.0.1:3031/"
        for i in range(count)
    ]
    return "<VirtualHost *:443>\n" + "\n".join(lines) + "\n</VirtualHost>\n"


def _nested_locations(levels: int) -> str:
    opened = "location / { proxy_pass http://127.0.0.1:8000; "
    return "events {}\nhttp { server { listen 443 ssl; " + opened * levels + "}" * levels + "}}\n"


def test_nginx_deeply_nested_proxying_locations_end_quickly(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text(_nested_locations(20_000))
    env = {
        "SHIBWSGI_PROFILE": "oauth2-proxy",
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
    }
    done = doctor(
        "--no-servers", "--env", "--json", "--nginx", str(tmp_path / "nginx.conf"), env=env, timeout=120
    )
    assert "client-headers-not-unset" in {f["pitfall"] for f in json.loads(done.stdout)["findings"]}


@pytest.mark.parametrize(
    ("text", "pitfall"),
    [
        pytest.param(
            _nested_routes(30_000), "client-headers-not-unset", id="30000 nested sections each proxying"
        ),
        pytest.param(
            _flat_routes(20_000), "file-too-large", id="20000 routes each under its own Location unset"
        ),
    ],
)
def test_apache_many_routes_and_header_lines_end_quickly(tmp_path: Path, text: str, pitfall: str) -> None:
    (tmp_path / "site.conf").write_text(text)
    env = {
        "SHIBWSGI_PROFILE": "oauth2-proxy",
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
    }
    done = doctor(
        "--no-servers", "--env", "--json", "--apache", str(tmp_path / "site.conf"), env=env, timeout=120
    )
    assert pitfall in {f["pitfall"] for f in json.loads(done.stdout)["findings"]}


@pytest.mark.parametrize(
    ("kind", "line"),
    [("apache", "IncludeOptional {root}/*/*/*.conf"), ("nginx", "include {root}/*/*/*.conf;")],
    ids=["apache", "nginx"],
)
def test_include_wildcard_high_in_a_wide_tree_stops_at_the_entry_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, line: str
) -> None:
    monkeypatch.setattr(globs, "MAX_ENTRIES", 50)
    for i in range(30):
        (tmp_path / f"d{i}" / "e").mkdir(parents=True)
    found = pitfalls(Case(**{kind: line}), tmp_path)
    assert found.get("file-too-large") == ERROR


def _tree(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{root}", str(folder)))


ODD_TREES: dict[str, tuple[str, dict[str, str | bytes]]] = {
    "apache Include of a directory holding a symlink to its parent": (
        "apache",
        {"main.conf": "Include {root}/d\n", "d/a.conf": "Include {root}/d\n", "d/sub/.keep": ""},
    ),
    "apache Include of /proc/self/fd/0": ("apache", {"main.conf": "Include /proc/self/fd/0\n"}),
    "apache Include of a dangling symlink": ("apache", {"main.conf": "Include {root}/gone.conf\n"}),
    "apache relative IncludeOptional loop": (
        "apache",
        {
            "main.conf": "ServerRoot {root}\nIncludeOptional conf.d/*.conf\n",
            "conf.d/a.conf": "IncludeOptional conf.d/*.conf\n",
        },
    ),
    "apache Define doubling itself 40 times": (
        "apache",
        {"main.conf": "Define A xxxxxxxxxxxxxxxx\n" + "Define A ${A}${A}\n" * 40 + "ServerName ${A}\n"},
    ),
    "apache many lines each expanding a large Define": (
        "apache",
        {
            "main.conf": "Define A xxxxxxxxxxxxxxxx\n"
            + "Define A ${A}${A}\n" * 17
            + "ServerName ${A}\n" * 5000
        },
    ),
    "apache 3 MB line": ("apache", {"main.conf": "ServerName " + "a" * 3_000_000 + "\n"}),
    "apache 200000 continuation lines": ("apache", {"main.conf": "ProxyPass \\\n" * 200_000}),
    "apache nul bytes": ("apache", {"main.conf": b"ProxyPass / uwsgi://127.0.0.1:3031/\x00\n"}),
    "apache binary garbage": ("apache", {"main.conf": bytes(range(256)) * 1000}),
    "apache latin-1 bytes": ("apache", {"main.conf": b"ServerName caf\xe9.example.org\n"}),
    "apache unclosed quote": (
        "apache",
        {"main.conf": 'RequestHeader set X-User "abc\nProxyPass / uwsgi://[::1:3031/\n'},
    ),
    "nginx include of a directory": ("nginx", {"main.conf": "include {root}/d;\n", "d/x": ""}),
    "nginx unclosed quote and variable": ("nginx", {"main.conf": 'http { set $a "${x; proxy_pass ${\n'}),
    "nginx 100000 closing braces": ("nginx", {"main.conf": "}" * 100_000}),
    "nginx 100000 opening braces": ("nginx", {"main.conf": "a {" * 100_000}),
    "nginx nul bytes": ("nginx", {"main.conf": b"http { \x00 }"}),
    "uwsgi % substitutions and @() includes": (
        "uwsgi",
        {
            "main.conf": "[uwsgi]\nbase = %d\nsocket = %(base)/s.sock\nini = @(exec://true)\nenv = SHIBWSGI_PROFILE=%(p)\nbuffer-size = %k\n"
        },
    ),
    "uwsgi sections only": (
        "uwsgi",
        {"main.conf": "[uwsgi\n[]\n[ uwsgi ]\n= =\nenv\nenv = =\nenv = SHIBWSGI_=\n"},
    ),
    "uwsgi odd buffer sizes": (
        "uwsgi",
        {"main.conf": "[uwsgi]\nbuffer-size = 1e400\nbuffer-size = " + "9" * 5000 + "\nbuffer-size = -1\n"},
    ),
}


@pytest.mark.parametrize("tree", list(ODD_TREES), ids=list(ODD_TREES))
def test_odd_config_ends_with_findings_not_a_traceback(tmp_path: Path, tree: str) -> None:
    kind, files = ODD_TREES[tree]
    _tree(tmp_path, files)
    if "symlink to its parent" in tree:
        (tmp_path / "d" / "sub" / "up").symlink_to(tmp_path / "d")
    if "dangling" in tree:
        (tmp_path / "gone.conf").symlink_to(tmp_path / "nowhere")
    done = doctor("--no-servers", "--json", f"--{kind}", str(tmp_path / "main.conf"), timeout=120)
    assert done.returncode in (0, 1)
    json.loads(done.stdout)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({b"SHIBWSGI_PROFILE": b"\xff\xfe"}, id="profile not UTF-8"),
        pytest.param({b"SHIBWSGI_PROFILE": "shibbolethé".encode()}, id="profile with an accent"),
        pytest.param(
            {b"SHIBWSGI_PROFILE": b"shibboleth", b"SHIBWSGI_MAX_ATTRIBUTE_BYTES": b"9" * 5000}, id="huge int"
        ),
        pytest.param(
            {b"SHIBWSGI_PROFILE": b"shibboleth", b"SHIBWSGI_MAX_ATTRIBUTE_BYTES": b"1e400"}, id="float"
        ),
        pytest.param(
            {b"SHIBWSGI_PROFILE": b"shibboleth", b"SHIBWSGI_ROLES": b"os:system"}, id="roles hook os:system"
        ),
        pytest.param(
            {b"SHIBWSGI_PROFILE": b"shibboleth", b"SHIBWSGI_ROLES": b"\xff:\xfe"}, id="roles hook bytes"
        ),
        pytest.param(
            {b"SHIBWSGI_PROFILE": b"shibboleth", b"SHIBWSGI_PROBE_PATH": b"/\xff"}, id="probe path bytes"
        ),
        pytest.param(
            {
                b"SHIBWSGI_PROFILE": b"oauth2-proxy-jwt",
                b"SHIBWSGI_JWKS_URL": b"http://[::1/x",
                b"SHIBWSGI_AUDIENCE": b"a",
            },
            id="jwks url broken",
        ),
        pytest.param(
            {b"SHIBWSGI_PROFILE": b"shibboleth", b"UWSGI_SOCKET": b"\xff:99999999999999"}, id="socket bytes"
        ),
        pytest.param({b"SHIBWSGI_\xff": b"1", b"SHIBWSGI_PROFILE": b"shibboleth"}, id="setting name bytes"),
    ],
)
@pytest.mark.parametrize("output", ["--json", "--no-servers"], ids=["json", "text"])
def test_odd_settings_in_the_environment_end_with_findings(settings: dict[bytes, bytes], output: str) -> None:
    environ = {
        **{k: v for k, v in os.environb.items() if not k.startswith(b"SHIBWSGI_")},
        b"PYTHONPATH": bytes(WORKTREE),
        b"LC_ALL": b"C.UTF-8",
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-m", "shibwsgi", "doctor", "--env", "--no-servers", output],
        capture_output=True,
        env=environ,
        timeout=60,
    )
    assert b"Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "latin-1"])
def test_file_name_not_valid_text_is_printed_escaped_under_a_strict_locale(
    tmp_path: Path, encoding: str
) -> None:
    name = os.fsdecode(b"\xff-site.conf")
    (tmp_path / name).write_text("Include /nonexistent/x.conf\n")
    done = doctor("--no-servers", "--apache", str(tmp_path / name), env={"PYTHONIOENCODING": encoding})
    assert done.returncode == 1
    assert "missing-include" in done.stdout


# --- the probe's client side against hostile sites -------------------------------------------


def _json_answer(document: object) -> bytes:
    body = json.dumps(document).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def _drip(connection: socket.socket, data: bytes) -> None:
    for byte in data:
        connection.sendall(bytes([byte]))
        time.sleep(0.1)


HOSTILE: dict[str, Callable[[socket.socket], None]] = {
    "hangs": lambda c: time.sleep(30),
    "drips its headers": lambda c: _drip(c, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000),
    "drips its body": lambda c: (
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"),
        _drip(c, b'{"probe": "shibwsgi"' + b" " * 10_000),
    ),
    "sends a huge header": lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 200_000 + b"\r\n\r\n"),
    "sends garbage": lambda c: c.sendall(b"\x00\xff\xfe garbage\r\n\r\n"),
    "redirects elsewhere": lambda c: c.sendall(
        b"HTTP/1.1 302 Found\r\nLocation: http://203.0.113.9/\r\nContent-Length: 0\r\n\r\n"
    ),
    "closes at once": lambda c: None,
    "report markers a string": lambda c: c.sendall(_json_answer({"probe": "shibwsgi", "markers": "abc"})),
    "report markers of numbers": lambda c: c.sendall(
        _json_answer({"probe": "shibwsgi", "markers": [1, None, {"ids": 5}, {"key": "K", "ids": [[1]]}]})
    ),
    "report environ a list": lambda c: c.sendall(
        _json_answer({"probe": "shibwsgi", "markers": [], "environ": []})
    ),
    "report a list": lambda c: c.sendall(_json_answer([1, 2])),
}


@contextlib.contextmanager
def hostile_site(behave: Callable[[socket.socket], None], *, tls: bool = False) -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def handle(connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            connection.settimeout(30)
            if not tls:  # a TLS site reads after its handshake
                connection.recv(65536)
            behave(connection)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                connection, _ = listener.accept()
                threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize("behaviour", list(HOSTILE), ids=list(HOSTILE))
def test_probe_of_a_hostile_site_ends_with_a_finding_in_valid_json(behaviour: str) -> None:
    with hostile_site(HOSTILE[behaviour]) as url:
        done = doctor("--probe", url, "--token", TOKEN, "--timeout", "1", "--json", timeout=45)
    report = json.loads(done.stdout)
    assert done.returncode == 1
    assert "probe-unreachable" in {f["pitfall"] for f in report["findings"]}


def test_probe_reports_tls_of_a_site_that_closes_each_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    with self_signed_certificate() as tls:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(tls.cert, tls.key)

        def reply(connection: socket.socket) -> None:
            with server.wrap_socket(connection, server_side=True) as wrapped:
                wrapped.recv(65536)
                wrapped.sendall(answer)

        with hostile_site(reply, tls=True) as url:
            client = ssl.create_default_context(cafile=str(tls.cert))
            got = Site(url.replace("http://", "https://"), timeout=5, context=client).get("/")
    assert got.status == 200
    assert got.tls.startswith("TLSv1.")


def test_probe_report_key_cannot_forge_a_line_of_output() -> None:
    forged = {"probe": "shibwsgi", "markers": [{"key": "X\nerror: all clean", "ids": ["0"]}]}
    with hostile_site(lambda c: c.sendall(_json_answer(forged))) as url:
        done = doctor("--probe", url, "--token", TOKEN, "--timeout", "1", timeout=45)
    assert "\nerror: all clean" not in done.stdout
    assert "probe-unreachable" in done.stdout


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        pytest.param(["--token", TOKEN + "\r\nX-Evil: 1"], "--token", id="token with CR LF"),
        pytest.param(["--token", "tökentökentökentöken✓"], "--token", id="token not ASCII"),
        pytest.param(["--probe", "http://[::1/"], "--probe", id="url with a broken IPv6 host"),
        pytest.param(["--probe", "http://127.0.0.1:99999/"], "--probe", id="url with a port out of range"),
        pytest.param(["--probe", "http:///"], "--probe", id="url without a host"),
        pytest.param(["--probe", "http://a\x01b/"], "--probe", id="url with a control character"),
        pytest.param(["--probe", "http://127.0.0.1:1/ü/"], "--probe", id="url path not ASCII"),
        pytest.param(["--protected", "/ü"], "--protected", id="protected path not ASCII"),
        pytest.param(["--public", "/a b"], "--public", id="public path with a space"),
        pytest.param(["--public", "login"], "--public", id="public path without a slash"),
        pytest.param(["--timeout", "-1"], "--timeout", id="negative timeout"),
        pytest.param(["--timeout", "nan"], "--timeout", id="timeout NaN"),
        pytest.param(["--timeout", "inf"], "--timeout", id="timeout infinite"),
        pytest.param(["--timeout", "0"], "--timeout", id="timeout zero"),
        pytest.param(["--cafile", "/nonexistent/ca.pem"], "--cafile", id="cafile missing"),
        pytest.param(["--cafile", __file__], "--cafile", id="cafile not certificates"),
    ],
)
def test_probe_options_odd_values_are_a_usage_error(arguments: list[str], complaint: str) -> None:
    given = dict(zip(arguments[::2], arguments[1::2], strict=True))
    options = {"--probe": "https://127.0.0.1:1/", "--token": TOKEN, "--timeout": "1", **given}
    done = doctor(*[word for pair in options.items() for word in pair])
    assert done.returncode == 2
    assert complaint in done.stderr


def test_probe_token_from_environment_with_undecodable_bytes_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shibwsgi", "doctor", "--probe", "http://127.0.0.1:1/"],
        capture_output=True,
        env={**os.environb, b"PYTHONPATH": bytes(WORKTREE), b"SHIBWSGI_PROBE_TOKEN": b"\xff\xfe" * 10},
        timeout=60,
    )
    assert b"Traceback" not in done.stderr
    assert done.returncode == 2


# --- the probe's app side ---------------------------------------------------------------------

TOKEN_KEY = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")


def _echo(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"the app at {environ.get('PATH_INFO')}, token {environ.get(TOKEN_KEY, '-')}".encode()]


def probed(**options: object) -> TestApp:
    return TestApp(SSOMiddleware(_echo, probe_token=TOKEN, **options))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "environ"),
    [
        pytest.param(DEFAULT_PROBE_PATH + "?X-Shibwsgi-Probe-Token=" + TOKEN, {}, id="token in the query"),
        pytest.param(DEFAULT_PROBE_PATH, {TOKEN_KEY: f"{TOKEN},{TOKEN}"}, id="token header repeated"),
        pytest.param(DEFAULT_PROBE_PATH, {TOKEN_KEY: f" {TOKEN}"}, id="token with a leading space"),
        pytest.param(DEFAULT_PROBE_PATH, {TOKEN_KEY: TOKEN.upper()}, id="token in another case"),
        pytest.param(DEFAULT_PROBE_PATH, {TOKEN_KEY: ""}, id="empty token"),
        pytest.param(DEFAULT_PROBE_PATH, {TOKEN_KEY: TOKEN[:8]}, id="token prefix"),
        pytest.param(DEFAULT_PROBE_PATH, {TOKEN_KEY + "_": TOKEN}, id="token under another key"),
        pytest.param(DEFAULT_PROBE_PATH, {"HTTP_COOKIE": f"{TOKEN_HEADER}={TOKEN}"}, id="token in a cookie"),
        pytest.param("/probe", {"SCRIPT_NAME": "/_shibwsgi"}, id="probe path split by SCRIPT_NAME"),
    ],
)
def test_probe_without_the_exact_token_header_is_the_apps_path(path: str, environ: dict[str, str]) -> None:
    response = probed(profile="shibboleth").get(path, extra_environ=environ)
    assert response.text.startswith("the app at ")
    assert REACHED_HEADER not in response.headers


@pytest.mark.parametrize(
    "path",
    [DEFAULT_PROBE_PATH + "/", "/" + DEFAULT_PROBE_PATH, DEFAULT_PROBE_PATH.upper(), "/_shibwsgi%2Fprobe"],
    ids=["trailing slash", "double slash", "upper case", "encoded slash"],
)
def test_probe_path_variants_reach_the_app_without_a_report(path: str) -> None:
    response = probed(profile="shibboleth").get("/", extra_environ={"PATH_INFO": path, TOKEN_KEY: TOKEN})
    assert response.text == f"the app at {path}, token -"  # the token itself never reaches the app
    assert response.headers[REACHED_HEADER] == "reached"


@pytest.mark.parametrize(
    "token", [" " + TOKEN, TOKEN + " ", TOKEN + "\t"], ids=["leading", "trailing", "tab"]
)
def test_probe_token_with_spaces_at_its_edges_is_refused(token: str) -> None:
    # a front end strips them from the header: the probe could never be answered
    with pytest.raises(ConfigError, match="probe_token"):
        SSOMiddleware(_echo, profile="shibboleth", probe_token=token)  # type: ignore[arg-type]


def test_probe_report_never_shows_an_identity_value_a_cookie_or_the_token() -> None:
    secret = "Zq8SECRETvalue41"
    environ = {
        TOKEN_KEY: TOKEN,
        "REMOTE_USER": secret + "ru",
        "eppn": secret + "ep",
        "mail": secret + "ml",
        "affiliation": secret + "af",
        "Shib-Session-ID": secret + "sid",
        "Shib-Identity-Provider": "https://idp/" + secret,
        "HTTP_COOKIE": f"s={secret}ck; _shibsession_x={secret}sh",
        "HTTP_AUTHORIZATION": "Bearer " + secret,
        "HTTP_X_FORWARDED_USER": secret + "xf",
        "QUERY_STRING": "q=" + secret,
    }
    response = probed(profile="shibboleth").get(DEFAULT_PROBE_PATH, extra_environ=environ)
    assert response.json["probe"] == "shibwsgi"
    answer = response.text + repr(response.headers)
    assert secret not in answer and TOKEN not in answer
    assert response.json["identity"]["variables"]["REMOTE_USER"] == len(secret) + 2


def test_probe_reached_header_never_goes_to_a_tokenless_client() -> None:
    app = probed(profile="oauth2-proxy", channel="headers", trusted_proxies=["127.0.0.1"])
    for environ in ({}, {TOKEN_KEY: TOKEN + "x"}, {"HTTP_X_SHIBWSGI_PROBE": "reached"}):
        response = app.get("/anything", extra_environ=environ, headers={"X-Forwarded-User": MARKER + "1"})
        assert REACHED_HEADER not in response.headers
