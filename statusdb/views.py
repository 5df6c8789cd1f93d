"""The page read model: what a status page's readers see, in one round trip.

`page_view(conn, slug, token=...)` returns the page with its components in display order, the
overall status, the active status incidents with their timelines, and the upcoming maintenance.
It never exposes internals: no team ids, service identifiers, platform incident ids, creator
ids or token digests are even selected.

Private pages need their access token, and a missing or wrong token behaves exactly like an
unknown slug (None, same query, same work), so the slugs of private pages cannot be probed. The
token is hashed here and only its digest is sent; the database function statusdb_page_view
(migrations 0008, 0014) hashes that digest once more and compares it with the stored value, so
the stored value (from a dump, say) opens nothing. The comparison leaks nothing useful about the
token (finding a token from a digest prefix is a preimage attack on SHA-256).

The function bounds its own arguments (the database is the boundary for SQL clients); this
wrapper checks the same maxima first, so that callers get InvalidInput.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

import attrs
from psycopg.rows import kwargs_row

from statusdb import tokens, validate
from statusdb.errors import InvalidInput
from statusdb.executor import Op, operation, optional
from statusdb.status_incidents import decode_updates
from statusdb.types import (
    ComponentView,
    MaintenanceStatus,
    StatusIncidentSeverity,
    StatusIncidentStatus,
    StatusPageWithComponents,
    StatusUpdate,
    worst_status,
)

_ts = dt.datetime.fromisoformat

#: Longest maintenance horizon (as statusdb.maintenance.MAX_HORIZON and statusdb_page_view).
MAX_MAINTENANCE_HORIZON: Final = dt.timedelta(days=366)
#: Most maintenance windows one page view lists (statusdb_page_view refuses more).
MAX_MAINTENANCE_LIMIT: Final = 200


@attrs.frozen
class IncidentView:
    """An active status incident as readers see it (no platform incident id)."""

    id: str
    title: str
    message: str | None
    severity: StatusIncidentSeverity
    status: StatusIncidentStatus
    affected_component_ids: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    updates: tuple[StatusUpdate, ...]


@attrs.frozen
class MaintenanceView:
    """Upcoming or running maintenance as readers see it (no creator id)."""

    id: str
    title: str
    description: str | None
    status: MaintenanceStatus
    start_time: dt.datetime
    end_time: dt.datetime
    component_ids: tuple[str, ...]


@attrs.frozen
class PageView:
    """Everything a status page shows."""

    page: StatusPageWithComponents
    active_incidents: tuple[IncidentView, ...]
    upcoming_maintenance: tuple[MaintenanceView, ...]


def _components(items: Sequence[Sequence[Any]]) -> tuple[ComponentView, ...]:
    return tuple(
        ComponentView(cid, name, description, order, status, _ts(changed))
        for cid, name, description, order, status, changed in items
    )


def _incidents(items: Sequence[Sequence[Any]]) -> tuple[IncidentView, ...]:
    return tuple(
        IncidentView(
            iid,
            title,
            message,
            severity,
            status,
            tuple(affected),
            _ts(created),
            _ts(updated),
            decode_updates(updates),
        )
        for iid, title, message, severity, status, affected, created, updated, updates in items
    )


def _maintenance(items: Sequence[Sequence[Any]]) -> tuple[MaintenanceView, ...]:
    return tuple(
        MaintenanceView(wid, title, description, status, _ts(start), _ts(end), tuple(ids))
        for wid, title, description, status, start, end, ids in items
    )


def _decode(
    *,
    id: str,
    name: str,
    description: str | None,
    slug: str,
    is_public: bool,
    updated_at: dt.datetime,
    components: Any,
    incidents: Any,
    maintenance: Any,
) -> PageView:
    component_views = _components(components)
    statuses = [c.current_status for c in component_views]
    page = StatusPageWithComponents(
        id=id,
        name=name,
        description=description,
        slug=slug,
        is_public=is_public,
        components=component_views,
        overall_status=worst_status(statuses),
        updated_at=updated_at,
    )
    return PageView(page, _incidents(incidents), _maintenance(maintenance))


_row = kwargs_row(_decode)


@operation(retry=True)
def page_view(
    slug: str,
    *,
    token: str | None = None,
    maintenance_horizon: dt.timedelta = dt.timedelta(days=7),
    maintenance_limit: int = 20,
) -> Op[PageView | None]:
    """The page `slug` as its readers see it, or None when there is no such page for them.

    `token` opens a private page. Maintenance shown: running windows and those starting within
    `maintenance_horizon` (recurring windows by their next occurrence).
    """
    if (
        not isinstance(maintenance_horizon, dt.timedelta)
        or not dt.timedelta(0) <= maintenance_horizon <= MAX_MAINTENANCE_HORIZON
    ):
        raise InvalidInput(
            f"maintenance_horizon must be a timedelta from 0 to {MAX_MAINTENANCE_HORIZON.days} days"
        )
    limit = validate.limit(maintenance_limit, maximum=MAX_MAINTENANCE_LIMIT)
    if not validate.is_slug(slug):
        return None  # cannot name a page (NUL, surrogates, ...): answer like an unknown slug
    token_hash = tokens.digest(token) if isinstance(token, str) else None
    params = {
        "slug": slug,
        "token_hash": token_hash,
        "horizon": maintenance_horizon,
        "maintenance_limit": limit,
    }
    return (yield from optional("page_view_by_slug", params, _row))


def _view_params(
    slug: str, token: str | None, maintenance_horizon: dt.timedelta, maintenance_limit: int
) -> dict[str, Any] | None:
    """page_view's checks and parameters (for page_view_at); None: `slug` names no page."""
    if (
        not isinstance(maintenance_horizon, dt.timedelta)
        or not dt.timedelta(0) <= maintenance_horizon <= MAX_MAINTENANCE_HORIZON
    ):
        raise InvalidInput(
            f"maintenance_horizon must be a timedelta from 0 to {MAX_MAINTENANCE_HORIZON.days} days"
        )
    limit = validate.limit(maintenance_limit, maximum=MAX_MAINTENANCE_LIMIT)
    if not validate.is_slug(slug):
        return None  # cannot name a page (NUL, surrogates, ...): answer like an unknown slug
    token_hash = tokens.digest(token) if isinstance(token, str) else None
    return {
        "slug": slug,
        "token_hash": token_hash,
        "horizon": maintenance_horizon,
        "maintenance_limit": limit,
    }


