"""Atom, RSS and iCalendar feeds (statusdb.formats, issue 24 item 2), checked with independent
parsers: feedparser for Atom and RSS, icalendar and recurring-ical-events for the calendar
(its occurrences equal maintenance.list_upcoming over a year, DST changes included)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import feedparser
import icalendar
import psycopg
import psycopg.sql
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, example, given, settings
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from rfc5545_reference import series_cases

from statusdb import components, groups, maintenance, pages, status_incidents, teams
from statusdb.domain import recurrence
from statusdb.errors import InvalidInput, NotFound
from statusdb.formats import feeds, ical, source
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
YEAR = dt.timedelta(days=366)
#: Before the windows below; list_upcoming and the calendar are compared from here for a year.
NOW = dt.datetime(2030, 1, 1, tzinfo=UTC)
PAGE_URL = "https://status.example.com/"
FEED_URL = "https://status.example.com/feed.atom"


def _ical(body: bytes) -> Any:
    """`body` parsed by icalendar (as Any: its property values are a wide union)."""
    return icalendar.Calendar.from_ical(body)


def _slug() -> str:
    return f"feeds-{uuid.uuid4().hex[:10]}"


def _page(
    conn: Conn, *, is_public: bool = True, time_zone: str = "Europe/Berlin"
) -> tuple[pages.CreatedPage, list[str]]:
    team = teams.create(conn, name=f"T {uuid.uuid4().hex[:6]}")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme Status",
        slug=_slug(),
        created_by_id="ops",
        is_public=is_public,
        description="All of Acme's services",
        components=[NewComponent(name="API"), NewComponent(name="Web")],
        time_zone=time_zone,
    )
    ids = [c.id for c in components.list_for_page(conn, created.page.id)]
    return created, ids


def _berlin_series(
    conn: Conn, page_id: str, component_ids: list[str]
) -> maintenance.MaintenanceWindow:
    """A weekly series at 02:30 Berlin time across both 2030 DST changes (gap on 31 March)."""
    return maintenance.create(
        conn,
        page_id,
        title="Weekly database vacuum",
        start_time=dt.datetime(2030, 1, 6, 2, 30, tzinfo=BERLIN),  # a Sunday
        end_time=dt.datetime(2030, 1, 6, 4, 0, tzinfo=BERLIN),
        recurrence_rule="FREQ=WEEKLY;BYDAY=SU",
        time_zone="Europe/Berlin",
        component_ids=component_ids[:1],
        created_by_id="ops",
    )


def _calendar_windows(conn: Conn, page_id: str, component_ids: list[str]) -> dict[str, str]:
    """A Berlin weekly series, a New York daily series with COUNT across its March change, a
    one-off in UTC, a one-off in New York, a cancelled one-off and a cancelled series."""
    made = {
        "berlin": _berlin_series(conn, page_id, component_ids).id,
        "new_york": maintenance.create(
            conn,
            page_id,
            title="Nightly backup",
            start_time=dt.datetime(2030, 3, 8, 1, 30, tzinfo=NEW_YORK),
            end_time=dt.datetime(2030, 3, 8, 3, 0, tzinfo=NEW_YORK),
            recurrence_rule="FREQ=DAILY;COUNT=5",
            time_zone="America/New_York",
            created_by_id="ops",
        ).id,
        "utc_once": maintenance.create(
            conn,
            page_id,
            title="Network, carrier work",
            start_time=dt.datetime(2030, 6, 1, 22, 0, tzinfo=UTC),
            end_time=dt.datetime(2030, 6, 2, 1, 0, tzinfo=UTC),
            component_ids=component_ids,
            created_by_id="ops",
        ).id,
        "ny_once": maintenance.create(
            conn,
            page_id,
            title="Office; move, part 2",
            description="Line one\nLine two; with, punctuation \\ and a backslash",
            start_time=dt.datetime(2030, 11, 3, 0, 30, tzinfo=NEW_YORK),
            end_time=dt.datetime(2030, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK),  # EST, 2 h
            time_zone="America/New_York",
            created_by_id="ops",
        ).id,
    }
    cancelled = maintenance.create(
        conn,
        page_id,
        title="Cancelled upgrade",
        start_time=dt.datetime(2030, 2, 1, 8, 0, tzinfo=UTC),
        end_time=dt.datetime(2030, 2, 1, 9, 0, tzinfo=UTC),
        created_by_id="ops",
    )
    maintenance.cancel(conn, cancelled.id)
    series = maintenance.create(
        conn,
        page_id,
        title="Cancelled series",
        start_time=dt.datetime(2030, 1, 3, 9, 0, tzinfo=BERLIN),
        end_time=dt.datetime(2030, 1, 3, 10, 0, tzinfo=BERLIN),
        recurrence_rule="FREQ=WEEKLY",
        time_zone="Europe/Berlin",
        created_by_id="ops",
    )
    maintenance.cancel(conn, series.id)
    made["cancelled"] = cancelled.id
    made["cancelled_series"] = series.id
    return made


def _occurrences(
    body: bytes, since: dt.datetime, until: dt.datetime
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(UID, start, end) of every confirmed occurrence overlapping [since, until), expanded by
    recurring-ical-events, as UTC instants.

    A series' DURATION is exact (RFC 5545 3.3.6: a dur-time is exact); recurring-ical-events
    adds it on the wall clock (an occurrence across a DST change would end an hour off), so
    the end is the start plus the master event's DURATION, as icalendar parsed it. An hourly
    rule names a skipped local time (02:00 on a spring-forward night) that falls on the next
    hour's instant; recurring-ical-events lists both, RFC 5545 (3.8.5.3) counts such a
    duplicate once, as statusdb does: occurrences are a set.
    """
    calendar = _ical(body)
    durations = {
        str(event["UID"]): event["DURATION"].dt
        for event in calendar.walk("VEVENT")
        if "DURATION" in event
    }
    found = set()
    for event in recurring_ical_events.of(calendar).between(since - DAY, until + DAY):
        if str(event.get("STATUS")) == "CANCELLED":
            continue
        uid = str(event["UID"])
        start = event["DTSTART"].dt.astimezone(UTC)
        end = start + durations[uid] if uid in durations else event["DTEND"].dt.astimezone(UTC)
        if end > since and start < until:
            found.add((uid, start, end))
    return sorted(found, key=lambda o: (o[1], o[0]))


