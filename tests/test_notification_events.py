"""Notification events (0018): status incidents and maintenance reach exactly the right
subscribers, once each, from the Python API and from plain SQL; reminders; folding of component
changes into incident events; two workers, two schedulers, a killed worker."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from factories import new_page, new_subscriber
from psycopg.rows import TupleRow

from statusdb import components, incidents, maintenance, status_incidents, subscribers, teams
from statusdb.domain.types import (
    EVENT_KINDS,
    MAINTENANCE_EVENT_KINDS,
    NOTIFY_ON_EVENTS,
    IncidentNotification,
    MaintenanceNotification,
    Notification,
    StatusChangeNotification,
)
from statusdb.infra import migrations
from statusdb.workers import outbox
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
Connect = Callable[..., Conn]
NOW = dt.timedelta(0)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
INCIDENT_KINDS = ["incident_created", "incident_updated", "incident_resolved", "incident_reopened"]


class Inbox:
    """A deliver callback that records (kind, subscriber) and the notifications."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, str, str]] = []  # (kind, subscriber, key)
        self.notifications: list[Notification] = []
        self.lock = threading.Lock()

    def __call__(self, notification: Notification, recipient: Recipient, key: str) -> None:
        kind = (
            "component:" + notification.new_status
            if isinstance(notification, StatusChangeNotification)
            else notification.kind
        )
        with self.lock:
            self.deliveries.append((kind, recipient.subscriber_id, key))
            self.notifications.append(notification)

    def who(self, kind: str) -> list[str]:
        return sorted(s for k, s, _ in self.deliveries if k == kind)

    def kinds(self) -> Counter[str]:
        return Counter(k for k, _, _ in self.deliveries)


def run(conn: Conn, inbox: Inbox, worker: str = "w1") -> outbox.ProcessReport:
    report = outbox.process_all(conn, inbox, worker_id=worker, hold_down=NOW)
    assert report.lost == 0
    return report


def drain(conn: Conn, inbox: Inbox) -> None:
    while run(conn, inbox).claimed:
        pass


def page_with_subscribers(conn: Conn) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """A page with components A, B, C and subscribers named for what they follow and want."""
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="acme", created_by_id="u")
    comp = {
        name: components.create(conn, page.id, name=name, display_order=n).id
        for n, name in enumerate("ABC")
    }
    subs = {
        "all": new_subscriber(conn, page.id, "all"),
        "a": new_subscriber(conn, page.id, "a", component_ids=[comp["A"]]),
        "b": new_subscriber(conn, page.id, "b", component_ids=[comp["B"]]),
        "ab": new_subscriber(conn, page.id, "ab", component_ids=[comp["A"], comp["B"]]),
        "c": new_subscriber(conn, page.id, "c", component_ids=[comp["C"]]),
        "unverified": new_subscriber(conn, page.id, "unverified", verified=False),
        "inactive": new_subscriber(conn, page.id, "inactive", active=False),
        "maintenance_only": new_subscriber(
            conn,
            page.id,
            "mo",
            notify_on=["maintenance_scheduled", "maintenance_started", "maintenance_completed"],
        ),
        "resolved_only": new_subscriber(conn, page.id, "ro", notify_on=["incident_resolved"]),
    }
    conn.commit()
    return team.id, page.id, comp, subs


def names(subs: dict[str, str], *keys: str) -> list[str]:
    return sorted(subs[k] for k in keys)


