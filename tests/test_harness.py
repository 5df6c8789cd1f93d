"""The test fixtures themselves (tests/conftest.py): what the other tests rely on."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from conftest import RollbackConnection
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import pages, teams
from statusdb.infra import migrations

Connect = Callable[..., psycopg.Connection[TupleRow]]


def test_conn_is_a_migrated_fresh_database(conn: psycopg.Connection[TupleRow], dsn: str) -> None:
    assert not conn.autocommit
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    assert psycopg.conninfo.conninfo_to_dict(dsn)["dbname"] == row[0]
    assert all(applied for _, applied in migrations.status(dsn))


@pytest.mark.fresh_db
def test_each_test_gets_its_own_copy_part_1(conn: psycopg.Connection[TupleRow]) -> None:
    conn.execute("CREATE TABLE harness_leak_check (id int)")
    conn.commit()


@pytest.mark.fresh_db
def test_each_test_gets_its_own_copy_part_2(conn: psycopg.Connection[TupleRow]) -> None:
    row = conn.execute("SELECT to_regclass('harness_leak_check') IS NULL").fetchone()
    assert row == (True,)


def test_conn_alone_is_rolled_back_part_1(conn: psycopg.Connection[TupleRow]) -> None:
    """A `conn`-only test shares a database, in a transaction rolled back at teardown."""
    assert isinstance(conn, RollbackConnection)
    conn.execute("CREATE TABLE harness_rollback_check (id int)")
    teams.create(conn, name="Harness rollback")
    conn.commit()  # a savepoint of the one transaction


def test_conn_alone_is_rolled_back_part_2(conn: psycopg.Connection[TupleRow]) -> None:
    row = conn.execute(
        "SELECT to_regclass('harness_rollback_check') IS NULL,"
        " NOT EXISTS (SELECT 1 FROM team WHERE name = 'Harness rollback')"
    ).fetchone()
    assert row == (True, True)


def test_conn_alone_commits_and_rolls_back_as_one_connection_would(
    conn: psycopg.Connection[TupleRow],
) -> None:
    team = teams.create(conn, name="Kept")
    conn.commit()
    new_page(conn, team.id, slug="harness-gone")
    conn.rollback()
    assert teams.get(conn, team.id).name == "Kept"
    assert pages.list_for_team(conn, team.id) == []
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO team (id, name) VALUES (%s, 'dup')", (team.id,))
    conn.commit()  # a failed transaction's commit rolls back, to the last commit
    assert teams.get(conn, team.id).name == "Kept"


def test_conn_alone_refuses_autocommit(conn: psycopg.Connection[TupleRow]) -> None:
    with pytest.raises(pytest.fail.Exception, match="autocommit"):
        conn.autocommit = True


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
