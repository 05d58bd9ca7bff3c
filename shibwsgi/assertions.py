"""Internal: signed identity assertions (JWT): the signature is the trust.

A signed front end (Pomerium, Google IAP, Cloudflare Access, AWS ALB,
oauth2-proxy, authentik, or mod_auth_openidc's ``OIDC_id_token``) passes a JWT
that the :class:`AssertionVerifier` checks against the front end's published
keys, ``iss``, ``aud`` and the clock. Anything that does not verify is refused
with 401, never mapped to an identity. This is the only module that imports
PyJWT (the ``jwt`` extra).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

try:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("signed assertions need PyJWT with cryptography: pip install 'shibwsgi[jwt]'") from exc

from .decoding import decoder
from .errors import ConfigError, InvalidAssertionError, KeysUnavailableError
from .keys import KeysUnavailable, RemoteKeys, StaticKeys
from .logs import log, loggable
from .lru import BoundedLRU, footprint
from .parsing import channel_key
from .profiles import REMOTE_USER, Profile

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .parsing import IdentityParser

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_ASSERTION_BYTES",
    "AssertionVerifier",
    "TokenCache",
    "VerificationKey",
    "build_verifier",
    "flatten",
    "load_jwks",
]

#: Asymmetric algorithms only: with a public key as an HMAC secret anyone could sign.
ALLOWED_ALGORITHMS = frozenset(
    ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
)
#: Longest assertion read: front ends' header limits are 8 KiB (nginx, Apache).
MAX_ASSERTION_BYTES = 16384
#: A base64url segment; AWS ALB adds "=" padding.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")
#: Verified tokens kept per worker, and the bytes they may hold in all.
CACHE_ENTRIES = 4096
CACHE_BYTES = 8 << 20
#: Bytes a cache entry costs beyond its token and value: the entry tuples, the expiry, the dict slot.
_ENTRY_OVERHEAD = 256
#: Nested claims get dotted names down to this depth; deeper objects stay values of their parent.
MAX_FLATTEN_DEPTH = 32
#: Longest dotted name made: a longer one repeats every name above it, and no configured source is as long.
MAX_DOTTED_NAME = 256

T = TypeVar("T")
_PUBLIC_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)


class VerificationKey(NamedTuple):
    """A public key, and the one algorithm its JWK allows (``None``: any configured one)."""

    key: Any  # a cryptography public key object
    alg: str | None = None


class AssertionVerifier:
    """Reads the JWT in one header (or server variable) and returns its verified claims.

    :meth:`claims` returns ``None`` when no assertion came, the claims when it
    verifies, and raises :class:`~shibwsgi.errors.InvalidAssertionError` (401) or
    :class:`~shibwsgi.errors.KeysUnavailableError` (503) otherwise.
    """

    def __init__(
        self,
        *,
        key: str,
        keys: RemoteKeys[VerificationKey] | StaticKeys[VerificationKey],
        audience: tuple[str, ...],
        algorithms: tuple[str, ...],
        issuer: str | None = None,
        leeway: int = 0,
        audience_field: str | None = None,
        bearer: bool = False,
        decode: Callable[[str], str] | None = None,
        verify_exp: bool = True,
    ) -> None:
        self.key = key
        self.keys = keys
        self.audience = audience
        self.algorithms = algorithms
        self.issuer = issuer
        self.leeway = leeway
        self._audience_field = audience_field
        self._bearer = bearer
        self._decode = decode
        self._verify_exp = verify_exp
        self.cache = TokenCache(CACHE_ENTRIES, CACHE_BYTES)

    def __repr__(self) -> str:
        return (
            f"AssertionVerifier(key={self.key!r}, issuer={self.issuer!r}, audience={list(self.audience)!r}, "
            f"algorithms={list(self.algorithms)!r}, keys={self.keys!r})"
        )

    def claims(self, environ: WSGIEnvironment) -> dict[str, Any] | None:
        """The verified, flattened claims of this request's assertion; ``None`` without one."""
        return self.verified(environ, _same)

    def verified(self, environ: WSGIEnvironment, derive: Callable[[dict[str, Any]], T]) -> T | None:
        """``derive(claims)`` for this request's assertion, memoised per token until its ``exp``.

        ``None`` when no assertion came. ``derive`` must be a pure function of the
        claims (the middleware passes the parser, so a repeated token costs a lookup).
        """
        token = self._token(environ.get(self.key))
        if token is None:
            return None
        # Read before verifying: keys retired meanwhile must not stamp this result as current.
        generation = self.keys.generation
        # Keys past their age are refetched by verifying: a key replaced upstream stops serving its tokens.
        cached = None if self.keys.stale else self.cache.get(token, generation)
        if cached is not None:
            value, expires = cached
            # PyJWT's own rule (and clock): expired once exp + leeway has passed.
            if expires is None or time.time() < expires + self.leeway:
                return cast("T", value)
        claims = self._verify(token)
        value = derive(claims)
        self.cache.put(token, value, claims.get("exp") if self._verify_exp else None, generation)
        return value

    def settled(self, environ: WSGIEnvironment) -> bool:
        """True when reading this request's assertion fetches no key: none came, or it is verified and live."""
        try:
            token = self._token(environ.get(self.key))
        except InvalidAssertionError:
            return True  # refused as it stands, before any key is needed
        if token is None:
            return True
        cached = self.cache.get(token, self.keys.generation)
        return cached is not None and (cached[1] is None or time.time() < cached[1] + self.leeway)

    def check_user(self, user: str, claims: Mapping[str, Any], parser: IdentityParser) -> None:
        """Refuse (401) a ``user`` that the verified ID token ``claims`` do not name.

        The user must be the one the token's claims give through the configured user
        sources. ``REMOTE_USER`` (mod_auth_openidc's ``OIDCRemoteUserClaim``) matches the
        token's ``sub`` in the module's forms: ``sub``, and ``sub@issuer`` (the default).
        """
        named = parser.claimed_user(claims)
        if user == named:
            return
        sub, issuer = claims.get("sub"), claims.get("iss")
        if REMOTE_USER in parser.user_sources and isinstance(sub, str) and sub:
            forms = {sub}
            if isinstance(issuer, str):
                forms.add(f"{sub}@{issuer.removeprefix('https://')}")
            if user in forms:
                return
        sources = ", ".join(repr(source) for source in parser.user_sources)
        raise InvalidAssertionError(
            "the signed-in user is not the one the signed ID token names; sign in again",
            log_message=(
                f"the user read from {sources} is not the one the verified ID token names"
                if named is not None
                else f"the verified ID token carries none of the user sources {sources}"
            )
            + ": with jwks_url the user must come from the ID token; choose a claim it carries as user "
            "(user='sub'), or REMOTE_USER with OIDCRemoteUserClaim sub or sub@",
        )

    def _token(self, raw: object) -> str | None:
        if not raw or not isinstance(raw, str):
            return None
        token = raw.strip()
        if self._decode is not None:
            try:
                token = self._decode(token)
            except ValueError as exc:
                raise _refused(f"malformed: {exc}") from None
        if self._bearer:
            scheme, _, credentials = token.partition(" ")
            if scheme.lower() != "bearer":
                return None  # another scheme (Basic ...) is not an assertion
            token = credentials.strip()
        if len(token) > MAX_ASSERTION_BYTES:
            raise _refused(f"{len(token)} bytes, over the cap of {MAX_ASSERTION_BYTES}")
        if not token.isascii() or token.count(".") != 2:
            raise _refused("malformed: not a compact JWS (three base64url parts)")
        return token

    def _verify(self, token: str) -> dict[str, Any]:
        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms:
            raise _refused(f"algorithm {loggable(alg)} is not one of {', '.join(self.algorithms)}")
        if kid is not None and not isinstance(kid, str):
            raise _refused("malformed: kid is not a string")
        if self._audience_field is not None and header.get(self._audience_field) not in self.audience:
            raise _refused(f"header field {self._audience_field!r} is not the configured audience")
        try:
            key = self.keys.get(kid)
        except KeysUnavailable as exc:
            raise KeysUnavailableError(
                "the identity provider's signing keys are unavailable; try again later",
                log_message=f"{exc}: check that the key URL answers from this host",
            ) from None
        if key is None:
            raise _refused(f"no key with kid {loggable(kid)} at the configured key source")
        if key.alg is not None and key.alg != alg:
            # An RSA key published for RS256 must not verify PS256 (nor the reverse).
            raise _refused(
                f"the key with kid {loggable(kid)} is for {loggable(key.alg)}, the token says {alg}"
            )
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=None if self._audience_field else list(self.audience),
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": ["exp"] if self._verify_exp else [],
                    "verify_aud": self._audience_field is None,
                    "verify_exp": self._verify_exp,
                    # iat in the future is the provider's clock, not an attack: exp and nbf decide.
                    "verify_iat": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _refused(f"{type(exc).__name__}: {loggable(str(exc))}") from None
        if not isinstance(claims, dict):
            raise _refused("malformed: the payload is not a JSON object")
        if self._verify_exp and not isinstance(claims.get("exp"), int | float):
            raise _refused("malformed: exp is not a number")
        return flatten(claims)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, to pick the key; PyJWT checks it again while verifying."""
    # Not jwt.get_unverified_header: it scans the whole token character by character.
    segment = token.partition(".")[0]
    if not _SEGMENT.fullmatch(segment):
        raise _refused("malformed header: not base64url")
    unpadded = segment.rstrip("=")
    try:
        header = json.loads(base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:  # RecursionError: "[[[[..."
        raise _refused(f"malformed header: {type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise _refused("malformed header: not a JSON object")
    return header


def _same(claims: dict[str, Any]) -> dict[str, Any]:
    return claims


def flatten(claims: Mapping[str, Any]) -> dict[str, Any]:
    """``claims`` plus a dotted name for every nested claim: ``realm_access.roles``.

    A dotted name means the nested path: a claim whose own name holds a dot
    (``"realm_access.roles"``) is kept only where no nested claim has that name.
    Iterative, so no nesting depth raises ``RecursionError``; names stop at
    :data:`MAX_FLATTEN_DEPTH` levels and :data:`MAX_DOTTED_NAME` characters (deeper
    objects stay values of their parent), so the names of a deep document, or of one
    with long names, do not take many times the memory of its text.
    """
    flat: dict[str, Any] = {}
    literal: dict[str, Any] = {}
    pending: list[tuple[str, Mapping[str, Any], int, bool]] = [("", claims, 1, True)]
    while pending:
        prefix, document, depth, path = pending.pop()
        for name, value in document.items():
            dotted = prefix + name
            if prefix and len(dotted) > MAX_DOTTED_NAME:
                continue
            is_path = path and "." not in name
            (flat if is_path else literal)[dotted] = value
            if isinstance(value, dict) and depth < MAX_FLATTEN_DEPTH:
                pending.append((dotted + ".", value, depth + 1, is_path))
    for dotted, value in literal.items():
        flat.setdefault(dotted, value)
    return flat


def _refused(reason: str) -> InvalidAssertionError:
    return InvalidAssertionError(
        "the signed identity assertion was refused; sign in again",
        log_message=f"signed assertion refused: {reason}",
    )


class TokenCache:
    """Verified tokens until their ``exp``: a repeated token costs a lookup, not a signature check."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._tokens: BoundedLRU[str, tuple[object, float | None, int]] = BoundedLRU(
            max_entries=max_entries, max_bytes=max_bytes
        )

    def clear(self) -> None:
        """Forget every verified token (the next request with each is verified again)."""
        self._tokens.clear()

    def get(self, token: str, generation: int) -> tuple[object, float | None] | None:
        entry = self._tokens.get(token)
        if entry is None or entry[2] != generation:
            return None  # the keys changed since: a retired key must not keep a token alive
        return entry[0], entry[1]

    def put(self, token: str, value: object, expires: float | None, generation: int) -> None:
        """Keep ``value`` for ``token``, sized by the memory both take."""
        self._tokens.put(
            token, (value, expires, generation), sys.getsizeof(token) + footprint(value) + _ENTRY_OVERHEAD
        )


