"""Migration 0044: the group roll-up pays less, with the same results.

The group status log has no page key of its own (its group key already cascades from the page,
as 0037 argued for the component log): a group's status changes are still logged for each
change, and deleting the page still takes the group log with it.
"""

from __future__ import annotations

import psycopg
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, groups, incidents, pages, teams

Conn = psycopg.Connection[TupleRow]


def test_the_group_log_has_no_page_key_and_follows_its_groups(conn: Conn) -> None:
    team = teams.create(conn, name="Group log cascade")
    page = new_page(conn, team.id, slug="group-log-cascade")
    ids = [components.create(conn, page.id, name=f"C{k}", team_id=team.id).id for k in range(4)]
    homes = [groups.create(conn, page.id, name=f"G{k}").id for k in range(2)]
    for k, component_id in enumerate(ids):
        groups.assign(conn, component_id, homes[k % 2])
    incident = incidents.create(conn, team.id, title="Down", priority="CRITICAL")
    incidents.resolve(conn, incident.id)
    logged = conn.execute(
        "SELECT group_id, previous_status, new_status FROM component_group_status_change"
        " WHERE status_page_id = %s ORDER BY seq",
        (page.id,),
    ).fetchall()
    assert sorted(logged[:2]) == sorted((g, "OPERATIONAL", "MAJOR_OUTAGE") for g in homes)
    assert sorted(logged[2:]) == sorted((g, "MAJOR_OUTAGE", "OPERATIONAL") for g in homes)
    keys = conn.execute(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'component_group_status_change'::regclass AND contype = 'f'"
        " ORDER BY 1"
    ).fetchall()
    assert keys == [("component_group_status_change_group_id_fkey",)]
    pages.delete(conn, page.id)
    row = conn.execute(
        "SELECT count(*) FROM component_group_status_change"
        " WHERE status_page_id = %s OR group_id = ANY(%s)",
        (page.id, homes),
    ).fetchone()
    assert row == (0,)
