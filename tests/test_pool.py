"""statusdb.infra.pool: prepared statements from the first use, kept across pooled requests."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import re
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import incidents, pages, teams, views
from statusdb.db import queries
from statusdb.errors import Unavailable
from statusdb.infra.pool import PREPARE_THRESHOLD, make_async_pool, make_pool, prepared_max
from statusdb.pages import NewComponent
from statusdb.tooling import localpg

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]


def server_text(name: str) -> str:
    """Query `name` as the server stores it once prepared: %(param)s become $1, $2, ... in
    order of first appearance (psycopg's conversion)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return re.sub(r"%\((\w+)\)s", number, queries.get(name).sql.decode())


#: page_view's common call sends page_view_bytes' statement (issue 21: orjson, reused cursor).
PAGE_VIEW_SQL = server_text("page_view_bytes")


def seed(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    pages.create(
        conn,
        team_id=team.id,
        name="Acme Status",
        slug="acme",
        created_by_id="user-1",
        is_public=True,
        components=[NewComponent(name=f"C{n}", team_id=team.id) for n in range(5)],
    )
    incidents.create(conn, team.id, title="db down", priority="HIGH")
    conn.commit()


def prepared(conn: Conn) -> list[str]:
    """The statements prepared on `conn`'s server session (read without preparing)."""
    rows = conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False).fetchall()
    return [row[0] for row in rows]


async def aprepared(conn: AConn) -> list[str]:
    cur = await conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
    return [row[0] for row in await cur.fetchall()]


def test_page_view_is_prepared_and_kept_across_requests(dsn: str, conn: Conn) -> None:
    seed(conn)
    with make_pool(dsn, min_size=1, max_size=1) as pool:
        for _ in range(3):
            with pool.connection() as pooled:
                view = views.page_view(pooled, "acme")
                assert view is not None
                assert view.page.overall_status == "PARTIAL_OUTAGE"
        with pool.connection() as pooled:
            assert pooled.prepare_threshold == PREPARE_THRESHOLD
            assert pooled.prepared_max == prepared_max()
            statements = prepared(pooled)
            # Prepared once at the first request, still there (not re-prepared) at the last.
            assert statements.count(PAGE_VIEW_SQL) == 1
            assert not pooled.autocommit


def test_prepare_false_never_prepares(dsn: str, conn: Conn) -> None:
    """For PgBouncer in transaction mode: no server-side prepared statement, ever."""
    seed(conn)
    with make_pool(dsn, prepare=False, min_size=1, max_size=1) as pool:
        for _ in range(8):
            with pool.connection() as pooled:
                assert views.page_view(pooled, "acme") is not None
        with pool.connection() as pooled:
            assert pooled.prepare_threshold is None
            assert prepared(pooled) == []


def test_a_request_that_fails_costs_one_more_prepare(dsn: str, conn: Conn) -> None:
    """A rollback makes psycopg forget its statements; the next request prepares again."""
    seed(conn)
    with make_pool(dsn, min_size=1, max_size=1) as pool:
        with pool.connection() as pooled:
            assert views.page_view(pooled, "acme") is not None
        with contextlib.suppress(RuntimeError), pool.connection() as pooled:
            assert views.page_view(pooled, "acme") is not None
            raise RuntimeError("the request failed")
        with pool.connection() as pooled:
            assert prepared(pooled) == []
            assert views.page_view(pooled, "acme") is not None
            assert prepared(pooled).count(PAGE_VIEW_SQL) == 1


def test_autocommit_pool_reads_outside_transactions(dsn: str, conn: Conn) -> None:
    seed(conn)
    with make_pool(dsn, autocommit=True, min_size=1, max_size=1) as pool:
        for _ in range(2):
            with pool.connection() as pooled:
                assert pooled.autocommit
                assert views.page_view(pooled, "acme") is not None
                assert pooled.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with pool.connection() as pooled:
            assert prepared(pooled).count(PAGE_VIEW_SQL) == 1


def test_configure_runs_after_statusdb_settings(dsn: str, conn: Conn) -> None:
    seed(conn)
    seen: list[int | None] = []

    def configure(pooled: Conn) -> None:
        seen.append(pooled.prepare_threshold)

    with (
        make_pool(dsn, configure=configure, min_size=1, max_size=1) as pool,
        pool.connection() as pooled,
    ):
        assert views.page_view(pooled, "acme") is not None
    assert seen == [PREPARE_THRESHOLD]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="prepare"):
        make_pool("", prepare=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prepare_threshold"):
        make_pool("", kwargs={"prepare_threshold": 5})


async def test_async_pool_prepares_and_keeps(dsn: str, conn: Conn) -> None:
    seed(conn)
    async with make_async_pool(dsn, min_size=1, max_size=1) as pool:
        for _ in range(3):
            async with pool.connection() as pooled:
                view = await views.page_view(pooled, "acme")
                assert view is not None
        async with pool.connection() as pooled:
            assert (await aprepared(pooled)).count(PAGE_VIEW_SQL) == 1


async def test_async_pool_prepare_false(dsn: str, conn: Conn) -> None:
    seed(conn)
    async with make_async_pool(dsn, prepare=False, min_size=1, max_size=1) as pool:
        for _ in range(6):
            async with pool.connection() as pooled:
                assert await views.page_view(pooled, "acme") is not None
        async with pool.connection() as pooled:
            assert await aprepared(pooled) == []


def test_pool_replaces_a_connection_killed_while_idle(dsn: str, conn: Conn) -> None:
    """The check on checkout: an idle connection the server dropped never reaches a caller."""
    seed(conn)
    with make_pool(dsn, min_size=1, max_size=1) as pool:
        with pool.connection() as pooled:
            pid = pooled.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.commit()
        with pool.connection() as pooled:
            assert pooled.info.backend_pid != pid
            assert views.page_view(pooled, "acme") is not None


def test_psycopg_pool_hooks_statusdb_relies_on_are_there() -> None:
    """statusdb.infra.pool overrides two private methods of psycopg_pool's pools and
    subclasses its back-off (pyproject.toml bounds psycopg-pool below its next minor): a
    release that renames them fails here, in `make test-newest`, not in production."""
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
    from psycopg_pool.base import AttemptWithBackoff

    for cls in (ConnectionPool, AsyncConnectionPool):
        assert list(inspect.signature(cls._add_connection).parameters) == [
            "self",
            "attempt",
            "growing",
        ]
        assert list(inspect.signature(cls._connect).parameters) == ["self", "timeout"]
    attempt = AttemptWithBackoff(timeout=10.0)
    attempt.update_delay(0.0)
    assert attempt.delay > 0


def test_reconnect_attempts_do_not_back_off_for_seconds() -> None:
    """psycopg_pool doubles its pause after each failed connection attempt (1, 2, 4 s ...), so
    a new primary was found seconds after it was up; statusdb's pools try at most
    `reconnect_delay` apart. Counted on a port that accepts and hangs up at once."""
    accepted: list[float] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)
        port = server.getsockname()[1]
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                accepted.append(time.monotonic())
                client.close()

        thread = threading.Thread(target=serve)
        thread.start()
        conninfo = f"host=127.0.0.1 port={port} sslmode=disable gssencmode=disable"
        try:
            with make_pool(conninfo, min_size=1, max_size=1, open=True):
                time.sleep(3.0)
        finally:
            stop.set()
            thread.join()
    # Capped at 0.5 s: about 8 attempts in 3 s; psycopg_pool's own doubling makes 3.
    assert len(accepted) >= 5, accepted
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert max(gaps) < 1.0, gaps


