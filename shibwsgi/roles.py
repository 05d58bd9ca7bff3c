"""Roles from the application's own data: the ``roles=`` hook, its cache and its time limit.

The hook receives the verified :class:`~shibwsgi.identity.Identity` and returns role
names (an iterable of strings: a list, tuple, set or generator; not a string, bytes or
a mapping, whose keys could be roles the hook meant to deny); they become
``identity.roles``. It runs in its own thread under a time limit: raising, hanging past
the limit, a thread that cannot start or an answer that is not role names answers 503,
so a request never goes on with roles the hook did not return. Answers are cached per
user and attributes for ``ttl`` seconds. Every bound here is per resolver, that is per
:class:`~shibwsgi.SSOMiddleware`: one app's hung database does not stop another's roles.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from .errors import ConfigError, RolesError
from .identity import Identity
from .lru import BoundedLRU, footprint

__all__ = [
    "DEFAULT_ROLES_TIMEOUT",
    "DEFAULT_ROLES_TTL",
    "RolesHook",
    "RolesResolver",
    "check_roles_options",
    "load_hook",
]

log = logging.getLogger("shibwsgi")

RolesHook = Callable[[Identity], Iterable[str]]

#: Seconds a hook's answer is reused for the same user and attributes.
DEFAULT_ROLES_TTL = 60
#: Seconds the hook may take; a database lookup takes milliseconds, a hung one forever.
DEFAULT_ROLES_TIMEOUT = 5.0
#: Answers beyond these are not role lists but a bug (a whole table, a blob).
MAX_ROLES = 1000
MAX_ROLE_LENGTH = 256
#: Bounds of the roles cache per middleware: people, and bytes of the identities it keeps.
CACHE_SIZE = 4096
CACHE_BYTES = 4 * 1024 * 1024
#: Lookups running at once per middleware. Past it the hook is hanging: fail at once
#: instead of starting yet another thread that will hang too.
MAX_RUNNING = 16

# The same person (user, profile, provider) with the same attributes has the same roles; not
# the session id nor the times. One entry per person: changed attributes ask the hook again.
_Key = tuple[str, str, str | None]


class _Entry(NamedTuple):
    asked_at: float
    roles: tuple[str, ...]
    # The last identity given these roles, and the result: the same front-end login comes
    # back on every request, and comparing is far cheaper than building a new Identity.
    source: Identity
    result: Identity


def check_roles_options(hook: object, ttl: object, timeout: object) -> None:
    """Raise :class:`~shibwsgi.ConfigError` for a hook that is not callable or a bad ttl/timeout."""
    if not callable(hook):
        raise ConfigError("roles", f"expected a function identity -> role names, got {hook!r}")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise ConfigError("roles_ttl", f"must be a whole number of seconds (0: no caching), not {ttl!r}")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or timeout <= 0
        or timeout > threading.TIMEOUT_MAX  # before isfinite, which overflows on a huge int
        or not math.isfinite(timeout)
    ):
        raise ConfigError(
            "roles_timeout",
            f"must be a positive number of seconds up to {threading.TIMEOUT_MAX:g}, not {timeout!r}",
        )


class RolesResolver:
    """Adds the hook's roles to identities: cached for ``ttl`` seconds, bounded by ``timeout``."""

    def __init__(
        self,
        hook: RolesHook,
        *,
        ttl: int = DEFAULT_ROLES_TTL,
        timeout: float = DEFAULT_ROLES_TIMEOUT,
        clock: Callable[[], float],
    ) -> None:
        check_roles_options(hook, ttl, timeout)
        if inspect.iscoroutinefunction(hook):
            raise ConfigError(
                "roles",
                f"{_name(hook)} is an async def function: the WSGI middleware calls the hook in a "
                "thread; use a plain function, or the ASGI middleware (shibwsgi.asgi)",
            )
        self.hook = hook
        self.name = _name(hook)
        self.ttl = ttl
        self.timeout = float(timeout)
        self.clock = clock
        self._cache: BoundedLRU[_Key, _Entry] = BoundedLRU(max_entries=CACHE_SIZE, max_bytes=CACHE_BYTES)
        self._running = threading.BoundedSemaphore(MAX_RUNNING)

    def __repr__(self) -> str:
        return f"<RolesResolver hook={self.name} ttl={self.ttl} timeout={self.timeout:g}>"

    def with_roles(self, identity: Identity, *, fresh: bool = False) -> Identity:
        """``identity`` with the hook's roles; ``fresh`` asks the hook even when cached.

        Raises :class:`~shibwsgi.errors.RolesError` when the hook fails.
        """
        key = (identity.user, identity.profile, identity.provider)
        now = self.clock()
        cached = None if fresh else self._cache.get(key)
        # Live: asked no later than now, within the ttl. A difference, not a sum: asked_at + a
        # ttl past float's range would overflow. Inline: this runs on every request.
        if cached is not None and not (cached.asked_at <= now and now - cached.asked_at < self.ttl):
            cached = None
        if cached is not None and cached.source is identity:
            return cached.result  # the identity memo's own object: the usual case
        if cached is not None and cached.source.attributes == identity.attributes:
            if cached.source == identity:
                # Keep the newer object: the identity memo hands out this one from now on.
                self._keep(key, cached._replace(source=identity))
                return cached.result
            asked_at, roles = cached.asked_at, cached.roles
        else:
            asked_at, roles = now, self._ask(identity)
        result = identity if roles == identity.roles else replace(identity, roles=roles)
        if self.ttl:
            self._keep(key, _Entry(asked_at, roles, identity, result))
        return result

    def _keep(self, key: _Key, entry: _Entry) -> None:
        # The entry keeps its identities alive: count them (the result shares the source's attributes).
        self._cache.put(key, entry, footprint(entry.source.attributes) + footprint(entry.roles) + 512)

    def _ask(self, identity: Identity) -> tuple[str, ...]:
        if not self._running.acquire(blocking=False):
            raise self._failure(
                "is still busy",
                f"{MAX_RUNNING} calls to the roles hook {self.name} are still running: it hangs "
                "(a database that does not answer?); refusing more until they finish",
            )
        started = False
        try:
            outcome: list[Any] = []
            finished = threading.Event()

            def run() -> None:
                try:
                    outcome.append(_checked(self.hook(identity)))
                except BaseException as exc:  # reported to the waiting request, whatever it is
                    outcome.append(exc)
                finally:
                    self._running.release()
                    finished.set()

            # A daemon thread: one that hangs forever must not keep the process from exiting.
            thread = threading.Thread(target=run, name="shibwsgi-roles", daemon=True)
            thread.start()
            started = True
        except Exception as exc:  # RuntimeError "can't start new thread": the process is out of threads
            raise self._failure(
                "could not run", f"no thread could be started for the roles hook {self.name}: {_said(exc)}"
            ) from None
        finally:
            if not started:
                self._running.release()  # run() never will
        if not finished.wait(self.timeout):
            raise self._failure(
                "did not answer in time",
                f"the roles hook {self.name} did not answer within {self.timeout:g} s "
                "(roles_timeout): is its database reachable?",
            )
        (result,) = outcome
        if isinstance(result, _NotRoles):
            raise self._failure(
                "returned something that is not roles", f"the roles hook {self.name} {result}"
            )
        if isinstance(result, BaseException):
            log.error("the roles hook %s raised an exception", self.name, exc_info=result)
            raise self._failure("failed", f"the roles hook {self.name} raised {_said(result)}")
        roles: tuple[str, ...] = result
        return roles

    def _failure(self, what: str, log_message: str) -> RolesError:
        return RolesError(
            f"the user's roles could not be looked up: the application's roles hook {what}; "
            "try again later (the server log says more)",
            log_message=log_message,
        )


