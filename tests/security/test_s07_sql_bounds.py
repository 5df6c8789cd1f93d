"""Unbounded work from one request, SQL side: the functions a SQL client may call bound themselves.

The database is the boundary for SQL clients: statusdb_reader and statusdb_app can call the SQL
functions without going through the Python wrapper's validation, so every function they may
execute clamps or refuses its own arguments, and nothing else is executable by them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from factories import ensure_login
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import pages, teams, views
from statusdb.errors import InvalidInput
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]

READER_LOGIN = "statusdb_s07_reader"
APP_LOGIN = "statusdb_s07_app"
NOBODY_LOGIN = "statusdb_s07_nobody"

#: The functions statusdb_app may execute, each with what bounds its work (migration 0014).
APP_FUNCTIONS = {
    # Needed by any role that writes the tables (defaults, CHECKs, policies, triggers running
    # as the writer): PUBLIC keeps EXECUTE. No arguments, or work linear in the caller's own
    # argument, and nothing beyond the caller's own privileges.
    "statusdb_new_id()",
    "statusdb_current_team()",
    "statusdb_is_status_update_list(jsonb)",
    "statusdb_check_component_ids(text,text[],text)",
    # 0024's CHECK of status_incident.updates: linear in the value (500 entries at most pass).
    "statusdb_is_readable_timestamp(text)",
    "statusdb_is_readable_timeline(jsonb)",
    # The maintenance scheduler's statements take the status locks themselves.
    "statusdb_status_lock_key(text,text)",
    "statusdb_lock_status_keys(bigint[])",
    "statusdb_lock_maintenance_windows(text[])",  # 0023: at most 10000 windows
    "statusdb_lock_status_inputs(text[],text[],text[])",  # 0038: at most 10000 ids each
    # status.recompute (no arguments to bound: it reads every component once).
    "statusdb_recompute_statuses(boolean)",
    # 0013's SSRF guard runs as the writer of status_subscriber (linear in the URL's length).
    "statusdb_destination_host_problem(text)",
    "statusdb_destination_problem(text,text)",
    # 0045: the guard trigger's WHEN shortcut (two regular expressions over the URL).
    "statusdb_destination_is_plain(text)",
    # The page view: clamps its arguments (if_version: one comparison).
    "statusdb_page_view(text,bytea,interval,integer,bigint)",
    # views.repair_snapshots (no arguments to bound: it renders every page once, 0017).
    "statusdb_page_snapshot_repair(boolean)",
    # 0020: groups.recompute (reads every group once); the subscriber group check (refuses
    # more than 1000 ids); the fan-out's group path (at most 3 steps up the tree).
    "statusdb_recompute_group_statuses(boolean)",
    "statusdb_check_group_ids(text,text[],text)",
    "statusdb_component_group_path(text)",
    # 0018: who gets a notification (runs as the caller: one pass over subscribers it may read
    # anyway) and the scheduler's reminders (at most 1000 windows within 7 days per call).
    "statusdb_notification_recipients(text,text[],text[],text[])",
    "statusdb_maintenance_remind(timestamp with time zone)",
    # The page view at an instant (0022): the same bounds, and the instant within the history
    # kept (horizon to now()).
    "statusdb_page_view_at(text,bytea,timestamp with time zone,interval,integer)",
    # 0028: the page view as stored bytes (the same bounds as statusdb_page_view).
    "statusdb_page_view_bytes(text,bytea,interval,integer,bigint)",
    # 0029: the three page views with the page's time zone (their bodies and bounds plus one
    # primary-key read of status_page).
    "statusdb_page_view_v2(text,bytea,interval,integer,bigint)",
    "statusdb_page_view_at_v2(text,bytea,timestamp with time zone,interval,integer)",
    "statusdb_page_view_bytes_v2(text,bytea,interval,integer,bigint)",
    # 0030: the feeds' read: feed_limit 1 to 200, a slug over 100 bytes finds nothing, each
    # incident's last 50 updates, each window's last 100 history versions.
    "statusdb_page_feed(text,bytea,integer)",
    # 0032: the scheduler's step. The transitions due at an instant (the statement advance ran
    # before, the windows' locks at most 10000 windows), the step for pg_cron (those, the
    # reminders, a heartbeat), the heartbeat (instance 1-200 characters, duration under a
    # day; the table keeps 1000 instances), and doctor's samples (1-10000 rows each).
    "statusdb_maintenance_advance_by_time(timestamp with time zone,text)",
    "statusdb_advance_v1(text)",
    "statusdb_record_scheduler_run(text,interval,integer,integer)",
    "statusdb_doctor_sample_v1(integer)",
    # 0033: the reads in a locale: the bounds of the functions they wrap, page_locale a tag of
    # at most 35 characters; the overlay looks translations up per shown entity
    # (translation_pkey). A notification event's texts: one event, its timeline (500 entries).
    "statusdb_page_view_v3(text,bytea,interval,integer,bigint,text)",
    "statusdb_page_view_bytes_v3(text,bytea,interval,integer,bigint,text)",
    "statusdb_page_feed_v2(text,bytea,integer,text)",
    "statusdb_event_texts(text,text)",
    # 0033: who is told, with the subscriber's locale (0020's body: one pass over the page's
    # matching subscribers, which the caller may read directly).
    "statusdb_notification_recipients_v2(text,text[],text[],text[])",
    # 0034: Statuspage v2 documents (the same bounds, and the document name from a fixed list).
    "statusdb_page_statuspage(text,bytea,interval,integer,text,text)",
    # 0035: the same in a locale (the locale bounded as statusdb_page_view_bytes_v3's).
    "statusdb_page_statuspage_v2(text,bytea,interval,integer,text,text,text)",
    # 0039: sha256 of a slug's UTF-8 (a slug of any length: the hash's own cost), the key of
    # statusdb_page_public_version, whose users call it through the view.
    "statusdb_slug_key(text)",
}
PUBLIC_FUNCTIONS = {
    "statusdb_new_id()",
    "statusdb_current_team()",
    "statusdb_is_status_update_list(jsonb)",
    "statusdb_check_component_ids(text,text[],text)",
    "statusdb_is_readable_timestamp(text)",
    "statusdb_is_readable_timeline(jsonb)",
}
READER_FUNCTIONS = PUBLIC_FUNCTIONS | {
    "statusdb_page_view(text,bytea,interval,integer,bigint)",
    "statusdb_page_view_at(text,bytea,timestamp with time zone,interval,integer)",
    "statusdb_page_view_bytes(text,bytea,interval,integer,bigint)",
    "statusdb_page_view_v2(text,bytea,interval,integer,bigint)",
    "statusdb_page_view_at_v2(text,bytea,timestamp with time zone,interval,integer)",
    "statusdb_page_view_bytes_v2(text,bytea,interval,integer,bigint)",
    "statusdb_page_feed(text,bytea,integer)",
    "statusdb_page_view_v3(text,bytea,interval,integer,bigint,text)",
    "statusdb_page_view_bytes_v3(text,bytea,interval,integer,bigint,text)",
    "statusdb_page_feed_v2(text,bytea,integer,text)",
    "statusdb_page_statuspage(text,bytea,interval,integer,text,text)",
    "statusdb_page_statuspage_v2(text,bytea,interval,integer,text,text,text)",
    "statusdb_slug_key(text)",  # 0039: through statusdb_page_public_version
}


@pytest.fixture
def reader(dsn: str, cluster: LocalCluster) -> Iterator[Conn]:
    ensure_login(cluster, READER_LOGIN, "statusdb_reader")
    with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as connection:
        yield connection


@pytest.fixture
def page_with_many_windows(conn: Conn) -> str:
    """A public page with 300 scheduled windows spread over the next 300 years."""
    team = teams.create(conn, name="T")
    created = pages.create(
        conn, team_id=team.id, name="P", slug="many", created_by_id="u", is_public=True
    )
    conn.execute(
        """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                                           created_by_id)
           SELECT %s, 'w' || i, now() + i * interval '1 year',
                  now() + i * interval '1 year' + interval '1 hour', 'u'
           FROM generate_series(1, 300) AS i""",
        (created.page.id,),
    )
    conn.commit()
    return "many"


def _windows(reader: Conn, slug: str, horizon: str | None, limit: int | None) -> int:
    row = reader.execute(
        "SELECT json_array_length(maintenance) FROM statusdb_page_view(%s, NULL, %s::interval, %s)",
        (slug, horizon, limit),
    ).fetchone()
    assert row is not None
    count: int = row[0]
    return count


def test_reader_cannot_list_every_window_with_a_null_limit(
    reader: Conn, page_with_many_windows: str
) -> None:
    """A reader calls the page view with a NULL limit and a 1000-year horizon: every window."""
    try:
        shown = _windows(reader, page_with_many_windows, "1000 years", None)
    except pg_errors.InvalidParameterValue:
        shown = 0  # refused: the horizon is out of range
    assert shown <= 200
    # A NULL limit and horizon mean the documented defaults (20 windows, 7 days).
    assert _windows(reader, page_with_many_windows, "300 days", None) == 0
    assert _windows(reader, page_with_many_windows, None, None) == 0


@pytest.mark.parametrize(
    ("horizon", "limit"),
    [("1000 years", 20), ("367 days", 20), ("-1 day", 20), ("7 days", 201), ("7 days", -1)],
)
def test_reader_cannot_pass_out_of_range_page_view_arguments(
    reader: Conn, page_with_many_windows: str, horizon: str, limit: int
) -> None:
    """A reader passes a horizon or limit beyond the maxima to widen the page view's work."""
    with pytest.raises(pg_errors.InvalidParameterValue, match=r"maintenance_(horizon|limit)"):
        _windows(reader, page_with_many_windows, horizon, limit)