def test_incident_events_reach_exactly_their_subscribers_once(conn: Conn) -> None:
    team, page, comp, subs = page_with_subscribers(conn)
    platform = incidents.create(conn, team, title="db down", priority="LOW")
    incident = status_incidents.create(
        conn,
        page,
        title="Slow API",
        severity="MAJOR",
        message="We are investigating.",
        affected_component_ids=[comp["B"], comp["A"]],
        incident_id=platform.id,
    )
    conn.commit()
    status_incidents.add_update(
        conn, incident.id, status="IDENTIFIED", message="We found the cause."
    )
    status_incidents.add_update(conn, incident.id, status="RESOLVED", message="Fixed.")
    status_incidents.add_update(conn, incident.id, status="INVESTIGATING", message="It is back.")
    status_incidents.edit(conn, incident.id, title="Slow API again")  # a correction: no event
    conn.commit()
    inbox = Inbox()
    drain(conn, inbox)
    followers = names(subs, "all", "a", "b", "ab")
    assert inbox.who("incident_created") == followers  # "ab" once, not once per component
    assert inbox.who("incident_updated") == followers
    assert inbox.who("incident_resolved") == sorted([*followers, subs["resolved_only"]])
    assert inbox.who("incident_reopened") == followers
    assert sum(inbox.kinds().values()) == 4 * 4 + 1
    assert len({key for _, _, key in inbox.deliveries}) == len(inbox.deliveries)
    # In order, with what a message needs.
    sent = [n for n in inbox.notifications if isinstance(n, IncidentNotification)]
    mine = [n for n in sent if n.page_slug == "acme"]
    by_kind = {n.kind: n for n in mine}
    created = by_kind["incident_created"]
    assert (created.page_name, created.title, created.severity) == ("Acme", "Slow API", "MAJOR")
    assert (created.status, created.message) == ("INVESTIGATING", "We are investigating.")
    assert [c.name for c in created.components] == ["A", "B"]  # display order
    assert by_kind["incident_updated"].message == "We found the cause."
    assert by_kind["incident_resolved"].status == "RESOLVED"
    assert by_kind["incident_reopened"].message == "It is back."
    assert created.at.tzinfo is not None
    # Nothing internal in what subscribers are told.
    payloads = conn.execute("SELECT payload::text FROM notification_event").fetchall()
    for (payload,) in payloads:
        assert platform.id not in payload
        assert team not in payload
    assert outbox.pending_events(conn) == 0
    assert run(conn, inbox).claimed == 0  # nothing twice


def test_events_from_plain_sql_and_page_wide_notices(conn: Conn) -> None:
    """A DBA's psql writes incidents and windows statement by statement: the same events."""
    _team, page, comp, subs = page_with_subscribers(conn)
    conn.execute(
        """INSERT INTO status_incident (status_page_id, title, severity, message)
           VALUES (%s, 'Everything is slow', 'MINOR', 'Looking.')""",
        (page,),
    )  # no affected components: the whole page
    conn.commit()
    conn.execute("UPDATE status_incident SET status = 'RESOLVED', message = 'Done.'")
    window = conn.execute(
        """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                                           created_by_id, time_zone)
           VALUES (%s, 'DB upgrade', '2031-01-01 10:00Z', '2031-01-01 11:00Z', 'dba',
                   'Europe/Berlin')
           RETURNING id""",
        (page,),
    ).fetchone()
    assert window is not None
    # The link comes in a later statement of the same transaction: still in the event.
    conn.execute("INSERT INTO maintenance_window_component VALUES (%s, %s)", (window[0], comp["C"]))
    conn.commit()
    inbox = Inbox()
    drain(conn, inbox)
    everyone = names(subs, "all", "a", "b", "ab", "c")
    assert inbox.who("incident_created") == everyone  # page-wide: every follower
    assert inbox.who("incident_resolved") == sorted([*everyone, subs["resolved_only"]])
    assert inbox.who("maintenance_scheduled") == names(subs, "all", "c", "maintenance_only")
    (scheduled,) = {n for n in inbox.notifications if isinstance(n, MaintenanceNotification)}
    assert [c.name for c in scheduled.components] == ["C"]
    assert scheduled.start_time.isoformat() == "2031-01-01T11:00:00+01:00"  # the window's zone
    assert scheduled.time_zone == "Europe/Berlin"
    row = conn.execute(
        "SELECT payload -> 'occurrence' ->> 'start_local' FROM notification_event"
        " WHERE kind = 'maintenance_scheduled'"
    ).fetchone()
    assert row == ("2031-01-01 11:00",)


