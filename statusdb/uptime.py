"""Uptime: how long each component of a page spent in each status over a time range.

Computed in one query (`sql/uptime.sql`, `uptime_for_page`) from the status-change log that the
database keeps (migration 0003), so it agrees with what the page showed at every moment:

* The range is half-open, [start, end). Each component is observed from the later of `start`
  and its `created_at` (time before a component existed is not counted: it is not "up"), until
  the earlier of `end` and the database's clock (the future has not happened yet). A component
  created after the range has no observed period: its durations are zero and `uptime` is None,
  which a page should show as "no data", not as 100 %.
* Its status at the start of the observed period is that of its last change at or before that
  instant, or OPERATIONAL if there is none: every component starts OPERATIONAL, and its first
  derived status is logged as a change from there. A component without changes was therefore
  OPERATIONAL the whole time. Each change then holds until the next one.
* Maintenance is reported apart: `uptime` is up / (observed - maintenance), where up is
  OPERATIONAL + DEGRADED_PERFORMANCE (slow is not down, as on the usual status-page products)
  and PARTIAL_OUTAGE and MAJOR_OUTAGE are down. The raw durations are all exposed, so a caller
  can weigh them otherwise (e.g. partial outage at 30 %).
* Durations are exact `timedelta`s (microsecond resolution): per component they add up to the
  observed period exactly.
* The page total sums component time ("component-time"): a component observed for half the range
  weighs half as much in the page's uptime as one observed for all of it.

`daily` gives the same per calendar day of the page's time zone (the 90-day bars of a status
page), for each component and each component group: see its docstring.

The log is ordered per component by its seq, which the status locks keep in step with
changed_at; rows written by hand (backfills, restores) must keep that order too.
"""

from __future__ import annotations

import datetime as dt
import functools
from itertools import groupby
from operator import itemgetter
from typing import Any, Final

import attrs
from psycopg.rows import TupleRow, class_row, tuple_row

from statusdb.db.executor import Op, Operation, many, operation
from statusdb.domain import validate
from statusdb.domain.bounded_cache import BoundedCache
from statusdb.domain.types import ComponentStatus, StatusIncidentSeverity
from statusdb.errors import InvalidInput, NotFound

#: The longest range accepted: a bit over a year, enough for "last 365 days" and calendar years.
MAX_RANGE: dt.timedelta = dt.timedelta(days=400)


def _utc(value: dt.datetime) -> dt.datetime:
    """Row converter: datetimes come back in UTC (see `for_page`)."""
    return value.astimezone(dt.UTC)


def _utc_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC)


@attrs.frozen
class StatusDurations:
    """Time spent in each status (exact, microsecond resolution)."""

    operational: dt.timedelta
    degraded_performance: dt.timedelta
    partial_outage: dt.timedelta
    major_outage: dt.timedelta
    under_maintenance: dt.timedelta

    @property
    def observed(self) -> dt.timedelta:
        """All observed time: the sum of every status."""
        return self.measured + self.under_maintenance

    @property
    def measured(self) -> dt.timedelta:
        """Observed time outside maintenance: what `uptime` is a share of."""
        return self.up + self.down

    @property
    def up(self) -> dt.timedelta:
        """OPERATIONAL and DEGRADED_PERFORMANCE."""
        return self.operational + self.degraded_performance

    @property
    def down(self) -> dt.timedelta:
        """PARTIAL_OUTAGE and MAJOR_OUTAGE."""
        return self.partial_outage + self.major_outage

    @property
    def by_status(self) -> dict[ComponentStatus, dt.timedelta]:
        """The durations keyed by status, worst first."""
        return {
            "MAJOR_OUTAGE": self.major_outage,
            "PARTIAL_OUTAGE": self.partial_outage,
            "DEGRADED_PERFORMANCE": self.degraded_performance,
            "UNDER_MAINTENANCE": self.under_maintenance,
            "OPERATIONAL": self.operational,
        }


@attrs.frozen
class ComponentUptime:
    """One component over the range."""

    component_id: str
    name: str
    display_order: int
    created_at: dt.datetime = attrs.field(converter=_utc)
    #: The part of the range the component was observed: [observed_from, observed_until).
    #: Both None when it was not observed at all (created after the range): "no data".
    observed_from: dt.datetime | None = attrs.field(converter=_utc_or_none)
    observed_until: dt.datetime | None = attrs.field(converter=_utc_or_none)
    durations: StatusDurations
    #: up / (observed - maintenance); None when nothing was measured.
    uptime: float | None


