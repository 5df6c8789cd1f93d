"""Faults: connections killed mid-operation, serialization failures, deadlocks, a restart.

Killing at the right moment. The victim is made to wait on a lock that the test holds from
another connection, *inside* the operation: either the status lock the database's own triggers
take (a row of the owner-only status_lock table, migrations 0003 and 0012: opening an incident,
creating a team-driven component, a maintenance window changing state), or a test-only trigger
that waits on an advisory gate lock after the operation's rows are written. Once
`pg_stat_activity` shows the victim waiting there, the test terminates its backend
(`pg_terminate_backend`), so the kill lands with part of the operation done. Then, from a fresh
connection: nothing of it is visible, and the same call on a new connection succeeds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from factories import new_page
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from statusdb import (
    components,
    incidents,
    maintenance,
    pages,
    status,
    status_incidents,
    subscribers,
    teams,
    views,
)
from statusdb.db import executor
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import CommitOutcomeUnknown, Retryable
from statusdb.infra import migrations
from statusdb.pages import NewComponent
from statusdb.tooling import localpg
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]
Connect = Callable[..., Conn]

#: The advisory lock key of the test-only gate trigger (the literal in `install_gate`).
GATE_KEY = 7_000_001
#: How long a helper thread waits for the victim to reach the gate (a generous bound: the
#: machine may be busy; on success it takes milliseconds).
WAIT_TIMEOUT_S = 60.0
T0 = dt.datetime(2031, 1, 6, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


# --- helpers ----------------------------------------------------------------------------------


def fingerprint(conn: Conn) -> dict[str, str]:
    """Every project table's content (md5 of its rows): equal fingerprints, equal data."""
    tables = [
        str(row[0])
        for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
            " AND c.relname NOT LIKE '%%yoyo%%'"
            # The derivation's lock rows (0012) are made on first use, by the holder too.
            " AND c.relname <> 'status_lock' ORDER BY c.relname"
        )
    ]
    prints: dict[str, str] = {}
    for table in tables:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|'"
                " ORDER BY t::text)), '') FROM {} AS t"
            ).format(sql.Identifier(table))
        ).fetchone()
        assert row is not None
        prints[table] = str(row[0])
    conn.rollback()
    return prints


def fresh_fingerprint(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as fresh:
        return fingerprint(fresh)


def status_key(conn: Conn, team_id: str) -> int:
    """The status_lock slot of a team's status lock (as the triggers of 0003 and 0012 take it).

    Negative, to tell it apart from an advisory key (`GATE_KEY`) in `held`.
    """
    row = conn.execute(
        "SELECT 1 + (statusdb_status_lock_key(%s, NULL) & 4095)", (team_id,)
    ).fetchone()
    assert row is not None
    return -int(row[0])


def hold(holder: Conn, key: int) -> None:
    """Take lock `key` on `holder`: a status slot (negative, until the transaction ends) or an
    advisory key (for the session)."""
    if key < 0:
        # The slot's row is made on its first use (0012): make sure it is there to lock.
        holder.execute("INSERT INTO status_lock (slot) VALUES (%s) ON CONFLICT DO NOTHING", (-key,))
        holder.commit()
        holder.execute("SELECT 1 FROM status_lock WHERE slot = %s FOR UPDATE", (-key,))
    else:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))


def wait_event_of(key: int) -> str | None:
    """What pg_stat_activity shows for a backend waiting on `key` (None: any lock)."""
    return None if key < 0 else "advisory"


def install_gate(conn: Conn, table: str) -> None:
    """A test-only trigger: after writing rows of `table`, wait on the gate lock."""
    conn.execute(
        "CREATE OR REPLACE FUNCTION test_fault_gate() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_advisory_xact_lock(7000001); RETURN NULL; END $$"
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER test_fault_gate AFTER INSERT OR UPDATE ON {}"
            " FOR EACH ROW EXECUTE FUNCTION test_fault_gate()"
        ).format(sql.Identifier(table))
    )
    conn.commit()


@contextlib.contextmanager
def held(dsn: str, key: int) -> Iterator[None]:
    """Hold lock `key` (see `hold`) from a connection of its own for the duration."""
    with psycopg.connect(dsn) as holder:
        hold(holder, key)
        yield
        holder.rollback()


