"""Surge: many readers refresh a few status pages while a writer works incidents on them.

What an outage looks like to the read path (issue 10 item 6): everyone reloads the status page
at once, exactly while incidents are being opened, escalated and resolved on it.

* **Readers**: `clients` threads (split over `processes` processes, so that one interpreter's
  lock does not cap the client side), each refreshing a random page of the set in a loop,
  through one `statusdb.infra.pool.make_pool` pool per process (autocommit, statements prepared,
  `check=None`: no extra round trip per checkout). A request is timed from asking the pool for
  a connection to the decoded answer, pool waits included.
* **Conditional reads** (mode "conditional", when `views.page_view` takes `if_version`): each
  client remembers the version it last saw of each page and sends it with 90 % of its
  requests; an answer that is neither a `PageView` nor None is a "not modified".
* **Cached** (mode "cached", when `views.PageViewCache` exists): as "conditional", and the
  requests sent without a version go through one `PageViewCache` per reader process (as an
  HTTP server's worker keeps one): decoded once per page version, every hit validated by a
  conditional read.
* **Writer**: one connection (autocommit), paced at `writes_per_s` statements per second,
  cycling over the pages: open a platform incident on one of the page's services, publish a
  status incident, escalate the incident to CRITICAL, post an update, resolve the incident,
  resolve the status incident. Each is its own transaction, and each changes what the page
  shows. A cycle cut by the end of the run is finished (untimed), so no incident stays open.

`run` reports page views per second, p50/p99 latency, the share answered "not modified" and the
writes made, with the writer's pace asked and achieved: modes compare only at the same achieved
write rate (each write re-renders a page, so a writer starved of CPU makes the readers' work
lighter). The benchmark's case (`bench/cases.py`, "surge") runs it on ten pages of the
dataset in every mode this tree offers; `tests/test_bench_surge.py` runs it tiny, untimed.
"""

from __future__ import annotations

import contextlib
import inspect
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal, cast

import attrs
import psycopg

from bench.timing import percentile
from statusdb import components, incidents, pages, status_incidents, teams, views
from statusdb.infra.pool import make_pool
from statusdb.pages import NewComponent

Mode = Literal["full", "conditional", "cached"]
#: The readers' connections' application_name (to find their server processes).
READER_APPLICATION = "statusdb-surge-reader"
SERVICES = tuple(f"svc-{k}" for k in range(8))


def conditional_reads() -> bool:
    """Whether this tree's `views.page_view` answers conditional reads (`if_version`)."""
    return "if_version" in inspect.signature(views.page_view).parameters


def snapshot() -> bool:
    """Whether this tree's page views come from a snapshot (they carry a version)."""
    return "version" in attrs.fields_dict(views.PageView)


def cached_reads() -> bool:
    """Whether this tree has a cache of decoded views (`views.PageViewCache`, issue 21)."""
    return hasattr(views, "PageViewCache")


def modes() -> tuple[Mode, ...]:
    """The modes this tree can run: full reads always, conditional reads when available, and
    conditional reads with the full ones through a `PageViewCache` when there is one."""
    if not conditional_reads():
        return ("full",)
    return ("full", "conditional", "cached") if cached_reads() else ("full", "conditional")


@attrs.frozen
class Target:
    """A page the readers refresh and the writer works on."""

    page_id: str
    slug: str
    token: str | None
    team_id: str
    component_ids: tuple[str, ...]


def bench_targets(admin_dsn: str, slugs: Sequence[str]) -> tuple[Target, ...]:
    """Pages of the benchmark's dataset (public, components following their team's services)."""
    with psycopg.connect(admin_dsn) as conn:
        rows = conn.execute(
            """SELECT p.id, p.slug, p.team_id,
                      ARRAY(SELECT c.id FROM status_page_component c
                            WHERE c.status_page_id = p.id ORDER BY c.display_order)
               FROM status_page p WHERE p.slug = ANY(%s) ORDER BY p.slug""",
            (list(slugs),),
        ).fetchall()
    if len(rows) != len(slugs):
        raise ValueError(f"the dataset lacks some of the pages {list(slugs)}")
    return tuple(Target(pid, slug, None, team, tuple(ids)) for pid, slug, team, ids in rows)


