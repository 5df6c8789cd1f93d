"""Time is exact (issue 15): instants, not wall clocks; DST folds and gaps; one bad window.

The tests run on connections whose TimeZone is UTC, America/New_York and Australia/Lord_Howe
(a 30-minute DST change); those about the scheduler's failure handling, refusals and SQL only
on Lord_Howe, to keep the suite fast: psycopg returns timestamptz in the connection's
zone, which can be the very ZoneInfo a window uses, and two datetimes that share a tzinfo
compare and subtract by wall clock (PEP 495). statusdb must give the same answers on all three.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from factories import TwoPages, two_pages
from hypothesis import HealthCheck, example, given, settings
from psycopg import sql
from psycopg.rows import TupleRow
from rfc5545_reference import reference_starts, series_cases

from statusdb import components, maintenance, uptime
from statusdb.domain import recurrence, validate
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import InvalidInput

Conn = psycopg.Connection[TupleRow]

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


@pytest.fixture
def acme(conn: Conn, session_zone: str) -> TwoPages:
    built = two_pages(conn, team="SRE", names=("API",))
    conn.commit()
    return built


def window(
    conn: Conn,
    page: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    rule: str | None = None,
    zone: str = "UTC",
    title: str = "Upgrade",
    component_ids: tuple[str, ...] = (),
) -> maintenance.MaintenanceWindow:
    """maintenance.create with the input object (the call works on the seed's API too)."""
    data = CreateMaintenanceWindowInput(
        component_ids=component_ids,
        title=title,
        start_time=start,
        end_time=end,
        recurrence_rule=rule,
    )
    return maintenance.create(conn, page, data, created_by_id="u1", time_zone=zone)


def spans(occurrences: list[maintenance.MaintenanceOccurrence]) -> list[tuple[str, str]]:
    return [
        (o.start_time.astimezone(UTC).isoformat(), o.end_time.astimezone(UTC).isoformat())
        for o in occurrences
    ]


# --- 1. fall-back day on a connection in the window's zone ------------------------------------


def test_a_series_on_the_fall_back_day_has_exact_occurrences(conn: Conn, acme: TwoPages) -> None:
    """DAILY;COUNT=3 from 2025-11-02 05:30Z (01:30 EDT): three one-hour occurrences."""
    first = dt.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    created = window(
        conn, acme.page_id, start=first, end=first + HOUR, rule="FREQ=DAILY;COUNT=3",
        zone="America/New_York",
    )  # fmt: skip
    assert created.duration == HOUR
    assert maintenance.get(conn, created.id).duration == HOUR
    found = maintenance.list_upcoming(conn, acme.page_id, now=first - HOUR, horizon=7 * DAY)
    assert spans(found) == [
        ("2025-11-02T05:30:00+00:00", "2025-11-02T06:30:00+00:00"),
        ("2025-11-03T06:30:00+00:00", "2025-11-03T07:30:00+00:00"),
        ("2025-11-04T06:30:00+00:00", "2025-11-04T07:30:00+00:00"),
    ]


#: Per connection zone: a window zone (the connection's own when it has DST) and a local time
#: on the day before its fall-back day, when the next occurrence spans the repeated hour.
FALL_BACK_EVE = {
    "UTC": ("Europe/Berlin", dt.datetime(2025, 10, 25, 2, 15)),
    "America/New_York": ("America/New_York", dt.datetime(2025, 11, 1, 1, 15)),
    "Australia/Lord_Howe": ("Australia/Lord_Howe", dt.datetime(2025, 4, 5, 1, 15)),
}


def test_a_window_saved_through_a_zoned_connection_keeps_its_length(
    conn: Conn, acme: TwoPages, session_zone: str
) -> None:
    """A daily 90-minute window whose occurrence spans the fall-back hour of the connection's
    zone: that occurrence and every later one last 90 minutes (not the wall-clock 30)."""
    zone_name, eve = FALL_BACK_EVE[session_zone]
    zone = ZoneInfo(zone_name)
    first = eve.replace(tzinfo=zone)
    created = window(
        conn, acme.page_id, start=first, end=first.astimezone(UTC) + 90 * MINUTE, rule="FREQ=DAILY",
        zone=zone_name,
    )  # fmt: skip
    fall_back_day = (eve + DAY).replace(tzinfo=zone).astimezone(UTC)
    maintenance.advance(conn, fall_back_day + MINUTE)
    current = maintenance.get(conn, created.id)
    assert current.duration == 90 * MINUTE
    assert (current.status, current.start_time.astimezone(UTC)) == ("IN_PROGRESS", fall_back_day)
    updated = maintenance.update(conn, created.id, title="Upgrade, again")
    assert updated.duration == 90 * MINUTE
    maintenance.advance(conn, fall_back_day + 2 * HOUR)
    moved = maintenance.get(conn, created.id)
    assert moved.start_time == (eve + 2 * DAY).replace(tzinfo=zone)
    assert moved.duration == 90 * MINUTE
    found = maintenance.list_upcoming(conn, acme.page_id, now=moved.start_time, horizon=3 * DAY)
    assert [o.end_time - o.start_time for o in found] == [90 * MINUTE] * 3


def test_a_series_crossing_the_fall_back_hour_moves_on_exactly(conn: Conn, acme: TwoPages) -> None:
    """advance walks a NY series through 2025-11-02 on any connection, occurrence by occurrence."""
    first = dt.datetime(2025, 11, 1, 1, 30, tzinfo=NY)
    created = window(
        conn, acme.page_id, start=first, end=first + HOUR, rule="FREQ=DAILY;COUNT=3",
        zone="America/New_York",
    )  # fmt: skip
    seen = []
    for day in (1, 2, 3):
        start = dt.datetime(2025, 11, day, 1, 30, tzinfo=NY)  # the first 01:30 on the 2nd
        maintenance.advance(conn, start + MINUTE)
        current = maintenance.get(conn, created.id)
        assert current.status == "IN_PROGRESS"
        seen.append((current.start_time, current.duration))
        maintenance.advance(conn, start + HOUR)
    # In UTC: a UTC datetime never equals an ambiguous NY one (PEP 495 inter-zone rule).
    expected = [dt.datetime(2025, 11, d, 1, 30, tzinfo=NY).astimezone(UTC) for d in (1, 2, 3)]
    assert seen == [(start, HOUR) for start in expected]
    assert maintenance.get(conn, created.id).status == "COMPLETED"


# --- 2. one bad window never stalls the scheduler ---------------------------------------------


def _break_window(conn: Conn, title: str) -> None:
    """A trigger that refuses every write to the windows titled `title`: deliberately broken."""
    conn.execute(
        """CREATE FUNCTION test_refuse_broken_window() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               RAISE EXCEPTION 'window % is deliberately broken', OLD.id;
           END $$"""
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER test_refuse_broken_window BEFORE UPDATE ON maintenance_window"
            " FOR EACH ROW WHEN (OLD.title = {}) EXECUTE FUNCTION test_refuse_broken_window()"
        ).format(sql.Literal(title))
    )
    conn.commit()


