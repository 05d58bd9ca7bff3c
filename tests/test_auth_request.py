"""The auth_request endpoint (``auth_path``), in-process with WebTest.

nginx asks it, in a subrequest, whether the ORIGINAL request (``X-Original-URI``,
``X-Original-Method``) may go on: 200 with the identity headers, 401 when nobody is
logged in, 403 when the rules refuse; never a redirect, never cached, never passed to
the app, and hostile original URIs cannot slip past a rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, Identity, SSOMiddleware
from shibwsgi.auth_request import header_value
from shibwsgi.authz import HasAttribute, HasRole, LoggedIn, Public, Rule
from shibwsgi.decoding import split_values
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for

KEY = "k" * 32
AUTH = "/_auth"
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}
ATTRIBUTES = {"email": "mail", "groups": Attribute("isMemberOf", multi=True)}
RULES = [
    Rule("/public", Public()),
    Rule("/admin", HasRole("admin")),
    Rule("/api/movies", HasAttribute("groups", "movie-editors"), methods=["POST", "PUT", "DELETE"]),
    Rule("/", LoggedIn()),
]
ROLES = {"ada@example.org": ["admin"]}
PEOPLE = {
    "reader": ("rob@example.org", ["staff"]),
    "editor": ("ed@example.org", ["staff", "movie-editors"]),
    "admin": ("ada@example.org", ["staff"]),
}


class App:
    """The protected app: records that it was called (the auth endpoint never calls it)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.paths.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"app"]


@pytest.fixture
def app() -> App:
    return App()


def middleware(app: App, **options: Any) -> SSOMiddleware:
    options.setdefault("attributes", ATTRIBUTES)
    options.setdefault("rules", RULES)
    options.setdefault("roles", lambda identity: ROLES.get(identity.user, []))
    options.setdefault("auth_path", AUTH)
    return SSOMiddleware(app, **options)


@pytest.fixture
def client(app: App) -> TestApp:
    return TestApp(middleware(app), extra_environ=HTTPS)


def front(who: str | None) -> dict[str, str]:
    """What the front end passes for ``who`` (one of PEOPLE), or nothing."""
    if who is None:
        return {}
    user, groups = PEOPLE[who]
    return environ_for("shibboleth", user, {"mail": user, "isMemberOf": groups})


def ask(
    client: TestApp,
    uri: str | None,
    method: str | None = "GET",
    *,
    who: str | None = None,
    status: int | str = "*",
    **kwargs: Any,
) -> Any:
    """nginx's subrequest: GET auth_path naming the original request."""
    headers = kwargs.pop("headers", {})
    if uri is not None:
        headers["X-Original-URI"] = uri
    if method is not None:
        headers["X-Original-Method"] = method
    return client.get(AUTH, headers=headers, extra_environ=front(who), status=status, **kwargs)


# -- the decision, by original URI and method ---------------------------------------------


