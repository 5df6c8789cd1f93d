"""Every text and jsonb column a client can write is bounded in the database (issue 26 item 9).

A 1,000,000-character status message and timeline entry were accepted at the SQL door
(MESSAGE_MAX existed in Python only): the page view then carried 2 MB. The catalog is
enumerated: a text or jsonb column the app login may INSERT or UPDATE needs a CHECK constraint
bounding it (length, an enumeration, a pattern with a length, or a bounding function), or a
foreign key to a bounded column; deliberate exceptions are listed with their reason. The bounds
the Python wrapper checks are compared with the catalog's.
"""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from statusdb import (
    deliveries,
    errors,
    incident_templates,
    status_incidents,
    teams,
    translations,
)
from statusdb.domain import validate

Conn = psycopg.Connection[TupleRow]

#: Columns a client writes that need no bound of their own, and why.
EXCEPTIONS: dict[tuple[str, str], str] = {}

#: What a CHECK must say to bound a column (beyond an enumeration `= ANY (ARRAY[...])`).
_BOUNDING = re.compile(
    r"length\((\w+)\) <= \d+|= ANY \(ARRAY\[|statusdb_is_readable_timeline|"
    r"statusdb_is_status_update_list\(updates\) AND|octet_length\(\(payload\)::text\)"
)

_COLUMNS = """
SELECT c.relname, a.attname, a.attnum, c.oid,
       ARRAY(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
             WHERE k.conrelid = c.oid AND k.contype = 'c' AND a.attnum = ANY (k.conkey)),
       ARRAY(SELECT rc.relname || '.' || ra.attname
             FROM pg_constraint k
             JOIN pg_class rc ON rc.oid = k.confrelid
             JOIN pg_attribute ra ON ra.attrelid = k.confrelid
                  AND ra.attnum = k.confkey[array_position(k.conkey, a.attnum)]
             WHERE k.conrelid = c.oid AND k.contype = 'f' AND a.attnum = ANY (k.conkey))
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
  AND a.atttypid IN ('text'::regtype, 'jsonb'::regtype)
  AND (has_column_privilege('statusdb_app', c.oid, a.attnum, 'INSERT')
       OR has_column_privilege('statusdb_app', c.oid, a.attnum, 'UPDATE'))
ORDER BY 1, 2
"""


def _bounded(checks: list[str], column: str) -> bool:
    for check in checks:
        for match in _BOUNDING.finditer(check):
            if match.group(1) in (None, column):
                return True
    return False


def test_every_client_writable_text_and_jsonb_column_is_bounded(conn: Conn) -> None:
    rows = conn.execute(_COLUMNS).fetchall()
    assert len(rows) > 50  # the query sees the schema
    own = {f"{table}.{column}": _bounded(checks, column) for table, column, _, _, checks, _ in rows}
    unbounded = []
    for table, column, _, _, _checks, references in rows:
        if (table, column) in EXCEPTIONS or own[f"{table}.{column}"]:
            continue
        # An id of another table: as bounded as that id (which must be bounded itself).
        if any(own.get(ref, False) for ref in references):
            continue
        unbounded.append(f"{table}.{column}")
    assert unbounded == []


def _length_bound(conn: Conn, table: str, column: str) -> int:
    defs = conn.execute(
        "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_attribute a"
        " ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)"
        " WHERE k.conrelid = %s::regclass AND a.attname = %s AND k.contype = 'c'",
        (table, column),
    ).fetchall()
    found = [
        int(m.group(1)) for (d,) in defs for m in re.finditer(rf"length\({column}\) <= (\d+)", d)
    ]
    assert found, f"{table}.{column} has no length bound"
    return min(found)


@pytest.mark.parametrize(
    ("table", "column", "python"),
    [
        ("status_incident", "message", status_incidents.MESSAGE_MAX),
        ("status_incident", "title", status_incidents.TITLE_MAX),
        ("status_incident", "id", validate.ID_MAX),
        ("status_incident_template", "message", status_incidents.MESSAGE_MAX),
        ("status_incident_template", "name", incident_templates.NAME_MAX),
        ("status_incident_postmortem", "body", status_incidents.POSTMORTEM_MAX),
        ("status_page", "description", validate.DESCRIPTION_MAX),
        ("status_page", "created_by_id", validate.ID_MAX),
        ("status_page", "name", validate.NAME_MAX),
        ("status_page_component", "description", validate.DESCRIPTION_MAX),
        ("status_page_component", "name", validate.NAME_MAX),
        ("component_group", "description", validate.DESCRIPTION_MAX),
        ("translation", "text", translations.TEXT_MAX["description"]),
        ("translation", "locale", validate.LOCALE_MAX),
        ("status_page", "default_locale", validate.LOCALE_MAX),
        ("status_subscriber", "locale", validate.LOCALE_MAX),
        ("maintenance_window", "description", validate.DESCRIPTION_MAX),
        ("maintenance_window", "created_by_id", validate.ID_MAX),
        ("delivery_attempt", "error", deliveries.ERROR_MAX),
        ("delivery_attempt", "notification_key", deliveries.KEY_MAX),
        ("team", "name", validate.NAME_MAX),
    ],
)
def test_python_and_sql_bounds_are_equal(conn: Conn, table: str, column: str, python: int) -> None:
    assert _length_bound(conn, table, column) == python


def test_a_huge_status_message_is_refused_at_the_sql_door(dsn: str, app_login: str) -> None:
    with psycopg.connect(dsn) as owner:
        team = teams.create(owner, name=f"T-{uuid.uuid4().hex[:8]}")
        page = new_page(owner, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as app:
        with pytest.raises(pg_errors.CheckViolation) as refused:
            app.execute(
                "INSERT INTO status_incident (status_page_id, title, severity, message)"
                " VALUES (%s, 't', 'MINOR', repeat('x', 1000000))",
                (page.id,),
            )
        assert refused.value.diag.constraint_name == "status_incident_message_length_check"


def test_the_timeline_check_uses_the_python_bounds(conn: Conn) -> None:
    row = conn.execute(
        "SELECT pg_get_functiondef('statusdb_is_readable_timeline(jsonb)'::regprocedure)"
    ).fetchone()
    assert row is not None
    body = row[0]
    assert f"jsonb_array_length(updates) <= {status_incidents.UPDATES_MAX}" in body
    assert f"length(u.item ->> 'message') > {status_incidents.MESSAGE_MAX}" in body


def test_the_update_beyond_the_timeline_bound_is_invalid_input(conn: Conn) -> None:
    team = teams.create(conn, name=f"T-{uuid.uuid4().hex[:8]}")
    page = new_page(conn, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    incident = status_incidents.create(conn, page.id, title="t", message="m", severity="MINOR")
    first = incident.updates[0]
    entry = {"timestamp": first.timestamp.isoformat(), "status": first.status, "message": "m"}
    entries = [entry] * status_incidents.UPDATES_MAX
    conn.execute(
        "UPDATE status_incident SET updates = %s WHERE id = %s", (Jsonb(entries), incident.id)
    )
    with pytest.raises(errors.InvalidInput, match="at most 500 entries"):
        status_incidents.add_update(conn, incident.id, status="MONITORING", message="m")
