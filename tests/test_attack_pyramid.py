"""Attacks on the Pyramid adapter against its promises (README "Pyramid", issue 16 item 14).

login_url under hostile SCRIPT_NAME values, open redirects through ``next``, Pyramid's
reserved principals and principals injected through user ids, groups and attributes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from webtest import TestApp

from shibwsgi import Identity, SSOMiddleware
from shibwsgi.authz import LoggedIn, Rule
from shibwsgi.testing import environ_for

pytest.importorskip("pyramid")

from pyramid.authorization import Allow, Authenticated, Everyone
from pyramid.request import Request
from pyramid.testing import DummyRequest
from test_examples import load

from shibwsgi.pyramid import IdentitySecurityPolicy, login_url

ADA = environ_for("shibboleth", "ada@example.org")


def _url(script_name: str, path: str = "/edit") -> str:
    request = Request.blank(path, environ={"SCRIPT_NAME": script_name, "shibwsgi.login_path": "/login"})
    return login_url(request)


@pytest.mark.parametrize(
    ("script_name", "start"),
    [
        pytest.param("//evil.example", "/evil.example/login?", id="two leading slashes name another host"),
        pytest.param("/", "/login?", id="a lone slash"),
        pytest.param("/movies/", "/movies/login?", id="a trailing slash"),
        pytest.param("/films-\xc3\xa9", "/films-%C3%A9/login?", id="UTF-8 bytes as WSGI latin-1"),
        pytest.param("/\xe5\xb1\xb1", "/%E5%B1%B1/login?", id="CJK"),
        pytest.param("/a?b", "/a%3Fb/login?", id="a question mark"),
        pytest.param("/a#b", "/a%23b/login?", id="a hash"),
        pytest.param("/a b", "/a%20b/login?", id="a space"),
        pytest.param("/a\r\nSet-Cookie: x=1", "/a%0D%0ASet-Cookie:%20x=1/login?", id="CRLF"),
    ],
)
def test_login_url_under_a_hostile_script_name_stays_one_escaped_local_path(
    script_name: str, start: str
) -> None:
    url = _url(script_name)
    assert url.startswith(start)
    assert url.isascii() and url.isprintable() and not url.startswith("//")


@pytest.mark.parametrize("script_name", ["/films-\xc3\xa9", "/\xe5\xb1\xb1", "//evil.example"])
def test_example_mounted_under_an_odd_script_name_redirects_to_a_valid_local_location(
    script_name: str,
) -> None:
    client = TestApp(load("pyramid").application, extra_environ={"SCRIPT_NAME": script_name})
    location = client.get("/edit", status=302).location  # WebTest's lint refuses a non-latin-1 header
    assert location.startswith("http://localhost/") and location.isascii()


def test_middleware_login_redirect_under_a_doubled_slash_script_name_stays_on_site() -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        raise AssertionError("the rule refuses first")

    guarded = SSOMiddleware(app, rules=[Rule("/", LoggedIn())])
    client = TestApp(guarded, extra_environ={"SCRIPT_NAME": "//evil.example"})
    location = client.get("/x", headers={"Accept": "text/html"}, status=302).headers["Location"]
    assert not location.startswith("//") and "://" not in location


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F/evil.example",
        "/%0d%0aSet-Cookie:%20x=1",
        "javascript:alert(1)",
        "http:evil.example",
        "/\u3002evil.example",
    ],
)
def test_login_next_never_leaves_the_site(target: str) -> None:
    client = TestApp(load("pyramid").application)
    location = client.get("/login", {"next": target}, extra_environ=ADA, status=302).headers["Location"]
    assert urlsplit(location).netloc == "" and not location.startswith(("//", "/\\"))
    assert location.startswith("/") and location.isprintable()


# -- principals ----------------------------------------------------------------------------------


def _principals(identity: Identity) -> list[str]:
    return IdentitySecurityPolicy().principals(identity)


@pytest.mark.parametrize(
    "user",
    [
        " system.Everyone",
        "system.Everyone ",
        "SYSTEM.EVERYONE",
        "system.\u0410uthenticated",
        "system.Everyone\u200b",
    ],
)
def test_lookalikes_of_reserved_principals_are_plain_users_holding_no_bare_principal(user: str) -> None:
    principals = _principals(Identity(user))
    assert principals == [Everyone, Authenticated, f"user:{user}"]


@pytest.mark.parametrize(
    "group",
    [Authenticated, Everyone, "user:admin", "role:admin", "group:admins", "system.Authenticated\x00"],
)
def test_group_value_never_becomes_a_principal_other_than_its_group(group: str) -> None:
    principals = _principals(Identity("mallory", {"groups": (group,)}))
    assert principals == [Everyone, Authenticated, "user:mallory", f"group:{group}"]


def test_user_id_shaped_like_a_group_principal_holds_only_its_user_principal() -> None:
    context = type("Context", (), {"__acl__": [(Allow, "group:admins", "edit")]})()
    request = DummyRequest(environ={"shibwsgi.identity": Identity("group:admins")})
    assert not IdentitySecurityPolicy().permits(request, context, "edit")


def test_attribute_named_roles_is_not_the_roles_hooks_answer() -> None:
    principals = _principals(Identity("mallory", {"roles": ("admin",), "groups": ()}))
    assert "role:admin" not in principals


def test_other_groups_attribute_is_read_and_the_default_one_ignored() -> None:
    policy = IdentitySecurityPolicy(groups_attribute="memberOf")
    principals = policy.principals(Identity("u", {"groups": ("admins",), "memberOf": ("staff",)}))
    assert principals == [Everyone, Authenticated, "user:u", "group:staff"]


def test_anonymous_request_with_a_client_identity_header_holds_only_everyone() -> None:
    client = TestApp(load("pyramid").application)
    response = client.get(
        "/edit", headers={"Shibwsgi.Identity": "ada@example.org", "Remote-User": "ada"}, status=302
    )
    assert "/login?next=" in response.location
