"""Attacks on the request path's fast paths: the rules' inline decision, the roles cache's
inline expiry check, the core's skipped probe and session steps, the movie app's session paths.

Each is checked against the promise (README "Authorization", "Roles from your own data",
"Security model"; the docstrings), through both shells where the request path runs:
the WSGI middleware and the ASGI one. The rules are also compared, differentially, with
the full reading the inline path short-cuts (:func:`full_requirement_for`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webtest import TestApp

from shibwsgi import Attribute, Identity, SSOMiddleware
from shibwsgi.asgi import SSOMiddleware as ASGIMiddleware
from shibwsgi.authz import AllOf, HasAttribute, LoggedIn, Public, Requirement, Rule, Rules
from shibwsgi.core import Core, Decision
from shibwsgi.errors import RequestError, RolesError
from shibwsgi.paths import has_control_character, resolved
from shibwsgi.probe import REACHED_HEADER, TOKEN_HEADER
from shibwsgi.roles import RolesResolver
from shibwsgi.testing import environ_for
from tests.asgi_support import Recorder, acall, as_headers, scope_for
from tests.helpers import Clock, mojibake

PROXY = "127.0.0.1"
HEADERS = {"profile": "oauth2-proxy", "channel": "headers", "trusted_proxies": [PROXY]}
ADMINS, WRITERS = "admins", "writers"
RULES = [
    Rule("/admin", HasAttribute("groups", ADMINS)),
    Rule("/api", HasAttribute("groups", WRITERS), methods=["POST", "PUT", "DELETE"]),
    Rule("/café", HasAttribute("groups", ADMINS)),
    Rule("/public", Public()),
    Rule("/", LoggedIn()),
]
ATTRIBUTES = {"groups": Attribute("groups", multi=True)}
PROBE_TOKEN = "a-probe-token-of-some-length"


# --- the oracle: the promise, written independently of the code ---------------------------------


def segments_resolved(path: str) -> str:
    """``path`` with empty and ``.`` segments dropped and ``..`` taking one back, as a server routes it."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


def first_rule(rules: list[Rule], path: str, method: str) -> Requirement | None:
    """The first rule's requirement for ``path``: a prefix at a segment boundary, GET covering HEAD."""
    for rule in rules:
        if rule.methods is not None:
            methods = set(rule.methods) | ({"HEAD"} if "GET" in rule.methods else set())
            if method.upper() not in methods:
                continue
        prefix = rule.wsgi_prefix
        if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
            return rule.requirement
    return None


def expected_status(path: str, method: str, groups: list[str] | None) -> int:
    """What the promise says a request gets: 400, 401, 403, or 200 (the app)."""
    path = path or "/"
    if any(character < " " or character == "\x7f" for character in path):
        return 400
    identity = None if groups is None else Identity("u", {"groups": tuple(groups)})
    for form in (path, segments_resolved(path)):
        requirement = first_rule(RULES, form, method)
        if requirement is not None and not requirement.allows(identity):
            return 401 if identity is None else 403
    return 200


def full_requirement_for(
    rules: Rules, path: str, method: str, default: Requirement | None = None
) -> Requirement | None:
    """The full reading, as ``requirement_for`` was before the inline path (75ef4e4~1)."""
    if has_control_character(path):
        raise RequestError("control character")
    found = rules._first(path, method) or default
    normalised = resolved(path)
    if normalised == path:
        return found
    other = rules._first(normalised, method) or default
    if found is None or found == other:
        return other
    if other is None:
        return found
    return AllOf(found, other)


# --- paths an attacker spells ------------------------------------------------------------------

PIECES = [
    "/", "/", "/", ".", "..", "%", "%2e", ";", ";x", "\\", "admin", "administrator", "Admin", "ADMIN",
    "api", "public", "café", "x", " ", "..;", "...", "\xa0", "\uff0f", "\u2024", "\u0301", "\u200b",
    mojibake("café"), mojibake("\uff0f"), mojibake("\u2024"), "\x85", "\x9f", "\x80", "\udcff",
    "\x00", "\n", "\r", "\t", "\x7f", "\u2028", "\ufffd", "é",
]  # fmt: skip

paths = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=12).map(lambda parts: "/" + "".join(parts)),
    st.sampled_from(["/admin", "/admin/", "/admin.", "/admin ", "/admin/..", "/public/../admin", "admin"]),
)
methods = st.sampled_from(["GET", "HEAD", "POST", "put", "Delete", "OPTIONS", "PATCH", "po\u017ft"])
people = st.sampled_from([None, [], ["staff"], [ADMINS], [WRITERS], [ADMINS, WRITERS]])


@settings(max_examples=600, deadline=None, database=None)
@given(path=paths, method=methods)
def test_inline_rules_decide_every_path_as_the_full_reading_does(path: str, method: str) -> None:
    rules = Rules(RULES)
    for default in (None, LoggedIn()):
        try:
            expected: object = full_requirement_for(rules, path, method, default)
        except RequestError:
            expected = RequestError
        try:
            got: object = rules.requirement_for(path, method, default=default)
        except RequestError:
            got = RequestError
        assert got == expected, (path, method)


