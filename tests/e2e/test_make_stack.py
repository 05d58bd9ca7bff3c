"""``make stack``: the stack program (tests/stack_cli.py) as an operator runs it.

For each profile it is started as a subprocess; once it prints its URL, a test user signs in
through the real module and the identity provider, reads /api/me, the printed doctor and
probe commands run clean, and Ctrl-C (SIGINT to the program's process group, as a terminal
sends it) leaves no process and no open port behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import pytest
import requests
from stack import REPO, require_apache
from support import require_program

from .oidc_provider import Provider, require_oidc_provider
from .saml_idp import browse, choose_user, form_fields

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.servers

STACK_CLI = REPO / "tests" / "stack_cli.py"
READY = "Ctrl-C stops everything."
API = {"Accept": "application/json"}


@dataclass(frozen=True)
class RunningStack:
    """The stack program's process and what it printed once up."""

    process: subprocess.Popen[str]
    output: str

    def field(self, label: str) -> str:
        found = re.search(rf"^\s*{label}: (\S.*)$", self.output, re.MULTILINE)
        assert found is not None, f"no {label!r} line in:\n{self.output}"
        return found.group(1)

    @property
    def url(self) -> str:
        return self.field("URL").rstrip("/")

    @property
    def cert(self) -> str:
        found = re.search(r"self-signed \(([^)]+)\)", self.output)
        assert found is not None, self.output
        return found.group(1)

    def servers(self) -> dict[str, tuple[str, int]]:
        """Every server the stack names: what -> (host, port)."""
        section = self.output.split("Servers:\n", 1)[1].split("\n\n", 1)[0]
        return {
            line.rsplit(None, 1)[0].strip(): (
                line.rsplit(None, 1)[1].split(":")[0],
                int(line.rsplit(":", 1)[1]),
            )
            for line in section.splitlines()
        }

    def browser(self) -> requests.Session:
        """A fresh browser-like client trusting the stack's certificate."""
        client = requests.Session()
        client.trust_env = False  # REQUESTS_CA_BUNDLE & co would win over verify
        client.verify = self.cert
        client.headers["Accept"] = "text/html,application/xhtml+xml,*/*;q=0.8"
        return client


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` now, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def stack_program(profile: str) -> Iterator[RunningStack]:
    """``python tests/stack_cli.py PROFILE --port 0`` until it has printed its URL; stopped at exit."""
    process = subprocess.Popen(
        [sys.executable, str(STACK_CLI), profile, "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert process.stdout is not None
    try:
        yield RunningStack(process, read_until_ready(process.stdout.fileno()))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


def read_until_ready(fd: int, timeout: float = 90) -> str:
    """What the program prints until it says it is up (raw reads: a text stream would buffer past it)."""
    output = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while READY.encode() not in output:
            assert time.monotonic() < deadline, f"the stack did not come up:\n{output.decode()}"
            if selector.select(timeout=1):
                chunk = os.read(fd, 65536)
                assert chunk, f"the stack exited:\n{output.decode()}"
                output += chunk
    return output.decode()


def follow(browser: requests.Session, response: requests.Response) -> requests.Response:
    for _ in range(10):
        if not response.is_redirect:
            return response
        response = browser.get(
            urljoin(response.url, response.headers["Location"]), allow_redirects=False, timeout=30
        )
    raise AssertionError(f"redirect loop at {response.url}")


def sign_in_saml(stack: RunningStack, browser: requests.Session) -> None:
    """The IdP's choice page, then zoe's button: as in a browser."""
    choice = browse(browser, f"{stack.url}/login?next=/api/me")
    assert "Test IdP" in choice.response.text, choice.response.text[:500]
    choose_user(browser, choice.response, "zoe")


def sign_in_openidc(stack: RunningStack, browser: requests.Session) -> None:
    host, port = stack.servers()["OIDC provider (oidc-provider-mock)"]
    provider = Provider(f"http://{host}:{port}", Path(os.devnull))
    start = browser.get(f"{stack.url}/login?next=/api/me", allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text[:500]
    callback = provider.log_in(browser, start.headers["Location"], "zoe")
    follow(browser, browser.get(callback, allow_redirects=False, timeout=30))


def sign_in_oauth2_proxy(stack: RunningStack, browser: requests.Session) -> None:
    """The stand-in's sign-in page, then alice's button."""
    page = follow(browser, browser.get(f"{stack.url}/login?next=/api/me", allow_redirects=False, timeout=30))
    action, fields = form_fields(page.text)
    url = urljoin(page.url, action)
    answer = browser.post(url, data={**fields, "user": "alice"}, allow_redirects=False, timeout=30)
    follow(browser, answer)


@dataclass(frozen=True)
class Profile:
    name: str
    sign_in: Callable[[RunningStack, requests.Session], None]
    user: str  # /api/me's "user" for the one signed in
    needs: Callable[[], object]


PROFILES = [
    Profile("shibboleth", sign_in_saml, "zoe@example.org", lambda: require_apache("shibboleth")),
    Profile("mellon", sign_in_saml, "zoe@example.org", lambda: require_apache("mellon")),
    Profile("openidc", sign_in_openidc, "zoe", lambda: (require_apache("openidc"), require_oidc_provider())),
    Profile("oauth2-proxy", sign_in_oauth2_proxy, "alice", lambda: require_program("nginx", "nginx")),
]


@pytest.mark.parametrize("profile", PROFILES, ids=[profile.name for profile in PROFILES])
def test_stack_signs_in_through_the_real_module_passes_the_doctor_and_stops_clean(profile: Profile) -> None:
    profile.needs()
    with stack_program(profile.name) as stack:
        with stack.browser() as browser:
            profile.sign_in(stack, browser)
            me = browser.get(f"{stack.url}/api/me", headers=API, allow_redirects=False, timeout=30)
        assert me.status_code == 200, me.text[:500]
        assert me.json()["user"] == profile.user
        for label in ("doctor", "probe"):
            run = subprocess.run(
                shlex.split(stack.field(label)), cwd=REPO, capture_output=True, text=True, timeout=60
            )
            assert run.returncode == 0, f"{label}:\n{run.stdout}\n{run.stderr}"
            assert "\n0 error(s)" in f"\n{run.stdout}", run.stdout
        servers = stack.servers()
        assert all(listening(*address) for address in servers.values()), servers
        children = descendants(stack.process.pid)
        assert children
        os.killpg(stack.process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        assert stack.process.wait(timeout=30) == 0
        assert stack.process.stdout is not None
        assert "Stopped." in os.read(stack.process.stdout.fileno(), 65536).decode()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]
    assert not [address for address in servers.values() if listening(*address)]
