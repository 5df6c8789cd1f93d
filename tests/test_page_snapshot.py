"""The page snapshot (migration 0017): rendered by every writer, versioned, read conditionally.

The page view reads a per-page snapshot that the writers' statement triggers keep in the same
transaction. These tests change what a page shows through every table it shows (plain SQL, as
psql would), compare the snapshot with a rendering from scratch (`views.recompute_snapshots`,
which reports drift without repairing), check the versions and their announcements, the
conditional read, the time-dependent part with a moving clock, and concurrent writers.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from typing import Any

import psycopg
import pytest
from conftest import Connect
from psycopg.rows import TupleRow

from statusdb import errors, feed, incidents, pages, teams, views
from statusdb.domain import tokens
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]


class CountingCursor(psycopg.Cursor[Any]):
    """Counts statements sent to the server (each execute is one round trip)."""

    executed = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        type(self).executed += 1
        return super().execute(*args, **kwargs)


def new_page(
    conn: Conn, *, slug: str, components: int, is_public: bool = True
) -> pages.CreatedPage:
    """A page of a new team with `components` components (the token in the result if private)."""
    team = teams.create(conn, name=f"Team {slug}")
    return pages.create(
        conn,
        team_id=team.id,
        name=slug.title(),
        slug=slug,
        created_by_id="u1",
        is_public=is_public,
        components=[NewComponent(name=f"C{n:02d}") for n in range(components)],
    )


def component_ids(conn: Conn, page_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT id FROM status_page_component WHERE status_page_id = %s ORDER BY id", (page_id,)
    ).fetchall()
    return [r[0] for r in rows]


def version(conn: Conn, page_id: str) -> int:
    """The lowest version readers of the page's current rendering see (and the announced one)."""
    row = conn.execute(
        "SELECT version * 256 FROM status_page_snapshot WHERE page_id = %s", (page_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_every_writer_moves_the_version_and_the_snapshot_stays_exact(
    conn: Conn, connect: Connect
) -> None:
    created = new_page(conn, slug="acme", components=3)
    page_id = created.page.id
    comp = component_ids(conn, page_id)
    conn.commit()
    listener = connect(autocommit=True)
    assert list(feed.listen_pages(listener, timeout=0)) == []  # listening from here on
    seen = [version(conn, page_id)]

    def changed(statement: str, params: tuple[Any, ...] = ()) -> None:
        """`statement` changes what the page shows: a new version, announced, and exact."""
        conn.execute(statement.encode(), params)
        conn.commit()
        now = version(conn, page_id)
        assert now > seen[-1], statement
        seen.append(now)
        events = list(feed.listen_pages(listener, timeout=5, stop_after=1))
        assert events == [feed.PageVersionEvent(page_id, now)], statement
        assert views.recompute_snapshots(conn) == [], statement

    def unchanged(statement: str, params: tuple[Any, ...] = ()) -> None:
        conn.execute(statement.encode(), params)
        conn.commit()
        assert version(conn, page_id) == seen[-1], statement
        assert list(feed.listen_pages(listener, timeout=0.2)) == [], statement

    changed("UPDATE status_page SET name = 'Acme!' WHERE id = %s", (page_id,))
    changed(
        "INSERT INTO status_page_component (id, status_page_id, name) VALUES ('cx', %s, 'X')",
        (page_id,),
    )
    changed("UPDATE status_page_component SET display_order = 9 WHERE id = 'cx'")
    changed("UPDATE status_page_component SET manual_status = 'MAJOR_OUTAGE' WHERE id = 'cx'")
    unchanged("UPDATE status_page_component SET service_identifier = 'nothing-shown'")
    unchanged("UPDATE status_page_component SET name = name")
    changed("DELETE FROM status_page_component WHERE id = 'cx'")
    changed(
        """INSERT INTO status_incident (id, status_page_id, title, severity)
           VALUES ('si', %s, 'Slow', 'MINOR')""",
        (page_id,),
    )
    changed(
        """UPDATE status_incident SET updates = jsonb_build_array(jsonb_build_object(
               'timestamp', now(), 'status', 'IDENTIFIED', 'message', 'found it'))
           WHERE id = 'si'"""
    )
    changed("UPDATE status_incident SET status = 'RESOLVED' WHERE id = 'si'")
    unchanged("DELETE FROM status_incident WHERE id = 'si'")  # resolved: not shown any more
    changed(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                          created_by_id)
           VALUES ('mw', %s, 'Upgrade', now() + interval '1 day', now() + interval '2 days',
                   'u')""",
        (page_id,),
    )
    changed("INSERT INTO maintenance_window_component VALUES ('mw', %s)", (comp[0],))
    changed("UPDATE maintenance_window SET title = 'Bigger upgrade' WHERE id = 'mw'")
    changed("DELETE FROM maintenance_window_component WHERE maintenance_window_id = 'mw'")
    changed("UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = 'mw'")
    changed("DELETE FROM maintenance_window WHERE id = 'mw'")
    # A platform incident moves the page's components (nested UPDATE in its trigger).
    team = conn.execute("SELECT team_id FROM status_page WHERE id = %s", (page_id,)).fetchone()
    assert team is not None
    conn.execute(
        "UPDATE status_page_component SET team_id = %s, service_identifier = 'api'", (team[0],)
    )
    conn.commit()
    seen.append(version(conn, page_id))
    assert list(feed.listen_pages(listener, timeout=0.2)) == []
    incidents.create(conn, team[0], title="down", priority="CRITICAL", service_identifier="api")
    conn.commit()
    view = views.page_view(conn, "acme")
    assert view is not None
    assert view.version > seen[-1]
    assert view.page.overall_status == "MAJOR_OUTAGE"
    assert views.recompute_snapshots(conn) == []


def test_conditional_read_sends_no_body(dsn: str, conn: Conn) -> None:
    created = new_page(conn, slug="acme", components=50, is_public=False)
    token = created.access_token
    assert token is not None
    conn.commit()
    with psycopg.connect(dsn, cursor_factory=CountingCursor) as reader:
        view = views.page_view(reader, "acme", token=token)
        assert isinstance(view, views.PageView)
        CountingCursor.executed = 0
        answer = views.page_view(reader, "acme", token=token, if_version=view.version)
        assert CountingCursor.executed == 1
        assert answer == views.NotModified(view.version, None)
        # A wrong token, or none, looks exactly like an unknown slug, whatever the version.
        assert views.page_view(reader, "acme", token="wrong", if_version=view.version) is None
        assert views.page_view(reader, "acme", if_version=view.version) is None
        assert views.page_view(reader, "nope", token=token, if_version=view.version) is None
        # Another version: the full view.
        assert views.page_view(reader, "acme", token=token, if_version=view.version - 1) == view
    # The server does not even send the body.
    row = conn.execute(
        """SELECT components, incidents, maintenance, name, not_modified, version
           FROM statusdb_page_view('acme', %s, NULL, NULL, %s)""",
        (tokens.digest(token), view.version),
    ).fetchone()
    assert row == (None, None, None, None, True, view.version)
    with pytest.raises(errors.InvalidInput):
        views.page_view(conn, "acme", if_version=2**63)


async def test_conditional_read_and_page_feed_async(
    dsn: str, aconn: psycopg.AsyncConnection[TupleRow]
) -> None:
    team = await teams.create(aconn, name="SRE")
    await pages.create(
        aconn, team_id=team.id, name="A", slug="async-page", created_by_id="u", is_public=True
    )
    await aconn.commit()
    view = await views.page_view(aconn, "async-page")
    assert view is not None
    answer = await views.page_view(aconn, "async-page", if_version=view.version)
    assert answer == views.NotModified(view.version, None)
    # The async page feed hears the next version.
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
        assert [e async for e in feed.alisten_pages(listener, timeout=0)] == []
        await aconn.execute("UPDATE status_page SET name = 'B' WHERE slug = 'async-page'")
        await aconn.commit()
        heard = [e async for e in feed.alisten_pages(listener, timeout=10, stop_after=1)]
    later = await views.page_view(aconn, "async-page")
    assert later is not None
    assert heard == [feed.PageVersionEvent(later.page.id, later.version)]


@pytest.mark.fresh_db
def test_maintenance_entering_the_horizon_with_a_moving_clock(conn: Conn) -> None:
    created = new_page(conn, slug="acme", components=1)
    page_id = created.page.id
    # Two scheduled windows: one just beyond a one-hour horizon (enters in ~1.5 s), one far.
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                          created_by_id)
           VALUES ('soon', %(p)s, 'Soon', clock_timestamp() + interval '1 hour 1.5 seconds',
                   clock_timestamp() + interval '2 hours', 'u'),
                  ('far', %(p)s, 'Far', clock_timestamp() + interval '30 days',
                   clock_timestamp() + interval '31 days', 'u'),
                  ('running', %(p)s, 'Running', clock_timestamp() - interval '1 hour',
                   clock_timestamp() + interval '40 days', 'u')""",
        {"p": page_id},
    )
    conn.execute("UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = 'running'")
    conn.commit()
    hour = dt.timedelta(hours=1)
    view = views.page_view(conn, "acme", maintenance_horizon=hour)
    assert view is not None
    assert [w.id for w in view.upcoming_maintenance] == ["running"]
    starts: dict[str, dt.datetime] = dict(
        conn.execute("SELECT id, start_time FROM maintenance_window").fetchall()
    )
    assert view.fresh_until == starts["soon"] - hour
    # The whole year: everything shown, nothing left to enter.
    year = views.page_view(conn, "acme", maintenance_horizon=dt.timedelta(days=366))
    assert year is not None
    assert [w.id for w in year.upcoming_maintenance] == ["running", "soon", "far"]
    assert year.fresh_until is None
    # The version counts the scheduled windows in the horizon on top of the rendering's floor.
    assert view.version == version(conn, page_id)
    assert year.version == view.version + 2
    # The limit applies after the horizon; limit 0 shows nothing and never changes.
    one = views.page_view(
        conn, "acme", maintenance_horizon=dt.timedelta(days=366), maintenance_limit=1
    )
    assert one is not None
    assert [w.id for w in one.upcoming_maintenance] == ["running"]
    none = conn.execute(
        """SELECT maintenance::text, fresh_until, version
           FROM statusdb_page_view('acme', NULL, interval '366 days', 0)"""
    ).fetchone()
    assert none == ("[]", None, view.version)  # nothing shown, nothing counted
    conn.commit()
    # Before the window enters: not modified.
    answer = views.page_view(conn, "acme", maintenance_horizon=hour, if_version=view.version)
    assert answer == views.NotModified(view.version, view.fresh_until)
    conn.commit()
    assert view.fresh_until is not None
    time.sleep(max(0.0, (view.fresh_until - dt.datetime.now(dt.UTC)).total_seconds()) + 0.3)
    # The clock moved it into the horizon, without any write: the version asked about moved on
    # (the old one answers in full, again and again), and the new version answers not modified
    # until the next time-driven change, with no write in between.
    stored = version(conn, page_id)
    for _ in range(2):
        later = views.page_view(conn, "acme", maintenance_horizon=hour, if_version=view.version)
        conn.commit()
        assert isinstance(later, views.PageView)
        assert later.version > view.version
        assert [w.id for w in later.upcoming_maintenance] == ["running", "soon"]
        assert later.fresh_until == starts["far"] - hour
    assert isinstance(later, views.PageView)
    for _ in range(2):
        answer = views.page_view(conn, "acme", maintenance_horizon=hour, if_version=later.version)
        conn.commit()
        assert answer == views.NotModified(later.version, later.fresh_until)
    assert version(conn, page_id) == stored  # no write: the snapshot itself did not move
    assert stored <= view.version < later.version < stored + 256  # both of that rendering
    # Horizons it did not enter yet still answer not modified.
    answer = views.page_view(
        conn, "acme", maintenance_horizon=dt.timedelta(minutes=1), if_version=view.version
    )
    assert isinstance(answer, views.NotModified)
    assert views.recompute_snapshots(conn) == []


_WRITES = (
    "UPDATE status_page_component SET manual_status = %(status)s WHERE id = %(component)s",
    "UPDATE status_page_component SET display_order = %(n)s WHERE id = %(component)s",
    "UPDATE status_page SET description = %(text)s WHERE id = %(page)s",
    """INSERT INTO status_incident (status_page_id, title, severity, affected_component_ids)
       VALUES (%(page)s, %(text)s, 'MINOR', ARRAY[%(component)s])""",
    """UPDATE status_incident SET status = 'RESOLVED'
       WHERE id = (SELECT id FROM status_incident WHERE status_page_id = %(page)s
                   AND status <> 'RESOLVED' ORDER BY id LIMIT 1)""",
    """WITH w AS (
           INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                                           created_by_id)
           VALUES (%(page)s, %(text)s, now() + %(n)s * interval '1 hour',
                   now() + %(n)s * interval '1 hour' + interval '1 hour', 'u')
           RETURNING id)
       INSERT INTO maintenance_window_component SELECT w.id, %(component)s FROM w""",
    """DELETE FROM maintenance_window
       WHERE id = (SELECT id FROM maintenance_window WHERE status_page_id = %(page)s
                   ORDER BY id LIMIT 1)""",
)


@pytest.mark.slow
def test_concurrent_writers_never_leave_a_stale_snapshot(conn: Conn, connect: Connect) -> None:
    """Several connections write the same pages at random (plain SQL, several statements per
    transaction); every snapshot then equals a rendering from scratch."""
    created = [new_page(conn, slug=f"page-{n}", components=4) for n in range(3)]
    conn.commit()
    targets = [(p.page.id, component_ids(conn, p.page.id)) for p in created]
    statuses = ["OPERATIONAL", "DEGRADED_PERFORMANCE", "MAJOR_OUTAGE"]
    stop = time.monotonic() + 8.0  # or 60 committed transactions, whichever first
    failures: list[BaseException] = []
    done = [0]

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with connect() as mine:
            while time.monotonic() < stop and done[0] < 60:
                try:
                    for _ in range(rng.randint(1, 3)):
                        page, comps = rng.choice(targets)
                        params = {
                            "page": page,
                            "component": rng.choice(comps),
                            "status": rng.choice(statuses),
                            "n": rng.randint(1, 50),
                            "text": f"w{seed}-{rng.random()}",
                        }
                        mine.execute(rng.choice(_WRITES).encode(), params)
                        time.sleep(rng.random() * 0.005)
                    mine.commit()
                    done[0] += 1
                except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    mine.rollback()
                except BaseException as exc:  # reported below
                    failures.append(exc)
                    mine.rollback()
                    return

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert done[0] >= 10  # (a loaded machine commits fewer; the check below is what counts)
    assert views.recompute_snapshots(conn) == []


def test_repair_finds_and_fixes_what_bypassed_the_triggers(conn: Conn) -> None:
    created = new_page(conn, slug="acme", components=2)
    page_id = created.page.id
    # The creation's pending rendering done first (0029: a repair renders the caller's
    # pending pages before it compares), so that only the bulk load below bypasses triggers.
    assert views.recompute_snapshots(conn) == []
    before = version(conn, page_id)
    conn.execute("SET session_replication_role = replica")  # a DBA's bulk load: no triggers
    conn.execute("UPDATE status_page SET name = 'Renamed' WHERE id = %s", (page_id,))
    conn.execute(
        """INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
           SELECT 'loaded', 'Loaded', 'loaded', true, team_id, 'u' FROM status_page
           WHERE id = %s""",
        (page_id,),
    )
    conn.execute("SET session_replication_role = origin")
    assert views.page_view(conn, "loaded") is None  # no snapshot yet
    assert views.recompute_snapshots(conn) == [
        views.SnapshotDrift(page_id, before),
        views.SnapshotDrift("loaded", None),
    ]
    assert len(views.recompute_snapshots(conn, repair=True)) == 2
    assert views.recompute_snapshots(conn) == []
    view = views.page_view(conn, "acme")
    assert view is not None
    assert view.page.name == "Renamed"
    assert view.version > before
    assert views.page_view(conn, "loaded") is not None
