"""Attacks on the movie app against its promises (README "The demo", issue 16 item 15).

``/api/me`` leaks, the forms' CSRF binding, the roles API's user ids, who writes are
recorded for, and odd input to every endpoint (never a 500).
"""

from __future__ import annotations

import io
from contextlib import closing
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from app_fixtures import EDITOR_GROUP, person, sso_app
from test_app_pages import token_of
from webtest import TestApp

from app import csrf
from app.db import all_roles, connect, grant_role
from app.movies import public_identity
from shibwsgi import Identity, SSOMiddleware
from shibwsgi.testing import environ_for

ADA = "ada@example.org"
BEN = "ben@example.org"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"


def editor(user: str = ADA, **options: Any) -> dict[str, str]:
    return environ_for("shibboleth", user, person(user.split("@")[0], user, [EDITOR_GROUP]), **options)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "movies.sqlite3"


@pytest.fixture
def wsgi_app(db_path: Path) -> SSOMiddleware:
    return sso_app(db_path, {"SHIBWSGI_ROLES_TTL": "0"})


def call(app: Any, method: str, path: str, *, query: str = "", body: bytes = b"", **environ: Any) -> str:
    """A raw WSGI call, for bytes WebTest would not send (non-UTF-8 queries, broken headers)."""
    request: dict[str, Any] = {
        **editor(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        **environ,
    }
    setup_testing_defaults(request)
    request.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query)
    request["wsgi.input"] = io.BytesIO(body)
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)

    b"".join(app(request, start_response))
    return status[0]


# -- /api/me -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("jwt", "opaque-1", id="jwt"),
        pytest.param("id_jwt", "opaque-2", id="a JWT by name"),
        pytest.param("authorization", "Basic YWRhOnB3", id="Authorization"),
        pytest.param("api_key", "k", id="api_key"),
        pytest.param("apiKey", "k", id="apiKey"),
        pytest.param("ssh-key", "k", id="ssh-key"),
        pytest.param("SAMLResponse", "PHNhbWxwOlJlc3BvbnNl", id="SAMLResponse"),
        pytest.param("MELLON_SAML_RESPONSE", "PHNhbWxwOlJlc3BvbnNl", id="mellon's SAML response"),
        pytest.param("pwd", "hunter2", id="pwd"),
        pytest.param("otp", "123456", id="one-time code"),
        pytest.param("oidc_sid", "abc", id="sid claim"),
        pytest.param("x-amzn-oidc-data", JWT, id="ALB's signed claims, a JWT"),
        pytest.param("userinfo", JWT, id="a JWT under an innocent name"),
        pytest.param("upstream", f"Bearer {JWT}", id="a bearer credential under an innocent name"),
        pytest.param("encrypted", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", id="a JWE"),
    ],
)
def test_me_never_shows_a_credential_by_name_or_by_shape(name: str, value: str) -> None:
    shown = public_identity(Identity(ADA, {name: (value,), "name": ("Ada",)}, session_id="_s1"))
    assert shown["attributes"] == {"name": ["Ada"]}
    assert value not in str(shown)


@pytest.mark.parametrize("value", ["_8a7b6c", "sp:_8a7b6c;idp"], ids=["the session id", "inside a value"])
def test_me_never_shows_the_session_id_under_another_attribute_name(value: str) -> None:
    shown = public_identity(Identity(ADA, {"handle": (value,), "name": ("Ada",)}, session_id="_8a7b6c"))
    assert "_8a7b6c" not in str(shown) and shown["attributes"] == {"name": ["Ada"]}


@pytest.mark.parametrize(
    "name",
    [
        "name",
        "email",
        "groups",
        "affiliation",
        "eduPersonPrincipalName",
        "entitlement",
        "given_name",
        "monkeys",
    ],
)
def test_me_still_shows_ordinary_attributes(name: str) -> None:
    assert public_identity(Identity(ADA, {name: ("value",)}))["attributes"] == {name: ["value"]}


