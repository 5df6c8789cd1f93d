"""Attack class: translations (0033) as a way to put words on another team's page, to read a
private page's texts, or to serve a page's readers stale or foreign text.

Translations are shown to a page's readers as the page's own words and sent to its
subscribers. An adversary with a connection must not be able to write them onto a page it may
not write (another team's, through an entity id it guesses, or by choosing status_page_id),
read a private page's translations without its token, or read another team's event texts.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, status_incidents, teams, tenancy, translations, views
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


def _two_teams(conn: Conn) -> tuple[str, str, str, str, str]:
    """Team A's page; team B's private page with a component and an incident."""
    a, b = teams.create(conn, name="Team A"), teams.create(conn, name="Team B")
    page_a = new_page(conn, a.id, slug="page-a", name="A").id
    page_b = new_page(conn, b.id, slug="page-b", name="B", is_public=False).id
    api_b = components.create(conn, page_b, name="API").id
    incident_b = status_incidents.create(
        conn, page_b, title="Delays", severity="MINOR", message="Looking."
    ).id
    translations.set(
        conn, page_b, "de", entity="page", entity_id=page_b, field="name", text="Geheim"
    )
    conn.commit()
    return a.id, page_a, page_b, api_b, incident_b


def test_a_team_session_cannot_translate_another_teams_entity(conn: Conn, app: Conn) -> None:
    """Team A's session writes a translation of team B's component, by its id, straight into
    the table: the trigger looks the entity up with the session's own scope, so it is refused
    as an id that names nothing (translation_entity_fkey), the same answer as for a made-up id:
    neither the write nor the error tells team A that team B's id exists."""
    a, _page_a, page_b, api_b, _incident_b = _two_teams(conn)
    answers = []
    for entity_id in (api_b, "no-such-component"):
        tenancy.set_team(app, a)
        with pytest.raises(pg_errors.ForeignKeyViolation) as refused:
            app.execute(
                "INSERT INTO translation (locale, entity_kind, entity_id, field, text)"
                " VALUES ('de', 'component', %s, 'name', 'Kaputt')",
                (entity_id,),
            )
        answers.append((refused.value.sqlstate, refused.value.diag.constraint_name))
        app.rollback()
    assert answers == [("23503", "translation_entity_fkey")] * 2
    tenancy.set_team(app, a)
    with pytest.raises(NotFound):  # through the API: not on a page it can see
        translations.set(
            app, page_b, "de", entity="component", entity_id=api_b, field="name", text="Kaputt"
        )
    app.rollback()
    assert conn.execute(
        "SELECT count(*) FROM translation WHERE entity_id = %s", (api_b,)
    ).fetchone() == (0,)


def test_the_app_cannot_choose_the_page_of_a_translation(conn: Conn, app: Conn) -> None:
    """statusdb_app sets status_page_id itself, to file team B's words under page A (or the
    reverse): refused by privilege, and the trigger sets it from the entity anyway."""
    _a, page_a, _page_b, api_b, _incident_b = _two_teams(conn)
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute(
            "INSERT INTO translation (status_page_id, locale, entity_kind, entity_id, field,"
            " text) VALUES (%s, 'de', 'component', %s, 'name', 'x')",
            (page_a, api_b),
        )
    app.rollback()
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute("UPDATE translation SET status_page_id = %s", (page_a,))
    app.rollback()
    # Nor move a translation to another entity (its key is not the app's to update).
    with pytest.raises(pg_errors.InsufficientPrivilege):
        app.execute("UPDATE translation SET entity_id = %s", (page_a,))


def test_the_reader_reads_translations_only_through_the_page_view(conn: Conn, reader: Conn) -> None:
    """The public front end's role selects the table, or asks the view of a private page in a
    locale without its token."""
    _a, _page_a, _page_b, _api_b, _incident_b = _two_teams(conn)
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute("SELECT text FROM translation")
    assert views.page_view(reader, "page-b", locale="de") is None
    assert views.page_view_bytes(reader, "page-b", locale="de") is None
    assert (
        reader.execute("SELECT * FROM statusdb_page_feed_v2('page-b', NULL, 10, 'de')").fetchall()
        == []
    )
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute("SELECT statusdb_translation_text('{de}', 'page', 'x', 'name')")
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute("SELECT * FROM statusdb_event_texts('x', 'de')")


def test_a_team_session_cannot_read_another_teams_event_texts(conn: Conn, app: Conn) -> None:
    """statusdb_event_texts runs as the owner: a team-scoped session names team B's event."""
    a, _page_a, _page_b, _api_b, incident_b = _two_teams(conn)
    (event_id,) = conn.execute(
        "SELECT id FROM notification_event WHERE status_incident_id = %s", (incident_b,)
    ).fetchone() or (None,)
    assert event_id is not None
    conn.commit()
    tenancy.set_team(app, a)
    assert app.execute("SELECT * FROM statusdb_event_texts(%s, 'de')", (event_id,)).fetchall() == []
    app.rollback()
    assert app.execute(
        "SELECT title FROM statusdb_event_texts(%s, 'de')", (event_id,)
    ).fetchall() == [("Delays",)]