@pytest.mark.slow
def test_a_restarted_server_is_used_soon_after_it_is_back(server_owned_tmp_dir: Path) -> None:
    """Requests keep failing (Unavailable) while the server is down, which makes the pool try
    to reconnect again and again; once the server is back, the next request gets a connection
    within about `reconnect_delay`, not after psycopg_pool's doubled pause (measured 2-4 s)."""
    try:
        server = localpg.ensure_running(server_owned_tmp_dir / "data", fsync=False)
    except localpg.PostgresNotFoundError as exc:  # pragma: no cover
        pytest.skip(f"no PostgreSQL server programs here: {exc}")
    try:
        with make_pool(server.dsn(), min_size=1, max_size=1, timeout=0.5, open=True) as pool:
            pool.wait()
            server.stop()
            down_until = time.monotonic() + 4.0
            while time.monotonic() < down_until:
                with pytest.raises(Unavailable), pool.connection():
                    pass
            server.start()
            back = time.monotonic()
            while True:
                try:
                    with pool.connection() as conn:
                        conn.execute(b"SELECT 1")
                    break
                except Unavailable:
                    assert time.monotonic() - back < 15
            waited = time.monotonic() - back
    finally:
        server.stop()
    print(f"\nconnection {waited:.2f} s after the server was back")
    assert waited < 1.5
