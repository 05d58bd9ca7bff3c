"""Roles from the application's own data: the ``roles=`` hook, in-process with WebTest.

Resolution, both deployment styles' caching (the TTL with an injected clock), the hook
failing in every way (503, never a 500, never roles it did not return), the JSON round
trip, HasRole in rules and in Flask, and the options and SHIBWSGI_* settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
from flask import Flask
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, Identity, SSOMiddleware
from shibwsgi import roles as roles_module
from shibwsgi.authz import AnyOf, HasAttribute, HasRole, LoggedIn, Rule
from shibwsgi.flask import requires
from shibwsgi.sessions import MemoryStore, SQLiteStore
from shibwsgi.testing import environ_for
from tests.helpers import ROLES_TABLE, Clock, echo_app, table_roles

KEY = "k" * 32
HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}
START = 1_795_400_000.0
ATTRIBUTES = {"groups": Attribute("isMemberOf", multi=True)}


class Hook:
    """A roles hook over a dict, counting its calls."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, identity: Identity) -> Any:
        self.calls.append(identity.user)
        return self.table.get(identity.user, [])


def front(user: str, groups: Iterable[str] = ("staff",)) -> dict[str, str]:
    expires = datetime.fromtimestamp(START + 86_400, UTC)
    return environ_for("shibboleth", user, {"isMemberOf": list(groups)}, expires_at=expires)


def roles_seen(app: TestApp, environ: dict[str, str] | None = None, path: str = "/page") -> Any:
    identity = app.get(path, extra_environ=environ or {}).json["identity"]
    return None if identity is None else identity["roles"]


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def make_app(clock: Clock) -> Callable[..., TestApp]:
    def make(**options: Any) -> TestApp:
        options.setdefault("attributes", ATTRIBUTES)
        return TestApp(SSOMiddleware(echo_app, clock=clock, **options), extra_environ=HTTPS)

    return make


@pytest.fixture
def hanging() -> Iterator[threading.Event]:
    """An event hooks wait on; set at teardown so that no hung thread outlives the test."""
    release = threading.Event()
    yield release
    release.set()


# -- resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(["editor"], ["editor"], id="a list"),
        pytest.param(("b", "a", "b"), ["a", "b"], id="sorted, duplicates once"),
        pytest.param({"admin", "editor"}, ["admin", "editor"], id="a set"),
        pytest.param((role for role in ["z", "y"]), ["y", "z"], id="a generator"),
        pytest.param([], [], id="no roles"),
        pytest.param(["rôle 管理"], ["rôle 管理"], id="non-ASCII names"),
    ],
)
def test_hook_answer_becomes_identity_roles(
    make_app: Callable[..., TestApp], answer: Iterable[str], expected: list[str]
) -> None:
    app = make_app(roles=lambda identity: answer)
    assert roles_seen(app, front("alice@example.org")) == expected


def test_without_a_hook_roles_are_empty(make_app: Callable[..., TestApp]) -> None:
    assert roles_seen(make_app(), front("alice@example.org")) == []


def test_anonymous_requests_never_call_the_hook(make_app: Callable[..., TestApp]) -> None:
    hook = Hook({})
    app = make_app(roles=hook)
    assert roles_seen(app) is None
    assert hook.calls == []


def test_hook_receives_the_verified_identity(make_app: Callable[..., TestApp]) -> None:
    seen: list[Identity] = []

    def hook(identity: Identity) -> list[str]:
        seen.append(identity)
        return ["editor"] if "movie-editors" in identity.attributes.get("groups", ()) else []

    app = make_app(roles=hook)
    assert roles_seen(app, front("ed@example.org", ["movie-editors"])) == ["editor"]
    assert roles_seen(app, front("rob@example.org")) == []
    assert [identity.user for identity in seen] == ["ed@example.org", "rob@example.org"]


# -- whole-site style: cached per identity for roles_ttl seconds ---------------------------


