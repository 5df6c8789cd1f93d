"""s31: no psycopg or psycopg_pool exception escapes statusdb's pools and routers (issues 22, 25).

Every public entry point of `statusdb.infra.pool` and `statusdb.infra.routing` that takes a
pool or router is driven against a server that is not there, against a full pool, and through
a COMMIT whose connection is killed; each raises a statusdb error naming the cause, with the
psycopg error chained. Before this, a PoolTimeout reached the caller after 30 s and a lost
COMMIT was a raw OperationalError (or a plain Retryable).
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import psycopg
import psycopg_pool
import pytest
from psycopg.rows import TupleRow

from statusdb import teams
from statusdb.errors import (
    CommitOutcomeUnknown,
    ReadOnlyTransaction,
    Retryable,
    StatusdbError,
    Unavailable,
)
from statusdb.infra import pool, routing

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]


@pytest.fixture
def dead_dsn() -> str:
    """A conninfo whose port has nothing listening (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"host=127.0.0.1 port={port} dbname=nowhere user=nobody connect_timeout=2"


def _no_psycopg(exc: BaseException) -> None:
    assert isinstance(exc, StatusdbError), type(exc)
    assert not isinstance(exc, psycopg.Error)
    assert isinstance(exc.__cause__, psycopg.Error)


#: Router methods driven below; a new public method fails this test until it is driven too.
_DRIVEN = {"read", "write", "primary", "listener"}
_NO_CONNECTION = {"open", "close", "check", "status", "reads_served"}


def test_every_router_entry_point_is_covered() -> None:
    for cls in (routing.Router, routing.AsyncRouter):
        public = {name for name, _ in inspect.getmembers(cls, callable) if not name.startswith("_")}
        assert public == _DRIVEN | _NO_CONNECTION, public ^ (_DRIVEN | _NO_CONNECTION)


def test_stopped_server_pool_and_router_raise_unavailable(dead_dsn: str) -> None:
    with pool.make_pool(dead_dsn, timeout=0.5, min_size=1, open=True) as dead:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="cannot be reached") as caught, dead.connection():
            pass
        assert time.monotonic() - started < 3
        _no_psycopg(caught.value)
        with pytest.raises(Unavailable, match="cannot be reached") as caught:
            dead.getconn()
        _no_psycopg(caught.value)
    never = pool.make_pool(dead_dsn)
    with pytest.raises(Unavailable, match="cannot be reached") as caught:
        never.open(wait=True, timeout=0.5)
    _no_psycopg(caught.value)
    closed = pool.make_pool(dead_dsn, timeout=0.5)
    with pytest.raises(Unavailable, match="pool is closed") as caught, closed.connection():
        pass
    _no_psycopg(caught.value)

    with routing.Router(dead_dsn, primary_timeout=0.5, max_lag=1.0) as router:
        calls: dict[str, Callable[[], object]] = {
            "write": lambda: router.write(lambda c: teams.create(c, name="x")),
            "read": lambda: router.read(lambda c: teams.get(c, "x")),
            "primary": lambda: router.primary().__enter__(),
            "listener": router.listener,
        }
        assert set(calls) == _DRIVEN
        for name, call in calls.items():
            with pytest.raises(Unavailable, match="unavailable") as caught:
                call()
            _no_psycopg(caught.value)
            assert isinstance(caught.value, Retryable), name


async def test_stopped_server_async_pool_and_router_raise_unavailable(dead_dsn: str) -> None:
    async with pool.make_async_pool(dead_dsn, timeout=0.5, min_size=1) as dead:
        with pytest.raises(Unavailable, match="cannot be reached") as caught:
            async with dead.connection():
                pass
        _no_psycopg(caught.value)
    async with routing.AsyncRouter(dead_dsn, primary_timeout=0.5, max_lag=1.0) as router:

        async def primary() -> None:
            async with router.primary():
                pass

        async def create(aconn: AConn) -> object:
            return await teams.create(aconn, name="x")

        async def get(aconn: AConn) -> object:
            return await teams.get(aconn, "x")

        async def write() -> object:
            return await router.write(create)

        async def read() -> object:
            return await router.read(get)

        calls: list[Callable[[], Awaitable[object]]] = [write, read, primary, router.listener]
        for call in calls:
            with pytest.raises(Unavailable) as caught:
                await call()
            _no_psycopg(caught.value)


def test_full_pool_and_router_raise_unavailable_naming_the_cause(dsn: str) -> None:
    with (
        pool.make_pool(dsn, min_size=1, max_size=1, timeout=0.3, open=True) as full,
        full.connection(),
    ):
        with (
            pytest.raises(Unavailable, match="all 1 connections are in use") as caught,
            full.connection(),
        ):
            pass
        _no_psycopg(caught.value)
        assert isinstance(caught.value.__cause__, psycopg_pool.PoolTimeout)
    with (
        routing.Router(dsn, min_size=1, max_size=1, primary_timeout=0.3, max_lag=1.0) as router,
        router.primary(),
    ):
        with pytest.raises(Unavailable, match="in use") as caught:
            router.write(lambda c: teams.create(c, name=f"t-{uuid.uuid4().hex}"))
        _no_psycopg(caught.value)


