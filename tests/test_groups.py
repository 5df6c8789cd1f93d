"""Component groups (migration 0020): the tree's rules, the derived group status (kept, logged,
announced, never stale, zero drift under concurrent writers), the page view's tree, group
followers in the fan-out, and naming groups in maintenance and status incidents."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import threading
from collections.abc import Callable

import psycopg
import pytest
from factories import two_pages
from psycopg.rows import TupleRow

from statusdb import (
    components,
    feed,
    groups,
    incidents,
    maintenance,
    status,
    status_incidents,
    subscribers,
    teams,
    views,
)
from statusdb.db import queries
from statusdb.domain.types import ComponentStatus, IncidentNotification
from statusdb.errors import Conflict, InvalidInput, NotFound
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]
Connect = Callable[..., Conn]


def stored_vs_scratch(conn: Conn) -> list[tuple[str, str, str]]:
    """Groups whose stored status differs from a from-scratch derivation (should be none)."""
    rows = conn.execute(
        "SELECT group_id, current_status, derived_status FROM statusdb_group_derived_status"
        " WHERE current_status <> derived_status"
    ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def group_status(conn: Conn, group_id: str) -> str:
    row = conn.execute("SELECT current_status FROM component_group WHERE id = %s", (group_id,))
    found = row.fetchone()
    assert found is not None
    return str(found[0])


def test_tree_rules_hold_for_the_api_and_plain_sql(conn: Conn) -> None:
    acme = two_pages(conn, names=("API", "Web", "DB"))
    top = groups.create(conn, acme.page_id, name="Platform")
    mid = groups.create(conn, acme.page_id, name="Backend", parent_id=top.id)
    low = groups.create(conn, acme.page_id, name="Storage", parent_id=mid.id)
    other = groups.create(conn, acme.other_page_id, name="Elsewhere")
    extra = groups.create(conn, acme.page_id, name="Extra")
    sub = groups.create(conn, acme.page_id, name="Extra sub", parent_id=extra.id)
    conn.commit()

    def refused(kind: type[Exception], match: str, call: Callable[[], object]) -> None:
        with pytest.raises(kind, match=match):
            call()
        conn.rollback()

    # Depth: a fourth level is refused, and so is a move that would make one.
    refused(
        InvalidInput,
        "3 levels",
        lambda: groups.create(conn, acme.page_id, name="Too deep", parent_id=low.id),
    )
    # extra would be level 3, its subgroup level 4
    refused(InvalidInput, "3 levels", lambda: groups.move(conn, extra.id, parent_id=mid.id))
    # Cycles: itself, its child, its grandchild.
    for target in (top.id, mid.id, low.id):
        refused(
            InvalidInput, "cycle", functools.partial(groups.move, conn, top.id, parent_id=target)
        )
    # Cross-page parent and cross-page component.
    refused(InvalidInput, "same status page", lambda: groups.move(conn, other.id, parent_id=top.id))
    refused(
        InvalidInput, "component's status page", lambda: groups.assign(conn, acme.foreign, top.id)
    )
    refused(Conflict, "name", lambda: groups.create(conn, acme.page_id, name="Platform"))
    refused(NotFound, "no group", lambda: groups.get(conn, "0000"))
    assert groups.move(conn, sub.id, parent_id=mid.id).parent_id == mid.id
    conn.commit()

    # Plain SQL meets the same rules, on INSERT and UPDATE.
    attempts = [
        ("UPDATE component_group SET parent_id = %s WHERE id = %s", (low.id, top.id)),
        ("UPDATE component_group SET parent_id = id WHERE id = %s", (top.id,)),
        (
            "UPDATE component_group SET status_page_id = %s WHERE id = %s",
            (acme.other_page_id, top.id),
        ),
        ("UPDATE component_group SET current_status = 'MAJOR_OUTAGE' WHERE id = %s", (top.id,)),
        (
            "INSERT INTO component_group (status_page_id, parent_id, name, current_status)"
            " VALUES (%s, %s, 'x', 'OPERATIONAL')",
            (acme.other_page_id, top.id),
        ),
        ("UPDATE status_page_component SET group_id = %s WHERE id = %s", (other.id, acme.api)),
        (
            "INSERT INTO component_group (status_page_id, parent_id, name) VALUES (%s, %s, 'y')",
            (acme.page_id, low.id),
        ),
    ]
    for statement, params in attempts:
        with pytest.raises(psycopg.errors.IntegrityError):
            conn.execute(statement, params)
        conn.rollback()
    # A group inserted with a status by its owner starts OPERATIONAL all the same.
    conn.execute(
        "INSERT INTO component_group (status_page_id, name, current_status)"
        " VALUES (%s, 'forced', 'MAJOR_OUTAGE')",
        (acme.page_id,),
    )
    row = conn.execute("SELECT current_status FROM component_group WHERE name = 'forced'")
    assert row.fetchone() == ("OPERATIONAL",)


def test_group_status_is_the_worst_member_and_never_stale(conn: Conn) -> None:
    acme = two_pages(conn, names=("API", "Web", "DB", "Cache"))
    top = groups.create(conn, acme.page_id, name="Platform")
    mid = groups.create(conn, acme.page_id, name="Backend", parent_id=top.id)
    groups.assign(conn, acme.api, top.id)
    groups.assign(conn, acme.db, mid.id)
    groups.assign(conn, acme.by_name["Cache"], mid.id)

    components.set_status(conn, acme.db, "PARTIAL_OUTAGE")
    assert (group_status(conn, mid.id), group_status(conn, top.id)) == (
        "PARTIAL_OUTAGE",
        "PARTIAL_OUTAGE",
    )
    components.set_status(conn, acme.api, "DEGRADED_PERFORMANCE")
    assert group_status(conn, top.id) == "PARTIAL_OUTAGE"
    # Leaving the group, joining another, a parent change, a deletion: all re-derive.
    groups.assign(conn, acme.db, None)
    assert (group_status(conn, mid.id), group_status(conn, top.id)) == (
        "OPERATIONAL",
        "DEGRADED_PERFORMANCE",
    )
    groups.assign(conn, acme.db, mid.id)
    groups.move(conn, mid.id, parent_id=None)
    assert group_status(conn, top.id) == "DEGRADED_PERFORMANCE"
    groups.move(conn, mid.id, parent_id=top.id)
    assert group_status(conn, top.id) == "PARTIAL_OUTAGE"
    components.delete(conn, acme.db)
    assert (group_status(conn, mid.id), group_status(conn, top.id)) == (
        "OPERATIONAL",
        "DEGRADED_PERFORMANCE",
    )
    # Incidents (the team-driven path) and a new member that is already down.
    team_component = components.create(conn, acme.page_id, name="Edge", team_id=acme.team_id)
    incident = incidents.create(conn, acme.team_id, title="down", priority="CRITICAL")
    assert group_status(conn, top.id) == "DEGRADED_PERFORMANCE"
    groups.assign(conn, team_component.id, mid.id)
    assert group_status(conn, top.id) == "MAJOR_OUTAGE"
    incidents.resolve(conn, incident.id)
    assert (group_status(conn, mid.id), group_status(conn, top.id)) == (
        "OPERATIONAL",
        "DEGRADED_PERFORMANCE",
    )
    # Deleting a group releases its members; the parent forgets them.
    incidents.create(conn, acme.team_id, title="again", priority="HIGH")
    assert group_status(conn, top.id) == "PARTIAL_OUTAGE"
    groups.delete(conn, mid.id)
    assert group_status(conn, top.id) == "DEGRADED_PERFORMANCE"
    assert stored_vs_scratch(conn) == []

    # Logged, chained from OPERATIONAL.
    log = groups.changes_for_group(conn, top.id)
    assert log[0].previous_status == "OPERATIONAL"
    for before, after in itertools.pairwise(log):
        assert after.previous_status == before.new_status
    assert log[-1].new_status == "DEGRADED_PERFORMANCE"
    # Deleting the page takes everything along.
    conn.execute("DELETE FROM status_page WHERE id = %s", (acme.page_id,))


def test_page_view_returns_the_tree_in_display_order(conn: Conn) -> None:
    acme = two_pages(conn, names=("API", "Web", "DB"))
    second = groups.create(conn, acme.page_id, name="B second", display_order=2)
    first = groups.create(conn, acme.page_id, name="A first", display_order=1, description="d")
    inner = groups.create(conn, acme.page_id, name="Inner", parent_id=first.id)
    groups.assign(conn, acme.db, inner.id, display_order=5)
    groups.assign(conn, acme.web, first.id, display_order=2)
    groups.assign(conn, acme.api, first.id, display_order=1)
    components.set_status(conn, acme.db, "MAJOR_OUTAGE")
    view = views.page_view(conn, "acme")
    assert view is not None
    assert [c.name for c in view.page.components] == ["API", "Web", "DB"]
    assert [g.name for g in view.groups] == ["A first", "B second"]
    tree = view.groups[0]
    assert (tree.id, tree.description, tree.status) == (first.id, "d", "MAJOR_OUTAGE")
    assert [c.name for c in tree.components] == ["API", "Web"]
    assert [(g.id, g.status, [c.id for c in g.components]) for g in tree.groups] == [
        (inner.id, "MAJOR_OUTAGE", [acme.db])
    ]
    assert view.groups[1] == views.GroupView(second.id, "B second", None, "OPERATIONAL", (), ())
    assert {c.id: c.group_id for c in view.page.components} == {
        acme.api: first.id,
        acme.web: first.id,
        acme.db: inner.id,
    }


def test_group_followers_are_told_of_members_added_later(conn: Conn) -> None:
    acme = two_pages(conn, names=("API", "Web", "DB"))
    top = groups.create(conn, acme.page_id, name="Platform")
    mid = groups.create(conn, acme.page_id, name="Backend", parent_id=top.id)
    subscribers.subscribe(
        conn, acme.page_id, channel="WEBHOOK", destination="https://all.example.com/h"
    )
    by_group = subscribers.subscribe(
        conn, acme.page_id, channel="WEBHOOK", destination="https://g.example.com/h"
    )
    both = subscribers.subscribe(
        conn,
        acme.page_id,
        channel="WEBHOOK",
        destination="https://b.example.com/h",
        component_ids=[acme.db],
    )
    groups.follow(conn, by_group.subscriber.id, [top.id])
    groups.follow(conn, both.subscriber.id, [mid.id])
    elsewhere = groups.create(conn, acme.other_page_id, name="X")
    conn.commit()
    with pytest.raises(InvalidInput, match="same status page"):
        groups.follow(conn, by_group.subscriber.id, [elsewhere.id])
    conn.rollback()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # plain SQL too
        conn.execute(
            "UPDATE status_subscriber SET group_ids = ARRAY[%s] WHERE id = %s",
            (elsewhere.id, by_group.subscriber.id),
        )
    conn.rollback()

    def told(component_id: str) -> set[str]:
        params = {
            "status_page_id": acme.page_id,
            "component_id": component_id,
            "notify_types": ["outage"],
            "folded_into": [],
        }
        rows = conn.execute(queries.get("outbox_recipients").sql, params).fetchall()
        assert len(rows) == len({row[0] for row in rows})  # each subscriber once
        return {str(row[2]) for row in rows}

    assert told(acme.db) == {"https://all.example.com/h", "https://b.example.com/h"}
    groups.assign(conn, acme.db, mid.id)  # joins later: the group followers now hear of it
    assert told(acme.db) == {
        "https://all.example.com/h",
        "https://g.example.com/h",
        "https://b.example.com/h",  # once, though it follows the component and its group
    }
    assert told(acme.web) == {"https://all.example.com/h"}
    # A deleted group leaves its followers; one following nothing more is deactivated.
    groups.delete(conn, top.id)
    row = conn.execute(
        "SELECT group_ids, is_active FROM status_subscriber WHERE id = %s",
        (by_group.subscriber.id,),
    ).fetchone()
    assert row == ([], False)


def test_maintenance_and_incidents_may_name_groups(conn: Conn) -> None:
    acme = two_pages(conn, names=("API", "Web", "DB"))
    top = groups.create(conn, acme.page_id, name="Platform")
    mid = groups.create(conn, acme.page_id, name="Backend", parent_id=top.id)
    groups.assign(conn, acme.api, top.id)
    groups.assign(conn, acme.db, mid.id)
    assert groups.member_component_ids(conn, acme.page_id, [top.id]) == sorted([acme.api, acme.db])
    assert groups.member_component_ids(conn, acme.page_id, [mid.id]) == [acme.db]
    now = dt.datetime.now(dt.UTC)
    window = maintenance.create(
        conn,
        acme.page_id,
        title="Storage upgrade",
        start_time=now + dt.timedelta(hours=1),
        end_time=now + dt.timedelta(hours=2),
        component_ids=[acme.web],
        group_ids=[mid.id],
        created_by_id="u1",
    )
    assert sorted(window.component_ids) == sorted([acme.web, acme.db])
    notice = status_incidents.create(
        conn,
        acme.page_id,
        title="Slow",
        severity="MINOR",
        message="Looking",
        affected_group_ids=[top.id],
    )
    assert sorted(notice.affected_component_ids) == sorted([acme.api, acme.db])
    conn.commit()
    with pytest.raises(InvalidInput, match="not a group of status page"):
        groups.member_component_ids(conn, acme.other_page_id, [top.id])
    conn.rollback()
    with pytest.raises(InvalidInput, match="not a group of status page"):
        status_incidents.create(
            conn,
            acme.other_page_id,
            title="x",
            severity="MINOR",
            message="x",
            affected_group_ids=[top.id],
        )


def test_repair_finds_and_fixes_group_drift(conn: Conn) -> None:
    acme = two_pages(conn, names=("API", "Web"))
    top = groups.create(conn, acme.page_id, name="Platform")
    groups.assign(conn, acme.api, top.id)
    # A load with triggers off (as the owner): the group's status is now stale.
    conn.execute("ALTER TABLE status_page_component DISABLE TRIGGER USER")
    conn.execute(
        "UPDATE status_page_component SET manual_status = 'MAJOR_OUTAGE',"
        " current_status = 'MAJOR_OUTAGE' WHERE id = %s",
        (acme.api,),
    )
    conn.execute("ALTER TABLE status_page_component ENABLE TRIGGER USER")
    assert [d.group_id for d in groups.recompute(conn)] == [top.id]
    assert status.recompute(conn, repair=True) == []
    assert groups.recompute(conn) == []
    assert group_status(conn, top.id) == "MAJOR_OUTAGE"


def _writer(
    dsn: str, component_ids: list[str], rounds: int, seed: int, errors: list[BaseException]
) -> None:
    statuses: list[ComponentStatus] = [
        "OPERATIONAL",
        "DEGRADED_PERFORMANCE",
        "MAJOR_OUTAGE",
        "PARTIAL_OUTAGE",
    ]
    try:
        with psycopg.connect(dsn) as conn:
            for n in range(rounds):
                target = component_ids[(n * 7 + seed) % len(component_ids)]
                value = statuses[(n + seed) % len(statuses)]
                for attempt in range(20):
                    try:
                        if seed % 2:  # plain SQL writer
                            conn.execute(
                                "UPDATE status_page_component SET manual_status = %s WHERE id = %s",
                                (value, target),
                            )
                        else:
                            components.set_status(conn, target, value)
                        conn.commit()
                        break
                    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                        conn.rollback()
                    except Exception as exc:
                        conn.rollback()
                        if "deadlock" not in str(exc) and attempt > 18:
                            raise
    except BaseException as exc:
        errors.append(exc)


def test_zero_drift_under_concurrent_writers(conn: Conn, dsn: str) -> None:
    """Four connections (two through the API, two in plain SQL) change members of groups that
    share ancestors; afterwards every stored group status equals a from-scratch derivation."""
    owner = teams.create(conn, name="SRE")
    from factories import new_page

    page = new_page(conn, owner.id)
    top = groups.create(conn, page.id, name="Top")
    left = groups.create(conn, page.id, name="Left", parent_id=top.id)
    right = groups.create(conn, page.id, name="Right", parent_id=top.id)
    leaf = groups.create(conn, page.id, name="Leaf", parent_id=left.id)
    homes = [top.id, left.id, right.id, leaf.id]
    ids = []
    for n in range(8):
        component = components.create(conn, page.id, name=f"C{n}")
        groups.assign(conn, component.id, homes[n % 4])
        ids.append(component.id)
    conn.commit()
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(dsn, ids, 25, seed, errors)) for seed in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stored_vs_scratch(conn) == []
    assert groups.recompute(conn) == []


def test_interleaved_writers_leave_no_drift(conn: Conn, dsn: str) -> None:
    """Two members of one group recover in two transactions that overlap: each, alone, sees the
    other still down; the one that locks the group second must derive from the first's commit."""
    acme = two_pages(conn, names=("API", "Web"))
    top = groups.create(conn, acme.page_id, name="Platform")
    for component_id in (acme.api, acme.web):
        groups.assign(conn, component_id, top.id)
        components.set_status(conn, component_id, "DEGRADED_PERFORMANCE")
    conn.commit()
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        first.execute(
            "UPDATE status_page_component SET manual_status = 'OPERATIONAL' WHERE id = %s",
            (acme.api,),
        )
        done: list[BaseException | None] = []

        def recover_web() -> None:
            try:
                components.set_status(second, acme.web, "OPERATIONAL")
                second.commit()
                done.append(None)
            except BaseException as exc:
                done.append(exc)

        thread = threading.Thread(target=recover_web)
        thread.start()
        thread.join(timeout=1.0)
        first.commit()
        thread.join()
    assert done == [None]
    assert group_status(conn, top.id) == "OPERATIONAL"
    assert stored_vs_scratch(conn) == []


