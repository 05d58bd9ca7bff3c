"""The Django adapter with real Django: users created, updated, switched and logged out; groups synced."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from webtest import TestApp

from shibwsgi import Attribute, ConfigError, SSOMiddleware
from shibwsgi.testing import environ_for

django_site = pytest.importorskip("django_site")

ATTRIBUTES = {
    "email": "mail",
    "given_name": "givenName",
    "groups": Attribute("isMemberOf", multi=True, max_values=3000),
}


@pytest.fixture(scope="module", autouse=True)
def django_db(tmp_path_factory: pytest.TempPathFactory) -> None:
    from django.core.management import call_command

    django_site.configure(tmp_path_factory.mktemp("django") / "db.sqlite3")
    call_command("migrate", verbosity=0)


@pytest.fixture(autouse=True)
def empty_tables() -> Iterator[None]:
    yield
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.models import Session

    User.objects.all().delete()
    Group.objects.all().delete()
    Session.objects.all().delete()


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestApp]]:
    """A WebTest client of the Django project wrapped by SSOMiddleware, under overridden settings."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    overrides: list[Any] = []

    def make(**settings: Any) -> TestApp:
        override = override_settings(**settings)
        override.enable()
        overrides.append(override)
        return TestApp(SSOMiddleware(WSGIHandler(), attributes=ATTRIBUTES))

    yield make
    for override in reversed(overrides):
        override.disable()


def person(
    user: str = "zoe@example.org", groups: tuple[str, ...] = ("app-readers",), **attributes: Any
) -> dict[str, str]:
    values = {"mail": f"{user}", "givenName": "Zoë", "isMemberOf": list(groups), **attributes}
    return environ_for("shibboleth", user, values)


def me(client: TestApp, environ: dict[str, str] | None) -> dict[str, Any]:
    response = client.get("/", extra_environ=environ or {})
    assert response.status_int == 200
    return dict(response.json)


def test_first_request_creates_the_user_with_fields_and_groups(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    seen = me(client, person(groups=("app-readers", "app-a;b", "staff")))
    assert seen["authenticated"] and seen["username"] == "zoe@example.org"
    assert seen["email"] == "zoe@example.org" and seen["first_name"] == "Zoë"
    assert seen["groups"] == ["app-a;b", "app-readers"]  # "staff" lacks the prefix: not a group
    assert not User.objects.get(username="zoe@example.org").has_usable_password()


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            ("app-a", "app-b"),
            ("app-b", "app-c"),
            ["app-b", "app-c", "manual"],
            id="managed groups follow the identity",
        ),
        pytest.param(("app-a",), (), ["manual"], id="no values leaves only the admin's groups"),
        pytest.param((), ("app-a", "other"), ["app-a", "manual"], id="values without the prefix are ignored"),
    ],
)
def test_group_membership_is_exactly_the_identitys_for_managed_groups(
    make_client: Callable[..., TestApp], before: tuple[str, ...], after: tuple[str, ...], expected: list[str]
) -> None:
    from django.contrib.auth.models import Group, User

    client = make_client()
    me(client, person(groups=before))
    User.objects.get(username="zoe@example.org").groups.add(Group.objects.create(name="manual"))
    assert me(client, person(groups=after))["groups"] == expected