def test_whole_site_caches_roles_per_identity_for_the_ttl(
    make_app: Callable[..., TestApp], clock: Clock
) -> None:
    table = {"alice@example.org": ["editor"]}
    hook = Hook(table)
    app = make_app(roles=hook, roles_ttl=60)
    alice = front("alice@example.org")
    assert roles_seen(app, alice) == ["editor"]
    table["alice@example.org"] = ["admin"]  # the database changes
    clock.now += 59
    assert roles_seen(app, alice) == ["editor"]  # still cached
    assert hook.calls == ["alice@example.org"]
    clock.now += 1
    assert roles_seen(app, alice) == ["admin"]  # the TTL is over: asked again
    assert hook.calls == ["alice@example.org"] * 2


def test_cache_is_per_user_and_attributes(make_app: Callable[..., TestApp]) -> None:
    hook = Hook({"alice@example.org": ["editor"], "bob@example.org": ["admin"]})
    app = make_app(roles=hook)
    assert roles_seen(app, front("alice@example.org")) == ["editor"]
    assert roles_seen(app, front("bob@example.org")) == ["admin"]
    assert roles_seen(app, front("alice@example.org")) == ["editor"]
    assert hook.calls == ["alice@example.org", "bob@example.org"]
    # New attributes (a group added at the IdP) are another identity: asked again.
    assert roles_seen(app, front("alice@example.org", ["staff", "movie-editors"])) == ["editor"]
    assert hook.calls[-1] == "alice@example.org"
    assert len(hook.calls) == 3


def test_new_front_end_session_with_the_same_attributes_keeps_the_cached_roles(
    make_app: Callable[..., TestApp],
) -> None:
    hook = Hook({"alice@example.org": ["editor"]})
    app = make_app(roles=hook)
    first, second = front("alice@example.org"), front("alice@example.org")
    first["Shib-Session-ID"], second["Shib-Session-ID"] = "_first", "_second"
    for _ in range(2):
        assert roles_seen(app, first) == ["editor"]
    identity = app.get("/page", extra_environ=second).json["identity"]
    assert (identity["roles"], identity["session_id"]) == (["editor"], "_second")  # its own session
    assert hook.calls == ["alice@example.org"]


def test_attributes_changing_back_and_forth_ask_the_hook_each_time(
    make_app: Callable[..., TestApp],
) -> None:
    table = {"alice@example.org": ["editor"]}
    hook = Hook(table)
    app = make_app(roles=hook)
    assert roles_seen(app, front("alice@example.org", ["staff"])) == ["editor"]
    table["alice@example.org"] = ["admin"]
    assert roles_seen(app, front("alice@example.org", ["staff", "movie-editors"])) == ["admin"]
    assert roles_seen(app, front("alice@example.org", ["staff"])) == ["admin"]  # never the old answer
    assert len(hook.calls) == 3


def test_ttl_zero_asks_the_hook_on_every_request(make_app: Callable[..., TestApp]) -> None:
    hook = Hook({"alice@example.org": ["editor"]})
    app = make_app(roles=hook, roles_ttl=0)
    for _ in range(3):
        assert roles_seen(app, front("alice@example.org")) == ["editor"]
    assert len(hook.calls) == 3


def test_clock_going_backwards_does_not_extend_the_cache(
    make_app: Callable[..., TestApp], clock: Clock
) -> None:
    table = {"alice@example.org": ["editor"]}
    hook = Hook(table)
    app = make_app(roles=hook)
    roles_seen(app, front("alice@example.org"))
    table["alice@example.org"] = []
    clock.now -= 3600
    assert roles_seen(app, front("alice@example.org")) == []


# -- lazy style: resolved at login, kept with the session -----------------------------------


@pytest.fixture
def lazy_app(make_app: Callable[..., TestApp], clock: Clock) -> Callable[[Hook], TestApp]:
    def make(hook: Hook) -> TestApp:
        return make_app(roles=hook, session=MemoryStore(clock=clock), secret_key=KEY)

    return make


def test_lazy_style_resolves_at_login_and_keeps_roles_with_the_session(
    lazy_app: Callable[[Hook], TestApp], clock: Clock
) -> None:
    table = {"alice@example.org": ["editor"]}
    hook = Hook(table)
    app = lazy_app(hook)
    app.get("/login", extra_environ=front("alice@example.org"), status=302)
    assert roles_seen(app) == ["editor"]
    table["alice@example.org"] = []  # revoked in the database
    clock.now += 600
    assert roles_seen(app) == ["editor"]  # the session keeps what login resolved
    assert hook.calls == ["alice@example.org"]
    # Logging in again picks the change up at once, cached answer or not.
    app.get("/login", extra_environ=front("alice@example.org"), status=302)
    assert roles_seen(app) == []
    assert hook.calls == ["alice@example.org"] * 2


