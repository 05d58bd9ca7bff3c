"""Realistic requests: the CGI/WSGI keys a server sets, plus what each front end adds for one user."""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shibwsgi import Attribute
from shibwsgi.testing import environ_for

__all__ = [
    "COOKIES",
    "DISPLAY_NAME",
    "HEADERS_WITH_SECRET",
    "PROFILE_CASES",
    "SHIBBOLETH_ATTRIBUTES",
    "USER",
    "ProfileCase",
    "cgi_environ",
    "groups",
    "shibboleth_values",
]

USER = "bench@example.org"
#: Not ASCII on purpose: the UTF-8 repair path runs, as it does for many real names.
DISPLAY_NAME = "Zoë Bench-Müller"

#: What a browser typically carries besides any session cookie of ours.
COOKIES = (
    "_shibsession_64656661756c7468747470733a2f2f6d6f766965732e6578616d706c652e6f72672f73686962"
    "=_3f2b1c0e9d8a7b6c5d4e3f2a1b0c9d8e; _ga=GA1.1.1234567890.1700000000; theme=dark"
)

#: Width of one generated group name; with the ";" delimiter one group costs 36 bytes,
#: so 28 groups make ~1 KB and 1,800 groups ~64 KB (under the uwsgi protocol's 65,535).
GROUP_WIDTH = 35


def groups(count: int) -> list[str]:
    """``count`` LDAP-style group names of :data:`GROUP_WIDTH` characters each."""
    return [f"cn=grp-{index:05d},ou=groups,dc=ex,dc=org" for index in range(count)]


