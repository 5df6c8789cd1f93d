"""Maintenance windows: planned work on a page's components, one-off or recurring.

A window covers components of one page (or none: a page-wide notice that changes no status)
from start_time to end_time. While a window is IN_PROGRESS with auto_update_status, the
database shows its components UNDER_MAINTENANCE (migration 0003); nothing here writes component
statuses.

Lifecycle: SCHEDULED -> IN_PROGRESS -> COMPLETED, or CANCELLED by `cancel`; COMPLETED and
CANCELLED are final. `create` and `update` never change a status: only `advance`, the step a
scheduler calls every minute, does, and it returns every transition it made exactly once even
when several schedulers run, so that whoever notifies subscribers sees each start and end once.

Recurrence: `recurrence_rule` is one RFC 5545 RRULE value (``FREQ=WEEKLY;BYDAY=SU``), expanded
by `statusdb.domain.recurrence` from the series' first occurrence (its DTSTART) as wall-clock
time in the window's `time_zone`, so occurrences keep their wall-clock time across daylight-saving
changes. As RFC 5545 (3.3.5) says, a local time that does not exist (the spring-forward gap) is
read with the offset before the gap (DTSTART 02:30 happens at 03:30 that day; the days after
keep 02:30), and an ambiguous one (fall-back) as its first instance (a series cannot start at
the second one; a one-off window can). Every occurrence lasts exactly end_time - start_time
(RFC 5545 3.8.5.3). `start_time`/`end_time` always hold the current or next occurrence, so SQL
readers need no expansion: when one ends, `advance` moves the window back to SCHEDULED on its
next occurrence, or to COMPLETED (keeping its last occurrence) when the rule has no more.
Occurrences that ended while no scheduler ran are skipped silently: they never showed, so they
start and end nothing.

Time is exact: every datetime returned is in UTC, and every comparison and duration is computed
on instants, whatever zone the caller gives or the connection's TimeZone makes psycopg return
(PEP 495 compares and subtracts two datetimes sharing a tzinfo by wall clock, ignoring `fold`).
Expansion is bounded (see `statusdb.domain.recurrence`): rules are refused when they fire more than
once a minute or never occur, and `list_upcoming` lists at most MAX_OCCURRENCES_PER_WINDOW
occurrences per window. One bad window never stalls the scheduler: `advance` records it in
maintenance_window_scheduler_error (`scheduler_errors`) and moves every other window on.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
from psycopg.rows import class_row, dict_row, tuple_row

from statusdb import groups, idempotency
from statusdb.db.executor import Op, execute, many, one, operation, optional
from statusdb.domain import recurrence, validate
from statusdb.domain.types import (
    MAINTENANCE_STATUS,
    CreateMaintenanceWindowInput,
    MaintenanceStatus,
)
from statusdb.errors import Conflict, InvalidInput, NotFound, Retryable, StatusdbError

_log = logging.getLogger(__name__)

#: Longest `list_upcoming` horizon: expansion stays bounded whatever the rules.
MAX_HORIZON: Final = dt.timedelta(days=366)
#: Most occurrences `list_upcoming` lists per window (its earliest in the horizon): a rule that
#: fires every minute would otherwise list half a million for a year.
MAX_OCCURRENCES_PER_WINDOW: Final = 1000

#: How many occurrences of a new rule are checked for overlap (a rule is periodic in practice,
#: and this covers years of weekly and daily series, and the DST changes of the first year of
#: hourly ones).
_OVERLAP_CHECKED_OCCURRENCES: Final = 1000

_FINAL: Final[tuple[MaintenanceStatus, ...]] = ("COMPLETED", "CANCELLED")

#: Reminder lead time of a window unless given (maintenance_window.reminder_lead, 0018).
DEFAULT_REMINDER_LEAD: Final = dt.timedelta(hours=1)
#: The longest reminder lead (the column's CHECK): the scheduler's scan stays bounded.
MAX_REMINDER_LEAD: Final = dt.timedelta(days=7)


def _reminder_lead(value: dt.timedelta) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or not dt.timedelta(0) <= value <= MAX_REMINDER_LEAD:
        raise InvalidInput(
            "reminder_lead must be a timedelta from 0 (no reminder) to "
            f"{MAX_REMINDER_LEAD.days} days"
        )
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    """Row converter: every datetime statusdb returns is in UTC.

    psycopg returns timestamptz in the connection's TimeZone, which can be the very ZoneInfo a
    window uses; two datetimes with the same tzinfo compare and subtract by wall clock (PEP 495),
    so in a fall-back hour 01:30 EDT - 01:30 EST would be 0. In UTC they are exact.
    """
    return value.astimezone(dt.UTC)


def _utc_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC)


@attrs.frozen
class MaintenanceWindow:
    """A window as stored, with the ids of the components it covers (sorted)."""

    id: str
    status_page_id: str
    title: str
    description: str | None
    #: The current or next occurrence (for a COMPLETED series: its last one).
    start_time: dt.datetime = attrs.field(converter=_utc)
    end_time: dt.datetime = attrs.field(converter=_utc)
    recurrence_rule: str | None
    #: First occurrence of a series (its DTSTART's instant); None for a one-off window.
    recurrence_start: dt.datetime | None = attrs.field(converter=_utc_or_none)
    #: The series' DTSTART as wall-clock time in time_zone (naive); None for a one-off window
    #: (and for series written before migration 0015: then recurrence_start in time_zone).
    recurrence_local_start: dt.datetime | None
    time_zone: str
    auto_update_status: bool
    notify_subscribers: bool
    status: MaintenanceStatus
    created_by_id: str
    created_at: dt.datetime = attrs.field(converter=_utc)
    updated_at: dt.datetime = attrs.field(converter=_utc)
    component_ids: tuple[str, ...] = attrs.field(converter=tuple)
    #: How long before each occurrence subscribers get a reminder (0: none); migration 0018.
    reminder_lead: dt.timedelta = DEFAULT_REMINDER_LEAD

    @property
    def duration(self) -> dt.timedelta:
        """How long each occurrence lasts (exact: the instants are in UTC)."""
        return self.end_time - self.start_time


@attrs.frozen
class MaintenanceOccurrence:
    """One occurrence of a window, as `list_upcoming` expands them (times in UTC)."""

    window_id: str
    title: str
    start_time: dt.datetime
    end_time: dt.datetime
    component_ids: tuple[str, ...]
    status: MaintenanceStatus


@attrs.frozen
class Transition:
    """A status change `advance` made.

    `at` is the `now` the step ran for; `occurrence_start` is the start of the occurrence that
    began (to IN_PROGRESS) or that ended or was missed (from IN_PROGRESS, or to COMPLETED).
    """

    window_id: str
    from_status: MaintenanceStatus
    to_status: MaintenanceStatus
    at: dt.datetime
    occurrence_start: dt.datetime


@attrs.frozen
class SchedulerError:
    """A window the scheduler's step could not move on, and why (table
    maintenance_window_scheduler_error). It is skipped until it advances or is updated."""

    window_id: str
    status_page_id: str
    error: str
    first_failed_at: dt.datetime = attrs.field(converter=_utc)
    last_failed_at: dt.datetime = attrs.field(converter=_utc)
    failures: int


@attrs.frozen
class _EndedSeries:
    """A recurring window whose occurrence is over, as locked by `advance`."""

    id: str
    status: MaintenanceStatus
    start_time: dt.datetime = attrs.field(converter=_utc)
    end_time: dt.datetime = attrs.field(converter=_utc)
    recurrence_rule: str
    recurrence_start: dt.datetime = attrs.field(converter=_utc)
    recurrence_local_start: dt.datetime | None
    time_zone: str


@attrs.frozen
class _Move:
    """Where `advance` puts an ended recurring window, and the transitions that makes."""

    window_id: str
    status: MaintenanceStatus
    start_time: dt.datetime
    end_time: dt.datetime
    transitions: tuple[Transition, ...]


_row = class_row(MaintenanceWindow)
_WINDOW_FIELDS: Final = tuple(field.name for field in attrs.fields(MaintenanceWindow))


# --- validation -------------------------------------------------------------------------------


def _flag(field: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false, not {type(value).__name__}")
    return value


def _series_start(field: str, value: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A recurring window's start_time: aware; a skipped local time only in the window's zone.

    In the window's own zone start_time is the series' DTSTART as wall-clock time, so a time
    the clocks skip is accepted there and read as RFC 5545 says (see statusdb.domain.recurrence).
    """
    if (
        isinstance(value, dt.datetime)
        and _in_zone(value, zone)
        and not recurrence.exists(value, zone)
    ):
        return value
    return validate.aware(field, value)


