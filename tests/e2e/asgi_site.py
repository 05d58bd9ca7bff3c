"""The FastAPI app the ASGI end-to-end tests serve with uvicorn and hypercorn.

Wrapped in shibwsgi.asgi.SSOMiddleware built from the SHIBWSGI_* environment the test
sets (profile, trusted proxies, proxy secret, JWKS URL...). alice holds the role admin.
"""

from __future__ import annotations

import html
import os
from typing import Annotated

from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

from shibwsgi import Attribute, Identity
from shibwsgi.asgi import SSOMiddleware
from shibwsgi.authz import HasRole
from shibwsgi.fastapi import EXCEPTION_HANDLERS, CurrentIdentity, OptionalIdentity, require

app = FastAPI(exception_handlers=EXCEPTION_HANDLERS)


@app.get("/me")
def me(identity: OptionalIdentity) -> dict[str, object]:
    if identity is None:
        return {"user": None}
    return {
        "user": identity.user,
        "groups": list(identity.attributes.get("groups", ())),
        "roles": identity.roles,
    }


@app.get("/identity")
def identity_document(identity: OptionalIdentity) -> dict[str, object] | None:
    """The whole identity (``Identity.to_dict``), or ``None`` when anonymous."""
    return None if identity is None else identity.to_dict()


@app.get("/admin", dependencies=[require(HasRole("admin"))])
def admin() -> dict[str, str]:
    return {"area": "admin"}


@app.get("/page", response_class=HTMLResponse)
def page(identity: CurrentIdentity) -> str:
    groups = ", ".join(identity.attributes.get("groups", ()))
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Movies</title></head><body>'
        f'<h1>Signed in as <span id="user">{html.escape(identity.user)}</span></h1>'
        f'<p id="groups">{html.escape(groups)}</p><p id="socket">waiting</p>'
        "<script>const ws = new WebSocket(`wss://${location.host}/ws`);"
        "ws.onmessage = (e) => { document.getElementById('socket').textContent = e.data; };</script>"
        "</body></html>"
    )


@app.websocket("/ws")
async def chat(websocket: WebSocket, identity: CurrentIdentity) -> None:
    await websocket.accept()
    await websocket.send_text(f"hello {identity.user}")
    await websocket.close()


@app.websocket("/ws/admin")
async def admin_chat(websocket: WebSocket, identity: Annotated[Identity, require(HasRole("admin"))]) -> None:
    await websocket.accept()
    await websocket.send_text(f"admin {identity.user}")
    await websocket.close()


def roles(identity: Identity) -> list[str]:
    return ["admin"] if identity.user == "alice" else []


#: The front end's name of the groups attribute (Shibboleth's isMemberOf behind Apache).
GROUPS = os.environ.get("SITE_GROUPS_SOURCE", "groups")
#: SHIBWSGI_ATTRIBUTES, when the test sets it, maps every attribute; else groups alone.
ATTRIBUTES = (
    {} if "SHIBWSGI_ATTRIBUTES" in os.environ else {"attributes": {"groups": Attribute(GROUPS, multi=True)}}
)

application = SSOMiddleware.from_env(app, roles=roles, **ATTRIBUTES)
