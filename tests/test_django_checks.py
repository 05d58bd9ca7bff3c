"""Django system checks (manage.py check): each misconfiguration gets its shibwsgi.* id."""

from __future__ import annotations

import os
from typing import Any

import pytest

django_site = pytest.importorskip("django_site")

SSO = "shibwsgi.django.SSOMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
IDENTITY = "shibwsgi.django.IdentityMiddleware"
GOOD = {"MIDDLEWARE": [SSO, SESSIONS, AUTH, IDENTITY], "SHIBWSGI": {"profile": "shibboleth"}}
BACKENDS = ["shibwsgi.django.IdentityBackend", "django.contrib.auth.backends.ModelBackend"]


@pytest.fixture(scope="module", autouse=True)
def django_configured(tmp_path_factory: pytest.TempPathFactory) -> None:
    django_site.configure(tmp_path_factory.mktemp("django") / "db.sqlite3")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SHIBWSGI_* variable of the shell running the tests reaches the environment checks."""
    for name in list(os.environ):
        if name.startswith("SHIBWSGI_"):
            monkeypatch.delenv(name)


def ids(**overrides: Any) -> list[str]:
    """The shibwsgi check ids that Django's registry reports under ``overrides``."""
    from django.core.checks import run_checks
    from django.test import override_settings

    with override_settings(**{**GOOD, **overrides}):
        return sorted(message.id for message in run_checks() if message.id.startswith("shibwsgi."))


def messages(**overrides: Any) -> str:
    from django.core.checks import run_checks
    from django.test import override_settings

    with override_settings(**{**GOOD, **overrides}):
        return "\n".join(str(message) for message in run_checks() if message.id.startswith("shibwsgi."))


def test_a_good_configuration_passes_every_check() -> None:
    assert ids() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"SHIBWSGI": {"profil": "shibboleth"}}, ["shibwsgi.E001"], id="option typo"),
        pytest.param({"SHIBWSGI": {"profile": "no-such-front-end"}}, ["shibwsgi.E001"], id="unknown profile"),
        pytest.param({"SHIBWSGI": ["profile"]}, ["shibwsgi.E001"], id="not a dict"),
        pytest.param(
            {"SHIBWSGI": {"profile": "pomerium"}}, ["shibwsgi.E001"], id="signed profile without keys"
        ),
        pytest.param(
            {"SHIBWSGI_USER_FIELDS": {"is_superuser": "admin"}}, ["shibwsgi.E002"], id="unsafe field"
        ),
        pytest.param({"MIDDLEWARE": [SESSIONS, AUTH, SSO, IDENTITY]}, ["shibwsgi.E003"], id="sso after auth"),
        pytest.param({"MIDDLEWARE": [SESSIONS, AUTH, IDENTITY, SSO]}, ["shibwsgi.E003"], id="sso last"),
        pytest.param({"MIDDLEWARE": [SSO, SESSIONS, IDENTITY, AUTH]}, ["shibwsgi.E004"], id="identity first"),
        pytest.param({"MIDDLEWARE": [SSO, SESSIONS, IDENTITY]}, ["shibwsgi.E004"], id="no auth middleware"),
        pytest.param(
            {"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]},
            ["shibwsgi.E005"],
            id="no identity backend",
        ),
    ],
)
def test_misconfiguration_is_reported(overrides: dict[str, Any], expected: list[str]) -> None:
    assert ids(**overrides) == expected


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        pytest.param(
            "SHIBWSGI_GROUP_PREFIX", "Did you mean SHIBWSGI_GROUPS_PREFIX?", id="adapter setting typo"
        ),
        pytest.param(
            "SHIBWSGI_USER_FIELD", "Did you mean SHIBWSGI_USER_FIELDS?", id="adapter setting singular"
        ),
        pytest.param(
            "SHIBWSGI_PROFILE", 'SHIBWSGI = {"profile": ...}', id="middleware option outside the dict"
        ),
    ],
)
def test_unread_shibwsgi_setting_is_an_error(name: str, hint: str) -> None:
    assert ids(**{name: "app-"}) == ["shibwsgi.E006"]
    assert hint in messages(**{name: "app-"})


def test_option_typo_says_what_was_meant() -> None:
    assert "did you mean 'profile'" in messages(SHIBWSGI={"profil": "shibboleth"})


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        pytest.param([SESSIONS, AUTH, IDENTITY], [], id="wsgi.py wraps the app: nothing to build"),
        pytest.param([SSO, SESSIONS, AUTH, IDENTITY], ["shibwsgi.E001"], id="settings-only mode without it"),
    ],
)
def test_missing_shibwsgi_setting(middleware: list[str], expected: list[str]) -> None:
    from django.conf import settings
    from django.core.checks import run_checks
    from django.test import override_settings

    with override_settings(MIDDLEWARE=middleware, SHIBWSGI=None):
        del settings.SHIBWSGI
        assert not hasattr(settings, "SHIBWSGI")
        assert sorted(m.id for m in run_checks() if m.id.startswith("shibwsgi.")) == expected


def test_admin_without_password_backend_warns_of_a_locked_out_superuser() -> None:
    installed = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
    ]
    assert ids(INSTALLED_APPS=installed, AUTHENTICATION_BACKENDS=BACKENDS) == []
    found = ids(INSTALLED_APPS=installed, AUTHENTICATION_BACKENDS=["shibwsgi.django.IdentityBackend"])
    assert "shibwsgi.W001" in found


@pytest.mark.parametrize(
    "name", ["SHIBWSGI_GROUPS_PREFIX", "SHIBWSGI_GROUPS_ATTRIBUTE", "SHIBWSGI_USER_FIELDS"]
)
def test_adapter_setting_in_the_environment_is_sent_to_settings_py(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "app-")
    assert ids() == ["shibwsgi.W002"]
    assert "Django setting" in messages() and f"{name} = ..." in messages()


def test_shibwsgi_setting_without_its_middleware_is_not_silently_ignored() -> None:
    assert ids(MIDDLEWARE=[SESSIONS, AUTH, IDENTITY]) == ["shibwsgi.W003"]


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        pytest.param([SSO, SESSIONS, AUTH, IDENTITY], ["shibwsgi.W004"], id="settings-only mode ignores it"),
        pytest.param([SESSIONS, AUTH, IDENTITY], [], id="wsgi.py reads it"),
    ],
)
def test_core_option_in_the_environment_under_settings_only_mode(
    monkeypatch: pytest.MonkeyPatch, middleware: list[str], expected: list[str]
) -> None:
    from django.conf import settings
    from django.core.checks import run_checks
    from django.test import override_settings

    monkeypatch.setenv("SHIBWSGI_PROFILE", "mellon")
    with override_settings(MIDDLEWARE=middleware, SHIBWSGI={}):
        if SSO not in middleware:
            del settings.SHIBWSGI
        assert sorted(m.id for m in run_checks() if m.id.startswith("shibwsgi.")) == expected


def test_checks_module_is_an_installable_app() -> None:
    from django.apps import AppConfig

    config = AppConfig.create("shibwsgi.django_checks")
    assert config.name == "shibwsgi.django_checks"
