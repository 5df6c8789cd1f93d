"""Attack class: the page as it was (row history, statusdb_page_view_at) and postmortems (0022).

The row history is audit data: an app or reader login must not read it around the page view's
access rule, forge or erase it, or switch its recording off; an old token must not open a page's
past; a postmortem, once published, must not be rewritten, backdated or published early.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import pages, status_incidents, teams, tenancy, views
from statusdb.errors import NotFound

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


@pytest.fixture
def reader(dsn: str, reader_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=reader_login), autocommit=True) as connection:
        yield connection


def _now(conn: Conn) -> dt.datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: dt.datetime = row[0]
    return value


def _private_page(conn: Conn) -> tuple[str, str, dt.datetime]:
    """A private page "secret" with an incident; its id, token and an instant it existed."""
    team = teams.create(conn, name="T")
    created = pages.create(
        conn, team_id=team.id, name="Secret", slug="secret", created_by_id="u", is_public=False
    )
    status_incidents.create(conn, created.page.id, title="Down", severity="MAJOR", message="m")
    conn.commit()
    at = _now(conn)
    conn.commit()
    assert created.access_token is not None
    return created.page.id, created.access_token, at


def _resolved_with_postmortem(conn: Conn) -> str:
    team = teams.create(conn, name="T")
    page = pages.create(conn, team_id=team.id, name="P", slug="p", created_by_id="u").page
    incident = status_incidents.create(conn, page.id, title="Down", severity="MAJOR", message="m")
    status_incidents.add_update(conn, incident.id, status="RESOLVED", message="ok")
    status_incidents.publish_postmortem(conn, incident.id, body="A disk.", written_by_id="u")
    conn.commit()
    return incident.id


def test_app_and_reader_cannot_read_the_history_table(conn: Conn, app: Conn, reader: Conn) -> None:
    """An app or reader login selects row_history to read private pages' pasts without a token."""
    _private_page(conn)
    for login in (app, reader):
        for table in ("row_history", "row_history_horizon"):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                login.execute(f"SELECT * FROM {table}".encode())
            login.rollback()


def test_app_cannot_forge_or_erase_history(conn: Conn, app: Conn) -> None:
    """An app login inserts, rewrites or deletes row versions to change what the page showed."""
    page_id, _token, _at = _private_page(conn)
    for statement in (
        "INSERT INTO row_history (table_name, row_id, status_page_id, valid_from,"
        " written_by_xact, row_data) VALUES ('status_page', %(id)s, %(id)s, now(),"
        " pg_current_xact_id(), '{}')",
        "UPDATE row_history SET row_data = '{}' WHERE status_page_id = %(id)s",
        "DELETE FROM row_history WHERE status_page_id = %(id)s",
        "INSERT INTO row_history_horizon (kept_from) VALUES (now())",
        "SELECT statusdb_prune_row_history(now(), 100000)",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege):
            app.execute(statement.encode(), {"id": page_id})
        app.rollback()


def test_app_cannot_switch_the_recording_off(conn: Conn, app: Conn) -> None:
    """An app login disables the history triggers (replica mode, ALTER TABLE) before writing."""
    page_id, token, _at = _private_page(conn)
    for statement in (
        "SET session_replication_role = replica",
        "ALTER TABLE status_page DISABLE TRIGGER status_page_keep_history_update",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege):
            app.execute(statement.encode())
        app.rollback()
    # A plain-SQL write by the app is recorded like any other.
    app.execute("UPDATE status_page SET name = 'Quietly renamed' WHERE id = %s", (page_id,))
    app.commit()
    at = _now(conn)
    conn.commit()
    view = views.page_view_at(conn, "secret", at=at, token=token)
    assert view is not None
    assert view.page.name == "Quietly renamed"


def test_a_rotated_token_does_not_open_the_past(conn: Conn, reader: Conn) -> None:
    """A reader keeps a leaked token after its rotation to read the page as it was back then."""
    page_id, token, at = _private_page(conn)
    assert views.page_view_at(reader, "secret", at=at, token=token) is not None
    new_token = pages.rotate_access_token(conn, page_id)
    conn.commit()
    assert views.page_view_at(reader, "secret", at=at, token=token) is None
    assert views.page_view_at(reader, "secret", at=at, token=new_token) is not None


def test_a_page_made_public_keeps_its_private_past_closed(conn: Conn, reader: Conn) -> None:
    """A reader reads, without a token, what a page showed while it was private."""
    page_id, token, at = _private_page(conn)
    pages.set_visibility(conn, page_id, is_public=True)
    conn.commit()
    assert views.page_view(reader, "secret") is not None  # public now
    assert views.page_view_at(reader, "secret", at=at) is None  # private then
    assert views.page_view_at(reader, "secret", at=at, token=token) is None  # token gone too


