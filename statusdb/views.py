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
page shows re-renders its snapshot in the same transaction and gives it a new snapshot version.
A `PageView` carries the `version` of what it shows, for its horizon and limit: the snapshot's
version * 256 plus the number of scheduled maintenance windows already in the horizon, so that
a window entering the horizon moves the version by the clock alone, and a page's versions only
increase. `fresh_until` is the next instant at which that happens, or None. With `if_version=`
the version a client last saw, an unchanged page answers `NotModified` in the same single round
trip, without the body ever leaving the server (an HTTP layer's ETag / 304: the version alone
is an honest ETag for a URL that fixes the horizon and limit).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from hashlib import sha256 as _sha256
from itertools import repeat
from operator import attrgetter, itemgetter
from types import MemberDescriptorType
from typing import Any, Final, Generic, TypeVar, cast, overload

import attrs
import orjson
import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.rows import class_row, kwargs_row, tuple_row

from statusdb.db import libpq, queries
from statusdb.db.executor import (
    RETRY_ATTEMPTS,
    Op,
    Operation,
    _backoff,
    _conflict,
    _in_caller_transaction,
    _not_a_connection,
    _owns_transaction,
    many,
    operation,
    optional,
)
from statusdb.domain import tokens, validate
from statusdb.domain.bounded_cache import BoundedCache
from statusdb.domain.types import (
    ComponentStatus,
    ComponentView,
    MaintenanceStatus,
    StatusIncidentSeverity,
    StatusIncidentStatus,
    StatusPageWithComponents,
    StatusUpdate,
    worst_status,
)
from statusdb.errors import DataCorrupt, InvalidInput, Retryable, StatusdbError, translate
from statusdb.status_incidents import decode_updates

_T = TypeVar("_T")

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
class GroupView:
    """A component group as readers see it: its derived status, its members in display order.

    `components` are the components directly in the group, `groups` its subgroups; each list
    in display order (a group's own `display_order` orders it among its siblings).
    """

    id: str
    name: str
    description: str | None
    status: ComponentStatus
    components: tuple[ComponentView, ...]
    groups: tuple[GroupView, ...]


@attrs.frozen
class PageView:
    """Everything a status page shows.

    `version` names what is shown for the horizon and limit asked, and increases whenever that
    changes: by a write (announced by `statusdb.feed.listen_pages`) or by the clock (a
    scheduled window entering the horizon). `fresh_until` is the next instant the clock may
    change it (conservative: the window may fall beyond the limit), None if never: until then,
    only a write changes it. Versions exceed 2^53: send them as text (`version_text`,
    `statusdb.domain.serialise.asdict`), not JSON numbers. `page.time_zone` is the page's
    IANA time zone, to show its times in. `page.components` lists every component, flat, in
    display order (grouped or not); `groups` is the tree of the page's top-level groups
    (migration 0020).
    """

    page: StatusPageWithComponents
    active_incidents: tuple[IncidentView, ...]
    upcoming_maintenance: tuple[MaintenanceView, ...]
    version: int
    fresh_until: dt.datetime | None
    groups: tuple[GroupView, ...] = ()
    #: The locale of the texts shown (migration 0033) when the read asked for one
    #: (`page_view(..., locale=)`): the tag or its language that matched, else the page's
    #: `default_locale`. None for a read without `locale` (the page's own texts, as before).
    locale: str | None = None

    @property
    def version_text(self) -> str:
        """The version as text (as `PageBytes.version_text`): never a JSON number."""
        return str(self.version)


@attrs.frozen
class NotModified:
    """`page_view(..., if_version=v)` when the page still shows what version `v` showed (`v`
    is still the current `version`, for this horizon and limit)."""

    version: int
    fresh_until: dt.datetime | None

    @property
    def version_text(self) -> str:
        """The version as text (as `PageBytes.version_text`)."""
        return str(self.version)


# -- decoding ----------------------------------------------------------------------------------
# A page view decodes ~85 frozen attrs values (50 components, 5 incidents with 25 timeline
# entries, 3 windows) from the function's JSON. Profiled (bench case "page view decode"), the
# attrs __init__ of frozen classes was the largest part: it sets each field through
# object.__setattr__, a generic attribute lookup per field. The rows come from our own database
# function (shapes fixed by its SQL, values already checked by the table's constraints), so the
# values are built column by column instead: one object.__new__ per row, then each field's slot
# descriptor applied to a whole column with map() (a loop in C, no Python frame per value). The
# results are the same attrs instances (same classes, fields, equality, immutability); classes
# that validate, convert or post-process their fields are built through their __init__.

_new = object.__new__
#: Below this many rows, building row by row through __init__ costs less (measured).
_COLUMNS_FROM: Final = 8
_fromisoformat = dt.datetime.fromisoformat