@attrs.frozen
class PageUptime:
    """Every component of a page over the range, in display order, and the page total."""

    status_page_id: str
    #: The range asked for (in UTC).
    start: dt.datetime = attrs.field(converter=_utc)
    end: dt.datetime = attrs.field(converter=_utc)
    #: `end`, or the database's clock if earlier: nothing after it is counted.
    observed_until: dt.datetime = attrs.field(converter=_utc)
    components: tuple[ComponentUptime, ...]
    #: The components' durations added up (component-time).
    durations: StatusDurations
    #: The same formula as per component, over the added-up durations; None without data.
    uptime: float | None

    def component(self, component_id: str) -> ComponentUptime:
        """The result for one component of the page (KeyError if it is not on the page)."""
        for item in self.components:
            if item.component_id == component_id:
                return item
        raise KeyError(component_id)


@attrs.frozen
class _Row:
    status_page_id: str
    range_start: dt.datetime
    range_end: dt.datetime
    is_page_total: bool
    component_id: str | None
    name: str | None
    display_order: int | None
    created_at: dt.datetime | None
    observed_from: dt.datetime | None
    observed_until: dt.datetime | None
    operational_us: int
    degraded_performance_us: int
    partial_outage_us: int
    major_outage_us: int
    under_maintenance_us: int
    uptime: float | None

    def durations(self) -> StatusDurations:
        return StatusDurations(
            operational=dt.timedelta(microseconds=self.operational_us),
            degraded_performance=dt.timedelta(microseconds=self.degraded_performance_us),
            partial_outage=dt.timedelta(microseconds=self.partial_outage_us),
            major_outage=dt.timedelta(microseconds=self.major_outage_us),
            under_maintenance=dt.timedelta(microseconds=self.under_maintenance_us),
        )


