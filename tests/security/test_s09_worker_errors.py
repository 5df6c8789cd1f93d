"""psycopg errors escaping from worker loops, streams and listeners.

Callers catch statusdb's exceptions (`statusdb.errors`), never psycopg's. A connection that the
server kills in the middle of a delivery, a stream or a listen must surface as `Retryable`
(chained to the psycopg error), or as the caller's own exception when that came first; and a
stream abandoned on a dead connection must not print "Exception ignored" from its finaliser.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import sys
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from typing import Any

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, feed, pages, teams
from statusdb.domain.types import StatusChangeNotification
from statusdb.errors import Retryable, StatusdbError
from statusdb.workers import outbox
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
Connect = Callable[..., Conn]


class DeliveryFailed(Exception):
    """The caller's own delivery error."""


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """Exceptions Python could only print as "Exception ignored" (e.g. from a finaliser)."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        gc.collect()
        sys.unraisablehook = previous


def _page_with_change(conn: Conn, subscribers: int) -> str:
    """A page whose manual component just changed status, with verified webhook subscribers."""
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="p", created_by_id="u", is_public=False)
    component = components.create(conn, page.id, name="API")
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO status_subscriber (status_page_id, channel, destination, is_verified)
               SELECT %s, 'WEBHOOK', 'https://hooks.example.com/' || n, true
               FROM generate_series(1, %s) AS n""",
            (page.id, subscribers),
        )
    components.set_status(conn, component.id, "MAJOR_OUTAGE")
    conn.commit()
    return page.id


def _kill(connect: Connect, victim: Conn) -> None:
    killer = connect(autocommit=True)
    killer.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))


def _no_psycopg_in(seen: list[Any]) -> None:
    gc.collect()
    assert seen == [], [getattr(u, "exc_value", u) for u in seen]


def test_process_delivery_error_on_a_killed_connection(
    conn: Conn, connect: Connect, unraisable: list[Any]
) -> None:
    """A delivery fails while the worker's connection is killed: psycopg's error escapes."""
    _page_with_change(conn, 3)

    def deliver(notification: StatusChangeNotification, recipient: Recipient, key: str) -> None:
        _kill(connect, conn)
        raise DeliveryFailed("smtp down")

    # The round goes on after the failed delivery; its next statement finds the connection dead.
    with pytest.raises((DeliveryFailed, Retryable)) as info:
        outbox.process_all(
            conn,
            deliver,  # type: ignore[arg-type]
            worker_id="w1",
            hold_down=dt.timedelta(0),
        )
    assert not isinstance(info.value, psycopg.Error)
    _no_psycopg_in(unraisable)


def test_process_connection_killed_mid_delivery(
    conn: Conn, connect: Connect, unraisable: list[Any]
) -> None:
    """The worker's connection is killed during a successful delivery: psycopg's error escapes."""
    _page_with_change(conn, 3)
    calls = 0

    def deliver(notification: StatusChangeNotification, recipient: Recipient, key: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            _kill(connect, conn)

    with pytest.raises(Retryable) as info:
        outbox.process_all(
            conn,
            deliver,  # type: ignore[arg-type]
            worker_id="w1",
            hold_down=dt.timedelta(0),
        )
    assert isinstance(info.value.__cause__, psycopg.Error)
    _no_psycopg_in(unraisable)


def test_recipients_stream_killed_mid_stream(
    conn: Conn, connect: Connect, unraisable: list[Any]
) -> None:
    """The connection of a half-read recipients stream is killed: psycopg's error escapes."""
    _page_with_change(conn, 5)
    (change,) = outbox.claim(conn, worker_id="w1", hold_down=dt.timedelta(0))
    conn.commit()
    stream = outbox.recipients(conn, change, itersize=1)
    next(stream)
    _kill(connect, conn)
    with pytest.raises(Retryable) as info:
        next(stream)
    assert isinstance(info.value.__cause__, psycopg.Error)
    del stream
    _no_psycopg_in(unraisable)


def test_recipients_stream_abandoned_on_a_killed_connection(
    conn: Conn, connect: Connect, unraisable: list[Any]
) -> None:
    """A half-read stream on a killed connection is dropped: "Exception ignored" is printed."""
    _page_with_change(conn, 5)
    (change,) = outbox.claim(conn, worker_id="w1", hold_down=dt.timedelta(0))
    conn.commit()
    stream = outbox.recipients(conn, change, itersize=1)
    next(stream)
    _kill(connect, conn)
    assert isinstance(stream, Generator)
    stream.close()  # as the garbage collector would
    del stream
    _no_psycopg_in(unraisable)


async def test_async_recipients_stream_killed_mid_stream(
    dsn: str, connect: Connect, unraisable: list[Any]
) -> None:
    """An async recipients stream whose connection is killed: psycopg's error escapes."""
    setup = connect()
    _page_with_change(setup, 5)
    aconn = await psycopg.AsyncConnection.connect(dsn)
    try:
        (change,) = await outbox.claim(aconn, worker_id="w1", hold_down=dt.timedelta(0))
        await aconn.commit()
        stream = outbox.recipients(aconn, change, itersize=1)
        await anext(stream)
        killer = connect(autocommit=True)
        killer.execute("SELECT pg_terminate_backend(%s)", (aconn.info.backend_pid,))
        with pytest.raises(StatusdbError) as info:
            await anext(stream)
        assert isinstance(info.value.__cause__, psycopg.Error)
        assert isinstance(stream, AsyncGenerator)
        await stream.aclose()
    finally:
        await aconn.close()
    _no_psycopg_in(unraisable)


def test_listen_on_a_killed_connection(dsn: str, connect: Connect, unraisable: list[Any]) -> None:
    """A feed listener whose connection is killed: psycopg's error escapes."""
    listener = connect(autocommit=True)
    events = feed.listen(listener, timeout=5)
    _kill(connect, listener)
    with pytest.raises(Retryable) as info:
        next(events)
    assert isinstance(info.value.__cause__, psycopg.Error)
    _no_psycopg_in(unraisable)


def test_operation_on_a_killed_connection(
    conn: Conn, connect: Connect, unraisable: list[Any]
) -> None:
    """An atomic operation on a killed connection: psycopg's error escapes its savepoint."""
    team = teams.create(conn, name="SRE")
    conn.commit()
    _kill(connect, conn)
    with pytest.raises(Retryable) as info:
        pages.create(conn, team_id=team.id, name="P", slug="p", created_by_id="u")
    assert isinstance(info.value.__cause__, psycopg.Error)
    with pytest.raises(Retryable):
        teams.get(conn, team.id)
    _no_psycopg_in(unraisable)


def test_async_operation_on_a_killed_connection(dsn: str, connect: Connect) -> None:
    """An async operation on a killed connection: psycopg's error escapes."""

    async def run() -> None:
        aconn = await psycopg.AsyncConnection.connect(dsn)
        try:
            team = await teams.create(aconn, name="SRE")
            await aconn.commit()
            _kill(connect, aconn)  # type: ignore[arg-type]
            with pytest.raises(Retryable):
                await pages.create(aconn, team_id=team.id, name="P", slug="p", created_by_id="u")
        finally:
            await aconn.close()

    asyncio.run(run())