def test_feed_announces_group_changes(conn: Conn, dsn: str) -> None:
    acme = two_pages(conn, names=("API", "Web"))
    top = groups.create(conn, acme.page_id, name="Platform")
    groups.assign(conn, acme.api, top.id)
    conn.commit()
    with psycopg.connect(dsn, autocommit=True) as listener:
        feed.start_listening(listener)
        components.set_status(conn, acme.api, "MAJOR_OUTAGE")
        conn.commit()
        events = list(feed.listen(listener, timeout=2.0, stop_after=2, groups=True))
        components.set_status(conn, acme.api, "OPERATIONAL")
        conn.commit()
        plain = list(feed.listen(listener, timeout=2.0, stop_after=1))
    assert [type(e).__name__ for e in events] == ["StatusChangeEvent", "GroupStatusChangeEvent"]
    group_event = events[1]
    assert isinstance(group_event, feed.GroupStatusChangeEvent)
    assert (group_event.group_id, group_event.new_status) == (top.id, "MAJOR_OUTAGE")
    # Without groups=True, only component events (the group's seq finds no status_change row).
    assert [(e.component_id, e.new_status) for e in plain] == [(acme.api, "OPERATIONAL")]


def test_group_changes_re_render_the_page_snapshot(conn: Conn) -> None:
    """Groups live in the page snapshot (0017): adding, renaming, a derived status change (via a
    member), a component moving between groups and deleting a group each give the page a new
    version in the writer's transaction, and the snapshot stays equal to a from-scratch
    rendering."""
    acme = two_pages(conn, names=("API", "Web"))
    seen: list[int] = []

    def changed(what: str) -> views.PageView:
        view = views.page_view(conn, "acme")
        assert view is not None
        assert not seen or view.version > seen[-1], what
        seen.append(view.version)
        assert views.recompute_snapshots(conn) == [], what
        return view

    changed("start")
    first = groups.create(conn, acme.page_id, name="First", display_order=1)
    second = groups.create(conn, acme.page_id, name="Second", display_order=2)
    assert [g.name for g in changed("groups added").groups] == ["First", "Second"]
    groups.assign(conn, acme.api, first.id)
    groups.assign(conn, acme.web, first.id)
    view = changed("components assigned")
    assert [c.id for c in view.groups[0].components] == [acme.api, acme.web]
    groups.update(conn, first.id, name="Renamed")
    assert [g.name for g in changed("group renamed").groups] == ["Renamed", "Second"]
    # All operational: only the component's group_id changes (0017's component trigger).
    groups.assign(conn, acme.web, second.id)
    view = changed("component moved")
    assert [[c.id for c in g.components] for g in view.groups] == [[acme.api], [acme.web]]
    components.set_status(conn, acme.web, "MAJOR_OUTAGE")
    view = changed("member's status")
    assert [g.status for g in view.groups] == ["OPERATIONAL", "MAJOR_OUTAGE"]
    # The outage moves with its component: both groups' derived statuses change.
    groups.assign(conn, acme.web, first.id)
    view = changed("outage moved")
    assert [g.status for g in view.groups] == ["MAJOR_OUTAGE", "OPERATIONAL"]
    groups.move(conn, second.id, parent_id=first.id)
    view = changed("group moved")
    assert [g.name for g in view.groups[0].groups] == ["Second"]
    groups.delete(conn, first.id)
    view = changed("group deleted")
    assert [g.name for g in view.groups] == ["Second"]
    assert {c.group_id for c in view.page.components} == {None}
    conn.commit()
    assert views.recompute_snapshots(conn) == []


