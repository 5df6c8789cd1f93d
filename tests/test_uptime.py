"""Uptime from the status-change log: exact shares, boundaries, clipping, one indexed query."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from factories import add_changes, add_component, new_page
from psycopg.rows import TupleRow

from statusdb import components, incidents, teams, uptime
from statusdb.db import queries
from statusdb.domain.types import STATUS_SEVERITY_ORDER, ComponentStatus
from statusdb.errors import InvalidInput, NotFound
from statusdb.uptime import StatusDurations

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

UTC = dt.UTC
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
ZERO = dt.timedelta(0)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 1) -> dt.datetime:
    return dt.datetime(2024, month, day, hour, minute, tzinfo=UTC)


def make_page(conn: Conn, slug: str = "acme") -> str:
    team = teams.create(conn, name=f"team {slug}")
    return new_page(conn, team.id, slug=slug, name="Acme").id


def durations(**spent: dt.timedelta) -> StatusDurations:
    values = dict.fromkeys(
        ("operational", "degraded_performance", "partial_outage", "major_outage"), ZERO
    )
    values["under_maintenance"] = ZERO
    values.update(spent)
    return StatusDurations(**values)


def total(d: StatusDurations) -> dt.timedelta:
    return sum(d.by_status.values(), ZERO)


#: The story used by most tests: created Jan 1st; a 3-hour incident on the 10th (2 h partial,
#: then 1 h major); maintenance on the 20th (4 h), then degraded until the 21st.
STORY: list[tuple[dt.datetime, ComponentStatus]] = [
    (at(10, 0), "PARTIAL_OUTAGE"),
    (at(10, 2), "MAJOR_OUTAGE"),
    (at(10, 3), "OPERATIONAL"),
    (at(20, 0), "UNDER_MAINTENANCE"),
    (at(20, 4), "DEGRADED_PERFORMANCE"),
    (at(21, 0), "OPERATIONAL"),
]


@pytest.fixture
def story(conn: Conn) -> tuple[str, str]:
    page = make_page(conn)
    api = add_component(conn, page, "API", at(1))
    add_changes(conn, page, api, STORY)
    return page, api


@pytest.mark.usefixtures("session_zone")
def test_shares_add_up_exactly_and_maintenance_is_apart(conn: Conn, story: tuple[str, str]) -> None:
    page, api = story
    result = uptime.for_page(conn, page, start=at(5), end=at(1, month=2))
    item = result.component(api)
    assert item.observed_from == at(5)
    assert item.observed_until == at(1, month=2)
    assert item.durations == durations(
        partial_outage=2 * H,
        major_outage=1 * H,
        under_maintenance=4 * H,
        degraded_performance=20 * H,
        operational=27 * D - 27 * H,
    )
    assert total(item.durations) == item.durations.observed == 27 * D
    assert item.durations.measured == 27 * D - 4 * H
    # degraded counts as up, maintenance neither way
    assert item.uptime == pytest.approx((27 * D - 7 * H) / (27 * D - 4 * H))
    assert result.durations == item.durations
    assert result.uptime == item.uptime


def test_range_starting_before_the_component_existed_is_clipped(
    conn: Conn, story: tuple[str, str]
) -> None:
    page, api = story
    item = uptime.for_page(conn, page, start=at(25, month=12) - 366 * D, end=at(15)).component(api)
    assert item.observed_from == at(1)  # created_at: no time counted before it
    assert item.durations == durations(
        operational=14 * D - 3 * H, partial_outage=2 * H, major_outage=1 * H
    )
    assert total(item.durations) == 14 * D


@pytest.mark.usefixtures("session_zone")
def test_range_inside_changes_starts_with_the_status_then_in_force(
    conn: Conn, story: tuple[str, str]
) -> None:
    page, api = story
    # starts an hour into the partial outage, ends 2 hours into the maintenance
    item = uptime.for_page(conn, page, start=at(10, 1), end=at(20, 2)).component(api)
    assert item.durations == durations(
        partial_outage=1 * H,
        major_outage=1 * H,
        operational=10 * D - 3 * H,
        under_maintenance=2 * H,
    )
    assert total(item.durations) == at(20, 2) - at(10, 1)


@pytest.mark.usefixtures("session_zone")
def test_changes_on_the_exact_boundaries(conn: Conn, story: tuple[str, str]) -> None:
    page, api = story

    def spent(start: dt.datetime, end: dt.datetime) -> StatusDurations:
        return uptime.for_page(conn, page, start=start, end=end).component(api).durations

    # a change at `start` counts from start; a change at `end` does not count at all
    assert spent(at(10, 2), at(10, 3)) == durations(major_outage=H)
    assert spent(at(10, 0), at(10, 2)) == durations(partial_outage=2 * H)
    assert spent(at(9), at(10, 0)) == durations(operational=D)
    assert spent(at(10, 3), at(20, 0)) == durations(operational=10 * D - 3 * H)
    assert spent(at(10, 2), at(10, 2) + dt.timedelta(microseconds=1)) == durations(
        major_outage=dt.timedelta(microseconds=1)
    )


def test_a_component_without_changes_was_operational_all_along(conn: Conn) -> None:
    page = make_page(conn)
    quiet = add_component(conn, page, "Quiet", at(1))
    result = uptime.for_page(conn, page, start=at(2), end=at(2, month=3))
    item = result.component(quiet)
    assert item.durations == durations(operational=at(2, month=3) - at(2))
    assert item.uptime == 1.0
    assert result.uptime == 1.0


def test_components_created_late_have_less_or_no_data(conn: Conn, story: tuple[str, str]) -> None:
    page, api = story
    late = add_component(conn, page, "Late", at(10, 12), display_order=1)
    future = add_component(conn, page, "Future", at(1, month=3), display_order=2)
    result = uptime.for_page(conn, page, start=at(5), end=at(15))
    assert [c.component_id for c in result.components] == [api, late, future]
    late_item, future_item = result.component(late), result.component(future)
    assert late_item.observed_from == at(10, 12)
    assert late_item.durations == durations(operational=at(15) - at(10, 12))
    assert future_item.observed_from is None
    assert future_item.observed_until is None
    assert future_item.durations == durations()
    assert future_item.uptime is None  # "no data", not 100 %
    # the page total adds component-time
    api_item = result.component(api)
    assert result.durations.operational == (
        api_item.durations.operational + late_item.durations.operational
    )
    assert total(result.durations) == 10 * D + (at(15) - at(10, 12))
    assert result.uptime == pytest.approx(
        (total(result.durations) - 3 * H) / total(result.durations)
    )


def test_several_changes_in_one_instant_only_the_last_lasts(conn: Conn) -> None:
    page = make_page(conn)
    flappy = add_component(conn, page, "Flappy", at(1))
    add_changes(
        conn,
        page,
        flappy,
        [(at(3), "MAJOR_OUTAGE"), (at(3), "PARTIAL_OUTAGE"), (at(4), "OPERATIONAL")],
    )
    spent = uptime.for_page(conn, page, start=at(2), end=at(5)).component(flappy).durations
    assert spent == durations(operational=2 * D, partial_outage=D)
    # and when such an instant is the start of the range
    spent = uptime.for_page(conn, page, start=at(3), end=at(5)).component(flappy).durations
    assert spent == durations(operational=D, partial_outage=D)


def test_all_maintenance_has_no_uptime_ratio(conn: Conn) -> None:
    page = make_page(conn)
    api = add_component(conn, page, "API", at(1))
    add_changes(conn, page, api, [(at(2), "UNDER_MAINTENANCE"), (at(4), "OPERATIONAL")])
    item = uptime.for_page(conn, page, start=at(2), end=at(4)).component(api)
    assert item.durations == durations(under_maintenance=2 * D)
    assert item.uptime is None


@pytest.mark.usefixtures("session_zone")
def test_the_future_is_not_counted(conn: Conn) -> None:
    page = make_page(conn)
    api = components.create(conn, page, name="API")
    now = dt.datetime.now(UTC)
    result = uptime.for_page(conn, page, start=now - D, end=now + D)
    item = result.component(api.id)
    assert item.observed_from == api.created_at  # created in this transaction
    assert item.observed_until is not None
    assert result.observed_until == item.observed_until < now + D
    assert item.durations.operational == item.observed_until - api.created_at
    # a range entirely in the future has no data at all
    ahead = uptime.for_page(conn, page, start=now + D, end=now + 2 * D)
    assert ahead.component(api.id).observed_from is None
    assert ahead.uptime is None


def test_only_the_page_asked_for(conn: Conn, story: tuple[str, str]) -> None:
    page, api = story
    other = make_page(conn, "other")
    elsewhere = add_component(conn, other, "API", at(1))
    add_changes(conn, other, elsewhere, [(at(6), "MAJOR_OUTAGE")])
    result = uptime.for_page(conn, page, start=at(5), end=at(8))
    assert [c.component_id for c in result.components] == [api]
    assert result.durations == durations(operational=3 * D)


def test_page_without_components_and_unknown_page(conn: Conn) -> None:
    page = make_page(conn)
    result = uptime.for_page(conn, page, start=at(1), end=at(2))
    assert result.components == ()
    assert result.durations == durations()
    assert result.uptime is None
    with pytest.raises(NotFound, match="no status page"):
        uptime.for_page(conn, "missing", start=at(1), end=at(2))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (dt.datetime(2024, 1, 1), at(2), "start must be timezone-aware"),
        (at(1), dt.datetime(2024, 1, 2), "end must be timezone-aware"),
        (at(2), at(2), "must be after start"),
        (at(3), at(2), "must be after start"),
        (at(1), at(1) + 401 * D, "at most 400 days"),
        ("2024-01-01", at(2), "start must be a datetime"),
    ],
)
def test_invalid_ranges(
    conn: Conn, start: Any, end: Any, message: str, story: tuple[str, str]
) -> None:
    with pytest.raises(InvalidInput, match=message):
        uptime.for_page(conn, story[0], start=start, end=end)


@pytest.mark.usefixtures("session_zone")
def test_longest_range_is_accepted(conn: Conn, story: tuple[str, str]) -> None:
    page, api = story
    result = uptime.for_page(conn, page, start=at(1), end=at(1) + uptime.MAX_RANGE)
    assert total(result.component(api).durations) == uptime.MAX_RANGE


def reference(
    created_at: dt.datetime,
    changes: Sequence[tuple[dt.datetime, ComponentStatus]],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[ComponentStatus, dt.timedelta]:
    """Time per status computed the slow, obvious way (changes in time order)."""
    spent = dict.fromkeys(STATUS_SEVERITY_ORDER, ZERO)
    since = max(start, created_at)
    if since >= end:
        return spent
    status: ComponentStatus = "OPERATIONAL"
    for changed_at, new_status in changes:
        if changed_at > since:
            if changed_at >= end:
                break
            spent[status] += changed_at - since
            since = changed_at
        status = new_status
    spent[status] += end - since
    return spent


@pytest.mark.usefixtures("session_zone")
def test_random_timelines_match_a_reference(conn: Conn) -> None:
    rng = random.Random(20240101)
    page = make_page(conn)
    origin = at(1)
    timelines: dict[str, tuple[dt.datetime, list[tuple[dt.datetime, ComponentStatus]]]] = {}
    for n in range(6):
        created_at = origin + rng.randrange(0, 20 * 24 * 60) * dt.timedelta(minutes=1)
        component = add_component(conn, page, f"C{n}", created_at, display_order=n)
        moments = sorted(
            origin + rng.randrange(-5 * 24, 40 * 24) * H  # some before created_at, some ties
            for _ in range(rng.randrange(0, 25))
        )
        changes: list[tuple[dt.datetime, ComponentStatus]] = []
        previous: ComponentStatus = "OPERATIONAL"
        for moment in moments:
            new_status = rng.choice([s for s in STATUS_SEVERITY_ORDER if s != previous])
            changes.append((moment, new_status))
            previous = new_status
        add_changes(conn, page, component, changes)
        timelines[component] = (created_at, changes)
    change_times = [t for _, changes in timelines.values() for t, _ in changes]

    for _ in range(40):
        start = rng.choice(
            [rng.choice(change_times), origin + rng.randrange(-10 * 24, 40 * 24) * H]
        )
        end = rng.choice([rng.choice(change_times), start + rng.randrange(1, 30 * 24) * H])
        if end <= start:
            start, end = end, start + H
        result = uptime.for_page(conn, page, start=start, end=end)
        for item in result.components:
            created_at, changes = timelines[item.component_id]
            expected = reference(created_at, changes, start, end)
            assert item.durations.by_status == expected, (item.name, start, end)
            if item.observed_from is not None and item.observed_until is not None:
                assert total(item.durations) == item.observed_until - item.observed_from
        assert total(result.durations) == sum((total(c.durations) for c in result.components), ZERO)


def changes_of(conn: Conn, component_id: str) -> list[tuple[dt.datetime, ComponentStatus]]:
    rows = conn.execute(
        "SELECT changed_at, new_status FROM status_change WHERE component_id = %s ORDER BY seq",
        (component_id,),
    ).fetchall()
    return [(changed_at, status) for changed_at, status in rows]


@pytest.mark.usefixtures("session_zone")
def test_end_to_end_through_incidents_and_maintenance(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="acme").id
    api = components.create(conn, page, name="API", team_id=team.id)
    docs = components.create(conn, page, name="Docs", display_order=1)

    def pause() -> None:
        conn.execute("SELECT pg_sleep(0.02)")

    pause()
    incident = incidents.create(conn, team.id, title="down", priority="CRITICAL")
    pause()
    incidents.update(conn, incident.id, priority="HIGH")
    pause()
    incidents.resolve(conn, incident.id)
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                           created_by_id, status)
           VALUES ('mw', %s, 'upgrade', now(), now() + interval '1 hour', 'u1', 'IN_PROGRESS')""",
        (page,),
    )
    conn.execute("INSERT INTO maintenance_window_component VALUES ('mw', %s)", (docs.id,))
    pause()
    conn.execute("UPDATE maintenance_window SET status = 'COMPLETED' WHERE id = 'mw'")
    pause()
    components.set_status(conn, docs.id, "DEGRADED_PERFORMANCE")

    now = dt.datetime.now(UTC)
    result = uptime.for_page(conn, page, start=now - 30 * D, end=now + H)
    for component in (api, docs):
        item = result.component(component.id)
        assert item.observed_from == component.created_at
        assert item.observed_until == result.observed_until
        expected = reference(
            component.created_at,
            changes_of(conn, component.id),
            now - 30 * D,
            result.observed_until,
        )
        assert item.durations.by_status == expected
    api_spent, docs_spent = result.component(api.id).durations, result.component(docs.id).durations
    assert api_spent.major_outage >= dt.timedelta(milliseconds=20)
    assert api_spent.partial_outage >= dt.timedelta(milliseconds=20)
    assert api_spent.under_maintenance == ZERO
    assert docs_spent.under_maintenance >= dt.timedelta(milliseconds=20)
    assert docs_spent.down == ZERO
    assert result.component(docs.id).uptime == 1.0  # maintenance and degraded are not down
    api_uptime = result.component(api.id).uptime
    assert api_uptime is not None
    assert 0.0 < api_uptime < 1.0


