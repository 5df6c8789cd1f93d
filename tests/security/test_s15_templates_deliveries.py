"""Incident templates and delivery bookkeeping (migration 0019) against hostile SQL clients.

Every role that can connect is an adversary: statusdb_app (possibly scoped to one team) writes
templates and delivery attempts with plain SQL, without statusdb's Python validation.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from factories import new_page, two_pages
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, incident_templates, subscribers, teams, tenancy
from statusdb.errors import InvalidInput
from statusdb.workers import deliveries

Conn = psycopg.Connection[TupleRow]


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    """A connection as a member of statusdb_app."""
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as connection:
        yield connection


def _two_teams(conn: Conn) -> tuple[str, str, str, str]:
    """(our team, our subscriber, their team's subscriber, their template), committed."""
    ours, theirs = teams.create(conn, name="Ours"), teams.create(conn, name="Theirs")
    our_page = new_page(conn, ours.id, slug="ours")
    their_page = new_page(conn, theirs.id, slug="theirs")
    mine = subscribers.subscribe(
        conn, our_page.id, channel="WEBHOOK", destination="https://hooks.example.com/ours"
    ).subscriber.id
    victim = subscribers.subscribe(
        conn, their_page.id, channel="WEBHOOK", destination="https://hooks.example.com/theirs"
    ).subscriber.id
    template = incident_templates.create(
        conn, their_page.id, name="T", title="t", message="m", severity="MINOR"
    ).id
    deliveries.record(conn, "their-key", victim, "FAILED_TEMPORARY", error="secret detail")
    conn.commit()
    return ours.id, mine, victim, template


def test_a_template_cannot_name_another_page_s_component_from_sql(app: Conn, conn: Conn) -> None:
    """A SQL writer points a template (insert; update of ids or page) at another page's part."""
    world = two_pages(conn)
    conn.commit()
    insert = (
        "INSERT INTO status_incident_template (status_page_id, name, title, message, severity,"
        " affected_component_ids) VALUES (%s, %s, 't', 'm', 'MINOR', ARRAY[%s])"
    )
    with pytest.raises(pg_errors.ForeignKeyViolation), app.transaction():
        app.execute(insert, (world.page_id, "x", world.foreign))
    app.execute(insert, (world.page_id, "ok", world.api))
    for statement, param in (
        ("UPDATE status_incident_template SET affected_component_ids = ARRAY[%s]", world.foreign),
        ("UPDATE status_incident_template SET status_page_id = %s", world.other_page_id),
    ):
        with pytest.raises(pg_errors.ForeignKeyViolation), app.transaction():
            app.execute(statement, (param,))


def test_a_deleted_component_leaves_no_dangling_id_in_templates(conn: Conn) -> None:
    """A component is deleted and its id stays in a template, to resurface in new incidents."""
    world = two_pages(conn)
    template = incident_templates.create(
        conn,
        world.page_id,
        name="T",
        title="t",
        message="m",
        severity="MINOR",
        affected_component_ids=[world.api, world.web],
    )
    components.delete(conn, world.api)
    assert incident_templates.get(conn, template.id).affected_component_ids == (world.web,)


def test_a_scoped_session_cannot_read_or_change_another_team_s_templates(
    app: Conn, conn: Conn
) -> None:
    """A session scoped to one team reads, edits or deletes another team's templates with SQL."""
    ours, _, _, their_template = _two_teams(conn)
    tenancy.set_team(app, ours)
    assert app.execute("SELECT id FROM status_incident_template").fetchall() == []
    assert app.execute("UPDATE status_incident_template SET title = 'pwned'").rowcount == 0
    assert app.execute("DELETE FROM status_incident_template").rowcount == 0
    app.commit()
    assert incident_templates.get(conn, their_template).title == "t"


def test_a_scoped_session_cannot_read_or_record_another_team_s_deliveries(
    app: Conn, conn: Conn
) -> None:
    """A scoped session reads other teams' deliveries or fails their subscribers to disable them."""
    ours, mine, victim, _ = _two_teams(conn)
    tenancy.set_team(app, ours)
    assert app.execute("SELECT subscriber_id FROM delivery_attempt").fetchall() == []
    assert app.execute("SELECT subscriber_id FROM delivery_log").fetchall() == []
    assert deliveries.list_for_subscriber(app, victim) == []
    for key in ("a", "b", "c"):
        with pytest.raises(pg_errors.ForeignKeyViolation), app.transaction():
            app.execute(
                "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome)"
                " VALUES (%s, %s, 1, 'FAILED_PERMANENT')",
                (key, victim),
            )
    assert (
        deliveries.record_many(
            app, [deliveries.NewAttempt(k, victim, "FAILED_PERMANENT") for k in "abc"]
        )
        == 0
    )
    assert deliveries.claim_retries(app, worker_id="w") == []
    deliveries.record(app, "k", mine, "DELIVERED")  # its own team: fine
    app.commit()
    assert deliveries.subscriber_health(conn, victim).is_active
    assert deliveries.subscriber_health(conn, victim).consecutive_permanent_failures == 0


def test_the_app_cannot_rewrite_the_delivery_log(app: Conn, conn: Conn) -> None:
    """A SQL writer rewrites outcomes (hiding failures), forges attempt numbers or retry times."""
    _, mine, _, _ = _two_teams(conn)
    deliveries.record(conn, "k", mine, "FAILED_PERMANENT", error="HTTP 410")
    conn.commit()
    for statement in (
        "UPDATE delivery_attempt SET outcome = 'DELIVERED', error = NULL"
        " WHERE outcome = 'FAILED_PERMANENT'",
        "UPDATE delivery_attempt SET attempt = 1000",
        "UPDATE delivery_attempt SET attempted_at = now() - interval '1 year'",
        "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome,"
        " next_attempt_at) SELECT 'x', id, 1, 'FAILED_TEMPORARY', now() FROM status_subscriber",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege), app.transaction():
            app.execute(statement)
    # Whatever number an INSERT claims, the database numbers it: a first temporary failure
    # cannot pass for an exhausted one (which would count towards deactivation).
    app.execute(
        "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome)"
        " VALUES ('y', %s, 8, 'FAILED_TEMPORARY')",
        (mine,),
    )
    row = app.execute(
        "SELECT attempt, next_attempt_at IS NOT NULL FROM delivery_attempt"
        " WHERE notification_key = 'y'"
    ).fetchone()
    assert row == (1, True)
    assert deliveries.subscriber_health(app, mine).consecutive_permanent_failures == 1


def test_delivery_rows_are_bounded_for_every_writer(app: Conn, conn: Conn) -> None:
    """A SQL writer stores megabytes of error text, payload or lease owner per attempt."""
    _, mine, _, _ = _two_teams(conn)
    insert = (
        "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome, error,"
        " payload) VALUES (%s, %s, 1, 'FAILED_TEMPORARY', %s, %s::jsonb)"
    )
    for key, error, payload in (
        ("k", "x" * 1_001, None),
        ("k", "503", '{"x": "' + "y" * 20_000 + '"}'),
        ("k" * 201, "503", None),
    ):
        with pytest.raises(pg_errors.CheckViolation), app.transaction():
            app.execute(insert, (key, mine, error, payload))
    made = deliveries.record(app, "k", mine, "FAILED_TEMPORARY", error="503")
    with pytest.raises(pg_errors.CheckViolation), app.transaction():
        app.execute(
            "UPDATE delivery_attempt SET lease_owner = repeat('w', 201),"
            " lease_expires_at = now() WHERE id = %s",
            (made.id,),
        )
    with pytest.raises(InvalidInput, match="at most 10000"):
        deliveries.record_many(
            app,
            [deliveries.NewAttempt("k", mine, "DELIVERED")] * (deliveries.BATCH_MAX + 1),
        )