def _wait_for(admin: Conn, pid: int, wait_event: str | None, done: threading.Event) -> bool:
    """Until `done`: whether backend `pid` is waiting on a lock (of kind `wait_event`)."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline and not done.is_set():
        row = admin.execute(
            "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock" and (wait_event is None or row[1] == wait_event):
            return True
        time.sleep(0.005)
    return False


@contextlib.contextmanager
def when_waiting(
    dsn: str, pid: int, action: Callable[[Conn], None], *, wait_event: str | None = None
) -> Iterator[list[str]]:
    """Run `action(admin)` in a thread as soon as backend `pid` waits on a lock.

    Yields a list that says, after the block, what happened ("done" once the action ran).
    """
    outcome: list[str] = []
    done = threading.Event()

    def watch() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as admin:
                if _wait_for(admin, pid, wait_event, done):
                    action(admin)
                    outcome.append("done")
                else:
                    outcome.append("the victim never waited on a lock")
        except BaseException as exc:  # reported by the test
            outcome.append(f"watcher failed: {exc!r}")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield outcome
    finally:
        done.set()
        thread.join(WAIT_TIMEOUT_S)


def terminate(pid: int) -> Callable[[Conn], None]:
    def kill(admin: Conn) -> None:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    return kill


@contextlib.contextmanager
def killed_at_gate(dsn: str, key: int, pid: int) -> Iterator[None]:
    """Hold `key`; once backend `pid` waits on it, kill that backend; then let go."""
    with (
        held(dsn, key),
        when_waiting(dsn, pid, terminate(pid), wait_event=wait_event_of(key)) as what,
    ):
        yield
    assert what == ["done"]


def kill_midway(dsn: str, victim: Conn, key: int, call: Callable[[Conn], object]) -> Retryable:
    """Run `call(victim)`, killed at the gate; assert nothing changed; the error seen."""
    before = fresh_fingerprint(dsn)
    with killed_at_gate(dsn, key, victim.info.backend_pid), pytest.raises(Retryable) as caught:
        call(victim)
    assert victim.broken or victim.closed
    assert fresh_fingerprint(dsn) == before
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    return caught.value


def consistent(dsn: str) -> None:
    """Statuses have not drifted and the status-change log chains."""
    with psycopg.connect(dsn) as check:
        assert status.recompute(check) == []
        assert status.chain_breaks(check) == []


def make_team_page(conn: Conn) -> tuple[str, str, str]:
    """A team, a public page, and one component the team's incidents drive."""
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, name="Acme", created_by_id="u")
    api = components.create(conn, page.id, name="API", team_id=team.id)
    conn.commit()
    return team.id, page.id, api.id


# --- killed mid-operation ---------------------------------------------------------------------


def test_killed_page_creation_leaves_no_page_and_succeeds_on_retry(conn: Conn, dsn: str) -> None:
    team = teams.create(conn, name="SRE")
    conn.commit()
    key = status_key(conn, team.id)
    conn.rollback()
    wanted = [NewComponent(name="API", team_id=team.id), NewComponent(name="Docs")]

    def create(c: Conn) -> object:
        # The page row is written; the team-driven component waits on its status lock.
        return pages.create(
            c, team_id=team.id, name="Acme", slug="acme", created_by_id="u", components=wanted
        )

    victim = psycopg.connect(dsn)  # the caller's transaction: killed inside it
    try:
        kill_midway(dsn, victim, key, create)
    finally:
        victim.close()
    with psycopg.connect(dsn) as again:
        created = pages.create(
            again, team_id=team.id, name="Acme", slug="acme", created_by_id="u", components=wanted
        )
        again.commit()
        assert [c.name for c in components.list_for_page(again, created.page.id)] == [
            "API",
            "Docs",
        ]
    consistent(dsn)


async def test_killed_incident_opening_changes_no_status_async(conn: Conn, dsn: str) -> None:
    team_id, _page_id, api_id = make_team_page(conn)
    key = status_key(conn, team_id)
    conn.rollback()
    before = fresh_fingerprint(dsn)
    victim: AConn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        with (
            killed_at_gate(dsn, key, victim.info.backend_pid),
            # An autocommit statement is its own transaction: killed while it ran, it may have
            # committed as far as the caller can tell (here it had not: checked below).
            pytest.raises(CommitOutcomeUnknown, match="may or may not have been applied") as caught,
        ):
            # The incident row is inserted; its trigger waits on the team's status lock.
            await incidents.create(victim, team_id, title="5xx", priority="CRITICAL")
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    finally:
        await victim.close()
    assert fresh_fingerprint(dsn) == before
    again: AConn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        await incidents.create(again, team_id, title="5xx", priority="CRITICAL")
        assert (await components.get(again, api_id)).current_status == "MAJOR_OUTAGE"
        view = await views.page_view(again, "acme")
        assert view is not None
        assert view.page.overall_status == "MAJOR_OUTAGE"
    finally:
        await again.close()
    consistent(dsn)


