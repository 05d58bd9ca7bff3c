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

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
# A user id is one printable value with nothing lost in decoding (U+FFFD marks a loss).
USER = TEXT.filter(lambda text: text.isprintable() and "\ufffd" not in text)
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
@given(
    user=USER.filter(lambda u: "," not in u),  # a comma would make it several values: refused
    values=st.lists(TEXT.filter(lambda v: "," not in v), min_size=1, max_size=8),
)
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
