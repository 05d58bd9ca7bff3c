"""Attacks on the first-hour surfaces: the Flask extension, its helpers and the pages the middleware serves."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, render_template_string

from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.authz import HasAttribute
from shibwsgi.flask import SSO, current_identity, login_required, login_url, logout_url, requires
from shibwsgi.redirects import safe_next
from shibwsgi.testing import environ_for

HTML = {"Accept": "text/html"}
ZOE = {"displayName": "Zoë", "isMemberOf": ["staff"]}
SECRET = "hunter2-not-for-the-log-0123456789"


def bare_app(**options: Any) -> Flask:
    """A Flask app with the extension and a few views using the helpers."""
    app = Flask(__name__)
    app.config["SHIBWSGI_ATTRIBUTES"] = "name=displayName groups=isMemberOf:multi"
    SSO(app, **options)
    _views(app)
    return app


def _views(app: Flask) -> None:
    @app.get("/")
    def home() -> str:
        return render_template_string("{% if current_identity %}in{% else %}out{% endif %}")

    @app.get("/me")
    @login_required
    def me() -> str:
        return str(current_identity.user)

    @app.get("/editors")
    @requires(HasAttribute("groups", "movie-editors"))
    def editors() -> str:
        return "editors"

    @app.get("/links")
    def links() -> dict[str, str]:
        from flask import request

        target = request.args.get("next")
        return {"login": login_url(next=target), "logout": logout_url(next=target)}


def unwrapped_app() -> Flask:
    """The extension set up, then its middleware lost (``app.wsgi_app`` replaced): a wrong wiring."""
    app = bare_app()
    app.wsgi_app = app.wsgi_app.app  # type: ignore[attr-defined,method-assign]
    app.testing = True
    return app


def next_of(url: str) -> str:
    """The ``next`` a login/logout URL carries, decoded once as the endpoint reads it."""
    return parse_qs(urlsplit(url).query)["next"][0]


# --- configuration from app.config -----------------------------------------------------------


def test_keyword_option_wins_over_config_text() -> None:
    app = Flask(__name__)
    app.config["SHIBWSGI_ATTRIBUTES"] = "name=displayName"
    SSO(app, attributes={"groups": "isMemberOf"})
    middleware: SSOMiddleware = app.wsgi_app  # type: ignore[assignment]
    assert set(middleware.parser.attributes) == {"groups"}


def test_python_value_in_config_is_taken_as_the_option() -> None:
    app = Flask(__name__)
    app.config.update(SHIBWSGI_LOGIN_PATH=None, SHIBWSGI_WHOAMI_PATH="/whoami")
    middleware = SSO().init_app(app)
    assert (middleware.login_path, "/whoami" in middleware.endpoints) == (None, True)


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        pytest.param({"SHIBWSGI_ATRIBUTES": "x=y"}, "SHIBWSGI_ATRIBUTES", id="text typo"),
        pytest.param({"SHIBWSGI_SESION": object()}, "SHIBWSGI_SESION", id="python value typo"),
        pytest.param({"SHIBWSGI_COOKIE_SECURE": "maybe"}, "SHIBWSGI_COOKIE_SECURE", id="bad boolean text"),
        pytest.param({"SHIBWSGI_USER": 5}, "user", id="number where a name is expected"),
        pytest.param({"SHIBWSGI_ATTRIBUTES": ["email=mail"]}, "attributes", id="list where a mapping is"),
        pytest.param({"SHIBWSGI_PROFILE": b"shibboleth"}, "profile", id="bytes profile"),
        pytest.param({"SHIBWSGI_WHOAMI_PATH": b"/whoami"}, "whoami_path", id="bytes path"),
        pytest.param({"SHIBWSGI_LOGIN_PATH": "//evil.example/login"}, "login_path", id="off-site login path"),
        pytest.param(
            {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": "k" * 32, "SHIBWSGI_IDLE_TIMEOUT": True},
            "idle_timeout",
            id="boolean as a duration",
        ),
        pytest.param(
            {
                "SHIBWSGI_SESSION": "memory:",
                "SHIBWSGI_SECRET_KEY": "k" * 32,
                "SHIBWSGI_IDLE_TIMEOUT": float("nan"),
            },
            "idle_timeout",
            id="NaN as a duration",
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": {"k" * 32: 1}},
            "secret_key",
            id="mapping as secret key",
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": 1234567890123456789},
            "secret_key",
            id="number as secret key",
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": SECRET.encode()},
            "secret_key",
            id="bytes as secret key",
        ),
    ],
)
def test_bad_config_value_is_a_config_error_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigError, match=setting):
        SSO(app)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"SHIBWSGI_SESSION": f"redis://:{SECRET}@host:port/0"}, id="redis password, bad port"),
        pytest.param(
            {"SHIBWSGI_SESSION": f"rediss://u:{SECRET}@h/0?bogus=1"}, id="redis password, bad query"
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": SECRET[:10]}, id="short secret key"
        ),
        pytest.param(
            {
                "SHIBWSGI_PROFILE": "oauth2-proxy",
                "SHIBWSGI_TRUSTED_PROXIES": "10.0.0.1",
                "SHIBWSGI_PROXY_SECRET": SECRET[:10],
            },
            id="short proxy secret",
        ),
        pytest.param({"SHIBWSGI_PROBE_TOKEN": SECRET[:10]}, id="short probe token"),
    ],
)
def test_config_error_does_not_repeat_the_secret(config: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigError) as caught:
        SSO(app)
    assert SECRET[:10] not in str(caught.value)


def test_unknown_keyword_option_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="did you mean secret_key"):
        SSO(secret_kye="x" * 32)


def test_second_init_on_one_app_is_refused() -> None:
    app = bare_app()
    with pytest.raises(ConfigError, match="already set up"):
        SSO(app)
    with pytest.raises(ConfigError, match="already set up"):
        SSO().init_app(app)


def test_one_extension_serves_two_apps_each_with_its_own_config() -> None:
    sso = SSO()
    first, second = Flask("first"), Flask("second")
    first.config["SHIBWSGI_LOGIN_PATH"] = "/one"
    second.config["SHIBWSGI_LOGIN_PATH"] = "/two"
    assert (sso.init_app(first).login_path, sso.init_app(second).login_path) == ("/one", "/two")


# --- helpers where no middleware ran -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/me", "/editors", "/links?next=/x"])
def test_helpers_without_middleware_raise_runtime_error_not_401(path: str) -> None:
    with pytest.raises(RuntimeError, match="no shibwsgi SSOMiddleware ran"):
        unwrapped_app().test_client().get(path)


def test_template_truthiness_of_anonymous_is_false_not_an_error() -> None:
    assert bare_app().test_client().get("/").get_data(as_text=True) == "out"


def test_template_truthiness_of_a_signed_in_user_is_true() -> None:
    response = (
        bare_app().test_client().get("/", environ_base=environ_for("shibboleth", "zoe@example.org", ZOE))
    )
    assert response.get_data(as_text=True) == "in"


def test_identity_planted_by_a_wsgi_layer_below_does_not_count() -> None:
    """Something that is not an Identity under the environ key is nobody, never a user."""
    app = unwrapped_app()
    inner = app.wsgi_app
    app.testing = False

    def planting(environ: dict[str, Any], start_response: Any) -> Any:
        environ["shibwsgi.identity"] = {"user": "admin"}
        return inner(environ, start_response)

    app.wsgi_app = planting  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == "out"
    assert client.get("/me").status_code == 401


def test_login_required_for_anonymous_api_client_is_401_json() -> None:
    response = bare_app().test_client().get("/me")
    assert response.status_code == 401
    assert response.json is not None and response.json["status"] == 401


def test_requires_refuses_a_signed_in_user_with_403_not_a_login_redirect() -> None:
    client = bare_app().test_client()
    response = client.get(
        "/editors", headers=HTML, environ_base=environ_for("shibboleth", "r@example.org", ZOE)
    )
    assert response.status_code == 403


def test_login_url_outside_a_request_has_no_next() -> None:
    app = bare_app()
    with app.app_context():
        assert login_url() == "/login"


def test_login_url_with_login_path_off_raises() -> None:
    app = bare_app(login_path=None)
    with app.test_request_context("/"), pytest.raises(RuntimeError, match="login_path is off"):
        login_url()


# --- next: open redirects ---------------------------------------------------------------------

HOSTILE_NEXT = [
    pytest.param("//evil.example/", id="scheme-relative"),
    pytest.param("/\\evil.example/", id="slash backslash"),
    pytest.param("\\\\evil.example", id="two backslashes"),
    pytest.param("https:evil.example", id="scheme without slashes"),
    pytest.param("https://evil.example/", id="absolute"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("/%2F%2Fevil.example", id="encoded slashes"),
    pytest.param("/%252F%252Fevil.example", id="double-encoded slashes"),
    pytest.param("%2F%2Fevil.example", id="encoded leading slashes"),
    pytest.param("/%5Cevil.example", id="encoded backslash"),
    pytest.param("/\r\nLocation: https://evil.example/", id="CRLF"),
    pytest.param("/%0d%0aSet-Cookie:x=1", id="encoded CRLF"),
    pytest.param("\t//evil.example", id="leading tab"),
    pytest.param(" //evil.example", id="leading space"),
    pytest.param("/.//evil.example", id="dot segment"),
    pytest.param("/\u2215evil.example", id="division slash"),
    pytest.param("/\uff0fevil.example", id="fullwidth slash"),
    pytest.param("/" + "a" * 5000, id="huge"),
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_and_logout_url_never_carry_an_off_site_next(target: str) -> None:
    client = bare_app().test_client()
    urls = client.get("/links", query_string={"next": target}).json
    assert urls is not None
    for url in urls.values():
        assert url.startswith("/login?") or url.startswith("/logout?")
        assert next_of(url) == "/"


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_url_next_survives_the_login_endpoint(target: str) -> None:
    """The URL login_url builds, followed: the middleware's login endpoint never leaves the site."""
    client = bare_app().test_client()
    login = client.get("/links", query_string={"next": target}).json["login"]  # type: ignore[index]
    response = client.get(login, environ_base=environ_for("shibboleth", "zoe@example.org", ZOE))
    location = response.headers.get("Location", "")
    assert response.status_code in (302, 303)
    assert safe_next(location, default="") == location, location


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("//evil.example/x", id="path is scheme-relative"),
        pytest.param("/%2F%2Fevil.example", id="path with encoded slashes"),
    ],
)
def test_login_url_default_next_from_a_hostile_current_path_stays_on_site(path: str) -> None:
    app = bare_app()
    with app.test_request_context(path):
        target = next_of(login_url())
    assert safe_next(target, default="") == target


