"""Attack class: any role that can connect stalls every status change by holding the locks
the derivation serialises on.

The adversary is a real statusdb_reader login (the least privileged role): it holds every
advisory lock it can that is relevant to statusdb (the cluster-wide status key and the team's
key, shared and exclusive, session- and transaction-level), tries the derivation's own lock
table, and keeps a REPEATABLE READ transaction open. An honest writer still opens an incident;
its lock_timeout (not a wall clock) says whether it had to wait.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, incidents, pages, status, teams, views

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def reader_dsn(dsn: str, logins: None) -> str:
    return make_conninfo(dsn, user=READER_LOGIN)


@pytest.fixture
def app(dsn: str, logins: None) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN)) as connection:
        yield connection


#: Advisory keys a client can compute from the published DDL: the cluster-wide key of 0011,
#: and the team's (or component's) key of 0003.
KEYS_SQL = """
    SELECT hashtextextended('statusdb.status:all', 0)
    UNION ALL SELECT hashtextextended('statusdb.team:' || %(team)s, 0)
    UNION ALL SELECT hashtextextended('statusdb.component:' || %(component)s, 0)
"""

#: What the reader tries on tables it has no privilege on: some statements lock a table
#: before the privilege check (PREPARE never reaches it); any error is rolled back to a
#: savepoint, so the locks that statement got are released again.
TABLE_ATTEMPTS = (
    "SELECT * FROM status_lock FOR UPDATE",
    "PREPARE grab_lock_rows AS SELECT * FROM status_lock FOR UPDATE",
    "PREPARE grab_lock_table AS UPDATE status_lock SET slot = slot",
    "LOCK TABLE status_lock IN ACCESS EXCLUSIVE MODE",
    "PREPARE grab_components AS SELECT * FROM status_page_component FOR UPDATE",
    "PREPARE grab_incidents AS UPDATE incident SET title = title",
    "LOCK TABLE incident IN SHARE MODE",
)


def test_a_reader_holding_every_lock_it_can_does_not_delay_a_writer(
    conn: Conn, app: Conn, reader_dsn: str
) -> None:
    """A statusdb_reader login holding the status advisory locks (and whatever else it can
    lock, plus a long REPEATABLE READ transaction) blocks every incident open."""
    team = teams.create(conn, name="SRE")
    page = pages.create(
        conn, team_id=team.id, name="Acme", slug="acme", created_by_id="u", is_public=True
    ).page
    api = components.create(conn, page.id, name="API", team_id=team.id)
    docs = components.create(conn, page.id, name="Docs")
    conn.commit()
    params = {"team": team.id, "component": docs.id}

    with (
        psycopg.connect(reader_dsn, autocommit=True) as holder,
        psycopg.connect(reader_dsn) as long_reader,
    ):
        keys = [int(k) for (k,) in holder.execute(KEYS_SQL, params).fetchall()]
        for key in keys:  # session level, both modes
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            holder.execute("SELECT pg_advisory_lock_shared(%s)", (key,))
        holder.execute("BEGIN")
        for key in keys:  # transaction level, both modes, held until the end
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            holder.execute("SELECT pg_advisory_xact_lock_shared(%s)", (key,))
        for statement in TABLE_ATTEMPTS:
            holder.execute("SAVEPOINT attempt")
            try:
                holder.execute(statement.encode())
                holder.execute("RELEASE SAVEPOINT attempt")
            except psycopg.Error:
                holder.execute("ROLLBACK TO SAVEPOINT attempt")
        # A long read: a REPEATABLE READ snapshot kept open.
        long_reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert views.page_view(long_reader, "acme") is not None

        # The honest writer: a lock wait of more than a second fails it.
        app.execute("SET lock_timeout = '1s'")
        app.execute("SET statement_timeout = '10s'")
        try:
            incidents.create(app, team.id, title="down", priority="CRITICAL")
            components.set_status(app, docs.id, "DEGRADED_PERFORMANCE")
            app.commit()
        finally:
            app.rollback()
            holder.execute("ROLLBACK")

    row = conn.execute(
        "SELECT current_status FROM status_page_component WHERE id = %s", (api.id,)
    ).fetchone()
    assert row == ("MAJOR_OUTAGE",)
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


def test_the_lock_table_is_the_owners_alone(conn: Conn, app: Conn, reader_dsn: str) -> None:
    """statusdb_app or statusdb_reader take the derivation's own locks (rows of its lock
    table) to stall it."""
    with psycopg.connect(reader_dsn) as reader:
        for who in (app, reader):
            for statement in (
                "SELECT slot FROM status_lock FOR KEY SHARE",
                "SELECT slot FROM status_lock WHERE slot = 0 FOR UPDATE",
                "LOCK TABLE status_lock IN ROW SHARE MODE",
                "SELECT * FROM status_repair",
            ):
                with pytest.raises(pg_errors.InsufficientPrivilege):
                    who.execute(statement.encode())
                who.rollback()
