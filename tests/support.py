"""Shared helpers for tests that need real programs (redis-server, apache2, nginx, uwsgi)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

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


@contextlib.contextmanager
def in_thread(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` answering from a daemon thread; shut down and closed on the way out."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def serving_jwks(
    jwks: Callable[[], Mapping[str, Any]],
    path: str = "/.well-known/pomerium/jwks.json",
    fetches: list[str] | None = None,
) -> Iterator[str]:
    """A key set (``jwks()`` at each fetch) at ``path`` on 127.0.0.1; yields its URL.
    Each request's path is appended to ``fetches``; any other path is a 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if fetches is not None:
                fetches.append(self.path)
            body = json.dumps(jwks()).encode()
            self.send_response(200 if self.path == path else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with in_thread(server):
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
