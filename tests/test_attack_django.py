"""Attacks on the Django adapter against its promises (README "Django", issue 16 item 13, issue 18).

Sync fingerprint, exact group prefix, configure_user signatures, DRF's remote_user,
sessions other backends made, user switches, inactive users, the 403 decorators.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webtest import TestApp

from shibwsgi import Attribute, Identity, SSOMiddleware
from shibwsgi.testing import environ_for

django_site = pytest.importorskip("django_site")
pytestmark = pytest.mark.usefixtures("django_database", "empty_django_tables")

ATTRIBUTES = {
    "email": "mail",
    "given_name": "givenName",
    "groups": Attribute("isMemberOf", multi=True, max_values=3000),
}
ZOE = "zoe@example.org"


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestApp]]:
    """A WebTest client of the Django project behind SSOMiddleware, with the attack views."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    overrides: list[Any] = []

    def make(**settings: Any) -> TestApp:
        override = override_settings(**{"ROOT_URLCONF": "attack_django_views", **settings})
        override.enable()
        overrides.append(override)
        return TestApp(SSOMiddleware(WSGIHandler(), attributes=ATTRIBUTES))

    yield make
    for override in reversed(overrides):
        override.disable()


def person(user: str = ZOE, groups: tuple[str, ...] = ("app-readers",), **attributes: Any) -> dict[str, str]:
    values = {"mail": user, "givenName": "Zoë", "isMemberOf": list(groups), **attributes}
    return environ_for("shibboleth", user, values)


def me(client: TestApp, environ: dict[str, str] | None, path: str = "/") -> dict[str, Any]:
    response = client.get(path, extra_environ=environ or {})
    assert response.status_int == 200
    return dict(response.json)


# -- the sync fingerprint ----------------------------------------------------------------------

_TRICKY = st.text(alphabet=["\x1f", ":", "1", "2", "j", "l", "a", "\ud800", "é"], max_size=4)
_IDENTITIES = st.builds(
    Identity,
    user=_TRICKY,
    attributes=st.dictionaries(_TRICKY, st.lists(_TRICKY, max_size=3).map(tuple), max_size=3),
    session_id=st.one_of(st.none(), _TRICKY.filter(bool)),
    dropped=st.lists(_TRICKY, max_size=2).map(tuple),
)


def _synced_fields(identity: Identity) -> tuple[Any, ...]:
    """What the fingerprint must tell apart: everything a login syncs or is told by."""
    return (
        identity.user,
        identity.session_id or "",
        identity.authenticated_at,
        identity.dropped,
        sorted(identity.attributes.items()),
    )


@settings(max_examples=400, deadline=None)
@given(first=_IDENTITIES, second=_IDENTITIES)
def test_fingerprints_of_random_crafted_logins_collide_only_for_the_same_login(
    first: Identity, second: Identity
) -> None:
    from shibwsgi.fingerprint import login_fingerprint as _digest

    if _synced_fields(first) != _synced_fields(second):
        assert _digest(first) != _digest(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            Identity(ZOE, {"a": ("1:x\x1f",)}),
            Identity(ZOE, {"a": ("1", "x\x1f")}),
            id="a forged length prefix",
        ),
        pytest.param(Identity("l" + ZOE, {}), Identity(ZOE, {"l": ()}), id="a user id starting with the tag"),
        pytest.param(
            Identity(ZOE, {"a\x1f1\x1fx": ()}),
            Identity(ZOE, {"a": ("x",)}),
            id="a separator in the attribute name",
        ),
        pytest.param(
            Identity(ZOE + "\x1f", {"a": ()}),
            Identity(ZOE, {"\x1fa": ()}),
            id="a separator at the end of the user",
        ),
        pytest.param(
            Identity(ZOE, authenticated_at=datetime(2026, 1, 1, tzinfo=UTC)),
            Identity(ZOE, authenticated_at=datetime(2026, 1, 1, 1, tzinfo=UTC)),
            id="another login time",
        ),
        pytest.param(Identity(ZOE, dropped=("groups",)), Identity(ZOE), id="groups dropped or absent"),
        pytest.param(
            Identity(ZOE, {"g": ("\ud800",)}), Identity(ZOE, {"g": ("\ufffd",)}), id="lone surrogate"
        ),
    ],
)
def test_crafted_login_never_shares_the_fingerprint_of_another(first: Identity, second: Identity) -> None:
    from shibwsgi.fingerprint import login_fingerprint as _digest

    assert _digest(first) != _digest(second)