def _loads(data: bytes) -> Any:
    """JSON text parsed by orjson (1.5x json.loads on a page); text orjson refuses (a lone
    surrogate escape, which PostgreSQL's json type keeps) by json.loads, as page_view would."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


class _Columns(Generic[_T]):
    """Builds instances of one frozen, slotted attrs class from columns of trusted values."""

    def __init__(self, cls: type[_T]) -> None:
        self.cls = cls
        fields = attrs.fields(cast("type[attrs.AttrsInstance]", cls))
        descriptors: list[Any] = [getattr(cls, f.name, None) for f in fields]
        direct = (
            not hasattr(cls, "__attrs_post_init__")
            and not hasattr(cls, "__attrs_pre_init__")
            and "_attrs_cached_hash" not in getattr(cls, "__slots__", ())
            and all(f.validator is None and f.converter is None for f in fields)
            and all(isinstance(d, MemberDescriptorType) for d in descriptors)
        )
        #: Field names in order: the positions of the values in a row.
        self.names = tuple(f.name for f in fields)
        #: Each field's slot setter, in field order; None: build through __init__.
        self.setters: tuple[Callable[[Any, Any], None], ...] | None = (
            tuple(d.__set__ for d in descriptors) if direct else None
        )

    def columns(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """`rows` (one value per field, in field order) as one column per field."""
        width = len(self.names)
        if not rows:
            return [()] * width
        columns = list(zip(*rows, strict=True))
        if len(columns) != width:
            raise ValueError(f"{self.cls.__name__} rows have {len(columns)} values, not {width}")
        return columns

    def at(self, name: str) -> int:
        """The position of field `name` in a row."""
        return self.names.index(name)

    def build(self, count: int, columns: Sequence[Iterable[Any]]) -> list[_T]:
        """`count` instances; column i holds field i of each, in order.

        Every column must hold exactly `count` values: the callers derive them all from one
        `zip(*rows, strict=True)`, which refuses rows of unequal length.
        """
        if self.setters is None or count < _COLUMNS_FROM:
            return [self.cls(*values) for values in zip(*columns, strict=True)]
        objects = list(map(_new, repeat(self.cls, count)))
        for setter, column in zip(self.setters, columns, strict=True):
            deque(map(setter, objects, column), maxlen=0)
        return objects


_U = _Columns(StatusUpdate)
_update_timestamp = itemgetter("timestamp")
_update_status = itemgetter("status")
_update_message = itemgetter("message")
_tzinfo = attrgetter("tzinfo")


# The rows of the page view's JSON hold one value per field of the class, in field order; the
# timestamps arrive as ISO 8601 text and the id lists as lists.
_C = _Columns(ComponentView)
_C_CHANGED = _C.at("status_updated_at")
_C_STATUS = _C.at("current_status")
_I = _Columns(IncidentView)
_I_AFFECTED, _I_CREATED, _I_UPDATED, _I_UPDATES = (
    _I.at(name) for name in ("affected_component_ids", "created_at", "updated_at", "updates")
)
_M = _Columns(MaintenanceView)
_M_START, _M_END, _M_COMPONENTS = (
    _M.at(name) for name in ("start_time", "end_time", "component_ids")
)


def _components(items: Sequence[Sequence[Any]]) -> tuple[ComponentView, ...]:
    return _components_and_statuses(items)[0]


def _components_and_statuses(
    items: Sequence[Sequence[Any]],
) -> tuple[tuple[ComponentView, ...], Sequence[Any]]:
    """The components, and their statuses' column (for the overall status: no attribute
    read per component)."""
    columns = _C.columns(items)
    statuses = columns[_C_STATUS]
    columns[_C_CHANGED] = map(_fromisoformat, columns[_C_CHANGED])
    return tuple(_C.build(len(items), columns)), statuses


def _updates(timelines: Sequence[Sequence[Any]]) -> list[tuple[StatusUpdate, ...]]:
    """The incidents' timelines, as `decode_updates` decodes them (it decides any odd entry)."""
    entries = [entry for timeline in timelines for entry in timeline]
    try:
        timestamps = list(map(_fromisoformat, map(_update_timestamp, entries)))
        statuses = list(map(_update_status, entries))
        messages = list(map(_update_message, entries))
    except (TypeError, ValueError, KeyError):
        timestamps = []  # an entry written by hand in another form: decode_updates decides
    if len(timestamps) != len(entries) or None in map(_tzinfo, timestamps):
        return [decode_updates(timeline) for timeline in timelines]
    built = _U.build(len(entries), (timestamps, statuses, messages))
    decoded = []
    start = 0
    for timeline in timelines:
        end = start + len(timeline)
        decoded.append(tuple(built[start:end]))
        start = end
    return decoded


