"""Internal: the request path, independent of the server interface.

profile -> trust gate -> parser (decode, map, Identity) -> roles -> session -> rules.
:class:`Core` takes the request's facts as an environ-shaped mapping (server
variables and ``HTTP_*`` headers, ``REMOTE_ADDR``, ``PATH_INFO``, ``SCRIPT_NAME``,
``REQUEST_METHOD``, ``QUERY_STRING``) and returns a :data:`Decision`: the identity,
the headers to add to the app's answer (Set-Cookie), or an answer of its own
(:class:`~shibwsgi.responses.Response`: a refusal or an endpoint's). The WSGI shell
(:mod:`shibwsgi.middleware`) and the ASGI shell (:mod:`shibwsgi.asgi`) only adapt it.
Option validation lives in :mod:`shibwsgi.options`, the session, login and logout
flows in :mod:`shibwsgi.flows`, the roles hook in :mod:`shibwsgi.roles` and the
answer to nginx's ``auth_request`` in :mod:`shibwsgi.auth_request`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import responses
from .attributes import DEFAULT_MAX_BYTES, DEFAULT_MAX_VALUES, Attribute
from .auth_request import DEFAULT_AUTH_HEADERS, AuthEndpoint, check_header_sources
from .authz import Requirement, Rule, Rules, refusal
from .cookies import DEFAULT_CACHE_ENTRIES
from .credentials import names_credential
from .errors import ConfigError, RequestError, SessionError
from .flows import Flows, Header, session_binding
from .frontend_urls import FrontEndURLs
from .identity import Identity
from .logs import log_refusal
from .memo import DEFAULT_MAX_BYTES as DEFAULT_IDENTITY_CACHE_BYTES
from .memo import IdentityMemo
from .needs import Setup, check_needs, given_options, keyword_defaults, source_reads
from .options import (
    attribute_map,
    check_channel_options,
    check_source_names,
    customised,
    endpoint_path,
    function,
    iterable,
    non_negative,
    one_of,
    positive,
    strings,
    text,
    token,
)
from .parsing import IdentityParser
from .probe import DEFAULT_PROBE_PATH, Probe, probing
from .profiles import Profile, get_profile
from .responses import ERROR_PAGE_KEY, ErrorPage, Response
from .roles import DEFAULT_ROLES_TIMEOUT, DEFAULT_ROLES_TTL, RolesHook, RolesResolver
from .sessions.base import SessionStore
from .sources import identity_source
from .trust import CHANNELS, DEFAULT_SECRET_HEADER, SIGNED, TrustGate, parse_networks
from .whoami import WhoAmI

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .assertions import AssertionVerifier

__all__ = ["ENVIRON_KEY", "LOGIN_PATH_KEY", "OPTION_DEFAULTS", "Core", "Decision", "expose"]

#: Where the application finds the :class:`Identity` (or ``None``).
ENVIRON_KEY = "shibwsgi.identity"
#: Where refusals (and the Flask helpers) find the login path.
LOGIN_PATH_KEY = "shibwsgi.login_path"

#: Defaults follow the Shibboleth SP's own session defaults: one hour of
#: inactivity (``timeout="3600"``), eight hours in all (``lifetime="28800"``).
DEFAULT_IDLE_TIMEOUT = 3600
DEFAULT_ABSOLUTE_TIMEOUT = 28800

#: A path the middleware answers itself: (request facts, front-end identity) -> answer.
Endpoint = Callable[["WSGIEnvironment", "Identity | None"], Response]


class Decision(NamedTuple):
    """What the core decided for one request.

    ``answer`` set: send it instead of calling the app. Otherwise call the app
    with ``identity`` and append ``headers`` (Set-Cookie, the probe's mark) to its answer.
    """

    identity: Identity | None
    headers: list[Header]
    answer: Response | None


class Core:
    """The request path: every option validated once, then :meth:`decide` per request.

    ``error_page(status, message, environ)`` renders the HTML of the middleware's
    refusals in the app's own layout (``None``: the built-in page).

    Every option is keyword-only and validated here, once; a bad one raises
    :class:`~shibwsgi.ConfigError` naming it. With ``session`` (a store), the
    identity seen on ``login_path`` is kept in a server-side session so that
    only the login path needs protecting by the front end. ``whoami_path`` (off
    by default) shows signed-in users their own identity (:mod:`shibwsgi.whoami`).
    """

    def __init__(
        self,
        *,
        profile: str | Profile = "shibboleth",
        user: str | Iterable[str] | None = None,
        attributes: Mapping[str, str | Attribute] | None = None,
        channel: str | None = None,
        trusted_proxies: Iterable[str] = (),
        proxy_secret: str | None = None,
        proxy_secret_header: str = DEFAULT_SECRET_HEADER,
        encoding: str | None = None,
        prefix: str | Iterable[str] | None = None,
        max_attribute_bytes: int = DEFAULT_MAX_BYTES,
        max_attribute_values: int = DEFAULT_MAX_VALUES,
        session: SessionStore | None = None,
        secret_key: str | Sequence[str] | None = None,
        idle_timeout: int = DEFAULT_IDLE_TIMEOUT,
        absolute_timeout: int = DEFAULT_ABSOLUTE_TIMEOUT,
        cookie_name: str | None = None,
        cookie_secure: bool = True,
        login_path: str | None = "/login",
        logout_path: str | None = "/logout",
        whoami_path: str | None = None,
        login_url: str | None = None,
        logout_url: str | None = None,
        rules: Iterable[Rule] = (),
        identity_cache_bytes: int = DEFAULT_IDENTITY_CACHE_BYTES,
        cookie_cache_entries: int = DEFAULT_CACHE_ENTRIES,
        roles: RolesHook | None = None,
        roles_ttl: int = DEFAULT_ROLES_TTL,
        roles_timeout: float = DEFAULT_ROLES_TIMEOUT,
        auth_path: str | None = None,
        auth_headers: Mapping[str, str] = DEFAULT_AUTH_HEADERS,
        assertion_header: str | None = None,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | str | None = None,
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        algorithms: str | Iterable[str] | None = None,
        leeway: int = 0,
        error_page: ErrorPage | None = None,
        probe_path: str | None = None,
        probe_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        given = given_options(locals(), OPTION_DEFAULTS)  # first: locals() holds the options only
        error_page = None if error_page is None else function("error_page", error_page)
        clock = function("clock", clock)
        login_url, logout_url = text("login_url", login_url), text("logout_url", logout_url)
        self.error_page = error_page
        self.profile = customised(get_profile(profile), encoding=encoding, prefix=prefix)
        channel = one_of("channel", self.profile.channel if channel is None else channel, CHANNELS)
        # A signed profile reads its assertion header, the signature is the trust (channel= is refused).
        self.channel = SIGNED if self.profile.signed else channel
        attribute_specs = attribute_map(attributes or {})
        user_sources = strings("user", user) if user is not None else self.profile.user
        prefixed, decoded = source_reads(
            self.profile, [*user_sources, *(spec.source for spec in attribute_specs.values())]
        )
        check_needs(
            given,
            Setup(
                profile=self.profile,
                channel=self.channel,
                session=session is not None,
                roles=roles is not None,
                jwks=jwks_url is not None or jwks is not None,
                proxy_secret=proxy_secret is not None,
                login_path=login_path is not None,
                logout_path=logout_path is not None,
                auth_path=auth_path is not None,
                probe_token=probe_token is not None,
                uncapped_attributes=any(spec.max_bytes is None for spec in attribute_specs.values()),
                prefixed=prefixed,
                decoded=decoded,
            ),
        )
        networks = parse_networks(strings("trusted_proxies", trusted_proxies))
        check_channel_options(self.channel, networks, proxy_secret, self.profile.name)
        for source in user_sources:
            if names_credential(source):
                raise ConfigError(
                    "user",
                    f"{source!r} names a credential (a token, a session id...): a user id is logged, "
                    "shown and kept in sessions; take it from an identifier such as eppn or sub",
                )
        check_source_names(
            self.channel,
            {
                "prefix": self.profile.prefixes,
                "user": [name for source in user_sources for name in self.profile.variables_for(source)],
                "attributes": [
                    name
                    for spec in attribute_specs.values()
                    for name in self.profile.variables_for(spec.source)
                ],
                "profile": [*self.profile.variables.values(), *self.profile.json_variables],
            },
            headers_only=not self.profile.json_variables,
        )
        self.parser = IdentityParser(
            self.profile,
            channel=self.channel,
            user=user_sources,
            attributes=attribute_specs,
            max_bytes=positive("max_attribute_bytes", max_attribute_bytes),
            max_values=positive("max_attribute_values", max_attribute_values),
        )
        self.memo = IdentityMemo(
            self.parser.parse,
            key_names=self.parser.key_names(),
            max_bytes=non_negative("identity_cache_bytes", identity_cache_bytes),
        )
        self.verifier = _verifier(
            self.profile,
            channel=self.channel,
            user=user_sources,
            assertion_header=None
            if assertion_header is None
            else token("assertion_header", assertion_header),
            jwks_url=text("jwks_url", jwks_url),
            jwks=jwks,
            issuer=issuer,
            audience=None if audience is None else strings("audience", audience),
            algorithms=None if algorithms is None else strings("algorithms", algorithms),
            leeway=leeway,
        )
        #: Where the identity comes from: chosen here, once (see :mod:`shibwsgi.sources`).
        self.source = identity_source(
            signed=self.profile.signed, verifier=self.verifier, parser=self.parser, memo=self.memo
        )
        self._read = self.source.read
        verified_keys = {self.verifier.key} if self.verifier else set()
        read_keys = verified_keys if self.profile.signed else {*self.parser.read_keys(), *verified_keys}
        self.gate = TrustGate(
            channel=self.channel,
            variables={*self.parser.variable_names(), *self.profile.companions, *verified_keys},
            read_keys=read_keys,
            owned_prefixes=self.profile.owned_prefixes,
            trusted_proxies=networks,
            proxy_secret=proxy_secret,
            proxy_secret_header=token("proxy_secret_header", proxy_secret_header),
            series_keys=self.parser.series_keys(),
        )
        self.login_path = endpoint_path("login_path", login_path)
        self.logout_path = endpoint_path("logout_path", logout_path)
        self.whoami_path = endpoint_path("whoami_path", whoami_path)
        self.rules = rules if isinstance(rules, Rules) else Rules(iterable("rules", rules))
        self.roles = (
            None if roles is None else RolesResolver(roles, ttl=roles_ttl, timeout=roles_timeout, clock=clock)
        )
        self.sessions, self.cookie = session_binding(
            session,
            secret_key,
            idle_timeout,
            absolute_timeout,
            None if cookie_name is None else token("cookie_name", cookie_name),
            cookie_secure,
            clock,
            cookie_cache_entries,
        )
        self.flows = Flows(
            sessions=self.sessions,
            cookie=self.cookie,
            front_end=FrontEndURLs(
                login_url=login_url if login_url is not None else self.profile.login_url,
                logout_url=logout_url if logout_url is not None else self.profile.logout_url,
            ),
            login_path=self.login_path,
            profile_name=self.profile.name,
        )
        self.auth_path = endpoint_path("auth_path", auth_path)
        self.probe = _probe(probe_path, probe_token, self.channel, self.profile.name, read_keys)
        # Rules only an upstream behind auth_request reads case-insensitively: checked when it is on.
        auth_rules = self.rules if self.auth_path is not None else Rules(())
        auth = AuthEndpoint(headers=auth_headers, rules=auth_rules, resolve=self._resolve)
        if "auth_headers" in given:  # the defaults name attributes an app may not have
            check_header_sources(auth.headers, attribute_specs, roles=roles is not None)
        self.endpoints = _endpoints(
            {
                "login_path": (self.login_path, self._login),
                "logout_path": (self.logout_path, self.flows.logout),
                "auth_path": (self.auth_path, auth),
                "whoami_path": (
                    self.whoami_path,
                    WhoAmI(
                        resolve=self._resolve,
                        flows=self.flows,
                        channel=self.channel,
                        attributes=attribute_specs,
                    ),
                ),
                **({"probe_path": (self.probe.path, self.probe)} if self.probe else {}),
            }
        )

    def decide(self, environ: WSGIEnvironment) -> Decision:
        """Judge one request; ``environ`` is scrubbed of lookalikes and gets the identity."""
        if self.login_path is not None:
            environ[LOGIN_PATH_KEY] = self.login_path
        if self.error_page is not None:
            environ[ERROR_PAGE_KEY] = self.error_page
        path = environ.get("PATH_INFO") or "/"
        probe: Probe | None = None
        extra: list[Header] = []
        try:
            if self.probe is not None:
                probe, extra = probing(self.probe, environ, path)  # before the gate
            front = probe.identify(self.identify, environ) if probe else self.identify(environ)
            endpoint = self.endpoints.get(path)
            if endpoint is self.probe and probe is None:
                endpoint = None  # without its token the probe path does not exist
            if endpoint is not None:
                return Decision(None, [], endpoint(environ, front).adding(extra))
            # Judged before the identity: a path no rule can be meant for is a 400 for anyone.
            requirement: Requirement | None = (
                self.rules.requirement_for(path, environ.get("REQUEST_METHOD", "GET"))
                if self.rules.rules
                else None
            )
            identity, headers = self._resolve(environ, front)
        except RequestError as exc:
            log_refusal(environ, exc.status, exc.log_message)
            expose(environ, None)
            return Decision(
                None, [], responses.error_response(environ, exc.status, exc.public_message).adding(extra)
            )
        except SessionError as exc:
            log_refusal(environ, 503, f"session store failed: {exc}")
            expose(environ, None)
            message = "the session store is unavailable; try again later"
            return Decision(None, [], responses.error_response(environ, 503, message).adding(extra))
        expose(environ, identity)
        if extra:
            headers = [*headers, *extra]
        if requirement is not None and not requirement.allows(identity):
            return Decision(identity, [], refusal(environ, identity, requirement).adding(headers))
        return _decision((identity, headers, None))

    def identify(self, environ: WSGIEnvironment) -> Identity | None:
        """Scrub ``environ`` and return the front end's identity in it, if any."""
        if not self.gate.admit(environ):
            return None
        return self._read(environ)

    def _resolve(
        self, environ: WSGIEnvironment, front: Identity | None
    ) -> tuple[Identity | None, list[Header]]:
        # roles -> session: a session keeps the roles its identity had when it started.
        if front is not None and self.roles is not None:
            front = self.roles.with_roles(front)
        if self.sessions is None:  # stateless: the front end's identity is the request's
            return front, []
        return self.flows.resolve(environ, front)

    def _login(self, environ: WSGIEnvironment, front: Identity | None) -> Response:
        # Logging in again is how a user picks up changed roles: never the cached answer.
        if front is not None and self.roles is not None:
            front = self.roles.with_roles(front, fresh=True)
        return self.flows.login(environ, front)


#: ``Decision(*fields)`` made in C: the named tuple's own ``__new__`` is Python, a frame per request.
_decision = functools.partial(tuple.__new__, Decision)

#: Each option's default: an option is "given" when it differs (see :mod:`shibwsgi.needs`).
OPTION_DEFAULTS = keyword_defaults(Core.__init__)


def expose(environ: WSGIEnvironment, identity: Identity | None) -> None:
    """Publish ``identity`` to the app: the environ key and ``REMOTE_USER``."""
    environ[ENVIRON_KEY] = identity
    if identity is None:
        environ.pop("REMOTE_USER", None)
    else:
        environ["REMOTE_USER"] = identity.user


def _verifier(profile: Profile, **options: Any) -> AssertionVerifier | None:
    """The signed-assertion verifier, when the profile is signed or assertion options are set."""
    assertion_options = ("assertion_header", "jwks_url", "jwks", "issuer", "audience", "algorithms")
    if not profile.signed and all(options[name] is None for name in assertion_options):
        return None
    from .assertions import build_verifier  # PyJWT is an optional dependency

    return build_verifier(profile, **options)


def _probe(
    path: str | None, token: str | None, channel: str, profile: str, read_keys: set[str]
) -> Probe | None:
    """The ``probe_path`` endpoint, when ``probe_token`` is set (:mod:`shibwsgi.probe`)."""
    if token is None:
        return None
    checked = endpoint_path("probe_path", path or DEFAULT_PROBE_PATH) or DEFAULT_PROBE_PATH
    return Probe(path=checked, token=token, channel=channel, profile=profile, read_keys=read_keys)


def _endpoints(settings: Mapping[str, tuple[str | None, Endpoint]]) -> dict[str, Endpoint]:
    """WSGI path -> endpoint, for the endpoints switched on; two on one path is a ConfigError."""
    table: dict[str, Endpoint] = {}
    owners: dict[str, str] = {}
    for setting, (path, endpoint) in settings.items():
        if path is None:
            continue
        if path in table:
            raise ConfigError(setting, f"must differ from {owners[path]} ({path!r})")
        table[path], owners[path] = endpoint, setting
    return table
