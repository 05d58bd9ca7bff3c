"""The Flask extension: ``SSO(app)`` under ``flask run``, ``test_client`` and WebTest; template helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, render_template_string
from flask.cli import ScriptInfo
from support import free_port, wait_for_port

from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.flask import SSO, current_identity, login_required, login_url, logout_url
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for
from shibwsgi.testing.client import find_middleware, sso_test_app
from tests.flask_site import create_app

ROOT = Path(__file__).resolve().parent.parent
ZOE = {"displayName": "Zoë", "isMemberOf": ["staff", "movie-editors"]}
HTML = {"Accept": "text/html"}


def test_script_info_loads_the_app_and_its_test_client_sees_the_identity() -> None:
    """What ``flask --app tests.flask_site`` loads is the app, and its test client passes the middleware."""
    app = ScriptInfo(app_import_path="tests.flask_site").load_app()
    client = app.test_client()
    signed_in = client.get("/me", environ_base=environ_for("shibboleth", "zoe@example.org", ZOE))
    assert signed_in.json == {"user": "zoe@example.org", "groups": ["staff", "movie-editors"]}
    anonymous = client.get("/me", headers=HTML)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/login?next=%2Fme"


def test_readme_flask_quick_start_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    code = readme.split("### Flask\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "readme_flask"}
    exec(code, namespace)
    client = namespace["app"].test_client()
    editor = environ_for("shibboleth", "zoe@example.org", {"isMemberOf": ["movie-editors"]})
    reader = environ_for("shibboleth", "rob@example.org", {"isMemberOf": ["staff"]})
    assert client.get("/api/movies", environ_base=reader).json["user"] == "rob@example.org"
    assert client.post("/api/movies", environ_base=editor).status_code == 201
    assert client.post("/api/movies", environ_base=reader).status_code == 403
    assert client.get("/api/movies").status_code == 401


def test_extension_is_stored_and_the_middleware_wraps_wsgi_app() -> None:
    sso = SSO()
    app = Flask(__name__)
    middleware = sso.init_app(app)
    assert app.extensions["shibwsgi"] is sso
    assert app.wsgi_app is middleware
    assert find_middleware(app) is middleware


def test_one_extension_serves_an_application_factory() -> None:
    sso = SSO(profile="mellon")
    first, second = Flask("first"), Flask("second")
    assert sso.init_app(first) is not sso.init_app(second)
    assert find_middleware(first).profile.name == find_middleware(second).profile.name == "mellon"  # type: ignore[union-attr]


def test_setting_up_twice_is_refused() -> None:
    app = Flask(__name__)
    SSO(app)
    with pytest.raises(ConfigError, match="already set up"):
        SSO(app)


SESSION = {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": "k" * 32}


@pytest.mark.parametrize(
    ("config", "options", "read", "value"),
    [
        pytest.param(
            {"SHIBWSGI_PROFILE": "mellon"}, {}, lambda m: m.profile.name, "mellon", id="text setting"
        ),
        pytest.param(
            {**SESSION, "SHIBWSGI_IDLE_TIMEOUT": "15m"},
            {},
            lambda m: m.sessions.idle_timeout,
            900,
            id="text converted like from_mapping",
        ),
        pytest.param(
            {"SHIBWSGI_PROFILE": "mellon"},
            {"profile": "openidc"},
            lambda m: m.profile.name,
            "openidc",
            id="option wins",
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": MemoryStore(), "SHIBWSGI_SECRET_KEY": ["k" * 32]},
            {},
            lambda m: type(m.sessions.store),
            MemoryStore,
            id="python values",
        ),
        pytest.param(
            {**SESSION, "SHIBWSGI_COOKIE_SECURE": False},
            {},
            lambda m: m.cookie.secure,
            False,
            id="python boolean",
        ),
    ],
)
def test_options_come_from_app_config(
    config: dict[str, Any], options: dict[str, Any], read: Callable[[Any], Any], value: Any
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    SSO(app, **options)
    middleware = find_middleware(app)
    assert isinstance(middleware, SSOMiddleware)
    assert read(middleware) == value


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"atributes": {}}, "did you mean attributes", id="typo"),
        pytest.param({"dev_mode": True}, "not an SSOMiddleware option", id="no such option"),
    ],
)
def test_unknown_option_is_a_config_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SSO(**options)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"SHIBWSGI_PROFLE": "mellon"}, "did you mean SHIBWSGI_PROFILE", id="typo in text"),
        pytest.param({"SHIBWSGI_SESION": MemoryStore()}, "did you mean SHIBWSGI_SESSION", id="typo in value"),
        pytest.param({"SHIBWSGI_IDLE_TIMEOUT": "soon"}, "not a duration", id="bad text"),
    ],
)
def test_bad_config_fails_at_start_up(config: dict[str, Any], message: str) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigError, match=message):
        SSO(app)


def test_webtest_client_of_the_flask_app_signs_in() -> None:
    client = sso_test_app(create_app(), "zoe@example.org", {"groups": ["movie-editors"]})
    assert client.get("/editors").text == "editors only"


@pytest.mark.parametrize(
    ("user", "groups", "status"),
    [
        pytest.param("zoe@example.org", ["movie-editors"], 200, id="editor"),
        pytest.param("rob@example.org", ["staff"], 403, id="signed-in reader refused, not sent to log in"),
        pytest.param(None, [], 302, id="anonymous browser sent to log in"),
    ],
)
def test_group_decorator_through_the_extension(user: str | None, groups: list[str], status: int) -> None:
    environ = {} if user is None else environ_for("shibboleth", user, {"isMemberOf": groups})
    response = create_app().test_client().get("/editors", headers=HTML, environ_base=environ)
    assert response.status_code == status


# -- templates and URL helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        pytest.param(environ_for("shibboleth", "zoe@example.org"), "hello zoe@example.org", id="signed in"),
        pytest.param({}, 'href="/login?next=%2F"', id="anonymous"),
    ],
)
def test_current_identity_and_helpers_in_templates(environ: dict[str, str], fragment: str) -> None:
    page = create_app().test_client().get("/", environ_base=environ).text
    assert fragment in page


def test_signed_in_page_links_to_logout() -> None:
    page = create_app().test_client().get("/", environ_base=environ_for("shibboleth", "zoe@example.org"))
    assert 'href="/logout?next=%2F"' in page.text


@pytest.mark.parametrize(
    ("script_name", "path", "call", "expected"),
    [
        pytest.param(
            "",
            "/movies?page=2",
            lambda: login_url(),
            "/login?next=%2Fmovies%3Fpage%3D2",
            id="next is this page",
        ),
        pytest.param(
            "/app",
            "/movies?page=2",
            lambda: login_url(),
            "/app/login?next=%2Fapp%2Fmovies%3Fpage%3D2",
            id="under a prefix",
        ),
        pytest.param(
            "", "/", lambda: login_url(next="/editors"), "/login?next=%2Feditors", id="explicit next"
        ),
        pytest.param(
            "",
            "/",
            lambda: login_url(next="https://evil.example/"),
            "/login?next=%2F",
            id="offsite next dropped",
        ),
        pytest.param(
            "",
            "/",
            lambda: login_url(next="//evil.example/"),
            "/login?next=%2F",
            id="scheme-relative dropped",
        ),
        pytest.param("/app", "/", lambda: logout_url(), "/app/logout", id="logout"),
        pytest.param("", "/", lambda: logout_url(next="/bye"), "/logout?next=%2Fbye", id="logout with next"),
    ],
)
def test_url_helpers(script_name: str, path: str, call: Any, expected: str) -> None:
    app = create_app()
    with app.test_request_context(path, base_url=f"https://localhost{script_name}"):
        assert call() == expected


def test_url_helpers_follow_the_configured_paths() -> None:
    app = create_app({"SHIBWSGI_LOGIN_PATH": "/sso/in", "SHIBWSGI_LOGOUT_PATH": "/sso/out"})
    with app.test_request_context("/"):
        assert login_url(next="/x") == "/sso/in?next=%2Fx"
        assert logout_url() == "/sso/out"


# -- where no middleware ran -------------------------------------------------------------------------


def _bare_app() -> Flask:
    """A Flask app wrapped the way that ``flask run`` bypasses: only outside, as ``application``."""
    app = Flask(__name__)
    app.testing = True  # the view's exception reaches the test (a server logs it and answers 500)

    @app.get("/movies")
    @login_required
    def movies() -> str:
        return "movies"

    @app.get("/who")
    def who() -> str:
        return render_template_string("{% if who %}someone{% endif %}", who=current_identity)

    @app.get("/login-link")
    def link() -> str:
        return login_url()

    return app


@pytest.mark.parametrize("path", ["/movies", "/who", "/login-link"])
def test_missing_middleware_is_an_error_not_a_silent_401(path: str) -> None:
    app = _bare_app()
    application = SSOMiddleware(app)  # what flask run and test_client never pass through
    assert application is not None
    with pytest.raises(RuntimeError, match="no shibwsgi SSOMiddleware ran for this request"):
        app.test_client().get(path, environ_base=environ_for("shibboleth", "zoe@example.org"))


def test_current_identity_outside_the_middleware_names_the_fix() -> None:
    with (
        _bare_app().test_request_context("/"),
        pytest.raises(RuntimeError, match=r"shibwsgi\.flask\.SSO\(app\)"),
    ):
        bool(current_identity)


# -- a real `flask run` ----------------------------------------------------------------------------


@pytest.fixture
def flask_run() -> Iterator[str]:
    """``flask --app tests.flask_site run`` on a loopback port, behind the development front end."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEV_FRONT_END": "1", "SHIBWSGI_WHOAMI_PATH": "/whoami"}
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "tests.flask_site",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.servers
def test_flask_run_passes_every_request_through_the_middleware(flask_run: str) -> None:
    browser = requests.Session()
    anonymous = browser.get(f"{flask_run}/editors", headers=HTML, allow_redirects=False, timeout=10)
    assert (anonymous.status_code, anonymous.headers["Location"]) == (302, "/login?next=%2Feditors")
    signed = browser.post(
        f"{flask_run}/Shibboleth.sso/Login",
        data={"user": "ada", "target": "/"},
        allow_redirects=False,
        timeout=10,
    )
    assert signed.status_code == 302
    assert "hello ada@example.org" in browser.get(f"{flask_run}/", timeout=10).text
    assert browser.get(f"{flask_run}/editors", timeout=10).text == "editors only"
    assert (
        browser.get(f"{flask_run}/whoami", headers={"Accept": "application/json"}, timeout=10).json()["user"]
        == "ada@example.org"
    )