def _range(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The range as UTC instants: compared and measured exactly, whatever zone it is given in
    (two datetimes sharing a ZoneInfo compare and subtract by wall clock, PEP 495)."""
    start = validate.aware("start", start).astimezone(dt.UTC)
    end = validate.aware("end", end).astimezone(dt.UTC)
    if end <= start:
        raise InvalidInput(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    if end - start > MAX_RANGE:
        raise InvalidInput(
            f"the range from start to end must be at most {MAX_RANGE.days} days, got {end - start}"
        )
    return start, end


@operation(retry=True)
def for_page(status_page_id: str, *, start: dt.datetime, end: dt.datetime) -> Op[PageUptime]:
    """Time in each status and uptime of every component of a page over [start, end).

    One statement. `start` and `end` are aware datetimes, in any zone, `end` after `start`, at
    most MAX_RANGE apart, compared and measured as instants (01:30 EDT to 01:15 EST on a
    fall-back night is 45 minutes; 400 days across a DST change are 400 days). For "the last
    30 days": `end = now`, `start = end - timedelta(days=30)`. Every datetime in the result is
    in UTC. NotFound for an unknown page.
    """
    start, end = _range(start, end)
    params = {
        "page_id": validate.identifier("status_page_id", status_page_id),
        "start": start,
        "end": end,
    }
    rows = yield from many("uptime_for_page", params, class_row(_Row))
    if not rows:
        raise NotFound(f"no status page with id {status_page_id!r}")
    components: list[ComponentUptime] = []
    total: _Row | None = None
    for row in rows:
        if row.is_page_total:
            total = row
            continue
        # Set on every component row (only the page-total row has them null).
        assert row.component_id is not None
        assert row.name is not None
        assert row.display_order is not None
        assert row.created_at is not None
        components.append(
            ComponentUptime(
                component_id=row.component_id,
                name=row.name,
                display_order=row.display_order,
                created_at=row.created_at,
                observed_from=row.observed_from,
                observed_until=row.observed_until,
                durations=row.durations(),
                uptime=row.uptime,
            )
        )
    assert total is not None, "uptime_for_page returns a page-total row"
    return PageUptime(
        status_page_id=total.status_page_id,
        start=start,
        end=end,
        observed_until=total.range_end,
        components=tuple(components),
        durations=total.durations(),
        uptime=total.uptime,
    )


# -- daily bars --------------------------------------------------------------------------------

#: The most days `daily` gives: a year, leap day included.
MAX_DAYS: Final = 366
#: The last day `daily` may be asked for ends before year 10000 (PostgreSQL's dates go further,
#: Python's do not); the earliest is arbitrary but far before any status page.
_UNTIL_MIN: Final = dt.date(1900, 1, 1)
_UNTIL_MAX: Final = dt.date(9998, 12, 31)


@attrs.frozen
class DayIncident:
    """A status incident listed on the bars: active at some time of the days it is listed on."""

    id: str
    title: str
    severity: StatusIncidentSeverity
    #: created_at, in UTC.
    started_at: dt.datetime
    #: resolved_at, in UTC; None while unresolved (it then lasts until now).
    resolved_at: dt.datetime | None


@attrs.frozen
class DayBar:
    """One series (component or group) on one calendar day of the page's time zone."""

    #: The local date.
    day: dt.date
    #: The day's first instant and the next day's, in UTC: local midnights, so a day lasts 23
    #: or 25 hours (23.5 or 24.5 on Lord Howe) when the clocks change.
    start: dt.datetime
    end: dt.datetime
    #: Time in each status during the day (only the part the series existed and that has
    #: happened: all zero before it was created or in the future).
    durations: StatusDurations
    #: The worst status it was in for some time that day; None without data.
    worst_status: ComponentStatus | None
    #: (OPERATIONAL + DEGRADED_PERFORMANCE) / (observed - UNDER_MAINTENANCE), as `for_page`;
    #: None when nothing was measured (no data, or maintenance all day: see `has_data`).
    uptime: float | None
    #: The status incidents naming the series that were active at some time of the day,
    #: oldest first (for a group: those naming one of its components, subgroups' included,
    #: as the group is now).
    incidents: tuple[DayIncident, ...]

    @property
    def has_data(self) -> bool:
        """Whether the series was observed at all that day (False: show "no data")."""
        return self.durations.observed > dt.timedelta(0)


@attrs.frozen
class DailyUptime:
    """One component's bars, oldest day first."""

    component_id: str
    name: str
    display_order: int
    created_at: dt.datetime = attrs.field(converter=_utc)
    days: tuple[DayBar, ...]

    @property
    def durations(self) -> StatusDurations:
        """The days' durations added up."""
        return _sum_durations(bar.durations for bar in self.days)

    @property
    def uptime(self) -> float | None:
        """Uptime over all the days, by the same formula as a day's; None without data."""
        return _ratio(self.durations)


@attrs.frozen
class GroupDailyUptime:
    """One component group's bars, oldest day first: its own status log (0020), the worst of
    its members at each moment, as the page showed it."""

    group_id: str
    name: str
    #: The enclosing group (None: top level); display_order orders it among its siblings.
    parent_id: str | None
    display_order: int
    created_at: dt.datetime = attrs.field(converter=_utc)
    days: tuple[DayBar, ...]

    @property
    def durations(self) -> StatusDurations:
        """The days' durations added up."""
        return _sum_durations(bar.durations for bar in self.days)

    @property
    def uptime(self) -> float | None:
        """Uptime over all the days, by the same formula as a day's; None without data."""
        return _ratio(self.durations)


@attrs.frozen
class PageDailyUptime:
    """The bars of every component and every component group of a page, in display order."""

    status_page_id: str
    #: The page's time zone, that the days are calendar days of.
    time_zone: str
    #: The first and last local dates shown.
    first_day: dt.date
    last_day: dt.date
    #: The first day's start (UTC) and the end of what was observed: the last day's end, or
    #: the database's clock when earlier.
    start: dt.datetime = attrs.field(converter=_utc)
    observed_until: dt.datetime = attrs.field(converter=_utc)
    components: tuple[DailyUptime, ...]
    #: The page's groups, every level, ordered by (display_order, name, id); parent_id gives
    #: the tree.
    groups: tuple[GroupDailyUptime, ...]
    #: Every status incident active at some time of the range (those naming no component
    #: too), oldest first.
    incidents: tuple[DayIncident, ...]

    def component(self, component_id: str) -> DailyUptime:
        """The bars of one component of the page (KeyError if it is not on the page)."""
        for item in self.components:
            if item.component_id == component_id:
                return item
        raise KeyError(component_id)

    def group(self, group_id: str) -> GroupDailyUptime:
        """The bars of one group of the page (KeyError if it is not on the page)."""
        for item in self.groups:
            if item.group_id == group_id:
                return item
        raise KeyError(group_id)


_ZERO = dt.timedelta(0)


def _sum_durations(items: Any) -> StatusDurations:
    o = d = p = m = u = _ZERO
    for x in items:
        o += x.operational
        d += x.degraded_performance
        p += x.partial_outage
        m += x.major_outage
        u += x.under_maintenance
    return StatusDurations(o, d, p, m, u)


def _ratio(durations: StatusDurations) -> float | None:
    measured = durations.measured
    if measured <= _ZERO:
        return None
    return durations.up / measured


def _days(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DAYS:
        raise InvalidInput(f"days must be an integer from 1 to {MAX_DAYS}")
    return value


def _until(value: dt.date | None) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise InvalidInput("until must be a date (datetime.date, not a datetime) or None")
    if not _UNTIL_MIN <= value <= _UNTIL_MAX:
        raise InvalidInput(f"until must be from {_UNTIL_MIN} to {_UNTIL_MAX}")
    return value


#: A day spent whole in one status: its uptime (as `_ratio` gives it).
_WHOLE_DAY_UPTIME: Final[dict[str, float | None]] = {
    "OPERATIONAL": 1.0,
    "DEGRADED_PERFORMANCE": 1.0,
    "PARTIAL_OUTAGE": 0.0,
    "MAJOR_OUTAGE": 0.0,
    "UNDER_MAINTENANCE": None,
}


#: Bars are frozen values of their arguments: the whole-day and part-day bars of past days are
#: the same on every call, so they are built once per process (bounded: about 4 MB when full).
_BAR_CACHE_SIZE: Final = 8192


@functools.lru_cache(maxsize=_BAR_CACHE_SIZE)
def _full_day(
    day: dt.date, start: dt.datetime, end: dt.datetime, status: ComponentStatus
) -> DayBar:
    """A day spent whole in one status."""
    length = end - start
    durations = StatusDurations(
        operational=length if status == "OPERATIONAL" else _ZERO,
        degraded_performance=length if status == "DEGRADED_PERFORMANCE" else _ZERO,
        partial_outage=length if status == "PARTIAL_OUTAGE" else _ZERO,
        major_outage=length if status == "MAJOR_OUTAGE" else _ZERO,
        under_maintenance=length if status == "UNDER_MAINTENANCE" else _ZERO,
    )
    uptime = _WHOLE_DAY_UPTIME[status] if length > _ZERO else None
    return DayBar(day, start, end, durations, status if length > _ZERO else None, uptime, ())


@functools.lru_cache(maxsize=_BAR_CACHE_SIZE)
def _part_day(
    day: dt.date, start: dt.datetime, end: dt.datetime, us: tuple[int, int, int, int, int]
) -> DayBar:
    """A day covered in part (or by several statuses): microseconds per status."""
    op, deg, part, major, maint = us
    durations = StatusDurations(
        operational=dt.timedelta(microseconds=op) if op else _ZERO,
        degraded_performance=dt.timedelta(microseconds=deg) if deg else _ZERO,
        partial_outage=dt.timedelta(microseconds=part) if part else _ZERO,
        major_outage=dt.timedelta(microseconds=major) if major else _ZERO,
        under_maintenance=dt.timedelta(microseconds=maint) if maint else _ZERO,
    )
    measured = op + deg + part + major
    uptime = (op + deg) / measured if measured > 0 else None
    worst: ComponentStatus | None = (
        "MAJOR_OUTAGE"
        if major
        else "PARTIAL_OUTAGE"
        if part
        else "DEGRADED_PERFORMANCE"
        if deg
        else "UNDER_MAINTENANCE"
        if maint
        else "OPERATIONAL"
        if op
        else None
    )
    return DayBar(day, start, end, durations, worst, uptime, ())


@attrs.define
class _SharedDays:
    """The bars one list of days shares between calls: "no data" on each day, and each day
    spent whole in one status (per status, built when first needed)."""

    no_data: list[DayBar]
    whole: dict[str, list[DayBar]]


#: _SharedDays by (first day, the days' boundaries): the boundaries are the whole key (a bar
#: is a value of its day, start, end and status), so a zone's rules changing is a new key.
#: Bounded: cleared when full (a page's 90 days are one key per day and zone).
_SHARED_DAYS: dict[tuple[dt.date, tuple[dt.datetime, ...]], _SharedDays] = {}
_SHARED_DAYS_SIZE: Final = 64


def _shared_days(first_day: dt.date, starts: list[dt.datetime]) -> _SharedDays:
    key = (first_day, tuple(starts))
    found = _SHARED_DAYS.get(key)
    if found is None:
        if len(_SHARED_DAYS) >= _SHARED_DAYS_SIZE:
            _SHARED_DAYS.clear()
        empty = StatusDurations(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO)
        one_day = dt.timedelta(days=1)
        no_data = [
            DayBar(first_day + i * one_day, starts[i], starts[i + 1], empty, None, None, ())
            for i in range(len(starts) - 1)
        ]
        found = _SHARED_DAYS[key] = _SharedDays(no_data, {})
    return found


_first: Final = itemgetter(0)


def _decode_daily(
    rows: list[TupleRow], before: dict[tuple[str, str], tuple[DayBar, ...]] | None = None
) -> PageDailyUptime:
    """Build the result from uptime_daily's rows (see sql/uptime.sql for their kinds).

    `before`: bars of earlier days to put before each series' own, by (kind, id) (the
    cache's past days; KeyError for a series without them).

    The page row holds the days' boundaries and the status incidents of the range; each series
    row (component or group) holds runs of whole days in one status, the days covered in part
    and the (day, incident) pairs it lists; the rest are days without data. Bars of whole days
    are built once per (day, status) and shared by every series that spent that day so (a
    day's bar does not say whose it is).
    """
    page: TupleRow | None = None
    series_rows: list[TupleRow] = []
    for row in rows:
        if row[0] == "page":
            page = row
        else:
            series_rows.append(row)
    assert page is not None, "uptime_daily returns a page row for a known page"
    utc = dt.UTC
    starts = [at.astimezone(utc) for at in page[19]]
    first_day: dt.date = page[4]
    count = len(starts) - 1
    one_day = dt.timedelta(days=1)
    days = [(first_day + i * one_day, starts[i], starts[i + 1]) for i in range(count)]
    incidents = {
        id_: DayIncident(
            id=id_,
            title=title,
            severity=severity,
            started_at=started.astimezone(utc),
            resolved_at=None if resolved is None else resolved.astimezone(utc),
        )
        for id_, title, severity, started, resolved in zip(
            page[20] or (),
            page[21] or (),
            page[22] or (),
            page[23] or (),
            page[24] or (),
            strict=True,
        )
    }
    shared = _shared_days(first_day, starts)
    no_data = shared.no_data
    whole = shared.whole

    def whole_days(status: ComponentStatus) -> list[DayBar]:
        """The bars of every day spent whole in `status` (a run is a slice of them)."""
        found = whole.get(status)
        if found is None:
            found = whole[status] = [_full_day(*day, status) for day in days]
        return found

    series_rows.sort(key=lambda r: (r[3], r[2], r[1]))
    components: list[DailyUptime] = []
    groups: list[GroupDailyUptime] = []
    for row in series_rows:
        bars = list(no_data)
        for first, last, status in zip(row[7] or (), row[8] or (), row[9] or (), strict=True):
            bars[first : last + 1] = whole_days(status)[first : last + 1]
        details = zip(
            row[10] or (),
            row[11] or (),
            row[12] or (),
            row[13] or (),
            row[14] or (),
            row[15] or (),
            strict=True,
        )
        for i, op, deg, part, major, maint in details:
            day, start, end = days[i]
            bars[i] = _part_day(day, start, end, (op, deg, part, major, maint))
        # (day, incident) pairs ordered by day: one run of incidents per day.
        for i, pairs in groupby(zip(row[16] or (), row[17] or (), strict=True), key=_first):
            bar = bars[i]  # attrs.evolve, without its per-call introspection
            bars[i] = DayBar(
                bar.day,
                bar.start,
                bar.end,
                bar.durations,
                bar.worst_status,
                bar.uptime,
                tuple(incidents[x] for _, x in pairs),
            )
        if row[0] == "group":
            groups.append(
                GroupDailyUptime(
                    group_id=row[1],
                    name=row[2],
                    parent_id=row[18],
                    display_order=row[3],
                    created_at=row[5],
                    days=tuple(bars) if before is None else before["group", row[1]] + tuple(bars),
                )
            )
            continue
        components.append(
            DailyUptime(
                component_id=row[1],
                name=row[2],
                display_order=row[3],
                created_at=row[5],
                days=tuple(bars) if before is None else before["component", row[1]] + tuple(bars),
            )
        )
    return PageDailyUptime(
        status_page_id=page[1],
        time_zone=page[2],
        first_day=first_day,
        last_day=days[-1][0],
        start=page[5],
        observed_until=page[6],
        components=tuple(components),
        groups=tuple(groups),
        incidents=tuple(sorted(incidents.values(), key=lambda i: (i.started_at, i.id))),
    )


@operation(retry=True)
def daily(
    status_page_id: str, days: int = 90, *, until: dt.date | None = None
) -> Op[PageDailyUptime]:
    """Uptime bars: each component and group of a page on each of the last `days` days.

    The days are calendar days of the page's `time_zone` (`pages.create`/`update`; default
    UTC), the `days` (1 to MAX_DAYS) ending `until` (default: today in that zone), each from
    its local midnight to the next, so a day lasts 23 or 25 hours when the clocks change.
    Per component and day: the time in each status, the worst status it was in, the uptime
    ratio (`DayBar.uptime`: as `for_page`, degraded counts as up, maintenance neither way) and
    the status incidents naming it that were active that day. Per group (`groups`), the same
    from the group's own status log (0020: the worst of its members at each moment, as the page
    showed it), listing the status incidents naming one of its components (subgroups' included,
    the membership as it is now: incidents keep no trace of a group named when writing them).
    Days before a component or group existed and days (or parts) still to come count
    nothing: `has_data` is False and `uptime` None, never 100 %; the day it was created counts
    from its creation. One statement; the same answer whatever the connection's TimeZone.
    NotFound for an unknown page.
    """
    params = {
        "page_id": validate.identifier("status_page_id", status_page_id),
        "days": _days(days),
        "until": _until(until),
        "fp": False,
        "fp_from": None,
    }
    # Binary: the rows are long arrays (91 boundaries, runs, part days, listings), which parse
    # ~30 % cheaper than in text (issue 20 item 5, third pass); the same values.
    rows = yield from many("uptime_daily", params, tuple_row, binary=True)
    if not rows:
        raise NotFound(f"no status page with id {status_page_id!r}")
    return _decode_daily(rows)


# -- a cache of the past days' bars ------------------------------------------------------------


@attrs.frozen
class _Past:
    """The bars of the days before the split day of one (page, days, until), as decoded."""

    first_day: dt.date
    #: The first day not over when they were read (today, or the last day); not cached.
    split_day: dt.date
    #: What the server hashed of everything these bars depend on (sql/uptime.sql, `fingerprint`).
    fingerprint: str
    start: dt.datetime
    #: The past bars per series, by (kind, id).
    bars: dict[tuple[str, str], tuple[DayBar, ...]]
    #: The page's status incidents active on some past day.
    incidents: tuple[DayIncident, ...]
    #: An estimate of the memory it holds (bytes).
    size: int


def _page_row(rows: list[TupleRow]) -> TupleRow:
    for row in rows:
        if row[0] == "page":
            return row
    raise AssertionError("uptime_daily returns a page row for a known page")


def _past_of(rows: list[TupleRow], result: PageDailyUptime) -> _Past | None:
    """The past part of a full answer (None when every day is still to come or today)."""
    page = _page_row(rows)
    split_day: dt.date = page[25]
    fingerprint: str = page[26]
    count = (split_day - result.first_day).days
    if count <= 0:
        return None
    split_start: dt.datetime = page[19][count]
    bars: dict[tuple[str, str], tuple[DayBar, ...]] = {}
    for component in result.components:
        bars["component", component.component_id] = component.days[:count]
    for group in result.groups:
        bars["group", group.group_id] = group.days[:count]
    incidents = tuple(i for i in result.incidents if i.started_at < split_start)
    size = 512 + len(bars) * (160 + 8 * count) + 400 * len(result.incidents)
    return _Past(result.first_day, split_day, fingerprint, result.start, bars, incidents, size)


def _splice(past: _Past, rows: list[TupleRow]) -> PageDailyUptime | None:
    """The cached past days and the fresh rows' days (the split day on), or None when the rows
    do not continue the cached past (another split day, another fingerprint, series missing)."""
    page = _page_row(rows)
    if page[4] != past.split_day or page[25] != past.split_day or page[26] != past.fingerprint:
        return None
    try:
        fresh = _decode_daily(rows, past.bars)
    except KeyError:  # a series the past does not have (the fingerprint covers them all)
        return None
    if len(fresh.components) + len(fresh.groups) != len(past.bars):
        return None
    incidents = {i.id: i for i in past.incidents}
    for i in fresh.incidents:
        incidents.setdefault(i.id, i)
    return PageDailyUptime(
        status_page_id=fresh.status_page_id,
        time_zone=fresh.time_zone,
        first_day=past.first_day,
        last_day=fresh.last_day,
        start=past.start,
        observed_until=fresh.observed_until,
        components=fresh.components,
        groups=fresh.groups,
        incidents=tuple(sorted(incidents.values(), key=lambda i: (i.started_at, i.id))),
    )


def _cached_daily(
    cache: DailyUptimeCache, status_page_id: str, days: int, until: dt.date | None
) -> Op[PageDailyUptime]:
    params: dict[str, Any] = {
        "page_id": validate.identifier("status_page_id", status_page_id),
        "days": _days(days),
        "until": _until(until),
    }
    key = (params["page_id"], params["days"], params["until"])
    past = cache._get(key)
    if past is not None:
        last_day = past.first_day + dt.timedelta(days=params["days"] - 1)
        fresh = {
            **params,
            "days": (last_day - past.split_day).days + 1,
            "fp": True,
            "fp_from": past.first_day,
        }
        rows = yield from many("uptime_daily", fresh, tuple_row, binary=True)
        if not rows:
            cache._put(key, None)
            raise NotFound(f"no status page with id {status_page_id!r}")
        spliced = _splice(past, rows)
        if spliced is not None:
            cache.hits += 1
            return spliced
    rows = yield from many(
        "uptime_daily", {**params, "fp": True, "fp_from": None}, tuple_row, binary=True
    )
    if not rows:
        cache._put(key, None)
        raise NotFound(f"no status page with id {status_page_id!r}")
    result = _decode_daily(rows)
    cache.misses += 1
    cache._put(key, _past_of(rows, result))
    return result


class DailyUptimeCache(BoundedCache[_Past]):
    """`daily`'s answers, the bars of the days that are over kept per process and validated
    by the server on every call.

    `cache.daily(conn, status_page_id, days, until=...)` answers what `uptime.daily` answers.
    A first call reads every day and keeps the bars of the days before today (the "split day":
    today in the page's zone, or the last day when the range ends before it), with a
    fingerprint the server hashes of everything those bars depend on (sql/uptime.sql,
    `fingerprint`: the zone, the components and groups, the status each starts the range
    with, every change stamped in the past days, the status incidents active then). The next
    calls send one statement that reads only the split day on (today's bars) and the
    fingerprint of the same past; when it matches, the cached past bars are joined to the
    fresh ones, else (a write into the past, a rename, a new day) the whole range is read and
    kept again. So an answer is never older than `uptime.daily`'s at the same moment; the
    fingerprint is read as the caller (same grants, RLS and NotFound as `uptime.daily`).

    Keyed by (page, days, until); bounded by `max_entries` and `max_bytes` (an estimate of the
    bars' memory; bars are shared between series and calls), least recently used out first.
    Thread-safe (a lock held only around dictionary work, never across I/O); `daily` takes a
    sync or an async connection (awaited then), as every operation.
    """

    #: The cache's operation: a class attribute, not a module-level operation (the operation
    #: tests call every one of those with wrong types); called through `daily`.
    _operation: Final[Operation[Any, PageDailyUptime]] = operation(retry=True)(_cached_daily)

    def daily(
        self, conn: Any, status_page_id: str, days: int = 90, *, until: dt.date | None = None
    ) -> Any:
        """`uptime.daily(conn, status_page_id, days, until=until)`, the past days cached."""
        return DailyUptimeCache._operation(conn, self, status_page_id, days, until)

    def invalidate(self) -> int:
        """Drop every entry: how many."""
        return self._drop_where(lambda entry: True)