@settings(max_examples=600, deadline=None, database=None)
@given(path=paths, method=methods, groups=people)
def test_no_spelling_of_a_path_gets_past_the_rule_of_its_path_as_sent_or_resolved(
    path: str, method: str, groups: list[str] | None
) -> None:
    wanted = expected_status(path, method, groups)
    identity = None if groups is None else Identity("u", {"groups": tuple(groups)})
    try:
        requirement = Rules(RULES).requirement_for(path or "/", method)
    except RequestError as exc:
        assert exc.status == wanted == 400
        return
    allowed = requirement is None or requirement.allows(identity)
    assert allowed == (wanted == 200), (path, method, groups, requirement)


# --- the same through both shells --------------------------------------------------------------


def plain_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the app"]


def front(user: str = "alice@example.org", groups: list[str] | None = None) -> dict[str, str]:
    """oauth2-proxy's request headers for ``user``, as WSGI environ keys."""
    headers = environ_for("oauth2-proxy", user, None if groups is None else {"groups": groups})
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items() if "-" in name}


def wsgi_environ(
    path: str, method: str = "GET", groups: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "app.example.org",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "REMOTE_ADDR": PROXY,
        "HTTP_HOST": "app.example.org",
    }
    if groups is not None:
        environ.update(front(groups=groups))
    environ.update(extra)
    return environ


