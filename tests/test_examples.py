"""The Pyramid, Bottle and Falcon examples, run in-process with WebTest; the Pyramid security policy."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from webtest import TestApp

from shibwsgi import ConfigError, Identity
from shibwsgi.testing import environ_for

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EDITOR = environ_for(
    "shibboleth", "ada@example.org", {"mail": "ada@example.org", "isMemberOf": ["movie-editors", "a;b"]}
)
READER = environ_for("shibboleth", "rob@example.org", {"mail": "rob@example.org", "isMemberOf": ["staff"]})


def load(framework: str) -> ModuleType:
    """examples/<framework>/app.py, imported from its file (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{framework}", EXAMPLES / framework / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: Pyramid looks its caller up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("framework", ["pyramid", "bottle", "falcon"])
@pytest.mark.parametrize(
    ("path", "environ", "status", "body"),
    [
        pytest.param("/", EDITOR, 200, {"user": "ada@example.org"}, id="logged in user reads the identity"),
        pytest.param(
            "/editors", EDITOR, 200, {"editor": "ada@example.org"}, id="editor passes the group check"
        ),
        pytest.param("/editors", READER, 403, None, id="reader refused by the group check"),
        pytest.param("/", {}, None, None, id="anonymous refused"),
        pytest.param(
            "/",
            {"HTTP_EPPN": "ada@example.org", "HTTP_ISMEMBEROF": "movie-editors"},
            None,
            None,
            id="spoofed headers are anonymous",
        ),
    ],
)
def test_example(
    framework: str, path: str, environ: dict[str, str], status: int | None, body: dict[str, str] | None
) -> None:
    client = TestApp(load(framework).application, extra_environ=environ)
    if framework == "pyramid" and path == "/editors":
        path = "/edit"
    response = client.get(path, expect_errors=True)
    if status is None:  # anonymous: Pyramid sends browsers to log in, the others answer 401
        assert response.status_int == (302 if framework == "pyramid" else 401)
        if framework == "pyramid":
            assert response.location.endswith("/login?next=%2F")
        return
    assert response.status_int == status
    if body is not None:
        assert body.items() <= response.json.items()


@dataclass(frozen=True)
class WithRoles(Identity):
    """An identity from an app with a roles hook."""

    roles: tuple[str, ...] = ()


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        pytest.param(None, ["system.Everyone"], id="anonymous is only Everyone"),
        pytest.param(
            Identity("zoe@example.org", {"groups": ("a;b", "c")}),
            ["system.Everyone", "system.Authenticated", "user:zoe@example.org", "group:a;b", "group:c"],
            id="user and every group value",
        ),
        pytest.param(
            WithRoles("zoe@example.org", roles=("editor",)),
            ["system.Everyone", "system.Authenticated", "user:zoe@example.org", "role:editor"],
            id="roles from the roles hook",
        ),
        pytest.param(
            Identity("zoe@example.org", {"isMemberOf": ("x",)}),
            ["system.Everyone", "system.Authenticated", "user:zoe@example.org"],
            id="other attributes are not groups",
        ),
    ],
)
def test_pyramid_principals(identity: Identity | None, expected: list[str]) -> None:
    from shibwsgi.pyramid import IdentitySecurityPolicy

    assert IdentitySecurityPolicy().principals(identity) == expected


@pytest.mark.parametrize(
    ("acl", "identity", "allowed"),
    [
        pytest.param(
            [("Allow", "role:editor", "edit")], WithRoles("z", roles=("editor",)), True, id="role allowed"
        ),
        pytest.param([("Allow", "user:z", "edit")], Identity("z"), True, id="user allowed"),
        pytest.param(
            [("Allow", "group:g", "edit")], Identity("z", {"groups": ("g",)}), True, id="group allowed"
        ),
        pytest.param(
            [("Deny", "user:z", "edit"), ("Allow", "group:g", "edit")],
            Identity("z", {"groups": ("g",)}),
            False,
            id="deny first wins",
        ),
        pytest.param(
            [("Allow", "system.Authenticated", "edit")], None, False, id="anonymous not authenticated"
        ),
    ],
)
def test_pyramid_permits_uses_the_acl(
    acl: list[tuple[str, str, str]], identity: Identity | None, allowed: bool
) -> None:
    from pyramid.testing import DummyRequest

    from shibwsgi.pyramid import IdentitySecurityPolicy

    policy = IdentitySecurityPolicy()
    request = DummyRequest(environ={"shibwsgi.identity": identity})
    context = type("Context", (), {"__acl__": acl})()
    assert bool(policy.permits(request, context, "edit")) is allowed
    assert policy.authenticated_userid(request) == (identity.user if identity else None)
    assert policy.remember(request, "z") == [] and policy.forget(request) == []


def test_pyramid_policy_rejects_an_empty_groups_attribute() -> None:
    from shibwsgi.pyramid import IdentitySecurityPolicy

    with pytest.raises(ConfigError, match="groups_attribute"):
        IdentitySecurityPolicy(groups_attribute="")
