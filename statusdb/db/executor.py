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

Retries. A serialization failure or a deadlock (SQLSTATE 40001, 40P01) rolls back the
transaction it hits, so nothing of the failed attempt remains. When the operation owns that
transaction (an autocommit connection: the operation is its own transaction, or its first and
only statement failed) and it is declared `@operation(retry=True)`, the executor runs it again,
up to RETRY_ATTEMPTS times with a short jittered back-off. Inside a caller's transaction no
retry is possible (the caller's earlier work is gone with it, or its locks and snapshot make the
conflict come back), so the caller gets `Retryable` saying to retry the whole transaction. A
lost connection is never retried here: it needs a new connection (a pool gives one), and a
COMMIT lost with it may have happened: when the operation owned its transaction (its COMMIT,
or its one autocommit statement, was under way) the caller gets `CommitOutcomeUnknown`;
inside the caller's transaction, `Retryable` (nothing of that transaction was committed). A
call on a connection already closed sends nothing and raises `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import random
import re
import time
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
from typing import Any, Final, Generic, Literal, ParamSpec, TypeVar, cast, overload

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import BaseRowFactory, tuple_row

from statusdb.db import queries
from statusdb.domain import validate
from statusdb.errors import (
    InvalidInput,
    NotFound,
    Retryable,
    StatusdbError,
    Unauthorized,
    Unavailable,
    commit_outcome_unknown,
    connection_lost,
    translate,
    translate_commit,
)

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")
A = TypeVar("A")
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
    #: Results in binary format (see `many`).
    binary: bool = False


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


def many(name: str, params: Params, row: BaseRowFactory[R], *, binary: bool = False) -> Op[list[R]]:
    """Run query `name`; all its rows. `binary`: fetch them in binary format (cheaper to parse
    for rows of long arrays: uptime_daily's; the same Python values)."""
    result = yield Step(queries.get(name), params, row, "all", binary=binary)
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


_SAVEPOINT = b"SAVEPOINT statusdb_atomic"
_RELEASE = b"RELEASE SAVEPOINT statusdb_atomic"
#: `conn.pgconn.transaction_status` (an int) when no transaction is open.
_IDLE_STATUS: Final = int(TransactionStatus.IDLE)
_ROLLBACK_TO = b"ROLLBACK TO SAVEPOINT statusdb_atomic; RELEASE SAVEPOINT statusdb_atomic"


def _owns_transaction(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether a call made now on `conn` owns its transaction (autocommit, none open).

    The single answer to that question in statusdb: atomic operations (their own transaction
    or a savepoint), retries (only a call that owns its transaction can run again), operations
    declared `requires_transaction` (refused when there is no transaction to hold what they
    take) and the feed's listeners (which need exactly such a connection) all ask it here.
    It reads `conn.pgconn`, not `conn.info`, which makes an object per access (~2 µs on the
    not-modified read's path, which asks it on every call).
    """
    return bool(conn.autocommit) and conn.pgconn.transaction_status == _IDLE_STATUS


def _can_roll_back(status: TransactionStatus) -> bool:
    return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)


def _deletes(step: Step) -> bool:
    """Whether `step`'s statement deletes rows (its first keyword is DELETE)."""
    return step.query.sql.lstrip()[:6].upper() == b"DELETE"


def _translated(exc: psycopg.Error, step: Step, *, committing: bool = False) -> StatusdbError:
    """The statusdb error for `exc`, chained to it (for logs, and to tell retryable causes).

    `committing`: the statement was its own transaction (autocommit, none open), so a
    connection lost while it ran may have lost it before or after its commit."""
    if committing and connection_lost(exc):
        return commit_outcome_unknown(exc)
    error = translate(exc, deleting=_deletes(step))
    error.__cause__ = exc
    return error


def _unsendable(exc: UnicodeEncodeError) -> InvalidInput:
    """A text parameter psycopg cannot encode (a lone surrogate that bypassed validation)."""
    bad = exc.object[exc.start : exc.end]
    return InvalidInput(f"a text value is not valid Unicode ({exc.reason}: {bad!r})")


@attrs.define
class _Progress:
    """How many steps of one run completed: tells whether an earlier statement committed."""

    steps: int = 0


# async-to-sync: begin
async def _run_step_async(conn: psycopg.AsyncConnection[Any], step: Step) -> Any:
    async with conn.cursor(row_factory=step.row_factory) as cur:
        if step.fetch == "copy":
            async with cur.copy(step.query.sql) as copy:
                for row in step.copy_rows:
                    await copy.write_row(row)
            return cur.rowcount
        await cur.execute(step.query.sql, step.params, binary=step.binary)
        if step.fetch == "optional":
            return await cur.fetchone()
        if step.fetch == "all":
            return await cur.fetchall()
        return cur.rowcount


@contextlib.asynccontextmanager
async def _atomic_async(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    if _owns_transaction(conn):
        async with conn.transaction():
            yield
        return
    # Inside the caller's transaction (psycopg begins it implicitly if needed): a savepoint,
    # never a commit.
    await conn.execute(_SAVEPOINT)
    try:
        yield
    except BaseException:
        # The error on its way out is the one to report: a failure to roll back (the
        # connection died, say) would only hide it.
        if not conn.closed and _can_roll_back(conn.info.transaction_status):
            with contextlib.suppress(psycopg.Error):
                await conn.execute(_ROLLBACK_TO)
        raise
    await conn.execute(_RELEASE)


async def _drive_async(
    conn: psycopg.AsyncConnection[Any], body: Op[T], progress: _Progress | None = None
) -> T:
    try:
        step = next(body)
        while True:
            committing = _owns_transaction(conn)
            try:
                result = await _run_step_async(conn, step)
            except psycopg.Error as exc:
                step = body.throw(_translated(exc, step, committing=committing))
            except UnicodeEncodeError as exc:  # raised before anything was sent
                step = body.throw(_unsendable(exc))
            else:
                if progress is not None:
                    progress.steps += 1
                step = body.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)


async def run_async(
    conn: psycopg.AsyncConnection[Any],
    body: Op[T],
    *,
    atomic: bool = False,
    progress: _Progress | None = None,
) -> T:
    """Run an operation body on an async connection."""
    if conn.closed:
        # Nothing is sent: the caller's connection was closed (or broken) before this call.
        raise Unavailable("the connection is closed: use a new one (a pool gives one)")
    if not atomic:
        return await _drive_async(conn, body, progress)
    owned = _owns_transaction(conn)
    try:
        async with _atomic_async(conn):
            return await _drive_async(conn, body, progress)
    except psycopg.Error as exc:  # from SAVEPOINT / RELEASE / COMMIT themselves
        # COMMIT is sent only when the operation owns its transaction.
        raise (translate_commit(exc) if owned else translate(exc)) from exc


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def _run_step_sync(conn: psycopg.Connection[Any], step: Step) -> Any:
    with conn.cursor(row_factory=step.row_factory) as cur:
        if step.fetch == "copy":
            with cur.copy(step.query.sql) as copy:
                for row in step.copy_rows:
                    copy.write_row(row)
            return cur.rowcount
        cur.execute(step.query.sql, step.params, binary=step.binary)
        if step.fetch == "optional":
            return cur.fetchone()
        if step.fetch == "all":
            return cur.fetchall()
        return cur.rowcount


@contextlib.contextmanager
def _atomic_sync(conn: psycopg.Connection[Any]) -> Iterator[None]:
    if _owns_transaction(conn):
        with conn.transaction():
            yield
        return
    conn.execute(_SAVEPOINT)
    try:
        yield
    except BaseException:
        if not conn.closed and _can_roll_back(conn.info.transaction_status):
            with contextlib.suppress(psycopg.Error):
                conn.execute(_ROLLBACK_TO)
        raise
    conn.execute(_RELEASE)


def _drive_sync(conn: psycopg.Connection[Any], body: Op[T], progress: _Progress | None = None) -> T:
    try:
        step = next(body)
        while True:
            committing = _owns_transaction(conn)
            try:
                result = _run_step_sync(conn, step)
            except psycopg.Error as exc:
                step = body.throw(_translated(exc, step, committing=committing))
            except UnicodeEncodeError as exc:
                step = body.throw(_unsendable(exc))
            else:
                if progress is not None:
                    progress.steps += 1
                step = body.send(result)
    except StopIteration as stop:
        return cast(T, stop.value)


def run_sync(
    conn: psycopg.Connection[Any],
    body: Op[T],
    *,
    atomic: bool = False,
    progress: _Progress | None = None,
) -> T:
    """Run an operation body on a sync connection."""
    if conn.closed:
        raise Unavailable("the connection is closed: use a new one (a pool gives one)")
    if not atomic:
        return _drive_sync(conn, body, progress)
    owned = _owns_transaction(conn)
    try:
        with _atomic_sync(conn):
            return _drive_sync(conn, body, progress)
    except psycopg.Error as exc:
        raise translate_commit(exc) if owned else translate(exc) from exc


# async-to-sync: end of generated code


#: How many times a retry-safe operation runs at most when it meets serialization failures or
#: deadlocks on a transaction of its own.
RETRY_ATTEMPTS = 5
#: Back-off before the first retry, in seconds; doubled for each further one, with jitter so
#: that the transactions that collided do not collide again in step.
RETRY_BASE_DELAY = 0.01


def _conflict(exc: Retryable) -> bool:
    """A serialization failure or deadlock: the transaction it hit was rolled back whole."""
    return isinstance(exc.__cause__, pg_errors.SerializationFailure | pg_errors.DeadlockDetected)


def _in_caller_transaction(exc: Retryable) -> Retryable:
    error = Retryable(
        f"{exc.__cause__} inside the caller's transaction: statusdb cannot retry one operation "
        "there; roll back and retry the whole transaction"
    )
    error.__cause__ = exc.__cause__
    return error


def _should_retry(op: Operation[Any, Any], progress: _Progress, attempt: int, atomic: bool) -> bool:
    # A non-atomic operation on an autocommit connection commits statement by statement: it
    # is rolled back whole only when its first statement failed.
    return op.retry and attempt < RETRY_ATTEMPTS and (atomic or progress.steps == 0)


def _backoff(attempt: int) -> float:
    return RETRY_BASE_DELAY * (1 << (attempt - 1)) * (0.5 + random.random())  # noqa: S311


def _replayable(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments a second run sees the same: one-shot iterators (generators) become tuples."""

    def keep(value: Any) -> Any:
        return tuple(value) if isinstance(value, Iterator) else value

    return tuple(keep(a) for a in args), {k: keep(v) for k, v in kwargs.items()}


class NotAConnection(InvalidInput, TypeError):
    """An operation was called with something else than a psycopg connection first."""


def dispatch(
    conn: object,
    sync: Callable[[psycopg.Connection[Any]], S],
    async_: Callable[[psycopg.AsyncConnection[Any]], A],
    *,
    what: str,
) -> S | A:
    """The one sync/async switch: `sync(conn)` for a Connection, `async_(conn)` for an async one.

    Operations go through it, and so do the edges that are not operations but take either kind
    of connection (`outbox.recipients`, `tenancy.set_team`): what `async_`
    returns (a coroutine, an async iterator) is what the caller awaits or iterates. Anything
    else than a psycopg connection is refused with `NotAConnection`, naming `what`.
    """
    if isinstance(conn, psycopg.AsyncConnection):
        return async_(conn)
    if isinstance(conn, psycopg.Connection):
        return sync(conn)
    raise _not_a_connection(conn, what)


def _not_a_connection(conn: object, what: str) -> NotAConnection:
    return NotAConnection(
        f"{what} takes a psycopg Connection or AsyncConnection first, not {type(conn).__name__}"
    )


class Operation(Generic[P, T]):
    """A repository operation: call it with a sync connection, or await it with an async one.

    The connection comes first; the remaining arguments are the operation's own.
    """

    def __init__(
        self,
        body: Callable[P, Op[T]],
        *,
        atomic: bool,
        retry: bool = False,
        atomic_when: str | None = None,
        requires_transaction: bool = False,
    ) -> None:
        #: The operation's generator, for composing it into another operation (`yield from`).
        self.body = body
        self.atomic = atomic
        #: What it takes (locks, a transaction-scoped setting) lasts until the caller's
        #: transaction ends: a call that would own its transaction is refused (see `operation`).
        self.requires_transaction = requires_transaction
        #: A keyword argument that makes a call atomic when it is given (not None).
        self.atomic_when = atomic_when
        #: Declared safe to run again after a serialization failure or deadlock (see module doc).
        self.retry = retry
        functools.update_wrapper(self, body)
        #: What `help()`, pydoc and `inspect.signature` show: the call as callers write it.
        self.__signature__ = public_signature(body)

    def __get__(self, instance: object, owner: type | None = None) -> Operation[P, T]:
        # A non-data descriptor: pydoc and `inspect.isroutine` then list operations with the
        # functions of their module (not under DATA). Accessed through a class or an instance
        # it is the same operation (never bound).
        return self

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
        if not isinstance(conn, psycopg.Connection | psycopg.AsyncConnection):
            # Before the argument checks below: a wrong connection is the first thing to say.
            raise _not_a_connection(conn, self.body.__name__)
        # Every argument has the type its annotation names, before anything runs: a truthy
        # string is no flag, and no wrong type surfaces as AttributeError or a database error.
        problem = validate.argument_problem(self.body, args, kwargs)
        if problem is not None:
            raise self._refusal(problem, args, kwargs)
        return dispatch(
            conn,
            lambda sync: self._call_sync(sync, args, kwargs),
            lambda aconn: self._call_async(aconn, args, kwargs),
            what=self.body.__name__,
        )

    def _refusal(
        self, problem: validate.WrongType, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> InvalidInput | Unauthorized:
        """The error for a call with a wrong-typed argument: the operation's own message when
        its checks (the code before its first statement; no I/O) refuse that argument, else
        `problem`, the generic one."""
        body = self.body(*args, **kwargs)
        try:
            next(body)
        except Unauthorized as own:
            # A token that is not a string is a missing token (documented, and it tells a
            # prober nothing more than a wrong one).
            return own
        except InvalidInput as own:
            if problem.field in str(own):
                return own
        except Exception:  # noqa: S110 - a wrong type tripping the operation: the generic message
            pass
        finally:
            body.close()
        return problem

    # async-to-sync: begin
    async def _call_async(
        self, conn: psycopg.AsyncConnection[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        atomic = self._atomic(kwargs)
        owned = _owns_transaction(conn)
        if owned and self.requires_transaction:
            raise self._no_transaction()
        if owned and self.retry:
            args, kwargs = _replayable(args, kwargs)
        attempt = 1
        while True:
            progress = _Progress()
            try:
                return await run_async(
                    conn, self.body(*args, **kwargs), atomic=atomic, progress=progress
                )
            except Retryable as exc:
                if not _conflict(exc):
                    raise
                if not owned:
                    raise _in_caller_transaction(exc) from exc.__cause__
                if not _should_retry(self, progress, attempt, atomic):
                    raise
            await asyncio.sleep(_backoff(attempt))
            attempt += 1

    # async-to-sync: end
    # async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit

    def _call_sync(
        self, conn: psycopg.Connection[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        atomic = self._atomic(kwargs)
        owned = _owns_transaction(conn)
        if owned and self.requires_transaction:
            raise self._no_transaction()
        if owned and self.retry:
            args, kwargs = _replayable(args, kwargs)
        attempt = 1
        while True:
            progress = _Progress()
            try:
                return run_sync(conn, self.body(*args, **kwargs), atomic=atomic, progress=progress)
            except Retryable as exc:
                if not _conflict(exc):
                    raise
                if not owned:
                    raise _in_caller_transaction(exc) from exc.__cause__
                if not _should_retry(self, progress, attempt, atomic):
                    raise
            time.sleep(_backoff(attempt))
            attempt += 1

    # async-to-sync: end of generated code

    def _no_transaction(self) -> InvalidInput:
        name = self.body.__name__.lstrip("_")
        return InvalidInput(
            f"{name} takes what lasts until the transaction ends (locks, a transaction-scoped "
            "setting), and this autocommit connection has none: call it inside "
            "`conn.transaction()`"
        )

    def _atomic(self, kwargs: dict[str, Any]) -> bool:
        """Whether this call runs atomically: always, or when `atomic_when` is given."""
        return self.atomic or (
            self.atomic_when is not None and kwargs.get(self.atomic_when) is not None
        )

    def __repr__(self) -> str:
        return f"<statusdb operation {self.body.__module__}.{self.body.__qualname__}>"


_CONNECTION_ANNOTATION = "psycopg.Connection | psycopg.AsyncConnection"
_UNSET_IN_ANNOTATION = re.compile(r"\s*\|\s*(?:validate\.)?Unset\b")
_OP_RETURN = re.compile(r"^(?:executor\.)?Op\[(?P<inner>.*)\]$")


def public_signature(body: Callable[..., Any]) -> inspect.Signature:
    """The operation's signature as a caller sees it: `conn` first (a sync or async psycopg
    connection), the body's own parameters, and the result type (`Op[T]` becomes `T`; awaited
    with an async connection). Partial-update parameters show their type without the internal
    `validate.Unset` marker (their default reads `unchanged`)."""
    signature = inspect.signature(body)
    conn = inspect.Parameter(
        "conn", inspect.Parameter.POSITIONAL_ONLY, annotation=_CONNECTION_ANNOTATION
    )
    parameters = [conn]
    for parameter in signature.parameters.values():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            annotation = _UNSET_IN_ANNOTATION.sub("", annotation)
        parameters.append(parameter.replace(annotation=annotation))
    result = signature.return_annotation
    if isinstance(result, str):
        match = _OP_RETURN.match(result.strip())
        if match:
            result = match.group("inner")
    return signature.replace(parameters=parameters, return_annotation=result)


@overload
def operation(body: Callable[P, Op[T]], /) -> Operation[P, T]: ...


@overload
def operation(
    *,
    atomic: bool = False,
    retry: bool = False,
    atomic_when: str | None = None,
    requires_transaction: bool = False,
) -> Callable[[Callable[P, Op[T]]], Operation[P, T]]: ...


def operation(
    body: Callable[P, Op[T]] | None = None,
    /,
    *,
    atomic: bool = False,
    retry: bool = False,
    atomic_when: str | None = None,
    requires_transaction: bool = False,
) -> Operation[P, T] | Callable[[Callable[P, Op[T]]], Operation[P, T]]:
    """Make a generator of steps into an operation callable from sync and async code.

    `atomic=True` for operations of more than one statement. `retry=True` declares the
    operation safe to run again after a serialization failure or deadlock on a transaction of
    its own: its body depends only on its arguments and the database (no one-shot stream it
    consumes, no effect outside the database), so a second run after a rolled-back first one
    applies it exactly once. `atomic_when="name"`: atomic only for calls that give keyword
    argument `name` (not None), e.g. an idempotency key whose claim commits with the write.
    `requires_transaction=True`: what the operation takes is meant to last until the caller's
    transaction ends (row locks for later statements, a `set_config(..., true)`), so a call
    that would own its transaction (an autocommit connection outside `conn.transaction()`,
    where it would end with the call) is refused with `InvalidInput` before any statement is
    sent; sync callers get it from the call, async ones when they await it.
    """
    if body is not None:
        return Operation(body, atomic=atomic)

    def wrap(fn: Callable[P, Op[T]]) -> Operation[P, T]:
        return Operation(
            fn,
            atomic=atomic,
            retry=retry,
            atomic_when=atomic_when,
            requires_transaction=requires_transaction,
        )

    return wrap


__all__ = [
    "RETRY_ATTEMPTS",
    "Op",
    "Operation",
    "StatusdbError",
    "Step",
    "copy_in",
    "dispatch",
    "execute",
    "many",
    "one",
    "operation",
    "optional",
    "run_async",
    "run_sync",
]
