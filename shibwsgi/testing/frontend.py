"""A development front end: stands in for Apache and its auth module on a laptop.

Wrap the application *after* :class:`~shibwsgi.SSOMiddleware`, as the outermost layer::

    application = DevFrontEnd(SSOMiddleware(app, ...))

It serves the profile's login path (a form to pick a sample user) and logout path
itself, keeps the choice in a signed cookie, and on every other request puts that
user into the environ exactly as the real front end would (:func:`environ_for`).
A signed profile's front end (Pomerium, IAP, ...) signs with a development key
(:class:`~shibwsgi.testing.signed.TestSigner`) and serves its public keys at
:data:`JWKS_PATH` (and one PEM per key id under :data:`KEYS_PATH`, as AWS ALB does).
Only loopback clients are served. Never expose it: whoever reaches it can be anyone.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.http import dump_cookie, parse_cookie
from werkzeug.wrappers import Request

from ..errors import ConfigError
from ..pages import STYLE, Link, page
from ..profiles import PROFILES, REMOTE_USER, Profile, get_profile
from ..redirects import safe_next
from ..responses import content_security_policy, redirect, security_headers
from ..trust import CHANNELS, TrustGate
from .environ import SESSION_LIFETIME, environ_for

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .signed import TestSigner

__all__ = [
    "JWKS_PATH",
    "KEYS_PATH",
    "SAMPLE_USERS",
    "SOURCE_NAMES",
    "DevFrontEnd",
    "SampleUser",
    "default_channel",
    "users_for_profile",
]

log = logging.getLogger("shibwsgi")

#: Where a signed profile's development front end serves its public key set.
JWKS_PATH = "/devfrontend/jwks.json"
#: ``KEYS_PATH + kid``: its public key in PEM (a ``jwks_url`` with ``{kid}``, as for AWS ALB).
KEYS_PATH = "/devfrontend/keys/"

WARNING = "DEVELOPMENT FRONT END: anyone who can reach this port can be anyone; never expose it"


class SampleUser(NamedTuple):
    """A person the development front end can sign in as.

    ``attributes`` maps source names (as the front end names them) to a value or values.
    """

    user: str
    attributes: Mapping[str, str | tuple[str, ...]]


_RESEARCH_GROUPS = tuple(f"urn:mace:example.org:group:research-{n:04d}" for n in range(1, 401))

#: The built-in people, with Shibboleth's attribute names (see :data:`SOURCE_NAMES`).
SAMPLE_USERS: Mapping[str, SampleUser] = MappingProxyType(
    {
        "ada": SampleUser(
            "ada@example.org",
            {
                "displayName": "Ada Editor",
                "mail": "ada@example.org",
                "isMemberOf": ("movie-editors", "staff"),
                "affiliation": ("staff@example.org", "member@example.org"),
            },
        ),
        "rob": SampleUser(
            "rob@example.org",
            {
                "displayName": "Rob Reader",
                "mail": "rob@example.org",
                "isMemberOf": ("staff",),
                "affiliation": ("staff@example.org", "member@example.org"),
            },
        ),
        # Non-ASCII, hundreds of values and a value holding Shibboleth's delimiter.
        "zoe": SampleUser(
            "zoe@example.org",
            {
                "displayName": "Zoë Łukasz-Müller 山田",
                "mail": "zoe@example.org",
                "isMemberOf": (*_RESEARCH_GROUPS, "urn:mace:example.org:group:r&d;archive", "movie-editors"),
                "affiliation": ("faculty@example.org", "member@example.org"),
            },
        ),
    }
)

#: Shibboleth's attribute name of each role in :attr:`Profile.sample_sources <shibwsgi.Profile>`.
_SHIBBOLETH_NAMES = {
    "name": "displayName",
    "email": "mail",
    "groups": "isMemberOf",
    "affiliation": "affiliation",
}

#: Shibboleth's attribute names as each built-in profile's front end calls them
#: (from the profiles' ``sample_sources``). A name missing from a row is not sent by that front end.
SOURCE_NAMES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        profile.name: MappingProxyType(
            {_SHIBBOLETH_NAMES[role]: source for role, source in profile.sample_sources.items()}
        )
        for profile in PROFILES.values()
    }
)

# Where to find a person's name and groups, whichever profile's names their attributes use.
_NAME_SOURCES = tuple(
    dict.fromkeys(row["displayName"] for row in SOURCE_NAMES.values() if "displayName" in row)
)
_GROUP_SOURCES = tuple(
    dict.fromkeys(row["isMemberOf"] for row in SOURCE_NAMES.values() if "isMemberOf" in row)
)


def default_channel(profile: str | Profile) -> str:
    """How ``profile``'s front end passes identity: its ``test_channel``, else its channel."""
    spec = get_profile(profile)
    return spec.test_channel or spec.channel


