"""Attack class: the lock-ahead (0038) as a way to stall another team's writers.

`statusdb_lock_status_inputs` is SECURITY DEFINER and statusdb_app may call it: it takes the
status_lock slots of the windows, teams and components it is given and holds them to commit.
Before 0043 it ignored the session's team scope, so a session scoped to team A could name team
B's team, windows and components and hold their slots for as long as it kept its transaction
open: every writer of B (an incident opened, a window started, a link added) queues on them.
CONTRIBUTING rule 15: under a scope such a function keeps to the team, or refuses. 0043 refuses
(insufficient_privilege, 42501: statusdb's Unauthorized) any id outside the scope, or unknown,
before it takes any lock.

Seen failing before the fix: with migration 0043 removed (its rollback applied, i.e. main's
0038 body), the refusal tests fail with "DID NOT RAISE".
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from statusdb import components, status, teams
from statusdb.errors import InvalidInput, Unauthorized

Conn = psycopg.Connection[TupleRow]


class Teams:
    """Teams A and B, each with a page, a component and a maintenance window."""

    def __init__(self, conn: Conn) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.a = teams.create(conn, name=f"A {suffix}").id
        self.b = teams.create(conn, name=f"B {suffix}").id
        page_a = new_page(conn, self.a, slug=f"s41-a-{suffix}").id
        page_b = new_page(conn, self.b, slug=f"s41-b-{suffix}").id
        self.component_a = components.create(conn, page_a, name="api").id
        self.component_b = components.create(conn, page_b, name="api").id
        # A component on A's page that follows team B: A's session cannot see or write it.
        self.b_on_a_page = components.create(conn, page_a, name="db", team_id=self.b).id
        self.window_a = self._window(conn, page_a)
        self.window_b = self._window(conn, page_b)

    @staticmethod
    def _window(conn: Conn, page: str) -> str:
        row = conn.execute(
            """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                                               created_by_id)
               VALUES (%s, 'w', now() + interval '1 hour', now() + interval '2 hours', 'u')
               RETURNING id""",
            (page,),
        ).fetchone()
        assert row is not None
        return str(row[0])


def _as_team(conn: Conn, team: str | None) -> None:
    conn.execute("SET LOCAL ROLE statusdb_app")
    conn.execute("SELECT set_config('statusdb.team_id', %s, true)", (team or "",))


def _lock(conn: Conn, windows: list[str], team_ids: list[str], parts: list[str]) -> None:
    conn.execute(
        "SELECT statusdb_lock_status_inputs(%s::text[], %s::text[], %s::text[])",
        (windows, team_ids, parts),
    )


def _refused(conn: Conn, windows: list[str], team_ids: list[str], parts: list[str]) -> str:
    with pytest.raises(pg_errors.InsufficientPrivilege) as caught, conn.transaction():
        _lock(conn, windows, team_ids, parts)
    return str(caught.value)


def test_a_scoped_session_cannot_lock_another_teams_inputs(conn: Conn) -> None:
    world = Teams(conn)
    _as_team(conn, world.a)
    assert "team_ids" in _refused(conn, [], [world.b], [])
    assert "window_ids" in _refused(conn, [world.window_b], [], [])
    assert "component_ids" in _refused(conn, [], [], [world.component_b])
    # On its own page, but following team B (invisible to A's session).
    assert "component_ids" in _refused(conn, [], [], [world.b_on_a_page])
    # Mixed with its own ids: still refused, nothing taken.
    assert "team_ids" in _refused(conn, [world.window_a], [world.a, world.b], [])


def test_a_scoped_session_cannot_pick_slots_with_unknown_ids(conn: Conn) -> None:
    """A slot is a hash of the id: an id that names nothing could still land on another team's
    slot, so it is refused like another team's id."""
    world = Teams(conn)
    _as_team(conn, world.a)
    assert "window_ids" in _refused(conn, ["no-such-window"], [], [])
    assert "component_ids" in _refused(conn, [], [], ["no-such-component"])
    assert "team_ids" in _refused(conn, [], ["no-such-team"], [])


def test_a_scoped_session_locks_its_own_inputs(conn: Conn) -> None:
    world = Teams(conn)
    _as_team(conn, world.a)
    _lock(conn, [world.window_a], [world.a], [world.component_a])
    status.lock_status_inputs(
        conn, windows=[world.window_a], teams=[world.a], components=[world.component_a]
    )


def test_the_operation_translates_the_refusal(conn: Conn) -> None:
    world = Teams(conn)
    _as_team(conn, world.a)
    with pytest.raises(Unauthorized, match="team_ids"), conn.transaction():
        status.lock_status_inputs(conn, teams=[world.b])
    with pytest.raises(InvalidInput, match="at most 10000"):
        status.lock_status_inputs(conn, windows=[f"w{i}" for i in range(10_001)])


def test_an_unscoped_app_session_is_unchanged(conn: Conn) -> None:
    world = Teams(conn)
    _as_team(conn, None)
    _lock(conn, [world.window_b], [world.a, world.b], [world.component_b, world.b_on_a_page])