def test_login_asks_the_hook_even_when_the_answer_is_cached(lazy_app: Callable[[Hook], TestApp]) -> None:
    table = {"alice@example.org": ["editor"]}
    hook = Hook(table)
    app = lazy_app(hook)
    assert roles_seen(app, front("alice@example.org")) == ["editor"]  # cached now
    table["alice@example.org"] = ["admin"]
    app.get("/login", extra_environ=front("alice@example.org"), status=302)
    assert roles_seen(app) == ["admin"]


def test_logout_works_while_the_hook_is_broken(make_app: Callable[..., TestApp], clock: Clock) -> None:
    def broken(identity: Identity) -> list[str]:
        raise RuntimeError("database down")

    app = make_app(roles=broken, session=MemoryStore(clock=clock), secret_key=KEY)
    response = app.get("/logout", extra_environ=front("alice@example.org"), status=302)
    assert "Shibboleth.sso/Logout" in response.location


def test_roles_survive_a_real_session_store(
    make_app: Callable[..., TestApp], tmp_path: Any, clock: Clock
) -> None:
    """Kept with the session: through the SQLite store's JSON and back."""
    hook = Hook({"alice@example.org": ["z-role", "admin"]})
    store = SQLiteStore(str(tmp_path / "sessions.sqlite3"))
    first = make_app(roles=hook, session=store, secret_key=KEY)
    first.get("/login", extra_environ=front("alice@example.org"), status=302)
    # Another worker: nothing cached, only the store.
    second = make_app(roles=Hook({}), session=store, secret_key=KEY)
    second.cookiejar = first.cookiejar
    assert roles_seen(second) == ["admin", "z-role"]


# -- the hook failing: 503, never a 500, never roles it did not return ----------------------


def raising(identity: Identity) -> list[str]:
    raise RuntimeError("connection refused: postgres://user:secret@db/movies")


def raising_midway(identity: Identity) -> Iterator[str]:
    yield "editor"
    raise OSError("lost the database")


@pytest.mark.parametrize(
    ("hook", "logged"),
    [
        pytest.param(raising, "raised RuntimeError", id="raises"),
        pytest.param(raising_midway, "raised OSError", id="generator raising midway"),
        pytest.param(lambda identity: None, "returned NoneType", id="returns None"),
        pytest.param(lambda identity: "editor", "returned str", id="returns one string"),
        pytest.param(lambda identity: b"editor", "returned bytes", id="returns bytes"),
        pytest.param(lambda identity: 3, "returned int", id="returns a number"),
        pytest.param(lambda identity: [1], "is int, not a string", id="a role that is not text"),
        pytest.param(lambda identity: [""], "empty", id="an empty role name"),
        pytest.param(lambda identity: ["a\r\nb"], "control characters", id="control characters"),
        pytest.param(lambda identity: ["x" * 257], "longer than 256", id="a huge role name"),
        pytest.param(lambda identity: map(str, range(1001)), "more than 1000", id="too many roles"),
    ],
)
def test_failing_hook_answers_503_with_an_operator_message(
    make_app: Callable[..., TestApp],
    caplog: pytest.LogCaptureFixture,
    hook: Callable[[Identity], Any],
    logged: str,
) -> None:
    app = make_app(roles=hook)
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        response = app.get("/page", extra_environ=front("alice@example.org"), status=503)
    assert response.json["status"] == 503
    assert "roles hook" in response.json["error"]
    assert "secret" not in response.text and "postgres" not in response.text
    assert logged in caplog.text
    assert "test_roles:" in caplog.text  # names the hook


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("no message for you")


def raising_unprintable(identity: Identity) -> list[str]:
    raise Unprintable


