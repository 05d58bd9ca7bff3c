"""Test helpers: the environ a front end would produce, without any identity provider.

Fake identities live here and only here; the production middleware has no
development switch.
"""

from __future__ import annotations

from typing import Any

from .environ import LossyEncodingWarning, environ_for
from .frontend import SAMPLE_USERS, DevFrontEnd

__all__ = [
    "SAMPLE_USERS",
    "DevFrontEnd",
    "LossyEncodingWarning",
    "TestSigner",
    "environ_for",
    "sso_asgi_client",
]


def __getattr__(name: str) -> Any:
    # TestSigner needs PyJWT (the jwt extra): imported on first use only.
    if name == "TestSigner":
        from .signed import TestSigner

        return TestSigner
    # The ASGI client needs httpx: imported on first use too.
    if name == "sso_asgi_client":
        from .asgi import sso_asgi_client

        return sso_asgi_client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
