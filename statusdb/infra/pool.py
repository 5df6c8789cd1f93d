"""Connection pools set up for statusdb: prepared statements from the first use, kept.

PostgreSQL plans a statement every time it is sent as plain text. The page view's query takes
about a quarter of a millisecond to plan, more than it takes to run. A *prepared* statement is
planned once per connection and then only executed, so a pool of long-lived connections that
keep their prepared statements pays for planning once per connection, not once per request.

psycopg prepares a statement on its own after it has run `prepare_threshold` times on a
connection (5 by default). `make_pool` sets it to 0, so that statusdb's queries are prepared
from their first use, and gives each connection room for all of statusdb's named queries
(`prepared_max`), so that none is evicted and planned again.

Keeping them: psycopg forgets (and DEALLOCATEs) every prepared statement of a connection when a
transaction on it is rolled back (`Connection.rollback()`, an exception leaving `with conn:` or
`with conn.transaction():`) and after DROP or ALTER statements, because a rolled back or dropped
object could make a kept statement fail. A pool that rolls back every returned connection, as
SQLAlchemy's does by default ("reset on return"), therefore never reuses a plan. psycopg_pool
rolls back only a connection returned while a transaction is still open, so finish your
transaction before returning a connection: `pool.connection()` does (it commits when the block
succeeds); with `getconn()`/`putconn()`, commit before `putconn` (a commit keeps the prepared
statements, and for a read-only request costs as little as a rollback). Errors that roll back
still cost nothing but one more planning of each statement on that connection.

With `autocommit=True` each statusdb operation is its own transaction, and a read such as the
page view is a single round trip (no BEGIN and COMMIT around it); operations of several
statements still run atomically, and `with conn.transaction():` groups several operations.

PgBouncer: in *transaction* pooling mode, consecutive transactions of one client connection
may run on different server connections, where a statement prepared on another one does not
exist. Either give PgBouncer (1.21 or later) `max_prepared_statements` so that it tracks
protocol-level prepared statements itself, and keep `prepare=True`; or pass `prepare=False`,
so that psycopg never prepares (every statement is then planned on every execution). Session
pooling mode needs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from statusdb.db import queries
from statusdb.domain import validate

__all__ = ["PREPARE_THRESHOLD", "make_async_pool", "make_pool", "prepared_max"]

#: psycopg's prepare_threshold when preparing: from the first execution on.
PREPARE_THRESHOLD: Final = 0

# Statements statusdb runs that are not named queries (savepoints of atomic operations).
_OTHER_STATEMENTS: Final = 16


def prepared_max() -> int:
    """How many prepared statements a connection keeps: every named query, with room to spare
    (for the savepoint statements of atomic operations and the application's own queries)."""
    return max(100, 2 * (len(queries.all_queries()) + _OTHER_STATEMENTS))


def _settings(prepare: bool) -> tuple[int | None, int]:
    if not isinstance(prepare, bool):
        raise TypeError(f"prepare must be True or False, not {prepare!r}")
    return (PREPARE_THRESHOLD if prepare else None), prepared_max()


def _connect_kwargs(kwargs: Mapping[str, Any] | None, autocommit: bool) -> dict[str, Any]:
    merged = dict(kwargs or {})
    if "prepare_threshold" in merged:
        raise TypeError("pass prepare=True/False to make_pool, not kwargs['prepare_threshold']")
    merged.setdefault("autocommit", validate.flag("autocommit", autocommit))
    return merged


# async-to-sync: begin
async def _acheck(conn: psycopg.AsyncConnection[Any]) -> None:
    """psycopg_pool's check_connection (an empty query outside any transaction), unprepared."""
    if conn.autocommit:
        await conn.execute(b"", prepare=False)
        return
    await conn.set_autocommit(True)
    try:
        await conn.execute(b"", prepare=False)
    finally:
        await conn.set_autocommit(False)


def make_async_pool(
    conninfo: str = "",
    *,
    prepare: bool = True,
    autocommit: bool = False,
    kwargs: Mapping[str, Any] | None = None,
    configure: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[None]] | None = None,
    **pool_kwargs: Any,
) -> AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]:
    """A psycopg_pool `AsyncConnectionPool` whose connections prepare statusdb's statements.

    `prepare=False` never prepares (PgBouncer in transaction mode without
    max_prepared_statements). `autocommit=True` makes each operation its own transaction (reads
    in one round trip). `kwargs` are connection arguments, `configure` runs on each new
    connection after statusdb's own settings, and the other keyword arguments go to
    `AsyncConnectionPool` (min_size, max_size, open, name, timeout, ...). Open it with
    `open=True`, `await pool.open()` or `async with make_async_pool(...) as pool:`.

    Each connection is checked when it is handed out (an empty query, one round trip, as
    `AsyncConnectionPool.check_connection` does), so that after a PostgreSQL restart or failover
    stale idle connections are replaced instead of failing the next request each: only
    operations in flight at the moment see an error (`statusdb.errors.Retryable`). Pass
    `check=None` to skip the check where that round trip matters more.
    """
    threshold, keep = _settings(prepare)

    async def setup(conn: psycopg.AsyncConnection[TupleRow]) -> None:
        conn.prepare_threshold = threshold
        conn.prepared_max = keep
        if configure is not None:
            await configure(conn)

    pool_kwargs.setdefault("open", False)
    pool_kwargs.setdefault("check", _acheck)
    return AsyncConnectionPool(
        conninfo,
        kwargs=_connect_kwargs(kwargs, autocommit),
        configure=setup,
        **pool_kwargs,
    )


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def _check(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's check_connection (an empty query outside any transaction), unprepared."""
    if conn.autocommit:
        conn.execute(b"", prepare=False)
        return
    conn.set_autocommit(True)
    try:
        conn.execute(b"", prepare=False)
    finally:
        conn.set_autocommit(False)


def make_pool(
    conninfo: str = "",
    *,
    prepare: bool = True,
    autocommit: bool = False,
    kwargs: Mapping[str, Any] | None = None,
    configure: Callable[[psycopg.Connection[TupleRow]], None] | None = None,
    **pool_kwargs: Any,
) -> ConnectionPool[psycopg.Connection[TupleRow]]:
    """A psycopg_pool `ConnectionPool` whose connections prepare statusdb's statements.

    `prepare=False` never prepares (PgBouncer in transaction mode without
    max_prepared_statements). `autocommit=True` makes each operation its own transaction (reads
    in one round trip). `kwargs` are connection arguments, `configure` runs on each new
    connection after statusdb's own settings, and the other keyword arguments go to
    `ConnectionPool` (min_size, max_size, open, name, timeout, ...). Open it with
    `open=True`, `pool.open()` or `with make_pool(...) as pool:`.

    Each connection is checked when it is handed out (an empty query, one round trip, as
    `ConnectionPool.check_connection` does), so that after a PostgreSQL restart or failover
    stale idle connections are replaced instead of failing the next request each: only
    operations in flight at the moment see an error (`statusdb.errors.Retryable`). Pass
    `check=None` to skip the check where that round trip matters more.
    """
    threshold, keep = _settings(prepare)

    def setup(conn: psycopg.Connection[TupleRow]) -> None:
        conn.prepare_threshold = threshold
        conn.prepared_max = keep
        if configure is not None:
            configure(conn)

    pool_kwargs.setdefault("open", False)
    pool_kwargs.setdefault("check", _check)
    return ConnectionPool(
        conninfo, kwargs=_connect_kwargs(kwargs, autocommit), configure=setup, **pool_kwargs
    )


# async-to-sync: end of generated code