def _groups(
    items: Sequence[Sequence[Any]], components: Sequence[ComponentView]
) -> tuple[GroupView, ...]:
    """The tree of groups, from the flat list the page view returns (in display order).

    The database bounds the depth (3 levels) and rules out cycles; a group whose parent is
    not in the list (cannot happen) is shown at the top level.
    """
    by_group: dict[str, list[ComponentView]] = {}
    for component in components:
        if component.group_id is not None:
            by_group.setdefault(component.group_id, []).append(component)
    known = {gid for gid, *_ in items}
    children: dict[str | None, list[str]] = {}
    fields: dict[str, tuple[str, str | None, ComponentStatus]] = {}
    for gid, name, description, parent_id, _order, status in items:
        fields[gid] = (name, description, status)
        children.setdefault(parent_id if parent_id in known else None, []).append(gid)

    def build(gid: str) -> GroupView:
        name, description, status = fields[gid]
        return GroupView(
            gid,
            name,
            description,
            status,
            tuple(by_group.get(gid, ())),
            tuple(build(sub) for sub in children.get(gid, [])),
        )

    return tuple(build(gid) for gid in children.get(None, []))


def _incidents(items: Sequence[Sequence[Any]]) -> tuple[IncidentView, ...]:
    columns = _I.columns(items)
    columns[_I_AFFECTED] = map(tuple, columns[_I_AFFECTED])
    columns[_I_CREATED] = map(_fromisoformat, columns[_I_CREATED])
    columns[_I_UPDATED] = map(_fromisoformat, columns[_I_UPDATED])
    columns[_I_UPDATES] = _updates(columns[_I_UPDATES])
    return tuple(_I.build(len(items), columns))


def _maintenance(items: Sequence[Sequence[Any]]) -> tuple[MaintenanceView, ...]:
    columns = _M.columns(items)
    columns[_M_START] = map(_fromisoformat, columns[_M_START])
    columns[_M_END] = map(_fromisoformat, columns[_M_END])
    columns[_M_COMPONENTS] = map(tuple, columns[_M_COMPONENTS])
    return tuple(_M.build(len(items), columns))


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
    groups: Any,
    time_zone: str = "UTC",
    locale: str | None = None,
) -> PageView:
    component_views, statuses = _components_and_statuses(components)
    # The worst of the distinct statuses (at most five): the same status as over all of them.
    page = StatusPageWithComponents(
        id,
        name,
        description,
        slug,
        is_public,
        component_views,
        worst_status(tuple(set(statuses))),
        updated_at,
        time_zone,
    )
    return PageView(
        page,
        _incidents(incidents),
        _maintenance(maintenance),
        version,
        fresh_until,
        _groups(groups, component_views),
        locale,
    )


def _decoded(**row: Any) -> PageView:
    """`_decode`, with a value Python cannot read (written around the database's checks, or
    before migration 0024 made them) reported as DataCorrupt, never as a ValueError."""
    try:
        return _decode(**row)
    except DataCorrupt:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, StatusdbError) as exc:
        slug = row.get("slug")
        raise DataCorrupt(f"page {slug!r} holds a value that cannot be read: {exc}") from exc


def _answer(*, not_modified: bool, **row: Any) -> PageView | NotModified:
    if not_modified:  # the body columns are null: nothing to decode
        return NotModified(row["version"], row["fresh_until"])
    return _decoded(**row)


_row = kwargs_row(_answer)
#: page_view_at's rows: always a body (a past view has no conditional form).
_row_at = kwargs_row(_decoded)


