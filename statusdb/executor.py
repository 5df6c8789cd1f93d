"""One repository, two kinds of callers: sync and async psycopg connections.

Every repository operation is written once, as a generator that yields `Step`s (a named
statement, its parameters, and how to decode the result) and receives each step's result back.
It holds no I/O of its own, so the same operation runs on a `psycopg.Connection` (`run_sync`)
or a `psycopg.AsyncConnection` (`run_async`), with the same SQL and the same row classes.

Most operations are a single statement (rules live in SQL, so one round trip does the job).
Those that need several are declared `atomic`: they run in a savepoint inside the caller's
transaction, so a failure leaves nothing half-written and never commits the caller's work. On
an autocommit connection (where the caller opted out of transactions) they run as one
transaction of their own.

PostgreSQL errors are translated into statusdb's exceptions (`statusdb.errors`) and thrown into
the operation, which may handle them; otherwise they reach the caller.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, overload

import attrs
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import BaseRowFactory, tuple_row

from statusdb import queries
from statusdb.errors import NotFound, StatusdbError, translate

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

Fetch = Literal["optional", "all", "rowcount", "copy"]
Params = Mapping[str, Any]


@attrs.frozen
class Step:
    """One statement of an operation: what to run and what to bring back."""

    query: queries.Query
    params: Params
    row_factory: BaseRowFactory[Any]
    fetch: Fetch
    #: For fetch="copy": the rows sent to a `COPY ... FROM STDIN` statement (consumed once).
    copy_rows: Iterable[Sequence[Any]] = ()


#: An operation body: yields steps, receives their results, returns the operation's result.
Op = Generator[Step, Any, T]


def optional(name: str, params: Params, row: BaseRowFactory[R]) -> Op[R | None]:
    """Run query `name`; its first row decoded by `row`, or None."""
    result = yield Step(queries.get(name), params, row, "optional")
    return cast("R | None", result)


def one(name: str, params: Params, row: BaseRowFactory[R], *, not_found: str) -> Op[R]:
    """Run query `name`; its first row, or NotFound with the message `not_found`."""
    result = yield from optional(name, params, row)
    if result is None:
        raise NotFound(not_found)
    return result


def many(name: str, params: Params, row: BaseRowFactory[R]) -> Op[list[R]]:
    """Run query `name`; all its rows."""
    result = yield Step(queries.get(name), params, row, "all")
    return cast("list[R]", result)


def execute(name: str, params: Params) -> Op[int]:
    """Run query `name` for its effect; the number of rows it touched."""
    result = yield Step(queries.get(name), params, tuple_row, "rowcount")
    return cast(int, result)


def copy_in(name: str, rows: Iterable[Sequence[Any]]) -> Op[int]:
    """Run `COPY ... FROM STDIN` query `name`, streaming `rows` (text format); rows copied.

    `rows` is consumed lazily while the COPY runs, so it may be a generator. An exception it
    raises aborts the COPY and propagates unchanged to the caller (an atomic operation's
    savepoint is rolled back on the way).
    """
    result = yield Step(queries.get(name), {}, tuple_row, "copy", rows)
    return cast(int, result)


def _run_step_sync(conn: psycopg.Connection[Any], step: Step) -> Any:
    with conn.cursor(row_factory=step.row_factory) as cur:
        if step.fetch == "copy":
            with cur.copy(step.query.sql) as copy:
                for row in step.copy_rows:
                    copy.write_row(row)
            return cur.rowcount
        cur.execute(step.query.sql, step.params)
        if step.fetch == "optional":
            return cur.fetchone()
        if step.fetch == "all":
            return cur.fetchall()
        return cur.rowcount


async def _run_step_async(conn: psycopg.AsyncConnection[Any], step: Step) -> Any:
    async with conn.cursor(row_factory=step.row_factory) as cur:
        if step.fetch == "copy":
            async with cur.copy(step.query.sql) as copy:
                for row in step.copy_rows:
                    await copy.write_row(row)
            return cur.rowcount
        await cur.execute(step.query.sql, step.params)
        if step.fetch == "optional":
            return await cur.fetchone()
        if step.fetch == "all":
            return await cur.fetchall()
        return cur.rowcount


_SAVEPOINT = b"SAVEPOINT statusdb_atomic"
_RELEASE = b"RELEASE SAVEPOINT statusdb_atomic"
_ROLLBACK_TO = b"ROLLBACK TO SAVEPOINT statusdb_atomic; RELEASE SAVEPOINT statusdb_atomic"


def _can_roll_back(status: TransactionStatus) -> bool:
    return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)


@contextlib.contextmanager
def _atomic_sync(conn: psycopg.Connection[Any]) -> Iterator[None]:
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        with conn.transaction():
            yield
        return
    # Inside the caller's transaction (psycopg begins it implicitly if needed): a savepoint,
    # never a commit.
    conn.execute(_SAVEPOINT)
    try:
        yield
    except BaseException:
        if not conn.closed and _can_roll_back(conn.info.transaction_status):
            conn.execute(_ROLLBACK_TO)
        raise
    conn.execute(_RELEASE)


@contextlib.asynccontextmanager
async def _atomic_async(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            yield
        return
    await conn.execute(_SAVEPOINT)
    try:
        yield
    except BaseException:
        if not conn.closed and _can_roll_back(conn.info.transaction_status):
            await conn.execute(_ROLLBACK_TO)
        raise
    await conn.execute(_RELEASE)


def _drive_sync(conn: psycopg.Connection[Any], body: Op[T]) -> T:
    try:
        step = next(body)
        while True:
            try:
                result = _run_step_sync(conn, step)
            except psycopg.Error as exc:
                step = body.throw(translate(exc))
            else:
                step = body.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)


async def _drive_async(conn: psycopg.AsyncConnection[Any], body: Op[T]) -> T:
    try:
        step = next(body)
        while True:
            try:
                result = await _run_step_async(conn, step)
            except psycopg.Error as exc:
                step = body.throw(translate(exc))
            else:
                step = body.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)


def run_sync(conn: psycopg.Connection[Any], body: Op[T], *, atomic: bool = False) -> T:
    """Run an operation body on a sync connection."""
    if not atomic:
        return _drive_sync(conn, body)
    try:
        with _atomic_sync(conn):
            return _drive_sync(conn, body)
    except psycopg.Error as exc:  # from SAVEPOINT / RELEASE / COMMIT themselves
        raise translate(exc) from exc


async def run_async(conn: psycopg.AsyncConnection[Any], body: Op[T], *, atomic: bool = False) -> T:
    """Run an operation body on an async connection."""
    if not atomic:
        return await _drive_async(conn, body)
    try:
        async with _atomic_async(conn):
            return await _drive_async(conn, body)
    except psycopg.Error as exc:
        raise translate(exc) from exc


class Operation(Generic[P, T]):
    """A repository operation: call it with a sync connection, or await it with an async one.

    The connection comes first; the remaining arguments are the operation's own.
    """

    def __init__(self, body: Callable[P, Op[T]], *, atomic: bool) -> None:
        #: The operation's generator, for composing it into another operation (`yield from`).
        self.body = body
        self.atomic = atomic
        functools.update_wrapper(self, body)

    @overload
    def __call__(
        self, conn: psycopg.AsyncConnection[Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(
        self, conn: psycopg.Connection[Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    def __call__(
        self,
        conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T | Coroutine[Any, Any, T]:
        if isinstance(conn, psycopg.AsyncConnection):
            return run_async(conn, self.body(*args, **kwargs), atomic=self.atomic)
        if isinstance(conn, psycopg.Connection):
            return run_sync(conn, self.body(*args, **kwargs), atomic=self.atomic)
        raise TypeError(
            f"{self.body.__name__} takes a psycopg Connection or AsyncConnection first, "
            f"not {type(conn).__name__}"
        )

    def __repr__(self) -> str:
        return f"<statusdb operation {self.body.__module__}.{self.body.__qualname__}>"


@overload
def operation(body: Callable[P, Op[T]], /) -> Operation[P, T]: ...


@overload
def operation(*, atomic: bool = False) -> Callable[[Callable[P, Op[T]]], Operation[P, T]]: ...


def operation(
    body: Callable[P, Op[T]] | None = None, /, *, atomic: bool = False
) -> Operation[P, T] | Callable[[Callable[P, Op[T]]], Operation[P, T]]:
    """Make a generator of steps into an operation callable from sync and async code.

    `atomic=True` for operations of more than one statement.
    """
    if body is not None:
        return Operation(body, atomic=atomic)

    def wrap(fn: Callable[P, Op[T]]) -> Operation[P, T]:
        return Operation(fn, atomic=atomic)

    return wrap


__all__ = [
    "Op",
    "Operation",
    "StatusdbError",
    "Step",
    "copy_in",
    "execute",
    "many",
    "one",
    "operation",
    "optional",
    "run_async",
    "run_sync",
]
