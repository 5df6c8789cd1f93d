"""`maintenance.advance` moves a step's windows set-based (issue 20 item 2, migration 0040).

The step's UPDATEs move every due window in one statement; their triggers re-derive the
windows' components and write their events once per statement. A window the database refuses
still drops the step to one window at a time, and then what is written must be the same.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from factories import TwoPages, two_pages
from psycopg.rows import TupleRow

from statusdb import components, maintenance

Conn = psycopg.Connection[TupleRow]
UTC = dt.UTC
T0 = dt.datetime(2031, 5, 5, 10, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture
def acme(conn: Conn) -> TwoPages:
    built = two_pages(conn, team="SRE", names=("API", "Web", "DB", "CDN"))
    conn.commit()
    return built


def _window(
    conn: Conn,
    page_id: str,
    title: str,
    start: dt.datetime,
    end: dt.datetime,
    component_ids: tuple[str, ...],
    rule: str | None = None,
) -> str:
    return maintenance.create(
        conn,
        page_id,
        title=title,
        start_time=start,
        end_time=end,
        component_ids=list(component_ids),
        recurrence_rule=rule,
        created_by_id="u",
    ).id


def _scenario(conn: Conn, acme: TwoPages) -> dict[str, str]:
    """Windows that start, end, and roll forward at T0 + 1 minute, on two pages; two that
    start together share a component (its change is logged under the lesser id). "daily"
    starts its next occurrence (the by-time statement); "series" ends one and starts the next
    (the series statement)."""
    api, web, db, cdn = (acme.by_name[n] for n in ("API", "Web", "DB", "CDN"))
    ids = {
        "starts_a": _window(conn, acme.page_id, "Starts A", T0, T0 + HOUR, (api, web)),
        "starts_b": _window(conn, acme.page_id, "Starts B", T0, T0 + 2 * HOUR, (web, db)),
        "ends": _window(conn, acme.page_id, "Ends", T0 - HOUR, T0, (cdn,)),
        "missed": _window(
            conn, acme.other_page_id, "Missed", T0 - 50 * MINUTE, T0 - 10 * MINUTE, ()
        ),
        "daily": _window(
            conn, acme.other_page_id, "Daily", T0 - DAY, T0 - DAY + HOUR, (), rule="FREQ=DAILY"
        ),
        "series": _window(
            conn,
            acme.other_page_id,
            "Hourly",
            T0 - HOUR,
            T0 - HOUR + 30 * MINUTE,
            (acme.foreign,),
            rule="FREQ=HOURLY",
        ),
        "later": _window(conn, acme.page_id, "Later", T0 + DAY, T0 + DAY + HOUR, (api,)),
    }
    conn.commit()
    # "ends" and "series" are running, "daily" waits for its occurrence at T0.
    maintenance.advance(conn, T0 - DAY + MINUTE)
    maintenance.advance(conn, T0 - HOUR + MINUTE)
    conn.commit()
    return ids


def _written(conn: Conn, since: tuple[int, int], names: dict[str, str]) -> dict[str, list[Any]]:
    """The events and status changes written after `since` (their seqs), ids by names."""
    name_of = {v: k for k, v in names.items()}
    events = conn.execute(
        """SELECT maintenance_window_id, kind, occurrence_start, component_ids,
                  payload - 'page' || jsonb_build_object('page', payload->'page'->>'slug')
           FROM notification_event WHERE seq > %s AND maintenance_window_id IS NOT NULL
           ORDER BY seq""",
        (since[0],),
    ).fetchall()
    changes = conn.execute(
        """SELECT c.maintenance_window_id, p.name, c.previous_status, c.new_status, c.cause
           FROM status_change c JOIN status_page_component p ON p.id = c.component_id
           WHERE c.seq > %s ORDER BY c.seq""",
        (since[1],),
    ).fetchall()
    return {
        "events": [(name_of[w], k, s, len(c), p) for w, k, s, c, p in events],
        "changes": [(name_of.get(w), *rest) for w, *rest in changes],
    }


def _last_seqs(conn: Conn) -> tuple[int, int]:
    row = conn.execute(
        "SELECT (SELECT coalesce(max(seq), 0) FROM notification_event),"
        " (SELECT coalesce(max(seq), 0) FROM status_change)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _one_window_per_statement(conn: Conn) -> None:
    """Refuse any UPDATE of maintenance_window that moves two windows at once: advance's
    set-based statements fail and it falls back to one window (one statement) at a time."""
    conn.execute(
        """CREATE FUNCTION pg_temp.test_one_window_at_a_time() RETURNS trigger
           LANGUAGE plpgsql AS $$
           BEGIN
               IF (SELECT count(*) FROM new_rows) > 1 THEN
                   RAISE EXCEPTION 'one window per statement in this test';
               END IF;
               RETURN NULL;
           END $$"""
    )
    conn.execute(
        """CREATE TRIGGER test_one_window_at_a_time AFTER UPDATE ON maintenance_window
           REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
           EXECUTE FUNCTION pg_temp.test_one_window_at_a_time()"""
    )


def test_the_set_based_step_writes_what_the_per_window_path_writes(
    conn: Conn, acme: TwoPages
) -> None:
    names = _scenario(conn, acme)
    since = _last_seqs(conn)
    conn.execute("SAVEPOINT test_set_based")
    set_based = maintenance.advance(conn, T0 + MINUTE)
    written = _written(conn, since, names)
    conn.execute("ROLLBACK TO SAVEPOINT test_set_based")

    _one_window_per_statement(conn)
    one_by_one = maintenance.advance(conn, T0 + MINUTE)
    assert maintenance.scheduler_errors(conn) == []
    assert _written(conn, since, names) == written
    assert [attrs_tuple(t) for t in one_by_one] == [attrs_tuple(t) for t in set_based]

    # And what that is: each transition's event once, in the step's order (the by-time
    # statement's windows by id, then the series), completed before started.
    kinds = [(w, k) for w, k, *_ in written["events"]]
    by_time = sorted(["starts_a", "starts_b", "ends", "missed", "daily"], key=names.__getitem__)
    expected_by_time = [
        (w, "maintenance_completed" if w == "ends" else "maintenance_started")
        for w in by_time
        if w != "missed"  # missed whole: SCHEDULED -> COMPLETED tells nobody
    ]
    assert kinds == [
        *expected_by_time,
        ("series", "maintenance_completed"),
        ("series", "maintenance_started"),
    ]
    payload_statuses = {
        (w, k): tuple(c["status"] for c in p["components"]) for w, k, _, _, p in written["events"]
    }
    assert payload_statuses[("starts_a", "maintenance_started")] == ("UNDER_MAINTENANCE",) * 2
    assert payload_statuses[("ends", "maintenance_completed")] == ("OPERATIONAL",)
    # The shared component (Web) is logged once, under the lesser of the two windows' ids.
    first = min(("starts_a", "starts_b"), key=names.__getitem__)
    web = [c for c in written["changes"] if c[1] == "Web"]
    assert web == [(first, "Web", "OPERATIONAL", "UNDER_MAINTENANCE", "MAINTENANCE")]
    # API, Web and DB under maintenance, CDN back; the foreign component stays under
    # maintenance from one occurrence to the next (one statement: no change logged).
    assert len(written["changes"]) == 4


def attrs_tuple(t: maintenance.Transition) -> tuple[Any, ...]:
    return (t.window_id, t.from_status, t.to_status, t.occurrence_start)


def test_a_step_with_one_failing_window_still_advances_the_others(
    conn: Conn, acme: TwoPages
) -> None:
    names = _scenario(conn, acme)
    broken = names["starts_b"]
    conn.execute(
        """CREATE FUNCTION pg_temp.test_refuse_window() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               RAISE EXCEPTION 'window % is deliberately broken', OLD.id;
           END $$"""
    )
    conn.execute(
        f"""CREATE TRIGGER test_refuse_window BEFORE UPDATE ON maintenance_window
            FOR EACH ROW WHEN (OLD.id = '{broken}')
            EXECUTE FUNCTION pg_temp.test_refuse_window()"""
    )
    since = _last_seqs(conn)
    transitions = maintenance.advance(conn, T0 + MINUTE)

    moved = {t.window_id for t in transitions}
    assert broken not in moved
    assert moved == {names[n] for n in ("starts_a", "ends", "missed", "daily", "series")}
    [error] = maintenance.scheduler_errors(conn)
    assert error.window_id == broken
    assert "deliberately broken" in error.error
    assert maintenance.get(conn, broken).status == "SCHEDULED"
    # The others' components and events are as if nothing had failed.
    assert components.get(conn, acme.by_name["DB"]).current_status == "OPERATIONAL"
    assert components.get(conn, acme.by_name["Web"]).current_status == "UNDER_MAINTENANCE"
    assert components.get(conn, acme.by_name["CDN"]).current_status == "OPERATIONAL"
    assert components.get(conn, acme.foreign).current_status == "UNDER_MAINTENANCE"
    kinds = sorted(
        (w, k)
        for w, k, *_ in _written(conn, since, {**names, "broken": broken})["events"]
        if w != "broken"
    )
    assert [w for w, _ in kinds].count("starts_b") == 0
    assert sorted(kinds) == sorted(
        [
            ("starts_a", "maintenance_started"),
            ("ends", "maintenance_completed"),
            ("daily", "maintenance_started"),
            ("series", "maintenance_completed"),
            ("series", "maintenance_started"),
        ]
    )
    # Once the window is repaired, the next step starts it (and its event is written once).
    conn.execute("DROP TRIGGER test_refuse_window ON maintenance_window")
    again = maintenance.advance(conn, T0 + 2 * MINUTE)
    assert [(t.window_id, t.to_status) for t in again] == [(broken, "IN_PROGRESS")]
    assert maintenance.scheduler_errors(conn) == []
    assert components.get(conn, acme.by_name["DB"]).current_status == "UNDER_MAINTENANCE"


def test_a_step_rederives_and_announces_its_windows_once_per_statement(
    conn: Conn, acme: TwoPages
) -> None:
    """Ten windows starting together: one UPDATE of their components and one INSERT of their
    events (before 0040: one of each per window)."""
    start = T0 + 5 * DAY
    ids = [
        _window(conn, acme.page_id, f"Window {n}", start, start + HOUR, (acme.by_name[name],))
        for n, name in enumerate(("API", "Web", "DB", "CDN"))
    ] + [_window(conn, acme.other_page_id, f"Other {n}", start, start + HOUR, ()) for n in range(6)]
    conn.commit()
    conn.execute("CREATE TEMP TABLE test_statements (tbl text NOT NULL, n integer NOT NULL)")
    conn.execute(
        """CREATE FUNCTION pg_temp.test_count_statement() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               INSERT INTO pg_temp.test_statements
               SELECT TG_TABLE_NAME, count(*) FROM new_rows;
               RETURN NULL;
           END $$"""
    )
    for table, op in (("status_page_component", "UPDATE"), ("notification_event", "INSERT")):
        conn.execute(
            f"""CREATE TRIGGER test_count_statement AFTER {op} ON {table}
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
                EXECUTE FUNCTION pg_temp.test_count_statement()"""
        )
    transitions = maintenance.advance(conn, start + MINUTE)
    assert sorted(t.window_id for t in transitions) == sorted(ids)
    counted = conn.execute(
        "SELECT tbl, n FROM pg_temp.test_statements WHERE n > 0 ORDER BY tbl, n"
    ).fetchall()
    assert counted == [("notification_event", 10), ("status_page_component", 4)]
