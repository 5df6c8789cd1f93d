"""Attack class: a team-scoped session (statusdb.tenancy.set_team, row-level security of 0008)
watches another team's incidents through components that follow that team.

Team A's session may only use its own pages; the derivation runs as the owner across teams, so a
component on A's page that follows team B would show B's incident priority as its status and B's
incident ids in its change log.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, incidents, status, teams, tenancy
from statusdb.errors import NotFound, Unauthorized

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def two_teams(conn: Conn) -> tuple[str, str, str, str, str]:
    """Team A with a page and a component it drives; team B with a CRITICAL incident."""
    a, b = teams.create(conn, name="Team A"), teams.create(conn, name="Team B")
    page_a = new_page(conn, a.id, slug="page-a", name="A", created_by_id="u", is_public=False)
    api = components.create(conn, page_a.id, name="API", team_id=a.id)
    incident_b = incidents.create(conn, b.id, title="b down", priority="CRITICAL")
    conn.commit()
    return a.id, b.id, page_a.id, api.id, incident_b.id


def test_a_scoped_session_cannot_create_a_component_following_another_team(
    conn: Conn, app: Conn
) -> None:
    """Scoped to team A, a session creates a component on A's page that follows team B and
    reads B's incident priority from its status and B's incident id from its log."""
    team_a, team_b, page_a, _api, _incident_b = two_teams(conn)
    tenancy.set_team(app, team_a)
    with pytest.raises(Unauthorized, match="row-level security"):
        components.create(app, page_a, name="Spy", team_id=team_b)
    app.rollback()
    tenancy.set_team(app, team_a)
    with pytest.raises(pg_errors.InsufficientPrivilege), app.transaction():
        app.execute(
            "INSERT INTO status_page_component (status_page_id, name, team_id)"
            " VALUES (%s, 'Spy', %s)",
            (page_a, team_b),
        )
    # Its own team, or none, is fine.
    assert components.create(app, page_a, name="Own", team_id=team_a).team_id == team_a
    assert components.create(app, page_a, name="Manual").team_id is None
    app.commit()
    assert conn.execute(
        "SELECT count(*) FROM status_page_component WHERE team_id = %s", (team_b,)
    ).fetchone() == (0,)


def test_a_scoped_session_cannot_point_a_component_at_another_team(conn: Conn, app: Conn) -> None:
    """Scoped to team A, a session updates its component to follow team B and reads B's
    incident priority and ids through it."""
    team_a, team_b, _page_a, api, _incident_b = two_teams(conn)
    tenancy.set_team(app, team_a)
    with pytest.raises(Unauthorized, match="row-level security"):
        components.update(app, api, team_id=team_b)
    app.rollback()
    tenancy.set_team(app, team_a)
    with pytest.raises(pg_errors.InsufficientPrivilege), app.transaction():
        app.execute("UPDATE status_page_component SET team_id = %s WHERE id = %s", (team_b, api))
    app.rollback()
    row = conn.execute(
        "SELECT team_id, current_status FROM status_page_component WHERE id = %s", (api,)
    ).fetchone()
    assert row == (team_a, "OPERATIONAL")


def test_nothing_of_another_teams_incidents_reaches_a_scoped_session(conn: Conn, app: Conn) -> None:
    """A component on team A's page that follows team B (set up by an unscoped session) shows
    team A's scoped session B's incident priority and B's incident ids."""
    team_a, team_b, page_a, api, incident_b = two_teams(conn)
    spy = components.create(conn, page_a, name="Upstream", team_id=team_b)
    assert spy.current_status == "MAJOR_OUTAGE"
    # A component that followed team B and then team A keeps B's changes in its history.
    components.update(conn, api, team_id=team_b)
    incidents.update(conn, incident_b, priority="HIGH")
    components.update(conn, api, team_id=team_a)
    conn.commit()
    assert conn.execute(
        "SELECT count(*) FROM status_change WHERE incident_id = %s", (incident_b,)
    ).fetchone() == (2,)

    tenancy.set_team(app, team_a)
    visible = {c.id for c in components.list_for_page(app, page_a)}
    assert visible == {api}
    with pytest.raises(NotFound):
        components.get(app, spy.id)
    assert status.changes_for_component(app, spy.id) == []
    seen = app.execute("SELECT DISTINCT incident_id FROM status_change").fetchall()
    assert (incident_b,) not in seen
    assert app.execute(
        "SELECT count(*) FROM status_page_component WHERE team_id = %s", (team_b,)
    ).fetchone() == (0,)
    app.rollback()
    # Unscoped, the backend still sees everything, and statuses are exact.
    assert {c.id for c in components.list_for_page(app, page_a)} == {api, spy.id}
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []
