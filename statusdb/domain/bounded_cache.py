"""A per-process map bounded in entries and in bytes, least recently used out first.

The bookkeeping `views.PageViewCache` and `uptime.DailyUptimeCache` share: each keeps its own
keys, entries (anything with a `size` in bytes) and the reads that validate them; this keeps
the order of use, the two bounds and the lock. The lock is held only around dictionary work,
never across I/O, so the caches are safe to share between threads and asyncio tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from statusdb.errors import InvalidInput


class Sized(Protocol):
    """An entry: its size in bytes, as the cache measures it."""

    @property
    def size(self) -> int: ...


E = TypeVar("E", bound=Sized)


class BoundedCache(Generic[E]):
    """Entries by key (a tuple), at most `max_entries` of them and `max_bytes` of their sizes."""

    def __init__(self, *, max_entries: int = 1024, max_bytes: int = 64 * 1024 * 1024) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise InvalidInput("max_entries must be a positive integer")
        if type(max_bytes) is not int or max_bytes < 1:
            raise InvalidInput("max_bytes must be a positive integer")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], E] = {}  # in use order (oldest first)
        self._bytes = 0
        #: Validated hits and full reads (for the curious; not synchronised exactly).
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The cached entries' total size, in bytes (as each cache measures an entry)."""
        return self._bytes

    def _get(self, key: tuple[Any, ...]) -> E | None:
        """The entry for `key`, now the most recently used; None when there is none."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._entries[key] = entry
        return entry

    def _put(self, key: tuple[Any, ...], entry: E | None) -> None:
        """Replace `key`'s entry (None, or one larger than `max_bytes`: drop it), then drop
        the least recently used ones until both bounds hold."""
        with self._lock:
            self._drop(key)
            if entry is None or entry.size > self.max_bytes:
                return
            self._entries[key] = entry
            self._bytes += entry.size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop_where(self, stale: Callable[[E], bool]) -> int:
        """Drop the entries `stale` says are: how many."""
        with self._lock:
            keys = [key for key, entry in self._entries.items() if stale(entry)]
            for key in keys:
                self._drop(key)
        return len(keys)

    def _drop(self, key: tuple[Any, ...]) -> None:
        """Forget `key` (the lock held)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
