"""Reads on real streaming replicas (statusdb.infra.routing): staleness bound, read-your-writes,
failover.

The module starts a primary and two streaming replicas of it (`LocalCluster.create_replica`,
i.e. `pg_basebackup -R`, on 127.0.0.1), once for all its tests. The tests run in file order
and each leaves the replicas as it found them, except the last, which kills one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from conftest import make_server_owned_dir
from psycopg import sql
from psycopg.rows import TupleRow
from pytest_postgresql.executors import NoopExecutor

from statusdb import incidents, pages, teams, views
from statusdb.errors import InvalidInput, ReadOnlyTransaction, StatusdbError, Unavailable
from statusdb.infra import routing
from statusdb.pages import NewComponent
from statusdb.tooling import localpg
from statusdb.workers import outbox

# One xdist worker builds this module's module-scoped fixtures once (not once per worker).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("replicas")]

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]
DBNAME = "statusdb_replicas"
SLUG = "replicated"
#: Upper bound for waits that only last this long when a test fails.
PATIENCE = 20.0


@dataclass
class ReplicaSet:
    primary: localpg.LocalCluster
    replicas: list[localpg.LocalCluster]
    page_id: str
    team_id: str

    @property
    def primary_dsn(self) -> str:
        return self.primary.dsn(DBNAME)

    @property
    def replica_dsns(self) -> list[str]:
        return [r.dsn(DBNAME) for r in self.replicas]


def _wait_replayed(replica: localpg.LocalCluster, primary_dsn: str) -> None:
    """Until `replica` has replayed everything the primary has written so far."""
    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        assert row is not None
        target = row[0]
    deadline = time.monotonic() + PATIENCE
    nudge_at = time.monotonic() + 1.0
    with psycopg.connect(replica.dsn("postgres"), autocommit=True) as conn:
        while True:
            done = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
            ).fetchone()
            if done == (True,):
                return
            assert time.monotonic() < deadline, f"{replica} did not catch up"
            if time.monotonic() > nudge_at:
                # When the last record ends exactly at a WAL page boundary, the insert
                # location is past that page's header, and an idle primary's replica never
                # replays up to it: a commit with an xid writes the record that gets there.
                with psycopg.connect(primary_dsn, autocommit=True) as primary:
                    primary.execute("SELECT pg_current_xact_id()")
                nudge_at = time.monotonic() + 1.0
            time.sleep(0.02)


@pytest.fixture(scope="module")
def replica_set(
    cluster: localpg.LocalCluster, statusdb_postgresql_proc: NoopExecutor
) -> Iterator[ReplicaSet]:
    """The session cluster as the primary (a database cloned from its migrated template),
    and two streaming replicas of it, made in parallel."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DBNAME)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(DBNAME),
                sql.Identifier(statusdb_postgresql_proc.template_dbname),
            )
        )
    dsn = cluster.dsn(DBNAME)
    with psycopg.connect(dsn) as conn:
        team = teams.create(conn, name="Replicated")
        page = pages.create(
            conn,
            team_id=team.id,
            name="v0",
            slug=SLUG,
            created_by_id="user-1",
            is_public=True,
            components=[NewComponent(name="API", team_id=team.id)],
        ).page
    base = make_server_owned_dir("statusdb-replicas-")
    made: list[localpg.LocalCluster] = []

    def make(n: int) -> localpg.LocalCluster:
        replica = cluster.create_replica(base / f"replica{n}")
        made.append(replica)
        replica.start()
        return replica

    try:
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as workers:
                replicas = list(workers.map(make, (1, 2)))
        except localpg.PostgresNotFoundError as exc:
            pytest.skip(f"cannot start a streaming replica here: {exc}")
        for replica in replicas:
            _wait_replayed(replica, dsn)
        yield ReplicaSet(cluster, replicas, page.id, team.id)
    finally:
        for replica in made:
            with contextlib.suppress(localpg.ClusterError):
                cluster.remove_replica(replica)
        shutil.rmtree(base, ignore_errors=True)
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME))
            )


def _wait_fresh(status: Callable[[], list[routing.HostStatus]], *indexes: int) -> None:
    """Until the router's checks find these replicas (1-based, as in status()) fresh: a new
    router has one sample of the primary, which a replica a little behind has not reached."""
    deadline = time.monotonic() + PATIENCE
    while True:
        states = status()
        now = time.monotonic()
        if all(states[i].usable(now, None) for i in indexes):
            return
        assert time.monotonic() < deadline, f"replicas never fresh: {states}"
        time.sleep(0.02)


