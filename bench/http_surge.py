"""HTTP surge: many clients reload a page's Statuspage summary.json through the HTTP app.

`python -m bench.http_surge` (issue 24; results in bench/README.md, "HTTP surge"):

* starts a cluster of its own (`bench.cluster.bench_cluster`: the benchmark's server settings),
  builds one busy public page (50 components in 5 groups, 5 open status incidents with 5
  updates each, 50 resolved ones, 3 upcoming and 50 completed maintenance windows);
* **write cost** of migration 0034 (it must be none: the Statuspage history is read when a
  document is composed, never rendered by writers): committed writes that re-render the page
  (a component's manual status, an open incident's message, a completed window's status back
  to IN_PROGRESS and again COMPLETED, each toggled) on two copies
  of the page in one cluster: this branch's schema and main's (the database cloned, 0034 rolled
  back), alternating write by write; p50 / p99 and the p50 ratio of each block;
* **not-modified reads** of summary.json (no stamp) and of incidents.json and
  scheduled-maintenances.json (one bounded index scan for their history stamp), `--reads`
  calls each, and a tenth as many full compositions of each;
* **surge**: `statusdb serve` (uvicorn, one process, `--pool-size`) in a subprocess, and
  `clients` concurrent keep-alive clients (asyncio + httpx, in `processes` processes) hitting
  ``/pages/<slug>/api/v2/summary.json`` without and with ``If-None-Match`` (the ETag of the
  last answer), alternating, `seconds` / 2 per run, twice each: requests per second, p50 / p99
  latency, status counts; once with the app's body cache (a request without If-None-Match is
  then a conditional read too, answered with the cached body) and once without it
  (`--cache-entries 0`: the database composes every 200). The clients share the machine's
  cores with the server and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.cluster import bench_cluster
from bench.timing import percentile
from statusdb import groups, maintenance, pages, status_incidents, teams
from statusdb.infra import migrations
from statusdb.pages import NewComponent

SLUG = "surge-http"


def build(dsn: str) -> dict[str, str]:
    """The busy page; returns a component's, an open incident's and a window's id to toggle."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        team = teams.create(conn, name="HTTP surge")
        created = pages.create(
            conn,
            team_id=team.id,
            name="Surge",
            slug=SLUG,
            created_by_id="bench",
            is_public=True,
            components=[NewComponent(name=f"Component {k:02d}") for k in range(50)],
        )
        page_id = created.page.id
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM status_page_component WHERE status_page_id = %s ORDER BY name",
                (page_id,),
            )
        ]
        for g in range(5):
            group = groups.create(conn, page_id, name=f"Group {g}")
            for cid in ids[g * 10 : g * 10 + 10]:
                groups.assign(conn, cid, group.id)
        for k in range(55):
            incident = status_incidents.create(
                conn,
                page_id,
                title=f"Incident {k}",
                severity="MAJOR",
                message="Investigating",
                affected_component_ids=ids[k % 50 : k % 50 + 3],
            )
            for step in ("IDENTIFIED", "MONITORING", "MONITORING", "MONITORING"):
                status_incidents.add_update(conn, incident.id, status=step, message=step.title())
            if k >= 5:
                status_incidents.add_update(conn, incident.id, status="RESOLVED", message="Done")
        now = dt.datetime.now(dt.UTC)
        for k in range(53):
            start = now + dt.timedelta(days=1 + k) if k < 3 else now - dt.timedelta(days=k)
            window = maintenance.create(
                conn,
                page_id,
                title=f"Window {k}",
                start_time=start,
                end_time=start + dt.timedelta(hours=2),
                component_ids=ids[:5],
                created_by_id="bench",
            )
            if k >= 3:
                conn.execute(
                    "UPDATE maintenance_window SET status = 'COMPLETED' WHERE id = %s",
                    (window.id,),
                )
        open_incident = conn.execute(
            "SELECT id FROM status_incident WHERE status_page_id = %s AND status <> 'RESOLVED'"
            " ORDER BY id LIMIT 1",
            (page_id,),
        ).fetchone()
        assert open_incident is not None
        completed = conn.execute(
            "SELECT id FROM maintenance_window WHERE status_page_id = %s AND status = 'COMPLETED'"
            " ORDER BY start_time DESC LIMIT 1",
            (page_id,),
        ).fetchone()
        assert completed is not None
        return {"component": ids[-1], "incident": open_incident[0], "window": completed[0]}


_WRITES = {
    "component": (
        "UPDATE status_page_component SET manual_status = %s WHERE id = %s",
        ("DEGRADED_PERFORMANCE", "OPERATIONAL"),
    ),
    "incident": ("UPDATE status_incident SET message = %s WHERE id = %s", ("Looking", "Still")),
    # A window completed and running again: in and out of 0034's partial index.
    "window": (
        "UPDATE maintenance_window SET status = %s WHERE id = %s",
        ("IN_PROGRESS", "COMPLETED"),
    ),
}


def _writes(dsn: str, kind: str, row_id: str, n: int) -> list[float]:
    samples = []
    sql, values = _WRITES[kind]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for k in range(n):
            started = time.perf_counter()
            conn.execute(sql, (values[k % 2], row_id))
            samples.append(time.perf_counter() - started)
    return samples


