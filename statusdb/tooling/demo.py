"""`statusdb demo`: the story of an incident, told by a status page.

A team's page with four components; an incident opens and the components it maps to turn to
outage by themselves; maintenance starts on another component; the incident resolves; the
maintenance ends. The page is printed as a reader would see it at each step, under the
repository calls that made it change. Each step is committed, as a real service would; the demo
first removes what an earlier run left.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from typing import Any

import psycopg

from statusdb import (
    components,
    groups,
    incidents,
    maintenance,
    pages,
    status,
    status_incidents,
    teams,
)
from statusdb.pages import NewComponent
from statusdb.types import ComponentStatus, CreateMaintenanceWindowInput
from statusdb.views import GroupView, PageView, page_view

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
    if view.groups:
        lines.append("")
        lines.append("Groups (status derived from their members):")
        lines.extend(_group_lines(view.groups, depth=1))
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


def _group_lines(tree: tuple[GroupView, ...], depth: int) -> list[str]:
    lines: list[str] = []
    for group in tree:
        members = ", ".join(c.name for c in group.components)
        indent = "  " * depth
        lines.append(f"{indent}{_LABELS[group.status]:<28} {group.name}: {members or '-'}")
        lines.extend(_group_lines(group.groups, depth + 1))
    return lines


def _say(text: str) -> None:
    print(textwrap.fill(text, width=96))


def _show(conn: psycopg.Connection[Any], step: str, calls: list[str], note: str = "") -> None:
    """Print a step: its title, the repository calls that made it, what happened, the page."""
    view = page_view(conn, SLUG)
    assert view is not None
    print(f"\n=== {step} ===")
    for call in calls:
        print(f"  >>> {call}")
    if note:
        print(textwrap.fill(note, width=96, initial_indent="  ", subsequent_indent="  "))
    print(f"  >>> views.page_view(conn, {SLUG!r})  # what a reader of /{SLUG} sees:\n")
    print("\n".join(f"    {line}" if line else "" for line in render(view).splitlines()))


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
    core = groups.create(conn, page.id, name="Core platform", display_order=1)
    data = groups.create(conn, page.id, name="Data", parent_id=core.id)
    groups.assign(conn, by_name["API"].id, core.id)
    groups.assign(conn, by_name["Database"].id, data.id)
    conn.commit()
    _show(
        conn,
        "1. A quiet day",
        [
            f"team = teams.create(conn, name={TEAM_NAME!r})",
            f"pages.create(conn, team_id=team.id, slug={SLUG!r}, is_public=True, components=[",
            "    NewComponent(name='API', team_id=team.id, service_identifier='api'),",
            "    NewComponent(name='Database', team_id=team.id, service_identifier='postgres'),",
            "    NewComponent(name='Web app', team_id=team.id),",
            "    NewComponent(name='Documentation'),",
            "], ...)",
            "core = groups.create(conn, page.id, name='Core platform', display_order=1)",
            "data = groups.create(conn, page.id, name='Data', parent_id=core.id)",
            "groups.assign(conn, api.id, core.id); groups.assign(conn, database.id, data.id)",
            "conn.commit()",
        ],
        "Components with a team follow that team's incidents; Documentation is set by hand. "
        "Groups show the worst status of their members, nested groups included.",
    )

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
    _show(
        conn,
        "2. A CRITICAL incident opens on service 'postgres'",
        [
            "outage = incidents.create(conn, team.id, title='Primary database unreachable',",
            "                          priority='CRITICAL', service_identifier='postgres')",
            "status_incidents.create(conn, page.id, title='Database outage', severity='CRITICAL',",
            "                        affected_component_ids=[...], incident_id=outage.id, ...)",
            "conn.commit()",
        ],
        "Nobody set Database's status: a trigger on `incident` re-derived it (CRITICAL -> "
        "MAJOR_OUTAGE) in the same transaction. The status incident is what readers are told.",
    )

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
    _show(
        conn,
        "3. Maintenance starts on the API while the incident goes on",
        [
            "maintenance.create(conn, page.id, CreateMaintenanceWindowInput(",
            "    component_ids=(api.id,), title='API gateway upgrade',",
            "    start_time=now - 1s, end_time=now + 30min), created_by_id='demo')",
            "maintenance.advance(conn, now)  # the scheduler's step: the window starts",
            "status_incidents.add_update(conn, published.id, status='IDENTIFIED', message=...)",
            "conn.commit()",
        ],
        "advance() moved the window to IN_PROGRESS; a trigger made the API UNDER_MAINTENANCE.",
    )

    incidents.resolve(conn, outage.id)
    status_incidents.add_update(
        conn, published.id, status="RESOLVED", message="Failover complete; all requests succeed."
    )
    conn.commit()
    _show(
        conn,
        "4. The incident is resolved",
        [
            "incidents.resolve(conn, outage.id)",
            "status_incidents.add_update(conn, published.id, status='RESOLVED', message=...)",
            "conn.commit()",
        ],
        "Resolving the incident re-derived Database and Web app: back to OPERATIONAL.",
    )

    maintenance.advance(conn, now + dt.timedelta(minutes=31))
    conn.commit()
    _show(
        conn,
        "5. The maintenance window ends",
        ["maintenance.advance(conn, now + 31min)  # the window is over", "conn.commit()"],
        "The API leaves UNDER_MAINTENANCE by itself, like the others left their outage.",
    )

    changes = sum(len(status.changes_for_component(conn, c.id)) for c in by_name.values())
    drift = status.recompute(conn)
    print()
    _say(
        f"{changes} status changes were logged (status.changes_for_component), each also "
        "announced on the live feed (statusdb.feed) and queued for subscribers (statusdb.outbox)."
    )
    _say(
        f"Drift: {len(drift)}. status.recompute(conn) derives every component's status again "
        "from scratch (incidents, maintenance, manual statuses) and lists the components whose "
        "stored status differs: 'drift'. 0 means the triggers kept every status exact; drift "
        "only appears after loading data with triggers off, and status.recompute(conn, "
        "repair=True) fixes it."
    )
