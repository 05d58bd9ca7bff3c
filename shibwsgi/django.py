"""Django adapter: log the front end's user in, create and update it, sync its groups.

Install the ``django`` extra. Either list :class:`SSOMiddleware` first in
``MIDDLEWARE`` with its options in ``SHIBWSGI = {...}`` (settings-only mode:
:mod:`shibwsgi.django_middleware`), or wrap the project's WSGI application in
:class:`~shibwsgi.SSOMiddleware` (wsgi.py); then in settings.py::

    INSTALLED_APPS = [..., "shibwsgi.django_checks"]  # manage.py check
    AUTHENTICATION_BACKENDS = [
        "shibwsgi.django.IdentityBackend",
        "django.contrib.auth.backends.ModelBackend",  # password logins (the admin's superuser)
    ]
    MIDDLEWARE = [
        "shibwsgi.django.SSOMiddleware",  # settings-only mode
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "shibwsgi.django.IdentityMiddleware",
        ...,
    ]
    SHIBWSGI_USER_FIELDS = {"email": "email", "first_name": "given_name"}
    SHIBWSGI_GROUPS_ATTRIBUTE = "groups"
    SHIBWSGI_GROUPS_PREFIX = "app-"

Groups whose name starts with ``SHIBWSGI_GROUPS_PREFIX`` are *managed*: a user's
membership in them is made exactly equal to the identity's values at each login; groups
without the prefix are the admin's and are never touched (the prefix is compared
exactly, case included). With the empty prefix (the default) every group is managed.
These names are Django settings, read from ``django.conf.settings``, never from
``os.environ``, where ``SHIBWSGI_*`` belongs to :meth:`~shibwsgi.SSOMiddleware.from_env`.

Protect views with :func:`login_required`, :func:`group_required` or
:func:`user_passes_test_or_403`, not Django's own: a signed-in user who is refused
gets 403 rather than a trip to ``LOGIN_URL``, which the front end would answer by
logging them straight back in.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import Group
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, PermissionDenied
from django.db import models, transaction
from django.utils.module_loading import import_string

from . import django_checks  # noqa: F401  (registers the system checks)
from .django_middleware import SSOMiddleware
from .errors import ConfigError
from .fingerprint import login_fingerprint
from .identity import Identity
from .logs import loggable
from .middleware import ENVIRON_KEY

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

__all__ = [
    "IdentityBackend",
    "IdentityMiddleware",
    "PersistentIdentityMiddleware",
    "SSOMiddleware",
    "group_required",
    "identity_of",
    "login_required",
    "user_passes_test_or_403",
]

log = logging.getLogger("shibwsgi.django")

#: The session key holding a digest of the identity the user was last synced from.
SYNCED_KEY = "_shibwsgi_identity"
#: Group names per query: SQLite allows 32766 parameters, older builds 999.
_CHUNK = 500

View = TypeVar("View", bound=Callable[..., Any])


def identity_of(request: HttpRequest) -> Identity | None:
    """The request's :class:`~shibwsgi.Identity` (``None`` when anonymous)."""
    identity = _carried(request)
    return identity if isinstance(identity, Identity) else None


def _carried(request: Any) -> object:
    """What the middleware left: in the WSGI environ (``META``), or under ASGI in the scope.

    Both are written by the middleware only; no header can reach either key.
    """
    meta = getattr(request, "META", None)
    if isinstance(meta, Mapping) and ENVIRON_KEY in meta:
        return meta[ENVIRON_KEY]
    scope = getattr(request, "scope", None)
    return scope.get(ENVIRON_KEY) if isinstance(scope, Mapping) else None


@dataclass(frozen=True)
class AdapterSettings:
    """The ``SHIBWSGI_*`` Django settings, validated."""

    user_fields: Mapping[str, str]
    groups_attribute: str | None
    groups_prefix: str

    @classmethod
    def load(cls) -> AdapterSettings:
        fields = getattr(settings, "SHIBWSGI_USER_FIELDS", {})
        attribute = getattr(settings, "SHIBWSGI_GROUPS_ATTRIBUTE", None)
        prefix = getattr(settings, "SHIBWSGI_GROUPS_PREFIX", "")
        if not isinstance(fields, Mapping):
            raise ConfigError("SHIBWSGI_USER_FIELDS", "expected a dict of Django field -> identity attribute")
        for field, source in fields.items():
            _check_user_field(field, source)
        if attribute is not None and (not isinstance(attribute, str) or not attribute):
            raise ConfigError("SHIBWSGI_GROUPS_ATTRIBUTE", f"expected an attribute name, not {attribute!r}")
        if attribute is not None:
            _check_groups_field()
        if not isinstance(prefix, str):
            raise ConfigError("SHIBWSGI_GROUPS_PREFIX", f"expected a string, not {prefix!r}")
        return cls(dict(fields), attribute, prefix)


