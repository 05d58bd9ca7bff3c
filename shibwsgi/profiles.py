"""Front-end profiles: how each auth module names, joins and encodes what it passes.

A profile is plain data. The built-in ones follow the front ends' documented
defaults; build a :class:`Profile` (or ``dataclasses.replace`` a built-in one)
for anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .decoding import ENCODINGS
from .errors import ConfigError

__all__ = ["JSON_SHAPES", "PROFILES", "REMOTE_USER", "Profile", "get_profile"]

#: The CGI variable set by the web server for the authenticated user. As a source
#: name it is read as that variable, never with a profile prefix.
REMOTE_USER = "REMOTE_USER"

#: The fields of :class:`~shibwsgi.Identity` a profile can fill from standard variables.
STANDARD_FIELDS = ("session_id", "provider", "authenticated_at", "expires_at")

#: How a JSON variable lays out its claims (see ``Profile.json_shape``).
JSON_SHAPES = ("claims", "ms-client-principal")


@dataclass(frozen=True)
class Profile:
    """How one front end passes identity to the application.

    ``prefixes``: prepended to a source name to get the variable name; tried in order.
    ``delimiter``: joins multiple values (``None``: never split).
    ``backslash_escapes``: ``\\<delimiter>`` inside a value stands for the delimiter.
    ``encoding``: one of :data:`shibwsgi.decoding.ENCODINGS`.
    ``user``: source names tried in order for the user id. A user variable is never
    list-parsed: one holding the profile's list syntax (the delimiter unescaped, or
    vouch's quoted form) is refused, whatever its non-empty part.
    ``series``: values may also come as ``<name>_0 .. <name>_N`` (mod_auth_mellon).
    ``header_case``: source names are written in header case in variable names
    (``preferred-username`` -> ``X-Forwarded-Preferred-Username``).
    ``quoted_lists``: a list arrives as ``"a","b"`` and a single value bare, never
    split (vouch-proxy); otherwise values are joined with ``delimiter``.
    ``source_variables``: sources read from one fixed variable instead of a prefixed
    name (``{"user": "X-Vouch-User"}``): one value taken as it is, and never from a
    claim of the same name (the platform's own headers come first, always).
    ``json_variables``: variables holding a JSON object of claims, preferred over the
    joined variables because JSON lists are lossless (mod_auth_openidc). With no
    ``prefixes`` they are the only source of claims, and an unreadable one is refused.
    Every document (and a verified ID token) holding ``sub``, ``iss`` or the user claim
    must give the same value (OpenID Connect Core 1.0, 5.3.2), else 400. A dotted
    source (``realm_access.roles``) is a path into nested objects, never a literal name.
    ``user_document``: the JSON variable the front end sets in every mode (kong-oidc's
    ``X-Userinfo``): when it arrives, it must hold the user claim whenever another
    document does, so a document the front end did not overwrite never names the user
    alone (else 400).
    ``json_encoding``: how the JSON variables are encoded (default: ``encoding``).
    ``json_shape``: ``"claims"`` (an object of claims) or ``"ms-client-principal"``
    (Azure App Service: ``{"claims": [{"typ": ..., "val": ...}]}``, repeated types
    forming one multi-valued claim).
    ``channel``: where the front end puts identity unless the application says
    otherwise: ``"environ"`` (server variables) or ``"headers"`` (request headers
    from a proxy; the middleware then needs ``trusted_proxies``).
    ``variables`` / ``claims``: standard identity fields read from a plain variable or
    from a claim (looked up like an attribute), keyed by a name in ``STANDARD_FIELDS``.
    ``owned_prefixes``: variable-name prefixes that belong to the front end; client
    headers that look like them are removed in the environ channel.
    ``algorithms``: a signed front end: identity comes from a JWT verified with these
    (asymmetric) algorithms, in ``assertion_header``, against the keys at ``jwks_url``
    (``{kid}`` in it: one PEM key per kid), from ``issuer``; see :mod:`shibwsgi.assertions`.
    ``audience_field``: the JWT header field that must equal the audience, instead of
    the ``aud`` claim (AWS ALB: ``signer``, the load balancer's ARN).
    ``companions``: headers the front end sends unsigned next to the assertion, always
    removed from the environ. ``id_token_variable``: a server variable holding the
    provider's signed ID token, verified when ``jwks_url`` is configured.
    ``login_url`` / ``logout_url``: templates with ``{target}`` (or ``{target_path}``) /
    ``{return_to}`` (or ``{return_path}``); see :class:`~shibwsgi.frontend_urls.FrontEndURLs`.
    ``variables_only``: the front end is a web server module that passes identity as server
    variables only (mod_shib, mod_auth_openidc, mod_auth_mellon): an ASGI server has none, so
    the ASGI middleware takes such a profile only with ``channel="headers"`` (the web server
    proxying with the variables copied into headers: see docs/deployment.md).
    ``sample_sources``: the front end's names for a person's ``name``, ``email`` and
    ``groups`` (and ``affiliation``), as the demo app maps them and the development front
    end and :mod:`shibwsgi.testing` send its sample people (``{}``: it sends none of them).
    ``test_channel``: the channel the development front end uses, when not ``channel``
    (oauth2-proxy's variables are a uWSGI deployment's choice; itself, it sends headers).
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
    quoted_lists: bool = False
    source_variables: Mapping[str, str] = field(default_factory=dict)
    json_variables: tuple[str, ...] = ()
    user_document: str | None = None
    json_encoding: str | None = None
    json_shape: str = "claims"
    channel: str = "environ"
    variables: Mapping[str, str] = field(default_factory=dict)
    claims: Mapping[str, str] = field(default_factory=dict)
    owned_prefixes: tuple[str, ...] = ()
    login_url: str | None = None
    logout_url: str | None = None
    encodes_remote_user: bool = False
    variables_only: bool = False
    sample_sources: Mapping[str, str] = field(default_factory=dict)
    test_channel: str | None = None
    algorithms: tuple[str, ...] = ()
    assertion_header: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience_field: str | None = None
    companions: tuple[str, ...] = ()
    id_token_variable: str | None = None

    @property
    def signed(self) -> bool:
        """True when identity comes from a signed assertion, not from plain variables."""
        return bool(self.algorithms)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("profile", "a profile needs a name")
        for setting, encoding in (("encoding", self.encoding), ("json_encoding", self.json_encoding)):
            if encoding is not None and encoding not in ENCODINGS:
                raise ConfigError(setting, f"{encoding!r} is not one of {', '.join(ENCODINGS)}")
        if self.json_shape not in JSON_SHAPES:
            raise ConfigError("json_shape", f"{self.json_shape!r} is not one of {', '.join(JSON_SHAPES)}")
        if not (self.prefixes or self.json_variables or self.source_variables or self.signed):
            raise ConfigError(
                "prefixes",
                "a profile without prefixes reads json_variables, source_variables or a signed assertion",
            )
        if self.user_document is not None and self.user_document not in self.json_variables:
            raise ConfigError(
                "user_document",
                f"{self.user_document!r} is not one of the json_variables {self.json_variables}",
            )
        if self.delimiter == "":
            raise ConfigError("delimiter", "use None for single-valued variables, not ''")
        if not self.user:
            raise ConfigError("user", "at least one source name is needed")
        for mapping in (self.variables, self.claims):
            unknown = set(mapping) - set(STANDARD_FIELDS)
            if unknown:
                raise ConfigError("profile", f"unknown fields {sorted(unknown)}: use {STANDARD_FIELDS}")
        for name in ("variables", "claims", "source_variables"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def variables_for(self, source: str) -> tuple[str, ...]:
        """The variable names that may carry ``source``, in the order they are tried."""
        if source == REMOTE_USER:
            return (REMOTE_USER,)
        if source in self.source_variables:
            return (self.source_variables[source],)
        name = source.title() if self.header_case else source
        return tuple(prefix + name for prefix in self.prefixes)


_SHIBBOLETH_VARIABLES = {
    "session_id": "Shib-Session-ID",
    "provider": "Shib-Identity-Provider",
    "authenticated_at": "Shib-Authentication-Instant",
    "expires_at": "Shib-Session-Expires",
}

#: Signed front ends: claims come from a verified JWT, never from other variables.
_JWT_CLAIMS = {"provider": "iss", "session_id": "sid", "expires_at": "exp", "authenticated_at": "auth_time"}
_OAUTH2_PROXY_HEADERS = tuple(
    f"X-Forwarded-{name}" for name in ("User", "Email", "Groups", "Preferred-Username", "Access-Token")
)


#: The usual OpenID Connect claim names of a person's name, email and groups.
_OIDC_SAMPLES: Mapping[str, str] = MappingProxyType({"name": "name", "email": "email", "groups": "groups"})


def _signed(name: str, header: str | None, algorithms: tuple[str, ...], **fields: Any) -> Profile:
    return Profile(
        name=name,
        prefixes=(),
        delimiter=None,
        user=("sub",),
        claims=_JWT_CLAIMS,
        assertion_header=header,
        algorithms=algorithms,
        sample_sources=_OIDC_SAMPLES,  # signed front ends pass the identity provider's claims
        **fields,
    )


SIGNED_PROFILES = (
    _signed("jwt", None, ("RS256", "ES256")),
    _signed("pomerium", "X-Pomerium-Jwt-Assertion", ("ES256",), owned_prefixes=("X-Pomerium-",)),
    _signed(
        "iap",
        "X-Goog-Iap-Jwt-Assertion",
        ("ES256",),
        jwks_url="https://www.gstatic.com/iap/verify/public_key-jwk",
        issuer="https://cloud.google.com/iap",
        owned_prefixes=("X-Goog-Authenticated-User-",),
    ),
    _signed("cloudflare-access", "Cf-Access-Jwt-Assertion", ("RS256",), owned_prefixes=("Cf-Access-",)),
    _signed(
        "aws-alb",
        "X-Amzn-Oidc-Data",
        ("ES256",),
        audience_field="signer",
        owned_prefixes=("X-Amzn-Oidc-",),
    ),
    _signed(
        "oauth2-proxy-jwt",
        "Authorization",
        ("RS256",),
        companions=_OAUTH2_PROXY_HEADERS,
        owned_prefixes=("X-Auth-Request-",),
        login_url="/oauth2/start?rd={target_path}",
        logout_url="/oauth2/sign_out?rd={return_path}",
    ),
    _signed("authentik-jwt", "X-authentik-jwt", ("RS256",), owned_prefixes=("X-Authentik-",)),
)

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
                variables_only=True,
                sample_sources={
                    "name": "displayName",
                    "email": "mail",
                    "groups": "isMemberOf",
                    "affiliation": "affiliation",
                },
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
                variables_only=True,
                sample_sources={"name": "FULLNAME", "email": "EMAIL", "groups": "GROUP"},
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
                id_token_variable="OIDC_id_token",  # noqa: S106 (a variable name)
                variables_only=True,
                sample_sources=_OIDC_SAMPLES,
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
                variables_only=True,
                sample_sources={"name": "cn", "email": "mail", "groups": "groups"},
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
                sample_sources={"name": "preferred-username", "email": "email", "groups": "groups"},
                test_channel="headers",
            ),
            Profile(name="remote-user", delimiter=None, variables_only=True),
            # The header front ends below pass identity only as request headers.
            Profile(
                name="authelia",
                prefixes=("Remote-",),
                delimiter=",",
                header_case=True,
                user=("user",),
                owned_prefixes=("Remote-",),
                channel="headers",
                sample_sources=_OIDC_SAMPLES,
            ),
            Profile(
                name="authentik",
                prefixes=("X-authentik-",),
                delimiter="|",
                user=("username",),
                owned_prefixes=("X-authentik-",),
                channel="headers",
                sample_sources=_OIDC_SAMPLES,
            ),
            Profile(
                name="vouch",
                prefixes=("X-Vouch-IdP-Claims-",),
                delimiter=",",
                header_case=True,
                quoted_lists=True,
                user=("user",),
                source_variables={"user": "X-Vouch-User"},
                owned_prefixes=("X-Vouch-",),
                channel="headers",
                sample_sources=_OIDC_SAMPLES,
            ),
            Profile(
                name="azure-easy-auth",
                prefixes=(),
                delimiter=None,
                user=("principal-name",),
                source_variables={
                    "principal-name": "X-MS-CLIENT-PRINCIPAL-NAME",
                    "principal-id": "X-MS-CLIENT-PRINCIPAL-ID",
                    "principal-idp": "X-MS-CLIENT-PRINCIPAL-IDP",
                },
                json_variables=("X-MS-CLIENT-PRINCIPAL",),
                json_encoding="base64",
                json_shape="ms-client-principal",
                variables={"provider": "X-MS-CLIENT-PRINCIPAL-IDP"},
                owned_prefixes=("X-MS-CLIENT-PRINCIPAL",),
                login_url="/.auth/login/aad?post_login_redirect_uri={target_path}",
                logout_url="/.auth/logout?post_logout_redirect_uri={return_path}",
                channel="headers",
                sample_sources={
                    "name": "name",
                    "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                    "groups": "groups",
                },
            ),
            Profile(
                name="kong-oidc",
                prefixes=(),
                delimiter=None,
                user=("sub",),
                source_variables={"access-token": "X-Access-Token"},
                json_variables=("X-Userinfo", "X-ID-Token"),
                # Set in every mode (introspection and bearer JWT too); X-ID-Token only in the code flow.
                user_document="X-Userinfo",
                json_encoding="base64",
                claims={"provider": "iss", "session_id": "sid", "authenticated_at": "auth_time"},
                owned_prefixes=("X-Userinfo", "X-ID-Token", "X-Access-Token"),
                channel="headers",
                sample_sources=_OIDC_SAMPLES,
            ),
        )
    }
    | {profile.name: profile for profile in SIGNED_PROFILES}
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