# -- construction ---------------------------------------------------------------------------


def build_verifier(
    profile: Profile,
    *,
    user: Iterable[str] = (),
    assertion_header: str | None = None,
    jwks_url: str | None = None,
    jwks: Mapping[str, Any] | str | None = None,
    issuer: str | None = None,
    audience: str | Iterable[str] | None = None,
    algorithms: str | Iterable[str] | None = None,
    leeway: int = 0,
    channel: str = "environ",
) -> AssertionVerifier:
    """The verifier for ``profile`` and the middleware's assertion options (validated here).

    ``channel``: where a profile's ID token variable arrives (a header through a proxy).
    """
    if profile.signed:
        if profile.prefixes or REMOTE_USER in user:
            raise ConfigError(
                "user" if REMOTE_USER in user else "prefix",
                f"profile {profile.name!r} reads claims of the verified token only, not variables",
            )
        header = assertion_header or profile.assertion_header
        if not header:
            raise ConfigError(
                "assertion_header", f"profile {profile.name!r} needs the header that carries the JWT"
            )
        key, bearer, verify_exp, decode = (
            channel_key(header, "headers"),
            header.lower() == "authorization",
            True,
            None,
        )
    elif profile.id_token_variable:
        if assertion_header is not None:
            raise ConfigError(
                "assertion_header", f"profile {profile.name!r} verifies {profile.id_token_variable}"
            )
        # mod_auth_openidc ends its own sessions; its ID token expires long before them. It
        # encodes the token like every value it sets (OIDCPassClaimsAs ... base64url).
        key, bearer, verify_exp = channel_key(profile.id_token_variable, channel), False, False
        decode = decoder(profile.encoding)
    else:
        raise ConfigError("jwks_url", f"profile {profile.name!r} passes no signed assertion")
    chosen = _algorithms(algorithms if algorithms is not None else profile.algorithms or ("RS256",))
    return AssertionVerifier(
        key=key,
        keys=_key_source(jwks_url or (profile.jwks_url if jwks is None else None), jwks),
        audience=_audience(audience),
        algorithms=chosen,
        issuer=_issuer(issuer if issuer is not None else profile.issuer),
        leeway=_leeway(leeway),
        audience_field=profile.audience_field,
        bearer=bearer,
        verify_exp=verify_exp,
        decode=decode,
    )


