"""Falcon behind shibwsgi: read the identity, protect a resource by group.

uwsgi --http 127.0.0.1:8000 --wsgi-file examples/falcon/app.py   # behind a front end
"""

import falcon

from shibwsgi import Attribute, Identity, SSOMiddleware


def identity(req: falcon.Request) -> Identity:
    who = req.env.get("shibwsgi.identity")
    if who is None:
        raise falcon.HTTPUnauthorized(title="log in at /login")
    return who


class Home:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = identity(req)
        resp.media = {"user": who.user, "email": who.get("email")}


class Editors:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = identity(req)
        if "movie-editors" not in who.attributes.get("groups", ()):
            raise falcon.HTTPForbidden(title="only movie editors")
        resp.media = {"editor": who.user}


app = falcon.App()
app.add_route("/", Home())
app.add_route("/editors", Editors())

application = SSOMiddleware(app, attributes={"email": "mail", "groups": Attribute("isMemberOf", multi=True)})