def test_killed_status_update_leaves_the_timeline_as_it_was(conn: Conn, dsn: str) -> None:
    _team_id, page_id, api_id = make_team_page(conn)
    created = status_incidents.create(
        conn,
        page_id,
        title="Slow API",
        severity="MINOR",
        message="Looking into it",
        affected_component_ids=[api_id],
    )
    conn.commit()
    install_gate(conn, "status_incident")

    def add(c: Conn) -> object:
        return status_incidents.add_update(
            c, created.id, status="IDENTIFIED", message="A bad deploy"
        )

    victim = psycopg.connect(dsn, autocommit=True)
    try:
        kill_midway(dsn, victim, GATE_KEY, add)
    finally:
        victim.close()
    with psycopg.connect(dsn, autocommit=True) as again:
        updated = add(again)
        assert isinstance(updated, status_incidents.StatusIncident)
        assert [u.status for u in updated.updates] == ["INVESTIGATING", "IDENTIFIED"]
        assert updated.message == "A bad deploy"


def test_killed_subscribe_leaves_no_subscriber(conn: Conn, dsn: str) -> None:
    _team_id, page_id, _api_id = make_team_page(conn)
    install_gate(conn, "status_subscriber")

    def subscribe(c: Conn) -> object:
        return subscribers.subscribe(
            c, page_id, channel="EMAIL", destination="ops@example.com", notify_on=["outage"]
        )

    victim = psycopg.connect(dsn, autocommit=True)
    try:
        kill_midway(dsn, victim, GATE_KEY, subscribe)
    finally:
        victim.close()
    with psycopg.connect(dsn, autocommit=True) as again:
        made = subscribe(again)
        assert isinstance(made, subscribers.Subscription)
        assert made.created
        assert subscribers.count_for_page(again, page_id).total == 1


def test_killed_outbox_claim_leaves_no_lease(conn: Conn, dsn: str) -> None:
    """A claim killed before it commits leases nothing: the next worker needs no expiry."""
    team_id, _page_id, _api_id = make_team_page(conn)
    incidents.create(conn, team_id, title="down", priority="CRITICAL")
    conn.commit()
    install_gate(conn, "status_change")
    long_lease = dt.timedelta(hours=1)

    def claim(c: Conn) -> object:
        return outbox.claim(c, worker_id="w1", hold_down=dt.timedelta(0), lease=long_lease)

    victim = psycopg.connect(dsn, autocommit=True)
    try:
        kill_midway(dsn, victim, GATE_KEY, claim)
    finally:
        victim.close()
    with psycopg.connect(dsn, autocommit=True) as again:
        claimed = outbox.claim(again, worker_id="w2", hold_down=dt.timedelta(0), lease=long_lease)
        assert len(claimed) == 1  # at once, not after the hour-long lease of the dead worker
        assert outbox.complete(again, claimed[0], worker_id="w2")
        assert outbox.pending_count(again) == 0