@pytest.mark.fresh_db
def test_maintenance_lifecycle_reminders_and_muting(conn: Conn) -> None:
    _team, page, comp, subs = page_with_subscribers(conn)
    start = dt.datetime(2031, 3, 1, 10, tzinfo=dt.UTC)
    window = maintenance.create(
        conn,
        page,
        title="Upgrade",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        component_ids=[comp["A"]],
        created_by_id="u",
        recurrence_rule="FREQ=DAILY;COUNT=2",
    )
    cancelled = maintenance.create(
        conn,
        page,
        title="Never",
        start_time=start,
        end_time=start + dt.timedelta(hours=2),
        component_ids=[comp["B"]],
        created_by_id="u",
    )
    muted = maintenance.create(
        conn,
        page,
        title="Quiet",
        start_time=start + dt.timedelta(minutes=10),
        end_time=start + dt.timedelta(hours=3),
        component_ids=[comp["C"]],
        created_by_id="u",
        notify_subscribers=False,
    )
    conn.commit()
    maintenance.update(conn, window.id, end_time=start + dt.timedelta(minutes=90))
    maintenance.cancel(conn, cancelled.id)
    conn.commit()
    inbox = Inbox()
    drain(conn, inbox)
    a_side = names(subs, "all", "a", "ab")
    assert inbox.who("maintenance_scheduled") == sorted(
        [*a_side, subs["b"], subs["all"], subs["ab"], *[subs["maintenance_only"]] * 2]
    )
    assert inbox.who("maintenance_rescheduled") == a_side  # maintenance_only did not ask
    assert inbox.who("maintenance_cancelled") == names(subs, "all", "b", "ab")

    def step(at: dt.datetime) -> Inbox:
        maintenance.advance(conn, at)
        maintenance.advance(conn, at)  # a second step at the same time: nothing more
        conn.commit()
        stepped = Inbox()
        drain(conn, stepped)
        return stepped

    assert step(start - dt.timedelta(hours=2)).deliveries == []
    reminded = step(start - dt.timedelta(minutes=30))
    assert reminded.kinds() == Counter({"maintenance_reminder": 3})  # not cancelled, muted
    assert reminded.who("maintenance_reminder") == a_side
    started = step(start + dt.timedelta(minutes=15))
    assert started.kinds() == Counter({"maintenance_started": 4})
    # The first occurrence ends; the reminder of the second comes a day later.
    ended = step(start + dt.timedelta(hours=2))
    assert ended.kinds() == Counter({"maintenance_completed": 4})
    assert step(start + dt.timedelta(hours=23, minutes=30)).kinds() == Counter(
        {"maintenance_reminder": 3}
    )
    second = step(start + dt.timedelta(days=1, minutes=1))
    assert second.kinds() == Counter({"maintenance_started": 4})
    (note,) = {n for n in second.notifications if isinstance(n, MaintenanceNotification)}
    assert note.start_time == start + dt.timedelta(days=1)
    assert note.recurring
    assert step(start + dt.timedelta(days=2)).kinds() == Counter({"maintenance_completed": 4})
    outcomes: dict[str, int] = dict(
        conn.execute(
            "SELECT outcome, count(*) FROM notification_event"
            " WHERE maintenance_window_id = %s GROUP BY outcome",
            (muted.id,),
        ).fetchall()
    )
    assert outcomes == {"MUTED": 4}  # scheduled, reminder, started, completed: not delivered


