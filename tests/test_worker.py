"""`statusdb worker` run as the real command, in subprocesses, against a real cluster: several
workers at once, SIGTERM mid-batch, a SIGKILLed worker's leases taken over, a database restart,
--once, logs and metrics (statusdb.workers.runner, statusdb.tooling.worker_cmd)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from factories import new_page
from psycopg.conninfo import make_conninfo

from statusdb import status_incidents, teams
from statusdb.domain.types import NOTIFY_ON_EVENTS
from statusdb.errors import InvalidInput
from statusdb.infra import migrations
from statusdb.tooling import cli, localpg
from statusdb.workers import outbox, runner
from statusdb.workers.deliveries import PermanentDeliveryFailure

TESTS = Path(__file__).parent
DEADLINE_S = 60.0


def _command() -> list[str]:
    script = Path(sys.executable).parent / "statusdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "statusdb.tooling.cli"]


def seed(dsn: str, *, incidents: int, subscribers: int) -> set[str]:
    """A page with `subscribers` webhook subscribers (all components, every kind) and
    `incidents` status incidents (one incident_created event each); the delivery keys due."""
    slug = f"w{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn) as conn:
        team = teams.create(conn, name=f"worker {slug}")
        page = new_page(conn, team.id, slug=slug)
        conn.execute(
            """INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,
                                              notify_on, is_verified, is_active)
               SELECT %s, 'WEBHOOK', 'https://hooks.example.com/' || %s || '/' || g, '{}', %s,
                      true, true
               FROM generate_series(1, %s) AS g""",
            (page.id, slug, list(NOTIFY_ON_EVENTS), subscribers),
        )
        for n in range(incidents):
            status_incidents.create(
                conn, page.id, title=f"incident {n}", severity="MINOR", message="m"
            )
        conn.commit()
        subs = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM status_subscriber WHERE status_page_id = %s", (page.id,)
            )
        ]
        events = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM notification_event WHERE status_page_id = %s", (page.id,)
            )
        ]
    assert len(events) == incidents
    return {f"{e}/{s}" for e in events for s in subs}


#: Where each `Workers.start` process writes its stderr (by pid).
_STDERR_FILES: dict[int, Path] = {}


class Workers:
    """Worker subprocesses sharing one delivery log file."""

    def __init__(self, dsn: str, log: Path) -> None:
        self.dsn = dsn
        self.log = log
        self.procs: list[subprocess.Popen[str]] = []

    def start(
        self, *options: str, deliver: str = "worker_deliverers:record", delay: float = 0.0
    ) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "WORKER_TEST_LOG": str(self.log),
            "WORKER_TEST_DELAY": str(delay),
        }
        env.pop("STATUSDB_DSN", None)
        # stderr to a file, not a pipe: a test can see `worker.started` (the signal handlers
        # are in place from then on) while the worker runs; `finish` reads it back.
        err_path = self.log.with_name(f"worker-{len(self.procs)}.stderr")
        with err_path.open("w", encoding="utf-8") as err_file:
            proc = subprocess.Popen(
                [
                    *_command(),
                    "worker",
                    "--dsn",
                    self.dsn,
                    "--deliver",
                    deliver,
                    "--hold-down",
                    "0",
                    "--poll-interval",
                    "0.2",
                    *options,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=err_file,
                text=True,
            )
        _STDERR_FILES[proc.pid] = err_path
        self.procs.append(proc)
        return proc

    def started(self, proc: subprocess.Popen[str]) -> bool:
        """Whether the worker logged `worker.started` (its SIGTERM handler is installed)."""
        return "worker.started" in _STDERR_FILES[proc.pid].read_text(encoding="utf-8")

    def lines(self, what: str) -> list[str]:
        if not self.log.exists():
            return []
        return [
            line.split(" ", 1)[1]
            for line in self.log.read_text().splitlines()
            if line.startswith(what + " ")
        ]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=DEADLINE_S)


@pytest.fixture
def workers(dsn: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(dsn, tmp_path / "deliveries.log")
    try:
        yield group
    finally:
        group.stop_all()


def wait_for(condition: Callable[[], bool], *, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def pending(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return outbox.pending_events(conn) + outbox.pending_count(conn)


def recorded(dsn: str) -> Counter[str]:
    """DELIVERED attempts per delivery key (`<notification key>/<subscriber>`)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT notification_key || '/' || subscriber_id FROM delivery_attempt "
            "WHERE outcome = 'DELIVERED'"
        ).fetchall()
    return Counter(r[0] for r in rows)


