"""The hot queries use the indexes meant for them, so that no migration can silently lose one.

One database per module, loaded with a dataset large and skewed enough that PostgreSQL's
planner prefers the intended index to a sequential scan (a few thousand rows per table: built
in about a second, with triggers off and statuses made consistent by the from-scratch
recompute). Plans come from EXPLAIN (FORMAT JSON) on the named queries with realistic
parameters; statements that run inside functions (the page view, the status derivation) are
planned by auto_explain, which reports the plan of every nested statement. No
`enable_seqscan = off`: each index must win on cost, as it does in production.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import incidents, status, views
from statusdb.db import queries
from statusdb.infra import migrations
from statusdb.tooling import localpg

# One xdist worker builds this module's module-scoped fixtures once (not once per worker).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("index_use")]

Conn = psycopg.Connection[TupleRow]

PAGES = 1000
COMPONENTS = 10  # per page
SUBSCRIBERS = 30_000  # one in ten on page p1, the others spread over the other pages

_DATASET = """
INSERT INTO team (id, name)
SELECT 't' || p, 'Team ' || p FROM generate_series(1, %(pages)s) AS p;

INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
SELECT 'p' || p, 'Page ' || p, 'page-' || p, true, 't' || p, 'u'
FROM generate_series(1, %(pages)s) AS p;

INSERT INTO status_page_component (id, status_page_id, name, display_order, team_id,
                                   service_identifier, created_at)
SELECT 'p' || p || 'c' || k, 'p' || p, 'Component ' || k, k, 't' || p,
       CASE WHEN k %% 2 = 0 THEN 'svc-' || (k %% 4) END, now() - interval '200 days'
FROM generate_series(1, %(pages)s) AS p, generate_series(0, %(components)s - 1) AS k;

-- A year of resolved incidents per team, a few active ones.
INSERT INTO incident (id, team_id, title, priority, status, service_identifier, created_at,
                      resolved_at)
SELECT 'i' || n, 't' || (1 + n %% %(pages)s), 'Incident ' || n,
       (ARRAY['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'])[1 + n %% 4],
       CASE WHEN n %% 100 = 0 THEN 'OPEN' ELSE 'RESOLVED' END,
       'svc-' || (n %% 4), now() - n * interval '10 minutes',
       CASE WHEN n %% 100 <> 0 THEN now() - n * interval '10 minutes' + interval '1 hour' END
FROM generate_series(1, 20000) AS n;

-- Five windows per page: mostly long completed, one scheduled next week, one weekly series.
INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time, status,
                                recurrence_rule, recurrence_start, created_by_id)
SELECT 'w' || n, 'p' || (1 + n %% %(pages)s), 'Window ' || n, w.start_time,
       w.start_time + interval '2 hours', w.status, w.rule,
       CASE WHEN w.rule IS NOT NULL THEN w.start_time - interval '4 weeks' END, 'u'
FROM generate_series(1, %(pages)s * 5) AS n,
     LATERAL (SELECT CASE WHEN n %% 5 = 1 THEN now() + interval '6 days'
                          WHEN n %% 5 = 2 THEN now() + interval '3 days'
                          ELSE now() - n * interval '1 hour' END AS start_time,
                     CASE WHEN n %% 5 IN (1, 2) THEN 'SCHEDULED' ELSE 'COMPLETED' END AS status,
                     CASE WHEN n %% 5 = 2 THEN 'FREQ=WEEKLY' END AS rule) AS w;

INSERT INTO maintenance_window_component (maintenance_window_id, component_id)
SELECT 'w' || n, 'p' || (1 + n %% %(pages)s) || 'c' || (n %% %(components)s)
FROM generate_series(1, %(pages)s * 5) AS n;

-- Ten status incidents per page, one of them active; five updates each.
INSERT INTO status_incident (id, status_page_id, title, severity, status, created_at,
                             resolved_at, affected_component_ids, updates)
SELECT 's' || n, 'p' || (1 + n %% %(pages)s), 'Status incident ' || n, 'MINOR',
       CASE WHEN n <= %(pages)s THEN 'INVESTIGATING' ELSE 'RESOLVED' END,
       now() - n * interval '20 minutes',
       CASE WHEN n > %(pages)s THEN now() - n * interval '20 minutes' + interval '1 hour' END,
       ARRAY['p' || (1 + n %% %(pages)s) || 'c0'],
       (SELECT jsonb_agg(jsonb_build_object('timestamp', now(), 'status', 'INVESTIGATING',
                                            'message', 'update ' || u))
        FROM generate_series(1, 5) AS u)
