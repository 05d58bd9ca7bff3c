"""A local stack of the shipped configs, to try them before a deployment: ``make stack PROFILE=...``.

Brings up, on loopback, the front end from apache/ with its real module, the identity
provider the end-to-end tests use, and uWSGI from apache/uwsgi.ini serving the movie app
with lazy protection (``/`` public, ``/login`` signs in). Prints the URL, the test users,
and the ``shibwsgi doctor`` commands for the running configs; Ctrl-C (SIGINT) or SIGTERM
stops everything.

Run with the venv's Python from the repository root: ``python tests/stack_cli.py shibboleth``.
It reuses the test harness (tests/stack.py, tests/e2e/), hence its home here.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import secrets
import shlex
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from e2e import oidc_provider, shibboleth_sp
from e2e.saml_idp import USERS as SAML_USERS
from e2e.saml_idp import SamlIdP, serving
from stack import (
    CONFIGS,
    OAUTH2_PROXY_USERS,
    TLS,
    Uwsgi,
    apache_variables,
    mellon_files,
    nginx_variables,
    running_apache,
    running_fake_oauth2_proxy,
    running_nginx,
    running_uwsgi,
    self_signed_certificate,
    session_settings,
    shared_directory,
    wait_for_log,
)
from support import free_port, require_program

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

PROFILES = ("shibboleth", "openidc", "mellon", "oauth2-proxy")
#: Where nginx listens for oauth2-proxy: the app trusts this address only (as in the tests).
NGINX_ADDRESS = "127.0.0.2"
SWITCHES = ("-DPROTECTION_LAZY",)
#: The app's settings for mellon and the test IdP, which names attributes by OID.
MELLON_SETTINGS = {
    "SHIBWSGI_PROFILE": "mellon",
    "SHIBWSGI_USER": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    "SHIBWSGI_ATTRIBUTES": "name=urn:oid:2.16.840.1.113730.3.1.241 email=urn:oid:0.9.2342.19200300.100.1.3"
    " groups=urn:oid:1.3.6.1.4.1.5923.1.5.1.1:multi",
}
SECRETS = {"SHIBWSGI_SECRET_KEY", "SHIBWSGI_PROBE_TOKEN"}


@dataclass
class Stack:
    """What the operator needs to know about a running stack."""

    url: str
    tls: TLS
    servers: dict[str, str]  # what -> host:port
    users: list[str]
    sign_in: str
    doctor: list[str] = field(default_factory=list)
    probe: list[str] = field(default_factory=list)


def doctor_command(*arguments: str) -> list[str]:
    """``shibwsgi doctor`` by this Python, which has the package (the console script may not be on PATH)."""
    return [sys.executable, "-m", "shibwsgi", "doctor", *arguments]


def render_apache(config: Path, variables: Mapping[str, str]) -> str:
    """The Apache config with ``${NAME}`` replaced as Apache does from the environment."""
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: variables.get(m.group(1), m.group(0)), config.read_text())


def render_uwsgi(folder: Path, uwsgi: Uwsgi, settings: Mapping[str, str]) -> Path:
    """apache/uwsgi.ini with the socket and the app's settings that the stack gives its uWSGI.

    The secrets stay out, as docs/deployment.md advises (an environment file only root reads).
    """
    lines = [f"socket = {uwsgi.socket}"]
    lines += [f"env = {k}={v}" for k, v in settings.items() if k.startswith("SHIBWSGI_") and k not in SECRETS]
    ini = folder / "uwsgi.ini"
    ini.write_text(
        f"{(CONFIGS / 'uwsgi.ini').read_text()}\n# The stack's environment:\n" + "\n".join(lines) + "\n"
    )
    return ini


@contextlib.contextmanager
def movie_app(folder: Path, profile_settings: Mapping[str, str], token: str) -> Iterator[tuple[Uwsgi, Path]]:
    """The movie app under uWSGI (2 workers, lazy protection, probe on); yields it and its rendered ini."""
    settings = {
        **profile_settings,
        **session_settings(folder),
        "SHIBWSGI_PROBE_TOKEN": token,
        "MOVIES_DB": str(folder / "movies.sqlite3"),
        "UWSGI_PROCESSES": "2",
    }
    with running_uwsgi(folder, None, **settings) as uwsgi:
        wait_for_log(uwsgi.log, r"WSGI app 0 \(mountpoint=''\) ready", count=2, timeout=60)
        yield uwsgi, render_uwsgi(folder, uwsgi, settings)


def folder(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir(mode=0o755)
    return path


def finish(stack: Stack, ini: Path, token: str, *doctor: str) -> Stack:
    stack.doctor = doctor_command(*doctor, "--uwsgi", str(ini))
    stack.probe = doctor_command(
        "--probe", f"{stack.url}/", f"--token={token}", "--cafile", str(stack.tls.cert), "--uwsgi", str(ini)
    )
    return stack


@contextlib.contextmanager
def apache_stack(
    front_end: str, root: Path, tls: TLS, port: int, app: Uwsgi, variables: Mapping[str, str]
) -> Iterator[list[str]]:
    """Apache from apache/<front_end>.conf (lazy) on ``port``; yields the doctor's arguments for it."""
    apache = folder(root, "apache")
    values = {**apache_variables(front_end, apache, tls, app.socket), "HTTPS_PORT": str(port)}
    values.update(variables)
    rendered = folder(root, "doctor") / f"{front_end}.conf"
    rendered.write_text(render_apache(CONFIGS / f"{front_end}.conf", values))
    with running_apache(front_end, apache, values, *SWITCHES):
        yield ["--apache", str(rendered), *(f"-D{switch[2:]}" for switch in SWITCHES)]


