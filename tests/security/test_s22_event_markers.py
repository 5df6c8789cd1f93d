"""Attack class: client-writable values deciding whether a notification event is written.

A window created in a transaction is announced once, at commit; its later updates in that
same transaction write no further event. 0018 told "created in this transaction" by
`created_at = now()`, a column the app writes, so an app that set `created_at = now()` on an
old window before cancelling or rescheduling it suppressed the event subscribers were owed
(issue 26 item 5). Now only an owner-only marker that the insert itself leaves decides.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import maintenance, teams

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn) as connection:
        yield connection


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def _window(owner: Conn) -> str:
    team = teams.create(owner, name="Team")
    page = new_page(owner, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    window = maintenance.create(
        owner,
        page.id,
        title="Database upgrade",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        created_by_id="u",
    )
    owner.commit()
    return window.id


def _kinds(owner: Conn, window_id: str) -> list[str]:
    rows = owner.execute(
        "SELECT kind FROM notification_event WHERE maintenance_window_id = %s ORDER BY id",
        (window_id,),
    ).fetchall()
    owner.commit()
    return [str(r[0]) for r in rows]


def test_touching_created_at_does_not_suppress_a_cancellation(owner: Conn, app: Conn) -> None:
    window_id = _window(owner)
    app.execute("UPDATE maintenance_window SET created_at = now() WHERE id = %s", (window_id,))
    app.execute("UPDATE maintenance_window SET status = 'CANCELLED' WHERE id = %s", (window_id,))
    app.commit()
    assert _kinds(owner, window_id) == ["maintenance_scheduled", "maintenance_cancelled"]


def test_touching_created_at_does_not_suppress_a_reschedule(owner: Conn, app: Conn) -> None:
    window_id = _window(owner)
    app.execute("UPDATE maintenance_window SET created_at = now() WHERE id = %s", (window_id,))
    app.execute(
        "UPDATE maintenance_window SET start_time = start_time + interval '1 day',"
        " end_time = end_time + interval '1 day' WHERE id = %s",
        (window_id,),
    )
    app.commit()
    assert _kinds(owner, window_id) == ["maintenance_scheduled", "maintenance_rescheduled"]


def test_a_window_created_and_changed_in_one_transaction_is_announced_once(
    owner: Conn, app: Conn
) -> None:
    """The rule the marker replaces still holds: one scheduled event, at commit, as it is then."""
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
    app.execute(
        "UPDATE maintenance_window SET start_time = start_time + interval '1 hour',"
        " end_time = end_time + interval '1 hour' WHERE id = %s",
        (window.id,),
    )
    app.commit()
    assert _kinds(owner, window.id) == ["maintenance_scheduled"]
    # The marker never outlives its transaction, and no client can write or read it.
    assert owner.execute("SELECT count(*) FROM maintenance_window_created").fetchone() == (0,)
    owner.commit()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("INSERT INTO maintenance_window_created VALUES (%s)", (window.id,))
