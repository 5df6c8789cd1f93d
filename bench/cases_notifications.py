"""Benchmark cases of notification events (migration 0018, issue 12).

* fan-out of one status incident update to every subscriber of the benchmark page (page-wide
  incident: every active, verified subscriber wanting incident_updated), streamed through
  `outbox.recipients` and the worker's per-recipient step `outbox.deliver_one`, with a deliver
  callback that only counts: the client's part of a worker round. Target >= 300k recipients/s,
  memory flat in subscriber count.
* appending an update to a status incident with 50 affected components, with the notification
  trigger and without it (the trigger disabled by the owner between phases): target <= 2x.
* a worker round (issue 27): `outbox.process_all` over one incident update of the benchmark
  page, page-wide and of one component, target >= 300k recipients/s; and a round with a
  deliverer failing 1 call in 100: every other delivery completes in it, 0 stranded claims.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.cases import Context, _rss_bytes, app_connection
from bench.timing import CaseResult, percentile, timed
from statusdb import status_incidents
from statusdb.db import queries
from statusdb.domain.types import Notification
from statusdb.workers import outbox
from statusdb.workers.outbox import Recipient

_TRIGGER = "status_incident_notify_updated"


def _page_wide_update(ctx: Context) -> outbox.ClaimedEvent:
    """An incident_updated event of the benchmark page as a worker claims it (not written)."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return outbox.ClaimedEvent(
        id="bench-event",
        status_page_id=ctx.bench_page_id,
        page_time_zone="UTC",
        kind="incident_updated",
        component_ids=(),
        payload={
            "page": {"id": ctx.bench_page_id, "name": "Bench", "slug": "bench"},
            "incident": {"id": "x", "title": "Slow", "severity": "MINOR", "status": "IDENTIFIED"},
            "update": {"status": "IDENTIFIED", "message": "Found it.", "timestamp": stamp},
            "components": [],
        },
        created_at=now,
        outcome="NOTIFIED",
    )


def event_fan_out(ctx: Context) -> list[CaseResult]:
    runs = 5 if ctx.scale.subscribers <= 100_000 else 3
    target = 300_000.0
    delivered = 0

    def deliver(notification: Notification, recipient: Recipient, key: str) -> None:
        nonlocal delivered
        delivered += 1

    with app_connection(ctx, autocommit=False) as conn:
        claimed = _page_wide_update(ctx)
        notification = claimed.notification

        def stream() -> int:
            count = 0
            for recipient in outbox.recipients(conn, claimed):
                outbox.deliver_one(deliver, notification, recipient, claimed.key)
                count += 1
            conn.commit()
            return count

        matching = stream()  # warm-up
        durations = [timed(stream) for _ in range(runs)]
        at_10k = peak = 0
        for count, _ in enumerate(outbox.recipients(conn, claimed), start=1):
            if count == 10_000:
                at_10k = peak = _rss_bytes()
            elif count % 10_000 == 0:
                peak = max(peak, _rss_bytes())
        conn.commit()
        # Floors as in the component fan-out case: the server's part alone (count, send none),
        # and a plain server-side cursor of tuples (no Recipient, no deliver_one); the plan.
        sql_text = queries.get("event_recipients").sql
        params = {
            "status_page_id": claimed.status_page_id,
            "component_ids": list(claimed.component_ids),
            "kind": claimed.kind,
        }

        def server_only() -> object:
            row = conn.execute(
                b"SELECT count(*) FROM (" + sql_text.rstrip(b"; \n") + b") AS r", params
            ).fetchone()
            conn.commit()
            return row

        def plain_cursor() -> int:
            with conn.cursor("bench_plain_event") as cur:
                cur.itersize = 5000
                cur.execute(sql_text, params)
                count = sum(1 for _ in cur)
            conn.commit()
            return count

        server_only()
        server_p50 = percentile([timed(server_only) for _ in range(runs)], 0.5)
        plain_cursor()
        plain_p50 = percentile([timed(plain_cursor) for _ in range(runs)], 0.5)
        plan = [
            str(row[0]).strip()
            for row in conn.execute(b"EXPLAIN (COSTS OFF) " + sql_text, params).fetchall()
        ]
        conn.commit()
    growth_mb = (peak - at_10k) / 2**20
    p50 = percentile(durations, 0.5)
    rate = matching / (p50 / 1e6)
    return [
        CaseResult(
            name=(
                f"fan-out of one incident update, {ctx.scale.subscribers:,} subscribers, "
                "streamed + deliver_one"
            ),
            p50_us=p50,
            p99_us=max(durations),
            n=runs,
            ratio=rate / target,
            baseline="recipients per second (ratio = recipients/s / 300k)",
            baseline_p50_us=None,
            target=">= 300k recipients/s, memory growth < 10 MB",
            met=rate >= target and growth_mb < 10,
            notes={
                "recipients": matching,
                "subscribers_on_page": ctx.scale.subscribers,
                "recipients_per_s": round(rate),
                "rss_growth_mb_10k_to_end": round(growth_mb, 2),
                "deliver_calls": delivered,
                "floor_server_only_ms": round(server_p50 / 1000, 1),
                "floor_server_only_rows_per_s": round(matching / (server_p50 / 1e6)),
                "floor_plain_cursor_ms": round(plain_p50 / 1000, 1),
                "floor_plain_cursor_rows_per_s": round(matching / (plain_p50 / 1e6)),
                "plan": [line for line in plan if "Scan" in line],
            },
        )
    ]


