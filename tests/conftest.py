"""Fixtures shared by the test modules."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ha_redis import running_redis_cluster, running_sentinel_group
from stack import KEY_PASSWORD, Certificates, make_certificates, running_redis
from support import require_program

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a throwaway redis-server on 127.0.0.1, stopped when the test session ends."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a master, a replica and three sentinels on 127.0.0.1, for the test session."""
    with running_sentinel_group(tmp_path_factory.mktemp("sentinel")) as group:
        yield group.url


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a three-master Redis Cluster (a replica each) on 127.0.0.1, for the test session."""
    with running_redis_cluster(tmp_path_factory.mktemp("cluster")) as servers:
        yield servers.url


@pytest.fixture(scope="module")
def django_database(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The test Django project (tests/django_site.py) on a fresh, migrated SQLite database."""
    import django_site
    from django.core.management import call_command

    django_site.configure(tmp_path_factory.mktemp("django") / "db.sqlite3")
    call_command("migrate", verbosity=0)


@pytest.fixture
def empty_django_tables() -> Iterator[None]:
    """Users, groups and sessions removed after the test."""
    yield
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.models import Session

    User.objects.all().delete()
    Group.objects.all().delete()
    Session.objects.all().delete()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA with a server certificate (127.0.0.1) and a client certificate."""
    return make_certificates(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Another CA, which signed none of the servers' certificates."""
    return make_certificates(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module")
def encrypted_client_key(certificates: Certificates) -> Path:
    """The client's key, encrypted with the password ``KEY_PASSWORD``."""
    encrypted = certificates.client_key.with_name("client-encrypted.key")
    openssl = require_program("openssl", "openssl")
    subprocess.run(
        [
            *(openssl, "pkey", "-in", str(certificates.client_key), "-out", str(encrypted)),
            *("-aes256", "-passout", f"pass:{KEY_PASSWORD}"),
        ],
        check=True,
        capture_output=True,
    )
    return encrypted


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach the tails of the running servers' logs to a failing test's report."""
    report = yield
    if report.failed:
        from stack import WATCHED_LOGS

        for log in WATCHED_LOGS:
            if log.exists():
                report.sections.append((f"server log {log}", log.read_text(errors="replace")[-4000:]))
    return report