def write_cost(dsn: str, ids: dict[str, str], n: int, rounds: int) -> dict[str, Any]:
    """p50/p99 of committed re-rendering writes on two copies of the page: this branch's schema
    and main's (the same database cloned, 0034 rolled back), alternating write by write (ABBA
    order), so that the machine's load moves both alike; `rounds` blocks of `n` pairs."""
    main_dsn = make_conninfo(dsn, dbname="bench_main")
    source = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE bench_main TEMPLATE "{source}"')
    migrations.rollback(main_dsn, 1)
    result: dict[str, Any] = {}
    with (
        psycopg.connect(dsn, autocommit=True) as branch,
        psycopg.connect(main_dsn, autocommit=True) as main,
    ):
        for kind, row_id in ids.items():
            sql, values = _WRITES[kind]
            samples: dict[str, list[float]] = {"branch": [], "main": []}
            for k in range(20):  # warm-up
                for conn in (branch, main):
                    conn.execute(sql, (values[k % 2], row_id))
            for _ in range(rounds):
                block: dict[str, list[float]] = {"branch": [], "main": []}
                for k in range(n):
                    order = (("branch", branch), ("main", main))
                    for name, conn in order if k % 2 == 0 else order[::-1]:
                        started = time.perf_counter()
                        conn.execute(sql, (values[k % 2], row_id))
                        block[name].append(time.perf_counter() - started)
                ratio = percentile(block["branch"], 0.5) / percentile(block["main"], 0.5)
                result.setdefault(f"{kind}_p50_ratio_per_block", []).append(round(ratio, 3))
                for name in block:
                    samples[name] += block[name]
            for name in samples:
                for q in (0.5, 0.99):
                    result[f"{kind}_{name}_p{int(q * 100)}_ms"] = round(
                        percentile(samples[name], q) * 1000, 3
                    )
            result[f"{kind}_p50_ratio"] = round(
                result[f"{kind}_branch_p50_ms"] / result[f"{kind}_main_p50_ms"], 3
            )
    result["writes_each"] = n * rounds
    return result


def not_modified_reads(dsn: str, n: int) -> dict[str, Any]:
    """In-database time of a not-modified read of three documents, rounds interleaved."""
    from statusdb.formats import statuspage

    names = ("summary", "incidents", "scheduled-maintenances")
    samples: dict[str, list[float]] = {name: [] for name in names}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tags = {}
        for name in names:
            answer = statuspage.document(conn, SLUG, name)
            assert isinstance(answer, statuspage.Document)
            tags[name] = answer.version_text
        for _ in range(n):
            for name in names:
                started = time.perf_counter()
                got = statuspage.document(conn, SLUG, name, if_version=tags[name])
                samples[name].append(time.perf_counter() - started)
                assert isinstance(got, statuspage.NotModified)
        composed: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(max(1, n // 10)):
            for name in names:
                started = time.perf_counter()
                statuspage.document(conn, SLUG, name)
                composed[name].append(time.perf_counter() - started)
    result = {
        f"{name}_not_modified_p50_us": round(percentile(samples[name], 0.5) * 1e6, 1)
        for name in names
    }
    for name in names:
        result[f"{name}_composed_p50_ms"] = round(percentile(composed[name], 0.5) * 1000, 2)
    return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _client_loop(
    url: str, deadline: float, conditional: bool, samples: list[float], statuses: dict[int, int]
) -> None:
    etag: str | None = None
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            headers = {"If-None-Match": etag} if conditional and etag else {}
            started = time.perf_counter()
            answer = await client.get(url, headers=headers)
            samples.append(time.perf_counter() - started)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            etag = answer.headers.get("etag", etag)


def _process(url: str, clients: int, seconds: float, conditional: bool, out: Any) -> None:
    samples: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_client_loop(url, deadline, conditional, samples, statuses) for _ in range(clients))
        )

    asyncio.run(main())
    out.put((samples, statuses))


def surge(
    url: str, clients: int, processes: int, seconds: float, conditional: bool
) -> dict[str, Any]:
    queue: Any = multiprocessing.get_context("spawn").Queue()
    workers = [
        multiprocessing.get_context("spawn").Process(
            target=_process, args=(url, clients // processes, seconds, conditional, queue)
        )
        for _ in range(processes)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    samples: list[float] = []
    statuses: dict[int, int] = {}
    for _ in workers:
        got, counts = queue.get()
        samples += got
        for code, count in counts.items():
            statuses[code] = statuses.get(code, 0) + count
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return {
        "conditional": conditional,
        "clients": clients,
        "requests": len(samples),
        "requests_per_s": round(len(samples) / seconds, 1),
        "p50_ms": round(percentile(samples, 0.5) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": round(elapsed, 1),
    }


def _serve_and_surge(dsn: str, args: argparse.Namespace, cache_entries: int) -> list[Any]:
    """`statusdb serve` with `cache_entries`, and the surge without and with If-None-Match,
    alternating (twice each), so that both see the same machine load."""
    port = _free_port()
    # The app as `statusdb serve` runs it (our own interpreter and arguments).
    server = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "statusdb.tooling.cli",
            "serve",
            "--dsn",
            dsn,
            "--port",
            str(port),
            "--pool-size",
            str(args.pool_size),
            "--cache-entries",
            str(cache_entries),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/pages/{SLUG}/api/v2/summary.json"
        size = 0
        for _ in range(100):
            try:
                size = len(httpx.get(url).content)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        runs = []
        for conditional in (False, True, False, True):
            run = surge(url, args.clients, args.processes, args.seconds / 2, conditional)
            runs.append({"app_cache_entries": cache_entries, "body_bytes": size, **run})
        return runs
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_surge")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--writes", type=int, default=200, help="write pairs per block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks of alternated writes")
    parser.add_argument("--reads", type=int, default=300, help="not-modified reads each")
    parser.add_argument("--no-surge", action="store_true", help="the database parts only")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    with bench_cluster() as dsn:
        ids = build(dsn)
        results["write_cost"] = write_cost(dsn, ids, args.writes, args.rounds)
        results["not_modified"] = not_modified_reads(dsn, args.reads)
        results["surge"] = []
        if not args.no_surge:
            for cache_entries in (1024, 0):
                results["surge"] += _serve_and_surge(dsn, args, cache_entries)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
