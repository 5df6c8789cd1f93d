"""Daily uptime bars (issue 13 item 2): calendar days of the page's zone, exact at midnights.

Days are cut at the page zone's local midnights (23- and 25-hour days, Lord Howe's 30-minute
shift, Havana's repeated midnight), components created mid-range have "no data" before, status
incidents are listed on every day they touch, and nothing depends on the session's TimeZone.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from factories import add_changes, add_component, new_page
from psycopg.rows import TupleRow
from uptime_daily_before_h20u3 import decode_daily as decode_before_h20u3

from statusdb import components, pages, teams, uptime
from statusdb.db import queries
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput, NotFound
from statusdb.uptime import StatusDurations

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

UTC = dt.UTC
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
D = dt.timedelta(days=1)
ZERO = dt.timedelta(0)
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def zoned_page(conn: Conn, zone: str, slug: str = "acme") -> str:
    team = teams.create(conn, name=f"team {slug}")
    return pages.create(
        conn, team_id=team.id, name="Acme", slug=slug, created_by_id="u", time_zone=zone
    ).page.id


def only(**spent: dt.timedelta) -> StatusDurations:
    values = dict.fromkeys(
        (
            "operational",
            "degraded_performance",
            "partial_outage",
            "major_outage",
            "under_maintenance",
        ),
        ZERO,
    )
    values.update(spent)
    return StatusDurations(**values)


def add_incident(
    conn: Conn,
    page: str,
    title: str,
    affected: list[str],
    created_at: dt.datetime,
    resolved_at: dt.datetime | None,
    severity: str = "MAJOR",
) -> str:
    row = conn.execute(
        """INSERT INTO status_incident (status_page_id, title, severity, status,
                                        affected_component_ids, created_at, resolved_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            page,
            title,
            severity,
            "INVESTIGATING" if resolved_at is None else "RESOLVED",
            affected,
            created_at,
            resolved_at,
        ),
    ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.usefixtures("session_zone")