FROM generate_series(1, %(pages)s * 10) AS n;

-- One group per page (0020) holding its first five components.
INSERT INTO component_group (id, status_page_id, name)
SELECT 'p' || p || 'g1', 'p' || p, 'Group 1' FROM generate_series(1, %(pages)s) AS p;
UPDATE status_page_component SET group_id = status_page_id || 'g1'
WHERE split_part(id, 'c', 2)::int < 5;

-- Page p1 has one subscriber in ten (3,000, signed up over time among the others'), every
-- other page about 27; a third follow every component, one in 21 follows the page's group.
INSERT INTO status_subscriber (id, status_page_id, channel, destination, component_ids,
                               group_ids, is_verified)
SELECT 'sub' || lpad(n::text, 8, '0'), 'p' || s.page, 'EMAIL', 'user' || n || '@example.com',
       CASE WHEN n %% 3 = 0 OR n %% 21 = 1 THEN '{}'::text[]
            ELSE ARRAY['p' || s.page || 'c' || (n %% %(components)s)] END,
       CASE WHEN n %% 21 = 1 THEN ARRAY['p' || s.page || 'g1'] ELSE '{}'::text[] END,
       true
FROM generate_series(1, %(subscribers)s) AS n,
     LATERAL (SELECT CASE WHEN n %% 10 = 0 THEN 1
                          ELSE 2 + n %% (%(pages)s - 1) END AS page) AS s;

-- Six delivered changes per component over the last 200 days (each chain ends OPERATIONAL).
INSERT INTO status_change (id, status_page_id, component_id, previous_status, new_status, cause,
                           changed_at, notified_at, outcome)
SELECT 'sc' || p || '-' || k || '-' || j, 'p' || p, 'p' || p || 'c' || k,
       CASE WHEN j %% 2 = 1 THEN 'OPERATIONAL' ELSE 'MAJOR_OUTAGE' END,
       CASE WHEN j %% 2 = 1 THEN 'MAJOR_OUTAGE' ELSE 'OPERATIONAL' END,
       'INCIDENT', now() - interval '200 days' + j * interval '30 days' + k * interval '1 minute',
       now() - interval '200 days' + j * interval '30 days' + k * interval '1 minute',
       'NOTIFIED'
FROM generate_series(1, %(pages)s) AS p, generate_series(0, %(components)s - 1) AS k,
     generate_series(1, 6) AS j
ORDER BY 9;

-- The groups' log (0020) over the same 200 days: their members' outages, six changes each.
INSERT INTO component_group_status_change (status_page_id, group_id, previous_status,
                                           new_status, changed_at)
SELECT 'p' || p, 'p' || p || 'g1',
       CASE WHEN j %% 2 = 1 THEN 'OPERATIONAL' ELSE 'MAJOR_OUTAGE' END,
       CASE WHEN j %% 2 = 1 THEN 'MAJOR_OUTAGE' ELSE 'OPERATIONAL' END,
       now() - interval '200 days' + j * interval '30 days'
FROM generate_series(1, %(pages)s) AS p, generate_series(1, 6) AS j
ORDER BY 5;

-- Translations (0033): every page's name and components' names in de and fr, its incidents'
-- titles and second updates in de (triggers are off: status_page_id written here).
INSERT INTO translation (status_page_id, locale, entity_kind, entity_id, field, text)
SELECT 'p' || p, l.locale, 'page', 'p' || p, 'name', 'Seite ' || p
FROM generate_series(1, %(pages)s) AS p, (VALUES ('de'), ('fr')) AS l (locale);
INSERT INTO translation (status_page_id, locale, entity_kind, entity_id, field, text)
SELECT 'p' || p, l.locale, 'component', 'p' || p || 'c' || k, 'name', 'Komponente ' || k
FROM generate_series(1, %(pages)s) AS p, generate_series(0, %(components)s - 1) AS k,
     (VALUES ('de'), ('fr')) AS l (locale);
INSERT INTO translation (status_page_id, locale, entity_kind, entity_id, update_number, field,
                         text)
SELECT 'p' || (1 + n %% %(pages)s), 'de', e.kind, 's' || n, e.number, e.field, 'Text ' || n
FROM generate_series(1, %(pages)s * 10) AS n,
     (VALUES ('incident', 0, 'title'), ('incident_update', 2, 'message')) AS e (kind, number,
                                                                               field);
"""


_PARAMS = {"pages": PAGES, "components": COMPONENTS, "subscribers": SUBSCRIBERS}


@pytest.fixture(scope="module")
def db(cluster: localpg.LocalCluster) -> Iterator[str]:
    """A migrated database with the dataset, analyzed; dropped after the module."""
    name = f"statusdb_index_use_{uuid.uuid4().hex[:8]}"
    dsn = cluster.ensure_database(name)
    try:
        migrations.apply(dsn)
        with psycopg.connect(dsn) as conn:
            conn.execute("SET session_replication_role = replica")
            for statement in _DATASET.split(";\n"):
                if statement.strip():
                    conn.execute(statement.encode(), _PARAMS)
            conn.execute("SET session_replication_role = origin")
            conn.commit()
            status.recompute(conn, repair=True)  # active incidents move their components
            conn.commit()
            views.recompute_snapshots(conn, repair=True)  # the pages' first snapshots (0017)
            conn.commit()
            # Deliver what the recompute logged, except one component's changes (the outbox
            # has a little pending work, as it normally does).
            conn.execute(
                """UPDATE status_change SET notified_at = now(), outcome = 'NOTIFIED'
                   WHERE notified_at IS NULL AND component_id <> 'p100c0'"""
            )
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        yield dsn
    finally:
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


@pytest.fixture
def conn(db: str) -> Iterator[Conn]:
    with psycopg.connect(db) as connection:
        yield connection
        connection.rollback()


def scans(plan: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """Every scan node of a plan as (node type, relation, index), depth first."""
    found: list[tuple[str, str, str | None]] = []
    if "Relation Name" in plan or "Index Name" in plan:
        found.append((plan["Node Type"], plan.get("Relation Name", "?"), plan.get("Index Name")))
    for child in plan.get("Plans", []):
        found.extend(scans(child))
    return found


def explain(conn: Conn, name: str, params: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    row = conn.execute(b"EXPLAIN (FORMAT JSON) " + queries.get(name).sql, params).fetchone()
    assert row is not None
    return scans(row[0][0]["Plan"])


def nested_plans(conn: Conn, statement: bytes, params: Any = None) -> list[dict[str, Any]]:
    """Run `statement` (then roll back) under auto_explain; the plans of every statement it
    ran, functions' and triggers' included."""
    plans: list[dict[str, Any]] = []

    def collect(diagnostic: psycopg.errors.Diagnostic) -> None:
        message = diagnostic.message_primary or ""
        if "plan:" in message:
            plans.append(json.loads(message.split("plan:", 1)[1]))

    conn.execute("LOAD 'auto_explain'")
    for setting, value in (
        ("auto_explain.log_min_duration", "0"),
        ("auto_explain.log_nested_statements", "on"),
        ("auto_explain.log_format", "json"),
        ("auto_explain.log_level", "notice"),
    ):
        conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
    conn.add_notice_handler(collect)
    try:
        conn.execute(statement, params)
    finally:
        conn.remove_notice_handler(collect)
        conn.rollback()
        conn.execute("SELECT set_config('auto_explain.log_min_duration', '-1', false)")
    return plans


def all_scans(plans: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = []
    for plan in plans:
        found.extend(scans(plan["Plan"]))
    return found


def uses(found: list[tuple[str, str, str | None]], index: str) -> bool:
    return any(idx == index for _, _, idx in found)


def seq_scanned(found: list[tuple[str, str, str | None]], *tables: str) -> list[str]:
    return [rel for node, rel, _ in found if node == "Seq Scan" and rel in tables]


def test_page_view_by_slug(conn: Conn) -> None:
    """The page view is one index lookup of the page's snapshot (0017), conditional or not."""
    for statement in (
        b"SELECT * FROM statusdb_page_view('page-7', NULL, interval '7 days', 20)",
        b"SELECT * FROM statusdb_page_view('page-7', NULL, interval '7 days', 20, 12345)",
    ):
        plans = nested_plans(conn, statement)
        found = all_scans(plans)
        assert uses(found, "status_page_snapshot_slug_idx"), found
        # Nothing else is read: no rendering at read time.
        assert {rel for _, rel, _ in found} == {"status_page_snapshot"}, found


def test_page_view_v2_by_slug(conn: Conn) -> None:
    """0029's page views add one primary-key read of status_page (the time zone), no scan."""
    for statement in (
        b"SELECT * FROM statusdb_page_view_v2('page-7', NULL, interval '7 days', 20)",
        b"SELECT * FROM statusdb_page_view_v2('page-7', NULL, interval '7 days', 20, 12345)",
        b"SELECT * FROM statusdb_page_view_bytes_v2('page-7', NULL, interval '7 days', 20)",
    ):
        plans = nested_plans(conn, statement)
        found = all_scans(plans)
        assert uses(found, "status_page_snapshot_slug_idx"), found
        assert {rel for _, rel, _ in found} <= {"status_page_snapshot", "status_page"}, found
        assert seq_scanned(found, "status_page_snapshot", "status_page") == [], found


def test_page_view_v3_in_a_locale(conn: Conn) -> None:
    """0033's reads in a locale: 0029's lookups, then the page's locales and each shown
    entity's translations through translation's indexes (the locale chain's EXISTS on
    translation_status_page_id_locale_idx, the overlay on translation_pkey): no scan of
    translation, of the snapshots or of the pages, whatever the locale (a tag with
    translations, one falling back to its language, none, no locale at all)."""
    for locale in (b"'de'", b"'de-CH'", b"'it'", b"NULL"):
        for statement in (
            b"SELECT * FROM statusdb_page_view_v3('page-7', NULL, interval '7 days', 20, NULL, "
            + locale
            + b")",
            b"SELECT * FROM statusdb_page_view_v3('page-7', NULL, interval '7 days', 20, 1, "
            + locale
            + b")",
            b"SELECT * FROM statusdb_page_view_bytes_v3('page-7', NULL, interval '7 days', 20, "
            b"NULL, " + locale + b")",
        ):
            plans = nested_plans(conn, statement)
            found = all_scans(plans)
            assert uses(found, "status_page_snapshot_slug_idx"), (locale, found)
            if locale in (b"'de'", b"'de-CH'"):
                assert uses(found, "translation_status_page_id_locale_idx"), (locale, found)
            tables = {rel for _, rel, _ in found}
            assert tables <= {"status_page_snapshot", "status_page", "translation"}, found
            assert seq_scanned(found, "status_page_snapshot", "status_page", "translation") == [], (
                locale,
                found,
            )
            scanned = {idx for _, rel, idx in found if rel == "translation"}
            assert scanned <= {"translation_pkey", "translation_status_page_id_locale_idx"}, found


def test_page_render_by_page(conn: Conn) -> None:
    """The writers' rendering (and the repair's) reaches each table through its page index."""
    plans = nested_plans(conn, b"SELECT * FROM statusdb_page_render(ARRAY['p7'])")
    found = all_scans(plans)
    assert uses(found, "status_page_pkey"), found
    assert uses(found, "status_page_component_status_page_id_display_order_idx"), found
    assert uses(found, "status_incident_status_page_id_status_idx"), found
    assert uses(found, "maintenance_window_status_page_id_start_time_idx"), found
    assert uses(found, "maintenance_window_component_pkey"), found
    tables = ("status_page", "status_page_component", "status_incident", "maintenance_window")
    assert seq_scanned(found, *tables) == [], found


def test_outbox_claim(conn: Conn) -> None:
    found = explain(
        conn,
        "outbox_claim",
        {
            "worker": "w1",
            "limit": 100,
            "hold_down": dt.timedelta(0),
            "lease": dt.timedelta(minutes=2),
        },
    )
    assert uses(found, "status_change_pending_idx"), found
    # The folding rule (issue 27) reads the previous change and the cause's status incidents
    # by index (the dataset has no notification events: an empty table is scanned).
    assert seq_scanned(found, "status_change", "status_incident") == [], found


#: Indexes of status_subscriber that lead with status_page_id.
PAGE_SUBSCRIBER_INDEXES = {
    "status_subscriber_status_page_id_id_idx",
    "status_subscriber_status_page_id_is_active_idx",
    "status_subscriber_status_page_id_channel_destination_key",
    "status_subscriber_fan_out_page_idx",  # 0018: a page's followers of some components
}


def test_fan_out_recipients(conn: Conn) -> None:
    """Followers of every component through the partial B-tree, followers of the component
    through the GIN index (0010), followers of its groups through theirs (0020): the page's
    other subscribers are never read."""
    found = explain(
        conn,
        "outbox_recipients",
        {
            "status_page_id": "p42",
            "component_id": "p42c2",
            "notify_types": ["outage"],
            "folded_into": [],
        },
    )
    assert uses(found, "status_subscriber_fan_out_everything_idx"), found
    assert uses(found, "status_subscriber_fan_out_component_idx"), found
    assert uses(found, "status_subscriber_fan_out_group_idx"), found
    assert seq_scanned(found, "status_subscriber") == [], found


def test_fan_out_recipients_as_the_app_role(conn: Conn) -> None:
    """As statusdb_app, under row-level security (0008): the policy comes first, and a query's
    condition may only be used inside an index scan if its operator is leakproof. Array
    containment (@>) is not, so the GIN index cannot serve the followers of the component
    there; the page's own index does (never a scan of the table). The followers of everything
    still come from their partial index."""
    conn.execute("SET ROLE statusdb_app")
    found = explain(
        conn,
        "outbox_recipients",
        {
            "status_page_id": "p42",
            "component_id": "p42c2",
            "notify_types": ["outage"],
            "folded_into": [],
        },
    )
    assert uses(found, "status_subscriber_fan_out_everything_idx"), found
    assert not uses(found, "status_subscriber_fan_out_component_idx"), found
    assert any(index in PAGE_SUBSCRIBER_INDEXES for _, _, index in found), found
    assert seq_scanned(found, "status_subscriber") == [], found


def test_fan_out_recipients_of_a_large_page(conn: Conn) -> None:
    """p1 has 3,000 subscribers: still read through indexes on its page id (which one of them
    is the planner's call), never by scanning the table."""
    found = explain(
        conn,
        "outbox_recipients",
        {
            "status_page_id": "p1",
            "component_id": "p1c2",
            "notify_types": ["outage"],
            "folded_into": [],
        },
    )
    indexes = {index for _, _, index in found}
    assert indexes & (PAGE_SUBSCRIBER_INDEXES | {"status_subscriber_fan_out_everything_idx"}), found
    assert "status_subscriber_fan_out_component_idx" in indexes, found
    assert seq_scanned(found, "status_subscriber") == [], found


def test_event_recipients(conn: Conn) -> None:
    """An event (0018) about some components: the same two indexes as a change's fan-out. A
    page-wide event: the followers of everything and the page's other followers, each through
    an index (status_subscriber_fan_out_page_idx or one on the page id: the planner's call for
    a page's few dozen), never the table."""
    some = explain(
        conn,
        "event_recipients",
        {"status_page_id": "p42", "component_ids": ["p42c2", "p42c3"], "kind": "incident_updated"},
    )
    # Those following everything: through the covering partial index or one on the page id
    # (for a page's few dozen subscribers either is fine: the planner's call, which varies
    # with the run's statistics).
    some_indexes = {index for _, _, index in some}
    assert some_indexes & (PAGE_SUBSCRIBER_INDEXES | {"status_subscriber_fan_out_everything_idx"})
    assert uses(some, "status_subscriber_fan_out_component_idx"), some
    assert seq_scanned(some, "status_subscriber") == [], some
    for role in ("owner", "statusdb_app"):  # the app under row-level security too
        if role != "owner":
            conn.execute("SET ROLE statusdb_app")
        for page in ("p42", "p1"):
            everyone = explain(
                conn,
                "event_recipients",
                {"status_page_id": page, "component_ids": [], "kind": "incident_updated"},
            )
            used = {index for _, _, index in everyone}
            assert used & (PAGE_SUBSCRIBER_INDEXES | {"status_subscriber_fan_out_everything_idx"})
            assert seq_scanned(everyone, "status_subscriber") == [], everyone


def test_page_wide_fan_out_is_index_only(conn: Conn) -> None:
    """A page-wide event's followers of everything come by an index-only scan of their
    covering index, as the app under row-level security too (issue 20, 0042: 0033 added the
    locale to the fan-out's output and the index no longer covered it: an Index Scan visiting
    the heap row of every recipient)."""
    for role in ("owner", "statusdb_app"):
        if role != "owner":
            conn.execute("SET ROLE statusdb_app")
        everyone = explain(
            conn,
            "event_recipients",
            {"status_page_id": "p1", "component_ids": [], "kind": "incident_updated"},
        )
        assert (
            "Index Only Scan",
            "status_subscriber",
            "status_subscriber_fan_out_everything_idx",
        ) in everyone, (role, everyone)


def test_status_derivation_incident_lookup(conn: Conn) -> None:
    """Opening an incident: every statement of the derivation (triggers, functions) reads
    incidents, components, windows and the log through their indexes."""
    plans = nested_plans(
        conn,
        b"INSERT INTO incident (team_id, title, priority) VALUES ('t9', 'db down', 'CRITICAL')",
    )
    found = all_scans(plans)
    assert uses(found, "incident_team_id_status_idx"), found
    assert uses(found, "status_page_component_team_id_idx"), found
    tables = (
        "incident",
        "status_page_component",
        "maintenance_window_component",
        "maintenance_window",
        "status_change",
    )
    assert seq_scanned(found, *tables) == [], found


def test_status_derivation_one_component(conn: Conn) -> None:
    """The scalar derivation (component trigger, recompute's view) uses the same indexes."""
    plans = nested_plans(
        conn,
        b"SELECT statusdb_derive_status('p9c0', 't9', 'svc-0', 'OPERATIONAL')",
    )
    found = all_scans(plans)
    assert uses(found, "incident_team_id_status_idx"), found
    tables = ("incident", "maintenance_window_component", "maintenance_window")
    assert seq_scanned(found, *tables) == [], found


def node_types(plan: dict[str, Any]) -> list[str]:
    return [plan["Node Type"], *(t for child in plan.get("Plans", []) for t in node_types(child))]


def test_subscriber_listing(conn: Conn) -> None:
    """A page of a large page's subscribers (p1 has 3,000), in id order: read through an index
    in that order, never by sorting all of the page's subscribers nor by scanning the table."""
    params = {"status_page_id": "p1", "after": "", "active_only": True, "limit": 100}
    row = conn.execute(
        b"EXPLAIN (FORMAT JSON) " + queries.get("subscriber_list_for_page").sql, params
    ).fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    found = scans(plan)
    assert {index for _, _, index in found} <= {
        "status_subscriber_status_page_id_id_idx",
        "status_subscriber_pkey",  # id order, when the page holds a large share of the table
    }, found
    assert "Sort" not in node_types(plan), found
    assert seq_scanned(found, "status_subscriber") == [], found


def test_subscriber_listing_of_a_small_page(conn: Conn) -> None:
    """A page with few subscribers is found through an index on status_page_id, not by
    walking the table in id order."""
    found = explain(
        conn,
        "subscriber_list_for_page",
        {"status_page_id": "p42", "after": "", "active_only": True, "limit": 100},
    )
    assert any(index in PAGE_SUBSCRIBER_INDEXES for _, _, index in found), found
    assert seq_scanned(found, "status_subscriber") == [], found


def test_status_incident_history(conn: Conn) -> None:
    found = explain(
        conn,
        "status_incident_history",
        {
            "status_page_id": "p42",
            "days": 90,
            "after_resolved_at": None,
            "after_id": None,
            "limit": 21,
        },
    )
    assert uses(found, "status_incident_resolved_history_idx"), found
    assert seq_scanned(found, "status_incident") == [], found


@pytest.mark.parametrize("name", ["maintenance_advance_by_time", "maintenance_lock_ended_series"])
def test_maintenance_due_scan(conn: Conn, name: str) -> None:
    """The scheduler finds due windows through (status, start_time). (advance_by_time then
    joins its few due rows back to maintenance_window; the planner may hash that join over a
    scan of the table, which is not the due scan this test is about.)"""
    params = {"now": dt.datetime.now(dt.UTC)}
    if name == "maintenance_advance_by_time":
        # Since 0032 the statement is statusdb_maintenance_advance_by_time's (pg_cron runs it
        # too): the plans of the function's statements, as auto_explain reports them.
        plans = nested_plans(conn, queries.get(name).sql, params)
        found = [scan for plan in plans for scan in scans(plan["Plan"])]
    else:
        found = explain(conn, name, params)
    due_scans = [(node, index) for node, rel, index in found if index and "status" in index]
    assert "maintenance_window_status_start_time_idx" in {i for _, i in due_scans}, found


def test_uptime_of_a_page(conn: Conn) -> None:
    end = dt.datetime.now(dt.UTC)
    found = explain(
        conn,
        "uptime_for_page",
        {"page_id": "p42", "start": end - dt.timedelta(days=90), "end": end},
    )
    assert uses(found, "status_change_status_page_id_changed_at_idx"), found
    assert uses(found, "status_change_component_id_seq_idx"), found
    assert seq_scanned(found, "status_change") == [], found


def test_the_derivation_really_ran(conn: Conn) -> None:
    """Sanity: the dataset drives statuses (so the derivation plans above are real ones)."""
    opened = incidents.create(conn, "t9", title="x", priority="CRITICAL")
    row = conn.execute(
        "SELECT count(*) FROM status_page_component WHERE team_id = 't9'"
        " AND current_status = 'MAJOR_OUTAGE'"
    ).fetchone()
    assert row == (COMPONENTS // 2,)  # the components without a service identifier
    assert opened.status == "OPEN"


def test_daily_uptime_of_a_page(conn: Conn) -> None:
    """uptime.daily (0021): the log through the same two indexes as uptime_for_page, the page's
    components and status incidents through their page indexes, the groups' log (0020) through
    its own two; no table scanned."""
    found = explain(
        conn,
        "uptime_daily",
        {"page_id": "p42", "days": 90, "until": None, "fp": False, "fp_from": None},
    )
    assert uses(found, "status_change_status_page_id_changed_at_idx"), found
    assert uses(found, "status_change_component_id_seq_idx"), found
    assert uses(found, "status_incident_status_page_id_status_idx"), found
    assert uses(found, "component_group_status_change_status_page_id_changed_at_idx"), found
    assert uses(found, "component_group_status_change_group_id_seq_idx"), found
    tables = (
        "status_change",
        "status_incident",
        "status_page_component",
        "status_page",
        "component_group",
        "component_group_status_change",
    )
    assert seq_scanned(found, *tables) == [], found


def nested_loop_cte_rescans(plan: dict[str, Any]) -> list[str]:
    """The CTEs a nested loop of `plan` scans again per outer row (its inner side)."""
    found: list[str] = []
    kids = plan.get("Plans", [])
    if plan["Node Type"] == "Nested Loop":
        found.extend(
            kid["CTE Name"]
            for kid in kids
            if kid.get("Parent Relationship") == "Inner" and kid["Node Type"] == "CTE Scan"
        )
    for kid in kids:
        found.extend(nested_loop_cte_rescans(kid))
    return found


def test_daily_uptime_joins_no_cte_to_another_by_nested_loop(conn: Conn) -> None:
    """Issue 20: PostgreSQL estimates each CTE at one row, so a join of two of them by id is a
    nested loop (before the rewrite: the in-range changes x the series, 12,750 comparisons on
    the bench page, and the incident listings x the series). Only the one-row `span` and the
    page's few-row group tree may be scanned per outer row."""
    query = queries.get("uptime_daily").sql
    params = {"page_id": "p42", "days": 90, "until": None, "fp": False, "fp_from": None}
    row = conn.execute(b"EXPLAIN (FORMAT JSON) " + query, params).fetchone()
    assert row is not None
    rescans = nested_loop_cte_rescans(row[0][0]["Plan"])
    # `past` is one row too (the cache's fingerprint bounds, DailyUptimeCache).
    assert set(rescans) <= {"span", "group_up", "past"}, rescans


@pytest.mark.parametrize("name", ["uptime_daily", "uptime_for_page"])
def test_uptime_generic_plan_reads_each_component_alone(conn: Conn, name: str) -> None:
    """Issue 20: the statements are prepared and their plans cached generic (the page
    unknown). As one, the status at the start of each component's period ANDed a bitmap of the
    page's whole past (the page index) into the component's scan, once per component: the page
    index is for the one range scan only, each component's lookup a backward scan of its own
    changes."""
    conn.execute("SET plan_cache_mode = force_generic_plan")
    end = dt.datetime.now(dt.UTC)
    params: dict[str, Any] = {
        "page_id": "p42",
        "days": 90,
        "until": None,
        "fp": False,
        "fp_from": None,
    }
    if name == "uptime_for_page":
        params = {"page_id": "p42", "start": end - dt.timedelta(days=90), "end": end}
    row = conn.execute(b"EXPLAIN (FORMAT JSON) " + queries.get(name).sql, params).fetchone()
    assert row is not None
    found = scans(row[0][0]["Plan"])
    page_index = [s for s in found if s[2] == "status_change_status_page_id_changed_at_idx"]
    # uptime_daily: the second is the range scan of the past days for DailyUptimeCache's
    # fingerprint (run only when it asks: `fp`).
    assert len(page_index) == (2 if name == "uptime_daily" else 1), found
    assert uses(found, "status_change_component_id_seq_idx"), found
    assert seq_scanned(found, "status_change") == [], found


@pytest.mark.slow
@pytest.mark.parametrize("name", ["uptime_daily", "uptime_for_page"])
def test_uptime_generic_plan_stops_at_the_first_change_before_the_period(
    conn: Conn, name: str
) -> None:
    """Issue 20 item 5: in the generic plan the status at the start of each component's period
    is a backward scan of status_change_component_id_seq_idx under a LIMIT, which stops at the
    first change before the period; not a bitmap of all the component's changes and a sort
    (what the page filter written `IS TRUE` got: 1,155 buffers for the bench page's 50
    components on the 1M-row log, 455 as a backward scan). The planner takes the bitmap when
    a component has about as many changes as the bench's (20, here 6): 14 older ones each,
    and the statistics, inside this test's transaction (rolled back)."""
    conn.execute(
        """INSERT INTO status_change (status_page_id, component_id, previous_status,
                                      new_status, cause, changed_at)
           SELECT c.status_page_id, c.id,
                  CASE WHEN j % 2 = 1 THEN 'OPERATIONAL' ELSE 'MAJOR_OUTAGE' END,
                  CASE WHEN j % 2 = 1 THEN 'MAJOR_OUTAGE' ELSE 'OPERATIONAL' END, 'MANUAL',
                  now() - interval '400 days' + j * interval '10 days'
           FROM status_page_component c, generate_series(1, 14) AS j"""
    )
    conn.execute("ANALYZE status_change")
    conn.execute("SET plan_cache_mode = force_generic_plan")
    end = dt.datetime.now(dt.UTC)
    params: dict[str, Any] = {
        "page_id": "p42",
        "days": 90,
        "until": None,
        "fp": False,
        "fp_from": None,
    }
    if name == "uptime_for_page":
        params = {"page_id": "p42", "start": end - dt.timedelta(days=90), "end": end}
    row = conn.execute(b"EXPLAIN (FORMAT JSON) " + queries.get(name).sql, params).fetchone()
    assert row is not None
    found = scans(row[0][0]["Plan"])
    on_component = [s for s in found if s[2] == "status_change_component_id_seq_idx"]
    assert on_component, found
    assert all(s[0] == "Index Scan" for s in on_component), found


def test_doctor_reads_by_index_only(conn: Conn) -> None:
    """statusdb doctor is bounded on a large database (issue 23): its samples walk the
    primary keys from a point and look their rows up by key, and its counts read partial
    indexes; no check scans a table. (A sample of 10 here: on this dataset's 10,000
    components a sample of 1% costs a scan about as much as 100 lookups, and the planner may
    take either; in production the table is what grows, not the sample.)"""
    plans = nested_plans(conn, b"SELECT * FROM statusdb_doctor_sample_v1(10)")
    found = all_scans(plans)
    big = ("status_page_component", "status_change", "status_page", "status_page_snapshot")
    assert seq_scanned(found, *big) == [], found
    assert uses(found, "status_change_component_id_seq_idx"), found
    # The tables this dataset fills (a scan of an empty one is the right plan).
    large = [
        name
        for (name,) in conn.execute(
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND reltuples > 5000"
            " AND relname = ANY (%s)",
            ([*big, "notification_event", "status_subscriber", "delivery_attempt"],),
        ).fetchall()
    ]
    assert "status_subscriber" in large
    for name, params in (
        ("doctor_outbox", {"cap": 100_000}),
        ("doctor_stuck_leases", {"grace": "60 seconds"}),
        ("doctor_delivery_failures", {"window": "3600 seconds"}),
        ("doctor_deactivated_subscribers", {"window": "3600 seconds"}),
        ("doctor_maintenance_overdue", {"age": "120 seconds"}),
    ):
        scanned = explain(conn, name, params)
        assert seq_scanned(scanned, *large) == [], (name, scanned)
