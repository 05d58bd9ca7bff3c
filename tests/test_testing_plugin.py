"""The pytest plugin and the WebTest clients, used the way an application's own tests use them."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from webtest import TestApp
from werkzeug.middleware.proxy_fix import ProxyFix

from shibwsgi import Attribute, SSOMiddleware
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import DevFrontEnd, LossyEncodingWarning, environ_for
from shibwsgi.testing.client import DEFAULT_USER, find_middleware, sso_test_app
from tests.helpers import echo_app

pytest_plugins = ["pytester"]

SECRET = "s" * 32
ATTRIBUTES = {"name": "displayName", "groups": Attribute("isMemberOf", multi=True)}


@pytest.fixture
def wsgi_app() -> SSOMiddleware:
    return SSOMiddleware(echo_app, attributes=ATTRIBUTES)


def identity_of(client: TestApp, path: str = "/") -> Any:
    return client.get(path).json["identity"]


def test_sso_client_logs_in_as_someone(sso_client: Callable[..., Any]) -> None:
    client = sso_client("zoe@example.org", {"displayName": "Zoë", "isMemberOf": ["a;b", "c"]})
    identity = identity_of(client)
    assert identity["user"] == "zoe@example.org"
    assert identity["attributes"] == {"name": ["Zoë"], "groups": ["a;b", "c"]}


def test_sso_client_default_user(sso_client: Callable[..., Any]) -> None:
    assert identity_of(sso_client())["user"] == DEFAULT_USER == "alice@example.org"


def test_sso_client_none_is_anonymous(sso_client: Callable[..., Any]) -> None:
    assert identity_of(sso_client(None)) is None


def test_sso_environ_is_environ_for(sso_environ: Callable[..., dict[str, str]]) -> None:
    assert sso_environ("shibboleth", "u@x")["eppn"] == "u@x"


def flask_wrapped(**options: Any) -> Flask:
    """A Flask app whose wsgi_app is wrapped, the way Flask's docs wrap middleware."""
    flask_app = Flask(__name__)
    flask_app.wsgi_app = SSOMiddleware(echo_app, **options)  # type: ignore[method-assign]
    return flask_app


@pytest.mark.parametrize(
    ("options", "attributes"),
    [
        pytest.param({"profile": "openidc"}, {"name": "Zoë"}, id="openidc"),
        pytest.param({"profile": "openidc", "encoding": "base64url"}, {"name": "Zoë 山田"}, id="openidc b64"),
        pytest.param({"profile": "mellon"}, {"cn": "Zoë"}, id="mellon"),
        pytest.param({"profile": "adfs"}, {"FULLNAME": "Zoë"}, id="adfs"),
        pytest.param({"profile": "remote-user"}, {}, id="remote-user"),
        pytest.param({"profile": "shibboleth", "user": "mail"}, {"displayName": "Zoë"}, id="custom user"),
        pytest.param({"profile": "shibboleth", "encoding": "url"}, {"displayName": "Zoë"}, id="url encoding"),
        pytest.param({"profile": "openidc", "prefix": "OIDC-CLAIM-"}, {"name": "Zoë"}, id="custom prefix"),
    ],
)
@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda app: app, id="bare"),
        pytest.param(lambda app: ProxyFix(app), id="ProxyFix"),
        pytest.param(lambda app: ProxyFix(ProxyFix(app)), id="two wrappers"),
    ],
)
def test_client_follows_the_profile_of_the_wrapped_middleware(
    options: dict[str, Any], attributes: dict[str, str], wrap: Callable[[Any], Any]
) -> None:
    names = {"name": next(iter(attributes))} if attributes else {}
    app = wrap(SSOMiddleware(echo_app, attributes=names, **options))
    identity = identity_of(sso_test_app(app, "zoe@example.org", attributes))
    assert identity["user"] == "zoe@example.org"
    assert identity["profile"] == options["profile"]
    assert identity["attributes"] == ({"name": [attributes[names["name"]]]} if names else {})


def test_client_finds_the_middleware_inside_flask() -> None:
    app = flask_wrapped(profile="openidc", attributes={"name": "name"})
    assert identity_of(sso_test_app(app, "zoe@example.org", {"name": "Zoë"}))["attributes"] == {
        "name": ["Zoë"]
    }


def test_client_finds_the_middleware_behind_the_development_front_end() -> None:
    inner = SSOMiddleware(echo_app, profile="mellon")
    assert find_middleware(DevFrontEnd(inner, profile="mellon")) is inner


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(echo_app, id="no middleware"),
        pytest.param(Flask(__name__), id="flask without middleware"),
    ],
)
def test_no_middleware_found(app: Any) -> None:
    assert find_middleware(app) is None


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(echo_app, id="bare WSGI app"),
        pytest.param(Flask(__name__), id="flask app wrapped only outside"),
    ],
)
def test_client_for_an_app_without_middleware_says_so(app: Any) -> None:
    # The old client signed in anyway, and every test then saw an anonymous user.
    with pytest.raises(ValueError, match="no SSOMiddleware found"):
        sso_test_app(app, "zoe@example.org")


def test_without_a_middleware_an_explicit_profile_is_used() -> None:
    client = sso_test_app(echo_app, "zoe@example.org", profile="shibboleth")
    assert client.extra_environ["eppn"] == "zoe@example.org"


