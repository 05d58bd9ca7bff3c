"""Parity: the WSGI and ASGI middlewares give the same identity or the same status, every time.

The structured hostile inputs of :mod:`tests.test_fuzz` go through both shells as
request headers (the only channel ASGI has): server-variable profiles in the headers
channel behind a trusted proxy, header front ends as they are, and a signed profile
with forged, expired and hostile-claim tokens. ``SHIBWSGI_PARITY_COUNT`` sets the
count (``bench/parity.py`` runs the full 100,000).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from typing import Any

import pytest

from shibwsgi import Attribute, SSOMiddleware
from shibwsgi.asgi import SSOMiddleware as ASGIMiddleware
from shibwsgi.authz import LoggedIn, Rule
from shibwsgi.profiles import get_profile
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing.signed import TestSigner
from tests.asgi_support import Recorder, acall, scope_for
from tests.test_fuzz import SECRET, SEED, TRUSTED_PROXY, CapturingApp, Hostile, lookalikes, run, scenarios

COUNT = int(os.environ.get("SHIBWSGI_PARITY_COUNT", "20000"))
UNTRUSTED = "203.0.113.9"

#: (options, inputs): inputs(hostile, rng) -> the environ's HTTP_* keys and REMOTE_ADDR.
Case = tuple[dict[str, Any], Callable[[Hostile, random.Random], dict[str, Any]]]


def as_header_key(key: str) -> str:
    """A server variable as the request header a proxy would copy it into."""
    return key if key.startswith("HTTP_") or key == "REMOTE_ADDR" else "HTTP_" + key.upper().replace("-", "_")


def header_cases() -> list[Case]:
    cases: list[Case] = []
    for scenario in scenarios():
        options = dict(scenario.options)
        if get_profile(options.get("profile", "shibboleth")).variables_only:
            options.update(channel="headers", trusted_proxies=[TRUSTED_PROXY])

        def inputs(
            hostile: Hostile, rng: random.Random, variables: Any = scenario.variables
        ) -> dict[str, Any]:
            found = {as_header_key(key): value for key, value in variables(hostile, rng).items()}
            found.setdefault("REMOTE_ADDR", TRUSTED_PROXY if rng.random() < 0.8 else UNTRUSTED)
            return found

        cases.append((options, inputs))
    return cases


def signed_case(hostile: Hostile, rng: random.Random) -> Case:
    signer, stranger = TestSigner(), TestSigner()
    tokens: list[str] = []
    for _ in range(300):
        extra: dict[str, Any] = {
            "email": rng.choice([hostile.text(), None, 7, ["a@x", "b@x"]]),
            "groups": rng.choice([["g1", "g2"], "g1,g2", [], [hostile.text()], None]),
        }
        claims = signer.claims(rng.choice(["alice@example.org", "bob", hostile.text()]), extra)
        roll = rng.random()
        if roll < 0.1:
            claims["exp"] = claims["iat"] - 10  # expired
        elif roll < 0.15:
            claims["sub"] = rng.choice([["a", "b"], 7, None, ""])
        elif roll < 0.2:
            claims["aud"] = "another-app"
        chosen = stranger if rng.random() < 0.1 else signer
        token = chosen.sign({key: value for key, value in claims.items() if value is not None})
        if rng.random() < 0.05:
            token = rng.choice([token[:-3], "x.y.z", token + "." + token, hostile.text()[:200]])
        tokens.append(token)
    options = {
        "profile": "pomerium",
        "jwks": signer.jwks,
        "issuer": signer.issuer,
        "audience": signer.audience,
        "attributes": {"email": "email", "groups": Attribute("groups", multi=True)},
    }

    def inputs(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
        found: dict[str, Any] = {"REMOTE_ADDR": rng.choice([TRUSTED_PROXY, UNTRUSTED])}
        if rng.random() < 0.9:
            found["HTTP_X_POMERIUM_JWT_ASSERTION"] = rng.choice(tokens)
        if rng.random() < 0.3:
            found["HTTP_X_POMERIUM_CLAIM_EMAIL"] = "admin@example.org"
        return found

    return options, inputs


def wire(value: str) -> bytes:
    """The bytes a header value travels as (text a server could not have decoded arrives as UTF-8)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


async def compare(count: int) -> dict[int, int]:
    rng = random.Random(SEED + 1)
    hostile = Hostile(rng)
    cases = [*header_cases(), signed_case(hostile, rng)]
    rules = [Rule("/", LoggedIn())]
    seen = CapturingApp()
    shells = []
    for options, _ in cases:
        common = {"session": MemoryStore(), "secret_key": SECRET, "rules": rules, **options}
        shells.append((SSOMiddleware(seen, **common), ASGIMiddleware(Recorder(), **common)))
    statuses: dict[int, int] = {}
    for number in range(count):
        index = number % len(cases)
        found = {**cases[index][1](hostile, rng), **lookalikes(hostile, rng)}
        raw = {key: wire(value) for key, value in found.items() if key.startswith("HTTP_")}
        peer = found.get("REMOTE_ADDR", TRUSTED_PROXY)
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "app.example.org",
            "SERVER_PORT": "443",
            "HTTP_HOST": "app.example.org",
            "REMOTE_ADDR": peer,
            "wsgi.url_scheme": "https",
            **{key: value.decode("latin-1") for key, value in raw.items()},
        }
        headers = [(key[5:].lower().replace("_", "-").encode("latin-1"), value) for key, value in raw.items()]
        wsgi, asgi = shells[index]
        seen.identity = None
        status = run(wsgi, environ)
        reply = await acall(asgi, scope_for("/", headers, client=(peer, 40000)))
        context = (number, cases[index][0].get("profile", "shibboleth"), {k: v[:80] for k, v in raw.items()})
        assert reply.status == status, context
        if status == 200:
            assert reply.identity == seen.identity, context
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def test_wsgi_and_asgi_give_the_same_answer_to_every_hostile_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("shibwsgi"), "disabled", True)
    statuses = asyncio.run(compare(COUNT))
    # The inputs reach every outcome: identified, anonymous, refused, oversized.
    assert {200, 401, 400} <= set(statuses), statuses
