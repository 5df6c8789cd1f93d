"""Migration 0048: an incident open pays less for its own writes, with the same results.

The derivation's component and group writes skip `statusdb_touch_updated_at` and
`statusdb_component_group_guard` (WHEN clauses) and still get `updated_at = now()`; a client's
own UPDATE still runs both; the snapshot's helper functions give the same values as before and
keep their plans (PL/pgSQL), and the renderer runs with a generic plan.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, groups, incidents, teams

Conn = psycopg.Connection[TupleRow]


def _calls(conn: Conn, function: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = %s",
        (function,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _grouped_page(conn: Conn, count: int) -> tuple[str, str, list[str], str]:
    """A team, its page with `count` components following it, all in one group."""
    suffix = uuid.uuid4().hex[:8]
    team = teams.create(conn, name=f"Own writes {suffix}")
    page = new_page(conn, team.id, slug=f"own-writes-{suffix}")
    ids = [components.create(conn, page.id, name=f"C{k}", team_id=team.id).id for k in range(count)]
    group = groups.create(conn, page.id, name="G")
    for component_id in ids:
        groups.assign(conn, component_id, group.id)
    return team.id, page.id, ids, group.id


def _backdate(conn: Conn, ids: list[str], group_id: str) -> None:
    """updated_at of the rows moved to the past, as if written by an earlier transaction (the
    owner may write it; the triggers set it back to now() for any other value)."""
    conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
    conn.execute(
        "UPDATE status_page_component SET updated_at = now() - interval '1 day' WHERE id = ANY(%s)",
        (ids,),
    )
    conn.execute(
        "UPDATE component_group SET updated_at = now() - interval '1 day' WHERE id = %s",
        (group_id,),
    )
    conn.execute("SET LOCAL session_replication_role = origin")


def test_the_derivations_writes_skip_touch_and_guard(conn: Conn) -> None:
    """Opening an incident that moves 10 grouped components calls the touch function for none
    of them and the group guard for no group (before 0048: once per component and once per
    group), and the moved rows still hold updated_at = now(). (The group's own touch still
    runs once: statusdb_refresh_groups leaves updated_at to the trigger.)"""
    team_id, _, ids, group_id = _grouped_page(conn, 10)
    _backdate(conn, ids, group_id)
    conn.execute("SET LOCAL track_functions = 'all'")
    touched = _calls(conn, "statusdb_touch_updated_at")
    guarded = _calls(conn, "statusdb_component_group_guard")
    incident = incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    assert _calls(conn, "statusdb_touch_updated_at") - touched == 1  # the group
    assert _calls(conn, "statusdb_component_group_guard") - guarded == 0
    rows = conn.execute(
        "SELECT count(*) FILTER (WHERE current_status = 'MAJOR_OUTAGE' AND updated_at = now())"
        " FROM status_page_component WHERE id = ANY(%s)",
        (ids,),
    ).fetchone()
    assert rows == (10,)
    group = conn.execute(
        "SELECT current_status, updated_at = now() FROM component_group WHERE id = %s",
        (group_id,),
    ).fetchone()
    assert group == ("MAJOR_OUTAGE", True)
    incidents.resolve(conn, incident.id)
    assert _calls(conn, "statusdb_touch_updated_at") - touched == 2  # the group, twice
    assert _calls(conn, "statusdb_component_group_guard") - guarded == 0


def test_a_clients_update_is_still_touched(conn: Conn) -> None:
    """Whatever a client writes into updated_at (an old value, none), the row gets now()."""
    _, _, ids, group_id = _grouped_page(conn, 1)
    _backdate(conn, ids, group_id)
    conn.execute(
        "UPDATE status_page_component SET name = 'Renamed', updated_at = '2001-01-01T00:00Z'"
        " WHERE id = %s",
        (ids[0],),
    )
    conn.execute("UPDATE component_group SET name = 'Renamed' WHERE id = %s", (group_id,))
    rows = conn.execute(
        "SELECT (SELECT updated_at = now() FROM status_page_component WHERE id = %s),"
        "       (SELECT updated_at = now() FROM component_group WHERE id = %s)",
        (ids[0], group_id),
    ).fetchone()
    assert rows == (True, True)


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("current_status = 'MAJOR_OUTAGE'", "component_group_current_status_derived"),
        ("status_updated_at = now() - interval '1 hour'", "component_group_current_status_derived"),
        ("id = 'another-id'", "component_group_id_fixed"),
        ("status_page_id = %(other)s", "component_group_status_page_id_fixed"),
    ],
)
def test_the_group_guard_still_refuses_direct_writes(
    conn: Conn, assignment: str, constraint: str
) -> None:
    """A client's own UPDATE of a group still runs the guard (the WHEN clause lets it through)."""
    team_id, _, _, group_id = _grouped_page(conn, 1)
    other = new_page(conn, team_id, slug=f"own-writes-other-{uuid.uuid4().hex[:8]}")
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(
            f"UPDATE component_group SET {assignment} WHERE id = %(id)s",
            {"id": group_id, "other": other.id},
        )
    assert info.value.diag.constraint_name == constraint