def test_same_instant_in_another_time_zone_only_costs_a_sync() -> None:
    """Over-distinguishing is safe (a sync too many); only a collision would keep stale groups."""
    from shibwsgi.fingerprint import login_fingerprint as _digest

    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    shifted = moment.astimezone(timezone(timedelta(hours=1)))
    assert _digest(Identity(ZOE, authenticated_at=moment)) != _digest(Identity(ZOE, authenticated_at=shifted))


# -- managed groups: the prefix is exact, even with LIKE's wildcards and Unicode case --------


@pytest.mark.parametrize(
    ("prefix", "admins", "before", "after"),
    [
        pytest.param("app_", "appX-admins", "app_a", "app_b", id="underscore is not LIKE's any character"),
        pytest.param("app%", "app-admins", "app%a", "app%b", id="percent is not LIKE's any text"),
        pytest.param("app\\", "app-admins", "app\\a", "app\\b", id="backslash is not LIKE's escape"),
        pytest.param("app-", "app", "app-a", "app-b", id="the prefix of the prefix"),
        pytest.param("straße-", "STRASSE-admins", "straße-a", "straße-b", id="German sharp s upper-cased"),
        pytest.param("straße-", "Straße-admins", "straße-a", "straße-b", id="first letter upper-cased"),
        pytest.param("é-", "É-admins", "é-a", "é-b", id="non-ASCII case"),
        pytest.param("é-", unicodedata.normalize("NFD", "é-admins"), "é-a", "é-b", id="decomposed accent"),
        pytest.param("i-", "İ-admins", "i-a", "i-b", id="Turkish dotted capital I"),
    ],
)
def test_managed_groups_follow_the_identity_and_lookalike_admin_groups_stay(
    make_client: Callable[..., TestApp], prefix: str, admins: str, before: str, after: str
) -> None:
    from django.contrib.auth.models import Group, User

    client = make_client(SHIBWSGI_GROUPS_PREFIX=prefix)
    me(client, person(groups=(before,)))
    User.objects.get(username=ZOE).groups.add(Group.objects.create(name=admins))
    assert me(client, person(groups=(after,)))["groups"] == sorted([admins, after])


