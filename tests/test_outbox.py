"""The notification outbox: claims, coalescing, flap damping, crashes, fan-out."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import attrs
import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, incidents, teams
from statusdb.workers import deliveries, outbox
from statusdb.workers.outbox import ClaimedChange

Conn = psycopg.Connection[TupleRow]
Connect = Callable[..., Conn]
NOW = dt.timedelta(0)


def setup_page(conn: Conn, n_components: int = 1) -> tuple[str, str, list[str]]:
    team = teams.create(conn, name="SRE")
    page = new_page(conn, team.id, slug="p", created_by_id="u")
    ids = [
        components.create(
            conn, page.id, name=f"c{n}", team_id=team.id, service_identifier=f"s{n}"
        ).id
        for n in range(n_components)
    ]
    conn.commit()
    return team.id, page.id, ids


def add_subscriber(
    conn: Conn,
    page_id: str,
    n: int,
    *,
    component_ids: list[str] | None = None,
    notify_on: list[str] | None = None,
    verified: bool = True,
    active: bool = True,
) -> str:
    row = conn.execute(
        """INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,
                                          notify_on, is_verified, is_active)
           VALUES (%s, 'WEBHOOK', %s, %s, %s, %s, %s) RETURNING id""",
        (
            page_id,
            f"https://hooks.example.com/{n}",
            component_ids or [],
            notify_on or ["degraded", "outage", "maintenance", "resolved"],
            verified,
            active,
        ),
    ).fetchone()
    assert row is not None
    return str(row[0])


def claim_all(conn: Conn, worker: str = "w1", **kwargs: Any) -> list[ClaimedChange]:
    claimed = outbox.claim(conn, worker_id=worker, hold_down=kwargs.pop("hold_down", NOW), **kwargs)
    conn.commit()
    return claimed


def test_recipients_built_fast_equal_the_class() -> None:
    """The fan-out builds Recipients through the slots (issue 27: speed); they are the same."""
    fast = outbox._recipient(("s1", "EMAIL", "a@example.com", "de"))
    built = outbox.Recipient("s1", "EMAIL", "a@example.com", locale="de")
    assert type(fast) is outbox.Recipient
    assert (fast, hash(fast), repr(fast)) == (built, hash(built), repr(built))
    assert outbox._recipient(("s1", "EMAIL", "a@example.com", None)) == outbox.Recipient(
        "s1", "EMAIL", "a@example.com"
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.destination = "b@example.com"  # type: ignore[misc]


def test_recipients_built_by_columns_equal_the_class() -> None:
    """A batch is built column by column (issue 20: fan-out speed): the same Recipients, in
    order, as the class builds them; rows of another width go through the class."""
    rows = [(f"s{n}", "EMAIL", f"a{n}@example.com", None if n % 2 else "de") for n in range(50)]
    built = outbox._recipients_of(rows)
    expected = [outbox.Recipient(s, "EMAIL", d, locale=loc) for s, _, d, loc in rows]
    assert built == expected
    assert [(type(r), hash(r), repr(r)) for r in built] == [
        (type(r), hash(r), repr(r)) for r in expected
    ]
    assert all(r.unsubscribe_token is None for r in built)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built[0].destination = "b@example.com"  # type: ignore[misc]
    assert outbox._recipients_of([]) == []
    short = [("s1", "EMAIL", "a@example.com")]
    assert outbox._recipients_of(short) == [outbox.Recipient("s1", "EMAIL", "a@example.com")]


def test_deliver_one_passes_the_delivery_key() -> None:
    """deliver_one inlines delivery_key (issue 20): the same key."""
    recipient = outbox.Recipient("s1", "EMAIL", "a@example.com")
    seen: list[tuple[object, outbox.Recipient, str]] = []
    outbox.deliver_one(lambda n, r, k: seen.append((n, r, k)), cast(Any, "n"), recipient, "e1")
    assert seen == [("n", recipient, outbox.delivery_key("e1", recipient))]
    assert seen[0][2] == "e1/s1"


@pytest.mark.fresh_db
def test_a_change_is_claimed_fanned_out_and_completed_once(conn: Conn) -> None:
    team, page, (_comp,) = setup_page(conn)
    wanted = add_subscriber(conn, page, 1)
    add_subscriber(conn, page, 2, verified=False)
    add_subscriber(conn, page, 3, active=False)
    add_subscriber(conn, page, 4, notify_on=["maintenance"])
    incident = incidents.create(conn, team, title="x", priority="CRITICAL", service_identifier="s0")
    conn.commit()
    (claimed,) = claim_all(conn)
    assert (claimed.previous_status, claimed.new_status) == ("OPERATIONAL", "MAJOR_OUTAGE")
    assert claimed.notify_types == ("outage",)
    assert claimed.incident_id == incident.id  # the worker folds by it; subscribers never see it
    notification = claimed.notification
    assert notification.component_name == "c0"
    assert not hasattr(notification, "incident_id")
    page_row = conn.execute(
        "SELECT name, slug, time_zone FROM status_page WHERE id = %s", (page,)
    ).fetchone()
    assert (notification.page_name, notification.page_slug, notification.page_time_zone) == (
        page_row
    )
    assert [r.subscriber_id for r in outbox.recipients(conn, claimed)] == [wanted]
    assert outbox.claim(conn, worker_id="w2", hold_down=NOW) == []  # leased to w1
    assert outbox.complete(conn, claimed, worker_id="w1")
    conn.commit()
    assert not outbox.complete(conn, claimed, worker_id="w1")  # never done twice
    assert claim_all(conn) == []
    assert outbox.pending_count(conn) == 0
    incidents.resolve(conn, incident.id)
    conn.commit()
    (resolved,) = claim_all(conn)
    assert resolved.notify_types == ("resolved",)


def test_hold_down_delays_and_coalesces(conn: Conn) -> None:
    team, _page, (_comp,) = setup_page(conn)
    incident = incidents.create(conn, team, title="x", priority="MEDIUM", service_identifier="s0")
    incidents.update(conn, incident.id, priority="HIGH")
    incidents.update(conn, incident.id, priority="CRITICAL")
    conn.commit()
    assert claim_all(conn, hold_down=dt.timedelta(minutes=5)) == []  # not due yet
    conn.execute("UPDATE status_change SET changed_at = changed_at - interval '6 minutes'")
    conn.commit()
    (claimed,) = claim_all(conn, hold_down=dt.timedelta(minutes=5))
    assert len(claimed.change_ids) == 3
    assert (claimed.previous_status, claimed.new_status) == ("OPERATIONAL", "MAJOR_OUTAGE")


def test_a_flap_inside_the_window_notifies_nobody(conn: Conn) -> None:
    team, page, (_comp,) = setup_page(conn)
    add_subscriber(conn, page, 1)
    incident = incidents.create(conn, team, title="x", priority="HIGH", service_identifier="s0")
    conn.commit()
    incidents.resolve(conn, incident.id)
    conn.execute("UPDATE status_change SET changed_at = changed_at - interval '6 minutes'")
    conn.commit()
    (claimed,) = claim_all(conn, hold_down=dt.timedelta(minutes=5))
    assert len(claimed.change_ids) == 2
    assert claimed.outcome == "FLAP"
    assert claimed.notify_types == ()
    assert list(outbox.recipients(conn, claimed)) == []
    assert outbox.complete(conn, claimed, worker_id="w1")
    conn.commit()
    outcomes = conn.execute("SELECT DISTINCT outcome FROM status_change").fetchall()
    assert outcomes == [("FLAP",)]


@pytest.mark.fresh_db
def test_maintenance_without_notifications_is_muted(conn: Conn) -> None:
    _team, page, (comp,) = setup_page(conn)
    add_subscriber(conn, page, 1)
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                           created_by_id, notify_subscribers, status)
           VALUES ('mw', %s, 'quiet', now(), now() + interval '1 hour', 'u', false, 'SCHEDULED')""",
        (page,),
    )
    conn.execute("INSERT INTO maintenance_window_component VALUES ('mw', %s)", (comp,))
    conn.execute("UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = 'mw'")
    conn.commit()
    (claimed,) = claim_all(conn)
    assert claimed.cause == "MAINTENANCE"
    assert claimed.outcome == "MUTED"
    assert list(outbox.recipients(conn, claimed)) == []