@pytest.mark.parametrize("session_zone", ["Australia/Lord_Howe"], indirect=True)
def test_a_broken_window_is_skipped_and_reported_and_the_others_advance(
    conn: Conn, acme: TwoPages
) -> None:
    """Windows the database refuses to change (one-off and series) do not stop the others."""
    t0 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
    broken_one_off = window(conn, acme.page_id, start=t0, end=t0 + HOUR, title="broken")
    broken_series = window(
        conn, acme.page_id, start=t0 - DAY, end=t0 - DAY + HOUR, rule="FREQ=DAILY", title="broken"
    )
    fine_one_off = window(
        conn, acme.other_page_id, start=t0, end=t0 + HOUR, component_ids=(acme.foreign,)
    )
    fine_series = window(
        conn, acme.other_page_id, start=t0 - DAY, end=t0 - DAY + HOUR, rule="FREQ=DAILY"
    )
    conn.commit()
    _break_window(conn, "broken")

    transitions = maintenance.advance(conn, t0 + MINUTE)
    conn.commit()

    assert {(t.window_id, t.to_status) for t in transitions} == {
        (fine_one_off.id, "IN_PROGRESS"),
        (fine_series.id, "IN_PROGRESS"),
    }
    assert maintenance.get(conn, fine_one_off.id).status == "IN_PROGRESS"
    assert components.get(conn, acme.foreign).current_status == "UNDER_MAINTENANCE"
    assert maintenance.get(conn, fine_series.id).start_time == t0
    assert maintenance.get(conn, broken_one_off.id).status == "SCHEDULED"
    assert maintenance.get(conn, broken_series.id).start_time == t0 - DAY
    errors = maintenance.scheduler_errors(conn)
    assert {e.window_id for e in errors} == {broken_one_off.id, broken_series.id}
    assert all("deliberately broken" in e.error and e.failures == 1 for e in errors)
    # Operators see the same in SQL; a second step counts the failure again.
    maintenance.advance(conn, t0 + 2 * MINUTE)
    rows = conn.execute(
        "SELECT maintenance_window_id, failures FROM maintenance_window_scheduler_error"
        " ORDER BY maintenance_window_id"
    ).fetchall()
    assert rows == sorted([(broken_one_off.id, 2), (broken_series.id, 2)])

    # Repaired, the windows advance and their records go.
    conn.execute("DROP TRIGGER test_refuse_broken_window ON maintenance_window")
    transitions = maintenance.advance(conn, t0 + 3 * MINUTE)
    assert {t.window_id for t in transitions} == {broken_one_off.id, broken_series.id}
    assert maintenance.scheduler_errors(conn) == []


