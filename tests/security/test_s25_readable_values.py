"""One stored value must not make a page unreadable (issue 26 item 2, issue 28 item 4).

The database accepted timestamps Python cannot represent ('infinity', the year 20000) and
timeline entries whose timestamp is not a timestamp ('yesterday'): every page view of the page
then raised a ValueError. Now every timestamp column refuses them (<table>_<column>_range_check),
the timeline's entries are checked by an immutable function, and a value that got in anyway
(before the migration, say) surfaces as statusdb's DataCorrupt, never as a ValueError.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import errors, status_incidents, teams, views

Conn = psycopg.Connection[TupleRow]


def _page(conn: Conn) -> tuple[str, str]:
    team = teams.create(conn, name=f"T-{uuid.uuid4().hex[:8]}")
    slug = f"p-{uuid.uuid4().hex[:8]}"
    return new_page(conn, team.id, slug=slug).id, slug


@pytest.mark.parametrize(
    "value", ["infinity", "-infinity", "20000-01-01 00:00+00", "0001-01-01 00:00+00"]
)
def test_status_incident_timestamps_outside_python_are_refused(
    dsn: str, app_login: str, value: str
) -> None:
    with psycopg.connect(dsn) as owner:
        page_id, _slug = _page(owner)
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as app:
        with pytest.raises(pg_errors.CheckViolation) as refused:
            app.execute(
                "INSERT INTO status_incident (status_page_id, title, severity, created_at)"
                " VALUES (%s, 't', 'MINOR', %s::timestamptz)",
                (page_id, value),
            )
        assert refused.value.diag.constraint_name == "status_incident_created_at_range_check"


@pytest.mark.parametrize(
    ("table", "column", "statement"),
    [
        (
            "maintenance_window",
            "end_time",
            "UPDATE maintenance_window SET end_time = 'infinity' WHERE status_page_id = %(page)s",
        ),
        (
            "status_page",
            "created_at",
            "UPDATE status_page SET created_at = '20000-01-01' WHERE id = %(page)s",
        ),
        (
            "component_group",
            "updated_at",
            "INSERT INTO component_group (status_page_id, name, updated_at)"
            " VALUES (%(page)s, 'g', 'infinity')",
        ),
    ],
)
def test_view_timestamps_outside_python_are_refused(
    conn: Conn, table: str, column: str, statement: str
) -> None:
    page_id, _slug = _page(conn)
    conn.execute(
        "INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,"
        " created_by_id) VALUES (%s, 'w', now(), now() + interval '1 hour', 'u')",
        (page_id,),
    )
    with pytest.raises(pg_errors.CheckViolation) as refused:
        conn.execute(statement, {"page": page_id})
    assert refused.value.diag.constraint_name == f"{table}_{column}_range_check"


@pytest.mark.parametrize(
    "entry",
    [
        {"timestamp": "yesterday", "status": "INVESTIGATING", "message": "m"},
        {"timestamp": "2026-02-30T10:00:00Z", "status": "INVESTIGATING", "message": "m"},
        {"timestamp": "0000-01-01T10:00:00Z", "status": "INVESTIGATING", "message": "m"},
        {"timestamp": "2026-01-01T10:00:00Z", "status": "INVESTIGATING", "message": "x" * 10_001},
    ],
)
def test_timeline_entries_readers_cannot_read_are_refused(
    conn: Conn, entry: dict[str, str]
) -> None:
    page_id, _slug = _page(conn)
    with pytest.raises(pg_errors.CheckViolation) as refused:
        conn.execute(
            "INSERT INTO status_incident (status_page_id, title, severity, updates)"
            " VALUES (%s, 't', 'MINOR', jsonb_build_array(%s::jsonb))",
            (page_id, psycopg.types.json.Jsonb(entry)),
        )
    assert refused.value.diag.constraint_name == "status_incident_updates_readable_check"


def test_timeline_forms_python_reads_are_accepted(conn: Conn) -> None:
    page_id, slug = _page(conn)
    stamps = ["2026-01-31T10:00:00.123456Z", "2024-02-29 10:00:00", "2026-01-31T10:00:00+05:30"]
    incident = status_incidents.create(conn, page_id, title="t", message="m", severity="MINOR")
    conn.execute(
        "UPDATE status_incident SET updates = (SELECT jsonb_agg(jsonb_build_object("
        "'timestamp', s, 'status', 'MONITORING', 'message', 'm')) FROM unnest(%s::text[]) s)"
        " WHERE id = %s",
        (stamps, incident.id),
    )
    view = views.page_view(conn, slug)
    assert view is not None
    assert [len(i.updates) for i in view.active_incidents] == [3]


@pytest.mark.parametrize(
    ("constraint", "column", "value"),
    [
        ("status_incident_created_at_range_check", "created_at", "infinity"),
        ("status_incident_created_at_range_check", "created_at", "20000-01-01 00:00+00"),
        (
            "status_incident_updates_readable_check",
            "updates",
            '[{"timestamp": "yesterday", "status": "INVESTIGATING", "message": "m"}]',
        ),
    ],
)
def test_a_value_that_got_in_anyway_is_data_corrupt_not_a_value_error(
    conn: Conn, constraint: str, column: str, value: str
) -> None:
    """Stored before the checks existed (the constraint is dropped here to simulate it): the
    page view raises DataCorrupt (a StatusdbError), not ValueError or InvalidInput."""
    page_id, slug = _page(conn)
    conn.execute(
        sql.SQL("ALTER TABLE status_incident DROP CONSTRAINT IF EXISTS {}").format(
            sql.Identifier(constraint)
        )
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO status_incident (status_page_id, title, severity, {})"
            " VALUES (%s, 't', 'MINOR', %s)"
        ).format(sql.Identifier(column)),
        (page_id, value),
    )
    with pytest.raises(errors.DataCorrupt):
        views.page_view(conn, slug)


def test_a_timestamp_python_cannot_load_is_data_corrupt(conn: Conn) -> None:
    """psycopg's own loader refuses it: DataCorrupt, not InvalidInput for input never given."""
    page_id, _slug = _page(conn)
    conn.execute(
        "ALTER TABLE status_incident DROP CONSTRAINT status_incident_created_at_range_check"
    )
    row = conn.execute(
        "INSERT INTO status_incident (status_page_id, title, severity, created_at)"
        " VALUES (%s, 't', 'MINOR', 'infinity') RETURNING id",
        (page_id,),
    ).fetchone()
    assert row is not None
    with pytest.raises(errors.DataCorrupt):
        status_incidents.get(conn, str(row[0]))
