"""Prometheus metrics of `statusdb worker` (the optional extra `metrics`: prometheus_client).

`Metrics(registry)` records into `registry` (a `prometheus_client.CollectorRegistry`), or does
nothing when given None, so that the worker runs without the extra. `serve(port)` exposes the
default registry over HTTP (`--metrics-port`). Metric names and labels (all bounded: a label
never holds an id, a destination or free text):

* `statusdb_worker_deliveries_total` (counter; `kind`, `channel`, `outcome`): deliveries
  made, `delivered`, `failed_temporary` or `failed_permanent`;
* `statusdb_worker_delivery_seconds` (histogram; `kind`): time the deliverer took per delivery;
* `statusdb_worker_in_flight` (gauge): deliveries running now;
* `statusdb_worker_rounds_total`, `statusdb_worker_claims_total` (counters): rounds run,
  changes and events claimed;
* `statusdb_worker_lease_lost_total` (counter): claims whose lease ran out before completion
  (another worker took them over: a stalled worker, a lease too short);
* `statusdb_worker_claims_released_total` (counter): claims given back (a failure, a stop);
* `statusdb_worker_round_errors_total` (counter; `error`): rounds that failed, by statusdb
  error class;
* `statusdb_worker_reconnects_total` (counter): connections lost and re-opened;
* `statusdb_worker_backlog` (gauge; `queue`): `changes` and `events` pending, `retries`
  scheduled (read every `--backlog-every` seconds, three indexed counts).

`kind` is the notification's event kind (`incident_created`, ..., `maintenance_reminder`) or
`component_status`; `channel` is EMAIL, SLACK or WEBHOOK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statusdb.workers.outbox import ProcessReport

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def available() -> bool:
    """Whether prometheus_client is installed (`pip install statusdb[metrics]`)."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def serve(port: int, addr: str = "0.0.0.0") -> Metrics:  # noqa: S104  (a metrics endpoint)
    """Start the HTTP endpoint on `port` (a daemon thread) and return metrics recorded into
    the default registry; ImportError without prometheus_client."""
    import prometheus_client

    prometheus_client.start_http_server(port, addr=addr)
    return Metrics(prometheus_client.REGISTRY)


class Metrics:
    """The worker's metrics in `registry`, or no-ops (registry None)."""

    def __init__(self, registry: Any) -> None:
        self.enabled = registry is not None
        if not self.enabled:
            return
        from prometheus_client import Counter, Gauge, Histogram

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, registry=registry)

        self._deliveries = counter(
            "statusdb_worker_deliveries",
            "Deliveries made, by notification kind, channel and outcome.",
            ("kind", "channel", "outcome"),
        )
        self._latency = Histogram(
            "statusdb_worker_delivery_seconds",
            "Time the deliverer took per delivery.",
            ("kind",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._in_flight = Gauge(
            "statusdb_worker_in_flight", "Deliveries running now.", registry=registry
        )
        self._rounds = counter("statusdb_worker_rounds", "Worker rounds run.")
        self._claims = counter("statusdb_worker_claims", "Changes and events claimed.")
        self._lost = counter(
            "statusdb_worker_lease_lost",
            "Claims whose lease ran out before completion (another worker took them).",
        )
        self._released = counter(
            "statusdb_worker_claims_released", "Claims given back (a failure, a stop)."
        )
        self._errors = counter(
            "statusdb_worker_round_errors", "Rounds that failed, by error class.", ("error",)
        )
        self._reconnects = counter("statusdb_worker_reconnects", "Connections lost and re-opened.")
        self._backlog = Gauge(
            "statusdb_worker_backlog",
            "Pending component changes and events, and scheduled retries.",
            ("queue",),
            registry=registry,
        )

    def delivery(self, kind: str, channel: str, outcome: str, seconds: float | None) -> None:
        if not self.enabled:
            return
        self._deliveries.labels(kind, channel, outcome).inc()
        if seconds is not None:
            self._latency.labels(kind).observe(seconds)

    def in_flight(self, value: int) -> None:
        if self.enabled:
            self._in_flight.set(value)

    def round(self, report: ProcessReport) -> None:
        if not self.enabled:
            return
        self._rounds.inc()
        self._claims.inc(report.claimed)
        self._lost.inc(report.lost)
        self._released.inc(report.released)

    def round_error(self, error: str) -> None:
        if self.enabled:
            self._errors.labels(error).inc()

    def reconnect(self) -> None:
        if self.enabled:
            self._reconnects.inc()

    def backlog(self, *, changes: int, events: int, retries: int) -> None:
        if not self.enabled:
            return
        self._backlog.labels("changes").set(changes)
        self._backlog.labels("events").set(events)
        self._backlog.labels("retries").set(retries)