_SALT = "shibwsgi.testing.frontend"
_LIFETIME = int(SESSION_LIFETIME.total_seconds())


def users_for_profile(
    profile: str | Profile, users: Mapping[str, SampleUser | tuple[str, Mapping[str, Any]]] = SAMPLE_USERS
) -> dict[str, SampleUser]:
    """``users`` with Shibboleth's attribute names renamed to ``profile``'s.

    Names that are not Shibboleth's (see :data:`SOURCE_NAMES`), and every name for
    a custom profile, are kept as given.
    """
    names = SOURCE_NAMES.get(get_profile(profile).name)
    shibboleth = SOURCE_NAMES["shibboleth"]
    result = {}
    for key, (user, attributes) in users.items():
        if names is not None:
            attributes = {
                names.get(source, source): values
                for source, values in attributes.items()
                if source in names or source not in shibboleth
            }
        result[key] = SampleUser(user, attributes)
    return result


class _Session(NamedTuple):
    user: str
    session_id: str
    authenticated_at: int


class DevFrontEnd:
    """A stand-in for the real front end, for development and tests only.

    ``profile``: the front end to imitate; ``users``: key -> :class:`SampleUser`
    (Shibboleth's attribute names are renamed for other profiles, see
    :func:`users_for_profile`); ``secret_key`` signs the session cookie (default:
    random per process, so with several worker processes pass one);
    ``channel``: ``"environ"`` (server variables), or ``"headers"``, the default
    for oauth2-proxy and the profiles whose front ends pass headers (authelia,
    authentik, vouch, azure-easy-auth, kong-oidc), whose inner
    :class:`~shibwsgi.SSOMiddleware` must then trust ``127.0.0.1``; ``protected_paths``: locations the front end itself
    protects (``Require shib-session``): without a front-end session, requests
    there are sent to the sign-in form. Elsewhere they pass on anonymously.
    ``signer``: for a signed profile, the key that signs its assertions (default: a
    new :class:`~shibwsgi.testing.signed.TestSigner` with the profile's algorithm
    and issuer; with several worker processes, give each the same one, see
    :meth:`~shibwsgi.testing.signed.TestSigner.load`). The inner middleware verifies
    with ``jwks=front.signer.jwks, issuer=front.signer.issuer, audience=front.signer.audience``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        profile: str | Profile = "shibboleth",
        users: Mapping[str, SampleUser | tuple[str, Mapping[str, Any]]] = SAMPLE_USERS,
        secret_key: str | bytes | None = None,
        cookie_name: str = "_devfrontend_session",
        channel: str | None = None,
        protected_paths: Iterable[str] = (),
        signer: TestSigner | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigError("app", f"expected a WSGI callable, got {type(app).__name__}")
        self.app = app
        self.profile = get_profile(profile)
        self.signer = _signer(self.profile, signer)
        self.channel = default_channel(self.profile) if channel is None else channel
        if self.channel not in CHANNELS:
            raise ConfigError("channel", f"{self.channel!r} is not one of {', '.join(CHANNELS)}")
        self.users = _checked_users(users, self.profile)
        self._labels = {key: _label(key, user) for key, user in users.items()}
        if not isinstance(cookie_name, str) or not cookie_name.isidentifier():
            raise ConfigError("cookie_name", f"{cookie_name!r} is not a plain cookie name")
        self.cookie_name = cookie_name
        if secret_key is not None and (not isinstance(secret_key, (str, bytes)) or len(secret_key) < 16):
            raise ConfigError("secret_key", "must be a string of at least 16 characters")
        self._serializer = URLSafeTimedSerializer(secret_key or secrets.token_bytes(32), salt=_SALT)
        self.login_path, self._target_param = _endpoint(
            self.profile.login_url, ("{target}", "{target_path}"), ("/devfrontend/login", "target")
        )
        self.logout_path, self._return_param = _endpoint(
            self.profile.logout_url, ("{return_to}", "{return_path}"), ("/devfrontend/logout", "return")
        )
        self.protected_paths = _paths(protected_paths)
        self._scrubber = _scrubber(self.profile, self.users.values())
        # mod_auth_openidc can pass the ID token's claims as JSON too: lossless, unlike
        # its latin-1 claim variables, so names outside latin-1 survive.
        self._id_token = "OIDC_id_token_payload" in self.profile.json_variables
        log.warning("%s (profile %s, sign in at %s)", WARNING, self.profile.name, self.login_path)

    def __repr__(self) -> str:
        return (
            f"<DevFrontEnd profile={self.profile.name!r} channel={self.channel!r} "
            f"users={sorted(self.users)!r} app={self.app!r}>"
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not _loopback(environ.get("REMOTE_ADDR")):
            return _respond(
                start_response,
                "403 Forbidden",
                "text/plain",
                "The development front end serves this machine only (loopback clients).\n",
            )
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if path == self.login_path:
            return self._login(Request(environ), start_response)
        if path == self.logout_path:
            return self._logout(Request(environ), start_response)
        if self.signer is not None and (path == JWKS_PATH or path.startswith(KEYS_PATH)):
            return _keys(self.signer, path, start_response)
        # The inner middleware scrubs too; in the headers channel nothing else would.
        self._scrubber.admit(environ)
        session = self._session(environ)
        if session is not None:
            environ.update(self._identity_environ(session))
        elif self._protects(path):
            query = urlencode({self._target_param: _current_path(environ)})
            return redirect(start_response, f"{self.login_path}?{query}")
        return self.app(environ, start_response)

    def _protects(self, path: str) -> bool:
        return any(path == base or path.startswith(base.rstrip("/") + "/") for base in self.protected_paths)

    # -- the front end's own pages ----------------------------------------------------------

    def _login(self, request: Request, start_response: StartResponse) -> Iterable[bytes]:
        if request.method in ("GET", "HEAD"):
            target = request.args.get(self._target_param, "")
            return self._form(start_response, "200 OK", target, head=request.method == "HEAD")
        if request.method != "POST":
            allow = [("Allow", "GET, HEAD, POST")]
            return _respond(
                start_response, "405 Method Not Allowed", "text/plain", "Use GET or POST.\n", allow
            )
        if not _same_origin(request):
            return _respond(start_response, "403 Forbidden", "text/plain", "Cross-site sign-in refused.\n")
        target = request.form.get("target", request.args.get(self._target_param, ""))
        key = request.form.get("user", "")
        if key not in self.users:
            return self._form(start_response, "400 Bad Request", target, error="Pick one of the users.")
        session = {"user": key, "sid": "_" + secrets.token_hex(16), "at": int(time.time())}
        cookie = dump_cookie(
            self.cookie_name,
            self._serializer.dumps(session),
            max_age=_LIFETIME,
            path="/",
            httponly=True,
            samesite="Lax",
        )
        return redirect(start_response, _local_target(target, request.host), headers=[("Set-Cookie", cookie)])

    def _logout(self, request: Request, start_response: StartResponse) -> Iterable[bytes]:
        cookie = dump_cookie(self.cookie_name, "", max_age=0, path="/", httponly=True, samesite="Lax")
        target = _local_target(request.args.get(self._return_param, ""), request.host)
        return redirect(start_response, target, headers=[("Set-Cookie", cookie)])

    def _form(
        self, start_response: StartResponse, status: str, target: str, *, error: str = "", head: bool = False
    ) -> Iterable[bytes]:
        choices = "\n".join(
            f'<li><label><input type="radio" name="user" value="{html.escape(key)}"'
            f"{' checked' if index == 0 else ''}> <span><strong>{html.escape(name)}</strong><br>"
            f'<code>{html.escape(self.users[key].user)}</code> <span class="muted">({groups} '
            f"group{'' if groups == 1 else 's'})</span></span></label></li>"
            for index, (key, (name, groups)) in enumerate(self._labels.items())
        )
        message = f'<p class="alert" role="alert">{html.escape(error)}</p>\n' if error else ""
        body = (
            '<p class="warning"><strong>Development front end.</strong> No identity provider, no '
            "password: anyone who reaches this page can be anyone. Never expose it.</p>\n"
            f"<p>Pick someone to be. The application receives them exactly as the "
            f"<strong>{html.escape(self.profile.name)}</strong> front end would pass them.</p>\n"
            f'{message}<form method="post" action="{html.escape(self.login_path)}">\n'
            f'<input type="hidden" name="target" value="{html.escape(target)}">\n'
            f'<ul class="choices">\n{choices}\n</ul>\n'
            '<button type="submit">Sign in</button>\n</form>\n'
        )
        document = page(
            "Sign in",
            body,
            links=[Link("Back to the home page", "/", main=False)],
            eyebrow="Development sign-in",
        )
        return _respond(start_response, status, "text/html", document, head=head)

    # -- the session and what it injects ----------------------------------------------------

    def _session(self, environ: WSGIEnvironment) -> _Session | None:
        token = parse_cookie(environ).get(self.cookie_name)
        if not token:
            return None
        try:
            data = self._serializer.loads(token, max_age=_LIFETIME)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        user, session_id, authenticated_at = data.get("user"), data.get("sid"), data.get("at")
        if not (isinstance(user, str) and isinstance(session_id, str) and type(authenticated_at) is int):
            return None
        return _Session(user, session_id, authenticated_at) if user in self.users else None

    def _identity_environ(self, session: _Session) -> dict[str, str]:
        user, attributes = self.users[session.user]
        authenticated_at = datetime.fromtimestamp(session.authenticated_at, UTC)
        return environ_for(
            self.profile,
            user,
            attributes,
            channel=self.channel,
            session_id=session.session_id,
            authenticated_at=authenticated_at,
            expires_at=authenticated_at + SESSION_LIFETIME,
            id_token=self._id_token,
            signer=self.signer,
        )


def _signer(profile: Profile, signer: TestSigner | None) -> TestSigner | None:
    """The key a signed profile's front end signs with; ``None`` for the others."""
    if not profile.signed:
        if signer is not None:
            raise ConfigError("signer", f"profile {profile.name!r} passes no signed assertion")
        return None
    if profile.assertion_header is None:
        raise ConfigError(
            "profile",
            f"profile {profile.name!r} names no assertion header: pass "
            f"dataclasses.replace(get_profile({profile.name!r}), assertion_header=...)",
        )
    if signer is not None:
        if signer.algorithm not in profile.algorithms:
            raise ConfigError("signer", f"{signer.algorithm} is not one of {profile.name}'s algorithms")
        return signer
    from .signed import TestSigner  # PyJWT (the jwt extra) only for signed profiles

    try:
        return TestSigner.for_profile(profile)
    except ValueError as exc:
        raise ConfigError("signer", f"{exc}: pass a signer") from None


