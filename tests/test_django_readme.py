"""The README's Django quick start, run as written: a project in tmp_path, signed in through the test Client.

A subprocess, as Django is configured once per process (tests/django_site.py holds another project).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("django")

ROOT = Path(__file__).resolve().parent.parent

BASE_SETTINGS = """\
SECRET_KEY = "readme-test-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATABASE}}
ROOT_URLCONF = "urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

URLS = """\
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda request: HttpResponse(request.user.get_username()))]
"""

SCRIPT = """\
import django
from django.core.management import call_command
from django.test import Client, override_settings

from shibwsgi.testing.django import force_identity

django.setup()
call_command("migrate", verbosity=0)
call_command("check", fail_level="WARNING")  # the README's settings pass shibwsgi's checks

namespace = {}
exec(open("readme_tests.py").read(), namespace)
namespace["test_editor_is_signed_in"](Client())
assert Client().get("/").content == b"", "anonymous"
assert Client().get("/", HTTP_EPPN="admin@example.org").content == b"", "forged header"

from django.contrib.auth.models import User

staff = {"mail": "sam@example.org", "isMemberOf": ["movie-staff"]}
with override_settings(AUTHENTICATION_BACKENDS=["backends.StaffFromGroupBackend"]):
    client = Client()
    force_identity(client, "sam@example.org", staff)
    assert client.get("/").content == b"sam@example.org"
    assert User.objects.get(username="sam@example.org").is_staff
    force_identity(client, "sam@example.org", {**staff, "isMemberOf": []})
    client.get("/")
    assert not User.objects.get(username="sam@example.org").is_staff
print("ok")
"""


def django_blocks() -> dict[str, str]:
    """The README's Django section's Python blocks, by their first line's file name (``# settings.py``)."""
    section = (ROOT / "README.md").read_text().split("### Django\n", 1)[1].split("\n### ", 1)[0]
    blocks = {}
    for chunk in section.split("```python\n")[1:]:
        code = textwrap.dedent(chunk.split("```", 1)[0])
        name = code.split("\n", 1)[0].removeprefix("# ").split(" ", 1)[0]
        blocks[name] = code
    return blocks


def test_readme_django_quick_start_signs_in_through_the_test_client(tmp_path: Path) -> None:
    blocks = django_blocks()
    assert {"settings.py", "tests.py", "backends.py", "wsgi.py"} <= blocks.keys()
    database = tmp_path / "db.sqlite3"
    settings = f"DATABASE = {str(database)!r}\n{BASE_SETTINGS}\n{blocks['settings.py']}"
    (tmp_path / "project_settings.py").write_text(settings)
    (tmp_path / "urls.py").write_text(URLS)
    (tmp_path / "backends.py").write_text(blocks["backends.py"])
    (tmp_path / "readme_tests.py").write_text(blocks["tests.py"])
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "project_settings",
    }
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"