def test_an_overlong_group_value_is_skipped_and_the_others_still_sync(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    seen = me(client, person(groups=("app-" + "x" * 200, "app-ok")))
    assert seen["groups"] == ["app-ok"]


def test_nul_in_a_field_or_group_value_is_skipped_not_stored(
    make_client: Callable[..., TestApp], caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses NUL in text: storing it would answer 500 at every login of this user."""
    from django.contrib.auth.models import Group

    client = make_client()
    me(client, person(groups=("app-a",)))
    with caplog.at_level(logging.WARNING, logger="shibwsgi.django"):
        seen = me(client, person(groups=("app-\x00admins", "app-b"), givenName="Zo\x00ë"))
    assert seen["first_name"] == "Zoë" and seen["groups"] == ["app-b"]
    assert sorted(Group.objects.values_list("name", flat=True)) == ["app-a", "app-b"]
    assert "NUL" in caplog.text and "\x00" not in caplog.text


# -- configure_user: every signature Django and this adapter have had ------------------------


@pytest.mark.parametrize(
    ("backend", "last_name"),
    [
        pytest.param("attack_django_views.ThreeArgumentBackend", "configured", id="(request, user)"),
        pytest.param("attack_django_views.KeywordsBackend", f"kw {ZOE}", id="(request, user, **kwargs)"),
        pytest.param(
            "attack_django_views.PositionalIdentityBackend",
            "positional",
            id="(request, user, identity, created) with a positional super()",
        ),
    ],
)
def test_backend_with_any_configure_user_signature_logs_in_and_syncs(
    make_client: Callable[..., TestApp], backend: str, last_name: str
) -> None:
    client = make_client(AUTHENTICATION_BACKENDS=[backend])
    first = me(client, person(groups=("app-a",)))
    second = me(client, person(groups=("app-b",)))
    assert (first["username"], second["username"]) == (ZOE, ZOE)
    assert (first["groups"], second["groups"]) == (["app-a"], ["app-b"])
    assert second["last_name"] == last_name


def test_readmes_is_staff_recipe_follows_the_group_at_each_login(make_client: Callable[..., TestApp]) -> None:
    from django.contrib.auth.models import User

    client = make_client(AUTHENTICATION_BACKENDS=["attack_django_views.StaffFromGroupBackend"])
    me(client, person(groups=("app-staff",)))
    assert User.objects.get(username=ZOE).is_staff
    me(client, person(groups=("app-readers",)))
    assert not User.objects.get(username=ZOE).is_staff


def test_no_create_lookup_matching_two_accounts_refuses_rather_than_picking_one(
    make_client: Callable[..., TestApp], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A case-insensitive natural key (the reason to honour it) finds "zoe" and "ZOE": neither is sure."""
    from django.contrib.auth.models import User, UserManager

    def case_insensitive(manager: UserManager[User], username: str) -> User:
        return manager.get(username__iexact=username)

    monkeypatch.setattr(UserManager, "get_by_natural_key", case_insensitive)
    User.objects.create(username=ZOE)
    User.objects.create(username=ZOE.upper())
    client = make_client(AUTHENTICATION_BACKENDS=["django_views.NoCreateBackend"])
    with caplog.at_level(logging.WARNING, logger="shibwsgi.django"):
        assert not me(client, person())["authenticated"]
    assert "accounts" in caplog.text
    client.get("/members", extra_environ=person(), status=403)


# -- authenticate(request, remote_user=...): Django REST framework -----------------------------


@pytest.mark.parametrize(
    "claimed",
    [
        pytest.param(" " + ZOE, id="leading space"),
        pytest.param(ZOE + "\n", id="trailing newline"),
        pytest.param(ZOE.upper(), id="upper case"),
        pytest.param("\uff5aoe@example.org", id="fullwidth letter (NFKC folds it)"),
        pytest.param(ZOE + "\x00", id="NUL"),
        pytest.param("", id="empty"),
    ],
)
def test_remote_user_near_the_verified_one_is_refused(
    make_client: Callable[..., TestApp], claimed: str
) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    response = client.get("/remote-user", {"as": claimed}, extra_environ=person())
    assert response.json == {"username": None}
    assert set(User.objects.values_list("username", flat=True)) <= {ZOE}


def test_remote_user_decomposed_differently_from_the_verified_one_is_refused(
    make_client: Callable[..., TestApp],
) -> None:
    composed = "zoë@example.org"
    decomposed = unicodedata.normalize("NFD", composed)
    client = make_client()
    response = client.get("/remote-user", {"as": decomposed}, extra_environ=person(composed))
    assert response.json == {"username": None}


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"REMOTE_USER": "admin"}, id="REMOTE_USER without the middleware's identity"),
        pytest.param({"HTTP_REMOTE_USER": "admin"}, id="Remote-User header"),
        pytest.param({"HTTP_SHIBWSGI.IDENTITY": "admin"}, id="header named like the environ key"),
    ],
)
def test_forged_remote_user_reaching_django_directly_logs_nobody_in(
    make_client: Callable[..., TestApp], forged: dict[str, str]
) -> None:
    from django.contrib.auth.models import User

    make_client()
    from django.core.handlers.wsgi import WSGIHandler

    bare = TestApp(WSGIHandler())  # the project served without SSOMiddleware in front
    assert not me(bare, forged)["authenticated"]
    assert bare.get("/remote-user", {"as": "admin"}, extra_environ=forged).json == {"username": None}
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("admin", ZOE, id="another user in the header"),
        pytest.param(ZOE.upper(), ZOE, id="the verified user in another case"),
        pytest.param(ZOE, ZOE, id="the verified user"),
    ],
)
def test_djangos_remote_user_middleware_beside_the_adapter_cannot_log_in_a_header_user(
    make_client: Callable[..., TestApp], header: str, expected: str
) -> None:
    from django.contrib.auth.models import User

    middleware = [*django_site.MIDDLEWARE, "attack_django_views.HeaderRemoteUserMiddleware"]
    client = make_client(MIDDLEWARE=middleware)
    seen = me(client, {**person(), "HTTP_REMOTE_USER": header})
    assert seen["username"] == expected
    assert set(User.objects.values_list("username", flat=True)) == {ZOE}


# -- sessions: other backends, user switches, logout, inactive users -------------------------


