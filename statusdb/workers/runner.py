"""The long-running delivery worker behind `statusdb worker`: the loop that owns the transactions.

`Worker(config).run()` (asyncio) repeats `outbox.aprocess_all` rounds, and with bookkeeping the
retry rounds of `statusdb.workers.deliveries`, until it is told to stop:

* **Deliveries in flight.** Every fan-out batch (`WorkerConfig.batch` recipients) is handed to
  the deliverer with at most `concurrency` deliveries at once (an asyncio semaphore shared by
  the process). An async deliverer runs on the loop; a sync one in a thread pool of
  `concurrency` threads. `connections` round loops (each on its own connection, each claiming
  `claim_limit` changes and events) run side by side, for many small fan-outs; several
  processes on one database share the work through the outbox's leases.
* **Graceful stop** (`request_stop`, wired to SIGTERM and SIGINT by the CLI): nothing new is
  claimed and no delivery not yet started starts. What is in flight finishes; the round then
  records it (bookkeeping) and releases the rest of its claims, which another worker resumes with
  the subscribers not yet recorded. A round still busy after `shutdown_timeout` is cancelled:
  its claims are released (`aprocess_all` gives back what it holds), and whatever it delivered
  since its last commit is delivered again by the next worker (at least once, same keys).
* **Connection loss**: the round's error (a statusdb error; psycopg's never escape) is logged,
  the connection dropped and a new one opened after an exponential back-off (`backoff`, capped
  at `BACKOFF_CAP`). Claims of the lost session keep their leases until these expire, then any
  worker claims them again: nothing is lost, and nothing is delivered twice beyond what a
  lease expiry allows (at least once).
* **`once`**: each loop stops after the first round that found nothing due (cron, tests).
* No LISTEN: the outbox sends no notifications (a NOTIFY payload is public and a wake-up
  channel would be one more thing any role can flood), so an idle loop polls every
  `poll_interval`.

Logs go to the `statusdb.worker` logger with an event name (`worker.started`, `worker.round`,
`delivery.failed`, `worker.reconnecting`, ...) and ids (worker, notification key, subscriber),
never a destination or a token: a deliverer's error text is logged with the destination cut
out. Metrics: `statusdb.workers.metrics`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import functools
import inspect
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Literal

import attrs
import psycopg

from statusdb.domain.types import (
    IncidentNotification,
    MaintenanceNotification,
    Notification,
)
from statusdb.errors import InvalidInput, StatusdbError, translate
from statusdb.workers import deliveries, outbox
from statusdb.workers.metrics import Metrics
from statusdb.workers.outbox import Recipient

LOG: Final = logging.getLogger("statusdb.worker")

BACKOFF_BASE: Final = 0.5
BACKOFF_CAP: Final = 30.0
#: How long a cancelled round may take to release its claims after the shutdown deadline.
RELEASE_GRACE: Final = 5.0
#: How often the backlog gauges are read (three indexed counts).
BACKLOG_EVERY: Final = 15.0
#: With `once`, the rounds failing in a row (the database unreachable) before the worker gives
#: up with exit status 1 (a cron job must end).
ONCE_GIVE_UP: Final = 5

DeliverKind = Literal["one", "batch"]


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed rounds in a row: 0.5, 1, 2, ... capped at 30."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, failures - 1)))


def notification_kind(notification: object) -> str:
    """A bounded label for a notification: its event kind (`incident_created`, ...) or
    `component_status` for a component's status change."""
    if isinstance(notification, IncidentNotification | MaintenanceNotification):
        return str(notification.kind)
    return "component_status"


