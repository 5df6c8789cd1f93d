"""What a page's feeds show, read in one call (`statusdb_page_feed`, migration 0030).

`read(conn, slug, token=..., limit=...)` returns a `FeedSource`: the page, its unresolved and
most recently resolved status incidents (newest updated first) with their timelines, and its
maintenance windows (scheduled and running ones first, earliest first; then completed and
cancelled ones, latest first) with their series and status changes. A private page needs its
token; without it (or with a wrong one) the page is `NotFound`, exactly like an unknown slug:
same query, same answer. Every datetime is in UTC.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
from psycopg.rows import dict_row

from statusdb.db.executor import Op, operation, optional
from statusdb.domain import tokens, validate
from statusdb.domain.types import (
    MaintenanceStatus,
    StatusIncidentSeverity,
    StatusIncidentStatus,
    StatusUpdate,
)
from statusdb.errors import DataCorrupt, NotFound
from statusdb.status_incidents import decode_updates

#: Entries of each kind a feed lists unless told (incidents; maintenance windows).
DEFAULT_LIMIT: Final = 50
#: Most entries of each kind a feed lists (statusdb_page_feed refuses more).
MAX_LIMIT: Final = 200
#: Timeline entries shown per status incident (its latest; statusdb_page_feed's bound).
UPDATES_SHOWN: Final = 50


#: Characters no XML 1.0 document and no iCalendar TEXT value may hold: C0 controls but tab,
#: newline and carriage return; DEL and C1 controls (iCalendar's CONTROL, and XML's
#: "discouraged"); lone surrogates (a JSON escape can make one); U+FFFE and U+FFFF.
_UNSAFE: Final = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value: str) -> str:
    """`value` with every character a feed cannot carry replaced by U+FFFD (a stored title
    may hold control characters: psql writes what it likes)."""
    return _UNSAFE.sub("\ufffd", value)


@attrs.frozen
class FeedDocument:
    """A rendered feed: its bytes, their ETag (a digest of the bytes: the same page renders the
    same bytes) and the media type to serve them with."""

    body: bytes
    version_text: str
    content_type: str


def document(body: bytes, content_type: str) -> FeedDocument:
    """`body` with its version (the first 128 bits of its SHA-256, hex)."""
    return FeedDocument(body, hashlib.sha256(body).hexdigest()[:32], content_type)


@attrs.frozen
class FeedIncident:
    """A status incident as a feed shows it (no platform incident id)."""

    id: str
    title: str
    message: str | None
    severity: StatusIncidentSeverity
    status: StatusIncidentStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None
    #: Its timeline, oldest first (the latest UPDATES_SHOWN entries).
    updates: tuple[StatusUpdate, ...]
    #: The names of the components it affects, in display order.
    components: tuple[str, ...]


@attrs.frozen
class StatusChange:
    """A maintenance window's status from `at` on (from the page's row history)."""

    status: MaintenanceStatus
    at: dt.datetime


@attrs.frozen
class FeedWindow:
    """A maintenance window as a feed shows it (no creator id)."""

    id: str
    title: str
    description: str | None
    status: MaintenanceStatus
    #: Its current or next occurrence (for a completed series: its last one).
    start_time: dt.datetime
    end_time: dt.datetime
    recurrence_rule: str | None
    #: The series' first occurrence (DTSTART's instant); None for a one-off window.
    recurrence_start: dt.datetime | None
    #: DTSTART as wall-clock time in time_zone (naive); None for a one-off window or a series
    #: written before migration 0015.
    recurrence_local_start: dt.datetime | None
    time_zone: str
    created_at: dt.datetime
    updated_at: dt.datetime
    components: tuple[str, ...]
    #: Its last status changes, oldest first (at most 20; none before the history began).
    changes: tuple[StatusChange, ...]

    @property
    def duration(self) -> dt.timedelta:
        """How long each occurrence lasts (exact)."""
        return self.end_time - self.start_time


@attrs.frozen
class FeedSource:
    """A page and what its feeds list."""

    id: str
    name: str
    description: str | None
    slug: str
    is_public: bool
    #: The page's IANA time zone (migration 0021): feeds show times in it where they are text.
    time_zone: str
    updated_at: dt.datetime
    incidents: tuple[FeedIncident, ...]
    maintenance: tuple[FeedWindow, ...]


def _instant(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise DataCorrupt(f"a feed row has an unreadable time: {value!r}") from None
    else:
        raise DataCorrupt(f"a feed row has an unreadable time: {value!r}")
    if parsed.tzinfo is None:
        raise DataCorrupt(f"a feed row has a time without offset: {value!r}")
    return parsed.astimezone(dt.UTC)


def _instant_or_none(value: object) -> dt.datetime | None:
    return None if value is None else _instant(value)


def _local(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataCorrupt(f"a feed row has an unreadable local time: {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise DataCorrupt(f"a feed row has an unreadable local time: {value!r}") from None
    return parsed.replace(tzinfo=None)


def _incident(item: Mapping[str, Any]) -> FeedIncident:
    return FeedIncident(
        id=item["id"],
        title=item["title"],
        message=item["message"],
        severity=item["severity"],
        status=item["status"],
        created_at=_instant(item["created_at"]),
        updated_at=_instant(item["updated_at"]),
        resolved_at=_instant_or_none(item["resolved_at"]),
        updates=decode_updates(item["updates"]),
        components=tuple(item["components"]),
    )


def _window(item: Mapping[str, Any]) -> FeedWindow:
    changes: Sequence[Sequence[Any]] = item["changes"]
    return FeedWindow(
        id=item["id"],
        title=item["title"],
        description=item["description"],
        status=item["status"],
        start_time=_instant(item["start_time"]),
        end_time=_instant(item["end_time"]),
        recurrence_rule=item["recurrence_rule"],
        recurrence_start=_instant_or_none(item["recurrence_start"]),
        recurrence_local_start=_local(item["recurrence_local_start"]),
        time_zone=item["time_zone"],
        created_at=_instant(item["created_at"]),
        updated_at=_instant(item["updated_at"]),
        components=tuple(item["components"]),
        changes=tuple(StatusChange(status, _instant(at)) for status, at in changes),
    )


def _not_found(slug: str) -> NotFound:
    return NotFound(f"no status page with slug {slug!r}")


@operation(retry=True)
def read(slug: str, *, token: str | None = None, limit: int = DEFAULT_LIMIT) -> Op[FeedSource]:
    """The page `slug` and what its feeds list: at most `limit` (1 to MAX_LIMIT) incidents
    and `limit` windows. A private page needs `token`; without it, NotFound like an unknown
    slug."""
    size = validate.limit(limit, maximum=MAX_LIMIT)
    if not validate.is_slug(slug):
        raise _not_found(slug)  # cannot name a page (NUL, surrogates, ...): like an unknown slug
    params = {
        "slug": slug,
        "token_hash": tokens.digest(token) if isinstance(token, str) else None,
        "limit": size,
    }
    row = yield from optional("page_feed_by_slug", params, dict_row)
    if row is None:
        raise _not_found(slug)
    return FeedSource(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        slug=row["slug"],
        is_public=row["is_public"],
        time_zone=row["time_zone"],
        updated_at=_instant(row["updated_at"]),
        incidents=tuple(_incident(item) for item in row["incidents"]),
        maintenance=tuple(_window(item) for item in row["maintenance"]),
    )
