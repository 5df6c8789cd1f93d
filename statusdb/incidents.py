"""Platform incidents: what the incident platform opens, escalates and resolves.

statusdb keeps only what status pages need of them. Opening, escalating or resolving an incident
re-derives the statuses of the components its team drives, in the same statement (migration
0003), so callers never update component statuses themselves.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, execute, many, one, operation
from statusdb.domain import validate
from statusdb.domain.types import (
    INCIDENT_PRIORITIES,
    INCIDENT_STATUSES,
    IncidentPriority,
    IncidentStatus,
)
from statusdb.errors import NotFound


@attrs.frozen
class Incident:
    id: str
    team_id: str
    title: str
    priority: IncidentPriority
    status: IncidentStatus
    service_identifier: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None


_row = class_row(Incident)


def _service(value: str | None) -> str | None:
    return None if value is None else validate.text("service_identifier", value, max_length=200)


@operation(retry=True)
def create(
    team_id: str,
    *,
    title: str,
    priority: IncidentPriority,
    service_identifier: str | None = None,
    status: IncidentStatus = "OPEN",
) -> Op[Incident]:
    """Open an incident for a team."""
    params = {
        "team_id": validate.identifier("team_id", team_id),
        "title": validate.text("title", title, max_length=500),
        "priority": validate.one_of("priority", priority, INCIDENT_PRIORITIES),
        "status": validate.one_of("status", status, INCIDENT_STATUSES),
        "service_identifier": _service(service_identifier),
    }
    return (yield from one("incident_create", params, _row, not_found="incident not created"))


@operation(retry=True)
def get(incident_id: str) -> Op[Incident]:
    """One incident by id."""
    params = {"id": validate.identifier("incident_id", incident_id)}
    return (
        yield from one(
            "incident_get", params, _row, not_found=f"no incident with id {incident_id!r}"
        )
    )


@operation(retry=True)
def list_for_team(
    team_id: str, *, active_only: bool = False, limit: int = 100
) -> Op[list[Incident]]:
    """A team's incidents, newest first."""
    params = {
        "team_id": validate.identifier("team_id", team_id),
        "active_only": validate.flag("active_only", active_only),
        "limit": validate.limit(limit),
    }
    return (yield from many("incident_list_for_team", params, _row))


@operation(retry=True)
def update(
    incident_id: str,
    *,
    title: str | validate.Unset = validate.UNSET,
    priority: IncidentPriority | validate.Unset = validate.UNSET,
    status: IncidentStatus | validate.Unset = validate.UNSET,
    service_identifier: str | validate.Unset | None = validate.UNSET,
) -> Op[Incident]:
    """Change an incident (escalate, acknowledge, resolve, reopen, ...)."""
    U = validate.UNSET
    params = {
        "id": validate.identifier("incident_id", incident_id),
        **validate.changes(
            title=U if title is U else validate.text("title", title, max_length=500),
            priority=U
            if priority is U
            else validate.one_of("priority", priority, INCIDENT_PRIORITIES),
            status=U if status is U else validate.one_of("status", status, INCIDENT_STATUSES),
            service_identifier=U if service_identifier is U else _service(service_identifier),
        ),
    }
    return (
        yield from one(
            "incident_update", params, _row, not_found=f"no incident with id {incident_id!r}"
        )
    )


@operation(retry=True)
def resolve(incident_id: str) -> Op[Incident]:
    """Mark an incident RESOLVED."""
    return (yield from update.body(incident_id, status="RESOLVED"))


@operation(retry=True)
def delete(incident_id: str) -> Op[None]:
    """Delete an incident; status incidents published for it stay, unlinked."""
    count = yield from execute(
        "incident_delete", {"id": validate.identifier("incident_id", incident_id)}
    )
    if count == 0:
        raise NotFound(f"no incident with id {incident_id!r}")
