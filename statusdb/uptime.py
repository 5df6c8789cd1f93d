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

The log is ordered per component by its seq, which the status locks keep in step with
changed_at; rows written by hand (backfills, restores) must keep that order too.
"""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from statusdb import validate
from statusdb.errors import InvalidInput, NotFound
from statusdb.executor import Op, many, operation
from statusdb.types import ComponentStatus

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