def test_me_over_http_hides_a_mapped_alb_token_and_session_id(db_path: Path) -> None:
    settings = {"SHIBWSGI_ATTRIBUTES": "name=displayName data=amznData handle=Shib-Session-ID"}
    app = sso_app(db_path, settings)
    environ = environ_for(
        "shibboleth", ADA, {"displayName": "Ada", "amznData": JWT}, session_id="_deadbeefcafe"
    )
    body = TestApp(app).get("/api/me", extra_environ=environ).text
    assert JWT not in body and "_deadbeefcafe" not in body and "Ada" in body


# -- CSRF binding --------------------------------------------------------------------------------


def _cookie_paths(app: Any, script_name: str) -> tuple[list[str], list[str]]:
    browser = TestApp(app, extra_environ={**editor(session_id="_s"), "SCRIPT_NAME": script_name})

    def paths(response: Any) -> list[str]:
        cookies = [value for value in response.headers.getall("Set-Cookie") if value.startswith(csrf.COOKIE)]
        return [
            part.strip()
            for cookie in cookies
            for part in cookie.split(";")
            if part.strip().startswith("Path=")
        ]

    return paths(browser.get("/")), paths(browser.get("/logout", status=302))


@pytest.mark.parametrize(
    "script_name",
    [
        pytest.param("/movies/", id="trailing slash"),
        pytest.param("/films-\xc3\xa9", id="non-ASCII, as WSGI latin-1"),
        pytest.param("/a b", id="space"),
        pytest.param("//evil.example", id="doubled leading slash"),
    ],
)
def test_forms_cookie_is_dropped_at_logout_with_the_path_it_was_set_with(
    wsgi_app: SSOMiddleware, script_name: str
) -> None:
    """A browser deletes only a cookie of the very same path: otherwise the token outlives the logout."""
    made, dropped = _cookie_paths(wsgi_app, script_name)
    assert made and made == dropped
    assert made[0].isascii() and not made[0].startswith("Path=//")


@pytest.mark.parametrize(
    ("settings", "logout"),
    [
        pytest.param({}, "/logout", id="default logout path"),
        pytest.param({"SHIBWSGI_LOGOUT_PATH": "/signout"}, "/signout", id="moved logout path"),
        pytest.param({"SHIBWSGI_LOGIN_PATH": "/signin"}, "/signin", id="moved login path"),
    ],
)
def test_forms_cookie_is_dropped_at_the_configured_login_and_logout_paths(
    db_path: Path, settings: dict[str, str], logout: str
) -> None:
    """The binding ends wherever the middleware's own login and logout paths are, not at fixed names."""
    browser = TestApp(sso_app(db_path, settings), extra_environ=editor(session_id="_s"))
    browser.get("/")
    ended = browser.get(logout, status=302).headers.getall("Set-Cookie")
    assert [cookie for cookie in ended if cookie.startswith(f"{csrf.COOKIE}=;") and "Max-Age=0" in cookie]


def test_token_of_one_user_is_refused_for_the_next_user_of_the_same_browser(wsgi_app: SSOMiddleware) -> None:
    browser = TestApp(wsgi_app)
    token = token_of(browser.get("/", extra_environ=editor()))
    browser.post("/movies/1/delete", {"csrf_token": token}, extra_environ=editor(BEN), status=400)