def test_your_own_commit_in_a_primary_block_is_translated(dsn: str) -> None:
    """The issue's case: `conn.commit()` on a `router.primary()` connection raised a raw
    OperationalError when the connection died."""
    with (
        psycopg.connect(dsn, autocommit=True) as admin,
        routing.Router(dsn, max_lag=1.0) as router,
    ):

        def killed_then_committed() -> None:
            with router.primary() as conn:
                teams.create(conn, name=f"t-{uuid.uuid4().hex}")
                admin.execute(b"SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
                conn.commit()

        def bad_statement() -> None:
            with router.primary() as conn:
                conn.execute(b"SELEC 1")

        with pytest.raises(CommitOutcomeUnknown) as caught:
            killed_then_committed()
        _no_psycopg(caught.value)
        with pytest.raises(StatusdbError) as refused:
            bad_statement()
        _no_psycopg(refused.value)


def test_a_call_on_a_closed_connection_is_unavailable(dsn: str) -> None:
    conn = psycopg.connect(dsn)
    conn.close()
    with pytest.raises(Unavailable, match="closed"):
        teams.get(conn, "x")


def test_a_write_through_the_read_path_is_refused_on_the_primary_too(dsn: str) -> None:
    with routing.Router(dsn, max_lag=1.0) as router:
        with pytest.raises(ReadOnlyTransaction, match=r"read path.*router\.write") as caught:
            router.read(lambda c: teams.create(c, name=f"t-{uuid.uuid4().hex}"))
        assert isinstance(caught.value.__cause__, psycopg.errors.ReadOnlySqlTransaction)
        with pytest.raises(ReadOnlyTransaction, match="read path"):
            router.read(lambda c: c.execute(b"CREATE TEMP TABLE t (x int)"))
        # Reads and writes through their paths still work.
        team = router.write(lambda c: teams.create(c, name=f"t-{uuid.uuid4().hex}"))
        assert router.read(lambda c: teams.get(c, team.result.id)).id == team.result.id
    # The documented opt-out: autocommit reads (one round trip), where the primary accepts it.
    with routing.Router(dsn, max_lag=1.0, read_only=False) as fast:
        made = fast.read(lambda c: teams.create(c, name=f"t-{uuid.uuid4().hex}"))
        assert fast.read(lambda c: teams.get(c, made.id)).id == made.id


async def test_a_write_through_the_async_read_path_is_refused(dsn: str) -> None:
    async with routing.AsyncRouter(dsn, max_lag=1.0) as router:

        async def create(aconn: AConn) -> object:
            return await teams.create(aconn, name=f"t-{uuid.uuid4().hex}")

        with pytest.raises(ReadOnlyTransaction, match="read path"):
            await router.read(create)


# -- a COMMIT killed while it runs -------------------------------------------------------------

_PLANT = b"""
CREATE TABLE s31_commit_gate (id int);
CREATE FUNCTION s31_wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(31031);
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER s31_wait_at_commit AFTER INSERT ON s31_commit_gate
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION s31_wait_at_commit();
"""


@contextlib.contextmanager
def _killed_at_commit(dsn: str, victim: Callable[[], int]) -> Iterator[None]:
    """Hold the lock the planted deferred trigger waits for at COMMIT; once the victim's
    backend (pid from `victim()`) waits for it, terminate that backend."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(_PLANT)
        admin.execute(b"SELECT pg_advisory_lock(31031)")
        stop = threading.Event()

        def killer() -> None:
            with psycopg.connect(dsn, autocommit=True) as watcher:
                while not stop.is_set():
                    pid = victim()
                    row = watcher.execute(
                        b"SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()
                    if row is not None and row[0] == "Lock":
                        watcher.execute(b"SELECT pg_terminate_backend(%s)", (pid,))
                        return
                    time.sleep(0.02)

        thread = threading.Thread(target=killer)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(10)
            admin.execute(b"SELECT pg_advisory_unlock(31031)")


def _gate(conn: Conn) -> None:
    conn.execute(b"INSERT INTO s31_commit_gate VALUES (1)")


@pytest.mark.fresh_db
def test_a_commit_killed_midway_is_commit_outcome_unknown(dsn: str) -> None:
    pid: dict[str, int] = {}
    # routing.commit on a connection of your own
    conn = psycopg.connect(dsn)
    pid["now"] = conn.info.backend_pid
    with _killed_at_commit(dsn, lambda: pid["now"]):
        _gate(conn)
        with pytest.raises(CommitOutcomeUnknown, match="may or may not") as caught:
            routing.commit(conn)
    _no_psycopg(caught.value)
    conn.close()

    # the pool's connection() block, committing at its end
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(b"DROP TABLE s31_commit_gate; DROP FUNCTION s31_wait_at_commit()")

    def pooled_write(one: pool.StatusdbPool) -> None:
        with one.connection() as pooled:
            pid["now"] = pooled.info.backend_pid
            _gate(pooled)

    with (
        pool.make_pool(dsn, min_size=1, max_size=1, open=True) as one,
        _killed_at_commit(dsn, lambda: pid["now"]),
        pytest.raises(CommitOutcomeUnknown) as caught,
    ):
        pooled_write(one)
    _no_psycopg(caught.value)

    # Router.write
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(b"DROP TABLE s31_commit_gate; DROP FUNCTION s31_wait_at_commit()")
    with routing.Router(dsn, max_lag=1.0) as router:

        def write(c: Conn) -> None:
            pid["now"] = c.info.backend_pid
            _gate(c)

        pid["now"] = -1
        with _killed_at_commit(dsn, lambda: pid["now"]), pytest.raises(CommitOutcomeUnknown) as c:
            router.write(write)
        _no_psycopg(c.value)
