"""The page read model: one round trip, the private-page token rule, no internals."""

from __future__ import annotations

from typing import Any

import attrs
import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import components, incidents, pages, teams, views
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]


class CountingCursor(psycopg.Cursor[Any]):
    """Counts statements sent to the server (each execute is one round trip)."""

    executed = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        type(self).executed += 1
        return super().execute(*args, **kwargs)


def seed_page(conn: Conn, *, n_components: int, is_public: bool = True) -> pages.CreatedPage:
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme Status",
        slug="acme",
        created_by_id="user-1",
        is_public=is_public,
        components=[
            NewComponent(name=f"Component {n:02d}", team_id=team.id, service_identifier=f"s{n}")
            for n in range(n_components)
        ],
    )
    incident = incidents.create(
        conn, team.id, title="db down", priority="CRITICAL", service_identifier="s1"
    )
    comps = components.list_for_page(conn, created.page.id)
    for n in range(5):
        conn.execute(
            """INSERT INTO status_incident (status_page_id, incident_id, title, severity, status,
                                            affected_component_ids, updates)
               VALUES (%s, %s, %s, 'MAJOR', 'INVESTIGATING', %s,
                       jsonb_build_array(jsonb_build_object('timestamp', now(),
                           'status', 'INVESTIGATING', 'message', 'looking')))""",
            (created.page.id, incident.id, f"Incident {n}", [comps[n % len(comps)].id]),
        )
    for n in range(3):
        window = conn.execute(
            """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                                               created_by_id)
               VALUES (%s, %s, now() + %s * interval '1 day', now() + %s * interval '1 day'
                       + interval '1 hour', 'user-1')
               RETURNING id""",
            (created.page.id, f"Upgrade {n}", n + 1, n + 1),
        ).fetchone()
        assert window is not None
        conn.execute(
            "INSERT INTO maintenance_window_component VALUES (%s, %s)", (window[0], comps[0].id)
        )
    conn.commit()
    return created


def test_page_view_in_one_round_trip(dsn: str, conn: Conn) -> None:
    seed_page(conn, n_components=50)
    with psycopg.connect(dsn, cursor_factory=CountingCursor) as reader:
        CountingCursor.executed = 0
        view = views.page_view(reader, "acme")
        assert CountingCursor.executed == 1
    assert view is not None
    assert len(view.page.components) == 50
    assert [c.name for c in view.page.components] == sorted(c.name for c in view.page.components)
    assert len(view.active_incidents) == 5
    assert all(len(i.updates) == 1 for i in view.active_incidents)
    assert len(view.upcoming_maintenance) == 3
    assert view.page.overall_status == "MAJOR_OUTAGE"
    assert view.page.updated_at.tzinfo is not None


def test_overall_status_is_operational_without_components(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    pages.create(
        conn, team_id=team.id, name="Empty", slug="empty", created_by_id="u", is_public=True
    )
    view = views.page_view(conn, "empty")
    assert view is not None
    assert view.page.components == ()
    assert view.page.overall_status == "OPERATIONAL"


def test_private_page_needs_its_token_and_hides_like_unknown_slug(conn: Conn) -> None:
    created = seed_page(conn, n_components=2, is_public=False)
    token = created.access_token
    assert token is not None
    assert views.page_view(conn, "acme") is None
    assert views.page_view(conn, "acme", token="wrong") is None
    assert views.page_view(conn, "no-such-page", token=token) is None
    assert views.page_view(conn, "acme", token=token) is not None
    assert pages.check_access_token(conn, "acme", token)
    assert not pages.check_access_token(conn, "acme", "wrong")
    new_token = pages.rotate_access_token(conn, created.page.id)
    assert views.page_view(conn, "acme", token=token) is None
    assert views.page_view(conn, "acme", token=new_token) is not None
    assert not pages.check_access_token(conn, "acme", token)
    # Garbage in a slug answers like an unknown slug, never an error.
    assert views.page_view(conn, "a\x00b", token=new_token) is None
    assert views.page_view(conn, "a\ud800b", token=new_token) is None
    assert views.page_view(conn, "ACME", token=new_token) is None


def _all_field_names(cls: type) -> set[str]:
    names: set[str] = set()
    for field in attrs.fields(cls):
        names.add(field.name)
    return names


def test_view_exposes_no_internals(conn: Conn) -> None:
    created = seed_page(conn, n_components=3)
    view = views.page_view(conn, "acme")
    assert view is not None
    forbidden = {
        "team_id",
        "service_identifier",
        "incident_id",
        "created_by_id",
        "access_token_hash",
        "verify_token_hash",
    }
    for cls in (
        views.PageView,
        views.IncidentView,
        views.MaintenanceView,
        type(view.page),
        type(view.page.components[0]),
    ):
        assert not (_all_field_names(cls) & forbidden), cls
    text = repr(view)
    assert created.page.team_id not in text
    assert "user-1" not in text
    for (incident_id,) in conn.execute("SELECT id FROM incident").fetchall():
        assert incident_id not in text


@pytest.mark.parametrize("n_components", [0, 1, 7])
async def test_page_view_async(
    aconn: psycopg.AsyncConnection[Any], conn: Conn, n_components: int
) -> None:
    seed_page(conn, n_components=max(n_components, 1))
    view = await views.page_view(aconn, "acme")
    assert view is not None
    assert len(view.page.components) == max(n_components, 1)