def wsgi_call(app: Any, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.extend([status, headers])

    body = b"".join(app(environ, start_response))
    return int(seen[0].split()[0]), dict(seen[1]), body


def wsgi_middleware(**options: Any) -> SSOMiddleware:
    return SSOMiddleware(plain_app, **{**HEADERS, "attributes": ATTRIBUTES, "rules": RULES, **options})


def asgi_middleware(**options: Any) -> ASGIMiddleware:
    return ASGIMiddleware(Recorder(), **{**HEADERS, "attributes": ATTRIBUTES, "rules": RULES, **options})


def asgi_status(app: ASGIMiddleware, path: str, method: str, groups: list[str] | None, **scope: Any) -> int:
    headers = [] if groups is None else as_headers(front(groups=groups))
    root = scope.pop("root_path", "")
    built = scope_for("/", headers, client=(PROXY, 1), method=method, **scope)
    built["path"], built["root_path"] = root + path, root
    return asyncio.run(acall(app, built)).status


def wsgi_form(text: str) -> str:
    """An ASGI path (decoded text) as the WSGI server hands the same bytes over."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


asgi_paths = paths.filter(lambda path: path.startswith("/") and path not in ("/login", "/logout"))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=asgi_paths, method=methods, groups=people)
def test_wsgi_and_asgi_refuse_every_spelling_alike_and_as_promised(
    path: str, method: str, groups: list[str] | None
) -> None:
    method = method.upper() if method.isascii() else method
    wanted = expected_status(wsgi_form(path), method, groups)
    status, _, _ = wsgi_call(WSGI, wsgi_environ(wsgi_form(path), method, groups))
    assert status == wanted, (path, method, groups)
    assert asgi_status(ASGI, path, method, groups) == wanted, (path, method, groups)


WSGI = wsgi_middleware()
ASGI = asgi_middleware()


@pytest.mark.parametrize(
    ("path", "groups", "status"),
    [
        pytest.param("/administrator", ["staff"], 200, id="a longer name is not below /admin"),
        pytest.param("/admin", ["staff"], 403, id="the prefix itself"),
        pytest.param("/admin/", ["staff"], 403, id="the prefix with a slash"),
        pytest.param("/admin/x/y", ["staff"], 403, id="below the prefix"),
        pytest.param("/public/../admin", ["staff"], 403, id="dot-dot into the prefix"),
        pytest.param("/public/./../admin/", ["staff"], 403, id="dot and dot-dot into the prefix"),
        pytest.param("//admin", ["staff"], 403, id="doubled leading slash"),
        pytest.param("/public//../admin", ["staff"], 403, id="doubled slash before dot-dot"),
        pytest.param("/admin/..", None, 401, id="dot-dot out of the prefix keeps its rule"),
        pytest.param("/./admin", ["staff"], 403, id="dot segment first"),
        pytest.param("admin", ["staff"], 403, id="no leading slash"),
        pytest.param("/admin" + "/x" * 50_000, ["staff"], 403, id="very long path below the prefix"),
        pytest.param("/x" * 50_000 + "/" + "../" * 50_000 + "admin", ["staff"], 403, id="very long climb"),
        pytest.param(mojibake("/café/x"), ["staff"], 403, id="non-ASCII prefix in the WSGI form"),
        pytest.param(mojibake("/cafés"), ["staff"], 200, id="non-ASCII prefix at a segment boundary"),
        pytest.param("/public/..\\admin", ["staff"], 200, id="backslash is no separator here"),
    ],
)
def test_wsgi_rules_hold_at_segment_boundaries_and_after_resolution(
    path: str, groups: list[str] | None, status: int
) -> None:
    assert wsgi_call(WSGI, wsgi_environ(path, groups=groups))[0] == status


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/admin\n", id="newline after the prefix"),
        pytest.param("/admin\x00", id="NUL after the prefix"),
        pytest.param("/public\r\n/../admin", id="CRLF before a climb"),
        pytest.param("/x\x7f", id="DEL"),
        pytest.param("/\tadmin", id="tab"),
        pytest.param("/\x1f", id="unit separator"),
    ],
)
def test_a_control_character_in_the_path_is_400_in_both_shells(path: str) -> None:
    status, _, body = wsgi_call(WSGI, wsgi_environ(path, groups=[ADMINS, WRITERS]))
    assert status == 400 and b"control character" in body
    assert asgi_status(ASGI, path, "GET", [ADMINS, WRITERS]) == 400


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/x\x85", id="C1 next line"),
        pytest.param("/x\x9f", id="C1 control"),
        pytest.param("/x\xa0", id="NBSP"),
        pytest.param("/x\u2028", id="line separator"),
        pytest.param("/x\udcff", id="surrogate escape"),
    ],
)
def test_a_path_not_printable_without_a_control_character_is_judged_not_refused(path: str) -> None:
    """The inline path hands these to the full reading: still judged, still no 400, still no 500."""
    assert wsgi_call(WSGI, wsgi_environ(path, groups=[]))[0] == 200
    assert wsgi_call(WSGI, wsgi_environ("/admin" + path, groups=[]))[0] == 403
    assert wsgi_call(WSGI, wsgi_environ(path))[0] == 401


@pytest.mark.parametrize(
    ("method", "groups", "status"),
    [
        pytest.param("POST", ["staff"], 403, id="POST is restricted"),
        pytest.param("post", ["staff"], 403, id="lower-case post is POST"),
        pytest.param("Put", ["staff"], 403, id="mixed-case PUT"),
        pytest.param("GET", ["staff"], 200, id="GET falls through to the next rule"),
        pytest.param("GET", None, 401, id="GET still needs a login"),
        pytest.param("POST", [WRITERS], 200, id="writers may POST"),
        pytest.param("OPTIONS", ["staff"], 200, id="an unrestricted method"),
    ],
)
def test_rule_methods_apply_as_documented_in_both_shells(
    method: str, groups: list[str] | None, status: int
) -> None:
    assert wsgi_call(WSGI, wsgi_environ("/api/movies", method, groups))[0] == status
    assert asgi_status(ASGI, "/api/movies", method, groups) == status


def test_get_rule_covers_head_on_the_inline_path() -> None:
    rules = Rules([Rule("/x", HasAttribute("groups", ADMINS), methods=["GET"]), Rule("/", Public())])
    assert rules.requirement_for("/x/y", "HEAD") == HasAttribute("groups", ADMINS)
    assert rules.requirement_for("/x/y", "head") == HasAttribute("groups", ADMINS)
    assert rules.requirement_for("/x/y", "POST") == Public()


def test_rules_judge_path_info_under_a_script_name_mount() -> None:
    environ = wsgi_environ("/admin", groups=["staff"], SCRIPT_NAME="/mount")
    assert wsgi_call(WSGI, environ)[0] == 403
    environ = wsgi_environ("/public", groups=None, SCRIPT_NAME="/admin")
    assert wsgi_call(WSGI, environ)[0] == 200  # the mount is not the app's path


def test_anonymous_browser_under_a_mount_is_sent_to_login_with_next() -> None:
    environ = wsgi_environ("/admin/x", SCRIPT_NAME="/mount", QUERY_STRING="a=1", HTTP_ACCEPT="text/html")
    status, headers, _ = wsgi_call(WSGI, environ)
    assert status == 302
    assert headers["Location"] == "/mount/login?next=%2Fmount%2Fadmin%2Fx%3Fa%3D1"


def test_asgi_root_path_is_stripped_before_the_rules() -> None:
    assert asgi_status(ASGI, "/admin", "GET", ["staff"], root_path="/mount") == 403
    assert asgi_status(ASGI, "/public", "GET", None, root_path="/mount") == 200
    assert asgi_status(ASGI, "", "GET", None, root_path="/mount") == 401


def starlette_admin(**options: Any) -> ASGIMiddleware:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def view(request: Any) -> PlainTextResponse:
        return PlainTextResponse(f"the {request.url.path} page")

    app = Starlette(routes=[Route("/admin", view), Route("/dmin", view)])
    return ASGIMiddleware(app, **{**HEADERS, "attributes": ATTRIBUTES, **options})


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        pytest.param([Rule("/admin", HasAttribute("groups", ADMINS))], "/admin", id="Starlette's reading"),
        pytest.param([Rule("/dmin", HasAttribute("groups", ADMINS))], "/admin", id="Quart's reading"),
        pytest.param([Rule("/admin", HasAttribute("groups", ADMINS))], "/admin/x", id="below, Starlette's"),
        pytest.param([Rule("/dmin", HasAttribute("groups", ADMINS))], "/admin/", id="below, Quart's"),
    ],
)
def test_asgi_path_starting_with_root_path_off_a_segment_boundary_is_judged_both_ways(
    rules: list[Rule], path: str
) -> None:
    """hypercorn --root-path /a leaves the path as sent: "/admin" under root_path "/a".
    Starlette routes "/admin" (not below the mount), Quart "dmin" as "/dmin"."""
    app = starlette_admin(rules=rules)
    headers = as_headers(front(groups=["staff"]))
    built = scope_for(path, headers, client=(PROXY, 1))
    built["root_path"] = "/a"
    reply = asyncio.run(acall(app, built, Recorder()))
    assert reply.status == 403, reply.body
    assert asgi_status(asgi_middleware(rules=rules), path[2:], "GET", ["staff"], root_path="/a") == 403


def status_of_readings(readings: list[str], method: str, groups: list[str] | None) -> int:
    """The promise over several readings of one request: each reading's rules apply."""
    statuses = [expected_status(reading, method, groups) for reading in readings]
    return next((status for status in (400, 401, 403) if status in statuses), 200)


roots = st.sampled_from(["/m", "/a", "/adm", "/admin", "/pub", "/public", "/a/"])


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(root=roots, path=asgi_paths, groups=people)
def test_asgi_root_path_never_lets_a_reading_past_its_rules(
    root: str, path: str, groups: list[str] | None
) -> None:
    """``path`` is the whole path as the server sent it; ``root`` its root_path, at a boundary or not."""
    if path.startswith(root):
        rest = path[len(root) :]
        readings = [rest] if not rest or rest[0] == "/" else [path, "/" + rest]
    else:
        readings = [path]
    readings = [wsgi_form(reading) for reading in readings]
    if any(reading in ("/login", "/logout") for reading in readings):
        return
    headers = [] if groups is None else as_headers(front(groups=groups))
    built = scope_for("/", headers, client=(PROXY, 1))
    built["path"], built["root_path"] = path, root
    assert asyncio.run(acall(ASGI, built)).status == status_of_readings(readings, "GET", groups)


def test_asgi_websocket_off_the_root_path_boundary_is_refused_at_the_handshake() -> None:
    built = scope_for("/admin", as_headers(front(groups=["staff"])), client=(PROXY, 1), kind="websocket")
    built["root_path"] = "/a"
    reply = asyncio.run(acall(asgi_middleware(rules=[Rule("/dmin", LoggedIn()), Rule("/", Public())]), built))
    assert reply.scope is not None  # signed in: the /dmin reading lets it through
    reply = asyncio.run(acall(asgi_middleware(rules=[Rule("/dmin", HasAttribute("groups", ADMINS))]), built))
    assert reply.scope is None and reply.status in (403, 1008)


def test_asgi_path_below_root_path_at_a_boundary_is_judged_once() -> None:
    app = asgi_middleware(rules=[Rule("/dmin", HasAttribute("groups", ADMINS)), Rule("/", Public())])
    assert asgi_status(app, "/dmin", "GET", ["staff"], root_path="/a") == 403
    assert asgi_status(app, "/admin", "GET", ["staff"], root_path="/a") == 200  # "/a/admin" is "/admin"
    assert asgi_status(app, "/admin", "GET", None, root_path="/b") == 200


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/\ud800", id="lone high surrogate"),
        pytest.param("/admin/\udfff", id="lone low surrogate below a prefix"),
        pytest.param("/\udcff\ud800", id="surrogate escape then a lone surrogate"),
    ],
)
def test_asgi_path_with_a_lone_surrogate_is_judged_never_a_500(path: str) -> None:
    status = asgi_status(ASGI, path, "GET", ["staff"])
    assert status == (403 if path.startswith("/admin") else 200)