def test_two_workers_claim_at_once_and_each_change_is_done_exactly_once(
    conn: Conn, connect: Connect
) -> None:
    team, _page, _comps = setup_page(conn, n_components=30)
    for n in range(30):
        incidents.create(conn, team, title="x", priority="HIGH", service_identifier=f"s{n}")
        conn.commit()
    expected = {row[0] for row in conn.execute("SELECT id FROM status_change").fetchall()}
    done: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        worker_conn = connect()
        try:
            barrier.wait()
            while True:
                claimed = outbox.claim(worker_conn, worker_id=name, limit=3, hold_down=NOW)
                worker_conn.commit()
                if not claimed:
                    return
                for change in claimed:
                    assert outbox.complete(worker_conn, change, worker_id=name)
                    worker_conn.commit()
                    done[name].extend(change.change_ids)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in done]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not set(done["a"]) & set(done["b"])
    assert sorted(done["a"] + done["b"]) == sorted(expected)
    conn.rollback()
    assert outbox.pending_count(conn) == 0


def test_a_worker_killed_mid_fan_out_is_redelivered_after_its_lease(
    conn: Conn, connect: Connect
) -> None:
    team, page, (_comp,) = setup_page(conn)
    for n in range(50):
        add_subscriber(conn, page, n)
    incidents.create(conn, team, title="x", priority="HIGH", service_identifier="s0")
    conn.commit()
    doomed = connect()
    (claimed,) = outbox.claim(
        doomed, worker_id="doomed", hold_down=NOW, lease=dt.timedelta(seconds=1)
    )
    doomed.commit()
    stream = outbox.recipients(doomed, claimed, itersize=10)
    first = [next(stream) for _ in range(5)]
    assert len(first) == 5
    pid = doomed.info.backend_pid
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    conn.commit()
    with pytest.raises(Exception):  # noqa: B017 - whatever the dead connection raises
        list(stream)
    assert outbox.claim(conn, worker_id="rescuer", hold_down=NOW) == []  # lease still held
    conn.commit()
    time.sleep(1.2)
    (again,) = outbox.claim(conn, worker_id="rescuer", hold_down=NOW)
    conn.commit()
    assert again.change_ids == claimed.change_ids
    assert len(list(outbox.recipients(conn, again))) == 50
    assert outbox.complete(conn, again, worker_id="rescuer")
    conn.commit()
    assert outbox.pending_count(conn) == 0


