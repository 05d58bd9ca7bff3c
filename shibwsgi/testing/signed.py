"""A stand-in for a signing front end: a throwaway key pair, its JWKS and its tokens.

For tests only (needs the ``jwt`` extra)::

    signer = TestSigner()
    app = SSOMiddleware(inner, profile="pomerium", jwks=signer.jwks,
                        issuer=signer.issuer, audience=signer.audience)
    TestApp(app).get("/", extra_environ=environ_for("pomerium", "alice", signer=signer))

``signer.save(path)`` and ``TestSigner.load(path)`` share one key between
processes: a server verifying with its JWKS and a test signing tokens.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..profiles import Profile

__all__ = ["TestSigner"]

_KEY_TYPES = {"ES256": ec.EllipticCurvePrivateKey, "RS256": rsa.RSAPrivateKey}
#: What :meth:`TestSigner.save` writes, all text.
_FIELDS = ("algorithm", "kid", "issuer", "audience", "private_key")


class TestSigner:
    """Signs JWTs the way a front end does, with a key made on the spot (ES256 or RS256).

    ``jwks`` is the public key set to give the middleware (``jwks=``) or to serve
    at a ``jwks_url``; ``public_pem`` is the one-key PEM that AWS ALB serves per ``kid``.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        algorithm: str = "ES256",
        *,
        kid: str | None = None,
        issuer: str = "https://issuer.example.org",
        audience: str = "https://app.example.org",
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    ) -> None:
        if algorithm not in _KEY_TYPES:
            raise ValueError("TestSigner makes ES256 or RS256 keys")
        if private_key is not None and not isinstance(private_key, _KEY_TYPES[algorithm]):
            raise ValueError(f"{type(private_key).__name__} cannot sign {algorithm}")
        self.algorithm = algorithm
        self.kid = kid or secrets.token_hex(8)
        self.issuer = issuer
        self.audience = audience
        self.private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = private_key or (
            ec.generate_private_key(ec.SECP256R1())
            if algorithm == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )

    @classmethod
    def for_profile(cls, profile: Profile) -> TestSigner:
        """A signer such as ``profile``'s front end: its algorithm (ES256 or RS256) and issuer."""
        algorithm = next((name for name in profile.algorithms if name in _KEY_TYPES), None)
        if algorithm is None:
            raise ValueError(f"profile {profile.name!r} signs with none of {', '.join(_KEY_TYPES)}")
        return cls(algorithm) if profile.issuer is None else cls(algorithm, issuer=profile.issuer)

    def save(self, path: str | os.PathLike[str], *, replace: bool = True) -> None:
        """Write the key, ``kid``, issuer and audience to ``path`` (JSON, mode 0600).

        The file appears whole or not at all. ``replace=False``: raise
        :class:`FileExistsError` rather than overwrite (one process of several wins).
        """
        target = Path(path)
        private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        document = {
            "algorithm": self.algorithm,
            "kid": self.kid,
            "issuer": self.issuer,
            "audience": self.audience,
            "private_key": private_pem.decode(),
        }
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(document, file)
            if replace:
                os.replace(temporary, target)
            else:
                os.link(temporary, target)  # atomic, and fails when the file exists
        finally:
            Path(temporary).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TestSigner:
        """The signer :meth:`save` wrote to ``path``; ``ValueError`` for any other file."""
        try:
            document = json.loads(Path(path).read_text())
            fields = {name: document[name] for name in _FIELDS} if isinstance(document, dict) else None
            if fields is None or not all(isinstance(value, str) for value in fields.values()):
                raise TypeError(f"expected the text fields {', '.join(_FIELDS)}")
            private_key = serialization.load_pem_private_key(fields["private_key"].encode(), password=None)
            if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise TypeError(type(private_key).__name__)
            return cls(
                fields["algorithm"],
                kid=fields["kid"],
                issuer=fields["issuer"],
                audience=fields["audience"],
                private_key=private_key,
            )
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{path} is not a key file TestSigner.save wrote ({exc})") from None

    def __repr__(self) -> str:
        return f"TestSigner(algorithm={self.algorithm!r}, kid={self.kid!r})"

    @property
    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK."""
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        key: dict[str, Any] = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        return {**key, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    @property
    def jwks(self) -> dict[str, Any]:
        """The public key set (``{"keys": [...]}``)."""
        return {"keys": [self.jwk]}

    @property
    def public_pem(self) -> bytes:
        """The public key in PEM, as AWS ALB serves it at ``.../<kid>``."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(
        self, user: str, extra: Mapping[str, Any] | None = None, *, lifetime: int = 300
    ) -> dict[str, Any]:
        """Standard claims for ``user`` (``sub``, ``iss``, ``aud``, ``iat``, ``exp``, ``sid``) plus ``extra``."""
        now = int(time.time())
        standard = {
            "sub": user,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + lifetime,
            "sid": secrets.token_hex(8),
        }
        return {**standard, **(extra or {})}

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
        padded: bool = False,
    ) -> str:
        """A compact JWS of ``claims``; ``padded``: base64 with ``=`` padding, signed that way (AWS ALB)."""
        header = {"alg": self.algorithm, "kid": self.kid, "typ": "JWT", **(headers or {})}
        if not padded:
            return jwt.encode(dict(claims), self.private_key, algorithm=self.algorithm, headers=header)
        signing_input = f"{_padded(header)}.{_padded(claims)}"
        signature = jwt.get_algorithm_by_name(self.algorithm).sign(signing_input.encode(), self.private_key)
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode()}"


def _padded(document: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(dict(document)).encode()).decode()