@pytest.mark.fresh_db
def test_a_reminder_of_a_window_cancelled_before_delivery_is_obsolete(conn: Conn) -> None:
    _team, page, _comp, _subs = page_with_subscribers(conn)
    start = dt.datetime(2031, 3, 1, 10, tzinfo=dt.UTC)
    window = maintenance.create(
        conn,
        page,
        title="W",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        created_by_id="u",
    )
    early = maintenance.create(
        conn,
        page,
        title="Early",
        start_time=start + dt.timedelta(hours=3),
        end_time=start + dt.timedelta(hours=4),
        created_by_id="u",
        reminder_lead=dt.timedelta(hours=4),
    )
    silent = maintenance.create(
        conn,
        page,
        title="Silent",
        start_time=start + dt.timedelta(minutes=1),
        end_time=start + dt.timedelta(hours=4),
        created_by_id="u",
        reminder_lead=dt.timedelta(0),
    )
    conn.commit()
    assert maintenance.get(conn, early.id).reminder_lead == dt.timedelta(hours=4)
    drain(conn, Inbox())
    maintenance.advance(conn, start - dt.timedelta(minutes=5))
    reminded = conn.execute(
        "SELECT maintenance_window_id FROM notification_event WHERE kind = 'maintenance_reminder'"
    ).fetchall()
    assert sorted(r[0] for r in reminded) == sorted([window.id, early.id])  # not silent
    assert silent.reminder_lead == dt.timedelta(0)
    conn.execute("DELETE FROM maintenance_window WHERE id = %s", (early.id,))
    conn.commit()
    maintenance.cancel(conn, window.id)
    conn.commit()
    inbox = Inbox()
    drain(conn, inbox)
    assert inbox.who("maintenance_reminder") == []
    assert len(inbox.who("maintenance_cancelled")) == 5
    row = conn.execute(
        "SELECT outcome FROM notification_event WHERE kind = 'maintenance_reminder'"
    ).fetchone()
    assert row == ("OBSOLETE",)
    maintenance.advance(conn, start - dt.timedelta(minutes=4))  # never for a cancelled window
    assert conn.execute(
        "SELECT count(*) FROM notification_event WHERE kind = 'maintenance_reminder'"
    ).fetchone() == (1,)


@pytest.mark.fresh_db
def test_component_flips_are_folded_into_the_incident_event(conn: Conn) -> None:
    """One update, one message: the flip its platform incident caused is not sent again."""
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="p", created_by_id="u")
    api = components.create(conn, page.id, name="API", team_id=team.id, service_identifier="api")
    everything = new_subscriber(conn, page.id, "everything")
    outages_only = new_subscriber(conn, page.id, "outages", notify_on=["outage"])
    conn.commit()
    platform = incidents.create(
        conn, team.id, title="x", priority="CRITICAL", service_identifier="api"
    )
    status_incidents.create(
        conn,
        page.id,
        title="API down",
        severity="CRITICAL",
        message="Down.",
        affected_component_ids=[api.id],
        incident_id=platform.id,
    )
    conn.commit()
    inbox = Inbox()
    drain(conn, inbox)
    assert inbox.who("incident_created") == [everything]
    assert inbox.who("component:MAJOR_OUTAGE") == [outages_only]  # it asked for flips only
    # A flip no status incident tells of reaches everyone who wants it.
    incidents.update(conn, platform.id, priority="HIGH")
    conn.execute("UPDATE status_incident SET incident_id = NULL")
    conn.commit()
    drain(conn, inbox)
    assert inbox.who("component:PARTIAL_OUTAGE") == sorted([everything, outages_only])


def test_two_workers_and_two_schedulers_at_once(conn: Conn, connect: Connect) -> None:
    _team, page, comp, subs = page_with_subscribers(conn)
    start = dt.datetime(2031, 3, 1, 10, tzinfo=dt.UTC)
    for n in range(12):
        status_incidents.create(
            conn,
            page,
            title=f"i{n}",
            severity="MINOR",
            message="m",
            affected_component_ids=[comp["A"]] if n % 2 else [],
        )
        maintenance.create(
            conn,
            page,
            title=f"w{n}",
            start_time=start + dt.timedelta(minutes=n),
            end_time=start + dt.timedelta(hours=1),
            created_by_id="u",
        )
    conn.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def schedule() -> None:
        try:
            with connect() as own:
                barrier.wait()
                maintenance.advance(own, start - dt.timedelta(minutes=30))
                own.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=schedule) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert conn.execute(
        "SELECT count(*), count(DISTINCT maintenance_window_id) FROM notification_event"
        " WHERE kind = 'maintenance_reminder'"
    ).fetchone() == (12, 12)
    conn.commit()

    inbox = Inbox()

    def work(worker: str) -> None:
        try:
            with connect() as own:
                barrier.wait()
                while outbox.process_all(
                    own, inbox, worker_id=worker, hold_down=NOW, limit=3
                ).claimed:
                    pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = Counter(key for _, _, key in inbox.deliveries)
    assert max(keys.values()) == 1  # nothing twice
    expected = {
        "incident_created": 6 * len(names(subs, "all", "a", "ab"))
        + 6 * len(names(subs, "all", "a", "b", "ab", "c")),
        "maintenance_scheduled": 12 * 6,  # page-wide windows: five followers + maintenance_only
        "maintenance_reminder": 12 * 5,
    }
    assert inbox.kinds() == Counter(expected)
    assert outbox.pending_events(conn) == 0


