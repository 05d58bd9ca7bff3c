"""The front end's own login and logout URLs, from the profile's templates."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING
from urllib.parse import quote

from .errors import ConfigError
from .redirects import absolute_url

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["FrontEndURLs"]


class FrontEndURLs:
    """Builds ``/Shibboleth.sso/Login?target=...``-style URLs with a same-site return URL.

    Templates hold one placeholder: ``{target}`` (login) or ``{return_to}`` (logout);
    it receives an absolute URL on the request's own host, URL-quoted.
    """

    def __init__(self, *, login_url: str | None, logout_url: str | None) -> None:
        self.login_url = _template("login_url", login_url, "target")
        self.logout_url = _template("logout_url", logout_url, "return_to")

    def login(self, environ: WSGIEnvironment, come_back_to: str) -> str | None:
        """Where to send a user to log in, returning to ``come_back_to`` (a site path)."""
        if self.login_url is None:
            return None
        return self.login_url.format(target=_quoted_url(environ, come_back_to))

    def logout(self, environ: WSGIEnvironment, return_to: str) -> str:
        """Where to send a user to log out of the front end, then back to ``return_to``."""
        if self.logout_url is None:
            return return_to
        return self.logout_url.format(return_to=_quoted_url(environ, return_to))


def _template(setting: str, template: str | None, placeholder: str) -> str | None:
    if template is None:
        return None
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(setting, f"not a valid template: {exc}") from None
    if fields != {placeholder}:
        raise ConfigError(setting, f"needs exactly one placeholder {{{placeholder}}}, found {sorted(fields)}")
    if not template.startswith(("/", "https://", "http://")) or template.startswith("//"):
        raise ConfigError(setting, "must be a path on this site (/...) or an http(s) URL")
    return template


def _quoted_url(environ: WSGIEnvironment, path: str) -> str:
    try:
        url = absolute_url(environ, path)
    except ValueError:
        url = path
    return quote(url, safe="")
