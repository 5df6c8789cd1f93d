"""Attack class S07 (issue 9 item 7, Python side): unbounded work from one recurrence rule.

A rule is a few bytes a caller controls; expanding it must cost bounded time and memory in
create/update (validation), list_upcoming and the scheduler's advance, whatever the rule and
however it was written (the Python API or plain SQL around it). Each test runs under a deadline
(SIGALRM) so that the old slowness fails the test instead of making it wait.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
from collections.abc import Iterator
from types import FrameType

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import maintenance, teams
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import InvalidInput

Conn = psycopg.Connection[TupleRow]

UTC = dt.UTC
T0 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
SECOND = dt.timedelta(seconds=1)
DAY = dt.timedelta(days=1)
EVERY_MINUTE = "BYMINUTE=" + ",".join(str(m) for m in range(60))
EVERY_SECOND = "BYSECOND=" + ",".join(str(s) for s in range(60))
#: At most this many occurrences per window are listed (maintenance.MAX_OCCURRENCES_PER_WINDOW).
LISTED_PER_WINDOW = 1000
#: Generous for this machine (the bounded code takes well under a second); the old code took
#: 10 to 17 seconds per call.
DEADLINE_SECONDS = 5.0


@contextlib.contextmanager
def deadline(seconds: float = DEADLINE_SECONDS) -> Iterator[None]:
    """Fail when the block runs longer than `seconds`.

    The alarm raises TimeoutError inside the block (to stop the work), and the test fails at the
    end of the block even if code inside swallowed that error (statusdb catches expansion errors
    to keep listing other windows).
    """
    expired: list[bool] = []

    def alarm(signum: int, frame: FrameType | None) -> None:
        expired.append(True)
        raise TimeoutError(f"took longer than {seconds} s: unbounded work")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if expired:
            pytest.fail(f"took longer than {seconds} s: unbounded work")


@pytest.fixture
def page(conn: Conn) -> str:
    team = teams.create(conn, name="SRE")
    page_id = new_page(conn, team.id, name="Acme").id
    conn.commit()
    return page_id


def create(conn: Conn, page: str, rule: str, length: dt.timedelta) -> maintenance.MaintenanceWindow:
    data = CreateMaintenanceWindowInput(
        component_ids=(), title="m", start_time=T0, end_time=T0 + length, recurrence_rule=rule
    )
    return maintenance.create(conn, page, data, created_by_id="u1")


def insert_around_statusdb(conn: Conn, page: str, rule: str, first: dt.datetime) -> str:
    """A series written by plain SQL: the database checks the rule's syntax only."""
    row = conn.execute(
        "INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,"
        " created_by_id, recurrence_rule, recurrence_start)"
        " VALUES (%s, 'm', %s, %s, 'u', %s, %s) RETURNING id",
        (page, first, first + SECOND * 30, rule, first),
    ).fetchone()
    assert row is not None
    conn.commit()
    return str(row[0])


def test_a_rule_firing_every_second_is_refused(conn: Conn, page: str) -> None:
    """FREQ=HOURLY with 60 BYMINUTE and 60 BYSECOND values: 2.6 million occurrences a month."""
    refusal = ""
    with deadline():
        try:
            create(conn, page, f"FREQ=HOURLY;{EVERY_MINUTE};{EVERY_SECOND}", SECOND)
        except InvalidInput as exc:
            refusal = str(exc)
        else:
            maintenance.list_upcoming(conn, page, now=T0, horizon=30 * DAY)
    assert "more than once a minute" in refusal


def test_a_rule_firing_every_minute_lists_a_bounded_number_of_occurrences(
    conn: Conn, page: str
) -> None:
    """FREQ=HOURLY with 60 BYMINUTE values, listed over a year: half a million occurrences."""
    with deadline():
        create(conn, page, f"FREQ=HOURLY;{EVERY_MINUTE}", 30 * SECOND)
        found = maintenance.list_upcoming(conn, page, now=T0, horizon=maintenance.MAX_HORIZON)
    assert len(found) <= LISTED_PER_WINDOW


@pytest.mark.parametrize(
    "rule", ["FREQ=HOURLY;BYYEARDAY=366;BYMONTH=1", "FREQ=HOURLY;BYWEEKNO=53;BYMONTH=6"]
)
def test_a_rule_that_never_occurs_is_refused_in_bounded_time(
    conn: Conn, page: str, rule: str
) -> None:
    """dateutil searches a rule that never occurs up to the year 9999 (~10 s of CPU)."""
    with deadline(), pytest.raises(InvalidInput):
        create(conn, page, rule, SECOND)


def test_a_rule_that_never_occurs_written_by_sql_costs_advance_bounded_time(
    conn: Conn, page: str
) -> None:
    """The same rule stored around statusdb: every scheduler step would search to 9999."""
    window_id = insert_around_statusdb(conn, page, "FREQ=HOURLY;BYYEARDAY=366;BYMONTH=1", T0)
    with deadline():
        maintenance.advance(conn, T0 + DAY)
        maintenance.list_upcoming(conn, page, now=T0, horizon=30 * DAY)
    assert [e.window_id for e in maintenance.scheduler_errors(conn)] == [window_id]


def test_an_old_minute_series_costs_advance_bounded_time(conn: Conn, page: str) -> None:
    """A series that fired every minute for years: expanding it from its first occurrence
    walks millions of occurrences at every scheduler step and listing."""
    first = T0 - 5 * 365 * DAY
    insert_around_statusdb(conn, page, f"FREQ=HOURLY;{EVERY_MINUTE}", first)
    conn.execute(
        "UPDATE maintenance_window SET start_time = %s, end_time = %s", (T0, T0 + 30 * SECOND)
    )
    conn.commit()
    with deadline():
        maintenance.advance(conn, T0 + 10 * SECOND)
        maintenance.advance(conn, T0 + 90 * SECOND)
        found = maintenance.list_upcoming(conn, page, now=T0 + 90 * SECOND, horizon=DAY)
    assert maintenance.scheduler_errors(conn) == []
    assert found[0].start_time == T0 + 2 * 60 * SECOND
    assert len(found) <= LISTED_PER_WINDOW
