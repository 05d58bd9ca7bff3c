"""The per-worker caches never serve a stale identity: the memo, the verified cookies, the gate's keys."""

from __future__ import annotations

import gc
import json
import threading
import tracemalloc
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, Identity, SSOMiddleware
from shibwsgi.lru import BoundedLRU, footprint
from shibwsgi.memo import DEFAULT_MAX_BYTES
from shibwsgi.roles import CACHE_BYTES as ROLES_CACHE_BYTES
from shibwsgi.roles import RolesResolver
from shibwsgi.sessions import MemoryStore, RedisStore, SQLiteStore
from shibwsgi.sessions.manager import SESSION_CACHE_BYTES, SessionManager
from shibwsgi.sessions.redis import CACHE_BYTES as REDIS_CACHE_BYTES
from shibwsgi.sessions.sqlite import CACHE_BYTES as SQLITE_CACHE_BYTES
from shibwsgi.testing import environ_for
from tests.helpers import Clock, echo_app
from tests.test_session_flows import START

KEY = "k" * 32
OLD_KEY = "o" * 32
SESSION = "_0123456789abcdef0123456789abcdef"
EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)
#: Fixed, so that two calls of ``shib`` differ only where a test says.
AUTHENTICATED = datetime(2026, 1, 1, tzinfo=UTC)
ATTRIBUTES = {
    "email": Attribute("mail"),
    "groups": Attribute("isMemberOf", multi=True),
    "department": Attribute("department"),
}
BIG_GROUPS = [f"cn=group-{index:05d},ou=groups,dc=example,dc=org" for index in range(1500)]


def capture(middleware: SSOMiddleware, environ: dict[str, Any]) -> tuple[str, Identity | None]:
    """One request: the status and the identity the app saw."""
    seen: dict[str, Any] = {}
    status: list[str] = []

    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen["identity"] = env["shibwsgi.identity"]
        start_response("200 OK", [])
        return [b""]

    def start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(code)

    middleware.app = app
    b"".join(middleware(fresh(environ), start_response))
    return status[0], seen.get("identity")


def fresh(environ: dict[str, Any]) -> dict[str, Any]:
    """New string objects, as a server decodes each request anew: no identity shortcut in comparisons."""
    return {
        key: value.encode("latin-1").decode("latin-1") if isinstance(value, str) else value
        for key, value in environ.items()
    }


def seen_twice(middleware: SSOMiddleware, environ: dict[str, Any]) -> Identity | None:
    """Two requests: the memo keeps an identity from its second sight on."""
    capture(middleware, environ)
    return capture(middleware, environ)[1]


def shib(user: str = "alice@example.org", **values: str | list[str]) -> dict[str, str]:
    attributes: dict[str, str | list[str]] = {
        "mail": user,
        "isMemberOf": ["staff", "admins"],
        "department": "IT",
        **values,
    }
    return environ_for(
        "shibboleth", user, attributes, session_id=SESSION, expires_at=EXPIRES, authenticated_at=AUTHENTICATED
    )


def stateless(**options: Any) -> SSOMiddleware:
    options.setdefault("attributes", ATTRIBUTES)
    return SSOMiddleware(echo_app, **options)


# -- the identity memo ------------------------------------------------------------------


def _with(environ: dict[str, str], **changes: str) -> dict[str, str]:
    return {**environ, **changes}


def _without(environ: dict[str, str], key: str) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name != key}


BIG = shib(isMemberOf=BIG_GROUPS)

