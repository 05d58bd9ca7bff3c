"""The probe's HTTP: one request with headers exactly as given (repeats, case, underscores kept).

The standard library's ``http.client`` sends header names as written, so the probe can send
the spellings a browser never would. Redirects are not followed; a refused or reset
connection is an answer too (status 0). ``timeout`` bounds the whole request, not each
read: a server that drips its answer a byte at a time is cut off like one that hangs.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Answer", "Site"]


@dataclass(frozen=True)
class Answer:
    status: int  # 0: the connection failed or was closed without an answer
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: str = ""
    tls: str = ""  # "TLSv1.3 TLS_AES_256_GCM_SHA384" over https

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass(frozen=True)
class Site:
    """``https://host[:port]/base``: where requests go, and how TLS is checked."""

    url: str
    timeout: float = 10.0
    context: ssl.SSLContext | None = None

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    def path(self, path: str) -> str:
        base = urlsplit(self.url).path.rstrip("/")
        return base + path

    def get(self, path: str, headers: Sequence[tuple[str, str]] = (), method: str = "GET") -> Answer:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        connection: http.client.HTTPConnection
        try:
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, parts.port, timeout=self.timeout, context=self.context
                )
            else:
                connection = http.client.HTTPConnection(host, parts.port, timeout=self.timeout)
        except (ValueError, http.client.HTTPException) as exc:
            return Answer(0, error=str(exc) or type(exc).__name__)
        held: list[socket.socket] = []  # the response takes the socket from the connection
        deadline = threading.Timer(self.timeout, _cut, (held,))
        deadline.start()
        try:
            connection.connect()
            if connection.sock is not None:
                held.append(connection.sock)
            if not deadline.is_alive():  # it passed while connecting: nothing was there to cut
                raise TimeoutError
            tls = ""  # read now: a response that closes the connection takes the socket along
            if isinstance(connection.sock, ssl.SSLSocket):
                tls = f"{connection.sock.version()} {(connection.sock.cipher() or ('',))[0]}"
            connection.putrequest(method, self.path(path), skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read(1024 * 1024)
            if not deadline.is_alive():
                return Answer(0, error=f"no complete answer within {self.timeout:g} s")
            return Answer(response.status, response.getheaders(), body, tls=tls)
        except (OSError, http.client.HTTPException) as exc:
            if not deadline.is_alive():
                return Answer(0, error=f"no complete answer within {self.timeout:g} s")
            return Answer(0, error=str(exc) or type(exc).__name__)
        finally:
            deadline.cancel()
            connection.close()


def _cut(held: list[socket.socket]) -> None:
    """At the deadline: shut the socket down, which wakes a read blocked on it."""
    for sock in held:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
