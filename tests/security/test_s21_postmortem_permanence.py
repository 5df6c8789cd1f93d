"""Attack class: a published postmortem is replaced (issue 26, item 4).

In one transaction the app deleted a status incident (its postmortem revisions cascaded),
re-inserted it with the same id, created_at and timeline, added revision 1 with new text and
marked the new incident_created event NOTIFIED: the published text was gone without trace. Since
0025 deleting a published postmortem's revisions (directly, or through its incident or page) is
refused for every role but the owner's members, and an owner's deletion leaves an audit record
(status_incident_postmortem_deletion, owner only).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import pages, status_incidents, teams
from statusdb.errors import Conflict

Conn = psycopg.Connection[TupleRow]


def _published(owner: Conn) -> tuple[str, str]:
    team = teams.create(owner, name="T")
    page = pages.create(
        owner, team_id=team.id, name="P", slug=f"pm-{uuid.uuid4().hex[:8]}", created_by_id="u"
    ).page
    incident = status_incidents.create(owner, page.id, title="Down", severity="MAJOR", message="m")
    status_incidents.add_update(owner, incident.id, status="RESOLVED", message="ok")
    status_incidents.publish_postmortem(owner, incident.id, body="A disk.", written_by_id="u")
    owner.commit()
    return page.id, incident.id


def test_app_cannot_replace_a_published_postmortem(dsn: str, app_login: str) -> None:
    """The app deletes the incident, re-inserts it with the same id and timeline and publishes
    revision 1 again with other text: refused; the published text stays."""
    with psycopg.connect(dsn) as owner:
        page_id, incident_id = _published(owner)
        with psycopg.connect(make_conninfo(dsn, user=app_login)) as app:
            with pytest.raises(pg_errors.IntegrityConstraintViolation):
                app.execute(
                    """WITH gone AS (DELETE FROM status_incident WHERE id = %(id)s RETURNING *)
                       INSERT INTO status_incident (id, status_page_id, title, message, severity,
                                                    status, created_at, updated_at, resolved_at,
                                                    updates)
                       SELECT id, status_page_id, title, message, severity, status, created_at,
                              updated_at, resolved_at, updates FROM gone""",
                    {"id": incident_id},
                )
            app.rollback()
            with pytest.raises(pg_errors.IntegrityConstraintViolation):
                app.execute("DELETE FROM status_incident WHERE id = %s", (incident_id,))
            app.rollback()
            # Nor through the page's cascade, nor through statusdb (translated).
            with pytest.raises(pg_errors.IntegrityConstraintViolation):
                app.execute("DELETE FROM status_page WHERE id = %s", (page_id,))
            app.rollback()
            with pytest.raises(Conflict, match="postmortem"):
                status_incidents.delete(app, incident_id)
            app.rollback()

            # The whole attack, as the issue gives it, ends at its first statement.
            def replace() -> None:
                with app.transaction():
                    app.execute("DELETE FROM status_incident WHERE id = %s", (incident_id,))
                    app.execute(
                        "INSERT INTO status_incident_postmortem (status_incident_id, body,"
                        " written_by_id) VALUES (%s, 'Nothing happened.', 'u')",
                        (incident_id,),
                    )
                    app.execute(
                        "UPDATE notification_event SET outcome = 'NOTIFIED',"
                        " notified_at = now() WHERE status_incident_id = %s",
                        (incident_id,),
                    )

            with pytest.raises(pg_errors.IntegrityConstraintViolation):
                replace()
            app.rollback()
        revisions = status_incidents.postmortem_revisions(owner, incident_id)
        assert [(r.revision, r.body) for r in revisions] == [(1, "A disk.")]
        deletions = owner.execute("SELECT count(*) FROM status_incident_postmortem_deletion")
        assert deletions.fetchone() == (0,)


def test_an_owner_deletion_leaves_an_audit_record(dsn: str, app_login: str) -> None:
    """The owner may delete (a page, an incident): the revisions' text is kept in the audit
    table, which no client role can read or write."""
    with psycopg.connect(dsn) as owner:
        page_id, incident_id = _published(owner)
        owner.execute("DELETE FROM status_page WHERE id = %s", (page_id,))
        owner.commit()
        rows = owner.execute(
            "SELECT status_incident_id, status_page_id, deleted_by, revisions -> 0 ->> 'body'"
            " FROM status_incident_postmortem_deletion"
        ).fetchall()
        assert rows == [(incident_id, page_id, "postgres", "A disk.")]
        owner.commit()
        with psycopg.connect(make_conninfo(dsn, user=app_login)) as app:
            for statement in (
                "SELECT * FROM status_incident_postmortem_deletion",
                "DELETE FROM status_incident_postmortem_deletion",
            ):
                with pytest.raises(pg_errors.InsufficientPrivilege):
                    app.execute(statement.encode())
                app.rollback()
