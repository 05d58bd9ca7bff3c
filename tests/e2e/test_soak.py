"""A 30 s version of ``make soak`` (bench/soak.py): the full two-node stack under mixed load."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench.soak import RSS_GROWTH_LIMIT_KB, soak

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.servers


def test_thirty_second_soak_has_no_errors_and_bounded_worker_memory(tmp_path: Path) -> None:
    report = soak(30, clients=6, folder=tmp_path)
    print(f"\n{report.text()}")
    assert report.errors == []
    assert report.requests > 300
    assert report.logins > 6  # users switched: every client logged in more than once
    assert len(report.workers) == 4
    assert report.respawned == []
    assert [w.pid for w in report.workers if w.growth_kb > RSS_GROWTH_LIMIT_KB] == []
