"""The bare WSGI app of the full-stack run (uWSGI ``module = bench.apps:bare``); see also :mod:`bench.protected`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["bare"]


def bare(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """200, ``ok``: nothing but the WSGI call."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
