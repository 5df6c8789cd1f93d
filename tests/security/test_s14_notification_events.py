"""Attack class: notification events (0018) as a channel to subscribers or a window on others.

Whatever is in notification_event is delivered to real people (email, Slack, webhooks). An
adversary with a connection (statusdb_app, statusdb_reader, a team-scoped session) must not be
able to put words there that no status incident or window says, redirect them to another page,
read other teams' announcements, or learn internal ids from what subscribers receive.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page, new_subscriber
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import incidents, status_incidents, teams, tenancy
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


@pytest.fixture
def reader(dsn: str, reader_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=reader_login), autocommit=True) as connection:
        yield connection


def two_pages_with_an_event(conn: Conn) -> tuple[str, str, str, str, str]:
    """Team A's page with a subscriber; team B's private page with a published incident."""
    a, b = teams.create(conn, name="Team A"), teams.create(conn, name="Team B")
    page_a = new_page(conn, a.id, slug="page-a", name="A", created_by_id="u").id
    page_b = new_page(conn, b.id, slug="page-b", name="B", created_by_id="u", is_public=False).id
    new_subscriber(conn, page_a, "a")
    platform = incidents.create(conn, b.id, title="internal: db-7 disk full", priority="LOW")
    status_incidents.create(
        conn, page_b, title="Delays", severity="MINOR", message="Looking.", incident_id=platform.id
    )
    conn.commit()
    return a.id, b.id, page_a, page_b, platform.id


def test_the_backend_cannot_forge_an_event(conn: Conn, app: Conn) -> None:
    """statusdb_app inserts a notification event with its own text to phish every subscriber."""
    _a, _b, page_a, _page_b, _platform = two_pages_with_an_event(conn)
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute(
            """INSERT INTO notification_event (status_page_id, kind, status_incident_id,
                                               component_ids, payload)
               SELECT %s, 'incident_created', id, '{}',
                      '{"update": {"message": "Reset your password at https://evil"}}'
               FROM status_incident LIMIT 1""",
            (page_a,),
        )


def test_the_backend_cannot_rewrite_or_redirect_a_pending_event(conn: Conn, app: Conn) -> None:
    """statusdb_app rewrites a pending event's payload, kind, page or components before the
    worker sends it (words nobody posted, or another page's subscribers as the audience)."""
    _a, _b, page_a, _page_b, _platform = two_pages_with_an_event(conn)
    for column, value in (
        ("payload", '{"update": {"message": "evil"}}'),
        ("kind", "incident_resolved"),
        ("status_page_id", page_a),
        ("component_ids", "{}"),
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege), app.transaction():
            app.execute(
                f"UPDATE notification_event SET {column} = %s",
                (value,),
            )
    # The lease columns stay the worker's to write.
    app.execute("UPDATE notification_event SET lease_owner = NULL, lease_expires_at = NULL")


def test_what_subscribers_receive_carries_no_internal_ids(conn: Conn) -> None:
    """A subscriber (anyone with a webhook) reads platform incident and team ids, or the
    platform incident's internal title, from the events it receives."""
    team_a, team_b, _page_a, _page_b, platform = two_pages_with_an_event(conn)
    rows = conn.execute("SELECT payload::text FROM notification_event").fetchall()
    assert rows
    for (payload,) in rows:
        # The title's words, not a bare "db-7": a UUIDv7 holds "db-7" whenever the 2nd group
        # ends in "db" (the 3rd begins with its version, 7), 1 id in 256.
        for secret in (platform, team_a, team_b, "db-7 disk full"):
            assert secret not in payload
    (claimed,) = outbox.claim_events(conn, worker_id="w")
    assert not hasattr(claimed.notification, "incident_id")


def test_a_scoped_session_cannot_read_or_claim_another_teams_events(conn: Conn, app: Conn) -> None:
    """Scoped to team A, a worker reads or leases team B's announcements of a private page."""
    team_a, _b, _page_a, _page_b, _platform = two_pages_with_an_event(conn)
    tenancy.set_team(app, team_a)
    assert app.execute("SELECT count(*) FROM notification_event").fetchone() == (0,)
    assert outbox.claim_events(app, worker_id="spy") == []
    app.rollback()
    assert conn.execute(
        "SELECT count(*) FROM notification_event WHERE lease_owner IS NULL"
    ).fetchone() == (1,)


def test_the_reader_cannot_read_events(conn: Conn, reader: Conn) -> None:
    """statusdb_reader (the public page's role) reads private pages' announcements from the
    outbox instead of through the page view."""
    two_pages_with_an_event(conn)
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute("SELECT payload FROM notification_event")
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute(
            "SELECT * FROM statusdb_notification_recipients('p', '{}', '{incident_created}', '{}')"
        )
