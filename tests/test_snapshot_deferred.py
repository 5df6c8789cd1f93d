"""Snapshots render once per transaction (migration 0036, issue 20 item 1).

The snapshot triggers mark the pages a transaction touches; a deferred constraint trigger
renders each of them once at commit. Every page read in the writing transaction first renders
its own pending page, so the writer reads its writes with a real, new version; other
transactions see the committed snapshot; concurrent writers committing in either order leave
no stale snapshot.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import teams, views
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]


def _page(conn: Conn, components: int = 3) -> tuple[str, str, list[str]]:
    """A committed page with `components` components: (page id, slug, component ids)."""
    slug = f"deferred-{uuid.uuid4().hex[:10]}"
    team = teams.create(conn, name=f"Team {slug}")
    page = new_page(
        conn, team.id, slug=slug, components=[NewComponent(name=f"C{n}") for n in range(components)]
    )
    rows = conn.execute(
        "SELECT id FROM status_page_component WHERE status_page_id = %s ORDER BY id", (page.id,)
    ).fetchall()
    conn.commit()
    return page.id, slug, [r[0] for r in rows]


def _stored(conn: Conn, page_id: str) -> tuple[int, str]:
    row = conn.execute(
        "SELECT version, name FROM status_page_snapshot WHERE page_id = %s", (page_id,)
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _draws(conn: Conn) -> int:
    """How many snapshot versions were drawn so far (the sequence behind every rendering)."""
    row = conn.execute(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
        " FROM status_page_snapshot_version_seq"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_writes_and_a_read_of_the_same_page_in_one_transaction(dsn: str) -> None:
    """page_view inside the writing transaction shows its own changes before the commit, with
    a real version above the one readers had; other transactions still see the committed page;
    the commit keeps that version (nothing changed since the read)."""
    with psycopg.connect(dsn) as conn, psycopg.connect(dsn, autocommit=True) as other:
        page_id, slug, comps = _page(conn)
        before_version, _ = _stored(conn, page_id)
        before = views.page_view(other, slug)
        assert isinstance(before, views.PageView)
        conn.execute("UPDATE status_page SET name = 'Renamed' WHERE id = %s", (page_id,))
        conn.execute(
            "UPDATE status_page_component SET name = 'Moved' WHERE id = %s",
            (comps[0],),
        )
        # Rendered at commit (or at a read), not per statement: the snapshot has not moved yet.
        assert _stored(conn, page_id) == (before_version, before.page.name)
        mine = views.page_view(conn, slug)
        assert isinstance(mine, views.PageView)
        assert mine.page.name == "Renamed"
        names = {c.id: c.name for c in mine.page.components}
        assert names[comps[0]] == "Moved"
        assert mine.version > before.version  # monotonic: a real, new version
        # Not "not modified" for the version readers had; "not modified" for the new one.
        assert isinstance(views.page_view(conn, slug, if_version=before.version), views.PageView)
        assert isinstance(views.page_view(conn, slug, if_version=mine.version), views.NotModified)
        theirs = views.page_view(other, slug)
        assert isinstance(theirs, views.PageView)
        assert theirs.page.name == before.page.name
        assert theirs.version == before.version
        conn.commit()
        after = views.page_view(other, slug)
        assert isinstance(after, views.PageView)
        assert after.page.name == "Renamed"
        assert after.version == mine.version
        assert conn.execute("SELECT count(*) FROM status_page_snapshot_pending").fetchone() == (0,)
        assert views.recompute_snapshots(conn) == []


def test_a_write_after_the_read_is_rendered_at_commit(dsn: str) -> None:
    """A read flushes the page; a later write marks it again and the commit renders it."""
    with psycopg.connect(dsn) as conn, psycopg.connect(dsn, autocommit=True) as other:
        page_id, slug, _ = _page(conn, components=1)
        conn.execute("UPDATE status_page SET name = 'First' WHERE id = %s", (page_id,))
        read = views.page_view(conn, slug)
        assert isinstance(read, views.PageView)
        assert read.page.name == "First"
        conn.execute("UPDATE status_page SET name = 'Second' WHERE id = %s", (page_id,))
        conn.commit()
        after = views.page_view(other, slug)
        assert isinstance(after, views.PageView)
        assert after.page.name == "Second"
        assert after.version > read.version
        assert views.recompute_snapshots(conn) == []


_READS = {
    "statusdb_page_view": "SELECT name, version FROM statusdb_page_view(%s, NULL, NULL, NULL)",
    "statusdb_page_view_v2": (
        "SELECT name, version FROM statusdb_page_view_v2(%s, NULL, NULL, NULL)"
    ),
    "statusdb_page_view_bytes": (
        "SELECT body::json ->> 'name', version FROM statusdb_page_view_bytes(%s, NULL, NULL, NULL)"
    ),
    "statusdb_page_view_bytes_v2": (
        "SELECT body::json ->> 'name', version"
        " FROM statusdb_page_view_bytes_v2(%s, NULL, NULL, NULL)"
    ),
    "statusdb_page_view_at_v2": (
        "SELECT name, version FROM statusdb_page_view_at_v2(%s, NULL, now(), NULL, NULL)"
    ),
    "statusdb_page_view_at": (
        "SELECT name, version FROM statusdb_page_view_at(%s, NULL, now(), NULL, NULL)"
    ),
    "statusdb_page_feed": "SELECT name, 0 FROM statusdb_page_feed(%s, NULL, NULL)",
    # 0033's reads in a locale and 0034's Statuspage documents (flushed since 0036).
    "statusdb_page_view_v3": (
        "SELECT name, version FROM statusdb_page_view_v3(%s, NULL, NULL, NULL, NULL, 'de')"
    ),
    "statusdb_page_view_bytes_v3": (
        "SELECT body::json ->> 'name', version"
        " FROM statusdb_page_view_bytes_v3(%s, NULL, NULL, NULL, NULL, 'de')"
    ),
    "statusdb_page_feed_v2": "SELECT name, 0 FROM statusdb_page_feed_v2(%s, NULL, NULL, 'de')",
    "statusdb_page_statuspage_v2": (
        "SELECT body::json -> 'page' ->> 'name', version"
        " FROM statusdb_page_statuspage_v2(%s, NULL, NULL, NULL, NULL, 'summary', 'de')"
    ),
    "statusdb_page_statuspage": (
        "SELECT body::json -> 'page' ->> 'name', version"
        " FROM statusdb_page_statuspage(%s, NULL, NULL, NULL, NULL, 'summary')"
    ),
}


@pytest.mark.parametrize("function", sorted(_READS))
def test_every_page_read_sees_its_own_transactions_write(dsn: str, function: str) -> None:
    """Each page-read function, called as plain SQL by the writer before its commit, shows the
    write; a private page made public in the transaction is readable by its slug too."""
    with psycopg.connect(dsn) as conn:
        page_id, slug, comps = _page(conn)
        conn.execute(
            "UPDATE status_page SET name = 'Mine', is_public = false,"
            " access_token_hash = sha256(sha256('token'::bytea)) WHERE id = %s",
            (page_id,),
        )
        conn.commit()
        assert conn.execute(_READS[function], (slug,)).fetchall() == []  # private now
        conn.execute(
            "UPDATE status_page SET name = 'Own', is_public = true WHERE id = %s", (page_id,)
        )
        rows = conn.execute(_READS[function], (slug,)).fetchall()
        assert [r[0] for r in rows] == ["Own"], function
        # The component rename too, where the function shows components.
        conn.execute("UPDATE status_page_component SET name = 'Renamed' WHERE id = %s", (comps[0],))
        if function.startswith("statusdb_page_view_bytes"):
            query = _READS[function].replace("body::json ->> 'name'", "body::json -> 'components'")
            (components, _), *_ = conn.execute(query, (slug,)).fetchall()
            assert "Renamed" in json.dumps(components)
        elif function.startswith("statusdb_page_view"):
            query = _READS[function].replace("SELECT name,", "SELECT components,")
            (components, _), *_ = conn.execute(query, (slug,)).fetchall()
            assert "Renamed" in json.dumps(components)


def test_a_slug_renamed_in_the_transaction_is_read_by_its_new_slug(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        page_id, slug, _ = _page(conn, components=1)
        conn.execute("UPDATE status_page SET slug = %s WHERE id = %s", (slug + "-new", page_id))
        renamed = views.page_view(conn, slug + "-new")
        assert renamed is not None
        assert renamed.page.id == page_id
        assert views.page_view(conn, slug) is None
        conn.rollback()
        assert views.page_view(conn, slug) is not None


def test_a_read_of_the_old_slug_in_the_transaction_sees_the_rename(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        page_id, slug, _ = _page(conn, components=1)
        conn.execute("UPDATE status_page SET slug = %s WHERE id = %s", (slug + "-new", page_id))
        assert views.page_view(conn, slug) is None
        conn.rollback()


def test_a_page_touched_by_many_statements_is_rendered_once(dsn: str) -> None:
    """Five statements touching one page: one new version, one announcement, at commit."""
    with psycopg.connect(dsn) as conn, psycopg.connect(dsn, autocommit=True) as listener:
        page_id, _, comps = _page(conn)
        before, _ = _stored(conn, page_id)
        draws = _draws(conn)
        listener.execute("LISTEN statusdb_page_version")
        for n in range(3):
            conn.execute(
                "UPDATE status_page_component SET name = %s WHERE id = %s", (f"N{n}", comps[n])
            )
        conn.execute("UPDATE status_page SET name = 'Once' WHERE id = %s", (page_id,))
        conn.execute("UPDATE status_page SET description = 'Twice' WHERE id = %s", (page_id,))
        assert _draws(conn) == draws  # nothing rendered before the commit
        conn.commit()
        after, name = _stored(conn, page_id)
        assert name == "Once"
        assert after > before
        announced = [n.payload for n in listener.notifies(timeout=1.0, stop_after=5)]
        assert announced == [str(after * 256)]
        # One rendering: versions come from one sequence, and exactly one was drawn.
        assert _draws(conn) == draws + 1


def test_maintenance_windows_moved_in_one_transaction_render_their_page_once(dsn: str) -> None:
    """A window per statement, as maintenance.advance moves them: one rendering at commit."""
    with psycopg.connect(dsn) as conn:
        page_id, _, _ = _page(conn)
        for n in range(5):
            conn.execute(
                "INSERT INTO maintenance_window"
                " (status_page_id, title, start_time, end_time, created_by_id)"
                " VALUES (%s, %s, now() + interval '1 day', now() + interval '2 days', 'u1')",
                (page_id, f"W{n}"),
            )
        conn.commit()
        draws = _draws(conn)
        windows = conn.execute(
            "SELECT id FROM maintenance_window WHERE status_page_id = %s ORDER BY id", (page_id,)
        ).fetchall()
        for (window,) in windows:
            conn.execute(
                "UPDATE maintenance_window SET title = title || ' moved' WHERE id = %s", (window,)
            )
        assert _draws(conn) == draws
        conn.commit()
        assert _draws(conn) == draws + 1
        assert views.recompute_snapshots(conn) == []


def _commit_in_order(dsn: str, page_id: str, first: Conn, second: Conn) -> None:
    """Commits `first`, then `second`, both while a third session holds the page's snapshot
    row: both flushes wait for it in that order and render after each other's commit."""
    with psycopg.connect(dsn) as holder:
        holder.execute(
            "SELECT 1 FROM status_page_snapshot WHERE page_id = %s FOR UPDATE", (page_id,)
        )
        errors: list[BaseException] = []

        def commit(conn: Conn) -> None:
            try:
                conn.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=commit, args=(c,)) for c in (first, second)]
        for thread in threads:
            thread.start()
            time.sleep(0.3)  # the first is queued on the row lock before the second
        holder.rollback()
        for thread in threads:
            thread.join(10)
        assert errors == []


def test_two_transactions_touching_one_page_commit_in_both_orders(dsn: str) -> None:
    """The deferred path: two writers of one page whose renderings happen at their commits,
    one waiting for the other's snapshot row; in either order the snapshot ends exact and
    shows both changes."""
    with (
        psycopg.connect(dsn) as conn,
        psycopg.connect(dsn) as one,
        psycopg.connect(dsn) as two,
    ):
        page_id, slug, comps = _page(conn)
        for order, status in (((one, two), "first"), ((two, one), "second")):
            one.execute(
                "UPDATE status_page_component SET name = %s WHERE id = %s",
                (status, comps[0]),
            )
            # (Not a second component: writers of one team's components queue on its status
            # key slot at the UPDATE, long before the commit.)
            two.execute("UPDATE status_page SET description = %s WHERE id = %s", (status, page_id))
            _commit_in_order(dsn, page_id, *order)
            assert views.recompute_snapshots(conn) == []
            shown = views.page_view(conn, slug)
            assert shown is not None
            names = {c.id: c.name for c in shown.page.components}
            assert names[comps[0]] == shown.page.description == status
            conn.rollback()