CHANGED_INPUT = [
    pytest.param(shib(), shib(mail="mallory@example.org"), id="attribute changed"),
    pytest.param(shib(), shib(isMemberOf=["staff"]), id="a group removed"),
    pytest.param(shib(), shib("bob@example.org"), id="user changed, same front-end session"),
    pytest.param(shib(), _with(shib(), **{"Shib-Session-ID": "_other"}), id="front-end session changed"),
    pytest.param(shib(), _with(shib(), **{"Shib-Session-Expires": "1900000000"}), id="expiry changed"),
    pytest.param(
        shib(), _with(shib(), **{"Shib-Identity-Provider": "https://evil.example"}), id="provider changed"
    ),
    pytest.param(shib(), _without(shib(), "department"), id="attribute gone"),
    pytest.param(
        BIG,
        _with(BIG, isMemberOf=BIG["isMemberOf"][:-1] + "X"),
        id="64 KB attribute differs in its last byte",
    ),
    pytest.param(
        BIG,
        _with(BIG, isMemberOf="X" + BIG["isMemberOf"][1:]),
        id="64 KB attribute differs in its first byte",
    ),
]


@pytest.mark.parametrize(("first", "second"), CHANGED_INPUT)
def test_memo_never_serves_an_identity_for_other_raw_input(
    first: dict[str, str], second: dict[str, str]
) -> None:
    middleware = stateless()
    cached = seen_twice(middleware, first)
    _, again = capture(middleware, first)
    assert again is cached  # a hit: the same immutable Identity
    _, other = capture(middleware, second)
    assert other == stateless().parser.parse(fresh(second))  # what an uncached worker says
    assert other != cached


def test_two_inputs_differing_in_a_large_attributes_last_byte_give_different_identities() -> None:
    middleware = stateless()
    tail = _with(BIG, isMemberOf=BIG["isMemberOf"][:-1] + "Z")
    _, one = capture(middleware, BIG)
    _, two = capture(middleware, tail)
    assert one is not None and two is not None
    assert one.attributes["groups"][-1] != two.attributes["groups"][-1]
    assert two.attributes["groups"][-1].endswith("Z")


def _mellon(values: list[str]) -> dict[str, str]:
    return environ_for("mellon", "alice@example.org", {"isMemberOf": values}, session_id=SESSION)


def _openidc(groups: list[str]) -> dict[str, str]:
    return environ_for(
        "openidc", "alice", {"groups": groups, "email": "a@x"}, session_id=SESSION, id_token=True
    )


DYNAMIC_INPUT = [
    pytest.param("mellon", _mellon(["a", "b"]), _mellon(["a", "b", "c"]), id="mellon series grew"),
    pytest.param("mellon", _mellon(["a", "b", "c"]), _mellon(["a", "b"]), id="mellon series shrank"),
    pytest.param(
        "openidc",
        _openidc(["a", "b"]),
        {**_openidc(["a", "b"]), **{"OIDC_id_token_payload": '{"sub":"alice","groups":["x"]}'}},
        id="id-token JSON changed",
    ),
]


@pytest.mark.parametrize(("profile", "first", "second"), DYNAMIC_INPUT)
def test_memo_covers_dynamic_keys_and_json_claims(
    profile: str, first: dict[str, str], second: dict[str, str]
) -> None:
    middleware = stateless(profile=profile, attributes={"groups": Attribute("groups", multi=True)})
    if profile == "mellon":
        middleware = stateless(profile=profile, attributes={"groups": Attribute("isMemberOf", multi=True)})
    cached = seen_twice(middleware, first)
    assert capture(middleware, first)[1] is cached
    _, other = capture(middleware, second)
    assert other is not None and cached is not None
    assert other.attributes["groups"] != cached.attributes["groups"]


def test_memo_in_the_headers_channel_follows_the_proxys_values() -> None:
    middleware = stateless(
        profile="oauth2-proxy", channel="headers", trusted_proxies=["10.0.0.1"], attributes={}
    )
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for user in ("alice", "bob", "alice"):
        environ = {**proxy, **environ_for("oauth2-proxy", user, channel="headers")}
        identity = capture(middleware, environ)[1]
        assert identity is not None and identity.user == user
    stranger = {"REMOTE_ADDR": "192.0.2.9", **environ_for("oauth2-proxy", "alice", channel="headers")}
    assert capture(middleware, stranger)[1] is None


