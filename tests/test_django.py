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
pytestmark = pytest.mark.usefixtures("django_database", "empty_django_tables")

ATTRIBUTES = {
    "email": "mail",
    "given_name": "givenName",
    "groups": Attribute("isMemberOf", multi=True, max_values=3000),
}


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


# The sync fingerprint


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            {"attributes": {"given_name": ("Zoë",), "groups": ("app-admins",)}},
            {"attributes": {"given_name": ("Zoë\x1fgroups\x1f1\x1fapp-admins",)}},
            id="a value imitating the next attribute",
        ),
        pytest.param(
            {"attributes": {"groups": ("app-a", "app-b")}},
            {"attributes": {"groups": ("app-a\x1fapp-b",)}},
            id="a value imitating two values",
        ),
        pytest.param(
            {"dropped": ("groups", "1", "app-admins")},
            {"attributes": {"groups": ("app-admins",)}},
            id="dropped names imitating an attribute",
        ),
        pytest.param(
            {"attributes": {"given_name": ("Zoë\x1f1",), "groups": ("app-a",)}},
            {"attributes": {"given_name": ("Zoë",), "groups": ("1\x1fapp-a",)}},
            id="separators in both logins",
        ),
        pytest.param(
            {"session_id": "s\x1fNone"},
            {"session_id": "s", "attributes": {"None": ()}},
            id="a session id imitating the next field",
        ),
    ],
)
def test_crafted_attribute_value_cannot_pass_for_another_login(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    from shibwsgi import Identity
    from shibwsgi.fingerprint import login_fingerprint as _digest

    user = "zoe@example.org"
    assert _digest(Identity(user, **first)) != _digest(Identity(user, **second))


def test_crafted_attribute_value_cannot_keep_a_revoked_group(make_client: Callable[..., TestApp]) -> None:
    """Front ends without a session id: only the fingerprint tells a new login from the last one."""
    from shibwsgi import Identity

    client = make_client()
    before = Identity("zoe@example.org", {"given_name": ("Zoë",), "groups": ("app-admins",)})
    after = Identity("zoe@example.org", {"given_name": ("Zoë\x1fgroups\x1f1\x1fapp-admins",)})
    django_app = client.app.app  # the Django handler, past the middleware's parsing
    browser = TestApp(django_app)
    assert me(browser, {"shibwsgi.identity": before})["groups"] == ["app-admins"]  # type: ignore[dict-item]
    assert me(browser, {"shibwsgi.identity": after})["groups"] == []  # type: ignore[dict-item]


# Managed groups: the prefix is exact


@pytest.mark.parametrize("name", ["APP-Admins", "App-admins", "aPP-x"])
def test_admin_group_differing_from_the_prefix_only_in_case_is_kept(
    make_client: Callable[..., TestApp], name: str
) -> None:
    from django.contrib.auth.models import Group, User

    client = make_client()
    me(client, person(groups=("app-a",)))
    User.objects.get(username="zoe@example.org").groups.add(Group.objects.create(name=name))
    assert me(client, person(groups=("app-b",)))["groups"] == sorted([name, "app-b"])


# Backends written for Django


@pytest.mark.parametrize(
    ("backend", "username", "last_names"),
    [
        pytest.param(
            "django_views.DjangoStyleBackend",
            "zoe",
            ["created", "known"],
            id="configure_user(request, user, created)",
        ),
        pytest.param(
            "django_views.AdapterStyleBackend",
            "zoe@example.org",
            ["created from shibboleth", "known from shibboleth"],
            id="configure_user(request, user, identity, created)",
        ),
    ],
)
def test_backend_with_djangos_configure_user_signature_logs_in(
    make_client: Callable[..., TestApp], backend: str, username: str, last_names: list[str]
) -> None:
    client = make_client(AUTHENTICATION_BACKENDS=[backend])
    first = me(client, person(groups=("app-a",)))
    second = me(client, person(groups=("app-b",)))  # new attributes: a new login
    assert [first["username"], second["username"]] == [username, username]
    assert [first["last_name"], second["last_name"]] == last_names
    assert [first["groups"], second["groups"]] == [["app-a"], ["app-b"]]  # synced either way


def test_no_create_backend_looks_users_up_by_the_managers_natural_key(
    make_client: Callable[..., TestApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.auth.models import User, UserManager

    def case_insensitive(manager: UserManager[User], username: str) -> User:
        return manager.get(username__iexact=username)

    monkeypatch.setattr(UserManager, "get_by_natural_key", case_insensitive)
    User.objects.create(username="zoe@example.org")
    client = make_client(AUTHENTICATION_BACKENDS=["django_views.NoCreateBackend"])
    assert me(client, person("ZOE@example.org"))["username"] == "zoe@example.org"


def test_middleware_without_get_response_is_refused() -> None:
    from shibwsgi.django import IdentityMiddleware

    with pytest.raises(ValueError, match="get_response must be provided"):
        IdentityMiddleware(None)  # type: ignore[arg-type]


# authenticate(request, remote_user=...): Django REST framework's RemoteUserAuthentication


@pytest.mark.parametrize(
    ("environ", "claimed", "expected"),
    [
        pytest.param("zoe", None, "zoe@example.org", id="the verified user's REMOTE_USER"),
        pytest.param("zoe", "zoe@example.org", "zoe@example.org", id="the verified user named"),
        pytest.param("zoe", "admin", None, id="another user than the verified one"),
        pytest.param("zoe", "ZOE@example.org", None, id="the verified user in another case"),
        pytest.param(None, "admin", None, id="no verified identity"),
        pytest.param("spoofed", None, None, id="client REMOTE_USER header"),
    ],
)
def test_remote_user_argument_logs_in_only_the_verified_identity(
    make_client: Callable[..., TestApp], environ: str | None, claimed: str | None, expected: str | None
) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    extra = {"zoe": person(), "spoofed": {"HTTP_REMOTE_USER": "admin"}}.get(environ or "", {})
    query = {} if claimed is None else {"as": claimed}
    response = client.get("/remote-user", query, extra_environ=extra)
    assert response.json == {"username": expected}
    assert not User.objects.filter(username="admin").exists()


# Sessions other backends made


def test_password_login_is_not_taken_over_by_the_same_users_identity(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    client.get("/password-login?user=zoe@example.org")
    seen = me(client, person())
    assert seen["backend"] == "django.contrib.auth.backends.ModelBackend"
    assert me(client, None)["username"] == "zoe@example.org"  # not logged out with the identity


# Refusals say why


@pytest.mark.parametrize(
    ("backend", "user", "reason"),
    [
        pytest.param("shibwsgi.django.IdentityBackend", "inactive@example.org", "inactive", id="inactive"),
        pytest.param(
            "django_views.NoCreateBackend", "new@example.org", "no such user", id="unknown, no creation"
        ),
    ],
)
def test_refused_login_logs_why(
    make_client: Callable[..., TestApp],
    caplog: pytest.LogCaptureFixture,
    backend: str,
    user: str,
    reason: str,
) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="inactive@example.org", is_active=False)
    client = make_client(AUTHENTICATION_BACKENDS=[backend])
    with caplog.at_level(logging.WARNING, logger="shibwsgi.django"):
        assert not me(client, person(user))["authenticated"]
    assert reason in caplog.text and user in caplog.text


# group_required: 403 for a signed-in user, never a login loop


@pytest.mark.parametrize(
    ("groups", "status"),
    [
        pytest.param(("app-editors",), 200, id="member"),
        pytest.param(("app-readers",), 403, id="signed-in reader gets 403, not a login redirect"),
        pytest.param(("APP-editors",), 403, id="a group differing in case"),
    ],
)
def test_group_required_refuses_signed_in_users_with_403(
    make_client: Callable[..., TestApp], groups: tuple[str, ...], status: int
) -> None:
    from django.contrib.auth.models import Group, User

    client = make_client(SHIBWSGI_GROUPS_PREFIX="")
    Group.objects.create(name="app-editors")
    response = client.get("/editors", extra_environ=person(groups=groups), status=status)
    if status == 200:
        assert response.json == {"editor": "zoe@example.org"}
    assert User.objects.filter(username="zoe@example.org").exists()


@pytest.mark.parametrize("path", ["/editors", "/members"])
def test_protected_views_send_anonymous_users_to_log_in(
    make_client: Callable[..., TestApp], path: str
) -> None:
    response = make_client().get(path, status=302)
    assert response.location.endswith(f"/login?next={path}")


@pytest.mark.parametrize("path", ["/editors", "/members"])
def test_inactive_user_signed_in_at_the_front_end_gets_403_not_a_login_loop(
    make_client: Callable[..., TestApp], path: str
) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="zoe@example.org", is_active=False)
    make_client().get(path, extra_environ=person(groups=("app-editors",)), status=403)


def test_login_required_lets_signed_in_users_in(make_client: Callable[..., TestApp]) -> None:
    assert make_client().get("/members", extra_environ=person()).json == {"member": "zoe@example.org"}


@pytest.mark.parametrize("groups", [(), ("",), (None,)], ids=["none", "empty name", "not a string"])
def test_group_required_without_group_names_fails_at_import(groups: tuple[Any, ...]) -> None:
    from shibwsgi.django import group_required

    with pytest.raises(ConfigError, match="group_required"):
        group_required(*groups)


# Ported from Django's own RemoteUserMiddleware tests (tests/auth_tests/test_remote_user.py)


def test_unknown_user_is_created_once(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    assert me(client, person("newuser"))["username"] == "newuser"
    me(client, person("newuser"))
    assert User.objects.filter(username="newuser").count() == 1


def test_known_users_log_in_and_switch_without_new_accounts(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="knownuser")
    User.objects.create(username="knownuser2")
    client = make_client()
    assert me(client, person("knownuser"))["username"] == "knownuser"
    assert me(client, person("knownuser2"))["username"] == "knownuser2"
    assert User.objects.count() == 2


def test_last_login_is_set_at_login_not_at_each_request(make_client: Callable[..., TestApp]) -> None:
    from datetime import UTC, datetime

    from django.contrib.auth.models import User

    default = datetime(2000, 1, 1, tzinfo=UTC)
    User.objects.create(username="knownuser", last_login=default)
    client = make_client()
    environ = person("knownuser")
    assert me(client, environ)["last_login"] != default.isoformat()
    User.objects.filter(username="knownuser").update(last_login=default)
    assert me(client, environ)["last_login"] == default.isoformat()


def test_no_identity_creates_no_user(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    for environ in ({}, {"REMOTE_USER": ""}, {"HTTP_REMOTE_USER": "newuser"}):
        assert not me(client, environ)["authenticated"]
    assert not User.objects.exists()


def test_no_create_backend_leaves_unknown_users_anonymous(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="knownuser")
    client = make_client(AUTHENTICATION_BACKENDS=["django_views.NoCreateBackend"])
    assert me(client, person("knownuser"))["username"] == "knownuser"
    assert not me(client, person("newuser"))["authenticated"]  # and the switch logged knownuser out
    assert User.objects.count() == 1


def test_custom_backend_cleans_usernames_and_configures_users(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="knownuser")
    client = make_client(AUTHENTICATION_BACKENDS=["django_views.DjangoStyleBackend"])
    assert me(client, person("knownuser@example.com"))["last_name"] == "known"
    assert me(client, person("newuser@example.com"))["last_name"] == "created"
    assert set(User.objects.values_list("username", flat=True)) == {"knownuser", "newuser"}


def test_password_session_survives_a_missing_identity_after_an_sso_logout(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    me(client, person("knownuser"))
    assert not me(client, None)["authenticated"]
    client.get("/password-login?user=modeluser")
    assert me(client, None)["username"] == "modeluser"


def test_backend_allowing_inactive_users_logs_them_in(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="knownuser", is_active=False)
    client = make_client(AUTHENTICATION_BACKENDS=["django_views.AllowAllUsersBackend"])
    assert me(client, person("knownuser"))["username"] == "knownuser"


def test_csrf_check_passes_after_the_login_the_middleware_made(make_client: Callable[..., TestApp]) -> None:
    """auth.login() rotates the CSRF token during the request: the form's token must still pass."""
    from django.conf import settings
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        *django_site.MIDDLEWARE[1:],
    ]
    client = make_client(MIDDLEWARE=middleware)
    secret = _get_new_csrf_string()
    client.set_cookie(settings.CSRF_COOKIE_NAME, _mask_cipher_secret(secret))
    assert b"CSRF verification failed" in client.post("/", extra_environ=person(), status=403).body
    client.reset()  # a new browser: the login happens in the POST itself
    client.set_cookie(settings.CSRF_COOKIE_NAME, _mask_cipher_secret(secret))
    form = {"csrfmiddlewaretoken": _mask_cipher_secret(secret)}
    assert client.post("/", form, extra_environ=person()).json["username"] == "zoe@example.org"
