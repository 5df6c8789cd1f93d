"""Attack class: hiding a stopped scheduler, flooding its heartbeat, reading across teams.

`statusdb doctor` judges the scheduler by `scheduler_heartbeat` (0032). Every role that can
connect is an adversary, statusdb_app included (it runs the scheduler):
* a heartbeat stamped in the future would read as "the scheduler ran" for as long as the
  stamp lies ahead, so the stamp is the server's clock, taken by the only way in
  (`statusdb_record_scheduler_run`); the app may not write the table itself;
* a client that records a run under a new name every time would grow the table without
  bound: the function keeps the 1,000 most recent instances;
* doctor's samples run as the owner (they render pages and read snapshots), so a
  team-scoped session is refused rather than shown other teams' ids (rule 15);
* the reader role may run none of the scheduler's functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from factories import ensure_login
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import teams, tenancy
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]

READER_LOGIN = "statusdb_s34_reader"


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login), autocommit=True) as connection:
        yield connection


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def test_the_app_cannot_write_a_heartbeat_of_its_choosing(app: Conn, owner: Conn) -> None:
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute(
            "INSERT INTO scheduler_heartbeat (instance, last_success_at, duration, transitions,"
            " errors) VALUES ('forged', now() + interval '1 year', '0', 0, 0)"
        )
    app.execute("SELECT statusdb_record_scheduler_run('honest', '1 second', 0, 0)")
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute("UPDATE scheduler_heartbeat SET last_success_at = now() + interval '1 year'")
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute("DELETE FROM scheduler_heartbeat")
    # The stamp is the server's clock at the call, whatever the session says the time is.
    app.execute("SET TimeZone = 'Pacific/Kiritimati'")
    app.execute("SELECT statusdb_record_scheduler_run('honest', '1 second', 0, 0)")
    (ahead,) = owner.execute(
        "SELECT last_success_at > clock_timestamp() FROM scheduler_heartbeat"
        " WHERE instance = 'honest'"
    ).fetchone()  # type: ignore[misc]
    assert ahead is False


def test_the_heartbeat_stays_bounded_whoever_records(app: Conn, owner: Conn) -> None:
    app.execute(
        "SELECT statusdb_record_scheduler_run('flood-' || i, '0', 0, 0)"
        " FROM generate_series(1, 1100) AS i"
    )
    (rows,) = owner.execute("SELECT count(*) FROM scheduler_heartbeat").fetchone()  # type: ignore[misc]
    assert rows == 1000


@pytest.mark.parametrize(
    ("arguments", "bad"),
    [
        (("", "0", 0, 0), "instance"),
        (("x" * 201, "0", 0, 0), "instance"),
        (("i", "-1 second", 0, 0), "duration"),
        (("i", "1 day", 0, 0), "duration"),
        (("i", "0", -1, 0), "transitions"),
        (("i", "0", 0, -1), "transitions"),
    ],
)
def test_the_heartbeat_function_bounds_its_arguments(
    app: Conn, arguments: tuple[str, str, int, int], bad: str
) -> None:
    with pytest.raises(pg_errors.InvalidParameterValue, match=bad):
        app.execute("SELECT statusdb_record_scheduler_run(%s, %s::interval, %s, %s)", arguments)


def test_doctor_samples_refuse_a_team_scope_and_bound_the_sample(app: Conn) -> None:
    with pytest.raises(pg_errors.InvalidParameterValue, match="sample_size"):
        app.execute("SELECT * FROM statusdb_doctor_sample_v1(10001)")
    with pytest.raises(pg_errors.InvalidParameterValue, match="sample_size"):
        app.execute("SELECT * FROM statusdb_doctor_sample_v1(0)")
    team = teams.create(app, name="s34")
    with app.transaction():
        tenancy.set_team(app, team.id)
        with pytest.raises(pg_errors.InsufficientPrivilege):
            app.execute("SELECT * FROM statusdb_doctor_sample_v1(10)")


def test_the_reader_runs_no_scheduler_function(dsn: str, cluster: LocalCluster) -> None:
    ensure_login(cluster, READER_LOGIN, "statusdb_reader")
    with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as reader:
        for statement in (
            "SELECT statusdb_advance_v1('x')",
            "SELECT * FROM statusdb_maintenance_advance_by_time(now())",
            "SELECT statusdb_record_scheduler_run('x', '0', 0, 0)",
            "SELECT * FROM statusdb_doctor_sample_v1(1)",
            "SELECT * FROM scheduler_heartbeat",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                reader.execute(statement)


def test_the_sql_step_keeps_the_scheduler_errors_of_a_bad_window(app: Conn, owner: Conn) -> None:
    """statusdb_advance_v1 isolates a window the database refuses, as maintenance.advance."""
    from factories import new_page

    from statusdb import maintenance

    team = teams.create(owner, name="s34-step")
    page = new_page(owner, team.id, slug="s34-step")
    now = dt.datetime.now(dt.UTC)
    windows = [
        maintenance.create(
            owner,
            page.id,
            title=f"w{i}",
            start_time=now - dt.timedelta(minutes=1),
            end_time=now + dt.timedelta(hours=1),
            created_by_id="u",
        ).id
        for i in range(2)
    ]
    owner.execute(
        """CREATE FUNCTION s34_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'planted' USING ERRCODE = 'check_violation'; END $$"""
    )
    owner.execute(
        "CREATE TRIGGER s34_refuse BEFORE UPDATE ON maintenance_window FOR EACH ROW"
        f" WHEN (OLD.id = '{windows[0]}') EXECUTE FUNCTION s34_refuse()"
    )
    (made,) = app.execute("SELECT statusdb_advance_v1('s34')").fetchone()  # type: ignore[misc]
    assert made == 1
    (errors,) = owner.execute(
        "SELECT array_agg(maintenance_window_id) FROM maintenance_window_scheduler_error"
    ).fetchone()  # type: ignore[misc]
    assert errors == [windows[0]]
    heartbeat = owner.execute(
        "SELECT transitions, errors FROM scheduler_heartbeat WHERE instance = 's34'"
    ).fetchone()
    assert heartbeat == (1, 1)
