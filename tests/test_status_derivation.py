"""Component statuses derived by the database: the rules, plain-SQL changes, and concurrency."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, incidents, pages, status, teams
from statusdb.domain.types import INCIDENT_PRIORITY_TO_STATUS, IncidentPriority
from statusdb.errors import InvalidInput, StatusdbError

Conn = psycopg.Connection[TupleRow]
Connect = Callable[..., Conn]


def current(conn: Conn, component_id: str) -> str:
    row = conn.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (component_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


def make_page(conn: Conn, team_id: str, slug: str = "acme") -> str:
    return new_page(conn, team_id, slug=slug, name="Acme").id


@pytest.mark.parametrize("priority", list(INCIDENT_PRIORITY_TO_STATUS))
def test_each_priority_maps_to_its_status(conn: Conn, priority: IncidentPriority) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    incident = incidents.create(conn, team.id, title="boom", priority=priority)
    assert current(conn, api.id) == INCIDENT_PRIORITY_TO_STATUS[priority]
    incidents.resolve(conn, incident.id)
    assert current(conn, api.id) == "OPERATIONAL"


def test_worst_active_incident_wins_and_acknowledged_counts(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    medium = incidents.create(conn, team.id, title="slow", priority="MEDIUM")
    critical = incidents.create(conn, team.id, title="down", priority="CRITICAL")
    assert current(conn, api.id) == "MAJOR_OUTAGE"
    incidents.update(conn, critical.id, status="ACKNOWLEDGED")
    assert current(conn, api.id) == "MAJOR_OUTAGE"
    incidents.update(conn, critical.id, priority="HIGH")
    assert current(conn, api.id) == "PARTIAL_OUTAGE"
    incidents.update(conn, critical.id, status="CLOSED")
    assert current(conn, api.id) == "DEGRADED_PERFORMANCE"
    incidents.delete(conn, medium.id)
    assert current(conn, api.id) == "OPERATIONAL"


def test_team_and_service_filters(conn: Conn) -> None:
    sre, other = teams.create(conn, name="SRE"), teams.create(conn, name="Other")
    page = make_page(conn, sre.id)
    api = components.create(conn, page, name="API", team_id=sre.id)
    db = components.create(conn, page, name="DB", team_id=sre.id, service_identifier="db")
    unmapped = components.create(conn, page, name="Docs")
    incidents.create(conn, other.id, title="elsewhere", priority="CRITICAL")
    assert [current(conn, c.id) for c in (api, db, unmapped)] == ["OPERATIONAL"] * 3
    incidents.create(conn, sre.id, title="api", priority="HIGH", service_identifier="api")
    assert [current(conn, c.id) for c in (api, db, unmapped)] == [
        "PARTIAL_OUTAGE",
        "OPERATIONAL",
        "OPERATIONAL",
    ]
    incidents.create(conn, sre.id, title="db", priority="MEDIUM", service_identifier="db")
    assert [current(conn, c.id) for c in (api, db, unmapped)] == [
        "PARTIAL_OUTAGE",
        "DEGRADED_PERFORMANCE",
        "OPERATIONAL",
    ]


def test_maintenance_versus_incident_precedence(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    low = incidents.create(conn, team.id, title="minor", priority="LOW")
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                           created_by_id, status)
           VALUES ('mw', %s, 'upgrade', now(), now() + interval '1 hour', 'u1', 'SCHEDULED')""",
        (page,),
    )
    conn.execute("INSERT INTO maintenance_window_component VALUES ('mw', %s)", (api.id,))
    assert current(conn, api.id) == "OPERATIONAL"  # scheduled maintenance does not count yet
    conn.execute("UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = 'mw'")
    assert current(conn, api.id) == "UNDER_MAINTENANCE"  # beats an OPERATIONAL-mapped incident
    high = incidents.create(conn, team.id, title="worse", priority="HIGH")
    assert current(conn, api.id) == "PARTIAL_OUTAGE"  # an incident that is worse wins
    incidents.resolve(conn, high.id)
    assert current(conn, api.id) == "UNDER_MAINTENANCE"
    conn.execute("UPDATE maintenance_window SET auto_update_status = false WHERE id = 'mw'")
    assert current(conn, api.id) == "OPERATIONAL"
    conn.execute("UPDATE maintenance_window SET auto_update_status = true WHERE id = 'mw'")
    assert current(conn, api.id) == "UNDER_MAINTENANCE"
    conn.execute("DELETE FROM maintenance_window_component WHERE component_id = %s", (api.id,))
    assert current(conn, api.id) == "OPERATIONAL"
    conn.execute("INSERT INTO maintenance_window_component VALUES ('mw', %s)", (api.id,))
    assert current(conn, api.id) == "UNDER_MAINTENANCE"
    conn.execute("DELETE FROM maintenance_window WHERE id = 'mw'")
    assert current(conn, api.id) == "OPERATIONAL"
    incidents.resolve(conn, low.id)
    assert status.recompute(conn) == []


