"""Delivery bookkeeping joined with notification events (issue 12): `outbox.process_all(...,
bookkeeping=True)` records every delivery of incident and maintenance events under (event key,
subscriber), permanent failures deactivate, and `deliveries.retry` hands the deliver callback
the same typed notification it first got, with the same delivery key."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import attrs
import psycopg
import pytest
from factories import new_page, new_subscriber
from psycopg.rows import TupleRow

from statusdb import components, maintenance, status_incidents, teams
from statusdb.domain.types import (
    AffectedComponent,
    IncidentNotification,
    MaintenanceNotification,
    Notification,
)
from statusdb.errors import InvalidInput
from statusdb.workers import deliveries, outbox
from statusdb.workers.deliveries import PermanentDeliveryFailure
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
BERLIN = ZoneInfo("Europe/Berlin")


class Mailer:
    """A deliver callback: bounces for `gone`, times out for `flaky` while `flaky_fails`."""

    def __init__(self, gone: str, flaky: str) -> None:
        self.gone, self.flaky = gone, flaky
        self.flaky_fails = True
        self.sent: list[tuple[Notification, str, str]] = []  # (notification, subscriber, key)

    def __call__(self, notification: Notification, recipient: Recipient, key: str) -> None:
        if recipient.subscriber_id == self.gone:
            raise PermanentDeliveryFailure("550 5.1.1 mailbox does not exist")
        if recipient.subscriber_id == self.flaky and self.flaky_fails:
            raise TimeoutError("connect timed out")
        self.sent.append((notification, recipient.subscriber_id, key))


def _drain(conn: Conn, mailer: Mailer) -> int:
    rounds = 0
    while True:
        report = outbox.process_all(
            conn, mailer, worker_id="w", hold_down=dt.timedelta(0), bookkeeping=True
        )
        assert report.lost == 0
        if not report.claimed:
            return rounds
        rounds += 1


def _events(conn: Conn) -> dict[str, str]:
    """kind -> event id (one event per kind in these tests)."""
    rows = conn.execute("SELECT kind, id::text FROM notification_event").fetchall()
    assert len({kind for kind, _ in rows}) == len(rows)
    return dict(rows)


def test_events_through_process_all_with_bookkeeping_then_typed_retries(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="acme", created_by_id="u")
    api = components.create(conn, page.id, name="API", display_order=0).id
    subs = {name: new_subscriber(conn, page.id, name) for name in ("ok1", "ok2", "flaky", "gone")}
    conn.commit()
    incident = status_incidents.create(
        conn,
        page.id,
        title="Slow API",
        severity="MAJOR",
        message="We are investigating.",
        affected_component_ids=[api],
    )
    start = dt.datetime(2031, 3, 1, 9, tzinfo=dt.UTC)
    maintenance.create(
        conn,
        page.id,
        title="Database upgrade",
        description="Read-only for ten minutes.",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        component_ids=[api],
        created_by_id="u",
        time_zone="Europe/Berlin",
    )
    conn.commit()
    status_incidents.add_update(conn, incident.id, status="IDENTIFIED", message="Found it.")
    conn.commit()
    mailer = Mailer(subs["gone"], subs["flaky"])
    _drain(conn, mailer)
    events = _events(conn)
    assert set(events) == {"incident_created", "incident_updated", "maintenance_scheduled"}

    # One DELIVERED attempt per reached subscriber, keyed by the event's key; the callback got
    # the delivery key "<event key>/<subscriber id>".
    for kind, event_id in events.items():
        attempts = deliveries.list_for_notification(conn, event_id)
        assert sorted((a.subscriber_id, a.attempt, a.outcome) for a in attempts) == sorted(
            [
                (subs["ok1"], 1, "DELIVERED"),
                (subs["ok2"], 1, "DELIVERED"),
                (subs["flaky"], 1, "FAILED_TEMPORARY"),
                (subs["gone"], 1, "FAILED_PERMANENT"),
            ]
        ), kind
    firsts = {(n.kind, s): (n, key) for n, s, key in mailer.sent if not hasattr(n, "new_status")}
    assert {key for _, key in firsts.values()} == {f"{events[kind]}/{sub}" for kind, sub in firsts}

    # Three permanent failures in a row: `gone` is switched off, with the reason.
    health = deliveries.subscriber_health(conn, subs["gone"])
    assert (health.is_active, health.consecutive_permanent_failures) == (False, 3)
    assert health.deactivated_at is not None
    assert health.deactivation_reason
    status_incidents.add_update(conn, incident.id, status="RESOLVED", message="Fixed.")
    conn.commit()
    _drain(conn, mailer)
    events = _events(conn)
    resolved = deliveries.list_for_notification(conn, events["incident_resolved"])
    assert subs["gone"] not in {a.subscriber_id for a in resolved}  # inactive: not a recipient

    firsts = {(n.kind, s): (n, key) for n, s, key in mailer.sent if not hasattr(n, "new_status")}

    # The flaky subscriber's four temporary failures are retried a while later with the same
    # typed notifications (times in the window's zone) and the same delivery keys.
    assert deliveries.pending_retries(conn) == 4
    mailer.flaky_fails = False
    mailer.sent.clear()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    assert deliveries.retry(conn, mailer, worker_id="r", now=later - dt.timedelta(hours=1)) == (
        deliveries.RetryReport(0, 0, 0, 0)
    )
    report = deliveries.retry(conn, mailer, worker_id="r", now=later)
    assert report == deliveries.RetryReport(claimed=4, delivered=4, failed=0, dropped=0)
    retried = {
        n.kind: (n, key)
        for n, s, key in mailer.sent
        if isinstance(n, IncidentNotification | MaintenanceNotification)
    }
    assert sorted(retried) == sorted(events)
    for kind, (notification, key) in retried.items():
        original, original_key = firsts[(kind, subs["ok1"])]
        assert notification == original
        assert type(notification) is type(original)
        assert key == f"{events[kind]}/{subs['flaky']}" != original_key
    window_notice = retried["maintenance_scheduled"][0]
    assert isinstance(window_notice, MaintenanceNotification)
    assert window_notice.start_time.tzinfo == BERLIN
    assert window_notice.start_time.hour == 10  # 09:00 UTC is 10:00 in Berlin in March
    update = retried["incident_updated"][0]
    assert isinstance(update, IncidentNotification)
    assert (update.status, update.message) == ("IDENTIFIED", "Found it.")
    flaky = deliveries.list_for_notification(conn, events["incident_updated"])
    assert [(a.attempt, a.outcome) for a in flaky if a.subscriber_id == subs["flaky"]] == [
        (1, "FAILED_TEMPORARY"),
        (2, "DELIVERED"),
    ]
    assert deliveries.pending_retries(conn) == 0


def _incident(message: str, components: int = 1) -> IncidentNotification:
    return IncidentNotification(
        kind="incident_updated",
        event_id="00000000-0000-0000-0000-000000000001",
        status_page_id="00000000-0000-0000-0000-000000000002",
        page_name="Acme",
        page_slug="acme",
        page_time_zone="UTC",
        status_incident_id="00000000-0000-0000-0000-000000000003",
        title="Slow API",
        severity="MAJOR",
        status="MONITORING",
        message=message,
        at=dt.datetime(2031, 3, 1, 9, tzinfo=dt.UTC),
        components=tuple(
            AffectedComponent(name=f"component {i:03} " + "x" * 180, status="MAJOR_OUTAGE")
            for i in range(components)
        ),
    )


def test_payload_bounds_and_the_one_way_to_ask_for_bookkeeping(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="acme", created_by_id="u")
    sub = new_subscriber(conn, page.id, "someone")
    conn.commit()
    # The longest message the schema allows, in 4-byte characters, does not fit in 16 KiB:
    # it is cut to fit and ends with "…"; the rest of the notification is unchanged.
    long = _incident("\N{GLOBE WITH MERIDIANS}" * 10_000)
    encoded = deliveries.notification_payload(long)
    assert encoded is not None
    assert encoded["message"].endswith(deliveries.TRUNCATED)
    assert 1_000 < len(encoded["message"]) < 10_000
    # Too large even without the message (hundreds of long component names): no payload.
    assert deliveries.notification_payload(_incident("m", components=200)) is None

    def fail(notification: Notification, recipient: Recipient, key: str) -> None:
        raise TimeoutError("connect timed out")

    recipient = Recipient(sub, "WEBHOOK", "https://hooks.example.com/someone")
    t0 = dt.datetime(2031, 3, 1, 9, tzinfo=dt.UTC)
    # ASCII text is measured as the column's CHECK measures jsonb (", " and ": " included).
    window = MaintenanceNotification(
        kind="maintenance_scheduled",
        event_id="00000000-0000-0000-0000-000000000004",
        status_page_id="00000000-0000-0000-0000-000000000002",
        page_name="Acme",
        page_slug="acme",
        page_time_zone="Europe/Berlin",
        maintenance_window_id="00000000-0000-0000-0000-000000000005",
        title="Upgrade",
        description="a\n" * 10_000,
        time_zone="Europe/Berlin",
        recurring=False,
        start_time=dt.datetime(2031, 3, 1, 10, tzinfo=BERLIN),
        end_time=dt.datetime(2031, 3, 1, 11, tzinfo=BERLIN),
        components=tuple(
            AffectedComponent(name=f"c{i}", status="UNDER_MAINTENANCE") for i in range(50)
        ),
    )
    cases = (("long", long), ("ascii", window), ("huge", _incident("m", components=200)))
    for key, notification in cases:
        outcome = deliveries.deliver_with_bookkeeping(
            conn, fail, notification, recipient, key, attempted_at=t0
        )
        assert outcome == "FAILED_TEMPORARY"
    conn.commit()
    got: list[tuple[Notification, str]] = []
    assert conn.execute(
        "SELECT max(octet_length(payload::text)) FROM delivery_attempt"
    ).fetchone() == (deliveries.PAYLOAD_MAX,)
    report = deliveries.retry(
        conn,
        lambda n, r, k: got.append((n, k)),
        worker_id="r",
        now=t0 + dt.timedelta(minutes=1),
    )
    # The cut one is delivered (shortened); the one without payload is dropped, uncounted.
    assert report == deliveries.RetryReport(claimed=3, delivered=2, failed=0, dropped=1)
    retried = dict((k, n) for n, k in got)
    assert set(retried) == {f"long/{sub}", f"ascii/{sub}"}
    shortened = retried[f"long/{sub}"]
    cut = retried[f"ascii/{sub}"]
    assert isinstance(cut, MaintenanceNotification)
    assert cut.description is not None
    assert cut.description.endswith(deliveries.TRUNCATED)
    assert cut == attrs.evolve(window, description=cut.description)
    assert isinstance(shortened, IncidentNotification)
    assert shortened == attrs.evolve(long, message=encoded["message"])
    assert deliveries.subscriber_health(conn, sub).consecutive_permanent_failures == 0

    # A truthy string is not a flag.
    with pytest.raises(InvalidInput, match="bookkeeping"):
        outbox.process_all(conn, fail, worker_id="w", bookkeeping="false")  # type: ignore[arg-type]
