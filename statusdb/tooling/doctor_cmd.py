"""`statusdb doctor`: the health report of statusdb.doctor as a command and an exit code.

    statusdb doctor --dsn ... [--json] [--check NAME ...] [--replica-dsn DSN]
                    [--probe] [--sample-size N] [--statement-timeout 5s]
                    [--scheduler-lag-warn 2m] [--scheduler-lag-fail 5m] ...

Exit status: 0 every check OK, 1 some WARN, 2 some FAIL (a database that cannot be reached
is a FAIL: check `connect`). `--probe` exits 0 on WARN (for a Kubernetes probe that should
only fail on FAIL). Usage errors exit 2 as well: a misconfigured probe fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from statusdb.tooling.scheduler_cmd import duration

# (option, Thresholds field, kind, help)
_THRESHOLDS: tuple[tuple[str, str, str, str], ...] = (
    ("--statement-timeout", "statement_timeout", "duration", "bound of each check"),
    ("--sample-size", "sample_size", "int", "components and groups sampled (pages: a tenth)"),
    ("--backlog-warn", "backlog_warn", "int", "pending changes + events that WARN"),
    ("--backlog-fail", "backlog_fail", "int", "pending changes + events that FAIL"),
    ("--backlog-age-warn", "backlog_age_warn", "duration", "oldest pending age that WARNs"),
    ("--backlog-age-fail", "backlog_age_fail", "duration", "oldest pending age that FAILs"),
    ("--lease-grace", "lease_grace", "duration", "how long past expiry a lease is stuck"),
    ("--recent", "recent", "duration", "window of the failure and deactivation counts"),
    ("--delivery-failures-warn", "delivery_failures_warn", "int", "failed attempts that WARN"),
    ("--delivery-failures-fail", "delivery_failures_fail", "int", "failed attempts that FAIL"),
    ("--deactivated-warn", "deactivated_warn", "int", "deactivated subscribers that WARN"),
    ("--deactivated-fail", "deactivated_fail", "int", "deactivated subscribers that FAIL"),
    ("--scheduler-lag-warn", "scheduler_lag_warn", "duration", "scheduler lag that WARNs"),
    ("--scheduler-lag-fail", "scheduler_lag_fail", "duration", "scheduler lag that FAILs"),
    ("--replica-lag-warn", "replica_lag_warn", "duration", "replica lag that WARNs"),
    ("--replica-lag-fail", "replica_lag_fail", "duration", "replica lag that FAILs"),
)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `statusdb doctor` in the CLI's subcommands."""
    from statusdb import doctor

    parser: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        parents=[common],
        help="check the database's health (exit 0 OK, 1 WARN, 2 FAIL)",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--check",
        action="append",
        choices=doctor.CHECKS,
        metavar="NAME",
        help=f"run only this check (repeatable): {', '.join(doctor.CHECKS)}",
    )
    parser.add_argument("--replica-dsn", default=None, help="a replica to measure replica_lag on")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="exit 0 unless a check FAILs (WARN passes): for liveness/readiness probes",
    )
    defaults = doctor.Thresholds()
    for option, field, kind, text in _THRESHOLDS:
        default = getattr(defaults, field)
        shown = default.total_seconds() if isinstance(default, dt.timedelta) else default
        parser.add_argument(
            option,
            dest=f"threshold_{field}",
            type=duration if kind == "duration" else int,
            default=None,
            help=f"{text} (default {shown}{' s' if kind == 'duration' else ''})",
        )


def _thresholds(args: argparse.Namespace) -> Any:
    from statusdb import doctor

    given = {
        field: getattr(args, f"threshold_{field}")
        for _, field, _, _ in _THRESHOLDS
        if getattr(args, f"threshold_{field}") is not None
    }
    try:
        return doctor.Thresholds(**given)
    except ValueError as exc:
        print(f"statusdb: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _print(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return
    for item in report.checks:
        print(f"{item.status:<4}  {item.name:<24} {item.detail}")
    print(f"{report.status}")


def main(args: argparse.Namespace, dsn: str) -> None:
    """Run the checks, print the report, exit with its code."""
    import psycopg

    from statusdb import doctor
    from statusdb.errors import StatusdbError

    limits = _thresholds(args)
    replica = None
    try:
        with psycopg.connect(dsn, application_name="statusdb doctor") as conn:
            if args.replica_dsn:
                replica = psycopg.connect(args.replica_dsn, application_name="statusdb doctor")
            report = doctor.check(conn, thresholds=limits, replica=replica, only=args.check)
    except (psycopg.Error, StatusdbError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        report = doctor.DoctorReport(
            (doctor.Check("connect", "FAIL", f"cannot check the database: {detail}"),)
        )
    finally:
        if replica is not None:
            replica.close()
    _print(report, args.json)
    code = report.exit_code
    if args.probe and report.status == "WARN":
        code = 0
    raise SystemExit(code)
