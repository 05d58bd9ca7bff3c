"""Asking the installed server itself: ``apache2 -t``, ``nginx -t``.

The server is the authority on what it accepts; the doctor's own reader stays for what the
servers do not say (pitfalls in configs they accept) and for machines without them. Only a
main config is tested (a virtual host alone would fail for lack of its modules), with a
timeout; a refusal caused by this user's permissions is not the config's fault and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .findings import ERROR, WARNING, Finding, Location

__all__ = ["ask_apache", "ask_nginx"]

TIMEOUT = 30
_DEBIAN_ENVVARS = Path("/etc/apache2/envvars")
_APACHE_LINE = re.compile(r"on line (\d+) of (.+?):")
_NGINX_LINE = re.compile(r" in (\S+):(\d+)\s*$")
#: Apache's and nginx's notes that do not refuse anything (an undefined ${VAR} is a warning).
_NOTICE = re.compile(r"\[(\w+:)?(warn|notice|info|debug)\]")
_PERMISSION = ("Permission denied", "(13:")
#: "[Fri Dec 04 19:07:54.4 2026] [core:crit] [pid 1:tid 1] " before Apache's own message.
_APACHE_PREFIX = re.compile(r"^\[[^\]]*\] \[[^\]]*\] \[pid [^\]]*\] ")
_NGINX_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ")


def _binary(*names: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    return next((found for name in names if (found := shutil.which(name, path=path))), None)


def ask_apache(path: str | Path, defines: Mapping[str, str]) -> list[Finding]:
    """``apache2 -t -f PATH`` (with Debian's envvars where present), as findings."""
    binary = _binary("apache2", "httpd")
    if binary is None:
        return []
    command = [binary, "-t", "-f", os.path.abspath(path)]
    for name, value in defines.items():
        command += ["-C", f"Define {name} {value}"] if value else ["-D", name]
    if _DEBIAN_ENVVARS.is_file():
        command = ["sh", "-c", f'. {_DEBIAN_ENVVARS} && exec "$0" "$@"', *command]
    return _ask("apache2 -t", command, path, _apache_location)


def ask_nginx(path: str | Path) -> list[Finding]:
    """``nginx -t -c PATH``, as findings."""
    binary = _binary("nginx")
    if binary is None:
        return []
    return _ask(
        "nginx -t", [binary, "-t", "-q", "-e", "stderr", "-c", os.path.abspath(path)], path, _nginx_location
    )


def _ask(
    name: str, command: Sequence[str], path: str | Path, locate: Callable[[list[str], str | Path], Location]
) -> list[Finding]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        return [_incomplete(path, f"{name} did not answer within {TIMEOUT} s")]
    except OSError as exc:
        return [_incomplete(path, f"{name} could not run ({exc.strerror})")]
    if done.returncode == 0:
        return []
    lines = [
        _APACHE_PREFIX.sub("", _NGINX_PREFIX.sub(r"\1 ", line.strip()))
        for line in (done.stderr + done.stdout).splitlines()
        if line.strip() and not line.rstrip().endswith("test failed") and not _NOTICE.search(line)
    ]
    message = " / ".join(lines[-4:]) or f"exit status {done.returncode}"
    if any(marker in message for marker in _PERMISSION):
        return [_incomplete(path, f"{name} could not read everything as this user: {message}")]
    return [
        Finding(
            ERROR,
            "server-refuses",
            locate(lines, path),
            f"{name} refuses this config: {message}",
            "fix what the server names; it will not start (or reload) until then.",
        )
    ]


def _apache_location(lines: list[str], path: str | Path) -> Location:
    for line in lines:
        if match := _APACHE_LINE.search(line):
            return Location(match.group(2), int(match.group(1)))
    return Location(str(path))


def _nginx_location(lines: list[str], path: str | Path) -> Location:
    for line in lines:
        if match := _NGINX_LINE.search(line):
            return Location(match.group(1), int(match.group(2)))
    return Location(str(path))


def _incomplete(path: str | Path, problem: str) -> Finding:
    return Finding(
        WARNING,
        "server-check-incomplete",
        Location(str(path)),
        f"{problem}.",
        "run the doctor as the user the server starts as (root), or test by hand (apache2ctl -t, nginx -t).",
    )