def test_a_new_group_still_starts_operational(conn: Conn) -> None:
    """The INSERT trigger (split from the UPDATE one) still sets a new group's status."""
    _, page_id, _, _ = _grouped_page(conn, 1)
    row = conn.execute(
        "INSERT INTO component_group (status_page_id, name, current_status)"
        " VALUES (%s, 'Forced', 'MAJOR_OUTAGE') RETURNING current_status",
        (page_id,),
    ).fetchone()
    assert row == ("OPERATIONAL",)


def test_snapshot_helpers_keep_their_values(conn: Conn) -> None:
    """statusdb_slug_key and statusdb_scheduled_starts (now PL/pgSQL) compute what 0039's and
    0028's SQL bodies compute, NULLs included; the index on the slug key is still used."""
    row = conn.execute(
        "SELECT statusdb_slug_key('acme-ü') = sha256(convert_to('acme-ü', 'UTF8')),"
        "       statusdb_slug_key(NULL) IS NULL,"
        "       statusdb_scheduled_starts(ARRAY['2030-01-01Z', '2030-01-02Z', '2030-01-03Z']"
        "                                 ::timestamptz[], ARRAY[true, false, true]),"
        "       statusdb_scheduled_starts('{}', '{}'),"
        "       statusdb_scheduled_starts(NULL, NULL)"
    ).fetchone()
    assert row is not None
    assert row[0] is True
    assert row[1] is True
    assert [t.isoformat() for t in row[2]] == [
        "2030-01-01T00:00:00+00:00",
        "2030-01-03T00:00:00+00:00",
    ]
    assert row[3] == []
    assert row[4] == []
    mismatched = conn.execute(
        "SELECT count(*) FROM status_page_snapshot s"
        " WHERE s.scheduled_starts IS DISTINCT FROM"
        "       ARRAY(SELECT u.t FROM unnest(s.window_starts, s.window_scheduled)"
        "             WITH ORDINALITY AS u (t, f, n) WHERE u.f ORDER BY u.n)"
    ).fetchone()
    assert mismatched == (0,)
    conn.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "EXPLAIN (COSTS OFF) SELECT 1 FROM status_page_snapshot"
            " WHERE statusdb_slug_key(slug) = statusdb_slug_key('acme') AND is_public"
        )
    )
    assert "status_page_snapshot_public_slug_key_idx" in plan, plan


def test_hot_functions_keep_their_plans(conn: Conn) -> None:
    """What the open calls on every write is planned once per session: the renderer with a
    generic plan (that reaches the pages by key: test_index_use), the helpers in PL/pgSQL (a
    SQL function that cannot be inlined plans its body on every call)."""
    rows: dict[str, str] = dict(
        conn.execute(
            "SELECT p.proname,"
            "       l.lanname || ' ' || coalesce(p.proconfig::text, '')"
            " FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = ANY(%s)",
            (
                [
                    "statusdb_page_render",
                    "statusdb_page_snapshot_mark",
                    "statusdb_scheduled_starts",
                    "statusdb_slug_key",
                ],
            ),
        ).fetchall()
    )
    assert "plan_cache_mode=force_generic_plan" in rows["statusdb_page_render"]
    for name in ("statusdb_page_snapshot_mark", "statusdb_scheduled_starts", "statusdb_slug_key"):
        assert rows[name].startswith("plpgsql"), rows
