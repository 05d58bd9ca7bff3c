"""String settings a newcomer writes: durations with units, and misspelt prefixes that would be ignored."""

from __future__ import annotations

import logging

import pytest

from shibwsgi import ConfigError, SSOMiddleware
from shibwsgi.settings import duration, near_misses, parse_settings
from tests.helpers import echo_app

SESSION = {"SHIBWSGI_SESSION": "memory:", "SHIBWSGI_SECRET_KEY": "k" * 32}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90", 90, id="plain seconds"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("15m", 900, id="minutes"),
        pytest.param("1h", 3600, id="hours"),
        pytest.param("1d", 86400, id="days"),
        pytest.param(" 8H ", 28800, id="upper case, spaces"),
        pytest.param("2 h", 7200, id="space before the unit"),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration(text) == seconds


def test_idle_timeout_of_one_hour_from_a_string() -> None:
    settings = {**SESSION, "SHIBWSGI_IDLE_TIMEOUT": "1h", "SHIBWSGI_ABSOLUTE_TIMEOUT": "1d"}
    middleware = SSOMiddleware.from_mapping(echo_app, settings)
    assert middleware.sessions is not None
    assert (middleware.sessions.idle_timeout, middleware.sessions.absolute_timeout) == (3600, 86400)


@pytest.mark.parametrize("text", ["1.5h", "1w", "h", "-5m", "an hour", "1h30m", ""])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"SHIBWSGI_IDLE_TIMEOUT": text})
    assert info.value.setting == "SHIBWSGI_IDLE_TIMEOUT"
    assert "90s, 15m, 1h, 1d" in str(info.value)


def test_zero_duration_is_refused() -> None:
    with pytest.raises(ConfigError, match="idle_timeout"):
        SSOMiddleware.from_mapping(echo_app, {**SESSION, "SHIBWSGI_IDLE_TIMEOUT": "0m"})


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        pytest.param("SHIBWSG_PROFILE", "SHIBWSGI_PROFILE", id="letter missing"),
        pytest.param("SHIBWSGI-PROFILE", "SHIBWSGI_PROFILE", id="dash"),
        pytest.param("shibwsgi_profile", "SHIBWSGI_PROFILE", id="lower case"),
        pytest.param("SHIB_WSGI_PROFILE", "SHIBWSGI_PROFILE", id="extra underscore"),
        pytest.param("SHIBSWGI_IDLE_TIMEOUT", "SHIBWSGI_IDLE_TIMEOUT", id="letters swapped"),
        pytest.param("SHIBWSGIPROFILE", "SHIBWSGI_PROFILE", id="underscore missing"),
        pytest.param("Shibwsgi-Login-Path", "SHIBWSGI_LOGIN_PATH", id="header style"),
    ],
)
def test_near_miss_prefix_is_logged(key: str, meant: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shibwsgi"):
        assert parse_settings({key: "mellon"}) == {}
    assert f"{key} is not read: did you mean {meant}?" in caplog.text


@pytest.mark.parametrize(
    "key",
    [
        "PATH",
        "USER",
        "HOME",
        "PREFIX",
        "WSGI_USER",
        "SHIBBOLETH_USER",
        "MY_PREFIX",
        "REMOTE_USER",
        "LOGIN_PATH",
    ],
)
def test_unrelated_variables_are_not_near_misses(key: str) -> None:
    assert list(near_misses([key])) == []


def test_misspelt_name_under_the_right_prefix_suggests_the_setting() -> None:
    with pytest.raises(ConfigError, match="did you mean SHIBWSGI_IDLE_TIMEOUT"):
        parse_settings({"SHIBWSGI_IDLE_TIMOUT": "1h"})


@pytest.mark.parametrize(
    "name", ["SHIBWSGI_GROUPS_PREFIX", "SHIBWSGI_USER_FIELDS", "SHIBWSGI_GROUPS_ATTRIBUTE"]
)
def test_django_adapter_setting_in_the_environment_says_where_it_belongs(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({name: "x"})
    assert "Django adapter" in str(info.value) and "settings.py" in str(info.value)
    assert "did you mean" not in str(info.value)
