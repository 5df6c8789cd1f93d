"""`statusdb scheduler`: the maintenance scheduler as a process (statusdb.workers.scheduler).

    statusdb scheduler --dsn ... [--interval 30s] [--once] [--instance NAME]
                       [--metrics-port PORT] [--log-format text|json] [--log-level info]

Runs `maintenance.advance` every interval and records each committed step in
`scheduler_heartbeat` (what `statusdb doctor` reports as the scheduler's lag). SIGTERM or
SIGINT stops it after the step in progress; exit 0. It reconnects, with back-off, after a
lost connection. `--once` runs one step and exits: 0 done, 4 done but some windows were
skipped with errors (logged, and in `maintenance_window_scheduler_error`), 1 the step failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

EXIT_WINDOW_ERRORS: Final = 4

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# The standard attributes of a LogRecord: everything else was given as `extra`.
_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def duration(text: str) -> dt.timedelta:
    """`30s`, `500ms`, `2m`, `1h` or plain seconds; argparse's type for intervals."""
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 30s, 500ms, 2m, 1h)")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return dt.timedelta(seconds=seconds)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text or as one JSON object each (default text), on stderr",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="least severe level logged (default info)",
    )


def configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("statusdb")
    root.handlers[:] = [handler]
    root.setLevel(args.log_level.upper())
    root.propagate = False


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `statusdb scheduler` in the CLI's subcommands."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "scheduler",
        parents=[common],
        help="run the maintenance scheduler (advance) on an interval",
        description=__doc__.split("\n\n", 2)[2] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--interval",
        type=duration,
        default=dt.timedelta(seconds=30),
        help="time between two steps' starts: 30s, 500ms, 2m (default 30s)",
    )
    parser.add_argument("--once", action="store_true", help="run one step and exit")
    parser.add_argument(
        "--instance",
        default=None,
        help="this scheduler's name in scheduler_heartbeat (default host:pid)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (needs the `metrics` extra: prometheus-client)",
    )
    parser.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        help="address the metrics server listens on (default 127.0.0.1)",
    )
    add_logging_options(parser)


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop`; returns a function restoring the previous handlers."""

    def handle(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("statusdb.workers.scheduler").info(
            "scheduler.signal: %s, stopping after the step in progress",
            signal.Signals(signum).name,
            extra={"event": "scheduler.signal"},
        )
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def start_metrics(port: int | None, address: str) -> Any:
    """The scheduler's metrics, served on port (None: no metrics)."""
    if port is None:
        return None
    try:
        import prometheus_client
    except ImportError as exc:
        raise RuntimeError(
            "--metrics-port needs prometheus-client: pip install 'statusdb[metrics]'"
        ) from exc
    from statusdb.workers.scheduler import SchedulerMetrics

    metrics = SchedulerMetrics()
    prometheus_client.start_http_server(port, addr=address)
    return metrics


def main(args: argparse.Namespace, dsn: str) -> None:
    """Run the scheduler as the parsed arguments say (raises SystemExit for its exit status)."""
    from statusdb.errors import StatusdbError
    from statusdb.workers import scheduler

    configure_logging(args)
    metrics = start_metrics(args.metrics_port, args.metrics_address)
    stop = threading.Event()
    restore = install_stop_handlers(stop)
    try:
        result = scheduler.run(
            dsn,
            interval=args.interval,
            once=args.once,
            instance=args.instance,
            stop=stop,
            metrics=metrics,
        )
    except StatusdbError as exc:
        print(f"statusdb: error: scheduler step failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    finally:
        restore()
    if args.once and result.steps_with_window_errors:
        raise SystemExit(EXIT_WINDOW_ERRORS)