def test_killed_maintenance_step_between_statements_undoes_the_first(conn: Conn, dsn: str) -> None:
    """advance() runs several statements: a kill in the last undoes what the first one did."""
    sre, dba = teams.create(conn, name="SRE"), teams.create(conn, name="DBA")
    page = new_page(conn, sre.id, slug="acme", created_by_id="u")
    api = components.create(conn, page.id, name="API", team_id=sre.id)
    db = components.create(conn, page.id, name="DB", team_id=dba.id)
    daily = maintenance.create(
        conn,
        page.id,
        CreateMaintenanceWindowInput(
            component_ids=(db.id,),
            title="Nightly vacuum",
            start_time=T0,
            end_time=T0 + HOUR,
            recurrence_rule="FREQ=DAILY",
        ),
        created_by_id="u",
    )
    one_off = maintenance.create(
        conn,
        page.id,
        CreateMaintenanceWindowInput(
            component_ids=(api.id,),
            title="API upgrade",
            start_time=T0 + 2 * HOUR,
            end_time=T0 + 3 * HOUR,
        ),
        created_by_id="u",
    )
    maintenance.advance(conn, T0)  # the daily window runs: DB under maintenance
    conn.commit()
    assert components.get(conn, db.id).current_status == "UNDER_MAINTENANCE"
    key = status_key(conn, dba.id)
    conn.rollback()

    # At T0+2h the first statement starts the one-off window (API under maintenance, logged);
    # the last one moves the daily series on, and its status trigger waits on DBA's lock.
    victim = psycopg.connect(dsn, autocommit=True)
    try:
        kill_midway(dsn, victim, key, lambda c: maintenance.advance(c, T0 + 2 * HOUR))
    finally:
        victim.close()
    with psycopg.connect(dsn, autocommit=True) as again:
        assert maintenance.get(again, one_off.id).status == "SCHEDULED"
        assert components.get(again, api.id).current_status == "OPERATIONAL"
        transitions = maintenance.advance(again, T0 + 2 * HOUR)
        assert {(t.window_id, t.from_status, t.to_status) for t in transitions} == {
            (daily.id, "IN_PROGRESS", "SCHEDULED"),
            (one_off.id, "SCHEDULED", "IN_PROGRESS"),
        }
        assert components.get(again, api.id).current_status == "UNDER_MAINTENANCE"
        assert components.get(again, db.id).current_status == "OPERATIONAL"
    consistent(dsn)


# --- serialization failures and deadlocks -----------------------------------------------------


def _without_retry(op: executor.Operation[Any, Any]) -> executor.Operation[Any, Any]:
    """The same operation, not declared retry-safe."""
    return executor.Operation(op.body, atomic=op.atomic, retry=False)


def _serializable(conn: Conn) -> Conn:
    conn.execute("SET default_transaction_isolation = 'serializable'")
    if not conn.autocommit:
        conn.commit()
    return conn


def _rename_behind_a_concurrent_update(
    conn: Conn, dsn: str, victim: Conn, op: Callable[..., Any]
) -> Any:
    """Run `op(victim, team, name=...)` while another transaction updates the team row.

    The victim (SERIALIZABLE) waits for the other's row lock; the other then commits a change
    the victim's snapshot does not see: "could not serialize access due to concurrent update".
    """
    team = teams.create(conn, name="SRE")
    conn.commit()
    other = psycopg.connect(dsn)
    try:
        other.execute("UPDATE team SET name = 'other' WHERE id = %s", (team.id,))

        def commit_other(_admin: Conn) -> None:
            other.commit()

        with when_waiting(dsn, victim.info.backend_pid, commit_other) as what:
            result = op(victim, team.id, name="victim")
        assert what == ["done"]
        return result
    finally:
        other.close()


def test_serialization_failure_surfaces_when_not_retry_safe(conn: Conn, dsn: str) -> None:
    victim = _serializable(psycopg.connect(dsn, autocommit=True))
    try:
        with pytest.raises(Retryable, match="could not serialize") as caught:
            _rename_behind_a_concurrent_update(conn, dsn, victim, _without_retry(teams.rename))
        assert isinstance(caught.value.__cause__, psycopg.errors.SerializationFailure)
        assert teams.list_all(victim)[0].name == "other"  # the failed attempt left nothing
    finally:
        victim.close()


def test_serialization_failure_is_retried_on_a_transaction_of_its_own(conn: Conn, dsn: str) -> None:
    victim = _serializable(psycopg.connect(dsn, autocommit=True))
    try:
        renamed = _rename_behind_a_concurrent_update(conn, dsn, victim, teams.rename)
        assert renamed.name == "victim"
    finally:
        victim.close()
    with psycopg.connect(dsn) as check:
        assert [t.name for t in teams.list_all(check)] == ["victim"]


async def test_serialization_failure_is_retried_async(conn: Conn, dsn: str) -> None:
    team = teams.create(conn, name="SRE")
    conn.commit()
    victim: AConn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    other = psycopg.connect(dsn)
    try:
        await victim.execute("SET default_transaction_isolation = 'serializable'")
        other.execute("UPDATE team SET name = 'other' WHERE id = %s", (team.id,))

        def commit_other(_admin: Conn) -> None:
            other.commit()

        with when_waiting(dsn, victim.info.backend_pid, commit_other) as what:
            renamed = await teams.rename(victim, team.id, name="victim")
        assert what == ["done"]
        assert renamed.name == "victim"
    finally:
        other.close()
        await victim.close()


