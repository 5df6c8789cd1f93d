"""Migration 0047: a group's status-only write records no row_history version.

A group's status is kept by its log (component_group_status_change, with the group's
updated_at), as a component's is by status_change (0022): the derived UPDATE of a group
records nothing, and page_view_at takes a group's status and updated_at at T from its latest
log row by T when that row is later than the version, else from the version. These tests
check that the page as it was stays exact where a group's status changes with no component
status change on the page (a non-operational component deleted or moved out of its group), in
transactions that also rename the group (both orders), and after the group is deleted (its log
is folded into its versions).
"""

from __future__ import annotations

import datetime as dt
import re

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, groups, incidents, teams, views
from statusdb.infra import migrations

Conn = psycopg.Connection[TupleRow]

#: keep_row_history's component_group branch: the columns whose changes alone record nothing.
STATUS_ONLY = {"current_status", "status_updated_at", "updated_at"}

_SAME = """
SELECT (v.updated_at, v.components::text, v.incidents::text, v.maintenance::text,
        v.groups::text)
       IS NOT DISTINCT FROM
       (a.updated_at, a.components::text, a.incidents::text, a.maintenance::text,
        a.groups::text)
FROM statusdb_page_view_v2(%(s)s, NULL, NULL, NULL) AS v,
     statusdb_page_view_at_v2(%(s)s, NULL, now(), NULL, NULL) AS a
"""

_AT = """
SELECT a.updated_at, a.components::text, a.groups::text
FROM statusdb_page_view_at_v2(%(s)s, NULL, %(at)s, NULL, NULL) AS a
"""

_LIVE = """
SELECT v.updated_at, v.components::text, v.groups::text
FROM statusdb_page_view_v2(%(s)s, NULL, NULL, NULL) AS v
"""


class Story:
    """Records the live page after each committed step; replays page_view_at at each instant."""

    def __init__(self, conn: Conn, slug: str) -> None:
        self.conn = conn
        self.slug = slug
        self.recordings: list[tuple[str, dt.datetime, object]] = []

    def record(self, step: str) -> None:
        self.conn.commit()
        row = self.conn.execute("SELECT now()").fetchone()
        assert row is not None
        same = self.conn.execute(_SAME, {"s": self.slug}).fetchone()
        assert same == (True,), step
        live = self.conn.execute(_LIVE, {"s": self.slug}).fetchone()
        self.recordings.append((step, row[0], live))
        self.conn.commit()

    def replay(self, conn: Conn | None = None) -> None:
        reader = conn or self.conn
        for step, at, live in self.recordings:
            past = reader.execute(_AT, {"s": self.slug, "at": at}).fetchone()
            assert past == live, step
        reader.commit()


