"""pages.create with components of several teams: one statement, its status keys in slot order.

The INSERT's BEFORE ROW derivation trigger takes each new component's status key as the row is
inserted, so a statement takes its keys in the order of its rows. Two creates whose rows come
in opposite key orders could deadlock in a single statement each (CONTRIBUTING.md, "Lock
order", step 4: keys ascending). `page_create` inserts its components in ascending slot order
(ids made first, so that a component without a team, keyed by its own id, sorts too).

The interleaving, made deterministic with a third transaction holding team X's key:
1. holder: takes X's key (the lock-ahead, as a transaction opening an incident of X would);
2. second: pages.create with components of teams B, X, A: takes B's key, waits for X;
3. first: pages.create with components of A, B: takes A's key (when its rows go in the given
   order), waits for B;
4. holder commits: second takes X, then wants A, which first holds while it waits for B.
In slot order instead (A before B), second takes A before it waits for X (or waits for X
first), and first queues behind it: no cycle.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from test_derivation_lock_order import Conn, blocked_or_done, drift

from statusdb import pages, teams
from statusdb.pages import NewComponent


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def _slot(owner: Conn, team_id: str) -> int:
    row = owner.execute(
        "SELECT 1 + (statusdb_status_lock_key(%s, NULL) & 4095)", (team_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _teams(owner: Conn, count: int) -> list[str]:
    """`count` new teams with distinct status-key slots, in ascending slot order."""
    made: dict[int, str] = {}
    while len(made) < count:
        team = teams.create(owner, name=f"team {uuid.uuid4().hex[:8]}").id
        made.setdefault(_slot(owner, team), team)
    return [made[slot] for slot in sorted(made)]


def _create(connection: Conn, team_id: str, slug: str, component_teams: list[str | None]) -> None:
    pages.create(
        connection,
        team_id=team_id,
        name=slug,
        slug=slug,
        created_by_id="u",
        is_public=True,
        components=[NewComponent(name=f"c{i}", team_id=t) for i, t in enumerate(component_teams)],
    )


def test_two_creates_with_teams_in_opposite_orders_do_not_deadlock(dsn: str, owner: Conn) -> None:
    team_a, team_b = _teams(owner, 2)  # slot(A) < slot(B)
    team_x = _teams(owner, 1)[0]
    while _slot(owner, team_x) in (_slot(owner, team_a), _slot(owner, team_b)):
        team_x = _teams(owner, 1)[0]
    owner.execute(
        "INSERT INTO status_lock (slot) SELECT generate_series(0, 4096) ON CONFLICT DO NOTHING"
    )
    suffix = uuid.uuid4().hex[:8]
    failures: list[BaseException] = []
    with (
        psycopg.connect(dsn) as holder,
        psycopg.connect(dsn) as first,
        psycopg.connect(dsn) as second,
    ):
        holder.execute("SELECT statusdb_lock_status_inputs('{}', %s, '{}')", ([team_x],))

        def run(connection: Conn, slug: str, component_teams: list[str | None]) -> None:
            try:
                _create(connection, team_a, slug, component_teams)
                connection.commit()
            except BaseException as exc:  # reported below
                failures.append(exc)
                connection.rollback()

        second_thread = threading.Thread(
            target=run, args=(second, f"second-{suffix}", [team_b, team_x, team_a])
        )
        second_thread.start()
        blocked_or_done(owner, second.info.backend_pid, second_thread)
        first_thread = threading.Thread(
            target=run, args=(first, f"first-{suffix}", [team_a, team_b])
        )
        first_thread.start()
        blocked_or_done(owner, first.info.backend_pid, first_thread)
        holder.commit()
        for thread in (first_thread, second_thread):
            thread.join(30)
            assert not thread.is_alive()
    # Before the fix: one of the two creates failed with a deadlock (Retryable, 40P01).
    assert failures == []
    for slug in (f"first-{suffix}", f"second-{suffix}"):
        assert pages.get_by_slug(owner, slug).name == slug
    assert drift(owner) == []


def test_components_keep_their_given_display_order(conn: Conn) -> None:
    """Inserted in slot order, shown in the order given (display_order from the position)."""
    owner_team = teams.create(conn, name=f"owner {uuid.uuid4().hex[:8]}").id
    member_teams = [teams.create(conn, name=f"t{i} {uuid.uuid4().hex[:8]}").id for i in range(6)]
    slug = f"order-{uuid.uuid4().hex[:8]}"
    component_teams: list[str | None] = [*member_teams, None, None]
    _create(conn, owner_team, slug, component_teams)
    page = pages.get_by_slug(conn, slug)
    rows = conn.execute(
        "SELECT name, team_id FROM status_page_component WHERE status_page_id = %s"
        " ORDER BY display_order, id",
        (page.id,),
    ).fetchall()
    assert rows == [(f"c{i}", t) for i, t in enumerate(component_teams)]