def test_serialization_failure_in_the_callers_transaction_says_retry_it_whole(
    conn: Conn, dsn: str
) -> None:
    victim = _serializable(psycopg.connect(dsn))  # autocommit off: the caller's transaction
    try:
        with pytest.raises(Retryable, match="retry the whole transaction") as caught:
            _rename_behind_a_concurrent_update(conn, dsn, victim, teams.rename)
        assert isinstance(caught.value.__cause__, psycopg.errors.SerializationFailure)
        victim.rollback()  # what the caller does, then runs its transaction again
        assert teams.rename(victim, teams.list_all(victim)[0].id, name="victim").name == "victim"
        victim.commit()
    finally:
        victim.close()


def _deadlock(conn: Conn, dsn: str, victim: Conn, op: Callable[..., Any]) -> tuple[Any, str]:
    """Lock-order inversion between `op` (moving a component to another team) and another
    transaction; the victim is the one PostgreSQL aborts. Returns op's result (or raises) and
    the component id.

    The victim updates the component row, then its trigger waits for the new team's status
    lock, which the other transaction holds; the other then updates the same component row.
    The victim's shorter deadlock_timeout makes it the one that detects the cycle.
    """
    sre, dba = teams.create(conn, name="SRE"), teams.create(conn, name="DBA")
    page = new_page(conn, sre.id, slug="acme", created_by_id="u")
    api = components.create(conn, page.id, name="API", team_id=sre.id)
    incidents.create(conn, dba.id, title="db down", priority="CRITICAL")
    conn.commit()
    dba_key = status_key(conn, dba.id)
    conn.rollback()
    victim.execute("SET deadlock_timeout = '1500ms'")
    if not victim.autocommit:
        victim.commit()
    other = psycopg.connect(dsn)
    try:
        other.execute("SET deadlock_timeout = '30s'")
        hold(other, dba_key)

        def collide(_admin: Conn) -> None:
            other.execute(
                "UPDATE status_page_component SET description = 'by other' WHERE id = %s",
                (api.id,),
            )  # waits for the victim's row lock until the victim is aborted
            other.commit()

        with when_waiting(dsn, victim.info.backend_pid, collide) as what:
            result = op(victim, api.id, team_id=dba.id)
        assert what == ["done"]
        return result, api.id
    finally:
        other.close()


def test_deadlock_surfaces_when_not_retry_safe(conn: Conn, dsn: str) -> None:
    victim = psycopg.connect(dsn, autocommit=True)
    try:
        with pytest.raises(Retryable, match="deadlock detected") as caught:
            _deadlock(conn, dsn, victim, _without_retry(components.update))
        assert isinstance(caught.value.__cause__, psycopg.errors.DeadlockDetected)
    finally:
        victim.close()


def test_deadlock_is_retried_on_a_transaction_of_its_own(conn: Conn, dsn: str) -> None:
    victim = psycopg.connect(dsn, autocommit=True)
    try:
        moved, api_id = _deadlock(conn, dsn, victim, components.update)
    finally:
        victim.close()
    assert isinstance(moved, components.Component)
    with psycopg.connect(dsn) as check:
        final = components.get(check, api_id)
        # Both transactions' changes are there: the other's description, then the victim's
        # move (retried after the other committed), with the status DBA's incident gives.
        assert (final.description, final.team_id) == ("by other", moved.team_id)
        assert final.current_status == "MAJOR_OUTAGE"
    consistent(dsn)


def test_deadlock_in_the_callers_transaction_says_retry_it_whole(conn: Conn, dsn: str) -> None:
    victim = psycopg.connect(dsn)
    try:
        with pytest.raises(Retryable, match="retry the whole transaction") as caught:
            _deadlock(conn, dsn, victim, components.update)
        assert isinstance(caught.value.__cause__, psycopg.errors.DeadlockDetected)
        assert victim.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        victim.rollback()
    finally:
        victim.close()
    consistent(dsn)


