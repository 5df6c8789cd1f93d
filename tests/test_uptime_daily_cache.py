"""uptime.DailyUptimeCache (issue 20 item 5): the past days' bars kept, validated every call.

Every answer equals `uptime.daily`'s on the same database at the same moment: on random logs,
after writes of every kind into the past (a backfilled change, a row committed late with an
old stamp, an incident edit, a component renamed, deleted or added, the zone changed, groups
moved), across a new day, and with the caller's own scope (RLS, NotFound).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import psycopg
import pytest
from factories import APP_LOGIN, add_changes, add_component
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from test_uptime_daily import (
    _RANK,
    LONG_AGO,
    add_group,
    add_group_changes,
    add_incident,
    zoned_page,
)

from statusdb import pages, teams, tenancy, uptime
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput, NotFound
from statusdb.uptime import DailyUptimeCache, PageDailyUptime

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

UTC = dt.UTC
M = dt.timedelta(minutes=1)
D = dt.timedelta(days=1)
ZONES = ("UTC", "America/New_York", "Australia/Lord_Howe", "America/Havana", "Europe/Berlin")


def today_of(conn: Conn, page: str) -> dt.date:
    row = conn.execute(
        "SELECT (clock_timestamp() AT TIME ZONE time_zone)::date FROM status_page WHERE id = %s",
        (page,),
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def settled(result: PageDailyUptime) -> PageDailyUptime:
    """The answer without what moves with the clock: the end of what was observed, and the
    durations and uptime of today's bars (their worst status, their incidents and every
    earlier bar stay)."""

    def bars(days: tuple[uptime.DayBar, ...]) -> tuple[Any, ...]:
        return tuple(
            (b.day, b.start, b.end, b.worst_status, b.incidents)
            if b.start <= result.observed_until < b.end
            else b
            for b in days
        )

    return attrs.evolve(
        result,
        observed_until=result.start,
        components=tuple(attrs.evolve(c, days=bars(c.days)) for c in result.components),
        groups=tuple(attrs.evolve(g, days=bars(g.days)) for g in result.groups),
    )


def check(
    conn: Conn, cache: DailyUptimeCache, page: str, days: int, until: dt.date | None
) -> tuple[int, int]:
    """The cached answer equals uptime.daily's (both read now); the cache's counts moved."""
    hits, misses = cache.hits, cache.misses
    cached = cache.daily(conn, page, days, until=until)
    direct = uptime.daily(conn, page, days, until=until)
    assert settled(cached) == settled(direct)
    return cache.hits - hits, cache.misses - misses


def random_page(
    conn: Conn, rng: random.Random, slug: str, until: dt.date, days: int
) -> dict[str, Any]:
    """A page of a random zone with groups, components created before and inside the range,
    random logs (at midnights too), and incidents resolved and not."""
    zone = rng.choice(ZONES)
    page = zoned_page(conn, zone, slug=slug)
    first = dt.datetime.combine(until - dt.timedelta(days=days - 1), dt.time(), ZoneInfo(zone))
    span = (first - 3 * D, first + (days + 1) * D)

    def instant() -> dt.datetime:
        at = span[0] + (span[1] - span[0]) * rng.random()
        if rng.random() < 0.2:
            at = dt.datetime.combine(
                at.astimezone(ZoneInfo(zone)).date(), dt.time(), ZoneInfo(zone)
            )
        return at.astimezone(UTC).replace(microsecond=rng.randrange(10**6))

    statuses: list[ComponentStatus] = list(_RANK)  # type: ignore[arg-type]
    groups = [add_group(conn, page, "G0", LONG_AGO)]
    groups.append(add_group(conn, page, "G1", rng.choice((LONG_AGO, instant())), groups[0]))
    groups.append(add_group(conn, page, "G2", LONG_AGO))
    members = []
    for n in range(5):
        created = rng.choice((LONG_AGO, instant()))
        component = add_component(conn, page, f"C{n}", created, display_order=rng.randrange(3))
        if rng.random() < 0.8:
            conn.execute(
                "UPDATE status_page_component SET group_id = %s WHERE id = %s",
                (rng.choice(groups), component),
            )
        log, status = [], "OPERATIONAL"
        for at in sorted(instant() for _ in range(rng.randrange(0, 10))):
            status = rng.choice([s for s in statuses if s != status])
            log.append((at, status))
        add_changes(conn, page, component, log)
        members.append(component)
    for group in groups:
        changes: list[tuple[dt.datetime, str]] = []
        status = "OPERATIONAL"
        for at in sorted(instant() for _ in range(rng.randrange(0, 5))):
            status = rng.choice([s for s in statuses if s != status])
            changes.append((at, status))
        add_group_changes(conn, page, group, changes)
    incidents = []
    for n in range(rng.randrange(1, 6)):
        start = instant()
        resolved = rng.choice((None, start, start + rng.randrange(1, 3000) * M))
        incidents.append(add_incident(conn, page, f"I{n}", rng.sample(members, 2), start, resolved))
    return {
        "page": page,
        "zone": zone,
        "groups": groups,
        "members": members,
        "incidents": incidents,
        "instant": instant,
    }


@pytest.mark.parametrize("seed", range(6))
def test_cached_bars_equal_daily_after_every_kind_of_write(conn: Conn, seed: int) -> None:
    """Random pages, a range ending before today (every day over) or today: the cached answer
    equals uptime.daily's after each kind of write, each write into the past read again in
    full (a miss), and a call with nothing written is a hit."""
    rng = random.Random(seed)
    past = seed % 2 == 0
    days = rng.randrange(2, 20)
    slug = f"cache-{seed}"
    until = dt.date(2024, 11, 10) - dt.timedelta(days=rng.randrange(0, 5)) if past else None
    anchor = until if until is not None else dt.datetime.now(UTC).date()
    made = random_page(conn, rng, slug, anchor, days)
    page, members, groups = made["page"], made["members"], made["groups"]
    last = until if until is not None else today_of(conn, page)
    yesterday = dt.datetime.combine(last - D, dt.time(12), ZoneInfo(made["zone"]))
    first_day = last - (days - 1) * D
    before = dt.datetime.combine(first_day, dt.time(), ZoneInfo(made["zone"])) - 2 * D
    quiet = add_component(conn, page, "Quiet", LONG_AGO)
    quiet_group = add_group(conn, page, "Quiet group", LONG_AGO)
    listed = add_incident(conn, page, "Past", members[:1], yesterday - 3 * M, None)
    cache = DailyUptimeCache()
    assert check(conn, cache, page, days, until) == (0, 1)
    assert check(conn, cache, page, days, until) == (1, 0)
    assert check(conn, cache, page, days, until) == (1, 0)

    writes: list[Callable[[], object]] = [
        # A change backfilled into a past day (a new seq, an old stamp).
        # Changes backfilled with old stamps, in the log's order (the module's rule: seq
        # follows changed_at per component, as a transaction open across midnight keeps it):
        # before the range (the status the first day starts with), then on a past day.
        lambda: add_changes(conn, page, quiet, [(before, "PARTIAL_OUTAGE")]),
        lambda: add_changes(conn, page, quiet, [(yesterday, "MAJOR_OUTAGE")]),
        lambda: conn.execute(
            "UPDATE status_incident SET title = 'renamed' WHERE id = %s", (listed,)
        ),
        lambda: conn.execute(
            "UPDATE status_page_component SET name = 'Renamed' WHERE id = %s", (members[1],)
        ),
        lambda: conn.execute(
            "UPDATE status_page_component SET display_order = 9 WHERE id = %s", (members[2],)
        ),
        lambda: conn.execute(
            """UPDATE status_page_component
               SET group_id = CASE WHEN group_id IS DISTINCT FROM %(g)s THEN %(g)s END
               WHERE id = %(c)s""",
            {"g": groups[2], "c": members[3]},
        ),
        lambda: conn.execute(
            "UPDATE component_group SET parent_id = %s WHERE id = %s", (groups[2], groups[1])
        ),
        lambda: add_group_changes(conn, page, quiet_group, [(yesterday, "PARTIAL_OUTAGE")]),
        lambda: add_component(conn, page, "New", LONG_AGO),
        lambda: conn.execute("DELETE FROM status_page_component WHERE id = %s", (members[4],)),
        lambda: pages.update(conn, page, time_zone="Asia/Kolkata"),
    ]
    for n, write in enumerate(writes):
        write()
        assert check(conn, cache, page, days, until) == (0, 1), n
        assert check(conn, cache, page, days, until) == (1, 0)


def test_a_change_of_today_is_read_fresh_and_the_past_stays_cached(conn: Conn) -> None:
    """A status change now only touches today's bar: the next call is a hit with it."""
    page = zoned_page(conn, "Europe/Berlin", slug="today")
    api = add_component(conn, page, "API", LONG_AGO)
    add_changes(conn, page, api, [(dt.datetime.now(UTC) - 3 * D, "MAJOR_OUTAGE")])
    cache = DailyUptimeCache()
    assert check(conn, cache, page, 90, None) == (0, 1)
    add_changes(conn, page, api, [(dt.datetime.now(UTC), "DEGRADED_PERFORMANCE")])
    assert check(conn, cache, page, 90, None) == (1, 0)
    bars = cache.daily(conn, page, 90).component(api).days
    assert bars[-1].worst_status == "MAJOR_OUTAGE"
    assert bars[-1].durations.degraded_performance > dt.timedelta(0)


