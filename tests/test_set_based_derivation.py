"""Migration 0009: the set-based re-derivation behaves exactly like the per-component one.

statusdb_derive_statuses (many components, one statement) and statusdb_derive_status (one
component; the component trigger and recompute's view use it) are the same rule written twice.
These tests compare them on random states, and check that one incident moving many components
writes and announces exactly what 0003 did: one status_change row and one NOTIFY per change,
with the same payload.
"""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import incidents, status
from statusdb.domain.types import ComponentStatus

Conn = psycopg.Connection[TupleRow]

STATUSES: tuple[ComponentStatus, ...] = (
    "MAJOR_OUTAGE",
    "PARTIAL_OUTAGE",
    "DEGRADED_PERFORMANCE",
    "UNDER_MAINTENANCE",
    "OPERATIONAL",
)


def random_world(conn: Conn, rng: random.Random) -> None:
    """Teams, pages, components (some set by hand, some per service), incidents in every
    status and priority, and maintenance windows in every status, with random coverage."""
    conn.execute(
        "INSERT INTO team (id, name) SELECT 't' || n, 'T' || n FROM generate_series(1, 4) n"
    )
    conn.execute(
        """INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
           SELECT 'p' || n, 'P' || n, 'p' || n, true, 't' || n, 'u' FROM generate_series(1, 3) n"""
    )
    for n in range(40):
        team = rng.choice([None, "t1", "t2", "t3", "t4"])
        conn.execute(
            """INSERT INTO status_page_component (id, status_page_id, name, team_id,
                                                  service_identifier, manual_status)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (
                f"c{n}",
                f"p{1 + n % 3}",
                f"C{n}",
                team,
                rng.choice([None, "api", "db"]) if team else None,
                rng.choice(STATUSES) if team is None else "OPERATIONAL",
            ),
        )
    for n in range(30):
        conn.execute(
            """INSERT INTO incident (id, team_id, title, priority, status, service_identifier)
               VALUES (%s, %s, 'x', %s, %s, %s)""",
            (
                f"i{n}",
                rng.choice(["t1", "t2", "t3", "t4"]),
                rng.choice(["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]),
                rng.choice(["OPEN", "ACKNOWLEDGED", "RESOLVED", "CLOSED"]),
                rng.choice([None, "api", "db"]),
            ),
        )
    for n in range(10):
        page = 1 + n % 3
        conn.execute(
            """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                               status, auto_update_status, created_by_id)
               VALUES (%s, %s, 'w', now() - interval '1 hour', now() + interval '1 hour', %s,
                       %s, 'u')""",
            (
                f"w{n}",
                f"p{page}",
                rng.choice(["SCHEDULED", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]),
                rng.random() < 0.7,
            ),
        )
        for c in rng.sample([c for c in range(40) if 1 + c % 3 == page], 3):
            conn.execute(
                "INSERT INTO maintenance_window_component VALUES (%s, %s)", (f"w{n}", f"c{c}")
            )


@pytest.mark.parametrize("seed", range(8))
def test_set_based_and_scalar_derivations_agree(conn: Conn, seed: int) -> None:
    random_world(conn, random.Random(seed))
    rows = conn.execute(
        """SELECT d.component_id, d.current_status, d.derived_status,
                  statusdb_derive_status(c.id, c.team_id, c.service_identifier, c.manual_status)
           FROM statusdb_derive_statuses(ARRAY(SELECT id FROM status_page_component)) AS d
           JOIN status_page_component c ON c.id = d.component_id
           ORDER BY 1"""
    ).fetchall()
    assert len(rows) == 40
    for component_id, current, set_based, scalar in rows:
        assert set_based == scalar, component_id
        assert current == scalar, component_id  # the triggers kept every status right
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


def test_only_the_given_components_are_derived(conn: Conn) -> None:
    random_world(conn, random.Random(99))
    rows = conn.execute(
        "SELECT component_id FROM statusdb_derive_statuses(ARRAY['c1', 'c2', 'nope'])"
    ).fetchall()
    assert sorted(r[0] for r in rows) == ["c1", "c2"]
    assert conn.execute("SELECT count(*) FROM statusdb_derive_statuses('{}')").fetchone() == (0,)


def test_one_incident_logs_and_announces_each_change_once(dsn: str, conn: Conn) -> None:
    conn.execute("INSERT INTO team (id, name) VALUES ('t1', 'T')")
    conn.execute(
        """INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
           VALUES ('p1', 'P', 'p1', true, 't1', 'u')"""
    )
    conn.execute(
        """INSERT INTO status_page_component (id, status_page_id, name, team_id)
           SELECT 'c' || n, 'p1', 'C' || n, 't1' FROM generate_series(1, 30) n"""
    )
    conn.commit()
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN statusdb_status_change")
        incident = incidents.create(conn, "t1", title="down", priority="HIGH")
        conn.commit()
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=30)]
    logged = conn.execute(
        """SELECT seq, status_page_id, component_id, previous_status, new_status, cause,
                  incident_id, maintenance_window_id
           FROM status_change ORDER BY seq"""
    ).fetchall()
    assert len(logged) == 30
    assert {row[2] for row in logged} == {f"c{n}" for n in range(1, 31)}
    assert all(
        row[1:] == ("p1", row[2], "OPERATIONAL", "PARTIAL_OUTAGE", "INCIDENT", incident.id, None)
        for row in logged
    )
    # One NOTIFY per change, in log order, with 0012's payload (the change's seq only).
    assert payloads == [str(row[0]) for row in logged]
    # A second incident of lower priority changes nothing, logs nothing.
    incidents.create(conn, "t1", title="slow", priority="MEDIUM")
    conn.commit()
    assert conn.execute("SELECT count(*) FROM status_change").fetchone() == (30,)
