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
with python-dateutil from `recurrence_start` (the series' first occurrence, its DTSTART) in the
window's `time_zone`, so occurrences keep their wall-clock time across daylight-saving changes.
As RFC 5545 (3.3.5) says, a local time that does not exist (the spring-forward gap) is read with
the offset before the gap, and an ambiguous one (fall-back) as its first instance. Every
occurrence lasts exactly end_time - start_time (RFC 5545 3.8.5.3). `start_time`/`end_time`
always hold the current or next occurrence, so SQL readers need no expansion: when one ends,
`advance` moves the window back to SCHEDULED on its next occurrence, or to COMPLETED (keeping its
last occurrence) when the rule has no more. Occurrences that ended while no scheduler ran are
skipped silently: they never showed, so they start and end nothing.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import logging
import re
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
from dateutil import rrule as rrules
from psycopg.rows import class_row, dict_row, tuple_row

from statusdb import validate
from statusdb.errors import Conflict, InvalidInput, NotFound
from statusdb.executor import Op, execute, many, one, operation, optional
from statusdb.types import MAINTENANCE_STATUS, CreateMaintenanceWindowInput, MaintenanceStatus

_log = logging.getLogger(__name__)

#: Longest `list_upcoming` horizon: expansion stays bounded whatever the rules.
MAX_HORIZON: Final = dt.timedelta(days=366)

#: How many occurrences of a new rule are checked for overlap (a rule is periodic in practice,
#: and this covers years of weekly and daily series, and the DST changes of the first year of
#: hourly ones).
_OVERLAP_CHECKED_OCCURRENCES: Final = 1000

_FREQUENCIES: Final = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
_RULE_PART: Final = re.compile(r"([A-Z]+)=([A-Z0-9,+-]+)")
_UTC_UNTIL: Final = re.compile(r"\d{8}T\d{6}Z")
_NOT_RRULE_PARTS: Final = ("DTSTART", "DTEND", "DURATION", "RDATE", "EXDATE", "EXRULE")
#: Numeric RRULE parts: allowed range and whether negative values (counting from the end) are.
_NUMERIC_PARTS: Final[Mapping[str, tuple[int, int, bool]]] = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYSETPOS": (1, 366, True),
}
_FINAL: Final[tuple[MaintenanceStatus, ...]] = ("COMPLETED", "CANCELLED")


@attrs.frozen
class MaintenanceWindow:
    """A window as stored, with the ids of the components it covers (sorted)."""

    id: str
    status_page_id: str
    title: str
    description: str | None
    #: The current or next occurrence (for a COMPLETED series: its last one).
    start_time: dt.datetime
    end_time: dt.datetime
    recurrence_rule: str | None
    #: First occurrence of a series (its DTSTART); None for a one-off window.
    recurrence_start: dt.datetime | None
    time_zone: str
    auto_update_status: bool
    notify_subscribers: bool
    status: MaintenanceStatus
    created_by_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    component_ids: tuple[str, ...] = attrs.field(converter=tuple)

    @property
    def duration(self) -> dt.timedelta:
        """How long each occurrence lasts."""
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
class _EndedSeries:
    """A recurring window whose occurrence is over, as locked by `advance`."""

    id: str
    status: MaintenanceStatus
    start_time: dt.datetime
    end_time: dt.datetime
    recurrence_rule: str
    recurrence_start: dt.datetime
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


