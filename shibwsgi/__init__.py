"""shibwsgi: WSGI and ASGI middleware for apps behind institutional single sign-on."""

from __future__ import annotations

from .attributes import Attribute
from .errors import (
    AttributeTooLargeError,
    ConfigError,
    EncodingMismatchError,
    InvalidAssertionError,
    InvalidClaimsError,
    InvalidUserError,
    KeysUnavailableError,
    MissingAttributeError,
    RequestError,
    RolesError,
    SessionError,
    ShibwsgiError,
    SubjectMismatchError,
)
from .groups import ProxyTrust, Roles, Sessions, SignedAssertions
from .identity import Identity
from .middleware import ENVIRON_KEY, SSOMiddleware
from .profiles import PROFILES, Profile

__version__ = "0.3.0"

__all__ = [
    "ENVIRON_KEY",
    "PROFILES",
    "Attribute",
    "AttributeTooLargeError",
    "ConfigError",
    "EncodingMismatchError",
    "Identity",
    "InvalidAssertionError",
    "InvalidClaimsError",
    "InvalidUserError",
    "KeysUnavailableError",
    "MissingAttributeError",
    "Profile",
    "ProxyTrust",
    "RequestError",
    "Roles",
    "RolesError",
    "SSOMiddleware",
    "SessionError",
    "Sessions",
    "ShibwsgiError",
    "SignedAssertions",
    "SubjectMismatchError",
]