@pytest.mark.parametrize(
    ("who", "method", "uri", "status"),
    [
        pytest.param(None, "GET", "/", 401, id="anonymous: 401"),
        pytest.param(None, "GET", "/api/movies", 401, id="anonymous API: 401"),
        pytest.param(None, "GET", "/public/app.js", 200, id="anonymous on a public path: 200"),
        pytest.param("reader", "GET", "/", 200, id="logged in: 200"),
        pytest.param("reader", "GET", "/api/movies?page=2", 200, id="query ignored by the rules"),
        pytest.param("reader", "POST", "/api/movies", 403, id="reader's write: 403"),
        pytest.param("reader", "DELETE", "/api/movies/3", 403, id="reader's delete: 403"),
        pytest.param("reader", "post", "/api/movies", 403, id="method in lower case"),
        pytest.param("editor", "POST", "/api/movies", 200, id="editor's write: 200"),
        pytest.param("reader", "GET", "/admin", 403, id="no role: 403"),
        pytest.param("admin", "GET", "/admin/users", 200, id="role from the hook: 200"),
        pytest.param("editor", "GET", "/admin", 403, id="a group is not a role"),
    ],
)
def test_answer_follows_the_rules_for_the_original_request(
    client: TestApp, app: App, who: str | None, method: str, uri: str, status: int
) -> None:
    response = ask(client, uri, method, who=who, status=status)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers
    assert app.paths == []  # answered by the middleware, never the app


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/%2e%2e/admin", id="encoded dot segments"),
        pytest.param("/%2E%2E/admin", id="encoded dot segments, upper case"),
        pytest.param("/public/../admin", id="dot segments out of a public path"),
        pytest.param("/public/%2e%2e/admin", id="encoded dots out of a public path"),
        pytest.param("/public%2F..%2Fadmin", id="encoded slashes out of a public path"),
        pytest.param("/public/./../admin/", id="mixed dot segments"),
        pytest.param("//admin", id="double slash"),
        pytest.param("/public//../admin", id="double slash and dots"),
        pytest.param("/./admin", id="dot segment"),
        pytest.param("/admin?x=/public", id="public path in the query"),
        pytest.param("/admin/%2e", id="trailing encoded dot"),
    ],
)
def test_original_uri_spellings_cannot_slip_past_a_rule(client: TestApp, uri: str) -> None:
    """The reader may not see /admin however the URI spells it (nginx decodes and resolves)."""
    ask(client, uri, who="reader", status=403)
    ask(client, uri, who="admin", status=200)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({"X-Original-Method": "GET"}, "X-Original-URI", id="missing X-Original-URI"),
        pytest.param({"X-Original-URI": "/"}, "X-Original-Method", id="missing X-Original-Method"),
        pytest.param({"X-Original-URI": "", "X-Original-Method": "GET"}, "X-Original-URI", id="empty URI"),
        pytest.param(
            {"X-Original-URI": "http://evil.example/admin", "X-Original-Method": "GET"},
            "X-Original-URI",
            id="absolute URL",
        ),
        pytest.param(
            {"X-Original-URI": "https://app.example.org/", "X-Original-Method": "GET"},
            "X-Original-URI",
            id="absolute URL on this host",
        ),
        pytest.param(
            {"X-Original-URI": "admin", "X-Original-Method": "GET"}, "X-Original-URI", id="relative"
        ),
        pytest.param({"X-Original-URI": "*", "X-Original-Method": "GET"}, "X-Original-URI", id="asterisk"),
        pytest.param(
            {"X-Original-URI": "/public#/../admin", "X-Original-Method": "GET"},
            "X-Original-URI",
            id="fragment",
        ),
        pytest.param(
            {"X-Original-URI": "/public x", "X-Original-Method": "GET"}, "X-Original-URI", id="space"
        ),
        pytest.param(
            {"X-Original-URI": "/caf\xc3\xa9", "X-Original-Method": "GET"},
            "X-Original-URI",
            id="raw non-ASCII bytes",
        ),
        pytest.param(
            {"X-Original-URI": "/", "X-Original-Method": "G T"}, "X-Original-Method", id="bad method"
        ),
        pytest.param(
            {"X-Original-URI": "/", "X-Original-Method": "GET\r\nX: y"}, "X-Original-Method", id="CRLF method"
        ),
    ],
)
def test_unusable_original_request_is_400(
    client: TestApp, app: App, headers: dict[str, str], reason: str
) -> None:
    response = client.get(AUTH, headers=headers, extra_environ=front("admin"), status=400)
    assert reason in response.json["error"]
    assert response.headers["Cache-Control"] == "no-store"
    assert app.paths == []


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/public\r\nX-Injected: 1", id="CRLF"),
        pytest.param("/public\x00/../admin", id="NUL"),
        pytest.param("/public\tx", id="tab"),
        pytest.param("/public/\u5c71", id="a character no server sends"),
    ],
)
def test_control_and_non_latin1_characters_in_the_uri_are_400(client: TestApp, uri: str) -> None:
    # WebTest refuses such header values, so these go in the environ as a server would put them.
    environ = {**front(None), "HTTP_X_ORIGINAL_URI": uri, "HTTP_X_ORIGINAL_METHOD": "GET"}
    client.get(AUTH, extra_environ=environ, status=400)