def make_targets(
    dsn: str, *, pages_count: int = 2, components_per_page: int = 10
) -> tuple[Target, ...]:
    """A small world of its own (for tests and `--dsn` runs): one team per page, its components
    following the team's services; every other page private."""
    made = []
    with psycopg.connect(dsn) as conn:
        for p in range(pages_count):
            team = teams.create(conn, name=f"surge team {p}")
            created = pages.create(
                conn,
                team_id=team.id,
                name=f"Surge page {p}",
                slug=f"surge-{p}",
                created_by_id="surge",
                is_public=p % 2 == 0,
                components=[
                    NewComponent(
                        name=f"component {c}",
                        team_id=team.id,
                        service_identifier=SERVICES[c % len(SERVICES)],
                    )
                    for c in range(components_per_page)
                ],
            )
            ids = tuple(c.id for c in components.list_for_page(conn, created.page.id))
            made.append(Target(created.page.id, f"surge-{p}", created.access_token, team.id, ids))
        conn.commit()
    return tuple(made)


@attrs.frozen
class SurgeResult:
    mode: Mode
    snapshot: bool
    clients: int
    seconds: float
    requests: int
    not_modified: int
    p50_us: float
    p99_us: float
    writes: int
    errors: tuple[str, ...]
    #: The writer's pace (statements per second asked); `writes_per_s` is what it achieved.
    writes_target_per_s: float = 0.0
    #: Whether the writer ran under real-time priority (`run(writer_realtime=True)`).
    writer_realtime: bool = False
    #: Seconds the writer's thread and server process waited for a CPU during the run.
    writer_run_queue_s: float | None = None

    @property
    def views_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def not_modified_share(self) -> float:
        return self.not_modified / self.requests if self.requests else 0.0

    @property
    def writes_per_s(self) -> float:
        return self.writes / self.seconds


@attrs.frozen
class _Plan:
    """What one reader process does (picklable: sent to spawned processes)."""

    dsn: str
    targets: tuple[Target, ...]
    mode: Mode
    clients: int
    pool_size: int
    conditional_share: float
    seed: int


@attrs.frozen
class _ReaderReport:
    latencies_us: list[float]
    not_modified: int
    errors: list[str]


def _readers(plan: _Plan, go: Any, stop: Any, out: Any) -> None:
    """One process's readers: `plan.clients` threads through one pool. Puts "ready" on `out`
    once connected and warmed up, measures from `go` being set until `stop` is, then puts its
    _ReaderReport."""
    latencies: list[float] = []
    not_modified = [0]
    errors: list[str] = []
    lock = threading.Lock()
    conditional = plan.mode in ("conditional", "cached")
    # "cached": the requests without a version go through one cache per process (as an HTTP
    # server's workers would keep one), itself validated by a conditional read.
    cache = views.PageViewCache() if plan.mode == "cached" else None
    share = plan.conditional_share
    with make_pool(
        plan.dsn,
        kwargs={"application_name": READER_APPLICATION},
        autocommit=True,
        min_size=plan.pool_size,
        max_size=plan.pool_size,
        check=None,
        timeout=60,
    ) as pool:
        pool.wait(timeout=60)
        with pool.connection() as conn:  # the statement prepared, the code paths warm
            for target in plan.targets:
                views.page_view(conn, target.slug, token=target.token)

        def client(n: int) -> None:
            rng = random.Random(plan.seed * 1000 + n)  # noqa: S311 (not security)
            seen: dict[str, Any] = {}
            mine: list[float] = []
            skipped = 0
            go.wait()
            try:
                while not stop.is_set():
                    target = rng.choice(plan.targets)
                    kwargs: dict[str, Any] = {}
                    if target.token is not None:
                        kwargs["token"] = target.token
                    known = seen.get(target.slug)
                    if conditional and known is not None and rng.random() < share:
                        kwargs["if_version"] = known
                    started = time.perf_counter()
                    with pool.connection() as conn:
                        if cache is not None and "if_version" not in kwargs:
                            result = cache.get(conn, target.slug, **kwargs)
                        else:
                            result = views.page_view(conn, target.slug, **kwargs)
                    elapsed = time.perf_counter() - started
                    if result is None:
                        raise LookupError(f"page {target.slug} not found")
                    if isinstance(result, views.PageView):
                        version = getattr(result, "version", None)
                        if version is not None:
                            seen[target.slug] = version
                    else:
                        skipped += 1  # "not modified"
                    mine.append(elapsed * 1e6)
            except Exception as exc:  # reported; the run fails
                with lock:
                    errors.append(f"client {n}: {type(exc).__name__}: {exc}")
            with lock:
                latencies.extend(mine)
                not_modified[0] += skipped

        threads = [threading.Thread(target=client, args=(n,)) for n in range(plan.clients)]
        for thread in threads:
            thread.start()
        out.put("ready")
        for thread in threads:
            thread.join()
    out.put(_ReaderReport(latencies, not_modified[0], errors))


