"""Declaring which front-end attributes the application receives."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_VALUES", "Attribute"]

#: Largest raw attribute accepted by default: the uwsgi protocol's 64 KiB vars
#: block cannot carry more, so the default never drops anything that arrived.
DEFAULT_MAX_BYTES = 65535
#: Most values accepted by default (thousands of groups are normal).
DEFAULT_MAX_VALUES = 10_000


@dataclass(frozen=True)
class Attribute:
    """One attribute the application wants, read from the front end's ``source``.

    ``multi``: keep every value (else only the first).
    ``required``: refuse the request (403) when it is missing, 431 when over its caps.
    ``max_bytes`` / ``max_values``: caps; ``None`` uses the middleware's defaults.
    """

    source: str
    multi: bool = False
    required: bool = False
    max_bytes: int | None = None
    max_values: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError("attributes", f"source must be a non-empty string, not {self.source!r}")
        for name in ("multi", "required"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(
                    "attributes", f"{name} of {self.source!r} must be True or False, not {value!r}"
                )
        for name in ("max_bytes", "max_values"):
            value = getattr(self, name)
            # bool is an int to Python, but max_bytes=True is not a size.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(
                    "attributes",
                    f"{name} of {self.source!r} must be a positive integer or None, not {value!r}",
                )