def test_asgi_root_path_with_a_lone_surrogate_is_never_a_500() -> None:
    assert asgi_status(ASGI, "/admin", "GET", ["staff"], root_path="/\ud800") == 403


# --- roles: the cache's inline expiry ----------------------------------------------------------


class Hook:
    """A roles hook answering ``role-<user>`` (and the provider), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, identity: Identity) -> list[str]:
        with self.lock:
            self.calls += 1
        return [
            f"role-{identity.user}",
            f"from-{identity.provider}",
            f"by-{identity.profile}",
            *identity.attributes.get("groups", ()),
        ]


def person(
    user: str, *, groups: tuple[str, ...] = ("staff",), provider: str = "idp", profile: str = "p"
) -> Identity:
    return Identity(user, {"groups": groups}, profile=profile, provider=provider)


@pytest.fixture
def clock() -> Clock:
    return Clock(1_795_400_000.0)


def test_roles_hit_is_only_ever_the_users_own_from_many_threads() -> None:
    resolver = RolesResolver(Hook(), ttl=60, clock=time.time)
    users = [person(f"u{index}@example.org", groups=(f"g{index % 3}",)) for index in range(24)]
    wrong: list[tuple[str, tuple[str, ...]]] = []
    barrier = threading.Barrier(8)

    def work(offset: int) -> None:
        barrier.wait()
        for round_ in range(60):
            identity = users[(offset * 7 + round_) % len(users)]
            # A new but equal object half the time, as a new request would parse it.
            if round_ % 2:
                identity = person(identity.user, groups=identity.attributes["groups"])
            roles = resolver.with_roles(identity).roles
            if f"role-{identity.user}" not in roles or identity.attributes["groups"][0] not in roles:
                wrong.append((identity.user, roles))

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(person("a@example.org", provider="other-idp"), id="same user, another provider"),
        pytest.param(person("a@example.org", profile="q"), id="same user, another profile"),
        pytest.param(person("a@example.org", groups=("admins",)), id="same user, changed attributes"),
    ],
)
def test_roles_are_asked_again_for_another_provider_profile_or_attributes(
    other: Identity, clock: Clock
) -> None:
    hook = Hook()
    resolver = RolesResolver(hook, ttl=60, clock=clock)
    first = resolver.with_roles(person("a@example.org"))
    second = resolver.with_roles(other)
    assert hook.calls == 2
    assert second.roles == tuple(sorted(hook(other)))
    assert first.roles != second.roles


def test_roles_hit_keeps_the_requests_own_session_id(clock: Clock) -> None:
    resolver = RolesResolver(Hook(), ttl=60, clock=clock)
    resolver.with_roles(Identity("a", {"g": ("x",)}, session_id="one"))
    again = resolver.with_roles(Identity("a", {"g": ("x",)}, session_id="two"))
    assert again.session_id == "two" and again.roles == ("by-", "from-None", "role-a")


@pytest.mark.parametrize(
    ("ttl", "step", "asked"),
    [
        pytest.param(0, 0.0, 2, id="ttl 0 asks on every request"),
        pytest.param(1, 0.999, 1, id="ttl 1 reuses within the second"),
        pytest.param(1, 1.0, 2, id="ttl 1 asks again at one second"),
        pytest.param(60, 59.0, 1, id="within the ttl"),
        pytest.param(60, 60.0, 2, id="at the ttl"),
        pytest.param(60, -0.001, 2, id="clock a moment back"),
        pytest.param(60, -1e9, 2, id="clock far back"),
        pytest.param(10**400, 1e300, 1, id="ttl past float's range, far ahead"),
        pytest.param(10**400, -1.0, 2, id="ttl past float's range, clock back"),
        pytest.param(60, float("inf"), 2, id="clock jumps to infinity"),
        pytest.param(60, float("nan"), 2, id="clock says NaN"),
    ],
)
def test_roles_cache_expiry_with_clock_jumps(ttl: int, step: float, asked: int, clock: Clock) -> None:
    hook = Hook()
    resolver = RolesResolver(hook, ttl=ttl, clock=clock)
    resolver.with_roles(person("a"))
    clock.now += step
    resolver.with_roles(person("a"))
    assert hook.calls == asked


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(float("inf"), id="asked at infinity"),
        pytest.param(float("-inf"), id="asked at minus infinity"),
        pytest.param(float("nan"), id="asked at NaN"),
    ],
)
def test_an_entry_asked_at_an_odd_time_is_never_live_forever(start: float, clock: Clock) -> None:
    hook = Hook()
    resolver = RolesResolver(hook, ttl=10**400, clock=clock)
    clock.now = start
    resolver.with_roles(person("a"))
    for now in (0.0, 1e308, -1e308):
        clock.now = now
        resolver.with_roles(person("a"))
        clock.now = start  # and back to the odd time
        resolver.with_roles(person("a"))
    assert hook.calls == 7  # every switch asks again: nothing made at an odd time, or seen from one, lives


def test_clock_going_back_in_the_middleware_asks_the_hook_again(clock: Clock) -> None:
    hook = Hook()
    app = wsgi_middleware(roles=hook, roles_ttl=60, clock=clock)
    for now in (clock.now, clock.now - 3600, clock.now - 3600 + 59, clock.now - 7200):
        clock.now = now
        assert wsgi_call(app, wsgi_environ("/public", groups=["staff"]))[0] == 200
    assert hook.calls == 3  # the entry asked at -3600 is reused at -3600+59, not the one at 0


def test_attributes_changing_between_requests_ask_the_hook_again_in_both_shells(clock: Clock) -> None:
    hook = Hook()
    app = wsgi_middleware(roles=hook, clock=clock, rules=[])
    asgi = asgi_middleware(roles=hook, clock=clock, rules=[])
    for groups in (["staff"], ["staff"], [ADMINS], ["staff"], [ADMINS, "staff"]):
        seen: dict[str, Any] = {}

        def app_seeing(
            environ: dict[str, Any], start_response: Any, seen: dict[str, Any] = seen
        ) -> list[bytes]:
            seen["roles"] = environ["shibwsgi.identity"].roles
            start_response("200 OK", [])
            return []

        app.app = app_seeing
        wsgi_call(app, wsgi_environ("/", groups=groups))
        assert set(groups) <= set(seen["roles"]), (groups, seen)
        reply = asyncio.run(acall(asgi, scope_for("/", as_headers(front(groups=groups)), client=(PROXY, 1))))
        assert set(groups) <= set(reply.identity.roles)
        assert not ({ADMINS} & set(reply.identity.roles)) - set(groups)
    assert hook.calls == 2 * 4  # per shell: cached when unchanged, asked again at each change


def test_async_roles_hook_answering_slowly_is_503_under_asgi() -> None:
    async def slow(identity: Identity) -> list[str]:
        await asyncio.sleep(0.5)
        return ["late"]

    assert asgi_status(asgi_middleware(roles=slow, roles_timeout=0.05), "/public", "GET", ["staff"]) == 503


def test_async_roles_hook_raising_is_503_under_asgi() -> None:
    async def broken(identity: Identity) -> list[str]:
        raise LookupError("db down")

    assert asgi_status(asgi_middleware(roles=broken), "/public", "GET", ["staff"]) == 503


def test_many_users_at_once_each_get_their_own_identity_and_roles_in_one_middleware() -> None:
    """The identity memo and the roles cache under threads: never another user's identity or roles."""
    hook = Hook()
    wrong: list[Any] = []

    def app_checking(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        identity = environ["shibwsgi.identity"]
        expected = environ["HTTP_X_FORWARDED_USER"]
        if identity.user != expected or f"role-{expected}" not in identity.roles or len(identity.roles) != 4:
            wrong.append((expected, identity))
        start_response("200 OK", [])
        return []

    app = wsgi_middleware(roles=hook, rules=[])
    app.app = app_checking
    users = [(f"u{index}@example.org", [f"g{index % 5}"]) for index in range(40)]
    barrier = threading.Barrier(8)

    def work(offset: int) -> None:
        barrier.wait()
        for round_ in range(80):
            user, groups = users[(offset * 11 + round_ * 3) % len(users)]
            environ = {**wsgi_environ("/x"), **front(user, groups)}
            assert wsgi_call(app, environ)[0] == 200

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def slow_hook(identity: Identity) -> list[str]:
    time.sleep(0.5)
    return ["late"]


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        pytest.param(lambda identity: 1 / 0, b"failed", id="raises"),
        pytest.param(lambda identity: [1], b"not roles", id="returns a number"),
        pytest.param(lambda identity: "admin", b"not roles", id="returns a string"),
        pytest.param(lambda identity: None, b"not roles", id="returns None"),
        pytest.param(lambda identity: [b"admin"], b"not roles", id="returns bytes names"),
        pytest.param(slow_hook, b"in time", id="answers too slowly"),
    ],
)
def test_a_failing_roles_hook_is_503_in_both_shells(hook: Any, said: bytes) -> None:
    status, _, body = wsgi_call(
        wsgi_middleware(roles=hook, roles_timeout=0.05), wsgi_environ("/public", groups=[])
    )
    assert status == 503 and said in body
    assert asgi_status(asgi_middleware(roles=hook, roles_timeout=0.05), "/public", "GET", []) == 503


