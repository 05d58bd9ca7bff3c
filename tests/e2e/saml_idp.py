"""A small SAML 2.0 identity provider for the end-to-end tests, built on pysaml2.

It runs in a thread of the test process, on ``http://127.0.0.1:<port>``:

=====================  ==================================================================
``GET /metadata``      the IdP's metadata; its entityID is this URL. It carries a
                       ``<shibmd:Scope>`` (``example.org``), without which the Shibboleth
                       SP filters out the scoped attributes (``eppn``, ``affiliation``).
``GET /select``        ``?user=<name>[&groups=<n>]`` signs the client in at the IdP (a
                       cookie) as one of :data:`USERS`, with ``n`` extra groups from
                       :func:`generated_groups` (large-attribute tests). Answers 204.
``GET /sso/redirect``  single sign-on, HTTP-Redirect binding in. Signed in: a page whose
                       form POSTs the signed ``SAMLResponse`` to the SP's ACS (JavaScript
                       submits it; the button works without). Not signed in: a page with a
                       button per user, posting to ``/sso/login``.
``POST /sso/login``    that choice: signs in, then answers like ``/sso/redirect``.
``GET /slo/redirect``  single logout, HTTP-Redirect binding in and out: ends the IdP
                       login and sends a signed ``LogoutResponse`` back to the SP.
=====================  ==================================================================

A test picks the user with ``/select`` before its first request to the SP (a client
without the cookie, like a fresh browser, gets the choice page instead).
"""

from __future__ import annotations

import base64
import contextlib
import html
import re
import secrets
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from cryptography.utils import CryptographyDeprecationWarning
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_TRANSIENT, NameID
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from support import in_thread
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

with warnings.catch_warnings():
    # pysaml2 7.5 still names cipher modes that cryptography deprecates, at import time
    # (the suite turns warnings into errors); the IdP never uses them.
    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    from saml2.server import Server

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import requests
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "COOKIE",
    "EDITOR_GROUP",
    "SCOPE",
    "SEMICOLON_GROUP",
    "USERS",
    "SamlIdP",
    "User",
    "Visit",
    "browse",
    "certificate_body",
    "choose_user",
    "follow",
    "form_fields",
    "generated_groups",
    "make_key_pair",
    "released_groups",
    "serving",
]

#: The scope of every scoped attribute, announced in the IdP's metadata.
SCOPE = "example.org"
#: The group that may edit movies in the demo app (its default MOVIES_EDITOR_GROUP).
EDITOR_GROUP = "movie-editors"
#: A group whose name holds the SP's multi-value separator: the SP sends it as ``\;``.
SEMICOLON_GROUP = "cn=r&d;archive,ou=groups"
#: The IdP's login cookie (its value is a key into the IdP's logins). Cookies ignore the
#: port, so clients also send it to the SP's server on 127.0.0.1: harmless there.
COOKIE = "saml_idp_session"


@dataclass(frozen=True)
class User:
    eppn: str
    display_name: str
    mail: str
    affiliation: tuple[str, ...]
    groups: tuple[str, ...]


USERS = {
    "zoe": User(
        eppn=f"zoe@{SCOPE}",
        display_name="Zoë Łukasz-Müller 山田",
        mail=f"zoe@{SCOPE}",
        affiliation=(f"member@{SCOPE}", f"staff@{SCOPE}"),
        groups=(EDITOR_GROUP, SEMICOLON_GROUP, "staff"),
    ),
    "bob": User(
        eppn=f"bob@{SCOPE}",
        display_name="Bob Reader",
        mail=f"bob@{SCOPE}",
        affiliation=(f"member@{SCOPE}",),
        groups=("staff", SEMICOLON_GROUP),
    ),
}


def generated_groups(count: int) -> list[str]:
    """``count`` distinct group names of 45 characters each (46 bytes with the SP's ``;``)."""
    return [f"cn=generated-group-{index:06d},ou=groups,dc=example" for index in range(count)]


def released_groups(user: str, extra: int = 0) -> list[str]:
    """The isMemberOf values the IdP releases for ``user`` signed in with ``groups=extra``."""
    return [*USERS[user].groups, *generated_groups(extra)]


@dataclass
class _Login:
    user: str
    extra_groups: int
    #: scheme://host:port of the SP endpoint the last assertion went to: the single
    #: logout answer goes back there (the SP's metadata lists one endpoint per port).
    sp_origin: str | None = None