@pytest.mark.fresh_db
def test_a_row_committed_late_with_an_old_stamp_shows_up(dsn: str) -> None:
    """A transaction open while the cache reads (as one open across midnight) commits a change
    stamped on a past day: the next call reads the past again and shows it."""
    with psycopg.connect(dsn, autocommit=True) as reader, psycopg.connect(dsn) as writer:
        page = zoned_page(reader, "UTC", slug="late")
        api = add_component(reader, page, "API", LONG_AGO)
        cache = DailyUptimeCache()
        old = dt.datetime.now(UTC) - 2 * D
        add_changes(writer, page, api, [(old, "MAJOR_OUTAGE")])  # not committed yet
        assert check(reader, cache, page, 30, None) == (0, 1)
        assert cache.daily(reader, page, 30).component(api).days[-3].worst_status == ("OPERATIONAL")
        writer.commit()
        assert check(reader, cache, page, 30, None) == (0, 1)
        assert cache.daily(reader, page, 30).component(api).days[-3].worst_status == (
            "MAJOR_OUTAGE"
        )
        assert cache.hits >= 1


def test_a_new_day_reads_the_range_again(conn: Conn) -> None:
    """The cached past ends where the day it was read on began: once that day is over (here:
    the entry made as if read yesterday), the whole range is read again, never spliced."""
    page = zoned_page(conn, "Pacific/Auckland", slug="newday")
    api = add_component(conn, page, "API", LONG_AGO)
    add_changes(conn, page, api, [(dt.datetime.now(UTC) - 30 * M, "MAJOR_OUTAGE")])
    cache = DailyUptimeCache()
    assert check(conn, cache, page, 10, None) == (0, 1)
    ((key, entry),) = cache._entries.items()
    cache._entries[key] = attrs.evolve(
        entry, first_day=entry.first_day - D, split_day=entry.split_day - D
    )
    assert check(conn, cache, page, 10, None) == (0, 1)
    assert check(conn, cache, page, 10, None) == (1, 0)


