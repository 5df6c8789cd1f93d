"""The page reads sent by libpq (statusdb.db.libpq, issue 21): the same answers as the cursor.

`views.page_view_bytes`, its not-modified form, `PageViewCache` and `page_view`'s common call
send their statements by `conn.pgconn` under `conn.lock`. Checked here: byte-equal bodies and
equal rows against the cursor's way (pipeline mode, where the lean path steps aside), public and
private pages, sync and async, the async pool; a statement gone from the server (DISCARD ALL)
or whose result type changed (a migration between two calls) prepared again once; a caller's
transaction never put at risk; errors translated as the cursor's are; concurrent writers.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow
from test_page_view_bytes import make_page

from statusdb import errors, views
from statusdb.db import libpq
from statusdb.infra.pool import make_async_pool

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]


def _by_cursor(conn: Conn, slug: str, **kwargs: Any) -> Any:
    """The same read the cursor's way: in pipeline mode the lean path steps aside."""
    with conn.pipeline():
        return views.page_view_bytes(conn, slug, **kwargs)


def _prepared(conn: Conn) -> set[str]:
    """The statusdb statements prepared on `conn`'s server session."""
    rows = conn.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'statusdb\\_%'"
    ).fetchall()
    return {name for (name,) in rows}


@pytest.mark.parametrize("prepare", [0, None], ids=["prepared", "unnamed"])
@pytest.mark.parametrize("is_public", [True, False], ids=["public", "private"])
def test_lean_reads_answer_what_the_cursor_answers(
    dsn: str, is_public: bool, prepare: int | None
) -> None:
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, token = make_page(setup, is_public=is_public)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=prepare) as conn:
        conn.execute("SET TimeZone = 'Asia/Kolkata'")
        answer = views.page_view_bytes(conn, slug, token=token)
        assert isinstance(answer, views.PageBytes)
        assert answer == _by_cursor(conn, slug, token=token)  # body byte-equal, same version
        view = views.page_view(conn, slug, token=token)
        assert view is not None
        assert view == views.decode_page_bytes(answer, conn.info.timezone)
        assert view.page.updated_at.utcoffset() == conn.info.timezone.utcoffset(
            view.page.updated_at.replace(tzinfo=None)
        )
        same = views.page_view_bytes(conn, slug, token=token, if_version=answer.version)
        assert same == views.NotModified(answer.version, answer.fresh_until)
        assert same == _by_cursor(conn, slug, token=token, if_version=answer.version)
        assert views.page_view(conn, slug, token=token, if_version=answer.version) == same
        cache = views.PageViewCache()
        assert cache.get(conn, slug, token=token) == view
        assert cache.get(conn, slug, token=token) == view
        assert cache.hits == 1
        for wrong in ["wrong", None] if not is_public else []:
            assert views.page_view_bytes(conn, slug, token=wrong) is None
            assert views.page_view_bytes(conn, slug, token=wrong, if_version=1) is None
        assert views.page_view_bytes(conn, "no-such-page") is None
        assert views.page_view_bytes(conn, "no-such-page", if_version=1) is None
        # The lean path ran: named statements when the connection prepares, none otherwise.
        assert bool(_prepared(conn)) is (prepare is not None)
        assert getattr(conn, "_statusdb_libpq_state", None) is not None


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_statement_gone_from_the_server_is_prepared_again(dsn: str, sync: bool) -> None:
    """A pool's reset (DISCARD ALL) or a bouncer's other server: 26000 once, then prepared."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, token = make_page(setup, is_public=False)
        want = views.page_view_bytes(setup, slug, token=token)
    assert isinstance(want, views.PageBytes)

    def reads(answer: Any, unchanged: Any) -> None:
        assert answer == want
        assert unchanged == views.NotModified(want.version, want.fresh_until)

    if sync:
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
            for _ in range(3):
                reads(
                    views.page_view_bytes(conn, slug, token=token),
                    views.page_view_bytes(conn, slug, token=token, if_version=want.version),
                )
                conn.execute("DISCARD ALL")
                assert not _prepared(conn)
            reads(
                views.page_view_bytes(conn, slug, token=token),
                views.page_view_bytes(conn, slug, token=token, if_version=want.version),
            )
            assert _prepared(conn)
        return

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, prepare_threshold=0
        ) as aconn:
            for _ in range(3):
                reads(
                    await views.page_view_bytes(aconn, slug, token=token),
                    await views.page_view_bytes(aconn, slug, token=token, if_version=want.version),
                )
                await aconn.execute("DISCARD ALL")

    asyncio.run(main())


def test_a_result_type_changed_by_a_migration_is_prepared_again(dsn: str) -> None:
    """0A000 ("cached plan must not change result type"): a migration between two calls
    changes what the prepared statement returns; the next read prepares it again, once."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, _ = make_page(setup, is_public=True)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        before = views.page_view_bytes(conn, slug)
        assert isinstance(before, views.PageBytes)
        with psycopg.connect(dsn, autocommit=True) as migration:
            migration.execute(
                """ALTER FUNCTION
                     statusdb_page_view_bytes_v2(text, bytea, interval, integer, bigint)
                     RENAME TO statusdb_page_view_bytes_v2_before;
                   CREATE FUNCTION statusdb_page_view_bytes_v2(
                       s text, t bytea, h interval, l integer, v bigint DEFAULT NULL)
                   RETURNS TABLE(version numeric, fresh_until timestamptz, body text)
                   LANGUAGE sql AS $$
                       SELECT version::numeric, fresh_until, body
                       FROM statusdb_page_view_bytes_v2_before(s, t, h, l, v) $$"""
            )
        after = views.page_view_bytes(conn, slug)
        assert isinstance(after, views.PageBytes)
        assert after == before  # the version now a numeric: equal, and the same body
        assert views.page_view_bytes(conn, slug) == before


