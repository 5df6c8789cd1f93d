"""Mixed load: readers, incident churn, status updates, subscribes and outbox workers at once.

`python -m bench.load --seconds 60` starts the benchmark's own cluster (bench/cluster.py: fresh,
durable, tuned), or uses `--dsn` (a migrated database, superuser), sets up a few teams and
pages, and runs for a fixed time, each worker on a connection of its own:

* readers: `views.page_view` of random pages (private ones with their token);
* incident churn: open, escalate, acknowledge and resolve platform incidents (statuses follow
  by trigger), each call its own transaction;
* status updates: publish status incidents, post updates, resolve them, in transactions;
* subscribes: subscribe (EMAIL and WEBHOOK), verify, change preferences, unsubscribe;
* outbox workers: claim due changes (a short hold-down), stream their recipients, complete.

Then it stops the workers, drains the outbox (hold_down=0) and checks what must hold after any
amount of concurrency: no worker saw an error, no component's status drifted from a
from-scratch derivation (`status.recompute`), the status-change log chains
(`status.chain_breaks`), and every status change was completed exactly once (each by one
worker, none left pending). `tests/test_load.py` runs the same thing for ~10 s in CI.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import psycopg
from psycopg.rows import TupleRow

from statusdb import (
    components,
    incidents,
    pages,
    status,
    status_incidents,
    subscribers,
    teams,
    views,
)
from statusdb.domain.types import INCIDENT_PRIORITIES, NOTIFY_ON_EVENTS
from statusdb.pages import NewComponent
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]

#: Changes of a component within this window coalesce into one notification during the run.
HOLD_DOWN = dt.timedelta(milliseconds=500)
LEASE = dt.timedelta(seconds=60)
SERVICES = (None, "api", "db", "web")


@attrs.frozen
class Shape:
    """How much of each kind of worker, and how big the world they work on."""

    readers: int = 2
    churners: int = 2
    updaters: int = 1
    subscribers: int = 1
    outbox_workers: int = 2
    teams: int = 4
    pages: int = 6
    components_per_page: int = 5
    subscribers_per_page: int = 40


@attrs.frozen
class World:
    team_ids: tuple[str, ...]
    #: (page id, slug, access token or None for a public page, component ids)
    pages: tuple[tuple[str, str, str | None, tuple[str, ...]], ...]


def setup(dsn: str, shape: Shape) -> World:
    """Teams, pages (every other one private) with team-driven and hand-set components, and
    verified WEBHOOK subscribers, so that every change fans out to someone."""
    with psycopg.connect(dsn) as conn:
        team_ids = tuple(teams.create(conn, name=f"team {n}").id for n in range(shape.teams))
        made: list[tuple[str, str, str | None, tuple[str, ...]]] = []
        for p in range(shape.pages):
            wanted = [
                NewComponent(
                    name=f"component {c}",
                    team_id=None if c == 0 else team_ids[(p + c) % len(team_ids)],
                    service_identifier=None if c == 0 else SERVICES[c % len(SERVICES)],
                )
                for c in range(shape.components_per_page)
            ]
            created = pages.create(
                conn,
                team_id=team_ids[p % len(team_ids)],
                name=f"Page {p}",
                slug=f"page-{p}",
                created_by_id="load",
                is_public=p % 2 == 0,
                components=wanted,
            )
            ids = tuple(c.id for c in components.list_for_page(conn, created.page.id))
            for s in range(shape.subscribers_per_page):
                subscribers.subscribe(
                    conn,
                    created.page.id,
                    channel="WEBHOOK",
                    destination=f"https://hooks.example.com/{p}/{s}",
                    component_ids=[] if s % 3 == 0 else [ids[s % len(ids)]],
                )
            made.append((created.page.id, created.page.slug, created.access_token, ids))
        conn.commit()
    return World(team_ids, tuple(made))


@attrs.define
class Tally:
    """What the workers did: operations and latencies by kind, errors, completed changes."""

    lock: threading.Lock = attrs.field(factory=threading.Lock)
    latencies: dict[str, list[float]] = attrs.field(factory=lambda: collections.defaultdict(list))
    errors: list[str] = attrs.field(factory=list)
    completed: list[str] = attrs.field(factory=list)
    deliveries: int = 0

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def fail(self, worker: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{worker}: {type(exc).__name__}: {exc}")

    def done(self, change_ids: Sequence[str], deliveries: int) -> None:
        with self.lock:
            self.completed.extend(change_ids)
            self.deliveries += deliveries


@contextlib.contextmanager
def _timed(tally: Tally, kind: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    tally.record(kind, time.perf_counter() - started)


def _reader(conn: Conn, world: World, rng: random.Random, tally: Tally) -> None:
    _page_id, slug, token, _ids = rng.choice(world.pages)
    with _timed(tally, "page view"):
        view = views.page_view(conn, slug, token=token)
    if view is None:
        raise AssertionError(f"page {slug} not visible with its token")


def _churner(state: list[str]) -> Callable[[Conn, World, random.Random, Tally], None]:
    def step(conn: Conn, world: World, rng: random.Random, tally: Tally) -> None:
        action = rng.random()
        if (action < 0.4 or not state) and len(state) < 20:
            with _timed(tally, "incident open"):
                made = incidents.create(
                    conn,
                    rng.choice(world.team_ids),
                    title="load",
                    priority=rng.choice(INCIDENT_PRIORITIES),
                    service_identifier=rng.choice(SERVICES),
                )
            state.append(made.id)
            return
        incident_id = rng.choice(state)
        if action < 0.65:
            with _timed(tally, "incident escalate"):
                incidents.update(conn, incident_id, priority=rng.choice(INCIDENT_PRIORITIES))
        elif action < 0.75:
            with _timed(tally, "incident acknowledge"):
                incidents.update(conn, incident_id, status="ACKNOWLEDGED")
        else:
            with _timed(tally, "incident resolve"):
                incidents.resolve(conn, incident_id)
            state.remove(incident_id)

    return step


def _updater(state: list[str]) -> Callable[[Conn, World, random.Random, Tally], None]:
    def step(conn: Conn, world: World, rng: random.Random, tally: Tally) -> None:
        page_id, _slug, _token, ids = rng.choice(world.pages)
        with _timed(tally, "status update"):
            if len(state) < 5 or rng.random() < 0.2:
                made = status_incidents.create(
                    conn,
                    page_id,
                    title="Elevated errors",
                    severity=rng.choice(("MINOR", "MAJOR", "CRITICAL")),
                    message="Investigating",
                    affected_component_ids=rng.sample(ids, 2),
                )
                state.append(made.id)
            else:
                chosen = rng.choice(state)
                resolve = rng.random() < 0.3
                status_incidents.add_update(
                    conn,
                    chosen,
                    status="RESOLVED" if resolve else rng.choice(("IDENTIFIED", "MONITORING")),
                    message="An update for readers",
                )
                if resolve:
                    state.remove(chosen)
            conn.commit()

    return step


def _subscriber(counter: Iterator[int]) -> Callable[[Conn, World, random.Random, Tally], None]:
    def step(conn: Conn, world: World, rng: random.Random, tally: Tally) -> None:
        page_id, _slug, _token, ids = rng.choice(world.pages)
        n = next(counter)
        email = rng.random() < 0.5
        with _timed(tally, "subscribe"):
            made = subscribers.subscribe(
                conn,
                page_id,
                channel="EMAIL" if email else "WEBHOOK",
                destination=f"user{n}@example.com" if email else f"https://h.example.com/{n}",
                component_ids=rng.sample(ids, rng.randrange(0, 3)),
                notify_on=rng.sample(NOTIFY_ON_EVENTS, rng.randrange(1, 5)),
            )
        if made.verify_token is not None and rng.random() < 0.7:
            with _timed(tally, "verify"):
                subscribers.verify(conn, made.verify_token)
        if rng.random() < 0.2:
            with _timed(tally, "unsubscribe"):
                subscribers.unsubscribe_by_token(conn, made.unsubscribe_token)

    return step


def claim_round(conn: Conn, worker_id: str, hold_down: dt.timedelta, tally: Tally) -> int:
    """One outbox round on a connection with transactions: claim (commit), fan out, complete."""
    with _timed(tally, "outbox claim"):
        claimed = outbox.claim(
            conn, worker_id=worker_id, limit=50, hold_down=hold_down, lease=LEASE
        )
        conn.commit()
    for change in claimed:
        deliveries = sum(1 for _ in outbox.recipients(conn, change))
        with _timed(tally, "outbox complete"):
            completed = outbox.complete(conn, change, worker_id=worker_id)
            conn.commit()
        if not completed:
            raise AssertionError(f"{worker_id} lost its lease on {change.change_ids}")
        tally.done(change.change_ids, deliveries)
    return len(claimed)


def _outbox_worker(worker_id: str) -> Callable[[Conn, World, random.Random, Tally], None]:
    def step(conn: Conn, world: World, rng: random.Random, tally: Tally) -> None:
        if claim_round(conn, worker_id, HOLD_DOWN, tally) == 0:
            time.sleep(0.05)

    return step


def _run_worker(
    name: str,
    dsn: str,
    autocommit: bool,
    step: Callable[[Conn, World, random.Random, Tally], None],
    world: World,
    seed: int,
    tally: Tally,
    stop: threading.Event,
    start: threading.Barrier,
) -> None:
    rng = random.Random(seed)  # noqa: S311  (a reproducible workload, not a secret)
    try:
        with psycopg.connect(dsn, autocommit=autocommit) as conn:
            start.wait()
            while not stop.is_set():
                step(conn, world, rng, tally)
    except Exception as exc:  # any error fails the run (statusdb's, psycopg's, a bug)
        tally.fail(name, exc)
        stop.set()  # an error ends the run: the report says what it was


@attrs.frozen
class Report:
    seconds: float
    operations: dict[str, int]
    latency_ms: dict[str, tuple[float, float, float]]
    errors: list[str]
    status_changes: int
    completed_twice: list[str]
    never_completed: int
    pending_after_drain: int
    drift: list[Any]
    chain_breaks: list[Any]
    deliveries: int

    @property
    def ok(self) -> bool:
        return not (
            self.errors
            or self.completed_twice
            or self.never_completed
            or self.pending_after_drain
            or self.drift
            or self.chain_breaks
        )

    def per_second(self, kind: str) -> float:
        return self.operations.get(kind, 0) / self.seconds

    def table(self) -> str:
        lines = [
            f"{'operation':<22} {'ops':>8} {'ops/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        ]
        for kind in sorted(self.operations):
            p50, p95, p99 = self.latency_ms[kind]
            lines.append(
                f"{kind:<22} {self.operations[kind]:>8} {self.per_second(kind):>8.1f} "
                f"{p50:>8.2f} {p95:>8.2f} {p99:>8.2f}"
            )
        total = sum(self.operations.values())
        lines.append(f"{'all':<22} {total:>8} {total / self.seconds:>8.1f}")
        lines.append(
            f"status changes {self.status_changes}, completed exactly once "
            f"{self.status_changes - self.never_completed - len(self.completed_twice)}, "
            f"deliveries {self.deliveries}; drift {len(self.drift)}, chain breaks "
            f"{len(self.chain_breaks)}, errors {len(self.errors)}"
        )
        return "\n".join(lines)


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return at(0.5), at(0.95), at(0.99)


def run(dsn: str, *, seconds: float, shape: Shape = Shape(), seed: int = 0) -> Report:
    """Set up, run the mixed load for `seconds`, drain the outbox and check the invariants."""
    world = setup(dsn, shape)
    tally = Tally()
    stop = threading.Event()
    plan: list[tuple[str, bool, Callable[[Conn, World, random.Random, Tally], None]]] = []
    plan += [(f"reader {n}", True, _reader) for n in range(shape.readers)]
    plan += [(f"churner {n}", True, _churner([])) for n in range(shape.churners)]
    plan += [(f"updater {n}", False, _updater([])) for n in range(shape.updaters)]
    counter = iter(range(10**9))
    plan += [(f"subscriber {n}", True, _subscriber(counter)) for n in range(shape.subscribers)]
    plan += [
        (f"outbox {n}", False, _outbox_worker(f"outbox-{n}")) for n in range(shape.outbox_workers)
    ]
    start = threading.Barrier(len(plan) + 1)
    threads = [
        threading.Thread(
            target=_run_worker,
            args=(name, dsn, autocommit, step, world, seed * 1000 + n, tally, stop, start),
            name=name,
        )
        for n, (name, autocommit, step) in enumerate(plan)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began

    with psycopg.connect(dsn) as conn:
        while claim_round(conn, "drain", dt.timedelta(0), tally):
            pass
        pending = outbox.pending_count(conn)
        rows = conn.execute("SELECT id FROM status_change").fetchall()
        all_changes = {str(row[0]) for row in rows}
        drift = status.recompute(conn)
        breaks = status.chain_breaks(conn)
        conn.rollback()
    counts = collections.Counter(tally.completed)
    return Report(
        seconds=elapsed,
        operations={kind: len(samples) for kind, samples in tally.latencies.items()},
        latency_ms={kind: _percentiles(samples) for kind, samples in tally.latencies.items()},
        errors=tally.errors,
        status_changes=len(all_changes),
        completed_twice=sorted(i for i, n in counts.items() if n > 1),
        never_completed=len(all_changes - set(counts)),
        pending_after_drain=pending,
        drift=list(drift),
        chain_breaks=list(breaks),
        deliveries=tally.deliveries,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--dsn", help="a migrated database to use (superuser); default: own cluster"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON too")
    for field in attrs.fields(Shape):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=field.default)
    args = parser.parse_args(argv)
    shape = Shape(**{f.name: getattr(args, f.name) for f in attrs.fields(Shape)})
    with contextlib.ExitStack() as stack:
        dsn = args.dsn
        if dsn is None:
            from bench.cluster import bench_cluster  # the benchmark's own, tuned cluster

            dsn = stack.enter_context(bench_cluster())
        report = run(dsn, seconds=args.seconds, shape=shape)
    print(report.table())
    if args.json:
        print(json.dumps(attrs.asdict(report), default=str, indent=2))
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