@pytest.mark.parametrize(("who", "status"), [("reader", 403), ("admin", 200)])
def test_percent_encoded_path_is_judged_as_the_app_would_see_it(app: App, who: str, status: int) -> None:
    """The decoded bytes, as PATH_INFO carries them: the answer the request itself gets."""
    rules = [Rule("/café", HasRole("admin")), Rule("/", LoggedIn())]
    client = TestApp(middleware(app, rules=rules), extra_environ=HTTPS)
    direct = client.get(
        "/", extra_environ={**front(who), "PATH_INFO": "/caf\xc3\xa9/menu"}, expect_errors=True
    )
    assert direct.status_int == status
    ask(client, "/caf%C3%A9/menu", who=who, status=status)


def test_without_rules_any_logged_in_user_passes(app: App) -> None:
    client = TestApp(middleware(app, rules=()), extra_environ=HTTPS)
    ask(client, "/anything", "DELETE", who="reader", status=200)
    ask(client, "/anything", who=None, status=401)


# -- never a redirect; only GET and HEAD -----------------------------------------------------


def test_browser_gets_401_not_a_redirect_to_the_login(client: TestApp) -> None:
    """nginx maps 401 to the login itself (error_page); a redirect would be an error to it."""
    response = ask(client, "/", headers={"Accept": "text/html"}, status=401)
    assert "Location" not in response.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_auth_path_answers_only_get_and_head(client: TestApp, app: App, method: str) -> None:
    headers = {"X-Original-URI": "/", "X-Original-Method": "GET"}
    environ = {**HTTPS, **front("admin"), "REQUEST_METHOD": method}
    response = client.request(AUTH, method=method, headers=headers, environ=environ, status=405)
    assert response.headers["Allow"] == "GET, HEAD"
    assert app.paths == []


def test_head_is_answered_like_get_without_a_body(client: TestApp) -> None:
    headers = {"X-Original-URI": "/", "X-Original-Method": "GET"}
    allowed = client.head(AUTH, headers=headers, extra_environ=front("reader"), status=200)
    assert allowed.headers["X-Auth-Request-User"] == "rob@example.org"
    assert allowed.body == b""
    refused = client.head(AUTH, headers=headers, status=401)
    assert refused.body == b""


def test_auth_path_is_off_by_default(app: App) -> None:
    client = TestApp(SSOMiddleware(app), extra_environ=HTTPS)
    client.get(AUTH, headers={"X-Original-URI": "/", "X-Original-Method": "GET"}, status=200)
    assert app.paths == [AUTH]


# -- the identity headers -----------------------------------------------------------------


def test_200_carries_oauth2_proxy_identity_headers(client: TestApp) -> None:
    response = ask(client, "/", who="editor", status=200)
    assert response.headers["X-Auth-Request-User"] == "ed@example.org"
    assert response.headers["X-Auth-Request-Email"] == "ed@example.org"
    assert response.headers["X-Auth-Request-Groups"] == "staff,movie-editors"
    assert response.headers["Content-Length"] == "0"


def test_allowed_anonymous_request_carries_no_identity_headers(client: TestApp) -> None:
    response = ask(client, "/public/", status=200)
    assert not [name for name in response.headers if name.startswith("X-Auth-Request")]


def test_refusals_carry_no_identity_headers(client: TestApp) -> None:
    response = ask(client, "/admin", who="reader", status=403)
    assert not [name for name in response.headers if name.startswith("X-Auth-Request")]
    assert response.json["error"] == "access denied: requires role 'admin'"