def _wait_checked_past(router: routing.Router, index: int, token: str) -> None:
    """Until the router's checks see replica `index` (1-based) at or past `token`."""
    target = routing.parse_token(token)
    deadline = time.monotonic() + PATIENCE
    while (router.status()[index].position or 0) < target:
        assert time.monotonic() < deadline, f"replica {index} never reached the token"
        time.sleep(0.02)


def _version(conn: Conn) -> int:
    """The page name's counter as this connection's server sees it."""
    view = views.page_view(conn, SLUG)
    assert view is not None
    return int(view.page.name[1:])


def _bump(router: routing.Router, page_id: str, counter: list[int]) -> tuple[int, str]:
    counter[0] += 1
    n = counter[0]
    written = router.write(lambda conn: pages.update(conn, page_id, name=f"v{n}"))
    return n, written.token


@pytest.fixture
def counter(replica_set: ReplicaSet) -> list[int]:
    with psycopg.connect(replica_set.primary_dsn) as conn:
        return [_version(conn)]


def _on_replica(conn: Conn) -> bool:
    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return row == (True,)


def test_replicas_stream_from_the_primary(replica_set: ReplicaSet) -> None:
    with psycopg.connect(replica_set.primary.dsn()) as conn:
        rows = conn.execute("SELECT state FROM pg_stat_replication").fetchall()
    assert rows == [("streaming",), ("streaming",)]
    with psycopg.connect(replica_set.primary.dsn()) as conn:
        slots = conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE active ORDER BY slot_name"
        ).fetchall()
    assert slots == sorted((r.slot_name,) for r in replica_set.replicas)
    for replica in replica_set.replicas:
        assert replica.is_replica()
        assert replica.port != replica_set.primary.port
        with psycopg.connect(replica.dsn(DBNAME)) as conn:
            assert _on_replica(conn)


def test_reads_on_replicas_writes_and_derivation_on_the_primary(replica_set: ReplicaSet) -> None:
    with routing.Router(
        replica_set.primary_dsn, replica_set.replica_dsns, max_lag=5.0, check_interval=0.1
    ) as router:
        assert [s.reachable for s in router.status()] == [True, True, True]
        _wait_fresh(router.status, 1, 2)
        on_replica = [router.read(_on_replica) for _ in range(10)]
        assert all(on_replica)
        served = router.reads_served()
        assert sorted(served) == sorted(s.name for s in router.status()[1:])  # round robin

        # A write goes to the primary; the derivation runs there, in the writing transaction.
        def open_incident(conn: Conn) -> tuple[bool, str]:
            incident = incidents.create(conn, replica_set.team_id, title="x", priority="CRITICAL")
            return _on_replica(conn), incident.id

        written = router.write(open_incident)
        assert written.result[0] is False
        view = router.read(lambda c: views.page_view(c, SLUG), token=written.token)
        assert view is not None
        assert view.page.overall_status == "MAJOR_OUTAGE"
        resolved = router.write(lambda c: incidents.resolve(c, written.result[1]))

        # The outbox is claimed on the primary; on a replica a claim is refused.
        claimed = router.write(lambda c: outbox.claim(c, worker_id="w1"))
        assert claimed.result is not None
        for replica in replica_set.replicas:
            _wait_replayed(replica, replica_set.primary_dsn)
        router.check()
        reached = routing.parse_token(resolved.token)
        assert all((s.position or 0) >= reached for s in router.status()[1:])
        with pytest.raises(StatusdbError, match="read-only"):
            router.read(lambda c: outbox.claim(c, worker_id="w2"), token=resolved.token)
        with pytest.raises(StatusdbError, match="read-only"):
            router.read(lambda c: teams.create(c, name="nope"), token=resolved.token)
        # Derived statuses arrive on replicas by replication, equal to the primary's.
        query = "SELECT id, current_status FROM status_page_component ORDER BY id"
        with (
            psycopg.connect(replica_set.primary_dsn) as p,
            psycopg.connect(replica_set.replica_dsns[0]) as r,
        ):
            assert p.execute(query).fetchall() == r.execute(query).fetchall()


