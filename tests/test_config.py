"""Configuration is validated once, at construction, with errors naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shibwsgi import Attribute, ConfigError, Profile, SSOMiddleware
from shibwsgi.auth_request import DEFAULT_AUTH_HEADERS
from shibwsgi.middleware import OPTION_DEFAULTS
from shibwsgi.needs import NEEDS, markdown_table
from shibwsgi.profiles import PROFILES
from shibwsgi.sessions import MemoryStore
from shibwsgi.settings import PREFIX
from shibwsgi.settings import SETTINGS as SETTINGS_TABLE
from shibwsgi.testing.signed import TestSigner
from tests.helpers import echo_app


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"profile": "shibolleth"}, "profile", id="unknown profile"),
        pytest.param({"channel": "cookies"}, "channel", id="unknown channel"),
        pytest.param({"channel": "headers"}, "trusted_proxies", id="headers without trusted proxies"),
        pytest.param(
            {"trusted_proxies": ["10.0.0.1"]}, "trusted_proxies", id="trusted proxies with environ channel"
        ),
        pytest.param(
            {"channel": "headers", "trusted_proxies": ["10.0.0.300"]}, "trusted_proxies", id="bad address"
        ),
        pytest.param(
            {"channel": "headers", "trusted_proxies": ["10.0.0.1"], "proxy_secret": "short"},
            "proxy_secret",
            id="short proxy secret",
        ),
        pytest.param({"encoding": "utf-16"}, "encoding", id="unknown encoding"),
        pytest.param({"user": []}, "user", id="no user source"),
        pytest.param({"user": [""]}, "user", id="empty user source"),
        pytest.param({"attributes": {"email": 3}}, "attributes", id="attribute spec not a string"),
        pytest.param({"attributes": {"": "mail"}}, "attributes", id="empty attribute name"),
        pytest.param({"attributes": ["mail"]}, "attributes", id="attributes not a mapping"),
        pytest.param({"max_attribute_bytes": 0}, "max_attribute_bytes", id="zero byte cap"),
        pytest.param({"max_attribute_values": True}, "max_attribute_values", id="boolean value cap"),
    ],
)
def test_bad_option_raises_config_error_naming_it(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **options)
    assert info.value.setting == setting
    assert str(info.value).startswith(setting)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        SSOMiddleware(echo_app, "shibboleth")  # type: ignore[misc]


def test_app_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="app"):
        SSOMiddleware("app.wsgi")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"source": ""}, id="empty source"),
        pytest.param({"source": "mail", "max_bytes": 0}, id="zero bytes"),
        pytest.param({"source": "mail", "max_values": -1}, id="negative values"),
    ],
)
def test_bad_attribute_raises(spec: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Attribute(**spec)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"name": ""}, id="no name"),
        pytest.param({"name": "x", "encoding": "ebcdic"}, id="bad encoding"),
        pytest.param({"name": "x", "delimiter": ""}, id="empty delimiter"),
        pytest.param({"name": "x", "variables": {"colour": "X"}}, id="unknown standard field"),
    ],
)
def test_bad_profile_raises(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Profile(**fields)


def test_every_builtin_profile_builds() -> None:
    from shibwsgi.testing.signed import TestSigner

    signed = {"jwks": TestSigner().jwks, "audience": "app"}
    for name, profile in PROFILES.items():
        proxies = ["127.0.0.1"] if profile.channel == "headers" else []
        options = {**signed, "assertion_header": profile.assertion_header or "X-A"} if profile.signed else {}
        assert SSOMiddleware(echo_app, profile=name, trusted_proxies=proxies, **options).profile.name == name


def test_custom_profile() -> None:
    profile = Profile(name="corp", prefixes=("CORP_",), delimiter="|", user=("LOGIN",))
    middleware = SSOMiddleware(
        echo_app, profile=profile, attributes={"groups": Attribute("ROLES", multi=True)}
    )
    identity = middleware.identify({"CORP_LOGIN": "jd", "CORP_ROLES": "a|b"})
    assert identity is not None
    assert identity.user == "jd"
    assert identity.attributes["groups"] == ("a", "b")


SETTINGS = {
    "SHIBWSGI_PROFILE": "oauth2-proxy",
    "SHIBWSGI_CHANNEL": "headers",
    "SHIBWSGI_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
    "SHIBWSGI_PROXY_SECRET": "0123456789abcdef-secret",
    "SHIBWSGI_ATTRIBUTES": "email=email groups=groups:multi:required",
    "SHIBWSGI_MAX_ATTRIBUTE_BYTES": "2048",
    "PATH": "/usr/bin",
}


def test_from_mapping_converts_string_settings() -> None:
    middleware = SSOMiddleware.from_mapping(echo_app, SETTINGS)
    identity = middleware.identify(
        {
            "REMOTE_ADDR": "10.1.2.3",
            "HTTP_X_SHIBWSGI_PROXY_SECRET": "0123456789abcdef-secret",
            "HTTP_X_FORWARDED_USER": "jd",
            "HTTP_X_FORWARDED_GROUPS": "a,b",
        }
    )
    assert identity is not None
    assert identity.attributes["groups"] == ("a", "b")
    assert middleware.parser.attributes["groups"] == Attribute("groups", multi=True, required=True)


def test_from_env_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIBWSGI_PROFILE", "mellon")
    monkeypatch.setenv("SHIBWSGI_USER", "uid")
    middleware = SSOMiddleware.from_env(echo_app, attributes={"email": "mail"})
    assert middleware.profile.name == "mellon"
    assert middleware.parser.user_sources == ("uid",)
    assert set(middleware.parser.attributes) == {"email"}


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        pytest.param({"SHIBWSGI_PROFLE": "mellon"}, "SHIBWSGI_PROFLE", id="typo in a name"),
        pytest.param(
            {"SHIBWSGI_MAX_ATTRIBUTE_BYTES": "lots"}, "SHIBWSGI_MAX_ATTRIBUTE_BYTES", id="not a number"
        ),
        pytest.param({"SHIBWSGI_ATTRIBUTES": "email"}, "SHIBWSGI_ATTRIBUTES", id="attribute without source"),
        pytest.param({"SHIBWSGI_ATTRIBUTES": "g=groups:many"}, "SHIBWSGI_ATTRIBUTES", id="unknown flag"),
        pytest.param(
            {"SHIBWSGI_CHANNEL": "headers"}, "trusted_proxies", id="contradiction found after conversion"
        ),
    ],
)
def test_bad_string_settings(settings: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware.from_mapping(echo_app, settings)
    assert info.value.setting == setting


def test_repr_masks_proxy_secret() -> None:
    middleware = SSOMiddleware.from_mapping(echo_app, SETTINGS)
    assert "0123456789abcdef" not in repr(middleware.gate)
    assert "***" in repr(middleware.gate)
    assert "0123456789abcdef" not in repr(middleware)


def test_session_settings_from_strings(tmp_path: Any) -> None:
    settings = {
        "SHIBWSGI_SESSION": f"sqlite://{tmp_path}/sessions.sqlite3",
        "SHIBWSGI_SECRET_KEY": "old-key-old-key-old-key new-key-new-key-new-key",
        "SHIBWSGI_IDLE_TIMEOUT": "600",
        "SHIBWSGI_ABSOLUTE_TIMEOUT": "7200",
        "SHIBWSGI_COOKIE_SECURE": "off",
        "SHIBWSGI_LOGOUT_PATH": "none",
        "SHIBWSGI_LOGIN_PATH": "/sso/login",
    }
    middleware = SSOMiddleware.from_mapping(echo_app, settings)
    assert middleware.sessions is not None
    assert middleware.sessions.idle_timeout == 600
    assert middleware.cookie is not None
    assert middleware.cookie.name == "shibwsgi"
    assert middleware.login_path == "/sso/login"
    assert middleware.logout_path is None
    assert "new-key" not in repr(middleware.cookie)
    middleware.sessions.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param({"session": object(), "secret_key": "k" * 32}, "session", id="not a store"),
        pytest.param({"secret_key": "k" * 32}, "secret_key", id="key without store"),
        pytest.param({"session": "memory:"}, "session", id="store as a string"),
        pytest.param(
            {"idle_timeout": 10, "absolute_timeout": 5}, "idle_timeout", id="idle longer than absolute"
        ),
        pytest.param({"login_path": "login"}, "login_path", id="relative login path"),
        pytest.param({"login_path": "//evil"}, "login_path", id="scheme-relative login path"),
        pytest.param({"logout_path": "/login"}, "logout_path", id="same login and logout path"),
        pytest.param(
            {"logout_url": "https://sso.example.org/logout"}, "logout_url", id="template without placeholder"
        ),
        pytest.param({"login_url": "//evil/{target}"}, "login_url", id="scheme-relative template"),
        pytest.param({"rules": ["/"]}, "rules", id="rule not a Rule"),
    ],
)
def test_bad_session_options(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **options)
    assert info.value.setting == setting


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("short", id="short key"),
        pytest.param([], id="no keys"),
        pytest.param(["k" * 32, "x"], id="one short"),
    ],
)
def test_weak_secret_keys_are_refused(key: Any) -> None:
    from shibwsgi.sessions import MemoryStore

    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, session=MemoryStore(), secret_key=key)
    assert info.value.setting == "secret_key"


# -- options that cannot take effect (shibwsgi.needs) -------------------------------------------

_KEYS = TestSigner()
_SIGNED = {"profile": "pomerium", "jwks": _KEYS.jwks, "audience": "app"}
_OPENIDC_VERIFIED = {"profile": "openidc", "jwks": _KEYS.jwks, "audience": "app"}
_HEADERS = {"channel": "headers", "trusted_proxies": ["10.0.0.1"]}


def _session() -> dict[str, Any]:
    return {"session": MemoryStore(), "secret_key": "k" * 32}


def _roles(identity: Any) -> list[str]:
    return []


#: option, a value other than its default, options where it cannot take effect, options where it does.
IDLE_OPTIONS = [
    pytest.param("channel", "headers", _SIGNED, _HEADERS, id="channel with a signed profile"),
    pytest.param(
        "trusted_proxies", ["10.0.0.1"], {}, {"channel": "headers"}, id="trusted_proxies with environ"
    ),
    pytest.param("proxy_secret", "s" * 16, {}, _HEADERS, id="proxy_secret with environ"),
    pytest.param(
        "proxy_secret_header",
        "X-Secret",
        _HEADERS,
        {**_HEADERS, "proxy_secret": "s" * 16},
        id="proxy_secret_header without proxy_secret",
    ),
    pytest.param("encoding", "latin-1", _SIGNED, {}, id="encoding with a signed profile"),
    pytest.param("prefix", "X-", _SIGNED, {}, id="prefix with a signed profile"),
    pytest.param(
        "max_attribute_bytes", 1000, {}, {"attributes": {"mail": "mail"}}, id="byte cap, no attribute"
    ),
    pytest.param(
        "max_attribute_bytes",
        1000,
        {"attributes": {"mail": Attribute("mail", max_bytes=10)}},
        {"attributes": {"mail": Attribute("mail", max_values=3)}},
        id="byte cap, every attribute capped itself",
    ),
    pytest.param("secret_key", "k" * 32, {}, {"session": MemoryStore()}, id="secret_key without session"),
    pytest.param("idle_timeout", 600, {}, _session(), id="idle_timeout without session"),
    pytest.param("absolute_timeout", 7200, {}, _session(), id="absolute_timeout without session"),
    pytest.param("cookie_name", "app", {}, _session(), id="cookie_name without session"),
    pytest.param("cookie_secure", False, {}, _session(), id="cookie_secure without session"),
    pytest.param("cookie_cache_entries", 5, {}, _session(), id="cookie_cache_entries without session"),
    pytest.param("login_url", "/sso?t={target}", {"login_path": None}, {}, id="login_url without login_path"),
    pytest.param(
        "logout_url", "/sso/out?r={return_to}", {"logout_path": None}, {}, id="logout_url without logout_path"
    ),
    pytest.param("identity_cache_bytes", 0, _SIGNED, {}, id="identity cache with a signed profile"),
    pytest.param("roles_ttl", 30, {}, {"roles": _roles}, id="roles_ttl without roles"),
    pytest.param("roles_timeout", 1.5, {}, {"roles": _roles}, id="roles_timeout without roles"),
    pytest.param("auth_headers", {}, {}, {"auth_path": "/_auth"}, id="auth_headers without auth_path"),
    pytest.param("probe_path", "/_probe", {}, {"probe_token": "t" * 16}, id="probe_path without probe_token"),
    pytest.param(
        "assertion_header", "X-Token", _OPENIDC_VERIFIED, _SIGNED, id="assertion_header, unsigned profile"
    ),
    pytest.param(
        "jwks_url",
        "https://idp.example.org/jwks",
        {},
        {"profile": "iap", "audience": "/projects/1/global/backendServices/2"},
        id="jwks_url with shibboleth",
    ),
    pytest.param(
        "jwks", _KEYS.jwks, {}, {"profile": "openidc", "audience": "app"}, id="jwks with shibboleth"
    ),
    pytest.param("issuer", "https://idp", {}, _SIGNED, id="issuer with shibboleth"),
    pytest.param(
        "issuer", "https://idp", {"profile": "openidc"}, _OPENIDC_VERIFIED, id="issuer, openidc no keys"
    ),
    pytest.param(
        "audience",
        "app",
        {"profile": "openidc"},
        {"profile": "openidc", "jwks": _KEYS.jwks},
        id="audience, no keys",
    ),
    pytest.param("algorithms", ["ES256"], {}, _SIGNED, id="algorithms with shibboleth"),
    pytest.param("leeway", 30, {}, _SIGNED, id="leeway without a signed profile"),
    pytest.param("leeway", 30, {"profile": "openidc"}, _OPENIDC_VERIFIED, id="leeway, openidc without keys"),
]


@pytest.mark.parametrize(("option", "value", "idle", "effective"), IDLE_OPTIONS)
def test_option_that_cannot_take_effect_is_refused_naming_what_it_needs(
    option: str, value: Any, idle: dict[str, Any], effective: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **{**idle, option: value})
    assert info.value.setting == option
    need = NEEDS[option]
    assert need is not None
    assert need.what in str(info.value)
    # The same value where it does take effect is accepted.
    SSOMiddleware(echo_app, **{**effective, option: value})


def test_every_option_is_in_the_needs_table_and_every_setting_maps_to_one() -> None:
    assert list(NEEDS) == list(OPTION_DEFAULTS)
    assert {keyword for keyword, _ in SETTINGS_TABLE.values()} <= set(NEEDS)
    tested = {case.values[0] for case in IDLE_OPTIONS}
    assert tested == {name for name, need in NEEDS.items() if need is not None}


def test_readme_shows_the_needs_table() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    settings = {keyword: PREFIX + name for name, (keyword, _) in SETTINGS_TABLE.items()}
    assert markdown_table(settings) in readme, "regenerate: shibwsgi.needs.markdown_table"


def test_string_settings_that_spell_out_defaults_are_accepted() -> None:
    defaults = {
        "SHIBWSGI_COOKIE_SECURE": "true",
        "SHIBWSGI_IDLE_TIMEOUT": "1h",
        "SHIBWSGI_ABSOLUTE_TIMEOUT": "8h",
        "SHIBWSGI_COOKIE_CACHE_ENTRIES": "10000",
        "SHIBWSGI_ROLES_TTL": "60",
        "SHIBWSGI_ROLES_TIMEOUT": "5",
        "SHIBWSGI_LEEWAY": "0",
        "SHIBWSGI_TRUSTED_PROXIES": "",
        "SHIBWSGI_PROXY_SECRET_HEADER": "X-Shibwsgi-Proxy-Secret",
        "SHIBWSGI_AUTH_HEADERS": ",".join(
            f"{name}={source}" for name, source in DEFAULT_AUTH_HEADERS.items()
        ),
    }
    assert SSOMiddleware.from_mapping(echo_app, defaults).sessions is None


def test_string_setting_that_cannot_take_effect_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware.from_mapping(echo_app, {"SHIBWSGI_ROLES_TTL": "300"})
    assert info.value.setting == "roles_ttl"
    assert "roles" in str(info.value)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"max_bytes": True}, id="max_bytes=True"),
        pytest.param({"max_values": False}, id="max_values=False"),
        pytest.param({"max_bytes": 1.5}, id="max_bytes float"),
        pytest.param({"max_bytes": "100"}, id="max_bytes string"),
        pytest.param({"max_values": -3}, id="max_values negative"),
        pytest.param({"multi": "yes"}, id="multi string"),
        pytest.param({"multi": 1}, id="multi int"),
        pytest.param({"required": None}, id="required None"),
        pytest.param({"required": "false"}, id="required string"),
    ],
)
def test_attribute_field_of_the_wrong_type_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        Attribute("mail", **fields)
    assert info.value.setting == "attributes"
    assert next(iter(fields)) in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "base"),
    [
        pytest.param("user", 5, {}, id="user a number"),
        pytest.param("user", {"eppn": 1}, {}, id="user a mapping"),
        pytest.param("prefix", 5, {}, id="prefix a number"),
        pytest.param("trusted_proxies", 5, {"channel": "headers"}, id="trusted_proxies a number"),
        pytest.param("trusted_proxies", b"10.0.0.1", {"channel": "headers"}, id="trusted_proxies bytes"),
        pytest.param(
            "proxy_secret_header", 5, {**_HEADERS, "proxy_secret": "s" * 16}, id="secret header a number"
        ),
        pytest.param(
            "proxy_secret_header", "", {**_HEADERS, "proxy_secret": "s" * 16}, id="secret header empty"
        ),
        pytest.param(
            "proxy_secret_header", None, {**_HEADERS, "proxy_secret": "s" * 16}, id="secret header None"
        ),
        pytest.param(
            "proxy_secret_header",
            "X Secret",
            {**_HEADERS, "proxy_secret": "s" * 16},
            id="secret header space",
        ),
        pytest.param("cookie_name", 5, _session(), id="cookie_name a number"),
        pytest.param("cookie_name", "", _session(), id="cookie_name empty"),
        pytest.param("cookie_name", "a b;c", _session(), id="cookie_name with separators"),
        pytest.param("login_url", 5, {}, id="login_url a number"),
        pytest.param("logout_url", b"/out", {}, id="logout_url bytes"),
        pytest.param("rules", 5, {}, id="rules a number"),
        pytest.param("rules", "admin", {}, id="rules a string"),
        pytest.param("clock", 5, _session(), id="clock not callable"),
        pytest.param("assertion_header", 5, _SIGNED, id="assertion_header a number"),
        pytest.param("jwks_url", 5, {"profile": "iap", "audience": "a"}, id="jwks_url a number"),
        pytest.param("audience", 5, _SIGNED, id="audience a number"),
        pytest.param("algorithms", 5, _SIGNED, id="algorithms a number"),
    ],
)
def test_option_of_the_wrong_type_is_refused_naming_it(option: str, value: Any, base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **{**base, option: value})
    assert info.value.setting == option


@pytest.mark.parametrize(
    ("option", "secret"),
    [
        pytest.param("secret_key", "k" * 40, id="secret_key"),
        pytest.param("proxy_secret", "p" * 40, id="proxy_secret"),
    ],
)
def test_refusing_an_idle_secret_does_not_print_it(option: str, secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **{option: secret})
    assert secret not in str(info.value)