def test_a_killed_workers_lease_expires_and_another_completes(conn: Conn, connect: Connect) -> None:
    _team, page, _comp, subs = page_with_subscribers(conn)
    status_incidents.create(conn, page, title="t", severity="MINOR", message="m")
    conn.commit()
    doomed = connect()
    (claimed,) = outbox.claim_events(doomed, worker_id="doomed", lease=dt.timedelta(seconds=1))
    doomed.commit()
    assert outbox.claim_events(conn, worker_id="w2") == []  # leased
    conn.commit()
    stream = outbox.recipients(doomed, claimed)
    next(stream)  # dies halfway through its fan-out
    doomed.close()
    time.sleep(1.1)
    inbox = Inbox()
    drain(conn, inbox)
    assert inbox.who("incident_created") == names(subs, "all", "a", "b", "ab", "c")
    assert not outbox.complete_event(conn, claimed, worker_id="doomed")  # lost: never twice
    row = conn.execute("SELECT outcome, lease_owner FROM notification_event").fetchone()
    assert row == ("NOTIFIED", None)


async def test_async_fan_out_of_an_event(aconn: psycopg.AsyncConnection[Any]) -> None:
    team = await teams.create(aconn, name="T")
    page = await pages_create(aconn, team.id)
    await subscribers.subscribe(
        aconn, page, channel="WEBHOOK", destination="https://hooks.example.com/x"
    )
    await status_incidents.create(aconn, page, title="t", severity="MINOR", message="m")
    await aconn.commit()
    (claimed,) = await outbox.claim_events(aconn, worker_id="a")
    await aconn.commit()
    found = [r.destination async for r in outbox.recipients(aconn, claimed)]
    assert found == ["https://hooks.example.com/x"]
    assert await outbox.complete_event(aconn, claimed, worker_id="a")


async def pages_create(aconn: psycopg.AsyncConnection[Any], team_id: str) -> str:
    from factories import anew_page

    page = await anew_page(aconn, team_id, slug="async", created_by_id="u")
    return page.id


def test_existing_subscribers_get_the_matching_new_kinds(empty_dsn: str, tmp_path: Path) -> None:
    """Migration 0018 keeps old choices and adds the kinds that match them."""
    before = tmp_path / "migrations"
    before.mkdir()
    for source in MIGRATIONS.iterdir():
        if source.suffix == ".sql" and int(source.name[:4]) < 18:  # the schema before 0018
            shutil.copy(source, before / source.name)
    migrations.apply(empty_dsn, directory=before)
    chosen = {
        "everything": ["degraded", "outage", "maintenance", "resolved"],
        "outages": ["outage"],
        "maintenance": ["maintenance"],
    }
    with psycopg.connect(empty_dsn) as old:
        team = teams.create(old, name="T")
        page = old.execute(  # plain SQL: pages.create writes columns of later migrations
            "INSERT INTO status_page (team_id, name, slug, created_by_id, is_public)"
            " VALUES (%s, 'M', 'm', 'u', true) RETURNING id",
            (team.id,),
        ).fetchone()
        assert page is not None
        ids = {
            name: new_subscriber(old, page[0], name, notify_on=kinds)
            for name, kinds in chosen.items()
        }
    migrations.apply(empty_dsn)
    with psycopg.connect(empty_dsn) as new:
        got: dict[str, list[str]] = dict(
            new.execute("SELECT id, notify_on FROM status_subscriber").fetchall()
        )
    assert got[ids["everything"]] == list(NOTIFY_ON_EVENTS)
    assert got[ids["outages"]] == ["outage", *INCIDENT_KINDS]
    assert got[ids["maintenance"]] == ["maintenance", *MAINTENANCE_EVENT_KINDS]