def describe_deliverer(deliver: Callable[..., Any]) -> tuple[DeliverKind, bool]:
    """Whether `deliver` is per recipient (`deliver(notification, recipient, key)`) or a batch
    (`deliver(notification, [(recipient, key), ...])` returning one outcome per pair), and
    whether it is a coroutine function. InvalidInput for anything else."""
    if not callable(deliver):
        raise InvalidInput(f"the deliverer is not callable: {type(deliver).__name__}")
    is_async = inspect.iscoroutinefunction(deliver) or inspect.iscoroutinefunction(
        getattr(deliver, "__call__", None)  # noqa: B004  (an object with an async __call__)
    )
    try:
        signature = inspect.signature(deliver)
    except (TypeError, ValueError):
        raise InvalidInput("the deliverer's signature cannot be read") from None
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if getattr(deliver, "statusdb_batch", False) or len(positional) == 2:
        return "batch", is_async
    if len(positional) == 3:
        return "one", is_async
    raise InvalidInput(
        "the deliverer must take (notification, recipient, key) or, for the batch form, "
        f"(notification, pairs); it takes {len(positional)} required arguments"
    )


def redact(text: str, recipient: Recipient | None) -> str:
    """`text` without the recipient's destination (nor its host) in it."""
    if recipient is None:
        return text
    out = text.replace(recipient.destination, "<destination>")
    if "://" in recipient.destination:
        host = recipient.destination.split("://", 1)[1].split("/", 1)[0]
        if host:
            out = out.replace(host, "<host>")
    return out


def event(level: int, name: str, **fields: object) -> None:
    """Log the event `name` with `fields` (ids and counts only) to `statusdb.worker`."""
    if not LOG.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    LOG.log(level, "%s %s", name, text, extra={"event": name, "fields": fields})


def default_name() -> str:
    """host:pid, the worker id prefix (lease owners in the outbox name the worker)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@attrs.frozen
class WorkerConfig:
    """How a worker runs (the `statusdb worker` options)."""

    dsn: str
    deliver: Callable[..., Any]
    concurrency: int = 10
    connections: int = 1
    bookkeeping: bool = True
    lease: dt.timedelta = outbox.DEFAULT_LEASE
    hold_down: dt.timedelta = outbox.DEFAULT_HOLD_DOWN
    claim_limit: int = 100
    batch: int = outbox.DEFAULT_BATCH
    poll_interval: float = 1.0
    shutdown_timeout: float = 30.0
    once: bool = False
    retries: bool = True
    #: Seconds between reads of the backlog gauges (with metrics only).
    backlog_every: float = BACKLOG_EVERY
    name: str = attrs.field(factory=default_name)

    def __attrs_post_init__(self) -> None:
        for field, value, low, high in (
            ("concurrency", self.concurrency, 1, 10_000),
            ("connections", self.connections, 1, 64),
            ("claim_limit", self.claim_limit, 1, 10_000),
            ("batch", self.batch, 1, 10_000),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInput(f"{field} must be an integer from {low} to {high}")
        for field, seconds in (
            ("poll_interval", self.poll_interval),
            ("shutdown_timeout", self.shutdown_timeout),
            ("backlog_every", self.backlog_every),
        ):
            if not isinstance(seconds, int | float) or seconds < 0:
                raise InvalidInput(f"{field} must be a number of seconds >= 0")
        if self.lease < dt.timedelta(milliseconds=100):
            raise InvalidInput("lease must be at least 0.1 s")
        describe_deliverer(self.deliver)


_NOT_ATTEMPTED: Final = object()


class _Span:
    """A span, or nothing (OpenTelemetry not installed)."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, **attributes: object) -> None:
        if self._span is not None:
            for name, value in attributes.items():
                self._span.set_attribute(f"statusdb.{name}", value)

    def failed(self, exc: BaseException) -> None:
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            # The class only: a deliverer's message may hold the destination.
            self._span.set_attribute("statusdb.error", type(exc).__name__)
            self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