@pytest.mark.parametrize(
    ("auth_headers", "expected"),
    [
        pytest.param(
            {"X-Auth-Request-Email": "email"},
            {"X-Auth-Request-User": "ada@example.org", "X-Auth-Request-Email": "ada@example.org"},
            id="email only",
        ),
        pytest.param(
            {"X-Webauth-User": "user", "X-Webauth-Roles": "roles", "X-Groups": "groups"},
            {
                "X-Auth-Request-User": "ada@example.org",
                "X-Webauth-User": "ada@example.org",
                "X-Webauth-Roles": "admin",
                "X-Groups": "staff",
            },
            id="renamed, with roles",
        ),
        pytest.param({}, {"X-Auth-Request-User": "ada@example.org"}, id="none but the user"),
        pytest.param(
            {"X-Auth-Request-Affiliation": "affiliation"},
            {"X-Auth-Request-User": "ada@example.org"},
            id="an attribute the user lacks is left out",
        ),
    ],
)
def test_auth_headers_change_the_mapping(app: App, auth_headers: dict[str, str], expected: Any) -> None:
    # "affiliation" is mapped but no user has it (an unmapped source is a ConfigError).
    attributes = {**ATTRIBUTES, "affiliation": "affiliation"}
    client = TestApp(middleware(app, auth_headers=auth_headers, attributes=attributes), extra_environ=HTTPS)
    response = ask(client, "/", who="admin", status=200)
    sent = {
        name: value
        for name, value in response.headerlist
        if name.startswith("X-") and name != "X-Content-Type-Options"
    }
    assert sent == expected


@pytest.mark.parametrize(
    ("values", "sent"),
    [
        pytest.param(("staff", "movie-editors"), "staff,movie-editors", id="plain values as they are"),
        pytest.param(("a,b", "c"), "a%2Cb,c", id="a comma inside a value"),
        pytest.param(("100%",), "100%25", id="the escape character itself"),
        pytest.param(("Zoë 山田",), "Zo%C3%AB 山田".replace("山田", "%E5%B1%B1%E7%94%B0"), id="non-ASCII"),
        pytest.param(("a\r\nSet-Cookie: x",), "a%0D%0ASet-Cookie: x", id="CRLF cannot split the header"),
        pytest.param((" padded ",), "%20padded%20", id="edge spaces survive list parsing"),
        pytest.param(("cn=x;y", "a b"), "cn=x;y,a b", id="other separators untouched"),
        pytest.param(("a\ud800",), "a?", id="a lone surrogate cannot make a 500"),
    ],
)
def test_header_values_are_joined_with_commas_and_percent_encoded(values: tuple[str, ...], sent: str) -> None:
    assert header_value(values) == sent


@pytest.mark.parametrize(
    "values",
    [("a,b", "c"), ("100%", "%41"), ("Zoë", "山田, Inc."), (" x ", "y")],
)
def test_split_then_percent_decode_gives_the_values_back(values: tuple[str, ...]) -> None:
    """What shibwsgi's oauth2-proxy profile with encoding="url" does with the header."""
    joined = header_value(values)
    assert tuple(unquote(part) for part in split_values(joined, ",", backslash_escapes=False)) == values


def test_identity_values_with_commas_reach_a_consumer_intact(app: App) -> None:
    """The front end's user has a group with a comma; the header carries it unambiguously."""
    client = TestApp(middleware(app), extra_environ=HTTPS)
    environ = environ_for(
        "shibboleth", "zoë@example.org", {"mail": "z@example.org", "isMemberOf": ["a,b", "c"]}
    )
    headers = {"X-Original-URI": "/", "X-Original-Method": "GET"}
    response = client.get(AUTH, headers=headers, extra_environ=environ, status=200)
    assert response.headers["X-Auth-Request-User"] == "zo%C3%AB@example.org"
    assert response.headers["X-Auth-Request-Groups"] == "a%2Cb,c"


