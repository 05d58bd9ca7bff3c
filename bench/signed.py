"""Signed assertions in-process: the first sight of a token (an ECDSA verification) against a cached one.

The same Pomerium-style request (ES256, a static JWKS, 5 claims mapped) is timed
twice: with the verified-token cache emptied before every request, and as a
stream of requests repeating one token, which costs a lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shibwsgi import Attribute, SSOMiddleware
from shibwsgi.testing import environ_for
from shibwsgi.testing.signed import TestSigner

from .environs import USER, cgi_environ
from .inprocess import bare_app, check_identity
from .timing import Case, measure, wsgi_loop

__all__ = ["run"]

ATTRIBUTES = {
    "email": "email",
    "name": "name",
    "groups": Attribute("groups", multi=True),
    "roles": Attribute("realm_access.roles", multi=True),
    "department": "department",
}
CLAIMS = {
    "email": USER,
    "name": "Zoë Bench-Müller",
    "groups": [f"group-{index}" for index in range(10)],
    "realm_access": {"roles": ["editor", "viewer"]},
    "department": "Physics",
}


def run(*, repeat: int, target: float, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time both cases; JSON-ready results (seconds per request)."""
    signer = TestSigner("ES256")
    middleware = SSOMiddleware(
        bare_app,
        profile="pomerium",
        jwks=signer.jwks,
        issuer=signer.issuer,
        audience=signer.audience,
        attributes=ATTRIBUTES,
    )
    environ = {**cgi_environ(), **environ_for("pomerium", USER, CLAIMS, signer=signer)}
    check_identity(middleware, environ)
    verifier = middleware.verifier
    assert verifier is not None
    cached = wsgi_loop(middleware, environ)

    def first_sight(n: int) -> float:
        # Emptying the cache costs well under a microsecond next to a verification.
        def request(env: Any, start_response: Any) -> Any:
            verifier.cache.clear()
            return middleware(env, start_response)

        return wsgi_loop(request, environ)(n)

    bare = wsgi_loop(bare_app, environ)
    timings = measure(
        [
            Case("signed:bare", "bare WSGI app", bare),
            Case("signed:first-sight", "pomerium, first sight (ES256 verification)", first_sight),
            Case("signed:cached", "pomerium, cached token", cached),
        ],
        repeat=repeat,
        target=target,
        progress=progress,
    )
    base = timings["signed:bare"].median
    results = {
        key: {**timing.as_dict(), "overhead_seconds": timing.median - base} for key, timing in timings.items()
    }
    if progress:
        for key in ("signed:first-sight", "signed:cached"):
            progress(
                f"{timings[key].label}: {results[key]['overhead_seconds'] * 1e6:.1f} us overhead per request"
            )
    return results