@attrs.frozen
class _Times:
    """A window's checked times: instants in UTC, and a series' DTSTART as wall-clock time."""

    start: dt.datetime
    end: dt.datetime
    local_start: dt.datetime | None


def _one_off_times(start: dt.datetime, end: dt.datetime) -> _Times:
    """Instants of a one-off window; end strictly after start (compared as instants)."""
    start = recurrence.utc(validate.aware("start_time", start))
    end = recurrence.utc(validate.aware("end_time", end))
    validate.time_range(start, end)
    return _Times(start, end, None)


def _series_times(
    rule: str,
    zone: zoneinfo.ZoneInfo,
    *,
    given_start: dt.datetime,
    end: dt.datetime,
    local_start: dt.datetime | None = None,
) -> _Times:
    """Check a series whose first occurrence is `given_start` (or the wall-clock `local_start`).

    The first occurrence's instant is DTSTART read as RFC 5545 says; every occurrence lasts
    end - that instant.
    """
    given_start = _series_start("start_time", given_start, zone)
    end = recurrence.utc(validate.aware("end_time", end))
    local = recurrence.local_start_of(given_start, zone) if local_start is None else local_start
    first = recurrence.instant(local, zone)
    validate.time_range(first, end)
    series = recurrence.Series(rule, local, zone, end - first)
    recurrence.check_series(
        series, given_start=given_start, overlap_checked=_OVERLAP_CHECKED_OCCURRENCES
    )
    return _Times(first, end, local)