def test_a_refusal_is_never_cached_and_never_hides_behind_a_cached_identity() -> None:
    middleware = stateless(attributes={**ATTRIBUTES, "email": Attribute("mail", required=True)})
    good = shib()
    missing = _without(good, "mail")
    assert capture(middleware, missing)[0].startswith("4")
    assert seen_twice(middleware, good) is not None
    assert capture(middleware, missing)[0].startswith("4")
    assert capture(middleware, missing)[0].startswith("4")
    assert len(middleware.memo.entries) == 1


def test_memo_bound_holds_with_2000_users_carrying_64_kb_each() -> None:
    middleware = stateless()
    groups = BIG["isMemberOf"]
    for index in range(2000):
        user = f"user{index}@example.org"
        # Each user's own 64 KB: the memo must keep the raw values to compare them.
        environ = {**shib(user), "isMemberOf": f"{index:05d}" + groups[5:]}
        assert seen_twice(middleware, environ) is not None
    assert 0 < middleware.memo.size <= DEFAULT_MAX_BYTES
    assert 10 < len(middleware.memo.entries) < 2000  # what fits, least recently used out first


def test_a_one_off_request_costs_no_memory_beyond_its_key() -> None:
    middleware = stateless()
    capture(middleware, BIG)
    assert len(middleware.memo.entries) == 0 and 0 < middleware.memo.size < 1000


def test_memo_bound_in_entries() -> None:
    cache: BoundedLRU[int, str] = BoundedLRU(max_entries=3, max_bytes=10_000)
    for number in range(5):
        cache.put(number, str(number), 10)
    assert cache.get(0) is None and cache.get(1) is None
    assert [cache.get(n) for n in (2, 3, 4)] == ["2", "3", "4"]
    assert (len(cache), cache.size) == (3, 30)


def test_memo_can_be_switched_off() -> None:
    middleware = stateless(identity_cache_bytes=0)
    environ = shib()
    first, second = capture(middleware, environ)[1], capture(middleware, environ)[1]
    assert first == second and first is not second
    assert len(middleware.memo.entries) == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("identity_cache_bytes", -1),
        ("identity_cache_bytes", "16M"),
        ("cookie_cache_entries", -1),
        ("cookie_cache_entries", True),
    ],
)
def test_cache_sizes_are_validated(option: str, value: object) -> None:
    options: dict[str, Any] = {option: value}
    if option == "cookie_cache_entries":
        options.update(session=MemoryStore(), secret_key=KEY)
    with pytest.raises(ConfigError, match=option):
        stateless(**options)


def test_cache_sizes_from_settings() -> None:
    middleware = SSOMiddleware.from_mapping(
        echo_app,
        {"SHIBWSGI_IDENTITY_CACHE_BYTES": "1048576", "SHIBWSGI_SECRET_KEY": KEY},
        session=MemoryStore(),
    )
    assert middleware.memo.entries.max_bytes + middleware.memo.seen.max_bytes == 1048576


