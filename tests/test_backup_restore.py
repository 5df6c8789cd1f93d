"""Backups: pg_dump of a populated database, restored, is the same database.

The right restore modes (docs/operating.md, "Backups and restores"):

* a whole-database dump restored into an empty database (pg_restore, or psql for a plain dump):
  PostgreSQL creates the tables, loads the rows, and only then creates indexes, foreign keys and
  triggers, so nothing is re-derived on the way in: statuses and the status-change log come back
  exactly as dumped;
* a data-only dump restored into an already migrated database: triggers exist there, so the load
  must run with `pg_restore --disable-triggers` (as a superuser). With triggers on, each
  component would re-derive as it is inserted (before its incidents and windows are all in) and
  log changes of its own next to the dumped log; in practice the restore fails.

Either way, check afterwards: `status.recompute(conn)` finds no drift and `status.chain_breaks`
finds no break.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from factories import APP_LOGIN, ensure_login
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import (
    components,
    incidents,
    maintenance,
    pages,
    status,
    status_incidents,
    subscribers,
    teams,
    tenancy,
    views,
)
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.infra import migrations
from statusdb.pages import NewComponent
from statusdb.tooling import localpg
from statusdb.tooling.localpg import LocalCluster
from statusdb.workers import outbox

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[TupleRow]
YOYO_TABLES = ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pg_dump / pg_restore from the server's bindir. They are clients: root may run them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [str(localpg.find_bindir() / name), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def checked(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr


def populate(conn: Conn) -> dict[str, Any]:
    """A bit of everything, including history: resolved incidents, logged and notified changes."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sre = teams.create(conn, name="SRE")
    web = teams.create(conn, name="Web")
    private = pages.create(
        conn,
        team_id=sre.id,
        name="Internal",
        slug="internal",
        created_by_id="u",
        is_public=False,
        components=[
            NewComponent(name="API", team_id=sre.id, service_identifier="api"),
            NewComponent(name="DB", team_id=sre.id, service_identifier="db"),
            NewComponent(name="Docs"),
        ],
    )
    public = pages.create(
        conn,
        team_id=web.id,
        name="Public",
        slug="public",
        created_by_id="u",
        is_public=True,
        components=[
            NewComponent(name="Site", team_id=web.id),
            NewComponent(name="Backend", team_id=sre.id, service_identifier="api"),
        ],
    )
    api, db, docs = components.list_for_page(conn, private.page.id)
    site, _backend = components.list_for_page(conn, public.page.id)
    old = incidents.create(conn, sre.id, title="old", priority="CRITICAL", service_identifier="db")
    incidents.resolve(conn, old.id)
    incident = incidents.create(
        conn, sre.id, title="5xx", priority="HIGH", service_identifier="api"
    )
    incidents.create(conn, web.id, title="slow", priority="MEDIUM", status="ACKNOWLEDGED")
    components.set_status(conn, docs.id, "DEGRADED_PERFORMANCE")
    maintenance.create(
        conn,
        private.page.id,
        CreateMaintenanceWindowInput(
            component_ids=(db.id, docs.id),
            title="Upgrade",
            start_time=now - dt.timedelta(minutes=5),
            end_time=now + dt.timedelta(hours=1),
        ),
        created_by_id="u",
    )
    maintenance.create(
        conn,
        public.page.id,
        CreateMaintenanceWindowInput(
            component_ids=(site.id,),
            title="Weekly",
            start_time=now + dt.timedelta(days=1),
            end_time=now + dt.timedelta(days=1, hours=1),
            recurrence_rule="FREQ=WEEKLY",
        ),
        created_by_id="u",
        time_zone="Europe/Berlin",
    )
    maintenance.advance(conn, now)
    active = status_incidents.create(
        conn,
        public.page.id,
        title="Errors",
        severity="MAJOR",
        message="investigating",
        affected_component_ids=[site.id],
        incident_id=incident.id,
    )
    status_incidents.add_update(conn, active.id, status="IDENTIFIED", message="found it")
    done = status_incidents.create(
        conn, private.page.id, title="Past", severity="MINOR", message="m"
    )
    status_incidents.add_update(conn, done.id, status="RESOLVED", message="fixed")
    email = subscribers.subscribe(
        conn, public.page.id, channel="EMAIL", destination="ops@example.com"
    )
    assert email.verify_token is not None
    subscribers.verify(conn, email.verify_token)
    subscribers.subscribe(conn, public.page.id, channel="EMAIL", destination="new@example.com")
    subscribers.subscribe(
        conn,
        private.page.id,
        channel="WEBHOOK",
        destination="https://hooks.example/x",
        component_ids=[api.id],
    )
    conn.commit()
    # Some of the log is notified already, some is pending.
    claimed = outbox.claim(conn, worker_id="w", hold_down=dt.timedelta(0), limit=2)
    conn.commit()
    for change in claimed:
        outbox.complete(conn, change, worker_id="w")
    conn.commit()
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []
    return {"private_token": private.access_token, "sre": sre.id, "web": web.id}


