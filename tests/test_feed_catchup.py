"""A feed that catches up (issue 22): `changes_since`, `pages_changed_since` and `Follower`.

A follower's connection is terminated (pg_terminate_backend) while changes are committed: it
reconnects by itself and yields every committed change once, in order.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, feed, teams
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput, StatusdbError

Conn = psycopg.Connection[TupleRow]
Connect = Callable[..., Conn]

STATUSES: tuple[ComponentStatus, ...] = (
    "DEGRADED_PERFORMANCE",
    "PARTIAL_OUTAGE",
    "MAJOR_OUTAGE",
    "OPERATIONAL",
)


def logged_seqs(conn: Conn) -> list[int]:
    return [seq for (seq,) in conn.execute("SELECT seq FROM status_change ORDER BY seq")]


def setup_page(conn: Conn, slug: str, count: int = 2) -> tuple[str, list[str]]:
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug=slug).id
    ids = [components.create(conn, page, name=f"C{n}").id for n in range(count)]
    conn.commit()
    return page, ids


def test_changes_since_pages_in_seq_order(conn: Conn) -> None:
    page, (a, b) = setup_page(conn, "catchup-pages")
    other, (c,) = setup_page(conn, "catchup-other", 1)
    for status in STATUSES:
        components.set_status(conn, a, status)
        components.set_status(conn, c, status)
        components.set_status(conn, b, status)
    conn.commit()
    seqs = logged_seqs(conn)
    assert len(seqs) == 12

    got: list[feed.FeedChange] = []
    after = 0
    while page_ := feed.changes_since(conn, after, limit=5):
        assert len(page_) <= 5
        got += page_
        after = page_[-1].seq
    assert [g.seq for g in got] == seqs
    assert [g.event.new_status for g in got[:3]] == ["DEGRADED_PERFORMANCE"] * 3
    assert feed.latest_seq(conn) == seqs[-1]
    assert feed.changes_since(conn, seqs[-1]) == []

    mine = feed.changes_since(conn, 0, status_page_id=page, limit=100)
    assert len(mine) == 8
    assert {m.event.status_page_id for m in mine} == {page}
    assert len(feed.changes_since(conn, 0, status_page_id=other)) == 4


def test_changes_since_refuses_bad_arguments(conn: Conn) -> None:
    for bad in (-1, 2**63, True, "1"):
        with pytest.raises(InvalidInput, match="seq"):
            feed.changes_since(conn, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="limit"):
        feed.changes_since(conn, 0, limit=feed.MAX_LIMIT + 1)
    with pytest.raises(InvalidInput, match="version"):
        feed.pages_changed_since(conn, -5)


def test_pages_changed_since_lists_each_page_once_with_its_current_version(conn: Conn) -> None:
    page, (a, _) = setup_page(conn, "catchup-versions")
    other, (c,) = setup_page(conn, "catchup-versions-2", 1)
    components.set_status(conn, a, "MAJOR_OUTAGE")
    conn.commit()
    components.set_status(conn, c, "MAJOR_OUTAGE")
    conn.commit()
    components.set_status(conn, a, "OPERATIONAL")  # page re-rendered again: listed once
    conn.commit()
    changed = feed.pages_changed_since(conn, 0)
    mine = [e for e in changed if e.status_page_id in (page, other)]
    assert [e.status_page_id for e in mine] == [other, page]  # oldest rendering first
    current: dict[str, int] = dict(
        conn.execute(
            "SELECT page_id, version * 256 FROM status_page_snapshot WHERE page_id = ANY(%s)",
            ([page, other],),
        ).fetchall()
    )
    assert {e.status_page_id: e.version for e in mine} == current
    assert feed.pages_changed_since(conn, max(current.values())) == []
    first = feed.pages_changed_since(conn, 0, limit=1)
    assert len(first) == 1


def _terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_follower_reconnects_and_delivers_every_change_once_in_order(dsn: str) -> None:
    with psycopg.connect(dsn) as setup:
        _, ids = setup_page(setup, "catchup-follow", 3)
    follower = feed.Follower(dsn, since=0, reconnect_delay=0.05, limit=7)
    stop = threading.Event()
    written = 0

    def write() -> None:
        nonlocal written
        with psycopg.connect(dsn) as writer:
            n = 0
            while not stop.is_set() and n < 120:
                components.set_status(writer, ids[n % 3], STATUSES[(n // 3) % 4])
                writer.commit()
                n += 1
                written = n
                time.sleep(0.005)

    thread = threading.Thread(target=write)
    thread.start()
    got: list[feed.FeedChange] = []
    kills = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got += list(follower.changes(timeout=0.15))
            conn = follower._conn
            if conn is not None and kills < 6:
                _terminate(dsn, conn.info.backend_pid)  # while the writer goes on
                kills += 1
            if not thread.is_alive() and written == 120 and len(got) >= 120:
                got += list(follower.changes(timeout=0.3))
                break
    finally:
        stop.set()
        thread.join()
        follower.close()
    with psycopg.connect(dsn) as check:
        seqs = logged_seqs(check)
    assert len(seqs) == 120
    assert [g.seq for g in got] == seqs  # every change, once, in order
    assert follower.reconnects >= 5
    assert follower.last_seq == seqs[-1]


def test_follower_catches_a_lower_seq_committed_while_it_was_away(dsn: str) -> None:
    with psycopg.connect(dsn) as setup:
        _, (a,) = setup_page(setup, "catchup-late", 1)
        _, (b,) = setup_page(setup, "catchup-late-2", 1)  # another page: no lock shared
    follower = feed.Follower(dsn, since=None, reconnect_delay=0.05)
    assert list(follower.changes(timeout=0.1)) == []  # connected, listening, from now on
    slow = psycopg.connect(dsn)
    fast = psycopg.connect(dsn)
    try:
        components.set_status(slow, a, "MAJOR_OUTAGE")  # takes the lower seq, not committed
        components.set_status(fast, b, "MAJOR_OUTAGE")
        fast.commit()
        first = list(follower.changes(timeout=1.0))
        assert [getattr(c.event, "component_id", None) for c in first] == [b]
        assert follower._conn is not None
        _terminate(dsn, follower._conn.info.backend_pid)
        time.sleep(0.1)
        slow.commit()  # announced while the follower is away: only the catch-up can find it
        late = list(follower.changes(timeout=1.0))
        assert [getattr(c.event, "component_id", None) for c in late] == [a]
        assert late[0].seq < first[0].seq
        assert list(follower.changes(timeout=0.3)) == []  # nothing twice
    finally:
        slow.close()
        fast.close()
        follower.close()


async def test_async_follower_resumes_after_a_drop(dsn: str) -> None:
    with psycopg.connect(dsn) as setup:
        _, (a, _) = setup_page(setup, "catchup-async")
        components.set_status(setup, a, "MAJOR_OUTAGE")
        setup.commit()
        (since,) = setup.execute("SELECT max(seq) FROM status_change").fetchone() or (0,)
    follower = feed.AsyncFollower(dsn, since=since, reconnect_delay=0.05)
    try:
        assert [c async for c in follower.changes(timeout=0.1)] == []
        assert follower._conn is not None
        _terminate(dsn, follower._conn.info.backend_pid)
        with psycopg.connect(dsn) as writer:
            for status in STATUSES:
                components.set_status(writer, a, status)
                writer.commit()
            seqs = [s for s in logged_seqs(writer) if s > since]
        got = [c async for c in follower.changes(timeout=1.0)]
        assert [c.seq for c in got] == seqs
        assert follower.reconnects == 1
    finally:
        await follower.close()


def test_follower_waits_for_a_server_and_refuses_a_bad_conninfo() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waiting = feed.Follower(f"host=127.0.0.1 port={port} connect_timeout=1", since=0)
    started = time.monotonic()
    assert list(waiting.changes(timeout=0.5)) == []  # keeps trying until the timeout, quietly
    assert time.monotonic() - started < 3
    waiting.close()
    with pytest.raises(StatusdbError):
        list(feed.Follower("not a conninfo ===", since=0).changes(timeout=5))
    with pytest.raises(InvalidInput, match="since"):
        feed.Follower("", since=-1)
