"""Attack class: scheduler functions acting beyond the caller's team scope.

statusdb_maintenance_remind runs as the owner (the app cannot write events), so row-level
security did not bound it: under `tenancy.set_team(A)` it wrote team B's reminder and returned
1, mapping B's maintenance start times for a session that sees none of B's rows (issue 26
item 7). It now keeps to the scope's team.
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

from statusdb import maintenance, teams, tenancy

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn) as connection:
        yield connection


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def _team_with_a_window_soon(owner: Conn, name: str) -> tuple[str, str]:
    team = teams.create(owner, name=name)
    page = new_page(owner, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    start = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    window = maintenance.create(
        owner,
        page.id,
        title=name,
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        created_by_id="u",
    )
    return team.id, window.id


def _reminded(owner: Conn) -> set[str]:
    rows = owner.execute(
        "SELECT maintenance_window_id FROM notification_event WHERE kind = 'maintenance_reminder'"
    ).fetchall()
    owner.commit()
    return {str(r[0]) for r in rows}


def test_a_scoped_reminder_step_keeps_to_its_team(owner: Conn, app: Conn) -> None:
    team_a, window_a = _team_with_a_window_soon(owner, "A")
    _team_b, window_b = _team_with_a_window_soon(owner, "B")
    owner.commit()
    tenancy.set_team(app, team_a)
    row = app.execute("SELECT statusdb_maintenance_remind(now())").fetchone()
    app.commit()
    assert row == (1,)
    assert _reminded(owner) == {window_a}
    assert window_b not in _reminded(owner)
    tenancy.clear_team(app)  # unscoped: every team, as before
    assert app.execute("SELECT statusdb_maintenance_remind(now())").fetchone() == (1,)
    app.commit()
    assert _reminded(owner) == {window_a, window_b}