def _cycle(conn: psycopg.Connection[Any], target: Target, n: int) -> list[Any]:
    """The writer's steps on one page, as callables (each one statement, committed)."""
    state: dict[str, str] = {}
    service = SERVICES[n % len(SERVICES)]
    affected = list(target.component_ids[(n % 8) * 5 : (n % 8) * 5 + 3]) or list(
        target.component_ids[:1]
    )

    def open_incident() -> None:
        state["incident"] = incidents.create(
            conn, target.team_id, title="Surge", priority="MEDIUM", service_identifier=service
        ).id

    def publish() -> None:
        state["status_incident"] = status_incidents.create(
            conn,
            target.page_id,
            title="Elevated error rates",
            severity="MAJOR",
            message="We are investigating elevated error rates.",
            affected_component_ids=affected,
        ).id

    def escalate() -> None:
        incidents.update(conn, state["incident"], priority="CRITICAL")

    def post_update() -> None:
        status_incidents.add_update(
            conn, state["status_incident"], status="IDENTIFIED", message="Cause identified."
        )

    def resolve_incident() -> None:
        incidents.resolve(conn, state["incident"])

    def resolve_status_incident() -> None:
        status_incidents.add_update(
            conn, state["status_incident"], status="RESOLVED", message="Resolved."
        )

    return [
        open_incident,
        publish,
        escalate,
        post_update,
        resolve_incident,
        resolve_status_incident,
    ]


def _run_queue_s(pid: int) -> float | None:
    """Seconds `pid` (a process, or a thread by its native id) has waited for a CPU while
    runnable since it started (Linux schedstat), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _realtime(pids: Sequence[int]) -> bool:
    """Put `pids` (threads or processes) under SCHED_RR at the lowest real-time priority;
    False when that is not allowed (not root, no CAP_SYS_NICE, a remote server)."""
    try:
        for pid in pids:
            os.sched_setscheduler(pid, os.SCHED_RR, os.sched_param(1))
    except (OSError, AttributeError):
        return False
    return True


@attrs.define
class _WriterReport:
    writes: int = 0
    realtime: bool = False
    #: Seconds the writer's thread and its server process waited for a CPU while runnable,
    #: from `go` to the end (None: not readable, e.g. a remote server).
    run_queue_s: float | None = None


def _writer(
    dsn: str,
    targets: Sequence[Target],
    go: Any,
    stop: Any,
    per_s: float,
    report: _WriterReport,
    errors: list[str],
    realtime: bool,
) -> None:
    writes = 0
    try:
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
            # The writer is one thread and one server process among ~50 busy readers and
            # their servers on few cores: at the default priority its backend waited in the
            # run queue for 40-680 ms per statement (bench/README.md, issue 21, fourth pass),
            # the more so the faster the readers, so that each mode ran at its own write rate.
            # Real-time priority lets it keep its pace (it needs ~3 % of a core) in every mode.
            ids = [threading.get_native_id(), conn.info.backend_pid]
            if realtime:
                report.realtime = _realtime(ids)
            go.wait()
            waited = [_run_queue_s(pid) for pid in ids]
            started = time.monotonic()
            n = 0
            while not stop.is_set():
                for step in _cycle(conn, targets[n % len(targets)], n):
                    step()  # a cycle started is finished, so that no incident stays open
                    if not stop.is_set():
                        writes += 1
                        stop.wait(max(0.0, started + writes / per_s - time.monotonic()))
                n += 1
            after = [_run_queue_s(pid) for pid in ids]
            if None not in waited and None not in after:
                report.run_queue_s = sum(
                    cast(float, a) - cast(float, b) for a, b in zip(after, waited, strict=True)
                )
    except Exception as exc:
        errors.append(f"writer: {type(exc).__name__}: {exc}")
    report.writes = writes


def _renice(dsn: str, pids: list[int], nice: int) -> None:
    """Lower the priority of `pids` and of the readers' server processes (best effort)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        servers = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (READER_APPLICATION,),
            )
        ]
    for pid in pids + servers:
        with contextlib.suppress(OSError):  # not ours (a remote server, another user's)
            os.setpriority(os.PRIO_PROCESS, pid, nice)


