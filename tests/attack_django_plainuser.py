"""The Django adapter over a user model without groups, in a process of its own (its own AUTH_USER_MODEL).

Run by tests/test_attack_django.py with the groups setting given or not as argv[1];
prints what happened: "started", then the login's status, or the start-up error.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import django
from django.conf import settings


def main(groups_attribute: str | None) -> None:
    settings.configure(
        SECRET_KEY="tests-only-" + "x" * 40,
        ALLOWED_HOSTS=["localhost"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "attack_plainusers",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(Path(tempfile.mkdtemp()) / "db")}
        },
        AUTH_USER_MODEL="attack_plainusers.PlainUser",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "shibwsgi.django.IdentityMiddleware",
        ],
        AUTHENTICATION_BACKENDS=["shibwsgi.django.IdentityBackend"],
        ROOT_URLCONF="attack_django_views",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SHIBWSGI_GROUPS_ATTRIBUTE=groups_attribute,
        SHIBWSGI_USER_FIELDS={"email": "email"},
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from webtest import TestApp

    from shibwsgi import Attribute, ConfigError, SSOMiddleware
    from shibwsgi.testing import environ_for

    call_command("migrate", verbosity=0, run_syncdb=True)
    attributes = {"groups": Attribute("isMemberOf", multi=True), "email": "mail"}
    try:
        client = TestApp(SSOMiddleware(WSGIHandler(), attributes=attributes))  # builds Django's middleware
    except ConfigError as exc:
        print(f"ConfigError: {exc}")
        return
    environ = environ_for("shibboleth", "zoe@example.org", {"isMemberOf": ["a"], "mail": "zoe@example.org"})
    response = client.get("/remember", extra_environ=environ, expect_errors=True)
    print(f"status {response.status_int} {response.json if response.status_int == 200 else ''}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