def test_without_a_prefix_every_group_is_managed(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import Group, User

    client = make_client(SHIBWSGI_GROUPS_PREFIX="")
    me(client, person(groups=("a",)))
    User.objects.get(username="zoe@example.org").groups.add(Group.objects.create(name="manual"))
    assert me(client, person(groups=("b", "c")))["groups"] == ["b", "c"]


def test_thousands_of_groups_sync(make_client: Callable[..., TestApp]) -> None:
    groups = tuple(f"app-group-{n}" for n in range(2500))
    client = make_client()
    assert len(me(client, person(groups=groups))["groups"]) == 2500
    assert len(me(client, person(groups=groups[:10]))["groups"]) == 10


def test_fields_update_at_each_new_front_end_login_not_at_each_request(
    make_client: Callable[..., TestApp],
) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    environ = person()
    me(client, environ)
    User.objects.filter(username="zoe@example.org").update(email="edited@example.org")
    assert me(client, environ)["email"] == "edited@example.org"  # same front-end session: no sync
    assert me(client, person(mail="new@example.org"))["email"] == "new@example.org"


def test_an_attribute_not_released_leaves_its_field_alone(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    me(client, person())
    environ = environ_for("shibboleth", "zoe@example.org", {"isMemberOf": ["app-readers"]})
    assert me(client, environ)["email"] == "zoe@example.org"


def test_dropped_group_attribute_keeps_memberships(
    make_client: Callable[..., TestApp], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    me(client, person(groups=("app-a",)))
    oversized = person(groups=tuple(f"app-{n}" for n in range(3001)))
    with caplog.at_level(logging.WARNING):
        assert me(client, oversized)["groups"] == ["app-a"]
    assert "groups not synced" in caplog.text


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(None, None, id="identity gone: logged out"),
        pytest.param("bob@example.org", "bob@example.org", id="another user: switched"),
    ],
)
def test_whole_site_style_follows_the_front_end(
    make_client: Callable[..., TestApp], second: str | None, expected: str | None
) -> None:
    client = make_client()
    first = me(client, person())
    seen = me(client, person(second) if second else None)
    assert seen["authenticated"] is (expected is not None)
    assert seen["username"] == (expected or "")
    assert seen["session_key"] != first["session_key"]


def test_lazy_style_follows_the_shibwsgi_session(make_client: Callable[..., TestApp]) -> None:
    """Only /login is protected: shibwsgi's session carries the identity, its logout ends Django's."""
    from django.core.handlers.wsgi import WSGIHandler

    from shibwsgi.sessions import MemoryStore

    make_client()  # the settings
    lazy = SSOMiddleware(
        WSGIHandler(), attributes=ATTRIBUTES, session=MemoryStore(), secret_key="k" * 32, cookie_secure=False
    )
    client = TestApp(lazy)
    assert client.get("/login?next=/", extra_environ=person()).status_int == 302
    assert me(client, None)["username"] == "zoe@example.org"
    client.get("/logout")
    assert not me(client, None)["authenticated"]


def test_persistent_middleware_keeps_the_session_when_the_identity_goes(
    make_client: Callable[..., TestApp],
) -> None:
    middleware = [*django_site.MIDDLEWARE[:-1], "shibwsgi.django.PersistentIdentityMiddleware"]
    client = make_client(MIDDLEWARE=middleware)
    me(client, person())
    assert me(client, None)["username"] == "zoe@example.org"


def test_a_password_login_is_not_logged_out_by_a_missing_identity(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    client.get("/password-login?user=admin")
    assert me(client, None)["username"] == "admin"


def test_a_front_end_identity_replaces_a_password_login(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    client.get("/password-login?user=admin")
    assert me(client, person())["username"] == "zoe@example.org"


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("inactive@example.org", id="inactive user stays anonymous"),
        pytest.param("x" * 151 + "@example.org", id="user id longer than the username column"),
    ],
)
def test_refused_identity_logs_out_whoever_was_there(make_client: Callable[..., TestApp], user: str) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="inactive@example.org", is_active=False)
    client = make_client()
    me(client, person())
    seen = me(client, person(user))
    assert not seen["authenticated"]
    assert User.objects.count() == 2  # no account made for the long id


def test_client_header_cannot_log_in_to_django(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    spoofed = {"HTTP_EPPN": "admin@example.org", "HTTP_REMOTE_USER": "admin@example.org"}
    assert not me(client, spoofed)["authenticated"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        pytest.param(
            {"SHIBWSGI_USER_FIELDS": {"is_superuser": "admin"}},
            ConfigError,
            "not a text field",
            id="attribute cannot set is_superuser",
        ),
        pytest.param(
            {"SHIBWSGI_USER_FIELDS": {"username": "mail"}},
            ConfigError,
            "not a text field",
            id="attribute cannot set the username",
        ),
        pytest.param(
            {"SHIBWSGI_USER_FIELDS": {"mail": "mail"}},
            ConfigError,
            "no field 'mail'",
            id="unknown user field",
        ),
        pytest.param(
            {"SHIBWSGI_USER_FIELDS": ["email"]}, ConfigError, "expected a dict", id="fields not a dict"
        ),
        pytest.param(
            {"SHIBWSGI_GROUPS_ATTRIBUTE": ""},
            ConfigError,
            "SHIBWSGI_GROUPS_ATTRIBUTE",
            id="empty groups attribute",
        ),
        pytest.param(
            {"SHIBWSGI_GROUPS_PREFIX": None}, ConfigError, "SHIBWSGI_GROUPS_PREFIX", id="prefix not a string"
        ),
        pytest.param(
            {"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]},
            Exception,
            "AUTHENTICATION_BACKENDS",
            id="backend missing",
        ),
    ],
)
def test_configuration_mistakes_fail_at_start_up(
    make_client: Callable[..., TestApp], settings: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_client(**settings)


def test_middleware_before_authentication_middleware_is_named(make_client: Callable[..., TestApp]) -> None:
    from django.core.exceptions import ImproperlyConfigured

    wrong_order = [django_site.MIDDLEWARE[0], *reversed(django_site.MIDDLEWARE[1:])]
    with pytest.raises(
        ImproperlyConfigured, match=r"after 'django\.contrib\.auth\.middleware\.AuthenticationMiddleware'"
    ):
        make_client(MIDDLEWARE=wrong_order)
