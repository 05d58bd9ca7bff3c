"""Bottle behind shibwsgi: read the identity, protect a route by group.

uwsgi --http 127.0.0.1:8000 --wsgi-file examples/bottle/app.py   # behind a front end
"""

import bottle

from shibwsgi import Attribute, Identity, SSOMiddleware

app = bottle.Bottle()


def identity() -> Identity | None:
    return bottle.request.environ.get("shibwsgi.identity")


@app.get("/")
def home() -> dict[str, object]:
    who = identity()
    if who is None:
        bottle.abort(401, "log in at /login")
    return {"user": who.user, "email": who.get("email")}


@app.get("/editors")
def editors() -> dict[str, object]:
    who = identity()
    if who is None or "movie-editors" not in who.attributes.get("groups", ()):
        bottle.abort(403, "only movie editors")
    return {"editor": who.user}


application = SSOMiddleware(app, attributes={"email": "mail", "groups": Attribute("isMemberOf", multi=True)})
