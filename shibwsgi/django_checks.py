"""Django system checks (``manage.py check``) for the shibwsgi adapter.

Add ``"shibwsgi.django_checks"`` to ``INSTALLED_APPS`` so that ``manage.py check``,
``runserver`` and ``migrate`` run them (importing :mod:`shibwsgi.django` registers
them too). Each check has an id listed in the README: ``shibwsgi.E001``...
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.utils.module_loading import import_string

from .errors import ConfigError
from .settings import PREFIX, SETTINGS

__all__ = [
    "ADAPTER_SETTINGS",
    "check_backends",
    "check_environment",
    "check_middleware",
    "check_setting_names",
    "check_settings",
]

SSO = "shibwsgi.django.SSOMiddleware"
IDENTITY = "shibwsgi.django.IdentityMiddleware"
AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"
#: The Django adapter's own settings: they live in settings.py, never in the environment.
ADAPTER_SETTINGS = ("SHIBWSGI_USER_FIELDS", "SHIBWSGI_GROUPS_ATTRIBUTE", "SHIBWSGI_GROUPS_PREFIX")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: ``SHIBWSGI = {...}`` builds a middleware; E002: the adapter's settings are valid; W003: unread."""
    from .django_middleware import SETTING, build_core

    messages: list[CheckMessage] = []
    if hasattr(settings, SETTING) and _position(SSO) is None:
        messages.append(
            Warning(
                f"settings.SHIBWSGI is set but {SSO} is not in MIDDLEWARE: nothing reads it",
                hint=f"Add {SSO} first in MIDDLEWARE, or remove SHIBWSGI (wsgi.py wraps the application).",
                id="shibwsgi.W003",
            )
        )
    if hasattr(settings, SETTING) or _position(SSO) is not None:
        try:
            build_core(_unused_app)
        except ConfigError as exc:
            messages.append(Error(str(exc), hint="Fix settings.SHIBWSGI.", id="shibwsgi.E001"))
    if any(hasattr(settings, name) for name in ADAPTER_SETTINGS) or _position(IDENTITY) is not None:
        from .django import AdapterSettings

        try:
            AdapterSettings.load()
        except ConfigError as exc:
            messages.append(Error(str(exc), id="shibwsgi.E002"))
    return messages


def check_setting_names(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E006: a ``SHIBWSGI_*`` Django setting that nothing reads (a typo, or an option outside the dict)."""
    messages: list[CheckMessage] = []
    for name in sorted(dir(settings)):
        if not name.startswith(PREFIX) or name in ADAPTER_SETTINGS:
            continue
        option = SETTINGS.get(name[len(PREFIX) :])
        if option is not None:
            hint = f'Put it in SHIBWSGI = {{"{option[0]}": ...}}: SSOMiddleware\'s options live there.'
        else:
            close = difflib.get_close_matches(name, ADAPTER_SETTINGS, n=1)
            hint = (
                f"Did you mean {close[0]}?"
                if close
                else f"The adapter's settings are {', '.join(ADAPTER_SETTINGS)}."
            )
        messages.append(
            Error(f"settings.{name} is not a setting shibwsgi reads", hint=hint, id="shibwsgi.E006")
        )
    return messages


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003: SSOMiddleware before the auth middlewares; E004: IdentityMiddleware after Django's."""
    sso, identity, authentication = _position(SSO), _position(IDENTITY), _position(AUTHENTICATION)
    messages: list[CheckMessage] = []
    later = [name for name, at in ((AUTHENTICATION, authentication), (IDENTITY, identity)) if at is not None]
    if sso is not None and any(at is not None and at < sso for at in (authentication, identity)):
        messages.append(
            Error(
                f"{SSO} comes after {' or '.join(later)} in MIDDLEWARE: they would see the request "
                "before the identity is read",
                hint=f"Move {SSO} before them (first in MIDDLEWARE is simplest).",
                id="shibwsgi.E003",
            )
        )
    if identity is not None and (authentication is None or authentication > identity):
        messages.append(
            Error(
                f"{IDENTITY} must come after {AUTHENTICATION} in MIDDLEWARE",
                hint="It logs the identity in through request.user, which AuthenticationMiddleware sets.",
                id="shibwsgi.E004",
            )
        )
    return messages


def check_backends(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E005: IdentityMiddleware needs IdentityBackend; W001: the admin needs a password backend."""
    from django.contrib.auth.backends import ModelBackend

    from .django import IdentityBackend

    backends = list(_classes(settings.AUTHENTICATION_BACKENDS))
    messages: list[CheckMessage] = []
    if _position(IDENTITY) is not None and not any(issubclass(cls, IdentityBackend) for cls in backends):
        messages.append(
            Error(
                f"{IDENTITY} needs shibwsgi.django.IdentityBackend (or a subclass) in AUTHENTICATION_BACKENDS",
                id="shibwsgi.E005",
            )
        )
    password = [
        cls for cls in backends if issubclass(cls, ModelBackend) and not issubclass(cls, IdentityBackend)
    ]
    if apps.is_installed("django.contrib.admin") and not password:
        messages.append(
            Warning(
                "django.contrib.admin is installed but AUTHENTICATION_BACKENDS has no password backend: "
                "the superuser cannot log in to the admin",
                hint="Add 'django.contrib.auth.backends.ModelBackend' after shibwsgi.django.IdentityBackend.",
                id="shibwsgi.W001",
            )
        )
    return messages


def check_environment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002: an adapter setting in the environment; W004: an option there that settings-only mode ignores."""
    messages: list[CheckMessage] = [
        Warning(
            f"{name} is set in the environment, but it is a Django setting of shibwsgi.django: "
            "it is not read from there (and SSOMiddleware.from_env refuses it as an unknown variable)",
            hint=f"Move it to settings.py: {name} = ...",
            id="shibwsgi.W002",
        )
        for name in ADAPTER_SETTINGS
        if name in os.environ
    ]
    if _position(SSO) is not None:
        ignored = sorted(
            name for name in os.environ if name.startswith(PREFIX) and name[len(PREFIX) :] in SETTINGS
        )
        if ignored:
            messages.append(
                Warning(
                    f"{', '.join(ignored)} set in the environment, but {SSO} reads its options from "
                    "settings.SHIBWSGI only",
                    hint='Read them there (SHIBWSGI = {"profile": os.environ["SHIBWSGI_PROFILE"], ...}) '
                    "or unset them.",
                    id="shibwsgi.W004",
                )
            )
    return messages


def _position(path: str) -> int | None:
    """The index in ``MIDDLEWARE`` of ``path``'s class or a subclass of it, or ``None``."""
    wanted = import_string(path)
    for index, cls in enumerate(_classes(settings.MIDDLEWARE)):
        if issubclass(cls, wanted):
            return index
    return None


def _classes(paths: Iterable[object]) -> Iterable[type]:
    """The classes named by ``paths``; names that do not import are Django's own checks' business."""
    for path in paths:
        try:
            cls = import_string(path) if isinstance(path, str) else None
        except ImportError:
            continue
        if isinstance(cls, type):
            yield cls


def _unused_app(environ: Any, start_response: Any) -> Iterable[bytes]:
    return []


for _check in (check_settings, check_setting_names, check_middleware, check_backends, check_environment):
    register(_check)