@pytest.mark.fresh_db
def test_fan_out_equals_a_brute_force_filter(conn: Conn) -> None:
    rng = random.Random(7)
    team, page, comps = setup_page(conn, n_components=5)
    events = ["degraded", "outage", "maintenance", "resolved"]
    subscribers = []
    for n in range(400):
        follows = rng.sample(comps, rng.randrange(0, 3))
        wants = rng.sample(events, rng.randrange(1, 5))
        verified, active = rng.random() < 0.8, rng.random() < 0.9
        sid = add_subscriber(
            conn, page, n, component_ids=follows, notify_on=wants, verified=verified, active=active
        )
        subscribers.append((sid, set(follows), set(wants), verified, active))
    for n in range(5):
        incidents.create(
            conn,
            team,
            title="x",
            priority=rng.choice(["CRITICAL", "MEDIUM"]),
            service_identifier=f"s{n}",
        )
    conn.commit()
    claimed = claim_all(conn)
    assert len(claimed) == 5
    for change in claimed:
        types = set(change.notify_types)
        expected = {
            sid
            for sid, follows, wants, verified, active in subscribers
            if verified
            and active
            and (not follows or change.component_id in follows)
            and wants & types
        }
        got = [r.subscriber_id for r in outbox.recipients(conn, change, itersize=37)]
        assert len(got) == len(set(got))
        assert set(got) == expected


@pytest.mark.slow
@pytest.mark.fresh_db
def test_streaming_memory_stays_flat(conn: Conn) -> None:
    """Loose check (bench/ measures it at 1M): 10x more subscribers, no more memory."""
    team, page, (_comp,) = setup_page(conn)
    incidents.create(conn, team, title="x", priority="HIGH", service_identifier="s0")
    conn.commit()
    (claimed,) = claim_all(conn)

    def peak_for(total: int) -> int:
        conn.execute("DELETE FROM status_subscriber")
        conn.execute(
            """INSERT INTO status_subscriber (status_page_id, channel, destination, is_verified)
               SELECT %s, 'WEBHOOK', 'https://hooks.example.com/' || n, true
               FROM generate_series(1, %s) AS n""",
            (page, total),
        )
        conn.commit()
        tracemalloc.start()
        count = sum(1 for _ in outbox.recipients(conn, claimed))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        conn.commit()
        assert count == total
        # The worker round's path (issue 20): batches of 1,000 built column by column.
        tracemalloc.start()
        query = outbox._recipients_query(claimed, resume=False)
        built = 0
        for rows in outbox._batches_sync(conn, query, 1_000, 5_000):
            built += len(outbox._recipients_of(rows))
        _, worker_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        conn.commit()
        assert built == total
        return max(peak, worker_peak)

    small, large = peak_for(5_000), peak_for(50_000)
    assert large < small + 2_000_000, (small, large)


async def test_recipients_stream_from_async_code(
    conn: Conn, aconn: psycopg.AsyncConnection[Any]
) -> None:
    team, page, (_comp,) = setup_page(conn)
    ids = {add_subscriber(conn, page, n) for n in range(3)}
    incidents.create(conn, team, title="x", priority="HIGH", service_identifier="s0")
    conn.commit()
    (claimed,) = await outbox.claim(aconn, worker_id="async", hold_down=NOW)
    await aconn.commit()
    got = {r.subscriber_id async for r in outbox.recipients(aconn, claimed)}
    assert got == ids
    assert await outbox.complete(aconn, claimed, worker_id="async")