def _page_view(
    slug: str,
    *,
    token: str | None = None,
    maintenance_horizon: dt.timedelta = dt.timedelta(days=7),
    maintenance_limit: int = 20,
    if_version: int | None = None,
    locale: str | None = None,
) -> Op[PageView | NotModified | None]:
    """The page `slug` as its readers see it, or None when there is no such page for them.

    `token` opens a private page. Maintenance shown: running windows and those starting within
    `maintenance_horizon` (recurring windows by their next occurrence). `if_version`: the
    version the caller already has (a `PageView.version` of the same horizon and limit);
    `NotModified` if it is still the current one, without sending or decoding the body.
    `locale` (a BCP 47 tag, migration 0033): the texts in that tag, else its language, else
    the page's own; `PageView.locale` says which. A translation written moves the version.
    """
    if if_version is not None and (
        isinstance(if_version, bool) or not isinstance(if_version, int) or if_version >= 2**63
    ):
        raise InvalidInput("if_version must be a page version (an int) or None")
    params = _view_params(slug, token, maintenance_horizon, maintenance_limit)
    if params is None:
        return None
    params["if_version"] = if_version
    if locale is None:  # the page's own texts: the 0017 read as it was (locale None)
        return (yield from optional("page_view_by_slug", params, _row))
    params["locale"] = validate.locale("locale", locale)
    return (yield from optional("page_view_by_slug_v3", params, _row))


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
        locale: str | None = None,
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
        locale: str | None = None,
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
        locale: str | None = None,
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
        locale: str | None = None,
    ) -> PageView | NotModified | None: ...

    def __call__(self, conn: Any, /, *args: Any, **kwargs: Any) -> Any:
        # The common call (a slug, keyword arguments of the exact types, no locale) on a
        # connection: page_view_bytes' statement on its reused cursor, the body parsed by
        # orjson and decoded (issue 21 item 3): no json.loads by psycopg, no row factory, no
        # generator step. Anything else (and any argument refused) takes the operation's way,
        # so its checks and messages are page_view's own.
        if (
            len(args) == 1
            and type(args[0]) is str
            and kwargs.keys() <= _FAST_ARGUMENTS
            and type(kwargs.get("token")) in _TOKEN_TYPES
            and isinstance(conn, psycopg.Connection | psycopg.AsyncConnection)
        ):
            try:
                params = _read_params(
                    args[0],
                    kwargs.get("token"),
                    kwargs.get("if_version"),
                    kwargs.get("maintenance_horizon", _WEEK),
                    kwargs.get("maintenance_limit", 20),
                )
            except InvalidInput:
                params = None
            else:
                if params is None:  # cannot name a page
                    return None if isinstance(conn, psycopg.Connection) else _none()
                if isinstance(conn, psycopg.Connection):
                    return _view_sync(conn, params)
                return _view_async(conn, params)
        return super().__call__(conn, *args, **kwargs)


_FAST_ARGUMENTS: Final = frozenset(
    ("token", "if_version", "maintenance_horizon", "maintenance_limit")
)
_TOKEN_TYPES: Final = (str, type(None))


def _view_answer(conn: Any, answer: Any) -> PageView | NotModified | None:
    if answer is None or type(answer) is NotModified:
        return answer
    try:
        # psycopg gives the page's updated_at in the session's TimeZone: so does page_view.
        return decode_page_bytes(answer, conn.info.timezone)
    except (ValueError, TypeError, KeyError, OverflowError, StatusdbError) as exc:
        if isinstance(exc, DataCorrupt):
            raise
        raise DataCorrupt(f"page holds a value that cannot be read: {exc}") from exc