def run(
    dsn: str,
    targets: Sequence[Target],
    *,
    mode: Mode = "full",
    clients: int = 50,
    processes: int = 2,
    pool_size: int = 10,
    seconds: float = 8.0,
    writes_per_s: float = 20.0,
    conditional_share: float = 0.9,
    seed: int = 0,
    reader_nice: int = 0,
    writer_realtime: bool = True,
) -> SurgeResult:
    """One surge run (see the module's doc). `processes=1` keeps the readers in this process;
    more spawn processes (each `clients // processes` threads, `pool_size // processes`
    connections). `reader_nice` > 0 lowers the CPU priority of the reader processes and of
    their server processes (a server on this machine, run by this user or as root).
    `writer_realtime` puts the writer's thread and its server process under SCHED_RR (root
    or CAP_SYS_NICE, a server on this machine; best effort, `SurgeResult.writer_realtime` says
    whether it applied), so that the writer keeps its pace however busy the readers keep the
    cores: modes compare at one write rate."""
    if mode != "full" and not conditional_reads():
        raise ValueError("this tree's views.page_view has no conditional reads (if_version)")
    if processes < 1 or clients < processes or pool_size < processes:
        raise ValueError("need at least one client and one connection per process")
    mp = multiprocessing.get_context("spawn")
    go = mp.Event()
    stop = mp.Event()
    out: Any = mp.Queue()
    plans = [
        _Plan(
            dsn,
            tuple(targets),
            mode,
            clients // processes + (1 if k < clients % processes else 0),
            pool_size // processes,
            conditional_share,
            seed * 100 + k,
        )
        for k in range(processes)
    ]
    written = _WriterReport()
    errors: list[str] = []
    writer = threading.Thread(
        target=_writer,
        args=(dsn, targets, go, stop, writes_per_s, written, errors, writer_realtime),
    )
    readers: list[Any]
    if processes == 1:
        readers = [threading.Thread(target=_readers, args=(plans[0], go, stop, out))]
    else:
        readers = [mp.Process(target=_readers, args=(plan, go, stop, out)) for plan in plans]
    writer.start()
    for reader in readers:
        reader.start()
    reports: list[_ReaderReport] = []
    try:
        for _ in readers:
            ready = out.get(timeout=120)
            if ready != "ready":
                raise RuntimeError(f"a reader process failed to start: {ready!r}")
        if reader_nice > 0:
            processes_ = [r for r in readers if isinstance(r, multiprocessing.process.BaseProcess)]
            _renice(dsn, [r.pid for r in processes_ if r.pid is not None], reader_nice)
        go.set()
        time.sleep(seconds)
    finally:
        go.set()
        stop.set()
        reports = [out.get(timeout=120) for _ in readers]
        for reader in readers:
            reader.join(timeout=120)
        writer.join(timeout=120)
    latencies = [t for r in reports for t in r.latencies_us]
    errors += [e for r in reports for e in r.errors]
    return SurgeResult(
        mode=mode,
        snapshot=snapshot(),
        clients=clients,
        seconds=seconds,
        requests=len(latencies),
        not_modified=sum(r.not_modified for r in reports),
        p50_us=percentile(latencies, 0.5) if latencies else 0.0,
        p99_us=percentile(latencies, 0.99) if latencies else 0.0,
        writes=written.writes,
        errors=tuple(errors),
        writes_target_per_s=writes_per_s,
        writer_realtime=written.realtime,
        writer_run_queue_s=written.run_queue_s,
    )
