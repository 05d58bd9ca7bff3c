"""What names or holds a credential: never shown, never a user id.

A source or attribute name says so (``OIDC_access_token``, ``Shib-Session-ID``, a
``sid`` claim, a cookie, a password...), or a value does (a compact JWS or JWE
anywhere in it). The whoami page redacts such attributes; the user id may not
come from such a source, since it is logged, shown and kept in sessions.
"""

from __future__ import annotations

import base64
import json
import re

__all__ = ["holds_jose", "names_credential"]

# OIDC_access_token, Shib-Session-ID, X-Amzn-Oidc-Accesstoken, Cf-Access-Jwt-Assertion, sid...
_CREDENTIAL_NAME = re.compile(
    r"token|secret|session|cookie|passw|assertion|credential|jwt|bearer|authoriz|api.?key|private.?key"
    r"|ticket|signature|saml.?response|nonce|[cx]srf|(?<![a-z])sid(?![a-z])",
    re.IGNORECASE,
)
# A candidate JOSE header segment followed by another segment: "Bearer eyJ...", "id_token=eyJ...".
_COMPACT = re.compile(r"(?<![\w-])(e[\w-]{3,})\.[\w-]*\.")


def names_credential(name: str) -> bool:
    """True when ``name`` (a source or attribute name) says it holds a credential."""
    return _CREDENTIAL_NAME.search(name) is not None


def holds_jose(value: str) -> bool:
    """True when ``value`` holds a compact JWS/JWE: a segment decoding to a JSON header with ``alg``."""
    for match in _COMPACT.finditer(value):
        segment = match.group(1)
        try:
            header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except (ValueError, TypeError):  # binascii.Error and JSON/Unicode errors are ValueErrors
            continue
        if isinstance(header, dict) and "alg" in header:
            return True
    return False
