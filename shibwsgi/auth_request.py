"""Internal: the answer to nginx's ``auth_request``: may this identity make the original request?

nginx names the original request in ``X-Original-URI`` and ``X-Original-Method``; the
rules decide as they would for the request itself. 200 carries who the user is in
oauth2-proxy's ``X-Auth-Request-*`` headers, 401 means nobody is logged in, 403 that the
rules refuse; never a redirect (nginx maps 401 to the login with ``error_page``).
Values are percent-encoded where a comma-joined header could not carry them as they are.

The upstream behind nginx may read the URI otherwise than Python does, so the path is
judged by the strictest reading: every reading in :func:`shibwsgi.paths.readings`
(Tomcat's ``;`` parameters, Windows' trailing dots, spaces and stream names), each also
folded (IIS's case-insensitivity, :func:`shibwsgi.paths.fold`), must be allowed. The
forms no reading settles are refused with 400, in the folded reading too: control
characters, a backslash, a ``%`` left after decoding (double encoding), a ``?`` or ``#``
once decoded, bytes that are not UTF-8 (overlong forms) and segments of dots and spaces only. Mounted under ``SCRIPT_NAME``, the app judges only
URIs under its mount, by its own rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import quote, unquote_to_bytes

from . import responses
from .authz import AllOf, LoggedIn, Requirement, Rule, Rules
from .errors import ConfigError, RequestError
from .identity import Identity
from .paths import fold, folded, odd_dot_segment, readings, resolved

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .responses import Response

__all__ = ["DEFAULT_AUTH_HEADERS", "USER_HEADER", "AuthEndpoint", "check_header_sources", "header_value"]

#: Always sent on a 200: the user id, under oauth2-proxy's name.
USER_HEADER = "X-Auth-Request-User"
#: The other headers of a 200 (``auth_headers``): header -> ``user``, ``roles`` or an attribute.
DEFAULT_AUTH_HEADERS: Mapping[str, str] = {
    "X-Auth-Request-Email": "email",
    "X-Auth-Request-Groups": "groups",
}
METHODS = ("GET", "HEAD")

Header = tuple[str, str]
#: (environ, front-end identity) -> (the request's identity, Set-Cookie headers)
Resolve = Callable[["WSGIEnvironment", "Identity | None"], "tuple[Identity | None, list[Header]]"]

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# Headers whose meaning belongs to HTTP or to the session, never to an identity value.
_RESERVED = frozenset(
    name.lower()
    for name in (
        USER_HEADER,
        "Cache-Control",
        "Connection",
        "Content-Length",
        "Content-Type",
        "Location",
        "Set-Cookie",
        "Transfer-Encoding",
        "WWW-Authenticate",
    )
)
# $request_uri as nginx sends it: a path and query of visible ASCII characters.
_ORIGINAL_URI = re.compile(r"/[\x21-\x7e]*")
_ORIGINAL_METHOD = re.compile(r"[A-Za-z_-]{1,32}")
# Sent as they are: every visible ASCII character but "%" (the escape) and "," (the joint).
_VERBATIM = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) not in "%,")
_EDGE_SPACES = re.compile(r"^ +| +$")
# Decoded forms that servers read in different ways: (pattern on the decoded bytes, why).
_REFUSED = (
    (re.compile(rb"[\x00-\x1f\x7f]"), "holds a control character once decoded (%00-%1F, %7F)"),
    (re.compile(rb"\\"), "holds a backslash, which Windows servers read as '/'"),
    (re.compile(rb"%"), "still holds a '%' once decoded: encoded twice (%252e) or %u-encoded"),
    (
        re.compile(rb"[?#]"),
        "holds '?' or '#' once decoded (%3F, %23), which servers that decode first cut off",
    ),
)


def header_value(values: tuple[str, ...]) -> str:
    """Join ``values`` with "," for a response header, percent-encoding what cannot pass.

    ``%``, ``,``, control characters, non-ASCII (as UTF-8) and spaces at either end
    of a value become ``%XX``; every other character is sent as is. A consumer splits
    on "," and percent-decodes each value (shibwsgi: ``encoding="url"``).
    """
    return ",".join(
        # errors="replace": a value no identity should hold (a lone surrogate) is no reason for a 500.
        _EDGE_SPACES.sub(
            lambda spaces: "%20" * len(spaces.group()), quote(value, safe=_VERBATIM, errors="replace")
        )
        for value in values
    )


class AuthEndpoint:
    """The ``auth_path`` endpoint: the rules applied to the request nginx names.

    ``resolve`` gives the request's identity from the front end's (a session cookie
    or the front end's own variables) and any Set-Cookie headers, as for any request.
    """

    def __init__(self, *, headers: Mapping[str, str], rules: Rules, resolve: Resolve) -> None:
        self.headers = _headers(headers)
        self.rules = rules
        self.folded_rules = _folded(rules)
        self.resolve = resolve

    def requirement_for(self, paths: list[str], method: str) -> Requirement:
        """What every reading in ``paths`` requires, as is and in lower case (no rule: logged in)."""
        found: list[Requirement] = []
        for path in paths:
            # Folded, then read again: a fullwidth dot (U+FF0E) ending "/admin" folds to ".", which Windows trims.
            spellings = [(self.rules, path), *((self.folded_rules, fold) for fold in readings(folded(path)))]
            for rules, spelling in spellings:
                requirement = rules.requirement_for(spelling, method, default=LoggedIn())
                if requirement not in found:
                    found.append(requirement)
        return found[0] if len(found) == 1 else AllOf(*found)

    def __call__(self, environ: WSGIEnvironment, front: Identity | None) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in METHODS:
            message = "the auth_request endpoint answers GET only (nginx's auth_request subrequest)"
            return responses.error_response(environ, 405, message, headers=[("Allow", "GET, HEAD")])
        paths, original_method = self.original_request(environ)
        requirement = self.requirement_for(paths, original_method)
        identity, headers = self.resolve(environ, front)
        if requirement.allows(identity):
            answer = self.allowed(identity, headers)
        elif identity is None:
            answer = responses.error_response(environ, 401, "authentication required", headers=headers)
        else:
            message = f"access denied: requires {requirement.describe()}"
            answer = responses.error_response(environ, 403, message, headers=headers)
        return replace(answer, body=b"") if method == "HEAD" else answer

    def original_request(self, environ: WSGIEnvironment) -> tuple[list[str], str]:
        """The original request's paths (every reading, percent-decoded, as PATH_INFO) and method.

        Raises :class:`~shibwsgi.errors.RequestError` (400) for a missing or unusable
        ``X-Original-URI`` / ``X-Original-Method``, a form servers read in different
        ways, or a URI outside the app's mount (``SCRIPT_NAME``).
        """
        uri = environ.get("HTTP_X_ORIGINAL_URI")
        method = environ.get("HTTP_X_ORIGINAL_METHOD")
        if not uri or not method:
            missing = "X-Original-URI" if not uri else "X-Original-Method"
            raise RequestError(
                "X-Original-URI and X-Original-Method are required: the auth_request location "
                "must send them ($request_uri and $request_method)",
                log_message=f"auth request without {missing}: set it in nginx's auth_request "
                "location ($request_uri, $request_method)",
            )
        if not _ORIGINAL_URI.fullmatch(uri) or "#" in uri:
            raise RequestError(
                "X-Original-URI must be the original request's path and query ($request_uri): "
                "starting with '/', visible ASCII only, no fragment",
                log_message="auth request for a malformed X-Original-URI (not an origin-form path)",
            )
        if not _ORIGINAL_METHOD.fullmatch(method):
            raise RequestError(
                "X-Original-Method must be an HTTP method ($request_method)",
                log_message="auth request with a malformed X-Original-Method",
            )
        # What a server routes, and the app's PATH_INFO holds: the percent-decoded bytes as latin-1.
        path = _decoded(uri.partition("?")[0])
        return _within(environ.get("SCRIPT_NAME", ""), readings(path)), method.upper()

    def allowed(self, identity: Identity | None, headers: list[Header]) -> Response:
        """200 with who the user is (no identity headers for an allowed anonymous request)."""
        described = [] if identity is None else self.identity_headers(identity)
        return responses.Response(
            200,
            [
                ("Content-Length", "0"),
                ("Cache-Control", "no-store"),
                *responses.security_headers(),
                *described,
                *headers,
            ],
        )

    def identity_headers(self, identity: Identity) -> list[Header]:
        """``X-Auth-Request-User`` and the ``auth_headers`` describing ``identity``."""
        headers = [(USER_HEADER, header_value((identity.user,)))]
        for header, source in self.headers.items():
            values = _values(identity, source)
            if values:
                headers.append((header, header_value(values)))
        return headers


def _decoded(raw_path: str) -> str:
    """``raw_path`` percent-decoded (the WSGI string), or 400 for a form servers disagree on."""
    decoded = unquote_to_bytes(raw_path)
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        _refuse("is not UTF-8 once decoded (an overlong form such as %c0%ae, which old decoders read as '.')")
    if any(0x80 <= ord(character) <= 0x9F for character in text):
        _refuse("holds a control character once decoded (U+0080-U+009F)")
    # The folded reading too: the fullwidth backslash, percent and dots (U+FF3C, U+FF05, U+FF0E) are
    # "\\", "%" and "." to IIS.
    for spelling in (decoded.decode("latin-1"), folded(decoded.decode("latin-1"))):
        raw = spelling.encode("latin-1")
        for pattern, why in _REFUSED:
            if pattern.search(raw):
                _refuse(why)
        if odd_dot_segment(spelling):
            _refuse("has a segment of dots and spaces only ('...', '.. '), which servers resolve differently")
    return decoded.decode("latin-1")


def _refuse(why: str) -> NoReturn:
    raise RequestError(
        f"X-Original-URI {why}: refused, since the upstream may not read it as shibwsgi would",
        log_message=f"auth request refused: the X-Original-URI path {why}",
    )


def _within(mount: str, paths: list[str]) -> list[str]:
    """``paths`` (and their resolved forms) relative to ``mount``; 400 if one lies outside it."""
    mount = mount.rstrip("/")
    relative = []
    for path in dict.fromkeys(spelling for reading in paths for spelling in (reading, resolved(reading))):
        if mount and not (path == mount or path.startswith(mount + "/")):
            raise RequestError(
                "X-Original-URI is outside this application, which is mounted at SCRIPT_NAME",
                log_message="auth request for a URI outside this application's mount (SCRIPT_NAME): "
                "send this location's auth_request to the application that serves it",
            )
        relative.append(path[len(mount) :] or "/")
    return relative


def _folded(rules: Rules) -> Rules:
    """``rules`` with folded prefixes (:func:`~shibwsgi.paths.fold`), for paths that a
    case-insensitive server matches.

    A rule that an earlier one covers once both are folded is never reached: dropped.
    A prefix whose folded form is no plain path (``/‥`` is ``/..``) keeps its own spelling.
    Raises :class:`~shibwsgi.ConfigError` for two rules that only folding nests (``/Admin``
    and ``/admin``) but that require different things: such a server serves both from one
    place, so no answer could follow both.
    """
    kept: list[Rule] = []
    seen: list[tuple[Rule, Rule]] = []
    for rule in rules.rules:
        try:
            candidate = Rule(fold(rule.prefix), rule.requirement, rule.methods)
        except ConfigError:
            candidate = rule
        for earlier, earlier_candidate in seen:
            if _conflict(earlier, earlier_candidate, rule, candidate):
                raise ConfigError(
                    "rules",
                    f"{earlier.prefix!r} and {rule.prefix!r} differ only in case or Unicode form but "
                    "require different things: a case-insensitive upstream serves both from one "
                    "place, so auth_request cannot follow both; give them one spelling",
                )
        seen.append((rule, candidate))
        if not any(earlier.covers(candidate) for earlier in kept):
            kept.append(candidate)
    return Rules(kept)


def _conflict(first: Rule, first_folded: Rule, second: Rule, second_folded: Rule) -> bool:
    """True when only folding makes the two rules' prefixes nest, and they ask different things."""
    if first.requirement == second.requirement:
        return False
    if first.methods is not None and second.methods is not None and not first.methods & second.methods:
        return False
    return _nested(first_folded.prefix, second_folded.prefix) and not _nested(first.prefix, second.prefix)


def _nested(one: str, other: str) -> bool:
    """True when one of the two prefixes lies under the other."""
    return any(
        outer == "/" or inner == outer or inner.startswith(outer + "/")
        for inner, outer in ((one, other), (other, one))
    )


def _values(identity: Identity, source: str) -> tuple[str, ...]:
    if source == "user":
        return (identity.user,)
    if source == "roles":
        return identity.roles
    return identity.attributes.get(source, ())


def check_header_sources(headers: Mapping[str, str], attributes: Iterable[str], *, roles: bool) -> None:
    """Refuse an ``auth_headers`` source no identity can fill: it would never be sent."""
    known = {"user", *(("roles",) if roles else ()), *attributes}
    for name, source in headers.items():
        if source not in known:
            raise ConfigError(
                "auth_headers",
                f"{name!r}: {source!r} is not user, roles (with the roles hook) or one of the "
                f"attributes ({', '.join(sorted(known - {'user', 'roles'})) or 'none configured'})",
            )


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise ConfigError("auth_headers", "expected a mapping of header name -> user, roles or an attribute")
    checked: dict[str, str] = {}
    for name, source in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigError("auth_headers", f"{name!r} is not a header name (letters, digits and '-')")
        if name.lower() in _RESERVED or name.lower() in (known.lower() for known in checked):
            raise ConfigError("auth_headers", f"{name!r} is reserved or given twice")
        if not isinstance(source, str) or not source:
            raise ConfigError("auth_headers", f"{name!r}: expected user, roles or an attribute name")
        checked[name] = source
    return checked