def _in_zone(value: dt.datetime, zone: zoneinfo.ZoneInfo) -> bool:
    """Whether an aware datetime is given in `zone` itself (wall-clock time there)."""
    return isinstance(value.tzinfo, zoneinfo.ZoneInfo) and value.tzinfo.key == zone.key


def _statuses(values: Sequence[MaintenanceStatus] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidInput("statuses must be a list of statuses, not a string")
    return [validate.one_of("statuses", value, MAINTENANCE_STATUS) for value in values]


def _written(row: dict[str, Any] | None, status_page_id: str) -> MaintenanceWindow:
    """The window a create or update wrote, or the error that says why nothing was written."""
    if row is None or row.get("page_found") is False:
        raise NotFound(f"no status page with id {status_page_id!r}")
    foreign = row["foreign_component_ids"]
    if foreign:
        raise InvalidInput(
            f"component_ids: {', '.join(repr(i) for i in foreign)} "
            f"{'is not a component' if len(foreign) == 1 else 'are not components'} "
            f"of status page {status_page_id!r}"
        )
    if row["id"] is None:  # defensive: nothing written, yet no refusal reported
        raise NotFound("the maintenance window no longer exists")
    return MaintenanceWindow(**{name: row[name] for name in _WINDOW_FIELDS})


# --- operations -------------------------------------------------------------------------------


# --- operations -------------------------------------------------------------------------------


@operation(retry=True, atomic_when="idempotency_key")
def create(
    status_page_id: str,
    data: CreateMaintenanceWindowInput | None = None,
    *,
    title: str | None = None,
    start_time: dt.datetime | None = None,
    end_time: dt.datetime | None = None,
    component_ids: Sequence[str] = (),
    description: str | None = None,
    recurrence_rule: str | None = None,
    auto_update_status: bool = True,
    notify_subscribers: bool = True,
    created_by_id: str,
    time_zone: str = "UTC",
    group_ids: Sequence[str] = (),
    reminder_lead: dt.timedelta = DEFAULT_REMINDER_LEAD,
    idempotency_key: str | None = None,
) -> Op[MaintenanceWindow]:
    """Schedule a window (SCHEDULED) with its components, in one statement.

    `group_ids` (groups of the page, statusdb.groups) stand for their member components at the
    time of writing, subgroups included: they are added to `component_ids` (a component added
    to a group later is not covered).

    Keywords as every other `create`: ``create(conn, page_id, title=..., start_time=...,
    end_time=..., component_ids=[...], recurrence_rule=..., created_by_id=...,
    time_zone=...)``. A `CreateMaintenanceWindowInput` as second argument is still accepted
    (then give no window field as keyword).

    Times are instants: a one-off window may run from 01:30 EDT to 01:15 EST (45 minutes). A
    recurring window's start_time must be the first occurrence of its rule in `time_zone`;
    given in that zone it is the series' DTSTART as wall-clock time, read as RFC 5545 says (a
    skipped time takes the offset before the gap; an ambiguous one is its first instance, so a
    series cannot start at the second 01:30). The window starts when the scheduler's `advance`
    reaches start_time, not here. Subscribers are told it was scheduled (at commit), and
    reminded `reminder_lead` before each occurrence (0 for no reminder; at most 7 days).

    `idempotency_key` (at most 200 characters, per page): a repeat with the same key schedules
    nothing (and announces nothing) and returns the window the first call made, as it is now
    (`statusdb.idempotency`; the same key with other arguments: Conflict).
    """
    chosen_key = idempotency.key(idempotency_key)
    if data is not None:
        if not isinstance(data, CreateMaintenanceWindowInput):
            raise InvalidInput("data must be a CreateMaintenanceWindowInput")
        if title is not None or start_time is not None or end_time is not None:
            raise InvalidInput("give the window as data or as keywords, not both")
        title, start_time, end_time = data.title, data.start_time, data.end_time
        component_ids, description = data.component_ids, data.description
        recurrence_rule = data.recurrence_rule
        auto_update_status, notify_subscribers = data.auto_update_status, data.notify_subscribers
    if title is None or start_time is None or end_time is None:
        raise InvalidInput("title, start_time and end_time are required")
    zone = recurrence.zone(time_zone)
    rule = None if recurrence_rule is None else recurrence.parse_rule(recurrence_rule)
    times = (
        _one_off_times(start_time, end_time)
        if rule is None
        else _series_times(rule, zone, given_start=start_time, end=end_time)
    )
    page_id = validate.identifier("status_page_id", status_page_id)
    params = {
        "status_page_id": page_id,
        "title": validate.text("title", title, max_length=500),
        "description": validate.optional_text("description", description, max_length=10_000),
        "start_time": times.start,
        "end_time": times.end,
        "recurrence_rule": rule,
        "recurrence_start": None if rule is None else times.start,
        "recurrence_local_start": times.local_start,
        "time_zone": time_zone,
        "auto_update_status": _flag("auto_update_status", auto_update_status),
        "notify_subscribers": _flag("notify_subscribers", notify_subscribers),
        "reminder_lead": _reminder_lead(reminder_lead),
        "created_by_id": validate.identifier("created_by_id", created_by_id),
        "component_ids": validate.identifiers("component_ids", component_ids),
    }
    if group_ids:
        # A read before the insert, nothing to undo: the operation need not be atomic.
        members = yield from groups.member_component_ids.body(page_id, group_ids)
        named = validate.identifiers("component_ids", component_ids)
        params["component_ids"] = list(dict.fromkeys([*named, *members]))

    def write() -> Op[MaintenanceWindow]:
        row = yield from optional("maintenance_create", params, dict_row)
        return _written(row, page_id)

    return (
        yield from idempotency.guarded(
            "maintenance.create",
            chosen_key,
            params,
            write,
            get.body,
            lambda window: window.id,
            status_page_id=page_id,
        )
    )


@operation(retry=True)
def get(window_id: str) -> Op[MaintenanceWindow]:
    """One window by id."""
    params = {"id": validate.identifier("window_id", window_id)}
    return (
        yield from one(
            "maintenance_get",
            params,
            _row,
            not_found=f"no maintenance window with id {window_id!r}",
        )
    )


@operation(retry=True)
def list_for_page(
    status_page_id: str, *, statuses: Sequence[MaintenanceStatus] | None = None
) -> Op[list[MaintenanceWindow]]:
    """A page's windows by start time; only those in `statuses` when given."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "statuses": _statuses(statuses),
    }
    return (yield from many("maintenance_list_for_page", params, _row))


@operation(atomic=True, retry=True)
def update(
    window_id: str,
    *,
    title: str | validate.Unset = validate.UNSET,
    description: str | validate.Unset | None = validate.UNSET,
    start_time: dt.datetime | validate.Unset = validate.UNSET,
    end_time: dt.datetime | validate.Unset = validate.UNSET,
    recurrence_rule: str | validate.Unset | None = validate.UNSET,
    time_zone: str | validate.Unset = validate.UNSET,
    auto_update_status: bool | validate.Unset = validate.UNSET,
    notify_subscribers: bool | validate.Unset = validate.UNSET,
    component_ids: Sequence[str] | validate.Unset = validate.UNSET,
    reminder_lead: dt.timedelta | validate.Unset = validate.UNSET,
) -> Op[MaintenanceWindow]:
    """Change a window; fields left out keep their value. `component_ids` replaces the set.

    Locks the window, merges the change, checks the result as `create` would, and writes it in
    one more statement. The schedule (times, rule, zone, components) of a COMPLETED or CANCELLED
    window is history and does not change (Conflict); a running window keeps its start_time
    (extend or shorten it with end_time, or cancel it; re-sending the same instant, in any
    zone, is no change). Changing a series' start_time, rule or zone starts the series over at
    start_time (COUNT counts from there); changing only its end_time changes the length of
    every occurrence. Times compare as instants; a series' start_time given in its zone is its
    DTSTART as wall-clock time (see `create`).
    """
    wid = validate.identifier("window_id", window_id)
    if not isinstance(title, validate.Unset):
        validate.text("title", title, max_length=500)
    if not isinstance(description, validate.Unset):
        validate.optional_text("description", description, max_length=10_000)
    if not isinstance(start_time, validate.Unset) and not isinstance(start_time, dt.datetime):
        validate.aware("start_time", start_time)
    if not isinstance(end_time, validate.Unset):
        validate.aware("end_time", end_time)
    if isinstance(recurrence_rule, str):
        recurrence_rule = recurrence.parse_rule(recurrence_rule)
    if not isinstance(time_zone, validate.Unset):
        recurrence.zone(time_zone)
    if not isinstance(auto_update_status, validate.Unset):
        _flag("auto_update_status", auto_update_status)
    if not isinstance(notify_subscribers, validate.Unset):
        _flag("notify_subscribers", notify_subscribers)
    if not isinstance(reminder_lead, validate.Unset):
        _reminder_lead(reminder_lead)
    new_components = (
        None
        if isinstance(component_ids, validate.Unset)
        else validate.identifiers("component_ids", component_ids)
    )

    current = yield from one(
        "maintenance_lock", {"id": wid}, _row, not_found=f"no maintenance window with id {wid!r}"
    )
    rule = (
        current.recurrence_rule if isinstance(recurrence_rule, validate.Unset) else recurrence_rule
    )
    zone_name = current.time_zone if isinstance(time_zone, validate.Unset) else time_zone
    # A one-off window's zone is only shown (a row written by SQL may name one zoneinfo lacks).
    zone = recurrence.zone(zone_name) if rule is not None else zoneinfo.ZoneInfo("UTC")
    if isinstance(start_time, validate.Unset):
        start = current.start_time
    elif rule is not None:
        given = _series_start("start_time", start_time, zone)
        skipped = _in_zone(given, zone) and not recurrence.exists(given, zone)
        start = recurrence.instant(given, zone) if skipped else recurrence.utc(given)
    else:
        start = recurrence.utc(validate.aware("start_time", start_time))
    end = current.end_time if isinstance(end_time, validate.Unset) else recurrence.utc(end_time)
    schedule_changed = (
        start != current.start_time
        or end != current.end_time
        or rule != current.recurrence_rule
        or zone_name != current.time_zone
        or (new_components is not None and set(new_components) != set(current.component_ids))
    )
    if schedule_changed and current.status in _FINAL:
        raise Conflict(
            f"maintenance window {wid!r} is {current.status}: its times, rule, time zone and "
            "components no longer change (create a new window instead)"
        )
    if current.status == "IN_PROGRESS" and start != current.start_time:
        raise Conflict(
            f"maintenance window {wid!r} is in progress: its start_time no longer changes "
            "(change end_time to extend or shorten it, or cancel it)"
        )
    validate.time_range(start, end)
    restart = rule is not None and (
        current.recurrence_start is None
        or start != current.start_time
        or rule != current.recurrence_rule
        or zone_name != current.time_zone
    )
    recurrence_start = None if rule is None else (start if restart else current.recurrence_start)
    local_start: dt.datetime | None = None
    if rule is not None and recurrence_start is not None:
        if restart:
            given_start = start if isinstance(start_time, validate.Unset) else start_time
            times = _series_times(rule, zone, given_start=given_start, end=end)
            start, recurrence_start, local_start = times.start, times.start, times.local_start
        else:
            local_start = _local_start(current, zone)
            if end != current.end_time:
                _series_times(
                    rule,
                    zone,
                    given_start=recurrence_start,
                    end=recurrence_start + (end - start),
                    local_start=local_start,
                )
    params = {
        "id": wid,
        "title": current.title if isinstance(title, validate.Unset) else title,
        "description": current.description
        if isinstance(description, validate.Unset)
        else description,
        "start_time": start,
        "end_time": end,
        "recurrence_rule": rule,
        "recurrence_start": recurrence_start,
        "recurrence_local_start": local_start,
        "time_zone": zone_name,
        "auto_update_status": current.auto_update_status
        if isinstance(auto_update_status, validate.Unset)
        else auto_update_status,
        "notify_subscribers": current.notify_subscribers
        if isinstance(notify_subscribers, validate.Unset)
        else notify_subscribers,
        "reminder_lead": current.reminder_lead
        if isinstance(reminder_lead, validate.Unset)
        else reminder_lead,
        "set_component_ids": new_components is not None,
        "component_ids": new_components or [],
    }
    if (
        new_components is not None
        and current.status == "IN_PROGRESS"
        and params["auto_update_status"] != current.auto_update_status
    ):
        # Its effect and its links change in one statement: the window's trigger and the
        # links' trigger each take status keys, the second after the first's (issue 28). Take
        # them all ahead, in the global lock order, after the window's row (held already).
        yield from execute(
            "maintenance_lock_ahead",
            {"id": wid, "component_ids": new_components, "status_page_id": current.status_page_id},
        )
    row = yield from optional("maintenance_update", params, dict_row)
    return _written(row, current.status_page_id)


def _local_start(window: MaintenanceWindow | _EndedSeries, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A stored series' DTSTART as wall-clock time (rows before 0015: recurrence_start's)."""
    if window.recurrence_local_start is not None:
        return window.recurrence_local_start
    assert window.recurrence_start is not None
    return recurrence.local_start_of(window.recurrence_start, zone)


def _series_of(window: MaintenanceWindow | _EndedSeries) -> recurrence.Series:
    """A stored window's series (InvalidInput if it cannot be interpreted)."""
    assert window.recurrence_rule is not None
    zone = recurrence.zone(window.time_zone)
    return recurrence.Series(
        recurrence.parse_rule(window.recurrence_rule),
        _local_start(window, zone),
        zone,
        window.end_time - window.start_time,
    )


@operation(retry=True)
def cancel(window_id: str, *, now: dt.datetime | None = None) -> Op[MaintenanceWindow]:
    """Cancel a window (a whole series, if recurring): it will not start (again).

    A running window ends: its end_time becomes `now` (default: the transaction's time), and
    its components leave maintenance. Cancelling a cancelled window changes nothing and returns
    it; a COMPLETED window cannot be cancelled (Conflict). Cancelling makes no `advance`
    transition: the caller knows it cancelled.
    """
    params = {
        "id": validate.identifier("window_id", window_id),
        "now": None if now is None else validate.aware("now", now),
    }
    row = yield from optional("maintenance_cancel", params, dict_row)
    if row is None:
        raise NotFound(f"no maintenance window with id {window_id!r}")
    if row["previous_status"] == "COMPLETED":
        raise Conflict(f"maintenance window {window_id!r} is already COMPLETED")
    if row["previous_status"] == "CANCELLED":
        # Nothing was written, so this read needs no atomicity; it is a fresh statement so that
        # it sees the cancellation a concurrent call committed.
        return (yield from get.body(window_id))
    return MaintenanceWindow(**{name: row[name] for name in _WINDOW_FIELDS})


@operation(retry=True)
def delete(window_id: str) -> Op[None]:
    """Delete a window and its component links (a running window stops counting)."""
    count = yield from execute(
        "maintenance_delete", {"id": validate.identifier("window_id", window_id)}
    )
    if count == 0:
        raise NotFound(f"no maintenance window with id {window_id!r}")


@operation(retry=True)
def list_upcoming(
    status_page_id: str, *, now: dt.datetime, horizon: dt.timedelta
) -> Op[list[MaintenanceOccurrence]]:
    """Occurrences of a page's scheduled and running windows that overlap [now, now + horizon).

    A recurring window contributes every occurrence in that span, up to
    MAX_OCCURRENCES_PER_WINDOW (its earliest). The window's current occurrence carries its
    status; later ones are SCHEDULED. Sorted by start, then window id; times in UTC.
    """
    now = recurrence.utc(validate.aware("now", now))
    if not isinstance(horizon, dt.timedelta) or not dt.timedelta(0) < horizon <= MAX_HORIZON:
        raise InvalidInput(f"horizon must be a timedelta longer than 0 and at most {MAX_HORIZON}")
    try:
        until = now + horizon
    except OverflowError:
        raise InvalidInput(
            "now + horizon is past the last representable time (year 9999); use an earlier now"
        ) from None
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "now": now,
        "until": until,
    }
    windows = yield from many("maintenance_list_upcoming", params, _row)
    occurrences = [o for w in windows for o in _occurrences(w, now, until)]
    occurrences.sort(key=lambda o: (o.start_time, o.window_id))
    return occurrences