async def test_async_matches_sync(aconn: AConn, conn: Conn, story: tuple[str, str]) -> None:
    page, _ = story
    conn.commit()
    sync_result = uptime.for_page(conn, page, start=at(5), end=at(25))
    async_result = await uptime.for_page(aconn, page, start=at(5), end=at(25))
    assert async_result == sync_result


def test_page_query_uses_the_status_change_indexes(conn: Conn) -> None:
    """On a few thousand changes, the page query reads status_change through its indexes.

    The range is a few days out of months of changes on one page of five, so an index scan wins
    by far whatever the table carries besides (the shared database keeps the dead rows of the
    tests rolled back before this one, which once tipped a 30-day range to a Seq Scan).
    """
    pages_ = [make_page(conn, f"page-{n}") for n in range(5)]
    for page in pages_:
        conn.execute(
            """INSERT INTO status_page_component (id, status_page_id, name, created_at)
               SELECT %(page)s || '-' || i, %(page)s, 'C' || i, '2023-01-01Z'
               FROM generate_series(1, 20) AS i""",
            {"page": page},
        )
        conn.execute(
            """INSERT INTO status_change (status_page_id, component_id, previous_status,
                                          new_status, cause, changed_at)
               SELECT %(page)s, %(page)s || '-' || (1 + n %% 20),
                      CASE WHEN (n / 20) %% 2 = 0 THEN 'OPERATIONAL' ELSE 'MAJOR_OUTAGE' END,
                      CASE WHEN (n / 20) %% 2 = 0 THEN 'MAJOR_OUTAGE' ELSE 'OPERATIONAL' END,
                      'MANUAL', timestamptz '2023-01-02Z' + n * interval '1 hour'
               FROM generate_series(0, 1999) AS n
               ORDER BY n""",
            {"page": page},
        )
    conn.execute("ANALYZE status_change")
    conn.execute("ANALYZE status_page_component")
    start = dt.datetime(2023, 2, 1, tzinfo=UTC)
    params = {"page_id": pages_[1], "start": start, "end": start + 3 * D}
    row = conn.execute(
        b"EXPLAIN (FORMAT JSON) " + queries.get("uptime_for_page").sql, params
    ).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])

    seq_scans: list[str] = []
    indexes: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if node.get("Relation Name") == "status_change" and node["Node Type"] == "Seq Scan":
            seq_scans.append(node["Node Type"])
        if str(node.get("Index Name", "")).startswith("status_change_"):
            indexes.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    assert seq_scans == []
    assert indexes == {
        "status_change_component_id_seq_idx",
        "status_change_status_page_id_changed_at_idx",
    }
    result = uptime.for_page(conn, pages_[1], start=start, end=start + 30 * D)
    assert len(result.components) == 20
    assert all(total(c.durations) == 30 * D for c in result.components)
