"""Spoofable setups the doctor once reported clean: each is now a finding; the safe twin stays clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_doctor import HEADERS, OPENIDC, SHIBBOLETH, Case, edited

from shibwsgi.doctor import ERROR, WARNING, main

NGINX_HEADERS_APP = """\
events {}
http {
    server {
        listen 443 ssl;
        auth_request /oauth2/auth;
        auth_request_set $sso_user $upstream_http_x_auth_request_user;
        location / {
            proxy_pass http://127.0.0.1:8000;
            proxy_set_header X-Auth-Request-User "";
            proxy_set_header X-Forwarded-User $sso_user;
%s
        }
        location = /oauth2/auth {
            internal;
            proxy_pass http://127.0.0.1:4180;
        }
    }
}
"""
OAUTH2_USER_LINE = "        uwsgi_param HTTP_X_FORWARDED_USER $sso_user;"


def nginx_app(extra: str) -> str:
    return NGINX_HEADERS_APP % extra


def shib_site(location: str, outside: str = "") -> str:
    return f"""\
<VirtualHost *:443>
    ServerName movies.example.org
{outside}
    <Location />
        AuthType shibboleth
        Require shib-session
    </Location>
{location}
</VirtualHost>
"""


HEADER_SITE = """\
<VirtualHost *:443>
    ServerName movies.example.org
{outside}
    ProxyPass / uwsgi://127.0.0.1:3031/
{inside}
</VirtualHost>
"""


def header_site(inside: str = "", outside: str = "") -> str:
    return HEADER_SITE.format(inside=inside, outside=outside)


UNSET_ALL = (
    "    RequestHeader unset X-Forwarded-User early\n    RequestHeader unset X-Auth-Request-User early"
)


@pytest.mark.parametrize(
    ("case", "pitfall", "severity", "line_text"),
    [
        # nginx: values copied from the client
        pytest.param(
            Case(
                nginx=edited(
                    "nginx-oauth2-proxy.conf",
                    OAUTH2_USER_LINE,
                    OAUTH2_USER_LINE.replace("$sso_user", "$http_x_forwarded_user"),
                ),
                settings=HEADERS,
            ),
            "client-value-copied",
            ERROR,
            "$http_x_forwarded_user",
            id="nginx uwsgi_param identity from $http_",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("            proxy_set_header X-Forwarded-User $http_x_forwarded_user;"),
                settings=HEADERS,
            ),
            "client-value-copied",
            ERROR,
            "proxy_set_header X-Forwarded-User $http_x_forwarded_user",
            id="nginx proxy_set_header identity from $http_",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("            proxy_set_header X-Forwarded-User $cookie_user;"),
                settings=HEADERS,
            ),
            "client-value-copied",
            ERROR,
            "$cookie_user",
            id="nginx identity from $cookie_",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("            proxy_set_header X-Forwarded-User $arg_user;"), settings=HEADERS
            ),
            "client-value-copied",
            ERROR,
            "$arg_user",
            id="nginx identity from $arg_",
        ),
        pytest.param(
            Case(
                nginx=nginx_app("            proxy_set_header X-Forwarded-User $remote_user;"),
                settings=HEADERS,
            ),
            "client-value-copied",
            ERROR,
            "$remote_user",
            id="nginx identity from the client's own Basic user name",
        ),
        pytest.param(
            Case(
                nginx=nginx_app(
                    '            set $who $http_x_user;\n            proxy_set_header X-Forwarded-User "u=$who";'
                ),
                settings=HEADERS,
            ),
            "client-value-copied",
            ERROR,
            "$who",
            id="nginx identity from a variable set from $http_",
        ),
        pytest.param(
            Case(
                nginx=edited(
                    "nginx-oauth2-proxy.conf",
                    OAUTH2_USER_LINE,
                    "        uwsgi_param HTTP_X_FORWARDED_USER $sso_user if_not_empty;",
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            ERROR,
            "uwsgi_param QUERY_STRING",
            id="nginx identity param if_not_empty lets the client's through",
        ),
        pytest.param(
            Case(
                nginx=nginx_app(
                    "        }\n        location /api/ {\n            auth_request off;\n            proxy_pass http://127.0.0.1:8000;"
                ),
            ),
            "auth-request-off",
            WARNING,
            "auth_request off",
            id="nginx auth_request off location proxying to the app",
        ),
        # Apache: unsets that do not cover what is proxied
        pytest.param(
            Case(
                apache=header_site(inside="    <Location /login>\n" + UNSET_ALL + "\n    </Location>"),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            ERROR,
            "ProxyPass / uwsgi://",
            id="apache unset only in Location /login, ProxyPass / for the site",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    inside='    <If "%{REQUEST_URI} =~ m#^/api#">\n' + UNSET_ALL + "\n    </If>"
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            ERROR,
            "ProxyPass / uwsgi://",
            id="apache unset only inside If",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside="    RequestHeader unset X-Auth-Request-User early\n"
                    "    RequestHeader set X-Forwarded-User %{RU}e env=RU"
                ),
                settings=HEADERS,
            ),
            "conditional-header-set",
            ERROR,
            "env=RU",
            id="apache RequestHeader set with env= condition",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside="    RequestHeader unset X-Auth-Request-User early\n"
                    '    RequestHeader set X-Forwarded-User %{RU}e "expr=-n %{ENV:RU}"'
                ),
                settings=HEADERS,
            ),
            "conditional-header-set",
            ERROR,
            "expr=",
            id="apache RequestHeader set with expr= condition",
        ),
        # Apache: every form of proxying
        pytest.param(
            Case(
                apache=shib_site(
                    "    <Location />\n        ProxyPass uwsgi://127.0.0.1:3031/\n    </Location>"
                )
            ),
            "handler-proxied",
            ERROR,
            "ProxyPass uwsgi://127.0.0.1:3031/",
            id="apache one-argument ProxyPass in Location / swallows Shibboleth.sso",
        ),
        pytest.param(
            Case(apache=shib_site("    ProxyPassMatch ^/(.*)$ uwsgi://127.0.0.1:3031/$1")),
            "handler-proxied",
            ERROR,
            "ProxyPassMatch",
            id="apache ProxyPassMatch swallows Shibboleth.sso",
        ),
        pytest.param(
            Case(
                apache=shib_site(
                    '    <Location />\n        SetHandler "proxy:uwsgi://127.0.0.1:3031/"\n    </Location>'
                )
            ),
            "handler-proxied",
            ERROR,
            "SetHandler",
            id="apache SetHandler proxy in Location / swallows Shibboleth.sso",
        ),
        pytest.param(
            Case(
                apache=shib_site(
                    "    <Location /app>\n        ProxyPass http://127.0.0.1:8000/\n    </Location>"
                ),
                settings=SHIBBOLETH,
            ),
            "proxy-http-environ",
            ERROR,
            "ProxyPass http://127.0.0.1:8000/",
            id="apache one-argument ProxyPass http with the environ channel",
        ),
        pytest.param(
            Case(
                apache=shib_site(
                    '    <LocationMatch "^/app">\n        SetHandler "proxy:http://127.0.0.1:8000/"\n    </LocationMatch>'
                ),
                settings=SHIBBOLETH,
            ),
            "proxy-http-environ",
            ERROR,
            "SetHandler",
            id="apache SetHandler proxy http with the environ channel",
        ),
        pytest.param(
            Case(
                apache=shib_site("    ProxyPassMatch ^/app/(.*)$ http://127.0.0.1:8000/$1"),
                settings=SHIBBOLETH,
            ),
            "proxy-http-environ",
            ERROR,
            "ProxyPassMatch",
            id="apache ProxyPassMatch http with the environ channel",
        ),
        # settings and OIDC
        pytest.param(
            Case(
                settings={
                    "SHIBWSGI_PROFILE": "oauth2-proxy-jwt",
                    "SHIBWSGI_JWKS_URL": "http://idp.example.org/jwks",
                    "SHIBWSGI_AUDIENCE": "movies",
                }
            ),
            "jwks-over-http",
            ERROR,
            None,
            id="JWKS URL over plain http to another host",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "openidc.conf",
                    "OIDCPassClaimsAs environment base64url",
                    "OIDCPassClaimsAs both base64url",
                ),
                settings=OPENIDC,
            ),
            "oidc-claims-twice",
            WARNING,
            "OIDCPassClaimsAs both",
            id="OIDCPassClaimsAs both",
        ),
    ],
)
def test_spoofable_setup_is_not_clean(
    tmp_path: Path, case: Case, pitfall: str, severity: str, line_text: str | None
) -> None:
    findings = [f for f in case.run(tmp_path) if f.pitfall == pitfall]
    assert findings, case.run(tmp_path)
    assert findings[0].severity == severity
    if line_text is not None:
        line = Path(findings[0].where.file).read_text().splitlines()[findings[0].where.line - 1]
        assert line_text in line


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Case(apache=header_site(outside=UNSET_ALL), settings=HEADERS), id="apache unset at host level"
        ),
        pytest.param(
            Case(
                apache=header_site(
                    outside=UNSET_ALL.replace(
                        "X-Forwarded-User early",
                        "X-Forwarded-User early\n    RequestHeader set X-Forwarded-User %{RU}e env=RU",
                    )
                ),
                settings=HEADERS,
            ),
            id="apache conditional set after an unconditional unset",
        ),
        pytest.param(
            Case(
                apache=header_site(inside="    <Location />\n" + UNSET_ALL + "\n    </Location>"),
                settings=HEADERS,
            ),
            id="apache unset in Location / covers ProxyPass /",
        ),
        pytest.param(
            Case(
                apache=header_site(
                    inside='    <Proxy "uwsgi://127.0.0.1:3031/*">\n' + UNSET_ALL + "\n    </Proxy>"
                ),
                settings=HEADERS,
            ),
            id="apache unset in a Proxy section matching the target",
        ),
        pytest.param(
            Case(
                apache=shib_site(
                    '    <Location />\n        SetHandler "proxy:uwsgi://127.0.0.1:3031/"\n    </Location>\n'
                    "    <Location /Shibboleth.sso>\n        SetHandler shib\n    </Location>"
                )
            ),
            id="apache SetHandler proxy with the Shibboleth handler's own Location",
        ),
        pytest.param(
            Case(
                apache=shib_site(
                    "    ProxyPassMatch ^/Shibboleth.sso !\n    ProxyPassMatch ^/(.*)$ uwsgi://127.0.0.1:3031/$1"
                )
            ),
            id="apache ProxyPassMatch with the handler excluded first",
        ),
        pytest.param(
            Case(nginx=nginx_app(""), settings=HEADERS),
            id="nginx identity from the auth_request answer",
        ),
        pytest.param(
            Case(
                nginx=nginx_app(
                    '            auth_basic "movies";\n            proxy_set_header X-Forwarded-User $remote_user;'
                ),
                settings=HEADERS,
            ),
            id="nginx $remote_user after auth_basic checked the password",
        ),
    ],
)
def test_safe_twin_stays_clean(tmp_path: Path, case: Case) -> None:
    assert [f for f in case.run(tmp_path) if f.severity == ERROR] == []


def test_nginx_error_in_a_server_block_is_reported_once(tmp_path: Path) -> None:
    three = "\n".join(f"        location /{n} {{ uwsgi_pass 127.0.0.1:3031; }}" for n in "abc")
    case = Case(
        nginx=f"events {{}}\nhttp {{\n    server {{\n        listen 443 ssl;\n{three}\n    }}\n}}\n",
        settings=HEADERS,
    )
    findings = [f for f in case.run(tmp_path) if f.pitfall == "client-headers-not-unset"]
    assert len(findings) == 1
    assert "server {" in Path(findings[0].where.file).read_text().splitlines()[findings[0].where.line - 1]


@pytest.mark.parametrize(
    ("case", "fix_text"),
    [
        pytest.param(
            Case(apache=shib_site("    ProxyPass / http://127.0.0.1:3931/"), settings=SHIBBOLETH),
            "uwsgi://127.0.0.1:3931/",
            id="proxy http hint names the operator's own port",
        ),
        pytest.param(
            Case(apache=shib_site("    ProxyPass / uwsgi://10.0.0.5:3931/")),
            "uwsgi://127.0.0.1:3931/",
            id="socket hint keeps the operator's own port",
        ),
        pytest.param(
            Case(apache=header_site(), settings=HEADERS),
            "RequestHeader unset X-Forwarded-User early",
            id="unset hint names the operator's own headers",
        ),
        pytest.param(
            Case(apache=shib_site("    ProxyPass / uwsgi://127.0.0.1:3031/")),
            "ProxyPass /Shibboleth.sso !  before line",
            id="handler hint names the line to put it before",
        ),
    ],
)
def test_fix_uses_the_operators_values(tmp_path: Path, case: Case, fix_text: str) -> None:
    assert any(fix_text in f.fix for f in case.run(tmp_path)), case.run(tmp_path)


def test_summary_does_not_say_no_settings_when_the_ini_has_env_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nbuffer-size = 65535\nenv = SHIBWSGI_PROFILE = no-such-profile\n")
    assert main(["--uwsgi", str(ini), "--no-servers"]) == 1
    out = capsys.readouterr().out
    assert "no SHIBWSGI_* settings given" not in out and "[invalid-setting]" in out
    assert main(["--uwsgi", str(ini), "--no-servers", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["settings_checked"] is False


def test_uwsgi_socket_hint_keeps_the_operators_port(tmp_path: Path) -> None:
    findings = Case(uwsgi="[uwsgi]\nbuffer-size = 65535\nsocket = 0.0.0.0:3931\n").run(tmp_path)
    assert next(f.fix for f in findings if f.pitfall == "socket-beyond-loopback").startswith(
        "socket = 127.0.0.1:3931"
    )


def test_probe_token_in_the_ini_is_a_secret_in_the_ini(tmp_path: Path) -> None:
    case = Case(
        uwsgi="[uwsgi]\nbuffer-size = 65535\nenv = SHIBWSGI_PROBE_TOKEN=a-probe-token-of-some-length\n"
    )
    assert "secret-in-ini" in {f.pitfall for f in case.run(tmp_path)}