def cgi_environ(
    path: str = "/api/me", *, cookie: str = COOKIES, remote_addr: str = "192.0.2.10"
) -> dict[str, Any]:
    """The keys Apache's mod_proxy_uwsgi and uWSGI put in every environ, for a browser's XHR."""
    return {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "movies.example.org",
        "SERVER_PORT": "443",
        "SERVER_ADDR": "10.0.0.5",
        "SERVER_SOFTWARE": "Apache",
        "SERVER_ADMIN": "webmaster@example.org",
        "SERVER_SIGNATURE": "",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "DOCUMENT_ROOT": "/var/www/html",
        "CONTEXT_PREFIX": "",
        "CONTEXT_DOCUMENT_ROOT": "/var/www/html",
        "SCRIPT_FILENAME": "proxy:uwsgi://127.0.0.1:3031" + path,
        "REQUEST_SCHEME": "https",
        "HTTPS": "on",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "52144",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HTTP_HOST": "movies.example.org",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "HTTP_ACCEPT": "application/json, text/plain, */*",
        "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.7,fr;q=0.3",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd",
        "HTTP_REFERER": "https://movies.example.org/",
        "HTTP_CONNECTION": "keep-alive",
        "HTTP_SEC_FETCH_DEST": "empty",
        "HTTP_SEC_FETCH_MODE": "cors",
        "HTTP_SEC_FETCH_SITE": "same-origin",
        "HTTP_COOKIE": cookie,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


@dataclass(frozen=True)
class ProfileCase:
    """One front end's request for :data:`USER`: its profile, the app's attribute map, the values."""

    key: str
    label: str
    profile: str
    attributes: Mapping[str, Attribute]
    values: Mapping[str, str | list[str]]
    user: str = USER
    channel: str = "environ"
    id_token: bool = False
    middleware_options: Mapping[str, Any] = field(default_factory=dict)
    extra_environ: Mapping[str, str] = field(default_factory=dict)

    def environ(self, *, path: str = "/api/me") -> dict[str, Any]:
        """The whole request: server keys, then the front end's identity keys."""
        remote = "127.0.0.1" if self.channel == "headers" else "192.0.2.10"
        front = environ_for(
            self.profile, self.user, dict(self.values), channel=self.channel, id_token=self.id_token
        )
        return {**cgi_environ(path, remote_addr=remote), **front, **self.extra_environ}

    def options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`shibwsgi.SSOMiddleware`."""
        return {
            "profile": self.profile,
            "attributes": dict(self.attributes),
            "channel": self.channel,
            **self.middleware_options,
        }


def _multi(source: str) -> Attribute:
    return Attribute(source, multi=True)


SHIBBOLETH_ATTRIBUTES = {
    "name": Attribute("displayName"),
    "email": Attribute("mail"),
    "groups": _multi("isMemberOf"),
    "affiliation": _multi("affiliation"),
    "given_name": Attribute("givenName"),
}


def shibboleth_values(group_count: int = 10) -> dict[str, str | list[str]]:
    return {
        "displayName": DISPLAY_NAME,
        "mail": USER,
        "isMemberOf": groups(group_count),
        "affiliation": ["member@example.org", "staff@example.org"],
        "givenName": "Zoë",
    }


_OIDC_ATTRIBUTES = {
    "name": Attribute("name"),
    "email": Attribute("email"),
    "groups": _multi("groups"),
    "given_name": Attribute("given_name"),
    "family_name": Attribute("family_name"),
}
_OIDC_VALUES: dict[str, str | list[str]] = {
    "name": DISPLAY_NAME,
    "email": USER,
    "groups": groups(10),
    "given_name": "Zoë",
    "family_name": "Bench-Müller",
}
#: A signed JWT is about this long; oauth2-proxy passes it with --pass-access-token.
_ACCESS_TOKEN = "eyJhbGciOiJSUzI1NiJ9." + "x" * 700 + ".signature"
PROXY_SECRET = "bench-proxy-secret-0123456789abcdef"

PROFILE_CASES = (
    ProfileCase("shibboleth", "shibboleth", "shibboleth", SHIBBOLETH_ATTRIBUTES, shibboleth_values()),
    ProfileCase(
        "adfs",
        "adfs",
        "adfs",
        {
            "name": Attribute("FULLNAME"),
            "email": Attribute("EMAIL"),
            "groups": _multi("GROUP"),
            "department": Attribute("DEPARTMENT"),
            "given_name": Attribute("FIRSTNAME"),
        },
        {
            "LOGIN": "bench",
            "FULLNAME": DISPLAY_NAME,
            "EMAIL": USER,
            "GROUP": groups(10),
            "DEPARTMENT": "IT",
            "FIRSTNAME": "Zoë",
        },
        user="bench",
    ),
    ProfileCase("openidc", "openidc", "openidc", _OIDC_ATTRIBUTES, _OIDC_VALUES),
    ProfileCase(
        "openidc-id-token",
        "openidc + id_token JSON",
        "openidc",
        _OIDC_ATTRIBUTES,
        _OIDC_VALUES,
        id_token=True,
    ),
    ProfileCase("mellon", "mellon (_0.._N series)", "mellon", SHIBBOLETH_ATTRIBUTES, shibboleth_values()),
    ProfileCase(
        "oauth2-proxy",
        "oauth2-proxy (headers, trusted peer)",
        "oauth2-proxy",
        # All oauth2-proxy sends: four attributes, not five.
        {
            "email": Attribute("email"),
            "groups": _multi("groups"),
            "username": Attribute("preferred-username"),
            "access_token": Attribute("access-token"),
        },
        {"email": USER, "groups": groups(10), "preferred-username": "bench", "access-token": _ACCESS_TOKEN},
        channel="headers",
        middleware_options={"trusted_proxies": ["127.0.0.1"]},
    ),
    ProfileCase(
        "remote-user",
        "remote-user (no splitting)",
        "remote-user",
        SHIBBOLETH_ATTRIBUTES,
        {**shibboleth_values(), "isMemberOf": ";".join(groups(10)), "affiliation": "member@example.org"},
    ),
)

#: The header channel with a shared secret as well as a trusted peer address.
HEADERS_WITH_SECRET = ProfileCase(
    "headers-secret",
    "oauth2-proxy headers + proxy secret",
    "oauth2-proxy",
    PROFILE_CASES[5].attributes,
    PROFILE_CASES[5].values,
    channel="headers",
    middleware_options={"trusted_proxies": ["127.0.0.1"], "proxy_secret": PROXY_SECRET},
    extra_environ={"HTTP_X_SHIBWSGI_PROXY_SECRET": PROXY_SECRET},
)
