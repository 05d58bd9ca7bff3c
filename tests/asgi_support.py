"""A raw ASGI driver for the fast tests: one request in, what was sent and what the app saw out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: What a browser sends on every request.
HOST = [(b"host", b"app.example.org")]


@dataclass
class Reply:
    """The answer, and the scope the app was called with (``None``: the app never ran)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    scope: dict[str, Any] | None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name.lower()), None)

    def headers_named(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def identity(self) -> Any:
        assert self.scope is not None, "the app was not called"
        return self.scope["shibwsgi.identity"]

    @property
    def app_headers(self) -> list[tuple[bytes, bytes]]:
        assert self.scope is not None, "the app was not called"
        return list(self.scope["headers"])


class Recorder:
    """A raw ASGI app: answers 200 ``ok`` (accepts a websocket) and keeps the scope it got."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        if scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept", "headers": [(b"x-app", b"accepted")]})
            await send({"type": "websocket.close", "code": 1000})
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})


def scope_for(
    path: str = "/",
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    *,
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    method: str = "GET",
    kind: str = "http",
    query: bytes = b"",
    root_path: str = "",
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ASGI scope as a server builds it (header names lower case, as bytes)."""
    raw = [
        (name if isinstance(name, bytes) else name.lower().encode("latin-1"),
         value if isinstance(value, bytes) else value.encode("latin-1"))
        for name, value in headers
    ]  # fmt: skip
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "https" if kind == "http" else "wss",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": query,
        "headers": [*HOST, *raw],
        "client": client,
        "server": ("app.example.org", 443),
    }
    if kind == "http":
        scope["method"] = method
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


async def acall(middleware: Any, scope: dict[str, Any], app: Recorder | None = None) -> Reply:
    """Run ``scope`` through ``middleware`` (whose app should be a :class:`Recorder`)."""
    recorder = app if app is not None else middleware.app
    recorder.scope = None
    sent: list[dict[str, Any]] = []
    incoming = (
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
        if scope["type"] == "websocket"
        else [{"type": "http.request", "body": b"", "more_body": False}]
    )

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    start = next(
        (
            m
            for m in sent
            if m["type"] in ("http.response.start", "websocket.http.response.start", "websocket.accept")
        ),
        None,
    )
    status = 0 if start is None else start.get("status", 101)
    if start is None and any(m["type"] == "websocket.close" for m in sent):
        status = next(m["code"] for m in sent if m["type"] == "websocket.close")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in (start or {}).get("headers", [])]
    body = b"".join(m.get("body", b"") for m in sent if m["type"].endswith("body"))
    return Reply(status, headers, body, recorder.scope, sent)


def call(middleware: Any, *args: Any, **kwargs: Any) -> Reply:
    """:func:`acall` on a fresh event loop, with the scope built by :func:`scope_for`."""
    return asyncio.run(acall(middleware, scope_for(*args, **kwargs)))


def as_headers(environ: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The ``HTTP_*`` entries of a WSGI environ as the request headers they came from."""
    return [
        (key[5:].lower().replace("_", "-").encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