def _set_trigger(ctx: Context, enabled: bool) -> None:
    with psycopg.connect(ctx.admin_dsn, autocommit=True) as admin:
        action = "ENABLE" if enabled else "DISABLE"
        admin.execute(f"ALTER TABLE status_incident {action} TRIGGER {_TRIGGER}")


def append_update(ctx: Context) -> list[CaseResult]:
    """Phases of `n` appends, alternately without and with the trigger, each on a fresh
    incident (an incident's timeline grows with every append, so both start equal)."""
    n = max(50, ctx.scale.iterations // 10)
    phases = 3
    with_trigger: list[float] = []
    without: list[float] = []
    with app_connection(ctx) as conn:
        component_ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM status_page_component WHERE status_page_id = %s"
                " ORDER BY display_order LIMIT 50",
                (ctx.bench_page_id,),
            ).fetchall()
        ]
        assert len(component_ids) == 50

        def phase(enabled: bool) -> list[float]:
            _set_trigger(ctx, enabled)
            incident = status_incidents.create(
                conn,
                ctx.bench_page_id,
                title="bench append",
                severity="MINOR",
                message="first",
                affected_component_ids=component_ids,
            )
            times = [
                timed(
                    lambda: status_incidents.add_update(
                        conn, incident.id, status="IDENTIFIED", message="An update for readers."
                    )
                )
                for _ in range(n)
            ]
            status_incidents.delete(conn, incident.id)
            return times

        try:
            phase(False)  # warm-up
            phase(True)
            for _ in range(phases):
                without.extend(phase(False))
                with_trigger.extend(phase(True))
        finally:
            _set_trigger(ctx, True)
    case, base = percentile(with_trigger, 0.5), percentile(without, 0.5)
    ratio = case / base
    return [
        CaseResult(
            name="append an update to an incident with 50 components, with notification event",
            p50_us=case,
            p99_us=percentile(with_trigger, 0.99),
            n=len(with_trigger),
            ratio=ratio,
            baseline="the same append, notification trigger disabled",
            baseline_p50_us=base,
            target="<= 2x",
            met=ratio <= 2.0,
            notes={"phases": phases, "appends_per_phase": n},
        )
    ]


def _settle(ctx: Context) -> None:
    """Complete what earlier cases left pending (their events and changes are not this case's),
    so that a round claims only what the case writes."""
    with psycopg.connect(ctx.admin_dsn, autocommit=True) as admin:
        admin.execute(
            "UPDATE notification_event SET notified_at = now(), outcome = 'MUTED',"
            " lease_owner = NULL, lease_expires_at = NULL WHERE notified_at IS NULL"
        )
        admin.execute(
            "UPDATE status_change SET notified_at = now(), outcome = 'MUTED',"
            " lease_owner = NULL, lease_expires_at = NULL WHERE notified_at IS NULL"
        )


def _stranded(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM notification_event"
        "        WHERE notified_at IS NULL AND lease_owner IS NOT NULL)"
        "     + (SELECT count(*) FROM status_change"
        "        WHERE notified_at IS NULL AND lease_owner IS NOT NULL)"
    ).fetchone()
    conn.commit()
    return int(row[0]) if row else -1