class _NotRoles(Exception):
    """What a hook returned cannot be role names (the message says why)."""


def _checked(answer: object) -> tuple[str, ...]:
    if isinstance(answer, (str, bytes, bytearray, memoryview, Mapping)) or not isinstance(answer, Iterable):
        raise _NotRoles(
            f"returned {type(answer).__name__}, not an iterable of role names "
            "(a list, tuple, set or generator of strings)"
        )
    roles = set()
    # Counted as read, repeats included: an endless answer (itertools.repeat) is refused, not
    # read forever by a thread that would hold its slot and a core.
    for count, role in enumerate(answer, 1):
        if count > MAX_ROLES:
            raise _NotRoles(f"returned more than {MAX_ROLES} role names")
        if not isinstance(role, str):
            raise _NotRoles(f"returned a role name that is {type(role).__name__}, not a string")
        role = str.__str__(role)  # a plain string: a subclass could compare or hash as it likes
        if not role or not role.isprintable() or len(role) > MAX_ROLE_LENGTH:
            raise _NotRoles(
                f"returned a role name that is empty, longer than {MAX_ROLE_LENGTH} characters "
                "or holds control characters"
            )
        roles.add(role)
    return tuple(sorted(roles))


def _said(exc: BaseException) -> str:
    """``exc``'s type and message, even when its ``str()`` raises."""
    try:
        message = str(exc)
    except Exception:
        message = "(its message cannot be shown: str() raised)"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _name(hook: object) -> str:
    module = getattr(hook, "__module__", None)
    qualname = getattr(hook, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else repr(hook)


def load_hook(reference: str) -> RolesHook:
    """The function named ``module:function`` (``package.module:Class.method`` works too)."""
    module_name, colon, attribute = reference.strip().partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not module:function")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {reference!r}: {exc}") from None
    if not callable(found):
        raise ValueError(f"{reference!r} is {type(found).__name__}, not a function")
    hook: RolesHook = found
    return hook