@pytest.mark.parametrize("session_zone", ["Australia/Lord_Howe"], indirect=True)
def test_a_rule_that_cannot_be_expanded_is_reported_and_skipped(conn: Conn, acme: TwoPages) -> None:
    """A series written around statusdb (plain SQL) whose rule never occurs again."""
    t0 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
    bad = conn.execute(
        "INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,"
        " created_by_id, recurrence_rule, recurrence_start)"
        " VALUES (%s, 'bad', %s, %s, 'u', 'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30', %s)"
        " RETURNING id",
        (acme.page_id, t0 - DAY, t0 - DAY + HOUR, t0 - DAY),
    ).fetchone()
    assert bad is not None
    fine = window(conn, acme.other_page_id, start=t0, end=t0 + HOUR)
    conn.commit()
    transitions = maintenance.advance(conn, t0 + MINUTE)
    assert [t.window_id for t in transitions] == [fine.id]
    [error] = maintenance.scheduler_errors(conn, acme.page_id)
    assert error.window_id == bad[0]
    assert "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30" in error.error
    assert maintenance.scheduler_errors(conn, acme.other_page_id) == []


def test_advance_on_the_fall_back_day_does_not_stall_other_windows(
    conn: Conn, acme: TwoPages
) -> None:
    """The issue's case: a NY series over the fall-back night and a due one-off window elsewhere."""
    first = dt.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    window(
        conn, acme.page_id, start=first, end=first + HOUR, rule="FREQ=DAILY;COUNT=3",
        zone="America/New_York",
    )  # fmt: skip
    later = dt.datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
    other = window(conn, acme.other_page_id, start=later - HOUR, end=later + HOUR)
    maintenance.advance(conn, first + MINUTE)
    maintenance.advance(conn, later)
    assert maintenance.get(conn, other.id).status == "IN_PROGRESS"
    assert maintenance.scheduler_errors(conn) == []


# --- 3. ambiguous local times given in the zone -----------------------------------------------


def test_a_series_may_start_at_an_ambiguous_local_time_its_first_instance(
    conn: Conn, acme: TwoPages
) -> None:
    """01:30 NY on 2025-11-02 (fold 0) is the first 01:30, 05:30Z: accepted as DTSTART."""
    start = dt.datetime(2025, 11, 2, 1, 30, tzinfo=NY)
    end = start.astimezone(UTC) + HOUR  # start + HOUR would be wall-clock time: 02:30 EST
    created = window(
        conn, acme.page_id, start=start, end=end, rule="FREQ=DAILY", zone="America/New_York"
    )
    assert created.recurrence_start == dt.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    assert created.duration == HOUR


