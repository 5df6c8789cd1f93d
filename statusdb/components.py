"""Components of a status page: what readers see a status for.

A component with a team_id follows that team's incidents (optionally only those of one
service); without one, its status is set by hand. Either way maintenance applies to it. The
status itself is kept by the database (see migration 0003), not written here.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row, dict_row

from statusdb.db.executor import Op, execute, many, one, operation, optional
from statusdb.domain import validate
from statusdb.domain.types import STATUS_SEVERITY_ORDER, ComponentStatus
from statusdb.errors import InvalidInput, NotFound


@attrs.frozen
class Component:
    id: str
    status_page_id: str
    name: str
    description: str | None
    display_order: int
    team_id: str | None
    service_identifier: str | None
    #: The status set by hand; it counts only while team_id is null.
    manual_status: ComponentStatus
    #: Derived by the database from incidents, maintenance and manual_status.
    current_status: ComponentStatus
    status_updated_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime


_row = class_row(Component)


def _optional_id(field: str, value: str | None) -> str | None:
    return None if value is None else validate.identifier(field, value)


def _optional_service(value: str | None) -> str | None:
    return None if value is None else validate.text("service_identifier", value, max_length=200)


def _display_order(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
        raise InvalidInput("display_order must be a 32-bit integer")
    return value


@operation(retry=True)
def create(
    status_page_id: str,
    *,
    name: str,
    description: str | None = None,
    display_order: int = 0,
    team_id: str | None = None,
    service_identifier: str | None = None,
) -> Op[Component]:
    """Add a component to a page."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "name": validate.text("name", name, max_length=200),
        "description": validate.optional_text("description", description, max_length=10_000),
        "display_order": _display_order(display_order),
        "team_id": _optional_id("team_id", team_id),
        "service_identifier": _optional_service(service_identifier),
    }
    return (yield from one("component_create", params, _row, not_found="component not created"))


@operation(retry=True)
def get(component_id: str) -> Op[Component]:
    """One component by id."""
    params = {"id": validate.identifier("component_id", component_id)}
    return (
        yield from one(
            "component_get", params, _row, not_found=f"no component with id {component_id!r}"
        )
    )


@operation(retry=True)
def list_for_page(status_page_id: str) -> Op[list[Component]]:
    """A page's components in display order."""
    params = {"status_page_id": validate.identifier("status_page_id", status_page_id)}
    return (yield from many("component_list_for_page", params, _row))


@operation(retry=True)
def update(
    component_id: str,
    *,
    name: str | validate.Unset = validate.UNSET,
    description: str | validate.Unset | None = validate.UNSET,
    display_order: int | validate.Unset = validate.UNSET,
    team_id: str | validate.Unset | None = validate.UNSET,
    service_identifier: str | validate.Unset | None = validate.UNSET,
) -> Op[Component]:
    """Change any of a component's fields; those left out keep their value.

    Changing team_id or service_identifier re-derives the status in the same statement.
    """
    U = validate.UNSET
    params = {
        "id": validate.identifier("component_id", component_id),
        **validate.changes(
            name=U if name is U else validate.text("name", name, max_length=200),
            description=U
            if description is U
            else validate.optional_text("description", description, max_length=10_000),
            display_order=U if display_order is U else _display_order(display_order),
            team_id=U if team_id is U else _optional_id("team_id", team_id),
            service_identifier=U
            if service_identifier is U
            else _optional_service(service_identifier),
        ),
    }
    return (
        yield from one(
            "component_update", params, _row, not_found=f"no component with id {component_id!r}"
        )
    )


@operation(retry=True)
def delete(component_id: str) -> Op[None]:
    """Delete a component; subscribers and incidents forget its id."""
    count = yield from execute(
        "component_delete", {"id": validate.identifier("component_id", component_id)}
    )
    if count == 0:
        raise NotFound(f"no component with id {component_id!r}")


@operation(retry=True)
def set_status(component_id: str, status: ComponentStatus) -> Op[Component]:
    """Set by hand the status of a component without a team.

    Refused (InvalidInput) for a component driven by incidents: its status follows them. A
    running maintenance window still shows, unless the status set here is worse.
    """
    params = {
        "id": validate.identifier("component_id", component_id),
        "status": validate.one_of("status", status, STATUS_SEVERITY_ORDER),
    }
    row = yield from optional("component_set_manual_status", params, dict_row)
    if row is None:
        raise NotFound(f"no component with id {component_id!r}")
    if row.pop("team_driven"):
        # Checked in the statement itself, so the caller's transaction stays usable.
        raise InvalidInput(
            f"component {component_id!r} is driven by its team's incidents, so its status "
            "cannot be set by hand; clear its team_id first"
        )
    return Component(**row)