@pytest.mark.parametrize(
    "auth_headers",
    [
        pytest.param({"X_Underscore": "email"}, id="underscore (nginx drops it)"),
        pytest.param({"X-Auth Request": "email"}, id="space"),
        pytest.param({"": "email"}, id="empty name"),
        pytest.param({"Set-Cookie": "email"}, id="Set-Cookie"),
        pytest.param({"Location": "email"}, id="Location"),
        pytest.param({"x-auth-request-user": "email"}, id="the user header"),
        pytest.param({"X-A": "email", "x-a": "groups"}, id="twice"),
        pytest.param({"X-A": ""}, id="empty source"),
        pytest.param({"X-A": 3}, id="source not text"),
        pytest.param(["X-A"], id="not a mapping"),
    ],
)
def test_bad_auth_headers_raise_config_error(app: App, auth_headers: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        middleware(app, auth_headers=auth_headers)
    assert raised.value.setting == "auth_headers"


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"auth_path": "/login"}, "auth_path", id="same as login_path"),
        pytest.param({"auth_path": "/logout"}, "auth_path", id="same as logout_path"),
        pytest.param({"auth_path": "_auth"}, "auth_path", id="not a path"),
        pytest.param({"auth_path": "/_auth?x=1"}, "auth_path", id="with a query"),
    ],
)
def test_bad_auth_path_raises_config_error(app: App, options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        middleware(app, **options)
    assert raised.value.setting == setting


def test_auth_endpoint_from_settings(app: App) -> None:
    settings = {
        "SHIBWSGI_ATTRIBUTES": "email=mail groups=isMemberOf:multi",
        "SHIBWSGI_AUTH_PATH": "/_shibwsgi/auth",
        # Two entries, comma-separated ("roles" would need SHIBWSGI_ROLES: it is refused without).
        "SHIBWSGI_AUTH_HEADERS": "X-Auth-Request-Email=email, X-Groups=groups",
    }
    client = TestApp(SSOMiddleware.from_mapping(app, settings), extra_environ=HTTPS)
    headers = {"X-Original-URI": "/", "X-Original-Method": "GET"}
    response = client.get("/_shibwsgi/auth", headers=headers, extra_environ=front("reader"), status=200)
    assert response.headers["X-Auth-Request-Email"] == "rob@example.org"
    assert "X-Auth-Request-Groups" not in response.headers
    assert app.paths == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [pytest.param("none", {}, id="none"), pytest.param("X-A=email", {"X-A": "email"}, id="one")],
)
def test_auth_headers_setting(app: App, value: str, expected: dict[str, str]) -> None:
    settings = {
        "SHIBWSGI_AUTH_PATH": AUTH,
        "SHIBWSGI_AUTH_HEADERS": value,
        "SHIBWSGI_ATTRIBUTES": "email=mail",
    }
    middleware = SSOMiddleware.from_mapping(app, settings)
    auth = middleware.endpoints[AUTH]
    assert auth.headers == expected  # type: ignore[attr-defined]


def test_malformed_auth_headers_setting_names_it(app: App) -> None:
    with pytest.raises(ConfigError) as raised:
        SSOMiddleware.from_mapping(app, {"SHIBWSGI_AUTH_HEADERS": "X-Auth-Request-Email"})
    assert raised.value.setting == "SHIBWSGI_AUTH_HEADERS"


# -- where the identity comes from: the session cookie or the front end -----------------------


@pytest.fixture
def lazy(app: App) -> TestApp:
    return TestApp(middleware(app, session=MemoryStore(), secret_key=KEY), extra_environ=HTTPS)


def test_session_cookie_alone_identifies_the_user(lazy: TestApp) -> None:
    lazy.get("/login", extra_environ=front("admin"), status=302)
    response = ask(lazy, "/admin", status=200)  # no front-end identity, only the cookie
    assert response.headers["X-Auth-Request-User"] == "ada@example.org"
    lazy.get("/logout", status=302)
    ask(lazy, "/admin", status=401)


