"""Health checks for operators: `check(conn)` returns a typed report (`statusdb doctor`).

Each check runs in a savepoint of its own under a `statement_timeout`
(`Thresholds.statement_timeout`), so the whole report is bounded in time on any database: a
check that does not finish in time is reported as WARN (`timed out`), never hangs the probe.
Every check is indexed or sampled:

* `migrations`: the applied migrations (yoyo's table) against the ones this release ships;
  FAIL when one is pending, WARN when the database has some this release does not know.
* `component_statuses`, `group_statuses`, `status_chain`, `snapshots`: **sampled**
  (`statusdb_doctor_sample_v1`, migration 0032): up to `sample_size` components and groups
  from a random point of the primary key (so, on a database smaller than the sample,
  everything), a tenth as many pages, checked against a derivation (or rendering) from
  scratch; the tail of each sampled component's status-change chain. FAIL on any drift. The
  full passes are `status.recompute`, `groups.recompute`, `status.chain_breaks` and
  `views.recompute_snapshots`.
* `outbox_backlog`: pending status changes and notification events (partial indexes), counts
  capped at `backlog_cap`, and the age of the oldest.
* `stuck_leases`: leases past their expiry by more than `lease_grace` (a worker died and no
  other took its work over): FAIL.
* `delivery_failures`, `subscribers_deactivated`: counts over the last `recent`
  (partial indexes of 0032).
* `scheduler_lag`: the age of the last committed scheduler step (`scheduler_heartbeat`);
  WARN when no scheduler ever recorded one. `maintenance_overdue`: windows whose transition is
  due for longer than the lag's warning threshold (what a stopped scheduler, or a pg_cron-only
  deployment with recurring windows, leaves behind).
* `replica_lag`: on a given replica connection, the time since its last replayed commit;
  otherwise `pg_stat_replication` on the primary (replay_lag is visible to superusers and
  members of pg_monitor only; OK "not visible" otherwise).

Statuses: OK, WARN, FAIL; the report's status is the worst. `exit_code`: 0 OK, 1 WARN, 2 FAIL.
`check` only reads and never commits (it runs in a savepoint of the caller's transaction, or
in a transaction of its own that it ends); run it as statusdb_app (or the owner) without a
team scope (`tenancy.set_team`): its samples cover every team.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

import attrs
import psycopg
from psycopg import errors as pg_errors

from statusdb.db import queries, resources
from statusdb.errors import StatusdbError, translate

Status = Literal["OK", "WARN", "FAIL"]
_RANK: Final = {"OK": 0, "WARN": 1, "FAIL": 2}
EXIT_CODES: Final = {"OK": 0, "WARN": 1, "FAIL": 2}

#: Every check, in the order reported.
CHECKS: Final = (
    "migrations",
    "component_statuses",
    "group_statuses",
    "status_chain",
    "snapshots",
    "outbox_backlog",
    "stuck_leases",
    "delivery_failures",
    "subscribers_deactivated",
    "scheduler_lag",
    "maintenance_overdue",
    "replica_lag",
)
_SAMPLED: Final = ("component_statuses", "group_statuses", "status_chain", "snapshots")
_MAX_PROBLEMS: Final = 20


@attrs.frozen
class Thresholds:
    """Where each check turns WARN and FAIL (None: never). Durations as timedelta."""

    statement_timeout: dt.timedelta = dt.timedelta(seconds=5)
    sample_size: int = 1000
    backlog_cap: int = 100_000
    backlog_warn: int | None = 1_000
    backlog_fail: int | None = 10_000
    backlog_age_warn: dt.timedelta | None = dt.timedelta(minutes=5)
    backlog_age_fail: dt.timedelta | None = dt.timedelta(minutes=30)
    lease_grace: dt.timedelta = dt.timedelta(minutes=1)
    recent: dt.timedelta = dt.timedelta(hours=1)
    delivery_failures_warn: int | None = 10
    delivery_failures_fail: int | None = 100
    deactivated_warn: int | None = 10
    deactivated_fail: int | None = None
    scheduler_lag_warn: dt.timedelta | None = dt.timedelta(minutes=2)
    scheduler_lag_fail: dt.timedelta | None = dt.timedelta(minutes=5)
    replica_lag_warn: dt.timedelta | None = dt.timedelta(seconds=30)
    replica_lag_fail: dt.timedelta | None = dt.timedelta(minutes=5)

    def __attrs_post_init__(self) -> None:
        if self.statement_timeout <= dt.timedelta(0):
            raise ValueError("statement_timeout must be positive")
        if not 1 <= self.sample_size <= 10_000:
            raise ValueError("sample_size must be from 1 to 10000")
        if self.backlog_cap < 1:
            raise ValueError("backlog_cap must be at least 1")


@attrs.frozen
class Check:
    """One check's outcome: `value` is its measure (a count, seconds), `detail` says it."""

    name: str
    status: Status
    detail: str
    value: float | None = None
    duration: float = 0.0