def worker_round(ctx: Context) -> list[CaseResult]:
    """Issue 27: `outbox.process_all` itself (claim, stream, deliver, complete) over one event
    of the benchmark page, page-wide and of one component, with a per-recipient deliver that
    only counts; then with a deliverer failing 1 call in 100."""
    runs = 3
    target = 300_000.0
    results: list[CaseResult] = []
    _settle(ctx)
    with app_connection(ctx, autocommit=False) as conn:
        first = conn.execute(
            "SELECT id FROM status_page_component WHERE status_page_id = %s"
            " ORDER BY display_order LIMIT 1",
            (ctx.bench_page_id,),
        ).fetchone()
        assert first is not None
        calls = 0

        def count(notification: Notification, recipient: Recipient, key: str) -> None:
            nonlocal calls
            calls += 1

        for label, affected in (("page-wide", []), ("one component", [first[0]])):
            incident = status_incidents.create(
                conn,
                ctx.bench_page_id,
                title=f"bench round {label}",
                severity="MINOR",
                message="first",
                affected_component_ids=affected,
            )
            conn.commit()
            outbox.process_all(conn, count, worker_id="bench", hold_down=dt.timedelta(0))
            durations: list[float] = []
            floors: list[float] = []
            delivered: list[int] = []
            # The floor, alternated run by run with the round: the same recipients through a
            # plain server-side cursor of tuples (the query alone, no worker, no delivery).
            params: dict[str, object] = {
                "status_page_id": ctx.bench_page_id,
                "component_ids": affected,
                "kind": "incident_updated",
            }

            def plain_cursor(params: dict[str, object] = params) -> int:
                with conn.cursor("bench_plain_round") as cur:
                    cur.itersize = 5000
                    cur.execute(queries.get("event_recipients").sql, params)
                    rows = sum(1 for _ in cur)
                conn.commit()
                return rows

            for _ in range(runs):
                floors.append(timed(plain_cursor))
                status_incidents.add_update(
                    conn, incident.id, status="IDENTIFIED", message="An update for readers."
                )
                conn.commit()
                started = time.perf_counter()
                report = outbox.process_all(
                    conn, count, worker_id="bench", hold_down=dt.timedelta(0)
                )
                durations.append((time.perf_counter() - started) * 1e6)
                delivered.append(report.deliveries)
            p50 = percentile(durations, 0.5)
            floor = percentile(floors, 0.5)
            rate = delivered[0] / (p50 / 1e6)
            results.append(
                CaseResult(
                    name=f"worker round, one incident update ({label}), deliver counts",
                    p50_us=p50,
                    p99_us=max(durations),
                    n=runs,
                    ratio=rate / target,
                    baseline="recipients per second (ratio = recipients/s / 300k)",
                    baseline_p50_us=None,
                    target=">= 300k recipients/s",
                    met=rate >= target,
                    notes={
                        "recipients": delivered[0],
                        "recipients_per_s": round(rate),
                        "runs_ms": [round(d / 1000) for d in durations],
                        "floor_plain_cursor_ms": [round(d / 1000) for d in floors],
                        "round_over_floor": round(p50 / floor, 2),
                    },
                )
            )
            status_incidents.delete(conn, incident.id)
            conn.commit()

        # A deliverer failing 1 call in 100: every other delivery completes in the round.
        calls = 0
        failed = 0

        def flaky(notification: Notification, recipient: Recipient, key: str) -> None:
            nonlocal calls, failed
            calls += 1
            if calls % 100 == 0:
                failed += 1
                raise RuntimeError("1 in 100")

        incident = status_incidents.create(
            conn, ctx.bench_page_id, title="bench flaky", severity="MINOR", message="first"
        )
        conn.commit()
        raised = False
        started = time.perf_counter()
        try:
            outbox.process_all(conn, flaky, worker_id="bench", hold_down=dt.timedelta(0))
        except RuntimeError:
            raised = True
        elapsed = time.perf_counter() - started
        stranded = _stranded(conn)
        pending = outbox.pending_events(conn) + outbox.pending_count(conn)
        retries_row = conn.execute(
            "SELECT count(*) FROM delivery_attempt"
            " WHERE notification_key IN (SELECT id FROM notification_event"
            "                            WHERE status_incident_id = %s)"
            "   AND next_attempt_at IS NOT NULL",
            (incident.id,),
        ).fetchone()
        retries = int(retries_row[0]) if retries_row else -1
        status_incidents.delete(conn, incident.id)
        conn.commit()
    results.append(
        CaseResult(
            name="worker round, deliverer failing 1 call in 100",
            p50_us=elapsed * 1e6,
            p99_us=elapsed * 1e6,
            n=1,
            ratio=float(stranded),
            baseline="stranded claims after the round (ratio = their count)",
            baseline_p50_us=None,
            target="every other delivery completes in the round, 0 stranded",
            met=stranded == 0 and pending == 0 and retries == failed and raised,
            notes={
                "calls": calls,
                "failed": failed,
                "delivered": calls - failed,
                "stranded_claims": stranded,
                "pending_after": pending,
                "retries_recorded": retries,
                "first_failure_raised": raised,
            },
        )
    )
    return results


NOTIFICATION_CASES: list[tuple[str, Callable[[Context], list[CaseResult]]]] = [
    ("event fan-out", event_fan_out),
    ("append update", append_update),
    ("worker round", worker_round),
]