@pytest.mark.parametrize("session_zone", ["Australia/Lord_Howe"], indirect=True)
def test_a_series_cannot_start_at_the_second_instance_of_an_ambiguous_time(
    conn: Conn, acme: TwoPages
) -> None:
    """RFC 5545: a series' ambiguous local time is its first instance; fold=1 is refused."""
    start = dt.datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=NY)
    with pytest.raises(InvalidInput, match="second 01:30:00"):
        window(
            conn, acme.page_id, start=start, end=start + HOUR, rule="FREQ=DAILY",
            zone="America/New_York",
        )  # fmt: skip


def test_a_one_off_window_across_the_fall_back_hour_is_measured_in_instants(
    conn: Conn, acme: TwoPages
) -> None:
    """01:30 EDT (fold 0) to 01:15 EST (fold 1): 45 minutes, accepted."""
    start = dt.datetime(2025, 11, 2, 1, 30, tzinfo=NY)
    end = dt.datetime(2025, 11, 2, 1, 15, fold=1, tzinfo=NY)
    created = window(conn, acme.page_id, start=start, end=end, zone="America/New_York")
    assert created.duration == 45 * MINUTE
    assert created.end_time == dt.datetime(2025, 11, 2, 6, 15, tzinfo=UTC)


def test_update_re_sending_a_running_windows_own_start_in_its_zone_is_no_change(
    conn: Conn, acme: TwoPages
) -> None:
    """A running window started at the second 01:30 NY; its own start_time as NY time."""
    start = dt.datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST, fold 1
    created = window(conn, acme.page_id, start=start, end=start + HOUR, zone="America/New_York")
    maintenance.advance(conn, start + MINUTE)
    running = maintenance.get(conn, created.id)
    assert running.status == "IN_PROGRESS"
    in_ny = running.start_time.astimezone(NY)
    assert in_ny.fold == 1
    updated = maintenance.update(
        conn, created.id, start_time=in_ny, end_time=(start + 2 * HOUR).astimezone(NY)
    )
    assert (updated.start_time, updated.duration) == (start, 2 * HOUR)


# --- 4. uptime ranges in a zone ---------------------------------------------------------------


def test_uptime_over_the_fall_back_hour_is_45_minutes(conn: Conn, acme: TwoPages) -> None:
    start = dt.datetime(2025, 11, 2, 1, 30, tzinfo=NY)
    end = dt.datetime(2025, 11, 2, 1, 15, fold=1, tzinfo=NY)
    conn.execute(
        "UPDATE status_page_component SET created_at = '2025-01-01Z' WHERE id = %s", (acme.api,)
    )
    report = uptime.for_page(conn, acme.page_id, start=start, end=end)
    assert report.component(acme.api).durations.observed == 45 * MINUTE
    assert report.end - report.start == 45 * MINUTE


def test_uptime_accepts_exactly_400_days_across_a_dst_change(conn: Conn, acme: TwoPages) -> None:
    start = dt.datetime(2024, 10, 1, tzinfo=NY)  # EDT
    end = (start.astimezone(UTC) + uptime.MAX_RANGE).astimezone(NY)  # EST, 400 days later
    assert end.replace(tzinfo=None) - start.replace(tzinfo=None) != uptime.MAX_RANGE
    report = uptime.for_page(conn, acme.page_id, start=start, end=end)
    assert report.end - report.start == uptime.MAX_RANGE
    with pytest.raises(InvalidInput, match="at most 400 days"):
        uptime.for_page(conn, acme.page_id, start=start, end=end + dt.timedelta(microseconds=1))


# --- 5. a first occurrence in a DST gap -------------------------------------------------------


