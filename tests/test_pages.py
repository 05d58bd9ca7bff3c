"""The pages the middleware serves itself: written for people, with a way on, or in the app's layout."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from typing import Any

import pytest
from flask import Flask, render_template_string
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, SSOMiddleware
from shibwsgi.authz import HasAttribute, Rule
from shibwsgi.flask import SSO, requires
from shibwsgi.pages import STYLE_HASH
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}
EDITORS = [Rule("/edit", HasAttribute("groups", "movie-editors"))]
ATTRIBUTES = {"groups": "isMemberOf"}
ROB = environ_for("shibboleth", "rob@example.org", {"isMemberOf": ["staff"]})


def links(page: str) -> dict[str, str]:
    """Button label -> href."""
    return {
        label: href.replace("&amp;", "&")
        for href, label in re.findall(r'<a class="button[^"]*" href="([^"]*)">([^<]*)</a>', page)
    }


def middleware(**options: Any) -> SSOMiddleware:
    return SSOMiddleware(echo_app, attributes=ATTRIBUTES, rules=EDITORS, whoami_path="/whoami", **options)


@pytest.mark.parametrize(
    ("path", "environ", "status", "heading", "expected_links"),
    [
        pytest.param(
            "/edit",
            ROB,
            403,
            "You don&#x27;t have access to this page",
            {"Go to the home page": "/"},
            id="403 signed in",
        ),
        pytest.param(
            "/whoami?x=1",
            {},
            401,
            "Please sign in",
            {"Sign in": "/login?next=%2Fwhoami%3Fx%3D1", "Go to the home page": "/"},
            id="anonymous whoami",
        ),
        pytest.param(
            "/",
            {"eppn": "u\x01@example.org"},
            400,
            "This request could not be handled",
            {"Go to the home page": "/"},
            id="400 bad input",
        ),
    ],
)
def test_refusal_pages_say_what_happened_and_where_to_go(
    path: str,
    environ: dict[str, str],
    status: int,
    heading: str,
    expected_links: dict[str, str],
) -> None:
    response = TestApp(middleware()).get(path, headers=HTML, extra_environ=environ, expect_errors=True)
    assert response.status_int == status
    assert f"<h1>{heading}</h1>" in response.text
    assert links(response.text) == expected_links
    assert '<meta name="viewport"' in response.text


def test_links_follow_the_mount_point() -> None:
    response = TestApp(middleware()).get(
        "/whoami", headers=HTML, extra_environ={"SCRIPT_NAME": "/app"}, status=401
    )
    assert links(response.text) == {
        "Sign in": "/app/login?next=%2Fapp%2Fwhoami",
        "Go to the home page": "/app/",
    }


def test_login_path_without_identity_offers_no_sign_in_loop(caplog: pytest.LogCaptureFixture) -> None:
    app = TestApp(SSOMiddleware(echo_app, profile="openidc"))
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        response = app.get("/login", headers=HTML, status=401)
    assert links(response.text) == {"Go to the home page": "/"}
    assert "Require shib-session" not in response.text  # the operator's hint is in the log
    assert "Require shib-session" in caplog.text


def test_operator_hints_stay_out_of_the_page(caplog: pytest.LogCaptureFixture) -> None:
    app = TestApp(SSOMiddleware(echo_app, attributes={"groups": Attribute("isMemberOf", required=True)}))
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        response = app.get("/", headers=HTML, extra_environ={"eppn": "rob@example.org"}, status=403)
    assert "ShibUseEnvironment" not in response.text
    assert "ShibUseEnvironment" in caplog.text
    assert "did not release" in response.text


def test_inline_style_matches_its_published_hash() -> None:
    page = TestApp(middleware()).get("/edit", headers=HTML, extra_environ=ROB, status=403).text
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" == STYLE_HASH


# -- the error_page hook ----------------------------------------------------------------------------


def app_page(status: int, message: str, environ: dict[str, Any]) -> str | None:
    if status == 503:
        return None
    return f"<html><body class='app'>{status}: {message} at {environ['PATH_INFO']}</body></html>"


def test_error_page_hook_renders_refusals_in_the_app_layout() -> None:
    response = TestApp(middleware(error_page=app_page)).get(
        "/edit", headers=HTML, extra_environ=ROB, status=403
    )
    assert response.text.startswith("<html><body class='app'>403: access denied: requires ")
    assert response.text.endswith(" at /edit</body></html>")
    assert response.content_type == "text/html"


def test_error_page_hook_is_not_asked_for_api_clients() -> None:
    calls: list[int] = []

    def hook(status: int, message: str, environ: dict[str, Any]) -> str:
        calls.append(status)
        return "<p>app</p>"

    response = TestApp(middleware(error_page=hook)).get("/edit", headers=JSON, extra_environ=ROB, status=403)
    assert response.json["status"] == 403
    assert calls == []


def test_error_page_hook_returning_none_keeps_the_built_in_page() -> None:
    def hook(status: int, message: str, environ: dict[str, Any]) -> None:
        return None

    response = TestApp(middleware(error_page=hook)).get("/edit", headers=HTML, extra_environ=ROB, status=403)
    assert "You don&#x27;t have access" in response.text


def test_failing_error_page_hook_never_makes_a_500(caplog: pytest.LogCaptureFixture) -> None:
    def hook(status: int, message: str, environ: dict[str, Any]) -> str:
        raise LookupError("template missing")

    with caplog.at_level(logging.ERROR, "shibwsgi"):
        response = TestApp(middleware(error_page=hook)).get(
            "/edit", headers=HTML, extra_environ=ROB, status=403
        )
    assert "You don&#x27;t have access" in response.text
    assert "error_page hook failed" in caplog.text


def test_error_page_hook_serves_the_flask_decorators_too() -> None:
    app = Flask(__name__)
    SSO(app, attributes=ATTRIBUTES, error_page=app_page)

    @app.get("/edit")
    @requires(HasAttribute("groups", "movie-editors"))
    def edit() -> str:
        return "edited"

    response = app.test_client().get("/edit", headers=HTML, environ_base=ROB)
    assert response.status_code == 403
    assert response.get_data(as_text=True).startswith("<html><body class='app'>403:")


def test_error_page_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="error_page"):
        SSOMiddleware(echo_app, error_page="templates/error.html")  # type: ignore[arg-type]


def test_error_page_from_settings() -> None:
    app = SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_ERROR_PAGE": "tests.test_pages:app_page"})
    assert app.error_page is not None
    assert (app.error_page.__module__, app.error_page.__name__) == ("tests.test_pages", "app_page")


def test_readme_error_page_recipe_renders_with_the_flask_app() -> None:
    """The README's hook: the app's template, for the middleware's own refusals and the decorators'."""
    app = Flask(__name__)

    def error_page(status: int, message: str, environ: dict[str, Any]) -> str:
        with app.request_context(environ):
            return render_template_string(
                "<main class='site'>{{ status }} {{ message }}</main>", status=status, message=message
            )

    SSO(app, attributes=ATTRIBUTES, rules=EDITORS, whoami_path="/whoami", error_page=error_page)

    @app.get("/editors")
    @requires(HasAttribute("groups", "movie-editors"))
    def editors() -> str:
        return "editors"

    client = app.test_client()
    middleware_refusal = client.get("/edit", headers=HTML, environ_base=ROB)
    decorator_refusal = client.get("/editors", headers=HTML, environ_base=ROB)
    for response in (middleware_refusal, decorator_refusal):
        assert response.status_code == 403
        assert response.get_data(as_text=True).startswith("<main class='site'>403 access denied")
