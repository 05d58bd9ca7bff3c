"""A fingerprint of one front-end login, for adapters that sync an app's user at login.

Two requests with the same fingerprint belong to the same login: same user,
front-end session, login time, attributes and dropped attributes. A new one
means the adapter should sync the app's user again.
"""

from __future__ import annotations

import hashlib

from .identity import Identity

__all__ = ["login_fingerprint"]


def login_fingerprint(identity: Identity) -> str:
    """SHA-256 of the login, computed on every request: joined text, not JSON (much faster).

    The length-prefixed user keeps users apart; a collision within one user's attribute
    values could only delay their resync to the next front-end login.
    """
    parts = [
        str(len(identity.user)),
        identity.user,
        identity.session_id or "",
        str(identity.authenticated_at),
    ]
    parts += identity.dropped
    for name, values in sorted(identity.attributes.items()):
        parts += (name, str(len(values)), *values)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
