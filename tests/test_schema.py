"""The schema as a DBA meets it: enumerations, defaults, triggers, refusals, indexes."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from statusdb.db.resources import migrations_dir
from statusdb.domain.types import (
    EVENT_KINDS,
    INCIDENT_PRIORITIES,
    INCIDENT_PRIORITY_TO_STATUS,
    INCIDENT_STATUSES,
    MAINTENANCE_STATUS,
    NOTIFY_ON_EVENTS,
    STATUS_INCIDENT_SEVERITY,
    STATUS_INCIDENT_STATUS,
    STATUS_SEVERITY_ORDER,
    SUBSCRIBER_CHANNELS,
)
from statusdb.errors import CONSTRAINT_MESSAGES
from statusdb.infra import migrations

Conn = psycopg.Connection[TupleRow]

ENUM_CONSTRAINTS = {
    "incident_priority_check": INCIDENT_PRIORITIES,
    "incident_status_check": INCIDENT_STATUSES,
    "status_page_component_current_status_check": STATUS_SEVERITY_ORDER,
    "status_page_component_manual_status_check": STATUS_SEVERITY_ORDER,
    "status_change_previous_status_check": STATUS_SEVERITY_ORDER,
    "status_change_new_status_check": STATUS_SEVERITY_ORDER,
    "status_subscriber_channel_check": SUBSCRIBER_CHANNELS,
    "status_subscriber_notify_on_check": NOTIFY_ON_EVENTS,
    "notification_event_kind_check": EVENT_KINDS,
    "maintenance_window_status_check": MAINTENANCE_STATUS,
    "status_incident_severity_check": STATUS_INCIDENT_SEVERITY,
    "status_incident_status_check": STATUS_INCIDENT_STATUS,
}


def constraint_literals(conn: Conn, name: str) -> set[str]:
    row = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (name,)
    ).fetchone()
    assert row is not None, f"no constraint {name}"
    return set(re.findall(r"'([^']*)'::text", row[0]))


@pytest.mark.parametrize("name", sorted(ENUM_CONSTRAINTS))
def test_every_enumeration_equals_what_the_database_accepts(conn: Conn, name: str) -> None:
    assert constraint_literals(conn, name) == set(ENUM_CONSTRAINTS[name])


def test_status_functions_match_python(conn: Conn) -> None:
    ranks = conn.execute(
        "SELECT s, statusdb_status_rank(s) FROM unnest(%s::text[]) AS s",
        (list(STATUS_SEVERITY_ORDER),),
    ).fetchall()
    assert [s for s, _ in sorted(ranks, key=lambda r: r[1])] == list(STATUS_SEVERITY_ORDER)
    mapped: dict[str, str] = dict(
        conn.execute(
            "SELECT p, statusdb_priority_status(p) FROM unnest(%s::text[]) AS p",
            (list(INCIDENT_PRIORITIES),),
        ).fetchall()
    )
    assert mapped == dict(INCIDENT_PRIORITY_TO_STATUS)


def test_status_update_elements_accept_exactly_the_python_statuses(conn: Conn) -> None:
    def accepted(status: str) -> bool:
        row = conn.execute(
            """SELECT statusdb_is_status_update_list(jsonb_build_array(jsonb_build_object(
                   'timestamp', now(), 'status', %s::text, 'message', 'm')))""",
            (status,),
        ).fetchone()
        assert row is not None
        return bool(row[0])

    for good in STATUS_INCIDENT_STATUS:
        assert accepted(good)
    for bad in ("resolved", "UNKNOWN", "", "OPEN"):
        assert not accepted(bad)


def test_every_named_constraint_has_a_message(conn: Conn) -> None:
    rows = conn.execute(
        """SELECT con.conname
           FROM pg_constraint con
           JOIN pg_class rel ON rel.oid = con.conrelid
           JOIN pg_namespace ns ON ns.oid = rel.relnamespace
           WHERE ns.nspname = 'public' AND con.contype IN ('c', 'u', 'f')
             AND rel.relname NOT LIKE '\\_yoyo%%' AND rel.relname NOT LIKE 'yoyo%%'
             AND rel.relname <> 'status_change'"""
    ).fetchall()
    missing = sorted(name for (name,) in rows if name not in CONSTRAINT_MESSAGES)
    assert missing == []


def test_no_index_duplicates_a_unique_constraint_and_foreign_keys_are_indexed(conn: Conn) -> None:
    indexes = conn.execute(
        """SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, i.indisunique,
                  i.indkey::int2[]::int[], pg_get_expr(i.indpred, i.indrelid)
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relname NOT LIKE '%%yoyo%%'"""
    ).fetchall()
    seen: dict[tuple[str, tuple[int, ...]], str] = {}
    for table, index, _unique, keys, partial in indexes:
        if partial:
            continue
        key = (table, tuple(keys))
        assert key not in seen, f"{index} duplicates {seen[key]}"
        seen[key] = index
    fks = conn.execute(
        """SELECT con.conrelid::regclass::text, con.conname, con.conkey::int[]
           FROM pg_constraint con
           JOIN pg_namespace n ON n.oid = con.connamespace
           WHERE n.nspname = 'public' AND con.contype = 'f'"""
    ).fetchall()
    for table, name, fk_keys in fks:
        # A partial index "WHERE fk IS NOT NULL" serves the foreign key's lookups too.
        covered = any(
            t == table
            and (not partial or partial.endswith("IS NOT NULL)"))
            and list(keys[: len(fk_keys)]) == list(fk_keys)
            for t, _index, _unique, keys, partial in indexes
        )
        assert covered, f"foreign key {name} has no index leading with its columns"


@pytest.mark.fresh_db
def test_ids_defaults_and_updated_at_for_plain_sql(conn: Conn) -> None:
    team_id, created, updated = conn.execute(
        "INSERT INTO team (name) VALUES ('SRE') RETURNING id, created_at, updated_at"
    ).fetchone() or (None, None, None)
    assert isinstance(team_id, str)
    assert uuid.UUID(team_id).version == 7
    assert created == updated
    conn.commit()
    row = conn.execute(
        "UPDATE team SET name = 'Ops' WHERE id = %s RETURNING created_at, updated_at", (team_id,)
    ).fetchone()
    assert row is not None
    assert row[1] > row[0]
    page = conn.execute(
        """INSERT INTO status_page (name, slug, is_public, team_id, created_by_id)
           VALUES ('P', 'p', true, %s, 'dba') RETURNING id, is_public, access_token_hash""",
        (team_id,),
    ).fetchone()
    assert page is not None
    comp = conn.execute(
        """INSERT INTO status_page_component (status_page_id, name) VALUES (%s, 'API')
           RETURNING display_order, current_status, status_updated_at, manual_status""",
        (page[0],),
    ).fetchone()
    assert comp is not None
    assert comp[:2] == (0, "OPERATIONAL")
    assert comp[3] == "OPERATIONAL"
    sub = conn.execute(
        """INSERT INTO status_subscriber (status_page_id, channel, destination)
           VALUES (%s, 'WEBHOOK', 'https://example.com/hook')
           RETURNING component_ids, notify_on, is_verified, is_active""",
        (page[0],),
    ).fetchone()
    assert sub == ([], list(NOTIFY_ON_EVENTS), False, True)
    inc = conn.execute(
        """INSERT INTO status_incident (status_page_id, title, severity)
           VALUES (%s, 'x', 'MINOR') RETURNING status, updates, affected_component_ids""",
        (page[0],),
    ).fetchone()
    assert inc == ("INVESTIGATING", [], [])


REFUSALS = [
    (
        "status_page_private_needs_token",
        "INSERT INTO status_page (name, slug, team_id, created_by_id) VALUES ('P', 'q', 't', 'u')",
    ),
    (
        "status_page_slug_check",
        "INSERT INTO status_page (name, slug, is_public, team_id, created_by_id) "
        "VALUES ('P', 'Bad Slug', true, 't', 'u')",
    ),
    (
        "status_page_slug_key",
        "INSERT INTO status_page (name, slug, is_public, team_id, created_by_id) "
        "VALUES ('P', 'p', true, 't', 'u')",
    ),
    (
        "maintenance_window_time_range_check",
        "INSERT INTO maintenance_window (status_page_id, title, start_time, end_time, "
        "created_by_id) VALUES ('p', 'm', now(), now() - interval '1 hour', 'u')",
    ),
    (
        "status_subscriber_notify_on_check",
        "INSERT INTO status_subscriber (status_page_id, channel, destination, notify_on) "
        "VALUES ('p', 'EMAIL', 'a@b.c', '{degraded,spam}')",
    ),
    (
        "status_subscriber_notify_on_check",
        "INSERT INTO status_subscriber (status_page_id, channel, destination, notify_on) "
        "VALUES ('p', 'EMAIL', 'a@b.c', '{}')",
    ),
    (
        "status_subscriber_component_ids_fkey",
        "INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids) "
        "VALUES ('p', 'EMAIL', 'a@b.c', '{c2}')",
    ),
    (
        "status_incident_affected_component_ids_fkey",
        "INSERT INTO status_incident (status_page_id, title, severity, affected_component_ids) "
        "VALUES ('p', 'x', 'MINOR', '{c2}')",
    ),
    (
        "status_incident_updates_readable_check",  # 0024 (was status_incident_updates_check)
        "INSERT INTO status_incident (status_page_id, title, severity, updates) "
        "VALUES ('p', 'x', 'MINOR', '{\"not\": \"an array\"}')",
    ),
    (
        "maintenance_window_component_same_page",
        "INSERT INTO maintenance_window_component VALUES ('m', 'c2')",
    ),
    (
        "status_incident_severity_check",
        "INSERT INTO status_incident (status_page_id, title, severity) VALUES ('p', 'x', 'HUGE')",
    ),
    ("incident_team_id_fkey", "DELETE FROM team WHERE id = 't'"),
]


@pytest.fixture
def two_pages(conn: Conn) -> Conn:
    conn.execute("INSERT INTO team (id, name) VALUES ('t', 'SRE')")
    for page, comp in (("p", "c1"), ("p2", "c2")):
        conn.execute(
            """INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
               VALUES (%s, 'P', %s, true, 't', 'u')""",
            (page, page),
        )
        conn.execute(
            "INSERT INTO status_page_component (id, status_page_id, name) VALUES (%s, %s, 'C')",
            (comp, page),
        )
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                           created_by_id)
           VALUES ('m', 'p', 'm', now(), now() + interval '1 hour', 'u')"""
    )
    conn.execute(
        "INSERT INTO incident (id, team_id, title, priority) VALUES ('i', 't', 'x', 'LOW')"
    )
    conn.commit()
    return conn


