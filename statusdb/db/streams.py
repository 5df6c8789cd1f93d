"""Streaming large results in constant memory, for sync and async callers.

A server-side (named) cursor keeps the result on the server and hands it over `itersize` rows
at a time, so fanning a change out to a million subscribers holds one batch in memory, never
the million. Named cursors live inside a transaction: on an autocommit connection the stream
opens one of its own for its duration (on a connection that is not in autocommit mode, psycopg
begins the caller's transaction as for any statement).

`batches_sync` and `batches_async` hand the rows over a batch (one FETCH) at a time, for the
outbox worker's fan-out (issue 27): no Python step per row between the server and the batch.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg.rows import BaseRowFactory

from statusdb.db import queries
from statusdb.db.executor import Params
from statusdb.errors import translate

#: Rows fetched per round trip: large enough that the network is not the bottleneck, small
#: enough that memory stays flat (a few MB).
DEFAULT_ITERSIZE = 5_000

_names = itertools.count()


def _cursor_name() -> str:
    return f"statusdb_stream_{next(_names)}"


# async-to-sync: begin
async def batches_async(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    size: int = DEFAULT_ITERSIZE,
) -> AsyncIterator[list[Any]]:
    """The rows of query `name` in lists of up to `size` rows, one FETCH each from a server-side
    cursor, for a consumer that works in batches (the outbox worker): no Python step per row
    between the server and the batch (issue 27: fan-out speed).

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
            await cur.execute(query.sql, params)
            try:
                while rows := await cur.fetchmany(size):
                    yield rows
            except GeneratorExit:
                closing = True
                raise
    except psycopg.Error as exc:
        if closing:
            return  # the consumer stopped: see the docstring
        raise translate(exc) from exc


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def batches_sync(
    conn: psycopg.Connection[Any],
    name: str,
    params: Params,
    row: BaseRowFactory[Any],
    *,
    size: int = DEFAULT_ITERSIZE,
) -> Iterator[list[Any]]:
    """The rows of query `name` in lists of up to `size` rows, one FETCH each from a server-side
    cursor, for a consumer that works in batches (the outbox worker): no Python step per row
    between the server and the batch (issue 27: fan-out speed).

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
