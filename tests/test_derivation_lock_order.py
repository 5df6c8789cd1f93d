"""Migration 0023 (issue 28): plain-SQL races between two sessions leave no status wrong.

Each test sets up a world as the owner, then runs two sessions of the app login step by step:
the first runs its statement (not committed), the second runs its own in a thread (it may wait
for the first: the test waits until it is blocked on a lock, or done), then the first commits,
then the second. Afterwards the owner's dry-run recompute must find no drift.

1. Window status / auto_update_status against linking and unlinking a component (READ
   COMMITTED, both orders): before 0023 each row trigger judged from a state missing the other
   session's change.
2. A REPEATABLE READ / SERIALIZABLE writer whose snapshot predates a committed incident moves a
   component into its team (or to its service): it must be refused with a serialization failure
   (SQLSTATE 40001, statusdb's Retryable), never commit a stale status.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from factories import APP_LOGIN, new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, errors, incidents, teams

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app_dsn(dsn: str, logins: None) -> str:
    return make_conninfo(dsn, user=APP_LOGIN)


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


class World:
    def __init__(self, owner: Conn) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.team = teams.create(owner, name=f"SRE {suffix}").id
        self.other_team = teams.create(owner, name=f"DBA {suffix}").id
        self.page = new_page(owner, self.team, slug=f"lock-{suffix}").id
        self.x = components.create(owner, self.page, name="x").id
        row = owner.execute(
            """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                                               created_by_id)
               VALUES (%s, 'w', now() - interval '1 hour', now() + interval '1 hour', 'u')
               RETURNING id""",
            (self.page,),
        ).fetchone()
        assert row is not None
        self.window = str(row[0])
        # Every slot exists already (a slot's first use is an insert, which an older snapshot
        # trips over anyway): the races are about slots in use.
        owner.execute(
            "INSERT INTO status_lock (slot) SELECT generate_series(0, 8192) ON CONFLICT DO NOTHING"
        )


def drift(owner: Conn) -> list[tuple[str, ...]]:
    return [tuple(r) for r in owner.execute("SELECT * FROM statusdb_recompute_statuses(false)")]


def status_of(owner: Conn, component_id: str) -> str:
    row = owner.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (component_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


def blocked_or_done(watch: Conn, pid: int, thread: threading.Thread) -> None:
    """Wait until backend `pid` waits on a lock or `thread` has finished (at most 10 s)."""
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        row = watch.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.01)


def interleave(owner: Conn, app_dsn: str, first_sql: str, second_sql: str) -> None:
    """first runs its statement; second runs its own (maybe waiting); first commits; second
    commits. Both at READ COMMITTED, as the app login."""
    with psycopg.connect(app_dsn) as first, psycopg.connect(app_dsn) as second:
        first.execute(first_sql)
        failures: list[BaseException] = []

        def run_second() -> None:
            try:
                second.execute(second_sql)
            except BaseException as exc:  # reported below
                failures.append(exc)

        thread = threading.Thread(target=run_second)
        thread.start()
        blocked_or_done(owner, second.info.backend_pid, thread)
        first.commit()
        thread.join(30)
        assert not thread.is_alive()
        assert failures == []
        second.commit()


def link_sql(world: World) -> str:
    return (
        "INSERT INTO maintenance_window_component (maintenance_window_id, component_id) "
        f"VALUES ('{world.window}', '{world.x}')"
    )


def unlink_sql(world: World) -> str:
    return (
        f"DELETE FROM maintenance_window_component WHERE maintenance_window_id = '{world.window}'"
        f" AND component_id = '{world.x}'"
    )


def window_sql(world: World, assignment: str) -> str:
    return f"UPDATE maintenance_window SET {assignment} WHERE id = '{world.window}'"


@pytest.mark.parametrize("window_first", [True, False], ids=["window-first", "link-first"])
def test_link_against_window_start_leaves_no_drift(
    owner: Conn, app_dsn: str, window_first: bool
) -> None:
    world = World(owner)
    start = window_sql(world, "status = 'IN_PROGRESS'")
    link = link_sql(world)
    interleave(owner, app_dsn, *((start, link) if window_first else (link, start)))
    assert status_of(owner, world.x) == "UNDER_MAINTENANCE"
    assert drift(owner) == []


@pytest.mark.parametrize("window_first", [True, False], ids=["window-first", "unlink-first"])
def test_unlink_against_window_start_leaves_no_drift(
    owner: Conn, app_dsn: str, window_first: bool
) -> None:
    world = World(owner)
    owner.execute(link_sql(world))
    start = window_sql(world, "status = 'IN_PROGRESS'")
    unlink = unlink_sql(world)
    interleave(owner, app_dsn, *((start, unlink) if window_first else (unlink, start)))
    assert status_of(owner, world.x) == "OPERATIONAL"
    assert drift(owner) == []


@pytest.mark.parametrize("window_first", [True, False], ids=["window-end-first", "link-first"])
def test_link_against_window_end_leaves_no_drift(
    owner: Conn, app_dsn: str, window_first: bool
) -> None:
    world = World(owner)
    owner.execute(window_sql(world, "status = 'IN_PROGRESS'"))
    end = window_sql(world, "status = 'COMPLETED'")
    link = link_sql(world)
    interleave(owner, app_dsn, *((end, link) if window_first else (link, end)))
    assert status_of(owner, world.x) == "OPERATIONAL"
    assert drift(owner) == []


@pytest.mark.parametrize("window_first", [True, False], ids=["auto-first", "link-first"])
def test_auto_update_status_against_link_leaves_no_drift(
    owner: Conn, app_dsn: str, window_first: bool
) -> None:
    world = World(owner)
    owner.execute(window_sql(world, "status = 'IN_PROGRESS', auto_update_status = false"))
    switch_on = window_sql(world, "auto_update_status = true")
    link = link_sql(world)
    interleave(owner, app_dsn, *((switch_on, link) if window_first else (link, switch_on)))
    assert status_of(owner, world.x) == "UNDER_MAINTENANCE"
    assert drift(owner) == []


ISOLATION = {
    "repeatable-read": psycopg.IsolationLevel.REPEATABLE_READ,
    "serializable": psycopg.IsolationLevel.SERIALIZABLE,
}


@pytest.mark.parametrize("isolation", list(ISOLATION))
@pytest.mark.parametrize("change", ["team", "service"])
def test_older_snapshot_is_refused_not_stale(
    owner: Conn, app_dsn: str, isolation: str, change: str
) -> None:
    """A: BEGIN (RR/SERIALIZABLE); SELECT 1. B (READ COMMITTED, autocommit): a CRITICAL
    incident. A: the component moves into B's team (or to B's service); COMMIT."""
    world = World(owner)
    if change == "service":
        owner.execute(
            "UPDATE status_page_component SET team_id = %s, service_identifier = 'db'"
            " WHERE id = %s",
            (world.team, world.x),
        )
        assignment = "service_identifier = 'api'"
    else:
        assignment = f"team_id = '{world.team}'"
    with psycopg.connect(app_dsn) as a, psycopg.connect(app_dsn, autocommit=True) as b:
        a.isolation_level = ISOLATION[isolation]
        a.execute("SELECT 1")  # the snapshot is taken here
        b.execute(
            "INSERT INTO incident (team_id, title, priority, service_identifier)"
            " VALUES (%s, 'down', 'CRITICAL', 'api')",
            (world.team,),
        )
        with pytest.raises(pg_errors.SerializationFailure) as refused:
            a.execute(f"UPDATE status_page_component SET {assignment} WHERE id = '{world.x}'")
        assert refused.value.sqlstate == "40001"
        assert isinstance(errors.translate(refused.value), errors.Retryable)
        a.rollback()
        assert drift(owner) == []
        # The retry (a new snapshot) derives from current state.
        a.execute(f"UPDATE status_page_component SET {assignment} WHERE id = '{world.x}'")
        a.commit()
    assert status_of(owner, world.x) == "MAJOR_OUTAGE"
    assert drift(owner) == []


@pytest.mark.parametrize("isolation", list(ISOLATION))
def test_older_snapshot_without_concurrent_change_derives(
    owner: Conn, app_dsn: str, isolation: str
) -> None:
    """REPEATABLE READ writes are no longer refused outright: with nothing committed meanwhile
    on the same status key, they derive as READ COMMITTED does."""
    world = World(owner)
    with psycopg.connect(app_dsn) as a:
        a.isolation_level = ISOLATION[isolation]
        a.execute(
            "UPDATE status_page_component SET team_id = %s WHERE id = %s", (world.team, world.x)
        )
        incidents.create(a, world.team, title="down", priority="HIGH")
        a.commit()
    assert status_of(owner, world.x) == "PARTIAL_OUTAGE"
    assert drift(owner) == []


@pytest.mark.parametrize("isolation", list(ISOLATION))
def test_older_snapshot_link_after_window_start_is_refused(
    owner: Conn, app_dsn: str, isolation: str
) -> None:
    """A (older snapshot) links x to a window that B started (and committed) after A's
    snapshot: refused, then the retry covers x."""
    world = World(owner)
    with psycopg.connect(app_dsn) as a, psycopg.connect(app_dsn, autocommit=True) as b:
        a.isolation_level = ISOLATION[isolation]
        a.execute("SELECT 1")
        b.execute(window_sql(world, "status = 'IN_PROGRESS'"))
        with pytest.raises(pg_errors.SerializationFailure):
            a.execute(link_sql(world))
        a.rollback()
        a.execute(link_sql(world))
        a.commit()
    assert status_of(owner, world.x) == "UNDER_MAINTENANCE"
    assert drift(owner) == []
