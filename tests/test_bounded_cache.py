"""statusdb.domain.bounded_cache: the bookkeeping PageViewCache and DailyUptimeCache share."""

from __future__ import annotations

import attrs
import pytest

from statusdb.domain.bounded_cache import BoundedCache
from statusdb.errors import InvalidInput


@attrs.frozen
class Entry:
    name: str
    size: int


def test_least_recently_used_goes_first_within_both_bounds() -> None:
    cache: BoundedCache[Entry] = BoundedCache(max_entries=2, max_bytes=10)
    cache._put(("a",), Entry("a", 3))
    cache._put(("b",), Entry("b", 3))
    assert cache._get(("a",)) == Entry("a", 3)  # a is now the most recently used
    cache._put(("c",), Entry("c", 3))  # three entries: b goes
    assert cache._get(("b",)) is None
    assert (len(cache), cache.size) == (2, 6)
    cache._put(("d",), Entry("d", 6))  # 12 bytes: a (least recently used) goes
    assert sorted(key[0] for key in cache._entries) == ["c", "d"]
    assert cache.size == 9


def test_a_replaced_dropped_or_oversized_entry_is_counted_once() -> None:
    cache: BoundedCache[Entry] = BoundedCache(max_entries=5, max_bytes=10)
    cache._put(("a",), Entry("a", 4))
    cache._put(("a",), Entry("a2", 5))
    assert (len(cache), cache.size) == (1, 5)
    cache._put(("a",), Entry("big", 11))  # larger than max_bytes: not kept, the old one gone
    assert (len(cache), cache.size) == (0, 0)
    cache._put(("a",), Entry("a", 4))
    cache._put(("a",), None)
    assert (len(cache), cache.size) == (0, 0)
    for name in "xyz":
        cache._put((name,), Entry(name, 2))
    assert cache._drop_where(lambda entry: entry.name != "y") == 2
    assert (list(cache._entries), cache.size) == ([("y",)], 2)


@pytest.mark.parametrize(
    "bounds", [{"max_entries": 0}, {"max_bytes": -1}, {"max_entries": 1.5}, {"max_bytes": True}]
)
def test_bounds_are_positive_integers(bounds: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="positive integer"):
        BoundedCache(**bounds)  # type: ignore[arg-type]
