"""Status incidents (statusdb.status_incidents): timeline, concurrency, history pagination."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest
from factories import TwoPages, anew_page, two_pages
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from statusdb import components, incidents, status_incidents, teams
from statusdb.domain.types import StatusUpdate
from statusdb.errors import InvalidInput, NotFound, StatusdbError
from statusdb.status_incidents import HistoryPage, StatusIncident

Connect = Callable[..., psycopg.Connection[TupleRow]]
Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]


def _setup(conn: Conn) -> TwoPages:
    return two_pages(conn, team="Payments")


@pytest.fixture
def acme(conn: Conn) -> TwoPages:
    """A team, a page with two components, another page with one; committed."""
    built = _setup(conn)
    conn.commit()
    return built


def _now(conn: Conn) -> dt.datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, dt.datetime)
    return value


# --- create ---------------------------------------------------------------------------------


def test_create_records_the_first_update_in_the_same_insert(conn: Conn, acme: TwoPages) -> None:
    platform = incidents.create(conn, acme.team_id, title="db down", priority="HIGH")
    created = status_incidents.create(
        conn,
        acme.page_id,
        title="Elevated errors",
        severity="MAJOR",
        message="We are looking into it.",
        affected_component_ids=[acme.api, acme.web, acme.api],
        incident_id=platform.id,
    )
    assert isinstance(created, StatusIncident)
    assert created.status_page_id == acme.page_id
    assert created.incident_id == platform.id
    assert (created.title, created.severity, created.status) == (
        "Elevated errors",
        "MAJOR",
        "INVESTIGATING",
    )
    assert created.message == "We are looking into it."
    assert created.affected_component_ids == (acme.api, acme.web)  # de-duplicated, order kept
    assert created.resolved_at is None
    assert created.updates == (
        StatusUpdate(created.created_at, "INVESTIGATING", "We are looking into it."),
    )
    # The first entry's timestamp is the database's now(), aware.
    assert created.updates[0].timestamp == created.created_at == _now(conn)
    assert created.updates[0].timestamp.utcoffset() == dt.timedelta(0)
    assert status_incidents.get(conn, created.id) == created


def test_create_with_an_initial_status_and_no_components(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(
        conn,
        acme.page_id,
        title="Slow",
        severity="MINOR",
        message="Monitoring",
        status="MONITORING",
    )
    assert created.status == "MONITORING"
    assert created.affected_component_ids == ()
    assert created.incident_id is None
    assert [u.status for u in created.updates] == ["MONITORING"]


def test_create_resolved_is_a_retrospective_notice(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(
        conn,
        acme.page_id,
        title="Blip",
        severity="MINOR",
        message="It was brief",
        status="RESOLVED",
    )
    assert created.resolved_at == created.created_at
    assert status_incidents.list_active(conn, acme.page_id) == []
    assert status_incidents.history(conn, acme.page_id, days=1).items == (created,)


def test_timeline_timestamps_are_stored_in_utc_whatever_the_session_time_zone(
    conn: Conn, acme: TwoPages
) -> None:
    conn.execute("SET TimeZone = 'Asia/Kolkata'")
    created = status_incidents.create(
        conn, acme.page_id, title="Tz", severity="MINOR", message="first"
    )
    status_incidents.add_update(conn, created.id, status="IDENTIFIED", message="second")
    rows = conn.execute(
        "SELECT u ->> 'timestamp' FROM status_incident, jsonb_array_elements(updates) AS u"
        " WHERE id = %s",
        [created.id],
    ).fetchall()
    stamps = [r[0] for r in rows]
    assert len(stamps) == 2
    for stamp in stamps:
        assert stamp.endswith("Z")
        assert len(stamp) == len("2024-05-01T10:00:00.123456Z")
    assert dt.datetime.fromisoformat(stamps[0]) == created.created_at


_BAD_CREATE_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"severity": "HUGE"}, "severity"),
    ({"status": "FIXED"}, "status"),
    ({"title": ""}, "title"),
    ({"title": " \t"}, "title"),
    ({"title": "x" * 501}, "title"),
    ({"title": "a\x00b"}, "title"),
    ({"message": "a\x00b"}, "message"),
    ({"message": ""}, "message"),
    ({"message": "m" * 10_001}, "message"),
    ({"affected_component_ids": "abc"}, "affected_component_ids"),
    ({"affected_component_ids": ["a\x00"]}, "affected_component_ids"),
    ({"incident_id": ""}, "incident_id"),
]


def test_create_refuses_bad_input_before_sending_sql(conn: Conn, acme: TwoPages) -> None:
    for kwargs, fragment in _BAD_CREATE_INPUT:
        args: dict[str, Any] = {"title": "T", "severity": "MINOR", "message": "m", **kwargs}
        with pytest.raises(InvalidInput, match=fragment):
            status_incidents.create(conn, acme.page_id, **args)
    # Nothing reached the database: the transaction is intact and empty.
    assert conn.execute("SELECT count(*) FROM status_incident").fetchone() == (0,)


def test_create_errors_from_the_database(conn: Conn, acme: TwoPages) -> None:
    with pytest.raises(NotFound, match="no status page with id 'nope'"):
        status_incidents.create(conn, "nope", title="T", severity="MINOR", message="m")
    # Unknown page wins over components: the components are not even looked at.
    with pytest.raises(NotFound, match="no status page"):
        status_incidents.create(
            conn,
            "nope",
            title="T",
            severity="MINOR",
            message="m",
            affected_component_ids=[acme.api],
        )
    with pytest.raises(InvalidInput, match="same status page"):
        status_incidents.create(
            conn,
            acme.page_id,
            title="T",
            severity="MINOR",
            message="m",
            affected_component_ids=[acme.api, acme.foreign],
        )
    conn.rollback()
    with pytest.raises(InvalidInput, match="same status page"):
        status_incidents.create(
            conn,
            acme.page_id,
            title="T",
            severity="MINOR",
            message="m",
            affected_component_ids=["no-such-component"],
        )
    conn.rollback()
    with pytest.raises(NotFound, match="platform incident"):
        status_incidents.create(
            conn, acme.page_id, title="T", severity="MINOR", message="m", incident_id="nope"
        )
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM status_incident").fetchone() == (0,)


async def test_create_and_get_async(aconn: AConn) -> None:
    team = await teams.create(aconn, name="Async")
    page = await anew_page(aconn, team.id, slug="async", name="A", created_by_id="u")
    api = await components.create(aconn, page.id, name="API")
    created = await status_incidents.create(
        aconn,
        page.id,
        title="Async outage",
        severity="CRITICAL",
        message="Investigating",
        affected_component_ids=[api.id],
    )
    assert created.updates[0].message == "Investigating"
    assert await status_incidents.get(aconn, created.id) == created
    with pytest.raises(NotFound):
        await status_incidents.create(aconn, "nope", title="T", severity="MINOR", message="m")


# --- add_update -------------------------------------------------------------------------------


@pytest.mark.fresh_db
def test_add_update_appends_and_sets_the_current_state(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(
        conn, acme.page_id, title="T", severity="MAJOR", message="looking"
    )
    conn.commit()
    identified = status_incidents.add_update(
        conn, created.id, status="IDENTIFIED", message="found it"
    )
    assert (identified.status, identified.message) == ("IDENTIFIED", "found it")
    assert identified.updates[0] == created.updates[0]
    assert identified.updates[1].status == "IDENTIFIED"
    assert identified.updates[1].message == "found it"
    assert identified.updates[1].timestamp > created.updates[0].timestamp
    assert identified.updated_at > created.updated_at
    assert identified.resolved_at is None
    resolved = status_incidents.add_update(conn, created.id, status="RESOLVED", message="fixed")
    assert resolved.status == "RESOLVED"
    assert resolved.resolved_at == _now(conn)
    assert [u.status for u in resolved.updates] == ["INVESTIGATING", "IDENTIFIED", "RESOLVED"]
    # Title, severity, components untouched.
    assert (resolved.title, resolved.severity) == ("T", "MAJOR")


def test_add_update_errors(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MINOR", message="m")
    with pytest.raises(NotFound, match="no status incident with id 'nope'"):
        status_incidents.add_update(conn, "nope", status="IDENTIFIED", message="m")
    with pytest.raises(InvalidInput, match="status must be one of"):
        status_incidents.add_update(conn, created.id, status="DONE", message="m")  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="message"):
        status_incidents.add_update(conn, created.id, status="IDENTIFIED", message="x\x00")
    with pytest.raises(InvalidInput, match="message"):
        status_incidents.add_update(conn, created.id, status="IDENTIFIED", message="  ")
    assert status_incidents.get(conn, created.id) == created


async def test_add_update_async(aconn: AConn) -> None:
    team = await teams.create(aconn, name="Async")
    page = await anew_page(aconn, team.id, slug="async", name="A", created_by_id="u")
    created = await status_incidents.create(
        aconn, page.id, title="T", severity="MINOR", message="m"
    )
    updated = await status_incidents.add_update(
        aconn, created.id, status="MONITORING", message="fix deployed"
    )
    assert [u.status for u in updated.updates] == ["INVESTIGATING", "MONITORING"]
    assert await status_incidents.list_active(aconn, page.id) == [updated]
    with pytest.raises(NotFound):
        await status_incidents.add_update(aconn, "nope", status="MONITORING", message="m")


def test_concurrent_appends_are_never_lost(conn: Conn, acme: TwoPages, connect: Connect) -> None:
    """4 writers x 25 appends, each in its own transaction, all at once: all 100 are kept,
    each writer's in its own order, and the timeline's timestamps follow its (commit) order."""
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MINOR", message="0")
    conn.commit()
    writers, per_writer = 4, 25
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with connect() as own:
                start.wait()
                for i in range(per_writer):
                    status_incidents.add_update(
                        own, created.id, status="IDENTIFIED", message=f"w{n}-{i}"
                    )
                    own.commit()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert all(not t.is_alive() for t in threads)

    final = status_incidents.get(conn, created.id)
    appended = [u.message for u in final.updates[1:]]
    assert len(final.updates) == 1 + writers * per_writer
    assert sorted(appended) == sorted(
        f"w{n}-{i}" for n in range(writers) for i in range(per_writer)
    )
    for n in range(writers):
        mine = [m for m in appended if m.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(per_writer)]
    stamps = [u.timestamp for u in final.updates]
    assert stamps == sorted(stamps)


def test_an_earlier_transaction_appending_later_gets_a_later_timestamp(
    conn: Conn, acme: TwoPages, connect: Connect
) -> None:
    """Timestamps are taken once the row is locked, not at transaction start."""
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MINOR", message="0")
    conn.commit()
    early, late = connect(), connect()
    early.execute("SELECT 1")  # its transaction, and so its now(), begins here
    status_incidents.add_update(late, created.id, status="IDENTIFIED", message="late")
    late.commit()
    status_incidents.add_update(early, created.id, status="MONITORING", message="early")
    early.commit()
    final = status_incidents.get(conn, created.id)
    assert [u.message for u in final.updates] == ["0", "late", "early"]
    assert final.updates[1].timestamp < final.updates[2].timestamp
    assert final.status == "MONITORING"


def test_a_writer_waits_for_the_other_and_appends_to_its_version(
    conn: Conn, acme: TwoPages, connect: Connect
) -> None:
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MINOR", message="0")
    conn.commit()
    first, second = connect(), connect()
    status_incidents.add_update(first, created.id, status="IDENTIFIED", message="first")
    done = threading.Event()
    result: list[StatusIncident] = []

    def blocked() -> None:
        result.append(
            status_incidents.add_update(second, created.id, status="RESOLVED", message="second")
        )
        second.commit()
        done.set()

    thread = threading.Thread(target=blocked)
    thread.start()
    assert not done.wait(0.3)  # waiting for first's row lock
    first.commit()
    thread.join(timeout=10)
    assert done.is_set()
    assert [u.message for u in result[0].updates] == ["0", "first", "second"]
    assert result[0].status == "RESOLVED"


# --- after RESOLVED -------------------------------------------------------------------------


@pytest.mark.fresh_db
def test_an_update_after_resolved_reopens_and_a_resolved_note_keeps_it_resolved(
    conn: Conn, acme: TwoPages
) -> None:
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MAJOR", message="m")
    resolved = status_incidents.add_update(conn, created.id, status="RESOLVED", message="fixed")
    conn.commit()
    assert resolved.resolved_at is not None

    # A closing note (RESOLVED again) in a later transaction: still resolved, same resolved_at.
    noted = status_incidents.add_update(
        conn, created.id, status="RESOLVED", message="post-mortem published"
    )
    conn.commit()
    assert noted.status == "RESOLVED"
    assert noted.resolved_at == resolved.resolved_at
    assert noted.updated_at > resolved.updated_at
    assert status_incidents.history(conn, acme.page_id, days=1).items == (noted,)

    # Any other status re-opens it: resolved_at cleared, active again, out of the history.
    reopened = status_incidents.add_update(
        conn, created.id, status="INVESTIGATING", message="it is back"
    )
    conn.commit()
    assert reopened.status == "INVESTIGATING"
    assert reopened.resolved_at is None
    assert status_incidents.list_active(conn, acme.page_id) == [reopened]
    assert status_incidents.history(conn, acme.page_id, days=1).items == ()
    assert [u.status for u in reopened.updates] == [
        "INVESTIGATING",
        "RESOLVED",
        "RESOLVED",
        "INVESTIGATING",
    ]

    # Resolving it again gives it a new resolved_at.
    again = status_incidents.add_update(conn, created.id, status="RESOLVED", message="for good")
    assert again.resolved_at is not None
    assert again.resolved_at > resolved.resolved_at


# --- edit ---------------------------------------------------------------------------------------


def test_edit_changes_only_the_fields_given(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(
        conn,
        acme.page_id,
        title="T",
        severity="MINOR",
        message="m",
        affected_component_ids=[acme.api],
    )
    retitled = status_incidents.edit(conn, created.id, title="Better title")
    assert retitled.title == "Better title"
    assert attrs.evolve(retitled, title="T", updated_at=created.updated_at) == created

    changed = status_incidents.edit(
        conn,
        created.id,
        message="corrected message",
        severity="CRITICAL",
        affected_component_ids=[acme.web, acme.api],
    )
    assert changed.title == "Better title"
    assert changed.message == "corrected message"
    assert changed.severity == "CRITICAL"
    assert changed.affected_component_ids == (acme.web, acme.api)
    assert changed.status == created.status
    assert changed.updates == created.updates  # the timeline is never rewritten

    cleared = status_incidents.edit(conn, created.id, affected_component_ids=[])
    assert cleared.affected_component_ids == ()
    assert status_incidents.edit(conn, created.id).title == "Better title"  # nothing to change


def test_edit_errors(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MINOR", message="m")
    conn.commit()
    with pytest.raises(NotFound, match="no status incident"):
        status_incidents.edit(conn, "nope", title="x")
    with pytest.raises(InvalidInput, match="severity"):
        status_incidents.edit(conn, created.id, severity="BAD")  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="title"):
        status_incidents.edit(conn, created.id, title="")
    with pytest.raises(InvalidInput, match="message"):
        status_incidents.edit(conn, created.id, message="\x00")
    with pytest.raises(InvalidInput, match="same status page"):
        status_incidents.edit(conn, created.id, affected_component_ids=[acme.foreign])
    conn.rollback()
    assert status_incidents.get(conn, created.id) == created


async def test_edit_async(aconn: AConn) -> None:
    team = await teams.create(aconn, name="Async")
    page = await anew_page(aconn, team.id, slug="async", name="A", created_by_id="u")
    created = await status_incidents.create(
        aconn, page.id, title="T", severity="MINOR", message="m"
    )
    edited = await status_incidents.edit(aconn, created.id, severity="MAJOR")
    assert edited.severity == "MAJOR"
    assert edited.title == "T"


def test_deleting_a_component_removes_it_from_affected_ids(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(
        conn,
        acme.page_id,
        title="T",
        severity="MINOR",
        message="m",
        affected_component_ids=[acme.api, acme.web],
    )
    components.delete(conn, acme.api)
    assert status_incidents.get(conn, created.id).affected_component_ids == (acme.web,)


# --- get, list_active, delete -------------------------------------------------------------------


def test_get_and_delete(conn: Conn, acme: TwoPages) -> None:
    created = status_incidents.create(conn, acme.page_id, title="T", severity="MINOR", message="m")
    status_incidents.delete(conn, created.id)
    with pytest.raises(NotFound, match="no status incident with id"):
        status_incidents.get(conn, created.id)
    with pytest.raises(NotFound, match="no status incident with id"):
        status_incidents.delete(conn, created.id)
    with pytest.raises(InvalidInput, match="status_incident_id"):
        status_incidents.get(conn, "")


async def test_delete_async(aconn: AConn) -> None:
    team = await teams.create(aconn, name="Async")
    page = await anew_page(aconn, team.id, slug="async", name="A", created_by_id="u")
    created = await status_incidents.create(
        aconn, page.id, title="T", severity="MINOR", message="m"
    )
    await status_incidents.delete(aconn, created.id)
    with pytest.raises(NotFound):
        await status_incidents.get(aconn, created.id)


def test_list_active_is_newest_first_and_only_unresolved_of_the_page(
    conn: Conn, acme: TwoPages
) -> None:
    made = []
    for n in range(3):
        made.append(
            status_incidents.create(
                conn, acme.page_id, title=f"T{n}", severity="MINOR", message="m"
            )
        )
        conn.commit()  # distinct created_at
    status_incidents.add_update(conn, made[1].id, status="RESOLVED", message="done")
    status_incidents.create(conn, acme.other_page_id, title="Other", severity="MINOR", message="m")
    active = status_incidents.list_active(conn, acme.page_id)
    assert [i.id for i in active] == [made[2].id, made[0].id]
    assert status_incidents.list_active(conn, "no-such-page") == []


# --- history --------------------------------------------------------------------------------


def _insert_resolved(
    conn: Conn, page_id: str, resolved_at: dt.datetime, title: str, *, incident_id: str = ""
) -> str:
    """A resolved incident with an exact resolved_at (and id, if given), as a DBA would."""
    row = conn.execute(
        "INSERT INTO status_incident (id, status_page_id, title, severity, status, resolved_at,"
        " created_at, updates)"
        " VALUES (coalesce(nullif(%s, ''), statusdb_new_id()), %s, %s, 'MINOR', 'RESOLVED', %s,"
        " %s, %s) RETURNING id",
        [
            incident_id,
            page_id,
            title,
            resolved_at,
            resolved_at - dt.timedelta(hours=1),
            Jsonb([]),
        ],
    ).fetchone()
    assert row is not None
    return str(row[0])


def _walk(conn: Conn, page_id: str, *, days: int, limit: int) -> list[HistoryPage]:
    result = [status_incidents.history(conn, page_id, days=days, limit=limit)]
    while result[-1].next_cursor is not None:
        assert len(result) < 50
        result.append(
            status_incidents.history(
                conn, page_id, days=days, limit=limit, after=result[-1].next_cursor
            )
        )
    return result


def test_history_pages_through_ties_returning_every_row_once(conn: Conn, acme: TwoPages) -> None:
    now = _now(conn)
    # Groups of equal resolved_at, with ids in no particular order (the tie-breaker is id DESC).
    stamps = {
        "k07": now - dt.timedelta(hours=1),
        "k02": now - dt.timedelta(hours=1),
        "k11": now - dt.timedelta(hours=1),
        "k05": now - dt.timedelta(days=2),
        "k09": now - dt.timedelta(days=2),
        "k01": now - dt.timedelta(days=3, microseconds=1),
        "k10": now - dt.timedelta(days=3),
        "k03": now - dt.timedelta(days=5),
        "k08": now - dt.timedelta(days=5),
        "k04": now - dt.timedelta(days=5),
        "k06": now - dt.timedelta(days=6, hours=23),
        "k00": now - dt.timedelta(days=6, hours=23),
    }
    for incident_id, at in stamps.items():
        _insert_resolved(conn, acme.page_id, at, incident_id, incident_id=incident_id)
    # Not in the history: too old, another page, still active.
    _insert_resolved(conn, acme.page_id, now - dt.timedelta(days=7, seconds=1), "too old")
    _insert_resolved(conn, acme.other_page_id, now - dt.timedelta(hours=1), "other page")
    status_incidents.create(conn, acme.page_id, title="active", severity="MINOR", message="m")
    expected = sorted(stamps, key=lambda i: (stamps[i], i), reverse=True)

    for limit in (1, 2, 3, 4, 5, 6, 11, 12, 13, 100):
        walked = _walk(conn, acme.page_id, days=7, limit=limit)
        items = [item for page in walked for item in page.items]
        # Every row exactly once, resolved_at DESC then id DESC.
        assert [i.id for i in items] == expected, limit
        assert [i.resolved_at for i in items] == [stamps[i] for i in expected]
        assert all(i.status == "RESOLVED" for i in items)
        # Full pages but the last; no empty trailing page even when the count divides evenly.
        assert all(len(p.items) == limit for p in walked[:-1])
        assert 1 <= len(walked[-1].items) <= limit
        assert len(walked) == -(-len(expected) // limit)
        for page in walked[:-1]:
            assert page.next_cursor is not None
            assert page.next_cursor.replace("-", "").replace("_", "").isalnum()  # URL-safe


def test_history_window_and_empty_pages(conn: Conn, acme: TwoPages) -> None:
    now = _now(conn)
    recent = _insert_resolved(conn, acme.page_id, now - dt.timedelta(hours=20), "recent")
    older = _insert_resolved(conn, acme.page_id, now - dt.timedelta(days=3), "older")
    assert [i.id for i in status_incidents.history(conn, acme.page_id, days=1).items] == [recent]
    assert [i.id for i in status_incidents.history(conn, acme.page_id, days=30).items] == [
        recent,
        older,
    ]
    assert status_incidents.history(conn, "no-such-page", days=30) == HistoryPage((), None)


def test_history_cursor_is_stable_when_incidents_resolve_in_between(
    conn: Conn, acme: TwoPages
) -> None:
    now = _now(conn)
    ids = [
        _insert_resolved(conn, acme.page_id, now - dt.timedelta(hours=n + 1), f"r{n}")
        for n in range(4)
    ]
    first = status_incidents.history(conn, acme.page_id, days=1, limit=2)
    assert [i.id for i in first.items] == ids[:2]
    # A newly resolved incident lands on top, not in the middle of the walk.
    _insert_resolved(conn, acme.page_id, now, "new")
    second = status_incidents.history(conn, acme.page_id, days=1, limit=2, after=first.next_cursor)
    assert [i.id for i in second.items] == ids[2:]
    assert second.next_cursor is None


async def test_history_async(aconn: AConn) -> None:
    team = await teams.create(aconn, name="Async")
    page = await anew_page(aconn, team.id, slug="async", name="A", created_by_id="u")
    made = []
    for n in range(3):
        made.append(
            await status_incidents.create(
                aconn, page.id, title=f"T{n}", severity="MINOR", message="m", status="RESOLVED"
            )
        )
    first = await status_incidents.history(aconn, page.id, days=1, limit=2)
    assert first.next_cursor is not None
    second = await status_incidents.history(
        aconn, page.id, days=1, limit=2, after=first.next_cursor
    )
    assert second.next_cursor is None
    # Same resolved_at (one transaction): ordered by id, newest id first.
    assert [i.id for i in (*first.items, *second.items)] == sorted(
        (m.id for m in made), reverse=True
    )


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def test_history_refuses_bad_cursors_with_invalid_input(conn: Conn, acme: TwoPages) -> None:
    other = _b64(json.dumps([1, acme.other_page_id, 0, "x"]).encode())
    bad = [
        "",
        "not a cursor!",
        "a" * 2000,
        "@@@@",
        "A",  # impossible base64 length
        _b64(b"\xff\xfe\x00"),  # not UTF-8
        _b64(b"not json"),
        _b64(b"{}"),
        _b64(json.dumps([1, acme.page_id, 0]).encode()),
        _b64(json.dumps([2, acme.page_id, 0, "x"]).encode()),  # unknown version
        _b64(json.dumps([True, acme.page_id, 0, "x"]).encode()),
        _b64(json.dumps([1, acme.page_id, "0", "x"]).encode()),
        _b64(json.dumps([1, acme.page_id, 1.5, "x"]).encode()),
        _b64(json.dumps([1, acme.page_id, 10**30, "x"]).encode()),  # beyond any timestamp
        _b64(json.dumps([1, acme.page_id, -(10**30), "x"]).encode()),
        _b64(json.dumps([1, acme.page_id, 0, ""]).encode()),
        _b64(json.dumps([1, acme.page_id, 0, "x\x00"]).encode()),
        _b64(json.dumps([1, acme.page_id, 0, None]).encode()),
    ]
    for cursor in bad:
        with pytest.raises(InvalidInput, match="cursor"):
            status_incidents.history(conn, acme.page_id, days=1, after=cursor)
    with pytest.raises(InvalidInput, match="another status page"):
        status_incidents.history(conn, acme.page_id, days=1, after=other)
    with pytest.raises(InvalidInput, match="after must be a cursor string"):
        status_incidents.history(conn, acme.page_id, days=1, after=123)  # type: ignore[call-overload]
    # The transaction is still usable: nothing reached the database.
    assert status_incidents.history(conn, acme.page_id, days=1) == HistoryPage((), None)


def test_history_extreme_but_well_formed_cursor_positions_are_harmless(
    conn: Conn, acme: TwoPages
) -> None:
    _insert_resolved(conn, acme.page_id, _now(conn) - dt.timedelta(hours=1), "r")
    for micros in (0, -(10**15), 253_402_300_799_999_999):  # 1970, 1938, 9999-12-31
        cursor = _b64(json.dumps([1, acme.page_id, micros, "zzz"]).encode())
        page = status_incidents.history(conn, acme.page_id, days=1, after=cursor)
        assert page.next_cursor is None
        assert len(page.items) == (1 if micros > 0 else 0)


def test_history_refuses_bad_days_and_limits(conn: Conn, acme: TwoPages) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"days": 0}, "days"),
        ({"days": -1}, "days"),
        ({"days": 36_501}, "days"),
        ({"days": True}, "days"),
        ({"days": 1.5}, "days"),
        ({"days": 1, "limit": 0}, "limit"),
        ({"days": 1, "limit": 101}, "limit"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(InvalidInput, match=fragment):
            status_incidents.history(conn, acme.page_id, **kwargs)


def test_history_query_walks_the_partial_index_without_sorting(conn: Conn, acme: TwoPages) -> None:
    """The DBA's contract: status_incident_resolved_history_idx serves filter, order and cursor."""
    from statusdb.db import queries

    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")
    sql = queries.get("status_incident_history").text
    params = {
        "status_page_id": acme.page_id,
        "days": 30,
        "after_resolved_at": _now(conn),
        "after_id": "x",
        "limit": 21,
    }
    with psycopg.ClientCursor(conn) as cur:
        cur.execute("EXPLAIN " + sql, params)
        plan = "\n".join(str(r[0]) for r in cur.fetchall())
    assert "status_incident_resolved_history_idx" in plan
    assert "Sort" not in plan


