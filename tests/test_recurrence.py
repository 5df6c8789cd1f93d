"""statusdb.domain.recurrence without a database: rule syntax, RFC 5545 local times, bounded
expansion.

The expansion is checked against recurring-ical-events (an independent RFC 5545 implementation,
a test dependency) on random rules in zones with daylight-saving changes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rfc5545_reference import reference_starts, series_cases

from statusdb.domain import recurrence
from statusdb.domain.recurrence import Series
from statusdb.errors import InvalidInput

UTC = dt.UTC
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


def starts(series: Series, since: dt.datetime, count: int) -> list[str]:
    return [s.isoformat() for s, _ in itertools.islice(series.starting_from(since), count)]


# --- rule syntax ------------------------------------------------------------------------------


def test_rules_are_put_in_canonical_form() -> None:
    assert recurrence.parse_rule(" rrule: freq=weekly;count=4 ") == "FREQ=WEEKLY;COUNT=4"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=FORTNIGHTLY", "is not one of"),
        ("FREQ=MINUTELY", "is not supported"),
        ("BYDAY=MO", "needs a FREQ"),
        ("FREQ=WEEKLY;FOO=1", "not a valid RRULE"),
        ("FREQ=DAILY;BYEASTER=0", "not a valid RRULE"),
        ("FREQ=HOURLY;BYSECOND=0,30", "more than once a minute"),
        ("FREQ=DAILY;COUNT=10001", "COUNT must be a positive integer up to 10000"),
        ("FREQ=DAILY;INTERVAL=99999999999", "INTERVAL must be a positive integer"),
        ("FREQ=YEARLY;BYDAY=1MO;BYYEARDAY=200", "give BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never occurs"),
        ("FREQ=DAILY;UNTIL=20300110", "must be a UTC date-time"),
        ("DTSTART:20300107T100000Z\nRRULE:FREQ=DAILY", "DTSTART"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(rule: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        recurrence.parse_rule(rule)


def test_one_bysecond_value_is_fine() -> None:
    assert recurrence.parse_rule("FREQ=HOURLY;BYMINUTE=0,30;BYSECOND=15")


# --- local times --------------------------------------------------------------------------------


def test_a_skipped_local_time_takes_the_offset_before_the_gap() -> None:
    gap = dt.datetime(2025, 3, 30, 2, 30)
    assert not recurrence.exists(gap, BERLIN)
    assert recurrence.instant(gap, BERLIN) == dt.datetime(2025, 3, 30, 1, 30, tzinfo=UTC)


def test_an_ambiguous_local_time_is_its_first_instance() -> None:
    fold = dt.datetime(2025, 11, 2, 1, 30)
    assert recurrence.is_ambiguous(fold, NY)
    assert recurrence.instant(fold.replace(fold=1), NY) == dt.datetime(
        2025, 11, 2, 5, 30, tzinfo=UTC
    )
    assert not recurrence.is_ambiguous(dt.datetime(2025, 11, 2, 2, 30), NY)


def test_a_start_in_the_zone_is_wall_clock_time_elsewhere_an_instant() -> None:
    gap = dt.datetime(2025, 3, 30, 2, 30, tzinfo=BERLIN)
    assert recurrence.local_start_of(gap, BERLIN) == dt.datetime(2025, 3, 30, 2, 30)
    as_utc = dt.datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert recurrence.local_start_of(as_utc, BERLIN) == dt.datetime(2025, 3, 30, 3, 30)


# --- series -----------------------------------------------------------------------------------


def test_a_series_starting_in_a_gap_keeps_its_wall_clock_time_after() -> None:
    series = Series("FREQ=DAILY;COUNT=3", dt.datetime(2025, 3, 30, 2, 30), BERLIN, HOUR)
    assert series.first_start == dt.datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert starts(series, series.first_start, 5) == [
        "2025-03-30T01:30:00+00:00",
        "2025-03-31T00:30:00+00:00",
        "2025-04-01T00:30:00+00:00",
    ]


def test_occurrences_are_in_time_order_without_duplicates_across_a_gap() -> None:
    """Hourly at :00 and :30 over Berlin's gap: 02:00 and 03:00 local are one instant."""
    series = Series(
        "FREQ=HOURLY;BYMINUTE=0,30", dt.datetime(2025, 3, 30, 0, 0), BERLIN, 10 * MINUTE
    )
    found = [s for s, _ in itertools.islice(series.starting_from(series.first_start), 8)]
    assert found == sorted(set(found))
    assert [s.astimezone(BERLIN).strftime("%H:%M") for s in found] == [
        "00:00", "00:30", "01:00", "01:30", "03:00", "03:30", "04:00", "04:30",
    ]  # fmt: skip