@pytest.mark.parametrize(("constraint", "statement"), REFUSALS)
def test_plain_sql_refusals_name_their_constraint(
    two_pages: Conn, constraint: str, statement: str
) -> None:
    with pytest.raises(psycopg.IntegrityError) as caught:
        two_pages.execute(statement.encode())
    assert caught.value.diag.constraint_name == constraint


def test_deleting_a_component_cleans_id_arrays(two_pages: Conn) -> None:
    conn = two_pages
    conn.execute(
        "INSERT INTO status_page_component (id, status_page_id, name) VALUES ('c3', 'p', 'D')"
    )
    conn.execute(
        """INSERT INTO status_subscriber (id, status_page_id, channel, destination, component_ids)
           VALUES ('only', 'p', 'EMAIL', 'a@b.c', '{c1}'),
                  ('both', 'p', 'EMAIL', 'b@b.c', '{c1,c3}'),
                  ('all', 'p', 'EMAIL', 'c@b.c', '{}')"""
    )
    conn.execute(
        """INSERT INTO status_incident (id, status_page_id, title, severity, affected_component_ids)
           VALUES ('si', 'p', 'x', 'MINOR', '{c1,c3}')"""
    )
    conn.execute("DELETE FROM status_page_component WHERE id = 'c1'")
    subs = dict(
        (sid, (ids, active))
        for sid, ids, active in conn.execute(
            "SELECT id, component_ids, is_active FROM status_subscriber"
        ).fetchall()
    )
    # Following only a deleted component must not silently become "all components".
    assert subs == {"only": ([], False), "both": (["c3"], True), "all": ([], True)}
    row = conn.execute("SELECT affected_component_ids FROM status_incident").fetchone()
    assert row == (["c3"],)