def test_days_are_local_midnight_to_midnight_across_dst(conn: Conn) -> None:
    """23-, 25-, 23.5- and 24.5-hour days; a repeated midnight; a change in the skipped hour."""
    # New York, spring forward 2024-03-10 02:00 EST -> 03:00 EDT: an outage from 01:00 EST to
    # 03:30 EDT lasts 1.5 hours, on a 23-hour day.
    ny = zoned_page(conn, "America/New_York", "ny")
    api = add_component(conn, ny, "API", LONG_AGO)
    add_changes(
        conn,
        ny,
        api,
        [(utc(2024, 3, 10, 6), "MAJOR_OUTAGE"), (utc(2024, 3, 10, 7, 30), "OPERATIONAL")],
    )
    spring = uptime.daily(conn, ny, 3, until=dt.date(2024, 3, 11))
    assert spring.time_zone == "America/New_York"
    assert (spring.first_day, spring.last_day) == (dt.date(2024, 3, 9), dt.date(2024, 3, 11))
    bars = spring.component(api).days
    assert [b.day for b in bars] == [dt.date(2024, 3, d) for d in (9, 10, 11)]
    assert [(b.start, b.end) for b in bars] == [
        (utc(2024, 3, 9, 5), utc(2024, 3, 10, 5)),
        (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4)),
        (utc(2024, 3, 11, 4), utc(2024, 3, 12, 4)),
    ]
    assert bars[1].durations == only(major_outage=90 * M, operational=23 * H - 90 * M)
    assert bars[1].worst_status == "MAJOR_OUTAGE"
    assert bars[1].uptime == pytest.approx((23 * H - 90 * M) / (23 * H))
    assert bars[0].durations == bars[2].durations == only(operational=24 * H)
    assert bars[0].uptime == 1.0
    assert bars[0].worst_status == "OPERATIONAL"
    assert all(b.start.tzinfo is UTC for b in bars)
    # fall back 2024-11-03 02:00 EDT -> 01:00 EST: 25 hours
    fall = uptime.daily(conn, ny, 1, until=dt.date(2024, 11, 3)).component(api).days
    assert (fall[0].start, fall[0].end) == (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5))
    assert fall[0].durations == only(operational=25 * H)

    # Lord Howe: 02:00 -> 01:30 on 2024-04-07 (24.5 h), 02:00 -> 02:30 on 2024-10-06 (23.5 h).
    howe = zoned_page(conn, "Australia/Lord_Howe", "howe")
    db = add_component(conn, howe, "DB", LONG_AGO)
    # Degraded from 01:45 LHDT (first pass) to 01:45 LHST (second pass): 30 minutes.
    add_changes(
        conn,
        howe,
        db,
        [
            (utc(2024, 4, 6, 14, 45), "DEGRADED_PERFORMANCE"),
            (utc(2024, 4, 6, 15, 15), "OPERATIONAL"),
        ],
    )
    april = uptime.daily(conn, howe, 1, until=dt.date(2024, 4, 7)).component(db).days[0]
    assert (april.start, april.end) == (utc(2024, 4, 6, 13), utc(2024, 4, 7, 13, 30))
    assert april.durations == only(degraded_performance=30 * M, operational=24 * H)
    assert april.uptime == 1.0
    assert april.worst_status == "DEGRADED_PERFORMANCE"
    october = uptime.daily(conn, howe, 1, until=dt.date(2024, 10, 6)).component(db).days[0]
    assert (october.start, october.end) == (utc(2024, 10, 5, 13, 30), utc(2024, 10, 6, 13))
    assert october.durations == only(operational=23 * H + 30 * M)

    # Havana falls back 01:00 CDT -> 00:00 CST on 2024-11-03: midnight happens twice, and the
    # day begins at the first one (PostgreSQL alone reads it as the second); it skips midnight
    # on 2024-03-10 (00:00 CST -> 01:00 CDT): that day begins at 01:00.
    havana = zoned_page(conn, "America/Havana", "havana")
    web = add_component(conn, havana, "Web", LONG_AGO)
    nov = uptime.daily(conn, havana, 2, until=dt.date(2024, 11, 3)).component(web).days
    assert [(b.start, b.end) for b in nov] == [
        (utc(2024, 11, 2, 4), utc(2024, 11, 3, 4)),
        (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5)),
    ]
    mar = uptime.daily(conn, havana, 2, until=dt.date(2024, 3, 10)).component(web).days
    assert [(b.start, b.end) for b in mar] == [
        (utc(2024, 3, 9, 5), utc(2024, 3, 10, 5)),
        (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4)),
    ]
    assert mar[1].durations == only(operational=23 * H)


