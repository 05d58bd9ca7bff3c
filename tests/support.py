"""Shared helpers for tests that need real programs (redis-server, apache2, nginx, uwsgi)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_program(program: str, apt_package: str) -> str:
    """Return the path of ``program``, installing ``apt_package`` when missing and root.

    Skips the test when the program cannot be had, except under ``CI=true``, where a
    missing server is a failure: CI must install what the suite needs.
    """
    path = shutil.which(program) or _sbin(program)
    if path is None and apt_install(apt_package):
        path = shutil.which(program) or _sbin(program)
    if path is None:
        unavailable(f"{program} not available (Debian package {apt_package}; install it as root)")
    return path


def apt_install(package: str) -> bool:
    """Install a Debian package when running as root with apt-get; False when that is impossible."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        check=False,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return True


def unavailable(reason: str) -> NoReturn:
    """Skip the test for lack of a program, or fail it under ``CI=true`` (CI must install it)."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def require_pip_program(program: str) -> str:
    """Return the path of ``program``, installed by pip beside this Python (``pip install -e .[test]``).

    Skips the test when it is missing, except under ``CI=true``, where that is a failure.
    """
    beside_python = Path(sys.executable).with_name(program)
    found = str(beside_python) if beside_python.exists() else shutil.which(program)
    if found is None:
        unavailable(f"{program} not installed in this environment (pip install -e .[test])")
    return found


def _sbin(program: str) -> str | None:
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = os.path.join(folder, program)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 15.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until something accepts connections on ``host``:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")
