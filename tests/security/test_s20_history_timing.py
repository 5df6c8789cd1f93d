"""Attack class: a writer backdates the page history by timing (issue 26, item 3).

Versions were stamped with the writer's now(), its transaction's start, which the client
chooses: a writer that begins at T0, waits, renames a component and posts an incident, then
commits, made page_view_at(T1) (T0 < T1 < commit) show changes no reader saw at T1. Versions are
now stamped at commit (0025), so page_view_at(T1) is what a reader saw at T1.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, pages, status_incidents, teams, views
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]


def _clock(conn: Conn) -> dt.datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    value: dt.datetime = row[0]
    return value


def test_a_long_transaction_cannot_backdate_its_changes(dsn: str, app_login: str) -> None:
    """The app begins at T0, waits, renames a component and posts an incident, and commits:
    page_view_at(T1), T0 < T1 < commit, shows what a reader saw at T1 (neither change)."""
    slug = f"timing-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as owner:
        team = teams.create(owner, name="T")
        page = pages.create(
            owner,
            team_id=team.id,
            name="Timing",
            slug=slug,
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API")],
        ).page
        owner.commit()
        (api,) = components.list_for_page(owner, page.id)
        owner.commit()
    with (
        psycopg.connect(make_conninfo(dsn, user=app_login)) as writer,
        psycopg.connect(dsn, autocommit=True) as observer,
    ):
        started = _clock(writer)  # T0: the writer's transaction (its now()) starts here
        at = _clock(observer)  # T1
        seen = views.page_view(observer, slug)
        assert started < at
        components.update(writer, api.id, name="Renamed")
        status_incidents.create(writer, page.id, title="Backdated", severity="MAJOR", message="m")
        after_writes = _clock(observer)
        seen_after_writes = views.page_view(observer, slug)
        writer.commit()
        assert seen is not None
        assert seen_after_writes is not None
        assert seen.page.components[0].name == "API"
        assert not seen.active_incidents
        for instant, view in ((at, seen), (after_writes, seen_after_writes)):
            past = views.page_view_at(observer, slug, at=instant)
            assert past is not None
            assert [c.name for c in past.page.components] == ["API"], instant
            assert past.active_incidents == view.active_incidents == ()
        # After the commit the changes show.
        later = views.page_view_at(observer, slug, at=_clock(observer))
        assert later is not None
        assert [c.name for c in later.page.components] == ["Renamed"]
        assert [i.title for i in later.active_incidents] == ["Backdated"]


def test_stamping_immediately_cannot_backdate_either(dsn: str, app_login: str) -> None:
    """SET CONSTRAINTS ALL IMMEDIATE makes the stamp run at the end of each writing statement:
    a write after a wait moves the transaction's earlier versions to the later stamp, so
    page_view_at never shows the first change before the last write."""
    slug = f"timing-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as owner:
        team = teams.create(owner, name="T")
        page = pages.create(
            owner,
            team_id=team.id,
            name="Timing",
            slug=slug,
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API")],
        ).page
        owner.commit()
        (api,) = components.list_for_page(owner, page.id)
        owner.commit()
    with (
        psycopg.connect(make_conninfo(dsn, user=app_login)) as writer,
        psycopg.connect(dsn, autocommit=True) as observer,
    ):
        writer.execute("SET CONSTRAINTS ALL IMMEDIATE")
        components.update(writer, api.id, name="Renamed")  # stamped here
        at = _clock(observer)
        status_incidents.create(writer, page.id, title="Later", severity="MAJOR", message="m")
        last_write = _clock(observer)
        writer.commit()
        past = views.page_view_at(observer, slug, at=at)
        assert past is not None
        assert [c.name for c in past.page.components] == ["API"]
        assert past.active_incidents == ()
        rows = observer.execute(
            "SELECT DISTINCT valid_from FROM row_history WHERE status_page_id = %s"
            " AND table_name IN ('status_page_component', 'status_incident')"
            " AND valid_to IS NULL",
            (page.id,),
        ).fetchall()
        assert len(rows) == 1  # one stamp for the whole transaction
        assert at < rows[0][0] < last_write  # at the end of the last writing statement


def test_a_long_transaction_cannot_backdate_a_deletion(dsn: str, app_login: str) -> None:
    """The app begins, waits, deletes a component and commits: page_view_at before the commit
    still shows it, and no version is left unstamped."""
    slug = f"timing-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as owner:
        team = teams.create(owner, name="T")
        page = pages.create(
            owner,
            team_id=team.id,
            name="Timing",
            slug=slug,
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API"), NewComponent(name="Web")],
        ).page
        owner.commit()
        web = next(c for c in components.list_for_page(owner, page.id) if c.name == "Web")
        owner.commit()
    with (
        psycopg.connect(make_conninfo(dsn, user=app_login)) as writer,
        psycopg.connect(dsn, autocommit=True) as observer,
    ):
        _clock(writer)  # the writer's transaction starts here
        components.delete(writer, web.id)
        at = _clock(observer)
        writer.commit()
        past = views.page_view_at(observer, slug, at=at)
        assert past is not None
        assert sorted(c.name for c in past.page.components) == ["API", "Web"]
        pending = observer.execute(
            "SELECT count(*) FROM row_history WHERE pending_xact IS NOT NULL"
        ).fetchone()
        assert pending == (0,)