# async-to-sync: begin
async def _view_async(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Any:
    owned = _owns_transaction(conn)
    try:
        answer = await _read_async(conn, params)
    except Retryable as exc:
        if _conflict(exc) and not owned:
            raise _in_caller_transaction(exc) from exc.__cause__
        raise
    return _view_answer(conn, answer)


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def _view_sync(conn: psycopg.Connection[Any], params: dict[str, Any]) -> Any:
    owned = _owns_transaction(conn)
    try:
        answer = _read_sync(conn, params)
    except Retryable as exc:
        if _conflict(exc) and (not owned):
            raise _in_caller_transaction(exc) from exc.__cause__
        raise
    return _view_answer(conn, answer)


# async-to-sync: end of generated code


#: The page view operation (see `_page_view`): ``page_view(conn, slug, token=..., if_version=v)``.
page_view = _PageViewOperation(_page_view, atomic=False, retry=True)


@attrs.frozen
class SnapshotDrift:
    """A page whose stored snapshot differs from a rendering from scratch (or is missing:
    `stored_version` None). `stored_version` is the lowest version its readers were given (as
    `statusdb.feed.PageVersionEvent.version`)."""

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
    (names, descriptions, order, statuses, groups), the group tree (`groups`, as it was), the
    status incidents active at `at` with their timeline as posted by then, and the maintenance
    then running or starting within `maintenance_horizon` of `at`. A page view made by a
    transaction that started at `at` (its now()) showed exactly this, for writers whose
    transactions did not overlap in time. A past view has no version: `version` is 0 (never one
    `page_view` hands out, so it matches no ETag or `if_version`) and `fresh_until` is None.

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
    return (yield from optional("page_view_at", {**params, "at": instant}, _row_at))


# -- bytes straight through (migration 0028) ---------------------------------------------------
# For HTTP handlers and CDN origins: the page view as one JSON document, the bytes the database
# holds, with no JSON parse and no decoding on the way. The statement runs on one cursor per
# connection, kept on the connection and reused call after call (psycopg prepares it on the
# server after its prepare_threshold uses, or never with prepare_threshold None, as behind
# PgBouncer), with a tuple row factory and a loader that hands the body's text over as bytes.


@attrs.frozen
class PageBytes:
    """`page_view_bytes`: the page as one JSON document (UTF-8), as the database holds it.

    `body` is the object ``{"id", "name", "description", "slug", "is_public", "updated_at",
    "components", "incidents", "maintenance", "groups", "time_zone"}``: the `page_view`
    columns of the same name (migrations 0028, 0029), the arrays in the shapes
    statusdb_page_render documents.
    `version` and `fresh_until` are `PageView`'s (they are not in the body, so that the body
    depends on the version alone); `version_text` is the version as an ETag carries it.
    """

    body: bytes
    version: int
    fresh_until: dt.datetime | None
    #: The locale of the texts (migration 0033) when the read asked for one (`locale=`), as
    #: `PageView.locale`; None for a read without `locale` (the page's own texts).
    locale: str | None = None

    @property
    def version_text(self) -> str:
        """The version as text (versions exceed 2^53: never a JSON number)."""
        return str(self.version)


class _TextAsBytes(Loader):
    """Loads text as the bytes received (UTF-8: the client encoding statusdb requires)."""

    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


_BYTES_QUERY: Final = queries.get("page_view_bytes").sql
_BYTES_QUERY_V3: Final = queries.get("page_view_bytes_v3").sql
_LOOKUP_QUERY: Final = queries.get("page_version_public").sql
_BYTES: Final = libpq.Statement("page_view_bytes", _BYTES_QUERY)
_BYTES_V3: Final = libpq.Statement("page_view_bytes_v3", _BYTES_QUERY_V3)
_LOOKUP: Final = libpq.Statement("page_version_public", _LOOKUP_QUERY)
_IDLE: Final = psycopg.pq.TransactionStatus.IDLE
#: `conn.pgconn.transaction_status` (an int) for IDLE: `conn.info` makes an object per access.
_IDLE_STATUS: Final = int(_IDLE)
_SLUG_KEYS: dict[str, bytes] = {}
_SLUG_KEYS_MAX: Final = 4096
_READER_ATTRIBUTE: Final = "_statusdb_page_bytes_reader"
_WEEK: Final = dt.timedelta(days=7)
_ZERO: Final = dt.timedelta(0)
_timedelta = dt.timedelta
_WEEK_BINARY: Final = libpq.binary_interval(_WEEK)


class _SyncReader:
    __slots__ = ("cursor", "lock")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.cursor = conn.cursor(row_factory=tuple_row)
        self.cursor.adapters.register_loader("text", _TextAsBytes)
        self.lock = threading.Lock()  # one statement and its fetch at a time on the cursor


class _AsyncReader:
    __slots__ = ("cursor", "lock")

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.cursor = conn.cursor(row_factory=tuple_row)
        self.cursor.adapters.register_loader("text", _TextAsBytes)
        self.lock = asyncio.Lock()


_new_reader_lock = threading.Lock()


def _reader(conn: Any, kind: type[_R]) -> _R:
    """`conn`'s reused cursor, made on first use (kept on the connection: it dies with it)."""
    reader = getattr(conn, _READER_ATTRIBUTE, None)
    if reader is None or reader.cursor.closed:
        with _new_reader_lock:
            reader = getattr(conn, _READER_ATTRIBUTE, None)
            if reader is None or reader.cursor.closed:
                reader = kind(conn)
                setattr(conn, _READER_ATTRIBUTE, reader)
    return cast("_R", reader)


_R = TypeVar("_R", _SyncReader, _AsyncReader)


def _bytes_params(
    slug: object,
    token: object,
    if_version: object,
    maintenance_horizon: object,
    maintenance_limit: object,
) -> dict[str, Any] | None:
    """page_view's checks, each as cheap as it can be; None: `slug` names no page."""
    if maintenance_horizon is not _WEEK and (
        type(maintenance_horizon) is not _timedelta
        or not _ZERO <= maintenance_horizon <= MAX_MAINTENANCE_HORIZON
    ):
        raise InvalidInput(
            f"maintenance_horizon must be a timedelta from 0 to {MAX_MAINTENANCE_HORIZON.days} days"
        )
    if type(maintenance_limit) is not int or not 1 <= maintenance_limit <= MAX_MAINTENANCE_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_MAINTENANCE_LIMIT}")
    if if_version is not None and (type(if_version) is not int or if_version >= 2**63):
        raise InvalidInput("if_version must be a page version (an int) or None")
    if not validate.is_slug(slug):
        return None  # cannot name a page (NUL, surrogates, ...): answer like an unknown slug
    return {
        "slug": slug,
        "token_hash": tokens.digest(token) if type(token) is str else None,
        "horizon": maintenance_horizon,
        "maintenance_limit": maintenance_limit,
        "if_version": if_version,
    }


def _slug_key(slug: str) -> bytes:
    """sha256 of a slug's UTF-8 (statusdb_slug_key, 0039), remembered per process for the last
    few thousand slugs (cleared when full: any caller may send many slugs)."""
    key = _SLUG_KEYS.get(slug) if type(slug) is str else None
    if key is None:
        key = _sha256(slug.encode()).digest()
        if type(slug) is str:
            if len(_SLUG_KEYS) >= _SLUG_KEYS_MAX:
                _SLUG_KEYS.clear()
            _SLUG_KEYS[slug] = key
    return key