def _keys(signer: TestSigner, path: str, start_response: StartResponse) -> list[bytes]:
    """The development key set (JWKS), or one key in PEM by its ``kid``."""
    if path == JWKS_PATH:
        return _respond(start_response, "200 OK", "application/json", json.dumps(signer.jwks))
    if path == KEYS_PATH + signer.kid:
        return _respond(start_response, "200 OK", "application/x-pem-file", signer.public_pem.decode())
    return _respond(start_response, "404 Not Found", "text/plain", "No such key.\n")


def _checked_users(
    users: Mapping[str, SampleUser | tuple[str, Mapping[str, Any]]], profile: Profile
) -> dict[str, SampleUser]:
    if not isinstance(users, Mapping) or not users:
        raise ConfigError("users", "expected a non-empty mapping of key -> SampleUser")
    for key, value in users.items():
        if not isinstance(key, str) or not key:
            raise ConfigError("users", f"keys must be non-empty strings, not {key!r}")
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and value[0]):
            raise ConfigError("users", f"{key!r}: expected SampleUser(user, attributes), got {value!r}")
        if not isinstance(value[1], Mapping) or not all(_values(values) for values in value[1].values()):
            raise ConfigError(
                "users", f"{key!r}: attributes must be a mapping of source name -> a string or strings"
            )
    return users_for_profile(profile, users)


