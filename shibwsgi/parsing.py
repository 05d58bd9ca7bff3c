"""Internal: reading an Identity out of a WSGI environ, as one front-end profile describes it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .attributes import Attribute
from .decoding import (
    UndecodableValue,
    decoder,
    is_joined,
    not_utf8,
    repair_utf8,
    split_quoted,
    split_values,
    without_surrogates,
)
from .errors import (
    AttributeTooLargeError,
    EncodingMismatchError,
    InvalidClaimsError,
    InvalidUserError,
    MissingAttributeError,
    SubjectMismatchError,
)
from .identity import Identity
from .profiles import REMOTE_USER, Profile

__all__ = ["IdentityParser", "channel_key", "claim_at", "user_id_problem"]

log = logging.getLogger("shibwsgi")

#: Longest user id accepted: ids are short (eppn, OIDC ``sub`` is at most 255 bytes).
MAX_USER_LENGTH = 1024
#: Largest JSON claims document read (larger than any uwsgi packet: 64 KiB).
MAX_JSON_BYTES = 256 * 1024
#: Deepest nesting accepted in a JSON claim value that is read.
MAX_JSON_DEPTH = 32

#: A raw value: one joined string, values still encoded but apart (a list: mellon
#: series), or values already decoded (a tuple: JSON claims).
Raw = str | list[str] | tuple[str, ...]
#: The parser only looks values up (``get``): the identity memo records what it read.
Environ = Mapping[str, Any]
#: A document of claims and where it came from (a variable name, or the signed token).
Document = tuple[str, Mapping[str, Any]]

#: The claims naming the subject in OpenID Connect documents: a subject is unique per issuer.
SUBJECT = ("sub", "iss")
#: What :func:`claim_at` returns for a claim that is not there (a claim may be ``null``).
MISSING: Any = object()


def user_id_problem(user: str) -> str | None:
    """Why ``user`` can never be an Identity's user id, ``None`` when it can.

    The one rule for user ids: applications that take one from elsewhere (an admin
    API giving roles) check it here, so they accept exactly what the middleware produces.
    Surrounding whitespace is refused: ``" zoe"`` looks like ``zoe`` in any UI and some
    SQL collations ignore trailing spaces, so it would share another user's rows.
    """
    if not user:
        return "is empty"
    if len(user) > MAX_USER_LENGTH:
        return f"is longer than {MAX_USER_LENGTH} characters"
    if not user.isprintable():
        return "contains control characters"
    if "\ufffd" in user:
        return "contains undecodable characters"
    if user != user.strip():
        return "has leading or trailing whitespace"
    return None


def channel_key(variable: str, channel: str) -> str:
    """The environ key under which ``variable`` arrives on ``channel``."""
    if channel == "environ":
        return variable
    return "HTTP_" + variable.upper().replace("-", "_")


def claim_at(claims: Mapping[str, Any], source: str, *, nested: bool = True) -> Any:
    """The claim ``source`` names in ``claims``, or :data:`MISSING`.

    A dotted name is a path into nested objects and nothing else: ``realm_access.roles``
    is the ``roles`` member of ``realm_access``, never a top-level claim spelled with a
    dot (which anyone able to add a claim could otherwise use to shadow it). A URI
    (``https://example.org/roles``, a collision-resistant name, RFC 7519 4.2) is one
    name. ``nested=False`` (Azure's principal: claim types, never nested) reads names only.
    """
    if not nested or "." not in source or ":" in source:
        return claims.get(source, MISSING)
    value: Any = claims
    for segment in source.split("."):
        if not isinstance(value, Mapping) or segment not in value:
            return MISSING
        value = value[segment]
    return value


@dataclass(frozen=True)
class _Caps:
    max_bytes: int
    max_values: int


class IdentityParser:
    """Builds the :class:`Identity` for one request, or ``None`` when anonymous.

    Raises :class:`~shibwsgi.errors.RequestError` subclasses for input that
    cannot give a trustworthy identity; never returns a wrong user.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        channel: str,
        user: tuple[str, ...],
        attributes: Mapping[str, Attribute],
        max_bytes: int,
        max_values: int,
    ) -> None:
        self.profile = profile
        self.channel = channel
        self.user_sources = user
        self.attributes = dict(attributes)
        self._caps = {
            name: _Caps(attr.max_bytes or max_bytes, attr.max_values or max_values)
            for name, attr in self.attributes.items()
        }
        self._plan = [(name, attr, self._caps[name]) for name, attr in self.attributes.items()]
        self._user_caps = _Caps(MAX_USER_LENGTH, max_values)
        self._warned_dropped: set[str] = set()
        sources = {
            *user,
            *(attr.source for attr in self.attributes.values()),
            *profile.claims.values(),
        }
        self._keys = {source: self._keys_for(source) for source in sources}
        self._variable_keys = {
            name: channel_key(variable, channel) for name, variable in profile.variables.items()
        }
        self._json_names = {channel_key(v, channel): v for v in profile.json_variables}
        self._nested = profile.json_shape == "claims"
        # Names that identify the subject: every document holding one must agree on it.
        self._subject_names = tuple(
            dict.fromkeys(
                name
                for name in (*(SUBJECT if self._nested else ()), *user)
                if name != REMOTE_USER and name not in profile.source_variables
            )
        )
        self._json_keys = tuple(self._json_names)
        self._json_encoding = profile.json_encoding or profile.encoding
        self._decode_json = decoder(self._json_encoding)
        self._split_first = profile.encoding == "url"
        self._quoted_lists = profile.quoted_lists
        self._decode = decoder(profile.encoding)
        self._decode_remote_user = self._decode if profile.encodes_remote_user else repair_utf8
        # Where UTF-8 arrives as latin-1 text (PEP 3333), a user id or JSON document that is not
        # UTF-8 is refused rather than kept as latin-1: "adm\xefn" would be the UTF-8 "admïn".
        self._utf8_user = profile.encoding in _UTF8_ENCODINGS
        self._utf8_remote_user = self._utf8_user or not profile.encodes_remote_user

    def variable_names(self) -> set[str]:
        """Every front-end variable name this parser may read (before channel mapping)."""
        names = {REMOTE_USER, *self.profile.variables.values(), *self.profile.json_variables}
        for source in self._keys:
            names.update(self.profile.variables_for(source))
        return names

    def read_keys(self) -> set[str]:
        """Every environ key this parser reads (after channel mapping)."""
        keys = {key for source_keys in self._keys.values() for key in source_keys}
        return keys | set(self._variable_keys.values()) | set(self._json_keys)

    def series_keys(self) -> set[str]:
        """The keys whose ``<key>_0 .. <key>_N`` series this parser reads (mellon)."""
        if not self.profile.series:
            return set()
        return {keys[0] for source, keys in self._keys.items() if keys and not self._fixed(source)}

    def key_names(self) -> tuple[str, ...]:
        """The environ keys of the user and of the front-end session: short, and they tell logins apart."""
        keys = [key for source in self.user_sources for key in self._keys[source]]
        session = self._variable_keys.get("session_id")
        return (*keys, *([session] if session else []))

    def parse(self, environ: Environ, verified: Mapping[str, Any] | None = None) -> Identity | None:
        """Return the identity in ``environ``, ``None`` when there is no user.

        ``verified``: claims of a signed assertion, read before anything else.
        """
        try:
            return self._parse(environ, verified)
        except UndecodableValue as exc:
            raise self._mismatch(f"a front-end variable is {exc}") from None

    def _parse(self, environ: Environ, verified: Mapping[str, Any] | None) -> Identity | None:
        documents = self._json_documents(environ)
        if verified is not None:
            documents.insert(0, ("the verified token", verified))
        claims = self._merged(documents)
        user_source, user = self._user(environ, claims)
        if user is None:
            return None
        attributes: dict[str, tuple[str, ...]] = {}
        missing: list[str] = []
        dropped: list[str] = []
        for name, attribute, caps in self._plan:
            values = self._attribute(environ, claims, name, attribute, caps)
            if values is None:
                dropped.append(name)
            elif values:
                attributes[name] = values if attribute.multi else values[:1]
            elif attribute.required:
                missing.append(name)
        if missing:
            raise self._missing(missing, user_source)
        return Identity(
            user=user,
            attributes=attributes,
            profile=self.profile.name,
            provider=self._standard(environ, claims, "provider"),
            session_id=self._standard(environ, claims, "session_id"),
            authenticated_at=_moment(self._standard(environ, claims, "authenticated_at")),
            expires_at=_moment(self._standard(environ, claims, "expires_at")),
            dropped=tuple(dropped),
        )

    def claimed_user(self, claims: Mapping[str, Any]) -> str | None:
        """The user ``claims`` alone give through the user sources (no variable is read)."""
        return self._user({}, dict(claims))[1]

    # -- locating raw values ------------------------------------------------------------

    def _keys_for(self, source: str) -> tuple[str, ...]:
        return tuple(channel_key(v, self.channel) for v in self.profile.variables_for(source))

    def _fixed(self, source: str) -> bool:
        """True for a source the front end sends in one fixed variable: never a claim."""
        return source == REMOTE_USER or source in self.profile.source_variables

    def _claim(self, claims: dict[str, Any] | None, source: str) -> Any:
        if claims is None or self._fixed(source):
            return MISSING
        return claim_at(claims, source, nested=self._nested)

    def _raw(self, environ: Environ, claims: dict[str, Any] | None, source: str) -> Raw | None:
        claim = self._claim(claims, source)
        if claim is not MISSING:
            return _claim_values(claim)
        keys = self._keys[source]
        if self.profile.series and source != REMOTE_USER:
            series = _series(environ, keys[0])
            if series is not None:
                return series
        for key in keys:
            value = environ.get(key)
            if value is not None:
                # REMOTE_USER is one value by definition, in its front end's own encoding.
                return (self._decode_remote_user(str(value)),) if source == REMOTE_USER else str(value)
        return None

    def _json_documents(self, environ: Environ) -> list[Document]:
        """The JSON variables that arrived, read, in the profile's order."""
        return [
            (self._json_names[key], self._json_document(key, str(text)))
            for key in self._json_keys
            if (text := environ.get(key))
        ]

    def _merged(self, documents: list[Document]) -> dict[str, Any] | None:
        """One claim set from ``documents``, the first holding a claim giving it.

        The documents must name one subject: a userinfo whose ``sub`` is not the ID
        token's is not used (OpenID Connect Core 1.0, 5.3.2), so neither is the request.
        """
        if not documents:
            return None
        if len(documents) == 1:
            return dict(documents[0][1])
        labels = tuple(label for label, _ in documents)
        for name in self._subject_names:
            found = [(label, claim_at(document, name, nested=self._nested)) for label, document in documents]
            self._agree(name, found, required=self._holders(name, labels))
        claims: dict[str, Any] = {}
        for _, document in documents:
            for claim, value in document.items():
                claims.setdefault(claim, value)
        return claims

    def _holders(self, name: str, labels: tuple[str, ...]) -> tuple[str, ...]:
        """The documents among ``labels`` that must hold claim ``name`` when any of them does.

        Every OpenID Connect document names its ``sub`` (Core 1.0, 2 and 5.3.2); one that
        does not (an introspection answer) cannot vouch for a second document's subject.
        The profile's ``user_document``, set by the front end in every mode, must hold
        the user claim another document gives: that one may be a client's copy.
        """
        if name == SUBJECT[0] and self._nested:
            return labels
        if name in self.user_sources and self.profile.user_document in labels:
            return (self.profile.user_document,)
        return ()

    def _agree(self, name: str, found: list[tuple[str, Any]], *, required: tuple[str, ...] = ()) -> None:
        """Refuse when the sources in ``found`` (label, value) give ``name`` different values.

        ``required``: the labels of sources that disagree with the others by lacking ``name``.
        """
        present = [(label, value) for label, value in found if value is not MISSING]
        if not present:
            return
        first = present[0][1]
        lacking = any(value is MISSING and label in required for label, value in found)
        if lacking or any(value != first or type(value) is not type(first) for _, value in present[1:]):
            raise self._disagree(name, [label for label, _ in (found if lacking else present)])

    def _disagree(self, name: str, labels: list[str]) -> SubjectMismatchError:
        sources = " and ".join(labels)
        return SubjectMismatchError(
            "the front end passed sources that name different users; the request is refused",
            log_message=(
                f"{name!r} differs between {sources} ({self.profile.name} profile): none of "
                "them is used. Either a client sent its own copy that the front end did not "
                "overwrite (strip these headers at the proxy, see docs/front-ends.md) or the "
                "front end mixes two logins"
            ),
        )

    def _json_document(self, key: str, text: str) -> dict[str, Any]:
        """The claims in JSON variable ``key``; refused when too large, malformed or encoded."""
        name = self._json_names[key]  # as the operator knows it: the header, not its WSGI key
        if len(text) > MAX_JSON_BYTES:
            raise AttributeTooLargeError(
                f"the JSON claims in {name!r} are {len(text)} bytes, over {MAX_JSON_BYTES}",
                log_message=f"the JSON claims in {name!r} are {len(text)} bytes, over {MAX_JSON_BYTES}: "
                "have the front end pass fewer or smaller claims",
            )
        if self._json_encoding in _UTF8_ENCODINGS and not_utf8(text):
            raise InvalidClaimsError(f"{name!r} is not UTF-8 (JSON is, RFC 8259 8.1)")
        try:
            document = json.loads(self._decode_json(text))
        except RecursionError:
            raise InvalidClaimsError(
                f"the JSON claims in {name!r} are nested deeper than can be read"
            ) from None
        except ValueError as exc:
            hint = _encoding_hint(text, _is_json_object, exclude=self._json_encoding)
            if hint is not None:
                setting = "json_encoding" if self.profile.json_encoding else "encoding"
                raise self._mismatch(f"{name!r} arrives {hint}", setting) from None
            problem = exc if isinstance(exc, UndecodableValue) else "not valid JSON"
            raise InvalidClaimsError(
                f"{name!r} is {problem}: check the front end's settings for it"
            ) from None
        if not isinstance(document, dict):
            raise InvalidClaimsError(f"{name!r} is JSON but not an object of claims")
        if self.profile.json_shape == "ms-client-principal":
            return _principal_claims(name, document)
        return document

    # -- decoding and caps ----------------------------------------------------------------

    def _values(self, raw: Raw, caps: _Caps) -> tuple[str, ...] | None:
        """Decoded, split, non-empty values; ``None`` when over ``caps``."""
        if isinstance(raw, str):
            if len(raw) > caps.max_bytes:
                return None
            values = self._split(raw)
        elif sum(map(len, raw)) > caps.max_bytes:
            return None
        elif isinstance(raw, tuple):
            values = [v for v in raw if v]
        else:
            values = [v for v in map(self._decode, raw) if v]
        if len(values) > caps.max_values:
            return None
        return tuple(values)

    def _split(self, raw: str) -> list[str]:
        if self._quoted_lists:
            return split_quoted(self._decode(raw))
        delimiter, escapes = self.profile.delimiter, self.profile.backslash_escapes
        if self._split_first:
            parts = split_values(raw, delimiter, backslash_escapes=escapes)
            return [value for value in map(self._decode, parts) if value]
        return split_values(self._decode(raw), delimiter, backslash_escapes=escapes)

    def _attribute(
        self,
        environ: Environ,
        claims: dict[str, Any] | None,
        name: str,
        attribute: Attribute,
        caps: _Caps,
    ) -> tuple[str, ...] | None:
        """Values of one mapped attribute; ``None`` when dropped for size."""
        raw = self._raw(environ, claims, attribute.source)
        if raw is None:
            return ()
        values = self._values(raw, caps)
        if values is not None:
            return values
        size = len(raw) if isinstance(raw, str) else sum(map(len, raw))
        message = (
            f"attribute {name!r} (source {attribute.source!r}) is {size} bytes, over its cap of "
            f"{caps.max_bytes} bytes or {caps.max_values} values"
        )
        if attribute.required:
            raise AttributeTooLargeError(
                f"{message}: it is required, so the request is refused",
                log_message=f"{message}: it is required, so the request is refused. Raise the cap or "
                "have the identity provider release fewer values.",
            )
        # Once per attribute at WARNING: in the whole-site style it recurs on every request.
        level = logging.DEBUG if name in self._warned_dropped else logging.WARNING
        self._warned_dropped.add(name)
        log.log(level, "%s: dropped (it is not required, the login goes on)", message)
        return None

    # -- user and standard fields --------------------------------------------------------

    def _user(self, environ: Environ, claims: dict[str, Any] | None) -> tuple[str, str | None]:
        for source in self.user_sources:
            user = self._user_value(environ, claims, source)
            if not user:
                continue
            problem = user_id_problem(user)
            if problem is not None:
                raise InvalidUserError(f"the user attribute {source!r} {problem}")
            return source, user
        return "", None

    def _user_value(self, environ: Environ, claims: dict[str, Any] | None, source: str) -> str | None:
        """The user id ``source`` gives, exactly as the front end sent it; ``None`` when absent.

        A claim present both in the JSON and as a variable must be the same in both (an
        empty variable too).
        """
        what = f"the user attribute {source!r}"
        claim = self._claim(claims, source)
        if claim is MISSING:
            return self._user_variable(environ, source, what, verbatim=False)
        user = self._user_claim(claim, what)
        # The JSON says it is one string: its variable copy is compared whole, never split.
        text = self._user_variable(environ, source, what, verbatim=True)
        if text is not None and not self._same_text(user, text):
            raise self._disagree(source, ["the JSON claims", "its claim variable"])
        return user

    def _user_variable(self, environ: Environ, source: str, what: str, *, verbatim: bool) -> str | None:
        """The user id in ``source``'s variables, decoded but never taken out of a list.

        A fixed variable (``REMOTE_USER``, ``X-Vouch-User``, Azure's principal headers)
        holds one value whatever it contains. Any other variable may hold a list the
        front end joined: list syntax there is refused, never parsed (unless ``verbatim``).
        The variables that carry ``source`` (several prefixes, a series) must agree: one
        that is present but empty disagrees with one that is not (a client's copy next to
        a header the front end emptied must not name the user).
        """
        found: list[tuple[str, str]] = []
        for key in self._keys[source]:
            value = environ.get(key)
            if value is not None:
                found.append((key, self._one_user(source, str(value), what, verbatim=verbatim)))
        if self.profile.series and not self._fixed(source):
            series = _series(environ, self._keys[source][0])
            if series is not None:
                if len(series) > 1:  # even with empty members: never cut down to the non-empty one
                    raise self._several(what, f"a series of {len(series)} values")
                self._check_utf8(source, series[0], what)
                found.insert(0, (self._keys[source][0] + "_0 ..", self._decode(series[0])))
        if not found:
            return None
        self._agree(source, found)
        return found[0][1]

    def _one_user(self, source: str, raw: str, what: str, *, verbatim: bool) -> str:
        if len(raw) > 4 * MAX_USER_LENGTH:  # base64url and percent-escapes grow text
            raise InvalidUserError(f"{what} is longer than {MAX_USER_LENGTH} characters")
        self._check_utf8(source, raw, what)
        if source == REMOTE_USER:
            return self._decode_remote_user(raw)
        if verbatim or self._fixed(source):
            return self._decode(raw)
        values = self._split(raw)  # at most one value, unescaped, unless it is a list
        if self._is_list(raw):
            if values:
                raise self._several(what, "a list")
            return ""  # only delimiters: no value at all
        return values[0] if values else ""

    def _check_utf8(self, source: str, raw: str, what: str) -> None:
        """Refuse a user id whose bytes are not UTF-8 where its front end sends UTF-8."""
        if (self._utf8_remote_user if source == REMOTE_USER else self._utf8_user) and not_utf8(raw):
            raise InvalidUserError(
                f"{what} contains undecodable characters",
                log_message=f"{what} is not UTF-8: refused rather than read as latin-1, where "
                "other bytes spell the same user id",
            )

    def _is_list(self, raw: str) -> bool:
        """True when ``raw`` has the form of values joined by the front end, even of one.

        Such a value is never cut down to its non-empty part (``admin;``, vouch's
        ``"admin","``): the front end did not send that user.
        """
        if self._quoted_lists:  # vouch: an array claim is "a","b" (one element: "a")
            return len(raw) >= 2 and raw[0] == raw[-1] == '"'
        text = raw if self._split_first else self._decode(raw)
        return is_joined(text, self.profile.delimiter, backslash_escapes=self.profile.backslash_escapes)

    def _user_claim(self, value: Any, what: str) -> str:
        """A JSON claim as a user id: one string, never a number, object or list turned into text."""
        if isinstance(value, list) and len(value) > 1:
            raise self._several(what, f"{len(value)} values")
        if not self._nested and isinstance(value, list):  # Azure: each claim type is a list
            value = value[0] if value else ""
        if not isinstance(value, str):
            kind = _JSON_KINDS.get(type(value), "value")
            raise InvalidUserError(
                f"{what} is a JSON {kind}, not a string",
                log_message=f"{what} is a JSON {kind}, not a string: refused rather than used as text. "
                "Map the user to a claim holding one string (sub, email, preferred_username)",
            )
        return without_surrogates(value)

    def _same_text(self, claim: str, text: str) -> bool:
        """True when variable ``text`` is how the front end passes ``claim``."""
        if claim == text:
            return True
        # mod_auth_openidc's latin1 mode turns what latin-1 cannot hold into "?".
        return (
            self.profile.encoding == "latin-1"
            and claim.encode("latin-1", "replace").decode("latin-1") == text
        )

    def _one_value(self, raw: list[str] | tuple[str, ...], *, what: str) -> str:
        """The single value ``raw`` holds, decoded; ``InvalidUserError`` when it holds several.

        Several values are never cut down to the first: whoever chose the order would
        choose the user.
        """
        values = [value for value in (raw if isinstance(raw, tuple) else map(self._decode, raw)) if value]
        if len(values) > 1:
            raise self._several(what, f"{len(values)} values")
        return values[0] if values else ""

    def _several(self, what: str, form: str) -> InvalidUserError:
        return InvalidUserError(
            f"{what} holds {form}, and it must be one value",
            log_message=(
                f"{what} holds {form}: refused rather than picking one. Map it to a "
                "single-valued attribute (eppn, sub, ...) or have the front end pass one value"
            ),
        )

    def _standard(self, environ: Environ, claims: dict[str, Any] | None, field: str) -> str | None:
        key = self._variable_keys.get(field)
        if key is not None:
            value = environ.get(key)
            if value:
                return self._checked_standard(field, key, str(value))
        source = self.profile.claims.get(field)
        if source is not None:
            raw = self._raw(environ, claims, source)
            if raw is not None:
                if isinstance(raw, str):
                    return self._checked_standard(field, source, raw) or None
                return self._one_value(raw, what=f"the {field} claim {source!r}") or None
        return None

    def _checked_standard(self, field: str, name: str, raw: str) -> str:
        """A standard field's decoded text; a value still encoded is an encoding mismatch."""
        value = self._decode(raw)
        well_formed = _STANDARD_FORMS.get(field)
        if well_formed is not None and value and not well_formed(value):
            hint = _encoding_hint(raw, well_formed, exclude=self.profile.encoding)
            if hint is not None:
                raise self._mismatch(f"{name!r} arrives {hint}")
        return value

    def _mismatch(self, what: str, setting: str = "encoding") -> EncodingMismatchError:
        configured = self._json_encoding if setting == "json_encoding" else self.profile.encoding
        advice = (
            "Make the profile's json_encoding match the front end "
            "(dataclasses.replace(profile, json_encoding=...))"
            if setting == "json_encoding"
            else "Make SHIBWSGI_ENCODING (encoding=) match the front end: mod_auth_openidc "
            "OIDCPassClaimsAs ... latin1 -> 'latin-1', base64url -> 'base64url', none -> "
            "'utf-8'; Shibboleth 'encoding URL' -> 'url'"
        )
        return EncodingMismatchError(
            f"the front end's encoding does not match shibwsgi's ({setting}={configured!r}): {what}",
            log_message=(
                f"{what}, but this profile ({self.profile.name}) is configured for "
                f"{setting}={configured!r}: no identity is built from still-encoded text. {advice}"
            ),
        )

    def _missing(self, names: list[str], user_source: str) -> MissingAttributeError:
        sources = ", ".join(f"{name!r} (source {self.attributes[name].source!r})" for name in names)
        where = (
            "the server environment (is the location protected by the front end and, for "
            "Shibboleth, ShibUseEnvironment on?)"
            if self.channel == "environ"
            else "the trusted proxy's headers (does the proxy set them on every request?)"
        )
        missing = f"required attribute(s) {sources} missing for a user identified by {user_source!r}"
        return MissingAttributeError(
            f"{missing}: your identity provider did not release them to this site",
            log_message=f"{missing}: check that the identity provider releases them, that the front end "
            f"maps them (attribute map, claim names, profile prefix) and that they reach the application "
            f"through {where}",
        )


def _series(environ: Environ, base_key: str) -> list[str] | None:
    """mod_auth_mellon's ``<name>_0 .. <name>_N`` values, ``None`` when absent.

    ``<name>_N`` (``MellonEnvVarsSetCount On``), when sent, must count them: a gap
    or a value added after the last would otherwise go unseen.
    """
    first = environ.get(base_key + "_0")
    if first is None:
        return None
    values = [str(first)]
    index = 1
    while (value := environ.get(f"{base_key}_{index}")) is not None:
        values.append(str(value))
        index += 1
    count = environ.get(base_key + "_N")
    if count is not None and str(count) != str(len(values)):
        raise InvalidClaimsError(
            f"{base_key}_N does not match the number of {base_key}_<n> values: one is missing "
            "or was added after the last"
        )
    return values


def _principal_claims(name: str, principal: dict[str, Any]) -> dict[str, Any]:
    """Azure App Service's ``{"claims": [{"typ", "val"}]}`` as claims: repeated types form a list."""
    entries = principal.get("claims")
    if not isinstance(entries, list):
        raise InvalidClaimsError(f"{name!r} has no claims list: it is not an App Service client principal")
    claims: dict[str, list[Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("typ"), str) or "val" not in entry:
            raise InvalidClaimsError(f"{name!r} has a claim that is not {{typ, val}}")
        if isinstance(entry["val"], (dict, list)):
            raise InvalidClaimsError(f"{name!r} has a structured claim value, not a string")
        claims.setdefault(entry["typ"], []).append(entry["val"])
    return claims


def _claim_values(value: Any) -> tuple[str, ...]:
    """A JSON claim as strings (lists stay apart, losslessly; nested values as JSON text).

    Lone surrogates (from ``\\ud800`` escapes) become U+FFFD: nothing in an Identity
    may be unencodable.
    """
    items = value if isinstance(value, list) else [value]
    return tuple(
        without_surrogates(item) if isinstance(item, str) else _nested_json(item)
        for item in items
        if item is not None
    )


def _nested_json(value: Any) -> str:
    if not _within_depth(value, MAX_JSON_DEPTH):
        raise InvalidClaimsError(f"a claim is nested deeper than {MAX_JSON_DEPTH} levels")
    return without_surrogates(json.dumps(value, ensure_ascii=False))


def _within_depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests containers at most ``limit`` deep (iteratively: no recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return False
                pending.append((child, depth + 1))
    return True


#: Encodings whose bytes are UTF-8 (URL-encoding keeps unescaped bytes as they are).
_UTF8_ENCODINGS = ("utf-8", "url")

#: How a user id that is not a string is named in errors.
_JSON_KINDS = {
    dict: "object",
    list: "list",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _is_moment(text: str) -> bool:
    return _parsed_moment(text) is not None


#: What a standard field's decoded value looks like; anything else may still be encoded.
_STANDARD_FORMS = {
    "provider": lambda text: ":" in text,  # an https URL or a URN (SAML entityID)
    "authenticated_at": _is_moment,
    "expires_at": _is_moment,
}


def _encoding_hint(raw: str, well_formed: Callable[[str], bool], *, exclude: str) -> str | None:
    """How ``raw`` arrives (``"base64url-encoded"``, ...) when only another decoding makes it
    ``well_formed``; ``None`` when no other decoding helps."""
    for label, encoding in _OTHER_ENCODINGS:
        if encoding == exclude or (label == "unencoded" and exclude in ("utf-8", "latin-1")):
            continue
        try:
            decoded = decoder(encoding)(raw)
        except UndecodableValue:
            continue
        if (decoded != raw or label == "unencoded") and well_formed(decoded):
            return label
    return None


_OTHER_ENCODINGS = (("base64url-encoded", "base64url"), ("URL-encoded", "url"), ("unencoded", "utf-8"))


def _moment(text: str | None) -> datetime | None:
    """Parse epoch seconds or ISO 8601; ``None`` (logged) when neither."""
    if not text:
        return None
    moment = _parsed_moment(text)
    if moment is None:
        log.warning("ignoring a timestamp that is neither epoch seconds nor ISO 8601")
    return moment


@lru_cache(maxsize=1024)
def _parsed_moment(text: str) -> datetime | None:
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), tz=UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
