"""Build exactly what a front end would put in the WSGI environ for a user."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from ..parsing import channel_key
from ..profiles import REMOTE_USER, Profile, get_profile

__all__ = ["environ_for"]

DEFAULT_PROVIDER = "https://idp.example.org/idp/shibboleth"
#: Lifetime of the simulated front-end session.
SESSION_LIFETIME = timedelta(hours=8)


def environ_for(
    profile: str | Profile = "shibboleth",
    user: str = "alice@example.org",
    attributes: Mapping[str, str | Iterable[str]] | None = None,
    *,
    channel: str = "environ",
    encoding: str | None = None,
    prefix: str | None = None,
    provider: str = DEFAULT_PROVIDER,
    session_id: str | None = None,
    authenticated_at: datetime | None = None,
    expires_at: datetime | None = None,
    id_token: bool = False,
) -> dict[str, str]:
    """Return the environ entries ``profile``'s front end would set for ``user``.

    ``attributes`` maps the front end's source names (``isMemberOf``, ``groups``)
    to a value or a list of values. Values are joined, escaped and encoded the
    way that front end does it (UTF-8 arrives as latin-1 mojibake, PEP 3333).
    ``id_token`` adds mod_auth_openidc's ``OIDC_id_token_payload`` JSON.
    """
    spec = get_profile(profile)
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
    for field, claim in spec.claims.items():
        values.setdefault(claim, [_format(standard[field], epoch=True)])

    builder = _Builder(spec, channel)
    for source, items in values.items():
        builder.attribute(source, items)
    for field, variable in spec.variables.items():
        builder.variable(variable, _format(standard[field], epoch=field == "expires_at"))
    if channel == "environ" and spec.user[0] != REMOTE_USER:
        builder.remote_user(user)
    if id_token:
        builder.json("OIDC_id_token_payload", values)
    return builder.environ


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

    def attribute(self, source: str, values: list[str]) -> None:
        variable = self.profile.variables_for(source)[0]
        if self.profile.series and source != REMOTE_USER:
            self._series(variable, values)
        else:
            self.environ[channel_key(variable, self.channel)] = self._joined(values)

    def json(self, variable: str, values: Mapping[str, list[str]]) -> None:
        claims = {source: items[0] if len(items) == 1 else items for source, items in values.items()}
        self.environ[channel_key(variable, self.channel)] = self._encode(json.dumps(claims))

    def _series(self, variable: str, values: list[str]) -> None:
        key = channel_key(variable, self.channel)
        if values:
            self.environ[key] = self._encode(values[0])
        for index, value in enumerate(values):
            self.environ[f"{key}_{index}"] = self._encode(value)
        self.environ[f"{key}_N"] = str(len(values))

    def _joined(self, values: list[str]) -> str:
        profile = self.profile
        delimiter = profile.delimiter
        if profile.encoding == "url":
            return (delimiter or "").join(quote(value, safe="") for value in values)
        if delimiter is None:
            return self._encode(values[0] if values else "")
        if profile.backslash_escapes:
            values = [value.replace(delimiter, "\\" + delimiter) for value in values]
        return self._encode(delimiter.join(values))

    def _encode(self, text: str) -> str:
        encoding = self.profile.encoding
        if encoding == "base64url":
            return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        if encoding == "latin-1":
            # mod_auth_openidc's latin1 mode turns what latin-1 cannot hold into "?".
            return text.encode("latin-1", "replace").decode("latin-1")
        return _wire(text)


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
