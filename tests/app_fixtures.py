"""Helpers for the movie app's tests: people, clients and multiprocessing workers.

Plain functions, not fixtures, so importing this module registers nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webtest import TestApp

from app import make_application
from shibwsgi import SSOMiddleware
from shibwsgi.testing import environ_for

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier

    from _typeshed.wsgi import WSGIApplication

EDITOR_GROUP = "movie-editors"
SEED_TITLES = ["Hunger Games", "Lord of the Rings (The Fellowship of the Ring)", "Titanic"]


def person(name: str, mail: str, groups: Iterable[str] = ()) -> dict[str, str | list[str]]:
    """What a Shibboleth SP releases for someone: displayName, mail and isMemberOf."""
    return {"displayName": name, "mail": mail, "isMemberOf": list(groups)}


def sso_app(db_path: Path, settings: Mapping[str, str] | None = None) -> SSOMiddleware:
    """The deployed stack (``make_application``) on the database ``db_path``."""
    return make_application({"MOVIES_DB": str(db_path), **(settings or {})})


def client(app: WSGIApplication, user: str | None, attributes: Mapping[str, Any] | None = None) -> TestApp:
    """A WebTest client logged in through the Shibboleth front end as ``user`` (``None``: anonymous)."""
    extra = {} if user is None else environ_for("shibboleth", user, attributes)
    return TestApp(app, extra_environ=extra)


# Multiprocessing workers: module-level so that spawned processes can import them.


def post_movies(
    app: WSGIApplication | None,
    db_path: str,
    worker: int,
    count: int,
    barrier: Barrier,
    results: str,
) -> None:
    """POST ``count`` movies as ``worker-<n>@example.org``; write ``[[status, id], ...]`` to ``results``.

    ``app`` is the parent's app (forked workers, like uWSGI's preforking master);
    ``None`` builds one here (spawned workers, like uWSGI's ``lazy-apps``), all
    workers at the same moment.
    """
    user = f"worker-{worker}@example.org"
    barrier.wait(timeout=60)
    if app is None:
        app = sso_app(Path(db_path))
    browser = client(app, user, person(f"Worker {worker}", user, [EDITOR_GROUP]))
    outcome = []
    for number in range(count):
        response = browser.post_json(
            "/api/movies", {"title": f"Movie {worker}-{number}", "published": 2000}, expect_errors=True
        )
        movie_id = response.json.get("id") if response.content_type == "application/json" else None
        outcome.append([response.status_int, movie_id])
    Path(results).write_text(json.dumps(outcome))