def _algorithms(algorithms: str | Iterable[str]) -> tuple[str, ...]:
    chosen = (algorithms,) if isinstance(algorithms, str) else tuple(algorithms)
    refused = [alg for alg in chosen if alg not in ALLOWED_ALGORITHMS]
    if refused or not chosen:
        raise ConfigError(
            "algorithms",
            f"{refused or chosen!r} refused: use asymmetric algorithms ({', '.join(sorted(ALLOWED_ALGORITHMS))}); "
            "'none' and HMAC (HS256 ...) would let anyone holding the public key sign",
        )
    return chosen


def _audience(audience: str | Iterable[str] | None) -> tuple[str, ...]:
    values = (audience,) if isinstance(audience, str) else tuple(audience or ())
    if not values or not all(isinstance(value, str) and value for value in values):
        raise ConfigError(
            "audience",
            "required: the value(s) this application's tokens carry (the aud claim; for AWS ALB the "
            "load balancer's ARN), so that a token issued for another application is refused",
        )
    return values


def _issuer(issuer: str | None) -> str | None:
    if issuer is not None and (not isinstance(issuer, str) or not issuer):
        raise ConfigError("issuer", f"must be a non-empty string, not {issuer!r}")
    return issuer


def _leeway(leeway: int) -> int:
    if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= 300:
        raise ConfigError("leeway", f"must be whole seconds between 0 and 300, not {leeway!r}")
    return leeway