def _occurrences(
    window: MaintenanceWindow, now: dt.datetime, until: dt.datetime
) -> Iterator[MaintenanceOccurrence]:
    def occurrence(
        start: dt.datetime, end: dt.datetime, status: MaintenanceStatus
    ) -> MaintenanceOccurrence:
        return MaintenanceOccurrence(
            window.id, window.title, start, end, window.component_ids, status
        )

    listed = 0
    if window.end_time > now and window.start_time < until:
        listed += 1
        yield occurrence(window.start_time, window.end_time, window.status)
    if window.recurrence_rule is None or window.recurrence_start is None:
        return
    try:
        series = _series_of(window)
        # Occurrences start after the current one ends (they do not overlap); from now on, at
        # the earliest, to skip what is over (an end after now needs a start after now - d).
        begin = max(window.end_time, now - series.duration)
        for start, end in series.starting_from(begin):
            if start >= until or listed >= MAX_OCCURRENCES_PER_WINDOW:
                break
            if end > now and start >= window.end_time:
                listed += 1
                yield occurrence(start, end, "SCHEDULED")
    except Exception as exc:  # a row written around statusdb; the current occurrence still shows
        _log.warning(
            "maintenance window %s: cannot expand recurrence_rule %r in %s (%s); "
            "listing its occurrences up to here only",
            window.id,
            window.recurrence_rule,
            window.time_zone,
            exc,
        )


