"""The scheduler loop: `maintenance.advance` on an interval, with a heartbeat (issue 23).

`step` runs one scheduler step in a transaction of its own: it reads the database's clock,
calls `maintenance.advance` for that instant, and records the success in
`scheduler_heartbeat` (migration 0032) in the same transaction, so a step that rolls back
records nothing and `statusdb doctor` reports the scheduler's lag from the last one that
committed. `run` is the loop behind `statusdb scheduler`: a step every `interval`, graceful
stop (the step in progress commits, then the loop returns), reconnects with capped
exponential back-off and jitter after a lost connection, and `once` for cron and tests.

Several instances at once are safe: `advance` takes due windows with SKIP LOCKED and
re-checks them after locking, so each transition is made, and reported, by exactly one
instance. Nothing needs the clock besides maintenance windows: the page snapshots carry what
depends on time in their version (migration 0017) and need no re-rendering on a timer.

Logs go through `logging` (logger `statusdb.workers.scheduler`) with an event name in the
message and as `extra={"event": ...}`, and ids only (window ids, the instance): never a DSN
(it may hold a password). Metrics are Prometheus' when `prometheus_client` is installed (the
`metrics` extra) and a registry is given; see `SchedulerMetrics`. With `opentelemetry`
installed, each step is a span `statusdb.scheduler.step` (instance, transitions,
window_errors as attributes); nothing is imported without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import attrs
import psycopg
from psycopg.rows import class_row

from statusdb import maintenance
from statusdb.db import queries
from statusdb.errors import Retryable, StatusdbError, translate

_log = logging.getLogger(__name__)

#: Default time between two steps' starts.
DEFAULT_INTERVAL: Final = dt.timedelta(seconds=30)
#: Longest wait between two reconnection attempts.
MAX_BACKOFF: Final = dt.timedelta(seconds=60)
#: Attempts of one step after a serialization failure or a deadlock.
STEP_ATTEMPTS: Final = 5
#: Longest instance name (the heartbeat's bound).
MAX_INSTANCE_LENGTH: Final = 200


def default_instance() -> str:
    """host:pid, the instance name when none is given."""
    return f"{socket.gethostname()}:{os.getpid()}"[:MAX_INSTANCE_LENGTH]


@attrs.frozen
class StepReport:
    """One committed scheduler step: its instant, transitions, skipped windows and duration."""

    instance: str
    at: dt.datetime
    transitions: tuple[maintenance.Transition, ...]
    errors: tuple[maintenance.SchedulerError, ...]
    duration: float
    attempts: int


class SchedulerMetrics:
    """The scheduler's Prometheus metrics (the `metrics` extra), registered in `registry`.

    * `statusdb_scheduler_steps_total{outcome}`: steps by outcome (`ok`, `window_errors`,
      `failed`);
    * `statusdb_scheduler_advance_duration_seconds`: histogram of a step's duration;
    * `statusdb_scheduler_transitions_total{to_status}`: transitions made by this process;
    * `statusdb_scheduler_window_errors_total`: windows skipped with an error;
    * `statusdb_scheduler_last_success_timestamp_seconds`: when the last step committed;
    * `statusdb_scheduler_reconnects_total`: connections lost and re-opened.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if registry is None else registry
        self.steps = Counter(
            "statusdb_scheduler_steps",
            "Scheduler steps by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "statusdb_scheduler_advance_duration_seconds",
            "Duration of a scheduler step (maintenance.advance and the heartbeat).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.transitions = Counter(
            "statusdb_scheduler_transitions",
            "Maintenance window transitions made by this scheduler, by new status.",
            ["to_status"],
            registry=registry,
        )
        self.window_errors = Counter(
            "statusdb_scheduler_window_errors",
            "Maintenance windows a step skipped with an error.",
            registry=registry,
        )
        self.last_success = Gauge(
            "statusdb_scheduler_last_success_timestamp_seconds",
            "Unix time of the last committed scheduler step.",
            registry=registry,
        )
        self.reconnects = Counter(
            "statusdb_scheduler_reconnects",
            "Database connections lost and re-opened by the scheduler.",
            registry=registry,
        )

    def observe(self, report: StepReport) -> None:
        self.steps.labels(outcome="window_errors" if report.errors else "ok").inc()
        self.duration.observe(report.duration)
        for transition in report.transitions:
            self.transitions.labels(to_status=transition.to_status).inc()
        self.window_errors.inc(len(report.errors))
        self.last_success.set(time.time())


