"""Migration 0049: the status log's component key is checked and cascaded once per statement.

`status_change_component_id_fkey` (one RI check per logged change: 50 per open of the bench) is
gone; `status_change_check_component_*` refuse a log row naming a missing component (23503, as
the key did) and `status_page_component_delete_changes` deletes a deleted component's log rows
(as ON DELETE CASCADE did). The application role still writes nothing into the log. The
functions the open runs at commit plan once per session (generic plans), and the snapshot's json
is compressed with lz4.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from statusdb import components, incidents, teams

Conn = psycopg.Connection[TupleRow]


def _team_page(conn: Conn, count: int) -> tuple[str, str, list[str]]:
    suffix = uuid.uuid4().hex[:8]
    team = teams.create(conn, name=f"Log key {suffix}")
    page = new_page(conn, team.id, slug=f"log-key-{suffix}")
    ids = [components.create(conn, page.id, name=f"C{k}", team_id=team.id).id for k in range(count)]
    return team.id, page.id, ids


def _changes(conn: Conn, ids: list[str]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM status_change WHERE component_id = ANY(%s)", (ids,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _insert_change(conn: Conn, page_id: str, component_id: str) -> None:
    conn.execute(
        "INSERT INTO status_change (status_page_id, component_id, previous_status, new_status,"
        " cause) VALUES (%s, %s, 'OPERATIONAL', 'MAJOR_OUTAGE', 'MANUAL')",
        (page_id, component_id),
    )


def test_the_log_has_no_per_row_key_check(conn: Conn) -> None:
    """No RI trigger fires per logged change (before 0049: status_change_component_id_fkey's
    check, one query per row); the check is one statement trigger."""
    rows = conn.execute(
        "SELECT t.tgname, t.tgisinternal, t.tgtype & 1 = 1 AS per_row FROM pg_trigger t"
        " WHERE t.tgrelid = 'status_change'::regclass AND t.tgtype & 4 = 4"  # INSERT
    ).fetchall()
    assert rows == [("status_change_check_component_insert", False, False)]
    keys = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'status_change'::regclass"
        " AND contype = 'f'"
    ).fetchall()
    assert keys == []


def test_a_change_naming_a_missing_component_is_refused(conn: Conn) -> None:
    """Even the owner cannot log a change of a component that does not exist (23503)."""
    _, page_id, ids = _team_page(conn, 1)
    _insert_change(conn, page_id, ids[0])  # an existing component: fine
    refused = r"does not exist|foreign key"  # 0049's message | the key's, before
    with pytest.raises(pg_errors.ForeignKeyViolation, match=refused), conn.transaction():
        _insert_change(conn, page_id, "no-such-component")
    row = conn.execute("SELECT id FROM status_change WHERE component_id = %s", (ids[0],)).fetchone()
    assert row is not None
    with pytest.raises(pg_errors.ForeignKeyViolation, match=refused), conn.transaction():
        conn.execute(
            "UPDATE status_change SET component_id = 'no-such-component' WHERE id = %s",
            (row[0],),
        )


def test_the_app_role_writes_nothing_into_the_log(conn: Conn) -> None:
    """A plain-SQL INSERT of the application role is refused whatever component it names
    (another team's, a missing one), and it cannot move a logged change to another component."""
    _, page_id, ids = _team_page(conn, 1)
    _insert_change(conn, page_id, ids[0])
    conn.execute("SET LOCAL ROLE statusdb_app")
    for component_id in (ids[0], "no-such-component"):
        with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
            _insert_change(conn, page_id, component_id)
    with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
        conn.execute(
            "UPDATE status_change SET component_id = 'x' WHERE component_id = %s", (ids[0],)
        )
    conn.execute("RESET ROLE")


def test_deleting_components_and_pages_deletes_their_changes(conn: Conn) -> None:
    """The cascade is kept: deleting a component deletes its log rows (the others stay), and
    deleting a page deletes the log rows of all its components."""
    team_id, page_id, ids = _team_page(conn, 3)
    incident = incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    incidents.resolve(conn, incident.id)
    assert _changes(conn, ids) == 6
    components.delete(conn, ids[0])
    assert _changes(conn, ids[:1]) == 0
    assert _changes(conn, ids[1:]) == 4
    conn.execute("DELETE FROM status_page WHERE id = %s", (page_id,))
    assert _changes(conn, ids) == 0


def test_the_commit_path_plans_once(conn: Conn) -> None:
    """The snapshot refresh and the incident trigger run with generic plans (before 0049 PL/pgSQL
    re-planned three of their statements on every call), and the refresh reaches the snapshot rows
    by key in its generic plan."""
    rows = conn.execute(
        "SELECT p.proname FROM pg_proc p"
        " WHERE p.proname IN ('statusdb_page_snapshot_refresh', 'statusdb_incident_refresh_status')"
        "   AND 'plan_cache_mode=force_generic_plan' = ANY (p.proconfig) ORDER BY 1"
    ).fetchall()
    assert rows == [("statusdb_incident_refresh_status",), ("statusdb_page_snapshot_refresh",)]
    body = conn.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = 'statusdb_page_snapshot_refresh'"
    ).fetchone()
    assert body is not None
    assert "s.page_id = ANY (page_ids)" in body[0]


def test_the_snapshot_json_is_lz4(conn: Conn) -> None:
    """A page rendered after 0049 stores its components list lz4-compressed."""
    team_id, page_id, _ = _team_page(conn, 60)
    incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the render at commit, now
    row = conn.execute(
        "SELECT pg_column_compression(components) FROM status_page_snapshot WHERE page_id = %s",
        (page_id,),
    ).fetchone()
    assert row == ("lz4",)
