"""Attack class: same-page rules that hold on INSERT but not on UPDATE.

A component's maintenance windows, subscriber filters and status incidents must be on its own
page; so must a window's components. Plain SQL as statusdb_app (or a DBA's psql) moves a
component or a window to another page, dragging those relations along, so that another page
(public, another team's) lists the private page's component.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, maintenance, status_incidents, subscribers, teams, views
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import CONSTRAINT_MESSAGES, InvalidInput, translate

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def world(conn: Conn) -> dict[str, str]:
    """A private page with a component in a window, a subscriber filter and a status incident;
    a public page of another team."""
    a, b = teams.create(conn, name="A"), teams.create(conn, name="B")
    private = new_page(conn, a.id, slug="private", created_by_id="u", is_public=False)
    public = new_page(conn, b.id, slug="public", created_by_id="u")
    secret = components.create(conn, private.id, name="Secret")
    now = dt.datetime.now(dt.UTC)
    window = maintenance.create(
        conn,
        private.id,
        CreateMaintenanceWindowInput(
            component_ids=(secret.id,),
            title="Upgrade",
            start_time=now + dt.timedelta(hours=1),
            end_time=now + dt.timedelta(hours=2),
        ),
        created_by_id="u",
    )
    subscribers.subscribe(
        conn,
        private.id,
        channel="WEBHOOK",
        destination="https://h.example/x",
        component_ids=[secret.id],
    )
    status_incidents.create(
        conn,
        private.id,
        title="Slow",
        severity="MINOR",
        message="m",
        affected_component_ids=[secret.id],
    )
    conn.commit()
    return {"private": private.id, "public": public.id, "secret": secret.id, "window": window.id}


def refused(who: Conn, statement: str, params: tuple[str, ...], constraint: str) -> None:
    with pytest.raises(psycopg.Error) as caught, who.transaction():
        who.execute(statement.encode(), params)
    assert caught.value.diag.constraint_name == constraint
    assert constraint in CONSTRAINT_MESSAGES
    assert isinstance(translate(caught.value), InvalidInput)


def test_a_component_cannot_be_moved_to_another_page(conn: Conn, app: Conn) -> None:
    """statusdb_app moves a private page's component, with its window links, subscriber
    filters and status incidents, onto another team's public page."""
    ids = world(conn)
    for who in (app, conn):  # the backend, and a DBA's psql (superuser)
        refused(
            who,
            "UPDATE status_page_component SET status_page_id = %s WHERE id = %s",
            (ids["public"], ids["secret"]),
            "status_page_component_status_page_id_fixed",
        )
    view = views.page_view(app, "public")
    assert view is not None
    assert view.page.components == ()
    assert ids["secret"] not in str(view)


def test_a_maintenance_window_cannot_be_moved_to_another_page(conn: Conn, app: Conn) -> None:
    """statusdb_app moves a private page's maintenance window, with its components, onto
    another page: the public page then lists the private component's id."""
    ids = world(conn)
    for who in (app, conn):
        refused(
            who,
            "UPDATE maintenance_window SET status_page_id = %s WHERE id = %s",
            (ids["public"], ids["window"]),
            "maintenance_window_status_page_id_fixed",
        )
    view = views.page_view(app, "public")
    assert view is not None
    assert ids["secret"] not in str(view)


def test_a_component_id_cannot_change_under_its_references(conn: Conn) -> None:
    """A DBA renames a component's id: the subscriber filters and status incidents that name it
    (arrays, no foreign key) keep the old id."""
    ids = world(conn)
    refused(
        conn,
        "UPDATE status_page_component SET id = 'renamed' WHERE id = %s",
        (ids["secret"],),
        "status_page_component_id_fixed",
    )
    conn.rollback()


def test_subscribers_and_status_incidents_keep_their_components_on_update(
    conn: Conn, app: Conn
) -> None:
    """Regression guard: moving a subscriber or a status incident with component filters to
    another page, or naming another page's component in them, is refused."""
    ids = world(conn)
    other = components.create(conn, ids["public"], name="Other")
    conn.commit()
    for statement, params, constraint in (
        (
            "UPDATE status_subscriber SET status_page_id = %s WHERE status_page_id = %s",
            (ids["public"], ids["private"]),
            "status_subscriber_component_ids_fkey",
        ),
        (
            "UPDATE status_subscriber SET component_ids = ARRAY[%s] WHERE status_page_id = %s",
            (other.id, ids["private"]),
            "status_subscriber_component_ids_fkey",
        ),
        (
            "UPDATE status_incident SET status_page_id = %s WHERE status_page_id = %s",
            (ids["public"], ids["private"]),
            "status_incident_affected_component_ids_fkey",
        ),
        (
            "UPDATE maintenance_window_component SET component_id = %s"
            " WHERE maintenance_window_id = %s",
            (other.id, ids["window"]),
            "maintenance_window_component_same_page",
        ),
    ):
        refused(app, statement, params, constraint)
    with pytest.raises(pg_errors.IntegrityError), app.transaction():
        app.execute("UPDATE status_page SET id = 'elsewhere' WHERE id = %s", (ids["private"],))


def test_temporary_tables_do_not_fool_the_same_page_checks(conn: Conn, app: Conn) -> None:
    """statusdb_app shadows status_page_component and maintenance_window with temporary tables
    (search_path = pg_temp, public), so that 0002's same-page triggers, which run as the caller,
    accept another page's component in a subscriber filter or a maintenance window."""
    ids = world(conn)
    other = components.create(conn, ids["public"], name="Other")
    conn.commit()
    app.execute("CREATE TEMPORARY TABLE status_page_component (id text, status_page_id text)")
    app.execute("CREATE TEMPORARY TABLE maintenance_window (id text, status_page_id text)")
    app.execute(
        "INSERT INTO pg_temp.status_page_component VALUES (%s, %s)", (other.id, ids["private"])
    )
    app.execute(
        "INSERT INTO pg_temp.maintenance_window VALUES (%s, %s)", (ids["window"], ids["private"])
    )
    app.execute("SET search_path = pg_temp, public")
    app.commit()
    for statement, params, constraint in (
        (
            "INSERT INTO public.status_subscriber (status_page_id, channel, destination,"
            " component_ids) VALUES (%s, 'WEBHOOK', 'https://spy.example/', ARRAY[%s])",
            (ids["private"], other.id),
            "status_subscriber_component_ids_fkey",
        ),
        (
            "UPDATE public.status_incident SET affected_component_ids = ARRAY[%s]"
            " WHERE status_page_id = %s",
            (other.id, ids["private"]),
            "status_incident_affected_component_ids_fkey",
        ),
        (
            "INSERT INTO public.maintenance_window_component VALUES (%s, %s)",
            (ids["window"], other.id),
            "maintenance_window_component_same_page",
        ),
    ):
        refused(app, statement, params, constraint)