@operation(retry=True)
def scheduler_errors(status_page_id: str | None = None) -> Op[list[SchedulerError]]:
    """Windows the scheduler's step could not move on (of one page, or all), with the error.

    The same rows as ``SELECT * FROM maintenance_window_scheduler_error`` (migration 0015).
    """
    params = {
        "status_page_id": None
        if status_page_id is None
        else validate.identifier("status_page_id", status_page_id)
    }
    return (yield from many("maintenance_scheduler_errors", params, class_row(SchedulerError)))


def _isolated(name: str, params: Mapping[str, Any], row: Any) -> Op[list[Any]]:
    """Run query `name` in a savepoint; its rows. A failure rolls the savepoint back and is
    raised; a Retryable one (deadlock, lost connection) as it is, for the whole step."""
    yield from execute("maintenance_step_savepoint", {})
    try:
        rows = yield from many(name, params, row)
    except Retryable:
        raise
    except StatusdbError:
        yield from execute("maintenance_step_rollback", {})
        yield from execute("maintenance_step_release", {})
        raise
    yield from execute("maintenance_step_release", {})
    return rows


@operation(atomic=True, retry=True)
def advance(now: dt.datetime) -> Op[list[Transition]]:
    """The scheduler's step: bring every window's status and occurrence up to `now`.

    * SCHEDULED -> IN_PROGRESS when start_time <= now < end_time;
    * a one-off window whose end_time <= now -> COMPLETED (straight from SCHEDULED when the
      whole window was missed);
    * a recurring window whose occurrence is over moves to its next occurrence that has not
      ended: IN_PROGRESS -> SCHEDULED (and -> IN_PROGRESS again when that one has begun), or
      -> COMPLETED when the rule has no more occurrences. Missed occurrences are skipped.

    One bad window never stalls the others: a window the step cannot move on (its rule cannot
    be expanded within the bounds, or the database refuses its change) is logged, recorded in
    maintenance_window_scheduler_error (see `scheduler_errors`) and skipped; every other window
    advances. Its record goes when it next advances or is updated.

    Returns the transitions made, by occurrence start then window id. Idempotent: a second call
    with the same `now` finds nothing to do. Safe with several schedulers: rows are taken with
    SKIP LOCKED and re-checked after locking, so each transition is made (and returned) by
    exactly one caller. A Retryable error (say, a deadlock with a concurrent status change)
    means the step made nothing: call again. Statements: one for the transitions that need no
    rule, one to lock ended series, one (only when there are some) to move them, one for the
    reminders, each in a savepoint; after a failure, the same one window at a time.

    Notifications (migration 0018): the transitions write their maintenance_started and
    maintenance_completed events through the window's trigger, and the step writes a
    maintenance_reminder for each SCHEDULED occurrence starting within its window's
    reminder_lead of `now`: once per occurrence whatever the number of schedulers, never for
    a cancelled window.
    """
    at = recurrence.utc(validate.aware("now", now))
    failures: dict[str, str] = {}
    advanced: list[str] = []
    rows: list[tuple[Any, ...]] = []
    try:
        rows = yield from _isolated("maintenance_advance_by_time", {"now": at}, tuple_row)
    except Retryable:
        raise
    except StatusdbError:
        due = yield from many("maintenance_due_by_time", {"now": at}, tuple_row)
        for (window_id,) in due:
            try:
                rows.extend(
                    (
                        yield from _isolated(
                            "maintenance_advance_one_by_time",
                            {"now": at, "window_id": window_id},
                            tuple_row,
                        )
                    )
                )
            except Retryable:
                raise
            except StatusdbError as exc:
                failures[window_id] = f"cannot start or end: {exc}"
    transitions = [
        Transition(window_id, from_status, to_status, at, recurrence.utc(occurrence_start))
        for window_id, from_status, to_status, occurrence_start in rows
    ]
    advanced.extend(t.window_id for t in transitions)

    ended = yield from many("maintenance_lock_ended_series", {"now": at}, class_row(_EndedSeries))
    moves: list[_Move] = []
    for window in ended:
        try:
            moves.append(_next_occurrence(window, at))
        except Exception as exc:  # a row written around statusdb, a rule past the bounds
            failures[window.id] = (
                f"cannot expand recurrence_rule {window.recurrence_rule!r} "
                f"in {window.time_zone}: {exc}"
            )
    if moves:
        try:
            yield from _move(moves)
            done = moves
        except Retryable:
            raise
        except StatusdbError:
            done = []
            for move in moves:
                try:
                    yield from _move([move])
                    done.append(move)
                except Retryable:
                    raise
                except StatusdbError as exc:
                    failures[move.window_id] = f"cannot move to the next occurrence: {exc}"
        transitions.extend(t for m in done for t in m.transitions)
        advanced.extend(m.window_id for m in done)
    try:
        # Reminders (migration 0018): once per occurrence, never for a cancelled window; rows
        # another scheduler or a cancel holds are skipped (statusdb_maintenance_remind).
        yield from _isolated("event_remind", {"now": at}, tuple_row)
    except Retryable:
        raise
    except StatusdbError as exc:
        _log.error("maintenance reminders skipped by the scheduler step: %s", exc)
    if advanced:
        yield from execute("maintenance_clear_scheduler_errors", {"ids": advanced})
    if failures:
        for window_id, error in failures.items():
            _log.error("maintenance window %s skipped by the scheduler: %s", window_id, error)
        yield from execute(
            "maintenance_record_scheduler_errors",
            {"now": at, "ids": list(failures), "errors": list(failures.values())},
        )
    transitions.sort(key=lambda t: (t.occurrence_start, t.window_id))
    return transitions


