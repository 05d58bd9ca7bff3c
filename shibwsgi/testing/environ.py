"""Build exactly what a front end would put in the WSGI environ for a user."""

from __future__ import annotations

import base64
import json
import secrets
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..parsing import channel_key
from ..profiles import REMOTE_USER, Profile, get_profile

if TYPE_CHECKING:
    from .signed import TestSigner

__all__ = ["LossyEncodingWarning", "environ_for"]

DEFAULT_PROVIDER = "https://idp.example.org/idp/shibboleth"
#: Lifetime of the simulated front-end session.
SESSION_LIFETIME = timedelta(hours=8)


class LossyEncodingWarning(UserWarning):
    """The front end's encoding cannot carry a value: the app will see ``?`` in its place."""


def environ_for(
    profile: str | Profile = "shibboleth",
    user: str = "alice@example.org",
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    *,
    channel: str | None = None,
    encoding: str | None = None,
    prefix: str | None = None,
    provider: str = DEFAULT_PROVIDER,
    session_id: str | None = None,
    authenticated_at: datetime | None = None,
    expires_at: datetime | None = None,
    id_token: bool = False,
    signer: TestSigner | None = None,
) -> dict[str, str]:
    """Return the environ entries ``profile``'s front end would set for ``user``.

    ``attributes`` maps the front end's source names (``isMemberOf``, ``groups``)
    to a value or a list of values. Values are joined, escaped and encoded the
    way that front end does it (UTF-8 arrives as latin-1 mojibake, PEP 3333).
    A ``str`` is a scalar, a list an array: vouch-proxy sends a scalar bare and
    every array quoted (``"a"`` for one element). The user and the other fixed
    headers (``X-Vouch-User``, Azure's ``X-MS-CLIENT-PRINCIPAL-NAME``) carry the
    value exactly as it is, quotes and delimiters included.
    Front ends that pass claims only as JSON (Azure App Service's principal,
    kong-oidc's ``X-Userinfo`` / ``X-ID-Token``) get them there, encoded as they
    encode it. ``channel`` defaults to the profile's: ``"headers"`` gives the
    ``HTTP_*`` keys a proxy's request headers arrive as. ``id_token`` adds
    mod_auth_openidc's ``OIDC_id_token_payload`` JSON.
    A signed profile (``pomerium``, ``iap`` ...) needs ``signer``, a
    :class:`~shibwsgi.testing.signed.TestSigner`: the environ then holds its
    signed assertion with ``attributes`` as claims.

    The ``openidc`` profile defaults to mod_auth_openidc's own default encoding,
    latin-1, which turns every character outside latin-1 into ``?``: ``Zoë 山田``
    arrives as ``Zoë ??``, as it would in production. That warns
    (:class:`LossyEncodingWarning`); pass ``encoding="base64url"`` (with
    ``OIDCPassClaimsAs environment base64url`` in Apache) or ``id_token=True``
    (``OIDCPassIDTokenAs payload``), both lossless, as the deployment should.
    """
    spec = get_profile(profile)
    _check_user(spec, user, attributes)
    if spec.signed:
        return _signed_environ(spec, user, attributes, signer, session_id=session_id, expires_at=expires_at)
    if encoding is not None:
        spec = replace(spec, encoding=encoding)
    if prefix is not None:
        spec = replace(spec, prefixes=(prefix,))
    now = datetime.now(UTC)
    standard: dict[str, str | datetime] = {
        "session_id": session_id or "_" + secrets.token_hex(16),
        "provider": provider,
        "authenticated_at": authenticated_at or now,
        "expires_at": expires_at or now + SESSION_LIFETIME,
    }
    values = {source: _as_list(value) for source, value in (attributes or {}).items()}
    values.setdefault(spec.user[0], [user])
    # A scalar (a str, and the user) is sent as one value; vouch sends only arrays quoted.
    scalars = {source for source, value in (attributes or {}).items() if isinstance(value, str)}
    scalars.add(spec.user[0])
    for field, claim in spec.claims.items():
        values.setdefault(claim, [_format(standard[field], epoch=True)])

    channel = spec.channel if channel is None else channel
    if spec.encoding == "latin-1" and not id_token:
        _warn_if_lossy(values)
    builder = _Builder(spec, channel)
    claims: dict[str, list[str]] = {}
    for source, items in values.items():
        if spec.variables_for(source):
            builder.attribute(source, items, scalar=source in scalars)
        else:
            claims[source] = items
    if spec.json_variables and not spec.prefixes:
        builder.json_claims(claims)
    for field, variable in spec.variables.items():
        builder.variable(variable, _format(standard[field], epoch=field == "expires_at"))
    if channel == "environ" and spec.user[0] != REMOTE_USER:
        builder.remote_user(user)
    if id_token:
        builder.json("OIDC_id_token_payload", values)
    return builder.environ


def _check_user(profile: Profile, user: str, attributes: Mapping[str, Any] | None) -> None:
    """Refuse ``attributes`` that give the user source another value than ``user``.

    The environ would name that other user while the caller asked for ``user``.
    """
    source = profile.user[0]
    if attributes and source in attributes:
        value = attributes[source]
        if (value if isinstance(value, str) else list(value)) not in (user, [user]):
            raise ValueError(
                f"attributes[{source!r}] is the user source of profile {profile.name!r} and names "
                f"another user than user={user!r}: pass that user as user= instead"
            )