def test_front_end_identity_without_a_session(client: TestApp) -> None:
    response = ask(client, "/", who="admin", status=200)
    assert response.headers["X-Auth-Request-User"] == "ada@example.org"


def test_front_end_identity_starts_a_session_like_any_request(lazy: TestApp) -> None:
    response = ask(lazy, "/", who="reader", status=200)
    assert "Set-Cookie" in response.headers  # nginx passes it on (auth_request_set)
    assert ask(lazy, "/", status=200).headers["X-Auth-Request-User"] == "rob@example.org"


def test_another_user_at_the_front_end_replaces_the_session(lazy: TestApp) -> None:
    lazy.get("/login", extra_environ=front("admin"), status=302)
    response = ask(lazy, "/admin", who="reader", status=403)
    assert "Set-Cookie" in response.headers


def test_forged_or_stale_cookie_is_anonymous(lazy: TestApp) -> None:
    lazy.set_cookie("__Host-shibwsgi", "forged.value.here")
    response = ask(lazy, "/", status=401)
    assert "Max-Age=0" in response.headers["Set-Cookie"]


def test_headers_channel_identity_from_a_trusted_proxy_only(app: App) -> None:
    client = TestApp(
        middleware(
            app,
            profile="oauth2-proxy",
            channel="headers",
            trusted_proxies=["127.0.0.2"],
            attributes={"email": "email", "groups": Attribute("groups", multi=True)},
        ),
        extra_environ=HTTPS,
    )
    identity = {"X-Forwarded-User": "ada@example.org", "X-Forwarded-Groups": "staff"}
    headers = {"X-Original-URI": "/admin", "X-Original-Method": "GET", **identity}
    trusted = client.get(AUTH, headers=headers, extra_environ={"REMOTE_ADDR": "127.0.0.2"}, status=200)
    assert trusted.headers["X-Auth-Request-User"] == "ada@example.org"
    client.get(AUTH, headers=headers, extra_environ={"REMOTE_ADDR": "127.0.0.9"}, status=401)


def test_roles_hook_failure_is_503_at_the_auth_endpoint_too(app: App) -> None:
    def broken(identity: Identity) -> list[str]:
        raise RuntimeError("database down")

    client = TestApp(middleware(app, roles=broken), extra_environ=HTTPS)
    response = ask(client, "/", who="reader", status=503)
    assert response.headers["Cache-Control"] == "no-store"
    assert not [name for name in response.headers if name.startswith("X-Auth-Request")]


# -- hostile original URIs: refused, or judged by the strictest reading -----------------------

CONTROL_CODES = [*range(0x20), 0x7F]


