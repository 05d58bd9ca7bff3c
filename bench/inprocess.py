"""In-process cost per request: baselines, shibwsgi per profile, with a session, over headers.

Every case is the same loop (:func:`bench.timing.wsgi_loop`): a freshly built
environ, a call of the WSGI callable with a no-op ``start_response``, the body
consumed and closed. What a case costs beyond the bare app is its overhead.
Each shibwsgi case runs twice: with its caches (the steady state: the same user
sends the same bytes again) and with them switched off (every request is a
first sight: parse, verify, look up).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.proxy_fix import ProxyFix

from shibwsgi import ENVIRON_KEY, Identity, SSOMiddleware
from shibwsgi.sessions import MemoryStore, SQLiteStore

from .environs import COOKIES, HEADERS_WITH_SECRET, PROFILE_CASES, USER, ProfileCase, cgi_environ
from .production import plain, production
from .servers import redis_server
from .timing import Case, Timing, measure, wsgi_loop

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from shibwsgi.sessions import SessionStore

__all__ = ["bare_app", "check_identity", "derive", "flask_hello", "run"]

SECRET_KEY = "bench-secret-key-0123456789abcdef"

BARE, PROXYFIX, FLASK = "baseline:bare", "baseline:proxyfix", "baseline:flask"
#: Prefix of the key of a case's uncached twin.
FIRST = "first:"
#: Middleware options that switch every cache off; the cookie's only with a session store
#: (the option is refused where it cannot take effect).
UNCACHED = {"identity_cache_bytes": 0}
UNCACHED_SESSION = {**UNCACHED, "cookie_cache_entries": 0}


def bare_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The smallest WSGI app: 200, ``ok``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def flask_hello() -> WSGIApplication:
    """A Flask app with one route returning ``ok``, at the path the benchmark requests."""
    from flask import Flask

    hello = Flask("bench_hello")

    @hello.get("/api/me")
    def index() -> str:
        return "ok"

    return hello


def check_identity(
    middleware: SSOMiddleware, environ: WSGIEnvironment, user: str = USER
) -> tuple[Identity, list[str]]:
    """One request through ``middleware`` as timed: the identity the app saw and any Set-Cookie.

    Refuses to go on when the request would not reach the app as ``user``: the
    benchmark would then time a refusal, not the middleware's work.
    """
    seen: dict[str, Any] = {}
    response: list[Any] = []

    def probe(env: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen["identity"] = env.get(ENVIRON_KEY)
        return bare_app(env, start_response)

    def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        response.extend([status, headers])

    real, middleware.app = middleware.app, probe
    try:
        b"".join(middleware(dict(environ), record))
    finally:
        middleware.app = real
    identity = seen.get("identity")
    if not isinstance(identity, Identity) or identity.user != user:
        raise RuntimeError(f"benchmark request not identified as {user}: {response[:1]} {identity!r}")
    cookies = [value for name, value in response[1] if name.lower() == "set-cookie"]
    return identity, cookies


def _stateless(case: ProfileCase, cached: bool) -> tuple[Case, dict[str, Any], SSOMiddleware]:
    middleware = SSOMiddleware(bare_app, **case.options(), **({} if cached else UNCACHED))
    environ = case.environ()
    identity, _ = check_identity(middleware, environ, case.user)
    if set(identity.attributes) != set(case.attributes):
        raise RuntimeError(
            f"{case.key}: attributes {sorted(identity.attributes)} != {sorted(case.attributes)}"
        )
    info = {
        "profile": case.profile,
        "channel": case.channel,
        "attributes": len(case.attributes),
        "values": sum(len(values) for values in identity.attributes.values()),
        "environ_keys": len(environ),
    }
    key = ("" if cached else FIRST) + f"stateless:{case.key}"
    return Case(key, case.label, wsgi_loop(middleware, environ)), info, middleware


def _movie_app(
    folder: Path, production_options: bool, cached: bool
) -> tuple[Case, dict[str, Any], SSOMiddleware]:
    """The movie app's middleware around the bare app: production (rules, roles on SQLite) or plain.

    The same request as the full stack's (shibboleth, 10 groups, ``GET /api/me``); the
    roles hook answers from the movie database, then from its cache.
    """
    settings = {"MOVIES_DB": str(folder / "movies.sqlite3")}
    if not cached:
        settings["SHIBWSGI_IDENTITY_CACHE_BYTES"] = "0"
        if production_options:
            settings["SHIBWSGI_ROLES_TTL"] = "0"
    middleware = (production if production_options else plain)(bare_app, settings)
    environ = PROFILE_CASES[0].environ()
    check_identity(middleware, environ)
    name = "production" if production_options else "plain"
    label = "rules + roles hook on SQLite" if production_options else "same settings, no rules or roles"
    info = {"rules": len(middleware.rules.rules), "roles_hook": middleware.roles is not None}
    key = ("" if cached else FIRST) + f"movie-app:{name}"
    return Case(key, label, wsgi_loop(middleware, environ)), info, middleware


def _lazy_session(
    key: str, label: str, store: SessionStore, cached: bool
) -> tuple[Case, dict[str, Any], SSOMiddleware]:
    """The lazy style: log in once on the login path, then time requests carrying only the cookie."""
    case = PROFILE_CASES[0]
    options = {} if cached else UNCACHED_SESSION
    middleware = SSOMiddleware(bare_app, **case.options(), session=store, secret_key=SECRET_KEY, **options)
    pair = _log_in(middleware, case.environ(path=middleware.login_path or "/login"))
    environ = cgi_environ(cookie=f"{COOKIES}; {pair}")
    identity, cookies = check_identity(middleware, environ)
    if cookies or set(identity.attributes) != set(case.attributes):
        raise RuntimeError(f"{key}: the session did not give back the identity quietly ({cookies!r})")
    info = {"store": repr(store), "cookie_bytes": len(pair), "attributes": len(case.attributes)}
    case_key = ("" if cached else FIRST) + f"session:{key}"
    return Case(case_key, label, wsgi_loop(middleware, environ)), info, middleware


def cache_bytes(middleware: SSOMiddleware) -> dict[str, int]:
    """What the middleware's caches hold (estimated bytes, entries)."""
    sizes = {
        "identity_cache_bytes": middleware.memo.size,
        "identity_cache_entries": len(middleware.memo.entries),
    }
    if middleware.cookie is not None:
        sizes["cookie_cache_bytes"] = middleware.cookie.verified.size
        sizes["cookie_cache_entries"] = len(middleware.cookie.verified)
    return sizes