def test_password_session_then_another_users_identity_switches_and_drops_the_session_data(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    client.get("/password-login?user=admin")
    assert client.get("/remember?value=admin-draft").json == {"kept": "admin-draft", "user": "admin"}
    seen = client.get("/remember", extra_environ=person()).json
    assert seen == {"kept": None, "user": ZOE}


def test_user_switch_mid_session_never_hands_over_session_data(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    assert client.get("/remember?value=zoe-secret", extra_environ=person()).json["kept"] == "zoe-secret"
    bob = client.get("/remember", extra_environ=person("bob@example.org")).json
    assert bob == {"kept": None, "user": "bob@example.org"}
    back = client.get("/remember", extra_environ=person()).json
    assert back == {"kept": None, "user": ZOE}


def test_identity_gone_logs_out_and_drops_the_session_data(make_client: Callable[..., TestApp]) -> None:
    client = make_client()
    client.get("/remember?value=zoe-secret", extra_environ=person())
    assert client.get("/remember").json == {"kept": None, "user": ""}


def test_password_session_of_the_same_user_keeps_its_backend_through_attribute_changes(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    client.get(f"/password-login?user={ZOE}")
    for groups in (("app-a",), ("app-b",)):
        seen = me(client, person(groups=groups))
        assert seen["username"] == ZOE and seen["backend"] == "django.contrib.auth.backends.ModelBackend"


def test_account_renamed_mid_session_gives_way_to_the_account_now_holding_the_username(
    make_client: Callable[..., TestApp],
) -> None:
    """The same login (same fingerprint) must not keep a session on an account no longer the identity's."""
    from django.contrib.auth.models import User

    client = make_client()
    environ = person()
    me(client, environ)
    User.objects.filter(username=ZOE).update(username="zoe-departed")
    User.objects.create(username=ZOE)
    assert me(client, environ)["username"] == ZOE


def test_account_deactivated_mid_session_is_anonymous_at_the_next_request(
    make_client: Callable[..., TestApp],
) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    environ = person()
    assert me(client, environ)["authenticated"]
    User.objects.filter(username=ZOE).update(is_active=False)
    assert not me(client, environ)["authenticated"]
    client.get("/members", extra_environ=environ, status=403)


def test_refused_identity_logs_out_a_password_session_of_another_user(
    make_client: Callable[..., TestApp],
) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="mallory@example.org", is_active=False)
    client = make_client()
    client.get("/password-login?user=admin")
    assert not me(client, person("mallory@example.org"))["authenticated"]
    assert not me(client, None)["authenticated"]


# -- the 403 decorators ------------------------------------------------------------------------


def test_user_passes_test_or_403_sends_anonymous_users_to_its_own_login_url(
    make_client: Callable[..., TestApp],
) -> None:
    response = make_client().get("/admins", status=302)
    assert response.location.endswith("/elsewhere?next=/admins")


@pytest.mark.parametrize(
    ("user", "status"),
    [
        pytest.param("admin@example.org", 200, id="passes the test"),
        pytest.param(ZOE, 403, id="signed in, fails the test: 403, no loop"),
    ],
)
def test_user_passes_test_or_403_for_signed_in_users(
    make_client: Callable[..., TestApp], user: str, status: int
) -> None:
    make_client().get("/admins", extra_environ=person(user), status=status)


@pytest.mark.parametrize(
    ("path", "environ", "status"),
    [
        pytest.param("/async-members", "zoe", 200, id="login_required, signed in"),
        pytest.param("/async-members", None, 302, id="login_required, anonymous"),
        pytest.param("/async-editors", "editor", 200, id="group_required, member"),
        pytest.param("/async-editors", "zoe", 403, id="group_required, reader"),
        pytest.param("/async-members", "inactive", 403, id="login_required, refused account"),
    ],
)
def test_decorators_take_async_views_as_djangos_do(
    make_client: Callable[..., TestApp], path: str, environ: str | None, status: int
) -> None:
    from django.contrib.auth.models import User

    User.objects.create(username="inactive@example.org", is_active=False)
    environs = {
        "zoe": person(),
        "editor": person(groups=("app-editors",)),
        "inactive": person("inactive@example.org"),
    }
    response = make_client().get(path, extra_environ=environs.get(environ or "", {}), status=status)
    if status == 200:
        assert ZOE in response.text


def test_password_user_failing_the_group_gets_403_not_a_login_redirect(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client()
    client.get("/password-login?user=admin")
    client.get("/editors", status=403)


@pytest.mark.parametrize("path", ["/editors", "/members", "/admins"])
def test_user_id_too_long_for_django_gets_403_not_a_login_loop(
    make_client: Callable[..., TestApp], path: str
) -> None:
    make_client().get(path, extra_environ=person("a" * 151 + "@example.org"), status=403)


def test_group_required_is_not_fooled_by_a_group_differing_in_unicode_case(
    make_client: Callable[..., TestApp],
) -> None:
    client = make_client(SHIBWSGI_GROUPS_PREFIX="")
    client.get("/editors", extra_environ=person(groups=("\uff41pp-editors",)), status=403)
    client.get("/editors", extra_environ=person(groups=("app-editors",)), status=200)


def test_sso_login_rotates_a_session_key_planted_before_it(make_client: Callable[..., TestApp]) -> None:
    """Session fixation: a key set in the browser before the login must not name the logged-in session."""
    client = make_client()
    planted = client.get("/remember?value=planted").json
    assert planted["user"] == ""
    before = client.cookies["sessionid"]
    assert me(client, person())["username"] == ZOE
    assert client.cookies["sessionid"] != before


class _WrappedRequest:
    """Django REST framework's Request: proxies attributes (META included) to Django's request."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


@pytest.mark.parametrize(
    ("claimed", "expected"),
    [pytest.param(ZOE, ZOE, id="the verified user"), pytest.param("admin", None, id="another user")],
)
def test_remote_user_through_a_wrapped_request_is_checked_against_the_identity(
    make_client: Callable[..., TestApp], claimed: str, expected: str | None
) -> None:
    from django.contrib import auth
    from django.test import RequestFactory

    make_client()
    request = RequestFactory().get("/", **{"shibwsgi.identity": Identity(ZOE)})
    user = auth.authenticate(request=_WrappedRequest(request), remote_user=claimed)
    assert (user.get_username() if user is not None else None) == expected


def test_remote_user_none_without_identity_is_anonymous(make_client: Callable[..., TestApp]) -> None:
    from django.contrib import auth
    from django.test import RequestFactory

    make_client()
    assert auth.authenticate(request=RequestFactory().get("/"), remote_user=None) is None
    assert auth.authenticate(request=None, remote_user=ZOE) is None


def test_parallel_first_logins_make_one_account_the_right_user_and_no_500() -> None:
    """A page's parallel first requests all log in; the adapter must stay race-free (SQLite, immediate mode)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    done = subprocess.run(
        [sys.executable, str(tests / "attack_django_race.py")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report == {"statuses": {"200": 48}, "wrong_users": [], "accounts_of_same": 1}


def _run_plain_user_model(*arguments: str) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    done = subprocess.run(
        [sys.executable, str(tests / "attack_django_plainuser.py"), *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=True,
    )
    return done.stdout.strip()


def test_groups_setting_over_a_user_model_without_groups_fails_at_start_up_not_at_each_login() -> None:
    outcome = _run_plain_user_model("groups")
    assert outcome.startswith("ConfigError: SHIBWSGI_GROUPS_ATTRIBUTE")
    assert "PermissionsMixin" in outcome


def test_user_model_without_groups_logs_in_when_groups_are_not_synced() -> None:
    assert _run_plain_user_model() == "status 200 {'kept': None, 'user': 'zoe@example.org'}"


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("a/b?c#d%20e", id="URL characters"),
        pytest.param("x" * 150, id="exactly the username column"),
        pytest.param("\U0001f3ac@example.org", id="emoji"),
        pytest.param("zoe\u0308@example.org", id="decomposed accent"),
        pytest.param("'; DROP TABLE auth_user; --", id="SQL"),
        pytest.param("<script>x</script>", id="markup"),
        pytest.param("zoe smith", id="inner space"),
    ],
)
def test_odd_but_valid_user_ids_log_in_as_themselves(make_client: Callable[..., TestApp], user: str) -> None:
    from django.contrib.auth.models import User

    client = make_client()
    assert me(client, person(user, groups=("app-\u200b", "app-<b>", "app-a;b,c")))["username"] == user
    assert list(User.objects.values_list("username", flat=True)) == [user]
    client.get("/members", extra_environ=person(user), status=200)


@pytest.mark.parametrize(
    "user", [pytest.param(" zoe", id="leading space"), pytest.param("zoe ", id="trailing space")]
)
def test_padded_user_id_is_refused_never_a_lookalike_django_user(
    make_client: Callable[..., TestApp], user: str
) -> None:
    """It used to log in as itself: a second "zoe" in every list, and the same rows where SQL ignores trailing spaces."""
    from django.contrib.auth.models import User

    make_client().get("/", extra_environ=person(user), status=400)
    assert not User.objects.exists()
