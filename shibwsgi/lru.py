"""Internal: a thread-safe least-recently-used map bounded both in entries and in bytes.

The per-worker caches (identities, verified cookies, the session stores') share
it. Sizes are what the caller estimates per entry (:func:`footprint` for decoded
data); an entry bigger than the whole budget is not kept.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["BoundedLRU", "footprint"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    """At most ``max_entries`` entries and ``max_bytes`` bytes; either at 0 keeps nothing."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.enabled = max_entries > 0 and max_bytes > 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<BoundedLRU {len(self._entries)} entries, {self._bytes} of {self.max_bytes} bytes>"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held, as estimated by the callers of :meth:`put`."""
        return self._bytes

    def get(self, key: K) -> V | None:
        """The value under ``key`` (now the most recently used), or ``None``."""
        # No lock on the hot path: each OrderedDict call is atomic under the GIL, and a
        # key evicted between the two calls is simply not refreshed.
        entries = self._entries
        found = entries.get(key)
        if found is None:
            return None
        try:  # noqa: SIM105 (contextlib.suppress would cost a context manager per hit)
            entries.move_to_end(key)
        except KeyError:
            pass
        return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` under ``key``, evicting the least recently used beyond the bounds.

        Any older value under ``key`` goes first, even when ``value`` is too large to keep.
        """
        with self._lock:
            self._pop(key)
            if size > self.max_bytes or not self.enabled:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def pop(self, key: K) -> None:
        """Forget ``key`` if it is there."""
        with self._lock:
            self._pop(key)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _pop(self, key: K) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1]


def footprint(value: object) -> int:
    """Bytes ``value`` occupies, following dicts, mappings, lists, tuples, sets and dataclasses.

    Decoded JSON takes several times the bytes of its text (a 6 KB session of 400
    group names is about 34 KB of objects), so caches of decoded data are bounded by
    this, not by the text's length. An object reached twice is counted twice.
    Iterative: no depth of nesting raises ``RecursionError``.
    """
    size = 0
    pending = [value]
    while pending:
        item = pending.pop()
        size += sys.getsizeof(item)
        if isinstance(item, Mapping):
            for key, member in item.items():
                pending.append(key)
                pending.append(member)
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            if hasattr(item, "__dict__"):
                pending.append(vars(item))
            else:
                pending.extend(getattr(item, field.name) for field in dataclasses.fields(item))
    return size
