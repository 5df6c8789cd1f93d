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

Errors: the pools made here (`StatusdbPool`, `StatusdbAsyncPool`) raise statusdb's errors, never
psycopg_pool's: `Unavailable` when no connection comes within `timeout` (default
`CHECKOUT_TIMEOUT`, 5 s, not psycopg_pool's 30 s; saying whether the pool was full or the server
unreachable), the pool is closed or too many are waiting; `CommitOutcomeUnknown` when the
connection is lost while `connection()` commits at the end of its block. A server that
restarts or fails over is used again within `reconnect_delay` (`RECONNECT_DELAY`, 0.5 s) of
accepting connections: psycopg_pool's own pause between attempts doubles up to minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from statusdb.db import queries
from statusdb.domain import validate
from statusdb.errors import (
    InvalidArgument,
    InvalidInput,
    Unavailable,
    translate_commit,
    unavailable,
)

__all__ = [
    "CHECKOUT_TIMEOUT",
    "PREPARE_THRESHOLD",
    "RECONNECT_DELAY",
    "StatusdbAsyncPool",
    "StatusdbPool",
    "make_async_pool",
    "make_pool",
    "prepared_max",
]

#: How long `connection()` / `getconn()` wait for a connection by default, in seconds
#: (psycopg_pool's own default is 30 s: a request parked that long behind a dead server helps
#: nobody). Pass `timeout=` to the factories for another bound.
CHECKOUT_TIMEOUT: Final = 5.0
#: The longest pause between two attempts to (re)connect, in seconds. psycopg_pool doubles
#: its pause after each failed attempt (1, 2, 4, 8 s ...): after a failover the new primary
#: was then found seconds after it was up. statusdb's pools keep psycopg_pool's first pause
#: and doubling but never wait longer than this (`reconnect_delay=` to change it).
RECONNECT_DELAY: Final = 0.5
#: Pause between checkout attempts when a handed-out connection fails its check.
_CHECK_RETRY_DELAY: Final = 0.05


class _CappedAttempt(AttemptWithBackoff):
    """psycopg_pool's reconnect back-off, never longer than `cap` seconds between attempts."""

    def __init__(self, *, timeout: float, cap: float) -> None:
        super().__init__(timeout=timeout)
        self._cap = cap

    def update_delay(self, now: float) -> None:
        first = self.delay == 0.0
        super().update_delay(now)
        if first:
            self.delay = min(self.delay, self._cap / 4)
        self.delay = min(self.delay, self._cap)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(f"{name} must be a number of seconds > 0")
    return float(value)


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
        raise InvalidArgument(f"prepare must be True or False, not {prepare!r}")
    return (PREPARE_THRESHOLD if prepare else None), prepared_max()


def _connect_kwargs(kwargs: Mapping[str, Any] | None, autocommit: bool) -> dict[str, Any]:
    merged = dict(kwargs or {})
    if "prepare_threshold" in merged:
        raise InvalidArgument(
            "pass prepare=True/False to make_pool, not kwargs['prepare_threshold']"
        )
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


