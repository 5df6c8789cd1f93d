"""`statusdb worker` throughput: deliveries per second with bookkeeping, 1, 2 and 4 processes.

    python -m bench.worker [--dsn DSN] [--events 20] [--subscribers 2500] [--repeat 3]

Each run publishes `events` page-wide status incidents on a page with `subscribers` webhook
subscribers (events x subscribers deliveries), then starts N `statusdb worker --once`
processes with the no-op async deliverer (`statusdb.workers.deliverers.console:anoop`),
bookkeeping on, `--claim-limit 1` (one subject per round, so that the processes share the
events) and waits for all of them to exit. Reported per N: deliveries/s over the wall time from
the first claiming round's start to the last one's end over all processes (from each worker's
`worker.stopped` log line: interpreter start-up and the last empty round are not delivery
work), as median, min and max over `repeat` runs, the same over the whole wall time from the
spawn to the last exit (`median_with_startup`), and the check that every (event, subscriber)
was recorded exactly once.
Without --dsn it runs on a fresh cluster of its own (`bench.cluster.bench_cluster`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from statusdb import pages, status_incidents, teams
from statusdb.domain.types import NOTIFY_ON_EVENTS

NOOP = "statusdb.workers.deliverers.console:anoop"


def _command() -> list[str]:
    script = Path(sys.executable).parent / "statusdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "statusdb.tooling.cli"]


def make_page(dsn: str, subscribers: int) -> str:
    """A page with `subscribers` subscribers wanting everything; its id."""
    slug = f"wb{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn) as conn:
        team = teams.create(conn, name=f"worker bench {slug}")
        page = pages.create(
            conn,
            team_id=team.id,
            name="Worker bench",
            slug=slug,
            created_by_id="bench",
            is_public=True,
        ).page
        conn.execute(
            """INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,
                                              notify_on, is_verified, is_active)
               SELECT %s, 'WEBHOOK', 'https://hooks.example.com/' || %s || '/' || g, '{}', %s,
                      true, true
               FROM generate_series(1, %s) AS g""",
            (page.id, slug, list(NOTIFY_ON_EVENTS), subscribers),
        )
        conn.commit()
    return page.id


def publish(dsn: str, page_id: str, events: int) -> list[str]:
    """`events` status incidents on the page (one incident_created event each); their ids."""
    with psycopg.connect(dsn) as conn:
        for n in range(events):
            status_incidents.create(
                conn, page_id, title=f"bench {n}", severity="MINOR", message="m"
            )
        conn.commit()
        rows = conn.execute(
            "SELECT id FROM notification_event WHERE status_page_id = %s AND notified_at IS NULL",
            (page_id,),
        ).fetchall()
    return [r[0] for r in rows]


def run_workers(dsn: str, processes: int, extra: Sequence[str] = ()) -> tuple[float, float]:
    """Start `processes` `--once` workers, wait for all; (wall time from the spawn to the last
    exit, and the busy span: the first claiming round's start to the last one's end, over all
    processes, from their `worker.stopped` logs) in seconds."""
    env = {k: v for k, v in os.environ.items() if k != "STATUSDB_DSN"}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(  # noqa: S603  (our own console script, fixed arguments)
            [
                *_command(),
                "worker",
                "--dsn",
                dsn,
                "--deliver",
                NOOP,
                "--once",
                "--hold-down",
                "0",
                "--claim-limit",
                "1",
                "--concurrency",
                "100",
                "--batch",
                "1000",
                "--log-format",
                "json",
                *extra,
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    errors = []
    spans: list[tuple[float, float]] = []
    for proc in procs:
        _, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            errors.append(err)
        for line in err.splitlines():
            record = json.loads(line)
            if record.get("event") == "worker.stopped" and record.get("busy_from") is not None:
                spans.append((record["busy_from"], record["busy_to"]))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"a worker failed: {errors[0]}")
    busy = max(to for _, to in spans) - min(fr for fr, _ in spans) if spans else elapsed
    return elapsed, busy


def _server_cpu_s(dsn: str) -> float | None:
    """CPU seconds of the server's exited children (backends), read from the postmaster's
    /proc entry (cutime + cstime): None when the server is not a local process we can read."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        pid = int(Path(row[0], "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, psycopg.Error, AssertionError):
        return None


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_exactly_once(dsn: str, event_ids: Sequence[str], subscribers: int) -> None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT count(*), count(DISTINCT (notification_key, subscriber_id))
               FROM delivery_attempt WHERE notification_key = ANY(%s) AND outcome = 'DELIVERED'""",
            (list(event_ids),),
        ).fetchone()
    assert row is not None
    expected = len(event_ids) * subscribers
    if row[0] != expected or row[1] != expected:
        raise AssertionError(f"recorded {row[0]} ({row[1]} distinct), expected {expected}")


def measure(
    dsn: str, *, events: int, subscribers: int, repeat: int, processes: Sequence[int]
) -> dict[str, Any]:
    page_id = make_page(dsn, subscribers)
    results: dict[str, Any] = {
        "events_per_run": events,
        "subscribers": subscribers,
        "deliveries_per_run": events * subscribers,
        "processes": {},
    }
    for n in processes:
        rates, walls, worker_cpu, server_cpu = [], [], [], []
        for _ in range(repeat):
            ids = publish(dsn, page_id, events)
            cpu_before, server_before = _children_cpu_s(), _server_cpu_s(dsn)
            elapsed, busy = run_workers(dsn, n)
            time.sleep(0.5)  # the workers' backends exit and are reaped
            cpu_after, server_after = _children_cpu_s(), _server_cpu_s(dsn)
            check_exactly_once(dsn, ids, subscribers)
            rates.append(events * subscribers / max(busy, 1e-3))
            walls.append(events * subscribers / elapsed)
            worker_cpu.append((cpu_after - cpu_before) * 1e6 / (events * subscribers))
            if server_before is not None and server_after is not None:
                server_cpu.append((server_after - server_before) * 1e6 / (events * subscribers))
        results["processes"][str(n)] = {
            "median": round(statistics.median(rates)),
            "min": round(min(rates)),
            "max": round(max(rates)),
            "median_with_startup": round(statistics.median(walls)),
            # CPU microseconds per delivery: the worker processes (start-up included) and the
            # server's backends serving them.
            "worker_cpu_us": round(statistics.median(worker_cpu)),
            "server_cpu_us": round(statistics.median(server_cpu)) if server_cpu else None,
        }
        print(f"{n} process(es): {results['processes'][str(n)]} deliveries/s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--dsn", help="a migrated database (superuser); default: a fresh cluster")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    kwargs = {
        "events": args.events,
        "subscribers": args.subscribers,
        "repeat": args.repeat,
        "processes": counts,
    }
    if args.dsn:
        report = measure(args.dsn, **kwargs)
    else:
        from bench.cluster import bench_cluster

        with bench_cluster() as dsn:
            report = measure(dsn, **kwargs)
    report["cpus"] = os.cpu_count()
    report["load_average_at_end"] = list(os.getloadavg())
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