def test_memo_under_threads_never_mixes_users() -> None:
    middleware = stateless()
    errors: list[str] = []

    def worker(number: int) -> None:
        for round_number in range(200):
            user = f"user{(number + round_number) % 7}@example.org"
            identity = capture_threadsafe(middleware, shib(user))
            if identity is None or identity.user != user or identity.get("email") != user:
                errors.append(f"{user} got {identity!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(middleware.memo.entries) == 7


def capture_threadsafe(middleware: SSOMiddleware, environ: dict[str, Any]) -> Identity | None:
    """``identify`` alone: ``capture`` swaps the app, which threads must not share."""
    return middleware.identify(fresh(environ))


# -- the verified-cookie cache ----------------------------------------------------------


def _front(user: str) -> dict[str, str]:
    return environ_for(
        "shibboleth", user, {"isMemberOf": ["staff"]}, expires_at=datetime.fromtimestamp(START + 86_400, UTC)
    )


def _lazy(store: Any, clock: Clock, **options: Any) -> TestApp:
    options.setdefault("secret_key", KEY)
    middleware = SSOMiddleware(echo_app, session=store, clock=clock, cookie_secure=False, **options)
    return TestApp(middleware)


def _who(app: TestApp, cookie: str, **environ: str) -> str | None:
    app.reset()  # only this cookie, not one the jar kept from a response
    app.set_cookie("shibwsgi", cookie)
    identity = app.get("/page", extra_environ=environ).json["identity"]
    return identity["user"] if identity else None


def _log_in(app: TestApp, user: str) -> str:
    app.get("/login", extra_environ=_front(user), status=302)
    return str(app.cookies["shibwsgi"])


@pytest.fixture
def signing_time(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set itsdangerous's clock (the signature's age is measured with it)."""

    def set_time(moment: float) -> None:
        monkeypatch.setattr("itsdangerous.timed.time.time", lambda: moment)

    set_time(START)
    return set_time


def test_session_ended_on_another_worker_ends_here_at_the_next_request(
    tmp_path: Path, signing_time: Callable[[float], None]
) -> None:
    clock = Clock(START)
    store = SQLiteStore(tmp_path / "sessions.sqlite3", clock=clock)
    one, two = _lazy(store, clock), _lazy(store, clock)
    cookie = _log_in(one, "alice@example.org")
    assert _who(two, cookie) == "alice@example.org"
    assert _who(two, cookie) == "alice@example.org"  # the cookie is verified from the cache now
    one.set_cookie("shibwsgi", cookie)
    one.get("/logout", status=302)
    assert _who(two, cookie) is None


def test_a_retired_key_stops_validating_whatever_was_cached(signing_time: Callable[[float], None]) -> None:
    clock = Clock(START)
    store = MemoryStore(clock=clock)
    cookie = _log_in(_lazy(store, clock, secret_key=OLD_KEY), "alice@example.org")
    rotated = _lazy(store, clock, secret_key=[OLD_KEY, KEY])
    assert _who(rotated, cookie) == "alice@example.org"
    assert _who(rotated, cookie) == "alice@example.org"
    retired = _lazy(store, clock, secret_key=[KEY])
    assert _who(retired, cookie) is None


def test_a_cached_cookie_still_expires(signing_time: Callable[[float], None]) -> None:
    clock = Clock(START)
    store = MemoryStore(clock=clock)
    app = _lazy(store, clock, absolute_timeout=3600, idle_timeout=3600)
    cookie = _log_in(app, "alice@example.org")
    assert _who(app, cookie) == "alice@example.org"
    assert len(app.app.cookie.verified) == 1
    signing_time(START + 3601)  # the signature is too old, though the store would still have it
    assert _who(app, cookie) is None
    signing_time(START - 10)  # signed "in the future": refused like itsdangerous does
    assert _who(app, cookie) is None


def test_a_cached_session_still_times_out_in_the_store(signing_time: Callable[[float], None]) -> None:
    clock = Clock(START)
    app = _lazy(MemoryStore(clock=clock), clock, idle_timeout=600)
    cookie = _log_in(app, "alice@example.org")
    assert _who(app, cookie) == "alice@example.org"
    clock.now += 601
    assert _who(app, cookie) is None


def test_a_tampered_cookie_is_not_served_from_the_cache(signing_time: Callable[[float], None]) -> None:
    clock = Clock(START)
    app = _lazy(MemoryStore(clock=clock), clock)
    cookie = _log_in(app, "alice@example.org")
    assert _who(app, cookie) == "alice@example.org"
    # Not the last character: its low bits are base64 padding, which decoding ignores.
    tampered = cookie[:-5] + ("A" if cookie[-5] != "A" else "B") + cookie[-4:]
    assert _who(app, tampered) is None
    assert _who(app, cookie) == "alice@example.org"


def test_the_user_switch_still_happens_with_everything_cached(signing_time: Callable[[float], None]) -> None:
    clock = Clock(START)
    app = _lazy(MemoryStore(clock=clock), clock)
    cookie = _log_in(app, "alice@example.org")
    for _ in range(2):
        assert _who(app, cookie) == "alice@example.org"
    assert _who(app, cookie, **_front("bob@example.org")) == "bob@example.org"


# -- the trust gate's harmless keys -----------------------------------------------------


def test_lookalikes_are_removed_after_many_clean_requests_and_a_flood_of_made_up_headers() -> None:
    middleware = stateless()
    clean = shib()
    for _ in range(3):
        assert capture(middleware, clean)[1] is not None
    flood = {f"HTTP_X_JUNK_{index}": "1" for index in range(2000)}
    assert capture(middleware, {**clean, **flood})[1] is not None
    for spoof in ({"HTTP_EPPN": "admin"}, {"HTTP_SHIB_SESSION_ID": "_x"}, {"HTTP_X_REMOTE_USER": "a"}):
        environ = fresh({**clean, **flood, **spoof})
        middleware(environ, lambda *args: None)
        assert not set(spoof) & set(environ)


# -- The session caches are bounded by the memory they take, not by the JSON's length -----------

BIG_SESSION = {
    "identity": {"user": "big@example.org", "attributes": {"groups": [f"group-{n:05d}" for n in range(400)]}},
    "created": START,
    "seen": START,
}


def _held_after_reading(store: Any, sessions: int) -> int:
    """Bytes still allocated (tracemalloc) after writing and reading ``sessions`` big sessions."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(sessions):
            store.set(f"big-{number}", BIG_SESSION, ttl=3600)
            assert store.get(f"big-{number}") == BIG_SESSION
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.servers)])
def test_session_store_read_cache_stays_within_its_byte_bound(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """400 group names are 6 KB of JSON but about 34 KB decoded: a bound on the text let the
    decoded sessions take six times the budget."""
    if kind == "sqlite":
        store: Any = SQLiteStore(tmp_path / "sessions.sqlite3")
        bound = SQLITE_CACHE_BYTES
    else:
        bound = REDIS_CACHE_BYTES
        store = RedisStore(request.getfixturevalue("redis_url"), prefix=f"bound:{tmp_path.name}:")
    try:
        held = _held_after_reading(store, 300)  # about 10 MB of decoded sessions, unbounded
    finally:
        store.close()
    assert held < bound * 1.25 + 512 * 1024, f"{held / 2**20:.1f} MiB held"


def test_footprint_is_no_less_than_what_decoded_json_takes() -> None:

    text = json.dumps(BIG_SESSION)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        decoded = json.loads(text)
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert taken <= footprint(decoded) <= 1.5 * taken
    assert footprint(decoded) > 4 * len(text)


def test_session_manager_cache_stays_within_its_byte_bound(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sessions.sqlite3")
    sessions = SessionManager(store, idle_timeout=3600, absolute_timeout=3600, clock=lambda: START)
    big = Identity.from_dict(BIG_SESSION["identity"])
    ids = [sessions.start(big).id for _ in range(300)]

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert all(sessions.load(session_id) is not None for session_id in ids)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        store.close()
    bound = SESSION_CACHE_BYTES + SQLITE_CACHE_BYTES  # the manager's, and the store's read cache
    assert held < bound * 1.25 + 512 * 1024, f"{held / 2**20:.1f} MiB held"


def test_roles_cache_stays_within_its_byte_bound() -> None:
    """Each entry keeps its identity alive: 4,096 people with 64 KB each would be 256 MB."""
    resolver = RolesResolver(lambda identity: ["editor"], ttl=60, clock=lambda: START)
    groups = [f"group-{n:05d}" for n in range(400)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(300):
            person = Identity(
                f"user-{number}@example.org", {"groups": tuple(f"{g}-{number}" for g in groups)}
            )
            assert resolver.with_roles(person).roles == ("editor",)
        del person
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < ROLES_CACHE_BYTES * 1.25 + 512 * 1024, f"{held / 2**20:.1f} MiB held"
