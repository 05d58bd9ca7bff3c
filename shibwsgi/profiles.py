"""Front-end profiles: how each auth module names, joins and encodes what it passes.

A profile is plain data. The built-in ones follow the front ends' documented
defaults; build a :class:`Profile` (or ``dataclasses.replace`` a built-in one)
for anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .decoding import ENCODINGS
from .errors import ConfigError

__all__ = ["PROFILES", "REMOTE_USER", "Profile", "get_profile"]

#: The CGI variable set by the web server for the authenticated user. As a source
#: name it is read as that variable, never with a profile prefix.
REMOTE_USER = "REMOTE_USER"

#: The fields of :class:`~shibwsgi.Identity` a profile can fill from standard variables.
STANDARD_FIELDS = ("session_id", "provider", "authenticated_at", "expires_at")


@dataclass(frozen=True)
class Profile:
    """How one front end passes identity to the application.

    ``prefixes``: prepended to a source name to get the variable name; tried in order.
    ``delimiter``: joins multiple values (``None``: never split).
    ``backslash_escapes``: ``\\<delimiter>`` inside a value stands for the delimiter.
    ``encoding``: one of :data:`shibwsgi.decoding.ENCODINGS`.
    ``user``: source names tried in order for the user id.
    ``series``: values may also come as ``<name>_0 .. <name>_N`` (mod_auth_mellon).
    ``header_case``: source names are written in header case in variable names
    (``preferred-username`` -> ``X-Forwarded-Preferred-Username``).
    ``json_variables``: variables holding a JSON object of claims, preferred over the
    joined variables because JSON lists are lossless (mod_auth_openidc).
    ``variables`` / ``claims``: standard identity fields read from a plain variable or
    from a claim (looked up like an attribute), keyed by a name in ``STANDARD_FIELDS``.
    ``owned_prefixes``: variable-name prefixes that belong to the front end; client
    headers that look like them are removed in the environ channel.
    ``login_url`` / ``logout_url``: templates with ``{target}`` (or ``{target_path}``) /
    ``{return_to}`` (or ``{return_path}``); see :class:`~shibwsgi.frontend_urls.FrontEndURLs`.
    ``encodes_remote_user``: ``REMOTE_USER`` is sent in ``encoding`` too (the Shibboleth SP
    URL-encodes it with the attributes); otherwise it is plain UTF-8, as mod_auth_openidc
    sends it in every claim encoding.
    """

    name: str
    prefixes: tuple[str, ...] = ("",)
    delimiter: str | None = ";"
    backslash_escapes: bool = False
    encoding: str = "utf-8"
    user: tuple[str, ...] = (REMOTE_USER,)
    series: bool = False
    header_case: bool = False
    json_variables: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    claims: Mapping[str, str] = field(default_factory=dict)
    owned_prefixes: tuple[str, ...] = ()
    login_url: str | None = None
    logout_url: str | None = None
    encodes_remote_user: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("profile", "a profile needs a name")
        if self.encoding not in ENCODINGS:
            raise ConfigError("encoding", f"{self.encoding!r} is not one of {', '.join(ENCODINGS)}")
        if self.delimiter == "":
            raise ConfigError("delimiter", "use None for single-valued variables, not ''")
        if not self.user:
            raise ConfigError("user", "at least one source name is needed")
        for mapping in (self.variables, self.claims):
            unknown = set(mapping) - set(STANDARD_FIELDS)
            if unknown:
                raise ConfigError("profile", f"unknown fields {sorted(unknown)}: use {STANDARD_FIELDS}")
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))

    def variables_for(self, source: str) -> tuple[str, ...]:
        """The variable names that may carry ``source``, in the order they are tried."""
        if source == REMOTE_USER:
            return (REMOTE_USER,)
        name = source.title() if self.header_case else source
        return tuple(prefix + name for prefix in self.prefixes)


_SHIBBOLETH_VARIABLES = {
    "session_id": "Shib-Session-ID",
    "provider": "Shib-Identity-Provider",
    "authenticated_at": "Shib-Authentication-Instant",
    "expires_at": "Shib-Session-Expires",
}

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        profile.name: profile
        for profile in (
            Profile(
                name="shibboleth",
                backslash_escapes=True,
                user=("eppn", REMOTE_USER),
                variables=_SHIBBOLETH_VARIABLES,
                owned_prefixes=("Shib-",),
                login_url="/Shibboleth.sso/Login?target={target}",
                logout_url="/Shibboleth.sso/Logout?return={return_to}",
                encodes_remote_user=True,
            ),
            Profile(
                name="adfs",
                prefixes=("ADFS_",),
                backslash_escapes=True,
                user=("LOGIN",),
                variables=_SHIBBOLETH_VARIABLES,
                owned_prefixes=("ADFS_", "Shib-"),
                login_url="/Shibboleth.sso/Login?target={target}",
                logout_url="/Shibboleth.sso/Logout?return={return_to}",
                encodes_remote_user=True,
            ),
            Profile(
                name="openidc",
                prefixes=("OIDC_CLAIM_",),
                delimiter=",",
                encoding="latin-1",
                user=("sub",),
                json_variables=("OIDC_userinfo_json", "OIDC_id_token_payload"),
                variables={"expires_at": "OIDC_access_token_expires"},
                claims={"provider": "iss", "session_id": "sid", "authenticated_at": "auth_time"},
                owned_prefixes=("OIDC_", "OIDC-"),
                logout_url="/login/redirect_uri?logout={return_to}",
            ),
            Profile(
                name="mellon",
                prefixes=("MELLON_",),
                user=(REMOTE_USER,),
                series=True,
                claims={"provider": "IDP"},
                owned_prefixes=("MELLON_",),
                login_url="/mellon/login?ReturnTo={target}",
                logout_url="/mellon/logout?ReturnTo={return_to}",
            ),
            Profile(
                name="oauth2-proxy",
                prefixes=("X-Forwarded-", "X-Auth-Request-"),
                delimiter=",",
                header_case=True,
                user=("user",),
                owned_prefixes=("X-Auth-Request-",),
                # oauth2-proxy takes an absolute rd only from its --whitelist-domain list.
                login_url="/oauth2/start?rd={target_path}",
                logout_url="/oauth2/sign_out?rd={return_path}",
            ),
            Profile(name="remote-user", delimiter=None),
        )
    }
)


def get_profile(profile: str | Profile) -> Profile:
    """Return ``profile`` itself or the built-in profile of that name."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROFILES))
        raise ConfigError(
            "profile", f"unknown profile {profile!r}: use one of {known} or a Profile"
        ) from None
