"""The answer to nginx's ``auth_request``: may this identity make the original request?

nginx names the original request in ``X-Original-URI`` and ``X-Original-Method``; the
rules decide as they would for the request itself. 200 carries who the user is in
oauth2-proxy's ``X-Auth-Request-*`` headers, 401 means nobody is logged in, 403 that the
rules refuse; never a redirect (nginx maps 401 to the login with ``error_page``).
Values are percent-encoded where a comma-joined header could not carry them as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_to_bytes

from . import responses
from .authz import LoggedIn, Rules
from .errors import ConfigError, RequestError
from .identity import Identity

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["DEFAULT_AUTH_HEADERS", "USER_HEADER", "AuthEndpoint", "header_value"]

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
        self.resolve = resolve

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse, front: Identity | None
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in METHODS:
            message = "the auth_request endpoint answers GET only (nginx's auth_request subrequest)"
            return responses.error(environ, start_response, 405, message, headers=[("Allow", "GET, HEAD")])
        path, original_method = self.original_request(environ)
        identity, headers = self.resolve(environ, front)
        found = self.rules.requirement_for(path, original_method)
        requirement = LoggedIn() if found is None else found
        if requirement.allows(identity):
            body: Iterable[bytes] = self.allowed(start_response, identity, headers)
        elif identity is None:
            body = responses.error(environ, start_response, 401, "authentication required", headers=headers)
        else:
            message = f"access denied: requires {requirement.describe()}"
            body = responses.error(environ, start_response, 403, message, headers=headers)
        return [] if method == "HEAD" else body

    def original_request(self, environ: WSGIEnvironment) -> tuple[str, str]:
        """The original request's path (percent-decoded, as PATH_INFO) and method.

        Raises :class:`~shibwsgi.errors.RequestError` (400) for a missing or unusable
        ``X-Original-URI`` / ``X-Original-Method``.
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
        path = unquote_to_bytes(uri.partition("?")[0]).decode("latin-1")
        return path, method.upper()

    def allowed(
        self, start_response: StartResponse, identity: Identity | None, headers: list[Header]
    ) -> list[bytes]:
        """Answer 200 with who the user is (no identity headers for an allowed anonymous request)."""
        described = [] if identity is None else self.identity_headers(identity)
        start_response(
            "200 OK", [("Content-Length", "0"), ("Cache-Control", "no-store"), *described, *headers]
        )
        return []

    def identity_headers(self, identity: Identity) -> list[Header]:
        """``X-Auth-Request-User`` and the ``auth_headers`` describing ``identity``."""
        headers = [(USER_HEADER, header_value((identity.user,)))]
        for header, source in self.headers.items():
            values = _values(identity, source)
            if values:
                headers.append((header, header_value(values)))
        return headers


def _values(identity: Identity, source: str) -> tuple[str, ...]:
    if source == "user":
        return (identity.user,)
    if source == "roles":
        return identity.roles
    return identity.attributes.get(source, ())


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
