"""The folding rule (issue 27.3): a subscriber who asked to hear about a change hears about it
exactly once, in some message. Checked exhaustively: one subscriber for every non-empty
`notify_on` set of the 14 kinds (16,383), each following the whole page, both components, or
their group (the set's number modulo 3), through a scenario that makes every kind of change
(tests/notification_model.py, the table in docs/notifications.md); after each step the
messages every subscriber got through the real worker equal the model's, and tell it of each
change it asked for once."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from factories import new_page
from notification_model import (
    KINDS,
    TABLE_BEGIN,
    TABLE_END,
    Flip,
    Step,
    markdown_table,
    messages,
    told_once,
)
from psycopg.rows import TupleRow

from statusdb import components, groups, incidents, maintenance, status_incidents, teams
from statusdb.domain.types import NOTIFY_ON_EVENTS, Notification, StatusChangeNotification
from statusdb.workers import outbox
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "notifications.md"
START = dt.datetime(2031, 3, 3, 10, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


def test_the_model_knows_every_kind() -> None:
    assert set(KINDS) == set(NOTIFY_ON_EVENTS)


def test_the_table_in_the_docs_is_the_models() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(re.escape(TABLE_BEGIN) + r".*?" + re.escape(TABLE_END), text, re.S)
    assert found is not None, f"{DOCS} lacks the folding table"
    assert found.group(0) == markdown_table(), "regenerate: python tests/notification_model.py"


def test_the_model_tells_every_subset_once() -> None:
    """The rule itself: for every notify_on set and every shape of change, once."""
    steps = [
        Step(events=(event,), flips=(Flip(flip, event),))
        for flip in ("degraded", "outage", "maintenance", "resolved")
        for event in ("incident_created", "maintenance_completed")
    ] + [Step(flips=(Flip("outage"),)), Step(events=("incident_updated",))]
    steps.append(
        Step(
            events=("maintenance_completed",),
            flips=(Flip("resolved", "maintenance_completed"), Flip("resolved")),
        )
    )
    for mask in range(1, 1 << len(KINDS)):
        wanted = {kind for n, kind in enumerate(KINDS) if mask >> n & 1}
        for step in steps:
            assert told_once(wanted, step, messages(wanted, step)), (wanted, step)


class World:
    """A page with a team-driven component `api` and a manual one `manual`, both in one group,
    and a subscriber per notify_on set."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        team = teams.create(conn, name="Folding")
        self.team = team.id
        page = new_page(conn, team.id, slug="folding", created_by_id="u")
        self.page = page.id
        self.api = components.create(
            conn, page.id, name="API", team_id=team.id, service_identifier="api"
        ).id
        self.manual = components.create(conn, page.id, name="Manual", display_order=1).id
        group = groups.create(conn, page.id, name="Everything")
        groups.assign(conn, self.api, group.id)
        groups.assign(conn, self.manual, group.id)
        rows = conn.execute(
            """INSERT INTO status_subscriber (status_page_id, channel, destination,
                                              component_ids, group_ids, notify_on,
                                              is_verified, is_active)
               SELECT %(page)s, 'WEBHOOK', 'https://hooks.example.com/f' || m,
                      CASE WHEN m %% 3 = 1 THEN %(components)s::text[] ELSE '{}' END,
                      CASE WHEN m %% 3 = 2 THEN ARRAY[%(group)s] ELSE '{}' END,
                      ARRAY(SELECT k.kind FROM unnest(%(kinds)s::text[]) WITH ORDINALITY
                                               AS k (kind, n)
                            WHERE m >> (k.n::int - 1) & 1 = 1 ORDER BY k.n),
                      true, true
               FROM generate_series(1, %(last)s) AS m
               RETURNING id, notify_on""",
            {
                "page": page.id,
                "components": [self.api, self.manual],
                "group": group.id,
                "kinds": list(KINDS),
                "last": (1 << len(KINDS)) - 1,
            },
        ).fetchall()
        self.subscribers: dict[str, frozenset[str]] = {row[0]: frozenset(row[1]) for row in rows}
        conn.commit()

    def drain(self) -> dict[str, Counter[str]]:
        got: dict[str, Counter[str]] = defaultdict(Counter)

        def deliver(
            note: Notification, pairs: Sequence[tuple[Recipient, str]]
        ) -> list[BaseException | None]:
            if isinstance(note, StatusChangeNotification):
                (kind,) = outbox.notify_types(note.previous_status, note.new_status)
            else:
                kind = note.kind
            for recipient, _ in pairs:
                got[recipient.subscriber_id][kind] += 1
            return [None] * len(pairs)

        while outbox.process_all(
            self.conn,
            deliver_batch=deliver,
            worker_id="fold",
            hold_down=dt.timedelta(0),
            batch_size=5_000,
        ).claimed:
            pass
        return got

    def check(self, what: str, step: Step) -> None:
        got = self.drain()
        wrong = []
        for subscriber, wanted in self.subscribers.items():
            expected = messages(wanted, step)
            if got.get(subscriber, Counter()) != expected:
                wrong.append((sorted(wanted), dict(got.get(subscriber, {})), dict(expected)))
            assert told_once(wanted, step, expected)
        assert not wrong, f"{what}: {len(wrong)} subscribers wrong, e.g. {wrong[:3]}"


