"""python -m shibwsgi doctor: the shipped configs are clean, and each known pitfall is found in a broken copy."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from stack import CONFIGS, render

from shibwsgi.doctor import ERROR, WARNING, Finding, diagnose, main

NGINX_VARIABLES = {
    "SERVER_NAME": "movies.example.org",
    "LISTEN_ADDRESS": "0.0.0.0",
    "HTTP_PORT": "80",
    "HTTPS_PORT": "443",
    "TLS_CERT": "/etc/ssl/movies.pem",
    "TLS_KEY": "/etc/ssl/movies.key",
    "UWSGI_SOCKET": "127.0.0.1:3031",
    "OAUTH2_PROXY": "127.0.0.1:4180",
    "PROXY_SECRET": "a-long-shared-secret-value",
    "STATIC_ROOT": "/opt/movies/app/static",
    "AUTH_PATH": "/_auth",
}
SHIBBOLETH = {"SHIBWSGI_PROFILE": "shibboleth"}
LAZY = {
    **SHIBBOLETH,
    "SHIBWSGI_SESSION": "sqlite:///var/lib/movies/sessions.sqlite3",
    "SHIBWSGI_SECRET_KEY": "k" * 32,
}
OPENIDC = {"SHIBWSGI_PROFILE": "openidc", "SHIBWSGI_ENCODING": "base64url"}
MELLON = {"SHIBWSGI_PROFILE": "mellon"}
HEADERS = {
    "SHIBWSGI_PROFILE": "oauth2-proxy",
    "SHIBWSGI_CHANNEL": "headers",
    "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
}


def shipped(name: str, **replacements: str) -> str:
    """A shipped config, with ``old=new`` edits (each must apply)."""
    text = (CONFIGS / name).read_text()
    if name.startswith("nginx"):
        text = render(text, {**NGINX_VARIABLES, "PROTECTION": "lazy"})
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def edited(name: str, old: str, new: str) -> str:
    return shipped(name, **{old: new})


@dataclass
class Case:
    apache: str | None = None
    uwsgi: str | None = None
    nginx: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    defines: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # more files beside the Apache one

    def run(self, folder: Path, *, servers: bool = False) -> list[Finding]:
        """Write the files into ``folder`` (``{root}`` in them stands for it) and diagnose them."""
        for name, text in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text.replace("{root}", str(folder)))
        paths = {}
        for kind in ("apache", "uwsgi", "nginx"):
            text = getattr(self, kind)
            if text is not None:
                paths[kind] = folder / f"{kind}.conf"
                paths[kind].write_text(text.replace("{root}", str(folder)))
        findings, _ = diagnose(
            apache=[paths["apache"]] if "apache" in paths else [],
            uwsgi=paths.get("uwsgi"),
            nginx=[paths["nginx"]] if "nginx" in paths else [],
            environ=self.settings,
            defines=self.defines,
            servers=servers,
        )
        return findings


# The order of Debian 12's /etc/apache2/apache2.conf.
DEBIAN_APACHE2_CONF = """\
ServerRoot {root}
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
Include ports.conf
IncludeOptional sites-enabled/*.conf
"""
DEBIAN_PORTS = "Listen 80\n<IfModule ssl_module>\n\tListen 443\n</IfModule>\n<IfModule mod_gnutls.c>\n\tListen 443\n</IfModule>\n"
SITE_LOADING_SSL = """\
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
<VirtualHost *:443>
    SSLEngine on
    ProxyPass / uwsgi://127.0.0.1:3031/
</VirtualHost>
"""
DEBIAN_SITE = f"""\
Define SHIBWSGI_INCLUDED
Define SERVER_NAME movies.example.org
Define HTTP_PORT 80
Define HTTPS_PORT 443
Define UWSGI_SOCKET 127.0.0.1:3031
Include {CONFIGS}/shibboleth.conf
"""
DEBIAN_MODULES = {
    "mods-enabled/ssl.load": "LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n",
    "mods-enabled/ssl.conf": "<IfModule mod_ssl.c>\n  SSLSessionCache shmcb:ssl_scache(512000)\n</IfModule>\n",
    "mods-enabled/auth_mellon.load": "LoadModule auth_mellon_module /usr/lib/apache2/modules/mod_auth_mellon.so\n",
    "mods-enabled/auth_mellon.conf": 'MellonPostDirectory "/var/cache/apache2/mod_auth_mellon/"\n',
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            Case(apache=shipped("shibboleth.conf"), uwsgi=shipped("uwsgi.ini"), settings=SHIBBOLETH),
            id="shibboleth whole site",
        ),
        pytest.param(
            Case(
                apache=shipped("shibboleth.conf"),
                uwsgi=shipped("uwsgi.ini"),
                settings=LAZY,
                defines={"PROTECTION_LAZY": ""},
            ),
            id="shibboleth lazy with sessions",
        ),
        pytest.param(
            Case(apache=shipped("shibboleth.conf"), settings=LAZY, defines={"SHIBWSGI_INCLUDED": ""}),
            id="shibboleth included in Debian's server",
        ),
        pytest.param(
            Case(apache=shipped("openidc.conf"), uwsgi=shipped("uwsgi.ini"), settings=OPENIDC), id="openidc"
        ),
        pytest.param(
            Case(
                apache=shipped("openidc.conf"),
                settings={**OPENIDC, **LAZY, "SHIBWSGI_PROFILE": "openidc"},
                defines={"PROTECTION_LAZY": ""},
            ),
            id="openidc lazy",
        ),
        pytest.param(
            Case(apache=shipped("mellon.conf"), uwsgi=shipped("uwsgi.ini"), settings=MELLON), id="mellon"
        ),
        pytest.param(
            Case(
                nginx=shipped("nginx-oauth2-proxy.conf"),
                uwsgi=shipped("uwsgi.ini"),
                settings={**HEADERS, "SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": "k" * 32},
            ),
            id="nginx oauth2-proxy headers",
        ),
        pytest.param(
            Case(
                nginx=shipped("nginx-auth-request.conf"),
                uwsgi=shipped("uwsgi.ini"),
                settings={
                    **HEADERS,
                    "SHIBWSGI_SESSION": "memory:",
                    "SHIBWSGI_SECRET_KEY": "k" * 32,
                    "SHIBWSGI_AUTH_PATH": "/_auth",
                },
            ),
            id="nginx auth_request to shibwsgi (only the cookie reaches the auth endpoint)",
        ),
        pytest.param(
            Case(apache=shipped("shibboleth.conf"), uwsgi=shipped("uwsgi.ini")), id="no settings given"
        ),
        pytest.param(
            Case(
                apache=DEBIAN_APACHE2_CONF,
                settings=LAZY,
                files={
                    "ports.conf": DEBIAN_PORTS,
                    **DEBIAN_MODULES,
                    "sites-enabled/movies.conf": DEBIAN_SITE,
                },
            ),
            id="Debian server with a2enmod ssl, mellon loaded but unused, shibboleth.conf included",
        ),
        pytest.param(
            Case(
                uwsgi=shipped("uwsgi.ini", **{"buffer-size = 65535": "buffer-size = 8192"}),
                settings={
                    **SHIBBOLETH,
                    "SHIBWSGI_ATTRIBUTES": "email=mail",
                    "SHIBWSGI_MAX_ATTRIBUTE_BYTES": "2048",
                },
            ),
            id="small buffer enough for small caps",
        ),
    ],
)
def test_shipped_configs_are_clean(tmp_path: Path, case: Case) -> None:
    assert case.run(tmp_path) == []


PLAIN_HTTP_SITE = """\
Listen 127.0.0.1:8080
<VirtualHost *:8080>
    ProxyPass / uwsgi://127.0.0.1:3031/
</VirtualHost>
"""
HEADER_SITE = """\
<VirtualHost *:8080>
    RequestHeader unset X-Forwarded-User early
    ProxyPass / uwsgi://127.0.0.1:3031/
</VirtualHost>
"""
BASIC_AUTH = "    <Location /admin>\n        AuthType Basic\n        Require valid-user\n    </Location>\n    ProxyPass /Shibboleth.sso !"


@pytest.mark.parametrize(
    ("case", "pitfall", "severity", "line_text"),
    [
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "buffer-size = 65535\n", ""), settings=SHIBBOLETH),
            "buffer-size",
            ERROR,
            None,
            id="uwsgi buffer-size left at the 4096 default",
        ),
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "buffer-size = 65535", "buffer-size = 8192"), settings=SHIBBOLETH),
            "buffer-size",
            ERROR,
            "buffer-size = 8192",
            id="uwsgi buffer-size below the attribute caps",
        ),
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "buffer-size = 65535", "buffer-size = 131072")),
            "buffer-size",
            WARNING,
            "buffer-size = 131072",
            id="uwsgi buffer-size over the protocol maximum",
        ),
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "strict = true", "strict = true\nsocket = 0.0.0.0:3031")),
            "socket-beyond-loopback",
            ERROR,
            "socket = 0.0.0.0:3031",
            id="uwsgi socket on every interface",
        ),
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "strict = true", "strict = true\nhttp = :8000")),
            "socket-beyond-loopback",
            WARNING,
            "http = :8000",
            id="uwsgi http router on every interface",
        ),
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "strict = true", "strict = true\nchmod-socket = 666")),
            "socket-world-writable",
            WARNING,
            "chmod-socket = 666",
            id="uwsgi unix socket writable by all",
        ),
        pytest.param(
            Case(
                uwsgi=edited(
                    "uwsgi.ini",
                    "strict = true",
                    "strict = true\nenv = SHIBWSGI_SECRET_KEY=0123456789abcdef0123",
                )
            ),
            "secret-in-ini",
            WARNING,
            "env = SHIBWSGI_SECRET_KEY",
            id="secret key written in the ini",
        ),
        pytest.param(
            Case(uwsgi=edited("uwsgi.ini", "strict = true", "strict = true\nenv = SHIBWSGI_CHANEL=headers")),
            "invalid-setting",
            ERROR,
            "SHIBWSGI_CHANEL",
            id="misspelt setting in the ini",
        ),
        pytest.param(
            Case(
                nginx=edited("nginx-oauth2-proxy.conf", "uwsgi_param HTTP_X_FORWARDED_USER $sso_user;", ""),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            ERROR,
            None,
            id="nginx passes a client X-Forwarded-User",
        ),
        pytest.param(
            Case(
                nginx=edited("nginx-auth-request.conf", "uwsgi_pass_request_headers off;", ""),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            ERROR,
            None,
            id="nginx auth_request endpoint receives the client's identity headers",
        ),
        pytest.param(
            Case(
                nginx=edited(
                    "nginx-oauth2-proxy.conf",
                    "location /login {",
                    "location /login {\n            uwsgi_param HTTP_X_EXTRA 1;",
                ),
                settings=HEADERS,
            ),
            "client-headers-not-unset",
            ERROR,
            "uwsgi_param HTTP_X_EXTRA 1",  # the line that hides the server's params
            id="nginx location params hide the server's",
        ),
        pytest.param(
            Case(apache=HEADER_SITE, settings=HEADERS),
            "client-headers-not-unset",
            ERROR,
            "ProxyPass",
            id="apache header channel without RequestHeader unset",
        ),
        pytest.param(
            Case(apache=edited("shibboleth.conf", "ShibUseHeaders Off", "ShibUseHeaders On")),
            "shib-use-headers",
            ERROR,
            "ShibUseHeaders On",
            id="ShibUseHeaders On",
        ),
        pytest.param(
            Case(apache=edited("shibboleth.conf", "ShibUseEnvironment On", "ShibUseEnvironment Off")),
            "shib-use-environment",
            ERROR,
            "ShibUseEnvironment Off",
            id="ShibUseEnvironment Off",
        ),
        pytest.param(
            Case(
                apache=shipped(
                    "shibboleth.conf",
                    **{"    ShibCompatValidUser On": "", "    ProxyPass /Shibboleth.sso !": BASIC_AUTH},
                )
            ),
            "shib-compat-valid-user",
            ERROR,
            "Require valid-user",
            id="other auth type with mod_shib and no ShibCompatValidUser",
        ),
        pytest.param(
            Case(apache=edited("shibboleth.conf", "    ProxyPass /Shibboleth.sso !", "")),
            "handler-proxied",
            ERROR,
            "ProxyPass / ${SHIBWSGI_APP}/",
            id="Shibboleth handler proxied to the app",
        ),
        pytest.param(
            Case(apache=edited("mellon.conf", "    ProxyPass /mellon !", "")),
            "handler-proxied",
            ERROR,
            "ProxyPass / ${SHIBWSGI_APP}/",
            id="mellon endpoints proxied to the app",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "shibboleth.conf",
                    "Require shib-session",
                    "Require shib-session\n            ShibRequestSetting encoding URL",
                ),
                settings=SHIBBOLETH,
            ),
            "shib-encoding",
            ERROR,
            "encoding URL",
            id="Shibboleth URL encoding, app decodes UTF-8",
        ),
        pytest.param(
            Case(apache=shipped("openidc.conf"), settings={"SHIBWSGI_PROFILE": "openidc"}),
            "oidc-encoding",
            ERROR,
            "OIDCPassClaimsAs",
            id="OIDCPassClaimsAs base64url, app decodes latin-1",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "openidc.conf", "OIDCPassClaimsAs environment base64url", "OIDCPassClaimsAs environment"
                ),
                settings={"SHIBWSGI_PROFILE": "openidc"},
            ),
            "oidc-encoding",
            WARNING,
            "OIDCPassClaimsAs",
            id="OIDCPassClaimsAs latin1 default is lossy",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "openidc.conf",
                    "OIDCPassClaimsAs environment base64url",
                    "OIDCPassClaimsAs headers base64url",
                ),
                settings=OPENIDC,
            ),
            "oidc-claims-not-in-environment",
            ERROR,
            "OIDCPassClaimsAs",
            id="OIDC claims as headers, app reads the environ",
        ),
        pytest.param(
            Case(apache=edited("openidc.conf", "OIDCCacheShmEntrySizeMax 131072\n", "")),
            "oidc-cache-entry-size",
            WARNING,
            None,
            id="OIDCCacheShmEntrySizeMax at its default",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "openidc.conf", "OIDCCacheShmEntrySizeMax 131072", "OIDCCacheShmEntrySizeMax 16384"
                )
            ),
            "oidc-cache-entry-size",
            WARNING,
            "OIDCCacheShmEntrySizeMax 16384",
            id="OIDCCacheShmEntrySizeMax too small",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "openidc.conf", "OIDCCacheShmEntrySizeMax 131072", "OIDCCacheShmEntrySizeMax 1048576"
                )
            ),
            "oidc-cache-entry-size",
            ERROR,
            "OIDCCacheShmEntrySizeMax 1048576",
            id="OIDCCacheShmEntrySizeMax over the maximum",
        ),
        pytest.param(
            Case(
                apache=edited("mellon.conf", "MellonEnvVarsSetCount On", "MellonMergeEnvVars On"),
                settings=MELLON,
            ),
            "mellon-merge",
            WARNING,
            "MellonMergeEnvVars On",
            id="MellonMergeEnvVars joins without escaping",
        ),
        pytest.param(
            Case(apache=PLAIN_HTTP_SITE, settings=LAZY),
            "secure-cookie-on-http",
            ERROR,
            "ProxyPass",
            id="Secure session cookie on plain http (apache)",
        ),
        pytest.param(
            Case(
                nginx=edited("nginx-oauth2-proxy.conf", "listen 0.0.0.0:443 ssl;", "listen 0.0.0.0:443;"),
                settings={**HEADERS, "SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": "k" * 32},
            ),
            "secure-cookie-on-http",
            ERROR,
            "uwsgi_pass",
            id="Secure session cookie on plain http (nginx)",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "shibboleth.conf",
                    "ProxyPass / ${SHIBWSGI_APP}/",
                    "ProxyPass / http://127.0.0.1:8000/",
                ),
                settings=SHIBBOLETH,
            ),
            "proxy-http-environ",
            ERROR,
            "ProxyPass / http:",
            id="mod_proxy_http carries no server variables",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "shibboleth.conf",
                    "Define SHIBWSGI_APP uwsgi://${UWSGI_SOCKET}",
                    "Define SHIBWSGI_APP uwsgi://10.0.0.5:3031",
                )
            ),
            "socket-beyond-loopback",
            WARNING,
            "ProxyPass / ${SHIBWSGI_APP}/",  # where the Define'd address is used
            id="apache proxies to a uwsgi socket off loopback",
        ),
        pytest.param(
            Case(apache=edited("shibboleth.conf", "\nSSLSessionCache shmcb:ssl_scache(512000)\n", "\n")),
            "ssl-session-cache",
            WARNING,
            "SSLEngine on",
            id="no SSLSessionCache (AH01873)",
        ),
        pytest.param(
            Case(
                apache=DEBIAN_APACHE2_CONF,
                files={
                    "ports.conf": DEBIAN_PORTS,
                    "mods-enabled/mpm.load": "",
                    "sites-enabled/movies.conf": SITE_LOADING_SSL,
                },
            ),
            "ssl-listen-inactive",
            ERROR,
            "Listen 443",
            id="ssl vhost without a2enmod ssl (Debian Listen 443 in IfModule)",
        ),
        pytest.param(
            Case(apache="Listen 80\n<VirtualHost *:443>\n  SSLEngine on\n</VirtualHost>\n"),
            "ssl-module-not-loaded",
            ERROR,
            "VirtualHost",
            id="SSLEngine without mod_ssl",
        ),
        pytest.param(
            Case(apache="Include /nonexistent/shibwsgi-doctor.conf\n"),
            "missing-include",
            ERROR,
            "Include",
            id="Include of a missing file",
        ),
        pytest.param(
            Case(
                apache=edited(
                    "openidc.conf",
                    "OIDCPassClaimsAs environment base64url",
                    "OIDCPassClaimsAs headers base64url",
                ),
                settings={**OPENIDC, "SHIBWSGI_CHANNEL": "headers", "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1"},
            ),
            "oidc-claim-headers-dropped",
            ERROR,
            "OIDCPassClaimsAs headers",
            id="OIDC claim headers with underscores through mod_proxy_uwsgi",
        ),
    ],
)
def test_pitfall_is_found(
    tmp_path: Path, case: Case, pitfall: str, severity: str, line_text: str | None
) -> None:
    findings = [f for f in case.run(tmp_path) if f.pitfall == pitfall]
    assert findings, case.run(tmp_path)
    finding = findings[0]
    assert finding.severity == severity
    assert finding.fix and finding.problem
    if line_text is not None:
        assert finding.where.line > 0
        line = Path(finding.where.file).read_text().splitlines()[finding.where.line - 1]
        assert line_text in line


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shibwsgi", "doctor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_exit_status_and_json_for_ci(tmp_path: Path) -> None:
    broken = tmp_path / "uwsgi.ini"
    broken.write_text("[uwsgi]\nbuffer-size = 4096\nsocket = 0.0.0.0:3031\n")
    text = doctor("--uwsgi", str(broken))
    assert text.returncode == 1
    assert f"error: {broken}:3: socket = 0.0.0.0:3031" in text.stdout
    report = json.loads(doctor("--uwsgi", str(broken), "--json").stdout)
    assert report["errors"] == 2 and {f["pitfall"] for f in report["findings"]} == {
        "buffer-size",
        "socket-beyond-loopback",
    }
    assert doctor("--uwsgi", str(CONFIGS / "uwsgi.ini")).returncode == 0


def test_settings_from_the_environment(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SHIBWSGI_PROFILE": "openidc", "UWSGI_SOCKET": "0.0.0.0:3031"}
    result = doctor("--apache", str(CONFIGS / "openidc.conf"), "--env", env=env)
    assert result.returncode == 1
    assert "[oidc-encoding]" in result.stdout and "environment UWSGI_SOCKET" in result.stdout


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x00\x01\xff binary", id="binary file"),
        pytest.param(
            b'<VirtualHost *:443\n  ServerName "unbalanced\n</Location>\n</VirtualHost>\n</VirtualHost>\n',
            id="unbalanced sections and quotes",
        ),
        pytest.param(
            b"Define X ${X}${X}\nInclude ${X}/*.conf\n<IfModule>\n",
            id="odd defines and empty conditions",
        ),
        pytest.param(
            b"<VirtualHost>\nSSLEngine on\n</VirtualHost>\nListen\nProxyPass\nRequire\nserver { listen; uwsgi_pass; }\n",
            id="directives without arguments",
        ),
    ],
)
def test_odd_files_never_crash(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ("apache", "uwsgi", "nginx"):
        path = tmp_path / f"{kind}.conf"
        path.write_bytes(content)
        assert main([f"--{kind}", str(path), "--json"]) in (0, 1)
        assert "findings" in json.loads(capsys.readouterr().out)


def test_unreadable_and_missing_files_are_reported(tmp_path: Path) -> None:
    result = doctor(
        "--apache", str(tmp_path), "--uwsgi", str(tmp_path / "missing.ini"), "--nginx", str(tmp_path / "nope")
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("error:") == result.stdout.count("[unreadable-file]") == 3


def test_include_loop_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text(f"Include {tmp_path}/a.conf\n")
    findings, _ = diagnose(apache=[tmp_path / "a.conf"])
    assert [f.pitfall for f in findings] == ["include-loop"]


def test_nothing_to_check_is_a_usage_error() -> None:
    assert doctor().returncode == 2
    assert subprocess.run([sys.executable, "-m", "shibwsgi"], capture_output=True).returncode == 2