def test_cascades_and_nulls(two_pages: Conn) -> None:
    conn = two_pages
    conn.execute(
        """INSERT INTO status_incident (id, status_page_id, incident_id, title, severity)
           VALUES ('si', 'p', 'i', 'x', 'MINOR')"""
    )
    conn.execute("DELETE FROM incident WHERE id = 'i'")
    assert conn.execute("SELECT incident_id FROM status_incident").fetchone() == (None,)
    conn.execute("DELETE FROM status_page WHERE id = 'p'")
    for table in ("status_page_component", "maintenance_window", "status_incident"):
        count = conn.execute(
            f"SELECT count(*) FROM {table} WHERE status_page_id = 'p'".encode()
        ).fetchone()
        assert count == (0,)


@pytest.mark.slow
def test_migrations_apply_roll_back_completely_and_apply_again(empty_dsn: str) -> None:
    def project_objects() -> list[tuple[str, str]]:
        with psycopg.connect(empty_dsn) as c:
            return c.execute(
                """SELECT 'relation', relname FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND relname NOT LIKE '%%yoyo%%'
                   UNION ALL
                   SELECT 'function', proname FROM pg_proc p
                   JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'public'
                   UNION ALL
                   SELECT 'type', typname FROM pg_type t
                   JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'public' AND typname NOT LIKE '%%yoyo%%'
                     AND typname NOT LIKE '\\_%%'"""
            ).fetchall()

    assert project_objects() == []
    migrations.apply(empty_dsn)
    assert len(project_objects()) > 20
    migrations.rollback(empty_dsn)
    assert project_objects() == []
    migrations.apply(empty_dsn)
    assert all(applied for _, applied in migrations.status(empty_dsn))


def test_plain_yoyo_cli_applies_the_migrations(empty_dsn: str) -> None:
    """A DBA's `yoyo apply` (no statusdb code involved) yields the same schema."""
    info = conninfo_to_dict(empty_dsn)
    url = f"postgresql+psycopg://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    yoyo = Path(sys.executable).with_name("yoyo")
    result = subprocess.run(
        [str(yoyo), "apply", "--batch", "--database", url, str(migrations_dir())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_dsn) as check:
        tables = {
            name
            for (name,) in check.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
        assert {
            "team",
            "incident",
            "status_page",
            "status_page_component",
            "status_subscriber",
            "maintenance_window",
            "maintenance_window_component",
            "status_incident",
            "status_change",
        } <= tables
    assert all(applied for _, applied in migrations.status(empty_dsn))
