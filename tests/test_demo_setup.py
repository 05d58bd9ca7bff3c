"""The demo as the README tells a newcomer to run it: any profile, and `make demo` stops with make."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support import IN_CI, free_port, require_pip_program, require_program, wait_for_port
from webtest import TestApp

from app.demo import demo_application
from shibwsgi import ConfigError
from shibwsgi.profiles import PROFILES, SIGNED_PROFILES
from shibwsgi.testing import environ_for
from shibwsgi.testing.frontend import JWKS_PATH, KEYS_PATH
from shibwsgi.testing.signed import TestSigner

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


def signed_in(environ: dict[str, str], user: str = "ada") -> TestApp:
    front = demo_application(environ)
    client = TestApp(front, extra_environ=LOOPBACK)
    client.post(front.login_path, {"user": user, "target": "/"}, status=302)
    return client


@pytest.mark.parametrize("profile", ["shibboleth", "openidc", "mellon", "adfs", "oauth2-proxy"])
def test_demo_tip_set_only_the_profile(profile: str, tmp_path: Path) -> None:
    client = signed_in({"SHIBWSGI_PROFILE": profile, "MOVIES_DB": str(tmp_path / "m.sqlite3")})
    me = client.get("/api/me").json
    assert me["user"] == "ada@example.org"
    assert me["profile"] == profile
    assert "movie-editors" in me["attributes"].get("groups", [])


def test_header_demo_trusts_loopback_only(tmp_path: Path) -> None:
    front = demo_application({"SHIBWSGI_PROFILE": "oauth2-proxy", "MOVIES_DB": str(tmp_path / "m.sqlite3")})
    middleware: Any = front.app
    assert middleware.channel == "headers"
    # A client that reached the app without the front end is never believed.
    forged = {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_USER": "mallory"}
    response = TestApp(middleware).get("/api/me", extra_environ=forged, status=401)
    assert response.json["status"] == 401


def test_demo_keeps_an_explicit_channel_choice(tmp_path: Path) -> None:
    settings = {
        "SHIBWSGI_PROFILE": "oauth2-proxy",
        "SHIBWSGI_CHANNEL": "headers",
        "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1",
        "MOVIES_DB": str(tmp_path / "m.sqlite3"),
    }
    assert signed_in(settings).get("/api/me").json["profile"] == "oauth2-proxy"
    with pytest.raises(ConfigError):
        demo_application({**settings, "SHIBWSGI_TRUSTED_PROXIES": "not-an-address"})


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until a worker answers: a signal while workers still load the app is another story."""
    wait_for_port(port, process=process, timeout=60)
    deadline = time.monotonic() + 60
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if session.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the demo never answered 200")


