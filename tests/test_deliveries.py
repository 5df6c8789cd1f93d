"""Delivery bookkeeping (migration 0019, statusdb.workers.deliveries): attempts, retries with
back-off, deactivation after repeated permanent failures, the retry queue under concurrency."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import incidents, subscribers, teams
from statusdb.domain.types import StatusChangeNotification
from statusdb.errors import InvalidInput, NotFound
from statusdb.pages import NewComponent
from statusdb.workers import deliveries, outbox
from statusdb.workers.deliveries import NewAttempt, PermanentDeliveryFailure
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def _subscribers(conn: Conn, count: int, *, slug: str = "acme") -> tuple[str, list[str]]:
    team = teams.create(conn, name=f"Team {slug}")
    page = new_page(
        conn, team.id, slug=slug, components=[NewComponent(name="API", team_id=team.id)]
    )
    ids = [
        subscribers.subscribe(
            conn, page.id, channel="WEBHOOK", destination=f"https://hooks.example.com/{slug}/{i}"
        ).subscriber.id
        for i in range(count)
    ]
    return team.id, ids


def _health(conn: Conn, subscriber_id: str) -> tuple[bool, int, bool]:
    health = deliveries.subscriber_health(conn, subscriber_id)
    return (
        health.is_active,
        health.consecutive_permanent_failures,
        health.deactivated_at is not None,
    )


def test_retries_back_off_exponentially_then_give_up(conn: Conn) -> None:
    _, (sub,) = _subscribers(conn, 1)
    assert [deliveries.backoff(n) for n in range(1, 9)] == [
        dt.timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60)
    ] + [None]
    at = T0
    for number in range(1, deliveries.MAX_ATTEMPTS + 1):
        if number > 1:  # nothing is due a moment early; then exactly this one
            assert (
                deliveries.claim_retries(conn, worker_id="w", now=at - dt.timedelta(seconds=1))
                == []
            )
            (due,) = deliveries.claim_retries(conn, worker_id="w", now=at)
            assert (due.notification_key, due.subscriber_id, due.attempt) == ("k1", sub, number - 1)
            assert due.destination.startswith("https://hooks.example.com/")
        made = deliveries.record(
            conn, "k1", sub, "FAILED_TEMPORARY", error="HTTP 503", attempted_at=at
        )
        assert made.attempt == number
        delay = deliveries.backoff(number)
        assert made.next_attempt_at == (None if delay is None else at + delay)
        assert deliveries.pending_retries(conn) == (0 if delay is None else 1)
        if delay is not None:
            at += delay
    # The 8th temporary failure exhausted the retries: it counts as one permanent failure.
    assert _health(conn, sub) == (True, 1, False)
    history = deliveries.list_for_subscriber(conn, sub)
    assert [a.attempt for a in history] == list(range(8, 0, -1))
    assert all(a.next_attempt_at is None and a.lease_owner is None for a in history)
    assert deliveries.claim_retries(conn, worker_id="w", now=at + dt.timedelta(days=1)) == []


def test_deactivation_after_consecutive_permanent_failures(conn: Conn) -> None:
    _, (sub, other) = _subscribers(conn, 2)
    # Two permanent failures, a success: the count starts over.
    for key in ("a", "b"):
        deliveries.record(conn, key, sub, "FAILED_PERMANENT", error="550 no such user")
    assert _health(conn, sub) == (True, 2, False)
    deliveries.record(conn, "c", sub, "DELIVERED")
    assert _health(conn, sub) == (True, 0, False)
    # Temporary failures neither count nor reset; plain SQL writers count like statusdb.
    deliveries.record(conn, "d", sub, "FAILED_PERMANENT", error="HTTP 410")
    deliveries.record(conn, "e", sub, "FAILED_TEMPORARY", error="timeout", attempted_at=T0)
    conn.execute(
        "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome, error)"
        " VALUES ('f', %s, 1, 'FAILED_PERMANENT', 'HTTP 404')",
        (sub,),
    )
    assert _health(conn, sub) == (True, 2, False)
    assert deliveries.pending_retries(conn) == 1  # "e"
    conn.execute(
        "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome, error)"
        " VALUES ('g', %s, 99, 'FAILED_PERMANENT', 'HTTP 404')",
        (sub,),
    )
    health = deliveries.subscriber_health(conn, sub)
    assert (health.is_active, health.consecutive_permanent_failures) == (False, 3)
    assert health.deactivation_reason is not None
    assert "HTTP 404" in health.deactivation_reason
    # The attempt number is the database's, whatever the INSERT said; pending retries dropped.
    assert [a.attempt for a in deliveries.list_for_notification(conn, "g")] == [1]
    assert deliveries.pending_retries(conn) == 0
    assert _health(conn, other) == (True, 0, False)  # nobody else is touched

    # Support staff's view: one query says why the address stopped getting notifications.
    row = conn.execute(
        "SELECT destination, outcome, error, subscriber_is_active, deactivation_reason"
        " FROM delivery_log WHERE subscriber_id = %s AND notification_key = 'g'",
        (sub,),
    ).fetchone()
    assert row is not None
    assert row[1:4] == ("FAILED_PERMANENT", "HTTP 404", False)

    # Re-subscribing (or any UPDATE making it active) starts over.
    conn.execute("UPDATE status_subscriber SET is_active = true WHERE id = %s", (sub,))
    assert _health(conn, sub) == (True, 0, False)
    # Unsubscribing drops pending retries too; an inactive subscriber gets none scheduled.
    deliveries.record(conn, "h", sub, "FAILED_TEMPORARY", error="timeout")
    assert deliveries.pending_retries(conn) == 1
    subscribers.unsubscribe(conn, sub)
    assert deliveries.pending_retries(conn) == 0
    made = deliveries.record(conn, "i", sub, "FAILED_TEMPORARY", error="timeout")
    assert made.next_attempt_at is None


def test_record_many_and_bounds(conn: Conn) -> None:
    _, subs = _subscribers(conn, 30)
    batch = [
        NewAttempt("fan-1", sub, "FAILED_PERMANENT" if i % 3 == 0 else "DELIVERED", error=None)
        for i, sub in enumerate(subs)
    ]
    batch = [
        attempt
        if attempt.outcome == "DELIVERED"
        else NewAttempt(
            attempt.notification_key, attempt.subscriber_id, attempt.outcome, error="bounce"
        )
        for attempt in batch
    ]
    assert deliveries.record_many(conn, list(reversed(batch))) == 30
    assert deliveries.record_many(conn, []) == 0
    listed = deliveries.list_for_notification(conn, "fan-1", limit=20)
    assert len(listed) == 20
    assert [a.subscriber_id for a in listed] == sorted(subs)[:20]
    rest = deliveries.list_for_notification(
        conn, "fan-1", limit=20, after_subscriber_id=listed[-1].subscriber_id
    )
    assert len(rest) == 10
    failures = conn.execute(
        "SELECT count(*) FROM status_subscriber WHERE consecutive_permanent_failures = 1"
    ).fetchone()
    assert failures == (10,)

    with pytest.raises(InvalidInput, match="at most 10000"):
        deliveries.record_many(conn, [batch[0]] * (deliveries.BATCH_MAX + 1))
    with pytest.raises(InvalidInput, match="error"):
        deliveries.record(conn, "k", subs[0], "FAILED_TEMPORARY", error="x" * 1001)
    with pytest.raises(InvalidInput, match="no error text"):
        deliveries.record(conn, "k", subs[0], "DELIVERED", error="x")
    with pytest.raises(InvalidInput, match="notification_key"):
        deliveries.record(conn, "k" * 201, subs[0], "DELIVERED")
    with pytest.raises(InvalidInput, match="payload"):
        deliveries.record(conn, "k", subs[0], "FAILED_TEMPORARY", payload={"x": "y" * 20_000})
    # Fits as compact JSON (14,491 bytes), not as the CHECK measures jsonb's text (18,090):
    # refused as InvalidInput before the database would refuse it with its own error.
    spaced = {str(n): [1, 2] for n in range(1200)}
    with pytest.raises(InvalidInput, match="payload"):
        deliveries.record(conn, "k", subs[0], "FAILED_TEMPORARY", payload=spaced)
    with pytest.raises(NotFound, match="no subscriber"), conn.transaction():
        deliveries.record(conn, "k", "missing", "DELIVERED")
    assert (
        deliveries.error_text(ValueError("a\x00b" + "c" * 2000))
        == ("ValueError: a\ufffdb" + "c" * 2000)[:1000]
    )
    assert deliveries.purge(conn, before=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == 30


def test_two_retry_workers_never_claim_the_same_retry(conn: Conn, connect: object) -> None:
    _, subs = _subscribers(conn, 6)
    for sub in subs:
        deliveries.record(conn, "k", sub, "FAILED_TEMPORARY", error="503", attempted_at=T0)
    conn.commit()
    due = T0 + dt.timedelta(minutes=1)
    first = connect()  # type: ignore[operator]
    second = connect()  # type: ignore[operator]
    # The first worker's claim holds its rows locked until it commits: the second skips them.
    claimed_a = deliveries.claim_retries(first, worker_id="a", limit=4, now=due)
    claimed_b = deliveries.claim_retries(second, worker_id="b", limit=4, now=due)
    assert len(claimed_a) == 4
    assert len(claimed_b) == 2
    assert not {r.attempt_id for r in claimed_a} & {r.attempt_id for r in claimed_b}
    first.commit()
    second.commit()
    # Leased: nothing left for anyone until the leases expire.
    assert deliveries.claim_retries(second, worker_id="b", now=due) == []
    second.commit()
    # b gives one back; a's lease expires (a died): both can be claimed again.
    deliveries.release_retry(second, claimed_b[0], worker_id="b")
    deliveries.release_retry(second, claimed_a[0], worker_id="b")  # not b's: no effect
    second.commit()
    assert [r.attempt_id for r in deliveries.claim_retries(first, worker_id="a", now=due)] == [
        claimed_b[0].attempt_id
    ]
    first.commit()
    # Every lease taken at `due` has expired by `due + lease` (a worker died): claimable again.
    later = due + deliveries.DEFAULT_LEASE
    again = deliveries.claim_retries(second, worker_id="b", now=later)
    assert {r.attempt_id for r in again} == {r.attempt_id for r in claimed_a + claimed_b}
    second.commit()


@pytest.mark.fresh_db
def test_outbox_worker_with_bookkeeping_then_retry_round(conn: Conn) -> None:
    team_id, subs = _subscribers(conn, 3)
    incidents.create(conn, team_id, title="API down", priority="CRITICAL")
    conn.commit()
    temporary, permanent, fine = sorted(subs)
    sent: list[tuple[str, str]] = []

    def deliver(notification: StatusChangeNotification, recipient: Recipient, key: str) -> None:
        if recipient.subscriber_id == temporary and len(sent) < 10:
            sent.append(("fail", recipient.subscriber_id))
            raise TimeoutError("connect timed out")
        if recipient.subscriber_id == permanent:
            raise PermanentDeliveryFailure("HTTP 410 Gone")
        sent.append((notification.new_status, recipient.subscriber_id))

    report = outbox.process_all(
        conn,
        deliver,  # type: ignore[arg-type]
        worker_id="w",
        hold_down=dt.timedelta(0),
        bookkeeping=True,
    )
    assert (report.claimed, report.deliveries) == (1, 3)
    outcomes: dict[str, str] = dict(
        conn.execute("SELECT subscriber_id, outcome FROM delivery_attempt").fetchall()
    )
    assert outcomes == {
        temporary: "FAILED_TEMPORARY",
        permanent: "FAILED_PERMANENT",
        fine: "DELIVERED",
    }
    (key,) = {a.notification_key for a in deliveries.list_for_subscriber(conn, fine)}
    # The retry round, a minute later: delivered from the stored payload, same key.
    sent.extend([("x", "x")] * 10)  # the temporary failure is over
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1, seconds=5)
    retried = deliveries.retry(conn, deliver, worker_id="r", now=later)
    assert (retried.claimed, retried.delivered, retried.failed) == (1, 1, 0)
    assert sent[-1] == ("MAJOR_OUTAGE", temporary)
    attempts = deliveries.list_for_notification(conn, key)
    assert [
        (a.subscriber_id, a.attempt, a.outcome) for a in attempts if a.subscriber_id == temporary
    ] == [
        (temporary, 1, "FAILED_TEMPORARY"),
        (temporary, 2, "DELIVERED"),
    ]
    assert deliveries.pending_retries(conn) == 0


@pytest.mark.fresh_db
def test_a_worker_loop_with_buffered_bookkeeping(conn: Conn) -> None:
    team_id, subs = _subscribers(conn, 5)
    incidents.create(conn, team_id, title="API down", priority="CRITICAL")
    conn.commit()
    gone = sorted(subs)[:2]

    def deliver(notification: StatusChangeNotification, recipient: Recipient, key: str) -> None:
        if recipient.subscriber_id in gone:
            raise PermanentDeliveryFailure("HTTP 404")

    (change,) = outbox.claim(conn, worker_id="w", hold_down=dt.timedelta(0))
    conn.commit()
    bookkeeper = deliveries.Bookkeeper(conn, deliver, batch_size=2)
    for recipient in outbox.recipients(conn, change):
        bookkeeper(change.notification, recipient, change.key)
    assert bookkeeper.flush() == 1  # 5 deliveries: two batches of 2 went already
    assert outbox.complete(conn, change, worker_id="w")
    conn.commit()
    assert bookkeeper.counts == {"DELIVERED": 3, "FAILED_TEMPORARY": 0, "FAILED_PERMANENT": 2}
    attempts = deliveries.list_for_notification(conn, change.key)
    assert [(a.subscriber_id, a.outcome) for a in attempts] == [
        (sub, "FAILED_PERMANENT" if sub in gone else "DELIVERED") for sub in sorted(subs)
    ]
    assert [
        deliveries.subscriber_health(conn, sub).consecutive_permanent_failures for sub in gone
    ] == [1, 1]