def _zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name (the database checks the same names, see migration 0004)."""
    validate.text("time_zone", name, max_length=100)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"time_zone {name!r} is not a known IANA time zone name "
            "(for example 'Europe/Berlin', 'America/New_York' or 'UTC')"
        ) from None


def _recurrence_rule(value: str) -> str:
    """One RRULE value, checked part by part and put in canonical form.

    Canonical: upper case, without the optional ``RRULE:`` prefix; that is the form the
    database's maintenance_window_recurrence_rule_syntax_check expects.
    """
    rule = validate.text("recurrence_rule", value, max_length=1000).strip()
    if rule[:6].upper() == "RRULE:":
        rule = rule[6:].strip()
    rule = rule.upper()
    if any(name in rule for name in _NOT_RRULE_PARTS):
        raise InvalidInput(
            "recurrence_rule must be a single RRULE value such as 'FREQ=WEEKLY;BYDAY=SU': the "
            "series starts at start_time in time_zone, so DTSTART (and DTEND, DURATION, RDATE, "
            "EXDATE, EXRULE) are not accepted"
        )
    parts: dict[str, str] = {}
    for part in rule.split(";"):
        match = _RULE_PART.fullmatch(part)
        if match is None:
            raise InvalidInput(
                f"recurrence_rule part {part!r} is not NAME=VALUE "
                "(for example 'FREQ=WEEKLY;BYDAY=MO,TH')"
            )
        name, values = match.groups()
        if name in parts:
            raise InvalidInput(f"recurrence_rule gives {name} twice")
        parts[name] = values
    freq = parts.get("FREQ")
    if freq is None:
        raise InvalidInput("recurrence_rule needs a FREQ (for example 'FREQ=WEEKLY')")
    if freq in ("SECONDLY", "MINUTELY"):
        raise InvalidInput(
            f"recurrence_rule FREQ={freq} is not supported: windows are started and ended by a "
            "scheduler that runs every minute; use HOURLY or a longer period"
        )
    if freq not in _FREQUENCIES:
        raise InvalidInput(f"recurrence_rule FREQ={freq} is not one of {', '.join(_FREQUENCIES)}")
    until = parts.get("UNTIL")
    if until is not None and not _UTC_UNTIL.fullmatch(until):
        raise InvalidInput(
            f"recurrence_rule UNTIL={until} must be a UTC date-time ending in Z (for example "
            "UNTIL=20301231T235959Z): a date or a local time is ambiguous in a zone that "
            "changes its offset (RFC 5545 requires UTC here)"
        )
    if until is not None and "COUNT" in parts:
        raise InvalidInput("recurrence_rule may give COUNT or UNTIL, not both (RFC 5545)")
    for name in ("COUNT", "INTERVAL"):
        if name in parts and not (parts[name].isdigit() and int(parts[name]) >= 1):
            raise InvalidInput(
                f"recurrence_rule {name} must be a positive integer, got {parts[name]!r}"
            )
    for name, (low, high, signed) in _NUMERIC_PARTS.items():
        if name not in parts:
            continue
        for item in parts[name].split(","):
            number = int(item) if re.fullmatch(r"[+-]?\d{1,3}", item) else None
            if number is None or not (
                low <= number <= high or (signed and -high <= number <= -low)
            ):
                allowed = f"{low} to {high}" + (f" or -{high} to -{low}" if signed else "")
                raise InvalidInput(f"recurrence_rule {name} values must be {allowed}, got {item!r}")
    _check_month_days(parts)
    return rule


def _check_month_days(parts: Mapping[str, str]) -> None:
    """Refuse BYMONTH/BYMONTHDAY combinations that never occur (such as February 30).

    dateutil would search for them up to the year 9999, taking seconds, before finding none.
    """
    if "BYMONTHDAY" not in parts:
        return
    months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else range(1, 13)
    longest = max(calendar.monthrange(2000, month)[1] for month in months)  # 2000: leap year
    if all(abs(int(day)) > longest for day in parts["BYMONTHDAY"].split(",")):
        raise InvalidInput(
            f"recurrence_rule never occurs: no month in BYMONTH has the day(s) "
            f"BYMONTHDAY={parts['BYMONTHDAY']}"
        )


@attrs.frozen
class _Series:
    """The occurrences of a recurring window, as (start, end) pairs in UTC, in order."""

    rule: rrules.rrule
    duration: dt.timedelta

    @classmethod
    def of(
        cls, rule: str, first_start: dt.datetime, zone: zoneinfo.ZoneInfo, duration: dt.timedelta
    ) -> _Series:
        try:
            parsed = rrules.rrulestr(rule, dtstart=first_start.astimezone(zone))
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"recurrence_rule {rule!r} is not a valid RRULE: {exc}") from None
        if not isinstance(parsed, rrules.rrule):
            raise InvalidInput(f"recurrence_rule {rule!r} must be a single RRULE")
        return cls(parsed, duration)

    @classmethod
    def of_window(
        cls,
        rule: str,
        recurrence_start: dt.datetime,
        time_zone: str,
        start_time: dt.datetime,
        end_time: dt.datetime,
    ) -> _Series:
        """A stored window's series (raises InvalidInput if it cannot be interpreted)."""
        return cls.of(rule, recurrence_start, _zone(time_zone), end_time - start_time)

    def starting_from(self, moment: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Occurrences that start at or after `moment`."""
        for start in self.rule.xafter(moment, inc=True):
            start_utc = start.astimezone(dt.UTC)
            yield start_utc, start_utc + self.duration


def _check_series(
    rule: str,
    zone: zoneinfo.ZoneInfo,
    *,
    first_start: dt.datetime,
    duration: dt.timedelta,
) -> None:
    """A series starting at `first_start` must have it as its first occurrence, and occurrences
    must not overlap (the window has one current occurrence at a time)."""
    local_start = first_start.astimezone(zone)
    if first_start.microsecond:
        raise InvalidInput(
            "start_time of a recurring window must be a whole second (RRULE has no fractions "
            f"of a second), got {local_start.isoformat()}"
        )
    series = _Series.of(rule, first_start, zone, duration)
    try:
        occurrences = series.starting_from(first_start)
        first = next(occurrences, None)
        if first is None:
            raise InvalidInput(
                f"recurrence_rule {rule!r} has no occurrence at or after start_time "
                f"{local_start.isoformat()} (is UNTIL before it?)"
            )
        if first[0] != first_start:
            raise InvalidInput(
                f"start_time {local_start.isoformat()} is not an occurrence of recurrence_rule "
                f"{rule!r} in {zone.key}; its first occurrence from then on is "
                f"{first[0].astimezone(zone).isoformat()}: start the window then, or change "
                "the rule"
            )
        previous = first
        for occurrence in itertools.islice(occurrences, _OVERLAP_CHECKED_OCCURRENCES):
            if occurrence[0] < previous[1]:
                raise InvalidInput(
                    f"occurrences of recurrence_rule {rule!r} would overlap: each lasts "
                    f"{duration}, but the ones at {previous[0].astimezone(zone).isoformat()} and "
                    f"{occurrence[0].astimezone(zone).isoformat()} are "
                    f"{occurrence[0] - previous[0]} apart; shorten the window or space the "
                    "occurrences out"
                )
            previous = occurrence
    except InvalidInput:
        raise
    except Exception as exc:  # dateutil fails on some rules only when expanding them
        raise InvalidInput(f"recurrence_rule {rule!r} cannot be expanded: {exc}") from None


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


@operation(retry=True)
def create(
    status_page_id: str,
    data: CreateMaintenanceWindowInput,
    *,
    created_by_id: str,
    time_zone: str = "UTC",
) -> Op[MaintenanceWindow]:
    """Schedule a window (SCHEDULED) with its components, in one statement.

    A recurring window's start_time must be the first occurrence of its rule in `time_zone`.
    The window starts when the scheduler's `advance` reaches start_time, not here.
    """
    if not isinstance(data, CreateMaintenanceWindowInput):
        raise InvalidInput("data must be a CreateMaintenanceWindowInput")
    validate.time_range(data.start_time, data.end_time)
    zone = _zone(time_zone)
    rule = None if data.recurrence_rule is None else _recurrence_rule(data.recurrence_rule)
    if rule is not None:
        _check_series(
            rule, zone, first_start=data.start_time, duration=data.end_time - data.start_time
        )
    page_id = validate.identifier("status_page_id", status_page_id)
    params = {
        "status_page_id": page_id,
        "title": validate.text("title", data.title, max_length=500),
        "description": validate.optional_text("description", data.description, max_length=10_000),
        "start_time": data.start_time,
        "end_time": data.end_time,
        "recurrence_rule": rule,
        "recurrence_start": None if rule is None else data.start_time,
        "time_zone": time_zone,
        "auto_update_status": _flag("auto_update_status", data.auto_update_status),
        "notify_subscribers": _flag("notify_subscribers", data.notify_subscribers),
        "created_by_id": validate.identifier("created_by_id", created_by_id),
        "component_ids": validate.identifiers("component_ids", data.component_ids),
    }
    row = yield from optional("maintenance_create", params, dict_row)
    return _written(row, page_id)


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
) -> Op[MaintenanceWindow]:
    """Change a window; fields left out keep their value. `component_ids` replaces the set.

    Locks the window, merges the change, checks the result as `create` would, and writes it in
    one more statement. The schedule (times, rule, zone, components) of a COMPLETED or CANCELLED
    window is history and does not change (Conflict); a running window keeps its start_time
    (extend or shorten it with end_time, or cancel it). Changing a series' start_time, rule or
    zone starts the series over at start_time (COUNT counts from there); changing only its
    end_time changes the length of every occurrence.
    """
    wid = validate.identifier("window_id", window_id)
    if not isinstance(title, validate.Unset):
        validate.text("title", title, max_length=500)
    if not isinstance(description, validate.Unset):
        validate.optional_text("description", description, max_length=10_000)
    if not isinstance(start_time, validate.Unset):
        validate.aware("start_time", start_time)
    if not isinstance(end_time, validate.Unset):
        validate.aware("end_time", end_time)
    if isinstance(recurrence_rule, str):
        recurrence_rule = _recurrence_rule(recurrence_rule)
    if not isinstance(time_zone, validate.Unset):
        _zone(time_zone)
    if not isinstance(auto_update_status, validate.Unset):
        _flag("auto_update_status", auto_update_status)
    if not isinstance(notify_subscribers, validate.Unset):
        _flag("notify_subscribers", notify_subscribers)
    new_components = (
        None
        if isinstance(component_ids, validate.Unset)
        else validate.identifiers("component_ids", component_ids)
    )

    current = yield from one(
        "maintenance_lock", {"id": wid}, _row, not_found=f"no maintenance window with id {wid!r}"
    )
    start = current.start_time if isinstance(start_time, validate.Unset) else start_time
    end = current.end_time if isinstance(end_time, validate.Unset) else end_time
    rule = (
        current.recurrence_rule if isinstance(recurrence_rule, validate.Unset) else recurrence_rule
    )
    zone_name = current.time_zone if isinstance(time_zone, validate.Unset) else time_zone
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
    if rule is not None and recurrence_start is not None and (restart or end != current.end_time):
        _check_series(rule, _zone(zone_name), first_start=recurrence_start, duration=end - start)
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
        "time_zone": zone_name,
        "auto_update_status": current.auto_update_status
        if isinstance(auto_update_status, validate.Unset)
        else auto_update_status,
        "notify_subscribers": current.notify_subscribers
        if isinstance(notify_subscribers, validate.Unset)
        else notify_subscribers,
        "set_component_ids": new_components is not None,
        "component_ids": new_components or [],
    }
    row = yield from optional("maintenance_update", params, dict_row)
    return _written(row, current.status_page_id)


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

    A recurring window contributes every occurrence in that span. The window's current
    occurrence carries its status; later ones are SCHEDULED. Sorted by start, then window id.
    """
    validate.aware("now", now)
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
            window.id,
            window.title,
            start.astimezone(dt.UTC),
            end.astimezone(dt.UTC),
            window.component_ids,
            status,
        )

    if window.end_time > now and window.start_time < until:
        yield occurrence(window.start_time, window.end_time, window.status)
    if window.recurrence_rule is None or window.recurrence_start is None:
        return
    try:
        series = _Series.of_window(
            window.recurrence_rule,
            window.recurrence_start,
            window.time_zone,
            window.start_time,
            window.end_time,
        )
        for start, end in series.starting_from(window.end_time):
            if start >= until:
                break
            if end > now:
                yield occurrence(start, end, "SCHEDULED")
    except Exception as exc:  # a row written around statusdb; the current occurrence still shows
        _log.warning(
            "maintenance window %s: cannot expand recurrence_rule %r in %s (%s); "
            "listing its current occurrence only",
            window.id,
            window.recurrence_rule,
            window.time_zone,
            exc,
        )