def test_unmapped_component_is_set_by_hand_and_maintenance_still_applies(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    docs = components.create(conn, page, name="Docs")
    api = components.create(conn, page, name="API", team_id=team.id)
    assert components.set_status(conn, docs.id, "DEGRADED_PERFORMANCE").current_status == (
        "DEGRADED_PERFORMANCE"
    )
    with pytest.raises(InvalidInput, match="driven by its team's incidents"):
        components.set_status(conn, api.id, "MAJOR_OUTAGE")
    components.set_status(conn, docs.id, "OPERATIONAL")
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                           created_by_id, status)
           VALUES ('mw', %s, 'upgrade', now(), now() + interval '1 hour', 'u1', 'IN_PROGRESS')""",
        (page,),
    )
    conn.execute("INSERT INTO maintenance_window_component VALUES ('mw', %s)", (docs.id,))
    assert current(conn, docs.id) == "UNDER_MAINTENANCE"
    components.set_status(conn, docs.id, "MAJOR_OUTAGE")
    assert current(conn, docs.id) == "MAJOR_OUTAGE"


def test_mapping_changes_rederive(conn: Conn) -> None:
    sre, dba = teams.create(conn, name="SRE"), teams.create(conn, name="DBA")
    page = make_page(conn, sre.id)
    comp = components.create(conn, page, name="DB")
    incidents.create(conn, dba.id, title="db", priority="CRITICAL", service_identifier="pg")
    incidents.create(conn, sre.id, title="api", priority="MEDIUM", service_identifier="api")
    assert components.update(conn, comp.id, team_id=dba.id).current_status == "MAJOR_OUTAGE"
    assert (
        components.update(conn, comp.id, service_identifier="other").current_status == "OPERATIONAL"
    )
    assert (
        components.update(conn, comp.id, team_id=sre.id, service_identifier="api").current_status
        == "DEGRADED_PERFORMANCE"
    )
    components.set_status(conn, components.update(conn, comp.id, team_id=None).id, "OPERATIONAL")
    assert current(conn, comp.id) == "OPERATIONAL"
    # A component created for a team that already has an incident starts with its status.
    late = components.create(conn, page, name="Late", team_id=dba.id)
    assert late.current_status == "MAJOR_OUTAGE"


def test_plain_sql_changes_keep_statuses_right(conn: Conn) -> None:
    """A DBA's psql session gets the same behaviour as the repository."""
    conn.execute("INSERT INTO team (id, name) VALUES ('t', 'SRE')")
    conn.execute(
        """INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
           VALUES ('p', 'Page', 'page', true, 't', 'dba')"""
    )
    conn.execute(
        """INSERT INTO status_page_component (id, status_page_id, name, team_id)
           VALUES ('c', 'p', 'API', 't')"""
    )
    conn.execute(
        "INSERT INTO incident (id, team_id, title, priority) VALUES ('i', 't', 'x', 'HIGH')"
    )
    assert current(conn, "c") == "PARTIAL_OUTAGE"
    conn.execute("UPDATE incident SET priority = 'CRITICAL' WHERE id = 'i'")
    assert current(conn, "c") == "MAJOR_OUTAGE"
    conn.execute("UPDATE incident SET status = 'RESOLVED' WHERE id = 'i'")
    assert current(conn, "c") == "OPERATIONAL"
    conn.execute("UPDATE incident SET status = 'OPEN' WHERE id = 'i'")
    conn.execute("UPDATE status_page_component SET team_id = NULL WHERE id = 'c'")
    assert current(conn, "c") == "OPERATIONAL"
    conn.execute("UPDATE status_page_component SET team_id = 't' WHERE id = 'c'")
    assert current(conn, "c") == "MAJOR_OUTAGE"
    conn.execute("DELETE FROM incident WHERE id = 'i'")
    assert current(conn, "c") == "OPERATIONAL"
    with pytest.raises(psycopg.errors.CheckViolation, match="derived"):
        conn.execute("UPDATE status_page_component SET current_status = 'MAJOR_OUTAGE'")


