"""Internal: turning a front end's raw variable text into clean values.

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

__all__ = [
    "ENCODINGS",
    "UndecodableValue",
    "decode",
    "decoder",
    "is_joined",
    "not_utf8",
    "repair_utf8",
    "split_quoted",
    "split_values",
    "without_surrogates",
]

#: Value encodings a front end may use (see ``Profile.encoding``).
#:
#: ``utf-8``: UTF-8 bytes, which reach WSGI as latin-1 decoded text (PEP 3333).
#: ``latin-1``: the front end converted values to latin-1 (mod_auth_openidc ``latin1``).
#: ``url``: percent-encoded UTF-8 (``ShibRequestSetting encoding URL``).
#: ``base64url``: base64url of UTF-8 (mod_auth_openidc ``base64url``).
#: ``base64``: standard base64 of UTF-8 (Azure App Service, kong-oidc).
ENCODINGS = ("utf-8", "latin-1", "url", "base64url", "base64")

# Lone UTF-16 surrogates: JSON's "\ud800" escape makes them, and no store can encode them.
_SURROGATES = re.compile("[\ud800-\udfff]")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class UndecodableValue(ValueError):
    """A value is not in the encoding the front end is configured to use."""


def without_surrogates(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    if value.isascii():
        return value
    return _SURROGATES.sub("\ufffd", value)


def not_utf8(value: str) -> bool:
    """True when ``value``, bytes a PEP 3333 server handed over as latin-1, is not UTF-8.

    Text that holds characters beyond latin-1 was already decoded: it is not bytes.
    """
    if value.isascii():
        return False
    try:
        value.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        return False
    except UnicodeDecodeError:
        return True
    return False


def repair_utf8(value: str) -> str:
    """Undo PEP 3333's latin-1 decoding of UTF-8 bytes ("ZoÃ«" -> "Zoë").

    Text that is not valid UTF-8 once re-encoded is returned unchanged (it may be
    real latin-1 text), but for lone surrogates, which become U+FFFD.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return without_surrogates(value)


def decode(value: str, encoding: str) -> str:
    """Decode one raw value sent in ``encoding``.

    ``url``, ``base64url`` and ``base64`` raise :class:`UndecodableValue` for text their front end
    cannot have produced; ``utf-8`` keeps text that is not UTF-8 as it came.
    """
    return decoder(encoding)(value)


def decoder(encoding: str) -> Callable[[str], str]:
    """The function that decodes one value sent in ``encoding``."""
    return _DECODERS[encoding]


def _url_decode(value: str) -> str:
    if "%" not in value:
        return repair_utf8(value)
    if _STRAY_PERCENT.search(value):
        raise UndecodableValue("a '%' that does not start a percent-escape")
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeError:
        raise UndecodableValue("percent-escapes that are not UTF-8") from None


def _base64_decoder(encoding: str, altchars: bytes) -> Callable[[str], str]:
    def decode_base64(value: str) -> str:
        stripped = value.strip()
        try:
            raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=altchars, validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise UndecodableValue(f"not {encoding}-encoded UTF-8") from None

    return decode_base64


def _as_is(value: str) -> str:
    # Only text that did not come from a PEP 3333 server can hold surrogates here.
    return value if value.isascii() else without_surrogates(value)


_DECODERS: dict[str, Callable[[str], str]] = {
    "utf-8": repair_utf8,
    "latin-1": _as_is,
    "url": _url_decode,
    "base64url": _base64_decoder("base64url", b"-_"),
    "base64": _base64_decoder("base64", b"+/"),
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


def is_joined(raw: str, delimiter: str | None, *, backslash_escapes: bool) -> bool:
    """True when ``raw`` holds ``delimiter`` as a separator (``\\<delimiter>`` is not one)."""
    if delimiter is None or delimiter not in raw:
        return False
    if backslash_escapes and "\\" + delimiter in raw:
        return _unescaped(delimiter).search(raw) is not None
    return True


def split_quoted(raw: str) -> list[str]:
    """Split vouch-proxy's lists: ``"a","b"`` is two values, an unquoted value is one.

    Values are not escaped, so a value with a quote next to a comma splits: lossy at the source.
    """
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return [part for part in raw[1:-1].split('","') if part]
    return [raw] if raw else []


@cache
def _unescaped(delimiter: str) -> re.Pattern[str]:
    # A fixed-width lookbehind keeps the split linear: no backtracking.
    return re.compile(r"(?<!\\)" + re.escape(delimiter))
