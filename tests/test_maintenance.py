"""Maintenance windows (statusdb.maintenance): validation, CRUD, expansion, the scheduler step."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import psycopg
import pytest
from factories import TwoPages, two_pages
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from statusdb import maintenance
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import Conflict, InvalidInput, NotFound
from statusdb.maintenance import MaintenanceOccurrence, MaintenanceWindow, Transition

Connect = Callable[..., psycopg.Connection[TupleRow]]
Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
T0 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=UTC)  # a Monday
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture
def acme(conn: Conn) -> TwoPages:
    """A page with three components and another page with one; committed."""
    built = two_pages(conn, team="SRE", names=("API", "Web", "DB"))
    conn.commit()
    return built


def window_input(
    component_ids: tuple[str, ...] = (),
    *,
    title: str = "Database upgrade",
    start: dt.datetime = T0,
    end: dt.datetime | None = None,
    rule: str | None = None,
    description: str | None = None,
) -> CreateMaintenanceWindowInput:
    return CreateMaintenanceWindowInput(
        component_ids=component_ids,
        title=title,
        start_time=start,
        end_time=start + HOUR if end is None else end,
        recurrence_rule=rule,
        description=description,
    )


def count_windows(conn: Conn) -> tuple[int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM maintenance_window),"
        " (SELECT count(*) FROM maintenance_window_component)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# --- create and validation ----------------------------------------------------------------------


def test_create_returns_a_typed_row_with_its_components(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(
        conn,
        acme.page_id,
        window_input((acme.web, acme.api, acme.web), description="Short downtime"),
        created_by_id="u1",
        time_zone="Europe/Berlin",
    )
    assert isinstance(window, MaintenanceWindow)
    assert window.status_page_id == acme.page_id
    assert window.title == "Database upgrade"
    assert window.description == "Short downtime"
    assert window.status == "SCHEDULED"
    assert (window.start_time, window.end_time) == (T0, T0 + HOUR)
    assert window.duration == HOUR
    assert window.recurrence_rule is None
    assert window.recurrence_start is None
    assert window.time_zone == "Europe/Berlin"
    assert window.auto_update_status
    assert window.notify_subscribers
    assert window.created_by_id == "u1"
    assert window.component_ids == tuple(sorted({acme.api, acme.web}))
    assert maintenance.get(conn, window.id) == window
    assert count_windows(conn) == (1, 2)


def test_a_window_without_components_is_a_page_wide_notice(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(conn, acme.page_id, window_input(), created_by_id="u1")
    assert window.component_ids == ()
    assert maintenance.get(conn, window.id).component_ids == ()


def test_create_recurring_canonicalizes_the_rule_and_anchors_the_series(
    conn: Conn, acme: TwoPages
) -> None:
    window = maintenance.create(
        conn,
        acme.page_id,
        window_input((acme.api,), rule=" rrule: freq=weekly;count=4 "),
        created_by_id="u1",
    )
    assert window.recurrence_rule == "FREQ=WEEKLY;COUNT=4"
    assert window.recurrence_start == T0


def test_create_takes_keywords_like_every_other_create(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(
        conn,
        acme.page_id,
        title="Database upgrade",
        start_time=T0,
        end_time=T0 + HOUR,
        component_ids=[acme.api],
        recurrence_rule="FREQ=WEEKLY",
        created_by_id="u1",
        time_zone="Europe/Berlin",
    )
    assert (window.title, window.component_ids, window.recurrence_rule) == (
        "Database upgrade",
        (acme.api,),
        "FREQ=WEEKLY",
    )
    assert window.recurrence_local_start == dt.datetime(2030, 1, 7, 11, 0)  # Berlin wall clock
    as_input = maintenance.create(
        conn, acme.page_id, window_input((acme.api,), rule="FREQ=WEEKLY"), created_by_id="u1",
        time_zone="Europe/Berlin",
    )  # fmt: skip
    assert attrs.evolve(as_input, id=window.id, created_at=window.created_at,
                        updated_at=window.updated_at) == window  # fmt: skip
    with pytest.raises(InvalidInput, match="not both"):
        maintenance.create(conn, acme.page_id, window_input(), title="x", created_by_id="u1")
    with pytest.raises(InvalidInput, match="required"):
        maintenance.create(conn, acme.page_id, title="x", created_by_id="u1")


def test_max_occurrences_per_window_is_the_documented_bound() -> None:
    assert maintenance.MAX_OCCURRENCES_PER_WINDOW == 1000


NAIVE = dt.datetime(2030, 1, 7, 10, 0)


#: Bad inputs to create, each with (part of) the message that must name the problem. Checked in
#: one test (one database) to keep the suite fast; most are refused before any SQL is sent.
BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"start_time": NAIVE, "end_time": NAIVE + HOUR}, "start_time must be timezone-aware"),
    ({"end_time": NAIVE + HOUR}, "end_time must be timezone-aware"),
    ({"end_time": T0}, "must be after start_time"),
    ({"end_time": T0 - HOUR}, "must be after start_time"),
    ({"title": "a\x00b"}, "title must not contain a NUL"),
    ({"title": "   "}, "title must not be blank"),
    ({"title": "x" * 501}, "title must be at most 500"),
    ({"description": "a\x00b"}, "description must not contain a NUL"),
    ({"component_ids": ("a\x00b",)}, "component_ids must not contain a NUL"),
    ({"recurrence_rule": "FREQ=FORTNIGHTLY"}, "FREQ=FORTNIGHTLY is not one of"),
    ({"recurrence_rule": "FREQ=MINUTELY"}, "FREQ=MINUTELY is not supported"),
    ({"recurrence_rule": "BYDAY=MO"}, "needs a FREQ"),
    ({"recurrence_rule": "FREQ=WEEKLY;;COUNT=2"}, "is not NAME=VALUE"),
    ({"recurrence_rule": "FREQ=WEEKLY;FREQ=DAILY"}, "gives FREQ twice"),
    ({"recurrence_rule": "FREQ=WEEKLY;BYDAY=XX"}, "not a valid RRULE"),
    ({"recurrence_rule": "FREQ=WEEKLY;FOO=1"}, "not a valid RRULE"),
    (
        {"recurrence_rule": "DTSTART:20300107T100000Z\nRRULE:FREQ=DAILY"},
        "DTSTART",
    ),
    ({"recurrence_rule": "FREQ=DAILY;DTSTART=20300107T100000Z"}, "DTSTART"),
    ({"recurrence_rule": "FREQ=DAILY;UNTIL=20300110"}, "UNTIL=20300110 must be a UTC"),
    ({"recurrence_rule": "FREQ=DAILY;UNTIL=20300110T100000"}, "must be a UTC date-time"),
    ({"recurrence_rule": "FREQ=DAILY;COUNT=2;UNTIL=20300110T100000Z"}, "not both"),
    ({"recurrence_rule": "FREQ=DAILY;COUNT=0"}, "COUNT must be a positive integer"),
    ({"recurrence_rule": "FREQ=DAILY;INTERVAL=0"}, "INTERVAL must be a positive integer"),
    ({"recurrence_rule": "FREQ=DAILY;BYHOUR=25"}, "BYHOUR values must be 0 to 23"),
    ({"recurrence_rule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "never occurs"),
    ({"recurrence_rule": "FREQ=DAILY;UNTIL=20300101T000000Z"}, "has no occurrence"),
    ({"recurrence_rule": "FREQ=WEEKLY;BYDAY=TU"}, "is not an occurrence of"),
    ({"recurrence_rule": "FREQ=DAILY", "end_time": T0 + 25 * HOUR}, "would overlap"),
    (
        {
            "recurrence_rule": "FREQ=DAILY",
            "start_time": T0.replace(microsecond=5),
            "end_time": T0 + HOUR,
        },
        "must be a whole second",
    ),
    ({"recurrence_rule": "FREQ=DAILY\x00"}, "recurrence_rule must not contain a NUL"),
]


def test_create_refuses_bad_input_with_a_clear_message(conn: Conn, acme: TwoPages) -> None:
    for change, message in BAD_INPUTS:
        data = attrs.evolve(window_input((acme.api,)), **change)
        with pytest.raises(InvalidInput) as caught:
            maintenance.create(conn, acme.page_id, data, created_by_id="u1")
        assert message in str(caught.value), (change, str(caught.value))
    assert count_windows(conn) == (0, 0)


def test_create_refuses_unknown_time_zones(conn: Conn, acme: TwoPages) -> None:
    for zone, message in [
        ("Mars/Olympus_Mons", "not a known IANA time zone"),
        ("PST", "not a known IANA time zone"),
        ("UTC+3", "not a known IANA time zone"),
        ("../etc/passwd", "not a known IANA time zone"),
        ("Europe/", "not a known IANA time zone"),
        ("", "time_zone must not be blank"),
        ("Europe/Berlin\x00", "time_zone must not contain a NUL"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            maintenance.create(
                conn, acme.page_id, window_input(), created_by_id="u1", time_zone=zone
            )
        assert message in str(caught.value), (zone, str(caught.value))
    assert count_windows(conn) == (0, 0)


def test_components_must_be_on_the_page_and_the_error_names_them(
    conn: Conn, acme: TwoPages
) -> None:
    with pytest.raises(InvalidInput, match=rf"'{acme.foreign}' is not a component of status page"):
        maintenance.create(
            conn, acme.page_id, window_input((acme.api, acme.foreign)), created_by_id="u1"
        )
    with pytest.raises(InvalidInput, match="'nope', 'gone' are not components"):
        maintenance.create(
            conn, acme.page_id, window_input((acme.api, "nope", "gone")), created_by_id="u1"
        )
    with pytest.raises(NotFound, match="no status page with id 'missing'"):
        maintenance.create(conn, "missing", window_input((acme.api,)), created_by_id="u1")
    with pytest.raises(NotFound, match="no status page"):
        maintenance.create(conn, "missing", window_input(), created_by_id="u1")
    assert count_windows(conn) == (0, 0)


def test_the_database_refuses_what_the_scheduler_could_not_interpret(
    conn: Conn, acme: TwoPages
) -> None:
    """Plain SQL (psql) is held to the same rules, with the constraint named."""
    insert = (
        "INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,"
        " created_by_id, recurrence_rule, recurrence_start, time_zone)"
        " VALUES (%s, 'm', %s, %s, 'u', %s, %s, %s)"
    )
    cases: list[tuple[str, str | None, dt.datetime | None, str]] = [
        ("maintenance_window_time_zone_check", None, None, "Mars/Olympus_Mons"),
        ("maintenance_window_time_zone_check", None, None, "PST"),
        ("maintenance_window_recurrence_start_check", "FREQ=DAILY", None, "UTC"),
        ("maintenance_window_recurrence_start_check", None, T0, "UTC"),
        ("maintenance_window_recurrence_start_check", "FREQ=DAILY", T0 + HOUR, "UTC"),
        ("maintenance_window_recurrence_rule_syntax_check", "FREQ=DAILY;byday=MO", T0, "UTC"),
        ("maintenance_window_recurrence_rule_syntax_check", "FREQ=MINUTELY", T0, "UTC"),
        (
            "maintenance_window_recurrence_rule_syntax_check",
            "FREQ=DAILY;UNTIL=20300110T000000",
            T0,
            "UTC",
        ),
        (
            "maintenance_window_recurrence_rule_syntax_check",
            "FREQ=DAILY;COUNT=2;UNTIL=20300110T000000Z",
            T0,
            "UTC",
        ),
        ("maintenance_window_recurrence_rule_syntax_check", "FREQ=DAILY;INTERVAL=0", T0, "UTC"),
        (
            "maintenance_window_recurrence_rule_syntax_check",
            "DTSTART:20300107T100000Z\nRRULE:FREQ=DAILY",
            T0,
            "UTC",
        ),
    ]
    for constraint, rule, first, zone in cases:
        with pytest.raises(pg_errors.CheckViolation) as caught:
            conn.execute(insert, (acme.page_id, T0, T0 + HOUR, rule, first, zone))
        assert caught.value.diag.constraint_name == constraint, (rule, zone)
        conn.rollback()
    conn.execute(insert, (acme.page_id, T0, T0 + HOUR, "FREQ=WEEKLY;BYDAY=MO", T0, "Asia/Tokyo"))
    conn.execute(insert, (acme.page_id, T0, T0 + HOUR, None, None, "America/New_York"))
    conn.execute("UPDATE maintenance_window SET time_zone = 'Europe/Berlin'")
    with pytest.raises(pg_errors.CheckViolation):
        conn.execute("UPDATE maintenance_window SET time_zone = 'Europe/Berln'")


# --- read, update, cancel, delete -------------------------------------------------------------


def test_list_for_page_in_start_order_with_a_status_filter(conn: Conn, acme: TwoPages) -> None:
    later = maintenance.create(
        conn, acme.page_id, window_input(start=T0 + DAY, title="later"), created_by_id="u1"
    )
    sooner = maintenance.create(
        conn, acme.page_id, window_input(title="sooner"), created_by_id="u1"
    )
    maintenance.create(conn, acme.other_page_id, window_input(), created_by_id="u1")
    maintenance.cancel(conn, later.id)
    assert [w.title for w in maintenance.list_for_page(conn, acme.page_id)] == ["sooner", "later"]
    scheduled = maintenance.list_for_page(conn, acme.page_id, statuses=["SCHEDULED"])
    assert [w.id for w in scheduled] == [sooner.id]
    assert maintenance.list_for_page(conn, "nope") == []
    with pytest.raises(InvalidInput, match="statuses must be one of"):
        maintenance.list_for_page(conn, acme.page_id, statuses=["DONE"])  # type: ignore[list-item]


def test_update_changes_fields_and_replaces_the_component_set(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(
        conn, acme.page_id, window_input((acme.api, acme.web)), created_by_id="u1"
    )
    updated = maintenance.update(
        conn,
        window.id,
        title="Bigger upgrade",
        description=None,
        start_time=T0 + HOUR,
        end_time=T0 + 3 * HOUR,
        auto_update_status=False,
        notify_subscribers=False,
        component_ids=[acme.db, acme.web],
        time_zone="America/New_York",
    )
    assert updated.title == "Bigger upgrade"
    assert (updated.start_time, updated.end_time) == (T0 + HOUR, T0 + 3 * HOUR)
    assert not updated.auto_update_status
    assert not updated.notify_subscribers
    assert updated.component_ids == tuple(sorted((acme.db, acme.web)))
    assert updated.time_zone == "America/New_York"
    assert maintenance.get(conn, window.id) == updated
    assert updated.updated_at >= window.updated_at

    # Fields left out keep their value; an empty set removes every component.
    assert maintenance.update(conn, window.id, component_ids=[]).component_ids == ()
    assert maintenance.update(conn, window.id, description="d").title == "Bigger upgrade"


def test_update_refusals_leave_the_window_unchanged(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(conn, acme.page_id, window_input((acme.api,)), created_by_id="u1")
    conn.commit()
    with pytest.raises(InvalidInput, match=rf"'{acme.foreign}' is not a component"):
        maintenance.update(conn, window.id, component_ids=[acme.web, acme.foreign])
    with pytest.raises(InvalidInput, match="must be after start_time"):
        maintenance.update(conn, window.id, end_time=T0 - HOUR)
    with pytest.raises(InvalidInput, match="must be timezone-aware"):
        maintenance.update(conn, window.id, start_time=NAIVE)
    with pytest.raises(InvalidInput, match="not an occurrence"):
        maintenance.update(conn, window.id, recurrence_rule="FREQ=WEEKLY;BYDAY=FR")
    with pytest.raises(InvalidInput, match="title must not contain a NUL"):
        maintenance.update(conn, window.id, title="\x00")
    with pytest.raises(NotFound, match="no maintenance window with id 'nope'"):
        maintenance.update(conn, "nope", title="x")
    assert maintenance.get(conn, window.id) == window


def test_update_respects_the_lifecycle(conn: Conn, acme: TwoPages) -> None:
    running = maintenance.create(conn, acme.page_id, window_input((acme.api,)), created_by_id="u1")
    maintenance.advance(conn, T0)
    with pytest.raises(Conflict, match="in progress: its start_time no longer changes"):
        maintenance.update(conn, running.id, start_time=T0 + HOUR, end_time=T0 + 2 * HOUR)
    extended = maintenance.update(conn, running.id, end_time=T0 + 2 * HOUR)
    assert extended.status == "IN_PROGRESS"
    assert extended.end_time == T0 + 2 * HOUR

    maintenance.advance(conn, T0 + 2 * HOUR)
    with pytest.raises(Conflict, match="COMPLETED: its times"):
        maintenance.update(conn, running.id, end_time=T0 + 3 * HOUR)
    with pytest.raises(Conflict, match="COMPLETED"):
        maintenance.update(conn, running.id, component_ids=[acme.web])
    # Words can still be fixed, and values equal to the current ones are no change.
    fixed = maintenance.update(conn, running.id, title="Fixed typo", end_time=T0 + 2 * HOUR)
    assert fixed.title == "Fixed typo"
    assert fixed.status == "COMPLETED"


@pytest.mark.usefixtures("session_zone")
def test_update_of_a_series_restarts_it_only_when_its_schedule_changes(
    conn: Conn, acme: TwoPages
) -> None:
    window = maintenance.create(
        conn, acme.page_id, window_input(rule="FREQ=DAILY;COUNT=3"), created_by_id="u1"
    )
    maintenance.advance(conn, T0 + HOUR)  # first occurrence done: now on the second
    moved = maintenance.get(conn, window.id)
    assert moved.start_time == T0 + DAY
    assert moved.recurrence_start == T0

    longer = maintenance.update(conn, window.id, end_time=T0 + DAY + 2 * HOUR)
    assert longer.recurrence_start == T0  # the series goes on: COUNT still counts from T0
    with pytest.raises(InvalidInput, match="would overlap"):
        maintenance.update(conn, window.id, end_time=T0 + 2 * DAY + HOUR)

    weekly = maintenance.update(conn, window.id, recurrence_rule="FREQ=WEEKLY;COUNT=2")
    assert weekly.recurrence_start == T0 + DAY  # starts over at the current occurrence
    one_off = maintenance.update(conn, window.id, recurrence_rule=None)
    assert one_off.recurrence_rule is None
    assert one_off.recurrence_start is None


def test_cancel(conn: Conn, acme: TwoPages) -> None:
    scheduled = maintenance.create(conn, acme.page_id, window_input(), created_by_id="u1")
    cancelled = maintenance.cancel(conn, scheduled.id)
    assert cancelled.status == "CANCELLED"
    assert cancelled.end_time == scheduled.end_time
    assert maintenance.cancel(conn, scheduled.id) == maintenance.get(conn, scheduled.id)
    assert maintenance.advance(conn, T0 + HOUR) == []  # a cancelled window never starts

    running = maintenance.create(
        conn, acme.page_id, window_input((acme.api,), start=T0 + DAY), created_by_id="u1"
    )
    maintenance.advance(conn, T0 + DAY)
    stopped = maintenance.cancel(conn, running.id, now=T0 + DAY + dt.timedelta(minutes=20))
    assert stopped.status == "CANCELLED"
    assert stopped.end_time == T0 + DAY + dt.timedelta(minutes=20)  # it ended when cancelled
    assert maintenance.advance(conn, T0 + 2 * DAY) == []

    done = maintenance.create(conn, acme.page_id, window_input(), created_by_id="u1")
    maintenance.advance(conn, T0 + 2 * HOUR)
    with pytest.raises(Conflict, match="already COMPLETED"):
        maintenance.cancel(conn, done.id)
    with pytest.raises(NotFound):
        maintenance.cancel(conn, "nope")
    with pytest.raises(InvalidInput, match="now must be timezone-aware"):
        maintenance.cancel(conn, done.id, now=NAIVE)


def test_delete(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(conn, acme.page_id, window_input((acme.api,)), created_by_id="u1")
    maintenance.delete(conn, window.id)
    assert count_windows(conn) == (0, 0)
    with pytest.raises(NotFound):
        maintenance.delete(conn, window.id)
    with pytest.raises(NotFound):
        maintenance.get(conn, window.id)


async def test_crud_and_scheduling_from_async_code(
    aconn: AConn, conn: Conn, acme: TwoPages
) -> None:
    window = await maintenance.create(
        aconn,
        acme.page_id,
        window_input((acme.api,), rule="FREQ=DAILY;COUNT=2"),
        created_by_id="u1",
    )
    assert await maintenance.get(aconn, window.id) == window
    updated = await maintenance.update(aconn, window.id, title="Async", component_ids=[acme.web])
    assert updated.component_ids == (acme.web,)
    upcoming = await maintenance.list_upcoming(aconn, acme.page_id, now=T0, horizon=7 * DAY)
    assert [o.start_time for o in upcoming] == [T0, T0 + DAY]
    assert await maintenance.advance(aconn, T0) == [
        Transition(window.id, "SCHEDULED", "IN_PROGRESS", T0, T0)
    ]
    assert [w.id for w in await maintenance.list_for_page(aconn, acme.page_id)] == [window.id]
    assert (await maintenance.cancel(aconn, window.id)).status == "CANCELLED"
    await aconn.commit()
    assert maintenance.get(conn, window.id).status == "CANCELLED"
    await maintenance.delete(aconn, window.id)
    with pytest.raises(NotFound):
        await maintenance.get(aconn, window.id)


# --- upcoming occurrences ---------------------------------------------------------------------


@pytest.mark.usefixtures("session_zone")
def test_list_upcoming_expands_series_within_the_horizon(conn: Conn, acme: TwoPages) -> None:
    daily = maintenance.create(
        conn,
        acme.page_id,
        window_input((acme.api,), title="daily", rule="FREQ=DAILY;COUNT=5"),
        created_by_id="u1",
    )
    one_off = maintenance.create(
        conn,
        acme.page_id,
        window_input((acme.web,), title="one-off", start=T0 + 30 * HOUR),
        created_by_id="u1",
    )
    maintenance.create(  # beyond the horizon
        conn, acme.page_id, window_input(title="far", start=T0 + 30 * DAY), created_by_id="u1"
    )
    cancelled = maintenance.create(conn, acme.page_id, window_input(title="x"), created_by_id="u1")
    maintenance.cancel(conn, cancelled.id)
    maintenance.create(conn, acme.other_page_id, window_input(title="other"), created_by_id="u1")
    maintenance.advance(conn, T0 + dt.timedelta(minutes=30))

    now = T0 + dt.timedelta(minutes=30)
    upcoming = maintenance.list_upcoming(conn, acme.page_id, now=now, horizon=3 * DAY)
    assert all(isinstance(o, MaintenanceOccurrence) for o in upcoming)
    assert [(o.title, o.start_time, o.status) for o in upcoming] == [
        ("daily", T0, "IN_PROGRESS"),
        ("daily", T0 + DAY, "SCHEDULED"),
        ("one-off", T0 + 30 * HOUR, "SCHEDULED"),
        ("daily", T0 + 2 * DAY, "SCHEDULED"),
        ("daily", T0 + 3 * DAY, "SCHEDULED"),
    ]
    assert upcoming[0] == MaintenanceOccurrence(
        daily.id, "daily", T0, T0 + HOUR, (acme.api,), "IN_PROGRESS"
    )
    assert upcoming[2].window_id == one_off.id
    assert upcoming[2].component_ids == (acme.web,)
    # Past the window's occurrences, none; COUNT bounds the series.
    later = maintenance.list_upcoming(conn, acme.page_id, now=T0 + 2 * HOUR, horizon=20 * DAY)
    assert [o.start_time for o in later if o.window_id == daily.id] == [
        T0 + DAY,
        T0 + 2 * DAY,
        T0 + 3 * DAY,
        T0 + 4 * DAY,
    ]


def test_list_upcoming_checks_its_arguments(conn: Conn, acme: TwoPages) -> None:
    with pytest.raises(InvalidInput, match="now must be timezone-aware"):
        maintenance.list_upcoming(conn, acme.page_id, now=NAIVE, horizon=DAY)
    for horizon in (dt.timedelta(0), -DAY, 400 * DAY):
        with pytest.raises(InvalidInput, match="horizon must be"):
            maintenance.list_upcoming(conn, acme.page_id, now=T0, horizon=horizon)


# --- the scheduler step -------------------------------------------------------------------------


def test_advance_moves_a_one_off_window_through_its_life_once(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(conn, acme.page_id, window_input((acme.api,)), created_by_id="u1")
    assert maintenance.advance(conn, T0 - dt.timedelta(seconds=1)) == []
    started = maintenance.advance(conn, T0)
    assert started == [Transition(window.id, "SCHEDULED", "IN_PROGRESS", T0, T0)]
    assert maintenance.advance(conn, T0) == []  # idempotent
    assert maintenance.advance(conn, T0 + dt.timedelta(minutes=30)) == []
    assert maintenance.get(conn, window.id).status == "IN_PROGRESS"
    ended = maintenance.advance(conn, T0 + HOUR)
    assert ended == [Transition(window.id, "IN_PROGRESS", "COMPLETED", T0 + HOUR, T0)]
    assert maintenance.advance(conn, T0 + HOUR) == []
    assert maintenance.get(conn, window.id).status == "COMPLETED"
    with pytest.raises(InvalidInput, match="now must be timezone-aware"):
        maintenance.advance(conn, NAIVE)


def test_a_missed_one_off_window_completes_without_starting(conn: Conn, acme: TwoPages) -> None:
    window = maintenance.create(conn, acme.page_id, window_input(), created_by_id="u1")
    now = T0 + DAY
    assert maintenance.advance(conn, now) == [
        Transition(window.id, "SCHEDULED", "COMPLETED", now, T0)
    ]


@pytest.mark.usefixtures("session_zone")
def test_a_series_with_count_moves_on_and_completes_after_its_last_occurrence(
    conn: Conn, acme: TwoPages
) -> None:
    window = maintenance.create(
        conn, acme.page_id, window_input((acme.api,), rule="FREQ=DAILY;COUNT=3"), created_by_id="u1"
    )
    seen: list[tuple[str, str, dt.datetime]] = []
    for day in range(4):
        for now in (T0 + day * DAY, T0 + day * DAY + HOUR):
            for t in maintenance.advance(conn, now):
                assert t.window_id == window.id
                assert t.at == now
                seen.append((t.from_status, t.to_status, t.occurrence_start))
            assert maintenance.advance(conn, now) == []
            current = maintenance.get(conn, window.id)
            # SQL readers see the current or next occurrence without expanding the rule.
            if current.status != "COMPLETED":
                assert current.start_time == T0 + min(day + (now > T0 + day * DAY), 2) * DAY
    assert seen == [
        ("SCHEDULED", "IN_PROGRESS", T0),
        ("IN_PROGRESS", "SCHEDULED", T0),
        ("SCHEDULED", "IN_PROGRESS", T0 + DAY),
        ("IN_PROGRESS", "SCHEDULED", T0 + DAY),
        ("SCHEDULED", "IN_PROGRESS", T0 + 2 * DAY),
        ("IN_PROGRESS", "COMPLETED", T0 + 2 * DAY),
    ]
    done = maintenance.get(conn, window.id)
    assert done.status == "COMPLETED"
    assert (done.start_time, done.end_time) == (T0 + 2 * DAY, T0 + 2 * DAY + HOUR)  # the last
    assert done.recurrence_start == T0


@pytest.mark.usefixtures("session_zone")
def test_a_series_with_until_completes_and_a_wholly_missed_one_completes_at_once(
    conn: Conn, acme: TwoPages
) -> None:
    until = maintenance.create(
        conn,
        acme.page_id,
        window_input(rule="FREQ=DAILY;UNTIL=20300108T100000Z"),
        created_by_id="u1",
    )
    missed = maintenance.create(
        conn, acme.page_id, window_input(rule="FREQ=HOURLY;INTERVAL=2;COUNT=3"), created_by_id="u1"
    )
    # No scheduler ran for two days: every occurrence of both is past.
    now = T0 + 3 * DAY
    assert set(maintenance.advance(conn, now)) == {
        Transition(until.id, "SCHEDULED", "COMPLETED", now, T0),
        Transition(missed.id, "SCHEDULED", "COMPLETED", now, T0),
    }
    assert maintenance.get(conn, until.id).start_time == T0 + DAY  # its last occurrence
    assert maintenance.get(conn, missed.id).start_time == T0 + 4 * HOUR


@pytest.mark.usefixtures("session_zone")
def test_missed_occurrences_are_skipped_and_a_running_one_is_joined(
    conn: Conn, acme: TwoPages
) -> None:
    window = maintenance.create(
        conn, acme.page_id, window_input(rule="FREQ=DAILY", end=T0 + 2 * HOUR), created_by_id="u1"
    )
    maintenance.advance(conn, T0)
    # The scheduler was down from T0 to the middle of the third occurrence.
    now = T0 + 2 * DAY + HOUR
    assert maintenance.advance(conn, now) == [
        Transition(window.id, "IN_PROGRESS", "SCHEDULED", now, T0),
        Transition(window.id, "SCHEDULED", "IN_PROGRESS", now, T0 + 2 * DAY),
    ]
    current = maintenance.get(conn, window.id)
    assert (current.status, current.start_time) == ("IN_PROGRESS", T0 + 2 * DAY)
    # Down again across a whole occurrence while SCHEDULED: it moves on without a transition.
    maintenance.advance(conn, T0 + 2 * DAY + 2 * HOUR)
    assert maintenance.advance(conn, T0 + 3 * DAY + 3 * HOUR) == []
    assert maintenance.get(conn, window.id).start_time == T0 + 4 * DAY


def _local(value: dt.datetime) -> tuple[str, str]:
    local = value.astimezone(BERLIN)
    return local.strftime("%Y-%m-%d %H:%M"), local.strftime("%z")


@pytest.mark.usefixtures("session_zone")
def test_a_weekly_series_keeps_its_wall_clock_time_across_dst(conn: Conn, acme: TwoPages) -> None:
    first = dt.datetime(2030, 3, 19, 2, 0, tzinfo=BERLIN)  # a Tuesday, before the March change
    window = maintenance.create(
        conn,
        acme.page_id,
        window_input(rule="FREQ=WEEKLY", start=first, end=first + 2 * HOUR),
        created_by_id="u1",
        time_zone="Europe/Berlin",
    )
    upcoming = maintenance.list_upcoming(
        conn, acme.page_id, now=first - DAY, horizon=dt.timedelta(days=250)
    )
    assert len(upcoming) == 36
    assert {_local(o.start_time)[0][-5:] for o in upcoming} == {"02:00"}
    assert {_local(o.end_time)[0][-5:] for o in upcoming} == {"04:00"}
    by_day = {_local(o.start_time)[0][:10]: o.start_time for o in upcoming}
    assert by_day["2030-03-26"].hour == 1  # CET, UTC+1
    assert by_day["2030-04-02"].hour == 0  # CEST, UTC+2
    assert by_day["2030-10-22"].hour == 0
    assert by_day["2030-10-29"].hour == 1  # CET again
    assert {_local(o.start_time)[1] for o in upcoming} == {"+0100", "+0200"}

    # The scheduler moves the stored occurrence the same way.
    for week in range(3):
        occurrence = maintenance.get(conn, window.id)
        maintenance.advance(conn, occurrence.start_time)
        maintenance.advance(conn, occurrence.end_time)
        assert _local(maintenance.get(conn, window.id).start_time) == (
            f"2030-{['03-26', '04-02', '04-09'][week]} 02:00",
            "+0100" if week == 0 else "+0200",
        )


@pytest.mark.usefixtures("session_zone")
def test_occurrences_on_the_change_nights_follow_rfc_5545(conn: Conn, acme: TwoPages) -> None:
    """02:00 does not exist on 2030-03-31 in Berlin (it is read as 03:00 CEST) and is ambiguous
    on 2030-10-27 (the first one, CEST); each occurrence lasts exactly two hours."""
    first = dt.datetime(2030, 3, 24, 2, 0, tzinfo=BERLIN)  # a Sunday
    maintenance.create(
        conn,
        acme.page_id,
        window_input(rule="FREQ=WEEKLY", start=first, end=first + 2 * HOUR),
        created_by_id="u1",
        time_zone="Europe/Berlin",
    )
    upcoming = maintenance.list_upcoming(
        conn, acme.page_id, now=first - DAY, horizon=dt.timedelta(days=230)
    )
    spans = {_local(o.start_time)[0][:10]: (o.start_time, o.end_time) for o in upcoming}
    assert spans["2030-03-24"] == (utc(2030, 3, 24, 1), utc(2030, 3, 24, 3))
    assert spans["2030-03-31"] == (utc(2030, 3, 31, 1), utc(2030, 3, 31, 3))  # 03:00-05:00 CEST
    assert spans["2030-04-07"] == (utc(2030, 4, 7, 0), utc(2030, 4, 7, 2))
    assert spans["2030-10-27"] == (utc(2030, 10, 27, 0), utc(2030, 10, 27, 2))  # CEST to CET
    assert spans["2030-11-03"] == (utc(2030, 11, 3, 1), utc(2030, 11, 3, 3))


def utc(year: int, month: int, day: int, hour: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


def test_advance_skips_rows_another_transaction_holds(
    conn: Conn, acme: TwoPages, connect: Connect
) -> None:
    window = maintenance.create(conn, acme.page_id, window_input((acme.api,)), created_by_id="u1")
    conn.commit()
    holder = connect()
    maintenance.update(holder, window.id, title="Being edited")  # holds the row lock
    scheduler = connect(autocommit=True)
    assert maintenance.advance(scheduler, T0) == []  # skipped, not blocked
    holder.commit()
    assert maintenance.advance(scheduler, T0) == [
        Transition(window.id, "SCHEDULED", "IN_PROGRESS", T0, T0)
    ]


@pytest.mark.slow
def test_concurrent_schedulers_make_each_transition_exactly_once(
    conn: Conn, acme: TwoPages, connect: Connect
) -> None:
    minute = dt.timedelta(minutes=1)
    comps = [acme.api, acme.web, acme.db]
    expected: set[Transition] = set()
    steps = [T0 + i * minute for i in range(0, 4 * 60 + 1)]
    for k in range(40):  # one-off windows, overlapping each other and sharing components
        start, length = T0 + (1 + 5 * k) * minute, (5 + 6 * (k % 4)) * minute
        w = maintenance.create(
            conn,
            acme.page_id,
            window_input((comps[k % 3], comps[(k + 1) % 3]), start=start, end=start + length),
            created_by_id="u1",
        )
        expected.add(Transition(w.id, "SCHEDULED", "IN_PROGRESS", start, start))
        expected.add(Transition(w.id, "IN_PROGRESS", "COMPLETED", start + length, start))
    for k in range(10):  # hourly series of three 20-minute occurrences
        start = T0 + (5 + 3 * k) * minute
        w = maintenance.create(
            conn,
            acme.page_id,
            window_input(
                (comps[k % 3],), start=start, end=start + 20 * minute, rule="FREQ=HOURLY;COUNT=3"
            ),
            created_by_id="u1",
        )
        for n in range(3):
            begin = start + n * HOUR
            end = begin + 20 * minute
            expected.add(Transition(w.id, "SCHEDULED", "IN_PROGRESS", begin, begin))
            expected.add(
                Transition(w.id, "IN_PROGRESS", "COMPLETED" if n == 2 else "SCHEDULED", end, begin)
            )
    conn.commit()

    barrier = threading.Barrier(2, timeout=60)
    made: list[list[Transition]] = [[], []]
    failures: list[BaseException] = []

    def scheduler(index: int) -> None:
        try:
            connection = connect(autocommit=True)
            for now in steps:
                # No retry loop: advance takes every status lock up front, in key order, so
                # two schedulers whose windows share components never deadlock.
                made[index].extend(maintenance.advance(connection, now))
                barrier.wait()
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    union = made[0] + made[1]
    assert len(union) == len(set(union)), "a transition was made twice"
    assert set(union) == expected
    assert all(w.status == "COMPLETED" for w in maintenance.list_for_page(conn, acme.page_id))
