"""The WSGI middleware: wires trust gate, parser, sessions, login/logout and rules."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from . import responses
from .attributes import DEFAULT_MAX_BYTES, DEFAULT_MAX_VALUES, Attribute
from .authz import Rule, Rules, deny
from .cookies import SessionCookie
from .decoding import ENCODINGS
from .errors import ConfigError, RequestError, SessionError
from .frontend_urls import FrontEndURLs
from .identity import Identity
from .parsing import IdentityParser
from .profiles import Profile, get_profile
from .redirects import safe_next
from .sessions.base import SessionStore
from .sessions.manager import SessionManager
from .settings import parse_settings
from .trust import CHANNELS, DEFAULT_SECRET_HEADER, TrustGate, parse_networks

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_KEY", "LOGIN_PATH_KEY", "SSOMiddleware"]

log = logging.getLogger("shibwsgi")

#: Where the application finds the :class:`Identity` (or ``None``).
ENVIRON_KEY = "shibwsgi.identity"
#: Where refusals (and the Flask helpers) find the login path.
LOGIN_PATH_KEY = "shibwsgi.login_path"

#: Defaults follow the Shibboleth SP's own session defaults: one hour of
#: inactivity (``timeout="3600"``), eight hours in all (``lifetime="28800"``).
DEFAULT_IDLE_TIMEOUT = 3600
DEFAULT_ABSOLUTE_TIMEOUT = 28800

Header = tuple[str, str]


class SSOMiddleware:
    """Turn what the front end passed into ``environ["shibwsgi.identity"]`` and ``REMOTE_USER``.

    Every option is keyword-only and validated here, once; a bad one raises
    :class:`~shibwsgi.ConfigError` naming it. With ``session`` (a store), the
    identity seen on ``login_path`` is kept in a server-side session so that
    only the login path needs protecting by the front end.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        profile: str | Profile = "shibboleth",
        user: str | Iterable[str] | None = None,
        attributes: Mapping[str, str | Attribute] | None = None,
        channel: str = "environ",
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
        login_url: str | None = None,
        logout_url: str | None = None,
        rules: Iterable[Rule] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(app):
            raise ConfigError("app", f"expected a WSGI callable, got {type(app).__name__}")
        self.app = app
        self.profile = _customised(get_profile(profile), encoding=encoding, prefix=prefix)
        self.channel = _one_of("channel", channel, CHANNELS)
        networks = parse_networks(_strings("trusted_proxies", trusted_proxies))
        _check_channel_options(self.channel, networks, proxy_secret)
        self.parser = IdentityParser(
            self.profile,
            channel=self.channel,
            user=_strings("user", user) if user is not None else self.profile.user,
            attributes=_attributes(attributes or {}),
            max_bytes=_positive("max_attribute_bytes", max_attribute_bytes),
            max_values=_positive("max_attribute_values", max_attribute_values),
        )
        self.gate = TrustGate(
            channel=self.channel,
            variables=self.parser.variable_names(),
            read_keys=self.parser.read_keys(),
            owned_prefixes=self.profile.owned_prefixes,
            trusted_proxies=networks,
            proxy_secret=proxy_secret,
            proxy_secret_header=proxy_secret_header,
        )
        self.login_path = _path("login_path", login_path)
        self.logout_path = _path("logout_path", logout_path)
        if self.login_path is not None and self.login_path == self.logout_path:
            raise ConfigError("logout_path", "must differ from login_path")
        self.front_end = FrontEndURLs(
            login_url=login_url if login_url is not None else self.profile.login_url,
            logout_url=logout_url if logout_url is not None else self.profile.logout_url,
        )
        self.rules = rules if isinstance(rules, Rules) else Rules(rules)
        self.sessions, self.cookie = _sessions(
            session, secret_key, idle_timeout, absolute_timeout, cookie_name, cookie_secure, clock
        )

    @classmethod
    def from_mapping(
        cls, app: WSGIApplication, settings: Mapping[str, str], **overrides: Any
    ) -> SSOMiddleware:
        """Build from string settings named ``SHIBWSGI_*`` (other keys are ignored).

        Keyword ``overrides`` win over the settings.
        """
        return cls(app, **{**parse_settings(settings), **overrides})

    @classmethod
    def from_env(cls, app: WSGIApplication, **overrides: Any) -> SSOMiddleware:
        """Build from the process environment's ``SHIBWSGI_*`` variables."""
        return cls.from_mapping(app, os.environ, **overrides)

    def __repr__(self) -> str:
        store = type(self.sessions.store).__name__ if self.sessions else None
        return (
            f"<SSOMiddleware profile={self.profile.name!r} channel={self.channel!r} "
            f"session={store} app={self.app!r}>"
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.login_path is not None:
            environ[LOGIN_PATH_KEY] = self.login_path
        path = environ.get("PATH_INFO") or "/"
        try:
            front = self.identify(environ)
            if path == self.logout_path:
                return self._logout(environ, start_response)
            if path == self.login_path:
                return self._login(environ, start_response, front)
            identity, headers = self._resolve(environ, front)
        except RequestError as exc:
            _log_refusal(environ, exc.status, exc.log_message)
            expose(environ, None)
            return responses.error(environ, start_response, exc.status, exc.public_message)
        except SessionError as exc:
            _log_refusal(environ, 503, f"session store failed: {exc}")
            expose(environ, None)
            return responses.error(
                environ, start_response, 503, "the session store is unavailable; try again later"
            )
        expose(environ, identity)
        start_response = _adding(start_response, headers)
        if self.rules.rules:
            requirement = self.rules.requirement_for(path, environ.get("REQUEST_METHOD", "GET"))
            if requirement is not None and not requirement.allows(identity):
                return deny(environ, start_response, identity, requirement)
        return self.app(environ, start_response)

    def identify(self, environ: WSGIEnvironment) -> Identity | None:
        """Scrub ``environ`` and return the front end's identity in it, if any."""
        if not self.gate.admit(environ):
            return None
        return self.parser.parse(environ)

    # -- sessions ---------------------------------------------------------------------

    def _resolve(
        self, environ: WSGIEnvironment, front: Identity | None
    ) -> tuple[Identity | None, list[Header]]:
        """The request's identity and any Set-Cookie headers the session needs."""
        if self.sessions is None or self.cookie is None:
            return front, []
        present, session_id = self.cookie.read(environ)
        session = self.sessions.load(session_id) if session_id else None
        headers = [self.cookie.clear_header()] if present and session is None else []
        if session is not None and (front is None or _same_login(session.identity, front)):
            self.sessions.touch(session)
            return front or session.identity, headers
        if front is None:
            return None, headers
        if session is not None:
            # Another user, or a new front-end session: never keep the old one.
            self.sessions.end(session.id)
        return front, [self.cookie.set_header(self.sessions.start(front).id)]

    def _login(
        self, environ: WSGIEnvironment, start_response: StartResponse, front: Identity | None
    ) -> Iterable[bytes]:
        target = safe_next(_next_parameter(environ))
        if front is None:
            identity, headers = self._resolve(environ, None)
            if identity is not None:
                return responses.redirect(start_response, target, headers=headers)
            come_back = (
                f"{self.login_path}?next={quote(target, safe='')}" if target != "/" else str(self.login_path)
            )
            front_end_login = self.front_end.login(
                environ, safe_next(come_back, default=str(self.login_path))
            )
            if front_end_login is not None:
                return responses.redirect(start_response, front_end_login, headers=headers)
            _log_refusal(environ, 401, "no identity on the login path: is it protected by the front end?")
            return responses.error(
                environ,
                start_response,
                401,
                "not logged in at the login path: it must be protected by the front end "
                "(for example Require shib-session, or AuthType openid-connect)",
                headers=headers,
            )
        headers = []
        if self.sessions is not None and self.cookie is not None:
            _, old_id = self.cookie.read(environ)
            if old_id:
                self.sessions.end(old_id)
            # A new id at every login: a session id planted before login is worthless.
            headers.append(self.cookie.set_header(self.sessions.start(front).id))
        log.info("login: %s via %s", front.user, self.profile.name)
        return responses.redirect(start_response, target, headers=headers)

    def _logout(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = []
        if self.sessions is not None and self.cookie is not None:
            present, session_id = self.cookie.read(environ)
            if session_id:
                self.sessions.end(session_id)
            if present:
                headers.append(self.cookie.clear_header())
        return_to = safe_next(_next_parameter(environ))
        return responses.redirect(start_response, self.front_end.logout(environ, return_to), headers=headers)


def expose(environ: WSGIEnvironment, identity: Identity | None) -> None:
    """Publish ``identity`` to the app: the environ key and ``REMOTE_USER``."""
    environ[ENVIRON_KEY] = identity
    if identity is None:
        environ.pop("REMOTE_USER", None)
    else:
        environ["REMOTE_USER"] = identity.user


def _same_login(stored: Identity, front: Identity) -> bool:
    if stored.user != front.user:
        return False
    return stored.session_id is None or front.session_id is None or stored.session_id == front.session_id


def _next_parameter(environ: WSGIEnvironment) -> str | None:
    try:
        values = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=50).get("next")
    except ValueError:  # too many fields: not a link this middleware made
        return None
    return values[0] if values else None


def _adding(start_response: StartResponse, headers: list[Header]) -> StartResponse:
    if not headers:
        return start_response

    def start_with_headers(status: str, response_headers: list[Header], exc_info: Any = None) -> Any:
        return start_response(status, [*response_headers, *headers], exc_info)

    return start_with_headers


def _log_refusal(environ: WSGIEnvironment, status: int, message: str) -> None:
    method = environ.get("REQUEST_METHOD", "GET")
    log.warning("%s %s refused with %d: %s", method, environ.get("PATH_INFO", "/"), status, message)


def _sessions(
    store: SessionStore | None,
    secret_key: str | Sequence[str] | None,
    idle_timeout: int,
    absolute_timeout: int,
    cookie_name: str | None,
    cookie_secure: bool,
    clock: Callable[[], float],
) -> tuple[SessionManager | None, SessionCookie | None]:
    idle = _positive("idle_timeout", idle_timeout)
    absolute = _positive("absolute_timeout", absolute_timeout)
    if idle > absolute:
        raise ConfigError("idle_timeout", "cannot be longer than absolute_timeout")
    if store is None:
        if secret_key is not None:
            raise ConfigError("secret_key", "only used with a session store (session=...)")
        return None, None
    if not all(callable(getattr(store, method, None)) for method in ("get", "set", "delete")):
        raise ConfigError("session", f"{store!r} is not a session store (get/set/delete)")
    if secret_key is None:
        raise ConfigError("secret_key", "a session store needs secret_key to sign the session cookie")
    cookie = SessionCookie(secret_key, name=cookie_name, secure=cookie_secure, max_age=absolute)
    return SessionManager(store, idle_timeout=idle, absolute_timeout=absolute, clock=clock), cookie


def _customised(profile: Profile, *, encoding: str | None, prefix: str | Iterable[str] | None) -> Profile:
    if encoding is not None:
        profile = replace(profile, encoding=_one_of("encoding", encoding, ENCODINGS))
    if prefix is not None:
        prefixes = (prefix,) if isinstance(prefix, str) else _strings("prefix", prefix, allow_empty=True)
        profile = replace(profile, prefixes=prefixes)
    return profile


def _check_channel_options(channel: str, networks: tuple[object, ...], proxy_secret: str | None) -> None:
    if channel == "headers" and not networks:
        raise ConfigError(
            "trusted_proxies",
            "channel='headers' needs the addresses of the proxies that set the identity headers; "
            "anyone else could send them",
        )
    if channel == "environ" and (networks or proxy_secret):
        raise ConfigError(
            "channel",
            "trusted_proxies and proxy_secret only apply to channel='headers'; in the environ "
            "channel identity comes from server variables, which clients cannot set",
        )
    if proxy_secret is not None and (not isinstance(proxy_secret, str) or len(proxy_secret) < 16):
        raise ConfigError("proxy_secret", "must be a string of at least 16 characters")


def _attributes(attributes: Mapping[str, str | Attribute]) -> dict[str, Attribute]:
    if not isinstance(attributes, Mapping):
        raise ConfigError("attributes", "expected a mapping of app name -> source name or Attribute")
    result = {}
    for name, spec in attributes.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("attributes", f"attribute names must be non-empty strings, not {name!r}")
        if isinstance(spec, str):
            spec = Attribute(spec)
        if not isinstance(spec, Attribute):
            raise ConfigError("attributes", f"{name!r}: expected a source name or Attribute, got {spec!r}")
        result[name] = spec
    return result


def _path(setting: str, path: str | None) -> str | None:
    if path is None:
        return None
    if not isinstance(path, str) or safe_next(path, default="") != path or "?" in path or "#" in path:
        raise ConfigError(setting, f"must be a plain path starting with '/', not {path!r}")
    return path


def _one_of(setting: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(setting, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _positive(setting: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(setting, f"must be a positive integer, not {value!r}")
    return value


def _strings(setting: str, values: str | Iterable[str], *, allow_empty: bool = False) -> tuple[str, ...]:
    items = (values,) if isinstance(values, str) else tuple(values)
    for item in items:
        if not isinstance(item, str) or (not item and not allow_empty):
            raise ConfigError(setting, f"expected non-empty strings, got {item!r}")
    if not items and setting == "user":
        raise ConfigError(setting, "at least one source name is needed")
    return items
