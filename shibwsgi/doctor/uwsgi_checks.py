"""Pitfalls in a uwsgi ini: buffer size, exposed sockets, secrets."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .addresses import is_loopback, split_address
from .findings import ERROR, WARNING, Finding, Location
from .settings import UWSGI_MAX, AppSettings
from .uwsgi import Option

__all__ = ["check_uwsgi"]

DEFAULT_BUFFER = 4096
_SOCKETS = {
    "socket": ERROR,
    "uwsgi-socket": ERROR,
    "shared-socket": ERROR,
    # FastCGI and SCGI carry server variables as uwsgi does: REMOTE_USER from whoever connects
    "fastcgi-socket": ERROR,
    "fastcgi-nph-socket": ERROR,
    "scgi-socket": ERROR,
    "scgi-nph-socket": ERROR,
    "http-socket": WARNING,
    "https-socket": WARNING,
    "http": WARNING,
    "https": WARNING,
}
_PLACEHOLDER = re.compile(r"\$\(([A-Za-z0-9_]+)\)")
_SECRETS = ("SHIBWSGI_SECRET_KEY", "SHIBWSGI_PROXY_SECRET", "SHIBWSGI_PROBE_TOKEN")


def check_uwsgi(
    options: list[Option], file: str, app: AppSettings | None, environ: Mapping[str, str] | None = None
) -> list[Finding]:
    environ = os.environ if environ is None else environ
    findings = _buffer(options, file, app)
    for option in options:
        value = _PLACEHOLDER.sub(lambda m: environ.get(m.group(1), m.group(0)), option.value)
        if option.key in _SOCKETS:
            findings += _socket(option.key, value, option.where, _SOCKETS[option.key])
        elif option.key == "chmod-socket" and value[-1:] in ("2", "3", "6", "7"):
            findings.append(
                Finding(
                    WARNING,
                    "socket-world-writable",
                    option.where,
                    f"chmod-socket = {value} lets every local user talk to the app and send any identity.",
                    "use 660 and put the web server's user in the socket's group.",
                )
            )
        elif option.key == "env" and value.startswith(_SECRETS):
            findings.append(
                Finding(
                    WARNING,
                    "secret-in-ini",
                    option.where,
                    f"{value.partition('=')[0]} is written in the ini file.",
                    "keep secrets in an environment file only root can read (systemd EnvironmentFile=).",
                )
            )
    return findings


def check_socket_variable(environ: Mapping[str, str]) -> list[Finding]:
    """``UWSGI_SOCKET`` in the environment is uWSGI's ``socket`` option."""
    value = environ.get("UWSGI_SOCKET")
    return _socket("socket", value, Location("environment UWSGI_SOCKET"), ERROR) if value else []


def _socket(option: str, value: str, where: Location, severity: str) -> list[Finding]:
    address = value.split(",")[0].strip()
    if address.startswith(("/", "@", "$(")) or ":" not in address:
        return []  # a unix socket, or a placeholder we cannot resolve
    host, port = split_address(address)
    if is_loopback(host):
        return []
    what = (
        f"the {option.split('-')[0] if option.startswith(('fastcgi', 'scgi')) else 'uwsgi'} protocol carries server variables, so whoever reaches it can be any user"
        if severity == ERROR
        else "it bypasses the front end that authenticates users"
    )
    return [
        Finding(
            severity,
            "socket-beyond-loopback",
            where,
            f"{option} = {address} listens beyond loopback: {what}.",
            f"{option} = 127.0.0.1:{port} (or a unix socket), and let only the front end reach it.",
        )
    ]


def _buffer(options: list[Option], file: str, app: AppSettings | None) -> list[Finding]:
    needed = app.needed_buffer if app is not None else UWSGI_MAX
    sizes = [option for option in options if option.key == "buffer-size"]
    if not sizes:
        if needed <= DEFAULT_BUFFER:
            return []
        return [
            Finding(
                ERROR,
                "buffer-size",
                Location(file),
                f"no buffer-size: uWSGI's default 4096 bytes drops requests carrying a few KB of attributes (\"invalid request block size\", a 5xx with nothing in the front end's log); the attribute caps need {needed}.",
                f"buffer-size = {needed}",
            )
        ]
    option = sizes[-1]
    try:
        size = int(option.value)
    except ValueError:
        return [
            Finding(
                WARNING,
                "buffer-size",
                option.where,
                f"buffer-size = {option.value} is not a number of bytes.",
                f"buffer-size = {needed}",
            )
        ]
    if size > UWSGI_MAX:
        return [
            Finding(
                WARNING,
                "buffer-size",
                option.where,
                f"buffer-size = {size} is over the uwsgi protocol's maximum: no request can carry more than 65535 bytes of variables (Apache refuses with AH10259).",
                "buffer-size = 65535, and release fewer attributes if requests do not fit.",
            )
        ]
    if size < needed:
        return [
            Finding(
                ERROR,
                "buffer-size",
                option.where,
                f'buffer-size = {size} is below what the attribute caps need ({needed}): larger identities are dropped with "invalid request block size" and the user sees a 5xx.',
                f"buffer-size = {needed} (or lower SHIBWSGI_MAX_ATTRIBUTE_BYTES).",
            )
        ]
    return []
