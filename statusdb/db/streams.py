"""Streaming large results in constant memory, for sync and async callers.

A server-side (named) cursor keeps the result on the server and hands it over `itersize` rows
at a time, so fanning a change out to a million subscribers holds one batch in memory, never
the million. Named cursors live inside a transaction: on an autocommit connection the stream
opens one of its own for its duration (on a connection that is not in autocommit mode, psycopg
begins the caller's transaction as for any statement).

`stream` takes either kind of connection (through `executor.dispatch`, the one sync/async
switch) and returns an iterator or an async iterator to match; `stream_sync` and `stream_async`
are its two halves.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any, overload

import psycopg
from psycopg.rows import BaseRowFactory

from statusdb.db import queries
from statusdb.db.executor import Params, dispatch
from statusdb.errors import translate

#: Rows fetched per round trip: large enough that the network is not the bottleneck, small
#: enough that memory stays flat (a few MB).
DEFAULT_ITERSIZE = 5_000

_names = itertools.count()


def _cursor_name() -> str:
    return f"statusdb_stream_{next(_names)}"


# async-to-sync: begin
async def stream_async(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    itersize: int = DEFAULT_ITERSIZE,
) -> AsyncIterator[Any]:
    """Yield the rows of query `name`, `itersize` at a time from a server-side cursor.

    Errors are statusdb's (`Retryable` for a lost connection), chained to psycopg's. A stream
    the consumer stops early (`aclose()`, `break`, garbage collection) closes its cursor; if
    that fails (the connection died meanwhile) the failure is dropped: the consumer has
    stopped listening, a finaliser could only print it as "Exception ignored", and the next
    use of the connection reports it anyway.
    """
    query = queries.get(name)
    scope = conn.transaction() if conn.autocommit else contextlib.nullcontext()
    closing = False
    try:
        async with scope, conn.cursor(_cursor_name(), row_factory=row) as cur:
            cur.itersize = itersize
            await cur.execute(query.sql, params)
            try:
                # Not `yield from cur` in the sync twin: that would close psycopg's own iterator
                # first, and a failure there would replace the GeneratorExit (ruff's UP028 is
                # off for this file, since generated code carries no noqa comments).
                async for item in cur:
                    yield item
            except GeneratorExit:
                closing = True
                raise
    except psycopg.Error as exc:
        if closing:
            return  # the consumer stopped; see the docstring
        raise translate(exc) from exc


async def batches_async(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    size: int = DEFAULT_ITERSIZE,
) -> AsyncIterator[list[Any]]:
    """`stream_async` in lists of up to `size` rows, one FETCH each, for a consumer that works
    in batches (the outbox worker): no Python step per row between the server and the batch
    (issue 27: fan-out speed). Same errors and early stop as `stream_async`."""
    query = queries.get(name)
    scope = conn.transaction() if conn.autocommit else contextlib.nullcontext()
    closing = False
    try:
        async with scope, conn.cursor(_cursor_name(), row_factory=row) as cur:
            await cur.execute(query.sql, params)
            try:
                while rows := await cur.fetchmany(size):
                    yield rows
            except GeneratorExit:
                closing = True
                raise
    except psycopg.Error as exc:
        if closing:
            return  # the consumer stopped; see stream_async
        raise translate(exc) from exc


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def stream_sync(
    conn: psycopg.Connection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    itersize: int = DEFAULT_ITERSIZE,
) -> Iterator[Any]:
    """Yield the rows of query `name`, `itersize` at a time from a server-side cursor.

    Errors are statusdb's (`Retryable` for a lost connection), chained to psycopg's. A stream
    the consumer stops early (`close()`, `break`, garbage collection) closes its cursor; if
    that fails (the connection died meanwhile) the failure is dropped: the consumer has
    stopped listening, a finaliser could only print it as "Exception ignored", and the next
    use of the connection reports it anyway.
    """
    query = queries.get(name)
    scope = conn.transaction() if conn.autocommit else contextlib.nullcontext()
    closing = False
    try:
        with scope, conn.cursor(_cursor_name(), row_factory=row) as cur:
            cur.itersize = itersize
            cur.execute(query.sql, params)
            try:
                for item in cur:
                    yield item
            except GeneratorExit:
                closing = True
                raise
    except psycopg.Error as exc:
        if closing:
            return
        raise translate(exc) from exc


def batches_sync(
    conn: psycopg.Connection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    size: int = DEFAULT_ITERSIZE,
) -> Iterator[list[Any]]:
    """`stream_sync` in lists of up to `size` rows, one FETCH each, for a consumer that works
    in batches (the outbox worker): no Python step per row between the server and the batch
    (issue 27: fan-out speed). Same errors and early stop as `stream_sync`."""
    query = queries.get(name)
    scope = conn.transaction() if conn.autocommit else contextlib.nullcontext()
    closing = False
    try:
        with scope, conn.cursor(_cursor_name(), row_factory=row) as cur:
            cur.execute(query.sql, params)
            try:
                while rows := cur.fetchmany(size):
                    yield rows
            except GeneratorExit:
                closing = True
                raise
    except psycopg.Error as exc:
        if closing:
            return
        raise translate(exc) from exc


# async-to-sync: end of generated code


@overload
def stream(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    itersize: int = ...,
) -> AsyncIterator[Any]: ...


@overload
def stream(
    conn: psycopg.Connection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    itersize: int = ...,
) -> Iterator[Any]: ...


def stream(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    itersize: int = DEFAULT_ITERSIZE,
) -> Iterator[Any] | AsyncIterator[Any]:
    """`stream_sync` on a Connection, `stream_async` (iterate with `async for`) on an async one."""
    return dispatch(
        conn,
        lambda sync: stream_sync(sync, name, params, row, itersize=itersize),
        lambda aconn: stream_async(aconn, name, params, row, itersize=itersize),
        what=name,
    )