def test_status_updated_at_moves_only_on_real_change(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    incidents.create(conn, team.id, title="a", priority="HIGH")
    first = components.get(conn, api.id)
    incidents.create(conn, team.id, title="b", priority="HIGH")  # same status
    components.update(conn, api.id, description="renamed")  # not a status input
    assert components.get(conn, api.id).status_updated_at == first.status_updated_at
    incidents.create(conn, team.id, title="c", priority="CRITICAL")
    assert components.get(conn, api.id).status_updated_at > first.status_updated_at


def test_status_changes_are_logged_with_cause(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    incident = incidents.create(conn, team.id, title="a", priority="HIGH")
    incidents.resolve(conn, incident.id)
    log = status.changes_for_component(conn, api.id)
    assert [(c.previous_status, c.new_status, c.cause, c.incident_id) for c in log] == [
        ("OPERATIONAL", "PARTIAL_OUTAGE", "INCIDENT", incident.id),
        ("PARTIAL_OUTAGE", "OPERATIONAL", "INCIDENT", incident.id),
    ]
    assert status.chain_breaks(conn) == []


def test_recompute_reports_and_repairs_drift(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    # A bulk load with triggers off (as pg_restore --disable-triggers would do) leaves drift.
    conn.execute("SET session_replication_role = replica")
    conn.execute(
        "INSERT INTO incident (team_id, title, priority, status) VALUES (%s, 'x', 'HIGH', 'OPEN')",
        (team.id,),
    )
    conn.execute("SET session_replication_role = DEFAULT")
    drift = status.recompute(conn)
    assert [(d.component_id, d.current_status, d.derived_status) for d in drift] == [
        (api.id, "OPERATIONAL", "PARTIAL_OUTAGE")
    ]
    assert current(conn, api.id) == "OPERATIONAL"  # reported only
    assert len(status.recompute(conn, repair=True)) == 1
    assert current(conn, api.id) == "PARTIAL_OUTAGE"
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


@pytest.mark.fresh_db
def test_repeatable_read_writes_derive_and_repairs_need_read_committed(conn: Conn) -> None:
    """0023: a REPEATABLE READ write derives (an older snapshot whose status key was written
    meanwhile is refused with a serialization failure: tests/test_derivation_lock_order.py);
    the repair, which reads everything after its lock, is refused outside READ COMMITTED."""
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    api = components.create(conn, page, name="API", team_id=team.id)
    conn.commit()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    incidents.create(conn, team.id, title="x", priority="HIGH")
    assert current(conn, api.id) == "PARTIAL_OUTAGE"
    conn.commit()
    for level in (psycopg.IsolationLevel.REPEATABLE_READ, psycopg.IsolationLevel.SERIALIZABLE):
        conn.isolation_level = level
        with pytest.raises(StatusdbError, match="READ COMMITTED"):
            status.recompute(conn, repair=True)
        conn.rollback()


async def test_derivation_from_async_code(aconn: psycopg.AsyncConnection[Any]) -> None:
    team = await teams.create(aconn, name="SRE")
    created = await pages.create(
        aconn, team_id=team.id, name="A", slug="a", created_by_id="u", is_public=True
    )
    api = await components.create(aconn, created.page.id, name="API", team_id=team.id)
    await incidents.create(aconn, team.id, title="x", priority="CRITICAL")
    assert (await components.get(aconn, api.id)).current_status == "MAJOR_OUTAGE"


def test_concurrent_incident_churn_leaves_zero_drift(conn: Conn, connect: Connect) -> None:
    """Several connections open, escalate and resolve incidents of the same teams at once.

    Once all have committed, every component must have exactly the status a from-scratch
    derivation gives, and the status-change log must chain.
    """
    sre, dba = teams.create(conn, name="SRE"), teams.create(conn, name="DBA")
    page = make_page(conn, sre.id)
    for n in range(6):
        components.create(
            conn,
            page,
            name=f"c{n}",
            team_id=(sre.id, dba.id)[n % 2],
            service_identifier=(None, "db", "api")[n % 3],
        )
    conn.commit()
    workers, rounds = 6, 100
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        worker_conn = connect()
        mine: list[str] = []
        try:
            barrier.wait()
            for _ in range(rounds):
                action = rng.random()
                team_id = rng.choice((sre.id, dba.id))
                if action < 0.4 or not mine:
                    created = incidents.create(
                        worker_conn,
                        team_id,
                        title="churn",
                        priority=rng.choice(list(INCIDENT_PRIORITY_TO_STATUS)),
                        service_identifier=rng.choice((None, "db", "api")),
                    )
                    mine.append(created.id)
                elif action < 0.7:
                    incidents.update(
                        worker_conn,
                        rng.choice(mine),
                        priority=rng.choice(list(INCIDENT_PRIORITY_TO_STATUS)),
                    )
                elif action < 0.95:
                    incidents.resolve(worker_conn, mine.pop(rng.randrange(len(mine))))
                else:  # an incident moved to the other team, as a DBA would do it
                    worker_conn.execute(
                        "UPDATE incident SET team_id = %s WHERE id = %s",
                        (team_id, rng.choice(mine)),
                    )
                worker_conn.commit()
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    def repair_meanwhile() -> None:
        # An operator's repair racing the churn must neither block forever nor write drift.
        repair_conn = connect()
        try:
            barrier_repair.wait()
            for _ in range(5):
                status.recompute(repair_conn, repair=True)
                repair_conn.commit()
        except BaseException as exc:
            errors.append(exc)

    barrier_repair = threading.Barrier(1)
    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(workers)]
    threads.append(threading.Thread(target=repair_meanwhile))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn.rollback()
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


@pytest.mark.slow
def test_repair_takes_one_lock_however_many_components(conn: Conn) -> None:
    """More status keys than the lock table holds (64 x max_connections) repair fine."""
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id)
    conn.execute("SET session_replication_role = replica")  # a bulk load, triggers off
    conn.execute(
        """INSERT INTO status_page_component (status_page_id, name, manual_status)
           SELECT %s, 'c' || n, 'DEGRADED_PERFORMANCE' FROM generate_series(1, 7000) AS n""",
        (page,),
    )
    conn.execute("SET session_replication_role = DEFAULT")
    assert len(status.recompute(conn, repair=True)) == 7000
    assert status.recompute(conn) == []
    # Status locks are rows of status_lock (0012): nothing in the shared lock table.
    locks = conn.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()").fetchone()
    assert locks is not None
    assert locks[0] < 100
