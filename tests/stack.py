"""Running the real servers for tests: Apache, nginx and uWSGI started from the shipped configs.

Shared by the config checks (tests/test_configs.py) and the end-to-end tests (tests/e2e/).
Everything listens on 127.0.0.1 and is stopped when its context manager exits.
"""

from __future__ import annotations

import contextlib
import functools
import html
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from support import (
    apt_install,
    free_port,
    in_thread,
    require_pip_program,
    require_program,
    unavailable,
    wait_for_port,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

#: Log files of the servers running now; a failing test shows their tails (see conftest.py).
WATCHED_LOGS: list[Path] = []


@contextlib.contextmanager
def watching(*logs: Path) -> Iterator[None]:
    """Show these log files with any test that fails while they are watched."""
    WATCHED_LOGS.extend(logs)
    try:
        yield
    finally:
        for log in logs:
            WATCHED_LOGS.remove(log)


REPO = Path(__file__).resolve().parent.parent


CONFIGS = REPO / "apache"


APACHE_MODULES = Path("/usr/lib/apache2/modules")


@dataclass(frozen=True)
class AuthModule:
    so_name: str
    identifier: str  # for LoadModule and <IfModule>
    package: str  # the Debian package shipping it


#: Apache config (apache/<name>.conf) -> the auth module it loads
FRONT_ENDS = {
    "shibboleth": AuthModule("mod_shib.so", "mod_shib", "libapache2-mod-shib"),
    "openidc": AuthModule("mod_auth_openidc.so", "auth_openidc_module", "libapache2-mod-auth-openidc"),
    "mellon": AuthModule("mod_auth_mellon.so", "auth_mellon_module", "libapache2-mod-auth-mellon"),
}


def require_apache_module(so_name: str, apt_package: str) -> Path:
    """Return the path of Apache module ``so_name``, installing ``apt_package`` when missing and root.

    Skips the test when the module cannot be had, except under ``CI=true``, where it fails.
    """
    path = APACHE_MODULES / so_name
    if not path.exists():
        apt_install(apt_package)
    if not path.exists():
        unavailable(f"{path} not available (Debian package {apt_package}; install it as root)")
    return path


def require_apache(front_end: str) -> str:
    apache2 = require_program("apache2", "apache2")
    module = FRONT_ENDS[front_end]
    require_apache_module(module.so_name, module.package)
    return apache2


def require_uwsgi() -> str:
    return require_pip_program("uwsgi")


@contextlib.contextmanager
def shared_directory(prefix: str) -> Iterator[Path]:
    """A fresh directory other users can read.

    Started as root, Apache's and nginx's children run as another user; pytest's tmp_path
    lies under a directory only root may enter.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class TLS:
    cert: Path
    key: Path


def https_client(tls: TLS) -> requests.Session:
    """A fresh client (no cookies) trusting ``tls``'s certificate, ignoring REQUESTS_CA_BUNDLE & co."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(tls.cert)
    return session


def common_variables(tls: TLS, uwsgi_socket: str | None = None) -> dict[str, str]:
    """The variables every config reads (see the comment at the top of each)."""
    return {
        "SERVER_NAME": "127.0.0.1",
        "LISTEN_ADDRESS": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        "HTTPS_PORT": str(free_port()),
        "TLS_CERT": str(tls.cert),
        "TLS_KEY": str(tls.key),
        "UWSGI_SOCKET": uwsgi_socket or f"127.0.0.1:{free_port()}",
    }


def mellon_files(folder: Path, https_port: str, idp_metadata: Path | None = None) -> dict[str, str]:
    """SP metadata, key and certificate as the package's own tool makes them, and an IdP's metadata.

    Without ``idp_metadata`` the IdP is one nothing answers (https://idp.invalid).
    """
    tool = require_program("mellon_create_metadata", "libapache2-mod-auth-mellon")
    folder.mkdir()
    endpoint = f"https://127.0.0.1:{https_port}/mellon"
    subprocess.run([tool, "https://127.0.0.1/mellon", endpoint], cwd=folder, check=True, capture_output=True)
    (sp_metadata,) = folder.glob("*.xml")
    (sp_key,) = folder.glob("*.key")
    (sp_cert,) = folder.glob("*.cert")
    certificate = "".join(line for line in sp_cert.read_text().splitlines() if not line.startswith("-----"))
    if idp_metadata is None:
        idp_metadata = folder / "idp-metadata.xml"
        idp_metadata.write_text(
            '<?xml version="1.0"?>\n'
            '<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"'
            ' xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.invalid/idp">\n'
            '  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">\n'
            '    <KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{certificate}</ds:X509Certificate>"
            "</ds:X509Data></ds:KeyInfo></KeyDescriptor>\n"
            '    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
            ' Location="https://idp.invalid/sso"/>\n'
            "  </IDPSSODescriptor>\n"
            "</EntityDescriptor>\n"
        )
    return {
        "MELLON_SP_METADATA": str(sp_metadata),
        "MELLON_SP_KEY": str(sp_key),
        "MELLON_SP_CERT": str(sp_cert),
        "MELLON_IDP_METADATA": str(idp_metadata),
    }


def apache_variables(front_end: str, root: Path, tls: TLS, uwsgi_socket: str | None = None) -> dict[str, str]:
    variables = {**common_variables(tls, uwsgi_socket), "CONFIG_DIR": str(CONFIGS)}
    if front_end == "shibboleth":
        # Read by mod_shib only when a child starts, never by `apache2 -t`.
        variables["SHIB_CONFIG"] = "/etc/shibboleth/shibboleth2.xml"
    elif front_end == "openidc":
        # Fetched at the first login only; nothing listens there.
        metadata = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
        variables["OIDC_PROVIDER_METADATA_URL"] = metadata
        variables["OIDC_CLIENT_ID"] = "movies"
        variables["OIDC_CLIENT_SECRET"] = secrets.token_urlsafe(16)
        variables["OIDC_CRYPTO_PASSPHRASE"] = secrets.token_urlsafe(32)
    elif front_end == "mellon":
        variables.update(mellon_files(root / "mellon", variables["HTTPS_PORT"]))
    return variables


def session_settings(folder: Path) -> dict[str, str]:
    """The app's settings for lazy protection: its own sessions, in an SQLite file in ``folder``."""
    return {
        "SHIBWSGI_SESSION": f"sqlite://{folder / 'sessions.sqlite3'}",
        "SHIBWSGI_SECRET_KEY": secrets.token_urlsafe(32),
    }


def server_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """Only the documented variables: an undocumented one would show as undefined."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables}


@dataclass(frozen=True)
class Uwsgi:
    socket: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def packet_sizes(self) -> list[int]:
        """Sizes of the uwsgi packets uWSGI received, from its request log."""
        log = self.log.read_text(errors="replace")
        return [int(size) for size in re.findall(r"\{\d+ vars in (\d+) bytes\}", log)]

    def settled_packet_count(self) -> int:
        """How many packets uWSGI has logged, once the log has stopped growing.

        uWSGI may write a request's line after its client has the answer: counting at once
        could take the previous request's line for the next one's.
        """
        count = len(self.packet_sizes())
        while True:
            time.sleep(0.3)
            again = len(self.packet_sizes())
            if again == count:
                return count
            count = again


@contextlib.contextmanager
def running_uwsgi(folder: Path, app_source: str | None, **variables: str) -> Iterator[Uwsgi]:
    """uWSGI started from apache/uwsgi.ini, its log in ``folder``.

    It serves the repository's movie app, or with ``app_source`` a stub app/wsgi.py
    written into ``folder``. ``variables`` go into its environment (UWSGI_*, SHIBWSGI_*, MOVIES_*).
    """
    uwsgi = require_uwsgi()
    chdir = REPO
    if app_source is not None:
        package = folder / "app"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "wsgi.py").write_text(app_source)
        chdir = folder
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")}
    environment.update(UWSGI_SOCKET=f"127.0.0.1:{port}", UWSGI_CHDIR=str(chdir), PYTHONDONTWRITEBYTECODE="1")
    environment.update(variables)
    log = folder / "uwsgi.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [uwsgi, "--ini", str(CONFIGS / "uwsgi.ini")],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    with listening(process, port, log):
        yield Uwsgi(f"127.0.0.1:{port}", port, log, process)


@dataclass(frozen=True)
class Redis:
    url: str  # redis://127.0.0.1:<port>/0, or rediss://127.0.0.1:<port>/0?ssl_ca_certs=<CA file>
    port: int
    log: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def running_redis(
    folder: Path,
    port: int | None = None,
    *,
    persist: bool = False,
    tls: Certificates | None = None,
    client_certificates: bool = False,
) -> Iterator[Redis]:
    """A throwaway redis-server on 127.0.0.1 (``port`` or a free one), its files in ``folder``.

    With ``persist`` it saves its data when stopped and loads it when started again in
    the same folder, as a production server configured to save does. With ``tls`` it
    speaks TLS only (no plaintext port), and with ``client_certificates`` it refuses a
    client without a certificate from ``tls.ca``.
    """
    program = require_program("redis-server", "redis-server")
    port = port or free_port()
    log = folder / f"redis-{port}.log"
    command = [program, "--bind", "127.0.0.1", "--dir", str(folder)]
    command += ["--save", "3600 1" if persist else "", "--appendonly", "no"]
    if tls is None:
        command += ["--port", str(port)]
        url = f"redis://127.0.0.1:{port}/0"
    else:
        command += ["--port", "0", "--tls-port", str(port)]
        settings = tls.redis_settings(client_certificates=client_certificates)
        command += [word for name, value in settings for word in (f"--{name}", value)]
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tls.ca}"
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=folder)
    with listening(process, port, log):
        yield Redis(url, port, log, process)


@contextlib.contextmanager
def listening(process: subprocess.Popen[bytes], port: int, log: Path) -> Iterator[None]:
    """Wait until ``process`` listens on ``port`` (its ``log`` in the error if it never does);
    stop it at exit."""
    try:
        try:
            wait_for_port(port, process=process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')}") from exc
        yield
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it is still there after 15 s; return the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for_log(log: Path, pattern: str, *, count: int = 1, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, log.read_text(errors="replace"))) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not {count} times in:\n{log.read_text()}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_apache(
    front_end: str, root: Path, variables: Mapping[str, str], *switches: str, config: Path | None = None
) -> Iterator[None]:
    """Apache from the shipped config of ``front_end``, or from ``config`` (an edited copy)."""
    apache2 = require_apache(front_end)
    config = config or CONFIGS / f"{front_end}.conf"
    command = [apache2, "-d", str(root), "-f", str(config), "-DFOREGROUND"]
    command += switches
    if os.geteuid() == 0:
        command.append("-DRUN_AS_ROOT")
    with serving(command, root, int(variables["HTTPS_PORT"]), server_environment(variables)):
        yield


@contextlib.contextmanager
def serving(
    command: list[str], root: Path, port: int, env: Mapping[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[None]:
    """Run a server from ``root`` until it listens on ``host``:``port``; stop it at exit.

    Its output goes to ``root/stdout.log``; its logs in ``root`` are watched (shown with
    a failing test) and put in the error when it does not start.
    """
    with (root / "stdout.log").open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        try:
            wait_for_port(port, host=host, process=process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{server_logs(root)}") from exc
        with watching(*sorted(root.glob("*.log"))):
            yield
    finally:
        stop(process)


def server_logs(root: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in sorted(root.glob("*.log"))
    )


def render(template: str, variables: Mapping[str, str]) -> str:
    """What the header of nginx-oauth2-proxy.conf tells users to do."""
    return re.sub(r"@([A-Z0-9_]+)@", lambda match: variables[match.group(1)], template)


def nginx_variables(
    tls: TLS, protection: str, oauth2_proxy: str, uwsgi_socket: str, proxy_secret: str = ""
) -> dict[str, str]:
    return {
        **common_variables(tls, uwsgi_socket),
        "OAUTH2_PROXY": oauth2_proxy,
        "PROTECTION": protection,
        "PROXY_SECRET": proxy_secret,
    }


def write_nginx_config(
    root: Path, variables: Mapping[str, str], template: str = "nginx-oauth2-proxy.conf"
) -> Path:
    """``template`` (a file in apache/) rendered with ``variables`` into ``root``/nginx.conf."""
    config = root / "nginx.conf"
    config.write_text(render((CONFIGS / template).read_text(), variables))
    return config


@contextlib.contextmanager
def running_nginx(
    root: Path, variables: Mapping[str, str], template: str = "nginx-oauth2-proxy.conf"
) -> Iterator[None]:
    nginx = require_program("nginx", "nginx")
    config = write_nginx_config(root, variables, template)
    command = [nginx, "-p", f"{root}/", "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
    with serving(command, root, int(variables["HTTPS_PORT"]), host=variables["LISTEN_ADDRESS"]):
        yield


#: The users FakeOAuth2Proxy knows: the value of its session cookie -> its /oauth2/auth answer.
OAUTH2_PROXY_USERS: Mapping[str, Mapping[str, str]] = {
    "alice": {
        "X-Auth-Request-User": "alice",
        "X-Auth-Request-Email": "alice@example.org",
        "X-Auth-Request-Groups": "movie-editors,staff",
        "X-Auth-Request-Preferred-Username": "Alice",
    },
    "bob": {
        "X-Auth-Request-User": "bob",
        "X-Auth-Request-Email": "bob@example.org",
        "X-Auth-Request-Groups": "film-club,staff",
        "X-Auth-Request-Preferred-Username": "Bob",
    },
}
OAUTH2_PROXY_COOKIE = "_oauth2_proxy"
# oauth2-proxy's invalidRedirectRegex (pkg/app/redirect/validator.go): "//", "/\\", "/./" ...
_INVALID_REDIRECT = re.compile(r"[/\\](?:[\s\v]*|\.{1,2})[/\\]")


class FakeOAuth2Proxy(BaseHTTPRequestHandler):
    """oauth2-proxy's side of nginx's auth_request contract (--set-xauthrequest).

    A request whose ``_oauth2_proxy`` cookie names one of ``users`` is signed in as that
    user: /oauth2/auth answers 202 with the user's X-Auth-Request-* headers, otherwise 401.
    /oauth2/start sends the browser to the provider with the URL to come back to;
    /oauth2/sign_out clears the cookie and redirects there. That URL is chosen as
    oauth2-proxy does: the ``rd`` parameter, else the X-Auth-Request-Redirect header, else
    "/", each only if it is a local path or an http(s) URL on one of ``allowed_domains``
    (--whitelist-domain: ``host``, ``host:port``, ``host:*`` or ``.domain``).

    The provider is ``https://idp.invalid``, which nothing answers, unless ``sign_in_page``:
    then /oauth2/start goes to /oauth2/sign_in, a page with one button per user standing in
    for the provider's login, whose POST to /oauth2/callback sets the cookie and sends the
    browser back, as the real callback does.
    """

    def __init__(
        self,
        *args: Any,
        users: Mapping[str, Mapping[str, str]],
        allowed_domains: Sequence[str],
        sign_in_page: bool = False,
        **kwargs: Any,
    ) -> None:
        # Before super().__init__(), which handles the request.
        self.users = users
        self.allowed_domains = allowed_domains
        self.sign_in_page = sign_in_page
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/oauth2/auth":
            user = self.users.get(self.session_user() or "")
            if user:
                self.answer(202, user)
            else:
                self.answer(401)
        elif url.path == "/oauth2/start":
            back = self.app_redirect(url.query)
            if self.sign_in_page:
                self.answer(302, {"Location": f"/oauth2/sign_in?{urlencode({'rd': back})}"})
            else:
                self.answer(302, {"Location": f"https://idp.invalid/authorize?rd={back}"})
        elif url.path == "/oauth2/sign_in" and self.sign_in_page:
            self.show_sign_in(self.app_redirect(url.query))
        elif url.path == "/oauth2/sign_out":
            expired = f"{OAUTH2_PROXY_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure"
            self.answer(302, {"Location": self.app_redirect(url.query), "Set-Cookie": expired})
        else:
            self.answer(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        user = form.get("user", [""])[0]
        if urlsplit(self.path).path != "/oauth2/callback" or not self.sign_in_page:
            self.answer(404)
            return
        if user not in self.users:
            self.answer(403)
            return
        back = self.app_redirect(urlencode({"rd": form.get("rd", [""])[0]}))
        cookie = f"{OAUTH2_PROXY_COOKIE}={user}; Path=/; HttpOnly; Secure; SameSite=Lax"
        self.answer(302, {"Location": back, "Set-Cookie": cookie})

    def show_sign_in(self, back: str) -> None:
        buttons = "".join(
            f'<button type="submit" name="user" value="{html.escape(user)}">Sign in as {html.escape(user)}</button>'
            for user in self.users
        )
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title></head><body>'
            f'<h1>Sign in</h1><form method="post" action="/oauth2/callback">'
            f'<input type="hidden" name="rd" value="{html.escape(back)}">{buttons}</form></body></html>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def session_user(self) -> str | None:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        morsel = cookie.get(OAUTH2_PROXY_COOKIE)
        return morsel.value if morsel else None

    def app_redirect(self, query: str) -> str:
        candidates = (parse_qs(query).get("rd", [""])[0], self.headers.get("X-Auth-Request-Redirect", ""))
        return next((url for url in candidates if self.valid_redirect(url)), "/")

    def valid_redirect(self, url: str) -> bool:
        if url.startswith("/"):
            return not url.startswith("//") and not _INVALID_REDIRECT.search(url)
        if not url.startswith(("http://", "https://")):
            return False
        try:
            parts = urlsplit(url)
            port = str(parts.port or "")
        except ValueError:
            return False
        for domain in self.allowed_domains:
            host, _, allowed_port = domain.partition(":")
            name = parts.hostname or ""
            if (name == host.lstrip(".") or (host.startswith(".") and name.endswith(host))) and (
                allowed_port in ("*", port)
            ):
                return True
        return False

    def answer(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def running_fake_oauth2_proxy(
    users: Mapping[str, Mapping[str, str]] = OAUTH2_PROXY_USERS,
    allowed_domains: Sequence[str] = (),
    *,
    sign_in_page: bool = False,
) -> Iterator[str]:
    """A FakeOAuth2Proxy on 127.0.0.1; yields its ``host:port`` (nginx's OAUTH2_PROXY)."""
    handler = functools.partial(
        FakeOAuth2Proxy, users=users, allowed_domains=allowed_domains, sign_in_page=sign_in_page
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with in_thread(server):
        yield f"127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def self_signed_certificate(addresses: Sequence[str] = ("127.0.0.1",)) -> Iterator[TLS]:
    """A self-signed certificate for ``addresses`` (with the extensions Apache's mod_ssl wants)."""
    openssl = require_program("openssl", "openssl")
    with shared_directory("shibwsgi-tls-") as folder:
        cert, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            [
                *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={addresses[0]}"),
                *("-addext", "basicConstraints=critical,CA:FALSE"),
                *("-addext", "subjectAltName=" + ",".join(f"IP:{address}" for address in addresses)),
            ],
            check=True,
            capture_output=True,
        )
        yield TLS(cert, key)


@dataclass(frozen=True)
class Certificates:
    """A throwaway certificate authority and what it signed, for 127.0.0.1 (not localhost)."""

    ca: Path  # the CA's certificate: what clients and servers trust
    cert: Path  # a server's certificate (also its client certificate towards other servers)
    key: Path
    client_cert: Path  # a client's certificate
    client_key: Path

    def redis_settings(self, *, client_certificates: bool = False) -> list[tuple[str, str]]:
        """redis-server's (and a sentinel's) settings to speak TLS with these files."""
        return [
            ("tls-cert-file", str(self.cert)),
            ("tls-key-file", str(self.key)),
            ("tls-ca-cert-file", str(self.ca)),
            ("tls-auth-clients", "yes" if client_certificates else "no"),
        ]


#: The password of the encrypted client key the TLS tests use (``encrypted_client_key``).
KEY_PASSWORD = "S3CR3T"


def make_certificates(folder: Path) -> Certificates:
    """A new CA in ``folder`` (made if missing) and a server and a client certificate it signed.

    EC keys: made in milliseconds, where RSA keys take a noticeable share of a short test.
    """
    openssl = require_program("openssl", "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

    def run(*arguments: str) -> None:
        subprocess.run([openssl, *arguments], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", *new_key, "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Test CA")
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        run("req", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (folder / f"{name}.ext").write_text(f"basicConstraints=critical,CA:FALSE\n{extension}\n")
        run(
            *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"),
            *("-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext"),
        )
    return Certificates(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
