"""Database roles (migration 0008): what statusdb_owner, statusdb_app and statusdb_reader may do.

Every test logs in for real, as a LOGIN user that is a member of the group role under test
(trust authentication on the test cluster), never with SET ROLE from the superuser. Roles are
cluster-wide: the group roles come from the migrated template, the login users are created once
per session when missing, and nothing here assumes they did not exist before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN
from psycopg import errors as pg_errors
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
    uptime,
    views,
)
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import StatusdbError
from statusdb.infra import migrations
from statusdb.pages import NewComponent
from statusdb.tooling.localpg import LocalCluster
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]

GROUPS = ("statusdb_owner", "statusdb_app", "statusdb_reader")
MIGRATOR_LOGIN = "statusdb_test_migrator"
YOYO_TABLES = ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")
#: Written by the database only (the derivation, the notification triggers, the page
#: snapshot triggers of 0017); statusdb_app reads them and updates the outbox columns of
#: status_change and notification_event.
LOG_TABLES = (
    "status_change",
    "notification_event",
    "status_page_snapshot",
    "component_group_status_change",
    "scheduler_heartbeat",  # 0032: written through statusdb_record_scheduler_run
)
#: Managed by the owner (the DBA); statusdb_app only reads them.
OWNER_MANAGED_TABLES = ("destination_allowlist",)
#: The derivation's own bookkeeping (0012), and the row history (0022, audit data, read through
#: statusdb_page_view_at): no privilege for anyone but the owner.
OWNER_ONLY_TABLES = (
    "status_lock",
    "status_repair",
    "row_history",
    "row_history_horizon",
    "maintenance_window_created",  # 0026: a marker that never commits
    "row_history_commit",  # 0025
    "status_incident_postmortem_deletion",  # 0025
    "status_page_snapshot_pending",  # 0035: pages to render at commit
)
#: Append-only (0022): statusdb_app reads and inserts; updates and deletes are refused anyway.
APPEND_ONLY_TABLES = ("status_incident_postmortem",)
#: The backend records and updates these, but may not delete them (0024: hiding delivery
#: failures is refused by privilege; retention runs as the owner).
NO_DELETE_TABLES = ("delivery_attempt",)


def as_user(dsn: str, user: str) -> str:
    return make_conninfo(dsn, user=user)


@pytest.fixture
def app(dsn: str, logins: None) -> Iterator[Conn]:
    """A connection to this test's database as a member of statusdb_app."""
    with psycopg.connect(as_user(dsn, APP_LOGIN)) as connection:
        yield connection


@pytest.fixture
def reader(dsn: str, logins: None) -> Iterator[Conn]:
    """A connection to this test's database as a member of statusdb_reader (autocommit)."""
    with psycopg.connect(as_user(dsn, READER_LOGIN), autocommit=True) as connection:
        yield connection