def _week_params(slug: object, if_version: object) -> dict[str, Any] | None:
    """`_bytes_params` for the common conditional read (no token, no locale, the default horizon
    and limit), with the checks that call still needs; None: `slug` names no page."""
    if type(if_version) is not int or if_version >= 2**63:
        raise InvalidInput("if_version must be a page version (an int) or None")
    if type(slug) is not str or (slug not in _SLUG_KEYS and not validate.is_slug(slug)):
        return None  # _SLUG_KEYS holds slugs is_slug accepted
    return {
        "slug": slug,
        "token_hash": None,
        "horizon": _WEEK,
        "maintenance_limit": 20,
        "if_version": if_version,
    }


def _read_params(
    slug: object,
    token: object,
    if_version: object,
    maintenance_horizon: object,
    maintenance_limit: object,
) -> dict[str, Any] | None:
    """`_bytes_params`, or `_week_params` for the common conditional read."""
    if (
        if_version is not None
        and token is None
        and maintenance_horizon is _WEEK
        and maintenance_limit == 20
        and type(maintenance_limit) is int
    ):  # the common conditional read (HTTP handlers, the cache): its checks alone
        return _week_params(slug, if_version)
    return _bytes_params(slug, token, if_version, maintenance_horizon, maintenance_limit)


def _bytes_answer(row: tuple[Any, ...] | None) -> PageBytes | NotModified | None:
    if row is None:
        return None
    if len(row) == 4:  # page_view_bytes_v3: with the locale used
        version, fresh_until, body, locale = row
        if body is None:
            return NotModified(version, fresh_until)
        return PageBytes(body, version, fresh_until, locale.decode())
    version, fresh_until, body = row
    if body is None:
        return NotModified(version, fresh_until)
    return PageBytes(body, version, fresh_until)


def _query(params: dict[str, Any]) -> bytes:
    return _BYTES_QUERY if "locale" not in params else _BYTES_QUERY_V3


def _lookup_params(conn: Any, params: dict[str, Any]) -> tuple[bytes, dict[str, Any]] | None:
    """The plain version lookup (migration 0039) and its parameters, or None: the function.

    Only for a conditional read without a token (exactly a read of public pages: the
    function's rule with a null digest) and without a locale, on a connection outside a
    transaction: the statement is then its own transaction (or the first of one), which has
    nothing pending (0036), so the committed snapshot is what the function would read.
    """
    if (
        params["if_version"] is None
        or params["token_hash"] is not None
        or "locale" in params
        or conn.pgconn.transaction_status != _IDLE_STATUS
    ):
        return None
    return _LOOKUP_QUERY, {
        "slug_key": _slug_key(params["slug"]),
        "horizon": params["horizon"],
        "maintenance_limit": params["maintenance_limit"],
    }


def _encoded(statement: libpq.Statement, params: dict[str, Any]) -> tuple[list[Any], list[int]]:
    """`params` as libpq takes them, in `statement`'s order: text as UTF-8 and integers as
    text, digests and intervals binary (the statements cast every parameter)."""
    values: list[Any] = []
    formats: list[int] = []
    for name in statement.names:
        value = params[name]
        kind = type(value)
        if kind is str:
            values.append(value.encode())
            formats.append(0)
        elif kind is int:
            values.append(b"%d" % value)
            formats.append(0)
        elif kind is bytes:
            values.append(value)
            formats.append(1)
        elif value is _WEEK:
            values.append(_WEEK_BINARY)
            formats.append(1)
        elif kind is _timedelta:
            values.append(libpq.binary_interval(value))
            formats.append(1)
        elif value is None:
            values.append(None)
            formats.append(0)
        else:  # pragma: no cover - _read_params lets nothing else through
            raise TypeError(f"cannot send {kind.__name__} by libpq")
    return values, formats


def _lookup_by_key(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug_key": _slug_key(params["slug"]),
        "horizon": params["horizon"],
        "maintenance_limit": params["maintenance_limit"],
    }


# async-to-sync: begin
async def _lean_async(
    conn: psycopg.AsyncConnection[Any], context: Any, params: dict[str, Any]
) -> Any:
    """The read by libpq (`statusdb.db.libpq`), `conn.lock` held: the plain version lookup
    first where it answers for the function (`_lookup_params`' rule), then the function."""
    if params["if_version"] is not None and params["token_hash"] is None and "locale" not in params:
        row = await libpq.row_async(
            conn, context, _LOOKUP, *_encoded(_LOOKUP, _lookup_by_key(params))
        )
        if row is None:
            return None  # no public page has this slug
        if row[0] == params["if_version"]:
            return NotModified(*row)
    statement = _BYTES if "locale" not in params else _BYTES_V3
    return _bytes_answer(
        await libpq.row_async(conn, context, statement, *_encoded(statement, params))
    )