def test_maxima_work_from_sql_and_python(
    reader: Conn, conn: Conn, page_with_many_windows: str
) -> None:
    """The documented maxima themselves are accepted, from SQL and from views.page_view."""
    assert _windows(reader, page_with_many_windows, "366 days", 200) == 1
    view = views.page_view(
        conn,
        page_with_many_windows,
        maintenance_horizon=dt.timedelta(days=366),
        maintenance_limit=200,
    )
    assert view is not None
    assert len(view.upcoming_maintenance) == 1
    for horizon in (dt.timedelta(days=367), -dt.timedelta(days=1)):
        with pytest.raises(InvalidInput, match="maintenance_horizon"):
            views.page_view(conn, page_with_many_windows, maintenance_horizon=horizon)


def test_huge_slug_and_token_cost_nothing(reader: Conn, page_with_many_windows: str) -> None:
    """A reader sends a slug or token digest of megabytes: no page, no hashing of megabytes."""
    huge = "a" * 5_000_000
    huge_digest = b"a" * 5_000_000
    assert reader.execute(
        "SELECT count(*) FROM statusdb_page_view(%s, %s, NULL, NULL)", (huge, huge_digest)
    ).fetchone() == (0,)
    assert reader.execute(
        "SELECT count(*) FROM statusdb_page_view(%s, %s, NULL, NULL)",
        (page_with_many_windows, huge_digest),
    ).fetchone() == (1,)  # public page: the digest is ignored


def _executable(conn: Conn, role: str) -> set[str]:
    rows = conn.execute(
        """SELECT p.oid::regprocedure::text
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.proname LIKE 'statusdb\\_%%'
             AND has_function_privilege(%s, p.oid, 'EXECUTE')""",
        (role,),
    ).fetchall()
    return {name.replace(", ", ",") for (name,) in rows}


def test_roles_execute_only_audited_functions(conn: Conn, cluster: LocalCluster, dsn: str) -> None:
    """Any login, the reader or the app calls internal functions (derivation, locks, log)."""
    assert _executable(conn, "public") == PUBLIC_FUNCTIONS
    assert _executable(conn, "statusdb_reader") == READER_FUNCTIONS
    assert _executable(conn, "statusdb_app") == APP_FUNCTIONS
    # A login in no statusdb group cannot take the derivation's locks or write its log.
    ensure_login(cluster, NOBODY_LOGIN, None)
    with (
        psycopg.connect(make_conninfo(dsn, user=NOBODY_LOGIN)) as nobody,
        pytest.raises(pg_errors.InsufficientPrivilege),
    ):
        nobody.execute("SELECT statusdb_lock_status_keys(ARRAY[1, 2, 3]::bigint[])")