def test_a_range_ending_after_today(conn: Conn) -> None:
    """`until` after today: today and the days to come are read on each call."""
    page = zoned_page(conn, "America/New_York", slug="future")
    api = add_component(conn, page, "API", LONG_AGO)
    add_changes(conn, page, api, [(dt.datetime.now(UTC) - 2 * D, "PARTIAL_OUTAGE")])
    until = today_of(conn, page) + 3 * D
    cache = DailyUptimeCache()
    assert check(conn, cache, page, 12, until) == (0, 1)
    assert check(conn, cache, page, 12, until) == (1, 0)
    bars = cache.daily(conn, page, 12, until=until).component(api).days
    assert [b.has_data for b in bars[-3:]] == [False, False, False]


def test_one_day_and_unknown_pages(conn: Conn) -> None:
    page = zoned_page(conn, "UTC", slug="one")
    cache = DailyUptimeCache()
    assert check(conn, cache, page, 1, None) == (0, 1)
    assert len(cache) == 0  # nothing over to keep
    with pytest.raises(NotFound):
        cache.daily(conn, "nope", 90)
    assert check(conn, cache, page, 5, None) == (0, 1)
    conn.execute("DELETE FROM status_page WHERE id = %s", (page,))
    with pytest.raises(NotFound):
        cache.daily(conn, page, 5)
    assert len(cache) == 0
    with pytest.raises(InvalidInput):
        cache.daily(conn, page, 0)
    with pytest.raises(InvalidInput):
        DailyUptimeCache(max_entries=0)


def test_bounded_in_entries_and_bytes(conn: Conn) -> None:
    page = zoned_page(conn, "UTC", slug="bounded")
    add_component(conn, page, "API", LONG_AGO)
    cache = DailyUptimeCache(max_entries=2)
    for days in (3, 4, 5):
        cache.daily(conn, page, days)
    assert len(cache) == 2
    assert {key[1] for key in cache._entries} == {4, 5}
    small = DailyUptimeCache(max_bytes=100)
    small.daily(conn, page, 90)
    assert len(small) == 0
    assert small.size == 0


def test_the_cache_answers_as_the_caller(conn: Conn, dsn: str, app_login: str) -> None:
    """An entry filled by one connection answers another only after the server validated the
    call as that caller: a team scoped elsewhere gets NotFound, as from uptime.daily."""
    ours = teams.create(conn, name="Ours")
    theirs = teams.create(conn, name="Theirs")
    their_page = pages.create(
        conn, team_id=theirs.id, name="T", slug="theirs-cache", created_by_id="u"
    ).page.id
    add_component(conn, their_page, "API", LONG_AGO)
    conn.commit()
    cache = DailyUptimeCache()
    cache.daily(conn, their_page, 30)
    assert len(cache) == 1
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN)) as app:
        tenancy.set_team(app, ours.id)
        with pytest.raises(NotFound):
            uptime.daily(app, their_page, 30)
        with pytest.raises(NotFound):
            cache.daily(app, their_page, 30)
        tenancy.set_team(app, theirs.id)
        assert settled(cache.daily(app, their_page, 30)) == settled(
            uptime.daily(app, their_page, 30)
        )


async def test_the_cache_on_an_async_connection(aconn: AConn) -> None:
    team = await teams.create(aconn, name="T")
    page = (
        await pages.create(aconn, team_id=team.id, name="A", slug="async-cache", created_by_id="u")
    ).page.id
    cache = DailyUptimeCache()
    first = await cache.daily(aconn, page, 7)
    second = await cache.daily(aconn, page, 7)
    assert (cache.misses, cache.hits) == (1, 1)
    assert settled(first) == settled(second) == settled(await uptime.daily(aconn, page, 7))