def project_tables(conn: Conn) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
             AND c.relname <> ALL (%s::text[])
           ORDER BY 1""",
        (list(YOYO_TABLES),),
    ).fetchall()
    return [name for (name,) in rows]


def test_the_roles_are_nologin_groups_without_special_powers(conn: Conn) -> None:
    rows = conn.execute(
        """SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls
           FROM pg_roles WHERE rolname = ANY (%s) ORDER BY rolname""",
        (list(GROUPS),),
    ).fetchall()
    assert [r[0] for r in rows] == sorted(GROUPS)
    assert all(r[1:] == (False, False, False, False, False) for r in rows)


def test_the_logins_are_members_that_inherit(app: Conn, reader: Conn) -> None:
    assert app.execute("SELECT current_user, pg_has_role('statusdb_app', 'USAGE')").fetchone() == (
        APP_LOGIN,
        True,
    )
    assert reader.execute("SELECT pg_has_role('statusdb_app', 'MEMBER')").fetchone() == (False,)


def seed_as_app(app: Conn) -> dict[str, str]:
    """Everything the backend does on a working day, as statusdb_app; returns some ids."""
    team = teams.create(app, name="SRE")
    created = pages.create(
        app,
        team_id=team.id,
        name="Acme",
        slug="acme",
        created_by_id="user-1",
        is_public=False,
        components=[
            NewComponent(name="API", team_id=team.id, service_identifier="api"),
            NewComponent(name="Docs"),
        ],
    )
    page_id = created.page.id
    api, docs = components.list_for_page(app, page_id)
    assert created.access_token is not None
    # Derivation under the app's privileges: the trigger writes current_status and the log.
    incident = incidents.create(
        app, team.id, title="5xx", priority="CRITICAL", service_identifier="api"
    )
    assert components.get(app, api.id).current_status == "MAJOR_OUTAGE"
    incidents.update(app, incident.id, priority="MEDIUM")
    assert components.get(app, api.id).current_status == "DEGRADED_PERFORMANCE"
    assert components.set_status(app, docs.id, "PARTIAL_OUTAGE").current_status == (
        "PARTIAL_OUTAGE"
    )
    components.update(app, docs.id, name="Documentation")
    status_incidents.create(
        app,
        page_id,
        title="Slow API",
        severity="MINOR",
        message="looking",
        affected_component_ids=[api.id],
        incident_id=incident.id,
    )
    now = dt.datetime.now(dt.UTC)
    window = maintenance.create(
        app,
        page_id,
        CreateMaintenanceWindowInput(
            component_ids=(docs.id,),
            title="Upgrade",
            start_time=now - dt.timedelta(minutes=1),
            end_time=now + dt.timedelta(hours=1),
        ),
        created_by_id="user-1",
    )
    maintenance.advance(app, now)  # starts the window: a derivation through maintenance
    assert maintenance.get(app, window.id).status == "IN_PROGRESS"
    sub = subscribers.subscribe(app, page_id, channel="EMAIL", destination="ops@example.com")
    assert sub.verify_token is not None
    subscribers.verify(app, sub.verify_token)
    report = subscribers.import_subscribers(  # COPY into a temporary staging table
        app, page_id, [subscribers.ImportRow(channel="WEBHOOK", destination="https://h.example/x")]
    )
    assert report.accepted == 1
    incidents.resolve(app, incident.id)
    assert components.get(app, api.id).current_status == "OPERATIONAL"
    app.commit()
    return {"team": team.id, "page": page_id, "api": api.id, "docs": docs.id}


def test_app_runs_the_repository_and_the_derivation_works_under_its_privileges(
    app: Conn, conn: Conn
) -> None:
    ids = seed_as_app(app)
    # The outbox worker: claim, fan out, complete.
    seen: set[str] = set()
    while claimed := outbox.claim(app, worker_id="w1", hold_down=dt.timedelta(0)):
        app.commit()
        for change in claimed:
            seen.add(change.component_id)
            list(outbox.recipients(app, change))
            assert outbox.complete(app, change, worker_id="w1")
        app.commit()
    assert seen == {ids["api"], ids["docs"]}
    assert outbox.pending_count(app) == 0
    now = dt.datetime.now(dt.UTC)
    report = uptime.for_page(app, ids["page"], start=now - dt.timedelta(hours=1), end=now)
    assert len(report.components) == 2
    assert status.recompute(app) == []
    assert status.chain_breaks(app) == []
    pages.delete(app, ids["page"])  # cascades as the owner: no DELETE on status_change needed
    app.commit()
    # The superuser sees the same consistent state.
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


async def test_app_runs_operations_async(dsn: str, logins: None) -> None:
    async with await psycopg.AsyncConnection.connect(as_user(dsn, APP_LOGIN)) as aconn:
        team = await teams.create(aconn, name="SRE")
        created = await pages.create(
            aconn,
            team_id=team.id,
            name="Acme",
            slug="acme",
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API", team_id=team.id)],
        )
        await incidents.create(aconn, team.id, title="down", priority="HIGH")
        view = await views.page_view(aconn, "acme")
        assert view is not None
        assert view.page.id == created.page.id
        assert view.page.overall_status == "PARTIAL_OUTAGE"
        assert await status.recompute(aconn) == []


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE app_table (id int)",
        "CREATE VIEW app_view AS SELECT 1 AS one",
        "CREATE FUNCTION app_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE INDEX app_idx ON status_page (name)",
        "ALTER TABLE status_page ADD COLUMN app_column int",
        "ALTER TABLE status_page DISABLE ROW LEVEL SECURITY",
        "DROP TABLE status_change",
        "DROP POLICY status_page_team_isolation ON status_page",
        "TRUNCATE incident",
        "ALTER FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint) "
        "SECURITY INVOKER",
        "CREATE TRIGGER app_trigger BEFORE INSERT ON team "
        "FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at()",
    ],
)
def test_app_cannot_change_the_schema(app: Conn, statement: str) -> None:
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute(statement.encode())


def test_app_cannot_pass_its_privileges_on(app: Conn) -> None:
    # Without the grant option, GRANT only warns ("no privileges were granted").
    app.execute("GRANT SELECT ON status_subscriber TO statusdb_reader")
    row = app.execute(
        "SELECT has_table_privilege('statusdb_reader', 'status_subscriber', 'SELECT')"
    ).fetchone()
    assert row == (False,)


def test_nobody_but_the_owner_may_create_in_schema_public(conn: Conn) -> None:
    # PostgreSQL 15 took CREATE on schema public away from PUBLIC; 0008 grants it to no role.
    rows = conn.execute(
        """SELECT r, has_schema_privilege(r, 'public', 'CREATE'),
                  has_schema_privilege(r, 'public', 'USAGE')
           FROM unnest(ARRAY['public', 'statusdb_app', 'statusdb_reader']) AS r"""
    ).fetchall()
    assert rows == [
        ("public", False, True),
        ("statusdb_app", False, True),
        ("statusdb_reader", False, True),
    ]


def test_app_cannot_write_derived_statuses_or_the_log(app: Conn) -> None:
    ids = seed_as_app(app)
    forged = [
        ("UPDATE status_page_component SET current_status = 'MAJOR_OUTAGE' WHERE id = %s",),
        ("UPDATE status_page_component SET status_updated_at = now() WHERE id = %s",),
        (
            "INSERT INTO status_page_component (status_page_id, name, current_status) "
            "SELECT status_page_id, 'X', 'MAJOR_OUTAGE' FROM status_page_component WHERE id = %s",
        ),
        (
            "INSERT INTO status_change (status_page_id, component_id, previous_status, "
            "new_status, cause) SELECT status_page_id, id, 'OPERATIONAL', 'MAJOR_OUTAGE', "
            "'MANUAL' FROM status_page_component WHERE id = %s",
        ),
        ("DELETE FROM status_change WHERE component_id = %s",),
        ("UPDATE status_change SET new_status = 'MAJOR_OUTAGE' WHERE component_id = %s",),
        # The derivation's own helper, called directly, runs with the app's privileges.
        ("SELECT statusdb_refresh_components(ARRAY[%s], 'MANUAL', NULL, NULL)",),
    ]
    for (statement,) in forged:
        with app.transaction():
            # Even with the derivation's session flag set by hand.
            app.execute("SELECT set_config('statusdb.deriving', 'on', true)")
            with pytest.raises(pg_errors.InsufficientPrivilege), app.transaction():
                app.execute(statement.encode(), (ids["api"],))
    assert components.get(app, ids["api"]).current_status == "OPERATIONAL"


def test_reader_sees_pages_only_through_the_page_view(app: Conn, reader: Conn, conn: Conn) -> None:
    team = teams.create(app, name="SRE")
    private = pages.create(
        app,
        team_id=team.id,
        name="Private",
        slug="private",
        created_by_id="u",
        is_public=False,
        components=[NewComponent(name="API", team_id=team.id)],
    )
    pages.create(
        app, team_id=team.id, name="Public", slug="public", created_by_id="u", is_public=True
    )
    subscribers.subscribe(app, private.page.id, channel="EMAIL", destination="a@example.com")
    incidents.create(app, team.id, title="down", priority="CRITICAL")
    app.commit()

    view = views.page_view(reader, "private", token=private.access_token)
    assert view is not None
    assert view.page.overall_status == "MAJOR_OUTAGE"
    assert views.page_view(reader, "private") is None
    assert views.page_view(reader, "private", token="wrong") is None
    public = views.page_view(reader, "public")
    assert public is not None
    assert public.page.name == "Public"
    assert view == views.page_view(conn, "private", token=private.access_token)

    # No table, column or sequence is readable, and nothing is writable.
    for table in project_tables(conn):
        row = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum = 1",
            (table,),
        ).fetchone()
        assert row is not None
        names = {"table": sql.Identifier(table), "column": sql.Identifier(row[0])}
        for statement in (
            sql.SQL("SELECT * FROM {table} LIMIT 1"),
            sql.SQL("DELETE FROM {table}"),
            sql.SQL("UPDATE {table} SET {column} = {column}"),
            sql.SQL("INSERT INTO {table} DEFAULT VALUES"),
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                reader.execute(statement.format(**names))
    readable = conn.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'public'
             AND has_column_privilege('statusdb_reader',
                                      quote_ident(table_name), column_name, 'SELECT')"""
    ).fetchall()
    # 0039: the public pages' versions by slug key (tests/security/test_s40*), nothing else.
    assert sorted(readable) == [
        ("statusdb_page_public_version", "scheduled_starts"),
        ("statusdb_page_public_version", "slug_key"),
        ("statusdb_page_public_version", "version"),
    ]
    # Operator functions and the derivation's internals are not the reader's either.
    for query in (
        "SELECT * FROM statusdb_recompute_statuses(true)",
        "SELECT * FROM statusdb_component_derived_status",
        "SELECT statusdb_derive_status('x', %(team)s, NULL, 'OPERATIONAL')",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege):
            reader.execute(query.encode(), {"team": team.id})
    with pytest.raises(StatusdbError, match="permission denied"):
        pages.get_by_slug(reader, "private")