# -- iCalendar ---------------------------------------------------------------------------------


def test_calendar_occurrences_equal_list_upcoming_over_a_year(conn: Conn) -> None:
    created, component_ids = _page(conn)
    page_id = created.page.id
    made = _calendar_windows(conn, page_id, component_ids)
    document = ical.calendar(conn, created.page.slug)
    assert document.content_type == "text/calendar; charset=utf-8"
    assert document.body.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")

    upcoming = maintenance.list_upcoming(conn, page_id, now=NOW, horizon=YEAR)
    expected = sorted(
        ((f"maintenance-{o.window_id}@statusdb", o.start_time, o.end_time) for o in upcoming),
        key=lambda o: (o[1], o[0]),
    )
    assert _occurrences(document.body, NOW, NOW + YEAR) == expected
    assert len(expected) > 50
    starts = {o.start_time for o in upcoming if o.window_id == made["berlin"]}
    # Wall-clock time kept across both DST changes: 02:30 CET, then (the gap day) 03:30 CEST,
    # then 02:30 CEST, on the fall-back day the first 02:30 (CEST), then 02:30 CET.
    assert dt.datetime(2030, 3, 24, 1, 30, tzinfo=UTC) in starts
    assert dt.datetime(2030, 3, 31, 1, 30, tzinfo=UTC) in starts  # 03:30 CEST, the gap day
    assert dt.datetime(2030, 4, 7, 0, 30, tzinfo=UTC) in starts  # 02:30 CEST
    assert dt.datetime(2030, 10, 27, 0, 30, tzinfo=UTC) in starts  # 02:30 CEST, repeated hour
    assert dt.datetime(2030, 11, 3, 1, 30, tzinfo=UTC) in starts  # 02:30 CET
    assert {o.window_id for o in upcoming} == {
        made["berlin"],
        made["new_york"],
        made["utc_once"],
        made["ny_once"],
    }


