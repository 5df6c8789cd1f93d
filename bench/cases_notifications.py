"""Benchmark cases of notification events (migration 0018, issue 12).

* fan-out of one status incident update to every subscriber of the benchmark page (page-wide
  incident: every active, verified subscriber wanting incident_updated), streamed through
  `outbox.recipients` and the worker's per-recipient step `outbox.deliver_one`, with a deliver
  callback that only counts: the client's part of a worker round. Target >= 300k recipients/s,
  memory flat in subscriber count.
* appending an update to a status incident with 50 affected components, with the notification
  trigger and without it (the trigger disabled by the owner between phases): target <= 2x.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

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


NOTIFICATION_CASES: list[tuple[str, Callable[[Context], list[CaseResult]]]] = [
    ("event fan-out", event_fan_out),
    ("append update", append_update),
]
