"""A lean read path: one named statement sent by libpq itself, for the page reads (issue 21).

A psycopg cursor's `execute` spends about half of a short read's client CPU in its own Python
(the query's conversion, the parameters' dumpers, the transaction and pipeline bookkeeping,
the generator around the wait, the result's row building): measured 29-33 µs against 15 µs
for the same prepared statement sent by `conn.pgconn.exec_prepared`. The page reads
(`statusdb.views`: the not-modified lookup, the bytes-through read, the cache's validation,
the full read) send their statements here instead, through psycopg's documented libpq wrapper
(`psycopg.pq`), as psycopg's own cursors do:

- under the connection's lock (`conn.lock`: a thread's or a task's statement at a time), the
  caller holding it (`with conn.lock:` / `async with conn.lock:`) around `row_async`/`row_sync`;
- the statement sent by `PGconn.send_prepare` / `send_query_prepared` (or `send_query_params`,
  unnamed, where nothing may be prepared) and its results read by psycopg's own generator
  (`psycopg.generators.execute`) waited on by the connection's own `wait` (which cancels the
  statement on an interruption, as a cursor's);
- the row read from the PGresult by a psycopg `Transformer` over the caller's adapters (so the
  values are the ones a cursor would give, in the session's time zone);
- an error result raised as the psycopg exception a cursor would raise
  (`psycopg.errors.error_from_result`): the callers translate it as they translate a cursor's.

Only where the statement is its own transaction (an autocommit connection, idle); `usable`
says no and the caller takes its cursor in pipeline mode, on a connection not OK, where psycopg
would open a transaction (not autocommit) and inside a transaction: there a named statement
might be gone (psycopg sends DEALLOCATE ALL after a ROLLBACK, a pool DISCARD ALL) and its
failure would abort the caller's transaction, and an unnamed one, planned on every call,
measured slower than the cursor's prepared statement (bench/README.md, issue 21's fifth pass).

A named statement per connection is prepared on its first use when the connection prepares
(`prepare_threshold` not None); with None (statusdb's setting behind PgBouncer's transaction
pooling, and the router's) the statement goes unnamed. It is prepared again once when the
server no longer has it (26000: a pool's `DISCARD ALL`, a `DEALLOCATE`, another server behind
a bouncer) or when its result type changed (0A000, "cached plan must not change result type":
a migration between two calls). A statement of its name already on the server (42P05) is taken
for it: the name holds a digest of the text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from hashlib import sha256
from typing import Any, Final

import psycopg
from psycopg import adapt, pq
from psycopg.errors import error_from_result
from psycopg.generators import execute
from psycopg.rows import tuple_row

__all__ = ["Statement", "binary_interval", "row_async", "row_sync", "usable"]

_OK: Final = pq.ConnStatus.OK
_IDLE: Final = int(pq.TransactionStatus.IDLE)
_PIPELINE_OFF: Final = pq.PipelineStatus.OFF
_TUPLES_OK: Final = pq.ExecStatus.TUPLES_OK
_COMMAND_OK: Final = pq.ExecStatus.COMMAND_OK
_BINARY: Final = pq.Format.BINARY
_DUPLICATE: Final = b"42P05"
_RETRY_STATES: Final = (b"26000", b"0A000")
_STATE_ATTRIBUTE: Final = "_statusdb_libpq_state"
_PARAMETER: Final = re.compile(rb"%\((\w+)\)s")


class Statement:
    """A named query as libpq takes it: `$n` parameters, in the order of `names`."""

    __slots__ = ("name", "names", "sql")

    def __init__(self, name: str, sql: bytes) -> None:
        names: list[str] = []

        def number(match: re.Match[bytes]) -> bytes:
            key = match.group(1).decode()
            if key not in names:
                names.append(key)
            return b"$%d" % (names.index(key) + 1)

        self.sql = _PARAMETER.sub(number, sql)
        #: The server-side name: statusdb's own prefix (psycopg's are `_pg3_N`) and a digest
        #: of the text, so a statement of that name already on the server (42P05: prepared by
        #: another client of the same server connection, behind a bouncer without protocol
        #: support) is this very statement.
        self.name = b"statusdb_%s_%s" % (name.encode(), sha256(self.sql).hexdigest()[:12].encode())
        self.names = tuple(names)


class _State:
    """What a connection has prepared, and its row reader (kept on the connection)."""

    __slots__ = ("prepared", "transformer", "zone")

    def __init__(self) -> None:
        self.prepared: set[bytes] = set()
        self.transformer: Any = None
        self.zone: bytes | None = None


def binary_interval(value: dt.timedelta) -> bytes:
    """A timedelta as PostgreSQL's binary interval (microseconds, days, months), as psycopg's
    dumper sends it."""
    micros = (value.seconds * 1_000_000 + value.microseconds).to_bytes(8, "big", signed=True)
    return micros + value.days.to_bytes(4, "big", signed=True) + b"\0\0\0\0"


def usable(conn: Any) -> bool:
    """Whether `conn` (its lock held) can take a libpq statement, which is then its own
    transaction; False: the caller's cursor runs it."""
    pgconn = conn.pgconn
    if pgconn.status != _OK or pgconn.pipeline_status != _PIPELINE_OFF:
        return False
    # Idle and not autocommit: psycopg would send BEGIN first. In a transaction: a named
    # statement might be gone (psycopg sends DEALLOCATE ALL after a ROLLBACK, a pool
    # DISCARD ALL) and its error would abort the caller's transaction, and an unnamed one
    # measured slower than the cursor's prepared statement (planned on every call).
    return bool(pgconn.transaction_status == _IDLE and conn.autocommit)