def _move(moves: Sequence[_Move]) -> Op[list[Any]]:
    return (
        yield from _isolated_execute(
            "maintenance_move_series",
            {
                "ids": [m.window_id for m in moves],
                "statuses": [m.status for m in moves],
                "start_times": [m.start_time for m in moves],
                "end_times": [m.end_time for m in moves],
            },
        )
    )


def _isolated_execute(name: str, params: Mapping[str, Any]) -> Op[list[Any]]:
    yield from execute("maintenance_step_savepoint", {})
    try:
        yield from execute(name, params)
    except Retryable:
        raise
    except StatusdbError:
        yield from execute("maintenance_step_rollback", {})
        yield from execute("maintenance_step_release", {})
        raise
    yield from execute("maintenance_step_release", {})
    return []


def _next_occurrence(window: _EndedSeries, now: dt.datetime) -> _Move:
    series = _series_of(window)
    last = (window.start_time, window.end_time)
    upcoming = None
    try:
        occurrences = list(_until_upcoming(series.starting_from(window.end_time), now))
    except recurrence.ExpansionLimit:
        # Missed for so long that walking every missed occurrence is past the bound: start
        # from the first occurrence that can still be running.
        occurrences = list(_until_upcoming(series.starting_from(now - series.duration), now))
    for occurrence in occurrences:
        if occurrence[1] > now:
            upcoming = occurrence
            break
        last = occurrence  # ended while no scheduler ran: skipped
    if upcoming is None:
        done = Transition(window.id, window.status, "COMPLETED", now, window.start_time)
        return _Move(window.id, "COMPLETED", last[0], last[1], (done,))
    transitions: list[Transition] = []
    if window.status == "IN_PROGRESS":
        transitions.append(
            Transition(window.id, "IN_PROGRESS", "SCHEDULED", now, window.start_time)
        )
    status: MaintenanceStatus = "SCHEDULED"
    if upcoming[0] <= now:
        transitions.append(Transition(window.id, "SCHEDULED", "IN_PROGRESS", now, upcoming[0]))
        status = "IN_PROGRESS"
    return _Move(window.id, status, upcoming[0], upcoming[1], tuple(transitions))


def _until_upcoming(
    occurrences: Iterator[tuple[dt.datetime, dt.datetime]], now: dt.datetime
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Occurrences up to the first that has not ended at `now` (the last two kept)."""
    previous = None
    for occurrence in occurrences:
        if occurrence[1] > now:
            if previous is not None:
                yield previous
            yield occurrence
            return
        previous = occurrence
    if previous is not None:
        yield previous
