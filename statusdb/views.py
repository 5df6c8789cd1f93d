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

The page is rendered by its writers, not its readers (migration 0017): every change of what a
page shows re-renders its snapshot in the same transaction and gives it a new `version`. A
`PageView` carries that version and `fresh_until`, the next instant at which the answer changes
by the clock alone (a scheduled maintenance window entering the horizon), or None. With
`if_version=` the version a client last saw, an unchanged page answers `NotModified` in the same
single round trip, without the body ever leaving the server (an HTTP layer's ETag / 304).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Coroutine, Sequence
from typing import Any, Final, overload

import attrs
import psycopg
from psycopg.rows import class_row, kwargs_row

from statusdb import tokens, validate
from statusdb.errors import InvalidInput
from statusdb.executor import Op, Operation, many, operation, optional
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
    """Everything a status page shows.

    `version` changes (increases) whenever anything shown changes; `fresh_until` is the next
    instant the view changes by the clock alone for the horizon and limit asked (a scheduled
    window entering the horizon), None if none: until then, only a write (announced by
    `statusdb.feed.listen_pages`) changes it.
    """

    page: StatusPageWithComponents
    active_incidents: tuple[IncidentView, ...]
    upcoming_maintenance: tuple[MaintenanceView, ...]
    version: int
    fresh_until: dt.datetime | None


@attrs.frozen
class NotModified:
    """`page_view(..., if_version=v)` when the page still shows what version `v` showed."""

    version: int
    fresh_until: dt.datetime | None


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
    version: int,
    fresh_until: dt.datetime | None,
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
    return PageView(page, _incidents(incidents), _maintenance(maintenance), version, fresh_until)


def _answer(*, not_modified: bool, **row: Any) -> PageView | NotModified:
    if not_modified:  # the body columns are null: nothing to decode
        return NotModified(row["version"], row["fresh_until"])
    return _decode(**row)


_row = kwargs_row(_answer)


def _page_view(
    slug: str,
    *,
    token: str | None = None,
    maintenance_horizon: dt.timedelta = dt.timedelta(days=7),
    maintenance_limit: int = 20,
    if_version: int | None = None,
) -> Op[PageView | NotModified | None]:
    """The page `slug` as its readers see it, or None when there is no such page for them.

    `token` opens a private page. Maintenance shown: running windows and those starting within
    `maintenance_horizon` (recurring windows by their next occurrence). `if_version`: the
    version the caller already has; `NotModified` if the page still shows exactly that (for
    this horizon and limit), without sending or decoding the body.
    """
    if (
        not isinstance(maintenance_horizon, dt.timedelta)
        or not dt.timedelta(0) <= maintenance_horizon <= MAX_MAINTENANCE_HORIZON
    ):
        raise InvalidInput(
            f"maintenance_horizon must be a timedelta from 0 to {MAX_MAINTENANCE_HORIZON.days} days"
        )
    limit = validate.limit(maintenance_limit, maximum=MAX_MAINTENANCE_LIMIT)
    if if_version is not None and (
        isinstance(if_version, bool) or not isinstance(if_version, int) or if_version >= 2**63
    ):
        raise InvalidInput("if_version must be a page version (an int) or None")
    if not validate.is_slug(slug):
        return None  # cannot name a page (NUL, surrogates, ...): answer like an unknown slug
    token_hash = tokens.digest(token) if isinstance(token, str) else None
    params = {
        "slug": slug,
        "token_hash": token_hash,
        "horizon": maintenance_horizon,
        "maintenance_limit": limit,
        "if_version": if_version,
    }
    return (yield from optional("page_view_by_slug", params, _row))


class _PageViewOperation(Operation[..., "PageView | NotModified | None"]):
    """`page_view`'s operation, typed so that a call without `if_version` is a PageView or None."""

    @overload
    def __call__(
        self,
        conn: psycopg.AsyncConnection[Any],
        /,
        slug: str,
        *,
        token: str | None = None,
        maintenance_horizon: dt.timedelta = ...,
        maintenance_limit: int = 20,
        if_version: None = None,
    ) -> Coroutine[Any, Any, PageView | None]: ...

    @overload
    def __call__(
        self,
        conn: psycopg.AsyncConnection[Any],
        /,
        slug: str,
        *,
        token: str | None = None,
        maintenance_horizon: dt.timedelta = ...,
        maintenance_limit: int = 20,
        if_version: int | None,
    ) -> Coroutine[Any, Any, PageView | NotModified | None]: ...

    @overload
    def __call__(
        self,
        conn: psycopg.Connection[Any],
        /,
        slug: str,
        *,
        token: str | None = None,
        maintenance_horizon: dt.timedelta = ...,
        maintenance_limit: int = 20,
        if_version: None = None,
    ) -> PageView | None: ...

    @overload
    def __call__(
        self,
        conn: psycopg.Connection[Any],
        /,
        slug: str,
        *,
        token: str | None = None,
        maintenance_horizon: dt.timedelta = ...,
        maintenance_limit: int = 20,
        if_version: int | None,
    ) -> PageView | NotModified | None: ...

    def __call__(self, conn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(conn, *args, **kwargs)


#: The page view operation (see `_page_view`): ``page_view(conn, slug, token=..., if_version=v)``.
page_view = _PageViewOperation(_page_view, atomic=False, retry=True)


@attrs.frozen
class SnapshotDrift:
    """A page whose stored snapshot differs from a rendering from scratch (or is missing:
    `stored_version` None)."""

    page_id: str
    stored_version: int | None


@operation(retry=True)
def recompute_snapshots(*, repair: bool = False) -> Op[list[SnapshotDrift]]:
    """Every page whose snapshot has drifted from its rows; re-rendered when `repair`.

    The page snapshots' peer of `status.recompute` (migration 0017): it renders every page once
    from scratch (statusdb_page_render) and compares. A repaired page gets a new version and is
    announced like any other change. Drift means something bypassed the triggers (a DBA's
    `session_replication_role = replica`, disabled triggers, a partial restore).
    """
    params = {"repair": validate.flag("repair", repair)}
    return (yield from many("page_snapshot_repair", params, class_row(SnapshotDrift)))
