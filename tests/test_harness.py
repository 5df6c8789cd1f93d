"""The test fixtures themselves (tests/conftest.py): what the other tests rely on."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg.rows import TupleRow

from statusdb.infra import migrations

Connect = Callable[..., psycopg.Connection[TupleRow]]


def test_conn_is_a_migrated_fresh_database(conn: psycopg.Connection[TupleRow], dsn: str) -> None:
    assert not conn.autocommit
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    assert psycopg.conninfo.conninfo_to_dict(dsn)["dbname"] == row[0]
    assert all(applied for _, applied in migrations.status(dsn))


def test_each_test_gets_its_own_copy_part_1(conn: psycopg.Connection[TupleRow]) -> None:
    conn.execute("CREATE TABLE harness_leak_check (id int)")
    conn.commit()


def test_each_test_gets_its_own_copy_part_2(conn: psycopg.Connection[TupleRow]) -> None:
    row = conn.execute("SELECT to_regclass('harness_leak_check') IS NULL").fetchone()
    assert row == (True,)


def test_connect_opens_extra_connections(connect: Connect, dsn: str) -> None:
    a = connect()
    b = connect(autocommit=True)
    assert not a.autocommit
    assert b.autocommit
    a.execute("CREATE TABLE harness_visible (id int)")
    assert b.execute("SELECT to_regclass('harness_visible')").fetchone() == (None,)
    a.commit()
    assert b.execute("SELECT to_regclass('harness_visible')::text").fetchone() == (
        "harness_visible",
    )


async def test_aconn(aconn: psycopg.AsyncConnection[TupleRow], dsn: str) -> None:
    cur = await aconn.execute("SELECT current_database()")
    row = await cur.fetchone()
    assert row is not None
    assert row[0] == psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]


def test_empty_dsn_is_unmigrated(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as c:
        row = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert row == (0,)
    assert not any(applied for _, applied in migrations.status(empty_dsn))
