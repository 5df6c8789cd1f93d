"""An independent RFC 5545 reference for the recurrence tests: recurring-ical-events, and random
rules with a DTSTART near daylight-saving changes (folds and gaps included)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from hypothesis import strategies as st

UTC = dt.UTC
DAY = dt.timedelta(days=1)

ZONES = (
    ZoneInfo("America/New_York"),
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("America/Sao_Paulo"),
    ZoneInfo("Pacific/Chatham"),
)
#: Local dates around DST changes (either hemisphere), where folds and gaps are.
CHANGE_DAYS = (
    dt.date(2025, 3, 9),
    dt.date(2025, 3, 30),
    dt.date(2025, 4, 6),
    dt.date(2025, 9, 28),
    dt.date(2025, 10, 5),
    dt.date(2025, 10, 26),
    dt.date(2025, 11, 2),
    dt.date(2018, 11, 4),
)
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@st.composite
def series_cases(draw: st.DrawFn) -> tuple[str, dt.datetime, ZoneInfo]:
    """A rule, a DTSTART (wall clock, on or near a DST change, in folds and gaps too) and a zone;
    DTSTART matches the rule (statusdb requires it)."""
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.sampled_from(CHANGE_DAYS)) + dt.timedelta(days=draw(st.integers(-2, 1)))
    hour = draw(st.sampled_from((0, 1, 2, 3, 12, 23)))
    minute = draw(st.sampled_from((0, 15, 30, 45)))
    local = dt.datetime.combine(day, dt.time(hour, minute))
    freq = draw(st.sampled_from(("HOURLY", "DAILY", "WEEKLY", "MONTHLY")))
    parts = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 3))
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    if freq == "HOURLY" and draw(st.booleans()):
        extra = draw(st.sets(st.sampled_from((0, 15, 30, 45)), max_size=2))
        parts.append("BYMINUTE=" + ",".join(str(m) for m in sorted(extra | {minute})))
    if freq in ("DAILY", "WEEKLY") and draw(st.booleans()):
        extra = draw(st.sets(st.sampled_from((1, 2, 3, 5)), max_size=2))
        parts.append("BYHOUR=" + ",".join(str(h) for h in sorted(extra | {hour})))
    if freq == "WEEKLY" and draw(st.booleans()):
        days = draw(st.sets(st.sampled_from(WEEKDAYS), max_size=2))
        parts.append("BYDAY=" + ",".join(sorted(days | {WEEKDAYS[local.weekday()]})))
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 40))}")
    return ";".join(parts), local, zone


def reference_starts(
    rule: str, local: dt.datetime, zone: ZoneInfo, since: dt.datetime, until: dt.datetime
) -> list[dt.datetime]:
    """Occurrence starts in [since, until) by recurring-ical-events, as UTC instants."""
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:statusdb-tests\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        f"DTSTART;TZID={zone.key}:{local:%Y%m%dT%H%M%S}\r\nDURATION:PT1M\r\n"
        f"RRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    events = recurring_ical_events.of(icalendar.Calendar.from_ical(text)).between(
        since - DAY, until + DAY
    )
    found = {event["DTSTART"].dt.astimezone(UTC) for event in events}
    return sorted(s for s in found if since <= s < until)
