"""Attack class: a reader makes statusdb_page_view_at expensive (issue 26, item 1).

On a public page with 2,000 scheduled windows x 30 components, page_view_at(now(), 366 days,
200 windows) scanned, for each listed window, every version of the page (2.4-2.6 s). Its cost is
bounded like every other reader function's: the plan reads the page's versions valid at the
instant through the row_history indexes, the windows' component links of the listed windows only,
and never scans row_history; the rows it touches are bounded (asserted on the plan, not timed).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import pages, teams

Conn = psycopg.Connection[TupleRow]

WINDOWS = 2000
COMPONENTS = 30
LIMIT = 200


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


@pytest.mark.slow
def test_page_view_at_is_bounded_on_a_page_with_many_windows(dsn: str, reader_login: str) -> None:
    """The reader calls page_view_at on a page with 2,000 windows x 30 components: the plan uses
    the row_history indexes, no sequential scan of it, and touches a bounded number of rows."""
    slug = f"big-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as owner:
        team = teams.create(owner, name="Big")
        page = pages.create(
            owner, team_id=team.id, name="Big", slug=slug, created_by_id="u", is_public=True
        ).page
        owner.execute(
            "INSERT INTO status_page_component (status_page_id, name, display_order)"
            " SELECT %s, 'C' || g, g FROM generate_series(1, %s) AS g",
            (page.id, COMPONENTS),
        )
        owner.execute(
            "INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,"
            "                                created_by_id)"
            " SELECT %s, 'W' || g, now() + g * interval '3 hours',"
            "        now() + g * interval '3 hours' + interval '1 hour', 'u'"
            " FROM generate_series(1, %s) AS g",
            (page.id, WINDOWS),
        )
        owner.execute(
            "INSERT INTO maintenance_window_component (maintenance_window_id, component_id)"
            " SELECT w.id, c.id FROM maintenance_window w, status_page_component c"
            " WHERE w.status_page_id = %(p)s AND c.status_page_id = %(p)s",
            {"p": page.id},
        )
        owner.commit()
        owner.execute("ANALYZE row_history")
        owner.commit()

    with psycopg.connect(dsn, autocommit=True) as reader:
        plans: list[dict[str, Any]] = []

        def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
            text = diagnostic.message_primary or ""
            start = text.find("{")
            if "Query Text" in text and start >= 0:
                plans.append(json.loads(text[start:]))

        reader.add_notice_handler(keep)
        # auto_explain (loaded by the superuser) logs the function's inner statements as
        # notices; then the session becomes the reader login.
        reader.execute("LOAD 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
            ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_timing", "off"),
            ("auto_explain.log_format", "json"),
            ("auto_explain.log_level", "notice"),
        ):
            reader.execute(f"SET {setting} = '{value}'".encode())
        reader.execute(f'SET ROLE "{reader_login}"'.encode())
        call = (
            "SELECT id, jsonb_array_length(maintenance::jsonb) FROM statusdb_page_view_at("
            "%s, NULL, now(), '366 days', %s)"
        )
        started = time.perf_counter()
        row = reader.execute(call, (slug, LIMIT)).fetchone()
        elapsed = time.perf_counter() - started
        print(f"page_view_at with auto_explain: {elapsed * 1000:.0f} ms")
        assert row is not None
        assert row[1] == LIMIT
        reader.execute("RESET ROLE")
        reader.execute("SET auto_explain.log_min_duration = -1")
        reader.execute(f'SET ROLE "{reader_login}"'.encode())
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            reader.execute(call, (slug, LIMIT)).fetchone()
            timings.append(time.perf_counter() - started)
        print("page_view_at:", ", ".join(f"{t * 1000:.0f} ms" for t in timings))

    inner = [p for p in plans if "WITH page" in p["Query Text"]]
    assert inner, [p["Query Text"][:200] for p in plans]
    nodes = _nodes(inner[-1]["Plan"])
    seq_scans = [n for n in nodes if n["Node Type"] == "Seq Scan"]
    assert not [n for n in seq_scans if n.get("Relation Name") == "row_history"], seq_scans
    touched = sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 1) for n in nodes)
    # The windows listed (200) x their components (30), the page's scheduled windows (2,000) and
    # components, and each node passing them on: a few tens of thousands, never windows x versions.
    print(f"rows passed through the plan: {touched}")
    assert touched <= 100_000, touched
