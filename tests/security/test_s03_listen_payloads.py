"""Attack class: LISTEN needs no privilege, so whatever a NOTIFY payload carries reaches every
role that can connect.

A statusdb_reader login (which may read no table) listens on the status feed's channel while
the backend changes statuses on a private page; a team-scoped backend listener follows the
feed while another team's statuses change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN, new_page
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, feed, incidents, teams, tenancy
from statusdb.errors import Unauthorized

Conn = psycopg.Connection[TupleRow]

ARRIVAL = 10.0
QUIET = 0.3


@pytest.fixture
def app_dsn(dsn: str, logins: None) -> str:
    return make_conninfo(dsn, user=APP_LOGIN)


@pytest.fixture
def reader(dsn: str, logins: None) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as connection:
        yield connection


def private_world(conn: Conn) -> tuple[str, str, str, str]:
    """A private page of team SRE with one component it drives; returns ids."""
    sre = teams.create(conn, name="SRE")
    page = new_page(conn, sre.id, slug="secret", created_by_id="u", is_public=False)
    api = components.create(conn, page.id, name="API", team_id=sre.id)
    conn.commit()
    return sre.id, page.id, api.id, "MAJOR_OUTAGE"


def test_a_reader_listening_learns_nothing_of_private_pages(conn: Conn, reader: Conn) -> None:
    """A statusdb_reader login LISTENs on statusdb_status_change and reads the page id,
    component id and new status of every change, private pages included."""
    reader.execute("LISTEN statusdb_status_change")
    sre, page, api, _ = private_world(conn)
    down = incidents.create(conn, sre, title="down", priority="CRITICAL")
    conn.commit()
    received: list[psycopg.Notify] = []
    deadline = time.monotonic() + ARRIVAL
    while not received and time.monotonic() < deadline:
        received = list(reader.notifies(timeout=0.5, stop_after=1))
    assert received, "the change was announced"
    for notify in received:
        assert page not in notify.payload
        assert api not in notify.payload
        assert "OUTAGE" not in notify.payload
        # Only the log's sequence number, which says that something changed, no more.
        assert notify.payload.isdigit()
    # And the reader cannot turn the number into the change: the feed refuses it.
    incidents.resolve(conn, down.id)
    conn.commit()
    with pytest.raises(Unauthorized):
        list(feed.listen(reader, timeout=ARRIVAL))


def test_a_team_scoped_listener_gets_only_its_teams_changes(conn: Conn, app_dsn: str) -> None:
    """A backend listener scoped to team A (row-level security) receives team B's private
    status changes on the feed."""
    sre, _page_b, _api_b, _ = private_world(conn)
    team_a = teams.create(conn, name="Team A")
    page_a = new_page(conn, team_a.id, slug="page-a", name="A", created_by_id="u")
    api_a = components.create(conn, page_a.id, name="API", team_id=team_a.id)
    conn.commit()
    with psycopg.connect(app_dsn, autocommit=True) as listener:
        tenancy.set_team(listener, team_a.id, local=False)
        feed.start_listening(listener)
        incidents.create(conn, sre, title="b down", priority="CRITICAL")  # team B's page
        conn.commit()
        incidents.create(conn, team_a.id, title="a slow", priority="MEDIUM")
        conn.commit()
        received = list(feed.listen(listener, timeout=ARRIVAL, stop_after=1))
        assert [(e.status_page_id, e.component_id, e.new_status) for e in received] == [
            (page_a.id, api_a.id, "DEGRADED_PERFORMANCE")
        ]
        assert list(feed.listen(listener, timeout=QUIET)) == []
