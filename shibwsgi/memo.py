"""Internal: a per-worker memo of parsed identities: a repeat request costs a comparison of its raw values.

An identity is a pure function of the environ values the parser reads (the
configuration is fixed per parser). On a miss the memo records every key the
parser read and what it found there, absent keys included, so dynamic keys such
as mellon's ``_0 .. _N`` series are covered too. A later request hits only when
its short key fields (the user and front-end session variables) match an entry
and every recorded value is equal again, compared as strings: length, then
bytes. Nothing long is ever hashed. Entries are bounded in number and in
estimated bytes, least recently used out first; a refusal is never stored.
An identity is kept from its second sight on: a one-off request (a crawler, a
single visit) costs only its parse, not the keeping of its raw values.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

from .identity import Identity
from .lru import BoundedLRU

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "IdentityMemo"]

#: 16 MiB: about 70 identities carrying a 64 KB attribute, or thousands of ordinary ones.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 10_000
#: Share of the byte budget for the short keys seen once (the rest holds identities).
_SEEN_SHARE = 16

#: What the environ gave for a key that is not there (``None`` could be a value).
_ABSENT: Any = object()
#: Bytes an entry costs beyond its strings: the entry, its tuples, the dict slot.
_ENTRY_OVERHEAD = 1024
_STR_OVERHEAD = sys.getsizeof("") + 8  # the object header and the tuple slot pointing at it

Parse = Callable[[Mapping[str, Any]], Identity | None]


class _Entry(NamedTuple):
    keys: tuple[str, ...]
    values: tuple[Any, ...]
    identity: Identity
    size: int


class _Reads(Mapping[str, Any]):
    """A view of the environ that records every key read and the value found."""

    __slots__ = ("complete", "environ", "read_keys", "read_values")

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ
        self.read_keys: list[str] = []
        self.read_values: list[Any] = []
        self.complete = True

    def get(self, key: str, default: Any = None) -> Any:
        value = self.environ.get(key, _ABSENT)
        self.read_keys.append(key)
        self.read_values.append(value)
        return default if value is _ABSENT else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def __iter__(self) -> Iterator[str]:
        # Which keys exist is an input too, and not one a few values can confirm.
        self.complete = False
        return iter(self.environ)

    def __len__(self) -> int:
        self.complete = False
        return len(self.environ)


class IdentityMemo:
    """Memoises ``parse(environ)`` per worker, keyed on the values of ``key_names``.

    ``max_bytes`` bounds the estimated memory of the entries (the raw values kept
    for the comparison plus the identities); ``max_entries`` their number. Either
    at 0 turns the memo off. Thread-safe.
    """

    def __init__(
        self,
        parse: Parse,
        *,
        key_names: Sequence[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._parse = parse
        self._key_names = tuple(key_names)
        seen_bytes = max_bytes // _SEEN_SHARE
        self.entries: BoundedLRU[tuple[Any, ...], _Entry] = BoundedLRU(
            max_entries=max_entries, max_bytes=max_bytes - seen_bytes
        )
        self.seen: BoundedLRU[tuple[Any, ...], bool] = BoundedLRU(
            max_entries=max_entries, max_bytes=seen_bytes
        )
        self._enabled = self.entries.enabled
        self._anonymous = (None,) * len(self._key_names)

    def __repr__(self) -> str:
        return f"<IdentityMemo {self.entries!r}, seen once {self.seen!r}>"

    @property
    def size(self) -> int:
        """Estimated bytes held: identities, their raw values, the keys seen once."""
        return self.entries.size + self.seen.size

    def parse(self, environ: Mapping[str, Any]) -> Identity | None:
        """``parse(environ)``, from the memo when the raw values are the same."""
        if not self._enabled:
            return self._parse(environ)
        get = environ.get
        key = tuple(map(get, self._key_names))
        if key == self._anonymous:  # no user, no front-end session: nothing worth keeping
            return self._parse(environ)
        try:
            entry = self.entries.get(key)
        except TypeError:  # an unhashable value where a string belongs: parse it as it is
            return self._parse(environ)
        if entry is not None and tuple(map(get, entry.keys, repeat(_ABSENT))) == entry.values:
            return entry.identity
        if entry is None and self.seen.get(key) is None:
            self.seen.put(key, True, _ENTRY_OVERHEAD // 4 + sum(map(sys.getsizeof, key)))
            return self._parse(environ)
        reads = _Reads(environ)
        identity = self._parse(reads)  # a refusal raises: nothing is stored
        if identity is not None and reads.complete:
            entry = _entry(reads, identity)
            self.entries.put(key, entry, entry.size + sum(map(sys.getsizeof, key)))
        return identity


def _entry(reads: _Reads, identity: Identity) -> _Entry:
    values = tuple(reads.read_values)
    # Absent keys count as a small object each: harmless, and the sum stays in C.
    size = _ENTRY_OVERHEAD + sum(map(sys.getsizeof, values))
    for attribute in identity.attributes.values():
        # One join (in C) sizes the values' text at the widest character any of them needs.
        size += sys.getsizeof("".join(attribute)) + _STR_OVERHEAD * len(attribute)
    return _Entry(tuple(reads.read_keys), values, identity, size)