def _log_in(middleware: SSOMiddleware, environ: WSGIEnvironment) -> str:
    """Visit the login path as the front end would send it; the session cookie's ``name=value``."""
    response: list[Any] = []

    def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        response.extend([status, headers])

    b"".join(middleware(dict(environ), record))
    cookies = [value for name, value in response[1] if name.lower() == "set-cookie"]
    if not response[0].startswith("302") or len(cookies) != 1:
        raise RuntimeError(f"login gave {response[0]} with {cookies!r}, expected a redirect and a cookie")
    return str(cookies[0].split(";", 1)[0])


def derive(timings: dict[str, Timing], key: str) -> dict[str, float]:
    """Overhead of ``key`` over the bare app, as % of Flask hello-world and as a multiple of ProxyFix's."""
    bare = timings[BARE].median
    overhead = timings[key].median - bare
    proxyfix = timings[PROXYFIX].median - bare
    return {
        "overhead_seconds": overhead,
        "percent_of_flask": 100 * overhead / timings[FLASK].median,
        "times_proxyfix_overhead": overhead / proxyfix if proxyfix > 0 else float("nan"),
    }


def run(
    folder: Path, *, repeat: int, target: float, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure every in-process case; JSON-ready results (seconds)."""
    bare_environ = PROFILE_CASES[0].environ()
    proxied_environ = {
        **bare_environ,
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_FORWARDED_FOR": "198.51.100.7",
        "HTTP_X_FORWARDED_PROTO": "https",
    }
    cases = [
        Case(BARE, "bare WSGI app", wsgi_loop(bare_app, bare_environ)),
        Case(
            PROXYFIX,
            "ProxyFix(x_for=1, x_proto=1)",
            wsgi_loop(ProxyFix(bare_app, x_for=1, x_proto=1), proxied_environ),
        ),
        Case(FLASK, "Flask hello world", wsgi_loop(flask_hello(), bare_environ)),
    ]
    info: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    middlewares: dict[str, SSOMiddleware] = {}

    def add(built: tuple[Case, dict[str, Any], SSOMiddleware]) -> None:
        case, info[case.key], middlewares[case.key] = built
        cases.append(case)

    for profile_case in (*PROFILE_CASES, HEADERS_WITH_SECRET):
        for cached in (True, False):
            add(_stateless(profile_case, cached))
    for production_options in (False, True):
        for cached in (True, False):
            add(_movie_app(folder, production_options, cached))

    with contextlib.ExitStack() as stack:
        stores: list[tuple[str, str, SessionStore]] = [
            ("memory", "MemoryStore (lazy: cookie only)", MemoryStore()),
            ("sqlite", "SQLiteStore (lazy: cookie only)", SQLiteStore(folder / "sessions.sqlite3")),
        ]
        url = stack.enter_context(redis_server(folder))
        if url is None:
            skipped["session:redis"] = "skipped: redis-server not installed"
        else:
            try:
                from shibwsgi.sessions import RedisStore

                redis_store = RedisStore(url)
            except Exception as exc:  # redis-py missing: say so, measure the rest
                skipped["session:redis"] = f"skipped: {exc}"
            else:
                stack.callback(redis_store.close)
                stores.append(("redis", "RedisStore (lazy: cookie only)", redis_store))
        for key, label, store in stores:
            for cached in (True, False):
                add(_lazy_session(key, label, store, cached))
        timings = measure(cases, repeat=repeat, target=target, progress=progress)

    results: dict[str, Any] = {}
    for key, timing in timings.items():
        entry = {"group": key.removeprefix(FIRST).split(":")[0], **timing.as_dict(), **info.get(key, {})}
        entry["cached"] = key in middlewares and not key.startswith(FIRST)
        if key in middlewares:
            entry["caches"] = cache_bytes(middlewares[key])
        if key != BARE:
            entry.update(derive(timings, key))
        results[key] = entry
    for key, reason in skipped.items():
        for prefix in ("", FIRST):
            results[prefix + key] = {
                "group": key.split(":")[0],
                "label": "RedisStore (lazy: cookie only)",
                "skipped": reason,
            }
    return {"repeat": repeat, "target_seconds_per_repetition": target, "cases": results}
