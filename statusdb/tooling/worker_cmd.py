"""`statusdb worker`: the command line of `statusdb.workers.runner` (see docs/worker.md)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import logging
import signal
import sys
from typing import Any

from statusdb.errors import InvalidInput
from statusdb.tooling import cli
from statusdb.workers import metrics as worker_metrics
from statusdb.workers import runner

DESCRIPTION = (
    "Deliver notifications (component status changes, status-incident and maintenance events) "
    "through the deliverer named by --deliver, until SIGTERM or SIGINT (then: claim nothing "
    "more, let in-flight deliveries finish, release the rest within --shutdown-timeout, exit "
    "0). Run as many as you like on one database: leases keep them apart. With bookkeeping (the "
    "default) every delivery is recorded in delivery_attempt and failures are retried with "
    "back-off; --once processes what is due and exits (cron, tests). Exit status: 0 stopped or "
    "done; 1 --once ended with failed deliveries (without bookkeeping); 2 usage."
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `worker` subcommand to the `statusdb` parser."""
    worker = sub.add_parser(
        "worker", parents=[common], help="deliver notifications (a long-running worker)"
    )
    worker.description = DESCRIPTION
    worker.set_defaults(handler=run)
    add = worker.add_argument
    add(
        "--deliver",
        required=True,
        metavar="MODULE:FUNCTION",
        help="the deliverer: deliver(notification, recipient, key) or the batch form "
        "deliver(notification, pairs); sync or async (e.g. "
        "statusdb.workers.deliverers.console:deliver)",
    )
    add(
        "--concurrency",
        type=int,
        default=10,
        metavar="N",
        help="deliveries in flight at once in this process (default 10)",
    )
    add(
        "--connections",
        type=int,
        default=1,
        metavar="N",
        help="round loops, each on its own database connection, claiming side by side "
        "(default 1; more for many small fan-outs)",
    )
    add(
        "--no-bookkeeping",
        dest="bookkeeping",
        action="store_false",
        help="do not record deliveries (a failed delivery then releases its claim for the "
        "next round instead of being retried with back-off)",
    )
    add(
        "--no-retries",
        dest="retries",
        action="store_false",
        help="with bookkeeping, leave due retries to other workers",
    )
    add(
        "--lease",
        type=float,
        default=outbox_seconds("DEFAULT_LEASE"),
        metavar="SECONDS",
        help="lease of a claim; another worker takes it over once it expires (default %(default)s)",
    )
    add(
        "--hold-down",
        type=float,
        default=outbox_seconds("DEFAULT_HOLD_DOWN"),
        metavar="SECONDS",
        help="flap damping of component changes (default %(default)s)",
    )
    add(
        "--claim-limit",
        type=int,
        default=100,
        metavar="N",
        help="changes and events claimed per round (default 100)",
    )
    add(
        "--batch",
        type=int,
        default=None,
        metavar="N",
        help="recipients per fan-out batch: delivered concurrently, recorded together; the "
        "lease is renewed between batches, so a batch must end well within it (default "
        "4 x --concurrency, at least 100)",
    )
    add(
        "--poll-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="wait between rounds when nothing is due (default 1)",
    )
    add(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="after SIGTERM, how long in-flight deliveries may take before the round is "
        "cancelled and its claims released (default 30)",
    )
    add("--once", action="store_true", help="process what is due, then exit")
    add("--name", default=None, help="worker id prefix in leases and logs (default host:pid)")
    add(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on this port (needs statusdb[metrics])",
    )
    add(
        "--backlog-every",
        type=float,
        default=runner.BACKLOG_EVERY,
        metavar="SECONDS",
        help="how often the backlog gauges are read (default %(default)s)",
    )
    add(
        "--metrics-addr",
        default="0.0.0.0",  # noqa: S104  (a metrics endpoint, like any exporter)
        metavar="ADDRESS",
        help="address of the metrics endpoint (default 0.0.0.0)",
    )
    add(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO; DEBUG logs every delivery",
    )
    add(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text: 'time level event key=value ...'; json: one object a line",
    )


def default_batch(concurrency: int) -> int:
    """4 waves of `concurrency` deliveries per batch (at least 100, at most 10,000): a batch of
    slow deliveries still ends well inside a lease, which is renewed between batches."""
    return min(10_000, max(100, 4 * concurrency))


def outbox_seconds(name: str) -> float:
    from statusdb.workers import outbox

    value: dt.timedelta = getattr(outbox, name)
    return value.total_seconds()


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update({k: v for k, v in fields.items() if k not in data})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("statusdb")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def load_deliverer(spec: str) -> Any:
    """The callable named by `package.module:attribute` (UsageError otherwise)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise cli.UsageError(f"--deliver must be MODULE:FUNCTION, not {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise cli.UsageError(f"--deliver: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise cli.UsageError(f"--deliver: {module_name!r} has no {attr!r}") from None
    prepare = getattr(target, "prepare", None)
    if callable(prepare):  # the deliverer's own start-up check (its configuration)
        try:
            prepare()
        except (InvalidInput, ImportError, OSError, ValueError) as exc:
            raise cli.UsageError(f"--deliver {spec}: {exc}") from None
    return target


def _config(args: argparse.Namespace) -> runner.WorkerConfig:
    dsn = cli._resolve_dsn(args)
    deliver = load_deliverer(args.deliver)
    extra: dict[str, Any] = {} if args.name is None else {"name": args.name}
    try:
        return runner.WorkerConfig(
            dsn=dsn,
            deliver=deliver,
            concurrency=args.concurrency,
            connections=args.connections,
            bookkeeping=args.bookkeeping,
            retries=args.retries,
            lease=dt.timedelta(seconds=args.lease),
            hold_down=dt.timedelta(seconds=args.hold_down),
            claim_limit=args.claim_limit,
            batch=default_batch(args.concurrency) if args.batch is None else args.batch,
            poll_interval=args.poll_interval,
            shutdown_timeout=args.shutdown_timeout,
            once=args.once,
            backlog_every=args.backlog_every,
            **extra,
        )
    except (InvalidInput, ValueError, OverflowError) as exc:
        raise cli.UsageError(f"worker: {exc}") from None


def _metrics(args: argparse.Namespace) -> worker_metrics.Metrics | None:
    if args.metrics_port is None:
        return None
    if not worker_metrics.available():
        raise cli.UsageError(
            "--metrics-port needs prometheus_client: pip install 'statusdb[metrics]'"
        )
    try:
        return worker_metrics.serve(args.metrics_port, args.metrics_addr)
    except OSError as exc:
        raise cli.CliError(f"cannot serve metrics on port {args.metrics_port}: {exc}") from None


async def _main(worker: runner.Worker) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    try:
        return await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> None:
    """`statusdb worker ...`."""
    configure_logging(args.log_level, args.log_format)
    config = _config(args)
    worker = runner.Worker(config, metrics=_metrics(args))
    status = asyncio.run(_main(worker))
    if status:
        totals = worker.totals
        raise cli.CliError(
            f"worker: --once ended with {totals.failed} failed deliveries and "
            f"{totals.round_errors} failed rounds (what was claimed is released or its leases "
            "expire: the next run takes it)"
        )