@pytest.mark.parametrize(
    "uri",
    [
        *(pytest.param(f"/admin%{code:02x}", id=f"/admin + %{code:02X}") for code in CONTROL_CODES),
        *(
            pytest.param(f"/public%{code:02X}/../admin", id=f"%{code:02X} in a public path")
            for code in (0, 10, 13)
        ),
        pytest.param("/admin%0d%0a", id="CRLF after /admin"),
        pytest.param("/admin%c2%85", id="C1 control (NEL) once decoded"),
        pytest.param("/admin%c2%9f", id="C1 control (APC) once decoded"),
        pytest.param("/public%5c..%5cadmin", id="encoded backslashes"),
        pytest.param("/public\\..\\admin", id="raw backslashes"),
        pytest.param("/admin%5c", id="trailing encoded backslash"),
        pytest.param("/public/%252e%252e/admin", id="double-encoded dots"),
        pytest.param("/%2561dmin", id="double-encoded letter"),
        pytest.param("/public%252f..%252fadmin", id="double-encoded slashes"),
        pytest.param("/public/%25%32%65%25%32%65/admin", id="double encoding spelled out"),
        pytest.param("/public/%u002e%u002e/admin", id="IIS %u encoding"),
        pytest.param("/public/%c0%ae%c0%ae/admin", id="overlong UTF-8 dots"),
        pytest.param("/public/%e0%80%ae%e0%80%ae/admin", id="three-byte overlong dots"),
        pytest.param("/public/..%c0%afadmin", id="overlong UTF-8 slash"),
        pytest.param("/public/%ff/../admin", id="a byte that is never UTF-8"),
        pytest.param("/public/.../admin", id="three dots"),
        pytest.param("/public/..%20/admin", id="dots and a space"),
        pytest.param("/public/.%20/admin", id="dot and a space"),
        pytest.param("/public/..%2e/admin", id="encoded third dot"),
    ],
)
def test_original_uri_forms_servers_disagree_on_are_400(client: TestApp, app: App, uri: str) -> None:
    for who in ("reader", "admin", None):
        response = ask(client, uri, who=who, status=400)
        assert "X-Original-URI" in response.json["error"]
    assert app.paths == []


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/admin;x", id="Tomcat path parameter"),
        pytest.param("/admin;jsessionid=0123/users", id="session id parameter"),
        pytest.param("/public/..;/admin", id="Tomcat ..;"),
        pytest.param("/public/..;x=y/admin", id="Tomcat ..;x=y"),
        pytest.param("/public;/../admin", id="parameter then dots"),
        pytest.param("/public/%2e%2e;/admin", id="encoded ..;"),
        pytest.param("/admin%3bx", id="encoded semicolon"),
        pytest.param("/ADMIN", id="upper case"),
        pytest.param("/Admin/users", id="capitalised"),
        pytest.param("/aDmIn", id="mixed case"),
        pytest.param("/PUBLIC/../ADMIN", id="upper case through a public path"),
        pytest.param("/admin.", id="trailing dot"),
        pytest.param("/admin..", id="trailing dots"),
        pytest.param("/admin%20", id="trailing space"),
        pytest.param("/admin.%20.", id="trailing dots and spaces"),
        pytest.param("/admin./users", id="trailing dot in a segment"),
        pytest.param("/admin%20/users", id="trailing space in a segment"),
        pytest.param("/ADMIN.;x", id="case, dot and parameter together"),
        pytest.param("/admin::$DATA", id="NTFS stream name"),
        pytest.param("/admin::$DATA/users", id="NTFS stream name in a segment"),
        pytest.param("/public/..::$DATA/admin", id="dots with a stream name"),
        pytest.param("/%EF%BD%81dmin", id="fullwidth letter"),
        pytest.param("/%EF%BC%A1%EF%BC%A4%EF%BC%AD%EF%BC%A9%EF%BC%AE", id="fullwidth upper case"),
        pytest.param("/public%EF%BC%8F..%EF%BC%8Fadmin", id="fullwidth slashes"),
    ],
)
def test_original_uri_is_judged_by_the_strictest_reading(client: TestApp, uri: str) -> None:
    """Some upstream reads each of these as /admin (Tomcat, IIS, Windows): so does the judge."""
    ask(client, uri, who="reader", status=403)
    ask(client, uri, who="admin", status=200)
    ask(client, uri, who=None, status=401)


@pytest.mark.parametrize(
    ("uri", "who", "status"),
    [
        pytest.param("/reports/q3", "reader", 403, id="the rule's own spelling"),
        pytest.param("/Reports/q3", "reader", 403, id="the rule written capitalised"),
        pytest.param("/REPORTS/q3", "reader", 403, id="upper case"),
        pytest.param("/reports/q3", "admin", 200, id="allowed in any case"),
        pytest.param("/%C5%BFecret/x", "reader", 403, id="long s folds to s"),
        pytest.param("/%E2%84%AAiosk", "reader", 403, id="Kelvin sign folds to k"),
        pytest.param("/secret/x", "admin", 200, id="the admin passes"),
    ],
)
def test_case_insensitive_upstream_cannot_dodge_a_capitalised_rule(
    app: App, uri: str, who: str, status: int
) -> None:
    rules = [
        Rule("/Reports", HasRole("admin")),
        Rule("/secret", HasRole("admin")),
        Rule("/kiosk", HasRole("admin")),
        Rule("/", LoggedIn()),
    ]
    ask(TestApp(middleware(app, rules=rules), extra_environ=HTTPS), uri, who=who, status=status)


