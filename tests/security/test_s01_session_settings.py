"""Attack class: client-settable session state (settings, temp tables, search_path,
application_name) taken by the status derivation for its own internal state.

Every test logs in as a real member of statusdb_app (a LOGIN user, trust authentication on the
test cluster) and sets what any client may set; the database must keep the derivation's rules:
statuses derived, every change logged, the log chained.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, incidents, status, teams

Conn = psycopg.Connection[TupleRow]

#: Every setting the derivation ever read as internal state (0003, 0009, 0011), and others a
#: client might try.
SETTINGS = (
    "statusdb.deriving",
    "statusdb.all_statuses_locked",
    "statusdb.repairing",
)


@pytest.fixture
def app_dsn(dsn: str, app_login: str) -> str:
    return make_conninfo(dsn, user=app_login)


@pytest.fixture
def app(app_dsn: str) -> Iterator[Conn]:
    with psycopg.connect(app_dsn) as connection:
        yield connection


def switch_everything_on(conn: Conn) -> None:
    """Set, for this session, every piece of client-settable state a derivation might read."""
    for name in SETTINGS:
        conn.execute("SELECT set_config(%s, 'on', false)", (name,))
    conn.execute("SET application_name = 'statusdb derivation'")
    conn.execute("SET search_path = pg_temp, public")


def world(conn: Conn) -> tuple[str, str, str, str]:
    """Teams SRE and DBA, a page with a component driven by SRE; DBA has a CRITICAL incident."""
    sre, dba = teams.create(conn, name="SRE"), teams.create(conn, name="DBA")
    page = new_page(conn, sre.id, slug="acme", created_by_id="u")
    api = components.create(conn, page.id, name="API", team_id=sre.id)
    incidents.create(conn, dba.id, title="db down", priority="CRITICAL")
    conn.commit()
    return sre.id, dba.id, page.id, api.id


def consistent(conn: Conn) -> None:
    conn.rollback()
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


def test_settings_do_not_let_the_app_set_manual_status_on_a_team_driven_component(
    conn: Conn, app: Conn
) -> None:
    """With statusdb.deriving set, statusdb_app writes manual_status on a component its team
    drives."""
    _sre, _dba, _page, api = world(conn)
    switch_everything_on(app)
    with pytest.raises(pg_errors.CheckViolation) as caught:
        app.execute(
            "UPDATE public.status_page_component SET manual_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (api,),
        )
    assert caught.value.diag.constraint_name == "status_page_component_manual_status_needs_no_team"
    app.rollback()
    consistent(conn)


def test_settings_do_not_let_a_team_change_skip_the_derivation_and_the_log(
    conn: Conn, app: Conn
) -> None:
    """With statusdb.deriving set, statusdb_app moves a component to another team without
    re-derivation or a log row."""
    _sre, dba, _page, api = world(conn)
    switch_everything_on(app)
    app.execute("UPDATE public.status_page_component SET team_id = %s WHERE id = %s", (dba, api))
    app.commit()
    row = conn.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (api,)
    ).fetchone()
    assert row == ("MAJOR_OUTAGE",)  # DBA's CRITICAL incident
    logged = conn.execute(
        "SELECT previous_status, new_status, cause FROM status_change WHERE component_id = %s",
        (api,),
    ).fetchall()
    assert logged == [("OPERATIONAL", "MAJOR_OUTAGE", "MANUAL")]
    consistent(conn)


def test_the_lock_flag_does_not_let_a_writer_race_another(
    conn: Conn, app: Conn, app_dsn: str, dsn: str
) -> None:
    """A writer that sets statusdb.all_statuses_locked skips the status lock, and a concurrent
    writer on the same team leaves a wrong status behind."""
    sre, _dba, _page, api = world(conn)
    critical = incidents.create(conn, sre, title="down", priority="CRITICAL")
    conn.commit()
    # Writer 1, with the flag: resolves the CRITICAL incident, not committed yet.
    switch_everything_on(app)
    app.execute("UPDATE public.incident SET status = 'RESOLVED' WHERE id = %s", (critical.id,))
    # Writer 2, honest: opens a HIGH incident on the same team meanwhile. It must wait for
    # writer 1 (then derive from both changes); with the flag honoured it does not wait, still
    # sees the CRITICAL incident open, and leaves the status alone.
    errors: list[BaseException] = []
    pid: list[int] = []

    def honest() -> None:
        try:
            with psycopg.connect(app_dsn) as writer:
                pid.append(writer.info.backend_pid)
                writer.execute("SET lock_timeout = '20s'")
                incidents.create(writer, sre, title="slow", priority="HIGH")
                writer.commit()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=honest)
    thread.start()
    deadline = time.monotonic() + 20
    with psycopg.connect(dsn, autocommit=True) as watch:
        while thread.is_alive() and time.monotonic() < deadline:
            if pid:
                row = watch.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid[0],)
                ).fetchone()
                if row is not None and row[0] == "Lock":
                    break  # waiting for writer 1, as it should
            time.sleep(0.01)
    app.commit()
    thread.join(30)
    assert errors == []
    row = conn.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (api,)
    ).fetchone()
    assert row == ("PARTIAL_OUTAGE",)  # the HIGH incident is the only one open
    consistent(conn)


def test_settings_do_not_let_the_owner_write_a_status_by_hand(conn: Conn) -> None:
    """With statusdb.deriving set, a DBA's psql (superuser or owner) writes current_status
    without a log row, breaking the status-change chain."""
    _sre, _dba, _page, api = world(conn)
    switch_everything_on(conn)
    with pytest.raises(pg_errors.CheckViolation) as caught:
        conn.execute(
            "UPDATE public.status_page_component SET current_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (api,),
        )
    assert caught.value.diag.constraint_name == "status_page_component_current_status_derived"
    conn.rollback()
    conn.execute("RESET ALL")
    consistent(conn)