def _check_groups_field() -> None:
    model = auth.get_user_model()
    try:
        model._meta.get_field("groups")
    except FieldDoesNotExist:
        raise ConfigError(
            "SHIBWSGI_GROUPS_ATTRIBUTE",
            f"{model.__name__} has no groups to sync: add PermissionsMixin to it, or leave this setting unset",
        ) from None


def _check_user_field(field: object, source: object) -> None:
    model = auth.get_user_model()
    setting = "SHIBWSGI_USER_FIELDS"
    if not isinstance(field, str) or not isinstance(source, str) or not source:
        raise ConfigError(setting, f"{field!r}: expected a field name -> attribute name, got {source!r}")
    try:
        column = model._meta.get_field(field)
    except FieldDoesNotExist:
        raise ConfigError(setting, f"{model.__name__} has no field {field!r}") from None
    # Only plain text fields: an attribute must never set is_superuser, a password or the username.
    if field in (model.USERNAME_FIELD, "password") or not isinstance(
        column, models.CharField | models.TextField
    ):
        raise ConfigError(setting, f"{field!r} is not a text field the identity may set")


class IdentityBackend(ModelBackend):
    """Authenticate the front end's :class:`~shibwsgi.Identity`; create the user on first sight.

    Subclass it to change :meth:`clean_username`, :meth:`configure_user`,
    ``create_unknown_user`` or ``user_can_authenticate``, as with Django's
    ``RemoteUserBackend``. As a ``ModelBackend``, it also answers permission checks from
    users' groups. ``authenticate(request, remote_user=...)`` (Django REST framework's
    ``RemoteUserAuthentication``) logs in the request's verified identity only when it
    names that same user.
    """

    create_unknown_user = True

    def authenticate(
        self,
        request: HttpRequest | None,
        identity: Identity | None = None,
        remote_user: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if identity is None and remote_user is not None:
            identity = _verified(request, remote_user)
        if not isinstance(identity, Identity):
            return None
        model = auth.get_user_model()
        username = self.clean_username(identity.user)
        limit = getattr(model._meta.get_field(model.USERNAME_FIELD), "max_length", None)
        if limit is not None and len(username) > limit:
            # Truncating could make two people one account: refuse instead.
            log.warning(
                "login refused: the user id is longer than %s allows (%d)", model.USERNAME_FIELD, limit
            )
            raise PermissionDenied(f"the user id is longer than this site allows ({limit} characters)")
        manager = model._default_manager
        with transaction.atomic():
            if self.create_unknown_user:
                user, created = manager.get_or_create(**{model.USERNAME_FIELD: username})
                if created:
                    user.set_unusable_password()
                    user.save(update_fields=["password"])
            else:
                try:
                    user = manager.get_by_natural_key(username)
                except model.DoesNotExist:
                    log.warning(
                        "login refused for %s: no such user, and this backend creates none "
                        "(create_unknown_user = False)",
                        loggable(username),
                    )
                    return None
                except model.MultipleObjectsReturned:
                    # A lenient natural key (case-insensitive, say): picking one could pick someone else.
                    log.warning(
                        "login refused for %s: several accounts match it (get_by_natural_key)",
                        loggable(username),
                    )
                    return None
                created = False
            user = self._configure(request, user, identity, created)
        if not self.user_can_authenticate(user):
            log.warning("login refused for %s: the account is inactive", loggable(username))
            return None
        return user

    def clean_username(self, username: str) -> str:
        """The Django username for a front-end user id (unchanged by default)."""
        return username

    def configure_user(
        self,
        request: HttpRequest | None,
        user: Any,
        identity: Identity | bool | None = None,
        created: bool = True,
    ) -> Any:
        """Update ``user``'s fields and managed groups from ``identity``; return the user.

        Override it with this signature (call ``super()`` to keep the sync) or with
        Django's ``(request, user, created=True)`` (or, before Django 4.1,
        ``(request, user)``, then called for new users only): the sync then runs
        before your override, which finds the identity at ``identity_of(request)``.
        """
        if isinstance(identity, Identity):
            _sync_user(user, identity, AdapterSettings.load())
        return user

    def _configure(self, request: HttpRequest | None, user: Any, identity: Identity, created: bool) -> Any:
        takes = _parameters(type(self).configure_user)
        if "identity" in takes:
            return self.configure_user(request, user, identity=identity, created=created)
        _sync_user(user, identity, AdapterSettings.load())
        if "created" in takes:
            return self.configure_user(request, user, created=created)
        # Django before 4.1: (request, user), called for new users only.
        return self.configure_user(request, user) if created else user


@functools.cache
def _parameters(configure_user: Callable[..., Any]) -> frozenset[str]:
    """The keywords a ``configure_user`` takes: ``identity`` (this adapter's), ``created`` (Django's)."""
    parameters = inspect.signature(configure_user).parameters
    names = frozenset(parameters)
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return names | {"created"}
    return names


def _verified(request: Any, remote_user: str) -> Identity | None:
    """The request's verified identity when it names ``remote_user``, else ``None``.

    A ``remote_user`` argument alone proves nothing (any header may have supplied it).
    """
    identity = _carried(request)
    if not isinstance(identity, Identity):
        return None
    if identity.user != remote_user:
        log.warning(
            "login refused: remote_user %s is not the verified user %s",
            loggable(remote_user),
            loggable(identity.user),
        )
        return None
    return identity


def _sync_user(user: Any, identity: Identity, config: AdapterSettings) -> None:
    """Set ``user``'s mapped fields and make its managed groups equal the identity's."""
    changed = []
    for field, source in config.user_fields.items():
        value = _usable(identity, source)
        if value is None:
            continue  # not released this time (or dropped for size): keep what we had
        problem = _unstorable(value, user._meta.get_field(field).max_length)
        if problem:
            log.warning("user field %s not updated: attribute %s %s", field, source, problem)
            continue
        if getattr(user, field) != value:
            setattr(user, field, value)
            changed.append(field)
    if changed:
        user.save(update_fields=changed)
    if config.groups_attribute is not None:
        if config.groups_attribute in identity.dropped:
            log.warning(
                "groups not synced for %s: %s was dropped (over its size cap)",
                identity.user,
                config.groups_attribute,
            )
            return
        values = identity.attributes.get(config.groups_attribute, ())
        _sync_groups(user, values, config.groups_prefix)


def _usable(identity: Identity, source: str) -> str | None:
    if source in identity.dropped:
        return None
    return identity.get(source)


def _unstorable(value: str, limit: int | None) -> str | None:
    """Why ``value`` cannot be stored in a text column of ``limit`` characters, or ``None``."""
    if limit is not None and len(value) > limit:
        return f"is over {limit} characters"
    if "\x00" in value:
        # PostgreSQL refuses NUL in text (a 500 at every login), and Django's forms refuse it too.
        return "holds a NUL character"
    return None


def _sync_groups(user: Any, values: Iterable[str], prefix: str) -> None:
    limit = Group._meta.get_field("name").max_length or 150
    wanted = set()
    for value in values:
        if not value.startswith(prefix):
            continue
        problem = _unstorable(value, limit)
        if problem:
            log.warning("group not synced: a value %s", problem)
            continue
        wanted.add(value)
    # Databases compare text case-insensitively (SQLite's LIKE, MySQL's collations): the
    # query narrows, Python decides, so an admin's "MOVIE-Admins" is never managed by "movie-".
    current = {
        name: pk
        for pk, name in user.groups.filter(name__startswith=prefix).values_list("pk", "name")
        if name.startswith(prefix)
    }
    missing = sorted(wanted - current.keys())
    add: list[Any] = []
    for chunk in _chunks(missing):
        Group.objects.bulk_create([Group(name=name) for name in chunk], ignore_conflicts=True)
        names = set(chunk)
        found = Group.objects.filter(name__in=chunk).values_list("pk", "name")
        add.extend(pk for pk, name in found if name in names)
    if len(add) < len(missing):
        log.warning(
            "%d group(s) not synced for %s: the database holds them under another case",
            len(missing) - len(add),
            loggable(user.get_username()),
        )
    remove = [pk for name, pk in current.items() if name not in wanted]
    if remove:
        user.groups.remove(*remove)
    if add:
        user.groups.add(*add)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class IdentityMiddleware:
    """Keep ``request.user`` equal to the front end's identity.

    Place it after ``AuthenticationMiddleware``. A new identity logs in (creating the
    user); a different one switches user; a changed one (new front-end session or new
    attributes) updates fields and groups; none logs out a user this adapter logged in
    (the whole-site style, where every request carries the identity).
    """

    sync_capable = True
    async_capable = False
    #: Log out when the request carries no identity (``False``: keep the Django session).
    force_logout_if_no_identity = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if get_response is None:
            raise ValueError("get_response must be provided.")
        self.get_response = get_response
        AdapterSettings.load()  # configuration mistakes show at start-up
        if not any(issubclass(type(backend), IdentityBackend) for backend in auth.get_backends()):
            raise ImproperlyConfigured(
                "shibwsgi.django.IdentityMiddleware needs 'shibwsgi.django.IdentityBackend' "
                "(or a subclass) in AUTHENTICATION_BACKENDS"
            )

        _check_order(type(self))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.process_request(request)
        return self.get_response(request)

    def process_request(self, request: HttpRequest) -> None:
        identity = identity_of(request)
        user = request.user
        if identity is None:
            if self.force_logout_if_no_identity and user.is_authenticated and _ours(request):
                auth.logout(request)
            return
        # The account itself, not only the login, must still be the identity's: an admin may
        # have renamed it and given its username to another account.
        if user.is_authenticated and user.get_username() == _username(identity):
            if request.session.get(SYNCED_KEY) == login_fingerprint(identity):
                return
            if not _ours(request):
                # Logged in by another backend (a password) as this very user: theirs to keep,
                # as Django's RemoteUserMiddleware leaves it.
                return
        # Logging in again syncs fields and groups; auth.login() flushes the session
        # when the user differs, so another user never inherits it.
        user = auth.authenticate(request, identity=identity)
        if user is None:
            # Refused (inactive, unknown, id too long): whoever was logged in is not this person.
            if request.user.is_authenticated:
                auth.logout(request)
            return
        request.user = user
        auth.login(request, user)
        request.session[SYNCED_KEY] = login_fingerprint(identity)


class PersistentIdentityMiddleware(IdentityMiddleware):
    """:class:`IdentityMiddleware` that keeps the Django session when the identity disappears.

    For sites where only a login page is protected by the front end and shibwsgi keeps
    no session of its own.
    """

    force_logout_if_no_identity = False


def user_passes_test_or_403(
    test: Callable[[Any], bool], login_url: str | None = None
) -> Callable[[View], View]:
    """Django's ``user_passes_test``, but a signed-in user who fails ``test`` gets 403.

    Decorates sync and async views alike. Only a request without an identity goes to ``login_url`` (default
    ``settings.LOGIN_URL``). Sending anyone the front end signed in there would loop,
    as the front end logs them straight back in: a user who fails ``test``, or whom
    this site refused (an inactive account), gets 403 instead.
    """

    def refusal(request: HttpRequest) -> HttpResponse | None:
        """The answer to a request that may not see the view (or ``PermissionDenied``); ``None``: go on."""
        if not request.user.is_authenticated:
            if identity_of(request) is not None:
                raise PermissionDenied("your account may not use this site")
            return redirect_to_login(request.get_full_path(), login_url)
        if not test(request.user):
            raise PermissionDenied("you may not see this page")
        return None

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):
            # An async view, as Django's own decorators take: the checks query the database.
            @functools.wraps(view)
            async def checked_async(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                refused = await sync_to_async(refusal)(request)
                return refused if refused is not None else await view(request, *args, **kwargs)

            return markcoroutinefunction(checked_async)  # type: ignore[return-value]

        @functools.wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = refusal(request)
            return refused if refused is not None else view(request, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorator


def login_required(view: View) -> View:
    """Django's ``login_required``, but 403 for someone the front end signed in and this site refused."""
    return user_passes_test_or_403(_anyone)(view)


def _anyone(user: Any) -> bool:
    return True


def group_required(*groups: str, login_url: str | None = None) -> Callable[[View], View]:
    """Members of any of ``groups`` only: 403 for other signed-in users, login for anonymous ones."""
    if not groups or not all(isinstance(group, str) and group for group in groups):
        raise ConfigError("group_required", f"expected one or more group names, not {groups!r}")
    names = frozenset(groups)

    def is_member(user: Any) -> bool:
        # Compared in Python too: the database's collation may ignore case.
        held = user.groups.filter(name__in=names).values_list("name", flat=True)
        return any(name in names for name in held)

    return user_passes_test_or_403(is_member, login_url)


def _check_order(middleware: type) -> None:
    classes = [import_string(path) for path in settings.MIDDLEWARE]
    mine = next(
        (i for i, cls in enumerate(classes) if isinstance(cls, type) and issubclass(cls, middleware)), 0
    )
    if not any(isinstance(cls, type) and issubclass(cls, AuthenticationMiddleware) for cls in classes[:mine]):
        raise ImproperlyConfigured(
            f"{middleware.__module__}.{middleware.__name__} must come after "
            "'django.contrib.auth.middleware.AuthenticationMiddleware' in MIDDLEWARE"
        )


def _username(identity: Identity) -> str:
    """The Django username the first :class:`IdentityBackend` makes of ``identity``."""
    backend = next(backend for backend in auth.get_backends() if isinstance(backend, IdentityBackend))
    return backend.clean_username(identity.user)


def _ours(request: HttpRequest) -> bool:
    """Whether this adapter logged the session's user in (not, say, a password login)."""
    path = request.session.get(auth.BACKEND_SESSION_KEY, "")
    try:
        backend = auth.load_backend(path)
    except ImportError:
        return True
    return isinstance(backend, IdentityBackend)
