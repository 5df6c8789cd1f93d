"""Incident templates (migration 0019) and status_incidents.create_from_template."""

from __future__ import annotations

import psycopg
import pytest
from factories import APP_LOGIN, new_page, two_pages
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, incident_templates, status_incidents, teams, tenancy
from statusdb.errors import Conflict, InvalidInput, NotFound

Conn = psycopg.Connection[TupleRow]


def test_crud_and_create_from_template(conn: Conn) -> None:
    world = two_pages(conn)
    made = incident_templates.create(
        conn,
        world.page_id,
        name="API down",
        title="API unavailable",
        message="We are investigating errors on the API.",
        severity="MAJOR",
        affected_component_ids=[world.api],
    )
    assert made.affected_component_ids == (world.api,)
    assert incident_templates.get(conn, made.id) == made
    second = incident_templates.create(
        conn, world.page_id, name="DB slow", title="Slow DB", message="m", severity="MINOR"
    )
    listed = incident_templates.list_for_page(conn, world.page_id)
    assert [t.name for t in listed] == ["API down", "DB slow"]
    assert incident_templates.list_for_page(conn, world.page_id, limit=1, after="API down") == [
        second
    ]

    # Duplicate name on the page: Conflict; the same name on another page is fine.
    with pytest.raises(Conflict, match="already has an incident template"), conn.transaction():
        incident_templates.create(
            conn, world.page_id, name="API down", title="t", message="m", severity="MINOR"
        )
    incident_templates.create(
        conn, world.other_page_id, name="API down", title="t", message="m", severity="MINOR"
    )
    with pytest.raises(NotFound, match="no status page"):
        incident_templates.create(
            conn, "missing", name="n", title="t", message="m", severity="MINOR"
        )
    with pytest.raises(InvalidInput, match="same status page"), conn.transaction():
        incident_templates.create(
            conn,
            world.page_id,
            name="x",
            title="t",
            message="m",
            severity="MINOR",
            affected_component_ids=[world.foreign],
        )
    with pytest.raises(InvalidInput, match="severity"):
        incident_templates.create(  # type: ignore[call-overload]
            conn, world.page_id, name="x", title="t", message="m", severity="HUGE"
        )

    changed = incident_templates.update(
        conn, made.id, severity="CRITICAL", affected_component_ids=[world.api, world.web]
    )
    assert (changed.severity, changed.title) == ("CRITICAL", "API unavailable")
    assert changed.affected_component_ids == (world.api, world.web)
    with pytest.raises(Conflict), conn.transaction():
        incident_templates.update(conn, second.id, name="API down")
    with pytest.raises(NotFound, match="no incident template"):
        incident_templates.update(conn, "missing", title="t")

    # From the template, as is, and with overrides; atomic (one INSERT).
    incident = status_incidents.create_from_template(conn, made.id)
    assert (incident.status_page_id, incident.title, incident.severity, incident.status) == (
        world.page_id,
        "API unavailable",
        "CRITICAL",
        "INVESTIGATING",
    )
    assert incident.message == "We are investigating errors on the API."
    assert [u.message for u in incident.updates] == [incident.message]
    assert incident.affected_component_ids == (world.api, world.web)
    custom = status_incidents.create_from_template(
        conn,
        made.id,
        title="API errors in eu-west",
        message="Errors in one region.",
        status="IDENTIFIED",
        affected_component_ids=[world.web],
    )
    assert (custom.title, custom.message, custom.status) == (
        "API errors in eu-west",
        "Errors in one region.",
        "IDENTIFIED",
    )
    assert custom.affected_component_ids == (world.web,)
    assert custom.updates[0].status == "IDENTIFIED"
    with pytest.raises(InvalidInput, match="same status page"), conn.transaction():
        status_incidents.create_from_template(conn, made.id, affected_component_ids=[world.foreign])
    with pytest.raises(NotFound, match="no incident template"):
        status_incidents.create_from_template(conn, "missing")

    # A deleted component leaves the templates; deleting a template keeps its incidents.
    components.delete(conn, world.api)
    assert incident_templates.get(conn, made.id).affected_component_ids == (world.web,)
    incident_templates.delete(conn, made.id)
    with pytest.raises(NotFound):
        incident_templates.delete(conn, made.id)
    assert status_incidents.get(conn, incident.id).title == "API unavailable"


def test_templates_are_plain_rows_with_the_same_rules_from_sql(conn: Conn) -> None:
    world = two_pages(conn)
    conn.execute(
        """INSERT INTO status_incident_template (status_page_id, name, title, message, severity,
                                                 affected_component_ids)
           VALUES (%s, 'Outage', 'Down', 'Looking into it', 'CRITICAL', ARRAY[%s])""",
        (world.page_id, world.api),
    )
    (template_id,) = conn.execute("SELECT id FROM status_incident_template").fetchone() or ("",)
    incident = status_incidents.create_from_template(conn, template_id)
    assert incident.affected_component_ids == (world.api,)
    # Another page's component: refused on INSERT and on UPDATE (of the ids or the page).
    for statement, params in (
        (
            "UPDATE status_incident_template SET affected_component_ids = ARRAY[%s]",
            (world.foreign,),
        ),
        ("UPDATE status_incident_template SET status_page_id = %s", (world.other_page_id,)),
    ):
        with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
            conn.execute(statement, params)
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute(
            "UPDATE status_incident_template SET message = repeat('x', 10001)",
        )


def test_templates_follow_the_team_scope(conn: Conn, dsn: str, app_login: str) -> None:
    ours = teams.create(conn, name="Ours")
    theirs = teams.create(conn, name="Theirs")
    our_page = new_page(conn, ours.id, slug="ours")
    their_page = new_page(conn, theirs.id, slug="theirs")
    their_template = incident_templates.create(
        conn, their_page.id, name="T", title="t", message="m", severity="MINOR"
    )
    conn.commit()
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN)) as app:
        tenancy.set_team(app, ours.id)
        incident_templates.create(
            app, our_page.id, name="Mine", title="t", message="m", severity="MINOR"
        )
        assert incident_templates.list_for_page(app, their_page.id) == []
        with pytest.raises(NotFound):
            incident_templates.get(app, their_template.id)
        with pytest.raises(NotFound):
            status_incidents.create_from_template(app, their_template.id)
        with pytest.raises(NotFound):
            incident_templates.update(app, their_template.id, title="mine now")
        assert [name for (name,) in app.execute("SELECT name FROM status_incident_template")] == [
            "Mine"
        ]
