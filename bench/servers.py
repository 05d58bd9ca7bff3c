"""Starting and always stopping the real programs a benchmark needs (redis-server, uWSGI, Apache)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "ROOT",
    "Server",
    "find_program",
    "free_port",
    "free_ports",
    "install_if_root",
    "pinned",
    "redis_server",
    "start",
    "wait_for_port",
]

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """A started program, in its own process group, with its log file."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    def __repr__(self) -> str:
        return f"<Server {self.name} pid={self.process.pid}>"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the program, then anything it left in its own process group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # start() gave it a new session: its group id is its pid, and holds only its children.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    """Run ``argv`` in a new session, output to ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return Server(name, process, log)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:  # all bound at once: the kernel cannot hand out one twice
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def wait_for_port(port: int, *, server: Server | None = None, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode} before listening on {port}:\n"
                f"{server.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    tail = server.log_tail() if server is not None else ""
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s\n{tail}")


def find_program(program: str) -> str | None:
    """The program's path, looking in the sbin folders too."""
    found = shutil.which(program)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = os.path.join(folder, program)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def pinned(argv: Sequence[str], cpu: int) -> list[str]:
    """``argv`` run on CPU ``cpu`` alone (``taskset``), when there are two CPUs or more to share out."""
    taskset = find_program("taskset")
    try:
        usable = os.sched_getaffinity(0)
    except AttributeError:
        usable = set()
    if taskset is None or len(usable) < 2 or cpu not in usable:
        return list(argv)
    return [taskset, "-c", str(cpu), *argv]


def install_if_root(program: str, apt_package: str) -> str | None:
    """``program``'s path, installing ``apt_package`` first when it is missing and we are root."""
    path = find_program(program)
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", apt_package],
                check=False,
                capture_output=True,
                timeout=180,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        path = find_program(program)
    return path


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    """A throwaway redis-server on loopback: yields its URL, or ``None`` when not installed."""
    program = find_program("redis-server")
    if program is None:
        yield None
        return
    port = free_port()
    argv = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = start("redis-server", [*argv, "--dir", str(folder)], log=folder / "redis.log")
    try:
        wait_for_port(port, server=server)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.stop()