@pytest.mark.fresh_db
def test_process_runs_a_worker_round(conn: Conn) -> None:
    team, page, (_comp,) = setup_page(conn)
    for n in range(3):
        add_subscriber(conn, page, n)
    incidents.create(conn, team, title="x", priority="HIGH", service_identifier="s0")
    conn.commit()
    sent: list[tuple[str, str]] = []
    report = outbox.process_all(
        conn,
        lambda note, recipient, key: sent.append(
            (recipient.destination, getattr(note, "new_status", ""))
        ),
        worker_id="w",
        hold_down=NOW,
    )
    assert (report.claimed, report.notified, report.deliveries, report.lost) == (1, 1, 3, 0)
    assert {status for _, status in sent} == {"PARTIAL_OUTAGE"}


class Flaky(Exception):
    pass


def _four_claims(conn: Conn, subscribers: int) -> None:
    team, page, _ = setup_page(conn, 4)
    for n in range(subscribers):
        add_subscriber(conn, page, n)
    for n in range(4):
        incidents.create(conn, team, title=f"x{n}", priority="HIGH", service_identifier=f"s{n}")
    conn.commit()


def _stranded(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM status_change WHERE notified_at IS NULL AND lease_owner IS NOT NULL"
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


@pytest.mark.fresh_db
def test_a_deliverer_failing_1_in_100_strands_no_claim(conn: Conn) -> None:
    """Issue 27.5: before, one raising delivery left the round's other claims leased; then
    it stopped its claim's fan-out. Now every other delivery completes in the same round."""
    _four_claims(conn, 50)
    calls = 0
    delivered: list[str] = []

    def deliver(note: Any, recipient: outbox.Recipient, key: str) -> None:
        nonlocal calls
        calls += 1
        if calls % 100 == 30:
            raise Flaky("1 in 100")
        delivered.append(key)

    with pytest.raises(Flaky):
        outbox.process_all(conn, deliver, worker_id="w", hold_down=NOW)
    assert _stranded(conn) == 0
    assert (calls, len(delivered)) == (200, 198)
    assert outbox.pending_count(conn) == 0  # the two failures wait as retries
    retries = conn.execute(
        "SELECT count(*) FROM delivery_attempt WHERE next_attempt_at IS NOT NULL"
    ).fetchone()
    assert retries == (2,)


@pytest.mark.fresh_db
def test_a_plain_worker_retries_only_the_failed_recipients(conn: Conn) -> None:
    """Issue 27.5: before, a failed delivery without bookkeeping stopped its claim's fan-out
    and released it, and the next round sent it again to every recipient."""
    _four_claims(conn, 50)
    sent: Counter[str] = Counter()
    broken = {"https://hooks.example.com/7"}

    def deliver(note: Any, recipient: outbox.Recipient, key: str) -> None:
        if recipient.destination in broken:
            raise Flaky("down")
        sent[key] += 1

    with pytest.raises(Flaky):
        outbox.process_all(conn, deliver, worker_id="w", hold_down=NOW)
    # Every other delivery of the round completed in it; nothing is left for another round.
    assert (len(sent), max(sent.values())) == (4 * 49, 1)
    assert _stranded(conn) == 0
    assert outbox.pending_count(conn) == 0
    conn.commit()
    assert outbox.process_all(conn, deliver, worker_id="w", hold_down=NOW).claimed == 0
    # The failed deliveries wait as retries (delivery_attempt), and only they are sent again.
    broken.clear()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    report = deliveries.retry(conn, deliver, worker_id="r", now=later)
    assert report.delivered == 4
    assert (len(sent), max(sent.values())) == (4 * 50, 1)


@pytest.mark.fresh_db
def test_keyboard_interrupt_releases_every_claim(conn: Conn) -> None:
    _four_claims(conn, 3)

    def deliver(note: Any, recipient: outbox.Recipient, key: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        outbox.process_all(conn, deliver, worker_id="w", hold_down=NOW)
    assert _stranded(conn) == 0


@pytest.mark.fresh_db
def test_batch_deliverer_reports_per_recipient(conn: Conn) -> None:
    _four_claims(conn, 5)
    seen: list[int] = []

    def batch(note: Any, pairs: Any) -> list[BaseException | None]:
        seen.append(len(pairs))
        return [None] * len(pairs)

    report = outbox.process_all(conn, deliver_batch=batch, worker_id="w", hold_down=NOW)
    assert (report.claimed, report.notified, report.deliveries) == (4, 4, 20)
    assert seen == [5, 5, 5, 5]


async def test_async_round_with_a_coroutine_deliverer(
    conn: Conn, aconn: psycopg.AsyncConnection[Any]
) -> None:
    _four_claims(conn, 3)
    got: list[str] = []

    async def deliver(note: Any, recipient: outbox.Recipient, key: str) -> None:
        got.append(key)

    report = await outbox.aprocess_all(aconn, deliver, worker_id="a", hold_down=NOW)
    assert (report.claimed, report.notified, report.deliveries) == (4, 4, 12)
    assert len(set(got)) == 12
