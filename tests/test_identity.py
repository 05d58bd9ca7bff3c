"""The Identity: immutable, and lossless through JSON."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shibwsgi import Identity

FULL = Identity(
    user="zoë@example.org",
    attributes={"name": ("Zoë Müller",), "groups": ("a;b", "c,d", "東京")},
    profile="shibboleth",
    provider="https://idp.example.org/idp/shibboleth",
    session_id="_abc",
    authenticated_at=datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=UTC),
    expires_at=datetime(2026, 11, 23, 18, 0, tzinfo=UTC),
    dropped=("photo",),
)


@pytest.mark.parametrize("identity", [FULL, Identity(user="u")], ids=["full", "minimal"])
def test_json_round_trip_is_lossless(identity: Identity) -> None:
    assert Identity.from_json(identity.to_json()) == identity


def test_get_returns_first_value_or_default() -> None:
    assert FULL.get("groups") == "a;b"
    assert FULL.get("missing") is None
    assert FULL.get("missing", "n/a") == "n/a"


def test_identity_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FULL.user = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        FULL.attributes["groups"] = ("admins",)  # type: ignore[index]


def test_attributes_are_copied_from_the_callers_dict() -> None:
    source = {"groups": ["a"]}
    identity = Identity(user="u", attributes=source)  # type: ignore[arg-type]
    source["groups"].append("admins")
    assert identity.attributes["groups"] == ("a",)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[]", id="not an object"),
        pytest.param("{}", id="no user"),
        pytest.param('{"user": 3}', id="user not a string"),
        pytest.param('{"user": "u", "attributes": {"g": "abc"}}', id="values not a list"),
        pytest.param('{"user": "u", "authenticated_at": "yesterday"}', id="bad time"),
    ],
)
def test_malformed_json_is_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        Identity.from_json(text)


@pytest.mark.parametrize(
    ("moment", "clamped"),
    [
        pytest.param(
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
            datetime.min.replace(tzinfo=UTC),
            id="year 1, east of UTC",
        ),
        pytest.param(
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
            datetime.max.replace(tzinfo=UTC),
            id="year 9999, west of UTC",
        ),
    ],
)
def test_time_without_a_utc_form_is_clamped_for_every_later_use(moment: datetime, clamped: datetime) -> None:
    identity = Identity("zoe", authenticated_at=moment, expires_at=moment)
    assert identity.authenticated_at == identity.expires_at == clamped
    assert identity.expires_at is not None
    identity.expires_at.astimezone(UTC)
    identity.expires_at.timestamp()
    assert Identity.from_json(identity.to_json()) == identity


def test_ordinary_times_keep_their_offset() -> None:
    moment = datetime(2026, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert Identity("zoe", authenticated_at=moment).authenticated_at is moment
