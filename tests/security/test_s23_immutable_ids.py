"""Attack class: changing a row's id behind the back of everything that refers to it.

The page snapshot, row history, notification events and delivery keys refer to rows by id.
`UPDATE maintenance_window SET id = ...` (in its creating transaction, on a window without
components) left the snapshot with the old id, title and time and announced nothing (issue 26
item 6). Every table with an `id` primary key now refuses a change of it, for every client.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import errors, maintenance, teams, views

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn) as connection:
        yield connection


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def _id_tables(owner: Conn) -> list[str]:
    rows = owner.execute(
        """SELECT c.relname FROM pg_constraint k
           JOIN pg_class c ON c.oid = k.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (k.conkey)
           WHERE n.nspname = 'public' AND k.contype = 'p' AND a.attname = 'id'
             AND cardinality(k.conkey) = 1 AND c.relname NOT LIKE '%yoyo%'
           ORDER BY 1"""
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_every_table_with_an_id_key_refuses_a_new_id(owner: Conn) -> None:
    tables = _id_tables(owner)
    assert "maintenance_window" in tables
    assert len(tables) >= 13
    for table in tables:
        row = owner.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
            (table, f"{table}_id_immutable"),
        ).fetchone()
        assert row == (1,), table


def test_a_window_keeps_its_id_and_the_page_stays_exact(owner: Conn, app: Conn) -> None:
    team = teams.create(owner, name="Team")
    page = new_page(owner, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    owner.commit()
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    window = maintenance.create(
        app,
        page.id,
        title="Upgrade",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        created_by_id="u",
    )
    with pytest.raises(pg_errors.CheckViolation) as refused:
        app.execute(
            "UPDATE maintenance_window SET id = %s, title = 'Moved',"
            " start_time = start_time + interval '1 day' WHERE id = %s",
            (str(uuid.uuid4()), window.id),
        )
    assert refused.value.diag.constraint_name == "maintenance_window_id_immutable"
    assert isinstance(errors.translate(refused.value), errors.InvalidInput)
    app.rollback()
    assert views.recompute_snapshots(owner) == []


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ("team", "true"),
        ("status_page", "true"),
        ("status_page_component", "true"),
        ("maintenance_window", "true"),
    ],
)
def test_the_app_cannot_renumber_a_row(owner: Conn, app: Conn, table: str, where: str) -> None:
    team = teams.create(owner, name="Team")
    page = new_page(owner, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    maintenance.create(
        owner,
        page.id,
        title="W",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        created_by_id="u",
    )
    owner.execute(
        "INSERT INTO status_page_component (status_page_id, team_id, name) VALUES (%s, %s, 'c')",
        (page.id, team.id),
    )
    owner.commit()
    statement = f"UPDATE {table} SET id = id || 'x' WHERE {where}"
    # Refused by the trigger, or earlier by privilege where the app may not update the column.
    with pytest.raises((pg_errors.CheckViolation, pg_errors.InsufficientPrivilege)):
        app.execute(statement)
    app.rollback()
    with pytest.raises(pg_errors.CheckViolation):  # the owner too: no client may
        owner.execute(statement)
    owner.rollback()
    # An UPDATE that sets the same id (ORMs do) is no change and passes.
    owner.execute(f"UPDATE {table} SET id = id WHERE {where}")
    owner.rollback()
