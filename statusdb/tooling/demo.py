"""`statusdb demo`: the story of an incident, told by a status page.

A team's page with four components; an incident opens and the components it maps to turn to
outage by themselves; maintenance starts on another component; the incident resolves; the
maintenance ends. The page is printed as a reader would see it at each step, under the
repository calls that made it change. Each step is committed, as a real service would; the demo
first removes what an earlier run left. Last, the page's 90-day uptime bars (`uptime.daily`),
components' and groups', over a few weeks of history loaded at the start as a backfill would
load it.
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
    uptime,
)
from statusdb.domain.types import ComponentStatus, CreateMaintenanceWindowInput
from statusdb.pages import NewComponent
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


#: One character per day on the bars.
_GLYPHS: dict[ComponentStatus, str] = {
    "MAJOR_OUTAGE": "X",
    "PARTIAL_OUTAGE": "x",
    "DEGRADED_PERFORMANCE": "~",
    "UNDER_MAINTENANCE": "m",
    "OPERATIONAL": "|",
}
NO_DATA = " "
BAR_LEGEND = (
    "| operational  ~ degraded  x partial outage  X major outage  m maintenance  (blank) no data"
)


def render_bars(report: uptime.PageDailyUptime) -> str:
    """Uptime bars in plain text: a character per day (its worst status), oldest first; the
    components, then the groups as a tree (a subgroup indented under its parent)."""
    rows: list[tuple[str, uptime.DailyUptime | uptime.GroupDailyUptime]] = [
        (c.name, c) for c in report.components
    ]

    def tree(parent_id: str | None, depth: int) -> None:
        for group in report.groups:
            if group.parent_id == parent_id:
                rows.append((f"{'  ' * depth}{group.name} (group)", group))
                tree(group.group_id, depth + 1)

    tree(None, 0)
    width = max((len(label) for label, _ in rows), default=0)
    lines = [f"{report.first_day} .. {report.last_day} ({report.time_zone} days)"]
    for label, series in rows:
        bar = "".join(
            _GLYPHS[day.worst_status] if day.worst_status is not None else NO_DATA
            for day in series.days
        )
        shown = "no data" if series.uptime is None else f"{series.uptime:.3%}"
        lines.append(f"{label:<{width}} {bar} {shown}")
    lines.append(BAR_LEGEND)
    return "\n".join(lines)


#: The backfilled history: (component, days ago, hours lasting, status).
_HISTORY: list[tuple[str, int, float, ComponentStatus]] = [
    ("Documentation", 61, 26.0, "DEGRADED_PERFORMANCE"),
    ("API", 40, 3.0, "PARTIAL_OUTAGE"),
    ("Database", 33, 2.0, "UNDER_MAINTENANCE"),
    ("Database", 12, 0.8, "MAJOR_OUTAGE"),
    ("Web app", 12, 1.5, "PARTIAL_OUTAGE"),
]


def _backfill(conn: psycopg.Connection[Any], page_id: str, by_name: dict[str, str]) -> None:
    """A few weeks of history, loaded as a migration from another tool would: plain SQL, in
    time order, each component's chain ending OPERATIONAL (its status now)."""
    conn.execute(
        """UPDATE status_page_component
           SET created_at = CASE WHEN name = 'Web app' THEN now() - interval '30 days'
                                 ELSE now() - interval '120 days' END
           WHERE status_page_id = %s""",
        (page_id,),
    )
    for name, days_ago, hours, bad in _HISTORY:
        for previous, new, offset in (("OPERATIONAL", bad, 0.0), (bad, "OPERATIONAL", hours)):
            conn.execute(
                """INSERT INTO status_change (status_page_id, component_id, previous_status,
                                              new_status, cause, changed_at, notified_at,
                                              outcome)
                   VALUES (%(page)s, %(component)s, %(previous)s, %(new)s, 'MANUAL',
                           date_trunc('hour', now()) - %(ago)s * interval '1 day'
                               + %(offset)s * interval '1 hour',
                           now(), 'NOTIFIED')""",
                {
                    "page": page_id,
                    "component": by_name[name],
                    "previous": previous,
                    "new": new,
                    "ago": days_ago,
                    "offset": offset,
                },
            )
    conn.execute(
        """INSERT INTO status_incident (status_page_id, title, severity, status,
                                        affected_component_ids, created_at, resolved_at)
           VALUES (%s, 'Checkout errors', 'MAJOR', 'RESOLVED', %s,
                   date_trunc('hour', now()) - interval '12 days',
                   date_trunc('hour', now()) - interval '12 days' + interval '90 minutes')""",
        (page_id, [by_name["Database"], by_name["Web app"]]),
    )


