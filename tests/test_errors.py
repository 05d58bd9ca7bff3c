"""Bad input at request time: clear 4xx answers, useful logs, no values echoed, never a 500."""

from __future__ import annotations

import logging

import pytest
from webtest import TestApp

from shibwsgi import Attribute, SSOMiddleware
from tests.helpers import echo_app

REQUIRED = {"affiliation": Attribute("affiliation", multi=True, required=True), "email": "mail"}


def test_missing_required_attribute_is_403_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    app = TestApp(SSOMiddleware(echo_app, attributes=REQUIRED))
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        response = app.get("/api", extra_environ={"eppn": "secret-user@x", "mail": "m@x"}, status=403)
    assert response.content_type == "application/json"
    message = response.json["error"]
    assert "'affiliation'" in message
    # The operator's checklist goes to the log; the person reads what happened.
    assert "ShibUseEnvironment" not in message
    assert "did not release" in message
    assert "secret-user" not in response.text
    assert "m@x" not in response.text
    assert "affiliation" in caplog.text
    assert "ShibUseEnvironment" in caplog.text
    assert "secret-user" not in caplog.text


def test_missing_required_attribute_html_for_browsers() -> None:
    app = TestApp(SSOMiddleware(echo_app, attributes=REQUIRED))
    response = app.get(
        "/", headers={"Accept": "text/html,*/*;q=0.8"}, extra_environ={"eppn": "u@x"}, status=403
    )
    assert response.content_type == "text/html"
    assert "&#x27;affiliation&#x27;" in response.text


def test_anonymous_request_does_not_need_required_attributes() -> None:
    app = TestApp(SSOMiddleware(echo_app, attributes=REQUIRED))
    assert app.get("/").json["identity"] is None


def test_oversized_optional_attribute_is_dropped_and_listed(caplog: pytest.LogCaptureFixture) -> None:
    attributes = {"groups": Attribute("isMemberOf", multi=True, max_bytes=100), "email": "mail"}
    app = TestApp(SSOMiddleware(echo_app, attributes=attributes))
    with caplog.at_level(logging.WARNING, "shibwsgi"):
        body = app.get("/", extra_environ={"eppn": "u@x", "mail": "m@x", "isMemberOf": "g-secret;" * 50}).json
    identity = body["identity"]
    assert identity["dropped"] == ["groups"]
    assert identity["attributes"] == {"email": ["m@x"]}
    assert "'groups'" in caplog.text
    assert "450 bytes" in caplog.text
    assert "g-secret" not in caplog.text


def test_too_many_values_is_dropped() -> None:
    attributes = {"groups": Attribute("isMemberOf", multi=True, max_values=3)}
    middleware = SSOMiddleware(echo_app, attributes=attributes)
    identity = middleware.identify({"eppn": "u@x", "isMemberOf": "a;b;c;d"})
    assert identity is not None
    assert identity.dropped == ("groups",)


def test_global_caps_apply_to_every_attribute() -> None:
    middleware = SSOMiddleware(echo_app, attributes={"email": "mail"}, max_attribute_bytes=10)
    identity = middleware.identify({"eppn": "u@x", "mail": "a-long-address@example.org"})
    assert identity is not None
    assert identity.dropped == ("email",)


def test_oversized_required_attribute_is_431() -> None:
    attributes = {"groups": Attribute("isMemberOf", multi=True, required=True, max_bytes=100)}
    app = TestApp(SSOMiddleware(echo_app, attributes=attributes))
    response = app.get("/", extra_environ={"eppn": "u@x", "isMemberOf": "g;" * 100}, status=431)
    assert "'groups'" in response.json["error"]
    assert "cap" in response.json["error"]


def test_sixty_kilobyte_attribute_works_with_default_caps() -> None:
    groups = [f"urn:mace:example.org:group:{i:06d}" for i in range(1800)]
    raw = ";".join(groups)
    assert 60_000 < len(raw) < 65_535
    attributes = {"groups": Attribute("isMemberOf", multi=True, required=True)}
    middleware = SSOMiddleware(echo_app, attributes=attributes)
    identity = middleware.identify({"eppn": "u@x", "isMemberOf": raw})
    assert identity is not None
    assert identity.attributes["groups"] == tuple(groups)


@pytest.mark.parametrize(
    "user",
    [
        pytest.param("evil\nX-Injected: 1", id="newline"),
        pytest.param("nul\x00byte", id="NUL"),
        pytest.param("tab\there", id="tab"),
        pytest.param("x" * 2000, id="absurdly long"),
    ],
)
def test_unusable_user_id_is_400_not_a_wrong_user(user: str) -> None:
    app = TestApp(SSOMiddleware(echo_app))
    response = app.get("/", extra_environ={"eppn": user}, status=400)
    assert "user attribute 'eppn'" in response.json["error"]
    assert user not in response.text
