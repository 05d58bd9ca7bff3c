"""Fixtures shared by the test modules."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

import pytest
from support import free_port, require_program, wait_for_port

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a throwaway redis-server on 127.0.0.1, stopped when the test session ends."""
    program = require_program("redis-server", "redis-server")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    log_path = folder / "redis.log"
    command = [program, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    try:
        try:
            wait_for_port(port, process=process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')}") from exc
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
