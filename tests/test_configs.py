"""The front-end configs in apache/ pass the real servers' own checks.

Every Apache config (each front end, both protection variants, standalone and included
into another server) passes ``apache2 -t``; the nginx template renders and passes
``nginx -t``; uwsgi.ini starts. Where no identity provider is needed the servers also run:
Apache or nginx in front of uWSGI started from uwsgi.ini, serving a stub ``app.wsgi`` that
echoes its environ, so the files a user copies are the files tested.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from stack import (
    APACHE_MODULES,
    CONFIGS,
    FRONT_ENDS,
    REPO,
    TLS,
    Uwsgi,
    apache_variables,
    nginx_variables,
    require_apache,
    require_uwsgi,
    running_apache,
    running_fake_oauth2_proxy,
    running_nginx,
    running_uwsgi,
    self_signed_certificate,
    server_environment,
    server_logs,
    serving,
    shared_directory,
    stop,
    wait_for_log,
    write_nginx_config,
)
from support import free_port, require_program

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


#: protection variant -> apache2 switches
VARIANTS = {"whole-site": (), "lazy": ("-DPROTECTION_LAZY",)}
#: headers a client forges to pass as someone else; every front end drops or overwrites them
FORGED_HEADERS = {
    "Remote-User": "mallory",
    "X-Remote-User": "mallory",
    "X-Forwarded-User": "mallory",
    "X-Auth-Request-User": "mallory",
}
#: the stub app/wsgi.py uWSGI serves: it answers with its environ's text values
ECHO_APP = """\
import json


def application(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if isinstance(v, str)}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


@pytest.fixture
def server_root() -> Iterator[Path]:
    """The directory a server runs from: its logs, pid and runtime files."""
    with shared_directory("shibwsgi-server-") as folder:
        yield folder


@pytest.fixture(scope="module")
def tls() -> Iterator[TLS]:
    """A self-signed certificate for 127.0.0.1."""
    with self_signed_certificate() as certificate:
        yield certificate


