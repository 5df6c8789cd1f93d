"""Attack class: a page's calendar days that a client can bend (migration 0021, uptime.daily).

A page's daily bars are cut at its time zone's local midnights. The zone is stored on the page
by any writer (statusdb_app, a DBA's psql) and read by every reader, so what it means must not
depend on the writer's or the reader's session, and no write may leave a zone the queries
cannot read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from factories import add_component, new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import teams, uptime

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


@pytest.fixture
def page(conn: Conn) -> str:
    team = teams.create(conn, name="T")
    page_id = new_page(conn, team.id, slug="p").id
    add_component(conn, page_id, "API", dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    conn.commit()
    return page_id


def _bars(conn: Conn, page_id: str) -> list[tuple[dt.datetime, dt.datetime]]:
    report = uptime.daily(conn, page_id, 3, until=dt.date(2024, 6, 3))
    conn.rollback()
    return [(day.start, day.end) for day in report.components[0].days]


def test_an_abbreviation_cannot_be_a_page_zone(app: Conn, page: str) -> None:
    """A writer stores 'EST' as a page's zone: PostgreSQL resolves it through each reader's
    timezone_abbreviations first, so a reader who sets 'Australia' sees days 15 hours off."""
    for zone in ("EST", "CET", "IST", "EST5EDT"):
        with pytest.raises(pg_errors.CheckViolation) as refused:
            app.execute("UPDATE status_page SET time_zone = %s WHERE id = %s", (zone, page))
        assert refused.value.diag.constraint_name == "status_page_time_zone_check"
        app.rollback()
    # a name with a '/' means the same to every session, whatever its settings
    app.execute("UPDATE status_page SET time_zone = 'America/New_York' WHERE id = %s", (page,))
    app.commit()
    expected = _bars(app, page)
    assert expected[0][0] == dt.datetime(2024, 6, 1, 4, tzinfo=dt.UTC)
    for setting, value in (
        ("timezone_abbreviations", "Australia"),
        ("timezone_abbreviations", "India"),
        ("TimeZone", "Pacific/Kiritimati"),
    ):
        app.execute("SELECT set_config(%s, %s, false)", (setting, value))
        assert _bars(app, page) == expected, (setting, value)


def test_an_update_cannot_store_a_zone_the_server_does_not_know(app: Conn, page: str) -> None:
    """Plain UPDATE as statusdb_app sets time_zone 'Mars/Olympus' (or a POSIX spec), which
    every later daily query of the page would fail on (INSERT refuses it; UPDATE must too)."""
    for zone in ("Mars/Olympus", "Europe/Nowhere", "<+05>-5", "XYZ-5"):
        with pytest.raises(pg_errors.CheckViolation) as refused:
            app.execute("UPDATE status_page SET time_zone = %s WHERE id = %s", (zone, page))
        assert refused.value.diag.constraint_name == "status_page_time_zone_check"
        app.rollback()
    with pytest.raises(pg_errors.CheckViolation):
        app.execute(
            """INSERT INTO status_page (name, slug, is_public, team_id, created_by_id, time_zone)
               SELECT 'Q', 'q', true, team_id, 'u', 'Mars/Olympus' FROM status_page
               WHERE id = %s""",
            (page,),
        )
    app.rollback()
    assert len(_bars(app, page)) == 3


def test_the_zone_check_does_not_change_the_writers_session(app: Conn, page: str) -> None:
    """The trigger looks the zone up by setting TimeZone; were that to outlive the trigger, a
    writer's later statements in the transaction would read and write times in the page's zone."""
    app.execute("SET TimeZone = 'Pacific/Chatham'")
    app.commit()
    app.execute("UPDATE status_page SET time_zone = 'Asia/Kolkata' WHERE id = %s", (page,))
    row = app.execute("SELECT current_setting('TimeZone'), time_zone FROM status_page").fetchone()
    assert row == ("Pacific/Chatham", "Asia/Kolkata")
    app.execute("UPDATE status_page SET time_zone = 'not/a_zone' WHERE id = %s AND false", (page,))
    with pytest.raises(pg_errors.CheckViolation):
        app.execute("UPDATE status_page SET time_zone = 'Nowhere/Land' WHERE id = %s", (page,))
    app.rollback()  # the refused zone's lookup does not stay behind either
    row = app.execute("SELECT current_setting('TimeZone')").fetchone()
    assert row == ("Pacific/Chatham",)