def _signed_environ(
    profile: Profile,
    user: str,
    attributes: Mapping[str, str | Iterable[str]] | None,
    signer: TestSigner | None,
    *,
    session_id: str | None,
    expires_at: datetime | None,
) -> dict[str, str]:
    if signer is None or profile.assertion_header is None:
        raise ValueError(
            f"profile {profile.name!r} is signed: pass signer=TestSigner() (and use a profile with a header)"
        )
    extra: dict[str, Any] = {
        source: value if isinstance(value, str | Mapping) else list(value)  # nested claims stay objects
        for source, value in (attributes or {}).items()
    }
    if session_id is not None:
        extra["sid"] = session_id
    if expires_at is not None:
        extra["exp"] = int(expires_at.timestamp())
    claims = signer.claims(user, extra)
    headers = {}
    if profile.audience_field is not None:
        headers[profile.audience_field] = claims.pop("aud")
    token = signer.sign(claims, headers=headers, padded=profile.audience_field is not None)
    if profile.assertion_header.lower() == "authorization":
        token = "Bearer " + token
    return {channel_key(profile.assertion_header, "headers"): token}


class _Builder:
    def __init__(self, profile: Profile, channel: str) -> None:
        self.profile = profile
        self.channel = channel
        self.environ: dict[str, str] = {}

    def remote_user(self, user: str) -> None:
        """``REMOTE_USER``: plain, but where the front end encodes it too (Shibboleth's URL encoding)."""
        encoded = self.profile.encodes_remote_user and self.profile.encoding == "url"
        self.environ[REMOTE_USER] = quote(user, safe="") if encoded else _wire(user)

    def variable(self, variable: str, text: str) -> None:
        """One of the front end's own variables, encoded as it encodes them."""
        self.environ[channel_key(variable, self.channel)] = self._encode(text)

    def attribute(self, source: str, values: list[str], *, scalar: bool) -> None:
        variable = self.profile.variables_for(source)[0]
        key = channel_key(variable, self.channel)
        if self.profile.series and source != REMOTE_USER:
            self._series(variable, values)
        elif source in self.profile.source_variables:  # one fixed header: the value, bare
            self.environ[key] = self._encode(values[0] if values else "")
        else:
            self.environ[key] = self._joined(values, scalar=scalar and len(values) == 1)

    def json(self, variable: str, values: Mapping[str, list[str]]) -> None:
        claims = {source: items[0] if len(items) == 1 else items for source, items in values.items()}
        self.environ[channel_key(variable, self.channel)] = self._encode(json.dumps(claims))

    def json_claims(self, claims: Mapping[str, list[str]]) -> None:
        """Claims in the front end's JSON variables, the only place it passes them.

        The first variable gets every claim (kong-oidc's userinfo); later ones the
        user and the standard claims (its ID token).
        """
        profile = self.profile
        first, *others = profile.json_variables
        standard = {profile.user[0], *profile.claims.values()}
        documents = [(first, claims)]
        documents += [(other, {k: v for k, v in claims.items() if k in standard}) for other in others]
        for variable, subset in documents:
            if profile.json_shape == "ms-client-principal":
                text = json.dumps(_principal(subset), ensure_ascii=False)
            else:
                single = {k: v[0] if len(v) == 1 else v for k, v in subset.items()}
                text = json.dumps(single, ensure_ascii=False)
            encoding = profile.json_encoding or profile.encoding
            self.environ[channel_key(variable, self.channel)] = self._encode(text, encoding)

    def _series(self, variable: str, values: list[str]) -> None:
        key = channel_key(variable, self.channel)
        if values:
            self.environ[key] = self._encode(values[0])
        for index, value in enumerate(values):
            self.environ[f"{key}_{index}"] = self._encode(value)
        self.environ[f"{key}_N"] = str(len(values))

    def _joined(self, values: list[str], *, scalar: bool) -> str:
        profile = self.profile
        if profile.quoted_lists:
            # vouch-proxy: an array claim as "a","b" (one element: "a"), a scalar bare, as is.
            return self._encode(values[0] if scalar else '"' + '","'.join(values) + '"')
        delimiter = profile.delimiter
        if profile.encoding == "url":
            return (delimiter or "").join(quote(value, safe="") for value in values)
        if delimiter is None:
            return self._encode(values[0] if values else "")
        if profile.backslash_escapes:
            values = [value.replace(delimiter, "\\" + delimiter) for value in values]
        return self._encode(delimiter.join(values))

    def _encode(self, text: str, encoding: str | None = None) -> str:
        encoding = encoding or self.profile.encoding
        if encoding == "base64url":
            return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        if encoding == "base64":
            return base64.b64encode(text.encode()).decode()
        if encoding == "latin-1":
            # mod_auth_openidc's latin1 mode turns what latin-1 cannot hold into "?".
            return text.encode("latin-1", "replace").decode("latin-1")
        return _wire(text)


def _warn_if_lossy(values: Mapping[str, list[str]]) -> None:
    lossy = sorted(source for source, items in values.items() if not all(map(_latin1, items)))
    if lossy:
        warnings.warn(
            f"{', '.join(lossy)}: characters outside latin-1 become '?' in the front end's "
            "latin-1 encoding; use encoding='base64url' or id_token=True for a lossless identity",
            LossyEncodingWarning,
            stacklevel=3,
        )


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


#: What Azure App Service names the principal's name and role claim types.
_NAME_TYPE = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
_ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def _principal(claims: Mapping[str, list[str]]) -> dict[str, object]:
    """Azure App Service's client principal: one ``{typ, val}`` entry per value."""
    entries = [{"typ": typ, "val": value} for typ, items in claims.items() for value in items]
    return {"auth_typ": "aad", "claims": entries, "name_typ": _NAME_TYPE, "role_typ": _ROLE_TYPE}


def _wire(text: str) -> str:
    """UTF-8 bytes as a WSGI server hands them over: decoded as latin-1 (PEP 3333)."""
    return text.encode("utf-8").decode("latin-1")


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _format(value: str | datetime, *, epoch: bool) -> str:
    if not isinstance(value, datetime):
        return value
    if epoch:
        return str(int(value.timestamp()))
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
