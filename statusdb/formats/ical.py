"""An iCalendar (RFC 5545) feed of a status page's maintenance windows.

`calendar(conn, slug, token=..., limit=...)` is an operation (sync or async connection)
returning a `FeedDocument` (`text/calendar`): one VCALENDAR with a VEVENT per window (its
scheduled and running windows, then the latest completed and cancelled ones, at most `limit`,
1 to 200) and a VTIMEZONE for every time zone an event names. A private page needs its token;
without it, `NotFound`, exactly like an unknown slug.

* A recurring window is one VEVENT with its RRULE, as statusdb expands it: DTSTART is the
  series' first occurrence as wall-clock time with `TZID=<the window's zone>` (so occurrences
  keep their local time across daylight-saving changes, RFC 5545 3.3.5; a DTSTART the clocks
  skip is written as stored, 02:30, which RFC 5545 reads as statusdb does), DURATION the exact
  length of each occurrence in seconds (`PT5400S`: exact, not nominal, so an occurrence across a
  change lasts what statusdb says). A series in UTC is written in UTC (`...Z`, no TZID), and
  so is a window whose zone this machine's zoneinfo does not know (rather than no calendar).
* A one-off window has DTSTART and DTEND in its zone when both local times name one instant
  each, otherwise (either in a fall-back hour, or the zone is UTC) both in UTC.
* statusdb cancels whole windows (a series at once): a cancelled window is its VEVENT with
  `STATUS:CANCELLED` (RFC 5545 3.8.1.11), which calendar clients show struck out or remove;
  every other window is `STATUS:CONFIRMED`. There is no per-occurrence cancellation to write
  as EXDATE.
* UID is `maintenance-<window id>@<uid_domain>`, stable for the life of the window; DTSTAMP
  and LAST-MODIFIED are the window's last change, CREATED its creation (no METHOD: DTSTAMP is
  then LAST-MODIFIED, RFC 5545 3.8.7.2). SEQUENCE is left at its default 0: statusdb keeps no
  count of reschedules, and a subscribed calendar re-reads the whole feed anyway.
* VTIMEZONE: the zone's observances (STANDARD / DAYLIGHT with TZOFFSETFROM, TZOFFSETTO, TZNAME),
  one per transition of the system's zoneinfo, from the year before the zone's earliest
  DTSTART (1900 at the earliest) to ten years after its latest event (a client that knows the
  IANA name, as most do, uses its own rules; one that reads VTIMEZONE keeps the last offset
  after that).

Times are whole seconds (iCalendar has no fractions: microseconds are dropped). Text values are
escaped (backslash, semicolon, comma, newline), characters TEXT cannot hold (controls but tab)
are replaced by U+FFFD, and lines are folded at 75 octets without splitting a UTF-8 sequence.
The bytes depend only on the page's data: the same page renders the same bytes and version.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Iterator
from typing import Final

from statusdb.db.executor import Op, operation
from statusdb.domain import recurrence
from statusdb.errors import InvalidInput
from statusdb.formats import source
from statusdb.formats.source import DEFAULT_LIMIT, FeedDocument, FeedSource, FeedWindow, clean

__all__ = ["CONTENT_TYPE", "UID_DOMAIN", "FeedDocument", "calendar", "render_calendar"]

CONTENT_TYPE: Final = "text/calendar; charset=utf-8"
#: The right-hand side of event UIDs unless told (RFC 5545 3.8.4.7 suggests a domain name).
UID_DOMAIN: Final = "statusdb"
_DOMAIN: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,200}[A-Za-z0-9])?")
PRODID: Final = "-//statusdb//maintenance calendar//EN"
#: Years of VTIMEZONE observances written past a zone's latest event.
ZONE_YEARS_AHEAD: Final = 10
#: Observances are written for these years at most (before 1900 zones ran on local mean time;
#: the end keeps every computed local time representable).
_FIRST_ZONE_YEAR: Final = 1900
_LAST_ZONE_YEAR: Final = 9990
_LINE_OCTETS: Final = 75
_UTC_NAMES: Final = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Zulu", "Zulu"})


# -- values ------------------------------------------------------------------------------------


def _text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): escaped, controls replaced, newlines as \\n."""
    value = clean(value).replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\n", "\\n")  # HTAB stays: TEXT allows it


def _utc(value: dt.datetime) -> str:
    return _local(value.astimezone(dt.UTC)) + "Z"


def _local(value: dt.datetime) -> str:
    # Not strftime: its %Y does not pad years before 1000 on every platform.
    v = value
    return f"{v.year:04d}{v.month:02d}{v.day:02d}T{v.hour:02d}{v.minute:02d}{v.second:02d}"