@pytest.mark.parametrize(
    ("hook", "logged"),
    [
        pytest.param(lambda identity: {"admin": False}, "returned dict", id="a dict denying admin"),
        pytest.param(lambda identity: {"admin": True}, "returned dict", id="a dict granting admin"),
        pytest.param(
            lambda identity: MappingProxyType({"admin": 1}), "returned mappingproxy", id="a mapping"
        ),
        pytest.param(lambda identity: bytearray(b"admin"), "returned bytearray", id="a bytearray"),
        pytest.param(lambda identity: memoryview(b"admin"), "returned memoryview", id="a memoryview"),
        pytest.param(lambda identity: [b"admin"], "is bytes, not a string", id="bytes items"),
        pytest.param(lambda identity: ["admin", None], "is NoneType, not a string", id="a None item"),
        pytest.param(lambda identity: [("admin",)], "is tuple, not a string", id="nested items"),
        pytest.param(raising_unprintable, "raised Unprintable", id="an exception whose str() raises"),
    ],
)
def test_hook_answer_that_is_not_role_names_is_503_never_a_grant(
    make_app: Callable[..., TestApp],
    caplog: pytest.LogCaptureFixture,
    hook: Callable[[Identity], Any],
    logged: str,
) -> None:
    app = make_app(roles=hook, rules=[Rule("/admin", HasRole("admin"))])
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        response = app.get("/admin", extra_environ=front("alice@example.org"), status=503)
    assert "roles hook" in response.json["error"]
    assert logged in caplog.text
    assert "admin" not in caplog.text.replace("/admin", "")  # the type, never the value


def test_role_names_of_a_str_subclass_become_plain_strings() -> None:
    class Loud(str):
        def __eq__(self, other: object) -> bool:
            return True  # would match any role a requirement names

        __hash__ = str.__hash__

    resolver = roles_module.RolesResolver(lambda identity: [Loud("editor")], clock=time.time)
    roles = resolver.with_roles(Identity("alice@example.org")).roles
    assert roles == ("editor",)
    assert [type(role) for role in roles] == [str]