def test_changes_at_midnight_creation_mid_range_and_incidents_across_days(conn: Conn) -> None:
    page = zoned_page(conn, "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")

    def local(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
        return dt.datetime(2024, 6, day, hour, minute, tzinfo=berlin)

    api = add_component(conn, page, "API", LONG_AGO, display_order=0)
    late = add_component(conn, page, "Late", local(5, 12), display_order=1)
    # a change exactly at local midnight starts the next day: the 3rd is all partial outage
    add_changes(
        conn,
        page,
        api,
        [
            (local(3), "PARTIAL_OUTAGE"),
            (local(4), "UNDER_MAINTENANCE"),
            (local(4, 6), "OPERATIONAL"),
        ],
    )
    # spanning the 2nd to the 4th; resolved exactly at midnight: not on the 7th; resolved the
    # instant it opened: on its day; still open: on every day from its start
    spanning = add_incident(conn, page, "Spans", [api], local(2, 22), local(4, 1), "CRITICAL")
    at_midnight = add_incident(conn, page, "Midnight", [api, late], local(6, 10), local(7))
    instant = add_incident(conn, page, "Instant", [late], local(5, 13), local(5, 13), "MINOR")
    still_open = add_incident(conn, page, "Open", [late], local(6, 23), None)
    page_wide = add_incident(conn, page, "Page", [], local(3, 1), local(3, 2))
    before = add_incident(conn, page, "Before", [api], local(1, 1), local(1, 2))
    edge = add_incident(conn, page, "Edge", [api], local(1, 20), local(2))  # ends at the start

    result = uptime.daily(conn, page, 6, until=dt.date(2024, 6, 7))
    assert [c.name for c in result.components] == ["API", "Late"]
    api_days, late_days = result.component(api).days, result.component(late).days
    assert [b.day.day for b in api_days] == [2, 3, 4, 5, 6, 7]
    assert api_days[0].durations == only(operational=24 * H)
    assert api_days[1].durations == only(partial_outage=24 * H)
    assert api_days[1].uptime == 0.0
    assert api_days[2].durations == only(under_maintenance=6 * H, operational=18 * H)
    assert api_days[2].uptime == 1.0  # maintenance counts neither way
    assert api_days[2].worst_status == "UNDER_MAINTENANCE"

    def ids(bars: tuple[uptime.DayBar, ...]) -> list[list[str]]:
        return [[i.id for i in b.incidents] for b in bars]

    assert ids(api_days) == [[spanning], [spanning], [spanning], [], [at_midnight], []]
    assert ids(late_days) == [[], [], [], [instant], [at_midnight, still_open], [still_open]]
    assert api_days[0].incidents[0].title == "Spans"
    assert api_days[0].incidents[0].severity == "CRITICAL"
    assert api_days[0].incidents[0].resolved_at == local(4, 1)
    # every incident of the range, those naming no component included; not the one before
    assert [i.id for i in result.incidents] == [
        spanning,
        page_wide,
        instant,
        at_midnight,
        still_open,
    ]
    assert before not in [i.id for i in result.incidents]
    assert edge not in [i.id for i in result.incidents]

    # created at noon on the 5th: no data before (not 100 %), half a day on the 5th
    assert [b.has_data for b in late_days] == [False, False, False, True, True, True]
    assert [b.uptime for b in late_days[:3]] == [None, None, None]
    assert [b.worst_status for b in late_days[:3]] == [None, None, None]
    assert late_days[3].durations == only(operational=12 * H)
    assert late_days[3].uptime == 1.0
    # over all the days
    assert result.component(late).durations == only(operational=60 * H)
    assert result.component(api).uptime == pytest.approx((6 * D - 30 * H) / (6 * D - 6 * H))


def test_today_is_partial_and_the_future_has_no_data(conn: Conn) -> None:
    page = zoned_page(conn, "Asia/Tokyo")
    api = components.create(conn, page, name="API").id
    conn.commit()
    tokyo = ZoneInfo("Asia/Tokyo")
    today = dt.datetime.now(tokyo).date()
    result = uptime.daily(conn, page)  # 90 days ending today in Tokyo
    assert result.last_day in (today, today + D)  # the clock may pass midnight meanwhile
    assert result.first_day == result.last_day - 89 * D
    bars = result.component(api).days
    assert len(bars) == 90
    assert [b.has_data for b in bars[:-1]] == [False] * 89
    assert bars[-1].has_data
    assert bars[-1].durations.observed < 24 * H
    assert result.observed_until <= bars[-1].end
    ahead = uptime.daily(conn, page, 3, until=result.last_day + 2 * D).component(api).days
    assert [b.has_data for b in ahead] == [True, False, False]
    assert ahead[1].uptime is None


def test_the_days_add_up_to_for_page_over_the_same_range(conn: Conn) -> None:
    """A random log: each component's days sum to what uptime.for_page gives for the range."""
    rng = random.Random(13)
    page = zoned_page(conn, "America/New_York")
    statuses: list[ComponentStatus] = [
        "OPERATIONAL",
        "DEGRADED_PERFORMANCE",
        "PARTIAL_OUTAGE",
        "MAJOR_OUTAGE",
        "UNDER_MAINTENANCE",
    ]
    ids = []
    for n in range(4):
        created = utc(2024, 10, 1) + dt.timedelta(hours=rng.randrange(0, 24 * 50))
        component = add_component(conn, page, f"C{n}", created, display_order=n)
        at, status = created, "OPERATIONAL"
        changes: list[tuple[dt.datetime, ComponentStatus]] = []
        for _ in range(40):
            at += dt.timedelta(minutes=rng.randrange(1, 60 * 40))
            status = rng.choice([s for s in statuses if s != status])
            changes.append((at, status))
        add_changes(conn, page, component, [c for c in changes if c[0] < utc(2025, 1, 1)])
        ids.append(component)
    result = uptime.daily(conn, page, 62, until=dt.date(2024, 12, 1))  # across 3 November
    assert sum((b.end - b.start for b in result.component(ids[0]).days), ZERO) == 62 * D + H
    ranged = uptime.for_page(conn, page, start=result.start, end=result.observed_until)
    for component in ids:
        assert result.component(component).durations == ranged.component(component).durations


def test_empty_page_bounds_and_unknown_page(conn: Conn) -> None:
    team = teams.create(conn, name="T")
    page = new_page(conn, team.id, slug="empty").id
    result = uptime.daily(conn, page, 1)
    assert result.components == ()
    assert result.incidents == ()
    assert result.time_zone == "UTC"
    assert result.first_day == result.last_day
    assert len(uptime.daily(conn, page, uptime.MAX_DAYS).components) == 0
    for days in (0, -1, uptime.MAX_DAYS + 1, 10**12):
        with pytest.raises(InvalidInput, match="days must be an integer from 1 to 366"):
            uptime.daily(conn, page, days)
    for wrong in (True, 1.5, "90"):
        with pytest.raises(InvalidInput, match="days"):
            uptime.daily(conn, page, wrong)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="until must be a date"):
        uptime.daily(conn, page, until=dt.datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="until must be from"):
        uptime.daily(conn, page, until=dt.date(9999, 12, 31))
    with pytest.raises(NotFound):
        uptime.daily(conn, "no-such-page")


