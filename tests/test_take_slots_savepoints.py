"""statusdb_take_slots writes each slot once per transaction, savepoints included (0046).

A slot's no-op write tells a REPEATABLE READ or SERIALIZABLE transaction with an older snapshot
that it is behind (0023). It is made once per transaction: before 0046 "already written by
this transaction" was `xmin = pg_current_xact_id()`, the top-level xid, while a write made in
a savepoint (psycopg's nested `transaction()`, an atomic operation inside the caller's
transaction, the derivation's own subtransactions) has its subtransaction's xid as xmin. So
every later statement of the transaction wrote the slot again: a new row version of the hot
`status_lock` rows per statement, never a wrong judgement (a version written by another
transaction is never taken for its own). Since 0046 the write stamps `written_by` with the
top-level xid, which a released savepoint keeps and a rolled-back one takes back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from statusdb import components, teams

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def own(dsn: str) -> Iterator[Conn]:
    """A connection of the test's own database, whose top-level transaction the test controls
    (the shared `conn` runs every statement inside a savepoint of its own)."""
    with psycopg.connect(dsn) as connection:
        yield connection


@pytest.fixture
def slot(own: Conn) -> int:
    """A status-key slot that exists (its first use is an insert, not the point here)."""
    chosen = 77
    own.execute("INSERT INTO status_lock (slot) VALUES (%s) ON CONFLICT DO NOTHING", (chosen,))
    own.commit()
    return chosen


def _version(conn: Conn, slot: int) -> str:
    row = conn.execute("SELECT ctid::text FROM status_lock WHERE slot = %s", (slot,)).fetchone()
    assert row is not None
    return str(row[0])


def _take(conn: Conn, slot: int) -> None:
    conn.execute("SELECT statusdb_take_slots(ARRAY[%s]::bigint[])", (slot,))


def test_a_slot_written_in_a_released_savepoint_is_not_written_again(own: Conn, slot: int) -> None:
    own.execute("SAVEPOINT s")
    _take(own, slot)
    written = _version(own, slot)
    _take(own, slot)  # the same savepoint
    assert _version(own, slot) == written
    own.execute("RELEASE SAVEPOINT s")
    _take(own, slot)  # the top-level transaction
    assert _version(own, slot) == written
    own.execute("SAVEPOINT t")
    _take(own, slot)  # another savepoint
    own.execute("RELEASE SAVEPOINT t")
    assert _version(own, slot) == written


def test_a_write_rolled_back_with_its_savepoint_is_made_again(own: Conn, slot: int) -> None:
    before = _version(own, slot)
    own.execute("SAVEPOINT s")
    _take(own, slot)
    assert _version(own, slot) != before
    own.execute("ROLLBACK TO SAVEPOINT s")
    assert _version(own, slot) == before
    _take(own, slot)
    written = _version(own, slot)
    assert written != before
    _take(own, slot)
    assert _version(own, slot) == written


def test_an_incident_opened_in_a_nested_transaction_writes_its_slot_once(own: Conn) -> None:
    suffix = uuid.uuid4().hex[:8]
    team = teams.create(own, name=f"slots {suffix}").id
    page = new_page(own, team, slug=f"slots-{suffix}").id
    components.create(own, page, name="api", team_id=team)
    row = own.execute("SELECT 1 + (statusdb_status_lock_key(%s, NULL) & 4095)", (team,)).fetchone()
    assert row is not None
    slot = int(row[0])
    own.commit()  # the setup's own slot writes end here
    own.execute("SELECT 1")  # the caller's transaction, so that transaction() is a savepoint
    insert = "INSERT INTO incident (team_id, title, priority) VALUES (%s, 'down', 'CRITICAL')"
    with own.transaction():  # a savepoint of the caller's transaction
        own.execute(insert, (team,))
    written = _version(own, slot)
    own.execute(insert, (team,))
    own.execute("UPDATE incident SET priority = 'LOW' WHERE team_id = %s", (team,))
    assert _version(own, slot) == written


def test_an_older_snapshot_is_refused_after_a_write_in_a_savepoint(dsn: str) -> None:
    """What the once-per-transaction write is for still holds when it was made in a savepoint."""
    with psycopg.connect(dsn, autocommit=True) as owner:
        suffix = uuid.uuid4().hex[:8]
        team = teams.create(owner, name=f"old {suffix}").id
        page = new_page(owner, team, slug=f"old-{suffix}").id
        component = components.create(owner, page, name="api").id
        owner.execute(
            "INSERT INTO status_lock (slot) SELECT generate_series(0, 4096) ON CONFLICT DO NOTHING"
        )
        with psycopg.connect(dsn) as older, psycopg.connect(dsn) as writer:
            older.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            older.execute("SELECT 1")  # its snapshot
            with writer.transaction(), writer.transaction():  # the write in a savepoint
                writer.execute(
                    "INSERT INTO incident (team_id, title, priority)"
                    " VALUES (%s, 'down', 'CRITICAL')",
                    (team,),
                )
            with pytest.raises(pg_errors.SerializationFailure):
                older.execute(
                    "UPDATE status_page_component SET team_id = %s WHERE id = %s",
                    (team, component),
                )
            older.rollback()
        row = owner.execute(
            "SELECT current_status FROM status_page_component WHERE id = %s", (component,)
        ).fetchone()
        assert row == ("OPERATIONAL",)  # the refused move left it as it was
