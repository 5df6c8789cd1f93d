"""Failover on a real pg_auto_failover formation (issue 22): nothing acknowledged is lost.

One formation (bench/formation.py: a monitor, a primary and a synchronous standby on loopback,
tuned failure detection) per module, one failover per module (the `failover` fixture): four
writers through a `Router` on the formation's multi-host conninfo (`target_session_attrs=
read-write`), the outbox worker (`outbox.process_all`), a scheduler (`maintenance.advance`) and
a feed `Follower` run while the primary's keeper and PostgreSQL are SIGKILLed; then the old
primary is started again and rejoins as a standby. The tests check what the round recorded.

Skipped, saying so, where pg_auto_failover is not installed (`.ci/run` installs Debian's
postgresql-15-auto-failover).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's bench/

from bench import formation as pgaf
from statusdb import components, feed, maintenance, pages, teams
from statusdb.domain.types import ComponentStatus
from statusdb.errors import Retryable
from statusdb.infra.routing import Router
from statusdb.workers import outbox

# One formation for the module: its tests run on one xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("failover")]

STATUSES: tuple[ComponentStatus, ...] = (
    "DEGRADED_PERFORMANCE",
    "PARTIAL_OUTAGE",
    "MAJOR_OUTAGE",
    "OPERATIONAL",
)
WRITERS = 4
#: The outbox worker's lease in this test (the deployment's bound on recovering a dead claim).
LEASE = dt.timedelta(seconds=3)
#: Changes of one component within this window are claimed (and coalesced) together.
HOLD_DOWN = dt.timedelta(seconds=1)
#: Writers must commit again within this many seconds of the promotion (measured: -0.1 to 1.8 s
#: through the Router, whose pool backs off while no host accepts writes; bench/README.md).
RESUME_BOUND = 10.0
#: How long the writers keep going after they resumed.
AFTER = 3.0


@attrs.define
class Round:
    """What the failover round recorded (lists appended to by the threads)."""

    acked: dict[str, list[ComponentStatus]] = attrs.Factory(dict)
    ack_times: list[float] = attrs.Factory(list)
    retryable: int = 0
    raw_psycopg: list[str] = attrs.Factory(list)
    other_errors: list[str] = attrs.Factory(list)
    killed_at: float = 0.0
    promoted_at: float = 0.0
    feed: list[feed.FeedChange] = attrs.Factory(list)
    feed_since: int = 0
    follower_reconnects: int = 0
    doomed_ids: tuple[str, ...] = ()
    doomed_expires: dt.datetime | None = None
    worker_rounds_after: int = 0
    scheduler_calls_after: int = 0
    window_id: str = ""
    reads_before: dict[str, int] = attrs.Factory(dict)
    reads_after: dict[str, int] = attrs.Factory(dict)
    old_primary: str = ""
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def error(self, exc: BaseException) -> None:
        with self.lock:
            if isinstance(exc, Retryable):
                self.retryable += 1
            elif isinstance(exc, (psycopg.Error, *_pool_errors())):
                self.raw_psycopg.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
            else:
                self.other_errors.append(f"{type(exc).__name__}: {exc}")


def _pool_errors() -> tuple[type[BaseException], ...]:
    import psycopg_pool

    return (psycopg_pool.PoolTimeout, psycopg_pool.TooManyRequests)


@pytest.fixture(scope="module")
def formation() -> Iterator[pgaf.Formation]:
    if pgaf.find_pg_autoctl() is None:
        pytest.skip(
            "pg_auto_failover is not installed: apt-get install postgresql-15-auto-failover "
            "(.ci/run does) to run the failover tests"
        )
    f = pgaf.Formation(tuned=True)
    started = time.monotonic()
    f.start()
    print(f"formation: up in {time.monotonic() - started:.1f} s")
    try:
        yield f
    finally:
        f.stop()


def _loop(stop: threading.Event, body: Callable[[], None], pause: float) -> None:
    while not stop.is_set():
        body()
        time.sleep(pause)


@pytest.fixture(scope="module")
def failover(formation: pgaf.Formation) -> Round:
    """Run the round once for the module's tests."""
    r = Round()
    conninfo = formation.conninfo()
    n1, n2 = formation.nodes["node1"], formation.nodes["node2"]
    replicas = [n1.dsn(connect_timeout=2), n2.dsn(connect_timeout=2)]
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(conninfo) as setup:
        team = teams.create(setup, name="SRE")
        comp_ids = []
        for n in range(WRITERS):
            page = pages.create(
                setup, team_id=team.id, name=f"P{n}", slug=f"failover-{n}", created_by_id="t"
            ).page
            comp_ids.append(components.create(setup, page.id, name=f"C{n}").id)
        page = pages.create(
            setup, team_id=team.id, name="M", slug="failover-m", created_by_id="t"
        ).page
        maint_comp = components.create(setup, page.id, name="M").id
        window = maintenance.create(
            setup,
            page.id,
            title="failover window",
            start_time=now + dt.timedelta(seconds=4),
            end_time=now + dt.timedelta(seconds=9),
            component_ids=[maint_comp],
            created_by_id="t",
        )
        r.window_id = window.id
        setup.commit()
        r.feed_since = feed.latest_seq(setup)
    r.acked = {c: [] for c in comp_ids}

    stop = threading.Event()
    router = Router(conninfo, replicas, check_interval=0.2, max_lag=5.0, max_size=WRITERS + 2)
    router.open()
    follower = feed.Follower(conninfo, since=r.feed_since, reconnect_delay=0.1)

    def writer(component_id: str) -> Callable[[], None]:
        cycle = itertools.cycle(STATUSES)
        status = next(cycle)

        def write() -> None:
            nonlocal status
            try:
                router.write(lambda c: components.set_status(c, component_id, status))
            except Exception as exc:
                r.error(exc)
                return
            with r.lock:
                r.acked[component_id].append(status)
                r.ack_times.append(time.monotonic())
            status = next(cycle)

        return write

    def follow() -> None:
        try:
            r.feed += list(follower.changes(timeout=0.5))
        except Exception as exc:
            r.error(exc)

    worker_conn: list[psycopg.Connection[Any]] = []

    def work() -> None:
        try:
            if not worker_conn or worker_conn[0].closed or worker_conn[0].broken:
                try:  # the test's own connection (not a statusdb entry point)
                    worker_conn[:] = [psycopg.connect(conninfo, connect_timeout=2)]
                except psycopg.OperationalError:
                    return
            outbox.process_all(
                worker_conn[0], _deliver, worker_id="w1", hold_down=HOLD_DOWN, lease=LEASE
            )
            if r.killed_at:
                r.worker_rounds_after += 1
        except Exception as exc:
            r.error(exc)

    def schedule() -> None:
        try:
            router.write(lambda c: maintenance.advance(c, dt.datetime.now(dt.UTC)))
            if r.killed_at:
                r.scheduler_calls_after += 1
        except Exception as exc:
            r.error(exc)

    threads = [threading.Thread(target=_loop, args=(stop, writer(c), 0.02)) for c in comp_ids] + [
        threading.Thread(target=_loop, args=(stop, follow, 0)),
        threading.Thread(target=_loop, args=(stop, work, 0.2)),
        threading.Thread(target=_loop, args=(stop, schedule, 0.2)),
    ]
    try:
        for t in threads:
            t.start()
        time.sleep(2)
        router.check()
        r.reads_before = router.reads_served()
        for _ in range(5):
            router.read(lambda c: c.execute("SELECT 1").fetchone())
        r.reads_before = _diff(router.reads_served(), r.reads_before)
        # A claim the dying primary holds: taken (and replicated) just before the kill.
        with psycopg.connect(conninfo) as doomed:
            components.set_status(doomed, maint_comp, "DEGRADED_PERFORMANCE")
            doomed.commit()
            claims = outbox.claim(doomed, worker_id="doomed", hold_down=HOLD_DOWN, lease=LEASE)
            doomed.commit()
            r.doomed_ids = tuple(i for c in claims for i in c.change_ids)
            (r.doomed_expires,) = doomed.execute(
                "SELECT max(lease_expires_at) FROM status_change WHERE id = ANY(%s)",
                (list(r.doomed_ids),),
            ).fetchone() or (None,)
        r.old_primary = formation.primary_name() or ""
        r.killed_at = time.monotonic()
        formation.kill_node(r.old_primary)
        new = "node2" if r.old_primary == "node1" else "node1"
        formation.wait("the promotion", lambda: formation.primary_name() == new, 90)
        r.promoted_at = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with r.lock:
                resumed = [t for t in r.ack_times if t > r.promoted_at]
            if len(resumed) >= WRITERS and time.monotonic() - resumed[0] > AFTER:
                break
            time.sleep(0.1)
        resumed_at = time.monotonic()
        formation.restart_node(r.old_primary)
        formation.wait_states({r.old_primary: "secondary", new: "primary"}, timeout=90)
        time.sleep(1)  # the router's checker finds the rejoined standby fresh
        router.check()
        before = router.reads_served()
        for _ in range(5):
            router.read(lambda c: c.execute("SELECT 1").fetchone())
        r.reads_after = _diff(router.reads_served(), before)
        print(
            f"failover: writers ran {resumed_at - r.promoted_at:.1f} s after the promotion; "
            f"the old primary rejoined {time.monotonic() - resumed_at:.1f} s after its restart"
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        r.follower_reconnects = follower.reconnects
        follower.close()
        router.close()
        for c in worker_conn:
            c.close()
    kinds = collections.Counter(e[:150] for e in r.raw_psycopg + r.other_errors)
    print(f"failover: errors {kinds.most_common(8)}")
    # Drain: the worker completes what is left (the doomed claim once its lease ran out).
    with psycopg.connect(conninfo) as w:
        deadline = time.monotonic() + LEASE.total_seconds() + 10
        while outbox.pending_count(w) and time.monotonic() < deadline:
            report = outbox.process_all(
                w, _deliver, worker_id="w1", hold_down=HOLD_DOWN, lease=LEASE
            )
            if not report.claimed:
                time.sleep(0.2)
    # And the follower catches up on what was committed after its last round.
    tail = feed.Follower(conninfo, since=r.feed[-1].seq if r.feed else r.feed_since)
    seen = {c.seq for c in r.feed}
    r.feed += [c for c in tail.changes(timeout=1.0) if c.seq not in seen]
    tail.close()
    return r


def _deliver(notification: object, recipient: object, key: str) -> None:
    """No subscribers here: the round only has to claim and complete every change."""


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _log(conninfo: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(conninfo) as conn:
        return [
            (seq, comp, status)
            for seq, comp, status in conn.execute(
                "SELECT seq, component_id, new_status FROM status_change ORDER BY seq"
            )
        ]


def test_no_acknowledged_write_is_lost(formation: pgaf.Formation, failover: Round) -> None:
    log = _log(formation.conninfo())
    for component_id, acked in failover.acked.items():
        logged = iter([status for _, comp, status in log if comp == component_id])
        # Every acknowledged status is in the log, in order (an unacknowledged commit, one
        # whose outcome the caller could not know, may sit between them).
        missing = [status for status in acked if not any(s == status for s in logged)]
        assert missing == [], f"acknowledged but lost on {component_id}"
        assert len(acked) > 20
    assert failover.other_errors == []


def test_writers_resume_soon_after_the_promotion(failover: Round) -> None:
    first = min(t for t in failover.ack_times if t > failover.promoted_at)
    last_before = max(t for t in failover.ack_times if t < failover.killed_at)
    detection = failover.promoted_at - failover.killed_at
    resume = first - failover.promoted_at
    print(
        f"failover: promotion {detection:.1f} s after the kill; writers resumed "
        f"{resume:.2f} s after it; outage seen by writers {first - last_before:.1f} s"
    )
    assert resume < RESUME_BOUND
    assert failover.retryable > 0  # callers were told to retry during the outage


def test_feed_delivers_every_change_exactly_once(
    formation: pgaf.Formation, failover: Round
) -> None:
    log = [row for row in _log(formation.conninfo()) if row[0] > failover.feed_since]
    got = [c.seq for c in failover.feed]
    assert len(got) == len(set(got)), "a change was delivered twice"
    assert sorted(got) == [seq for seq, _, _ in log], "a change was missed"
    for component_id in failover.acked:  # one component's changes come in their order
        mine = [
            c.seq for c in failover.feed if getattr(c.event, "component_id", "") == component_id
        ]
        assert mine == sorted(mine)
    assert failover.follower_reconnects >= 1


def test_leases_of_the_dead_primary_are_completed_after_expiry(
    formation: pgaf.Formation, failover: Round
) -> None:
    assert failover.doomed_ids, "the dying primary's worker claimed nothing"
    with psycopg.connect(formation.conninfo()) as conn:
        rows = conn.execute(
            "SELECT notified_at FROM status_change WHERE id = ANY(%s)",
            (list(failover.doomed_ids),),
        ).fetchall()
        assert len(rows) == len(failover.doomed_ids)
        assert failover.doomed_expires is not None
        # Completed (by the surviving worker: the claimer died with the primary), after expiry.
        assert all(at is not None and at >= failover.doomed_expires for (at,) in rows), rows
        assert outbox.pending_count(conn) == 0
    assert failover.worker_rounds_after > 0


def test_the_scheduler_went_on(formation: pgaf.Formation, failover: Round) -> None:
    assert failover.scheduler_calls_after > 0
    with psycopg.connect(formation.conninfo()) as conn:
        (status,) = conn.execute(
            "SELECT status FROM maintenance_window WHERE id = %s", (failover.window_id,)
        ).fetchone() or (None,)
    assert status == "COMPLETED"


def test_the_old_primary_rejoins_and_serves_reads(
    formation: pgaf.Formation, failover: Round
) -> None:
    old = formation.nodes[failover.old_primary]
    assert formation.states()[failover.old_primary] == ("secondary", "secondary")
    assert failover.reads_after.get(f"{pgaf.HOST}:{old.port}", 0) > 0, failover.reads_after
    with psycopg.connect(old.dsn()) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_no_psycopg_exception_reaches_a_caller(failover: Round) -> None:
    assert failover.raw_psycopg == []