def test_ends_are_start_plus_the_exact_duration() -> None:
    series = Series("FREQ=DAILY", dt.datetime(2025, 11, 1, 1, 30), NY, 90 * MINUTE)
    for start, end in itertools.islice(series.starting_from(series.first_start), 5):
        assert end - start == 90 * MINUTE


def test_until_is_an_instant_and_inclusive() -> None:
    series = Series("FREQ=DAILY;UNTIL=20251103T063000Z", dt.datetime(2025, 11, 1, 1, 30), NY, HOUR)
    assert starts(series, series.first_start, 10) == [
        "2025-11-01T05:30:00+00:00",
        "2025-11-02T05:30:00+00:00",
        "2025-11-03T06:30:00+00:00",
    ]


def test_check_series_refuses_the_second_instance_of_an_ambiguous_start() -> None:
    start = dt.datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST
    series = Series("FREQ=DAILY", recurrence.local_start_of(start, NY), NY, HOUR)
    with pytest.raises(InvalidInput, match="second 01:30"):
        recurrence.check_series(series, given_start=start)


# --- bounds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY;BYYEARDAY=366;BYMONTH=1",
        "FREQ=HOURLY;BYWEEKNO=53;BYMONTH=6",
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
        "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
    ],
)
def test_a_rule_that_never_occurs_stops_at_the_scan_bound(rule: str) -> None:
    """Counted by the days dateutil scans (a rule starting on a day it does not match)."""
    series = Series(rule, dt.datetime(2025, 1, 6, 0, 0), BERLIN, MINUTE)
    began = time.process_time()
    with pytest.raises(recurrence.ExpansionLimit):
        next(series.starting_from(series.first_start + MINUTE))
    assert time.process_time() - began < 5  # about 0.3 s here; 10 s without the bound


def test_an_old_series_is_expanded_from_a_recent_period() -> None:
    every_minute = "FREQ=HOURLY;BYMINUTE=" + ",".join(str(m) for m in range(60))
    series = Series(every_minute, dt.datetime(2000, 1, 1), BERLIN, 30 * dt.timedelta(seconds=1))
    moment = dt.datetime(2030, 6, 1, 12, 0, 30, tzinfo=UTC)
    assert starts(series, moment, 1) == ["2030-06-01T12:01:00+00:00"]


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series_cases())
def test_series_agree_with_recurring_ical_events(case: tuple[str, dt.datetime, ZoneInfo]) -> None:
    rule, local, zone = case
    series = Series(recurrence.parse_rule(rule), local, zone, MINUTE)
    since = series.first_start
    until = since + 40 * DAY
    ours = [s for s, _ in itertools.takewhile(lambda o: o[0] < until, series.starting_from(since))]
    assert ours == reference_starts(rule, local, zone, since, until)


@settings(max_examples=40, deadline=None)
@given(series_cases(), st.integers(0, 2 * 365 * 24))
def test_expanding_from_a_recent_period_equals_expanding_from_dtstart(
    case: tuple[str, dt.datetime, ZoneInfo], hours_later: int
) -> None:
    """Series without COUNT start from a recent period in phase; COUNT=10000 forces the walk
    from DTSTART. Both must give the same occurrences."""
    rule, local, zone = case
    rule = ";".join(p for p in rule.split(";") if not p.startswith("COUNT="))
    recent = Series(rule, local, zone, MINUTE)
    walked = Series(rule + ";COUNT=10000", local, zone, MINUTE)
    moment = recent.first_start + dt.timedelta(hours=hours_later)
    expected = starts(walked, moment, 10)  # fewer when COUNT runs out (hourly rules)
    assert starts(recent, moment, 10)[: len(expected)] == expected
