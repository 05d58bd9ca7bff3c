"""Turning a front end's raw variable text into clean values.

Every function here is linear in the size of its input: attribute values can
be tens of kilobytes (thousands of groups) and are parsed on every request.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from functools import cache
from urllib.parse import unquote_to_bytes

__all__ = ["ENCODINGS", "decode", "decoder", "repair_utf8", "split_quoted", "split_values"]

#: Value encodings a front end may use (see ``Profile.encoding``).
#:
#: ``utf-8``: UTF-8 bytes, which reach WSGI as latin-1 decoded text (PEP 3333).
#: ``latin-1``: the front end converted values to latin-1 (mod_auth_openidc ``latin1``).
#: ``url``: percent-encoded UTF-8 (``ShibRequestSetting encoding URL``).
#: ``base64url``: base64url of UTF-8 (mod_auth_openidc ``base64url``).
#: ``base64``: standard base64 of UTF-8 (Azure App Service, kong-oidc).
ENCODINGS = ("utf-8", "latin-1", "url", "base64url", "base64")


def repair_utf8(value: str) -> str:
    """Undo PEP 3333's latin-1 decoding of UTF-8 bytes ("ZoÃ«" -> "Zoë").

    Text that is not valid UTF-8 once re-encoded is returned unchanged.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def decode(value: str, encoding: str) -> str:
    """Decode one raw value sent in ``encoding``; undecodable input is kept as it came."""
    return decoder(encoding)(value)


def decoder(encoding: str) -> Callable[[str], str]:
    """The function that decodes one value sent in ``encoding``."""
    return _DECODERS[encoding]


def _url_decode(value: str) -> str:
    if "%" not in value:
        return repair_utf8(value)
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeError:
        return value


def _base64_decoder(altchars: bytes) -> Callable[[str], str]:
    def decode_base64(value: str) -> str:
        stripped = value.strip()
        try:
            raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=altchars, validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, ValueError):
            return value

    return decode_base64


def _as_is(value: str) -> str:
    return value


_DECODERS: dict[str, Callable[[str], str]] = {
    "utf-8": repair_utf8,
    "latin-1": _as_is,
    "url": _url_decode,
    "base64url": _base64_decoder(b"-_"),
    "base64": _base64_decoder(b"+/"),
}


def split_values(raw: str, delimiter: str | None, *, backslash_escapes: bool) -> list[str]:
    """Split a joined multi-value, honouring ``\\<delimiter>`` escapes; drop empty values.

    With ``backslash_escapes`` (Shibboleth), ``\\;`` stands for a literal ``;`` and
    the backslash itself is not escaped, so a value ending in a backslash cannot
    be told from an escaped delimiter: that case is lossy at the source.
    """
    if delimiter is None or delimiter not in raw:
        return [raw] if raw else []
    # The one-character test first: CPython finds "\\" far faster than "\\;".
    if backslash_escapes and "\\" in raw and "\\" + delimiter in raw:
        escaped = "\\" + delimiter
        parts = [part.replace(escaped, delimiter) for part in _unescaped(delimiter).split(raw)]
    else:
        parts = raw.split(delimiter)
    return [part for part in parts if part]


def split_quoted(raw: str) -> list[str]:
    """Split vouch-proxy's lists: ``"a","b"`` is two values, an unquoted value is one.

    Values are not escaped, so a value containing ``","`` splits: lossy at the source.
    """
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return [part for part in raw[1:-1].split('","') if part]
    return [raw] if raw else []


@cache
def _unescaped(delimiter: str) -> re.Pattern[str]:
    # A fixed-width lookbehind keeps the split linear: no backtracking.
    return re.compile(r"(?<!\\)" + re.escape(delimiter))
