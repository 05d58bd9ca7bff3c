"""Parallel first logins against the Django adapter, in a process of its own (its own Django settings).

Run by tests/test_attack_django.py; prints a JSON report. SQLite in immediate-transaction
mode, as the README recommends: every failure left is the adapter's.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import django
from django.conf import settings

THREADS = 8
ROUNDS = 6


def main() -> None:
    import django_site

    logging.disable(logging.CRITICAL)
    database = Path(tempfile.mkdtemp()) / "db.sqlite3"
    settings.configure(
        SECRET_KEY="tests-only-" + "x" * 40,
        ALLOWED_HOSTS=["localhost"],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(database),
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
            }
        },
        MIDDLEWARE=django_site.MIDDLEWARE,
        AUTHENTICATION_BACKENDS=["shibwsgi.django.IdentityBackend"],
        ROOT_URLCONF="attack_django_views",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SHIBWSGI_GROUPS_ATTRIBUTE="groups",
        SHIBWSGI_GROUPS_PREFIX="app-",
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from webtest import TestApp

    from shibwsgi import Attribute, SSOMiddleware
    from shibwsgi.testing import environ_for

    call_command("migrate", verbosity=0)
    app = SSOMiddleware(WSGIHandler(), attributes={"groups": Attribute("isMemberOf", multi=True)})
    statuses: Counter[int] = Counter()
    seen: list[tuple[str, str]] = []
    barrier = threading.Barrier(THREADS)

    def browse(worker: int) -> None:
        user = "same@example.org" if worker % 2 else f"user-{worker}@example.org"
        barrier.wait()
        for round_ in range(ROUNDS):
            browser = TestApp(app)  # no session cookie yet: every request logs in
            environ = environ_for("shibboleth", user, {"isMemberOf": [f"app-{round_}", "app-all"]})
            response = browser.get("/", extra_environ=environ, expect_errors=True)
            statuses[response.status_int] += 1
            if response.status_int == 200:
                seen.append((user, response.json["username"]))

    threads = [threading.Thread(target=browse, args=(worker,)) for worker in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = {
        "statuses": dict(statuses),
        "wrong_users": [pair for pair in seen if pair[0] != pair[1]],
        "accounts_of_same": User.objects.filter(username="same@example.org").count(),
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