def test_every_kind_is_a_notify_on_value_and_new_subscribers_get_all(conn: Conn) -> None:
    team = teams.create(conn, name="T")
    page = new_page(conn, team.id, slug="k", created_by_id="u")
    made = subscribers.subscribe(
        conn, page.id, channel="WEBHOOK", destination="https://hooks.example.com/k"
    )
    assert set(EVENT_KINDS) <= set(made.subscriber.notify_on)
    row = conn.execute(
        "INSERT INTO status_subscriber (status_page_id, channel, destination)"
        " VALUES (%s, 'WEBHOOK', 'https://hooks.example.com/d') RETURNING notify_on",
        (page.id,),
    ).fetchone()
    assert row is not None
    assert set(EVENT_KINDS) <= set(row[0])
    assert json.dumps(INCIDENT_KINDS)  # the names the README table lists
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "UPDATE status_subscriber SET notify_on = '{incident_exploded}' WHERE id = %s",
            (made.subscriber.id,),
        )


def test_several_events_of_one_incident_go_out_in_one_round_in_order(conn: Conn) -> None:
    """Issue 27.7: before, N updates of one incident needed N rounds."""
    _team, page, _comp, _subs = page_with_subscribers(conn)
    incident = status_incidents.create(conn, page, title="t", severity="MINOR", message="m0")
    for n in range(1, 5):
        status_incidents.add_update(conn, incident.id, status="IDENTIFIED", message=f"m{n}")
    conn.commit()
    inbox = Inbox()
    report = run(conn, inbox)
    assert report.claimed == 5
    assert outbox.pending_events(conn) == 0
    messages = [getattr(n, "message", None) for n in inbox.notifications]
    firsts = list(dict.fromkeys(messages))
    assert firsts == ["m0", "m1", "m2", "m3", "m4"]


@pytest.mark.fresh_db
def test_maintenance_payloads_show_the_statuses_the_change_left(conn: Conn) -> None:
    """maintenance_started lists the components UNDER_MAINTENANCE, completed and cancelled
    (of a running window) list them back to OPERATIONAL (issue 27.1: they were one step
    stale, because the events were written before the derivation of the same statement)."""
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="stale-acme", created_by_id="u")
    api = components.create(conn, page.id, name="API").id
    web = components.create(conn, page.id, name="Web").id
    start = dt.datetime(2031, 3, 1, 10, tzinfo=dt.UTC)
    done = maintenance.create(
        conn,
        page.id,
        title="Upgrade",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        component_ids=[api],
        created_by_id="u",
    )
    dropped = maintenance.create(
        conn,
        page.id,
        title="Dropped",
        start_time=start,
        end_time=start + dt.timedelta(hours=3),
        component_ids=[web],
        created_by_id="u",
    )
    conn.commit()
    maintenance.advance(conn, start + dt.timedelta(minutes=1))
    conn.commit()
    maintenance.cancel(conn, dropped.id)
    conn.commit()
    maintenance.advance(conn, start + dt.timedelta(hours=2))
    conn.commit()
    rows = conn.execute(
        """SELECT maintenance_window_id, kind, payload->'components' FROM notification_event
           WHERE kind IN ('maintenance_started', 'maintenance_completed', 'maintenance_cancelled')
           ORDER BY seq"""
    ).fetchall()
    told = {(w, k, tuple(c["status"] for c in cs)) for w, k, cs in rows}
    assert len(rows) == 4
    assert told == {
        (done.id, "maintenance_started", ("UNDER_MAINTENANCE",)),
        (dropped.id, "maintenance_started", ("UNDER_MAINTENANCE",)),
        (dropped.id, "maintenance_cancelled", ("OPERATIONAL",)),
        (done.id, "maintenance_completed", ("OPERATIONAL",)),
    }
