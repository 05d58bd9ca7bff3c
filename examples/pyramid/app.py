"""Pyramid behind shibwsgi: ACL permissions over the front end's user and groups.

uwsgi --http 127.0.0.1:8000 --wsgi-file examples/pyramid/app.py   # behind a front end
"""

from typing import ClassVar

from pyramid.authorization import Allow, Authenticated
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request

from shibwsgi import ENVIRON_KEY, Attribute, SSOMiddleware
from shibwsgi.pyramid import IdentitySecurityPolicy, login_url


class Root:
    """Any logged-in user may view; members of movie-editors may edit."""

    __acl__: ClassVar = [(Allow, Authenticated, "view"), (Allow, "group:movie-editors", "edit")]

    def __init__(self, request: Request) -> None:
        self.request = request


def home(request: Request) -> dict[str, object]:
    identity = request.identity
    return {"user": request.authenticated_userid, "groups": list(identity.attributes.get("groups", ()))}


def edit(request: Request) -> dict[str, object]:
    return {"editor": request.authenticated_userid}


def forbidden(request: Request) -> object:
    # Only nobody at the front end logs in: someone refused (a reader, or a user id the
    # policy refuses) would come straight back here, and round again.
    if request.environ.get(ENVIRON_KEY) is None:
        return HTTPFound(login_url(request))
    request.response.status_int = 403
    return {"error": "only movie editors may do this"}


def make_app() -> SSOMiddleware:
    with Configurator(root_factory=Root) as config:
        config.set_security_policy(IdentitySecurityPolicy(groups_attribute="groups"))
        config.add_route("home", "/")
        config.add_route("edit", "/edit")
        config.add_view(home, route_name="home", permission="view", renderer="json")
        config.add_view(edit, route_name="edit", permission="edit", renderer="json")
        config.add_forbidden_view(forbidden, renderer="json")
        pyramid_app = config.make_wsgi_app()
    return SSOMiddleware(pyramid_app, attributes={"groups": Attribute("isMemberOf", multi=True)})


application = make_app()
