"""`statusdb demo`: the story of an incident, told by a status page.

A team's page with four components; an incident opens and the components it maps to turn to
outage by themselves; maintenance starts on another component; the incident resolves; the
maintenance ends. The page is printed as a reader would see it at each step. Each step is
committed, as a real service would; the demo first removes what an earlier run left.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from statusdb import components, incidents, maintenance, pages, status, status_incidents, teams
from statusdb.pages import NewComponent
from statusdb.types import ComponentStatus, CreateMaintenanceWindowInput
from statusdb.views import PageView, page_view

SLUG = "acme-cloud"
TEAM_NAME = "Acme platform team (statusdb demo)"

_LABELS: dict[ComponentStatus, str] = {
    "MAJOR_OUTAGE": "[!!] Major outage",
    "PARTIAL_OUTAGE": "[! ] Partial outage",
    "DEGRADED_PERFORMANCE": "[~ ] Degraded performance",
    "UNDER_MAINTENANCE": "[# ] Under maintenance",
    "OPERATIONAL": "[ok] Operational",
}


def _clock(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%H:%M:%S UTC")


def render(view: PageView) -> str:
    """A page as a person reads it, in plain text."""
    page = view.page
    lines = [
        f"{page.name}  (/{page.slug}, {'public' if page.is_public else 'private'})",
        f"Overall: {_LABELS[page.overall_status]}",
        "",
    ]
    names = {c.id: c.name for c in page.components}
    for component in page.components:
        lines.append(f"  {_LABELS[component.current_status]:<28} {component.name}")
    if view.active_incidents:
        lines.append("")
        lines.append("Active incidents:")
        for incident in view.active_incidents:
            affected = ", ".join(names.get(i, i) for i in incident.affected_component_ids)
            lines.append(f"  [{incident.severity}] {incident.title} ({affected})")
            for update in incident.updates:
                lines.append(
                    f"      {_clock(update.timestamp)}  {update.status.title()}: {update.message}"
                )
    if view.upcoming_maintenance:
        lines.append("")
        lines.append("Maintenance:")
        for window in view.upcoming_maintenance:
            covered = ", ".join(names.get(i, i) for i in window.component_ids)
            lines.append(
                f"  {window.title} ({covered}): {_clock(window.start_time)} -> "
                f"{_clock(window.end_time)}, {window.status.replace('_', ' ').lower()}"
            )
    return "\n".join(lines)


def _show(conn: psycopg.Connection[Any], step: str) -> None:
    view = page_view(conn, SLUG)
    assert view is not None
    print(f"\n=== {step} ===")
    print(render(view))


def _clean_previous_run(conn: psycopg.Connection[Any]) -> None:
    for team in teams.list_all(conn):
        if team.name != TEAM_NAME:
            continue
        for page in pages.list_for_team(conn, team.id):
            pages.delete(conn, page.id)
        for incident in incidents.list_for_team(conn, team.id, limit=1000):
            incidents.delete(conn, incident.id)
        teams.delete(conn, team.id)
    conn.commit()


def run(conn: psycopg.Connection[Any]) -> None:
    """Tell the demo story on an already migrated database."""
    _clean_previous_run(conn)
    team = teams.create(conn, name=TEAM_NAME)
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme Cloud Status",
        slug=SLUG,
        created_by_id="demo",
        is_public=True,
        description="Live status of Acme Cloud",
        components=[
            NewComponent(name="API", team_id=team.id, service_identifier="api"),
            NewComponent(name="Database", team_id=team.id, service_identifier="postgres"),
            NewComponent(name="Web app", team_id=team.id),
            NewComponent(name="Documentation"),
        ],
    )
    page = created.page
    by_name = {c.name: c for c in components.list_for_page(conn, page.id)}
    conn.commit()
    _show(conn, "1. A quiet day")

    outage = incidents.create(
        conn,
        team.id,
        title="Primary database unreachable",
        priority="CRITICAL",
        service_identifier="postgres",
    )
    published = status_incidents.create(
        conn,
        page.id,
        title="Database outage",
        severity="CRITICAL",
        message="We are investigating failed requests to the database.",
        affected_component_ids=[by_name["Database"].id, by_name["Web app"].id],
        incident_id=outage.id,
    )
    conn.commit()
    _show(conn, "2. A CRITICAL incident opens on service 'postgres'")

    now = dt.datetime.now(dt.UTC)
    maintenance.create(
        conn,
        page.id,
        CreateMaintenanceWindowInput(
            component_ids=(by_name["API"].id,),
            title="API gateway upgrade",
            start_time=now - dt.timedelta(seconds=1),
            end_time=now + dt.timedelta(minutes=30),
        ),
        created_by_id="demo",
    )
    maintenance.advance(conn, now)
    status_incidents.add_update(
        conn, published.id, status="IDENTIFIED", message="A failed disk; failing over."
    )
    conn.commit()
    _show(conn, "3. Maintenance starts on the API while the incident goes on")

    incidents.resolve(conn, outage.id)
    status_incidents.add_update(
        conn, published.id, status="RESOLVED", message="Failover complete; all requests succeed."
    )
    conn.commit()
    _show(conn, "4. The incident is resolved")

    maintenance.advance(conn, now + dt.timedelta(minutes=31))
    conn.commit()
    _show(conn, "5. The maintenance window ends")

    changes = sum(len(status.changes_for_component(conn, c.id)) for c in by_name.values())
    drift = status.recompute(conn)
    print(f"\n{changes} status changes logged; drift from a from-scratch derivation: {len(drift)}")
