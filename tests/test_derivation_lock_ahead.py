"""Migration 0038 (issue 28): the deadlocks of several status-input statements, step by step.

1. Two transactions opening incidents of two teams in opposite orders: without a lock-ahead
   they deadlock on the teams' slots (each statement's trigger holds its team's slot to commit);
   with `statusdb_lock_status_inputs` first, the second waits at its first statement and both
   commit.
2. Deleting a component takes no slot of its links' windows (the cascade's status trigger
   skips a component that is gone): before 0038 it waited for a window's slot after locking the
   component's row, out of the lock order.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow
from test_derivation_lock_order import (
    Conn,
    World,
    app_dsn,
    blocked_or_done,
    drift,
    owner,
    status_of,
)

from statusdb import components, errors, maintenance, status

__all__ = ["app_dsn", "owner"]  # fixtures


def open_incident(connection: Conn, team: str) -> None:
    connection.execute(
        "INSERT INTO incident (team_id, title, priority) VALUES (%s, 'down', 'CRITICAL')", (team,)
    )


def lock_ahead(connection: Conn, windows: list[str], teams: list[str], parts: list[str]) -> None:
    connection.execute("SELECT statusdb_lock_status_inputs(%s, %s, %s)", (windows, teams, parts))


@pytest.mark.parametrize("careful", [False, True], ids=["random-order", "locked-ahead"])
def test_incidents_of_two_teams_in_opposite_orders(
    owner: Conn, app_dsn: str, careful: bool
) -> None:
    world = World(owner)
    owner.execute(
        "UPDATE status_page_component SET team_id = %s WHERE id = %s", (world.other_team, world.x)
    )
    teams = [world.team, world.other_team]
    with psycopg.connect(app_dsn) as first, psycopg.connect(app_dsn) as second:
        if careful:
            lock_ahead(first, [], teams, [])
        open_incident(first, world.team)
        failures: list[BaseException] = []

        def run_second() -> None:
            try:
                if careful:
                    lock_ahead(second, [], teams, [])
                open_incident(second, world.other_team)
                open_incident(second, world.team)
                second.commit()
            except BaseException as exc:  # reported below
                failures.append(exc)
                second.rollback()

        thread = threading.Thread(target=run_second)
        thread.start()
        blocked_or_done(owner, second.info.backend_pid, thread)
        try:
            open_incident(first, world.other_team)
            first.commit()
        except pg_errors.DeadlockDetected as exc:
            failures.append(exc)
            first.rollback()
        thread.join(30)
        assert not thread.is_alive()
    deadlocks = [f for f in failures if isinstance(f, pg_errors.DeadlockDetected)]
    if careful:
        assert failures == []
        row = owner.execute(
            "SELECT count(*) FROM incident WHERE team_id = ANY (%s)", (teams,)
        ).fetchone()
        assert row == (4,)
    else:
        assert len(deadlocks) == 1, failures  # statusdb's slots, not the clients' rows
    assert drift(owner) == []


def test_component_delete_takes_no_window_slot(owner: Conn, app_dsn: str) -> None:
    world = World(owner)
    owner.execute(
        "INSERT INTO maintenance_window_component (maintenance_window_id, component_id)"
        " VALUES (%s, %s)",
        (world.window, world.x),
    )
    with psycopg.connect(app_dsn) as holder, psycopg.connect(app_dsn) as deleter:
        # The window's slot (and its components' keys), held as the scheduler holds them.
        holder.execute("SELECT statusdb_lock_maintenance_windows(%s)", ([world.window],))
        deleter.execute("SET lock_timeout = '2s'")
        # Before 0038: LockNotAvailable after 2 s (the links' trigger waits for the slot
        # while holding the component's row: a deadlock as soon as the holder writes it).
        deleter.execute("DELETE FROM status_page_component WHERE id = %s", (world.x,))
        deleter.commit()
        holder.commit()
    assert drift(owner) == []


def test_unlink_against_component_delete_is_refused_not_deadlocked(
    owner: Conn, app_dsn: str
) -> None:
    world = World(owner)
    owner.execute(
        "UPDATE maintenance_window SET status = 'IN_PROGRESS', auto_update_status = true"
        " WHERE id = %s",
        (world.window,),
    )
    owner.execute(
        "INSERT INTO maintenance_window_component (maintenance_window_id, component_id)"
        " VALUES (%s, %s)",
        (world.window, world.x),
    )
    with psycopg.connect(app_dsn) as deleter, psycopg.connect(app_dsn) as unlinker:
        # The deleter holds the component's row, as DELETE does before its cascade.
        deleter.execute("SELECT id FROM status_page_component WHERE id = %s FOR UPDATE", (world.x,))
        failures: list[BaseException] = []

        def unlink() -> None:
            try:
                unlinker.execute(
                    "DELETE FROM maintenance_window_component WHERE component_id = %s",
                    (world.x,),
                )
                unlinker.commit()
            except BaseException as exc:  # reported below
                failures.append(exc)
                unlinker.rollback()

        thread = threading.Thread(target=unlink)
        thread.start()
        blocked_or_done(owner, unlinker.info.backend_pid, thread)
        try:
            deleter.execute("DELETE FROM status_page_component WHERE id = %s", (world.x,))
            deleter.commit()
        except BaseException as exc:  # reported below
            failures.append(exc)
            deleter.rollback()
        thread.join(30)
        assert not thread.is_alive()
    # Before 0038: the unlinker waited for the row holding the links, a deadlock (40P01).
    assert [type(f) for f in failures] == [pg_errors.SerializationFailure], failures
    assert drift(owner) == []


def test_running_window_switched_off_and_relinked_in_one_call_leaves_no_drift(
    owner: Conn,
) -> None:
    """0043: `maintenance.update(auto_update_status=False, component_ids=[y])` on a running
    window (one statement: the window and its links) left the unlinked x UNDER_MAINTENANCE:
    the links' trigger skipped x (its window no longer in effect) and the window's trigger
    re-derived only the links left. Failed before 0043 with x in the drift."""
    world = World(owner)
    y = components.create(owner, world.page, name="y").id
    owner.execute(
        "INSERT INTO maintenance_window_component VALUES (%s, %s)", (world.window, world.x)
    )
    owner.execute(
        "UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = %s", (world.window,)
    )
    assert status_of(owner, world.x) == "UNDER_MAINTENANCE"
    maintenance.update(owner, world.window, auto_update_status=False, component_ids=[y])
    assert drift(owner) == []
    assert status_of(owner, world.x) == "OPERATIONAL"


def test_the_operation_refuses_an_autocommit_connection(owner: Conn) -> None:
    """Locks taken in autocommit would end with the call: refused, not silently useless."""
    world = World(owner)
    with pytest.raises(errors.InvalidInput, match="autocommit"):
        status.lock_status_inputs(owner, teams=[world.team])
    with owner.transaction():
        status.lock_status_inputs(owner, windows=[world.window], components=[world.x])


async def test_the_operation_runs_async(aconn: psycopg.AsyncConnection[TupleRow]) -> None:
    row = await (
        await aconn.execute("INSERT INTO team (name) VALUES ('async') RETURNING id")
    ).fetchone()
    assert row is not None
    await status.lock_status_inputs(aconn, teams=[str(row[0])])
    await aconn.rollback()