class SamlIdP:
    """The IdP's WSGI app and its pysaml2 server; see the module docstring for the endpoints."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.entity_id = f"{self.base_url}/metadata"
        self.key, self.cert = folder / "idp-key.pem", folder / "idp-cert.pem"
        make_key_pair(self.key, self.cert, "shibwsgi test IdP")
        self.metadata = folder / "idp-metadata.xml"
        self.metadata.write_text(self._metadata())
        self._server: Server | None = None
        self._logins: dict[str, _Login] = {}
        self._lock = threading.Lock()
        self.log: list[str] = []  # one line per SAML message handled, for failing tests

    def trust(self, sp_metadata: str) -> None:
        """Accept requests from the SP described by ``sp_metadata`` (and answer to its endpoints)."""
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "key_file": str(self.key),
                "cert_file": str(self.cert),
                "metadata": {"inline": [sp_metadata]},
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)],
                            "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                        },
                        "name_id_format": [NAMEID_FORMAT_TRANSIENT],
                        "policy": {"default": {"attribute_restrictions": None, "name_form": NAME_FORMAT_URI}},
                        "sign_response": True,
                        "sign_assertion": True,
                        "want_authn_requests_signed": False,
                    }
                },
            }
        )
        self._server = Server(config=config)

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the IdP trusts no SP yet: call trust()")
        return self._server

    @property
    def sso_url(self) -> str:
        return f"{self.base_url}/sso/redirect"

    @property
    def slo_url(self) -> str:
        return f"{self.base_url}/slo/redirect"

    def select_url(self, user: str, groups: int = 0) -> str:
        """The URL that signs a client in at the IdP as ``user`` (see :func:`released_groups`)."""
        return f"{self.base_url}/select?user={user}&groups={groups}"

    # -- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        routes = {
            ("GET", "/metadata"): self._serve_metadata,
            ("GET", "/select"): self._select,
            ("GET", "/sso/redirect"): self._single_sign_on,
            ("POST", "/sso/login"): self._choose_user,
            ("GET", "/slo/redirect"): self._single_logout,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            response = Response("not found", status=404)
        else:
            try:
                response = handler(request)
            except Exception as exc:  # a test reads this, not a stack trace on stderr
                self.log.append(f"{request.method} {request.path}: {exc!r}")
                response = Response(f"IdP error: {exc!r}", status=400)
        return response(environ, start_response)

    def _serve_metadata(self, request: Request) -> Response:
        return Response(self.metadata.read_text(), content_type="application/samlmetadata+xml")

    def _select(self, request: Request) -> Response:
        user = request.args.get("user", "")
        if user not in USERS:
            return Response(f"unknown user {user!r}", status=400)
        response = Response(status=204)
        self._remember(response, _Login(user, int(request.args.get("groups", "0"))))
        return response

    def _single_sign_on(self, request: Request) -> Response:
        login = self._login(request)
        saml_request = request.args.get("SAMLRequest", "")
        relay_state = request.args.get("RelayState", "")
        if login is None:
            return _html(_choice_page(saml_request, relay_state))
        return self._assertion(login, saml_request, relay_state)

    def _choose_user(self, request: Request) -> Response:
        user = request.form.get("user", "")
        if user not in USERS:
            return Response(f"unknown user {user!r}", status=400)
        login = _Login(user, 0)
        response = self._assertion(
            login, request.form.get("SAMLRequest", ""), request.form.get("RelayState", "")
        )
        self._remember(response, login)
        return response

    def _assertion(self, login: _Login, saml_request: str, relay_state: str) -> Response:
        parsed = self.server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        arguments = self.server.response_args(parsed.message, [BINDING_HTTP_POST])
        user = USERS[login.user]
        identity = {
            "eduPersonPrincipalName": [user.eppn],
            "mail": [user.mail],
            "displayName": [user.display_name],
            "eduPersonScopedAffiliation": list(user.affiliation),
            "isMemberOf": released_groups(login.user, login.extra_groups),
        }
        name_id = NameID(format=NAMEID_FORMAT_TRANSIENT, text=secrets.token_hex(16))
        response = self.server.create_authn_response(
            identity,
            name_id=name_id,
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_response=True,
            sign_assertion=True,
            **arguments,
        )
        destination = arguments["destination"]
        parts = urlsplit(destination)
        login.sp_origin = f"{parts.scheme}://{parts.netloc}"
        self.log.append(f"SSO: {login.user} ({len(identity['isMemberOf'])} groups) -> {destination}")
        encoded = base64.b64encode(str(response).encode("utf-8")).decode("ascii")
        return _html(_post_page(destination, {"SAMLResponse": encoded, "RelayState": relay_state}))

    def _single_logout(self, request: Request) -> Response:
        parsed = self.server.parse_logout_request(
            request.args.get("SAMLRequest", ""),
            BINDING_HTTP_REDIRECT,
            relay_state=request.args.get("RelayState"),
            sigalg=request.args.get("SigAlg"),
            signature=request.args.get("Signature"),
        )
        login = self._login(request, forget=True)
        # The SP lists one logout endpoint per test server; answer on the one it used.
        endpoints = [
            endpoint["location"]
            for endpoint in self.server.metadata.single_logout_service(
                parsed.message.issuer.text, BINDING_HTTP_REDIRECT, "spsso"
            )
        ]
        origin = login.sp_origin if login is not None else None
        destination = next(
            (url for url in endpoints if origin and url.startswith(origin + "/")), endpoints[0]
        )
        answer = self.server.create_logout_response(parsed.message, [BINDING_HTTP_REDIRECT], sign=False)
        answer.destination = destination
        arguments = self.server.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(answer),
            destination,
            request.args.get("RelayState", ""),
            response=True,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        self.log.append(f"SLO: {login.user if login else 'no IdP login'} -> {destination}")
        response = Response(status=302, headers=dict(arguments["headers"]))
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- the IdP's own logins -------------------------------------------------------------

    def _remember(self, response: Response, login: _Login) -> None:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._logins[key] = login
        response.set_cookie(COOKIE, key, path="/", httponly=True)

    def _login(self, request: Request, *, forget: bool = False) -> _Login | None:
        key = request.cookies.get(COOKIE, "")
        with self._lock:
            return self._logins.pop(key, None) if forget else self._logins.get(key)

    def _metadata(self) -> str:
        return f"""\
