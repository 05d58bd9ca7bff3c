"""Faults of the machine under the app: the SQLite session store's file system, and shibd.

- The SQLite session store on a tiny tmpfs (mounted by the test; root only), remounted
  read-only, then filled up: a login that needs a new session gets 503 with a clear body,
  and the app's log names the store's path. Apache + mod_auth_openidc (lazy) from the
  shipped openidc.conf, uWSGI from the shipped uwsgi.ini, real logins.
- shibd stopped: mod_shib answers 500 itself to every request, before the app runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
from typing import TYPE_CHECKING

import pytest
import requests
from stack import (
    TLS,
    apache_variables,
    require_apache,
    running_apache,
    running_uwsgi,
    self_signed_certificate,
    shared_directory,
    wait_for_log,
    watching,
)
from support import free_port, require_program, unavailable

from .oidc_provider import running_provider
from .saml_idp import SamlIdP
from .shibboleth_sp import running_shibd, write_service_provider
from .test_oidc import ECHO_APP, RITA, ZOE, Site, movie_site

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.servers

TMPFS_SIZE = "256k"
STORE_DOWN = "the session store is unavailable"


@contextlib.contextmanager
def tiny_tmpfs(folder: Path) -> Iterator[Path]:
    """A tmpfs of TMPFS_SIZE mounted on ``folder`` (needs root); unmounted at exit."""
    mount = require_program("mount", "mount")
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mounted = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs (a container without CAP_SYS_ADMIN?): {mounted.stderr}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Write until the file system is full."""
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[tuple[Site, Path]]:
    """A lazy site whose SQLite session store lives on a tiny tmpfs; nobody logged in yet."""
    (tmp_path / "sessions").mkdir()
    with (
        self_signed_certificate() as tls,
        running_provider(tmp_path, [ZOE, RITA]) as provider,
        tiny_tmpfs(tmp_path / "sessions") as sessions,
        movie_site(
            tmp_path,
            tls,
            provider,
            "-DPROTECTION_LAZY",
            UWSGI_PROCESSES="2",
            SHIBWSGI_SESSION=f"sqlite://{sessions / 'sessions.sqlite3'}",
            SHIBWSGI_SECRET_KEY=secrets.token_urlsafe(32),
        ) as site,
    ):
        yield site, sessions / "sessions.sqlite3"


def log_in(site: Site, sub: str) -> requests.Response:
    with site.browser() as browser:
        return site.log_in(browser, "/login?next=/api/me", sub)


def assert_store_refused(site: Site, path: Path, refused: list[requests.Response]) -> None:
    assert [answer.status_code for answer in refused] == [503] * len(refused), [a.text[:300] for a in refused]
    assert all(STORE_DOWN in answer.text for answer in refused)
    assert str(path) not in refused[0].text  # the path is for the operator's log, not the user
    wait_for_log(
        site.uwsgi.log, rf"SQLite session store {re.escape(repr(str(path)))} could not", count=len(refused)
    )


def test_sqlite_session_store_on_a_read_only_file_system_gives_503_naming_the_path(
    sqlite_site: tuple[Site, Path],
) -> None:
    site, path = sqlite_site
    # Before any login no connection is open (each request thread opens its own), so the
    # file system can go read-only under the running app.
    remount(path.parent, "ro")
    try:
        refused = [log_in(site, "zoe") for _ in range(3)]
    finally:
        remount(path.parent, "rw")
    assert_store_refused(site, path, refused)
    assert log_in(site, "zoe").json()["user"] == "zoe"  # writable again: no restart needed


def test_sqlite_session_store_on_a_full_file_system_gives_503_naming_the_path(
    sqlite_site: tuple[Site, Path],
) -> None:
    site, path = sqlite_site
    assert log_in(site, "rita").json()["user"] == "rita"  # the store works, connections open
    fill(path.parent)
    try:
        refused = [log_in(site, "zoe") for _ in range(3)]  # each login writes a new session
    finally:
        (path.parent / "filler").unlink()
    assert_store_refused(site, path, refused)
    assert log_in(site, "zoe").json()["user"] == "zoe"


# --- shibd stopped ------------------------------------------------------------------------------


def test_shibd_stopped_mod_shib_answers_500_itself_and_recovers_when_it_is_back(tmp_path: Path) -> None:
    """Whole-site apache/shibboleth.conf: with shibd down every request gets Apache's 500."""
    require_apache("shibboleth")
    with shared_directory("shibwsgi-shibd-") as folder, shared_directory("shibwsgi-shibd-apache-") as root:
        port = free_port()
        idp = SamlIdP(folder, free_port())  # never contacted: only its metadata is needed
        sp = write_service_provider(folder, [port], idp_entity_id=idp.entity_id, idp_metadata=idp.metadata)
        with running_uwsgi(tmp_path, ECHO_APP, UWSGI_PROCESSES="1") as app, self_signed_certificate() as tls:
            variables = apache_variables("shibboleth", root, tls, app.socket)
            variables.update(HTTPS_PORT=str(port), SHIB_CONFIG=str(sp.config))
            with watching(app.log, sp.log), running_apache("shibboleth", root, variables):
                url = f"https://127.0.0.1:{port}/api/me"
                with running_shibd(sp):
                    assert idp_redirect(url, tls) == 302  # shibd up: off to the IdP
                stopped = idp_redirect(url, tls)
                with running_shibd(sp):
                    assert idp_redirect(url, tls) == 302  # back without restarting Apache
        assert "GET /api/me" not in app.log.read_text(errors="replace")  # the app never saw them
        # mod_shib retries the socket for some 6 s per request, then gives up; both logs say so.
        for log in (root / "error.log", sp.native_log):
            assert "Cannot connect to shibd process" in log.read_text(errors="replace"), log
        assert stopped == 500


def idp_redirect(url: str, tls: TLS) -> int:
    with requests.Session() as client:
        client.trust_env = False
        client.verify = str(tls.cert)
        return client.get(url, allow_redirects=False, timeout=30).status_code