def finish(proc: subprocess.Popen[str], timeout: float = DEADLINE_S) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    if err is None and proc.pid in _STDERR_FILES:  # a `Workers` process: stderr in a file
        err = _STDERR_FILES.pop(proc.pid).read_text(encoding="utf-8")
    return proc.returncode, out, err


# --- the command ------------------------------------------------------------------------------


def test_once_with_the_console_deliverer(dsn: str, workers: Workers) -> None:
    due = seed(dsn, incidents=3, subscribers=4)
    code, out, err = finish(
        workers.start("--once", deliver="statusdb.workers.deliverers.console:deliver")
    )
    assert code == 0, err
    lines = out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(due)
    assert all(" incident_created WEBHOOK " in line for line in lines)
    assert "hooks.example.com" not in out  # the console never prints a destination
    assert pending(dsn) == 0
    assert set(recorded(dsn)) == due  # bookkeeping on by default


def test_batch_form_and_no_bookkeeping(dsn: str, workers: Workers) -> None:
    due = seed(dsn, incidents=2, subscribers=5)
    code, _out, err = finish(
        workers.start("--once", "--no-bookkeeping", deliver="worker_deliverers:batch")
    )
    assert code == 0, err
    assert sorted(workers.lines("done")) == sorted(due)
    assert pending(dsn) == 0
    assert recorded(dsn) == Counter()