async def _read_async(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Any:
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        reader = _reader(conn, _AsyncReader)
        try:
            async with conn.lock:
                if libpq.usable(conn):
                    return await _lean_async(conn, reader.cursor, params)
            # Pipeline mode, a transaction psycopg opens, a broken connection: the cursor.
            async with reader.lock:
                cur = reader.cursor
                lookup = _lookup_params(conn, params)
                if lookup is not None:
                    await cur.execute(*lookup, binary=True)
                    row = await cur.fetchone()
                    if row is None:
                        return None  # no public page has this slug
                    if row[0] == params["if_version"]:
                        return NotModified(*row)
                await cur.execute(_query(params), params, binary=True)
                return _bytes_answer(await cur.fetchone())
        except psycopg.Error as exc:
            error = translate(exc)
            if not (_retry_read(conn, error, attempt)):
                raise error from exc
        await asyncio.sleep(_backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def _lean_sync(conn: psycopg.Connection[Any], context: Any, params: dict[str, Any]) -> Any:
    """The read by libpq (`statusdb.db.libpq`), `conn.lock` held: the plain version lookup
    first where it answers for the function (`_lookup_params`' rule), then the function."""
    if (
        params["if_version"] is not None
        and params["token_hash"] is None
        and ("locale" not in params)
    ):
        row = libpq.row_sync(conn, context, _LOOKUP, *_encoded(_LOOKUP, _lookup_by_key(params)))
        if row is None:
            return None
        if row[0] == params["if_version"]:
            return NotModified(*row)
    statement = _BYTES if "locale" not in params else _BYTES_V3
    return _bytes_answer(libpq.row_sync(conn, context, statement, *_encoded(statement, params)))


def _read_sync(conn: psycopg.Connection[Any], params: dict[str, Any]) -> Any:
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        reader = _reader(conn, _SyncReader)
        try:
            with conn.lock:
                if libpq.usable(conn):
                    return _lean_sync(conn, reader.cursor, params)
            with reader.lock:
                cur = reader.cursor
                lookup = _lookup_params(conn, params)
                if lookup is not None:
                    cur.execute(*lookup, binary=True)
                    row = cur.fetchone()
                    if row is None:
                        return None
                    if row[0] == params["if_version"]:
                        return NotModified(*row)
                cur.execute(_query(params), params, binary=True)
                return _bytes_answer(cur.fetchone())
        except psycopg.Error as exc:
            error = translate(exc)
            if not _retry_read(conn, error, attempt):
                raise error from exc
        time.sleep(_backoff(attempt))
    raise AssertionError("unreachable")


# async-to-sync: end of generated code


def _retry_read(conn: Any, error: Exception, attempt: int) -> bool:
    """As `@operation(retry=True)`: a conflict on a transaction of the read's own."""
    return (
        isinstance(error, Retryable)
        and _conflict(error)
        and attempt < RETRY_ATTEMPTS
        and _owns_transaction(conn)
    )


@overload
def page_view_bytes(
    conn: psycopg.AsyncConnection[Any],
    /,
    slug: str,
    *,
    token: str | None = None,
    if_version: int | None = None,
    maintenance_horizon: dt.timedelta = ...,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> Coroutine[Any, Any, PageBytes | NotModified | None]: ...


@overload
def page_view_bytes(
    conn: psycopg.Connection[Any],
    /,
    slug: str,
    *,
    token: str | None = None,
    if_version: int | None = None,
    maintenance_horizon: dt.timedelta = ...,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> PageBytes | NotModified | None: ...


def page_view_bytes(
    conn: Any,
    /,
    slug: str,
    *,
    token: str | None = None,
    if_version: int | None = None,
    maintenance_horizon: dt.timedelta = _WEEK,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> Any:
    """The page `slug` as the bytes of one JSON document (`PageBytes`), or None.

    `page_view`'s arguments, access rule and versions: a wrong or missing token for a private
    page is None, like an unknown slug; with `if_version` the current version, `NotModified`
    (answered from the index lookup alone, migration 0028). For a sync connection the answer,
    for an async one a coroutine. One statement on a cursor reused per connection (safe to
    share the connection between threads or tasks: calls on one connection take turns).
    `locale` as `page_view`'s (migration 0033): `PageBytes.locale` says which was used; without
    it, the 0028 read as it was.
    """
    params = _read_params(slug, token, if_version, maintenance_horizon, maintenance_limit)
    if params is not None and locale is not None:
        params["locale"] = validate.locale("locale", locale)
    if isinstance(conn, psycopg.Connection):
        return None if params is None else _read_sync(conn, params)
    if isinstance(conn, psycopg.AsyncConnection):
        return _none() if params is None else _read_async(conn, params)
    raise _not_a_connection(conn, "page_view_bytes")


async def _none() -> None:
    return None


def decode_page_bytes(answer: PageBytes, zone: dt.tzinfo | None = None) -> PageView:
    """The `PageView` a `PageBytes` shows (what `page_view` returns for the same read; the
    page's `updated_at` in UTC, or in `zone`)."""
    document = _loads(answer.body)
    updated_at = _fromisoformat(document["updated_at"])
    document["updated_at"] = updated_at if zone is None else updated_at.astimezone(zone)
    return _decode(
        **document, version=answer.version, fresh_until=answer.fresh_until, locale=answer.locale
    )


# -- a per-process cache of decoded views -------------------------------------------------------


@attrs.frozen
class _Cached:
    view: PageView
    size: int


class PageViewCache(BoundedCache[_Cached]):
    """Decoded page views, per process, each hit validated by a conditional read.

    `get(conn, slug, token=..., maintenance_horizon=..., maintenance_limit=...)` answers what
    `page_view` answers: it sends `page_view_bytes` with `if_version` the cached version (one
    index lookup on the server when unchanged, and the decoded view is reused), else decodes
    the new body and keeps it. So a cached view is never older than a conditional read would
    be; a private page still needs its token on every call (a wrong token is None, and the
    cached view is not even looked at). Keyed by (slug, token digest, horizon, limit, locale:
    `locale=` as `page_view`'s, migration 0033); bounded by `max_entries` and `max_bytes`
    (the bodies' sizes), least recently used out first.
    Thread-safe (a lock held only around dictionary work, never across I/O), so also usable
    from asyncio with `aget` on an async connection; works on any connection statusdb reads
    on (a router's replicas, PgBouncer). `invalidate(event)` with a `feed.PageVersionEvent`
    (from `feed.listen_pages`) drops a page's older views early, freeing their memory.
    """

    def _lookup(self, params: dict[str, Any]) -> tuple[tuple[Any, ...], _Cached | None]:
        key = (
            params["slug"],
            params["token_hash"],
            params["horizon"],
            params["maintenance_limit"],
            # A translated read has the version of the page's own texts (one snapshot row
            # per page): without the locale in the key, a cached view in one language would
            # answer a read in another as "not modified".
            params.get("locale"),
        )
        return key, self._get(key)

    def _settle(self, key: tuple[Any, ...], entry: _Cached | None, answer: Any) -> PageView | None:
        if answer is None:
            self._put(key, None)
            return None
        if isinstance(answer, NotModified) and entry is not None:
            self.hits += 1
            return entry.view
        view = decode_page_bytes(answer)
        self.misses += 1
        self._put(key, _Cached(view, len(answer.body)))
        return view

    def get(
        self,
        conn: psycopg.Connection[Any],
        slug: str,
        *,
        token: str | None = None,
        maintenance_horizon: dt.timedelta = _WEEK,
        maintenance_limit: int = 20,
        locale: str | None = None,
    ) -> PageView | None:
        """`page_view(conn, slug, ...)`, decoded once per version (and per `locale`)."""
        params = _bytes_params(slug, token, None, maintenance_horizon, maintenance_limit)
        if params is None:
            return None
        if locale is not None:
            params["locale"] = validate.locale("locale", locale)
        key, entry = self._lookup(params)
        if entry is not None:
            params["if_version"] = entry.view.version
        return self._settle(key, entry, _read_sync(_connection(conn), params))

    async def aget(
        self,
        conn: psycopg.AsyncConnection[Any],
        slug: str,
        *,
        token: str | None = None,
        maintenance_horizon: dt.timedelta = _WEEK,
        maintenance_limit: int = 20,
        locale: str | None = None,
    ) -> PageView | None:
        """`get` on an async connection."""
        params = _bytes_params(slug, token, None, maintenance_horizon, maintenance_limit)
        if params is None:
            return None
        if locale is not None:
            params["locale"] = validate.locale("locale", locale)
        if not isinstance(conn, psycopg.AsyncConnection):
            raise _not_a_connection(conn, "PageViewCache.aget")
        key, entry = self._lookup(params)
        if entry is not None:
            params["if_version"] = entry.view.version
        return self._settle(key, entry, await _read_async(conn, params))

    def invalidate(self, event: Any = None) -> int:
        """Drop the views `event` (a `feed.PageVersionEvent`) makes stale, or all: how many."""
        if event is None:
            return self._drop_where(lambda entry: True)
        return self._drop_where(
            lambda entry: (
                entry.view.page.id == event.status_page_id and entry.view.version < event.version
            )
        )


def _connection(conn: Any) -> psycopg.Connection[Any]:
    if not isinstance(conn, psycopg.Connection):
        raise _not_a_connection(conn, "PageViewCache.get")
    return conn
