"""Quart behind Authelia (or any header front end) and shibwsgi's ASGI middleware.

hypercorn --bind 127.0.0.1:8000 app:app   # the front end's proxy on this machine in front
"""

from quart import Quart, abort, request

from shibwsgi import Identity
from shibwsgi.asgi import SSOMiddleware

app = Quart(__name__)


def identity() -> Identity:
    who: Identity | None = request.scope["shibwsgi.identity"]
    if who is None:
        abort(401)
    return who


@app.get("/")
async def home() -> dict[str, object]:
    who = identity()
    return {"user": who.user, "email": who.get("email")}


@app.get("/editors")
async def editors() -> dict[str, str]:
    who = identity()
    if "movie-editors" not in who.attributes.get("groups", ()):
        abort(403)
    return {"editor": who.user}


app.asgi_app = SSOMiddleware(  # type: ignore[method-assign]
    app.asgi_app,
    profile="authelia",
    trusted_proxies=["127.0.0.1"],
    attributes={"email": "email", "groups": "groups"},
)