def test_path_parameters_on_an_ordinary_path_still_pass(client: TestApp) -> None:
    ask(client, "/movies;jsessionid=0123/list", who="reader", status=200)


# -- a mounted app judges the original URI against its own rules ------------------------------

MOUNTED = {**HTTPS, "SCRIPT_NAME": "/app"}


@pytest.mark.parametrize(
    ("uri", "who", "status"),
    [
        pytest.param("/app/admin", "reader", 403, id="its /admin, refused"),
        pytest.param("/app/admin", "admin", 200, id="its /admin, allowed"),
        pytest.param("/app/public/app.js", None, 200, id="its public path"),
        pytest.param("/app", "reader", 200, id="the mount itself"),
        pytest.param("/app/", None, 401, id="the mount's root"),
        pytest.param("/app/public/../admin", "reader", 403, id="dots within the mount"),
        pytest.param("/APP/admin", "admin", 400, id="the mount in another case"),
        pytest.param("/public/app.js", None, 400, id="outside the mount"),
        pytest.param("/admin", "admin", 400, id="outside the mount, signed in"),
        pytest.param("/application/admin", "admin", 400, id="a longer name sharing the prefix"),
        pytest.param("/app/../admin", "admin", 400, id="dots out of the mount"),
        pytest.param("/app/..;/admin", "admin", 400, id="Tomcat dots out of the mount"),
        pytest.param("/app/%2e%2e/admin", "admin", 400, id="encoded dots out of the mount"),
    ],
)
def test_mounted_app_judges_the_original_uri_under_its_mount(
    app: App, uri: str, who: str | None, status: int
) -> None:
    client = TestApp(middleware(app), extra_environ=MOUNTED)
    ask(client, uri, who=who, status=status)


# -- ordinary requests: a control character in the path is never judged as another path -----


@pytest.mark.parametrize(
    "path",
    [
        *(pytest.param(f"/admin{chr(code)}", id=f"/admin + {code:#04x}") for code in CONTROL_CODES),
        pytest.param("/public\x00/../admin", id="NUL in a public path"),
        pytest.param("/public/\r\n/../admin", id="CRLF segment"),
    ],
)
def test_control_character_in_a_request_path_is_400_where_rules_apply(app: App, path: str) -> None:
    client = TestApp(middleware(app), extra_environ=HTTPS)
    for who in ("reader", None):
        client.get("/", extra_environ={**front(who), "PATH_INFO": path}, status=400)
    assert app.paths == []


def test_control_character_path_without_rules_reaches_the_app(app: App) -> None:
    client = TestApp(middleware(app, rules=()), extra_environ=HTTPS)
    client.get("/", extra_environ={**front("reader"), "PATH_INFO": "/admin\n"}, status=200)
    assert app.paths == ["/admin\n"]


def test_rule_whose_folded_prefix_is_no_plain_path_still_starts(app: App) -> None:
    # "‥" (two dot leader) folds to "..": that folded rule cannot exist, the rule itself still applies.
    rules = [Rule("/\u2025", HasRole("admin")), Rule("/", LoggedIn())]
    client = TestApp(middleware(app, rules=rules), extra_environ=HTTPS)
    ask(client, "/%E2%80%A5/x", who="reader", status=403)
    ask(client, "/%E2%80%A5/x", who="admin", status=200)
