"""RFC 5545 recurrence rules for maintenance windows: parsing, validation, bounded expansion.

No database here: `statusdb.maintenance` stores what this module checks and expands.

A series is an RRULE value, the wall-clock time of its first occurrence (DTSTART;TZID=...) and
an IANA time zone. The rule is expanded on wall-clock times (python-dateutil, on naive
datetimes), and each local occurrence becomes an instant as RFC 5545 (3.3.5) says:

* a local time the clocks skip (spring forward: 02:30 in Europe/Berlin on 2025-03-30) is read
  with the UTC offset before the gap, so it happens at 03:30 local time that day; the other days
  keep 02:30. This holds for the first occurrence (DTSTART) too, as in recurring-ical-events
  (tests/test_recurrence.py compares the two on random rules);
* a local time that happens twice (fall back: 01:30 in America/New_York on 2025-11-02) is its
  first instance (daylight time). A series can therefore not start at the second 01:30: give
  the first one, or a time that is not ambiguous;
* two local occurrences that land on the same instant (a gap can do that to hourly rules) are
  one occurrence; occurrences are yielded in time order.

Every occurrence lasts the same exact duration (RFC 5545 3.8.5.3), so its end is its start plus
that duration, in instants. Everything returned is in UTC: instants compare and subtract exactly,
whatever zone a caller or a database connection uses (PEP 495 compares and subtracts two datetimes
that share a tzinfo by their wall clocks, ignoring `fold`).

Bounds: every expansion is bounded in time and memory, whatever the rule. Rules are refused when
they fire more than once a minute (BYSECOND lists), when COUNT or INTERVAL exceed MAX_COUNT or
MAX_INTERVAL, or when no occurrence is found within EMPTY_SCAN_LIMIT days scanned (a rule that
never occurs, such as FREQ=HOURLY;BYYEARDAY=366;BYMONTH=1, would otherwise make dateutil scan up
to the year 9999). An expansion stops with `ExpansionLimit` after EXPANSION_STEP_LIMIT steps, and
series without COUNT are expanded from a recent period in phase with DTSTART, not from DTSTART,
so that an old minute-by-minute series costs no more than a new one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import heapq
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import attrs
from dateutil import rrule as rrules

from statusdb.domain import validate
from statusdb.errors import InvalidInput

UTC: Final = dt.UTC

#: Most occurrences a rule may COUNT; the series is expanded from its DTSTART to count them.
MAX_COUNT: Final = 10_000
#: Largest INTERVAL accepted.
MAX_INTERVAL: Final = 10_000
#: Days dateutil may scan without finding an occurrence (about 55 years): rules sparser than that
#: are refused, and an expansion that scans this far without a result stops.
EMPTY_SCAN_LIMIT: Final = 20_000
#: Steps (days scanned plus occurrences produced) one expansion may take.
EXPANSION_STEP_LIMIT: Final = 200_000

FREQUENCIES: Final = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
_PARTS: Final = frozenset(
    {
        "FREQ",
        "UNTIL",
        "COUNT",
        "INTERVAL",
        "BYSECOND",
        "BYMINUTE",
        "BYHOUR",
        "BYDAY",
        "BYMONTHDAY",
        "BYYEARDAY",
        "BYWEEKNO",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
    }
)
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
_WEEKDAYS: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
#: How far an occurrence's instant can be from its wall-clock time read as UTC (UTC offsets
#: are within +-14 h, and a gap moves a time forward by at most a day): bounds the look-back
#: and the reordering window of the expansion.
_SLACK: Final = dt.timedelta(days=2)


class ExpansionLimit(InvalidInput):
    """An expansion reached its bound (EMPTY_SCAN_LIMIT or EXPANSION_STEP_LIMIT)."""


# --- zones and instants -----------------------------------------------------------------------


def zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name (the database checks the same names, see migration 0004)."""
    validate.text("time_zone", name, max_length=100)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"time_zone {name!r} is not a known IANA time zone name "
            "(for example 'Europe/Berlin', 'America/New_York' or 'UTC')"
        ) from None


def utc(value: dt.datetime) -> dt.datetime:
    """The instant of an aware datetime, in UTC (exact to compare and subtract)."""
    return value.astimezone(UTC)