def project_tables(conn: Conn) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> ALL (%s::text[])
           ORDER BY 1""",
        (list(YOYO_TABLES),),
    ).fetchall()
    return [name for (name,) in rows]


def contents(conn: Conn) -> dict[str, list[Any]]:
    """Every row of every project table, in a stable order."""
    return {
        table: conn.execute(
            sql.SQL("SELECT to_jsonb(t)::text AS r FROM {} t ORDER BY r").format(
                sql.Identifier(table)
            )
        ).fetchall()
        for table in project_tables(conn)
    }


@pytest.fixture
def populated(conn: Conn, dsn: str) -> tuple[str, dict[str, Any]]:
    return dsn, populate(conn)


@pytest.fixture
def migrated_dsn(empty_dsn: str) -> str:
    migrations.apply(empty_dsn)
    return empty_dsn


def assert_same_database(source: str, restored: str, facts: dict[str, Any]) -> None:
    with psycopg.connect(source) as a, psycopg.connect(restored) as b:
        assert contents(b) == contents(a)
        # No drift and an intact log, without repairing anything.
        assert status.recompute(b) == []
        assert status.chain_breaks(b) == []
        token = facts["private_token"]
        for slug, kwargs in (("public", {}), ("internal", {"token": token})):
            assert views.page_view(b, slug, **kwargs) == views.page_view(a, slug, **kwargs)
        # The page snapshots (0017) came back exact, with their versions.
        assert views.recompute_snapshots(b) == []
        public_before = views.page_view(b, "public")
        assert public_before is not None
        # Life goes on: the next change is derived, logged after the restored history.
        last = b.execute("SELECT max(seq) FROM status_change").fetchone()
        incidents.create(
            b, facts["sre"], title="new", priority="CRITICAL", service_identifier="api"
        )
        rows = b.execute(
            "SELECT min(seq) FROM status_change WHERE cause = 'INCIDENT' AND seq > %s",
            (last[0] if last else 0,),
        ).fetchone()
        assert rows is not None
        assert rows[0] is not None
        b.commit()
        assert status.recompute(b) == []
        # ... and the page moved on to a newer version than any restored one.
        assert views.recompute_snapshots(b) == []
        public_after = views.page_view(b, "public")
        assert public_after is not None
        assert public_after.version > public_before.version
        assert status.chain_breaks(b) == []


def test_a_full_dump_restored_into_an_empty_database_is_identical(
    populated: tuple[str, dict[str, Any]],
    empty_dsn: str,
    tmp_path: Path,
    cluster: LocalCluster,
) -> None:
    source, facts = populated
    dump = tmp_path / "statusdb.dump"
    checked(run_tool("pg_dump", "--format=custom", f"--file={dump}", f"--dbname={source}"))
    checked(
        run_tool(
            "pg_restore",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={empty_dsn}",
            str(dump),
        )
    )
    assert_same_database(source, empty_dsn, facts)
    # The migrations' bookkeeping came along: nothing is pending.
    assert all(applied for _, applied in migrations.status(empty_dsn))
    # So did the grants and the policies: statusdb_app works there, scoped by team.
    ensure_login(cluster, APP_LOGIN, "statusdb_app")
    with psycopg.connect(make_conninfo(empty_dsn, user=APP_LOGIN)) as app:
        tenancy.set_team(app, facts["web"])
        assert [p.slug for p in pages.list_for_team(app, facts["web"])] == ["public"]
        assert pages.list_for_team(app, facts["sre"]) == []


def test_a_data_only_restore_needs_triggers_disabled(
    populated: tuple[str, dict[str, Any]], migrated_dsn: str, tmp_path: Path
) -> None:
    source, facts = populated
    dump = tmp_path / "data.dump"
    excluded = [f"--exclude-table={t}" for t in YOYO_TABLES]
    checked(
        run_tool(
            "pg_dump",
            "--format=custom",
            "--data-only",
            *excluded,
            f"--file={dump}",
            f"--dbname={source}",
        )
    )
    checked(
        run_tool(
            "pg_restore",
            "--data-only",
            "--disable-triggers",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={migrated_dsn}",
            str(dump),
        )
    )
    assert_same_database(source, migrated_dsn, facts)


def test_a_data_only_restore_with_triggers_on_fails(
    populated: tuple[str, dict[str, Any]], migrated_dsn: str, tmp_path: Path
) -> None:
    """Why --disable-triggers: with triggers on, the restore cannot load the rows as dumped."""
    source, _ = populated
    dump = tmp_path / "data.dump"
    excluded = [f"--exclude-table={t}" for t in YOYO_TABLES]
    checked(
        run_tool(
            "pg_dump",
            "--format=custom",
            "--data-only",
            *excluded,
            f"--file={dump}",
            f"--dbname={source}",
        )
    )
    result = run_tool(
        "pg_restore", "--data-only", "--single-transaction", f"--dbname={migrated_dsn}", str(dump)
    )
    # Components re-derive and log changes of their own as they arrive (whose seq then collide
    # with the dumped log's), and the 0002 integrity triggers cannot even find their tables
    # under pg_restore's empty search_path. In one transaction, nothing is left behind.
    assert result.returncode != 0
    with psycopg.connect(migrated_dsn) as b:
        assert all(rows == [] for rows in contents(b).values())