@pytest.mark.parametrize(
    ("deliver", "message"),
    [
        ("nowhere", "MODULE:FUNCTION"),
        ("no_such_module_x:deliver", "cannot import"),
        ("worker_deliverers:missing", "has no"),
        ("worker_deliverers:os", "not callable"),
        ("statusdb.workers.deliverers.webhook:deliver", "STATUSDB_WEBHOOK_KEY"),  # prepare()
    ],
)
def test_a_bad_deliverer_is_a_usage_error(
    deliver: str, message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any connection (the DSN names no server)."""
    monkeypatch.delenv("STATUSDB_WEBHOOK_KEY", raising=False)
    monkeypatch.delenv("STATUSDB_WEBHOOK_KEY_FILE", raising=False)
    code = cli.main(
        ["worker", "--dsn", "host=/nonexistent dbname=x", "--once", "--deliver", deliver]
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_deliverer_forms_are_detected() -> None:
    async def one(n: object, r: object, k: object) -> None: ...

    def batch(n: object, pairs: object) -> list[None]:
        return []

    assert runner.describe_deliverer(one) == ("one", True)
    assert runner.describe_deliverer(batch) == ("batch", False)
    with pytest.raises(Exception, match="takes 1 required"):
        runner.describe_deliverer(lambda n: None)


def test_backoff_doubles_to_a_cap() -> None:
    assert [runner.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert runner.backoff(50) == runner.BACKOFF_CAP


# --- several workers, signals, kills ----------------------------------------------------------


@pytest.mark.slow
def test_several_workers_deliver_every_pair_once(dsn: str, workers: Workers) -> None:
    due = seed(dsn, incidents=40, subscribers=25)
    procs = [
        workers.start(
            "--concurrency",
            "8",
            "--claim-limit",
            "3",
            "--batch",
            "10",
            "--name",
            f"w{i}",
            "--connections",
            str(i + 1),  # 1, 2 and 3 round loops side by side
        )
        for i in range(3)
    ]
    wait_for(lambda: pending(dsn) == 0 and len(recorded(dsn)) == len(due))
    # A worker still starting up when the others have done everything has no SIGTERM handler
    # yet (it would die of the signal, -15): stop each once it has started.
    wait_for(lambda: all(workers.started(proc) for proc in procs))
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    results = [finish(proc) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    done = Counter(workers.lines("done"))
    assert set(done) == due
    assert sum(done.values()) - len(due) == 0  # no lease expired: nothing delivered twice
    assert set(recorded(dsn).values()) == {1}
    # every worker took part
    rounds = [err.count("worker.round ") for _, _, err in results]
    assert all(n > 0 for n in rounds), rounds


@pytest.mark.slow
def test_sigterm_with_100_in_flight_loses_nothing(dsn: str, workers: Workers) -> None:
    """A slow deliverer, 100 deliveries in flight: SIGTERM lets them finish, records them,
    releases the rest; exit 0 within the deadline; the next worker delivers the rest, and
    nothing twice."""
    due = seed(dsn, incidents=1, subscribers=250)
    proc = workers.start(
        "--concurrency",
        "100",
        "--shutdown-timeout",
        "20",
        delay=1.5,
        deliver="worker_deliverers:slow",
    )
    wait_for(lambda: len(workers.lines("start")) >= 100)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _out, err = finish(proc)
    took = time.monotonic() - started
    assert code == 0, err
    assert took < 20, took
    assert "worker.stopping" in err
    assert "worker.stopped" in err
    first = Counter(workers.lines("done"))
    assert 100 <= len(first) < len(due)
    assert set(recorded(dsn)) == set(first)  # the in-flight ones finished and were recorded
    assert pending(dsn) == 1  # the event was released, not completed
    code, _out, err = finish(workers.start("--once"))
    assert code == 0, err
    done = Counter(workers.lines("done"))
    assert set(done) == due  # 0 lost
    assert sum(done.values()) - len(due) == 0  # 0 duplicates
    assert pending(dsn) == 0


@pytest.mark.slow
def test_sigterm_past_the_shutdown_timeout_releases_the_claims(dsn: str, workers: Workers) -> None:
    """Deliveries slower than --shutdown-timeout: the round is cancelled, its claim released
    at once (no lease to wait for); what was in flight is delivered again (at least once)."""
    due = seed(dsn, incidents=1, subscribers=20)
    proc = workers.start(
        "--concurrency",
        "20",
        "--shutdown-timeout",
        "1",
        "--lease",
        "600",
        delay=30,
        deliver="worker_deliverers:slow",
    )
    wait_for(lambda: len(workers.lines("start")) >= 20)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, _out, err = finish(proc)
    assert code == 0, err
    assert time.monotonic() - started < 1 + runner.RELEASE_GRACE + 3
    assert "worker.shutdown_timeout" in err
    code, _out, err = finish(workers.start("--once"))  # the lease is 600 s: released, not expired
    assert code == 0, err
    assert set(workers.lines("done")) == due
    assert pending(dsn) == 0


def test_a_second_sigterm_stops_at_once(dsn: str, workers: Workers) -> None:
    seed(dsn, incidents=1, subscribers=5)
    proc = workers.start("--shutdown-timeout", "60", delay=30, deliver="worker_deliverers:slow")
    wait_for(lambda: len(workers.lines("start")) >= 5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    code, _out, err = finish(proc)
    assert code == 0, err
    assert time.monotonic() - started < runner.RELEASE_GRACE + 3
    assert "worker.stopping_now" in err
    assert pending(dsn) == 1  # released, not completed


@pytest.mark.slow
def test_a_killed_workers_leases_are_completed_by_another(dsn: str, workers: Workers) -> None:
    due = seed(dsn, incidents=4, subscribers=30)
    victim = workers.start(
        "--concurrency",
        "10",
        "--lease",
        "2",
        "--batch",
        "10",
        delay=0.5,
        deliver="worker_deliverers:slow",
    )
    wait_for(lambda: len(workers.lines("done")) >= 25)  # killed mid-fan-out
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=DEADLINE_S)
    before = set(workers.lines("done"))
    assert pending(dsn) > 0
    rescuer = workers.start("--lease", "2")
    wait_for(lambda: pending(dsn) == 0 and set(recorded(dsn)) == due)
    rescuer.send_signal(signal.SIGTERM)
    code, _out, err = finish(rescuer)
    assert code == 0, err
    done = Counter(workers.lines("done"))
    assert set(done) == due  # 0 lost
    duplicates = sum(done.values()) - len(due)
    print(f"SIGKILL: {duplicates} duplicates of {len(due)} ({len(before)} delivered before)")
    # at least once: only what the victim delivered and had not recorded comes twice
    assert duplicates <= len(before)


@pytest.mark.slow
def test_the_worker_reconnects_after_a_database_restart(
    server_owned_tmp_dir: Path, tmp_path: Path
) -> None:
    pg = localpg.LocalCluster(server_owned_tmp_dir / "pgdata", fsync=False)
    pg.initialize()
    pg.start()
    group: Workers | None = None
    try:
        dsn = pg.ensure_database("statusdb")
        migrations.apply(dsn)
        first = seed(dsn, incidents=3, subscribers=10)
        group = Workers(dsn, tmp_path / "deliveries.log")
        proc = group.start("--concurrency", "4")
        wait_for(lambda: set(group.lines("done")) >= first and pending(dsn) == 0)
        pg.stop()
        time.sleep(1.5)  # the worker's rounds fail meanwhile
        pg.start()
        second = seed(dsn, incidents=3, subscribers=10)
        wait_for(lambda: set(group.lines("done")) >= first | second and pending(dsn) == 0)
        proc.send_signal(signal.SIGTERM)
        code, _out, err = finish(proc)
        assert code == 0, err
        assert "worker.reconnecting" in err
        assert "worker.reconnected" in err
        assert "Traceback" not in err
        done = Counter(group.lines("done"))
        assert set(done) == first | second
        assert set(recorded(dsn).values()) == {1}
    finally:
        if group is not None:
            group.stop_all()
        pg.stop()


# --- logs and metrics -------------------------------------------------------------------------


def test_logs_name_events_and_ids_never_destinations(dsn: str, workers: Workers) -> None:
    due = seed(dsn, incidents=1, subscribers=3)
    code, _out, err = finish(
        workers.start("--once", "--log-format", "json", deliver="worker_deliverers:failing")
    )
    assert code == 0, err  # with bookkeeping a failure is recorded and retried, not fatal
    records = [json.loads(line) for line in err.splitlines()]
    failed = [r for r in records if r["event"] == "delivery.failed"]
    assert sorted(r["key"] for r in failed) == sorted(due)
    assert {r["error"] for r in failed} == {"ConnectionError"}
    assert all(r["outcome"] == "failed_temporary" for r in failed)
    assert all("<destination>" in r["message"] for r in failed)
    assert "hooks.example.com" not in err
    events = {r["event"] for r in records}
    assert {"worker.started", "worker.round", "worker.stopped"} <= events


def test_metrics_endpoint(dsn: str, workers: Workers) -> None:
    pytest.importorskip("prometheus_client")
    seed(dsn, incidents=2, subscribers=3)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = workers.start(
        "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", "--backlog-every", "0.2"
    )
    wait_for(lambda: pending(dsn) == 0 and len(recorded(dsn)) == 6)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    wait_for(lambda: 'statusdb_worker_backlog{queue="events"} 0.0' in scrape())
    text = scrape()
    proc.send_signal(signal.SIGTERM)
    assert finish(proc)[0] == 0
    assert (
        'statusdb_worker_deliveries_total{channel="WEBHOOK",kind="incident_created",'
        'outcome="delivered"} 6.0'
    ) in text
    assert "statusdb_worker_delivery_seconds_bucket" in text
    assert 'statusdb_worker_backlog{queue="events"} 0.0' in text
    assert "statusdb_worker_lease_lost_total 0.0" in text


# --- in process: the runner's paths, spans (and statusdb's coverage) --------------------------


def _config(dsn: str, deliver: Callable[..., object], **kwargs: object) -> runner.WorkerConfig:
    kwargs.setdefault("once", True)
    return runner.WorkerConfig(
        dsn=dsn,
        deliver=deliver,
        hold_down=dt.timedelta(0),
        poll_interval=0.05,
        **kwargs,  # type: ignore[arg-type]
    )


def test_in_process_once_with_spans_and_retries(dsn: str) -> None:
    """A sync deliverer failing once per subscriber: the first round records temporary
    failures; made due, the retry round delivers them. Spans: a round, and one delivery span
    per attempt, its child, with ids but no destination."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    provider = sdk.TracerProvider()
    spans = memory.InMemorySpanExporter()
    provider.add_span_processor(export.SimpleSpanProcessor(spans))
    due = seed(dsn, incidents=2, subscribers=3)
    seen: Counter[str] = Counter()

    def flaky(notification: object, recipient: outbox.Recipient, key: str) -> None:
        seen[key] += 1
        if seen[key] == 1:
            raise TimeoutError(f"no answer from {recipient.destination}")

    worker = runner.Worker(_config(dsn, flaky), tracer_provider=provider)
    assert asyncio.run(worker.run()) == 0
    assert worker.totals.failed == len(due)
    assert recorded(dsn) == Counter()
    with psycopg.connect(dsn) as conn:  # the retries' back-off, skipped
        conn.execute(
            "UPDATE delivery_attempt SET next_attempt_at = now() WHERE next_attempt_at IS NOT NULL"
        )
    worker = runner.Worker(_config(dsn, flaky), tracer_provider=provider)
    assert asyncio.run(worker.run()) == 0
    assert worker.totals.retried == len(due)
    assert set(recorded(dsn)) == due
    finished = spans.get_finished_spans()
    deliveries_spans = [s for s in finished if s.name == "statusdb.delivery"]
    rounds = {s.context.span_id: s for s in finished if s.name == "statusdb.worker.round"}
    assert len(deliveries_spans) == 2 * len(due)
    first_round = [
        s for s in deliveries_spans if s.parent is not None and s.parent.span_id in rounds
    ]
    assert len(first_round) == len(due)
    failed = [s for s in deliveries_spans if s.attributes.get("statusdb.error")]
    assert {s.attributes["statusdb.error"] for s in failed} == {"TimeoutError"}
    assert {s.attributes["statusdb.delivery_key"] for s in deliveries_spans} == due
    text = repr([dict(s.attributes or {}) for s in finished]) + repr(
        [s.status.description for s in finished]
    )
    assert "hooks.example.com" not in text


def test_in_process_without_bookkeeping_a_failure_fails_once(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    due = seed(dsn, incidents=1, subscribers=2)

    async def broken(notification: object, recipient: outbox.Recipient, key: str) -> None:
        raise ConnectionError(f"refused by {recipient.destination}")

    caplog.set_level(logging.INFO, logger="statusdb.worker")
    worker = runner.Worker(_config(dsn, broken, bookkeeping=False))
    assert asyncio.run(worker.run()) == 1
    # Issue 27.5: the claim completes and only the failed deliveries are left, recorded for
    # deliveries.retry (not the whole event released to be sent to everyone again).
    assert pending(dsn) == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM delivery_attempt WHERE outcome = 'FAILED_TEMPORARY'"
        ).fetchone()
    assert row is not None
    assert row[0] == len(due)
    failed = [r for r in caplog.records if getattr(r, "event", None) == "delivery.failed"]
    assert sorted(r.fields["key"] for r in failed) == sorted(due)  # type: ignore[attr-defined]
    assert "hooks.example.com" not in caplog.text
    assert "worker.round_failed" in caplog.text


def test_in_process_batch_form_and_stop(dsn: str) -> None:
    due = seed(dsn, incidents=3, subscribers=4)
    got: list[str] = []

    async def go() -> int:
        all_given = asyncio.Event()

        async def batch(
            notification: object, pairs: list[tuple[outbox.Recipient, str]]
        ) -> list[None]:
            got.extend(key for _, key in pairs)
            if len(got) == len(due):
                all_given.set()
            return [None] * len(pairs)

        worker = runner.Worker(_config(dsn, batch, once=False))
        task = asyncio.create_task(worker.run())
        await all_given.wait()
        worker.request_stop()
        return await task

    assert asyncio.run(go()) == 0
    assert sorted(got) == sorted(due)
    assert pending(dsn) == 0  # the round that delivered them completed them before stopping


def test_in_process_the_command(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    due = seed(dsn, incidents=1, subscribers=2)
    code = cli.main(
        [
            "worker",
            "--dsn",
            dsn,
            "--once",
            "--hold-down",
            "0",
            "--deliver",
            "statusdb.workers.deliverers.console:deliver",
        ]
    )
    assert code == 0
    assert sorted(line.split()[0] for line in capsys.readouterr().out.splitlines()) == sorted(due)
    assert cli.main(["worker", "--dsn", dsn, "--deliver", "x:y", "--once"]) == 2
    assert (
        cli.main(
            [
                "worker",
                "--dsn",
                dsn,
                "--concurrency",
                "0",
                "--once",
                "--deliver",
                "statusdb.workers.deliverers.console:noop",
            ]
        )
        == 2
    )


def test_config_bounds() -> None:
    from statusdb.workers.deliverers import console

    with pytest.raises(InvalidInput, match="concurrency"):
        runner.WorkerConfig(dsn="", deliver=console.noop, concurrency=0)
    with pytest.raises(InvalidInput, match="lease"):
        runner.WorkerConfig(dsn="", deliver=console.noop, lease=dt.timedelta(0))
    with pytest.raises(InvalidInput, match="poll_interval"):
        runner.WorkerConfig(dsn="", deliver=console.noop, poll_interval=-1)
    assert (
        runner.redact(
            "x https://h.example/a y", outbox.Recipient("s", "WEBHOOK", "https://h.example/a")
        )
        == "x <destination> y"
    )
    assert runner.notification_kind(object()) == "component_status"


def test_in_process_metrics(dsn: str) -> None:
    prometheus = pytest.importorskip("prometheus_client")
    from statusdb.workers.metrics import Metrics

    due = seed(dsn, incidents=2, subscribers=2)
    registry = prometheus.CollectorRegistry()

    async def deliver(notification: object, recipient: outbox.Recipient, key: str) -> None:
        if key.endswith(sorted(due)[0].split("/")[1]):
            raise PermanentDeliveryFailure("HTTP 410")

    worker = runner.Worker(_config(dsn, deliver), metrics=Metrics(registry))
    assert asyncio.run(worker.run()) == 0
    labels = {"kind": "incident_created", "channel": "WEBHOOK"}
    sample = registry.get_sample_value
    assert sample("statusdb_worker_deliveries_total", {**labels, "outcome": "delivered"}) == 2
    assert (
        sample("statusdb_worker_deliveries_total", {**labels, "outcome": "failed_permanent"}) == 2
    )
    assert sample("statusdb_worker_delivery_seconds_count", {"kind": "incident_created"}) == 4
    assert sample("statusdb_worker_claims_total") == 2
    assert sample("statusdb_worker_lease_lost_total") == 0
    Metrics(None).delivery("k", "EMAIL", "delivered", 0.1)  # disabled: no-ops


def test_the_worker_runs_as_the_app_role(dsn: str, app_login: str, workers: Workers) -> None:
    """docs/worker.md: a worker logs in as a member of statusdb_app (not the owner)."""
    due = seed(dsn, incidents=2, subscribers=3)
    workers.dsn = make_conninfo(dsn, user=app_login)
    code, _out, err = finish(workers.start("--once"))
    assert code == 0, err
    assert set(workers.lines("done")) == due
    assert set(recorded(dsn)) == due
    assert pending(dsn) == 0


def test_a_short_batch_is_recorded_and_its_claim_released(dsn: str) -> None:
    """outbox.process_all with bookkeeping and a batch deliverer that stops part-way (as the
    worker does on SIGTERM): what it did is recorded, the claim released (not completed), and
    the next round delivers exactly the rest. Before: the claim was completed and the rest of
    the subscribers were never told."""
    due = seed(dsn, incidents=1, subscribers=10)
    given: list[str] = []

    def half(
        notification: object, pairs: Sequence[tuple[outbox.Recipient, str]]
    ) -> list[BaseException | None]:
        given.extend(key for _, key in pairs[:4])
        return [None] * 4

    def full(
        notification: object, pairs: Sequence[tuple[outbox.Recipient, str]]
    ) -> list[BaseException | None]:
        given.extend(key for _, key in pairs)
        return [None] * len(pairs)

    with psycopg.connect(dsn) as conn:
        report = outbox.process_all(
            conn, deliver_batch=half, worker_id="w", hold_down=dt.timedelta(0), bookkeeping=True
        )
        assert (report.claimed, report.released, report.deliveries) == (1, 1, 4)
        assert pending(dsn) == 1
        assert len(recorded(dsn)) == 4
        report = outbox.process_all(
            conn, deliver_batch=full, worker_id="w", hold_down=dt.timedelta(0), bookkeeping=True
        )
        assert (report.claimed, report.notified, report.deliveries) == (1, 1, 6)
    assert sorted(given) == sorted(due)  # each once
    assert pending(dsn) == 0


@pytest.mark.slow
def test_in_process_once_gives_up_on_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--once against a database that never answers ends (exit 1) after ONCE_GIVE_UP rounds
    with back-off, instead of retrying forever under cron."""
    from statusdb.workers.deliverers import console

    # The same rounds and back-off doubling, a tenth of the waits (0.5+1+2+4 s was 7.5 s of
    # sleep); `backoff` itself is checked by its unit tests.
    monkeypatch.setattr(runner, "BACKOFF_BASE", runner.BACKOFF_BASE / 10)

    config = _config("host=127.0.0.1 port=1 dbname=x connect_timeout=1", console.noop)
    worker = runner.Worker(config)
    assert asyncio.run(worker.run()) == 1
    assert worker.totals.round_errors == runner.ONCE_GIVE_UP
    assert worker.totals.reconnects == runner.ONCE_GIVE_UP


def test_in_process_a_statusdb_error_from_a_deliverer_is_a_delivery_failure(dsn: str) -> None:
    """Without bookkeeping, a deliverer raising a statusdb error (PermanentDeliveryFailure is
    one) fails the --once run like any delivery failure, not as a database error retried."""
    seed(dsn, incidents=1, subscribers=1)

    def gone(notification: object, recipient: outbox.Recipient, key: str) -> None:
        raise PermanentDeliveryFailure("HTTP 410")

    worker = runner.Worker(_config(dsn, gone, bookkeeping=False))
    assert asyncio.run(worker.run()) == 1
    assert (worker.totals.failed, worker.totals.reconnects) == (1, 0)


def test_the_webhook_deliverer_end_to_end(
    dsn: str, workers: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`statusdb worker --deliver statusdb.workers.deliverers.webhook:deliver`, configured by
    the environment, posts every event to a real local HTTPS receiver (allow-listed in the
    database and in the worker), signed with each subscriber's derived secret."""
    pytest.importorskip("httpx")
    from webhook_server import serve_https

    from statusdb.workers.deliverers import webhook

    key = "s" * 40
    with serve_https(tmp_path) as server:
        with psycopg.connect(dsn) as conn:  # the owner: allow posting to this machine
            conn.execute(
                "INSERT INTO destination_allowlist (network, reason) VALUES ('127.0.0.0/8', 't')"
            )
        due = seed(dsn, incidents=2, subscribers=3)
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "UPDATE status_subscriber SET destination = %s || id",
                (f"https://127.0.0.1:{server.port}/hook/",),
            )
        monkeypatch.setenv("STATUSDB_WEBHOOK_KEY", key)
        monkeypatch.setenv("STATUSDB_WEBHOOK_ALLOW", "127.0.0.0/8")
        monkeypatch.setenv("STATUSDB_WEBHOOK_CA_FILE", str(server.ca))
        proc = workers.start("--once", deliver="statusdb.workers.deliverers.webhook:deliver")
        code, _out, err = finish(proc)
        assert code == 0, err
        assert set(recorded(dsn)) == due
        assert sorted(r.headers["Idempotency-Key"] for r in server.received) == sorted(due)
        for got in server.received:
            subscriber = got.path.rsplit("/", 1)[1]
            secret = webhook.subscriber_secret(key.encode(), subscriber)
            assert webhook.verify_signature(
                secret,
                got.headers["Statusdb-Timestamp"],
                got.body,
                got.headers["Statusdb-Signature"],
            )