def test_retry_gives_up_after_the_last_attempt(
    conn: Conn, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one attempt allowed, a retry-safe operation surfaces the conflict like any other."""
    monkeypatch.setattr(executor, "RETRY_ATTEMPTS", 1)
    victim = _serializable(psycopg.connect(dsn, autocommit=True))
    try:
        with pytest.raises(Retryable, match="could not serialize"):
            _rename_behind_a_concurrent_update(conn, dsn, victim, teams.rename)
    finally:
        victim.close()


# --- PostgreSQL restarted under a pool --------------------------------------------------------


@pytest.mark.slow
def test_a_pool_recovers_from_a_postgres_restart(server_owned_tmp_dir: Path) -> None:
    """Stop and start PostgreSQL while workers use a pool: each operation in flight fails at
    most once, with Retryable; its retry (on a new pooled connection) and everything after
    succeed. Runs on a cluster of its own: the session's is never restarted."""
    pg = localpg.LocalCluster(server_owned_tmp_dir / "pgdata", fsync=False)
    pg.initialize()
    pg.start()
    try:
        dsn = pg.ensure_database("statusdb")
        migrations.apply(dsn)
        with psycopg.connect(dsn) as setup:
            team_id, _page_id, _api_id = make_team_page(setup)
            key = status_key(setup, team_id)
        _run_pool_through_restart(pg, dsn, team_id, key)
        with psycopg.connect(pg.dsn("statusdb")) as check:
            assert status.recompute(check) == []
            assert status.chain_breaks(check) == []
    finally:
        pg.stop()


def _run_pool_through_restart(pg: localpg.LocalCluster, dsn: str, team_id: str, key: int) -> None:
    port = pg.port
    failures: dict[str, list[int]] = {}  # worker -> Retryable count per operation
    unexpected: list[BaseException] = []
    restarted = threading.Event()
    stop = threading.Event()
    pool = ConnectionPool(
        dsn,
        min_size=2,
        max_size=6,
        kwargs={"autocommit": True},
        check=ConnectionPool.check_connection,  # stale idle connections are replaced
        timeout=WAIT_TIMEOUT_S,
        open=True,
    )

    def run(worker: str, operation: Callable[[Conn], object]) -> None:
        counts = failures.setdefault(worker, [])
        after_restart = 0
        try:
            while not stop.is_set() and after_restart < 20:
                errors = 0
                while True:
                    try:
                        with pool.connection() as c:
                            operation(c)
                        break
                    except Retryable:
                        errors += 1
                        if errors > 1:
                            raise
                counts.append(errors)
                after_restart += restarted.is_set()
        except BaseException as exc:
            unexpected.append(exc)

    def reader(c: Conn) -> object:
        return views.page_view(c, "acme")

    def writer(c: Conn) -> object:
        made = incidents.create(c, team_id, title="flap", priority="HIGH")
        return incidents.resolve(c, made.id)

    def blocked_writer(c: Conn) -> object:
        # Waits on the status lock held below until the restart: certainly in flight.
        return incidents.create(c, team_id, title="in flight", priority="LOW")

    holder = psycopg.connect(dsn)
    hold(holder, key)
    workers = [
        threading.Thread(target=run, args=("reader", reader)),
        threading.Thread(target=run, args=("writer", writer)),
    ]
    blocked_failures: list[int] = []

    def run_blocked() -> None:
        errors = 0
        while True:
            try:
                with pool.connection() as c:
                    blocked_writer(c)
                break
            except Retryable:
                errors += 1
                if errors > 1:
                    unexpected.append(AssertionError("the in-flight operation failed twice"))
                    break
            except BaseException as exc:
                unexpected.append(exc)
                break
        blocked_failures.append(errors)

    blocked = threading.Thread(target=run_blocked)
    try:
        for thread in [*workers, blocked]:
            thread.start()
        with psycopg.connect(dsn, autocommit=True) as admin:
            waiting = False
            deadline = time.monotonic() + WAIT_TIMEOUT_S
            while not waiting and time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock'"
                    " AND wait_event IN ('transactionid', 'tuple')"
                ).fetchone()
                waiting = row is not None and row[0] > 0
                time.sleep(0.01)
            assert waiting
        time.sleep(0.3)  # let the other workers get going
        pg.stop()
        pg.start()
        assert pg.port == port
        restarted.set()
        for thread in workers:
            thread.join(4 * WAIT_TIMEOUT_S)
        blocked.join(4 * WAIT_TIMEOUT_S)
    finally:
        stop.set()
        holder.close()
        pool.close()
    assert unexpected == []
    assert blocked_failures == [1]  # it was in flight: exactly one clear, retryable error
    for worker, counts in failures.items():
        assert len(counts) >= 20, worker
        assert max(counts) <= 1, worker  # at most one error per operation