def instant(local: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant (UTC) of a wall-clock time in `tz`, read as RFC 5545 3.3.5 says.

    A skipped time takes the offset before the gap, an ambiguous one its first instance: that is
    what zoneinfo does with fold=0.
    """
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def exists(local: dt.datetime, tz: zoneinfo.ZoneInfo) -> bool:
    """Whether a wall-clock time happens in `tz` (False in a spring-forward gap)."""
    back = instant(local, tz).astimezone(tz).replace(tzinfo=None)
    return back == local.replace(tzinfo=None, fold=0)


def is_ambiguous(local: dt.datetime, tz: zoneinfo.ZoneInfo) -> bool:
    """Whether a wall-clock time happens twice in `tz` (a fall-back hour)."""
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=tz, fold=0).utcoffset()
    second = naive.replace(tzinfo=tz, fold=1).utcoffset()
    return first != second and exists(naive, tz)


# --- rule syntax ------------------------------------------------------------------------------


def parse_rule(value: str) -> str:
    """One RRULE value, checked part by part (in bounded time) and put in canonical form.

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
    parts = rule_parts(rule)
    freq = parts.get("FREQ")
    if freq is None:
        raise InvalidInput("recurrence_rule needs a FREQ (for example 'FREQ=WEEKLY')")
    if freq in ("SECONDLY", "MINUTELY"):
        raise InvalidInput(
            f"recurrence_rule FREQ={freq} is not supported: windows are started and ended by a "
            "scheduler that runs every minute; use HOURLY or a longer period"
        )
    if freq not in FREQUENCIES:
        raise InvalidInput(f"recurrence_rule FREQ={freq} is not one of {', '.join(FREQUENCIES)}")
    unknown = sorted(set(parts) - _PARTS)
    if unknown:
        raise InvalidInput(
            f"recurrence_rule {rule!r} is not a valid RRULE: unknown part(s) {', '.join(unknown)}"
        )
    until = parts.get("UNTIL")
    if until is not None and not _UTC_UNTIL.fullmatch(until):
        raise InvalidInput(
            f"recurrence_rule UNTIL={until} must be a UTC date-time ending in Z (for example "
            "UNTIL=20301231T235959Z): a date or a local time is ambiguous in a zone that "
            "changes its offset (RFC 5545 requires UTC here)"
        )
    if until is not None and "COUNT" in parts:
        raise InvalidInput("recurrence_rule may give COUNT or UNTIL, not both (RFC 5545)")
    for name, maximum in (("COUNT", MAX_COUNT), ("INTERVAL", MAX_INTERVAL)):
        if name in parts and not (
            parts[name].isdigit() and len(parts[name]) <= 6 and 1 <= int(parts[name]) <= maximum
        ):
            raise InvalidInput(
                f"recurrence_rule {name} must be a positive integer up to {maximum}, "
                f"got {parts[name]!r}"
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
    _check_yearly_ordinals(parts)
    if "BYSECOND" in parts and len(set(parts["BYSECOND"].split(","))) > 1:
        raise InvalidInput(
            f"recurrence_rule BYSECOND={parts['BYSECOND']} fires more than once a minute: "
            "windows are started and ended by a scheduler that runs every minute, so a rule "
            "may give at most one BYSECOND value"
        )
    _check_month_days(parts)
    return rule


def rule_parts(rule: str) -> dict[str, str]:
    """The NAME=VALUE parts of a canonical rule (InvalidInput if malformed)."""
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
    return parts


def _check_month_days(parts: Mapping[str, str]) -> None:
    """Refuse BYMONTH/BYMONTHDAY combinations that never occur (such as February 30)."""
    if "BYMONTHDAY" not in parts:
        return
    months = [int(m) for m in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else range(1, 13)
    longest = max(calendar.monthrange(2000, month)[1] for month in months)  # 2000: leap year
    if all(abs(int(day)) > longest for day in parts["BYMONTHDAY"].split(",")):
        raise InvalidInput(
            f"recurrence_rule never occurs: no month in BYMONTH has the day(s) "
            f"BYMONTHDAY={parts['BYMONTHDAY']}"
        )


# --- expansion ----------------------------------------------------------------------------------


class _Budget:
    """Counts an expansion's steps; raises ExpansionLimit when one of its bounds is reached."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.steps = 0
        self.empty = 0

    def scanned(self) -> None:
        self.steps += 1
        self.empty += 1
        if self.empty > EMPTY_SCAN_LIMIT:
            raise ExpansionLimit(
                f"recurrence_rule {self.rule!r} has no occurrence within {EMPTY_SCAN_LIMIT} "
                "days scanned: it never occurs (again), or too rarely for a maintenance window"
            )
        self._check_steps()

    def produced(self) -> None:
        self.steps += 1
        self.empty = 0
        self._check_steps()

    def _check_steps(self) -> None:
        if self.steps > EXPANSION_STEP_LIMIT:
            raise ExpansionLimit(
                f"expanding recurrence_rule {self.rule!r} took more than "
                f"{EXPANSION_STEP_LIMIT} steps"
            )


class _CountingMonths(tuple[int, ...]):
    """dateutil's BYMONTH set, counting dateutil's look-ups in it.

    dateutil tests every day of every period it scans against BYMONTH first (when BYMONTH is
    set), so counting these look-ups bounds the scan, including over periods that yield nothing
    (dateutil would otherwise scan to the year 9999 for a rule that never occurs). The set holds
    the same months, so the expansion is unchanged.
    """

    budget: _Budget

    def __new__(cls, months: Iterable[int], budget: _Budget) -> _CountingMonths:
        made = super().__new__(cls, months)
        made.budget = budget
        return made

    def __contains__(self, item: object) -> bool:
        self.budget.scanned()
        return super().__contains__(item)


def _explicit(parts: Mapping[str, str], local_start: dt.datetime) -> dict[str, str]:
    """The rule with the values dateutil would take from DTSTART written out.

    With them explicit, the rule expanded from any later in-phase period start yields the same
    occurrences as from DTSTART (dateutil's defaults: rrule.__init__).
    """
    out = dict(parts)
    freq = out["FREQ"]
    out.setdefault("BYSECOND", str(local_start.second))
    out.setdefault("BYMINUTE", str(local_start.minute))
    if freq != "HOURLY":
        out.setdefault("BYHOUR", str(local_start.hour))
    if not any(name in out for name in ("BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY")):
        if freq == "YEARLY":
            out.setdefault("BYMONTH", str(local_start.month))
            out["BYMONTHDAY"] = str(local_start.day)
        elif freq == "MONTHLY":
            out["BYMONTHDAY"] = str(local_start.day)
        elif freq == "WEEKLY":
            out["BYDAY"] = _WEEKDAYS[local_start.weekday()]
    return out


def _anchor(
    freq: str, interval: int, wkst: int, start: dt.datetime, target: dt.datetime
) -> dt.datetime:
    """The start of the last period in phase with DTSTART `start` that begins at or before
    `target` (naive wall-clock times)."""
    if freq == "YEARLY":
        return dt.datetime(start.year + (target.year - start.year) // interval * interval, 1, 1)
    if freq == "MONTHLY":
        months = (target.year - start.year) * 12 + target.month - start.month
        index = start.year * 12 + start.month - 1 + months // interval * interval
        return dt.datetime(index // 12, index % 12 + 1, 1)
    if freq == "WEEKLY":
        week = start.date() - dt.timedelta(days=(start.weekday() - wkst) % 7)
        weeks = (target.date() - week).days // 7
        return dt.datetime.combine(
            week + dt.timedelta(weeks=weeks // interval * interval), dt.time()
        )
    if freq == "DAILY":
        days = (target.date() - start.date()).days
        return dt.datetime.combine(
            start.date() + dt.timedelta(days=days // interval * interval), dt.time()
        )
    hour = start.replace(minute=0, second=0, microsecond=0)
    hours = (target - hour) // dt.timedelta(hours=1)
    return hour + dt.timedelta(hours=hours // interval * interval)


@attrs.frozen
class Series:
    """The occurrences of a recurring window: RRULE, DTSTART as wall-clock time, zone, duration.

    `local_start` is naive: the series' DTSTART;TZID=<zone>. Occurrences are (start, end)
    instants in UTC, in time order.
    """

    rule: str
    local_start: dt.datetime
    zone: zoneinfo.ZoneInfo
    duration: dt.timedelta
    _parts: dict[str, str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_parts", rule_parts(self.rule))
        if self.local_start.tzinfo is not None:
            raise ValueError("Series.local_start is a naive wall-clock time")

    @property
    def first_start(self) -> dt.datetime:
        """The instant of the first occurrence (DTSTART read in the zone)."""
        return instant(self.local_start, self.zone)

    def _rrule(
        self, dtstart: dt.datetime, parts: Mapping[str, str], budget: _Budget
    ) -> rrules.rrule:
        text = ";".join(f"{name}={value}" for name, value in parts.items() if name != "UNTIL")
        try:
            parsed = rrules.rrulestr(text, dtstart=dtstart)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(
                f"recurrence_rule {self.rule!r} is not a valid RRULE: {exc}"
            ) from None
        if not isinstance(parsed, rrules.rrule):
            raise InvalidInput(f"recurrence_rule {self.rule!r} must be a single RRULE")
        # dateutil keeps the parsed parts in private attributes (stable since dateutil 2.7);
        # tests/test_recurrence.py checks that the bound holds.
        year_ordinal_days = parts["FREQ"] == "YEARLY" and getattr(parsed, "_bynweekday", None)
        months = getattr(parsed, "_bymonth", None)
        if months or not year_ordinal_days:
            # Not when YEARLY with BYDAY=1MO and no BYMONTH: there dateutil reads BYMONTH as
            # "which months to count weekdays in"; such a rule scans one year per period.
            setattr(parsed, "_bymonth", _CountingMonths(months or range(1, 13), budget))  # noqa: B010
        return parsed

    def _local(self, target: dt.datetime, budget: _Budget) -> Iterator[dt.datetime]:
        """Local occurrences (naive), in order, from a period starting at or before `target`."""
        parts = self._parts
        if "COUNT" in parts or target <= self.local_start:
            rule = self._rrule(self.local_start, parts, budget)
        else:
            explicit = _explicit(parts, self.local_start)
            wkst = _WEEKDAYS.index(parts.get("WKST", "MO"))
            start = _anchor(
                parts["FREQ"], int(parts.get("INTERVAL", "1")), wkst, self.local_start, target
            )
            rule = self._rrule(max(start, self.local_start), explicit, budget)
        iterator = iter(rule)
        while True:
            try:
                local = next(iterator)
            except StopIteration:
                return
            except (ValueError, OverflowError) as exc:  # past the year 9999, bad combination
                if isinstance(exc, InvalidInput):
                    raise
                return
            budget.produced()
            yield local

    def starting_from(self, moment: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Occurrences (start, end), UTC, that start at or after `moment`, in time order.

        Lazy and bounded: stops with ExpansionLimit after EXPANSION_STEP_LIMIT steps.
        """
        moment = utc(moment)
        until = self._until()
        budget = _Budget(self.rule)
        target = (moment.astimezone(self.zone).replace(tzinfo=None) - _SLACK).replace(fold=0)
        pending: list[dt.datetime] = []
        last: dt.datetime | None = None

        def ready(bound: dt.datetime | None) -> Iterator[tuple[dt.datetime, dt.datetime]]:
            nonlocal last
            while pending and (bound is None or pending[0] < bound):
                start = heapq.heappop(pending)
                if start == last or start < moment:
                    continue
                last = start
                yield start, start + self.duration

        for local in self._local(target, budget):
            if local < target:
                continue
            # Wall-clock times are in order, instants nearly: an instant is final once the
            # wall clock has moved _SLACK past it.
            bound = local.replace(tzinfo=UTC) - _SLACK
            if until is not None and bound > until:
                break
            start = instant(local, self.zone)
            if until is None or start <= until:
                heapq.heappush(pending, start)
            yield from ready(bound)
        yield from ready(None)

    def _until(self) -> dt.datetime | None:
        value = self._parts.get("UNTIL")
        if value is None:
            return None
        return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def local_start_of(start_time: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The DTSTART wall-clock time (naive) that a window's start_time gives.

    A start_time in the window's own zone is taken as wall-clock time: that is how a skipped
    time (02:30 on a spring-forward day) can be a series' DTSTART. Any other aware start_time
    is an instant, read in the zone.
    """
    if isinstance(start_time.tzinfo, zoneinfo.ZoneInfo) and start_time.tzinfo.key == tz.key:
        return start_time.replace(tzinfo=None, fold=0)
    return start_time.astimezone(tz).replace(tzinfo=None, fold=0)


def check_series(series: Series, *, given_start: dt.datetime, overlap_checked: int = 1000) -> None:
    """A new series must start at an occurrence of its rule, and occurrences must not overlap.

    `given_start` is the start_time the caller gave (for the messages and the fold check).
    Bounded: at most `overlap_checked` occurrences, each found within the expansion bounds.
    """
    tz = series.zone
    local = series.local_start
    if local.microsecond:
        raise InvalidInput(
            "start_time of a recurring window must be a whole second (RRULE has no fractions "
            f"of a second), got {given_start.isoformat()}"
        )
    first_start = series.first_start
    if utc(given_start) != first_start:
        # Only an ambiguous local time read as its second instance gets here.
        raise InvalidInput(
            f"start_time {given_start.isoformat()} is the second {local.time()} of "
            f"{local.date()} in {tz.key}: as RFC 5545 says, a series' local time that happens "
            f"twice is its first instance ({first_start.astimezone(tz).isoformat()}); start the "
            "series then, or at a time that is not ambiguous"
        )
    try:
        occurrences = series.starting_from(first_start)
        first = next(occurrences, None)
        if first is None:
            raise InvalidInput(
                f"recurrence_rule {series.rule!r} has no occurrence at or after start_time "
                f"{given_start.isoformat()} (is UNTIL before it?)"
            )
        if first[0] != first_start:
            raise InvalidInput(
                f"start_time {given_start.isoformat()} is not an occurrence of recurrence_rule "
                f"{series.rule!r} in {tz.key}; its first occurrence from then on is "
                f"{first[0].astimezone(tz).isoformat()}: start the window then, or change "
                "the rule"
            )
        previous = first
        for occurrence in _bounded(occurrences, overlap_checked):
            if occurrence[0] < previous[1]:
                raise InvalidInput(
                    f"occurrences of recurrence_rule {series.rule!r} would overlap: each lasts "
                    f"{series.duration}, but the ones at "
                    f"{previous[0].astimezone(tz).isoformat()} and "
                    f"{occurrence[0].astimezone(tz).isoformat()} are "
                    f"{occurrence[0] - previous[0]} apart; shorten the window or space the "
                    "occurrences out"
                )
            previous = occurrence
    except InvalidInput:
        raise
    except Exception as exc:  # dateutil fails on some rules only when expanding them
        raise InvalidInput(f"recurrence_rule {series.rule!r} cannot be expanded: {exc}") from None


def _bounded(
    occurrences: Iterator[tuple[dt.datetime, dt.datetime]], most: int
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """At most `most` occurrences; fewer when the expansion reaches its step bound (a sparse
    rule: its first occurrences were checked, which is what the overlap check needs)."""
    for _ in range(most):
        try:
            occurrence = next(occurrences)
        except (StopIteration, ExpansionLimit):
            return
        yield occurrence


def _check_yearly_ordinals(parts: Mapping[str, str]) -> None:
    """FREQ=YEARLY with a numbered BYDAY (1MO: the year's first Monday) and no BYMONTH takes no
    other day filter: dateutil scans such a rule a year at a time without a bound we can count,
    and the combinations that would need one (1MO on day 200) rarely or never occur."""
    if parts.get("FREQ") != "YEARLY" or "BYMONTH" in parts or "BYDAY" not in parts:
        return
    if not any(re.match(r"[+-]?\d", day) for day in parts["BYDAY"].split(",")):
        return
    others = [name for name in ("BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYSETPOS") if name in parts]
    if others:
        raise InvalidInput(
            f"recurrence_rule with FREQ=YEARLY, a numbered BYDAY ({parts['BYDAY']}) and no BYMONTH "
            f"cannot also give {', '.join(others)}: give BYMONTH, or drop {others[0]}"
        )
