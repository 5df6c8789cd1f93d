"""Incident templates: a page's reusable status incidents (Statuspage's and Cachet's templates).

A template belongs to one page and holds what opening a status incident needs: a title, the
first update's message, a severity and the affected components (of the same page, as for a
status incident). Its name is unique on its page. `status_incidents.create_from_template`
opens a status incident from one, in one statement, optionally overriding any of its values.

Templates are plain rows of `status_incident_template` (a DBA reads them with `SELECT`); the
database keeps the same rules for every client: components of the template's page only,
checked on INSERT and UPDATE, and a deleted component leaves every template (migration 0019).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Final

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, execute, many, one, operation
from statusdb.domain import validate
from statusdb.domain.types import STATUS_INCIDENT_SEVERITY, StatusIncidentSeverity
from statusdb.errors import InvalidInput, NotFound
from statusdb.status_incidents import MESSAGE_MAX, TITLE_MAX

NAME_MAX: Final = 200
"""As the table's CHECK (status_incident_template_name_check)."""

COMPONENTS_MAX: Final = 1_000
"""As status_incident_template_affected_component_ids_check."""

LIST_MAX: Final = 1_000
"""The most templates `list_for_page` returns at once (page on with `after`)."""


def _ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class IncidentTemplate:
    """An incident template as stored."""

    id: str
    status_page_id: str
    name: str
    title: str
    #: The first update's message.
    message: str
    severity: StatusIncidentSeverity
    affected_component_ids: tuple[str, ...] = attrs.field(converter=_ids)
    created_at: dt.datetime
    updated_at: dt.datetime


_row = class_row(IncidentTemplate)


def _name(value: str) -> str:
    return validate.text("name", value, max_length=NAME_MAX)


def _title(value: str) -> str:
    return validate.text("title", value, max_length=TITLE_MAX)


def _message(value: str) -> str:
    return validate.text("message", value, max_length=MESSAGE_MAX)


def _severity(value: str) -> StatusIncidentSeverity:
    return validate.one_of("severity", value, STATUS_INCIDENT_SEVERITY)


def _component_ids(values: Sequence[str]) -> list[str]:
    """Affected component ids, validated and bounded (COMPONENTS_MAX)."""
    ids = validate.identifiers("affected_component_ids", values)
    if len(ids) > COMPONENTS_MAX:
        raise InvalidInput(
            f"affected_component_ids must hold at most {COMPONENTS_MAX} ids, got {len(ids)}"
        )
    return ids


def _not_found(template_id: str) -> str:
    return f"no incident template with id {template_id!r}"


@operation(retry=True)
def create(
    status_page_id: str,
    *,
    name: str,
    title: str,
    message: str,
    severity: StatusIncidentSeverity,
    affected_component_ids: Sequence[str] = (),
) -> Op[IncidentTemplate]:
    """Add a template to a page. Unknown page: NotFound; a name the page already has:
    Conflict; a component of another page: InvalidInput."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "name": _name(name),
        "title": _title(title),
        "message": _message(message),
        "severity": _severity(severity),
        "affected_component_ids": _component_ids(affected_component_ids),
    }
    return (
        yield from one(
            "incident_template_create",
            params,
            _row,
            not_found=f"no status page with id {status_page_id!r}",
        )
    )


@operation(retry=True)
def get(template_id: str) -> Op[IncidentTemplate]:
    """One template by id."""
    params = {"id": validate.identifier("template_id", template_id)}
    return (
        yield from one("incident_template_get", params, _row, not_found=_not_found(template_id))
    )


@operation(retry=True)
def list_for_page(
    status_page_id: str, *, limit: int = 100, after: str | None = None
) -> Op[list[IncidentTemplate]]:
    """A page's templates by name, `limit` at a time (at most LIST_MAX); pass the last name
    returned as `after` for the next ones. None for an unknown page."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "limit": validate.limit(limit, maximum=LIST_MAX),
        "after_name": None if after is None else validate.text("after", after, max_length=NAME_MAX),
    }
    return (yield from many("incident_template_list_for_page", params, _row))


@operation(retry=True)
def update(
    template_id: str,
    *,
    name: str | validate.Unset = validate.UNSET,
    title: str | validate.Unset = validate.UNSET,
    message: str | validate.Unset = validate.UNSET,
    severity: StatusIncidentSeverity | validate.Unset = validate.UNSET,
    affected_component_ids: Sequence[str] | validate.Unset = validate.UNSET,
) -> Op[IncidentTemplate]:
    """Change any of name, title, message, severity, affected components; others are kept.
    Incidents already made from the template are not touched."""
    U = validate.UNSET
    params = {
        "id": validate.identifier("template_id", template_id),
        **validate.changes(
            name=U if name is U else _name(name),
            title=U if title is U else _title(title),
            message=U if message is U else _message(message),
            severity=U if severity is U else _severity(severity),
            affected_component_ids=U
            if affected_component_ids is U
            else _component_ids(affected_component_ids),
        ),
    }
    return (
        yield from one("incident_template_update", params, _row, not_found=_not_found(template_id))
    )


@operation(retry=True)
def delete(template_id: str) -> Op[None]:
    """Delete a template (incidents made from it stay)."""
    count = yield from execute(
        "incident_template_delete", {"id": validate.identifier("template_id", template_id)}
    )
    if count == 0:
        raise NotFound(_not_found(template_id))