def _values(values: object) -> bool:
    """True for an attribute's value or values: a string, or a list or tuple of strings."""
    strings = isinstance(values, list | tuple) and all(isinstance(value, str) for value in values)
    return isinstance(values, str) or strings


def _label(key: str, user: SampleUser | tuple[str, Mapping[str, Any]]) -> tuple[str, int]:
    """The name and the number of groups to show on the sign-in form."""
    attributes = user[1]
    name = next((attributes[source] for source in _NAME_SOURCES if source in attributes), key)
    groups = next((attributes[source] for source in _GROUP_SOURCES if source in attributes), ())
    return (name if isinstance(name, str) else ", ".join(name)), (
        1 if isinstance(groups, str) else len(groups)
    )


def _endpoint(
    template: str | None, placeholders: tuple[str, ...], fallback: tuple[str, str]
) -> tuple[str, str]:
    """The path and the parameter carrying one of ``placeholders`` in a login / logout URL template."""
    if template is None:
        return fallback
    parts = urlsplit(template)
    param = next((name for name, value in parse_qsl(parts.query) if value in placeholders), fallback[1])
    return parts.path, param


def _paths(paths: Iterable[str]) -> tuple[str, ...]:
    items = (paths,) if isinstance(paths, str) else tuple(paths)
    for path in items:
        if not isinstance(path, str) or safe_next(path, default="") != path:
            raise ConfigError("protected_paths", f"{path!r} is not a path on this site (/...)")
    return items