@attrs.frozen
class DoctorReport:
    """Every check run, and the worst status among them."""

    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        worst: Status = "OK"
        for item in self.checks:
            if _RANK[item.status] > _RANK[worst]:
                worst = item.status
        return worst

    @property
    def exit_code(self) -> int:
        """0 OK, 1 WARN, 2 FAIL."""
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (`statusdb doctor --json`)."""
        return {
            "status": self.status,
            "checks": [attrs.asdict(item) for item in self.checks],
        }


def _graded(value: float, warn: float | None, fail: float | None) -> Status:
    if fail is not None and value >= fail:
        return "FAIL"
    if warn is not None and value >= warn:
        return "WARN"
    return "OK"


def _seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _interval(value: dt.timedelta) -> str:
    return f"{value.total_seconds()} seconds"


def _fetch(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> Any:
    return conn.execute(queries.get(name).sql, params).fetchone()


def _problems(items: Sequence[str]) -> str:
    shown = "; ".join(items[:_MAX_PROBLEMS])
    more = len(items) - _MAX_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def _known_migrations() -> dict[str, str]:
    from yoyo import read_migrations

    return {m.hash: str(m.id) for m in read_migrations(str(resources.migrations_dir()))}


def _migrations(conn: psycopg.Connection[Any], _: Thresholds) -> list[Check]:
    present = _fetch(conn, "migrations_table_exists", {})
    known = _known_migrations()
    if not (present and present[0]):
        return [Check("migrations", "FAIL", "not migrated: no _yoyo_migration table", len(known))]
    rows = conn.execute(queries.get("migrations_applied_hashes").sql).fetchall()
    applied = {str(row[0]) for row in rows}
    pending = sorted(mid for digest, mid in known.items() if digest not in applied)
    unknown = len(applied - set(known))
    if pending:
        return [
            Check(
                "migrations",
                "FAIL",
                f"{len(pending)} pending: {', '.join(pending[:5])}",
                len(pending),
            )
        ]
    if unknown:
        return [
            Check(
                "migrations",
                "WARN",
                f"{unknown} applied migration(s) this release does not know (roll the code out)",
                0,
            )
        ]
    return [Check("migrations", "OK", f"{len(known)} applied, none pending", 0)]


def _samples(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    rows = conn.execute(
        queries.get("doctor_samples").sql, {"sample_size": limits.sample_size}
    ).fetchall()
    found: list[Check] = []
    for name, checked, problems in rows:
        if problems:
            found.append(
                Check(
                    name,
                    "FAIL",
                    f"{len(problems)} of {checked} sampled: {_problems(problems)}",
                    len(problems),
                )
            )
        else:
            found.append(Check(name, "OK", f"{checked} sampled, none drifted", 0))
    return found


def _outbox(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    changes, events, oldest = _fetch(conn, "doctor_outbox", {"cap": limits.backlog_cap})
    backlog = int(changes) + int(events)
    status = _graded(backlog, limits.backlog_warn, limits.backlog_fail)
    age = 0.0 if oldest is None else max(0.0, float(oldest))
    by_age = _graded(age, _seconds(limits.backlog_age_warn), _seconds(limits.backlog_age_fail))
    if _RANK[by_age] > _RANK[status]:
        status = by_age
    capped = " (capped)" if max(changes, events) >= limits.backlog_cap else ""
    detail = f"{changes} status changes and {events} events pending{capped}" + (
        f", oldest {age:.0f} s" if oldest is not None else ""
    )
    return [Check("outbox_backlog", status, detail, backlog)]


def _leases(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    changes, events, retries = _fetch(
        conn, "doctor_stuck_leases", {"grace": _interval(limits.lease_grace)}
    )
    stuck = int(changes) + int(events) + int(retries)
    if stuck:
        detail = (
            f"{changes} status changes, {events} events, {retries} delivery retries leased "
            f"and expired over {limits.lease_grace.total_seconds():.0f} s ago: no worker "
            "took them over"
        )
        return [Check("stuck_leases", "FAIL", detail, stuck)]
    return [Check("stuck_leases", "OK", "no expired lease", 0)]


def _failures(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    temporary, permanent = _fetch(
        conn, "doctor_delivery_failures", {"window": _interval(limits.recent)}
    )
    total = int(temporary) + int(permanent)
    status = _graded(total, limits.delivery_failures_warn, limits.delivery_failures_fail)
    detail = (
        f"{temporary} temporary and {permanent} permanent failures in the last "
        f"{limits.recent.total_seconds():.0f} s"
    )
    return [Check("delivery_failures", status, detail, total)]


def _deactivated(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    (count,) = _fetch(conn, "doctor_deactivated_subscribers", {"window": _interval(limits.recent)})
    status = _graded(int(count), limits.deactivated_warn, limits.deactivated_fail)
    detail = f"{count} deactivated in the last {limits.recent.total_seconds():.0f} s"
    return [Check("subscribers_deactivated", status, detail, int(count))]


def _scheduler(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    row = _fetch(conn, "doctor_scheduler", {})
    if row is None:
        return [Check("scheduler_lag", "WARN", "no scheduler step recorded yet", None)]
    instance, lag, recent = row
    lag = max(0.0, float(lag))
    status = _graded(lag, _seconds(limits.scheduler_lag_warn), _seconds(limits.scheduler_lag_fail))
    detail = f"last step {lag:.0f} s ago ({instance}); {recent} instance(s) within a day"
    return [Check("scheduler_lag", status, detail, lag)]


def _overdue(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
    age = limits.scheduler_lag_warn or dt.timedelta(minutes=2)
    count, oldest = _fetch(conn, "doctor_maintenance_overdue", {"age": _interval(age)})
    if not count:
        return [Check("maintenance_overdue", "OK", "no window transition overdue", 0)]
    oldest = float(oldest)
    status = _graded(oldest, _seconds(age), _seconds(limits.scheduler_lag_fail))
    detail = (
        f"{count} window(s) due to start or end for over {age.total_seconds():.0f} s, "
        f"the oldest {oldest:.0f} s: is a scheduler running (recurring windows need "
        "`statusdb scheduler`, not only pg_cron)?"
    )
    return [Check("maintenance_overdue", status, detail, int(count))]


def _replica_check(
    replica: psycopg.Connection[Any] | None,
) -> Callable[[psycopg.Connection[Any], Thresholds], list[Check]]:
    def check(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Check]:
        warn, fail = _seconds(limits.replica_lag_warn), _seconds(limits.replica_lag_fail)
        if replica is not None:
            (lag,) = _fetch(replica, "doctor_replication_standby", {})
            if lag is None:
                return [Check("replica_lag", "FAIL", "the replica given is not a standby", None)]
            lag = max(0.0, float(lag))
            detail = f"replica's last replayed commit {lag:.1f} s ago (grows when idle)"
            return [Check("replica_lag", _graded(lag, warn, fail), detail, lag)]
        lag, replicas = _fetch(conn, "doctor_replication_primary", {})
        if not replicas:
            return [Check("replica_lag", "OK", "no replica streams from this server", None)]
        if lag is None:
            detail = f"{replicas} replica(s); replay lag not visible to this role (pg_monitor)"
            return [Check("replica_lag", "OK", detail, None)]
        lag = float(lag)
        detail = f"{replicas} replica(s), replay lag up to {lag:.1f} s"
        return [Check("replica_lag", _graded(lag, warn, fail), detail, lag)]

    return check


def check(
    conn: psycopg.Connection[Any],
    *,
    thresholds: Thresholds | None = None,
    replica: psycopg.Connection[Any] | None = None,
    only: Iterable[str] | None = None,
) -> DoctorReport:
    """Run the health checks (all, or those named in `only`) and return the report.

    Each check runs in a savepoint under `thresholds.statement_timeout`; one that fails to
    run (timed out, refused) is reported as WARN with the reason, and the others still run.
    `replica`: a connection to a replica, to measure its lag there.
    """
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(
            "doctor.check takes a psycopg.Connection (for an AsyncConnection, run it in a "
            "thread with a connection of its own)"
        )
    limits = Thresholds() if thresholds is None else thresholds
    wanted = set(CHECKS) if only is None else set(only)
    unknown = wanted - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks: {', '.join(sorted(unknown))}")
    groups: list[
        tuple[Sequence[str], Callable[[psycopg.Connection[Any], Thresholds], list[Check]]]
    ] = [
        (("migrations",), _migrations),
        (_SAMPLED, _samples),
        (("outbox_backlog",), _outbox),
        (("stuck_leases",), _leases),
        (("delivery_failures",), _failures),
        (("subscribers_deactivated",), _deactivated),
        (("scheduler_lag",), _scheduler),
        (("maintenance_overdue",), _overdue),
        (("replica_lag",), _replica_check(replica)),
    ]
    timeout_ms = str(max(1, int(limits.statement_timeout.total_seconds() * 1000)))
    results: list[Check] = []
    try:
        with conn.transaction():
            # Put the caller's statement_timeout back afterwards: SET LOCAL in a released
            # savepoint would outlive this call in the caller's transaction.
            (previous,) = _fetch(conn, "doctor_current_statement_timeout", {})
            for names, run in groups:
                if not wanted.intersection(names):
                    continue
                started = time.monotonic()
                try:
                    with conn.transaction():
                        _fetch(conn, "doctor_statement_timeout", {"timeout_ms": timeout_ms})
                        if replica is not None and "replica_lag" in names:
                            replica.execute(
                                queries.get("doctor_statement_timeout").sql,
                                {"timeout_ms": timeout_ms},
                            )
                        found = run(conn, limits)
                except psycopg.Error as exc:
                    if isinstance(exc, pg_errors.QueryCanceled):
                        reason = (
                            f"timed out after {limits.statement_timeout.total_seconds():g} s "
                            "(statement_timeout)"
                        )
                    else:
                        reason = f"could not run: {translate(exc)}"
                    if replica is not None and "replica_lag" in names and not replica.closed:
                        replica.rollback()
                    found = [Check(name, "WARN", reason, None) for name in names]
                elapsed = time.monotonic() - started
                results.extend(
                    attrs.evolve(item, duration=round(elapsed, 6))
                    for item in found
                    if item.name in wanted
                )
            _fetch(conn, "doctor_statement_timeout", {"timeout_ms": previous})
        if replica is not None and not replica.closed and not replica.autocommit:
            replica.rollback()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    except StatusdbError:
        raise
    order = {name: index for index, name in enumerate(CHECKS)}
    return DoctorReport(tuple(sorted(results, key=lambda item: order[item.name])))