def _offset(delta: dt.timedelta | None) -> str:
    seconds = int((delta or dt.timedelta(0)).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def _fold(line: str) -> Iterator[str]:
    """`line` folded into lines of at most 75 octets (RFC 5545 3.1), whole characters each."""
    chunk: list[str] = []
    size = 0
    limit = _LINE_OCTETS
    for char in line:
        octets = len(char.encode("utf-8"))
        if size + octets > limit:
            yield "".join(chunk)
            chunk, size, limit = [" "], 1, _LINE_OCTETS
        chunk.append(char)
        size += octets
    yield "".join(chunk)


def _is_utc(name: str) -> bool:
    return name in _UTC_NAMES


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The window's zone; None for UTC or for a name this machine's zoneinfo does not know (a
    row written around statusdb, or older tzdata than the writer's): its event is then
    written in UTC rather than failing the whole calendar."""
    if _is_utc(name):
        return None
    try:
        return recurrence.zone(name)
    except InvalidInput:
        return None


def _unambiguous(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """`value`'s wall-clock time in `zone` if that time names `value` alone, else None."""
    local = value.astimezone(zone).replace(tzinfo=None)
    if not recurrence.exists(local, zone) or recurrence.is_ambiguous(local, zone):
        return None
    return local


# -- VTIMEZONE ---------------------------------------------------------------------------------


def _state(zone: zoneinfo.ZoneInfo, at: dt.datetime) -> tuple[object, object, object]:
    local = at.astimezone(zone)
    return local.utcoffset(), local.dst(), local.tzname()


def _transitions(
    zone: zoneinfo.ZoneInfo, since: dt.datetime, until: dt.datetime
) -> Iterator[dt.datetime]:
    """The instants in [since, until) at which `zone`'s offset, DST or name changes (found by
    day, then bisected to the second; zones change at most once a day)."""
    day = dt.timedelta(days=1)
    second = dt.timedelta(seconds=1)
    at = since
    before = _state(zone, at)
    while at < until:
        nxt = min(at + day, until)
        after = _state(zone, nxt)
        if after != before:
            low, high = at, nxt  # state(low) == before, state(high) != before
            while high - low > second:
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle <= low:
                    middle = low + second
                if _state(zone, middle) == before:
                    low = middle
                else:
                    high = middle
            yield high
            before = _state(zone, high)
        at = nxt


def _observance(
    kind: str, start: dt.datetime, offset_from: object, offset_to: object, name: object
) -> list[str]:
    lines = [
        f"BEGIN:{kind}",
        f"DTSTART:{_local(start)}",
        f"TZOFFSETFROM:{_offset(offset_from)}",  # type: ignore[arg-type]
        f"TZOFFSETTO:{_offset(offset_to)}",  # type: ignore[arg-type]
    ]
    if name:
        lines.append(f"TZNAME:{_text(str(name))}")
    return [*lines, f"END:{kind}"]


@functools.lru_cache(maxsize=256)
def _vtimezone(name: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """The VTIMEZONE of `name` for those years (cached: the scan for transitions is most of a
    calendar's rendering time, and the system's zoneinfo does not change under a process)."""
    zone = recurrence.zone(name)
    first = min(max(first_year, _FIRST_ZONE_YEAR), _LAST_ZONE_YEAR)
    last = min(max(last_year, first), _LAST_ZONE_YEAR)
    since = dt.datetime(first, 1, 1, tzinfo=dt.UTC)
    until = dt.datetime(last + 1, 1, 1, tzinfo=dt.UTC)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}"]
    offset, dst, abbreviation = _state(zone, since)
    kind = "DAYLIGHT" if dst else "STANDARD"
    start = (since + offset).replace(tzinfo=None)  # type: ignore[operator]
    lines += _observance(kind, start, offset, offset, abbreviation)
    for at in _transitions(zone, since, until):
        before = _state(zone, at - dt.timedelta(seconds=1))
        offset, dst, abbreviation = _state(zone, at)
        kind = "DAYLIGHT" if dst else "STANDARD"
        start = (at + before[0]).replace(tzinfo=None)  # type: ignore[operator]
        lines += _observance(kind, start, before[0], offset, abbreviation)
    return (*lines, "END:VTIMEZONE")


# -- VEVENT ------------------------------------------------------------------------------------


def _one_off(window: FeedWindow) -> tuple[list[str], str | None]:
    """DTSTART and DTEND of a one-off window, and the TZID they name (None: UTC).

    In the window's zone when both wall-clock times name one instant each; otherwise both in
    UTC (clients compute an event's length on the wall clock: a TZID start with a UTC end
    across a fall-back hour would come out an hour long or short).
    """
    zone = _zone(window.time_zone)
    if zone is not None:
        start = _unambiguous(window.start_time, zone)
        end = _unambiguous(window.end_time, zone)
        if start is not None and end is not None:
            tzid = window.time_zone
            return [
                f"DTSTART;TZID={tzid}:{_local(start)}",
                f"DTEND;TZID={tzid}:{_local(end)}",
            ], tzid
    return [f"DTSTART:{_utc(window.start_time)}", f"DTEND:{_utc(window.end_time)}"], None


def _event(window: FeedWindow, page: FeedSource, uid_domain: str) -> tuple[list[str], str | None]:
    """The VEVENT of `window` and the TZID it names (None: UTC only)."""
    lines = [
        "BEGIN:VEVENT",
        f"UID:maintenance-{window.id}@{uid_domain}",
        f"DTSTAMP:{_utc(window.updated_at)}",
        f"CREATED:{_utc(window.created_at)}",
        f"LAST-MODIFIED:{_utc(window.updated_at)}",
        f"SUMMARY:{_text(window.title)}",
    ]
    tzid: str | None = None
    if window.recurrence_rule is not None and window.recurrence_start is not None:
        zone = _zone(window.time_zone)
        if zone is None:
            lines.append(f"DTSTART:{_utc(window.recurrence_start)}")
        else:
            tzid = window.time_zone
            local = window.recurrence_local_start or recurrence.local_start_of(
                window.recurrence_start, zone
            )
            lines.append(f"DTSTART;TZID={tzid}:{_local(local)}")
        seconds = max(int(window.duration.total_seconds()), 0)
        lines.append(f"DURATION:PT{seconds}S")
        lines.append(f"RRULE:{window.recurrence_rule}")
    else:
        times, tzid = _one_off(window)
        lines += times
    described = [window.description] if window.description else []
    if window.components:
        described.append("Components: " + ", ".join(window.components))
    described.append(f"Status page: {page.name}")
    lines.append(f"DESCRIPTION:{_text(chr(10).join(described))}")
    lines.append("CATEGORIES:MAINTENANCE")
    lines.append("STATUS:" + ("CANCELLED" if window.status == "CANCELLED" else "CONFIRMED"))
    lines.append("END:VEVENT")
    return lines, tzid


def _uid_domain(value: str) -> str:
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value):
        raise InvalidInput(f"uid_domain must be a domain name, not {value!r}")
    return value


def render_calendar(page: FeedSource, *, uid_domain: str = UID_DOMAIN) -> FeedDocument:
    """The iCalendar feed of `page` (as `source.read` returned it)."""
    uid_domain = _uid_domain(uid_domain)
    events: list[list[str]] = []
    years: dict[str, list[int]] = {}
    for window in page.maintenance:
        lines, tzid = _event(window, page, uid_domain)
        events.append(lines)
        if tzid is not None:
            first = (window.recurrence_start or window.start_time).year - 1
            last = window.end_time.year + ZONE_YEARS_AHEAD
            span = years.setdefault(tzid, [first, last])
            span[0] = min(span[0], first)
            span[1] = max(span[1], last)
    name = clean(f"{page.name} maintenance")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"NAME:{_text(name)}",  # RFC 7986
        f"X-WR-CALNAME:{_text(name)}",
    ]
    if page.description:
        lines.append(f"DESCRIPTION:{_text(page.description)}")  # RFC 7986
    for tzid in sorted(years):
        lines += _vtimezone(tzid, *years[tzid])
    for event in events:
        lines += event
    lines.append("END:VCALENDAR")
    body = "".join(folded + "\r\n" for line in lines for folded in _fold(line))
    return source.document(body.encode("utf-8"), CONTENT_TYPE)


@operation(retry=True)
def calendar(
    slug: str,
    *,
    token: str | None = None,
    limit: int = DEFAULT_LIMIT,
    uid_domain: str = UID_DOMAIN,
) -> Op[FeedDocument]:
    """The iCalendar feed of page `slug`'s maintenance: at most `limit` (1 to 200) windows,
    its scheduled and running ones first. A private page needs `token`; without it, NotFound
    like an unknown slug."""
    _uid_domain(uid_domain)
    page = yield from source.read.body(slug, token=token, limit=limit)
    return render_calendar(page, uid_domain=uid_domain)