def run_apache(
    apache2: str, root: Path, config: Path, variables: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [apache2, "-d", str(root), "-f", str(config), *args],
        env=server_environment(variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_syntax_ok(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Syntax OK" in output, output
    # AH00111: a ${VARIABLE} nobody set; AH01574: a module loaded twice.
    for warning in ("AH00111", "AH01574"):
        assert warning not in output, output


def comment_header(text: str) -> str:
    """The comment block a config starts with."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", ";")))


def common_part(text: str) -> str:
    start = text.index("# --- common part")
    end = text.index("# --- end of common part")
    return text[start:end]


# --- Apache: syntax ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_apache_config_passes_syntax_check(front_end: str, variant: str, server_root: Path, tls: TLS) -> None:
    apache2 = require_apache(front_end)
    variables = apache_variables(front_end, server_root, tls)
    config = CONFIGS / f"{front_end}.conf"
    assert_syntax_ok(run_apache(apache2, server_root, config, variables, "-t", *VARIANTS[variant]))


def including_server(
    front_end: str, server_root: Path, variables: dict[str, str], *, mpm: str, extra: str = ""
) -> Path:
    """A server config of its own (its MPM, modules, Listens) that includes the front end's file."""
    module = FRONT_ENDS[front_end]
    loaded = [mpm, "authn_core", "authz_core", "authz_user", "ssl", "headers", "proxy"]
    outer = server_root / "httpd.conf"
    outer.write_text(
        "".join(f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so\n" for name in loaded)
        + f"LoadModule {module.identifier} {APACHE_MODULES / module.so_name}\n"
        + "ServerName 127.0.0.1\n"
        + f"Listen 127.0.0.1:{variables['HTTP_PORT']}\n"
        + f"Listen 127.0.0.1:{variables['HTTPS_PORT']} https\n"
        + "DefaultRuntimeDir .\nPidFile httpd.pid\nErrorLog error.log\n"
        + extra
        + "Define SHIBWSGI_INCLUDED\n"
        + f"Include {CONFIGS / front_end}.conf\n"
    )
    return outer


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_apache_config_included_into_a_running_server(front_end: str, server_root: Path, tls: TLS) -> None:
    """A server that already listens and loads modules (another MPM even) includes the file."""
    apache2 = require_apache(front_end)
    variables = apache_variables(front_end, server_root, tls)
    outer = including_server(front_end, server_root, variables, mpm="mpm_prefork")
    assert_syntax_ok(run_apache(apache2, server_root, outer, variables, "-t"))


@pytest.mark.servers
@pytest.mark.parametrize("front_end", ["openidc", "mellon"])
def test_included_config_configures_the_tls_session_cache(
    front_end: str, server_root: Path, tls: TLS
) -> None:
    """Included into a server that loads mod_ssl without Debian's ssl.conf: no AH01873.

    The header budget holds there too: its hook is server wide, not the standalone part's.
    """
    apache2 = require_apache(front_end)
    variables = apache_variables(front_end, server_root, tls)
    extra = "LogLevel info\nTypesConfig /etc/mime.types\n"
    if os.geteuid() == 0:
        extra += "User www-data\nGroup www-data\n"
    outer = including_server(front_end, server_root, variables, mpm="mpm_event", extra=extra)
    command = [apache2, "-d", str(server_root), "-f", str(outer), "-DFOREGROUND"]
    with serving(command, server_root, int(variables["HTTPS_PORT"]), server_environment(variables)):
        wait_for_log(server_root / "error.log", "resuming normal operations")
        over_budget = {f"X-Big-{n}": "b" * 8000 for n in range(5)}
        answer = requests.get(
            f"https://127.0.0.1:{variables['HTTPS_PORT']}/",
            headers=over_budget,
            verify=str(tls.cert),
            timeout=30,
        )
        assert answer.status_code == 431
        assert "this site accepts at most" in answer.text
    assert "AH01873" not in (server_root / "error.log").read_text(errors="replace")


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_apache_config_refuses_to_start_without_its_header_budget(
    front_end: str, server_root: Path, tls: TLS
) -> None:
    """A wrong CONFIG_DIR would answer every request 500 (the hook's file missing): refused at start."""
    apache2 = require_apache(front_end)
    variables = {**apache_variables(front_end, server_root, tls), "CONFIG_DIR": str(server_root)}
    result = run_apache(apache2, server_root, CONFIGS / f"{front_end}.conf", variables, "-t")
    assert result.returncode != 0
    assert "header-budget.lua is not in CONFIG_DIR" in result.stderr + result.stdout


@pytest.mark.parametrize("included", [False, True], ids=["standalone", "included"])
def test_mod_shib_is_loaded_before_mod_lua_so_the_packet_budget_sees_its_variables(
    included: bool, server_root: Path, tls: TLS
) -> None:
    """mod_shib copies its variables in a fixups hook of the same priority as mod_lua's, and
    Apache runs those in load order: loaded after mod_lua, the packet budget would not see them."""
    apache2 = require_apache("shibboleth")
    variables = apache_variables("shibboleth", server_root, tls)
    config = (
        including_server("shibboleth", server_root, variables, mpm="mpm_prefork")
        if included
        else CONFIGS / "shibboleth.conf"
    )
    result = run_apache(apache2, server_root, config, variables, "-M")
    assert result.returncode == 0, result.stderr
    modules = re.findall(r"^ (\w+) \(shared\)$", result.stdout, re.MULTILINE)
    assert modules.index("mod_shib") < modules.index("lua_module"), modules


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_apache_config_documents_every_variable_and_switch(front_end: str) -> None:
    text = (CONFIGS / f"{front_end}.conf").read_text()
    header = comment_header(text)
    variables = set(re.findall(r"\$\{(\w+)\}", without_comments(text)))
    switches = set(re.findall(r"<IfDefine\s+!?(\w+)>", text))
    assert variables and switches
    for name in sorted(variables | switches):
        assert re.search(rf"\b{name}\b", header), f"{name} is used but not described at the top"
    # Debian's envvars exist only under apache2ctl / systemd, not for `apache2 -f`.
    assert "${APACHE_" not in text


def test_apache_configs_share_one_common_part() -> None:
    parts = {name: common_part((CONFIGS / f"{name}.conf").read_text()) for name in FRONT_ENDS}
    assert len(set(parts.values())) == 1, "edit the common part in all three files alike"


# --- uWSGI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_app() -> Iterator[Uwsgi]:
    """One uWSGI worker answering with its environ, behind the servers below."""
    with (
        shared_directory("shibwsgi-uwsgi-") as folder,
        running_uwsgi(folder, ECHO_APP, UWSGI_PROCESSES="1") as server,
    ):
        yield server


def uwsgi_request(port: int, variables: Mapping[str, str]) -> bytes:
    """Send one request in the uwsgi protocol, as mod_proxy_uwsgi and nginx do."""
    block = b"".join(
        struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
        for key, value in ((k.encode("latin-1"), v.encode("latin-1")) for k, v in variables.items())
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(struct.pack("<BHB", 0, len(block), 0) + block)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_uwsgi_ini_sets_the_protocol_maximum_buffer_size() -> None:
    settings = without_comments((CONFIGS / "uwsgi.ini").read_text())
    assert re.search(r"^buffer-size = 65535$", settings, re.MULTILINE)


@pytest.mark.servers
def test_uwsgi_ini_accepts_the_largest_uwsgi_packet(echo_app: Uwsgi) -> None:
    """65535 bytes of variables (uWSGI's default 4096 would drop this request)."""
    variables = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "443",
        "isMemberOf": "",
    }
    used = sum(4 + len(k) + len(v) for k, v in variables.items())
    variables["isMemberOf"] = ";".join(["group"] * 20000)[: 65535 - used]
    try:
        response = uwsgi_request(echo_app.port, variables)
    except OSError as exc:  # uWSGI drops an oversized request by closing the connection
        pytest.fail(f"{exc!r}; uWSGI log:\n{echo_app.log.read_text(errors='replace')[-2000:]}")
    status, _, body = response.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.0 200"), echo_app.log.read_text(errors="replace")[-2000:]
    assert json.loads(body)["isMemberOf"] == variables["isMemberOf"]


@pytest.mark.servers
def test_uwsgi_ini_defaults_and_stop_on_sigterm(tmp_path: Path) -> None:
    """4 workers of 2 threads by default; SIGTERM ends uWSGI (2.0 would otherwise reload)."""
    with running_uwsgi(tmp_path, ECHO_APP) as server:
        # Every worker loads the app (lazy-apps); a SIGTERM while one still imports it
        # would end uWSGI through need-app (exit 22) rather than cleanly.
        wait_for_log(server.log, r"WSGI app 0 \(mountpoint=''\) ready", count=4)
        response = uwsgi_request(server.port, {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.0"})
        code = stop(server.process)
    text = server.log.read_text(errors="replace")
    assert response.startswith(b"HTTP/1.0 200"), text
    assert len(re.findall(r"spawned uWSGI worker \d+ \(pid: \d+, cores: 2\)", text)) == 4, text
    assert code == 0, text
    assert "goodbye to uWSGI" in text, text


@pytest.mark.servers
def test_uwsgi_ini_refuses_to_start_without_the_app(tmp_path: Path) -> None:
    uwsgi = require_uwsgi()
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "wsgi.py").write_text("raise ImportError('broken on purpose')\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")}
    environment.update(
        UWSGI_SOCKET=f"127.0.0.1:{free_port()}", UWSGI_CHDIR=str(tmp_path), UWSGI_PROCESSES="1"
    )
    result = subprocess.run(
        [uwsgi, "--ini", str(CONFIGS / "uwsgi.ini")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "need-app requested" in result.stdout + result.stderr


# --- Apache: running in front of uWSGI -------------------------------------------------------


@pytest.fixture
def client(tls: TLS) -> Iterator[requests.Session]:
    """HTTP client trusting the test certificate (and ignoring REQUESTS_CA_BUNDLE & co)."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(tls.cert)
        yield session


def get(client: requests.Session, url: str, **kwargs: Any) -> requests.Response:
    return client.get(url, allow_redirects=False, timeout=30, **kwargs)


def forged(**extra: str) -> dict[str, str]:
    """The forged headers, more of them, and one harmless header that must get through."""
    return {**FORGED_HEADERS, **extra, "X-Unrelated": "kept"}


def assert_no_forged_identity(environ: Mapping[str, str], headers: Mapping[str, str]) -> None:
    assert environ["HTTP_X_UNRELATED"] == "kept"  # headers do get through...
    for header in headers:  # ...but not those
        key = "HTTP_" + header.upper().replace("-", "_")
        if header != "X-Unrelated":
            assert not environ.get(key), f"{key} reached the app"
    assert not environ.get("REMOTE_USER")


@pytest.mark.servers
def test_http_port_only_redirects_to_https(
    echo_app: Uwsgi, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = apache_variables("mellon", server_root, tls, echo_app.socket)
    with running_apache("mellon", server_root, variables, "-DPROTECTION_LAZY"):
        response = get(client, f"http://127.0.0.1:{variables['HTTP_PORT']}/api/movies?page=2")
    assert response.status_code == 301
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    assert response.headers["Location"] == f"{https}/api/movies?page=2"


@pytest.mark.servers
def test_openidc_lazy_passes_anonymous_requests_without_forged_identity(
    echo_app: Uwsgi, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = apache_variables("openidc", server_root, tls, echo_app.socket)
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    headers = forged(**{"OIDC-CLAIM-email": "mallory@example.org"})
    with running_apache("openidc", server_root, variables, "-DPROTECTION_LAZY"):
        response = get(client, f"{https}/api/me?x=1", headers=headers)
    assert response.status_code == 200, server_logs(server_root)
    environ = response.json()
    assert_no_forged_identity(environ, headers)
    assert not [key for key in environ if key.startswith(("OIDC_", "HTTP_OIDC"))]
    assert environ["PATH_INFO"] == "/api/me"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["wsgi.url_scheme"] == "https"


@pytest.mark.servers
def test_openidc_whole_site_refuses_anonymous_api_requests(
    echo_app: Uwsgi, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = apache_variables("openidc", server_root, tls, echo_app.socket)
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    with running_apache("openidc", server_root, variables):
        response = get(client, f"{https}/api/me", headers={"Accept": "application/json"})
    # mod_auth_openidc answers 401 to non-browser clients instead of redirecting them.
    assert response.status_code == 401, server_logs(server_root)
    assert "PATH_INFO" not in response.text


@pytest.mark.servers
def test_mellon_whole_site_sends_anonymous_browsers_to_login(
    echo_app: Uwsgi, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = apache_variables("mellon", server_root, tls, echo_app.socket)
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    with running_apache("mellon", server_root, variables):
        page = get(client, f"{https}/api/me")
        metadata = get(client, f"{https}/mellon/metadata")
    assert page.status_code == 303, server_logs(server_root)
    assert page.headers["Location"].startswith(f"{https}/mellon/login?ReturnTo=")
    # The SAML endpoints are the module's, never proxied to the app.
    assert metadata.status_code == 200
    assert 'entityID="https://127.0.0.1/mellon"' in metadata.text


@pytest.mark.servers
def test_mellon_lazy_passes_anonymous_requests_and_protects_login(
    echo_app: Uwsgi, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = apache_variables("mellon", server_root, tls, echo_app.socket)
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    headers = forged()
    with running_apache("mellon", server_root, variables, "-DPROTECTION_LAZY"):
        anonymous = get(client, f"{https}/api/me", headers=headers)
        login = get(client, f"{https}/login?next=/api/me")
    assert anonymous.status_code == 200, server_logs(server_root)
    environ = anonymous.json()
    assert_no_forged_identity(environ, headers)
    assert not [key for key in environ if key.startswith("MELLON_")]
    assert login.status_code == 303
    assert login.headers["Location"].startswith(f"{https}/mellon/login?ReturnTo=")


# --- nginx + oauth2-proxy --------------------------------------------------------------------


@pytest.mark.parametrize("template", ["nginx-oauth2-proxy.conf", "nginx-auth-request.conf"])
def test_nginx_template_documents_every_placeholder(template: str) -> None:
    text = (CONFIGS / template).read_text()
    header = comment_header(text)
    placeholders = set(re.findall(r"@([A-Z0-9_]+)@", without_comments(text)))
    assert placeholders
    for name in sorted(placeholders):
        assert re.search(rf"^#\s+{name}\b", header, re.MULTILINE), f"{name} is not described"
    # Nothing in the comments looks like a placeholder, or rendering them would fail.
    assert not re.findall(r"@([A-Z0-9_]+)@", header)


@pytest.mark.parametrize(
    ("template", "protection"),
    [
        ("nginx-oauth2-proxy.conf", "site"),
        ("nginx-oauth2-proxy.conf", "lazy"),
        ("nginx-auth-request.conf", "lazy"),
    ],
)
def test_nginx_config_passes_syntax_check(
    template: str, protection: str, server_root: Path, tls: TLS
) -> None:
    nginx = require_program("nginx", "nginx")
    variables = {
        **nginx_variables(tls, protection, f"127.0.0.1:{free_port()}", "127.0.0.1:3031"),
        "STATIC_ROOT": str(REPO / "app" / "static"),  # nginx-auth-request.conf's own
        "AUTH_PATH": "/_auth",
    }
    config = write_nginx_config(server_root, variables, template)
    result = subprocess.run(
        [nginx, "-t", "-p", f"{server_root}/", "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture(scope="module")
def oauth2_proxy() -> Iterator[str]:
    """A stand-in for oauth2-proxy; the cookie ``_oauth2_proxy=alice`` signs in as alice."""
    with running_fake_oauth2_proxy() as address:
        yield address


@pytest.mark.servers
def test_nginx_lazy_overwrites_identity_headers_with_oauth2_proxy_answer(
    echo_app: Uwsgi, oauth2_proxy: str, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = nginx_variables(tls, "lazy", oauth2_proxy, echo_app.socket)
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    headers = forged(**{"X-Forwarded_User": "mallory", "X-Forwarded-Groups": "admins"})
    with running_nginx(server_root, variables):
        anonymous = get(client, f"{https}/api/me", headers=headers)
        alice = get(client, f"{https}/api/me", headers={**headers, "Cookie": "_oauth2_proxy=alice"})
        login = get(client, f"{https}/login?next=/api/me")
        plain = get(client, f"http://127.0.0.1:{variables['HTTP_PORT']}/api/me")
    assert anonymous.status_code == 200, server_logs(server_root)
    environ = anonymous.json()
    assert_no_forged_identity(environ, headers)
    assert environ["HTTP_X_FORWARDED_GROUPS"] == ""
    assert environ["REMOTE_ADDR"] == "127.0.0.1"  # nginx's address: trusted_proxies
    assert alice.status_code == 200
    identity = {k: v for k, v in alice.json().items() if k.startswith("HTTP_X_FORWARDED_")}
    assert identity == {
        "HTTP_X_FORWARDED_USER": "alice",
        "HTTP_X_FORWARDED_EMAIL": "alice@example.org",
        "HTTP_X_FORWARDED_GROUPS": "movie-editors,staff",
        "HTTP_X_FORWARDED_PREFERRED_USERNAME": "Alice",
        "HTTP_X_FORWARDED_FOR": "127.0.0.1",
        "HTTP_X_FORWARDED_PROTO": "https",
    }
    assert login.status_code == 302
    assert login.headers["Location"] == "https://idp.invalid/authorize?rd=/login?next=/api/me"
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"{https}/api/me"


@pytest.mark.servers
def test_nginx_site_sends_anonymous_requests_to_login(
    echo_app: Uwsgi, oauth2_proxy: str, server_root: Path, tls: TLS, client: requests.Session
) -> None:
    variables = nginx_variables(tls, "site", oauth2_proxy, echo_app.socket)
    https = f"https://127.0.0.1:{variables['HTTPS_PORT']}"
    with running_nginx(server_root, variables):
        anonymous = get(client, f"{https}/api/movies?page=2", headers=forged())
        alice = get(client, f"{https}/api/me", headers={"Cookie": "_oauth2_proxy=alice"})
    assert anonymous.status_code == 302, server_logs(server_root)
    assert anonymous.headers["Location"] == "https://idp.invalid/authorize?rd=/api/movies?page=2"
    assert alice.status_code == 200
    assert alice.json()["HTTP_X_FORWARDED_USER"] == "alice"