def _key_source(
    jwks_url: str | None, jwks: Mapping[str, Any] | str | None
) -> RemoteKeys[VerificationKey] | StaticKeys[VerificationKey]:
    if (jwks_url is None) == (jwks is None):
        raise ConfigError("jwks_url", "give exactly one of jwks_url (fetched) and jwks (a static JWKS)")
    if jwks_url is not None:
        return RemoteKeys(jwks_url, _pem_key if "{kid}" in jwks_url else load_jwks)
    try:
        document = json.loads(jwks) if isinstance(jwks, str) else jwks
        keys, duplicates = _jwks_keys(document)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError("jwks", f"not a usable JWKS: {exc}") from None
    if duplicates:
        raise ConfigError(
            "jwks",
            f"lists kid {', '.join(sorted(map(repr, duplicates)))} more than once: give each key its own kid",
        )
    if not keys:
        raise ConfigError("jwks", "holds no public signing key (RSA, EC or Ed25519)")
    return StaticKeys(keys)


def load_jwks(document: bytes) -> dict[str | None, VerificationKey]:
    """``kid -> key`` from a JWKS document fetched from a key URL; an ambiguous kid is left out."""
    keys, duplicates = _jwks_keys(json.loads(document))
    if duplicates:
        log.warning(
            "the key set lists kid %s more than once: tokens naming it are refused until it is fixed",
            ", ".join(sorted(map(repr, duplicates))),
        )
    return keys


def _jwks_keys(document: Any) -> tuple[dict[str | None, VerificationKey], set[str | None]]:
    """``kid -> key`` for the signing keys of a JWKS (other keys are skipped), and the kids listed twice.

    A kid listed twice names no key: which of the two a token means is unknowable.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("expected a JSON object with a 'keys' list")
    keys: dict[str | None, VerificationKey] = {}
    duplicates: set[str | None] = set()
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(dict(entry)).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # an unsupported or malformed entry: not a key tokens may use
        if isinstance(key, _PUBLIC_KEY_TYPES):  # never a symmetric ("oct") or private key
            kid = entry.get("kid")
            kid = kid if isinstance(kid, str) else None
            alg = entry.get("alg")
            if kid in keys:
                duplicates.add(kid)
            keys[kid] = VerificationKey(key, alg if isinstance(alg, str) else None)
    for kid in duplicates:
        del keys[kid]
    return keys, duplicates


def _pem_key(document: bytes) -> dict[str | None, VerificationKey]:
    key = load_pem_public_key(document)
    if not isinstance(key, _PUBLIC_KEY_TYPES):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    return {None: VerificationKey(key)}