# --- decoding rows written by other clients -------------------------------------------------


def test_timeline_written_by_hand_decodes_to_aware_datetimes(conn: Conn, acme: TwoPages) -> None:
    timeline = [
        {"timestamp": "2024-05-01T12:00:00+02:00", "status": "INVESTIGATING", "message": "a"},
        {"timestamp": "2024-05-01T11:00:00.5", "status": "RESOLVED", "message": "b"},
    ]
    row = conn.execute(
        "INSERT INTO status_incident (status_page_id, title, severity, status, updates)"
        " VALUES (%s, 'psql', 'MAJOR', 'RESOLVED', %s) RETURNING id",
        [acme.page_id, Jsonb(timeline)],
    ).fetchone()
    assert row is not None
    got = status_incidents.get(conn, str(row[0]))
    assert got.message is None
    utc = dt.UTC
    assert got.updates == (
        StatusUpdate(dt.datetime(2024, 5, 1, 10, 0, tzinfo=utc), "INVESTIGATING", "a"),
        StatusUpdate(dt.datetime(2024, 5, 1, 11, 0, 0, 500_000, tzinfo=utc), "RESOLVED", "b"),
    )


def test_an_unreadable_timestamp_is_a_statusdb_error(conn: Conn, acme: TwoPages) -> None:
    timeline = [{"timestamp": "yesterday", "status": "INVESTIGATING", "message": "a"}]
    # Refused since 0024 (tests/security/test_s25_readable_values.py); a row stored before it:
    conn.execute(
        "ALTER TABLE status_incident DROP CONSTRAINT status_incident_updates_readable_check"
    )
    row = conn.execute(
        "INSERT INTO status_incident (status_page_id, title, severity, updates)"
        " VALUES (%s, 'psql', 'MAJOR', %s) RETURNING id",
        [acme.page_id, Jsonb(timeline)],
    ).fetchone()
    assert row is not None
    with pytest.raises(StatusdbError, match="unreadable timestamp"):
        status_incidents.get(conn, str(row[0]))