<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:shibmd="urn:mace:shibboleth:metadata:1.0"
    entityID="{self.entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:Extensions>
      <shibmd:Scope regexp="false">{SCOPE}</shibmd:Scope>
    </md:Extensions>
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate_body(self.cert)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleLogoutService Binding="{BINDING_HTTP_REDIRECT}" Location="{self.slo_url}"/>
    <md:NameIDFormat>{NAMEID_FORMAT_TRANSIENT}</md:NameIDFormat>
    <md:SingleSignOnService Binding="{BINDING_HTTP_REDIRECT}" Location="{self.sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""


@contextlib.contextmanager
def serving(idp: SamlIdP) -> Iterator[SamlIdP]:
    """The IdP served on its port in a thread, stopped on exit."""
    server = make_server("127.0.0.1", idp.port, idp, threaded=True)
    with in_thread(server):
        yield idp


def make_key_pair(key: Path, cert: Path, name: str) -> None:
    """A 2048-bit RSA key and a self-signed certificate for SAML signing (PEM files)."""
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
        ],
        check=True,
        capture_output=True,
    )


def certificate_body(cert: Path) -> str:
    """The base64 body of a PEM certificate, as metadata's ``<ds:X509Certificate>`` wants it."""
    return "".join(line for line in cert.read_text().splitlines() if not line.startswith("-----"))


# -- pages -----------------------------------------------------------------------------------


def _html(body: str) -> Response:
    return Response(body, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


def _hidden(fields: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
    )


def _post_page(action: str, fields: dict[str, str]) -> str:
    """The HTTP-POST binding's page: JavaScript submits it, the button does without."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in</title></head>
<body>
<form id="saml" method="post" action="{html.escape(action)}">{_hidden(fields)}
<p>Returning to the service&hellip;</p>
<button type="submit">Continue</button>
</form>
<script>document.getElementById("saml").submit();</script>
</body></html>
"""


def _choice_page(saml_request: str, relay_state: str) -> str:
    buttons = "\n".join(
        f'<p><button type="submit" name="user" value="{name}">{html.escape(user.display_name)}'
        f" ({html.escape(user.eppn)})</button></p>"
        for name, user in USERS.items()
    )
    fields = _hidden({"SAMLRequest": saml_request, "RelayState": relay_state})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test IdP: sign in</title></head>
<body>
<h1>Test IdP</h1>
<form method="post" action="/sso/login">{fields}
{buttons}
</form>
</body></html>
"""


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the first form in one of the IdP's pages."""
    action = re.search(r'<form[^>]*\baction="([^"]*)"', page)
    if action is None:
        raise ValueError(f"no form in the page:\n{page[:2000]}")
    fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page))
    return html.unescape(action.group(1)), {html.unescape(k): html.unescape(v) for k, v in fields.items()}


# -- a browser's walk with requests -----------------------------------------------------------


@dataclass
class Visit:
    """Where a browser-like walk went: every URL requested, and the last response."""

    response: requests.Response
    hops: list[str] = field(default_factory=list)

    def went_through(self, url: str) -> bool:
        return any(hop.startswith(url) for hop in self.hops)


def browse(client: requests.Session, url: str, **kwargs: Any) -> Visit:
    """GET ``url``, then follow redirects and the IdP's self-submitting form like a browser."""
    return follow(client, client.get(url, allow_redirects=False, timeout=30, **kwargs), [url], **kwargs)


def follow(
    client: requests.Session, response: requests.Response, hops: list[str], *, limit: int = 12, **kwargs: Any
) -> Visit:
    for _ in range(limit):
        if response.is_redirect:
            url = urljoin(response.url, response.headers["Location"])
            response = client.get(url, allow_redirects=False, timeout=30, **kwargs)
        elif response.ok and '<form id="saml"' in response.text:
            url, fields = form_fields(response.text)
            response = client.post(url, data=fields, allow_redirects=False, timeout=30, **kwargs)
        else:
            return Visit(response, hops)
        hops.append(url)
    raise AssertionError(f"more than {limit} hops: {hops}")


def choose_user(client: requests.Session, choice_page: requests.Response, user: str) -> Visit:
    """Press ``user``'s button on the IdP's sign-in page, and follow on."""
    action, fields = form_fields(choice_page.text)
    url = urljoin(choice_page.url, action)
    response = client.post(url, data={**fields, "user": user}, allow_redirects=False, timeout=30)
    return follow(client, response, [url])