@operation(retry=True)
def page_view_at(
    slug: str,
    *,
    at: dt.datetime,
    token: str | None = None,
    maintenance_horizon: dt.timedelta = dt.timedelta(days=7),
    maintenance_limit: int = 20,
) -> Op[PageView | None]:
    """The page `slug` as `page_view` showed it at the instant `at`, or None (no such page).

    Rebuilt from the row history the database keeps (migration 0022): the page, its components
    (names, descriptions, order, statuses), the status incidents active at `at` with their
    timeline as posted by then, and the maintenance then running or starting within
    `maintenance_horizon` of `at`. A page view made by a transaction that started at `at` (its
    now()) showed exactly this, for writers whose transactions did not overlap in time.

    `slug` is the slug the page had at `at`. Access is decided on the page as it is *now*: a
    page public now and at `at` opens without a token; otherwise `token` must be its current
    access token (a rotated token opens nothing, in the past either). A deleted page is None.
    `at` must be aware and lie from the start of the kept history (the migration, or the
    retention horizon) to now: InvalidInput otherwise.
    """
    instant = validate.aware("at", at)
    params = _view_params(slug, token, maintenance_horizon, maintenance_limit)
    if params is None:
        return None
    return (yield from optional("page_view_at", {**params, "at": instant}, _row))