def test_calendar_events_are_what_rfc_5545_says(conn: Conn) -> None:
    created, component_ids = _page(conn)
    made = _calendar_windows(conn, created.page.id, component_ids)
    body = ical.calendar(conn, created.page.slug).body
    for line in body.split(b"\r\n"):
        assert len(line) <= 75, line  # folded (RFC 5545 3.1)
    calendar = _ical(body)
    assert str(calendar["PRODID"]) == ical.PRODID
    zones = {str(z["TZID"]): z for z in calendar.walk("VTIMEZONE")}
    assert set(zones) == {"Europe/Berlin", "America/New_York"}
    events = {
        str(e["UID"]).split("@")[0].removeprefix("maintenance-"): e for e in calendar.walk("VEVENT")
    }
    assert set(events) == set(made.values())

    berlin = events[made["berlin"]]
    assert berlin["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert berlin["DTSTART"].dt.replace(tzinfo=None) == dt.datetime(2030, 1, 6, 2, 30)
    assert berlin["DURATION"].dt == dt.timedelta(minutes=90)
    assert berlin["RRULE"].to_ical() == b"FREQ=WEEKLY;BYDAY=SU"
    assert str(berlin["STATUS"]) == "CONFIRMED"
    assert "API" in str(berlin["DESCRIPTION"])

    office = events[made["ny_once"]]
    assert str(office["SUMMARY"]) == "Office; move, part 2"
    assert str(office["DESCRIPTION"]).startswith(
        "Line one\nLine two; with, punctuation \\ and a backslash"
    )
    # 01:30 EST on the fall-back night is ambiguous as wall-clock time: both written in UTC.
    assert "TZID" not in office["DTSTART"].params
    assert office["DTEND"].dt == dt.datetime(2030, 11, 3, 6, 30, tzinfo=UTC)
    assert office["DTEND"].dt - office["DTSTART"].dt == 2 * HOUR

    assert events[made["utc_once"]]["DTSTART"].dt == dt.datetime(2030, 6, 1, 22, 0, tzinfo=UTC)
    assert str(events[made["cancelled"]]["STATUS"]) == "CANCELLED"
    assert str(events[made["cancelled_series"]]["STATUS"]) == "CANCELLED"
    assert "RRULE" in events[made["cancelled_series"]]

    # The VTIMEZONE we wrote (not the system's rules) gives the zone's offsets.
    berlin_tz = zones["Europe/Berlin"].to_tz()
    for instant in (
        dt.datetime(2030, 3, 31, 0, 59, tzinfo=UTC),
        dt.datetime(2030, 3, 31, 1, 0, tzinfo=UTC),
        dt.datetime(2030, 10, 27, 0, 59, tzinfo=UTC),
        dt.datetime(2030, 10, 27, 1, 0, tzinfo=UTC),
        dt.datetime(2035, 7, 1, tzinfo=UTC),
    ):
        assert instant.astimezone(berlin_tz).utcoffset() == instant.astimezone(BERLIN).utcoffset()


def test_calendar_is_stable_and_moves_with_a_change(conn: Conn) -> None:
    created, component_ids = _page(conn)
    window = _berlin_series(conn, created.page.id, component_ids)
    first = ical.calendar(conn, created.page.slug)
    assert ical.calendar(conn, created.page.slug) == first  # same bytes, same version
    maintenance.update(conn, window.id, title="Weekly vacuum, longer")
    second = ical.calendar(conn, created.page.slug)
    assert second.version_text != first.version_text
    assert b"Weekly vacuum\\, longer" in second.body


def test_calendar_dtstart_in_the_gap_is_read_as_statusdb_reads_it(conn: Conn) -> None:
    created, _ = _page(conn)
    maintenance.create(
        conn,
        created.page.id,
        title="Backup",
        start_time=dt.datetime(2030, 3, 31, 2, 30, tzinfo=BERLIN),  # skipped that night
        end_time=dt.datetime(2030, 3, 31, 4, 0, tzinfo=BERLIN),
        recurrence_rule="FREQ=DAILY;COUNT=3",
        time_zone="Europe/Berlin",
        created_by_id="ops",
    )
    body = ical.calendar(conn, created.page.slug).body
    assert b"DTSTART;TZID=Europe/Berlin:20300331T023000" in body
    since = dt.datetime(2030, 3, 30, tzinfo=UTC)
    upcoming = maintenance.list_upcoming(conn, created.page.id, now=since, horizon=7 * DAY)
    assert [s for _, s, _ in _occurrences(body, since, since + 7 * DAY)] == [
        o.start_time for o in upcoming
    ]


@pytest.fixture
def calendar_page(conn: Conn) -> pages.CreatedPage:
    """A public page, committed (examples of a property test roll back to here)."""
    created, _ = _page(conn)
    conn.commit()
    return created


@pytest.mark.slow  # ~25 s: recurring-ical-events expands hourly rules for three weeks
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=series_cases())
@example(case=("FREQ=DAILY;COUNT=5", dt.datetime(2025, 11, 2, 1, 30), NEW_YORK))
@example(case=("FREQ=HOURLY;BYMINUTE=0,30", dt.datetime(2025, 11, 2, 1, 30), NEW_YORK))
@example(case=("FREQ=DAILY;COUNT=3", dt.datetime(2025, 3, 30, 2, 30), BERLIN))
@example(case=("FREQ=WEEKLY", dt.datetime(2025, 10, 5, 2, 15), ZoneInfo("Australia/Lord_Howe")))
# 72 a day for 20 days: more than list_upcoming lists of one window (found on 2026-12-08).
@example(case=("FREQ=HOURLY;BYMINUTE=0,15,30", dt.datetime(2025, 3, 9, 0, 30), NEW_YORK))
def test_random_series_in_dst_zones_expand_as_list_upcoming(
    conn: Conn, calendar_page: pages.CreatedPage, case: tuple[str, dt.datetime, ZoneInfo]
) -> None:
    """Random rules in DST zones, DTSTART on change days (folds and gaps): the calendar,
    expanded by recurring-ical-events, has list_upcoming's occurrences. The calendar carries
    the rule itself; list_upcoming lists a window's earliest MAX_OCCURRENCES_PER_WINDOW."""
    rule, local, zone = case
    start = local.replace(tzinfo=zone)
    first = (
        start.astimezone(UTC) if recurrence.exists(local, zone) else recurrence.instant(local, zone)
    )
    try:
        maintenance.create(
            conn,
            calendar_page.page.id,
            title="Property",
            start_time=start,
            end_time=first + dt.timedelta(minutes=10),  # BYMINUTE values are 15 minutes apart
            recurrence_rule=rule,
            time_zone=zone.key,
            created_by_id="ops",
        )
        horizon = 20 * DAY
        upcoming = maintenance.list_upcoming(
            conn, calendar_page.page.id, now=first, horizon=horizon
        )
        body = ical.calendar(conn, calendar_page.page.slug).body
        found = [(s, e) for _, s, e in _occurrences(body, first, first + horizon)]
        listed = [(o.start_time, o.end_time) for o in upcoming]
        assert len(listed) == min(len(found), maintenance.MAX_OCCURRENCES_PER_WINDOW)
        assert found[: len(listed)] == listed
    finally:
        conn.rollback()


