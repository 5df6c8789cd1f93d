"""What a full `migrate` and `rollback` cost: wall, CPU and server sessions per run.

    python -m bench.migrate [--repeat 5]

On a fresh cluster of its own (`bench.cluster.bench_cluster`), an empty database is migrated
to the latest schema and rolled back to nothing `repeat` times. Reported per direction, as
median, min and max: the wall time; this process's CPU (yoyo, the statement split, psycopg);
the machine's busy CPU over the run (this process plus the server's backends, so it carries
whatever else the machine does: compare runs side by side); and the server sessions the run
opened (`pg_stat_database.sessions`, counted after each run's backends have exited).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from bench.cluster import bench_cluster
from statusdb.infra import migrations

EMPTY_DB = "statusdb_bench_migrate"


def _busy_seconds() -> float:
    """Machine-wide CPU seconds spent so far (user, nice, system), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()[1:4]
    return sum(int(field) for field in fields) / os.sysconf("SC_CLK_TCK")


def _sessions(admin: psycopg.Connection[Any]) -> int:
    time.sleep(0.5)  # a backend's session is counted when it exits
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT sessions FROM pg_stat_database WHERE datname = %s", (EMPTY_DB,)
    ).fetchone()
    return int(row[0]) if row else 0


def _measure(run: Callable[[], object], admin: psycopg.Connection[Any]) -> dict[str, float]:
    sessions = _sessions(admin)
    busy, cpu, wall = _busy_seconds(), time.process_time(), time.perf_counter()
    run()
    wall, cpu, busy = (
        time.perf_counter() - wall,
        time.process_time() - cpu,
        _busy_seconds() - busy,
    )
    return {
        "wall_s": wall,
        "client_cpu_s": cpu,
        "busy_cpu_s": busy,
        "sessions": _sessions(admin) - sessions,
    }


def _summary(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        key: {
            "median": statistics.median(s[key] for s in samples),
            "min": min(s[key] for s in samples),
            "max": max(s[key] for s in samples),
        }
        for key in samples[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.migrate", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with bench_cluster() as dsn:
        admin = psycopg.connect(dsn, autocommit=True)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMPTY_DB)))
        target = psycopg.conninfo.make_conninfo(dsn, dbname=EMPTY_DB)
        applied: list[dict[str, float]] = []
        rolled_back: list[dict[str, float]] = []
        for _ in range(args.repeat):
            applied.append(_measure(lambda: migrations.apply(target), admin))
            rolled_back.append(_measure(lambda: migrations.rollback(target), admin))
        admin.close()
    report = {"migrate": _summary(applied), "rollback": _summary(rolled_back)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
