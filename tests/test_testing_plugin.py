"""The pytest plugin, used the way an application's own tests use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shibwsgi import Attribute, SSOMiddleware
from tests.helpers import echo_app


@pytest.fixture
def wsgi_app() -> SSOMiddleware:
    return SSOMiddleware(
        echo_app, attributes={"name": "displayName", "groups": Attribute("isMemberOf", multi=True)}
    )


def test_sso_client_logs_in_as_someone(sso_client: Callable[..., Any]) -> None:
    client = sso_client("zoe@example.org", {"displayName": "Zoë", "isMemberOf": ["a;b", "c"]})
    identity = client.get("/").json["identity"]
    assert identity["user"] == "zoe@example.org"
    assert identity["attributes"] == {"name": ["Zoë"], "groups": ["a;b", "c"]}


def test_sso_client_none_is_anonymous(sso_client: Callable[..., Any]) -> None:
    assert sso_client(None).get("/").json["identity"] is None


def test_sso_environ_is_environ_for(sso_environ: Callable[..., dict[str, str]]) -> None:
    assert sso_environ("shibboleth", "u@x")["eppn"] == "u@x"