def _step(events: Sequence[str] = (), flips: Sequence[tuple[str, str | None]] = ()) -> Step:
    return Step(events=tuple(events), flips=tuple(Flip(k, t) for k, t in flips))


@pytest.mark.slow
@pytest.mark.fresh_db
def test_every_notify_on_set_hears_of_every_change_once(conn: Conn) -> None:
    world = World(conn)
    api, manual, team, page = world.api, world.manual, world.team, world.page
    commit = conn.commit

    def act(what: str, step: Step, *actions: Callable[[], Any]) -> None:
        for action in actions:
            action()
            commit()
        world.check(what, step)

    def si(title: str, ids: list[str], incident: str | None) -> str:
        return status_incidents.create(
            conn,
            page,
            title=title,
            severity="MAJOR",
            message="m",
            affected_component_ids=ids,
            incident_id=incident,
        ).id

    def update(si_id: str, status: Any) -> Callable[[], Any]:
        return lambda: status_incidents.add_update(conn, si_id, status=status, message="m")

    # Manual flips: no event tells of them.
    act(
        "manual degraded",
        _step(flips=[("degraded", None)]),
        lambda: components.set_status(conn, manual, "DEGRADED_PERFORMANCE"),
    )
    act(
        "manual outage",
        _step(flips=[("outage", None)]),
        lambda: components.set_status(conn, manual, "MAJOR_OUTAGE"),
    )
    act(
        "manual resolved",
        _step(flips=[("resolved", None)]),
        lambda: components.set_status(conn, manual, "OPERATIONAL"),
    )

    # A platform incident published at once as a status incident covering the component.
    i1 = incidents.create(conn, team, title="i1", priority="CRITICAL", service_identifier="api")
    s1 = si("s1", [api], i1.id)
    commit()
    world.check(
        "incident opens, published", _step(["incident_created"], [("outage", "incident_created")])
    )
    act("timeline entry", _step(["incident_updated"]), update(s1, "IDENTIFIED"))
    act(
        "priority change",
        _step(flips=[("degraded", None)]),
        lambda: incidents.update(conn, i1.id, priority="MEDIUM"),
    )
    act(
        "incident resolves with its status incident",
        _step(["incident_resolved"], [("resolved", "incident_resolved")]),
        update(s1, "RESOLVED"),
        lambda: incidents.resolve(conn, i1.id),
    )
    act("closing note", _step(["incident_updated"]), update(s1, "RESOLVED"))
    act(
        "re-opened together",
        _step(["incident_reopened"], [("degraded", "incident_reopened")]),
        lambda: (update(s1, "INVESTIGATING")(), incidents.update(conn, i1.id, status="OPEN")),
    )
    act(
        "platform resolves, status incident open",
        _step(flips=[("resolved", None)]),
        lambda: incidents.resolve(conn, i1.id),
    )
    act("status incident resolves later", _step(["incident_resolved"]), update(s1, "RESOLVED"))

    # Published in the hold-down window after the flip, page-wide; resolved likewise.
    i2 = incidents.create(conn, team, title="i2", priority="HIGH", service_identifier="api")
    commit()
    act(
        "incident opens, published after",
        _step(["incident_created"], [("outage", "incident_created")]),
        lambda: si("s2", [], i2.id),
    )
    s2 = conn.execute("SELECT id FROM status_incident WHERE title = 's2'").fetchone()
    assert s2 is not None
    act(
        "incident resolves, status incident after",
        _step(["incident_resolved"], [("resolved", "incident_resolved")]),
        lambda: incidents.resolve(conn, i2.id),
        update(s2[0], "RESOLVED"),
    )

    # Published too late (the flip was sent): two changes.
    i3 = incidents.create(conn, team, title="i3", priority="HIGH", service_identifier="api")
    commit()
    world.check("incident opens, unpublished", _step(flips=[("outage", None)]))
    act("published too late", _step(["incident_created"]), lambda: si("s3", [api], i3.id))
    act(
        "priority change after late publication",
        _step(flips=[("degraded", None)]),
        lambda: incidents.update(conn, i3.id, priority="MEDIUM"),
    )

    act(
        "platform resolves, late status incident open",
        _step(flips=[("resolved", None)]),
        lambda: incidents.resolve(conn, i3.id),
    )

    # A status incident of another component does not tell of this one's flip.
    def other() -> None:
        i4 = incidents.create(conn, team, title="i4", priority="CRITICAL", service_identifier="api")
        si("s4", [manual], i4.id)
        i4s.append(i4.id)

    i4s: list[str] = []
    act(
        "status incident of another component",
        _step(["incident_created"], [("outage", None)]),
        other,
    )
    act(
        "its platform incident resolves",
        _step(flips=[("resolved", None)]),
        lambda: incidents.resolve(conn, i4s[0]),
    )

    # Maintenance.
    w1: dict[str, str] = {}

    def create(key: str, start: dt.datetime, ids: list[str], **kw: Any) -> Callable[[], Any]:
        def go() -> None:
            w1[key] = maintenance.create(
                conn,
                page,
                title=key,
                start_time=start,
                end_time=start + HOUR,
                component_ids=ids,
                created_by_id="u",
                **kw,
            ).id

        return go

    def advance(now: dt.datetime) -> Callable[[], Any]:
        return lambda: maintenance.advance(conn, now)

    act("scheduled", _step(["maintenance_scheduled"]), create("w1", START, [api]))
    act(
        "rescheduled",
        _step(["maintenance_rescheduled"]),
        lambda: maintenance.update(conn, w1["w1"], end_time=START + 2 * HOUR),
    )
    act("reminder", _step(["maintenance_reminder"]), advance(START - 30 * MINUTE))
    act(
        "started",
        _step(["maintenance_started"], [("maintenance", "maintenance_started")]),
        advance(START + MINUTE),
    )
    act(
        "completed",
        _step(["maintenance_completed"], [("resolved", "maintenance_completed")]),
        advance(START + 3 * HOUR),
    )

    s2_ = START + 5 * HOUR
    act(
        "scheduled 2",
        _step(["maintenance_scheduled"]),
        create("w2", s2_, [api], reminder_lead=dt.timedelta(0)),
    )
    act(
        "started 2",
        _step(["maintenance_started"], [("maintenance", "maintenance_started")]),
        advance(s2_ + MINUTE),
    )
    act(
        "running window cancelled",
        _step(["maintenance_cancelled"], [("resolved", "maintenance_cancelled")]),
        lambda: maintenance.cancel(conn, w1["w2"], now=s2_ + 2 * MINUTE),
    )

    s3_ = START + 10 * HOUR
    act(
        "scheduled 3",
        _step(["maintenance_scheduled"]),
        create("w3", s3_, [api], reminder_lead=dt.timedelta(0)),
    )
    act(
        "scheduled window cancelled",
        _step(["maintenance_cancelled"]),
        lambda: maintenance.cancel(conn, w1["w3"]),
    )

    s4_ = START + 15 * HOUR
    act(
        "scheduled 4",
        _step(["maintenance_scheduled"]),
        create("w4", s4_, [api], reminder_lead=dt.timedelta(0), auto_update_status=False),
    )
    act("started without status", _step(["maintenance_started"]), advance(s4_ + MINUTE))
    act("completed without status", _step(["maintenance_completed"]), advance(s4_ + 2 * HOUR))

    s5_ = START + 20 * HOUR
    muted = Step(muted=True)
    act(
        "muted window",
        muted,
        create("w5", s5_, [api], notify_subscribers=False),
        advance(s5_ - 30 * MINUTE),
        advance(s5_ + MINUTE),
    )
    act("muted window ends", muted, advance(s5_ + 2 * HOUR))

    s6_ = START + 25 * HOUR
    act(
        "scheduled 6",
        _step(["maintenance_scheduled"]),
        create("w6", s6_, [manual], reminder_lead=dt.timedelta(0)),
    )
    act(
        "started 6",
        _step(["maintenance_started"], [("maintenance", "maintenance_started")]),
        advance(s6_ + MINUTE),
    )
    act(
        "linked to a running window",
        _step(flips=[("maintenance", None)]),
        lambda: maintenance.update(conn, w1["w6"], component_ids=[manual, api]),
    )
    act(
        "completed, covering both",
        _step(["maintenance_completed"], [("resolved", "maintenance_completed")] * 2),
        advance(s6_ + 2 * HOUR),
    )
