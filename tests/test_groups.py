"""Grouped options: each group checks itself, and builds the same middleware as the flat keywords."""

from __future__ import annotations

from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import ConfigError, ProxyTrust, Roles, Sessions, SignedAssertions, SSOMiddleware
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing.signed import TestSigner
from tests.helpers import echo_app

KEY = "k" * 32


def _hook(identity: Any) -> list[str]:
    return ["editor"]


@pytest.mark.parametrize(
    ("build", "setting"),
    [
        pytest.param(lambda: Sessions(object()), "session", id="not a store"),  # type: ignore[arg-type]
        pytest.param(lambda: Sessions(MemoryStore()), "secret_key", id="store without key"),
        pytest.param(lambda: Sessions(MemoryStore(), secret_key="short"), "secret_key", id="weak key"),
        pytest.param(
            lambda: Sessions(MemoryStore(), secret_key=KEY, idle_timeout=10, absolute_timeout=5),
            "idle_timeout",
            id="idle longer than absolute",
        ),
        pytest.param(
            lambda: Sessions(MemoryStore(), secret_key=KEY, cookie_name="__Host-x", cookie_secure=False),
            "cookie_name",
            id="host cookie not secure",
        ),
        pytest.param(lambda: Roles("not callable"), "roles", id="hook not callable"),  # type: ignore[arg-type]
        pytest.param(lambda: Roles(_hook, ttl=-1), "roles_ttl", id="negative ttl"),
        pytest.param(lambda: Roles(_hook, timeout=0), "roles_timeout", id="zero timeout"),
        pytest.param(lambda: SignedAssertions(jwks_url="http://keys.example/"), "jwks_url", id="plain http"),
        pytest.param(lambda: SignedAssertions(leeway=-1), "leeway", id="negative leeway"),
        pytest.param(lambda: ProxyTrust(["10.0.0.300"]), "trusted_proxies", id="bad proxy address"),
        pytest.param(lambda: ProxyTrust(["10.0.0.1"], proxy_secret_header="a b"), "proxy_secret_header"),
    ],
)
def test_group_checks_its_fields_when_made(build: Any, setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.setting == setting


def test_grouped_options_build_the_same_middleware_as_flat_keywords() -> None:
    store = MemoryStore()
    grouped = SSOMiddleware(
        echo_app,
        profile="oauth2-proxy",
        channel="headers",
        sessions=Sessions(store, secret_key=KEY, idle_timeout=60, cookie_secure=False),
        roles=Roles(_hook, ttl=5),
        proxy_trust=ProxyTrust(["127.0.0.1"]),
    )
    flat = SSOMiddleware(
        echo_app,
        profile="oauth2-proxy",
        channel="headers",
        session=store,
        secret_key=KEY,
        idle_timeout=60,
        cookie_secure=False,
        roles=_hook,
        roles_ttl=5,
        trusted_proxies=["127.0.0.1"],
    )
    for middleware in (grouped, flat):
        assert middleware.sessions is not None
        assert middleware.sessions.idle_timeout == 60
        assert middleware.roles is not None
        assert middleware.roles.ttl == 5
        assert middleware.cookie is not None
        assert middleware.cookie.name == "shibwsgi"
        response = TestApp(middleware, extra_environ={"REMOTE_ADDR": "127.0.0.1"}).get(
            "/", headers={"X-Forwarded-User": "jd"}
        )
        assert response.json["identity"]["user"] == "jd"
        assert response.json["identity"]["roles"] == ["editor"]


def test_signed_assertions_group_configures_the_verifier() -> None:
    signer = TestSigner()
    middleware = SSOMiddleware(
        echo_app,
        profile="pomerium",
        signed_assertions=SignedAssertions(
            jwks=signer.jwks, issuer=signer.issuer, audience="app.example.org"
        ),
    )
    assert middleware.verifier is not None
    assert middleware.verifier.audience == ("app.example.org",)


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param(
            {"sessions": Sessions(MemoryStore(), secret_key=KEY), "idle_timeout": 60},
            "idle_timeout",
            id="sessions field also flat",
        ),
        pytest.param({"roles": Roles(_hook), "roles_ttl": 5}, "roles_ttl", id="roles field also flat"),
        pytest.param(
            {"proxy_trust": ProxyTrust(["10.0.0.1"]), "trusted_proxies": ["10.0.0.2"], "channel": "headers"},
            "trusted_proxies",
            id="proxies twice",
        ),
        pytest.param({"sessions": MemoryStore()}, "sessions", id="a store where Sessions belongs"),
    ],
)
def test_option_given_twice_or_in_the_wrong_shape_is_refused(options: dict[str, Any], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, **options)
    assert info.value.setting == setting


def test_option_needs_apply_to_grouped_options_too() -> None:
    # Proxies cannot take effect in the environ channel, however they are spelled.
    with pytest.raises(ConfigError) as info:
        SSOMiddleware(echo_app, proxy_trust=ProxyTrust(["10.0.0.1"]))
    assert info.value.setting == "trusted_proxies"


def test_group_reprs_mask_secrets() -> None:
    assert KEY not in repr(Sessions(MemoryStore(), secret_key=KEY))
    assert "hunter2hunter2hunter2" not in repr(ProxyTrust(["10.0.0.1"], proxy_secret="hunter2hunter2hunter2"))


@pytest.mark.parametrize("shell", ["wsgi", "asgi"])
def test_signature_lists_every_option_and_group(shell: str) -> None:
    import inspect

    from shibwsgi.asgi import SSOMiddleware as ASGIMiddleware
    from shibwsgi.middleware import OPTION_DEFAULTS

    parameters = inspect.signature(SSOMiddleware if shell == "wsgi" else ASGIMiddleware).parameters
    assert next(iter(parameters)) == "app"
    assert set(OPTION_DEFAULTS) | {"sessions", "roles", "signed_assertions", "proxy_trust"} <= set(parameters)
