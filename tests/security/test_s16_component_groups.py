"""Attack class: component groups (migration 0020) bent by plain-SQL writers.

Every role that can connect is an adversary: statusdb_app in psql, a DBA, a listener. The group
tree, its derived status, its same-page rules and its followers must hold for them as they do
through statusdb.groups.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, groups, subscribers, teams, tenancy

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def world(conn: Conn) -> dict[str, str]:
    """Team A's page with a group tree and a member; team B's page with a group. Committed."""
    a, b = teams.create(conn, name="A"), teams.create(conn, name="B")
    mine = new_page(conn, a.id, slug="mine")
    theirs = new_page(conn, b.id, slug="theirs")
    top = groups.create(conn, mine.id, name="Top")
    sub = groups.create(conn, mine.id, name="Sub", parent_id=top.id)
    member = components.create(conn, mine.id, name="API")
    groups.assign(conn, member.id, sub.id)
    foreign = groups.create(conn, theirs.id, name="Foreign")
    conn.commit()
    return {
        "team_a": a.id,
        "team_b": b.id,
        "mine": mine.id,
        "theirs": theirs.id,
        "top": top.id,
        "sub": sub.id,
        "member": member.id,
        "foreign": foreign.id,
    }


def test_app_and_owner_cannot_write_a_group_status(conn: Conn, app: Conn) -> None:
    """statusdb_app (or a DBA) sets a group's current_status by hand, so that the page shows a
    status no member has and the group log misses the change."""
    ids = world(conn)
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute(
            "UPDATE component_group SET current_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (ids["top"],),
        )
    app.rollback()
    with pytest.raises(pg_errors.CheckViolation) as refused:
        conn.execute(
            "UPDATE component_group SET current_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (ids["top"],),
        )
    assert refused.value.diag.constraint_name == "component_group_current_status_derived"
    conn.rollback()


def test_groups_and_members_stay_on_their_page(conn: Conn, app: Conn) -> None:
    """statusdb_app moves a group (with its subgroups and members) to another team's page, or
    puts its component in, or under, another page's group, so that the other page shows it."""
    ids = world(conn)
    attacks = [
        (
            "UPDATE component_group SET status_page_id = %s WHERE id = %s",
            (ids["theirs"], ids["top"]),
        ),
        (
            "UPDATE component_group SET status_page_id = %s WHERE id = %s",
            (ids["theirs"], ids["sub"]),
        ),
        (
            "UPDATE status_page_component SET group_id = %s WHERE id = %s",
            (ids["foreign"], ids["member"]),
        ),
        ("UPDATE component_group SET parent_id = %s WHERE id = %s", (ids["foreign"], ids["top"])),
        (
            "INSERT INTO component_group (status_page_id, parent_id, name) VALUES (%s, %s, 'x')",
            (ids["mine"], ids["foreign"]),
        ),
    ]
    for statement, params in attacks:
        with pytest.raises(psycopg.errors.IntegrityError):
            app.execute(statement, params)
        app.rollback()


def test_concurrent_moves_cannot_close_a_cycle(conn: Conn, dsn: str) -> None:
    """Two writers each hang one group under the other at the same time; each trigger, seeing
    the other's uncommitted move, finds no cycle, and both commit a loop."""
    ids = world(conn)
    other = groups.create(conn, ids["mine"], name="Other")
    conn.commit()
    first = psycopg.connect(dsn)
    second = psycopg.connect(dsn)
    try:
        first.execute(
            "UPDATE component_group SET parent_id = %s WHERE id = %s", (other.id, ids["top"])
        )
        outcome: list[BaseException | None] = []

        def hang_other_under_top() -> None:
            try:
                second.execute(
                    "UPDATE component_group SET parent_id = %s WHERE id = %s",
                    (ids["top"], other.id),
                )
                second.commit()
                outcome.append(None)
            except psycopg.Error as exc:
                second.rollback()
                outcome.append(exc)

        thread = threading.Thread(target=hang_other_under_top)
        thread.start()
        thread.join(timeout=1.0)  # it waits for the first writer's walk lock
        first.commit()
        thread.join()
    finally:
        first.close()
        second.close()
    assert len(outcome) == 1
    assert isinstance(outcome[0], psycopg.errors.IntegrityError)
    loops = conn.execute(
        """WITH RECURSIVE up (id, parent_id, steps) AS (
               SELECT id, parent_id, 0 FROM component_group
               UNION ALL
               SELECT up.id, g.parent_id, up.steps + 1
               FROM up JOIN component_group g ON g.id = up.parent_id
               WHERE up.steps < 10)
           SELECT count(*) FROM up WHERE parent_id = id"""
    ).fetchone()
    assert loops == (0,)


def test_subscribers_cannot_follow_another_pages_group(conn: Conn, app: Conn) -> None:
    """statusdb_app makes a subscriber of its page follow another team's group, to be told of
    that private page's changes."""
    ids = world(conn)
    sub = subscribers.subscribe(
        conn, ids["mine"], channel="WEBHOOK", destination="https://h.example.com/x"
    )
    conn.commit()
    for statement in (
        "UPDATE status_subscriber SET group_ids = ARRAY[%s] WHERE id = %s",
        "UPDATE status_subscriber SET group_ids = ARRAY[%s, NULL] WHERE id = %s",
    ):
        with pytest.raises(psycopg.errors.IntegrityError):
            app.execute(statement, (ids["foreign"], sub.subscriber.id))
        app.rollback()


def test_a_team_scope_sees_no_other_teams_groups(conn: Conn, app: Conn) -> None:
    """A session scoped to team A reads team B's groups, their statuses and their log."""
    ids = world(conn)
    components.set_status(conn, ids["member"], "MAJOR_OUTAGE")
    conn.commit()
    tenancy.set_team(app, ids["team_b"])
    assert groups.list_for_page(app, ids["mine"]) == []
    assert groups.changes_for_group(app, ids["top"]) == []
    tenancy.set_team(app, ids["team_a"])
    assert [g.current_status for g in groups.list_for_page(app, ids["mine"])] == [
        "MAJOR_OUTAGE",
        "MAJOR_OUTAGE",
    ]


def test_group_announcements_carry_only_a_seq(conn: Conn, dsn: str, reader_login: str) -> None:
    """A role without privileges LISTENs on the status channel to learn which private group
    changed to what."""
    ids = world(conn)
    with psycopg.connect(make_conninfo(dsn, user=reader_login), autocommit=True) as listener:
        listener.execute("LISTEN statusdb_status_change")
        components.set_status(conn, ids["member"], "PARTIAL_OUTAGE")
        conn.commit()
        payloads = [n.payload for n in listener.notifies(timeout=2.0, stop_after=3)]
    # The component's change and the two groups' changes: numbers only.
    assert len(payloads) == 3
    assert all(p.isdigit() for p in payloads)
    seqs = {int(p) for p in payloads}
    logged = conn.execute(
        "SELECT count(*) FROM component_group_status_change WHERE seq = ANY (%s)", (list(seqs),)
    ).fetchone()
    assert logged == (2,)
