"""The exceptions shibwsgi raises.

``ConfigError`` is raised at construction time for a setting that cannot work.
``RequestError`` and its subclasses are raised while reading a request; the
middleware answers them itself with their ``status`` and ``public_message``
(never attribute values or secrets) and logs ``log_message`` for the operator.
"""

from __future__ import annotations


class ShibwsgiError(Exception):
    """Base class of every shibwsgi exception."""


class ConfigError(ShibwsgiError, ValueError):
    """A setting is unknown, malformed or contradicts another one."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class RequestError(ShibwsgiError):
    """The front end's input cannot produce a trustworthy identity."""

    status = 400
    title = "Bad Request"

    def __init__(self, public_message: str, *, log_message: str | None = None) -> None:
        self.public_message = public_message
        self.log_message = log_message or public_message
        super().__init__(public_message)


class MissingAttributeError(RequestError):
    """A required attribute did not arrive (403: the login itself worked)."""

    status = 403
    title = "Forbidden"


class AttributeTooLargeError(RequestError):
    """A required attribute exceeds its size cap."""

    status = 431
    title = "Request Header Fields Too Large"


class InvalidUserError(RequestError):
    """The user attribute cannot be used as an identifier."""


class InvalidClaimsError(RequestError):
    """A JSON claims variable is not a readable JSON object."""


class SubjectMismatchError(RequestError):
    """Two sources of one identity (userinfo and ID token, a claim variable and its JSON)
    name different subjects: neither is used (OpenID Connect Core 1.0, 5.3.2)."""


class EncodingMismatchError(RequestError):
    """What arrives cannot be what the configured encoding produces: the front end and
    shibwsgi disagree (for example ``OIDCPassClaimsAs ... base64url`` against the default)."""


class InvalidAssertionError(RequestError):
    """A signed identity assertion (JWT) did not verify: no identity at all (401)."""

    status = 401
    title = "Unauthorized"


class KeysUnavailableError(RequestError):
    """The front end's signing keys cannot be fetched and no cached key fits (503)."""

    status = 503
    title = "Service Unavailable"


class SessionError(ShibwsgiError):
    """A session store failed or refused a session (raised at login time)."""


class RolesError(RequestError):
    """The application's roles hook failed, hung or returned something that is not roles (503)."""

    status = 503
    title = "Service Unavailable"
