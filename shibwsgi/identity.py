"""The verified identity handed to the application."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, cast

__all__ = ["Identity"]


@dataclass(frozen=True)
class Identity:
    """Who the front end says the user is.

    ``attributes`` maps the application's attribute names to tuples of values.
    ``expires_at`` is when the front end's own session ends, when it says so.
    ``roles`` come from the application's own data (the ``roles=`` hook), sorted.
    A time with no UTC equivalent (``0001-01-01T00:00:00+14:00``) is clamped to the
    first or last representable instant, so that every later use (UTC conversion,
    ``timestamp()``, serialisation) works.
    """

    user: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    profile: str = ""
    provider: str | None = None
    session_id: str | None = None
    authenticated_at: datetime | None = None
    expires_at: datetime | None = None
    dropped: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        frozen = MappingProxyType({name: tuple(values) for name, values in self.attributes.items()})
        object.__setattr__(self, "attributes", frozen)
        object.__setattr__(self, "dropped", tuple(self.dropped))
        object.__setattr__(self, "roles", tuple(sorted(set(self.roles))))
        object.__setattr__(self, "authenticated_at", _representable(self.authenticated_at))
        object.__setattr__(self, "expires_at", _representable(self.expires_at))

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of attribute ``name``, or ``default``."""
        values = self.attributes.get(name)
        return values[0] if values else default

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict; :meth:`from_dict` reverses it."""
        return {
            "user": self.user,
            "attributes": {name: list(values) for name, values in self.attributes.items()},
            "profile": self.profile,
            "provider": self.provider,
            "session_id": self.session_id,
            "authenticated_at": _format_time(self.authenticated_at),
            "expires_at": _format_time(self.expires_at),
            "dropped": list(self.dropped),
            "roles": list(self.roles),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity:
        """Rebuild an identity from :meth:`to_dict` output; ``ValueError`` if malformed."""
        try:
            attributes = data.get("attributes") or {}
            return cls(
                user=_text(data["user"]),
                attributes={_text(k): _texts(v) for k, v in dict(attributes).items()},
                profile=_text(data.get("profile", "")),
                provider=_optional_text(data.get("provider")),
                session_id=_optional_text(data.get("session_id")),
                authenticated_at=_parse_time(data.get("authenticated_at")),
                expires_at=_parse_time(data.get("expires_at")),
                dropped=_texts(data.get("dropped") or ()),
                roles=_texts(data.get("roles") or ()),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a serialised Identity: {exc}") from exc

    def to_json(self) -> str:
        """Serialise losslessly to a JSON string."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Identity:
        """Inverse of :meth:`to_json`; ``ValueError`` if malformed."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a serialised Identity: expected a JSON object")
        return cls.from_dict(data)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _texts(values: Iterable[object]) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)):
        raise TypeError("expected a list of strings")
    items = tuple(values)
    if not all(isinstance(value, str) for value in items):
        raise TypeError("expected a list of strings")
    return cast("tuple[str, ...]", items)


def _format_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse_time(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(_text(value))


_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


def _representable(moment: datetime | None) -> datetime | None:
    """``moment``, or the nearest instant that has a UTC form when it has none."""
    if moment is None:
        return None
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError, OSError):
        # Only the two ends of time lack a UTC form: a date near year 1 or year 9999.
        return _FIRST if moment.year < 5000 else _LAST
    return moment