async def test_reader_page_view_async(app: Conn, dsn: str) -> None:
    team = teams.create(app, name="SRE")
    pages.create(
        app, team_id=team.id, name="Public", slug="public", created_by_id="u", is_public=True
    )
    app.commit()
    async with await psycopg.AsyncConnection.connect(as_user(dsn, READER_LOGIN)) as areader:
        view = await views.page_view(areader, "public")
        assert view is not None
        assert view.page.overall_status == "OPERATIONAL"


def test_every_table_is_granted_and_every_definer_function_is_locked_down(conn: Conn) -> None:
    """Guards later migrations: a new table needs its grants, a definer function a safe path."""
    for table in project_tables(conn):
        if table in OWNER_ONLY_TABLES:
            row = conn.execute(
                "SELECT relrowsecurity, bool_or(has_table_privilege(r, %s,"
                " 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'))"
                " FROM pg_class, unnest(ARRAY['public', 'statusdb_app', 'statusdb_reader']) AS r"
                " WHERE oid = %s::regclass GROUP BY relrowsecurity",
                (table, table),
            ).fetchone()
            assert row == (True, False), f"{table} is the owner's alone"
            continue
        read_only = table in LOG_TABLES + OWNER_MANAGED_TABLES
        privileges = {"SELECT"} if read_only else {"SELECT", "INSERT", "UPDATE", "DELETE"}
        if table in APPEND_ONLY_TABLES:
            privileges = {"SELECT", "INSERT"}
            row = conn.execute(
                "SELECT has_table_privilege('statusdb_app', %s, 'UPDATE, DELETE')", (table,)
            ).fetchone()
            assert row == (False,), f"{table} is append-only"
        if table in NO_DELETE_TABLES:
            privileges = privileges - {"DELETE"}
            row = conn.execute(
                "SELECT has_table_privilege('statusdb_app', %s, 'DELETE')", (table,)
            ).fetchone()
            assert row == (False,), f"{table}: the backend may not delete"
        for privilege in privileges:
            row = conn.execute(
                "SELECT has_table_privilege('statusdb_app', %s, %s)"
                " OR has_any_column_privilege('statusdb_app', %s, %s)",
                (table, privilege, table, privilege),
            ).fetchone()
            assert row == (True,), f"statusdb_app lacks {privilege} on {table}"
        row = conn.execute(
            "SELECT has_table_privilege('statusdb_app', %s, 'TRUNCATE, REFERENCES, TRIGGER'),"
            "       relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
            (table, table),
        ).fetchone()
        assert row == (False, True, False), f"{table}: no TRUNCATE etc., RLS on, not forced"
    definers = conn.execute(
        """SELECT p.oid::regprocedure::text, p.proconfig,
                  has_function_privilege('public', p.oid, 'EXECUTE')
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.prosecdef
           ORDER BY 1"""
    ).fetchall()
    assert {name.split("(")[0] for name, _, _ in definers} == {
        "statusdb_incident_refresh_status",
        "statusdb_status_page_component_derive",
        "statusdb_status_page_component_log_initial_status",
        "statusdb_maintenance_window_refresh_status",
        "statusdb_maintenance_window_component_refresh_status",
        "statusdb_recompute_statuses",
        "statusdb_page_view",
        "statusdb_lock_status_keys",  # 0012: locks rows of the owner-only status_lock
        "statusdb_lock_maintenance_windows",  # 0023: the scheduler takes the windows' slots
        "statusdb_lock_status_inputs",  # 0038: a transaction's slots taken ahead
        # 0017: the page snapshot's statement triggers and the repair
        "statusdb_status_page_snapshot",
        "statusdb_status_page_component_snapshot",
        "statusdb_status_incident_snapshot",
        "statusdb_maintenance_window_snapshot",
        "statusdb_maintenance_window_component_snapshot",
        "statusdb_page_snapshot_repair",
        # 0020: the group tree's walk and guard, the roll-up triggers, the group repair
        "statusdb_component_group_check_tree",
        "statusdb_component_group_guard",
        "statusdb_status_page_component_roll_up",
        "statusdb_component_group_roll_up",
        "statusdb_recompute_group_statuses",
        "statusdb_component_group_snapshot",  # 0020: groups in the page snapshot
        # 0018: notification events are written as the owner (statusdb_app cannot insert them)
        "statusdb_status_incident_notify",
        "statusdb_maintenance_window_notify_scheduled",
        "statusdb_maintenance_remind",
        "statusdb_keep_row_history",  # 0022: writes the owner-only row_history
        "statusdb_keep_component_statuses",  # 0022: folds deleted status changes into it
        "statusdb_keep_group_statuses",  # 0047: the same for deleted group status changes
        # 0049: status_change_component_id_fkey, set-based: the check and the cascade
        "statusdb_status_change_check_component",
        "statusdb_status_page_component_delete_changes",
        "statusdb_page_view_at",  # 0022: reads it
        "statusdb_page_view_bytes",  # 0028: the page view as stored bytes
        # 0029: the page views with the page's time zone
        "statusdb_page_view_v2",
        "statusdb_page_view_at_v2",
        "statusdb_page_view_bytes_v2",
        "statusdb_page_feed",  # 0030: what the page's feeds show (reads row_history too)
        # 0033: translations: the page of the entity, the snapshot versions, the reads in a
        # locale and a notification's texts in one
        "statusdb_translation_snapshot",
        "statusdb_status_page_locale_snapshot",
        "statusdb_page_view_v3",
        "statusdb_page_view_bytes_v3",
        "statusdb_page_feed_v2",
        "statusdb_event_texts",
        "statusdb_page_statuspage",  # 0034: Statuspage v2 documents from the snapshot
        "statusdb_page_statuspage_v2",  # 0035: the same in a locale
        "statusdb_maintenance_window_report_events",  # 0027: writes events after the derivation
        "statusdb_maintenance_window_mark_created",  # 0026: writes the owner-only marker
        "statusdb_stamp_row_history",  # 0025: stamps the versions at commit
        "statusdb_status_incident_postmortem_deleted",  # 0025: writes the owner-only audit
        "statusdb_record_scheduler_run",  # 0032: the heartbeat the app may only read
        "statusdb_doctor_sample_v1",  # 0032: renders pages, reads the snapshot
        "statusdb_page_snapshot_pending_flush",  # 0035: renders the marked pages at commit
    }
    for name, config, public_may_execute in definers:
        assert config[:1] == ["search_path=public, pg_temp"], name
        # 0049: a definer may also fix its plans (statusdb_incident_refresh_status), nothing else
        assert set(config[1:]) <= {"plan_cache_mode=force_generic_plan"}, name
        assert not public_may_execute, name


