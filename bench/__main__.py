"""Run the benchmark: `python -m bench --scale small|large` (see bench/README.md)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import cases, cluster, dataset, trigger_costs
from bench.timing import CaseResult

APP_LOGIN = "statusdb_bench_app"
RESULTS = Path(__file__).with_name("results.json")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 2**20, 1)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "load_average_at_start": _loadavg(),
    }


def _versions(admin_dsn: str) -> dict[str, str]:
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    versions = {"python": platform.python_version(), "postgresql": row[0] if row else "?"}
    for package in ("statusdb", "psycopg", "psycopg-binary", "psycopg-pool", "attrs", "sqlalchemy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions["psycopg_impl"] = psycopg.pq.__impl__
    return versions


def _app_dsn(admin_dsn: str) -> str:
    """Create the application's login (a member of statusdb_app); its conninfo."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_LOGIN,)).fetchone()
        if exists is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE statusdb_app").format(
                    sql.Identifier(APP_LOGIN)
                )
            )
    params = conninfo_to_dict(admin_dsn)
    params["user"] = APP_LOGIN
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _table(results: list[CaseResult]) -> str:
    header = f"{'case':<72} {'p50 us':>10} {'p99 us':>10} {'n':>5} {'ratio':>8}  {'target':<22} met"
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append(
            f"{r.name[:72]:<72} {r.p50_us:>10.0f} {r.p99_us:>10.0f} {r.n:>5} {ratio:>8}  "
            f"{r.target[:22]:<22} {met}"
        )
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The results of `report` (a results.json) as a Markdown table, for bench/README.md."""
    lines = [
        "| case | p50 µs | p99 µs | n | ratio | baseline (p50 µs) | target | met |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for case in report["cases"]:
        ratio = "" if case["ratio"] is None else f"{case['ratio']:.2f}"
        met = {None: "", True: "yes", False: "**no**"}[case["met"]]
        base = case["baseline"]
        if case["baseline_p50_us"] is not None:
            base = f"{base} ({case['baseline_p50_us']:.0f})"
        lines.append(
            f"| {case['name']} | {case['p50_us']:.0f} | {case['p99_us']:.0f} | {case['n']} "
            f"| {ratio} | {base} | {case['target']} | {met} |"
        )
    for case in report["cases"]:
        if "costs" in case["notes"]:  # the trigger-costs case: its table below the results
            lines += ["", f"{case['name']}:", "", trigger_costs.cost_table(case)]
    return "\n".join(lines)


@contextlib.contextmanager
def _database(args: argparse.Namespace, scale: dataset.Scale) -> Iterator[str]:
    if args.dsn:
        yield args.dsn
        return
    with cluster.bench_cluster() as admin_dsn:
        log(f"loading the {scale.name} dataset")
        dataset.load(admin_dsn, scale, log)
        yield admin_dsn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=sorted(dataset.SCALES), default="small")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--case", action="append", default=[], help="run only cases whose name contains this"
    )
    parser.add_argument(
        "--dsn", help="use this already loaded database (superuser) instead of a fresh cluster"
    )
    parser.add_argument(
        "--markdown", type=Path, help="print this results file as a Markdown table and exit"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text(encoding="utf-8"))))
        return 0
    scale = dataset.SCALES[args.scale]
    started = time.monotonic()
    machine = _machine()
    results: list[CaseResult] = []
    failures: list[str] = []
    with _database(args, scale) as admin_dsn:
        versions = _versions(admin_dsn)
        ctx = cases.Context(
            dsn=_app_dsn(admin_dsn),
            admin_dsn=admin_dsn,
            scale=scale,
            log=log,
            **cases.landmarks(admin_dsn),
        )
        for name, case in cases.CASES:
            if args.case and not any(wanted in name for wanted in args.case):
                continue
            load = _loadavg()
            log(f"case: {name} (load average {load})")
            case_started = time.monotonic()
            try:
                outcome = case(ctx)
            except Exception as exc:  # report it and go on with the other cases
                log(f"  FAILED: {type(exc).__name__}: {exc}")
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            for result in outcome:
                result.notes["load_average_at_case_start"] = load
                results.append(result)
                log(_table([result]).splitlines()[-1])
            log(f"  {time.monotonic() - case_started:.0f} s")
    machine["load_average_at_end"] = _loadavg()
    report = {
        "machine": machine,
        "versions": versions,
        "scale": scale.describe(),
        "server_settings": dict(cluster.SERVER_SETTINGS),
        "seconds": round(time.monotonic() - started),
        "cases": [r.as_json() for r in results],
        "failures": failures,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(_table(results))
    print(f"\n{len(results)} results in {args.output} ({report['seconds']} s)")
    for failure in failures:
        print(f"case failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
