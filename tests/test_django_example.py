"""examples/django run as its README says: migrate, then served in-process and under uWSGI behind Apache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from stack import running_uwsgi, serving, shared_directory, watching
from support import free_port, require_program, wait_for_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django"


def run(*command: str, database: Path) -> str:
    """A command in the example's folder, with its database at ``database``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SHIBWSGI_", "DJANGO_"))}
    env["EXAMPLE_DB"] = str(database)
    done = subprocess.run(command, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# What the README's "try it" shows, in a child process so that it gets its own Django settings.
IN_PROCESS = """
import json
from webtest import TestApp
from mysite.wsgi import application
from shibwsgi.testing import environ_for

ada = environ_for("shibboleth", "ada@example.org",
                  {"mail": "ada@example.org", "givenName": "Ada", "isMemberOf": ["movie-editors", "staff"]})
rob = environ_for("shibboleth", "rob@example.org", {"isMemberOf": ["movie-readers"]})
client = TestApp(application)
print(json.dumps([
    client.get("/", extra_environ=ada).json,
    client.get("/editors", extra_environ=ada).json,
    client.get("/", status=302).location,
    client.get("/editors", status=302).location,
    client.get("/editors", extra_environ=rob, status="*").status_int,
]))
"""


def test_django_example_migrates_and_serves(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    run(sys.executable, "manage.py", "migrate", database=database)
    home, editors, anonymous, anonymous_editors, reader_editors = json.loads(
        run(sys.executable, "-c", IN_PROCESS, database=database)
    )
    assert home == {
        "username": "ada@example.org",
        "email": "ada@example.org",
        "first_name": "Ada",
        "groups": ["movie-editors"],
    }
    assert editors == {"editor": "ada@example.org"}
    assert anonymous.endswith("/login?next=/")
    assert anonymous_editors.endswith("/login?next=/editors")
    assert reader_editors == 403  # a signed-in reader: refused, not sent to log in (and back) again


def test_django_example_serve_py_signs_in_sample_users(tmp_path: Path) -> None:
    """The README's laptop commands: migrate, then serve.py behind the development front end."""
    database = tmp_path / "db.sqlite3"
    run(sys.executable, "manage.py", "migrate", database=database)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SHIBWSGI_", "DJANGO_"))}
    env.update(EXAMPLE_DB=str(database), PORT=str(port))
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "serve.py"], cwd=EXAMPLE, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, process=process)
        url = f"http://127.0.0.1:{port}"
        with requests.Session() as browser:
            browser.trust_env = False
            assert (
                "/Shibboleth.sso/Login"
                in browser.get(url + "/", timeout=10, allow_redirects=False).headers["Location"]
            )
            for user, editor in (("ada", True), ("rob", False)):
                signed_in = browser.post(
                    url + "/Shibboleth.sso/Login",
                    data={"user": user, "target": "/"},
                    headers={"Origin": url},
                    timeout=10,
                )
                assert signed_in.json()["username"] == f"{user}@example.org", log.read_text()
                editors = browser.get(url + "/editors", timeout=10, allow_redirects=False)
                assert editors.status_code == (200 if editor else 403)
    finally:
        process.terminate()
        process.wait(timeout=10)


# A stand-in for mod_shib: the variables come from test-only request headers, set with SetEnvIf.
APACHE_CONF = """\
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule setenvif_module /usr/lib/apache2/modules/mod_setenvif.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_uwsgi_module /usr/lib/apache2/modules/mod_proxy_uwsgi.so
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
DefaultRuntimeDir .
PidFile httpd.pid
ErrorLog error.log
<IfDefine RUN_AS_ROOT>
    User www-data
    Group www-data
</IfDefine>
SetEnvIf X-Test-User "^(.+)$" eppn=$1 mail=$1
SetEnvIf X-Test-Groups "^(.+)$" isMemberOf=$1
ProxyPass / uwsgi://{uwsgi}/
"""

STUB = f"""\
import sys
sys.path.insert(0, {str(EXAMPLE)!r})
from mysite.wsgi import application
"""


@pytest.mark.servers
def test_django_example_under_uwsgi_behind_apache(tmp_path: Path) -> None:
    apache2 = require_program("apache2", "apache2")
    database = tmp_path / "db.sqlite3"
    run(sys.executable, "manage.py", "migrate", database=database)
    port = free_port()
    with (
        running_uwsgi(tmp_path, STUB, EXAMPLE_DB=str(database), UWSGI_PROCESSES="2") as uwsgi,
        watching(uwsgi.log),
        shared_directory("django-apache-") as root,
    ):
        (root / "httpd.conf").write_text(APACHE_CONF.format(port=port, uwsgi=uwsgi.socket))
        command = [apache2, "-d", str(root), "-f", str(root / "httpd.conf"), "-DFOREGROUND"]
        if os.geteuid() == 0:
            command.append("-DRUN_AS_ROOT")
        with serving(command, root, port), requests.Session() as browser:
            browser.trust_env = False
            url = f"http://127.0.0.1:{port}"
            ada = {"X-Test-User": "ada@example.org", "X-Test-Groups": "movie-editors;staff"}
            first = browser.get(url + "/", headers=ada, timeout=10)
            assert first.json()["groups"] == ["movie-editors"]
            assert browser.get(url + "/editors", headers=ada, timeout=10).status_code == 200
            bob = browser.get(url + "/", headers={"X-Test-User": "bob@example.org"}, timeout=10)
            assert bob.json() == {
                "username": "bob@example.org",
                "email": "bob@example.org",
                "first_name": "",
                "groups": [],
            }
            assert (
                browser.get(
                    url + "/editors",
                    headers={"X-Test-User": "bob@example.org"},
                    timeout=10,
                    allow_redirects=False,
                ).status_code
                == 403
            )
            gone = browser.get(url + "/", timeout=10, allow_redirects=False)
            assert gone.status_code == 302 and gone.headers["Location"].endswith("/login?next=/")
