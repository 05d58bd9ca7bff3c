"""Internal: where the front end's identity comes from, chosen once at start-up.

Three sources: the front end's variables or headers, parsed through the identity
memo; a signed assertion whose verified claims are the identity (memoised with
the token); variables checked against a signed ID token (mod_auth_openidc with
``jwks_url``). Each says, per request, whether reading it can wait on I/O (a key
fetch), so the ASGI shell can keep the common request on the event loop.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

from .errors import InvalidAssertionError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .assertions import AssertionVerifier
    from .identity import Identity
    from .memo import IdentityMemo
    from .parsing import IdentityParser

__all__ = ["AssertionSource", "IdTokenSource", "IdentitySource", "VariablesSource", "identity_source"]


class IdentitySource(Protocol):
    """Reads the identity from a request the trust gate has admitted."""

    def read(self, environ: WSGIEnvironment) -> Identity | None:
        """The front end's identity, ``None`` without one; raises a RequestError to refuse."""

    def settled(self, environ: WSGIEnvironment) -> bool:
        """True when :meth:`read` does no I/O for this request (no key to fetch)."""


class VariablesSource:
    """Variables or headers, parsed (a pure function of them, memoised)."""

    def __init__(self, memo: IdentityMemo) -> None:
        self.read = memo.parse

    def settled(self, environ: WSGIEnvironment) -> bool:
        return True


class AssertionSource:
    """A signed assertion: its verified claims are all the identity (memoised with the token)."""

    def __init__(self, verifier: AssertionVerifier, parser: IdentityParser) -> None:
        self.verifier = verifier
        self._parse_claims = functools.partial(parser.parse, {})
        self.settled = verifier.settled

    def read(self, environ: WSGIEnvironment) -> Identity | None:
        return self.verifier.verified(environ, self._parse_claims)


class IdTokenSource:
    """Variables, bound to the front end's signed ID token (its user must be the token's)."""

    def __init__(self, verifier: AssertionVerifier, parser: IdentityParser) -> None:
        self.verifier = verifier
        self.parser = parser
        self.settled = verifier.settled

    def read(self, environ: WSGIEnvironment) -> Identity | None:
        claims = self.verifier.claims(environ)
        identity = self.parser.parse(environ, claims)
        if identity is None:
            return None
        if claims is None:
            raise InvalidAssertionError(
                "the front end's signed ID token is missing",
                log_message=f"{self.verifier.key} is missing while a user is present: set "
                "OIDCPassIDTokenAs serialized (or remove jwks_url)",
            )
        self.verifier.check_user(identity.user, claims, self.parser)
        return identity


def identity_source(
    *, signed: bool, verifier: AssertionVerifier | None, parser: IdentityParser, memo: IdentityMemo
) -> VariablesSource | AssertionSource | IdTokenSource:
    """The source for this configuration: a signed profile, an ID token to verify, or plain variables."""
    if verifier is None:
        return VariablesSource(memo)
    if signed:
        return AssertionSource(verifier, parser)
    return IdTokenSource(verifier, parser)