class Tracing:
    """OpenTelemetry spans when `opentelemetry` is importable (no hard dependency): one per
    worker round (`statusdb.worker.round`) and one per delivery (`statusdb.delivery`, a child
    of its round), with ids and counts as `statusdb.*` attributes, never a destination.
    `tracer_provider` None: the global one (`opentelemetry.trace.set_tracer_provider`, or
    `opentelemetry-instrument statusdb worker ...`), if one is set when the worker starts."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError:
            self._tracer: Any = None
            return
        if tracer_provider is None:
            tracer_provider = trace.get_tracer_provider()
            if isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
                # Nothing configured (a no-op provider costs ~10 us a delivery for nothing).
                self._tracer = None
                return
        self._tracer = trace.get_tracer("statusdb.worker", tracer_provider=tracer_provider)

    @contextlib.contextmanager
    def span(self, name: str, **attributes: object) -> Iterator[_Span]:
        if self._tracer is None:
            yield _Span()
            return
        with self._tracer.start_as_current_span(
            name, record_exception=False, set_status_on_exception=False
        ) as span:
            wrapped = _Span(span)
            wrapped.set(**attributes)
            yield wrapped


@attrs.define
class Totals:
    """What a worker did since it started (also returned by `Worker.run`)."""

    rounds: int = 0
    claimed: int = 0
    deliveries: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    retried: int = 0
    reconnects: int = 0
    round_errors: int = 0
    #: Unix times of the start of the first round that claimed work and of the end of the
    #: last one (None: none did): the span a benchmark divides deliveries by.
    busy_from: float | None = None
    busy_to: float | None = None


class Worker:
    """One worker process's loops; see the module docstring."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        metrics: Metrics | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics(None)
        self._tracing = Tracing(tracer_provider)
        self.totals = Totals()
        self._kind, self._is_async = describe_deliverer(config.deliver)
        self._stopping: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._in_flight = 0
        #: The latest failed deliveries' exceptions (without bookkeeping, a round raises one).
        self._failures: collections.deque[BaseException] = collections.deque(maxlen=1_000)
        self._failed_once = False

    # -- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming and starting deliveries; in-flight ones finish (see `run`). Asked a
        second time (a second SIGTERM or Ctrl-C): stop now, as at the shutdown timeout."""
        if self._stopping is not None and self._stopping.is_set():
            if self._force is not None and not self._force.is_set():
                event(
                    logging.WARNING,
                    "worker.stopping_now",
                    worker=self.config.name,
                    in_flight=self._in_flight,
                )
                self._force.set()
            return
        if self._stopping is not None:
            event(
                logging.INFO,
                "worker.stopping",
                worker=self.config.name,
                in_flight=self._in_flight,
                shutdown_timeout=self.config.shutdown_timeout,
            )
            self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def run(self) -> int:
        """Run until stopped (or, with `once`, until nothing is due); the exit status: 0, or
        1 when `once` ended with deliveries failing without bookkeeping, or gave up after
        `ONCE_GIVE_UP` failed rounds in a row (the database unreachable)."""
        cfg = self.config
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=cfg.concurrency, thread_name_prefix="statusdb-deliver"
        )
        event(
            logging.INFO,
            "worker.started",
            worker=cfg.name,
            concurrency=cfg.concurrency,
            connections=cfg.connections,
            bookkeeping=cfg.bookkeeping,
            once=cfg.once,
            lease_s=cfg.lease.total_seconds(),
        )
        loops = [asyncio.create_task(self._loop(f"{cfg.name}/{i}")) for i in range(cfg.connections)]
        backlog = asyncio.create_task(self._backlog_loop())
        stop_wait = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([*loops, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            if self.stopping:
                all_done = asyncio.ensure_future(asyncio.wait(loops))  # cancelling it leaves them
                assert self._force is not None
                forced = asyncio.ensure_future(self._force.wait())
                await asyncio.wait(
                    [all_done, forced],
                    timeout=cfg.shutdown_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                all_done.cancel()
                forced.cancel()
                pending = [task for task in loops if not task.done()]
                if pending:
                    event(
                        logging.WARNING,
                        "worker.shutdown_timeout",
                        worker=cfg.name,
                        in_flight=self._in_flight,
                        cancelled_loops=len(pending),
                    )
                    for task in pending:
                        task.cancel()
                    await asyncio.wait(pending, timeout=RELEASE_GRACE)
            else:
                await asyncio.gather(*loops)
        finally:
            stop_wait.cancel()
            backlog.cancel()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, backlog, stop_wait, return_exceptions=True)
            self._threads.shutdown(wait=False, cancel_futures=True)
        t = self.totals
        event(
            logging.INFO,
            "worker.stopped",
            worker=cfg.name,
            rounds=t.rounds,
            deliveries=t.deliveries,
            failed=t.failed,
            lost=t.lost,
            released=t.released,
            reconnects=t.reconnects,
            busy_from=None if t.busy_from is None else round(t.busy_from, 3),
            busy_to=None if t.busy_to is None else round(t.busy_to, 3),
        )
        return 1 if cfg.once and self._failed_once else 0

    async def _sleep(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # -- the loop ------------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self.config.dsn, application_name="statusdb worker"
            )
        except psycopg.Error as exc:
            raise translate(exc) from exc

    async def _loop(self, worker_id: str) -> None:
        cfg = self.config
        conn: psycopg.AsyncConnection[Any] | None = None
        failures = 0
        try:
            while not self.stopping:
                try:
                    if conn is None:
                        conn = await self._connect()
                        if failures:
                            event(logging.INFO, "worker.reconnected", worker=worker_id)
                    round_started = time.time()
                    with self._tracing.span("statusdb.worker.round", worker=worker_id) as span:
                        report = await outbox.aprocess_all(
                            conn,
                            deliver_batch=self._deliver_batch,
                            worker_id=worker_id,
                            limit=cfg.claim_limit,
                            hold_down=cfg.hold_down,
                            lease=cfg.lease,
                            bookkeeping=cfg.bookkeeping,
                            batch_size=cfg.batch,
                        )
                        span.set(
                            claimed=report.claimed,
                            deliveries=report.deliveries,
                            lost=report.lost,
                            released=report.released,
                        )
                    if report.claimed:
                        t = self.totals
                        t.busy_from = round_started if t.busy_from is None else t.busy_from
                        t.busy_to = time.time()
                    self._account(worker_id, report)
                    retried = 0
                    if cfg.bookkeeping and cfg.retries and not self.stopping:
                        retried = await self._retry_round(conn, worker_id)
                    failures = 0
                    if report.claimed == 0 and retried == 0:
                        if cfg.once:
                            return
                        await self._sleep(cfg.poll_interval)
                except Exception as exc:
                    failures += 1
                    self.totals.round_errors += 1
                    if self._delivery_failure(exc):
                        # Without bookkeeping the round raises its first failed delivery after
                        # releasing that claim: the next round (after a back-off) tries again.
                        self._failed_once = True
                        event(
                            logging.WARNING,
                            "worker.round_failed",
                            worker=worker_id,
                            error=type(exc).__name__,
                            retry_in_s=backoff(failures),
                        )
                        if cfg.once:
                            return
                        await self._sleep(backoff(failures))
                        continue
                    if not isinstance(exc, StatusdbError):
                        raise  # a bug: not a database's nor a deliverer's failure
                    broken = conn is None or conn.closed or conn.broken
                    self.metrics.round_error(type(exc).__name__)
                    if broken:
                        self.totals.reconnects += 1
                        self.metrics.reconnect()
                        if conn is not None:
                            await conn.close()
                        conn = None
                    wait = backoff(failures)
                    event(
                        logging.WARNING,
                        "worker.reconnecting" if broken else "worker.round_failed",
                        worker=worker_id,
                        error=type(exc).__name__,
                        message=_first_line(exc),
                        retry_in_s=wait,
                    )
                    if cfg.once and failures >= ONCE_GIVE_UP:
                        self._failed_once = True
                        event(
                            logging.ERROR, "worker.giving_up", worker=worker_id, failures=failures
                        )
                        return
                    await self._sleep(wait)
        finally:
            if conn is not None:
                await conn.close()

    def _delivery_failure(self, exc: BaseException) -> bool:
        """Whether `exc` is one a delivery of this worker failed with (raised by a round
        without bookkeeping), rather than the database's."""
        return any(exc is seen for seen in self._failures)

    def _account(self, worker_id: str, report: outbox.ProcessReport) -> None:
        t = self.totals
        t.rounds += 1
        t.claimed += report.claimed
        t.lost += report.lost
        t.released += report.released
        self.metrics.round(report)
        if report.claimed:
            event(
                logging.INFO,
                "worker.round",
                worker=worker_id,
                claimed=report.claimed,
                notified=report.notified,
                deliveries=report.deliveries,
                lost=report.lost,
                released=report.released,
            )
        if report.lost:
            event(logging.WARNING, "lease.lost", worker=worker_id, claims=report.lost)

    async def _backlog_loop(self) -> None:
        if not self.metrics.enabled:
            return
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed or conn.broken:
                        conn = await psycopg.AsyncConnection.connect(
                            self.config.dsn, autocommit=True, application_name="statusdb worker"
                        )
                    self.metrics.backlog(
                        changes=await outbox.pending_count(conn),
                        events=await outbox.pending_events(conn),
                        retries=await deliveries.pending_retries(conn),
                    )
                except (psycopg.Error, StatusdbError) as exc:
                    event(logging.DEBUG, "worker.backlog_failed", error=type(exc).__name__)
                    if conn is not None:
                        await conn.close()
                    conn = None
                await asyncio.sleep(self.config.backlog_every)
        finally:
            if conn is not None:
                await conn.close()

    # -- deliveries ----------------------------------------------------------------------

    async def _call(self, notification: Notification, recipient: Recipient, key: str) -> None:
        fn = self.config.deliver
        if self._is_async:
            await fn(notification, recipient, key)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._threads, functools.partial(fn, notification, recipient, key)
        )

    async def _one(
        self,
        outcomes: list[object],
        index: int,
        notification: Notification,
        recipient: Recipient,
        key: str,
    ) -> None:
        assert self._slots is not None
        async with self._slots:
            if self.stopping:
                return  # not started: recorded as not attempted, resumed by the next claim
            kind = notification_kind(notification)
            self._in_flight += 1
            self.metrics.in_flight(self._in_flight)
            started = time.perf_counter()
            outcome: BaseException | None = None
            with self._tracing.span(
                "statusdb.delivery",
                kind=kind,
                channel=recipient.channel,
                delivery_key=key,
                subscriber=recipient.subscriber_id,
            ) as span:
                try:
                    await self._call(notification, recipient, key)
                except Exception as exc:
                    outcome = exc
                    span.failed(exc)
                finally:
                    self._in_flight -= 1
                    self.metrics.in_flight(self._in_flight)
            outcomes[index] = outcome
            self._delivered(kind, recipient, key, outcome, time.perf_counter() - started)

    def _delivered(
        self,
        kind: str,
        recipient: Recipient,
        key: str,
        outcome: BaseException | None,
        seconds: float | None,
    ) -> None:
        self.totals.deliveries += 1
        label = _outcome_label(outcome)
        if outcome is not None:
            self.totals.failed += 1
            if not self.config.bookkeeping:
                self._failures.append(outcome)
            event(
                logging.WARNING,
                "delivery.failed",
                key=key,
                subscriber=recipient.subscriber_id,
                channel=recipient.channel,
                kind=kind,
                outcome=label,
                error=type(outcome).__name__,
                message=redact(_first_line(outcome), recipient),
            )
        else:
            event(
                logging.DEBUG,
                "delivery.done",
                key=key,
                subscriber=recipient.subscriber_id,
                channel=recipient.channel,
                kind=kind,
            )
        self.metrics.delivery(kind, recipient.channel, label, seconds)

    async def _deliver_batch(
        self, notification: Notification, pairs: Sequence[tuple[Recipient, str]]
    ) -> Sequence[BaseException | None]:
        """The `deliver_batch` handed to `aprocess_all`: the pairs delivered concurrently;
        the outcomes of those started, in order, up to the first one not started (a stop)."""
        if self._kind == "batch":
            return await self._user_batch(notification, pairs)
        outcomes: list[object] = [_NOT_ATTEMPTED] * len(pairs)
        await asyncio.gather(
            *(
                self._one(outcomes, i, notification, recipient, key)
                for i, (recipient, key) in enumerate(pairs)
            )
        )
        done: list[BaseException | None] = []
        for outcome in outcomes:
            if outcome is _NOT_ATTEMPTED:
                break
            done.append(outcome if isinstance(outcome, BaseException) else None)
        return done

    async def _user_batch(
        self, notification: Notification, pairs: Sequence[tuple[Recipient, str]]
    ) -> Sequence[BaseException | None]:
        if self.stopping:
            return []
        fn = self.config.deliver
        kind = notification_kind(notification)
        started = time.perf_counter()
        self._in_flight += len(pairs)
        try:
            if self._is_async:
                result = await fn(notification, pairs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._threads, functools.partial(fn, notification, pairs)
                )
        finally:
            self._in_flight -= len(pairs)
        seconds = (time.perf_counter() - started) / max(1, len(pairs))
        outcomes = list(result) if isinstance(result, Sequence) else []
        for (recipient, key), outcome in zip(pairs, outcomes, strict=False):
            self._delivered(
                kind,
                recipient,
                key,
                outcome if isinstance(outcome, BaseException) else None,
                seconds,
            )
        return outcomes

    async def _retry_round(self, conn: psycopg.AsyncConnection[Any], worker_id: str) -> int:
        """One round of due retries (bookkeeping), delivered concurrently like the first
        attempts; the ones not started when a stop comes are released. How many claimed."""
        cfg = self.config
        due = await deliveries.claim_retries(
            conn,
            worker_id=worker_id,
            limit=min(cfg.claim_limit, deliveries.LIST_MAX),
            lease=cfg.lease,
        )
        await _commit(conn)
        if not due:
            return 0
        work: list[tuple[deliveries.DueRetry, Notification]] = []
        for retry in due:
            try:
                work.append((retry, deliveries.decode_notification(retry)))
            except InvalidInput:
                await deliveries.give_up_retry(conn, retry, worker_id=worker_id)
        outcomes: list[object] = [_NOT_ATTEMPTED] * len(work)
        await asyncio.gather(
            *(
                self._one(
                    outcomes,
                    i,
                    n,
                    r.recipient,
                    outbox.delivery_key(r.notification_key, r.recipient),
                )
                for i, (r, n) in enumerate(work)
            )
        )
        attempts = []
        for (retry, notification), outcome in zip(work, outcomes, strict=True):
            if outcome is _NOT_ATTEMPTED:
                await deliveries.release_retry(conn, retry, worker_id=worker_id)
                continue
            attempts.append(
                deliveries.attempt_for(
                    retry.notification_key,
                    notification,
                    retry.recipient,
                    outcome if isinstance(outcome, BaseException) else None,
                )
            )
        if attempts:
            await deliveries.record_many(conn, attempts)
        await _commit(conn)
        self.totals.retried += len(attempts)
        if attempts:
            event(
                logging.INFO,
                "worker.retries",
                worker=worker_id,
                claimed=len(due),
                attempted=len(attempts),
            )
        return len(due)


async def _commit(conn: psycopg.AsyncConnection[Any]) -> None:
    try:
        await conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def _outcome_label(outcome: BaseException | None) -> str:
    if outcome is None:
        return "delivered"
    if isinstance(outcome, deliveries.PermanentDeliveryFailure):
        return "failed_permanent"
    return "failed_temporary"


def run(config: WorkerConfig, *, metrics: Metrics | None = None) -> int:
    """Run a worker to the end in a new event loop (no signal handlers: see the CLI)."""
    return asyncio.run(Worker(config, metrics=metrics).run())