def test_a_callers_transaction_is_never_put_at_risk(dsn: str) -> None:
    """In a transaction the read takes the cursor: a statement gone from the server (DISCARD
    ALL before it) cannot abort the caller's transaction; the read sees the caller's writes."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        page_id, slug, _ = make_page(setup, is_public=True)
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        first = views.page_view_bytes(conn, slug)
        assert isinstance(first, views.PageBytes)
        conn.execute("DISCARD ALL")
        with conn.transaction():
            conn.execute(
                "UPDATE status_page SET name = 'Renamed in the transaction' WHERE id = %s",
                (page_id,),
            )
            mine = views.page_view_bytes(conn, slug, if_version=first.version)
            assert isinstance(mine, views.PageBytes)
            assert b"Renamed in the transaction" in mine.body
            view = views.page_view(conn, slug)
            assert view is not None
            assert view.page.name == "Renamed in the transaction"
            assert mine == _by_cursor(conn, slug)
            conn.execute("SELECT 1")  # the transaction is still usable
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # A connection that is not autocommit: psycopg opens the transaction (the cursor's way).
    with psycopg.connect(dsn, prepare_threshold=0) as tx:
        assert views.page_view_bytes(tx, slug) == views.page_view_bytes(tx, slug)
        assert tx.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        tx.rollback()


def test_errors_are_translated_as_the_cursors(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, _ = make_page(setup, is_public=True)
        setup.execute(
            "DROP FUNCTION statusdb_page_view_bytes_v2(text, bytea, interval, integer, bigint)"
        )
    raised = []
    for prepare, piped in ((0, False), (None, False), (0, True)):
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=prepare) as conn:
            read = _by_cursor if piped else views.page_view_bytes
            with pytest.raises(errors.StatusdbError) as caught:
                read(conn, slug)
            raised.append(caught.value)
            assert conn.execute("SELECT 1").fetchone() == (1,)  # still usable
    assert len({(type(e), str(e), type(e.__cause__)) for e in raised}) == 1, raised
    assert isinstance(raised[0].__cause__, psycopg.errors.UndefinedFunction)


def test_a_broken_connection_is_refused_as_the_cursor_refuses_it(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, _ = make_page(setup, is_public=True)
    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
    views.page_view_bytes(conn, slug)
    conn.close()
    with pytest.raises(errors.StatusdbError):
        views.page_view_bytes(conn, slug)
    assert libpq.usable(conn) is False


def test_concurrent_writers_autocommit_reads_stay_exact(dsn: str) -> None:
    """Each read is its own statement: its body is the body of its version, versions rise."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        page_id, slug, token = make_page(setup, is_public=False)
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        statuses = ["DEGRADED_PERFORMANCE", "PARTIAL_OUTAGE", "MAJOR_OUTAGE", "OPERATIONAL"]
        with psycopg.connect(dsn, autocommit=True) as w:
            while not stop.is_set() and writes < 300:
                w.execute(
                    "UPDATE status_page_component SET manual_status = %s WHERE status_page_id = %s",
                    (statuses[writes % 4], page_id),
                )
                writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    bodies: dict[int, bytes] = {}
    seen: list[int] = []
    try:
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
            for _ in range(80):
                answer = views.page_view_bytes(conn, slug, token=token)
                assert isinstance(answer, views.PageBytes)
                assert bodies.setdefault(answer.version, answer.body) == answer.body
                view = views.page_view(conn, slug, token=token)
                assert view is not None
                assert view.version >= answer.version
                if view.version == answer.version:
                    assert view == views.decode_page_bytes(answer, conn.info.timezone)
                seen += [answer.version, view.version]
                check = views.page_view_bytes(conn, slug, token=token, if_version=view.version)
                assert isinstance(check, views.NotModified | views.PageBytes)
                if isinstance(check, views.PageBytes):
                    assert check.version > view.version
    finally:
        stop.set()
        thread.join()
    assert writes > 0
    assert seen == sorted(seen)
    assert len(bodies) > 1


async def test_the_async_pool_reads_by_libpq(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, token = make_page(setup, is_public=False)
        want = views.page_view(setup, slug, token=token)
    assert want is not None
    cache = views.PageViewCache()
    async with make_async_pool(dsn, autocommit=True, min_size=2, max_size=2) as pool:

        async def one() -> tuple[Any, Any, Any]:
            async with pool.connection() as aconn:
                return (
                    await views.page_view(aconn, slug, token=token),
                    await cache.aget(aconn, slug, token=token),
                    await views.page_view_bytes(aconn, slug, token=token, if_version=want.version),
                )

        answers = await asyncio.gather(*(one() for _ in range(12)))
    for view, cached, unchanged in answers:
        assert view == want
        assert cached == want
        assert unchanged == views.NotModified(want.version, want.fresh_until)