def test_page_time_zone_is_set_checked_and_canonical(conn: Conn) -> None:
    team = teams.create(conn, name="T")
    created = pages.create(
        conn, team_id=team.id, name="P", slug="p", created_by_id="u", time_zone="europe/paris"
    ).page
    assert created.time_zone == "Europe/Paris"  # stored as the zone's own spelling
    assert pages.get(conn, created.id).time_zone == "Europe/Paris"
    assert pages.update(conn, created.id, name="Q").time_zone == "Europe/Paris"
    assert pages.update(conn, created.id, time_zone="Etc/GMT+5").time_zone == "Etc/GMT+5"
    bad_zones = ("Mars/Olympus", "EST", "CET", "EST5EDT", "<+05>-5", "+05:00", "../x", "", "x" * 65)
    for bad in bad_zones:
        with pytest.raises(InvalidInput, match="time_zone"), conn.transaction():
            pages.update(conn, created.id, time_zone=bad)
    with pytest.raises(InvalidInput, match="time_zone"), conn.transaction():
        pages.create(
            conn, team_id=team.id, name="R", slug="r", created_by_id="u", time_zone="Nowhere/Land"
        )
    assert pages.get(conn, created.id).time_zone == "Etc/GMT+5"


async def test_daily_on_an_async_connection(aconn: AConn) -> None:
    team = await teams.create(aconn, name="T")
    created = await pages.create(
        aconn,
        team_id=team.id,
        name="P",
        slug="p",
        created_by_id="u",
        is_public=True,
        time_zone="Australia/Lord_Howe",
    )
    await components.create(aconn, created.page.id, name="API")
    result = await uptime.daily(aconn, created.page.id, 7)
    assert result.time_zone == "Australia/Lord_Howe"
    assert [len(c.days) for c in result.components] == [7]


# -- component groups (0020): bars from the group's own log --------------------------------------

_RANK: dict[str, int] = {
    "MAJOR_OUTAGE": 0,
    "PARTIAL_OUTAGE": 1,
    "DEGRADED_PERFORMANCE": 2,
    "UNDER_MAINTENANCE": 3,
    "OPERATIONAL": 4,
}


def add_group(
    conn: Conn, page: str, name: str, created_at: dt.datetime, parent: str | None = None
) -> str:
    """A group written by plain SQL with a chosen created_at (a backfill)."""
    row = conn.execute(
        """INSERT INTO component_group (status_page_id, name, parent_id, created_at)
           VALUES (%s, %s, %s, %s) RETURNING id""",
        (page, name, parent, created_at),
    ).fetchone()
    assert row is not None
    return str(row[0])


