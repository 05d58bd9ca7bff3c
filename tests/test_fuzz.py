"""Fuzz at scale: 100,000+ structured hostile environs against an independent reference parser.

Each environ uses the real variable names of one profile with hostile values
(non-UTF-8 bytes, NULs, 1 MB values, lone surrogates, nested JSON, base64url
garbage, delimiters and escapes). The middleware runs with sessions and rules on.
Every answer must be what the reference parser below says: the same identity
(user, attributes, dropped) on 200, the same refusal otherwise, never a 500.

The reference is written from the documented rules (README "Profiles",
"Decoding", "What may enter an Identity"), as plainly as possible, and shares
no code with shibwsgi's parser.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest

from shibwsgi import Attribute, Identity, SSOMiddleware
from shibwsgi.authz import LoggedIn, Rule
from shibwsgi.sessions import MemoryStore
from tests.helpers import mojibake

ENVIRONS = 100_000
SEED = 20261129
SECRET = "fuzz-0123456789abcdef"
TRUSTED_PROXY = "127.0.0.1"
MAX_BYTES = 65535
MAX_VALUES = 10_000


class Refused(Exception):
    """The reference refuses the request with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status


# -- the reference parser --------------------------------------------------------------


def ref_decode(encoding: str, text: str) -> str:
    if encoding == "base64":
        padded = text.strip() + "=" * (-len(text.strip()) % 4)
        if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", padded):
            raise Refused(400)
        try:
            return base64.b64decode(padded).decode("utf-8")
        except ValueError:
            raise Refused(400) from None
    if encoding == "base64url":
        body = text.strip()
        if len(body) % 4 == 1 or re.search(r"[^A-Za-z0-9_-]", body):
            raise Refused(400)
        try:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
        except ValueError:
            raise Refused(400) from None
    if encoding == "url" and "%" in text:
        if re.search(r"%(?![0-9A-Fa-f]{2})", text):
            raise Refused(400)
        try:
            return unquote_to_bytes(text).decode("utf-8")
        except (UnicodeError, ValueError):
            raise Refused(400) from None
    if encoding in ("utf-8", "url"):
        try:
            return text.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    return no_surrogates(text)


def not_utf8(text: str) -> bool:
    """True for bytes (as PEP 3333 latin-1 text) that are not UTF-8."""
    try:
        text.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        return False
    except UnicodeDecodeError:
        return True
    return False


SURROGATE = re.compile("[\ud800-\udfff]")


def no_surrogates(text: str) -> str:
    return SURROGATE.sub("\ufffd", text)


def ref_split(text: str, delimiter: str | None, escapes: bool) -> list[str]:
    """Split on ``delimiter``, gluing back pieces cut after a backslash; drop empties."""
    if delimiter is None:
        return [text] if text else []
    pieces = text.split(delimiter)
    values, current = [], pieces[0]
    for piece in pieces[1:]:
        if escapes and current.endswith("\\"):
            current = current[:-1] + delimiter + piece
        else:
            values.append(current)
            current = piece
    values.append(current)
    return [value for value in values if value]


def principal_claims(document: dict[str, Any]) -> dict[str, list[Any]]:
    """An App Service client principal's claims, a type given several times as a list."""
    entries = document.get("claims")
    if not isinstance(entries, list):
        raise Refused(400)
    claims: dict[str, list[Any]] = {}
    for entry in entries:
        well_formed = isinstance(entry, dict) and isinstance(entry.get("typ"), str) and "val" in entry
        if not well_formed or isinstance(entry["val"], (dict, list)):
            raise Refused(400)
        claims.setdefault(entry["typ"], []).append(entry["val"])
    return claims


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