def test_a_token_read_waits_for_that_replica_not_any(
    replica_set: ReplicaSet, counter: list[int]
) -> None:
    """Replica 1 applies commits 10 s late (not paused, within the bound): a read with a fresh
    token must never land there, even once replica 2 has caught up."""
    delayed = replica_set.replicas[0]
    with psycopg.connect(delayed.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET recovery_min_apply_delay = '10s'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        with routing.Router(
            replica_set.primary_dsn, replica_set.replica_dsns, max_lag=30.0, check_interval=0.05
        ) as router:
            for _ in range(2):
                n, token = _bump(router, replica_set.page_id, counter)
                assert router.read(_version, token=token) >= n  # at once: the primary
                _wait_checked_past(router, 2, token)  # replica 2 caught up; replica 1 has not
                states = router.status()
                assert states[2].position is not None
                assert states[2].position >= routing.parse_token(token)
                assert states[1].position is not None
                assert states[1].position < routing.parse_token(token)
                for _ in range(20):
                    assert router.read(_version, token=token) >= n
            served = router.reads_served()
            assert served.get(states[2].name, 0) >= 20
            assert served.get(states[1].name, 0) == 0
            # Without a token, the delayed replica is within the 30 s bound and serves reads.
            for _ in range(10):
                router.read(_version)
            assert router.reads_served().get(states[1].name, 0) > 0
    finally:
        with psycopg.connect(delayed.dsn(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
            conn.execute("SELECT pg_reload_conf()")
        _wait_replayed(delayed, replica_set.primary_dsn)


def test_paused_replica_is_skipped_and_reads_stay_within_the_bound(
    replica_set: ReplicaSet, counter: list[int]
) -> None:
    paused = replica_set.replicas[0]
    with psycopg.connect(paused.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    max_lag = 0.5
    try:
        with routing.Router(
            replica_set.primary_dsn, replica_set.replica_dsns, max_lag=max_lag, check_interval=0.05
        ) as router:
            assert router.status()[1].paused
            n, token = _bump(router, replica_set.page_id, counter)
            committed = time.monotonic()
            assert router.read(_version, token=token) >= n
            # Without a token: a read that starts max_lag after the commit sees it.
            while time.monotonic() < committed + max_lag:
                time.sleep(0.01)
            for _ in range(30):
                assert router.read(_version) >= n
            assert router.reads_served().get(router.status()[1].name, 0) == 0
    finally:
        with psycopg.connect(paused.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def test_no_token_read_is_older_than_its_token_under_churn(
    replica_set: ReplicaSet, counter: list[int]
) -> None:
    """Writers and token readers race while replica 1 is paused half-way."""
    paused = replica_set.replicas[0]
    failures: list[str] = []
    with routing.Router(
        replica_set.primary_dsn, replica_set.replica_dsns, max_lag=1.0, check_interval=0.02
    ) as router:
        writing = threading.Lock()  # commit order = counter order

        def client(rounds: int) -> None:
            for _ in range(rounds):
                with writing:
                    n, token = _bump(router, replica_set.page_id, counter)
                for _ in range(5):
                    seen = router.read(_version, token=token)
                    if seen < n:
                        failures.append(f"read {seen} with the token of {n}")
                time.sleep(0.01)

        threads = [threading.Thread(target=client, args=(40,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        with psycopg.connect(paused.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            for thread in threads:
                thread.join()
        finally:
            with psycopg.connect(paused.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        assert failures == []
        assert sum(router.reads_served().values()) == 2 * 40 * 5


def test_bad_tokens_and_settings_are_refused(replica_set: ReplicaSet) -> None:
    for token in ("", "0/16B3740", "G" * 16, "0" * 15, "0" * 17, "00000000 0000000"):
        with pytest.raises(InvalidInput, match="token"):
            routing.parse_token(token)
    assert routing.parse_token(routing.format_token(0x16B3740)) == 0x16B3740
    with pytest.raises(InvalidInput, match="max_lag"):
        routing.Router(replica_set.primary_dsn, max_lag=0)
    with pytest.raises(InvalidInput, match="check_interval"):
        routing.Router(replica_set.primary_dsn, max_lag=1, check_interval=2)
    with pytest.raises(TypeError, match="sequence"):
        routing.Router(replica_set.primary_dsn, replica_set.replica_dsns[0])


def test_listener_is_a_direct_session_on_the_primary(replica_set: ReplicaSet) -> None:
    with routing.Router(replica_set.primary_dsn, max_lag=1.0) as router:
        listener = router.listener()
        with listener:
            assert not _on_replica(listener)
            routing.require_direct(listener)


async def test_async_router_reads_replicas_and_honours_tokens(
    replica_set: ReplicaSet, counter: list[int]
) -> None:
    async def version(aconn: AConn) -> int:
        view = await views.page_view(aconn, SLUG)
        assert view is not None
        return int(view.page.name[1:])

    async def on_replica(aconn: AConn) -> bool:
        cur = await aconn.execute("SELECT pg_is_in_recovery()")
        return await cur.fetchone() == (True,)

    async with routing.AsyncRouter(
        replica_set.primary_dsn, replica_set.replica_dsns, max_lag=5.0, check_interval=0.05
    ) as router:
        _wait_fresh(router.status, 1, 2)
        assert all([await router.read(on_replica) for _ in range(4)])
        counter[0] += 1
        n = counter[0]
        written = await router.write(
            lambda aconn: pages.update(aconn, replica_set.page_id, name=f"v{n}")
        )
        assert not await router.read(on_replica, token=written.token)  # not yet checked
        assert await router.read(version, token=written.token) >= n
        async with router.primary() as aconn:
            assert not await on_replica(aconn)
            token = await routing.acommit(aconn)
        for replica in replica_set.replicas:
            _wait_replayed(replica, replica_set.primary_dsn)
        await router.check()
        assert await router.read(on_replica, token=token)
        listener = await router.listener()
        await listener.close()


def test_killed_replica_failover_is_invisible(replica_set: ReplicaSet, counter: list[int]) -> None:
    """Replica 1 paused, replica 2 killed with reads in flight: every read still answers,
    from the primary, and never older than its token."""
    paused, killed = replica_set.replicas
    with routing.Router(
        replica_set.primary_dsn, replica_set.replica_dsns, max_lag=5.0, check_interval=0.1
    ) as router:
        n, token = _bump(router, replica_set.page_id, counter)
        _wait_fresh(router.status, 2)
        for _ in range(6):
            assert router.read(_version) >= 0
        killed_name = router.status()[2].name
        assert router.reads_served().get(killed_name, 0) > 0
        with psycopg.connect(paused.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        # Kill replica 2 right after a check: its idle pooled connections break under the next
        # reads, which must run again elsewhere without the caller noticing.
        router.check()
        killed.stop(mode="immediate")
        before = router.reads_served().get(killed_name, 0)
        for _ in range(20):
            assert router.read(_version, token=token) >= n
            assert router.read(_version) >= 0
        assert router.reads_served().get(killed_name, 0) == before
        deadline = time.monotonic() + PATIENCE
        while router.status()[2].reachable:  # the next check finds it dead, if no read did
            assert time.monotonic() < deadline
            time.sleep(0.02)
        states = router.status()
        assert states[1].paused
        primary_before = router.reads_served()[states[0].name]
        for _ in range(10):
            assert router.read(_version) >= n
        assert router.reads_served()[states[0].name] == primary_before + 10


def _running_replica(replica_set: ReplicaSet) -> str:
    """The conninfo of a replica that accepts connections (other tests pause or stop some)."""
    for conninfo in replica_set.replica_dsns:
        try:
            with psycopg.connect(conninfo, connect_timeout=2):
                return conninfo
        except psycopg.OperationalError:
            continue
    pytest.skip("no replica is running")


def test_a_write_through_read_fails_alike_on_a_replica_and_the_primary(
    replica_set: ReplicaSet,
) -> None:
    """Issue 22 item 5: the read path is read-only wherever it runs, and a replica's refusal
    (SQLSTATE 25006) is the same translated error; a write path that reaches a standby is
    Unavailable (not the primary)."""
    replica = _running_replica(replica_set)
    with (
        psycopg.connect(replica) as on_replica,
        pytest.raises(ReadOnlyTransaction, match="read path") as refused_there,
    ):
        teams.create(on_replica, name="nope")
    with (
        routing.Router(replica_set.primary_dsn, max_lag=5.0) as single,
        pytest.raises(ReadOnlyTransaction, match="read path") as refused_here,
    ):
        single.read(lambda c: teams.create(c, name="nope"))
    for refused in (refused_there, refused_here):
        assert isinstance(refused.value.__cause__, psycopg.errors.ReadOnlySqlTransaction)
    # A "primary" conninfo that reaches a standby (no target_session_attrs=read-write).
    with (
        routing.Router(replica, max_lag=5.0) as wrong,
        pytest.raises(Unavailable, match=r"not \(or no longer\) the primary"),
    ):
        wrong.write(lambda c: teams.create(c, name="nope"))