class StatusdbAsyncPool(AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]):
    """An `AsyncConnectionPool` that tells the truth about failures and reconnects promptly.

    `connection()` and `getconn()` raise statusdb's errors, never psycopg_pool's: no connection
    within the timeout, a closed pool, too many waiting: `statusdb.errors.Unavailable`, with
    psycopg_pool's error (and the last connection attempt's error, if one failed) chained. A
    connection lost while `connection()` commits at the end of the block:
    `CommitOutcomeUnknown` (the transaction may have committed); other errors of that COMMIT
    (a deferred constraint, a serialization failure) are translated as statements' are.
    Exceptions raised inside the block pass unchanged (statusdb's operations raise statusdb's
    errors; your own psycopg calls raise psycopg's).

    Each connection is checked as it is handed out (`check`, an empty query): a stale one
    (after a restart or failover) is replaced and the next one tried at once, within the
    caller's timeout, instead of psycopg_pool's growing pause between checks. Connection
    attempts are retried at most `reconnect_delay` seconds apart (see `RECONNECT_DELAY`).
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        check: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[None]] | None = None,
        reconnect_delay: float = RECONNECT_DELAY,
        **kwargs: Any,
    ) -> None:
        # Set before the base class may start connecting (open=True).
        self.reconnect_delay = _positive("reconnect_delay", reconnect_delay)
        self._statusdb_check = check
        self.last_connect_error: BaseException | None = None
        super().__init__(conninfo, **kwargs)

    async def _connect(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg_pool's signature
    ) -> psycopg.AsyncConnection[TupleRow]:
        # psycopg_pool logs a failed attempt and retries it later; the error is kept so that a
        # caller who times out is told why no connection came.
        try:
            aconn = await super()._connect(timeout)
        except Exception as exc:
            self.last_connect_error = exc
            raise
        self.last_connect_error = None
        return aconn

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        if attempt is None:
            attempt = _CappedAttempt(timeout=self.reconnect_timeout, cap=self.reconnect_delay)
        await super()._add_connection(attempt, growing)

    async def getconn(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg_pool's signature
    ) -> psycopg.AsyncConnection[TupleRow]:
        """A checked connection within `timeout` seconds (default: the pool's `timeout`), or
        `Unavailable`. Give it back with `putconn()`; prefer `connection()`."""
        wait = self.timeout if timeout is None else _positive("timeout", timeout)
        deadline = time.monotonic() + wait
        while True:
            try:
                aconn = await super().getconn(max(deadline - time.monotonic(), 0.0))
            except psycopg.Error as exc:
                raise self._unavailable(exc, wait) from exc
            if self._statusdb_check is None:
                return aconn
            try:
                await self._statusdb_check(aconn)
            except Exception as exc:
                # Broken: the pool discards it and connects anew in the background.
                await self.putconn(aconn)
                self.last_connect_error = exc
                if time.monotonic() >= deadline:
                    raise self._unavailable(exc, wait) from exc
                await asyncio.sleep(_CHECK_RETRY_DELAY)
                continue
            return aconn

    async def wait(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - psycopg_pool's signature
    ) -> None:
        """Wait until the pool holds `min_size` connections (`open(wait=True)` does), or
        `Unavailable` after `timeout` seconds (psycopg_pool then closes the pool)."""
        try:
            await super().wait(timeout)
        except psycopg.Error as exc:
            raise self._unavailable(exc, timeout) from exc

    def _unavailable(self, exc: BaseException, wait: float) -> Unavailable:
        """Unavailable for `exc`, saying why no connection came when the pool can tell."""
        why = None
        last = self.last_connect_error
        if not isinstance(exc, PoolTimeout):
            pass
        elif last is not None:
            why = f"the server cannot be reached (last connection attempt: {_first_line(last)})"
        else:
            stats = self.get_stats()
            if stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= self.max_size:
                why = f"all {self.max_size} connections are in use (raise max_size?)"
        return unavailable(exc, f"pool {self.name!r}, waited {wait:g} s", why)

    @contextlib.asynccontextmanager
    async def connection(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg_pool's signature
    ) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        """A connection for the block (see `getconn`): committed when the block succeeds,
        rolled back when it raises, then returned to the pool."""
        inside = False
        try:
            async with super().connection(timeout) as aconn:
                inside = True
                yield aconn
                inside = False
        except psycopg.Error as exc:
            if inside:
                raise  # raised by the block itself: the caller's own psycopg call
            raise translate_commit(exc) from exc


def make_async_pool(
    conninfo: str = "",
    *,
    prepare: bool = True,
    autocommit: bool = False,
    kwargs: Mapping[str, Any] | None = None,
    configure: Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[None]] | None = None,
    **pool_kwargs: Any,
) -> StatusdbAsyncPool:
    """A psycopg_pool `AsyncConnectionPool` whose connections prepare statusdb's statements.

    `prepare=False` never prepares (PgBouncer in transaction mode without
    max_prepared_statements). `autocommit=True` makes each operation its own transaction (reads
    in one round trip). `kwargs` are connection arguments, `configure` runs on each new
    connection after statusdb's own settings, and the other keyword arguments go to
    `AsyncConnectionPool` (min_size, max_size, open, name, timeout, ...) or to
    `StatusdbAsyncPool` (`reconnect_delay`). Open it with
    `open=True`, `await pool.open()` or `async with make_async_pool(...) as pool:`.

    `timeout` (default `CHECKOUT_TIMEOUT`, 5 s) is how long a request waits for a connection
    before `statusdb.errors.Unavailable`: during a restart or failover, how long a write waits
    for the primary to come back.

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
    pool_kwargs.setdefault("timeout", CHECKOUT_TIMEOUT)
    return StatusdbAsyncPool(
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


class StatusdbPool(ConnectionPool[psycopg.Connection[TupleRow]]):
    """An `ConnectionPool` that tells the truth about failures and reconnects promptly.

    `connection()` and `getconn()` raise statusdb's errors, never psycopg_pool's: no connection
    within the timeout, a closed pool, too many waiting: `statusdb.errors.Unavailable`, with
    psycopg_pool's error (and the last connection attempt's error, if one failed) chained. A
    connection lost while `connection()` commits at the end of the block:
    `CommitOutcomeUnknown` (the transaction may have committed); other errors of that COMMIT
    (a deferred constraint, a serialization failure) are translated as statements' are.
    Exceptions raised inside the block pass unchanged (statusdb's operations raise statusdb's
    errors; your own psycopg calls raise psycopg's).

    Each connection is checked as it is handed out (`check`, an empty query): a stale one
    (after a restart or failover) is replaced and the next one tried at once, within the
    caller's timeout, instead of psycopg_pool's growing pause between checks. Connection
    attempts are retried at most `reconnect_delay` seconds apart (see `RECONNECT_DELAY`).
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        check: Callable[[psycopg.Connection[TupleRow]], None] | None = None,
        reconnect_delay: float = RECONNECT_DELAY,
        **kwargs: Any,
    ) -> None:
        self.reconnect_delay = _positive("reconnect_delay", reconnect_delay)
        self._statusdb_check = check
        self.last_connect_error: BaseException | None = None
        super().__init__(conninfo, **kwargs)

    def _connect(self, timeout: float | None = None) -> psycopg.Connection[TupleRow]:
        try:
            conn = super()._connect(timeout)
        except Exception as exc:
            self.last_connect_error = exc
            raise
        self.last_connect_error = None
        return conn

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = _CappedAttempt(timeout=self.reconnect_timeout, cap=self.reconnect_delay)
        super()._add_connection(attempt, growing)

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[TupleRow]:
        """A checked connection within `timeout` seconds (default: the pool's `timeout`), or
        `Unavailable`. Give it back with `putconn()`; prefer `connection()`."""
        wait = self.timeout if timeout is None else _positive("timeout", timeout)
        deadline = time.monotonic() + wait
        while True:
            try:
                conn = super().getconn(max(deadline - time.monotonic(), 0.0))
            except psycopg.Error as exc:
                raise self._unavailable(exc, wait) from exc
            if self._statusdb_check is None:
                return conn
            try:
                self._statusdb_check(conn)
            except Exception as exc:
                self.putconn(conn)
                self.last_connect_error = exc
                if time.monotonic() >= deadline:
                    raise self._unavailable(exc, wait) from exc
                time.sleep(_CHECK_RETRY_DELAY)
                continue
            return conn

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until the pool holds `min_size` connections (`open(wait=True)` does), or
        `Unavailable` after `timeout` seconds (psycopg_pool then closes the pool)."""
        try:
            super().wait(timeout)
        except psycopg.Error as exc:
            raise self._unavailable(exc, timeout) from exc

    def _unavailable(self, exc: BaseException, wait: float) -> Unavailable:
        """Unavailable for `exc`, saying why no connection came when the pool can tell."""
        why = None
        last = self.last_connect_error
        if not isinstance(exc, PoolTimeout):
            pass
        elif last is not None:
            why = f"the server cannot be reached (last connection attempt: {_first_line(last)})"
        else:
            stats = self.get_stats()
            if stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= self.max_size:
                why = f"all {self.max_size} connections are in use (raise max_size?)"
        return unavailable(exc, f"pool {self.name!r}, waited {wait:g} s", why)

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[TupleRow]]:
        """A connection for the block (see `getconn`): committed when the block succeeds,
        rolled back when it raises, then returned to the pool."""
        inside = False
        try:
            with super().connection(timeout) as conn:
                inside = True
                yield conn
                inside = False
        except psycopg.Error as exc:
            if inside:
                raise
            raise translate_commit(exc) from exc


def make_pool(
    conninfo: str = "",
    *,
    prepare: bool = True,
    autocommit: bool = False,
    kwargs: Mapping[str, Any] | None = None,
    configure: Callable[[psycopg.Connection[TupleRow]], None] | None = None,
    **pool_kwargs: Any,
) -> StatusdbPool:
    """A psycopg_pool `ConnectionPool` whose connections prepare statusdb's statements.

    `prepare=False` never prepares (PgBouncer in transaction mode without
    max_prepared_statements). `autocommit=True` makes each operation its own transaction (reads
    in one round trip). `kwargs` are connection arguments, `configure` runs on each new
    connection after statusdb's own settings, and the other keyword arguments go to
    `ConnectionPool` (min_size, max_size, open, name, timeout, ...) or to
    `StatusdbPool` (`reconnect_delay`). Open it with
    `open=True`, `pool.open()` or `with make_pool(...) as pool:`.

    `timeout` (default `CHECKOUT_TIMEOUT`, 5 s) is how long a request waits for a connection
    before `statusdb.errors.Unavailable`: during a restart or failover, how long a write waits
    for the primary to come back.

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
    pool_kwargs.setdefault("timeout", CHECKOUT_TIMEOUT)
    return StatusdbPool(
        conninfo, kwargs=_connect_kwargs(kwargs, autocommit), configure=setup, **pool_kwargs
    )


# async-to-sync: end of generated code