def test_reader_cannot_widen_the_page_view_at(conn: Conn, reader: Conn) -> None:
    """A reader asks for an instant outside the history kept, or horizons and limits beyond the
    maxima, or sends megabytes of slug and digest, to make page_view_at work unboundedly."""
    _page_id, _token, at = _private_page(conn)
    query = "SELECT count(*) FROM statusdb_page_view_at(%s, %s, %s, %s::interval, %s)"
    for instant, horizon, limit in (
        (at - dt.timedelta(days=36500), None, None),
        (at + dt.timedelta(days=365), None, None),
        (None, None, None),
        (at, "1000 years", None),
        (at, None, 100000),
    ):
        with pytest.raises(pg_errors.InvalidParameterValue):
            reader.execute(query.encode(), ("secret", None, instant, horizon, limit))
    assert reader.execute(
        query.encode(), ("a" * 5_000_000, b"a" * 5_000_000, at, None, None)
    ).fetchone() == (0,)


def test_nobody_rewrites_a_published_postmortem(conn: Conn, app: Conn) -> None:
    """The app (or the owner, by psql) updates or deletes a published postmortem revision."""
    incident_id = _resolved_with_postmortem(conn)
    for login in (app, conn):
        for statement in (
            "UPDATE status_incident_postmortem SET body = 'Nothing happened'"
            " WHERE status_incident_id = %s",
            "DELETE FROM status_incident_postmortem WHERE status_incident_id = %s",
        ):
            with pytest.raises(
                (pg_errors.IntegrityConstraintViolation, pg_errors.InsufficientPrivilege)
            ):
                login.execute(statement.encode(), (incident_id,))
            login.rollback()
    revisions = status_incidents.postmortem_revisions(conn, incident_id)
    assert [r.body for r in revisions] == ["A disk."]


def test_app_cannot_backdate_or_renumber_a_revision(conn: Conn, app: Conn) -> None:
    """The app inserts a revision by plain SQL with an old written_at and a chosen number, to make
    an edit look like the text published first."""
    incident_id = _resolved_with_postmortem(conn)
    with pytest.raises(pg_errors.UniqueViolation):
        app.execute(
            "INSERT INTO status_incident_postmortem (status_incident_id, revision, body,"
            " written_by_id, written_at) VALUES (%s, 7, 'Edited', 'u', '2000-01-01')",
            (incident_id,),
        )
    app.rollback()
    app.execute(
        "INSERT INTO status_incident_postmortem (status_incident_id, revision, body,"
        " written_by_id, written_at) VALUES (%s, NULL, 'Edited', 'u', '2000-01-01')",
        (incident_id,),
    )
    app.commit()
    revisions = status_incidents.postmortem_revisions(conn, incident_id)
    assert [r.revision for r in revisions] == [1, 2]
    assert revisions[0].written_at > dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert revisions[1].written_at > revisions[0].written_at


def test_app_cannot_publish_a_postmortem_of_an_open_incident(conn: Conn, app: Conn) -> None:
    """The app inserts a postmortem by plain SQL for an incident still being investigated."""
    team = teams.create(conn, name="T")
    page = pages.create(conn, team_id=team.id, name="P", slug="p", created_by_id="u").page
    incident = status_incidents.create(conn, page.id, title="Down", severity="MAJOR", message="m")
    conn.commit()
    with pytest.raises(pg_errors.CheckViolation) as refused:
        app.execute(
            "INSERT INTO status_incident_postmortem (status_incident_id, body, written_by_id)"
            " VALUES (%s, 'All fine', 'u')",
            (incident.id,),
        )
    assert refused.value.diag.constraint_name == "status_incident_postmortem_resolved_check"


def test_a_team_scoped_session_cannot_touch_another_team_s_postmortems(
    conn: Conn, app: Conn
) -> None:
    """Scoped to team B, a session reads team A's postmortem or publishes one on A's incident."""
    incident_id = _resolved_with_postmortem(conn)  # team A's
    other = teams.create(conn, name="B")
    conn.commit()
    tenancy.set_team(app, other.id)
    assert app.execute(
        "SELECT count(*) FROM status_incident_postmortem WHERE status_incident_id = %s",
        (incident_id,),
    ).fetchone() == (0,)
    assert status_incidents.postmortem_revisions(app, incident_id) == []
    with pytest.raises(NotFound):
        status_incidents.edit_postmortem(app, incident_id, body="B's text", written_by_id="b")
    with pytest.raises(pg_errors.InsufficientPrivilege):  # row-level security
        app.execute(
            "INSERT INTO status_incident_postmortem (status_incident_id, body, written_by_id)"
            " VALUES (%s, 'B''s text', 'b')",
            (incident_id,),
        )
    app.rollback()
    assert [r.body for r in status_incidents.postmortem_revisions(conn, incident_id)] == ["A disk."]