@operation(atomic=True, retry=True)
def advance(now: dt.datetime) -> Op[list[Transition]]:
    """The scheduler's step: bring every window's status and occurrence up to `now`.

    * SCHEDULED -> IN_PROGRESS when start_time <= now < end_time;
    * a one-off window whose end_time <= now -> COMPLETED (straight from SCHEDULED when the
      whole window was missed);
    * a recurring window whose occurrence is over moves to its next occurrence that has not
      ended: IN_PROGRESS -> SCHEDULED (and -> IN_PROGRESS again when that one has begun), or
      -> COMPLETED when the rule has no more occurrences. Missed occurrences are skipped.

    Returns the transitions made, by occurrence start then window id. Idempotent: a second call
    with the same `now` finds nothing to do. Safe with several schedulers: rows are taken with
    SKIP LOCKED and re-checked after locking, so each transition is made (and returned) by
    exactly one caller. A Retryable error (say, a deadlock with a concurrent status change)
    means the step made nothing: call again. Statements: one for the transitions that need no
    rule, one to lock ended series, and one (only when there are some) to move them.
    """
    at = validate.aware("now", now)
    params = {"now": at}
    transitions = [
        Transition(window_id, from_status, to_status, at, occurrence_start)
        for window_id, from_status, to_status, occurrence_start in (
            yield from many("maintenance_advance_by_time", params, tuple_row)
        )
    ]
    ended = yield from many("maintenance_lock_ended_series", params, class_row(_EndedSeries))
    moves: list[_Move] = []
    for window in ended:
        try:
            moves.append(_next_occurrence(window, at))
        except Exception as exc:  # a row written around statusdb; the others still advance
            _log.error(
                "maintenance window %s: cannot expand recurrence_rule %r in %s (%s); left as it is",
                window.id,
                window.recurrence_rule,
                window.time_zone,
                exc,
            )
    if moves:
        yield from execute(
            "maintenance_move_series",
            {
                "ids": [m.window_id for m in moves],
                "statuses": [m.status for m in moves],
                "start_times": [m.start_time for m in moves],
                "end_times": [m.end_time for m in moves],
            },
        )
        transitions.extend(t for m in moves for t in m.transitions)
    transitions.sort(key=lambda t: (t.occurrence_start, t.window_id))
    return transitions


def _next_occurrence(window: _EndedSeries, now: dt.datetime) -> _Move:
    series = _Series.of_window(
        window.recurrence_rule,
        window.recurrence_start,
        window.time_zone,
        window.start_time,
        window.end_time,
    )
    last = (window.start_time, window.end_time)
    upcoming = None
    for occurrence in series.starting_from(window.end_time):
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