@pytest.mark.parametrize(
    ("attributes", "variable", "seen"),
    [
        pytest.param({"groups": ["a", "b"]}, "isMemberOf", {"groups": ["a", "b"]}, id="app name mapped"),
        pytest.param({"isMemberOf": ["a", "b"]}, "isMemberOf", {"groups": ["a", "b"]}, id="front end's name"),
        pytest.param({"name": "Zoë"}, "displayName", {"name": ["Zoë"]}, id="single value under app name"),
    ],
)
def test_test_attribute_given_under_the_app_name_reaches_the_app(
    attributes: dict[str, Any], variable: str, seen: dict[str, list[str]]
) -> None:
    client = sso_test_app(SSOMiddleware(echo_app, attributes=ATTRIBUTES), "zoe@example.org", attributes)
    assert variable in client.extra_environ
    assert not {"groups", "name"} & set(client.extra_environ)
    assert identity_of(client)["attributes"] == seen


def test_test_attribute_given_under_both_names_is_refused() -> None:
    app = SSOMiddleware(echo_app, attributes=ATTRIBUTES)
    with pytest.raises(ValueError, match="'isMemberOf' is given twice"):
        sso_test_app(app, "zoe@example.org", {"isMemberOf": ["a"], "groups": ["b"]})


def test_explicit_profile_wins_over_the_middleware() -> None:
    client = sso_test_app(SSOMiddleware(echo_app), "zoe@example.org", profile="mellon")
    assert client.extra_environ["REMOTE_USER"] == "zoe@example.org"
    assert "eppn" not in client.extra_environ


def test_clients_speak_https() -> None:
    client = sso_test_app(echo_app, None)
    assert client.extra_environ["wsgi.url_scheme"] == "https"
    assert client.extra_environ["HTTPS"] == "on"


def lazy_app() -> SSOMiddleware:
    return SSOMiddleware(echo_app, attributes=ATTRIBUTES, session=MemoryStore(), secret_key=SECRET)


def test_lazy_login_keeps_the_user_through_the_secure_session_cookie() -> None:
    client = sso_test_app(lazy_app(), "zoe@example.org", {"displayName": "Zoë"}, login=True)
    assert "__Host-shibwsgi" in client.cookies
    assert "eppn" not in client.extra_environ  # only the cookie carries the login now
    assert identity_of(client)["user"] == "zoe@example.org"
    client.get("/logout")
    assert identity_of(client) is None


def test_plain_http_would_lose_the_secure_cookie() -> None:
    # Why the clients speak https: the same login over WebTest's default http stays anonymous.
    client = TestApp(lazy_app())
    client.get("/login", extra_environ=environ_for("shibboleth", "zoe@example.org"), status=302)
    assert identity_of(client) is None


def test_lazy_login_needs_a_session_store() -> None:
    with pytest.raises(ValueError, match="session store"):
        sso_test_app(SSOMiddleware(echo_app), "zoe@example.org", login=True)


def test_environ_for_warns_when_latin1_loses_characters() -> None:
    with pytest.warns(LossyEncodingWarning, match="name: characters outside latin-1"):
        environ = environ_for("openidc", "zoe@example.org", {"name": "Zoë 山田"})
    assert environ["OIDC_CLAIM_name"] == "Zoë ??"


@pytest.mark.parametrize(
    ("encoding", "options"),
    [
        pytest.param("base64url", {}, id="base64url"),
        pytest.param(None, {"id_token": True}, id="id token JSON"),
        pytest.param("utf-8", {}, id="utf-8"),
    ],
)
def test_lossless_openidc_encodings_do_not_warn(encoding: str | None, options: dict[str, Any]) -> None:
    app = SSOMiddleware(echo_app, profile="openidc", attributes={"name": "name"}, encoding=encoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = sso_test_app(app, "zoe@example.org", {"name": "Zoë 山田"}, **options)
    assert identity_of(client)["attributes"] == {"name": ["Zoë 山田"]}


PLUGIN_CONFTEST = """
import pytest
from shibwsgi import SSOMiddleware
from shibwsgi.sessions import MemoryStore
from tests.helpers import echo_app


@pytest.fixture(params=["whole-site", "lazy"])
def wsgi_app(request):
    if request.param == "lazy":
        return SSOMiddleware(echo_app, profile="openidc", session=MemoryStore(), secret_key="k" * 32)
    return SSOMiddleware(echo_app, profile="openidc")
"""

PLUGIN_TESTS = """
def test_login(sso_client, wsgi_app):
    client = sso_client("zoe@example.org", login=wsgi_app.sessions is not None)
    assert client.get("/").json["identity"]["profile"] == "openidc"
    assert client.get("/").json["identity"]["user"] == "zoe@example.org"


def test_anonymous(sso_client):
    assert sso_client(None).get("/").json["identity"] is None
"""


def test_parametrised_wsgi_app_works_with_sso_client(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(PLUGIN_TESTS)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=4)


def test_sso_client_works_under_warnings_as_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebOb's warning about the cgi module must not fail a suite run with -W error."""
    # The subprocess imports this repository's tests.helpers, as the in-process runs do.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(PLUGIN_TESTS)
    # A fresh interpreter: this one imported WebOb long ago, and warns only once.
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_missing_wsgi_app_fixture_says_what_to_define(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(sso_client):\n    sso_client()\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define one in your conftest.py*"])


def test_headers_channel_client_comes_from_the_trusted_proxy() -> None:
    app = SSOMiddleware(
        echo_app, profile="oauth2-proxy", channel="headers", trusted_proxies=["10.0.0.0/8", "127.0.0.1"]
    )
    client = sso_test_app(app, "zoe@example.org", {"groups": ["a", "b"]})
    assert client.extra_environ["REMOTE_ADDR"] == "10.0.0.0"
    assert client.extra_environ["HTTP_X_FORWARDED_USER"] == "zoe@example.org"
    assert identity_of(client)["user"] == "zoe@example.org"