def test_token_of_an_ended_front_end_session_is_refused(wsgi_app: SSOMiddleware) -> None:
    browser = TestApp(wsgi_app)
    token = token_of(browser.get("/", extra_environ=editor(session_id="_old")))
    browser.post(
        "/movies/1/delete", {"csrf_token": token}, extra_environ=editor(session_id="_new"), status=400
    )


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        pytest.param("http://[::1", 403, id="malformed IPv6 origin"),
        pytest.param("null", 403, id="opaque origin"),
        pytest.param("http://localhost@evil.example", 403, id="userinfo lookalike"),
        pytest.param("http://localhost.evil.example", 403, id="suffix lookalike"),
        pytest.param("http://evil.example#@localhost", 403, id="fragment lookalike"),
        pytest.param("http://localhost:80", 303, id="default port spelt out"),
    ],
)
def test_origin_check_never_500s_and_names_one_host(
    wsgi_app: SSOMiddleware, origin: str, status: int
) -> None:
    browser = TestApp(wsgi_app, extra_environ=editor())
    token = token_of(browser.get("/"))
    browser.post("/movies/1/delete", {"csrf_token": token}, headers={"Origin": origin}, status=status)


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param("", id="empty"),
        pytest.param("x", id="short"),
        pytest.param("flipped", id="one character changed"),
        pytest.param("\xe9" * 43, id="non-ASCII of the right length"),
        pytest.param("x; movies_csrf=good", id="a forged copy sent first"),
    ],
)
def test_missing_or_forged_cookie_is_refused(wsgi_app: SSOMiddleware, forged: str) -> None:
    browser = TestApp(wsgi_app, extra_environ=editor())
    token = token_of(browser.get("/"))
    good = browser.cookies[csrf.COOKIE]
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    cookie = forged.replace("flipped", flipped).replace("good", good)
    fresh = TestApp(wsgi_app, extra_environ={**editor(), "HTTP_COOKIE": f"{csrf.COOKIE}={cookie}"})
    fresh.post("/movies/1/delete", {"csrf_token": token}, status=400)


# -- the roles API's user ids ----------------------------------------------------------------------


@pytest.fixture
def admin(wsgi_app: SSOMiddleware, db_path: Path) -> TestApp:
    with closing(connect(str(db_path))) as db:
        grant_role(db, ADA, "admin", by="test")
    return TestApp(wsgi_app, extra_environ=environ_for("shibboleth", ADA, person("Ada", ADA)))


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("%E2%80%AEnimda", id="right-to-left override"),
        pytest.param("ada%E2%80%8B", id="zero-width space"),
        pytest.param("%EF%BB%BFada", id="byte order mark"),
        pytest.param("ada%C2%A0", id="no-break space at the end"),
        pytest.param("ada%E2%80%A8x", id="line separator"),
        pytest.param("%C0%AF", id="overlong slash"),
        pytest.param("%F4%90%80%80", id="beyond U+10FFFF"),
        pytest.param("ada%0D%0Aeve", id="CRLF"),
        pytest.param("%00", id="NUL"),
    ],
)
def test_roles_put_for_a_user_id_the_middleware_never_makes_is_refused(
    admin: TestApp, db_path: Path, user: str
) -> None:
    response = admin.put_json(f"/api/roles/{user}", {"roles": ["admin"]}, expect_errors=True)
    assert response.status_int in (400, 404)  # a newline ends the route's path: 404
    with closing(connect(str(db_path))) as db:
        assert set(all_roles(db)) == {ADA}


@pytest.mark.parametrize(
    ("path", "user"),
    [
        pytest.param("zoe%CC%88@example.org", "zoe\u0308@example.org", id="decomposed accent, kept as sent"),
        pytest.param("%F0%9F%8E%AC", "\U0001f3ac", id="emoji"),
        pytest.param("a%2Fb", "a/b", id="escaped slash"),
    ],
)
def test_roles_put_for_an_odd_but_producible_user_id_is_stored_verbatim(
    admin: TestApp, path: str, user: str
) -> None:
    assert admin.put_json(f"/api/roles/{path}", ["editor"]).json == {"user": user, "roles": ["editor"]}


# -- writes record the right user ----------------------------------------------------------------


def test_each_write_records_the_user_of_its_own_request(wsgi_app: SSOMiddleware) -> None:
    browser = TestApp(wsgi_app)
    created = browser.post_json("/api/movies", {"title": "Heat"}, extra_environ=editor(), status=201).json
    changed = browser.put_json(
        f"/api/movies/{created['id']}", {"published": 1995}, extra_environ=editor(BEN), status=200
    ).json
    assert (changed["created_by"], changed["updated_by"]) == (ADA, BEN)


def test_forged_user_headers_do_not_change_who_is_recorded(wsgi_app: SSOMiddleware) -> None:
    forged = {"HTTP_EPPN": "mallory@example.org", "HTTP_REMOTE_USER": "mallory@example.org"}
    created = TestApp(wsgi_app).post_json(
        "/api/movies", {"title": "Heat"}, extra_environ={**editor(), **forged}, status=201
    )
    assert created.json["created_by"] == ADA


