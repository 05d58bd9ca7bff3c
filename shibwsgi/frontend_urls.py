"""Internal: the front end's own login and logout URLs, from the profile's templates."""

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

    A login template holds ``{target}`` (an absolute URL on the request's own host)
    or ``{target_path}`` (the site path alone); a logout template ``{return_to}`` or
    ``{return_path}``. Either is URL-quoted. The path forms suit front ends that only
    accept absolute URLs on an allow-list (oauth2-proxy's ``rd``).
    """

    def __init__(self, *, login_url: str | None, logout_url: str | None) -> None:
        self.login_url = _template("login_url", login_url, ("target", "target_path"))
        self.logout_url = _template("logout_url", logout_url, ("return_to", "return_path"))

    def login(self, environ: WSGIEnvironment, come_back_to: str) -> str | None:
        """Where to send a user to log in, returning to ``come_back_to`` (a site path)."""
        if self.login_url is None:
            return None
        return self.login_url.format(
            target=_quoted_url(environ, come_back_to), target_path=quote(come_back_to, safe="")
        )

    def logout(self, environ: WSGIEnvironment, return_to: str) -> str:
        """Where to send a user to log out of the front end, then back to ``return_to``."""
        if self.logout_url is None:
            return return_to
        return self.logout_url.format(
            return_to=_quoted_url(environ, return_to), return_path=quote(return_to, safe="")
        )


def _template(setting: str, template: str | None, placeholders: tuple[str, str]) -> str | None:
    if template is None:
        return None
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(setting, f"not a valid template: {exc}") from None
    if len(fields) != 1 or not fields <= set(placeholders):
        wanted = " or ".join(f"{{{name}}}" for name in placeholders)
        raise ConfigError(setting, f"needs exactly one placeholder, {wanted}; found {sorted(fields)}")
    if not template.startswith(("/", "https://", "http://")) or template.startswith("//"):
        raise ConfigError(setting, "must be a path on this site (/...) or an http(s) URL")
    if not all("!" <= char <= "~" for char in template):
        # It becomes a Location header: a CR or LF would split it, a space or non-ASCII break it.
        raise ConfigError(setting, "must be printable ASCII without spaces: percent-encode the rest")
    return template


def _quoted_url(environ: WSGIEnvironment, path: str) -> str:
    try:
        url = absolute_url(environ, path)
    except ValueError:
        url = path
    return quote(url, safe="")