def test_a_series_starting_in_the_spring_forward_gap_follows_rfc_5545(
    conn: Conn, acme: TwoPages
) -> None:
    """DTSTART;TZID=Europe/Berlin:20250330T023000: 03:30 CEST that day, 02:30 the days after."""
    start = dt.datetime(2025, 3, 30, 2, 30, tzinfo=BERLIN)  # does not exist
    end = dt.datetime(2025, 3, 30, 4, 30, tzinfo=BERLIN)
    created = window(
        conn, acme.page_id, start=start, end=end, rule="FREQ=DAILY;COUNT=3", zone="Europe/Berlin"
    )
    assert created.start_time == dt.datetime(2025, 3, 30, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert created.duration == HOUR
    assert created.recurrence_local_start == dt.datetime(2025, 3, 30, 2, 30)
    found = maintenance.list_upcoming(
        conn, acme.page_id, now=dt.datetime(2025, 3, 29, tzinfo=UTC), horizon=7 * DAY
    )
    assert spans(found) == [
        ("2025-03-30T01:30:00+00:00", "2025-03-30T02:30:00+00:00"),
        ("2025-03-31T00:30:00+00:00", "2025-03-31T01:30:00+00:00"),
        ("2025-04-01T00:30:00+00:00", "2025-04-01T01:30:00+00:00"),
    ]
    # The scheduler agrees with the listing.
    maintenance.advance(conn, dt.datetime(2025, 3, 30, 3, 0, tzinfo=UTC))
    moved = maintenance.get(conn, created.id)
    assert (moved.start_time, moved.duration) == (
        dt.datetime(2025, 3, 31, 2, 30, tzinfo=BERLIN),
        HOUR,
    )


@pytest.mark.parametrize("session_zone", ["Australia/Lord_Howe"], indirect=True)
def test_updating_a_series_that_starts_in_the_gap_keeps_its_wall_clock_dtstart(
    conn: Conn, acme: TwoPages
) -> None:
    start = dt.datetime(2025, 3, 30, 2, 30, tzinfo=BERLIN)
    end = dt.datetime(2025, 3, 30, 4, 30, tzinfo=BERLIN)
    created = window(
        conn, acme.page_id, start=start, end=end, rule="FREQ=DAILY", zone="Europe/Berlin"
    )
    same = maintenance.update(conn, created.id, start_time=start)  # re-sent: no change
    assert same.recurrence_local_start == dt.datetime(2025, 3, 30, 2, 30)
    longer = maintenance.update(conn, created.id, end_time=end.astimezone(UTC) + HOUR)
    assert (longer.start_time, longer.duration) == (created.start_time, 2 * HOUR)
    assert longer.recurrence_local_start == dt.datetime(2025, 3, 30, 2, 30)
    found = maintenance.list_upcoming(conn, acme.page_id, now=longer.start_time, horizon=2 * DAY)
    assert spans(found)[1] == ("2025-03-31T00:30:00+00:00", "2025-03-31T02:30:00+00:00")


@pytest.mark.parametrize("session_zone", ["Australia/Lord_Howe"], indirect=True)
def test_a_one_off_window_in_the_gap_is_still_refused(conn: Conn, acme: TwoPages) -> None:
    """A one-off window names instants; a skipped wall-clock time names none."""
    start = dt.datetime(2025, 3, 30, 2, 30, tzinfo=BERLIN)
    with pytest.raises(InvalidInput, match="does not exist"):
        window(conn, acme.page_id, start=start, end=start + 2 * HOUR, zone="Europe/Berlin")


# --- 6. uptime after a component moved between pages ------------------------------------------


@pytest.mark.parametrize("session_zone", ["Australia/Lord_Howe"], indirect=True)
def test_uptime_reads_only_the_pages_log_for_the_start_and_the_changes(
    conn: Conn, acme: TwoPages
) -> None:
    """A component with a 1-day outage on one page, moved to another: both parts agree."""

    def at(month: int, day: int, hour: int = 0) -> dt.datetime:
        return dt.datetime(2024, month, day, hour, tzinfo=UTC)

    moving = components.create(conn, acme.other_page_id, name="Moving")
    conn.execute(
        "UPDATE status_page_component SET created_at = %s WHERE id = %s", (at(1, 1), moving.id)
    )
    for changed_at, previous, new in [
        (at(2, 1), "OPERATIONAL", "MAJOR_OUTAGE"),
        (at(2, 2), "MAJOR_OUTAGE", "OPERATIONAL"),
    ]:
        conn.execute(
            "INSERT INTO status_change (status_page_id, component_id, previous_status,"
            " new_status, cause, changed_at) VALUES (%s, %s, %s, %s, 'MANUAL', %s)",
            (acme.other_page_id, moving.id, previous, new, changed_at),
        )
    # The move, by plain SQL (triggers off: whatever rule the database keeps for moves).
    conn.execute("SET LOCAL session_replication_role = replica")
    conn.execute(
        "UPDATE status_page_component SET status_page_id = %s WHERE id = %s",
        (acme.page_id, moving.id),
    )
    conn.commit()

    spent: dict[str, Any] = {}
    for page in (acme.page_id, acme.other_page_id):
        report = uptime.for_page(conn, page, start=at(2, 1, 12), end=at(3, 1))
        spent[page] = {c.component_id: c.durations for c in report.components}
    moved = spent[acme.page_id][moving.id]
    assert moved.major_outage == dt.timedelta(0)
    assert moved.operational == at(3, 1) - at(2, 1, 12)
    assert moving.id not in spent[acme.other_page_id]


# --- list_upcoming against an independent RFC 5545 expansion -----------------------------------


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=series_cases())
# First occurrences on fold days (the first 01:30 / 01:45) and in gaps, always tried.
@example(case=("FREQ=DAILY;COUNT=5", dt.datetime(2025, 11, 2, 1, 30), NY))
@example(case=("FREQ=HOURLY;BYMINUTE=0,30", dt.datetime(2025, 11, 2, 1, 30), NY))
@example(case=("FREQ=DAILY", dt.datetime(2025, 4, 6, 1, 45), ZoneInfo("Australia/Lord_Howe")))
@example(case=("FREQ=DAILY;COUNT=3", dt.datetime(2025, 3, 30, 2, 30), BERLIN))
@example(case=("FREQ=WEEKLY", dt.datetime(2025, 10, 5, 2, 15), ZoneInfo("Australia/Lord_Howe")))
def test_list_upcoming_agrees_with_recurring_ical_events(
    conn: Conn, acme: TwoPages, case: tuple[str, dt.datetime, ZoneInfo]
) -> None:
    """Random rules in DST zones, DTSTART on change days (folds and gaps), on every connection
    zone: the occurrences listed start where recurring-ical-events says."""
    rule, local, zone = case
    start = local.replace(tzinfo=zone)  # wall-clock DTSTART: skipped and ambiguous times too
    first = (
        start.astimezone(UTC) if recurrence.exists(local, zone) else recurrence.instant(local, zone)
    )
    try:
        created = maintenance.create(
            conn, acme.page_id, title="Property", start_time=start, end_time=first + MINUTE,
            recurrence_rule=rule, time_zone=zone.key, created_by_id="u1",
        )  # fmt: skip
        assert created.start_time == first
        horizon = 20 * DAY
        found = maintenance.list_upcoming(conn, acme.page_id, now=first, horizon=horizon)
        expected = reference_starts(rule, local, zone, first, first + horizon)
        # At most MAX_OCCURRENCES_PER_WINDOW per window (hourly rules reach it): the earliest.
        assert [o.start_time for o in found] == expected[: maintenance.MAX_OCCURRENCES_PER_WINDOW]
        assert all(o.end_time - o.start_time == MINUTE for o in found)
    finally:
        conn.rollback()


def test_time_range_compares_instants_not_wall_clocks() -> None:
    """validate.time_range: 01:30 (first pass) to 01:15 (second pass) in New York is 45 minutes."""
    start = dt.datetime(2025, 11, 2, 1, 30, tzinfo=NY)
    end = dt.datetime(2025, 11, 2, 1, 15, fold=1, tzinfo=NY)
    validate.time_range(start, end)  # accepted: end is 45 minutes after start
    with pytest.raises(InvalidInput):
        validate.time_range(end, start)
