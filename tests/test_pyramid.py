"""The Pyramid security policy and login_url: reserved user ids, SCRIPT_NAME, and Pyramid's own policy tests."""

from __future__ import annotations

import logging

import pytest
from webtest import TestApp

from shibwsgi import Identity
from shibwsgi.testing import environ_for

pytest.importorskip("pyramid")

from pyramid.authorization import Authenticated, Everyone
from pyramid.request import Request
from pyramid.testing import DummyRequest
from test_examples import load

from shibwsgi.pyramid import IdentitySecurityPolicy, login_url


def request_for(identity: Identity | None) -> DummyRequest:
    return DummyRequest(environ={"shibwsgi.identity": identity})


# Pyramid's principals are never user ids


@pytest.mark.parametrize("user", [Everyone, Authenticated])
def test_user_id_naming_a_pyramid_principal_is_anonymous(user: str, caplog: pytest.LogCaptureFixture) -> None:
    policy = IdentitySecurityPolicy()
    request = request_for(Identity(user, {"groups": ("movie-editors",)}))
    context = type("Context", (), {"__acl__": [("Allow", Authenticated, "view")]})()
    with caplog.at_level(logging.WARNING, logger="shibwsgi.pyramid"):
        assert policy.authenticated_userid(request) is None
    assert policy.identity(request) is None
    assert policy.principals(Identity(user)) == [Everyone]
    assert not policy.permits(request, context, "view")
    assert "is a Pyramid principal" in caplog.text


@pytest.mark.parametrize("user", [Everyone, Authenticated])
def test_user_id_naming_a_pyramid_principal_is_refused_without_a_login_loop(user: str) -> None:
    client = TestApp(load("pyramid").application)
    client.get("/", extra_environ=environ_for("shibboleth", user), status=403)


@pytest.mark.parametrize("user", ["system.everyone", "user:system.Everyone", "system.Administrator"])
def test_user_ids_near_the_reserved_ones_stay_users(user: str) -> None:
    assert IdentitySecurityPolicy().authenticated_userid(request_for(Identity(user))) == user


# login_url under SCRIPT_NAME


@pytest.mark.parametrize(
    ("script_name", "path", "next_path", "expected"),
    [
        pytest.param("", "/edit?x=1", None, "/login?next=%2Fedit%3Fx%3D1", id="at the root"),
        pytest.param(
            "/movies", "/edit?x=1", None, "/movies/login?next=%2Fmovies%2Fedit%3Fx%3D1", id="mounted"
        ),
        pytest.param("/movies", "/edit", "/movies/", "/movies/login?next=%2Fmovies%2F", id="explicit next"),
    ],
)
def test_login_url_keeps_the_apps_script_name(
    script_name: str, path: str, next_path: str | None, expected: str
) -> None:
    request = Request.blank(path, environ={"SCRIPT_NAME": script_name, "shibwsgi.login_path": "/login"})
    assert login_url(request, next_path) == expected


def test_mounted_example_sends_anonymous_users_to_its_own_login_path() -> None:
    client = TestApp(load("pyramid").application, extra_environ={"SCRIPT_NAME": "/movies"})
    response = client.get("/edit", status=302)
    assert response.location.endswith("/movies/login?next=%2Fmovies%2Fedit")
    login = client.get("/login", extra_environ=environ_for("shibboleth", "ada@example.org"), status=302)
    assert login.location.endswith("/")  # the path the middleware answers at, under the mount


# Ported from Pyramid's RemoteUserAuthenticationPolicy tests (tests/test_authentication.py)


def test_policy_implements_isecuritypolicy() -> None:
    from pyramid.interfaces import ISecurityPolicy
    from zope.interface.verify import verifyObject

    verifyObject(ISecurityPolicy, IdentitySecurityPolicy())


@pytest.mark.parametrize(
    ("identity", "userid", "principals"),
    [
        pytest.param(None, None, [Everyone], id="no identity"),
        pytest.param(Identity("fred"), "fred", [Everyone, Authenticated, "user:fred"], id="fred"),
    ],
)
def test_userid_and_principals(identity: Identity | None, userid: str | None, principals: list[str]) -> None:
    policy = IdentitySecurityPolicy()
    request = request_for(identity)
    assert policy.authenticated_userid(request) == userid
    assert policy.principals(policy.identity(request)) == principals


def test_remember_and_forget_return_no_headers() -> None:
    policy = IdentitySecurityPolicy()
    request = request_for(Identity("fred"))
    assert policy.remember(request, "fred") == []
    assert policy.forget(request) == []


def test_a_remote_user_without_the_middlewares_identity_is_anonymous() -> None:
    request = DummyRequest(environ={"REMOTE_USER": "fred"})
    assert IdentitySecurityPolicy().authenticated_userid(request) is None