# -- Atom and RSS ------------------------------------------------------------------------------


def _incidents(conn: Conn, page_id: str, component_ids: list[str]) -> tuple[str, str]:
    active = status_incidents.create(
        conn,
        page_id,
        title="Slow API",
        severity="MINOR",
        message="Looking into it",
        affected_component_ids=component_ids[:1],
    )
    status_incidents.add_update(conn, active.id, status="IDENTIFIED", message="A full disk")
    resolved = status_incidents.create(
        conn, page_id, title="Web down", severity="MAJOR", message="Investigating"
    )
    status_incidents.add_update(conn, resolved.id, status="RESOLVED", message="Fixed")
    return active.id, resolved.id


def test_atom_parses_without_errors_with_the_entries_expected(conn: Conn) -> None:
    created, component_ids = _page(conn)
    page_id = created.page.id
    active, resolved = _incidents(conn, page_id, component_ids)
    window = _berlin_series(conn, page_id, component_ids)
    document = feeds.atom(conn, created.page.slug, page_url=PAGE_URL, feed_url=FEED_URL)
    assert document.content_type == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(document.body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Acme Status"
    assert parsed.feed.id == f"tag:statusdb,2024:page/{page_id}"
    assert parsed.feed.links[0].href == PAGE_URL
    assert {link.rel for link in parsed.feed.links} == {"alternate", "self"}
    by_id = {entry.id: entry for entry in parsed.entries}
    prefix = f"tag:statusdb,2024:page/{page_id}"
    assert set(by_id) == {
        f"{prefix}/incident/{active}",
        f"{prefix}/incident/{resolved}",
        f"{prefix}/maintenance/{window.id}",
    }
    stored = status_incidents.get(conn, active)
    slow = by_id[f"{prefix}/incident/{active}"]
    assert slow.title == "Slow API [Identified]"
    assert dt.datetime.fromisoformat(slow.updated) == stored.updated_at
    assert dt.datetime.fromisoformat(slow.published) == stored.created_at
    assert "A full disk" in slow.content[0].value
    assert "Looking into it" in slow.content[0].value
    assert slow.content[0].value.index("A full disk") < slow.content[0].value.index("Looking")
    assert "API" in slow.content[0].value
    assert {t.term for t in slow.tags} == {"incident", "minor", "identified"}
    # Times shown in text are in the page's zone (Europe/Berlin), machine times in UTC.
    shown = stored.updates[-1].timestamp.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M")
    assert shown in slow.content[0].value
    vacuum = by_id[f"{prefix}/maintenance/{window.id}"]
    assert vacuum.title == "Maintenance: Weekly database vacuum [Scheduled]"
    assert "2030-01-06 02:30 CET to 2030-01-06 04:00 CET" in vacuum.summary
    assert "FREQ=WEEKLY;BYDAY=SU" in vacuum.content[0].value
    updated = [entry.updated_parsed for entry in parsed.entries]
    assert updated == sorted(updated, reverse=True)


def test_rss_parses_without_errors_with_the_items_expected(conn: Conn) -> None:
    created, component_ids = _page(conn)
    active, resolved = _incidents(conn, created.page.id, component_ids)
    document = feeds.rss(conn, created.page.slug, page_url=PAGE_URL, feed_url=PAGE_URL + "rss")
    assert document.content_type == "application/rss+xml; charset=utf-8"
    parsed = feedparser.parse(document.body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Acme Status"
    assert parsed.feed.link == PAGE_URL
    guids = {entry.id: entry for entry in parsed.entries}
    prefix = f"tag:statusdb,2024:page/{created.page.id}/incident/"
    assert set(guids) == {prefix + active, prefix + resolved}
    web = guids[prefix + resolved]
    assert web.guidislink is False
    assert web.title == "Web down [Resolved]"
    stored = status_incidents.get(conn, resolved)
    assert web.published_parsed[:6] == stored.updated_at.timetuple()[:6]
    assert "Fixed" in web.description


def test_feeds_bound_their_entries_and_check_their_arguments(conn: Conn) -> None:
    created, component_ids = _page(conn)
    _incidents(conn, created.page.id, component_ids)
    _berlin_series(conn, created.page.id, component_ids)
    parsed = feedparser.parse(feeds.atom(conn, created.page.slug, limit=2).body)
    assert len(parsed.entries) == 2
    for bad in (0, 201, True, "5"):
        with pytest.raises(InvalidInput, match="limit"):
            feeds.atom(conn, created.page.slug, limit=bad)  # type: ignore[arg-type]
    for url in ("javascript:alert(1)", "/relative", "https://x.example/a b", "https://x\x00"):
        with pytest.raises(InvalidInput):
            feeds.rss(conn, created.page.slug, page_url=url)
    with pytest.raises(InvalidInput, match="tag_authority"):
        feeds.atom(conn, created.page.slug, tag_authority="not a tag")
    with pytest.raises(InvalidInput, match="uid_domain"):
        ical.calendar(conn, created.page.slug, uid_domain="a b")
    with pytest.raises(pg_errors.InvalidParameterValue, match="feed_limit"):  # SQL clients too
        conn.execute("SELECT * FROM statusdb_page_feed(%s, NULL, 201)", (created.page.slug,))


def test_feeds_show_a_groups_members_and_the_window_status(conn: Conn) -> None:
    created, component_ids = _page(conn)
    group = groups.create(conn, created.page.id, name="Backend")
    for component_id in component_ids:
        groups.assign(conn, component_id, group.id)
    window = maintenance.create(
        conn,
        created.page.id,
        title="Group work",
        start_time=dt.datetime(2030, 2, 1, 8, 0, tzinfo=UTC),
        end_time=dt.datetime(2030, 2, 1, 9, 0, tzinfo=UTC),
        group_ids=[group.id],
        created_by_id="ops",
    )
    page = source.read(conn, created.page.slug)
    (shown,) = page.maintenance
    assert shown.id == window.id
    assert shown.components == ("API", "Web")
    assert [c.status for c in shown.changes] == ["SCHEDULED"]
    entry = feedparser.parse(feeds.atom(conn, created.page.slug).body).entries[0]
    assert "Components: API, Web" in entry.content[0].value
    event = _ical(ical.calendar(conn, created.page.slug).body).walk("VEVENT")[0]
    assert "Components: API, Web" in str(event["DESCRIPTION"])


# -- private pages -----------------------------------------------------------------------------


def test_private_page_needs_its_token_and_is_otherwise_unknown(conn: Conn) -> None:
    created, component_ids = _page(conn, is_public=False)
    _incidents(conn, created.page.id, component_ids)
    _berlin_series(conn, created.page.id, component_ids)
    slug = created.page.slug
    token = created.access_token
    assert token is not None
    messages = set()
    calls: tuple[Callable[[str | None], source.FeedDocument], ...] = (
        lambda t: feeds.atom(conn, slug, token=t),
        lambda t: feeds.rss(conn, slug, token=t, page_url=PAGE_URL),
        lambda t: ical.calendar(conn, slug, token=t),
    )
    for call in calls:
        assert call(token).body
        for wrong in (None, "wrong", token[:-1], ""):
            with pytest.raises(NotFound) as caught:
                call(wrong)
            messages.add(str(caught.value).replace(slug, "<slug>"))
    unknown = _slug()
    with pytest.raises(NotFound) as caught:
        feeds.atom(conn, unknown)
    messages.add(str(caught.value).replace(unknown, "<slug>"))
    with pytest.raises(NotFound):
        ical.calendar(conn, "Not a slug\x00")
    assert len(messages) == 1  # a private page without its token reads like an unknown one
    assert not feedparser.parse(feeds.atom(conn, slug, token=token).body).bozo


async def test_feeds_on_an_async_connection(aconn: AConn) -> None:
    team = await teams.create(aconn, name="Async feeds")
    created = await pages.create(
        aconn, team_id=team.id, name="Async", slug=_slug(), created_by_id="ops", is_public=True
    )
    await status_incidents.create(
        aconn, created.page.id, title="Async trouble", severity="MINOR", message="Hm"
    )
    atom = await feeds.atom(aconn, created.page.slug)
    assert feedparser.parse(atom.body).entries[0].title == "Async trouble [Investigating]"
    calendar = await ical.calendar(aconn, created.page.slug)
    assert _ical(calendar.body).walk("VEVENT") == []


@pytest.mark.fresh_db
def test_maintenance_entries_show_the_status_changes_committed(conn: Conn) -> None:
    created, component_ids = _page(conn)
    window = maintenance.create(
        conn,
        created.page.id,
        title="Disk swap",
        start_time=dt.datetime(2030, 2, 1, 8, 0, tzinfo=UTC),
        end_time=dt.datetime(2030, 2, 1, 9, 0, tzinfo=UTC),
        component_ids=component_ids,
        created_by_id="ops",
    )
    conn.commit()
    maintenance.advance(conn, dt.datetime(2030, 2, 1, 8, 1, tzinfo=UTC))
    conn.commit()
    maintenance.advance(conn, dt.datetime(2030, 2, 1, 9, 1, tzinfo=UTC))
    conn.commit()
    (shown,) = source.read(conn, created.page.slug).maintenance
    assert shown.id == window.id
    assert [c.status for c in shown.changes] == ["SCHEDULED", "IN_PROGRESS", "COMPLETED"]
    times = [c.at for c in shown.changes]
    assert times == sorted(times)
    entry = feedparser.parse(feeds.atom(conn, created.page.slug).body).entries[0]
    assert entry.title == "Maintenance: Disk swap [Completed]"
    assert dt.datetime.fromisoformat(entry.updated) == max(times[-1], shown.updated_at)
    html = entry.content[0].value
    assert html.index("Completed - ") < html.index("In progress - ") < html.index("Scheduled - ")
    event = _ical(ical.calendar(conn, created.page.slug).body).walk("VEVENT")[0]
    assert str(event["STATUS"]) == "CONFIRMED"


def test_the_bytes_do_not_depend_on_the_sessions_time_zone(conn: Conn) -> None:
    created, component_ids = _page(conn)
    _incidents(conn, created.page.id, component_ids)
    _calendar_windows(conn, created.page.id, component_ids)
    slug = created.page.slug
    rendered = []
    for zone in ("UTC", "America/New_York", "Pacific/Chatham"):
        conn.execute(psycopg.sql.SQL("SET LOCAL TimeZone = {}").format(psycopg.sql.Literal(zone)))
        rendered.append(
            (feeds.atom(conn, slug).body, ical.calendar(conn, slug).body, source.read(conn, slug))
        )
    assert rendered[0] == rendered[1] == rendered[2]


def test_the_reader_role_serves_the_feeds(dsn: str, reader_login: str) -> None:
    with psycopg.connect(dsn) as owner:
        public, component_ids = _page(owner)
        _incidents(owner, public.page.id, component_ids)
        private, _ = _page(owner, is_public=False)
        _berlin_series(owner, private.page.id, [])
        owner.commit()
    with psycopg.connect(make_conninfo(dsn, user=reader_login), autocommit=True) as reader:
        assert len(feedparser.parse(feeds.atom(reader, public.page.slug).body).entries) == 2
        calendar = _ical(ical.calendar(reader, private.page.slug, token=private.access_token).body)
        assert len(calendar.walk("VEVENT")) == 1
        with pytest.raises(NotFound):
            ical.calendar(reader, private.page.slug)


# -- rendering, without a database ---------------------------------------------------------------


def _window(**changes: Any) -> source.FeedWindow:
    fields: dict[str, Any] = {
        "id": "w1",
        "title": "Window",
        "description": None,
        "status": "SCHEDULED",
        "start_time": dt.datetime(2030, 5, 1, 8, 0, tzinfo=UTC),
        "end_time": dt.datetime(2030, 5, 1, 9, 0, tzinfo=UTC),
        "recurrence_rule": None,
        "recurrence_start": None,
        "recurrence_local_start": None,
        "time_zone": "UTC",
        "created_at": dt.datetime(2029, 1, 1, tzinfo=UTC),
        "updated_at": dt.datetime(2029, 1, 2, tzinfo=UTC),
        "components": (),
        "changes": (),
    }
    return source.FeedWindow(**(fields | changes))


def _source(*windows: source.FeedWindow) -> source.FeedSource:
    return source.FeedSource(
        id="p1",
        name="Page",
        description=None,
        slug="page",
        is_public=True,
        time_zone="Asia/Tokyo",
        updated_at=dt.datetime(2029, 1, 1, tzinfo=UTC),
        incidents=(),
        maintenance=windows,
    )


def test_long_utf8_text_is_folded_between_characters() -> None:
    title = "Wartung der Datenbanküberwachung 🛠️ " * 8
    body = ical.render_calendar(_source(_window(title=title))).body
    for line in body.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # no line ends inside a UTF-8 sequence
    (event,) = _ical(body).walk("VEVENT")
    assert str(event["SUMMARY"]) == title


def test_zones_without_dst_unknown_zones_and_far_years_render() -> None:
    tokyo = _window(
        id="tokyo",
        time_zone="Asia/Tokyo",
        start_time=dt.datetime(2030, 5, 1, 0, 0, tzinfo=UTC),
        end_time=dt.datetime(2030, 5, 1, 1, 0, tzinfo=UTC),
    )
    unknown_series = _window(
        id="unknown",
        time_zone="Mars/Olympus_Mons",
        recurrence_rule="FREQ=DAILY;COUNT=2",
        recurrence_start=dt.datetime(2030, 5, 1, 8, 0, tzinfo=UTC),
    )
    ancient = _window(
        id="ancient",
        time_zone="America/New_York",
        start_time=dt.datetime(1, 1, 2, 12, 0, tzinfo=UTC),
        end_time=dt.datetime(1, 1, 2, 13, 0, tzinfo=UTC),
    )
    utc_series = _window(id="utc", recurrence_rule="FREQ=WEEKLY", recurrence_start=tokyo.start_time)
    body = ical.render_calendar(_source(tokyo, unknown_series, ancient, utc_series)).body
    calendar = _ical(body)
    zones = {str(z["TZID"]): z for z in calendar.walk("VTIMEZONE")}
    assert set(zones) == {"Asia/Tokyo", "America/New_York"}
    assert [c.name for c in zones["Asia/Tokyo"].subcomponents] == ["STANDARD"]
    events = {str(e["UID"]).split("@")[0]: e for e in calendar.walk("VEVENT")}
    assert events["maintenance-tokyo"]["DTSTART"].params["TZID"] == "Asia/Tokyo"
    assert events["maintenance-tokyo"]["DTSTART"].dt == tokyo.start_time
    assert b"DTSTART:20300501T080000Z\r\nDURATION:PT3600S\r\nRRULE:FREQ=DAILY;COUNT=2" in body
    assert b"DTSTART:20300501T000000Z\r\nDURATION:PT3600S\r\nRRULE:FREQ=WEEKLY" in body
    assert events["maintenance-ancient"]["DTSTART"].dt == ancient.start_time
    for bad in ("a b", "", "x;y"):
        with pytest.raises(InvalidInput, match="uid_domain"):
            ical.render_calendar(_source(), uid_domain=bad)


def test_atom_and_rss_render_any_representable_time() -> None:
    page = _source(
        _window(
            id="ancient",
            start_time=dt.datetime(1, 1, 2, 12, 0, tzinfo=UTC),
            end_time=dt.datetime(1, 1, 2, 13, 0, tzinfo=UTC),
            created_at=dt.datetime(1, 1, 2, tzinfo=UTC),
            updated_at=dt.datetime(1, 1, 2, 0, 0, 0, 5, tzinfo=UTC),
        ),
        _window(id="late", end_time=dt.datetime(9999, 12, 30, tzinfo=UTC)),
    )
    atom = feeds.render_atom(page).body
    assert b"<published>0001-01-02T00:00:00Z</published>" in atom
    assert b"<updated>0001-01-02T00:00:00.000005Z</updated>" in atom
    assert not feedparser.parse(atom).bozo
    rss = feeds.render_rss(page, page_url=PAGE_URL).body
    assert b"<pubDate>Tue, 02 Jan 0001 00:00:00 GMT</pubDate>" in rss
    assert not feedparser.parse(rss).bozo