@dataclass
class RefProfile:
    """What the reference knows of one front end (from the README's profile table)."""

    name: str
    prefixes: tuple[str, ...]
    delimiter: str | None
    escapes: bool
    encoding: str
    user: tuple[str, ...]
    series: bool = False
    header_case: bool = False
    json_variables: tuple[str, ...] = ()
    encodes_remote_user: bool = False
    channel: str = "environ"
    json_encoding: str | None = None
    quoted: bool = False  # vouch-proxy: "a","b" is a list, a bare value is one value
    principal: bool = False  # App Service: {"claims": [{"typ", "val"}]}
    source_variables: dict[str, str] = field(default_factory=dict)

    def keys(self, source: str) -> list[str]:
        if source == "REMOTE_USER":
            return ["REMOTE_USER"]
        name = source.title() if self.header_case else source
        names = [prefix + name for prefix in self.prefixes]
        if source in self.source_variables:
            names = [self.source_variables[source]]
        if self.channel == "headers":
            return ["HTTP_" + n.upper().replace("-", "_") for n in names]
        return names


@dataclass
class RefParser:
    profile: RefProfile
    attributes: dict[str, Attribute] = field(default_factory=dict)

    def parse(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        if self.profile.channel == "headers" and environ.get("REMOTE_ADDR") != TRUSTED_PROXY:
            return None
        claims = self.claims(environ)
        user = self.user(environ, claims)
        if user is None:
            return None
        attributes: dict[str, list[str]] = {}
        dropped, missing = [], []
        for name, attribute in self.attributes.items():
            values = self.attribute(environ, claims, attribute)
            if values is None:
                dropped.append(name)
            elif values:
                attributes[name] = values if attribute.multi else values[:1]
            elif attribute.required:
                missing.append(name)
        if missing:
            raise Refused(403)
        return {"user": user, "attributes": attributes, "dropped": dropped}

    def fixed(self, source: str) -> bool:
        return source == "REMOTE_USER" or source in self.profile.source_variables

    def claims(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        documents: list[dict[str, Any]] = []
        for key in self.profile.json_variables:
            text = environ.get(key)
            if not text:
                continue
            if len(text) > 256 * 1024:
                raise Refused(431)
            encoding = self.profile.json_encoding or self.profile.encoding
            if encoding in ("utf-8", "url") and not_utf8(text):
                raise Refused(400)
            try:
                document = json.loads(ref_decode(encoding, text))
            except (ValueError, RecursionError):
                raise Refused(400) from None
            if not isinstance(document, dict):
                raise Refused(400)
            if self.profile.principal:
                document = principal_claims(document)
            documents.append(document)
        # Every document naming the subject (or the user claim) must name the same one.
        subjects = {*([] if self.profile.principal else ["sub", "iss"]), *self.profile.user}
        for name in (name for name in subjects if not self.fixed(name)):
            named = [document[name] for document in documents if name in document]
            if any(value != named[0] for value in named):
                raise Refused(400)
        merged: dict[str, Any] = {}
        for document in documents:
            for claim, value in document.items():
                merged.setdefault(claim, value)
        return merged or None

    def raw(self, environ: dict[str, Any], claims: dict[str, Any] | None, source: str) -> Any:
        if claims is not None and source in claims and not self.fixed(source):
            value = claims[source]
            items = value if isinstance(value, list) else [value]
            result = []
            for item in items:
                if item is None:
                    continue
                if isinstance(item, str):
                    result.append(no_surrogates(item))
                elif depth(item) > 32:
                    raise Refused(400)
                else:
                    result.append(no_surrogates(json.dumps(item, ensure_ascii=False)))
            return ("decoded", result)
        keys = self.profile.keys(source)
        if self.profile.series and source != "REMOTE_USER" and keys[0] + "_0" in environ:
            series, index = [], 0
            while keys[0] + f"_{index}" in environ:
                series.append(environ[keys[0] + f"_{index}"])
                index += 1
            return ("series", series)
        for key in keys:
            if key in environ:
                if source == "REMOTE_USER":
                    encoding = self.profile.encoding if self.profile.encodes_remote_user else "utf-8"
                    return ("decoded", [ref_decode(encoding, environ[key])])
                return ("joined", environ[key])
        return None

    def values(self, kind: str, raw: Any) -> list[str]:
        profile = self.profile
        if kind == "decoded":
            return [value for value in raw if value]
        if kind == "series":
            return [value for value in (ref_decode(profile.encoding, item) for item in raw) if value]
        if profile.quoted:
            text = ref_decode(profile.encoding, raw)
            quoted = len(text) >= 2 and text[0] == '"' and text[-1] == '"'
            return [value for value in (text[1:-1].split('","') if quoted else [text]) if value]
        if profile.encoding == "url":
            parts = ref_split(raw, profile.delimiter, profile.escapes)
            return [value for value in (ref_decode("url", part) for part in parts) if value]
        return ref_split(ref_decode(profile.encoding, raw), profile.delimiter, profile.escapes)

    def user_text(self, source: str, raw: str, *, whole: bool) -> str:
        """One variable's user id: never split; a list the front end joined is refused."""
        profile = self.profile
        if len(raw) > 4096:
            raise Refused(400)
        encoding = profile.encoding if source != "REMOTE_USER" or profile.encodes_remote_user else "utf-8"
        if encoding in ("utf-8", "url") and not_utf8(raw):
            raise Refused(400)  # a user id is never read as latin-1
        if source == "REMOTE_USER":
            return ref_decode(encoding, raw)
        text = ref_decode(profile.encoding, raw)
        if whole or self.fixed(source):
            return text
        if profile.quoted:
            joined = len(raw) >= 2 and raw[0] == raw[-1] == '"'
        else:
            pieces = (raw if profile.encoding == "url" else text).split(profile.delimiter or "\0")
            # Shibboleth's "\;" is a ";" inside a value, not a separator.
            joined = profile.delimiter is not None and any(
                not (profile.escapes and piece.endswith("\\")) for piece in pieces[:-1]
            )
        values = self.values("joined", raw)  # one value at most (unescaped) unless joined
        if joined and values:
            raise Refused(400)
        return "" if joined or not values else values[0]

    def user(self, environ: dict[str, Any], claims: dict[str, Any] | None) -> str | None:
        for source in self.profile.user:
            claimed = claims is not None and source in claims and not self.fixed(source)
            texts = [
                self.user_text(source, environ[key], whole=claimed)
                for key in self.profile.keys(source)
                if key in environ
            ]
            # An empty variable is a value too: it disagrees with one naming a user.
            if any(text != texts[0] for text in texts):
                raise Refused(400)
            if claimed:
                assert claims is not None
                value = claims[source]
                if self.profile.principal:
                    if len(value) > 1:
                        raise Refused(400)
                    value = value[0]
                if not isinstance(value, str):
                    raise Refused(400)
                user = no_surrogates(value)
                lossy = user.encode("latin-1", "replace").decode("latin-1")
                if texts and texts[0] not in (user, lossy if self.profile.encoding == "latin-1" else user):
                    raise Refused(400)
            else:
                user = texts[0] if texts else ""
            if not user:
                continue
            if len(user) > 1024 or not user.isprintable() or "\ufffd" in user or user != user.strip():
                raise Refused(400)
            return user
        return None

    def attribute(
        self, environ: dict[str, Any], claims: dict[str, Any] | None, attribute: Attribute
    ) -> list[str] | None:
        found = self.raw(environ, claims, attribute.source)
        if found is None:
            return []
        kind, raw = found
        max_bytes = attribute.max_bytes or MAX_BYTES
        size = len(raw) if kind == "joined" else sum(len(item) for item in raw)
        values = None if size > max_bytes else self.values(kind, raw)
        if values is not None and len(values) > (attribute.max_values or MAX_VALUES):
            values = None
        if values is None and attribute.required:
            raise Refused(431)
        return values


# -- hostile values -----------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


class Hostile:
    """Values a front end, a broken front end or an attacker could put in a variable."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.megabyte = "x" * 1_000_000
        self.groups = ";".join(f"cn=group-{n},ou=groups" for n in range(2000))
        self.texts = [
            "",
            " ",
            "alice@example.org",
            "bob",
            mojibake("Zoë Łukasz-Müller 山田"),
            "a;b;c",
            "a\\;b;c",
            "a\\\\;b",
            "x\\",
            "a,b, c",
            ";;;",
            ",,",
            "|",
            "nul\x00in",
            "\r\nSet-Cookie: x",
            "\x1b[31mred",
            "caf\xe9",
            "\xff\xfe\x80",
            "Al\ud800ice",
            "日本",
            "%zz",
            "%C3%A9t%C3%A9",
            "%FF",
            "100%",
            "!!!",
            "YWRtaW4",
            b64("Zoë;x"),
            "[[[[",
            "{",
            '"g1","g,2"',
            '"',
            "9" * 2000,
            "é" * 3000,
        ]

    def text(self) -> str:
        roll = self.rng.random()
        if roll < 0.004:
            return self.megabyte
        if roll < 0.01:
            return self.groups[: self.rng.randrange(1, len(self.groups))]
        if roll < 0.4:
            return self.rng.choice(self.texts)
        pieces = [self.rng.choice(self.texts) for _ in range(self.rng.randrange(1, 4))]
        return self.rng.choice([";", ",", "|", ""]).join(pieces)

    def encoded(self, encoding: str) -> str:
        """A value as the front end itself would send it (or, sometimes, not)."""
        text = self.text()
        if self.rng.random() < 0.5:
            return text
        if encoding == "base64url":
            return b64(text)
        return text.encode("utf-8", "surrogatepass").decode("latin-1")  # as a PEP 3333 server hands it over

    def principal(self) -> str:
        """An X-MS-CLIENT-PRINCIPAL: base64 JSON of {auth_typ, claims: [{typ, val}]}, or not quite."""
        entries: list[Any] = [
            {
                "typ": self.rng.choice(["groups", "email", "name"]),
                "val": self.rng.choice([self.text(), 7, None]),
            }
            for _ in range(self.rng.randrange(0, 5))
        ]
        roll = self.rng.random()
        if roll < 0.05:
            entries.append(
                self.rng.choice([{"val": "x"}, {"typ": 1, "val": "x"}, "x", {"typ": "groups", "val": ["x"]}])
            )
        document: Any = {"auth_typ": "aad", "claims": entries}
        if 0.05 <= roll < 0.08:
            document = self.rng.choice([{"auth_typ": "aad"}, {"claims": "x"}, [entries], "x"])
        text = json.dumps(document, ensure_ascii=False)
        if self.rng.random() < 0.9:
            return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
        return text

    def document(self, encoding: str) -> str:
        """A JSON claims variable."""
        roll = self.rng.random()
        claims: dict[str, Any] = {
            "sub": self.rng.choice(["sub-1", "sub-2", "", ["one"], ["a", "b"], None, 7, "Al\ud800ice"]),
            "groups": self.rng.choice([["g1", "g2"], "g1,g2", [], ["a", ["nested"]], [{"k": "v"}], None]),
            "name": self.rng.choice(["Zoë", "Al\ud800ice", "", ["x", "y"], json.loads("[" * 40 + "]" * 40)]),
            "iss": "https://idp.example.org",
            "sid": "s-1",
        }
        if roll < 0.05:
            text = "[" * self.rng.choice([100, 1000, 100_000]) + "]" * self.rng.choice([0, 100, 1000])
        elif roll < 0.08:
            text = self.rng.choice(["[]", "null", "1", '"str"', "{not json", '{"sub": 1' + "0" * 5000 + "}"])
        elif roll < 0.09:
            text = json.dumps({**claims, "big": "x" * 300_000})
        else:
            text = json.dumps(claims)
        if encoding in ("base64url", "base64") and self.rng.random() < 0.85:
            if encoding == "base64":  # standard alphabet, padded (kong-oidc, App Service)
                return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
            return b64(text)
        if encoding not in ("base64url", "base64") and self.rng.random() < 0.05:
            return b64(text)  # the front end encodes, the app is not told
        return text


# -- the scenarios ------------------------------------------------------------------------


@dataclass
class Scenario:
    options: dict[str, Any]
    reference: RefProfile
    variables: Callable[[Hostile, random.Random], dict[str, Any]]


def shibboleth_like(prefix: str, user: str, groups: str, email: str) -> Callable[..., dict[str, Any]]:
    def variables(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
        environ: dict[str, Any] = {}
        for key in (prefix + user, "REMOTE_USER", prefix + groups, prefix + email):
            if rng.random() < 0.7:
                environ[key] = hostile.encoded("utf-8")
        if rng.random() < 0.5:
            environ["Shib-Session-ID"] = f"_{rng.randrange(16**8):08x}"
            environ["Shib-Identity-Provider"] = "https://idp.example.org/idp/shibboleth"
            environ["Shib-Session-Expires"] = str(1_900_000_000 + rng.randrange(1000))
        return environ

    return variables


def openidc(hostile: Hostile, rng: random.Random, encoding: str) -> dict[str, Any]:
    environ: dict[str, Any] = {}
    for claim in ("sub", "groups", "email"):
        if rng.random() < 0.6:
            environ["OIDC_CLAIM_" + claim] = hostile.encoded(encoding)
    for key in ("OIDC_id_token_payload", "OIDC_userinfo_json"):
        if rng.random() < 0.4:
            environ[key] = hostile.document(encoding)
    if rng.random() < 0.3:
        environ["REMOTE_USER"] = hostile.encoded("utf-8")
    return environ


def mellon(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
    environ: dict[str, Any] = {}
    if rng.random() < 0.8:
        environ["REMOTE_USER"] = hostile.encoded("utf-8")
    for name in ("groups", "mail"):
        if rng.random() < 0.5:
            for index in range(rng.randrange(1, 4)):
                environ[f"MELLON_{name}_{index}"] = hostile.encoded("utf-8")
        elif rng.random() < 0.5:
            environ[f"MELLON_{name}"] = hostile.encoded("utf-8")
    return environ


def oauth2_proxy(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
    environ: dict[str, Any] = {"REMOTE_ADDR": TRUSTED_PROXY if rng.random() < 0.8 else "203.0.113.9"}
    for header in ("USER", "GROUPS", "EMAIL"):
        for prefix in ("HTTP_X_FORWARDED_", "HTTP_X_AUTH_REQUEST_"):
            if rng.random() < 0.5:
                environ[prefix + header] = hostile.encoded("utf-8")
    return environ


def header_front_end(*keys: str) -> Callable[..., dict[str, Any]]:
    """A proxy's identity headers (authelia, authentik), from it or from another peer."""

    def variables(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
        environ: dict[str, Any] = {"REMOTE_ADDR": TRUSTED_PROXY if rng.random() < 0.8 else "203.0.113.9"}
        environ.update((key, hostile.encoded("utf-8")) for key in keys if rng.random() < 0.6)
        return environ

    return variables


def kong_oidc(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
    environ: dict[str, Any] = {"REMOTE_ADDR": TRUSTED_PROXY if rng.random() < 0.8 else "203.0.113.9"}
    for key, chance in (("HTTP_X_USERINFO", 0.7), ("HTTP_X_ID_TOKEN", 0.4)):
        if rng.random() < chance:
            environ[key] = hostile.document("base64")
    return environ


def azure_easy_auth(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
    environ = header_front_end("HTTP_X_MS_CLIENT_PRINCIPAL_NAME")(hostile, rng)
    if rng.random() < 0.7:
        environ["HTTP_X_MS_CLIENT_PRINCIPAL"] = hostile.principal()
    return environ


def remote_user(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
    return {"REMOTE_USER": hostile.encoded("utf-8")} if rng.random() < 0.9 else {}


def lookalikes(hostile: Hostile, rng: random.Random) -> dict[str, Any]:
    """Client headers that pass for identity variables: never believed in the environ channel."""
    keys = [
        "HTTP_EPPN",
        "HTTP_REMOTE_USER",
        "HTTP_OIDC_CLAIM_SUB",
        "HTTP_MELLON_UID",
        "HTTP_X_FORWARDED_USER",
    ]
    return {key: hostile.text() for key in rng.sample(keys, rng.randrange(0, 3))}


SHIB = RefProfile("shibboleth", ("",), ";", True, "utf-8", ("eppn", "REMOTE_USER"), encodes_remote_user=True)
OIDC_JSON = ("OIDC_userinfo_json", "OIDC_id_token_payload")


def scenarios() -> list[Scenario]:
    groups = {"groups": Attribute("isMemberOf", multi=True), "email": Attribute("mail", required=True)}
    capped = {"groups": Attribute("isMemberOf", multi=True, max_bytes=200, max_values=3), "email": "mail"}
    oidc_attributes = {"groups": Attribute("groups", multi=True), "email": "email"}
    result = [
        Scenario({"attributes": groups}, SHIB, shibboleth_like("", "eppn", "isMemberOf", "mail")),
        Scenario({"attributes": capped}, SHIB, shibboleth_like("", "eppn", "isMemberOf", "mail")),
        Scenario(
            {"profile": "adfs", "attributes": {"groups": Attribute("GROUP", multi=True), "email": "EMAIL"}},
            RefProfile("adfs", ("ADFS_",), ";", True, "utf-8", ("LOGIN",), encodes_remote_user=True),
            shibboleth_like("ADFS_", "LOGIN", "GROUP", "EMAIL"),
        ),
        Scenario(
            {"profile": "mellon", "attributes": {"groups": Attribute("groups", multi=True), "email": "mail"}},
            RefProfile("mellon", ("MELLON_",), ";", False, "utf-8", ("REMOTE_USER",), series=True),
            mellon,
        ),
        Scenario(
            {
                "profile": "oauth2-proxy",
                "channel": "headers",
                "trusted_proxies": [TRUSTED_PROXY],
                "attributes": oidc_attributes,
            },
            RefProfile(
                "oauth2-proxy",
                ("X-Forwarded-", "X-Auth-Request-"),
                ",",
                False,
                "utf-8",
                ("user",),
                header_case=True,
                channel="headers",
            ),
            oauth2_proxy,
        ),
        Scenario({"profile": "remote-user"}, RefProfile("remote-user", ("",), None, False, "utf-8", ("REMOTE_USER",)), remote_user),
        Scenario(
            {"profile": "authelia", "trusted_proxies": [TRUSTED_PROXY], "attributes": oidc_attributes},
            RefProfile("authelia", ("Remote-",), ",", False, "utf-8", ("user",), header_case=True, channel="headers"),
            header_front_end("HTTP_REMOTE_USER", "HTTP_REMOTE_GROUPS", "HTTP_REMOTE_EMAIL"),
        ),
        Scenario(
            {"profile": "authentik", "trusted_proxies": [TRUSTED_PROXY], "attributes": oidc_attributes},
            RefProfile("authentik", ("X-authentik-",), "|", False, "utf-8", ("username",), channel="headers"),
            header_front_end("HTTP_X_AUTHENTIK_USERNAME", "HTTP_X_AUTHENTIK_GROUPS", "HTTP_X_AUTHENTIK_EMAIL"),
        ),
        Scenario(
            {"profile": "vouch", "trusted_proxies": [TRUSTED_PROXY], "attributes": oidc_attributes},
            RefProfile(
                "vouch", ("X-Vouch-IdP-Claims-",), ",", False, "utf-8", ("user",), header_case=True,
                channel="headers", quoted=True, source_variables={"user": "X-Vouch-User"},
            ),
            header_front_end("HTTP_X_VOUCH_USER", "HTTP_X_VOUCH_IDP_CLAIMS_GROUPS", "HTTP_X_VOUCH_IDP_CLAIMS_EMAIL"),
        ),
        Scenario(
            {"profile": "kong-oidc", "trusted_proxies": [TRUSTED_PROXY], "attributes": oidc_attributes},
            RefProfile(
                "kong-oidc", (), None, False, "utf-8", ("sub",), channel="headers", json_encoding="base64",
                json_variables=("HTTP_X_USERINFO", "HTTP_X_ID_TOKEN"),
            ),
            kong_oidc,
        ),
        Scenario(
            {"profile": "azure-easy-auth", "trusted_proxies": [TRUSTED_PROXY], "attributes": oidc_attributes},
            RefProfile(
                "azure-easy-auth", (), None, False, "utf-8", ("principal-name",), channel="headers",
                json_encoding="base64", json_variables=("HTTP_X_MS_CLIENT_PRINCIPAL",), principal=True,
                source_variables={"principal-name": "X-MS-CLIENT-PRINCIPAL-NAME"},
            ),
            azure_easy_auth,
        ),
    ]  # fmt: skip
    for encoding in ("latin-1", "utf-8", "base64url"):
        result.append(
            Scenario(
                {"profile": "openidc", "encoding": encoding, "attributes": oidc_attributes},
                RefProfile(
                    "openidc", ("OIDC_CLAIM_",), ",", False, encoding, ("sub",), json_variables=OIDC_JSON
                ),
                lambda hostile, rng, encoding=encoding: openidc(hostile, rng, encoding),
            )
        )
    return result


class CapturingApp:
    """A WSGI app that keeps the identity it was handed (JSON-encoding it would dominate the run)."""

    def __init__(self) -> None:
        self.identity: Identity | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.identity = environ["shibwsgi.identity"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


def run(app: Any, environ: dict[str, Any]) -> int:
    captured: list[int] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured.append(int(status[:3]))

    b"".join(app(environ, start_response))
    return captured[0]


def test_fuzz_structured_hostile_environs_match_the_reference_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # Log lines have their own tests; formatting 50,000 refusals would dominate the run.
    monkeypatch.setattr(logging.getLogger("shibwsgi"), "disabled", True)
    rng = random.Random(SEED)
    hostile = Hostile(rng)
    cases = scenarios()
    rules = [Rule("/", LoggedIn())]
    seen = CapturingApp()
    apps = [
        SSOMiddleware(seen, session=MemoryStore(), secret_key=SECRET, rules=rules, **case.options)
        for case in cases
    ]
    references = [RefParser(case.reference, _attributes(case.options)) for case in cases]
    statuses: dict[int, int] = {}
    for number in range(ENVIRONS):
        index = number % len(cases)
        variables = {**cases[index].variables(hostile, rng), **lookalikes(hostile, rng)}
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "sp.example.org",
            "SERVER_PORT": "443",
            "HTTP_HOST": "sp.example.org",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "https",
            **variables,
        }
        try:
            expected = references[index].parse(dict(environ))
            expected_status = 200 if expected is not None else 401
        except Refused as refusal:
            expected, expected_status = None, refusal.status
        seen.identity = None
        status = run(apps[index], environ)
        statuses[status] = statuses.get(status, 0) + 1
        context = (number, cases[index].reference.name, {k: v[:80] for k, v in variables.items()})
        assert status == expected_status, context
        if expected is not None:
            identity = seen.identity
            assert identity is not None, context
            got = {
                "user": identity.user,
                "attributes": {name: list(values) for name, values in identity.attributes.items()},
                "dropped": list(identity.dropped),
            }
            assert got == expected, context
        if number % 5000 == 4999:
            for app in apps:  # keep the fuzz's sessions from piling up
                app.sessions.store = MemoryStore()  # type: ignore[union-attr]
    assert sum(statuses.values()) >= 100_000
    assert set(statuses) <= {200, 400, 401, 403, 431}
    for status in (200, 400, 401, 403, 431):
        assert statuses.get(status, 0) > 200, statuses  # every outcome is exercised


def _attributes(options: dict[str, Any]) -> dict[str, Attribute]:
    specs = options.get("attributes", {})
    return {name: spec if isinstance(spec, Attribute) else Attribute(spec) for name, spec in specs.items()}