def test_thread_that_cannot_start_is_503_and_frees_its_slot(
    make_app: Callable[..., TestApp], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    app = make_app(roles=lambda identity: ["admin"])
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with caplog.at_level(logging.WARNING, logger="shibwsgi"):
            for _ in range(roles_module.MAX_RUNNING + 4):  # more failures than there are slots
                response = app.get("/page", extra_environ=front("alice@example.org"), status=503)
                assert "could not run" in response.json["error"]
    assert "can't start new thread" in caplog.text
    assert roles_seen(app, front("alice@example.org")) == ["admin"]  # every slot came back


def test_the_lookup_bound_is_per_middleware(
    make_app: Callable[..., TestApp], hanging: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roles_module, "MAX_RUNNING", 1)
    hung = make_app(roles=lambda identity: hanging.wait() and [], roles_timeout=0.1)
    hung.get("/page", extra_environ=front("alice@example.org"), status=503)
    assert (
        "still busy" in hung.get("/page", extra_environ=front("alice@example.org"), status=503).json["error"]
    )
    other = make_app(roles=lambda identity: ["editor"])
    assert roles_seen(other, front("alice@example.org")) == ["editor"]


def test_failing_hook_blocks_the_login_too(make_app: Callable[..., TestApp], clock: Clock) -> None:
    app = make_app(roles=raising, session=MemoryStore(clock=clock), secret_key=KEY)
    app.get("/login", extra_environ=front("alice@example.org"), status=503)
    assert not app.cookies  # no session with made-up roles


def test_failing_hook_never_falls_back_to_cached_roles(
    make_app: Callable[..., TestApp], clock: Clock
) -> None:
    healthy = [True]

    def flaky(identity: Identity) -> list[str]:
        if not healthy[0]:
            raise RuntimeError("database down")
        return ["admin"]

    app = make_app(roles=flaky)
    assert roles_seen(app, front("alice@example.org")) == ["admin"]
    healthy[0] = False
    clock.now += 61
    app.get("/page", extra_environ=front("alice@example.org"), status=503)
    healthy[0] = True
    assert roles_seen(app, front("alice@example.org")) == ["admin"]  # failures are not cached


def test_hanging_hook_answers_503_after_roles_timeout(
    make_app: Callable[..., TestApp], hanging: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(roles=lambda identity: hanging.wait() and [], roles_timeout=0.2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        response = app.get("/page", extra_environ=front("alice@example.org"), status=503)
    assert time.monotonic() - started < 5  # not forever
    assert "in time" in response.json["error"]
    assert "within 0.2 s (roles_timeout)" in caplog.text


def test_hung_hooks_fill_their_slots_then_fail_at_once(
    make_app: Callable[..., TestApp], hanging: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roles_module, "MAX_RUNNING", 2)
    calls: list[str] = []

    def hook(identity: Identity) -> list[str]:
        calls.append(identity.user)
        hanging.wait()
        return []

    app = make_app(roles=hook, roles_timeout=0.1)
    for _ in range(2):
        app.get("/page", extra_environ=front("alice@example.org"), status=503)
    response = app.get("/page", extra_environ=front("alice@example.org"), status=503)
    assert "still busy" in response.json["error"]
    assert len(calls) == 2  # no third thread started
    hanging.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the slots come back when the calls end
        if app.get("/page", extra_environ=front("alice@example.org"), expect_errors=True).status_int == 200:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the hook's slots never came back")


def test_failing_hook_answers_html_to_browsers(make_app: Callable[..., TestApp]) -> None:
    app = make_app(roles=raising)
    response = app.get(
        "/page", extra_environ=front("alice@example.org"), headers={"Accept": "text/html"}, status=503
    )
    assert response.content_type == "text/html"
    assert "roles hook" in response.text


# -- the JSON round trip ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles",
    [pytest.param((), id="none"), pytest.param(("admin", "editor", "rôle"), id="several")],
)
def test_identity_json_round_trips_roles(roles: tuple[str, ...]) -> None:
    identity = Identity(user="alice@example.org", roles=roles)
    assert identity.to_dict()["roles"] == list(roles)
    assert Identity.from_json(identity.to_json()) == identity
    assert Identity.from_json(identity.to_json()).roles == roles


def test_identity_roles_are_a_sorted_tuple_of_distinct_names() -> None:
    assert Identity(user="u", roles=["b", "a", "b"]).roles == ("a", "b")  # type: ignore[arg-type]
    assert Identity(user="u").roles == ()


def test_identity_json_without_roles_reads_as_no_roles() -> None:
    """Sessions stored before roles existed stay readable."""
    assert Identity.from_json('{"user": "u"}').roles == ()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"user": "u", "roles": "admin"}', id="a string"),
        pytest.param('{"user": "u", "roles": [1]}', id="not strings"),
    ],
)
def test_identity_json_with_malformed_roles_is_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Identity.from_json(text)


# -- HasRole --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "roles", "allowed"),
    [
        pytest.param(HasRole("editor"), ("editor",), True, id="holds the role"),
        pytest.param(HasRole("editor"), ("admin",), False, id="holds another role"),
        pytest.param(HasRole("editor"), (), False, id="no roles"),
        pytest.param(HasRole("editor", "admin"), ("admin",), True, id="any of several"),
        pytest.param(
            AnyOf(HasAttribute("groups", "movie-editors"), HasRole("editor")), (), False, id="neither"
        ),
    ],
)
def test_has_role(requirement: Any, roles: tuple[str, ...], allowed: bool) -> None:
    assert requirement.allows(Identity(user="u", roles=roles)) is allowed
    assert requirement.allows(None) is False


def test_has_role_describes_itself_without_user_values() -> None:
    assert HasRole("editor").describe() == "role 'editor'"
    assert HasRole("editor", "admin").describe() == "one of the roles 'editor', 'admin'"


@pytest.mark.parametrize(
    "names", [pytest.param((), id="no names"), pytest.param(("",), id="empty"), pytest.param((3,), id="int")]
)
def test_has_role_needs_names(names: tuple[Any, ...]) -> None:
    with pytest.raises(ConfigError, match="rules"):
        HasRole(*names)


@pytest.mark.parametrize(
    ("user", "status"),
    [
        pytest.param("admin@example.org", 200, id="role holder passes"),
        pytest.param("rob@example.org", 403, id="others refused"),
    ],
)
def test_has_role_in_path_rules(make_app: Callable[..., TestApp], user: str, status: int) -> None:
    app = make_app(
        roles=Hook({"admin@example.org": ["admin"]}),
        rules=[Rule("/admin", HasRole("admin")), Rule("/", LoggedIn())],
    )
    response = app.get("/admin/users", extra_environ=front(user), status=status)
    if status == 403:
        assert response.json["error"] == "access denied: requires role 'admin'"


