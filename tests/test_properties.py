"""Property tests: what a front end encodes, the middleware gives back.

Lossless formats round-trip any text. The lossy ones, by the front ends' own
design, are excluded here and documented in the README:
- comma-joined lists without escaping (mod_auth_openidc ``OIDC_CLAIM_*``,
  oauth2-proxy groups): a value containing the delimiter splits;
- Shibboleth's ``\\;`` escape does not escape the backslash, so a value ending
  in a backslash before the delimiter cannot be told apart;
- mod_auth_openidc's ``latin1`` mode turns characters outside latin-1 into ``?``;
- mellon's merged form (``MellonMergeEnvVars``) does not escape at all.
"""

from __future__ import annotations

import base64
import random
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Response

from shibwsgi import Attribute, SSOMiddleware
from shibwsgi.testing import environ_for
from tests.helpers import echo_app

# Surrogates cannot be UTF-8 encoded by any front end; NUL and the like cannot
# appear in an environment variable.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)
USER = TEXT.filter(str.isprintable)
VALUES = st.lists(TEXT, min_size=1, max_size=8)

LOSSLESS = [
    ("shibboleth", {}, "isMemberOf", lambda v: not v.endswith("\\")),
    ("shibboleth", {"encoding": "url"}, "isMemberOf", lambda v: True),
    ("adfs", {}, "GROUP", lambda v: not v.endswith("\\")),
    ("mellon", {}, "groups", lambda v: True),
    ("openidc", {"encoding": "base64url", "id_token": True}, "groups", lambda v: True),
    ("openidc", {"encoding": "utf-8", "id_token": True}, "groups", lambda v: True),
]


def round_trip(profile: str, options: dict[str, Any], source: str, user: str, values: list[str]) -> Any:
    build = dict(options)
    encoding = build.get("encoding")
    environ = environ_for(profile, user, {source: values, "name": values[0]}, **build)
    middleware = SSOMiddleware(
        echo_app,
        profile=profile,
        attributes={
            "groups": Attribute(source, multi=True),
            "name": "name",
        },
        **({"encoding": encoding} if encoding else {}),
    )
    return middleware.identify(environ)


@settings(max_examples=60, deadline=None)
@given(user=USER, values=VALUES, case=st.sampled_from(LOSSLESS))
def test_lossless_formats_round_trip(user: str, values: list[str], case: Any) -> None:
    profile, options, source, representable = case
    values = [v for v in values if representable(v)] or ["x"]
    identity = round_trip(profile, options, source, user, values)
    assert identity is not None
    assert identity.user == user
    assert identity.attributes["groups"] == tuple(values)


@settings(max_examples=60, deadline=None)
@given(user=USER, values=st.lists(TEXT.filter(lambda v: "," not in v), min_size=1, max_size=8))
def test_comma_joined_lists_round_trip_without_commas(user: str, values: list[str]) -> None:
    environ = environ_for("oauth2-proxy", user, {"groups": values}, channel="headers") | {
        "REMOTE_ADDR": "127.0.0.1"
    }
    middleware = SSOMiddleware(
        echo_app,
        profile="oauth2-proxy",
        channel="headers",
        trusted_proxies=["127.0.0.1"],
        attributes={"groups": Attribute("groups", multi=True)},
    )
    identity = middleware.identify(environ)
    assert identity is not None
    assert identity.attributes["groups"] == tuple(values)


class _RandomText:
    """Random values cut from pools made once: delimiters and escapes, raw bytes, wide unicode."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        size = 140_000
        self.pools = [
            "".join(rng.choice(";,\\%=_-" + string.printable) for _ in range(size)),
            rng.randbytes(size).decode("latin-1"),
            "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(size)),
        ]
        self.specials = ["", "1795420800", "2026-11-23T10:00:00Z", "{", '{"sub": 1}', "[]", "null"]
        # The same, base64-encoded as the header front ends send JSON.
        self.specials += [base64.b64encode(text.encode()).decode() for text in self.specials]
        self.specials.append(
            base64.b64encode(b'{"claims": [{"typ": "groups", "val": 1}, {"typ": 2}]}').decode()
        )

    def __call__(self, size: int) -> str:
        if self.rng.random() < 0.2:
            return self.rng.choice(self.specials)
        pool = self.rng.choice(self.pools)
        start = self.rng.randrange(len(pool) - size)
        return pool[start : start + size]


FUZZ_PROFILES: list[dict[str, Any]] = [
    {"profile": "shibboleth"},
    {"profile": "shibboleth", "encoding": "url"},
    {"profile": "openidc"},
    {"profile": "openidc", "encoding": "base64url"},
    {"profile": "mellon"},
    {"profile": "adfs"},
    {"profile": "oauth2-proxy", "channel": "headers", "trusted_proxies": ["127.0.0.0/8"]},
    {"profile": "remote-user"},
    *(
        {"profile": name, "trusted_proxies": ["127.0.0.0/8"]}
        for name in ("authelia", "authentik", "vouch", "azure-easy-auth", "kong-oidc")
    ),
]
FUZZ_KEYS = [
    "eppn", "REMOTE_USER", "mail", "isMemberOf", "displayName", "Shib-Session-ID",
    "Shib-Authentication-Instant", "Shib-Session-Expires", "Shib-Identity-Provider",
    "OIDC_CLAIM_sub", "OIDC_CLAIM_groups", "OIDC_id_token_payload", "OIDC_userinfo_json",
    "OIDC_access_token_expires", "MELLON_groups", "MELLON_groups_0", "MELLON_groups_1", "MELLON_IDP",
    "ADFS_LOGIN", "ADFS_GROUP", "HTTP_X_FORWARDED_USER", "HTTP_X_FORWARDED_GROUPS", "HTTP_EPPN",
    "HTTP_ACCEPT", "REMOTE_ADDR", "HTTP_REMOTE_USER", "HTTP_REMOTE_GROUPS", "HTTP_X_AUTHENTIK_USERNAME",
    "HTTP_X_AUTHENTIK_GROUPS", "HTTP_X_VOUCH_USER", "HTTP_X_VOUCH_IDP_CLAIMS_GROUPS", "HTTP_X_MS_CLIENT_PRINCIPAL",
    "HTTP_X_MS_CLIENT_PRINCIPAL_NAME", "HTTP_X_USERINFO", "HTTP_X_ID_TOKEN",
]  # fmt: skip


def test_fuzz_random_environs_never_raise_or_500() -> None:
    rng = random.Random(20261123)
    random_text = _RandomText(rng)
    apps = [
        SSOMiddleware(echo_app, attributes={"email": "mail", "groups": Attribute(
            "isMemberOf" if "shib" in str(o["profile"]) else "groups", multi=True, required=rng.random() < 0.5,
            max_bytes=rng.choice([None, 50]))}, **o)
        for o in FUZZ_PROFILES
    ]  # fmt: skip
    statuses: dict[str, int] = {}
    for _ in range(10_000):
        environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "127.0.0.1"}
        for key in rng.sample(FUZZ_KEYS, rng.randrange(1, 8)):
            environ[key] = random_text(rng.choice([0, 3, 40, 2000, 70_000]))
        if rng.random() < 0.2:
            environ[random_text(12)] = random_text(20)
        response = Response.from_app(rng.choice(apps), environ)
        status = str(response.status_code)
        statuses[status] = statuses.get(status, 0) + 1
    assert set(statuses) <= {"200", "400", "403", "431"}
    assert statuses["200"] > 1000
