"""Settings-only Django mode: shibwsgi.django.SSOMiddleware in MIDDLEWARE, options in SHIBWSGI = {...}."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shibwsgi import Attribute, ConfigError
from shibwsgi.authz import HasAttribute, LoggedIn, Rule
from shibwsgi.errors import SessionError
from shibwsgi.sessions import MemoryStore
from shibwsgi.testing import environ_for

django_site = pytest.importorskip("django_site")
pytestmark = pytest.mark.usefixtures("django_database", "empty_django_tables")

ATTRIBUTES = {"email": "mail", "given_name": "givenName", "groups": Attribute("isMemberOf", multi=True)}
MIDDLEWARE = [
    "shibwsgi.django.SSOMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "shibwsgi.django.IdentityMiddleware",
]
HEADERS = {
    "profile": "oauth2-proxy",
    "channel": "headers",
    "trusted_proxies": ["127.0.0.1/32"],
    "attributes": {"email": "email"},
}


@pytest.fixture
def configure() -> Iterator[Callable[..., None]]:
    """Settings-only mode with ``SHIBWSGI`` set to the given options (clients made after it see them)."""
    from django.test import override_settings

    overrides: list[Any] = []

    def apply(**options: Any) -> None:
        override = override_settings(
            MIDDLEWARE=MIDDLEWARE,
            SHIBWSGI={"attributes": ATTRIBUTES, **options},
            ALLOWED_HOSTS=["testserver"],
        )
        override.enable()
        overrides.append(override)

    yield apply
    for override in reversed(overrides):
        override.disable()


def alice(**attributes: Any) -> dict[str, str]:
    values = {"mail": "alice@example.org", "givenName": "Alice", "isMemberOf": ["app-readers"], **attributes}
    return environ_for("shibboleth", "alice@example.org", values)


def test_signed_in_user_is_logged_in_by_the_test_client(configure: Callable[..., None]) -> None:
    from django.test import Client

    configure()
    seen = Client().get("/", **alice()).json()
    assert seen["authenticated"] and seen["username"] == "alice@example.org"
    assert seen["email"] == "alice@example.org" and seen["groups"] == ["app-readers"]


def test_request_without_identity_is_anonymous(configure: Callable[..., None]) -> None:
    from django.test import Client

    configure()
    assert Client().get("/").json()["authenticated"] is False


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"HTTP_EPPN": "admin@example.org"}, id="eppn header"),
        pytest.param({"HTTP_REMOTE_USER": "admin@example.org"}, id="remote-user header"),
        pytest.param({"HTTP_X_FORWARDED_USER": "admin@example.org"}, id="proxy header on a server profile"),
    ],
)
def test_forged_header_is_ignored_in_settings_mode(
    configure: Callable[..., None], forged: dict[str, str]
) -> None:
    from django.test import Client

    configure()
    assert Client().get("/", **forged).json()["authenticated"] is False


def test_forged_header_is_scrubbed_from_request_meta(configure: Callable[..., None]) -> None:
    from django.test import RequestFactory

    from shibwsgi.django import SSOMiddleware

    configure()
    seen: dict[str, Any] = {}

    def view(request: Any) -> Any:
        from django.http import HttpResponse

        seen.update(request.META)
        seen["headers"] = dict(request.headers)
        return HttpResponse("ok")

    request = RequestFactory().get("/", HTTP_EPPN="admin@example.org")
    assert request.headers["Eppn"] == "admin@example.org"  # read (and cached) before the gate
    SSOMiddleware(view)(request)
    assert "HTTP_EPPN" not in seen and "Eppn" not in seen["headers"]
    assert seen["shibwsgi.identity"] is None and "REMOTE_USER" not in seen


def test_remote_user_is_set_from_the_identity(configure: Callable[..., None]) -> None:
    from django.http import HttpResponse
    from django.test import RequestFactory

    from shibwsgi.django import SSOMiddleware

    configure()
    request = RequestFactory().get("/", **{**alice(), "HTTP_REMOTE_USER": "mallory"})
    response = SSOMiddleware(lambda request: HttpResponse(request.META["REMOTE_USER"]))(request)
    assert response.content == b"alice@example.org"


@pytest.mark.parametrize(
    ("environ", "status"),
    [
        pytest.param({}, 401, id="anonymous gets 401"),
        pytest.param(alice(), 403, id="reader gets 403"),
        pytest.param(alice(isMemberOf=["app-editors"]), 200, id="editor gets in"),
    ],
)
def test_rules_refusals_are_django_responses(
    configure: Callable[..., None], environ: dict[str, str], status: int
) -> None:
    from django.test import Client

    configure(rules=[Rule("/editors", HasAttribute("groups", "app-editors")), Rule("/", LoggedIn())])
    response = Client().get("/editors", **environ)
    assert response.status_code == status
    assert (b'"editor": ' in response.content) is (status == 200)


def test_login_and_logout_with_a_session_store(configure: Callable[..., None]) -> None:
    from django.test import Client

    configure(session=MemoryStore(), secret_key="k" * 32)
    client = Client()
    login = client.get("/login", {"next": "/members"}, **alice())
    assert login.status_code in (302, 303) and login["Location"].endswith("/members")
    (cookie,) = [morsel for name, morsel in client.cookies.items() if "shibwsgi" in name]
    # The middleware's session cookie reached Django's response with its attributes.
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert client.get("/members").json() == {"member": "alice@example.org"}  # no identity: the session's
    logout = client.get("/logout")
    assert logout.status_code in (302, 303)
    assert client.get("/").json()["authenticated"] is False


def test_session_string_setting_is_converted(configure: Callable[..., None]) -> None:
    from django.test import Client

    configure(session="memory://", secret_key="k" * 32)
    client = Client()
    client.get("/login", **alice())
    assert client.get("/").json()["username"] == "alice@example.org"


def test_unknown_option_says_what_was_meant(configure: Callable[..., None]) -> None:
    from django.test import Client

    configure(audiense="x")
    with pytest.raises(ConfigError, match="did you mean 'audience'"):
        Client().get("/")


def test_missing_setting_is_refused(configure: Callable[..., None]) -> None:
    from django.test import override_settings

    from shibwsgi.django import SSOMiddleware

    configure()
    with override_settings(), pytest.raises(ConfigError, match="SHIBWSGI"):
        from django.conf import settings

        del settings.SHIBWSGI
        SSOMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]


def test_middleware_after_authentication_middleware_refuses_to_start(configure: Callable[..., None]) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import Client, override_settings

    configure()
    misplaced = override_settings(MIDDLEWARE=[*MIDDLEWARE[1:], MIDDLEWARE[0]])
    with misplaced, pytest.raises(ImproperlyConfigured, match="comes after"):
        Client().get("/", **alice())


def test_wsgi_wrapper_and_settings_mode_at_once_is_refused(
    configure: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.core.handlers.wsgi import WSGIHandler
    from webtest import TestApp

    from shibwsgi import SSOMiddleware

    configure()
    app = TestApp(SSOMiddleware(WSGIHandler(), attributes=ATTRIBUTES))
    response = app.get("/", extra_environ={**alice(), "HTTP_HOST": "testserver"}, expect_errors=True)
    assert response.status_int == 500
    raised = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert any(isinstance(exc, ImproperlyConfigured) and "ran twice" in str(exc) for exc in raised)


def test_force_identity_signs_the_test_client_in_and_out(configure: Callable[..., None]) -> None:
    from django.test import Client

    from shibwsgi.testing.django import clear_identity, force_identity

    configure()
    client = Client()
    force_identity(client, "bob@example.org", {"mail": "bob@example.org", "isMemberOf": ["app-editors"]})
    assert client.get("/editors").json() == {"editor": "bob@example.org"}
    clear_identity(client)
    assert client.get("/").json()["authenticated"] is False


def test_force_identity_with_a_signed_profile(configure: Callable[..., None]) -> None:
    from django.test import Client

    from shibwsgi.testing import TestSigner
    from shibwsgi.testing.django import force_identity

    signer = TestSigner()
    configure(profile="pomerium", jwks=signer.jwks, audience=signer.audience, attributes={"email": "email"})
    client = Client()
    force_identity(
        client, "carol@example.org", {"email": "carol@example.org"}, profile="pomerium", signer=signer
    )
    assert client.get("/").json()["username"] == "carol@example.org"


def test_asgi_header_profile_signs_in(configure: Callable[..., None]) -> None:
    from django.test import AsyncClient

    from shibwsgi.testing.django import force_identity

    configure(**HEADERS)
    client = AsyncClient()
    force_identity(
        client, "dan@example.org", {"email": "dan@example.org"}, profile="oauth2-proxy", channel="headers"
    )
    seen = asyncio.run(client.get("/")).json()
    assert seen["authenticated"] and seen["username"] == "dan@example.org"


def test_asgi_forged_header_from_untrusted_peer_is_ignored(configure: Callable[..., None]) -> None:
    from django.test import AsyncClient

    configure(**{**HEADERS, "trusted_proxies": ["10.0.0.1/32"]})
    response = asyncio.run(AsyncClient().get("/", headers={"X-Forwarded-User": "admin@example.org"}))
    assert response.json()["authenticated"] is False


def test_asgi_server_variable_profile_is_refused(configure: Callable[..., None]) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import AsyncClient

    configure()
    with pytest.raises(ImproperlyConfigured, match="server variables"):
        asyncio.run(AsyncClient().get("/"))


def test_force_identity_refuses_server_variables_on_asgi() -> None:
    from django.test import AsyncClient

    from shibwsgi.testing.django import force_identity

    with pytest.raises(ValueError, match="ASGI cannot carry"):
        force_identity(AsyncClient(), "erin@example.org")


class DownStore(MemoryStore):
    """A session store whose server is gone."""

    def set(self, session_id: str, data: dict[str, Any], ttl: int) -> None:
        raise SessionError("connection refused")


def test_session_store_down_is_a_503_django_response(configure: Callable[..., None]) -> None:
    from django.test import Client

    configure(session=DownStore(), secret_key="k" * 32)
    response = Client().get("/login", **alice())
    assert response.status_code == 503
    assert b"alice" not in response.content


def test_repeated_header_keeps_every_value() -> None:
    from django.http import HttpResponse

    from shibwsgi.django_middleware import _add_headers

    response = HttpResponse(headers={"Vary": "Accept"})
    _add_headers(response, [("Vary", "Cookie"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")])
    assert response["Vary"] == "Accept, Cookie"
    assert sorted(response.cookies) == ["a", "b"]


@pytest.mark.parametrize(
    ("document", "status"),
    [
        pytest.param("{not json", 400, id="malformed claims are a 400"),
        pytest.param(json.dumps({"sub": "u", "big": "x" * 300_000}), 431, id="claims over the cap are a 431"),
    ],
)
def test_front_end_input_refusals_are_django_responses(
    configure: Callable[..., None], document: str, status: int
) -> None:
    from django.test import Client

    configure(profile="openidc", attributes={"name": "name"})
    response = Client().get("/", OIDC_id_token_payload=document)
    assert response.status_code == status
    assert b"authenticated" not in response.content  # the view never ran


def test_asgi_signed_profile_signs_in(configure: Callable[..., None]) -> None:
    from django.test import AsyncClient

    from shibwsgi.testing import TestSigner
    from shibwsgi.testing.django import force_identity

    signer = TestSigner()
    configure(profile="pomerium", jwks=signer.jwks, audience=signer.audience, attributes={"email": "email"})
    client = AsyncClient()
    force_identity(client, "fay@example.org", {"email": "fay@example.org"}, profile="pomerium", signer=signer)
    assert asyncio.run(client.get("/")).json()["username"] == "fay@example.org"