@contextlib.contextmanager
def shibboleth(root: Path, tls: TLS, port: int, token: str) -> Iterator[Stack]:
    with (
        shibboleth_sp.running_federation(folder(root, "saml"), [port]) as (idp, sp),
        movie_app(folder(root, "app"), shibboleth_sp.APP_SETTINGS, token) as (app, ini),
        apache_stack("shibboleth", root, tls, port, app, {"SHIB_CONFIG": str(sp.config)}) as doctor,
    ):
        url = f"https://127.0.0.1:{port}"
        users = [f"{name}: {user.eppn}, groups {', '.join(user.groups)}" for name, user in SAML_USERS.items()]
        servers = {"Apache + mod_shib": f"127.0.0.1:{port}", "SAML IdP (pysaml2)": idp.base_url[7:]}
        servers["uWSGI"] = app.socket
        stack = Stack(url, tls, servers, users, "open /login and press a user's button at the test IdP")
        yield finish(stack, ini, token, *doctor)


@contextlib.contextmanager
def mellon(root: Path, tls: TLS, port: int, token: str) -> Iterator[Stack]:
    require_program("xmlsec1", "xmlsec1")  # pysaml2 signs with it
    saml = folder(root, "saml")
    idp = SamlIdP(saml, free_port())
    files = mellon_files(saml / "mellon", str(port), idp.metadata)
    idp.trust(Path(files["MELLON_SP_METADATA"]).read_text())
    with (
        serving(idp),
        movie_app(folder(root, "app"), MELLON_SETTINGS, token) as (app, ini),
        apache_stack("mellon", root, tls, port, app, files) as doctor,
    ):
        url = f"https://127.0.0.1:{port}"
        users = [f"{name}: {user.eppn}, groups {', '.join(user.groups)}" for name, user in SAML_USERS.items()]
        servers = {"Apache + mod_auth_mellon": f"127.0.0.1:{port}", "SAML IdP (pysaml2)": idp.base_url[7:]}
        servers["uWSGI"] = app.socket
        stack = Stack(url, tls, servers, users, "open /login and press a user's button at the test IdP")
        yield finish(stack, ini, token, *doctor)


