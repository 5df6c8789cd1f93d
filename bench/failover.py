"""The outage writers see in a failover: through statusdb's Router vs a plain psycopg loop.

    .venv/bin/python -m bench.failover                  # 3 tuned failovers, 1 with defaults
    .venv/bin/python -m bench.failover --tuned 5 --default 0 --json bench/failover.json

One pg_auto_failover formation (bench/formation.py) per detection setting. In each failover,
both kinds of writer run side by side against the same formation, so they see the same
promotion: two writers through a `statusdb.infra.routing.Router` on the multi-host conninfo
(`router.write(set_status)`), and two plain loops that keep one psycopg connection and, on any
error, reconnect with the same conninfo at once (`psycopg.connect` in a loop, 20 ms apart), each
committing the same `components.set_status` every 20 ms. Then the primary's keeper and
PostgreSQL are SIGKILLed; the node is restarted after the writers resumed, rejoins as a
standby, and the next failover kills the other node.

Measured per failover: `promotion` (kill to the monitor's wait_primary), and per kind of
writer the outage (the last commit before the kill to the first after it, the worst of its
writers) and `after promotion` (promotion to its first commit). `ratio` is the Router's outage
over the plain loop's in the same failover. Results print as a table; `--json` writes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench import formation as pgaf
from statusdb import components, pages, teams
from statusdb.domain.types import ComponentStatus
from statusdb.infra.routing import Router

STATUSES: tuple[ComponentStatus, ...] = (
    "DEGRADED_PERFORMANCE",
    "PARTIAL_OUTAGE",
    "MAJOR_OUTAGE",
    "OPERATIONAL",
)
PAUSE = 0.02
PER_KIND = 2


def _components(conninfo: str, count: int) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        team = teams.create(conn, name="bench")
        ids = []
        stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S%f")
        for n in range(count):
            page = pages.create(
                conn, team_id=team.id, name=f"F{n}", slug=f"fo-{stamp}-{n}", created_by_id="b"
            ).page
            ids.append(components.create(conn, page.id, name=f"C{n}").id)
        return ids


def _router_writer(router: Router, component_id: str) -> Callable[[], bool]:
    cycle = itertools.cycle(STATUSES)

    def write() -> bool:
        status = next(cycle)
        try:
            router.write(lambda c: components.set_status(c, component_id, status))
        except Exception:  # Retryable (or, before issue 22 is fixed, raw errors)
            return False
        return True

    return write


def _plain_writer(conninfo: str, component_id: str) -> Callable[[], bool]:
    cycle = itertools.cycle(STATUSES)
    conn: list[psycopg.Connection[Any]] = []

    def write() -> bool:
        status = next(cycle)
        try:
            if not conn or conn[0].closed or conn[0].broken:
                conn[:] = [psycopg.connect(conninfo)]
            components.set_status(conn[0], component_id, status)
            conn[0].commit()
        except Exception:  # any failure: reconnect on the next call
            if conn:
                conn[0].close()
                conn.clear()
            return False
        return True

    return write


def _run(write: Callable[[], bool], acks: list[float], stop: threading.Event) -> None:
    while not stop.is_set():
        if write():
            acks.append(time.monotonic())
        time.sleep(PAUSE)


def one_failover(f: pgaf.Formation, router: Router, ids: list[str]) -> dict[str, float]:
    conninfo = f.conninfo()
    kinds: dict[str, list[Callable[[], bool]]] = {
        "router": [_router_writer(router, c) for c in ids[:PER_KIND]],
        "plain": [_plain_writer(conninfo, c) for c in ids[PER_KIND:]],
    }
    acks: dict[str, list[list[float]]] = {k: [[] for _ in v] for k, v in kinds.items()}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_run, args=(w, acks[k][n], stop))
        for k, ws in kinds.items()
        for n, w in enumerate(ws)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        old = f.primary_name()
        assert old is not None
        new = "node2" if old == "node1" else "node1"
        killed = time.monotonic()
        f.kill_node(old)
        f.wait("the promotion", lambda: f.primary_name() == new, 300)
        promoted = time.monotonic()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(any(t > promoted for t in a) for per in acks.values() for a in per):
                break
            time.sleep(0.1)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    result = {"promotion": promoted - killed}
    for kind, per in acks.items():
        outages = []
        afters = []
        for a in per:
            before = max(t for t in a if t < killed)
            first = min(t for t in a if t > killed)
            outages.append(first - before)
            afters.append(first - promoted)
        result[f"{kind}_outage"] = max(outages)
        result[f"{kind}_after_promotion"] = max(afters)
    result["ratio"] = result["router_outage"] / result["plain_outage"]
    f.restart_node(old)
    f.wait_states({old: "secondary", new: "primary"}, timeout=300)
    return result


def run(tuned: bool, count: int) -> list[dict[str, float]]:
    if count == 0:
        return []
    with pgaf.running(tuned=tuned) as f:
        ids = _components(f.conninfo(), 2 * PER_KIND)
        with Router(f.conninfo(), max_size=PER_KIND + 2) as router:
            results = []
            for n in range(count):
                result = one_failover(f, router, ids)
                print(f"{'tuned' if tuned else 'default'} #{n + 1}: {_fmt(result)}", flush=True)
                results.append(result)
            return results


def _fmt(result: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in result.items())


def _summary(name: str, results: list[dict[str, float]]) -> str:
    if not results:
        return ""
    lines = [f"{name} ({len(results)} failovers): median [min - max]"]
    for key in results[0]:
        values = [r[key] for r in results]
        lines.append(
            f"  {key:24} {statistics.median(values):6.2f} [{min(values):.2f} - {max(values):.2f}]"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tuned", type=int, default=3, help="failovers with tuned detection")
    parser.add_argument("--default", type=int, default=1, help="failovers with the defaults")
    parser.add_argument("--json", type=Path, help="write the results there")
    args = parser.parse_args(argv)
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # its reconnect warnings: noise
    if pgaf.find_pg_autoctl() is None:
        print("pg_auto_failover is not installed (postgresql-15-auto-failover)", file=sys.stderr)
        return 1
    results = {"tuned": run(True, args.tuned), "default": run(False, args.default)}
    for name, rs in results.items():
        if rs:
            print(_summary(name, rs))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
