"""Attacks on the options: accepted but without effect, wrongly refused, wrong types, secrets shown.

The promises: every option that cannot take effect is a ConfigError naming what it needs
(README "Which option needs which"); settings that spell out a default are accepted; a
wrong type is a ConfigError naming the option, never a TypeError or OverflowError at
start-up nor a 500 at request time; no ConfigError shows a secret.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, SSOMiddleware
from shibwsgi.middleware import OPTION_DEFAULTS
from shibwsgi.sessions import MemoryStore
from shibwsgi.settings import parse_settings
from shibwsgi.testing.signed import TestSigner
from tests.helpers import echo_app

KEY = "k" * 32
SECRET = "Sup3rS3cretValue-9876"
SIGNER = TestSigner()
SHIB_USER = {"eppn": "alice@example.org", "REMOTE_USER": "alice@example.org", "Shib-Session-ID": "_abc"}


class Text(str):
    """A str subclass: still a string."""


#: Configurations in which every option can take effect (so a bad value reaches its check).
BASES = {
    "plain": {},
    "session": {"session": MemoryStore(), "secret_key": KEY},
    "roles": {"roles": lambda identity: ["a"]},
    "headers": {"profile": "authelia", "trusted_proxies": ["10.0.0.1"]},
    "signed": {"profile": "pomerium", "jwks": SIGNER.jwks, "issuer": "https://i", "audience": "aud"},
    "openidc": {"profile": "openidc", "jwks": SIGNER.jwks, "issuer": "https://i", "audience": "aud"},
    "probe": {"probe_token": "t" * 32},
    "auth": {"auth_path": "/auth"},
}
WRONG = {
    "True": True,
    "False": False,
    "float": 1.5,
    "nan": math.nan,
    "inf": math.inf,
    "negative zero": -0.0,
    "huge int": 10**400,
    "negative": -5,
    "bytes": b"x",
    "None": None,
    "dict": {"a": "b"},
    "set": {"a"},
    "object": object(),
    "str subclass": Text("/x"),
    "NUL": "a\x00b",
    "blank": "  ",
}


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("option", sorted(OPTION_DEFAULTS))
def test_every_option_of_every_wrong_type_is_a_config_error_or_accepted(option: str, base: str) -> None:
    for label, value in WRONG.items():
        try:
            SSOMiddleware(echo_app, **{**BASES[base], option: value})
        except ConfigError:
            pass
        except Exception as exc:  # the attack: anything else is the flaw
            pytest.fail(f"{option}={label} in {base}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    "secret_key",
    [
        pytest.param(True, id="bool"),
        pytest.param(12345678901234567890, id="int"),
        pytest.param(1.5, id="float"),
        pytest.param(object(), id="object"),
        pytest.param({KEY, "j" * 32}, id="set: no oldest-to-newest order"),
        pytest.param({KEY: "v"}, id="dict"),
        pytest.param(KEY.encode(), id="bytes"),
    ],
)
def test_secret_key_of_a_wrong_type_is_a_config_error_naming_it(secret_key: Any) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, session=MemoryStore(), secret_key=secret_key)
    assert info.value.setting == "secret_key"


def test_huge_int_roles_timeout_is_a_config_error_not_overflow() -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, roles=lambda identity: [], roles_timeout=10**400)
    assert info.value.setting == "roles_timeout"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(
            {"absolute_timeout": 10**400, "idle_timeout": 3600}, id="huge int: overflow per request"
        ),
        pytest.param({"absolute_timeout": 10**16, "idle_timeout": 3600}, id="Redis: invalid expire time"),
        pytest.param({"absolute_timeout": 401 * 86400}, id="past the browsers' 400-day cookie cap"),
    ],
)
def test_session_lifetime_no_browser_or_store_can_keep_is_refused(options: dict[str, int]) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, session=MemoryStore(), secret_key=KEY, **options)
    assert info.value.setting == "absolute_timeout"


def test_longest_session_browsers_keep_still_logs_in() -> None:
    settings = {
        "SHIBWSGI_SESSION": "memory:",
        "SHIBWSGI_SECRET_KEY": KEY,
        "SHIBWSGI_IDLE_TIMEOUT": "400d",
        "SHIBWSGI_ABSOLUTE_TIMEOUT": "400d",
    }
    app = TestApp(SSOMiddleware.from_mapping(echo_app, settings))
    https = {"wsgi.url_scheme": "https", "HTTP_HOST": "app.example.org"}
    assert app.get("/login", extra_environ={**SHIB_USER, **https}).status_int == 302
    assert app.get("/", extra_environ=https).json["remote_user"] == "alice@example.org"


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param(
            {"profile": "remote-user", "prefix": "APP_"}, "prefix", id="prefix, only REMOTE_USER read"
        ),
        pytest.param(
            {"user": "REMOTE_USER", "prefix": "APP_"}, "prefix", id="prefix, shibboleth user REMOTE_USER"
        ),
        pytest.param(
            {"profile": "remote-user", "encoding": "base64url"},
            "encoding",
            id="encoding, only REMOTE_USER read",
        ),
        pytest.param(
            {"profile": "kong-oidc", "trusted_proxies": ["10.0.0.1"], "encoding": "url"},
            "encoding",
            id="encoding, kong reads JSON with its own json_encoding",
        ),
    ],
)
def test_prefix_or_encoding_that_no_variable_is_read_with_is_refused(
    options: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ConfigError, match="cannot take effect") as info:
        SSOMiddleware(echo_app, **options)
    assert info.value.setting == setting


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"profile": "mellon", "prefix": "APP_"}, id="mellon: its IdP claim is prefixed"),
        pytest.param(
            {"profile": "remote-user", "prefix": "APP_", "attributes": {"m": "mail"}}, id="an attribute"
        ),
        pytest.param({"user": "REMOTE_USER", "encoding": "url"}, id="shibboleth: its Shib-* variables"),
        pytest.param(
            {"profile": "remote-user", "encoding": "url", "attributes": {"m": "mail"}},
            id="remote-user attribute",
        ),
        pytest.param(
            {"profile": "azure-easy-auth", "trusted_proxies": ["10.0.0.1"], "encoding": "url"},
            id="azure: its principal headers",
        ),
    ],
)
def test_prefix_or_encoding_that_takes_effect_is_accepted(options: dict[str, Any]) -> None:
    SSOMiddleware(echo_app, **options)


def test_remote_user_prefix_applies_to_attributes() -> None:
    app = TestApp(SSOMiddleware(echo_app, profile="remote-user", prefix="APP_", attributes={"m": "mail"}))
    environ = {"REMOTE_USER": "alice", "APP_mail": "a@example.org", "mail": "wrong@example.org"}
    assert app.get("/", extra_environ=environ).json["identity"]["attributes"]["m"] == ["a@example.org"]


@pytest.mark.parametrize(
    "cookie_name",
    [
        pytest.param("__Secure-app", id="__Secure- without Secure"),
        pytest.param("__host-app", id="__host- in lower case"),
        pytest.param("__SECURE-app", id="__SECURE- in upper case"),
    ],
)
def test_cookie_name_browsers_drop_without_secure_is_refused(cookie_name: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(
            echo_app, session=MemoryStore(), secret_key=KEY, cookie_name=cookie_name, cookie_secure=False
        )
    assert info.value.setting == "cookie_name"


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        pytest.param("login_path", "/a/../login", id="dot-dot segment"),
        pytest.param("logout_path", "/./logout", id="dot segment"),
        pytest.param("whoami_path", "/me//who", id="double slash"),
        pytest.param("auth_path", "/auth/..", id="trailing dot-dot"),
    ],
)
def test_endpoint_path_servers_normalise_away_is_refused(setting: str, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **{setting: path})
    assert info.value.setting == setting


def test_deeply_nested_static_jwks_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, profile="jwt", assertion_header="X-Jwt", audience="a", jwks="[" * 100_000)
    assert info.value.setting == "jwks"


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"SHIBWSGI_COOKIE_SECURE": "True"}, id="COOKIE_SECURE=True"),
        pytest.param({"SHIBWSGI_COOKIE_SECURE": " yes "}, id="COOKIE_SECURE=yes with blanks"),
        pytest.param({"SHIBWSGI_COOKIE_SECURE": "1"}, id="COOKIE_SECURE=1"),
        pytest.param({"SHIBWSGI_IDLE_TIMEOUT": "1h"}, id="IDLE_TIMEOUT=1h"),
        pytest.param({"SHIBWSGI_ABSOLUTE_TIMEOUT": "8h"}, id="ABSOLUTE_TIMEOUT=8h"),
        pytest.param({"SHIBWSGI_MAX_ATTRIBUTE_BYTES": " 65535 "}, id="MAX_ATTRIBUTE_BYTES default"),
        pytest.param({"SHIBWSGI_LEEWAY": "0"}, id="LEEWAY=0"),
        pytest.param({"SHIBWSGI_ROLES_TIMEOUT": "5"}, id="ROLES_TIMEOUT default without roles"),
        pytest.param({"SHIBWSGI_USER": "eppn,  REMOTE_USER"}, id="USER default, odd spacing"),
        pytest.param({"SHIBWSGI_TRUSTED_PROXIES": " "}, id="TRUSTED_PROXIES blank"),
        pytest.param({"SHIBWSGI_LOGIN_PATH": " /login "}, id="LOGIN_PATH default with blanks"),
        pytest.param({"SHIBWSGI_PROXY_SECRET_HEADER": "X-Shibwsgi-Proxy-Secret"}, id="PROXY_SECRET_HEADER"),
    ],
)
def test_settings_spelling_out_a_default_are_accepted(settings: dict[str, str]) -> None:
    SSOMiddleware.from_mapping(echo_app, settings)


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(
            {
                "SHIBWSGI_PROFILE": "pomerium",
                "SHIBWSGI_AUDIENCE": "a",
                "SHIBWSGI_JWKS_URL": f"http://u:{SECRET}@h/j",
            },
            id="jwks_url with a password",
        ),
        pytest.param(
            {
                "SHIBWSGI_PROFILE": "pomerium",
                "SHIBWSGI_AUDIENCE": "a",
                "SHIBWSGI_JWKS_URL": f"ftp://:{SECRET}@h",
            },
            id="jwks_url ftp with a password",
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": f"redis://:{SECRET}@h/x", "SHIBWSGI_SECRET_KEY": KEY}, id="redis bad db"
        ),
        pytest.param(
            {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": SECRET[:12]}, id="short secret_key"
        ),
        pytest.param({"SHIBWSGI_SECRET_KEY": SECRET}, id="secret_key without a session"),
        pytest.param({"SHIBWSGI_PROXY_SECRET": SECRET}, id="proxy_secret in the environ channel"),
        pytest.param(
            {
                "SHIBWSGI_PROFILE": "authelia",
                "SHIBWSGI_TRUSTED_PROXIES": "10.0.0.1",
                "SHIBWSGI_PROXY_SECRET": "short",
            },
            id="short proxy_secret",
        ),
        pytest.param({"SHIBWSGI_PROBE_TOKEN": SECRET + "\u00e9"}, id="non-ASCII probe_token"),
        pytest.param(
            {"SHIBWSGI_PROBE_TOKEN": SECRET, "SHIBWSGI_PROBE_PATH": "/login"}, id="probe path taken"
        ),
        pytest.param({"SHIBWSGI_SECRETKEY": SECRET}, id="misspelt setting"),
    ],
)
def test_config_errors_never_show_a_secret(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware.from_mapping(echo_app, settings)
    assert SECRET[:12] not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1:1/abc", id="database not a number: redis-py uses 0"),
        pytest.param("redis://127.0.0.1:1/0/1", id="two segments: redis-py reads database 1"),
        pytest.param("redis://127.0.0.1:1/-1", id="negative database"),
        pytest.param("redis://127.0.0.1:1/0?socket_timeout=nan", id="NaN timeout: ValueError per request"),
        pytest.param("redis://127.0.0.1:1/0?socket_timeout=-1", id="negative timeout"),
        pytest.param("redis://127.0.0.1:1/0?socket_connect_timeout=inf", id="infinite connect timeout"),
    ],
)
def test_redis_url_that_would_use_another_database_or_fail_each_request_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_SESSION": url, "SHIBWSGI_SECRET_KEY": KEY})
    assert info.value.setting == "SHIBWSGI_SESSION"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://127.0.0.1:1", id="no path"),
        pytest.param("redis://127.0.0.1:1/", id="bare slash"),
        pytest.param("redis://127.0.0.1:1/15", id="database 15"),
        pytest.param("redis://127.0.0.1:1/0?socket_timeout=2.5", id="timeout"),
    ],
)
def test_redis_url_with_a_database_number_is_accepted(url: str) -> None:
    SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_SESSION": url, "SHIBWSGI_SECRET_KEY": KEY})


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"leeway": 30}, "leeway", id="leeway without a verified token"),
        pytest.param({"roles_ttl": 120}, "roles_ttl", id="roles_ttl without roles"),
        pytest.param({"cookie_name": "app"}, "cookie_name", id="cookie_name without session"),
        pytest.param({"auth_headers": {}}, "auth_headers", id="auth_headers none without auth_path"),
        pytest.param({"max_attribute_bytes": 100}, "max_attribute_bytes", id="byte cap without attributes"),
        pytest.param(
            {"attributes": {"m": Attribute("mail", max_bytes=10)}, "max_attribute_bytes": 100},
            "max_attribute_bytes",
            id="byte cap, every attribute capped",
        ),
        pytest.param(
            {"login_path": None, "login_url": "/sso?t={target}"}, "login_url", id="login_url, no login"
        ),
        pytest.param({"probe_path": "/probe"}, "probe_path", id="probe_path without probe_token"),
        pytest.param(
            {"profile": "pomerium", "audience": "a", "jwks_url": "https://k", "channel": "headers"},
            "channel",
            id="channel on a signed profile",
        ),
    ],
)
def test_option_that_cannot_take_effect_names_what_it_needs(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match="cannot take effect here: it needs") as info:
        SSOMiddleware(echo_app, **options)
    assert info.value.setting == setting


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"prefix": "Remote "}, "prefix", id="prefix with a space"),
        pytest.param({"prefix": "Remote:"}, "prefix", id="prefix with a colon"),
        pytest.param({"user": "us er"}, "user", id="user source with a space"),
        pytest.param({"attributes": {"m": "ma il"}}, "attributes", id="attribute source with a space"),
        pytest.param(
            {"attributes": {"m": "urn:oid:0.9.2342.19200300.100.1.3"}}, "attributes", id="URN source"
        ),
    ],
)
def test_header_channel_source_no_header_can_carry_is_refused(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError, match="not a header name") as info:
        SSOMiddleware(echo_app, profile="authelia", trusted_proxies=["10.0.0.1"], **options)
    assert info.value.setting == setting


def test_header_profile_with_json_documents_keeps_uri_claims() -> None:
    SSOMiddleware(
        echo_app,
        profile="azure-easy-auth",
        trusted_proxies=["10.0.0.1"],
        prefix="X-",
        attributes={"mail": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"},
    )


def test_empty_prefix_list_is_refused_naming_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, prefix=[], attributes={"m": "mail"})
    assert info.value.setting == "prefix"


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"SHIBWSGI_ATTRIBUTES": "m=mail m=displayName"}, id="attribute name twice"),
        pytest.param(
            {
                "SHIBWSGI_AUTH_PATH": "/auth",
                "SHIBWSGI_ATTRIBUTES": "mail=mail name=displayName",
                "SHIBWSGI_AUTH_HEADERS": "X-A=mail x-a=name",
            },
            id="auth header twice, in another case",
        ),
    ],
)
def test_setting_that_names_one_thing_twice_is_refused_not_last_wins(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="given twice"):
        SSOMiddleware.from_mapping(echo_app, settings)


@pytest.mark.parametrize(
    ("options", "source"),
    [
        pytest.param({}, "mail", id="attribute not configured"),
        pytest.param({"attributes": {"email": "mail"}}, "mail", id="a source name, not the app's name"),
        pytest.param({}, "roles", id="roles without the roles hook"),
    ],
)
def test_auth_header_whose_source_no_identity_fills_is_refused(options: dict[str, Any], source: str) -> None:
    with pytest.raises(ConfigError, match="is not user, roles") as info:
        SSOMiddleware(echo_app, auth_path="/auth", auth_headers={"X-Value": source}, **options)
    assert info.value.setting == "auth_headers"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"auth_headers": {"X-User": "user"}}, id="user"),
        pytest.param(
            {"auth_headers": {"X-Roles": "roles"}, "roles": lambda identity: []}, id="roles with the hook"
        ),
        pytest.param(
            {"auth_headers": {"X-Mail": "email"}, "attributes": {"email": "mail"}}, id="an attribute"
        ),
        pytest.param({}, id="the defaults, without their attributes"),
    ],
)
def test_auth_headers_an_identity_fills_are_accepted(options: dict[str, Any]) -> None:
    SSOMiddleware(echo_app, auth_path="/auth", **options)


@pytest.mark.parametrize(
    ("setting", "value", "keyword", "expected"),
    [
        pytest.param("SHIBWSGI_ROLES_TTL", "5m", "roles_ttl", 300, id="ROLES_TTL=5m"),
        pytest.param("SHIBWSGI_ROLES_TTL", "0", "roles_ttl", 0, id="ROLES_TTL=0"),
        pytest.param("SHIBWSGI_LEEWAY", "30s", "leeway", 30, id="LEEWAY=30s"),
    ],
)
def test_every_seconds_setting_takes_a_duration(
    setting: str, value: str, keyword: str, expected: int
) -> None:
    assert parse_settings({setting: value}) == {keyword: expected}


@pytest.mark.parametrize(
    ("setting", "template"),
    [
        pytest.param("login_url", "/sso?t={target}\r\nSet-Cookie: admin=1", id="CRLF: header injection"),
        pytest.param("login_url", "/sso?t={target}\n", id="LF"),
        pytest.param("logout_url", "/sso?r={return_to}\x00", id="NUL"),
        pytest.param("logout_url", "/s so?r={return_to}", id="space"),
        pytest.param("login_url", "https://idp.example/sso?t={target}\t", id="tab"),
        pytest.param("login_url", "/sso?t={target}&l=\u00e9", id="non-ASCII"),
    ],
)
def test_front_end_url_that_cannot_be_a_location_header_is_refused(setting: str, template: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **{setting: template})
    assert info.value.setting == setting


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://keys.example/{kd}", id="misspelt kid"),
        pytest.param("https://keys.example/{kid", id="unclosed"),
        pytest.param("https://keys.example/{KID}", id="upper case"),
    ],
)
def test_jwks_url_with_a_placeholder_other_than_kid_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, profile="aws-alb", audience="arn:aws:elasticloadbalancing:x", jwks_url=url)
    assert info.value.setting == "jwks_url"


def test_jwks_url_per_kid_template_is_accepted() -> None:
    SSOMiddleware(
        echo_app, profile="aws-alb", audience="arn:aws:elasticloadbalancing:x", jwks_url="https://k/{kid}"
    )