def test_a_failed_lookup_is_not_cached_the_next_request_asks_again(clock: Clock) -> None:
    answers: list[Any] = [RuntimeError("down"), ["editor"]]

    def hook(identity: Identity) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    resolver = RolesResolver(hook, ttl=60, clock=clock)
    with pytest.raises(RolesError):
        resolver.with_roles(person("a"))
    assert resolver.with_roles(person("a")).roles == ("editor",)


def test_users_switching_in_one_browser_get_their_own_roles_in_both_shells(clock: Clock) -> None:
    hook = Hook()
    app = wsgi_middleware(roles=hook, clock=clock, attributes={})
    recorder = Recorder()
    asgi = ASGIMiddleware(recorder, **{**HEADERS, "roles": hook, "clock": clock})
    for user in ["a@example.org", "b@example.org", "a@example.org", "c@example.org", "b@example.org"]:
        environ = {**wsgi_environ("/"), **front(user)}
        seen: dict[str, Any] = {}

        def app_seeing(
            environ: dict[str, Any], start_response: Any, seen: dict[str, Any] = seen
        ) -> list[bytes]:
            seen["roles"] = environ["shibwsgi.identity"].roles
            start_response("200 OK", [])
            return []

        app.app = app_seeing
        wsgi_call(app, environ)
        assert (
            f"role-{user}" in seen["roles"] and len([r for r in seen["roles"] if r.startswith("role-")]) == 1
        )
        reply = asyncio.run(acall(asgi, scope_for("/", as_headers(environ), client=(PROXY, 1))))
        assert [r for r in reply.identity.roles if r.startswith("role-")] == [f"role-{user}"]