# -- odd input: never a 500 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/api/movies", "/api/movies/all", "/api/me", "/api/roles", "/movies/1/edit"]
)
@pytest.mark.parametrize(
    "query", ["id=\xff", "done=\xc3", "next=\xed\xa0\x80"], ids=["FF", "cut", "surrogate"]
)
def test_query_string_of_raw_non_utf8_bytes_is_4xx_not_500(
    wsgi_app: SSOMiddleware, path: str, query: str
) -> None:
    assert call(wsgi_app, "GET", path, query=query)[:3] in ("400", "403")  # /api/roles: not an admin


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/movies/99999999999999999999"),
        ("PUT", "/api/movies/99999999999999999999"),
        ("DELETE", "/api/movies/99999999999999999999"),
        ("GET", "/api/movies/9223372036854775808"),
        ("GET", "/api/movies/0"),
        ("GET", "/movies/99999999999999999999/edit"),
        ("POST", "/movies/99999999999999999999/delete"),
    ],
)
def test_movie_id_beyond_sqlite_is_404(wsgi_app: SSOMiddleware, method: str, path: str) -> None:
    browser = TestApp(wsgi_app, extra_environ=editor())
    token = token_of(browser.get("/"))
    if path.startswith("/api/"):
        browser.request(
            path, method=method, body=b'{"title": "x"}', content_type="application/json", status=404
        )
    elif method == "POST":
        browser.post(path, {"csrf_token": token}, status=404)
    else:
        browser.get(path, status=404)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b'{"title": "x", "published": ' + b"1" * 5000 + b"}", 400, id="a 5000-digit year"),
        pytest.param(b'{"title": "x", "published": 1e400}', 400, id="an infinite year"),
        pytest.param(b'{"title": "x", "published": 1995.0}', 400, id="a float year"),
        pytest.param(
            b'{"title": "x", "published": "\\u0661\\u0669\\u0669\\u0665"}', 400, id="Arabic-Indic digits"
        ),
        pytest.param(b'{"title": "\\udc80"}', 400, id="a lone surrogate"),
        pytest.param(b'{"\\ud800": 1}', 400, id="a lone surrogate key"),
        pytest.param(b'{"title": "x", "director": {"$ne": null}}', 400, id="an object for a string"),
        pytest.param(b"\xef\xbb\xbf{}", 400, id="a byte order mark"),
        pytest.param(b"[" * 60_000, 400, id="absurd nesting"),
        pytest.param(b'{"title": "' + b"x" * 70_000 + b'"}', 413, id="over 64 KB"),
        pytest.param(b"NaN", 400, id="NaN"),
    ],
)
def test_odd_json_bodies_are_4xx(wsgi_app: SSOMiddleware, body: bytes, status: int) -> None:
    browser = TestApp(wsgi_app, extra_environ=editor())
    browser.post("/api/movies", body, content_type="application/json", status=status)
    browser.put("/api/movies/1", body, content_type="application/json", status=status)


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"title": "x", "published": "\u0661\u0669\u0669\u0665"}, id="Arabic-Indic year"),
        pytest.param({"title": "x" * 600}, id="too long"),
        pytest.param({"title": "   "}, id="blank"),
    ],
)
def test_odd_form_posts_are_400_pages(wsgi_app: SSOMiddleware, form: dict[str, str]) -> None:
    browser = TestApp(wsgi_app, extra_environ=editor())
    token = token_of(browser.get("/"))
    browser.post("/movies", {**form, "csrf_token": token}, status=400)
    browser.post("/movies/1/edit", {**form, "csrf_token": token}, status=400)


def test_form_post_with_undecodable_bytes_is_not_a_500(wsgi_app: SSOMiddleware) -> None:
    browser = TestApp(wsgi_app, extra_environ=editor())
    token = token_of(browser.get("/"))
    body = f"csrf_token={token}&title=%FF%FE".encode()
    response = browser.post(
        "/movies", body, content_type="application/x-www-form-urlencoded", expect_errors=True
    )
    assert response.status_int in (303, 400)