@pytest.mark.parametrize(
    "script_name",
    [
        pytest.param("//evil.example", id="scheme-relative mount"),
        pytest.param("/\\evil.example", id="backslash mount"),
        pytest.param("https://evil.example", id="absolute URL mount"),
        pytest.param("///evil.example/", id="three slashes"),
    ],
)
def test_login_url_under_a_hostile_script_name_stays_on_site(script_name: str) -> None:
    app = bare_app()
    with app.test_request_context("/page", environ_overrides={"SCRIPT_NAME": script_name}):
        for url in (login_url(), logout_url()):
            assert url.startswith("/") and not url.startswith("//") and "\\" not in url.split("?")[0], url
            target = next_of(url) if "?" in url else "/"
            assert target.startswith("/") and not target.startswith(("//", "/\\")), target


def test_login_url_under_a_mount_keeps_the_mount() -> None:
    app = bare_app()
    with app.test_request_context("/page?q=1", base_url="http://localhost/app"):
        assert login_url() == "/app/login?next=%2Fapp%2Fpage%3Fq%3D1"
        assert logout_url() == "/app/logout"


def test_readme_error_page_snippet_renders_a_requires_refusal_in_the_apps_layout() -> None:
    app = Flask(__name__)
    app.config["SHIBWSGI_ATTRIBUTES"] = "groups=isMemberOf:multi"

    def error_page(status: int, message: str, environ: dict[str, Any]) -> str:
        with app.request_context(environ):
            return render_template_string("<p>{{ status }} {{ message }}</p>", status=status, message=message)

    SSO(app, error_page=error_page)
    _views(app)
    environ = environ_for("shibboleth", "rob@example.org", {"isMemberOf": ["<b>staff</b>"]})
    response = app.test_client().get("/editors", headers=HTML, environ_base=environ)
    assert response.status_code == 403
    assert response.get_data(as_text=True).startswith("<p>403 access denied")
    assert "<b>" not in response.get_data(as_text=True)


def test_login_url_finds_the_middleware_under_outer_layers() -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    from shibwsgi.testing import DevFrontEnd

    app = bare_app(login_path="/sign-in")
    app.wsgi_app = ProxyFix(DevFrontEnd(app.wsgi_app))  # type: ignore[method-assign]
    urls = app.test_client().get("/links", query_string={"next": "/movies"}).json
    assert urls == {"login": "/sign-in?next=%2Fmovies", "logout": "/logout?next=%2Fmovies"}