def test_reader_may_call_only_the_page_view(conn: Conn) -> None:
    rows = conn.execute(
        """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public'
             AND has_function_privilege('statusdb_reader', p.oid, 'EXECUTE')
             AND NOT has_function_privilege('public', p.oid, 'EXECUTE')"""
    ).fetchall()
    assert sorted(rows) == [
        ("statusdb_page_feed",),  # 0030: what the page's feeds show, same token rule
        ("statusdb_page_feed_v2",),  # 0033: in a locale
        ("statusdb_page_statuspage",),  # 0034: the same page, as Statuspage v2 documents
        ("statusdb_page_statuspage_v2",),  # 0035: in a locale
        ("statusdb_page_view",),
        ("statusdb_page_view_at",),
        ("statusdb_page_view_at_v2",),  # 0029: the three with the page's time zone
        ("statusdb_page_view_bytes",),  # 0028: the same page, as the stored bytes
        ("statusdb_page_view_bytes_v2",),
        ("statusdb_page_view_bytes_v3",),  # 0033: in a locale
        ("statusdb_page_view_v2",),
        ("statusdb_page_view_v3",),  # 0033: in a locale
        ("statusdb_slug_key",),  # 0039: the key of statusdb_page_public_version
    ]


@pytest.mark.slow
def test_rollback_revokes_the_grants_and_keeps_the_roles(empty_dsn: str) -> None:
    migrations.apply(empty_dsn)
    # Roll back through 0008 (and whatever later migrations sit on top of it).
    applied = [name for name, done in migrations.status(empty_dsn) if done]
    steps = len(applied) - applied.index("0008_roles_and_rls")
    assert migrations.rollback(empty_dsn, steps=steps)[-1] == "0008_roles_and_rls"
    with psycopg.connect(empty_dsn) as c:
        roles = c.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY (%s)", (list(GROUPS),)
        ).fetchone()
        assert roles == (3,)
        granted = c.execute(
            """SELECT count(*) FROM information_schema.role_table_grants
               WHERE grantee IN ('statusdb_app', 'statusdb_reader')"""
        ).fetchone()
        assert granted == (0,)
        column_grants = c.execute(
            """SELECT count(*) FROM information_schema.column_privileges
               WHERE grantee IN ('statusdb_app', 'statusdb_reader')"""
        ).fetchone()
        assert column_grants == (0,)
        leftovers = c.execute(
            """SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'public'
                 AND (p.prosecdef OR p.proconfig IS NOT NULL
                      OR NOT has_function_privilege('public', p.oid, 'EXECUTE'))"""
        ).fetchone()
        assert leftovers == (0,)
        rls = c.execute(
            "SELECT count(*) FROM pg_class WHERE relrowsecurity OR relforcerowsecurity"
        ).fetchone()
        assert rls == (0,)
        schema_acl = c.execute(
            "SELECT has_schema_privilege('statusdb_app', 'public', 'USAGE'),"
            "       array_to_string(nspacl, ',') LIKE '%statusdb%'"
            " FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone()
        assert schema_acl == (True, False)  # USAGE only through PUBLIC again
    migrations.apply(empty_dsn)  # and again: the roles exist, nothing fails
    assert all(applied for _, applied in migrations.status(empty_dsn))


@pytest.mark.slow
def test_migrations_run_as_statusdb_owner_in_a_database_it_owns(
    cluster: LocalCluster, empty_dsn: str, logins: None
) -> None:
    """The production setup: a login member of statusdb_owner whose sessions SET ROLE to it."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
        if not admin.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (MIGRATOR_LOGIN,)
        ).fetchone():
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE statusdb_owner").format(
                    sql.Identifier(MIGRATOR_LOGIN)
                )
            )
            admin.execute(
                sql.SQL("ALTER ROLE {} SET role = 'statusdb_owner'").format(
                    sql.Identifier(MIGRATOR_LOGIN)
                )
            )
        dbname = psycopg.conninfo.conninfo_to_dict(empty_dsn)["dbname"]
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO statusdb_owner").format(sql.Identifier(str(dbname)))
        )
    migrator_dsn = as_user(empty_dsn, MIGRATOR_LOGIN)
    migrations.apply(migrator_dsn)
    with psycopg.connect(empty_dsn) as c:
        owners = c.execute(
            """SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
               UNION
               SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"""
        ).fetchall()
        assert owners == [("statusdb_owner",)]
    # The backend works there, derivation included, and the owner is not a superuser.
    with psycopg.connect(as_user(empty_dsn, APP_LOGIN)) as app:
        team = teams.create(app, name="SRE")
        created = pages.create(
            app,
            team_id=team.id,
            name="P",
            slug="p",
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API", team_id=team.id)],
        )
        incidents.create(app, team.id, title="down", priority="CRITICAL")
        (component,) = components.list_for_page(app, created.page.id)
        assert component.current_status == "MAJOR_OUTAGE"
        app.commit()
    with psycopg.connect(migrator_dsn) as owner:
        assert owner.execute("SELECT current_user").fetchone() == ("statusdb_owner",)
        assert status.recompute(owner) == []
        assert status.chain_breaks(owner) == []
    assert len(migrations.rollback(migrator_dsn, allow_data_loss=True)) >= 7
    migrations.apply(migrator_dsn)
