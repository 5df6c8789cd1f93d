"""JSON-ready forms of statusdb's attrs rows, with versions as strings.

Page versions (`views.PageView.version`, `NotModified.version`, `PageBytes.version`,
`feed.PageVersionEvent.version`) exceed 2^53 (snapshot version * 256), so a JSON number loses
them in JavaScript (`JSON.parse` rounds to a double) and an ETag or `if_version` sent back no
longer matches. Every class with a version offers `version_text`; `asdict(value)` is the
serialisation statusdb recommends for anything else: `attrs.asdict` with every field named
`version` or ending in `_version` as decimal text, datetimes as ISO 8601 text with their
offset, tuples as lists, recursively. `attrs.asdict` alone keeps versions as ints: a JSON
encoder then writes numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from statusdb.errors import InvalidInput


def _is_version(field: attrs.Attribute[Any] | None) -> bool:
    return field is not None and (field.name == "version" or field.name.endswith("_version"))


def _value(_instance: object, field: attrs.Attribute[Any] | None, value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and _is_version(field):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def asdict(value: Any) -> dict[str, Any]:
    """`value` (an attrs instance: a `PageView`, a notification, ...) as a dict ready for
    `json.dumps`: versions as text, datetimes as ISO 8601, tuples as lists."""
    if not attrs.has(type(value)):
        raise InvalidInput(f"asdict takes a statusdb row (an attrs instance), not {type(value)}")
    result: dict[str, Any] = attrs.asdict(value, value_serializer=_value)
    return result
