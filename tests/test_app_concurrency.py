"""Several worker processes writing one SQLite file at once, as uWSGI workers do."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Literal

import pytest
from app_fixtures import SEED_TITLES, post_movies, sso_app

from shibwsgi import SSOMiddleware

WORKERS = 4
POSTS = 50


Outcome = list[list[tuple[int, int]]]


def _run_workers(
    method: Literal["fork", "spawn"], app: SSOMiddleware | None, db_path: Path, tmp_path: Path
) -> Outcome:
    """Start :data:`WORKERS` processes posting :data:`POSTS` movies each, all at once."""
    context = (
        multiprocessing.get_context("fork") if method == "fork" else multiprocessing.get_context("spawn")
    )
    barrier = context.Barrier(WORKERS)
    results = [tmp_path / f"worker-{worker}.json" for worker in range(WORKERS)]
    processes = [
        context.Process(
            target=post_movies,
            args=(app, str(db_path), worker, POSTS, barrier, str(results[worker])),
            daemon=True,
        )
        for worker in range(WORKERS)
    ]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0] * WORKERS
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
            process.close()
    return [[(status, movie_id) for status, movie_id in json.loads(path.read_text())] for path in results]


def _rows(db_path: Path) -> list[tuple[int, str, str | None]]:
    with closing(sqlite3.connect(db_path)) as db:
        return list(db.execute("SELECT id, title, created_by FROM movies ORDER BY id"))


def _check(outcomes: Outcome, db_path: Path) -> None:
    statuses = [status for outcome in outcomes for status, _ in outcome]
    ids = [movie_id for outcome in outcomes for _, movie_id in outcome]
    assert statuses == [201] * (WORKERS * POSTS)
    assert len(set(ids)) == WORKERS * POSTS
    assert min(ids) > len(SEED_TITLES)

    rows = {movie_id: (title, created_by) for movie_id, title, created_by in _rows(db_path)}
    assert [rows[movie_id][0] for movie_id in range(1, len(SEED_TITLES) + 1)] == SEED_TITLES
    assert len(rows) == len(SEED_TITLES) + WORKERS * POSTS
    for worker, outcome in enumerate(outcomes):
        for number, (_, movie_id) in enumerate(outcome):
            assert rows[movie_id] == (f"Movie {worker}-{number}", f"worker-{worker}@example.org")


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork()")
def test_forked_workers_post_at_once(tmp_path: Path) -> None:
    """uWSGI's default: the master loads the app (and creates the database), then forks."""
    db_path = tmp_path / "movies.sqlite3"
    app = sso_app(db_path)
    _check(_run_workers("fork", app, db_path, tmp_path), db_path)


def test_workers_starting_at_once_seed_once_and_post(tmp_path: Path) -> None:
    """uWSGI ``lazy-apps``: every worker loads the app itself, all at the same moment."""
    db_path = tmp_path / "movies.sqlite3"
    _check(_run_workers("spawn", None, db_path, tmp_path), db_path)