def _span(name: str) -> Any:
    """An OpenTelemetry span when `opentelemetry` is installed (no hard dependency), else a
    context that does nothing."""
    try:
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError:
        return contextlib.nullcontext(None)
    return trace.get_tracer("statusdb.workers.scheduler").start_as_current_span(name)


def _instance(value: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_INSTANCE_LENGTH:
        raise ValueError(f"instance must be 1 to {MAX_INSTANCE_LENGTH} characters")
    return value


def step(conn: psycopg.Connection[Any], *, instance: str | None = None) -> StepReport:
    """Run one scheduler step in its own transaction and commit it; return what it did.

    `conn` must have no transaction open (it is committed or rolled back here). Retried up to
    STEP_ATTEMPTS times after a serialization failure or a deadlock; a lost connection raises
    `Retryable` (reconnect and call again). Windows the step skipped are in `errors` (and in
    `maintenance.scheduler_errors`), each logged as `scheduler.window_error`.
    """
    name = _instance(default_instance() if instance is None else instance)
    with _span("statusdb.scheduler.step") as span:
        report = _step(conn, name)
        if span is not None:
            span.set_attribute("statusdb.scheduler.instance", name)
            span.set_attribute("statusdb.scheduler.transitions", len(report.transitions))
            span.set_attribute("statusdb.scheduler.window_errors", len(report.errors))
    return report


def _step(conn: psycopg.Connection[Any], name: str) -> StepReport:
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        try:
            with conn.transaction():
                row = conn.execute(queries.get("scheduler_clock").sql).fetchone()
                assert row is not None
                at: dt.datetime = row[0].astimezone(dt.UTC)
                transitions = maintenance.advance(conn, at)
                with conn.cursor(row_factory=class_row(maintenance.SchedulerError)) as cur:
                    errors = cur.execute(
                        queries.get("scheduler_step_errors").sql, {"now": at}
                    ).fetchall()
                duration = time.monotonic() - started
                conn.execute(
                    queries.get("scheduler_record_run").sql,
                    {
                        "instance": name,
                        "duration": dt.timedelta(seconds=duration),
                        "transitions": len(transitions),
                        "errors": len(errors),
                    },
                )
        except psycopg.Error as exc:
            error = translate(exc)
            if isinstance(error, Retryable) and not conn.closed and attempt < STEP_ATTEMPTS:
                _log.warning(
                    "scheduler.step_retry: attempt %d failed: %s",
                    attempt,
                    error,
                    extra={"event": "scheduler.step_retry", "attempt": attempt},
                )
                time.sleep(min(0.05 * 2**attempt, 1.0) * random.random())  # noqa: S311
                continue
            raise error from exc
        except Retryable as exc:
            if conn.closed or attempt >= STEP_ATTEMPTS:
                raise
            _log.warning(
                "scheduler.step_retry: attempt %d failed: %s",
                attempt,
                exc,
                extra={"event": "scheduler.step_retry", "attempt": attempt},
            )
            time.sleep(min(0.05 * 2**attempt, 1.0) * random.random())  # noqa: S311
            continue
        break
    report = StepReport(
        instance=name,
        at=at,
        transitions=tuple(transitions),
        errors=tuple(errors),
        duration=duration,
        attempts=attempt,
    )
    for transition in report.transitions:
        _log.info(
            "scheduler.transition: window %s %s -> %s (occurrence %s)",
            transition.window_id,
            transition.from_status,
            transition.to_status,
            transition.occurrence_start.isoformat(),
            extra={
                "event": "scheduler.transition",
                "window_id": transition.window_id,
                "from_status": transition.from_status,
                "to_status": transition.to_status,
            },
        )
    for skipped in report.errors:
        _log.error(
            "scheduler.window_error: window %s skipped (%d failures): %s",
            skipped.window_id,
            skipped.failures,
            skipped.error,
            extra={
                "event": "scheduler.window_error",
                "window_id": skipped.window_id,
                "failures": skipped.failures,
            },
        )
    _log.info(
        "scheduler.step: %d transitions, %d windows skipped in %.3f s",
        len(report.transitions),
        len(report.errors),
        report.duration,
        extra={
            "event": "scheduler.step",
            "instance": name,
            "transitions": len(report.transitions),
            "window_errors": len(report.errors),
            "duration_s": round(report.duration, 6),
        },
    )
    return report


@attrs.frozen
class RunResult:
    """What `run` did: steps committed, steps that skipped windows, steps that failed."""

    steps: int
    steps_with_window_errors: int
    failures: int


def run(
    conninfo: str,
    *,
    interval: dt.timedelta = DEFAULT_INTERVAL,
    once: bool = False,
    instance: str | None = None,
    stop: threading.Event | None = None,
    metrics: SchedulerMetrics | None = None,
    max_backoff: dt.timedelta = MAX_BACKOFF,
    connect: Callable[[str], psycopg.Connection[Any]] | None = None,
) -> RunResult:
    """Step every `interval` until `stop` is set (or once); reconnect after a lost connection.

    A stop request never interrupts a step: the step in progress commits (or rolls back) and
    the loop returns. With `once`, one step is attempted (with the in-step retries of `step`)
    and its failure is raised (`StatusdbError`), for cron and tests; the loop itself logs a
    failed step as `scheduler.step_failed` and carries on, reconnecting with exponential
    back-off (1 s doubling up to `max_backoff`, with jitter) when the connection is gone.
    """
    if interval <= dt.timedelta(0):
        raise ValueError("interval must be positive")
    name = _instance(default_instance() if instance is None else instance)
    stop = threading.Event() if stop is None else stop
    opener = connect if connect is not None else _connect
    conn: psycopg.Connection[Any] | None = None
    steps = with_errors = failures = 0
    backoff = 1.0
    _log.info(
        "scheduler.start: instance %s, every %s s",
        name,
        interval.total_seconds(),
        extra={"event": "scheduler.start", "instance": name},
    )
    try:
        while not stop.is_set():
            tick = time.monotonic()
            try:
                if conn is None or conn.closed:
                    if conn is not None and metrics is not None:
                        metrics.reconnects.inc()
                    conn = opener(conninfo)
                report = step(conn, instance=name)
            except (StatusdbError, psycopg.Error) as exc:
                failures += 1
                if metrics is not None:
                    metrics.steps.labels(outcome="failed").inc()
                if once:
                    if isinstance(exc, psycopg.Error):
                        raise translate(exc) from exc
                    raise
                lost = conn is None or conn.closed
                _log.error(
                    "scheduler.step_failed: %s%s",
                    exc,
                    f"; reconnecting in {backoff:.1f} s" if lost else "",
                    extra={"event": "scheduler.step_failed", "instance": name},
                )
                if lost:
                    stop.wait(backoff * (0.5 + random.random() / 2))  # noqa: S311
                    backoff = min(backoff * 2, max_backoff.total_seconds())
                    continue
            else:
                backoff = 1.0
                steps += 1
                with_errors += bool(report.errors)
                if metrics is not None:
                    metrics.observe(report)
            if once:
                break
            stop.wait(max(0.0, interval.total_seconds() - (time.monotonic() - tick)))
    finally:
        if conn is not None:
            conn.close()
        _log.info(
            "scheduler.stop: instance %s, %d steps, %d failed",
            name,
            steps,
            failures,
            extra={"event": "scheduler.stop", "instance": name},
        )
    return RunResult(steps=steps, steps_with_window_errors=with_errors, failures=failures)


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, application_name="statusdb scheduler")
    except psycopg.Error as exc:
        raise translate(exc) from exc