def _current_path(environ: WSGIEnvironment) -> str:
    """The request's site path and query, as the browser sent them (for coming back)."""
    text = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        path = text.encode("latin-1")  # WSGI carries the request's bytes as latin-1
    except UnicodeEncodeError:
        path = text.encode()
    query = environ.get("QUERY_STRING", "")
    return safe_next(quote(path, safe="/;=,:@!$&'()*+~") + (f"?{query}" if query else ""))


def _scrubber(profile: Profile, users: Iterable[SampleUser]) -> TrustGate:
    """Deletes client headers that look like anything this front end sets."""
    sources = {*profile.user, REMOTE_USER, *profile.claims.values()}
    sources.update(source for user in users for source in user.attributes)
    variables = {variable for source in sources for variable in profile.variables_for(source)}
    variables.update(profile.variables.values(), profile.json_variables)
    if profile.assertion_header is not None:
        variables.add(profile.assertion_header)
    return TrustGate(
        channel="environ", variables=variables, read_keys=(), owned_prefixes=profile.owned_prefixes
    )


def _loopback(address: object) -> bool:
    if not isinstance(address, str):
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _same_origin(request: Request) -> bool:
    """False for a browser's cross-site form post (a page elsewhere signing you in)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return _netloc(parts.scheme, parts.netloc) == _netloc(request.scheme, request.host)


def _local_target(value: str, host: str) -> str:
    """``value`` as a same-site path: a path, or an absolute URL on ``host``; else ``/``."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return "/"
    if parts.scheme in ("http", "https") and parts.netloc:
        if _netloc(parts.scheme, parts.netloc) != _netloc(parts.scheme, host):
            return "/"
        value = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    return safe_next(value)


def _netloc(scheme: str, netloc: str) -> str:
    """``netloc`` lower-cased, without the scheme's default port."""
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    netloc = netloc.lower()
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


#: The sign-in form posts to this site and has one inline style: nothing else loads or runs.
_POLICY = content_security_policy(styles=[STYLE], forms=True)


def _respond(
    start_response: StartResponse,
    status: str,
    media_type: str,
    text: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    head: bool = False,
) -> list[bytes]:
    body = text.encode()
    start_response(
        status,
        [
            ("Content-Type", f"{media_type}; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *security_headers(_POLICY),
            *headers,
        ],
    )
    return [] if head else [body]
