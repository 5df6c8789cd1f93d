"""uptime.daily's decoder as it was before h20u3's pass (issue 20 item 5): the reference that
tests/test_uptime_daily.py compares the new result shape with. It decodes the rows of
tests/uptime_daily_before_h20u3.sql (and of tests/uptime_daily_before_issue20.sql: the same
shape), with statusdb.uptime's bar builders."""

from __future__ import annotations

import datetime as dt

from psycopg.rows import TupleRow

from statusdb.domain.types import ComponentStatus
from statusdb.uptime import (
    _ZERO,
    DailyUptime,
    DayBar,
    DayIncident,
    GroupDailyUptime,
    PageDailyUptime,
    StatusDurations,
    _full_day,
    _part_day,
)


def decode_daily(rows: list[TupleRow]) -> PageDailyUptime:
    """Build the result from uptime_daily's rows (see sql/uptime.sql for their kinds).

    Each series row (component or group) holds runs of whole days in one status and the days
    covered in part; the rest are days without data. Bars of whole days are built once per
    (day, status) and shared by every series that spent that day so (a day's bar does not say
    whose it is).
    """
    page: TupleRow | None = None
    day_rows: list[tuple[int, dt.date, dt.datetime, dt.datetime]] = []
    series_rows: list[TupleRow] = []
    listed: dict[tuple[str, str], list[tuple[int, list[str]]]] = {}
    incidents: dict[str, DayIncident] = {}
    for row in rows:
        kind = row[0]
        if kind == "day":
            day_rows.append((row[3], row[4], row[5].astimezone(dt.UTC), row[6].astimezone(dt.UTC)))
        elif kind in ("component", "group"):
            series_rows.append(row)
        elif kind == "listed":
            listed.setdefault((row[2], row[1]), []).append((row[3], row[16]))
        elif kind == "incident":
            incidents[row[1]] = DayIncident(
                id=row[1],
                title=row[2],
                severity=row[17],
                started_at=row[5].astimezone(dt.UTC),
                resolved_at=None if row[6] is None else row[6].astimezone(dt.UTC),
            )
        elif kind == "page":
            page = row
    assert page is not None, "uptime_daily returns a page row for a known page"
    day_rows.sort()
    days = [(day, start, end) for _, day, start, end in day_rows]
    empty = StatusDurations(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO)
    no_data = [DayBar(day, start, end, empty, None, None, ()) for day, start, end in days]
    whole: dict[str, tuple[list[DayBar | None], bytearray]] = {}

    def whole_days(status: ComponentStatus, first: int, last: int) -> list[DayBar]:
        """Bars of days first..last spent whole in `status`, each built once."""
        found = whole.get(status)
        if found is None:
            found = whole[status] = ([None] * len(days), bytearray(len(days)))
        bars, built = found
        if 0 in built[first : last + 1]:
            for i in range(first, last + 1):
                if not built[i]:
                    bars[i] = _full_day(*days[i], status)
                    built[i] = 1
        return bars[first : last + 1]  # type: ignore[return-value]  # all built above

    series_rows.sort(key=lambda r: (r[3], r[2], r[1]))
    components: list[DailyUptime] = []
    groups: list[GroupDailyUptime] = []
    for row in series_rows:
        bars = list(no_data)
        for first, last, status in zip(row[7] or (), row[8] or (), row[9] or (), strict=True):
            bars[first : last + 1] = whole_days(status, first, last)
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
        for i, ids in listed.get((row[0], row[1]), ()):
            bar = bars[i]  # attrs.evolve, without its per-call introspection
            bars[i] = DayBar(
                bar.day,
                bar.start,
                bar.end,
                bar.durations,
                bar.worst_status,
                bar.uptime,
                tuple(incidents[x] for x in ids),
            )
        if row[0] == "group":
            groups.append(
                GroupDailyUptime(
                    group_id=row[1],
                    name=row[2],
                    parent_id=row[17],
                    display_order=row[3],
                    created_at=row[5],
                    days=tuple(bars),
                )
            )
            continue
        components.append(
            DailyUptime(
                component_id=row[1],
                name=row[2],
                display_order=row[3],
                created_at=row[5],
                days=tuple(bars),
            )
        )
    return PageDailyUptime(
        status_page_id=page[1],
        time_zone=page[2],
        first_day=page[4],
        last_day=days[-1][0],
        start=page[5],
        observed_until=page[6],
        components=tuple(components),
        groups=tuple(groups),
        incidents=tuple(sorted(incidents.values(), key=lambda i: (i.started_at, i.id))),
    )
