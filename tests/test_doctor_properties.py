"""Whatever the files and settings hold, the doctor answers with findings: never a traceback, never a hang."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shibwsgi.doctor import Finding, diagnose
from shibwsgi.doctor.pitfalls import PITFALLS
from shibwsgi.doctor.settings import read_settings
from shibwsgi.settings import SETTINGS

FILES = ("a.conf", "b.conf", "sub/c.conf", "uwsgi.ini")
#: Pieces of every config language, and the ways they go wrong: includes of each other, globs, sections.
APACHE_WORDS = [
    "Include {root}/*.conf",
    "Include {root}/sub/",
    "IncludeOptional {root}/b.conf",
    "Include {root}/a.conf",
    "Include /dev/zero",
    "<VirtualHost *:443>",
    "</VirtualHost>",
    "<Location />",
    "<Location /login>",
    "</Location>",
    "<LocationMatch ^/(.*)>",
    "</LocationMatch>",
    "<If \"%{HTTP_HOST} == 'x'\">",
    "</If>",
    "<IfModule !ssl_module>",
    "</IfModule>",
    "ProxyPass / uwsgi://127.0.0.1:3031/",
    "ProxyPass / uwsgi://[::1:3031/",
    "ProxyPass uwsgi://127.0.0.1:3031/",
    "ProxyPass !",
    "ProxyPassMatch ^/(.*)$ http://host:99999/$1",
    'SetHandler "proxy:unix:/run/x|uwsgi://x/"',
    "SetHandler proxy:",
    "RequestHeader unset X-Forwarded-User early",
    "RequestHeader set X-Forwarded-User %{RU}e env=RU",
    "AuthType shibboleth",
    "ShibUseHeaders On",
    "OIDCPassClaimsAs both",
    "Define X ${X}${X}",
    "SSLEngine on",
    "\\",
    '"',
]
NGINX_WORDS = [
    "include {root}/*.conf;",
    "include {root}/a.conf;",
    "include {root}/missing.conf;",
    "http {",
    "server {",
    "location / {",
    "location = /oauth2/auth {",
    "}",
    "{",
    ";",
    "auth_request /oauth2/auth;",
    "auth_request off;",
    "uwsgi_pass 10.0.0.1:3031;",
    "proxy_pass http://127.0.0.1:4180;",
    "uwsgi_param HTTP_X_FORWARDED_USER $http_x_forwarded_user;",
    "set $a $b; set $b $a;",
    "map $http_x $y { default $y; }",
    'proxy_set_header X-Forwarded-User "${arg_u}";',
    "'",
]
UWSGI_WORDS = [
    "[uwsgi]",
    "env = SHIBWSGI_PROFILE=nope",
    "env = SHIBWSGI_ROLES=os:system",
    "env = SHIBWSGI_CHANNEL=headers",
    "buffer-size = x",
    "socket = [::1:3031",
    "=",
]


def config(words: list[str]) -> st.SearchStrategy[str]:
    line = st.one_of(st.sampled_from(words), st.text(max_size=30))
    return st.lists(line, max_size=25).map("\n".join)


tree = st.fixed_dictionaries(
    {name: config(APACHE_WORDS + NGINX_WORDS + UWSGI_WORDS) for name in FILES},
)


def check(findings: list[Finding]) -> None:
    assert all(isinstance(f, Finding) and f.pitfall in PITFALLS for f in findings)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=tree)
def test_any_file_tree_gives_findings(tree: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, text in tree.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text.replace("{root}", folder), errors="surrogateescape")
        findings, _ = diagnose(apache=[root / "a.conf"], nginx=[root / "b.conf"], uwsgi=root / "uwsgi.ini")
        check(findings)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2000))
def test_any_bytes_give_findings(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.conf"
        path.write_bytes(data)
        findings, _ = diagnose(apache=[path], nginx=[path], uwsgi=path)
        check(findings)


setting_names = st.sampled_from(sorted("SHIBWSGI_" + name for name in SETTINGS))


@settings(max_examples=60, deadline=None)
@given(values=st.dictionaries(setting_names, st.text(max_size=40), max_size=6))
def test_any_settings_give_findings(values: dict[str, str]) -> None:
    _, findings = read_settings(values, {})
    check(findings)
