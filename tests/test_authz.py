"""Declarative authorization: requirements, rules and the refusal responses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from webtest import TestApp

from shibwsgi.authz import (
    AllOf,
    AnyOf,
    Check,
    HasAttribute,
    HasRole,
    LoggedIn,
    Public,
    Requirement,
    Rule,
    Rules,
    check,
    deny,
)
from shibwsgi.errors import ConfigError, RequestError
from shibwsgi.identity import Identity
from shibwsgi.paths import has_control_character, resolved

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ALICE = Identity(
    "alice@example.org",
    {"groups": ("movie-editors", "staff"), "affiliation": ("member",), "empty": ("",)},
)
BOB = Identity("bob@example.org", {"groups": ("staff",)})
NOBODY = None

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"Accept": "application/json"}


def _is_alice(identity: Identity) -> bool:
    return identity.user == "alice@example.org"


IS_ALICE = Check(_is_alice, "the user alice")


@pytest.mark.parametrize(
    ("requirement", "identity", "allowed"),
    [
        pytest.param(Public(), NOBODY, True, id="public/anonymous"),
        pytest.param(Public(), ALICE, True, id="public/alice"),
        pytest.param(LoggedIn(), NOBODY, False, id="logged-in/anonymous"),
        pytest.param(LoggedIn(), BOB, True, id="logged-in/bob"),
        pytest.param(HasAttribute("groups", "movie-editors"), ALICE, True, id="group/alice"),
        pytest.param(HasAttribute("groups", "movie-editors"), BOB, False, id="group/bob"),
        pytest.param(HasAttribute("groups", "movie-editors"), NOBODY, False, id="group/anonymous"),
        pytest.param(HasAttribute("groups", "admins", "staff"), BOB, True, id="any of values"),
        pytest.param(HasAttribute("groups", "movie"), ALICE, False, id="no substring match"),
        pytest.param(HasAttribute("groups", "Staff"), BOB, False, id="values case-sensitive"),
        pytest.param(HasAttribute("affiliation"), ALICE, True, id="present/alice"),
        pytest.param(HasAttribute("affiliation"), BOB, False, id="absent/bob"),
        pytest.param(HasAttribute("empty"), ALICE, False, id="present but empty"),
        pytest.param(HasAttribute("affiliation"), NOBODY, False, id="present/anonymous"),
        pytest.param(IS_ALICE, ALICE, True, id="check/alice"),
        pytest.param(IS_ALICE, BOB, False, id="check/bob"),
        pytest.param(IS_ALICE, NOBODY, False, id="check/anonymous not called"),
        pytest.param(AllOf(LoggedIn(), IS_ALICE), ALICE, True, id="all-of/alice"),
        pytest.param(AllOf(LoggedIn(), IS_ALICE), BOB, False, id="all-of/bob"),
        pytest.param(AnyOf(IS_ALICE, HasAttribute("groups", "staff")), BOB, True, id="any-of/bob"),
        pytest.param(AnyOf(IS_ALICE, HasAttribute("groups", "x")), BOB, False, id="any-of/none"),
        pytest.param(AnyOf(LoggedIn(), IS_ALICE), NOBODY, False, id="any-of/anonymous"),
        pytest.param(AnyOf(Public(), LoggedIn()), NOBODY, True, id="any-of with public"),
    ],
)
def test_requirement_truth_table(requirement: Requirement, identity: Identity | None, allowed: bool) -> None:
    assert requirement.allows(identity) is allowed


@pytest.mark.parametrize(
    ("requirement", "description"),
    [
        pytest.param(LoggedIn(), "a logged-in user", id="logged-in"),
        pytest.param(Public(), "nothing (public)", id="public"),
        pytest.param(HasAttribute("groups", "editors"), "'groups' = 'editors'", id="one value"),
        pytest.param(HasAttribute("groups", "a", "b"), "'groups' in ('a', 'b')", id="values"),
        pytest.param(HasAttribute("mail"), "attribute 'mail'", id="presence"),
        pytest.param(IS_ALICE, "the user alice", id="check"),
        pytest.param(
            AllOf(LoggedIn(), AnyOf(IS_ALICE, HasAttribute("mail"))),
            "a logged-in user and (the user alice or attribute 'mail')",
            id="nested",
        ),
    ],
)
def test_describe(requirement: Requirement, description: str) -> None:
    assert requirement.describe() == description


def test_requirements_are_immutable_and_comparable() -> None:
    requirement = HasAttribute("groups", "editors")
    with pytest.raises(AttributeError):
        requirement.name = "other"  # type: ignore[misc]
    assert requirement == HasAttribute("groups", "editors")
    assert hash(requirement) == hash(HasAttribute("groups", "editors"))
    assert LoggedIn() == LoggedIn()
    assert HasAttribute("groups", "a") != HasAttribute("groups", "b")


@pytest.mark.parametrize(
    ("prefix", "path", "matches"),
    [
        pytest.param("/api", "/api", True, id="exact"),
        pytest.param("/api", "/api/", True, id="trailing slash"),
        pytest.param("/api", "/api/x/y", True, id="below"),
        pytest.param("/api", "/apix", False, id="not at segment boundary"),
        pytest.param("/api", "/ap", False, id="shorter"),
        pytest.param("/api", "/", False, id="root"),
        pytest.param("/api", "/API", False, id="case-sensitive"),
        pytest.param("/api/", "/api", True, id="prefix trailing slash ignored"),
        pytest.param("/api/", "/api/x", True, id="prefix trailing slash below"),
        pytest.param("/", "/", True, id="root prefix root"),
        pytest.param("/", "/anything/at/all", True, id="root prefix everything"),
        pytest.param("/a/b", "/a/b/c", True, id="nested prefix"),
        pytest.param("/a/b", "/a/bc", False, id="nested prefix boundary"),
    ],
)
def test_rule_prefix_matching(prefix: str, path: str, matches: bool) -> None:
    assert Rule(prefix, LoggedIn()).matches(path, "GET") is matches


@pytest.mark.parametrize(
    ("methods", "method", "matches"),
    [
        pytest.param(None, "GET", True, id="all/get"),
        pytest.param(None, "PROPFIND", True, id="all/unknown verb"),
        pytest.param(["POST"], "POST", True, id="post/post"),
        pytest.param(["POST"], "GET", False, id="post/get"),
        pytest.param(["post", "Put"], "PUT", True, id="case-insensitive config"),
        pytest.param(["POST"], "post", True, id="case-insensitive request"),
        pytest.param(["GET"], "HEAD", True, id="get covers head"),
        pytest.param(["HEAD"], "GET", False, id="head does not cover get"),
        pytest.param(("DELETE",), "PROPFIND", False, id="unknown verb"),
    ],
)
def test_rule_method_matching(methods: Iterable[str] | None, method: str, matches: bool) -> None:
    assert Rule("/x", LoggedIn(), methods=methods).matches("/x", method) is matches


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Rule("api", LoggedIn()), id="prefix without slash"),
        pytest.param(lambda: Rule("", LoggedIn()), id="empty prefix"),
        pytest.param(lambda: Rule("/a?b", LoggedIn()), id="query in prefix"),
        pytest.param(lambda: Rule("/a b", LoggedIn()), id="space in prefix"),
        pytest.param(lambda: Rule("/a\\b", LoggedIn()), id="backslash in prefix"),
        pytest.param(lambda: Rule("//a", LoggedIn()), id="double slash prefix"),
        pytest.param(lambda: Rule("/a/../b", LoggedIn()), id="dot-dot prefix"),
        pytest.param(lambda: Rule("/a", LoggedIn(), methods=["FETCH"]), id="unknown method"),
        pytest.param(lambda: Rule("/a", LoggedIn(), methods="GET"), id="methods as string"),
        pytest.param(lambda: Rule("/a", LoggedIn(), methods=[]), id="empty methods"),
        pytest.param(lambda: Rule("/a", "logged-in"), id="not a requirement"),  # type: ignore[arg-type]
        pytest.param(lambda: HasAttribute(""), id="empty attribute name"),
        pytest.param(lambda: HasAttribute("groups", 3), id="non-string value"),  # type: ignore[arg-type]
        pytest.param(lambda: Check(_is_alice, ""), id="check without description"),
        pytest.param(lambda: Check("yes", "x"), id="check not callable"),  # type: ignore[arg-type]
        pytest.param(lambda: AllOf(), id="empty all-of"),
        pytest.param(lambda: AnyOf(LoggedIn(), "x"), id="any-of non-requirement"),  # type: ignore[arg-type]
        pytest.param(lambda: Rules(["/a"]), id="rules of non-rules"),  # type: ignore[list-item]
        pytest.param(
            lambda: Rules([Rule("/", LoggedIn()), Rule("/health", Public())]),
            id="general before specific",
        ),
        pytest.param(
            lambda: Rules([Rule("/api", LoggedIn()), Rule("/api/v1", Public(), ["GET"])]),
            id="shadowed by all-methods rule",
        ),
        pytest.param(
            lambda: Rules([Rule("/api", LoggedIn(), ["GET", "POST"]), Rule("/api", Public(), ["POST"])]),
            id="shadowed by wider methods",
        ),
    ],
)
def test_config_errors(make: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.setting == "rules"


EDITORS = HasAttribute("groups", "movie-editors")
RULES = Rules(
    [
        Rule("/health", Public()),
        Rule("/static", Public(), methods=["GET"]),
        Rule("/admin", HasAttribute("groups", "admins")),
        Rule("/movies", EDITORS, methods=["POST", "PUT", "DELETE"]),
        Rule("/", LoggedIn()),
    ]
)


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [
        pytest.param("/health", "GET", Public(), id="health public"),
        pytest.param("/healthz", "GET", LoggedIn(), id="health boundary"),
        pytest.param("/static/app.css", "GET", Public(), id="static get"),
        pytest.param("/static/app.css", "HEAD", Public(), id="static head"),
        pytest.param("/static/upload", "POST", LoggedIn(), id="static post falls through"),
        pytest.param("/admin/users", "GET", HasAttribute("groups", "admins"), id="admin"),
        pytest.param("/movies", "GET", LoggedIn(), id="movies read"),
        pytest.param("/movies/3", "delete", EDITORS, id="movies delete"),
        pytest.param("/", "GET", LoggedIn(), id="root"),
    ],
)
def test_rules_first_match_wins(path: str, method: str, expected: Requirement) -> None:
    assert RULES.requirement_for(path, method) == expected


def test_rules_with_no_match_give_none() -> None:
    rules = Rules([Rule("/api", LoggedIn())])
    assert rules.requirement_for("/other", "GET") is None
    assert Rules([]).requirement_for("/", "GET") is None


@pytest.mark.parametrize("path", ["", "x", "/", "/any/thing", "/caf\xc3\xa9"])
def test_root_rule_matches_every_path_even_empty(path: str) -> None:
    rules = Rules([Rule("/api", EDITORS), Rule("/", LoggedIn())])
    assert rules.requirement_for(path, "GET") == LoggedIn()


def test_prefix_rule_matches_nothing_that_does_not_start_with_it() -> None:
    rules = Rules([Rule("/api", EDITORS), Rule("/movies", LoggedIn(), ["POST"])])
    for path in ("", "/", "/ap", "/apix", "/Api", "/movie", "/moviesx"):
        assert rules.requirement_for(path, "POST") is None, path
    assert rules.requirement_for("/api", "GET") == EDITORS
    assert rules.requirement_for("/movies/1/edit", "POST") == LoggedIn()


def test_rules_order_decides() -> None:
    rules = Rules([Rule("/api", LoggedIn(), ["GET"]), Rule("/api", EDITORS)])
    assert rules.requirement_for("/api/x", "GET") == LoggedIn()
    assert rules.requirement_for("/api/x", "POST") == EDITORS


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("//admin/users", id="double slash"),
        pytest.param("/./admin/users", id="dot segment"),
        pytest.param("/static/../admin/users", id="dot-dot out of public"),
        pytest.param("/static//../admin", id="dot-dot with empty segment"),
    ],
)
def test_path_tricks_cannot_bypass_admin_rule(path: str) -> None:
    requirement = RULES.requirement_for(path, "GET")
    assert requirement is not None
    assert not requirement.allows(BOB)
    assert requirement.allows(Identity("carol", {"groups": ("admins",)}))


def test_dot_dot_into_public_still_needs_original_rule() -> None:
    # "/admin/../health" may be routed either way; both rules must allow it.
    requirement = RULES.requirement_for("/admin/../health", "GET")
    assert requirement == AllOf(HasAttribute("groups", "admins"), Public())
    assert requirement is not None
    assert not requirement.allows(None)


# -- deny / check through WSGI ------------------------------------------------


def _guarded(requirement: Requirement) -> TestApp:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refusal = check(environ, start_response, requirement)
        if refusal is not None:
            return refusal
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"secret"]

    return TestApp(app)


def _env(identity: Identity | None, **extra: str) -> dict[str, Any]:
    return {"shibwsgi.identity": identity, "shibwsgi.login_path": "/login", **extra}


def _next(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/login"
    return parse_qs(parts.query)["next"][0]


@pytest.mark.parametrize(
    ("identity", "headers", "status", "content_type"),
    [
        pytest.param(ALICE, HTML, 200, "text/plain", id="allowed/html"),
        pytest.param(ALICE, JSON, 200, "text/plain", id="allowed/json"),
        pytest.param(NOBODY, HTML, 302, None, id="anonymous browser redirected"),
        pytest.param(NOBODY, JSON, 401, "application/json", id="anonymous api 401"),
        pytest.param(NOBODY, {}, 401, "application/json", id="anonymous no accept 401"),
        pytest.param(BOB, HTML, 403, "text/html", id="forbidden browser"),
        pytest.param(BOB, JSON, 403, "application/json", id="forbidden api"),
        pytest.param(BOB, {}, 403, "application/json", id="forbidden no accept"),
    ],
)
def test_check_status_table(
    identity: Identity | None,
    headers: dict[str, str],
    status: int,
    content_type: str | None,
) -> None:
    app = _guarded(EDITORS)
    response = app.get("/movies/3", headers=headers, extra_environ=_env(identity), status="*")
    assert response.status_int == status
    if content_type is not None:
        assert response.content_type == content_type
    assert "WWW-Authenticate" not in response.headers
    assert response.headers.get("Cache-Control", "no-store") == "no-store"


def test_anonymous_browser_redirect_keeps_path_and_query() -> None:
    app = _guarded(LoggedIn())
    response = app.get("/movies/a%20b?id=3&q=100%25", headers=HTML, extra_environ=_env(None), status=302)
    assert _next(response.location) == "/movies/a%20b?id=3&q=100%25"


def test_redirect_next_is_url_quoted() -> None:
    app = _guarded(LoggedIn())
    response = app.get("/movies?id=3&x=y", headers=HTML, extra_environ=_env(None), status=302)
    assert response.headers["Location"] == "/login?next=%2Fmovies%3Fid%3D3%26x%3Dy"


def test_redirect_honours_script_name() -> None:
    app = _guarded(LoggedIn())
    response = app.get("/movies", headers=HTML, extra_environ=_env(None, SCRIPT_NAME="/films"), status=302)
    assert response.headers["Location"] == "/films/login?next=%2Ffilms%2Fmovies"


def test_scheme_relative_request_path_cannot_become_open_redirect() -> None:
    app = _guarded(LoggedIn())
    response = app.get("/", headers=HTML, extra_environ=_env(None, PATH_INFO="//evil.example/x"), status=302)
    assert _next(response.location) == "/"


def test_non_ascii_request_path_is_percent_encoded_in_next() -> None:
    app = _guarded(LoggedIn())
    path_info = "/films/am\u00e9lie".encode().decode("latin-1")  # as a WSGI server passes it
    response = app.get("/", headers=HTML, extra_environ=_env(None, PATH_INFO=path_info), status=302)
    assert _next(response.location) == "/films/am%C3%A9lie"


def test_api_401_says_how_to_log_in() -> None:
    response = _guarded(LoggedIn()).get("/x", headers=JSON, extra_environ=_env(None), status=401)
    assert response.json["error"].startswith("authentication required")
    assert "/login" in response.json["error"]


def test_browser_without_login_path_gets_401() -> None:
    response = _guarded(LoggedIn()).get(
        "/x", headers=HTML, extra_environ={"shibwsgi.identity": None}, status=401
    )
    assert response.content_type == "text/html"


def test_forbidden_message_names_requirement_not_user_values() -> None:
    identity = Identity("bob@example.org", {"groups": ("secret-project-x",)})
    response = _guarded(EDITORS).get("/x", headers=JSON, extra_environ=_env(identity), status=403)
    message = response.json["error"]
    assert "movie-editors" in message
    assert "secret-project-x" not in message
    assert "bob@example.org" not in message


def test_forbidden_html_is_escaped() -> None:
    requirement = Check(_is_alice, "<script>x</script>")
    response = _guarded(requirement).get("/x", headers=HTML, extra_environ=_env(BOB), status=403)
    assert "<script>x" not in response.text
    assert "&lt;script&gt;" in response.text


def test_spoofed_identity_type_is_not_trusted() -> None:
    # Only a real Identity counts; anything else in the environ is treated as anonymous.
    response = _guarded(LoggedIn()).get(
        "/x",
        headers=JSON,
        extra_environ=_env("alice"),  # type: ignore[arg-type]
        status=401,
    )
    assert response.status_int == 401


def test_public_allows_anonymous() -> None:
    response = _guarded(Public()).get("/health", extra_environ=_env(None))
    assert response.text == "secret"


def test_deny_directly() -> None:
    captured: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured.append(status)
        return lambda data: None

    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "HTTP_ACCEPT": "*/*"}
    body = deny(environ, start_response, ALICE, IS_ALICE)
    assert captured == ["403 Forbidden"]
    assert b"the user alice" in b"".join(body)


# -- every spelling of a path meets the rules of each of its readings ------------------------------

_SPELLING_RULES = [
    Rule("/api/roles", HasRole("admin")),
    Rule("/api/movies", HasAttribute("groups", "editors"), methods=["POST", "PUT"]),
    Rule("/movies", HasAttribute("groups", "editors")),
]
_PEOPLE = [
    None,
    Identity("anyone@example.org"),
    Identity("ed@example.org", attributes={"groups": ("editors",)}),
    Identity("root@example.org", roles=("admin",)),
]


@settings(max_examples=400, deadline=None)
@given(
    path=st.tuples(
        st.sampled_from(["/", "", "//", "/./"]),
        st.lists(
            st.sampled_from(["api", "roles", "movies", "a", "", ".", "..", " ", "\x01", "\x85", "é"]),
            max_size=5,
        ),
    ).map(lambda parts: parts[0] + "/".join(parts[1])),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]),
)
@example(path="/api/roles", method="GET")
@example(path="/api/movies", method="PUT")
@example(path="/movies/new", method="GET")
def test_no_spelling_of_a_path_gets_past_a_rule(path: str, method: str) -> None:
    """Whatever the path (plain, doubled slashes, dot segments, control characters), the
    requirement applied is at least the first matching rule of the path as sent and as resolved."""
    rules = Rules(_SPELLING_RULES)
    try:
        requirement = rules.requirement_for(path, method, default=Public())
    except RequestError:
        assert has_control_character(path)
        return
    for person in _PEOPLE:
        if not requirement.allows(person):
            continue
        for reading in (path, resolved(path)):
            first = next((rule for rule in _SPELLING_RULES if rule.matches(reading, method)), None)
            assert first is None or first.requirement.allows(person), (reading, person)