def test_group_followers_get_incident_and_maintenance_events_once(conn: Conn) -> None:
    """Notification events (0018) reach group followers through the one predicate: a follower
    of a group containing an affected component, once even when it also follows the component;
    a page-wide event reaches followers of groups only; other groups' followers hear nothing."""
    acme = two_pages(conn, names=("API", "Web", "DB"))
    api, web, db = acme.api, acme.web, acme.db
    top = groups.create(conn, acme.page_id, name="Platform")
    storage = groups.create(conn, acme.page_id, name="Storage", parent_id=top.id)
    edge = groups.create(conn, acme.page_id, name="Edge")
    groups.assign(conn, db, storage.id)
    groups.assign(conn, web, edge.id)

    def follower(name: str, group_ids: list[str], component_ids: tuple[str, ...] = ()) -> str:
        made = subscribers.subscribe(
            conn, acme.page_id, channel="WEBHOOK", destination=f"https://hooks.example.com/{name}"
        )
        conn.execute(
            "UPDATE status_subscriber SET is_verified = true, group_ids = %s, component_ids = %s"
            " WHERE id = %s",
            (group_ids, list(component_ids), made.subscriber.id),
        )
        return made.subscriber.id

    via_top = follower("top", [top.id])
    via_both = follower("both", [storage.id], (db,))
    via_edge = follower("edge", [edge.id])
    status_incidents.create(
        conn,
        acme.page_id,
        title="DB slow",
        severity="MINOR",
        message="Looking.",
        affected_component_ids=[db, api],
    )
    conn.execute(
        "INSERT INTO status_incident (status_page_id, title, severity) VALUES (%s, 'All', 'MINOR')",
        (acme.page_id,),
    )  # plain SQL, no components: the whole page
    conn.commit()
    told: dict[str, list[str]] = {}
    while claimed := outbox.claim_events(conn, worker_id="w"):
        for event in claimed:
            notification = event.notification
            assert isinstance(notification, IncidentNotification)
            told[notification.title] = sorted(
                r.subscriber_id for r in outbox.recipients(conn, event)
            )
            assert outbox.complete_event(conn, event, worker_id="w")
        conn.commit()
    assert told["DB slow"] == sorted([via_top, via_both])  # once each; Edge's follower: no
    assert told["All"] == sorted([via_top, via_both, via_edge])


def test_subscribing_again_follows_the_whole_page_not_old_groups(conn: Conn) -> None:
    """Follow a group, unsubscribe, subscribe(component_ids=[]): the renewal replaces the
    preferences, so "empty: all of them" holds and the old groups are gone (issue 27.4)."""
    acme = two_pages(conn, names=("API", "Web"))
    platform = groups.create(conn, acme.page_id, name="Platform")
    groups.assign(conn, acme.api, platform.id)
    first = subscribers.subscribe(
        conn, acme.page_id, channel="WEBHOOK", destination="https://again.example.com/h"
    )
    groups.follow(conn, first.subscriber.id, [platform.id])
    subscribers.unsubscribe(conn, first.subscriber.id)
    again = subscribers.subscribe(
        conn,
        acme.page_id,
        channel="WEBHOOK",
        destination="https://again.example.com/h",
        component_ids=[],
    )
    assert not again.created
    row = conn.execute(
        "SELECT group_ids, component_ids FROM status_subscriber WHERE id = %s",
        (again.subscriber.id,),
    ).fetchone()
    assert row == ([], [])
