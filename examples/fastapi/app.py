"""FastAPI behind oauth2-proxy (nginx ``auth_request``) and shibwsgi's ASGI middleware.

uvicorn --no-proxy-headers --host 127.0.0.1 --port 8000 app:app   # nginx on this machine in front
"""

from typing import Annotated

from fastapi import FastAPI, WebSocket

from shibwsgi import Identity
from shibwsgi.asgi import SSOMiddleware
from shibwsgi.authz import HasAttribute, HasRole
from shibwsgi.fastapi import EXCEPTION_HANDLERS, CurrentIdentity, OptionalIdentity, require

app = FastAPI(exception_handlers=EXCEPTION_HANDLERS)


@app.get("/")
def home(identity: CurrentIdentity) -> dict[str, object]:
    return {"user": identity.user, "email": identity.get("email"), "roles": sorted(identity.roles)}


@app.get("/health")
def health(identity: OptionalIdentity) -> dict[str, bool]:
    return {"ok": True, "signed_in": identity is not None}


@app.get("/editors")
def editors(
    identity: Annotated[Identity, require(HasAttribute("groups", "movie-editors"))],
) -> dict[str, str]:
    return {"editor": identity.user}


@app.get("/admin", dependencies=[require(HasRole("admin"))])
def admin() -> dict[str, str]:
    return {"area": "admin"}


@app.websocket("/ws")
async def chat(websocket: WebSocket, identity: CurrentIdentity) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello {identity.user}")
    await websocket.close()


def roles(identity: Identity) -> list[str]:
    """Your own data decides the roles (here: a fixed list)."""
    return ["admin"] if identity.user == "ada" else []


app.add_middleware(
    SSOMiddleware,
    profile="oauth2-proxy",
    trusted_proxies=["127.0.0.1"],  # nginx, as uvicorn sees it (run it with --no-proxy-headers)
    attributes={"email": "email", "groups": "groups"},
    roles=roles,
)