# --- the core: probe, endpoints and refusals with the skipped steps ----------------------------


def test_decision_is_a_real_decision_tuple() -> None:
    core = Core(**HEADERS, attributes=ATTRIBUTES, rules=RULES)
    decision = core.decide(wsgi_environ("/public", groups=["staff"]))
    assert type(decision) is Decision and decision == Decision(decision.identity, [], None)
    assert decision.identity is not None and decision.identity.user == "alice@example.org"
    assert decision._replace(headers=[("a", "b")]).headers == [("a", "b")]
    assert decision._asdict()["answer"] is None


@pytest.mark.parametrize(
    ("options", "headers", "status"),
    [
        pytest.param({}, {}, 401, id="no probe configured: the probe path is the app's, under the rules"),
        pytest.param({}, {TOKEN_HEADER: PROBE_TOKEN}, 401, id="no probe configured, a token sent"),
        pytest.param({"probe_token": PROBE_TOKEN}, {}, 401, id="probe configured, no token"),
        pytest.param(
            {"probe_token": PROBE_TOKEN}, {TOKEN_HEADER: PROBE_TOKEN + "x"}, 401, id="a wrong token"
        ),
        pytest.param({"probe_token": PROBE_TOKEN}, {TOKEN_HEADER: PROBE_TOKEN}, 200, id="the probe itself"),
    ],
)
def test_probe_path_with_and_without_a_probe(
    options: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    got, _, body = wsgi_call(wsgi_middleware(**options), wsgi_environ("/_shibwsgi/probe", **extra))
    assert got == status
    if status == 200:
        assert json.loads(body)["probe"] == "shibwsgi"
    else:
        assert b"shibwsgi" not in body or b"probe" not in body
    assert asgi_status_with(asgi_middleware(**options), "/_shibwsgi/probe", headers) == status


def asgi_status_with(app: ASGIMiddleware, path: str, headers: dict[str, str]) -> int:
    return asyncio.run(acall(app, scope_for(path, list(headers.items()), client=(PROXY, 1)))).status


def test_probe_token_on_another_path_is_marked_reached_and_still_judged() -> None:
    app = wsgi_middleware(probe_token=PROBE_TOKEN)
    extra = {"HTTP_X_SHIBWSGI_PROBE_TOKEN": PROBE_TOKEN}
    status, headers, _ = wsgi_call(app, wsgi_environ("/admin", **extra))
    assert status == 401 and headers.get(REACHED_HEADER) == "reached"
    status, headers, _ = wsgi_call(app, wsgi_environ("/public", **extra))
    assert status == 200 and headers.get(REACHED_HEADER) == "reached"
    status, headers, _ = wsgi_call(wsgi_middleware(), wsgi_environ("/public", **extra))
    assert status == 200 and REACHED_HEADER not in headers


def test_stateless_login_with_an_identity_goes_to_next() -> None:
    environ = wsgi_environ("/login", groups=["staff"], QUERY_STRING="next=%2Fadmin")
    status, headers, _ = wsgi_call(wsgi_middleware(), environ)
    assert status == 302 and headers["Location"].endswith("/admin") and "Set-Cookie" not in headers


def test_stateless_login_without_an_identity_goes_to_the_front_ends_login() -> None:
    status, headers, _ = wsgi_call(wsgi_middleware(), wsgi_environ("/login", QUERY_STRING="next=%2Fx"))
    assert status == 302 and "Set-Cookie" not in headers
    assert "/oauth2/start" in headers["Location"]


def test_stateless_login_never_follows_an_offsite_next() -> None:
    environ = wsgi_environ("/login", groups=["staff"], QUERY_STRING="next=//evil.example/x")
    status, headers, _ = wsgi_call(wsgi_middleware(), environ)
    assert status == 302 and "evil.example" not in headers["Location"]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("//evil.example/x", id="scheme-relative"),
        pytest.param("/\\evil.example/x", id="slash backslash"),
        pytest.param("%2F%2Fevil.example", id="escaped slashes"),
        pytest.param("/%2F%2Fevil.example", id="escaped slashes after one"),
        pytest.param("/.//evil.example", id="dot then slashes"),
        pytest.param("https://evil.example/", id="absolute"),
        pytest.param("/%0d%0aSet-Cookie:x=1", id="CRLF"),
        pytest.param("/%5Cevil.example", id="escaped backslash"),
        pytest.param("/%252F%252Fevil.example", id="escaped twice"),
    ],
)
def test_stateless_login_and_logout_never_follow_an_offsite_next(target: str) -> None:
    from urllib.parse import quote

    query = "next=" + quote(target, safe="")
    for path, groups in (("/login", ["staff"]), ("/logout", ["staff"])):
        status, headers, _ = wsgi_call(
            wsgi_middleware(), wsgi_environ(path, groups=groups, QUERY_STRING=query)
        )
        assert status == 302 and "evil.example" not in headers["Location"].replace("%2F", "/"), headers
        assert "\r" not in headers["Location"] and "\n" not in headers["Location"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_stateless_whoami_answers_only_get_and_head(method: str) -> None:
    app = wsgi_middleware(whoami_path="/whoami")
    status, _, body = wsgi_call(app, wsgi_environ("/whoami", method, groups=["staff"]))
    assert status == 405 and b"alice" not in body


def test_probe_answers_head_without_a_body() -> None:
    extra = {"HTTP_X_SHIBWSGI_PROBE_TOKEN": PROBE_TOKEN}
    status, _, body = wsgi_call(
        wsgi_middleware(probe_token=PROBE_TOKEN), wsgi_environ("/_shibwsgi/probe", "HEAD", **extra)
    )
    assert status == 200 and body == b""


def test_stateless_logout_goes_to_the_front_ends_logout_without_a_cookie() -> None:
    status, headers, _ = wsgi_call(wsgi_middleware(), wsgi_environ("/logout", groups=["staff"]))
    assert status == 302 and "Set-Cookie" not in headers and "/oauth2/sign_out" in headers["Location"]


def test_stateless_login_asks_the_hook_afresh() -> None:
    hook = Hook()
    app = wsgi_middleware(roles=hook)
    wsgi_call(app, wsgi_environ("/public", groups=["staff"]))
    wsgi_call(app, wsgi_environ("/login", groups=["staff"]))
    assert hook.calls == 2


@pytest.mark.parametrize(
    ("groups", "status"),
    [pytest.param(["staff"], 200, id="signed in"), pytest.param(None, 401, id="anonymous")],
)
def test_stateless_whoami_shows_only_the_requests_own_identity(groups: list[str] | None, status: int) -> None:
    app = wsgi_middleware(whoami_path="/whoami")
    got, _, body = wsgi_call(app, wsgi_environ("/whoami", groups=groups))
    assert got == status
    if status == 200:
        assert json.loads(body)["user"] == "alice@example.org"
    assert asgi_status(asgi_middleware(whoami_path="/whoami"), "/whoami", "GET", groups) == status


@pytest.mark.parametrize(
    ("groups", "accept", "status"),
    [
        pytest.param(None, "application/json", 401, id="anonymous API client"),
        pytest.param(None, "text/html", 302, id="anonymous browser"),
        pytest.param(["staff"], "text/html", 403, id="signed-in browser without the group"),
    ],
)
def test_refusals_in_both_shells(groups: list[str] | None, accept: str, status: int) -> None:
    environ = wsgi_environ("/admin/x", groups=groups, HTTP_ACCEPT=accept, QUERY_STRING="q=1")
    got, headers, _ = wsgi_call(WSGI, environ)
    assert got == status
    if status == 302:
        assert headers["Location"] == "/login?next=%2Fadmin%2Fx%3Fq%3D1"
    reply = asyncio.run(
        acall(
            ASGI,
            scope_for(
                "/admin/x", [("Accept", accept), *as_headers(environ)], client=(PROXY, 1), query=b"q=1"
            ),
        )
    )
    assert reply.status == status
    if status == 302:
        assert reply.header("location") == "/login?next=%2Fadmin%2Fx%3Fq%3D1"


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_session_endpoints_with_sessions_still_set_and_clear_the_cookie(path: str) -> None:
    from shibwsgi.sessions import MemoryStore

    app = wsgi_middleware(session=MemoryStore(), secret_key="k" * 32)
    status, headers, _ = wsgi_call(app, wsgi_environ("/login", groups=["staff"]))
    assert status == 302 and "Set-Cookie" in headers
    cookie = headers["Set-Cookie"].split(";")[0]
    status, headers, _ = wsgi_call(app, wsgi_environ(path, groups=["staff"], HTTP_COOKIE=cookie))
    assert status == 302 and "Set-Cookie" in headers  # a new session id at each login; logout clears
    # Logged out: the old cookie no longer carries a session.
    if path == "/logout":
        assert wsgi_call(app, wsgi_environ("/admin", HTTP_COOKIE=cookie))[0] == 401


# --- the movie app: the forms cookie at the session paths --------------------------------------


def movie_app(tmp_path: Path, **settings: str) -> TestApp:
    from app import make_application

    app = make_application({"MOVIES_DB": str(tmp_path / "movies.sqlite3"), **settings})
    return TestApp(app, extra_environ=environ_for("shibboleth", "ada@example.org", {"displayName": "Ada"}))


def forms_cookie_cleared(response: Any) -> bool:
    from app import csrf

    return any(
        value.startswith(f"{csrf.COOKIE}=;") or value.startswith(f'{csrf.COOKIE}="";')
        for value in response.headers.getall("Set-Cookie")
    )


@pytest.mark.parametrize(
    ("settings", "path", "cleared"),
    [
        pytest.param({}, "/login", True, id="default login path"),
        pytest.param({}, "/logout", True, id="default logout path"),
        pytest.param({}, "/login/", False, id="login path with a slash is not the login path"),
        pytest.param({}, "/loginx", False, id="a longer name"),
        pytest.param({"SHIBWSGI_LOGIN_PATH": "/signin"}, "/signin", True, id="configured login path"),
        pytest.param({"SHIBWSGI_LOGIN_PATH": "/signin"}, "/login", False, id="the default once moved"),
        pytest.param({"SHIBWSGI_LOGOUT_PATH": "/bye"}, "/bye", True, id="configured logout path"),
        pytest.param({"SHIBWSGI_LOGOUT_PATH": "off"}, "/logout", False, id="logout switched off"),
        pytest.param({"SHIBWSGI_LOGOUT_PATH": "off"}, "/login", True, id="login kept with logout off"),
        pytest.param({"SHIBWSGI_LOGIN_PATH": "none"}, "/", False, id="login switched off, the root"),
    ],
)
def test_movie_app_drops_the_forms_cookie_only_at_its_session_paths(
    tmp_path: Path, settings: dict[str, str], path: str, cleared: bool
) -> None:
    response = movie_app(tmp_path, **settings).get(path, expect_errors=True)
    assert forms_cookie_cleared(response) == cleared, response.headers.getall("Set-Cookie")