def _state(conn: Any) -> _State:
    state = getattr(conn, _STATE_ATTRIBUTE, None)
    if state is None:
        state = _State()
        setattr(conn, _STATE_ATTRIBUTE, state)
    return state


def _row(state: _State, context: Any, result: Any) -> tuple[Any, ...] | None:
    if result.status != _TUPLES_OK:
        raise _error(context.connection, result)
    if result.ntuples == 0:
        return None
    zone = context.connection.pgconn.parameter_status(b"TimeZone")
    transformer = state.transformer
    if transformer is None or zone != state.zone:
        # A loader keeps the session's time zone it was made in: a new one when it moved.
        transformer = state.transformer = adapt.Transformer(context)
        state.zone = zone
    transformer.set_pgresult(result, format=_BINARY)
    row: tuple[Any, ...] = transformer.load_row(0, tuple_row(context))
    return row


def _error(conn: Any, result: Any) -> psycopg.Error:
    # The connection's client encoding by its public name (ConnectionInfo.encoding), as a
    # cursor decodes an error's message and diagnostics.
    return error_from_result(result, encoding=conn.info.encoding)


def _last(results: Sequence[Any]) -> Any:
    if len(results) != 1:
        raise psycopg.ProgrammingError(f"expected one result, got {len(results)}")
    return results[0]


# async-to-sync: begin
async def row_async(
    conn: psycopg.AsyncConnection[Any],
    context: Any,
    statement: Statement,
    values: Sequence[bytes | None],
    formats: Sequence[int],
) -> tuple[Any, ...] | None:
    """The first row of `statement` (None: no row), `conn.lock` held by the caller and `usable`
    true of `conn`; `context` a cursor of `conn` whose adapters load the row."""
    pgconn = conn.pgconn
    state = _state(conn)
    if conn.prepare_threshold is None:
        pgconn.send_query_params(
            statement.sql, values, param_formats=formats, result_format=_BINARY
        )
        return _row(state, context, _last(await conn.wait(execute(pgconn))))
    for attempt in (1, 2):
        if statement.name not in state.prepared:
            pgconn.send_prepare(statement.name, statement.sql)
            result = _last(await conn.wait(execute(pgconn)))
            if result.status != _COMMAND_OK and (
                result.error_field(pq.DiagnosticField.SQLSTATE) != _DUPLICATE
            ):
                raise _error(conn, result)
            state.prepared.add(statement.name)
        pgconn.send_query_prepared(
            statement.name, values, param_formats=formats, result_format=_BINARY
        )
        result = _last(await conn.wait(execute(pgconn)))
        code = result.error_field(pq.DiagnosticField.SQLSTATE)
        if attempt == 1 and code in _RETRY_STATES:
            # Gone from the server (26000), or its result type changed (0A000): once more.
            state.prepared.discard(statement.name)
            if code != b"26000":
                pgconn.send_query(b"DEALLOCATE " + statement.name)
                await conn.wait(execute(pgconn))
            continue
        return _row(state, context, result)
    raise AssertionError("unreachable")  # pragma: no cover


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def row_sync(
    conn: psycopg.Connection[Any],
    context: Any,
    statement: Statement,
    values: Sequence[bytes | None],
    formats: Sequence[int],
) -> tuple[Any, ...] | None:
    """The first row of `statement` (None: no row), `conn.lock` held by the caller and `usable`
    true of `conn`; `context` a cursor of `conn` whose adapters load the row."""
    pgconn = conn.pgconn
    state = _state(conn)
    if conn.prepare_threshold is None:
        pgconn.send_query_params(
            statement.sql, values, param_formats=formats, result_format=_BINARY
        )
        return _row(state, context, _last(conn.wait(execute(pgconn))))
    for attempt in (1, 2):
        if statement.name not in state.prepared:
            pgconn.send_prepare(statement.name, statement.sql)
            result = _last(conn.wait(execute(pgconn)))
            if (
                result.status != _COMMAND_OK
                and result.error_field(pq.DiagnosticField.SQLSTATE) != _DUPLICATE
            ):
                raise _error(conn, result)
            state.prepared.add(statement.name)
        pgconn.send_query_prepared(
            statement.name, values, param_formats=formats, result_format=_BINARY
        )
        result = _last(conn.wait(execute(pgconn)))
        code = result.error_field(pq.DiagnosticField.SQLSTATE)
        if attempt == 1 and code in _RETRY_STATES:
            state.prepared.discard(statement.name)
            if code != b"26000":
                pgconn.send_query(b"DEALLOCATE " + statement.name)
                conn.wait(execute(pgconn))
            continue
        return _row(state, context, result)
    raise AssertionError("unreachable")


# async-to-sync: end of generated code