def _group_versions(conn: Conn, group_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM row_history WHERE table_name = 'component_group' AND row_id = %s",
        (group_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _group_page(conn: Conn, slug: str) -> tuple[str, str, str, str, str]:
    """A page with a team component (in group G) and a manual one (not in a group)."""
    team = teams.create(conn, name=slug.title())
    page = new_page(conn, team.id, slug=slug)
    teamed = components.create(conn, page.id, name="API", team_id=team.id).id
    manual = components.create(conn, page.id, name="Docs").id
    group = groups.create(conn, page.id, name="G").id
    groups.assign(conn, teamed, group)
    return team.id, page.id, teamed, manual, group


@pytest.mark.fresh_db
def test_a_derived_group_status_change_records_no_version(conn: Conn) -> None:
    """Opening and resolving an incident moves the group twice: two log rows, each with the
    group's updated_at as the write left it (its transaction's now()), and no new version of
    the group; a rename still records one."""
    team_id, _, _, _, group = _group_page(conn, "group-history-none")
    conn.commit()
    before = _group_versions(conn, group)
    instants = []
    for write in ("open", "resolve"):
        if write == "open":
            incident = incidents.create(conn, team_id, title="Down", priority="CRITICAL")
        else:
            incidents.resolve(conn, incident.id)
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        instants.append(row[0])
        conn.commit()
    assert _group_versions(conn, group) == before
    logged = conn.execute(
        "SELECT l.new_status, l.updated_at FROM component_group_status_change l"
        " WHERE l.group_id = %s ORDER BY l.seq",
        (group,),
    ).fetchall()
    assert logged == [("MAJOR_OUTAGE", instants[0]), ("OPERATIONAL", instants[1])]
    groups.update(conn, group, name="G2")
    conn.commit()
    assert _group_versions(conn, group) == before + 1


def test_history_compares_every_group_column(conn: Conn) -> None:
    """keep_row_history's component_group branch names every column of component_group but the
    status ones: a column added later must be added there too (or its changes would record no
    version)."""
    columns = {
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'component_group'::regclass"
            " AND attnum > 0 AND NOT attisdropped"
        )
    }
    row = conn.execute(
        "SELECT pg_get_functiondef('statusdb_keep_row_history()'::regprocedure)"
    ).fetchone()
    assert row is not None
    branch = str(row[0]).split("TG_TABLE_NAME = 'component_group'", 1)[1]
    check = re.search(r"OR \((n\..*?)\)\s+IS DISTINCT FROM", branch, re.S)
    assert check is not None
    compared = {name.strip().removeprefix("n.") for name in check.group(1).split(",")}
    assert compared == columns - STATUS_ONLY - {"id"}


@pytest.mark.fresh_db
def test_a_group_status_change_with_no_component_status_change_is_exact(conn: Conn) -> None:
    """The group's status changes while no component's does (a non-operational component
    deleted, moved out of its group, moved into it), also in a transaction that renames the
    group before or after; page_view_at gives back the page at every step, and after the group
    is deleted (its log folded into its versions)."""
    team_id, page_id, teamed, manual, group = _group_page(conn, "group-history-exact")
    story = Story(conn, "group-history-exact")
    story.record("start")
    components.set_status(conn, manual, "PARTIAL_OUTAGE")
    story.record("manual down, not in a group")
    groups.assign(conn, manual, group)
    story.record("moved into the group")
    groups.assign(conn, manual, None)
    story.record("moved out of the group")
    groups.update(conn, group, name="Renamed")
    groups.assign(conn, manual, group)
    story.record("renamed, then moved in, one transaction")
    groups.assign(conn, manual, None)
    groups.update(conn, group, description="d")
    story.record("moved out, then renamed, one transaction")
    groups.assign(conn, manual, group)
    story.record("moved in again")
    components.delete(conn, manual)
    story.record("deleted while in the group")
    incidents.create(conn, team_id, title="Down", priority="CRITICAL")
    story.record("an incident")
    extra = components.create(conn, page_id, name="Extra").id
    components.set_status(conn, extra, "MAJOR_OUTAGE")
    inner = groups.create(conn, page_id, name="Inner", parent_id=group).id
    groups.assign(conn, extra, inner)
    story.record("a new subgroup with a down component, one transaction")
    groups.assign(conn, teamed, None)
    story.record("the team component moved out")
    story.replay()
    assert _group_versions(conn, group) < len(story.recordings)
    groups.delete(conn, inner)
    story.record("the subgroup deleted")
    groups.delete(conn, group)
    story.record("the group deleted")
    # The deleted groups' log rows are gone; their versions show what the log showed.
    row = conn.execute(
        "SELECT count(*) FROM component_group_status_change WHERE group_id = ANY(%s)",
        ([group, inner],),
    ).fetchone()
    assert row == (0,)
    story.replay()
    view = views.page_view(conn, "group-history-exact")
    assert view is not None
    assert view.groups == ()


@pytest.mark.fresh_db
def test_a_group_created_changed_and_deleted_in_one_transaction_commits(conn: Conn) -> None:
    """The fold leaves this transaction's own versions alone: a group created, moved to a
    non-operational status and deleted in one transaction leaves no version and commits."""
    _, page_id, _, manual, _ = _group_page(conn, "group-history-one-txn")
    components.set_status(conn, manual, "MAJOR_OUTAGE")
    conn.commit()
    group = groups.create(conn, page_id, name="Brief").id
    groups.assign(conn, manual, group)
    groups.delete(conn, group)
    conn.commit()
    assert _group_versions(conn, group) == 0


@pytest.mark.slow
def test_rolling_0047_back_and_forth_keeps_the_page_as_it_was(fresh_dsn: str) -> None:
    """The rollback folds the group log into versions (the restored page_view_at reads
    versions): the page as it was is the same before the rollback, after it, and after
    migrating again (the forward migration fills the log's updated_at from the versions)."""
    with psycopg.connect(fresh_dsn) as conn:
        _, _, _, manual, group = _group_page(conn, "group-history-rollback")
        story = Story(conn, "group-history-rollback")
        story.record("start")
        components.set_status(conn, manual, "PARTIAL_OUTAGE")
        groups.assign(conn, manual, group)
        story.record("moved in")
        groups.update(conn, group, name="Renamed")
        story.record("renamed")
        groups.assign(conn, manual, None)
        story.record("moved out")
        story.replay()
        logged = conn.execute(
            "SELECT seq, updated_at FROM component_group_status_change ORDER BY seq"
        ).fetchall()
        assert logged
    applied = [name for name, done in migrations.status(fresh_dsn) if done]
    steps = len(applied) - applied.index("0047_group_status_log")
    migrations.rollback(fresh_dsn, steps)
    with psycopg.connect(fresh_dsn) as conn:
        story.replay(conn)
    migrations.apply(fresh_dsn)
    with psycopg.connect(fresh_dsn) as conn:
        story.replay(conn)
        # The fill finds each change's updated_at in the versions the rollback folded.
        assert (
            conn.execute(
                "SELECT seq, updated_at FROM component_group_status_change ORDER BY seq"
            ).fetchall()
            == logged
        )