def test_odd_request_headers_are_not_a_500(wsgi_app: SSOMiddleware) -> None:
    for header in (
        {"HTTP_ORIGIN": "\xff"},
        {"HTTP_COOKIE": "movies_csrf=\xff"},
        {"HTTP_ORIGIN": "http://a:99999"},
    ):
        for method, path in (("GET", "/"), ("POST", "/movies"), ("POST", "/movies/1/delete")):
            assert not call(wsgi_app, method, path, body=b"csrf_token=x&title=y", **header).startswith("5")


@pytest.mark.parametrize("length", ["-1", "abc", "", " 5", "1e3", "0x10", "99999999999999999999"])
def test_odd_content_length_is_4xx(wsgi_app: SSOMiddleware, length: str) -> None:
    status = call(
        wsgi_app,
        "POST",
        "/api/movies",
        body=b'{"title": "x"}',
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=length,
    )
    assert status[:3] in ("400", "413")


def test_chunked_body_over_the_limit_is_refused(wsgi_app: SSOMiddleware) -> None:
    """A streamed body is cut at the limit by Werkzeug: never stored, though 400 rather than 413."""
    body = b'{"title": "' + b"x" * 70_000 + b'"}'
    status = call(
        wsgi_app,
        "POST",
        "/api/movies",
        body=body,
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input_terminated": True},
    )
    assert status[:3] in ("400", "413")


def test_markup_in_titles_and_attributes_is_escaped_on_every_page(wsgi_app: SSOMiddleware) -> None:
    marked = person("<b>Ada</b>", ADA, [EDITOR_GROUP, "<script>group()</script>"])
    browser = TestApp(wsgi_app, extra_environ=environ_for("shibboleth", ADA, marked))
    movie = {"title": "<script>title()</script>", "director": '"><img src=x onerror=director()>'}
    created = browser.post_json("/api/movies", movie, status=201).json
    for page in (browser.get("/"), browser.get(f"/movies/{created['id']}/edit")):
        assert "<script>" not in page.text.replace('<script src="', "")
        assert "<img src=x" not in page.text and "<b>Ada" not in page.text


_PATHS = [
    "/",
    "/api/me",
    "/api/movies",
    "/api/movies/all",
    "/api/movies/1",
    "/api/movies/0",
    "/api/movies/99999999999999999999",
    "/api/roles",
    "/api/roles/ada@example.org",
    "/movies",
    "/movies/1/edit",
    "/movies/1/delete",
    "/static/missing.css",
]
_BODIES = [
    (b"", "application/json"),
    (b"null", "application/json"),
    (b'{"title": ["x"]}', "application/json"),
    (b'{"roles": {"admin": true}}', "application/json"),
    (b"\xff\xfe{", "application/json; charset=utf-16"),
    (b"title=%FF&csrf_token=%00", "application/x-www-form-urlencoded"),
    (
        b"--x\r\nContent-Disposition: form-data; name=title\r\n\r\nx\r\n--x--\r\n",
        "multipart/form-data; boundary=x",
    ),
    (b"--x\r\n", "multipart/form-data"),
]


def test_every_endpoint_method_and_odd_body_answers_below_500(wsgi_app: SSOMiddleware, db_path: Path) -> None:
    with closing(connect(str(db_path))) as db:
        grant_role(db, ADA, "admin", by="test")
    browser = TestApp(wsgi_app, extra_environ=editor())
    failures = []
    for path in _PATHS:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
            for body, content_type in _BODIES if method in ("POST", "PUT", "PATCH") else [(b"", "")]:
                headers = {"Content-Type": content_type} if content_type else {}
                response = browser.request(
                    path, method=method, body=body, headers=headers, expect_errors=True
                )
                if response.status_int >= 500:
                    failures.append((method, path, body[:20], response.status_int))
    assert failures == []


@pytest.mark.parametrize(
    "path", ["/static/\xff", "/api/movies/\xff", "/movies/\xc0\xaf/edit", "/\xed\xa0\x80"]
)
def test_undecodable_paths_answer_below_500(wsgi_app: SSOMiddleware, path: str) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        assert call(wsgi_app, method, path)[:1] == "4"
