"""Migration 0037: an incident open pays less above its write floor, with the same results.

The derivation's own component writes skip the derive trigger (WHEN clause); the status rank
functions inline; row history compares a component's columns (the list must follow the
table); the status change log has no page key of its own, and a page's deletion still takes
its log with it.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, incidents, pages, teams

Conn = psycopg.Connection[TupleRow]

#: keep_row_history's status_only: the component columns whose changes record no version.
STATUS_ONLY = {"current_status", "status_updated_at", "updated_at", "manual_status"}


def _page_of(conn: Conn, slug: str, count: int) -> tuple[str, str, list[str]]:
    team = teams.create(conn, name=slug.title())
    page = new_page(conn, team.id, slug=slug)
    ids = [components.create(conn, page.id, name=f"C{k}", team_id=team.id).id for k in range(count)]
    return team.id, page.id, ids


def _calls(conn: Conn, function: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = %s",
        (function,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_derivations_writes_skip_the_derive_trigger(conn: Conn) -> None:
    """Opening an incident that moves 10 components calls the row trigger's function for none
    of them (before 0037: once per component, only to return at its first test)."""
    team_id, _, ids = _page_of(conn, "derive-skips", 10)
    conn.execute("SET LOCAL track_functions = 'all'")
    before = _calls(conn, "statusdb_status_page_component_derive")
    incident = incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    assert _calls(conn, "statusdb_status_page_component_derive") == before
    moved = conn.execute(
        "SELECT count(*) FROM status_page_component WHERE id = ANY(%s)"
        " AND current_status = 'MAJOR_OUTAGE'",
        (ids,),
    ).fetchone()
    assert moved == (10,)
    incidents.resolve(conn, incident.id)
    assert _calls(conn, "statusdb_status_page_component_derive") == before


def test_the_derive_trigger_still_guards_direct_writes(conn: Conn) -> None:
    """A client's own UPDATE still runs the trigger: current_status cannot be set directly, a
    manual status on a component without a team is derived, and a new component is derived."""
    team = teams.create(conn, name="Guarded")
    page = new_page(conn, team.id, slug="derive-guards")
    hand = components.create(conn, page.id, name="Hand")
    conn.execute("SAVEPOINT direct")
    with pytest.raises(psycopg.errors.CheckViolation, match="derived"):
        conn.execute(
            "UPDATE status_page_component SET current_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (hand.id,),
        )
    conn.execute("ROLLBACK TO SAVEPOINT direct")
    conn.execute(
        "UPDATE status_page_component SET manual_status = 'PARTIAL_OUTAGE' WHERE id = %s",
        (hand.id,),
    )
    row = conn.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (hand.id,)
    ).fetchone()
    assert row == ("PARTIAL_OUTAGE",)
    incidents.create(conn, team.id, title="Down", priority="HIGH")
    followed = components.create(conn, page.id, name="Followed", team_id=team.id)
    row = conn.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (followed.id,)
    ).fetchone()
    assert row == ("PARTIAL_OUTAGE",)


@pytest.mark.parametrize(
    ("call", "inlined"),
    [
        ("statusdb_status_rank(c.current_status)", "CASE current_status WHEN 'MAJOR_OUTAGE'"),
        ("statusdb_priority_status(c.current_status)", "CASE current_status WHEN 'CRITICAL'"),
    ],
)
def test_status_functions_are_inlined(conn: Conn, call: str, inlined: str) -> None:
    """The planner replaces the call by its CASE (STRICT kept it a function call), and NULL
    still gives NULL."""
    plan = "\n".join(
        row[0]
        for row in conn.execute(
            f"EXPLAIN (VERBOSE, COSTS OFF) SELECT {call} FROM status_page_component c"
        )
    )
    assert inlined in plan, plan
    assert call.split("(")[0] not in plan, plan
    null_call = call.replace("c.current_status", "v.x")
    row = conn.execute(f"SELECT {null_call} FROM (VALUES (NULL::text)) AS v (x)").fetchone()
    assert row == (None,)


def test_history_compares_every_component_column(conn: Conn) -> None:
    """keep_row_history's column-by-column check names every column of status_page_component
    but the status ones: a column added later must be added there too (or its changes would
    record no version)."""
    columns = {
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'status_page_component'::regclass"
            " AND attnum > 0 AND NOT attisdropped"
        )
    }
    row = conn.execute(
        "SELECT pg_get_functiondef('statusdb_keep_row_history()'::regprocedure)"
    ).fetchone()
    assert row is not None
    check = re.search(r"OR \((n\..*?)\)\s+IS DISTINCT FROM", str(row[0]), re.S)
    assert check is not None
    compared = {name.strip().removeprefix("n.") for name in check.group(1).split(",")}
    assert compared == columns - STATUS_ONLY - {"id"}


def test_a_changed_component_column_still_records_a_version(conn: Conn) -> None:
    """Changing a component's description records it in its version; a status change alone
    records nothing."""
    team_id, _, ids = _page_of(conn, "history-columns", 2)

    def versions() -> list[tuple[str, str | None]]:
        return [
            (str(row[0]), row[1])
            for row in conn.execute(
                "SELECT row_id, row_data ->> 'description' FROM row_history"
                " WHERE table_name = 'status_page_component' AND row_id = ANY(%s)"
                " ORDER BY row_id, valid_from",
                (ids,),
            )
        ]

    before = versions()
    incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    assert versions() == before
    conn.execute("UPDATE status_page_component SET description = 'new' WHERE id = %s", (ids[0],))
    assert (ids[0], "new") in versions()
    assert (ids[1], "new") not in versions()


def test_deleting_a_page_still_deletes_its_status_log(conn: Conn) -> None:
    """Without its own page key, the log follows the component's: deleting the page deletes
    its components and so their status changes."""
    team_id, page_id, ids = _page_of(conn, "log-cascade", 3)
    incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    row = conn.execute(
        "SELECT count(*) FROM status_change WHERE status_page_id = %s", (page_id,)
    ).fetchone()
    assert row == (3,)
    keys = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'status_change'::regclass"
        " AND contype = 'f' ORDER BY 1"
    ).fetchall()
    assert ("status_change_status_page_id_fkey",) not in keys
    pages.delete(conn, page_id)
    row = conn.execute(
        "SELECT count(*) FROM status_change WHERE status_page_id = %s OR component_id = ANY(%s)",
        (page_id, ids),
    ).fetchone()
    assert row == (0,)


def test_the_cost_table_lists_every_switch() -> None:
    """bench's trigger-cost table: one line per switch, those the open needs without a cost."""
    from bench.trigger_costs import cost_table

    result = {
        "notes": {
            "costs": [
                {
                    "switched_off": "t.a",
                    "kind": "trigger",
                    "p50_on_us": 4000,
                    "p50_off_us": 3000,
                    "cost_us": 1000,
                    "share": 0.25,
                },
                {
                    "switched_off": "t.b",
                    "kind": "trigger",
                    "p50_on_us": 4000,
                    "p50_off_us": None,
                    "cost_us": None,
                    "share": None,
                    "note": "the open or its resolve fails without it",
                },
            ]
        }
    }
    lines = cost_table(result).splitlines()
    assert lines[2] == "| t.a | trigger | 4000 | 3000 | 1000 | 25% |"
    assert lines[3].startswith("| t.b | trigger | 4000 |")
    assert "fails without it" in lines[3]