@pytest.mark.servers
@pytest.mark.parametrize(
    "how",
    [
        pytest.param(signal.SIGTERM, id="kill make (SIGTERM)"),
        pytest.param(signal.SIGKILL, id="kill -9 make"),
    ],
)
def test_killing_a_background_make_demo_stops_uwsgi(tmp_path: Path, how: signal.Signals) -> None:
    make = require_program("make", "make")
    uwsgi = ROOT / ".venv" / "bin" / "uwsgi"
    if not os.access(uwsgi, os.X_OK):
        reason = f"{uwsgi} missing: run make demo (or make test) first"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIBWSGI_", "DEVFRONTEND_", "MOVIES_"))}
    env.update(DEMO_PORT=str(port), MOVIES_DB=str(tmp_path / "movies.sqlite3"))
    log_path = tmp_path / "make.log"
    with log_path.open("wb") as log:
        # -o: never reinstall the venv from a test; its own session, to clean up whatever is left.
        process = subprocess.Popen(
            [make, "-C", str(ROOT), "-o", ".venv/bin/.demo-installed", "demo"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until_serving(port, process)
        process.send_signal(how)  # to make alone, not to its process group
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while listening(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not listening(port), log_path.read_text(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_signs_in_through_the_demo(profile: str, tmp_path: Path) -> None:
    """`SHIBWSGI_PROFILE=<any profile> make demo`: the signed ones sign with a development key."""
    client = signed_in({"SHIBWSGI_PROFILE": profile, "MOVIES_DB": str(tmp_path / "m.sqlite3")})
    me = client.get("/api/me").json
    assert (me["user"], me["profile"]) == ("ada@example.org", profile)
    if profile != "remote-user":  # REMOTE_USER alone carries no groups
        assert "movie-editors" in me["attributes"]["groups"]
        assert me["attributes"]["name"] == ["Ada Editor"]


@pytest.mark.parametrize("profile", [p.name for p in SIGNED_PROFILES])
def test_signed_demo_ignores_a_token_signed_elsewhere(profile: str, tmp_path: Path) -> None:
    front = demo_application({"SHIBWSGI_PROFILE": profile, "MOVIES_DB": str(tmp_path / "m.sqlite3")})
    assert front.signer is not None
    intruder = TestSigner(front.signer.algorithm, issuer=front.signer.issuer)
    forged = environ_for(front.profile, "mallory@example.org", signer=intruder)
    # The front end replaces what the client sent; straight to the app, the signature fails.
    assert TestApp(front, extra_environ=LOOPBACK).get("/api/me", extra_environ=forged, status=401)
    assert TestApp(front.app).get("/api/me", extra_environ=forged, status=401)


def test_signed_demo_workers_share_one_key(tmp_path: Path) -> None:
    settings = {
        "SHIBWSGI_PROFILE": "pomerium",
        "MOVIES_DB": str(tmp_path / "m.sqlite3"),
        "DEVFRONTEND_KEY_DIR": str(tmp_path),
    }
    first, second = demo_application(settings), demo_application(settings)
    assert first.signer is not None and second.signer is not None
    assert first.signer.kid == second.signer.kid
    assert (tmp_path / "devfrontend-ES256.json").stat().st_mode & 0o777 == 0o600
    # A token from one worker's front end is good at the other worker's app.
    token = environ_for(first.profile, "ada@example.org", signer=first.signer)
    assert TestApp(second.app).get("/api/me", extra_environ=token).json["user"] == "ada@example.org"


def test_signed_demo_serves_its_public_keys(tmp_path: Path) -> None:
    front = demo_application({"SHIBWSGI_PROFILE": "aws-alb", "MOVIES_DB": str(tmp_path / "m.sqlite3")})
    assert front.signer is not None
    client = TestApp(front, extra_environ=LOOPBACK)
    assert client.get(JWKS_PATH).json == front.signer.jwks
    assert client.get(KEYS_PATH + front.signer.kid).body == front.signer.public_pem
    client.get(KEYS_PATH + "unknown", status=404)


@pytest.mark.servers
def test_signed_demo_under_uwsgi_signs_in_on_every_worker(tmp_path: Path) -> None:
    """`SHIBWSGI_PROFILE=pomerium make demo`: two workers, one development key."""
    uwsgi = require_pip_program("uwsgi")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIBWSGI_", "DEVFRONTEND_", "MOVIES_"))}
    env.update(
        DEMO_PORT=str(port),
        MOVIES_DB=str(tmp_path / "movies.sqlite3"),
        DEVFRONTEND_KEY_DIR=str(tmp_path),
        SHIBWSGI_PROFILE="pomerium",
        PYTHONPATH=str(ROOT),
    )
    log_path = tmp_path / "uwsgi.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [uwsgi, "--ini", str(ROOT / "app" / "demo-uwsgi.ini")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until_serving(port, process)
        session = requests.Session()
        session.trust_env = False
        base = f"http://127.0.0.1:{port}"
        session.post(f"{base}/devfrontend/login", data={"user": "ada", "target": "/"}, timeout=10)
        users = {session.get(f"{base}/api/me", timeout=10).json().get("user") for _ in range(12)}
        assert users == {"ada@example.org"}, log_path.read_text(errors="replace")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def test_make_demo_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    """Not the test extra (ruff, mypy, Playwright, Django, ...): Flask, PyJWT and uWSGI."""
    make = require_program("make", "make")
    plan = subprocess.run(
        [make, "-n", "-C", str(ROOT), "demo", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert len(installs) == 1, plan
    assert "-e '.[flask,jwt]' 'uwsgi" in installs[0]
    assert "[test]" not in plan