@contextlib.contextmanager
def openidc(root: Path, tls: TLS, port: int, token: str) -> Iterator[Stack]:
    url = f"https://127.0.0.1:{port}"
    users = [oidc_provider.ZOE, oidc_provider.RITA]
    with (
        oidc_provider.running_provider(folder(root, "oidc"), users) as provider,
        movie_app(folder(root, "app"), oidc_provider.APP_SETTINGS, token) as (app, ini),
        apache_stack("openidc", root, tls, port, app, provider.client_variables(url)) as doctor,
    ):
        lines = [f"{user['sub']}: {user['email']}, groups {', '.join(user['groups'])}" for user in users]
        servers = {"Apache + mod_auth_openidc": f"127.0.0.1:{port}"}
        servers["OIDC provider (oidc-provider-mock)"] = provider.url[7:]
        servers["uWSGI"] = app.socket
        sign_in = "open /login and type a user's sub (zoe or rita) at the provider's form"
        yield finish(Stack(url, tls, servers, lines, sign_in), ini, token, *doctor)


@contextlib.contextmanager
def oauth2_proxy(root: Path, tls: TLS, port: int, token: str) -> Iterator[Stack]:
    settings = {
        "SHIBWSGI_PROFILE": "oauth2-proxy",
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": NGINX_ADDRESS,
    }
    url = f"https://{NGINX_ADDRESS}:{port}"
    with (
        running_fake_oauth2_proxy(allowed_domains=[f"{NGINX_ADDRESS}:{port}"], sign_in_page=True) as proxy,
        movie_app(folder(root, "app"), settings, token) as (app, ini),
    ):
        nginx = folder(root, "nginx")
        variables = {**nginx_variables(tls, "lazy", proxy, app.socket), "LISTEN_ADDRESS": NGINX_ADDRESS}
        variables.update(HTTPS_PORT=str(port), SERVER_NAME=NGINX_ADDRESS)
        with running_nginx(nginx, variables):
            users = [
                f"{name}: {user['X-Auth-Request-Email']}, groups {user['X-Auth-Request-Groups']}"
                for name, user in OAUTH2_PROXY_USERS.items()
            ]
            servers = {
                "nginx": f"{NGINX_ADDRESS}:{port}",
                "oauth2-proxy stand-in": proxy,
                "uWSGI": app.socket,
            }
            stack = Stack(
                url, tls, servers, users, "open /login and press a user's button at the sign-in page"
            )
            yield finish(stack, ini, token, "--nginx", str(nginx / "nginx.conf"))


STACKS = {"shibboleth": shibboleth, "openidc": openidc, "mellon": mellon, "oauth2-proxy": oauth2_proxy}


@contextlib.contextmanager
def running(profile: str, port: int) -> Iterator[Stack]:
    token = secrets.token_urlsafe(24)
    with (
        self_signed_certificate(("127.0.0.1", NGINX_ADDRESS)) as tls,
        shared_directory(f"shibwsgi-stack-{profile}-") as root,
        STACKS[profile](root, tls, port or free_port(), token) as stack,
    ):
        yield stack


def report(profile: str, stack: Stack) -> str:
    servers = "\n".join(f"  {name:<36} {address}" for name, address in stack.servers.items())
    users = "\n".join(f"  {line}" for line in stack.users)
    return f"""\
shibwsgi stack ({profile}) is up: the shipped configs, on loopback only.

URL: {stack.url}/
  The certificate is self-signed ({stack.tls.cert}): accept it in the browser.
  Sign in: {stack.sign_in}.

Test users:
{users}

Servers:
{servers}

Doctor on the running configs:
  doctor: {shlex.join(stack.doctor)}
  probe: {shlex.join(stack.probe)}

Ctrl-C stops everything.
"""


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", choices=PROFILES)
    parser.add_argument(
        "--port", type=int, default=8443, help="the HTTPS port (0: any free one); default 8443"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with running(args.profile, args.port) as stack:
            print(report(args.profile, stack), flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        print("Stopped.", flush=True)
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:  # a program the stack needs is missing
        print(f"Cannot start the stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