def add_group_changes(
    conn: Conn, page: str, group: str, changes: list[tuple[dt.datetime, str]]
) -> None:
    """Log a group's changes at chosen times (plain SQL, chained, in time order)."""
    previous = "OPERATIONAL"
    for changed_at, new_status in changes:
        conn.execute(
            """INSERT INTO component_group_status_change (status_page_id, group_id,
                                                          previous_status, new_status, changed_at)
               VALUES (%s, %s, %s, %s, %s)""",
            (page, group, previous, new_status, changed_at),
        )
        previous = new_status


def worst_of(
    logs: list[list[tuple[dt.datetime, ComponentStatus]]],
) -> list[tuple[dt.datetime, str]]:
    """The worst-of-members timeline of members' logs (each starting OPERATIONAL): the roll-up's
    derivation, as changes (only real ones)."""
    events = sorted((at, n, status) for n, log in enumerate(logs) for at, status in log)
    current = ["OPERATIONAL"] * len(logs)
    shown, changes = "OPERATIONAL", []
    for at, n, status in events:
        current[n] = status
        worst = min(current, key=_RANK.__getitem__)
        if worst != shown:
            changes.append((at, worst))
            shown = worst
    return changes


def spent(
    changes: list[tuple[dt.datetime, str]], start: dt.datetime, end: dt.datetime
) -> StatusDurations:
    """Time in each status during [start, end) of a timeline starting OPERATIONAL."""
    totals = dict.fromkeys(_RANK, ZERO)
    status, at = "OPERATIONAL", LONG_AGO
    for changed_at, new_status in [*changes, (dt.datetime.max.replace(tzinfo=UTC), "")]:
        lo, hi = max(at, start), min(changed_at, end)
        if lo < hi:
            totals[status] += hi - lo
        status, at = new_status, changed_at
    return only(**{k.lower(): v for k, v in totals.items()})


@pytest.mark.usefixtures("session_zone")
def test_group_bars_are_the_worst_of_members_from_the_group_log(conn: Conn) -> None:
    """A random history across New York's fall-back day: each group's bars equal the worst of
    its members (subgroups' included) at every instant, cut at the same local midnights."""
    rng = random.Random(20)
    page = zoned_page(conn, "America/New_York")
    top = add_group(conn, page, "Top", LONG_AGO)
    sub = add_group(conn, page, "Sub", LONG_AGO, parent=top)
    statuses: list[ComponentStatus] = list(_RANK)  # type: ignore[arg-type]
    midnight = utc(2024, 11, 4, 5)  # 2024-11-04 00:00 EST
    logs: list[list[tuple[dt.datetime, ComponentStatus]]] = []
    members = []
    for n, group in enumerate((top, sub, sub)):
        component = add_component(conn, page, f"C{n}", LONG_AGO, display_order=n)
        conn.execute(
            "UPDATE status_page_component SET group_id = %s WHERE id = %s", (group, component)
        )
        # C1 ends in a major outage from New York's midnight (EST) on the 4th; the others
        # change until the 8th
        stop = midnight if n == 1 else utc(2024, 11, 8)
        at, status, log = utc(2024, 10, 30), "OPERATIONAL", []
        while True:
            at += dt.timedelta(minutes=3 * rng.randrange(1, 400) + n)
            if at >= stop:
                break
            status = rng.choice([s for s in statuses if s != status])
            log.append((at, status))
        if n == 1:
            if status == "MAJOR_OUTAGE":
                log.append((midnight - M, "OPERATIONAL"))
            log.append((midnight, "MAJOR_OUTAGE"))
        add_changes(conn, page, component, log)
        logs.append(log)
        members.append(component)
    expected = {top: worst_of(logs), sub: worst_of(logs[1:])}
    for group, changes in expected.items():
        add_group_changes(conn, page, group, changes)

    result = uptime.daily(conn, page, 7, until=dt.date(2024, 11, 6))  # 3 November: 25 hours
    assert [g.name for g in result.groups] == ["Sub", "Top"]  # by display_order, then name
    assert result.group(sub).parent_id == top
    assert result.group(top).parent_id is None
    member_days = [result.component(c).days for c in members]
    for group, changes in expected.items():
        bars = result.group(group).days
        assert [(b.start, b.end) for b in bars] == [(b.start, b.end) for b in member_days[0]]
        assert bars[3].end - bars[3].start == 25 * H
        for i, bar in enumerate(bars):
            assert bar.durations == spent(changes, bar.start, bar.end), (group, bar.day)
            assert bar.durations.observed == bar.end - bar.start
            # the day's worst is the worst of its members' (of the group and its subgroups)
            in_it = member_days if group == top else member_days[1:]
            assert bar.worst_status == min(
                (days[i].worst_status for days in in_it), key=lambda s: _RANK[str(s)]
            )
    assert result.group(sub).days[3].end == midnight
    assert result.group(sub).days[4].durations == only(major_outage=24 * H)