@pytest.mark.parametrize(
    ("user", "status"),
    [
        pytest.param("ed@example.org", 200, id="role holder passes"),
        pytest.param("rob@example.org", 403, id="others refused"),
        pytest.param(None, 401, id="anonymous"),
    ],
)
def test_has_role_in_flask_requires(make_app: Callable[..., TestApp], user: str | None, status: int) -> None:
    flask_app = Flask(__name__)

    @flask_app.post("/movies")
    @requires(HasRole("editor"))
    def create() -> str:
        return "created"

    app = TestApp(
        SSOMiddleware(flask_app, attributes=ATTRIBUTES, roles=Hook({"ed@example.org": ["editor"]})),
        extra_environ=HTTPS,
    )
    app.post("/movies", extra_environ=front(user) if user else {}, status=status)


# -- options and settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"roles": "app.roles:hook"}, "roles", id="hook given as a string"),
        pytest.param({"roles": table_roles, "roles_ttl": -1}, "roles_ttl", id="negative ttl"),
        pytest.param({"roles": table_roles, "roles_ttl": True}, "roles_ttl", id="boolean ttl"),
        pytest.param({"roles": table_roles, "roles_ttl": 1.5}, "roles_ttl", id="fractional ttl"),
        pytest.param({"roles": table_roles, "roles_timeout": 0}, "roles_timeout", id="zero timeout"),
        pytest.param(
            {"roles": table_roles, "roles_timeout": float("nan")}, "roles_timeout", id="nan timeout"
        ),
        pytest.param({"roles": table_roles, "roles_timeout": float("inf")}, "roles_timeout", id="no timeout"),
        pytest.param({"roles": table_roles, "roles_timeout": "5"}, "roles_timeout", id="timeout as text"),
    ],
)
def test_bad_roles_options_raise_config_error(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SSOMiddleware(echo_app, **options)
    assert raised.value.setting == setting


def test_roles_options_default_to_a_minute_and_five_seconds() -> None:
    middleware = SSOMiddleware(echo_app, roles=table_roles)
    assert middleware.roles is not None
    assert (middleware.roles.ttl, middleware.roles.timeout) == (60, 5.0)
    assert SSOMiddleware(echo_app).roles is None


def test_roles_hook_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ROLES_TABLE, "alice@example.org", ["editor"])
    settings = {
        "SHIBWSGI_ATTRIBUTES": "groups=isMemberOf:multi",
        "SHIBWSGI_ROLES": "tests.helpers:table_roles",
        "SHIBWSGI_ROLES_TTL": "30",
        "SHIBWSGI_ROLES_TIMEOUT": "2.5",
    }
    middleware = SSOMiddleware.from_mapping(echo_app, settings)
    assert middleware.roles is not None
    assert (middleware.roles.hook, middleware.roles.ttl, middleware.roles.timeout) == (table_roles, 30, 2.5)
    assert roles_seen(TestApp(middleware), front("alice@example.org")) == ["editor"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        pytest.param({"SHIBWSGI_ROLES": "tests.test_roles"}, "SHIBWSGI_ROLES", id="no function"),
        pytest.param({"SHIBWSGI_ROLES": "no.such.module:f"}, "SHIBWSGI_ROLES", id="no module"),
        pytest.param({"SHIBWSGI_ROLES": "tests.test_roles:nope"}, "SHIBWSGI_ROLES", id="no attribute"),
        pytest.param({"SHIBWSGI_ROLES": "tests.helpers:ROLES_TABLE"}, "SHIBWSGI_ROLES", id="not callable"),
        pytest.param({"SHIBWSGI_ROLES_TTL": "a minute"}, "SHIBWSGI_ROLES_TTL", id="ttl not a number"),
        pytest.param({"SHIBWSGI_ROLES_TIMEOUT": "soon"}, "SHIBWSGI_ROLES_TIMEOUT", id="timeout not a number"),
    ],
)
def test_bad_roles_settings_name_the_setting(settings: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SSOMiddleware.from_mapping(echo_app, settings)
    assert raised.value.setting == key