def _backfill_groups(
    conn: psycopg.Connection[Any], page_id: str, members: dict[str, list[str]]
) -> None:
    """The groups' part of the backfill: created 120 days ago, their status log (0020) the
    worst of their members over the backfilled history (which never overlaps within a group,
    so the worst is each member's own outage), as the roll-up would have logged it."""
    for group_id, names in members.items():
        conn.execute(
            "UPDATE component_group SET created_at = now() - interval '120 days' WHERE id = %s",
            (group_id,),
        )
        mine = sorted((h for h in _HISTORY if h[0] in names), key=lambda h: -h[1])
        for _, days_ago, hours, bad in mine:
            for previous, new, offset in (("OPERATIONAL", bad, 0.0), (bad, "OPERATIONAL", hours)):
                conn.execute(
                    """INSERT INTO component_group_status_change (status_page_id, group_id,
                                                                  previous_status, new_status,
                                                                  changed_at)
                       VALUES (%(page)s, %(group)s, %(previous)s, %(new)s,
                               date_trunc('hour', now()) - %(ago)s * interval '1 day'
                                   + %(offset)s * interval '1 hour')""",
                    {
                        "page": page_id,
                        "group": group_id,
                        "previous": previous,
                        "new": new,
                        "ago": days_ago,
                        "offset": offset,
                    },
                )


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
        time_zone="Europe/Berlin",
        components=[
            NewComponent(name="API", team_id=team.id, service_identifier="api"),
            NewComponent(name="Database", team_id=team.id, service_identifier="postgres"),
            NewComponent(name="Web app", team_id=team.id),
            NewComponent(name="Documentation"),
        ],
    )
    page = created.page
    by_name = {c.name: c for c in components.list_for_page(conn, page.id)}
    _backfill(conn, page.id, {name: c.id for name, c in by_name.items()})
    core = groups.create(conn, page.id, name="Core platform", display_order=1)
    data = groups.create(conn, page.id, name="Data", parent_id=core.id)
    groups.assign(conn, by_name["API"].id, core.id)
    groups.assign(conn, by_name["Database"].id, data.id)
    _backfill_groups(conn, page.id, {core.id: ["API", "Database"], data.id: ["Database"]})
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

    bars = uptime.daily(conn, page.id, days=90)
    print("\n=== 6. The last 90 days, as uptime bars ===")
    print("  >>> uptime.daily(conn, page.id, days=90)  # one query; days of the page's zone\n")
    print("\n".join(f"    {line}" for line in render_bars(bars).splitlines()))
    worst = sorted(
        (
            (component.name, day)
            for component in bars.components
            for day in component.days
            if day.worst_status not in (None, "OPERATIONAL")
        ),
        key=lambda item: item[1].day,
    )
    for name, day in worst:
        incidents_shown = ", ".join(f"{i.title} ({i.severity})" for i in day.incidents)
        print(
            f"    {day.day} {name}: {day.worst_status}, uptime "
            f"{'-' if day.uptime is None else f'{day.uptime:.3%}'}"
            + (f"; incidents: {incidents_shown}" if incidents_shown else "")
        )
    print()
    _say(
        "The history before today was backfilled at the start (plain SQL, as a migration from "
        "another tool would load it), the groups' log with it; Web app was added 30 days ago: "
        "no data before, not 100 %. A group's bar is its own status log: the worst of its "
        "members at each moment (Core platform shows API's and Data's). Days are calendar "
        "days of the page's time zone (Europe/Berlin), local midnight to "
        "midnight, 23 or 25 hours when the clocks change."
    )

    changes = sum(len(status.changes_for_component(conn, c.id)) for c in by_name.values())
    drift = status.recompute(conn)
    print()
    _say(
        f"{changes} status changes were logged (status.changes_for_component), each also "
        "announced on the live feed (statusdb.feed) and queued for subscribers "
        "(statusdb.workers.outbox)."
    )
    _say(
        f"Drift: {len(drift)}. status.recompute(conn) derives every component's status again "
        "from scratch (incidents, maintenance, manual statuses) and lists the components whose "
        "stored status differs: 'drift'. 0 means the triggers kept every status exact; drift "
        "only appears after loading data with triggers off, and status.recompute(conn, "
        "repair=True) fixes it."
    )