def test_group_created_mid_range_incidents_of_its_members_and_the_live_roll_up(
    conn: Conn,
) -> None:
    """No data before a group existed; the status at the range's start from its log; incidents
    naming its components (subgroups' included, once each) from its creation day; a status set
    now reaches the group's bar through the database's own roll-up."""
    page = zoned_page(conn, "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")

    def local(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
        return dt.datetime(2024, 6, day, hour, minute, tzinfo=berlin)

    api = add_component(conn, page, "API", LONG_AGO, display_order=0)
    db = add_component(conn, page, "DB", LONG_AGO, display_order=1)
    web = add_component(conn, page, "Web", LONG_AGO, display_order=2)
    old = add_group(conn, page, "Old", LONG_AGO)
    new = add_group(conn, page, "New", local(4, 18))
    inner = add_group(conn, page, "Inner", local(4, 18), parent=new)
    conn.execute("UPDATE status_page_component SET group_id = %s WHERE id = %s", (old, api))
    conn.execute("UPDATE status_page_component SET group_id = %s WHERE id = %s", (inner, db))
    conn.execute("UPDATE status_page_component SET group_id = %s WHERE id = %s", (new, web))
    # Old was in partial outage before the range and until 06:00 on the 3rd; New's log starts
    # at its creation (a change before it would be a writer's error, and is not shown).
    add_group_changes(
        conn, page, old, [(local(1, 12), "PARTIAL_OUTAGE"), (local(3, 6), "OPERATIONAL")]
    )
    add_group_changes(
        conn, page, new, [(local(5), "DEGRADED_PERFORMANCE"), (local(5, 1), "OPERATIONAL")]
    )
    on_db = add_incident(conn, page, "DB slow", [db], local(2, 10), local(5, 0, 30))
    on_web = add_incident(conn, page, "Web", [web], local(4, 20), local(4, 21))
    on_both = add_incident(conn, page, "Both", [api, db], local(5, 3), local(5, 4), "MINOR")
    on_pair = add_incident(conn, page, "Pair", [web, db], local(6, 9), local(6, 10))

    result = uptime.daily(conn, page, 5, until=dt.date(2024, 6, 6))  # the 2nd to the 6th
    old_days, new_days = result.group(old).days, result.group(new).days
    inner_days = result.group(inner).days
    assert old_days[0].durations == only(partial_outage=24 * H)  # the status at the start
    assert old_days[1].durations == only(partial_outage=6 * H, operational=18 * H)
    assert old_days[1].uptime == 0.75
    # created at 18:00 on the 4th: no data before, 6 hours that day, not 100 % before
    assert [b.has_data for b in new_days] == [False, False, True, True, True]
    assert [b.uptime for b in new_days[:2]] == [None, None]
    assert new_days[2].durations == only(operational=6 * H)
    assert new_days[3].durations == only(degraded_performance=H, operational=23 * H)
    assert new_days[3].worst_status == "DEGRADED_PERFORMANCE"
    assert result.group(new).durations == only(degraded_performance=H, operational=53 * H)
    assert inner_days[2].durations == only(operational=6 * H)

    def ids(bars: tuple[uptime.DayBar, ...]) -> list[list[str]]:
        return [[i.id for i in b.incidents] for b in bars]

    # incidents naming a member, of the group or of a subgroup (members as they are now),
    # listed once per group and day even when they name several members
    # (none before the group existed: DB was not in it then)
    assert ids(inner_days) == [[], [], [on_db], [on_db, on_both], [on_pair]]
    assert ids(new_days) == [[], [], [on_db, on_web], [on_db, on_both], [on_pair]]
    assert ids(old_days) == [[], [], [], [on_both], []]
    assert result.incidents[0].id == on_db

    # The live roll-up: the database logs the group's change itself, shown today.
    components.set_status(conn, api, "MAJOR_OUTAGE")
    today = uptime.daily(conn, page, 1)
    assert today.group(old).days[0].worst_status == "MAJOR_OUTAGE"
    assert today.group(new).days[0].worst_status == "OPERATIONAL"
    assert today.component(api).days[0].worst_status == "MAJOR_OUTAGE"
    with pytest.raises(KeyError):
        today.group(api)


# -- issue 20: the rewritten plan answers exactly as the previous query ---------------------------

_BEFORE = (Path(__file__).parent / "uptime_daily_before_issue20.sql").read_text()
#: The query of the shape with a row per day, listing and incident (before h20u3's pass).
_BEFORE_ONE_ROW_PER_SERIES = (Path(__file__).parent / "uptime_daily_before_h20u3.sql").read_text()
_ZONES = (
    "UTC",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Havana",
    "Europe/Berlin",
    "Pacific/Apia",
    "America/Sao_Paulo",
)
#: The last day asked for, per zone (default 2024-11-10, a few days before): days with their
#: odd transitions. Samoa skipped 2011-12-30 whole (a day of no length); Sao Paulo sprang
#: forward at midnight on 2018-11-04 (the day began at 01:00).
_UNTIL = {"Pacific/Apia": dt.date(2012, 1, 4), "America/Sao_Paulo": dt.date(2018, 11, 8)}


def _normalized(rows: list[TupleRow]) -> list[tuple[object, ...]]:
    """The rows with each series' runs and part days as sorted lists (their order within the
    arrays is not part of the result: the client places each by its own day index)."""
    out = []
    for row in rows:
        row = tuple(row)
        if row[0] in ("component", "group"):
            runs = sorted(zip(row[7] or (), row[8] or (), row[9] or (), strict=True))
            parts = sorted(zip(*(row[k] or () for k in range(10, 16)), strict=True))
            row = (*row[:7], runs, parts, *row[16:])
        out.append(row)
    return sorted(out, key=repr)


@pytest.mark.parametrize("seed", range(14))
def test_the_rewritten_query_equals_the_previous_one(conn: Conn, seed: int) -> None:
    """A random page (zone, components and groups created before and inside the range, logs
    with changes at midnights, ties at one instant, changes before a creation, a change logged
    on the page for a component of another page, incidents resolved and not, naming several
    components): uptime_daily's rows equal those of the query it replaced (tests/
    uptime_daily_before_issue20.sql), and so do the decoded bars."""
    rng = random.Random(seed)
    zone = _ZONES[seed % len(_ZONES)]
    page = zoned_page(conn, zone, slug=f"eq-{seed}")
    other = zoned_page(conn, "UTC", slug=f"eq-other-{seed}")
    until = _UNTIL.get(zone, dt.date(2024, 11, 10)) - dt.timedelta(days=rng.randrange(0, 5))
    days = rng.randrange(1, 30)
    first = dt.datetime.combine(until - dt.timedelta(days=days - 1), dt.time(), ZoneInfo(zone))
    span = (first - 3 * D, first + (days + 3) * D)

    def instant() -> dt.datetime:
        at = span[0] + (span[1] - span[0]) * rng.random()
        if rng.random() < 0.2:  # a local midnight exactly
            at = dt.datetime.combine(
                at.astimezone(ZoneInfo(zone)).date(), dt.time(), ZoneInfo(zone)
            )
        return at.astimezone(UTC).replace(microsecond=rng.choice((0, rng.randrange(10**6))))

    statuses: list[ComponentStatus] = list(_RANK)  # type: ignore[arg-type]
    groups = [add_group(conn, page, "G0", LONG_AGO)]
    groups.append(add_group(conn, page, "G1", rng.choice((LONG_AGO, instant())), groups[0]))
    groups.append(add_group(conn, page, "G2", rng.choice((LONG_AGO, instant()))))
    members = []
    for n in range(5):
        created = rng.choice((LONG_AGO, instant(), span[1] + D))
        component = add_component(conn, page, f"C{n}", created, display_order=rng.randrange(3))
        if rng.random() < 0.8:
            conn.execute(
                "UPDATE status_page_component SET group_id = %s WHERE id = %s",
                (rng.choice(groups), component),
            )
        times = sorted(instant() for _ in range(rng.randrange(0, 12)))
        if times and rng.random() < 0.5:
            times.append(times[-1])  # two changes in one instant: the later seq lasts
        log, status = [], "OPERATIONAL"
        for at in times:
            status = rng.choice([s for s in statuses if s != status])
            log.append((at, status))
        add_changes(conn, page, component, log)
        members.append(component)
    foreign = add_component(conn, other, "Elsewhere", LONG_AGO)
    add_changes(conn, other, foreign, [(instant(), "MAJOR_OUTAGE")])
    conn.execute(  # logged on this page, the component is another page's: shown nowhere
        """INSERT INTO status_change (status_page_id, component_id, previous_status,
                                      new_status, cause, changed_at)
           VALUES (%s, %s, 'MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'MANUAL', %s)""",
        (page, foreign, instant()),
    )
    for group in groups:
        changes: list[tuple[dt.datetime, str]] = []
        status = "OPERATIONAL"
        for at in sorted(instant() for _ in range(rng.randrange(0, 6))):
            status = rng.choice([s for s in statuses if s != status])
            changes.append((at, status))
        add_group_changes(conn, page, group, changes)
    for n in range(rng.randrange(0, 8)):
        start = instant()
        resolved = rng.choice((None, start, start + rng.randrange(1, 3000) * M))
        named = rng.sample(members, rng.randrange(0, 4))
        add_incident(conn, page, f"I{n}", named, start, resolved)

    params = {"page_id": page, "days": days, "until": until, "fp": False, "fp_from": None}
    before = conn.execute(_BEFORE.encode(), params).fetchall()
    previous = conn.execute(_BEFORE_ONE_ROW_PER_SERIES.encode(), params).fetchall()
    after = conn.execute(queries.get("uptime_daily").sql, params, binary=True).fetchall()
    assert _normalized(previous) == _normalized(before)
    expected = decode_before_h20u3(before)
    assert decode_before_h20u3(previous) == expected
    # Issue 20 item 5, third pass: one row per series (the days' boundaries and the incidents
    # on the page row, the listed days on the series rows) decodes to the same bars.
    assert len(after) == 1 + len(expected.components) + len(expected.groups)
    assert uptime._decode_daily(after) == expected
    # Fetched in binary (as `daily` does) or in text: the same values.
    text = conn.execute(queries.get("uptime_daily").sql, params).fetchall()
    assert uptime._decode_daily(text) == expected


def test_part_day_microseconds_by_date_part_are_exact(conn: Conn) -> None:
    """uptime_daily measures a part day as date_part('epoch', end - start) (a float8) times
    10^6, rounded: the same whole microseconds as extract's exact numeric for any piece of up
    to a day (26 hours here), at any instant from 1900 to 9900, to the microsecond."""
    conn.execute("SELECT setseed(0.42)")
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE by_float <> by_numeric), count(*)
           FROM (
               SELECT (date_part('epoch', t1 - t0) * 1000000)::bigint AS by_float,
                      ((extract(epoch FROM t1) - extract(epoch FROM t0)) * 1000000)::bigint
                          AS by_numeric
               FROM (
                   SELECT t0, t0 + (random() * 26 * 3600e6)::bigint * interval '1 microsecond'
                              AS t1
                   FROM (
                       SELECT timestamptz '1900-01-01 00:00:00+00'
                              + (random() * 8000 * 365 * 86400e6)::bigint
                                * interval '1 microsecond' AS t0
                       FROM generate_series(1, 100000)
                   ) AS a
               ) AS b
           ) AS c"""
    ).fetchone()
    assert row == (0, 100000)
