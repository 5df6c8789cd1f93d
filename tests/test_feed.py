"""The live status feed: exactly the committed changes, typed, filtered, robust to junk."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from factories import anew_page, new_page
from psycopg.rows import TupleRow

from statusdb import components, feed, incidents, teams
from statusdb.errors import InvalidInput
from statusdb.feed import StatusChangeEvent

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]
Connect = Callable[..., Conn]

#: Upper bound for an expected notification to arrive (only waited in full when a test fails).
ARRIVAL = 10.0
#: How long a test waits to show that nothing (more) arrives.
QUIET = 0.3


def logged_changes(
    conn: Conn,
    *,
    incident_id: str | None = None,
    status_page_id: str | None = None,
    component_id: str | None = None,
    new_status: str | None = None,
) -> list[StatusChangeEvent]:
    """The status_change rows matching the filters given, as the events announcing them."""
    rows = conn.execute(
        """SELECT status_page_id, component_id, new_status, id FROM status_change
           WHERE (%(incident_id)s::text IS NULL OR incident_id = %(incident_id)s)
             AND (%(page)s::text IS NULL OR status_page_id = %(page)s)
             AND (%(component)s::text IS NULL OR component_id = %(component)s)
             AND (%(status)s::text IS NULL OR new_status = %(status)s)
           ORDER BY seq""",
        {
            "incident_id": incident_id,
            "page": status_page_id,
            "component": component_id,
            "status": new_status,
        },
    ).fetchall()
    return [
        StatusChangeEvent(page, component, status, cid) for page, component, status, cid in rows
    ]


def make_page(conn: Conn, team_id: str, slug: str) -> str:
    return new_page(conn, team_id, slug=slug).id


def test_committed_incident_change_is_announced_exactly(conn: Conn, connect: Connect) -> None:
    listener = connect(autocommit=True)
    feed.start_listening(listener)
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id, "acme")
    api = components.create(conn, page, name="API", team_id=team.id)
    db = components.create(conn, page, name="DB", team_id=team.id)
    components.create(conn, page, name="Docs")  # set by hand: not affected
    conn.commit()  # components start OPERATIONAL: nothing is logged, nothing announced

    incident = incidents.create(conn, team.id, title="down", priority="CRITICAL")
    conn.commit()
    expected = logged_changes(conn, incident_id=incident.id)
    assert {e.component_id for e in expected} == {api.id, db.id}
    assert {e.new_status for e in expected} == {"MAJOR_OUTAGE"}

    received = list(feed.listen(listener, timeout=ARRIVAL, stop_after=len(expected)))
    assert received == expected  # same rows, same order (one transaction: seq order)
    assert list(feed.listen(listener, timeout=QUIET)) == []

    incidents.resolve(conn, incident.id)
    conn.commit()
    resolved = logged_changes(conn, incident_id=incident.id, new_status="OPERATIONAL")
    assert len(resolved) == 2
    assert list(feed.listen(listener, timeout=ARRIVAL, stop_after=2)) == resolved


def test_rounds_lose_nothing_when_notifications_arrive_together(
    conn: Conn, connect: Connect
) -> None:
    listener = connect(autocommit=True)
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id, "acme")
    for name in ("API", "DB", "Web", "Queue"):
        components.create(conn, page, name=name, team_id=team.id)
    conn.commit()
    feed.start_listening(listener)
    incidents.create(conn, team.id, title="down", priority="CRITICAL")
    conn.commit()  # four notifications, sent together at commit

    received: list[StatusChangeEvent] = []
    while len(received) < 4:
        batch = list(feed.listen(listener, timeout=ARRIVAL, stop_after=1))
        assert batch, "timed out"
        received += batch
    assert received == logged_changes(conn)
    assert list(feed.listen(listener, timeout=QUIET)) == []


def test_rolled_back_change_is_not_announced(conn: Conn, connect: Connect) -> None:
    listener = connect(autocommit=True)
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id, "acme")
    components.create(conn, page, name="API", team_id=team.id)
    conn.commit()
    feed.start_listening(listener)

    incidents.create(conn, team.id, title="never happened", priority="CRITICAL")
    assert conn.execute("SELECT count(*) FROM status_change").fetchone() == (1,)
    conn.rollback()
    kept = incidents.create(conn, team.id, title="real", priority="HIGH")
    conn.commit()

    expected = logged_changes(conn)
    assert [(e.new_status, e.change_id) for e in expected] == [
        ("PARTIAL_OUTAGE", logged_changes(conn, incident_id=kept.id)[0].change_id)
    ]
    assert list(feed.listen(listener, timeout=ARRIVAL, stop_after=1)) == expected
    assert list(feed.listen(listener, timeout=QUIET)) == []


def test_listener_in_another_thread_gets_changes_as_they_commit(
    conn: Conn, connect: Connect
) -> None:
    listener = connect(autocommit=True)
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id, "acme")
    docs = components.create(conn, page, name="Docs")
    conn.commit()
    feed.start_listening(listener)  # before the thread starts: no change can slip through
    received: list[tuple[StatusChangeEvent, float]] = []

    def run() -> None:
        for event in feed.listen(listener, timeout=ARRIVAL, stop_after=3):
            received.append((event, time.monotonic()))

    thread = threading.Thread(target=run)
    thread.start()
    committed_at: list[float] = []
    for status in ("DEGRADED_PERFORMANCE", "MAJOR_OUTAGE", "OPERATIONAL"):
        components.set_status(conn, docs.id, status)
        conn.commit()
        committed_at.append(time.monotonic())
        time.sleep(0.05)
    thread.join(ARRIVAL + 1)
    assert not thread.is_alive()
    assert [e for e, _ in received] == logged_changes(conn, component_id=docs.id)
    # Each one arrived promptly after its commit, not batched at the end.
    for (_, arrived), committed in zip(received, committed_at, strict=True):
        assert arrived - committed < 1.0


async def test_async_listener(aconn: AConn, dsn: str) -> None:
    listener = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        team = await teams.create(aconn, name="SRE")
        page = (await anew_page(aconn, team.id, name="A")).id
        api = await components.create(aconn, page, name="API", team_id=team.id)
        await aconn.commit()
        await feed.astart_listening(listener)

        async def collect() -> list[StatusChangeEvent]:
            return [e async for e in feed.alisten(listener, timeout=ARRIVAL, stop_after=2)]

        task = asyncio.create_task(collect())
        incident = await incidents.create(aconn, team.id, title="slow", priority="MEDIUM")
        await aconn.commit()
        await incidents.resolve(aconn, incident.id)
        await aconn.commit()
        received = await asyncio.wait_for(task, ARRIVAL + 1)

        cur = await aconn.execute(
            "SELECT status_page_id, component_id, new_status, id FROM status_change ORDER BY seq"
        )
        expected = [StatusChangeEvent(*row) for row in await cur.fetchall()]
        assert received == expected
        assert [(e.component_id, e.new_status) for e in received] == [
            (api.id, "DEGRADED_PERFORMANCE"),
            (api.id, "OPERATIONAL"),
        ]
        assert [e async for e in feed.alisten(listener, timeout=QUIET)] == []
    finally:
        await listener.close()


def test_malformed_payloads_are_skipped_with_a_warning(
    conn: Conn, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    team = teams.create(conn, name="SRE")
    page = make_page(conn, team.id, "acme")
    docs = components.create(conn, page, name="Docs")
    components.set_status(conn, docs.id, "MAJOR_OUTAGE")
    conn.commit()
    (change,) = logged_changes(conn, component_id=docs.id)
    seq = conn.execute(
        "SELECT seq FROM status_change WHERE id = %s", (change.change_id,)
    ).fetchone()
    assert seq is not None
    listener = connect(autocommit=True)
    feed.start_listening(listener)
    listener.execute("LISTEN someone_elses_channel")
    junk = [
        "",
        "not json",
        "[1, 2]",
        "-1",
        "1.5",
        " 7",
        "\u0661",  # a digit, but not an ASCII one
        "99999999999999999999",
        # 0003's payload before 0012: the feed no longer takes its word for anything
        (
            '{"status_page_id": "p", "component_id": "c", "new_status": "MAJOR_OUTAGE",'
            ' "change_id": "x"}'
        ),
    ]
    for payload in junk:
        conn.execute("SELECT pg_notify(%s, %s)", (feed.CHANNEL, payload))
    conn.execute("SELECT pg_notify('someone_elses_channel', 'hello')")
    conn.execute("SELECT pg_notify(%s, '987654321')", (feed.CHANNEL,))  # no such change: skipped
    # A hand-made announcement of a real change only repeats what the table says.
    conn.execute("SELECT pg_notify(%s, %s)", (feed.CHANNEL, str(seq[0])))
    conn.commit()

    with caplog.at_level(logging.WARNING, logger="statusdb.feed"):
        # one round per batch: the skipped ones do not count towards stop_after
        received = list(feed.listen(listener, timeout=ARRIVAL, stop_after=1))
    assert received == [change]
    warnings = [r for r in caplog.records if r.name == "statusdb.feed"]
    assert len(warnings) == len(junk)
    assert all("malformed" in r.getMessage() for r in warnings)
    assert "not json" in warnings[1].getMessage()
    assert list(feed.listen(listener, timeout=QUIET)) == []  # the listener is still fine


def test_page_filter(conn: Conn, connect: Connect) -> None:
    listener = connect(autocommit=True)
    team = teams.create(conn, name="SRE")
    page_a, page_b = make_page(conn, team.id, "alpha"), make_page(conn, team.id, "beta")
    components.create(conn, page_a, name="API", team_id=team.id)
    components.create(conn, page_b, name="API", team_id=team.id)
    components.create(conn, page_b, name="Web", team_id=team.id)
    conn.commit()
    feed.start_listening(listener)
    incidents.create(conn, team.id, title="down", priority="CRITICAL")
    conn.commit()

    expected = logged_changes(conn, status_page_id=page_b)
    assert len(expected) == 2
    received = list(
        feed.listen(listener, status_page_id=page_b, timeout=ARRIVAL, stop_after=len(expected))
    )
    assert received == expected
    # page A's event was consumed and dropped, not left behind
    assert list(feed.listen(listener, timeout=QUIET)) == []


def test_refuses_a_connection_that_cannot_listen(conn: Conn, connect: Connect) -> None:
    with pytest.raises(InvalidInput, match="autocommit"):
        next(feed.listen(conn, timeout=0))
    with pytest.raises(InvalidInput, match="autocommit"):
        feed.start_listening(conn)
    listener = connect(autocommit=True)
    with listener.transaction(), pytest.raises(InvalidInput, match="inside a transaction"):
        feed.start_listening(listener)
    with pytest.raises(InvalidInput, match="timeout"):
        next(feed.listen(listener, timeout=-1))
    with pytest.raises(InvalidInput, match="stop_after"):
        next(feed.listen(listener, stop_after=0))
    with pytest.raises(InvalidInput, match="status_page_id"):
        next(feed.listen(listener, status_page_id=""))
    # Still usable afterwards; a timeout of 0 only drains what is already there.
    assert list(feed.listen(listener, timeout=0)) == []
