"""A deterministic dataset for the benchmark, at two scales.

Everything is generated inside PostgreSQL (INSERT ... SELECT generate_series) from a seeded
random() and ids derived from counters, so two runs at one scale load the same rows (timestamps
are relative to the load's now()). Generating data is not what is measured: triggers are off
while loading (`session_replication_role = replica`, so the rows are made consistent by
construction: same-page component ids, chained status-change log), and the component statuses
are then brought in line by statusdb's own from-scratch recompute (`status.recompute`).

Layout (P pages of 50 components each):

* page 1, slug `bench`: the page-view page. Components 0-39 follow team 1 (service identifiers
  svc-0 .. svc-7, five components each), 40-49 are set by hand. One active HIGH incident on
  svc-1 (five components in PARTIAL_OUTAGE), five active status incidents (five updates each),
  three upcoming maintenance windows, and all the subscribers of the fan-out case.
* page 2, slug `incident-50`: 50 components following team 2 (no service identifier), so one
  incident of team 2 moves all 50.
* pages 3-12, slugs `incident-500-N`: 500 components following team 3.
* pages 13..P: the rest of the installation, laid out like page 1; the platform incidents'
  history and the active incidents, the maintenance windows due for the scheduler, running
  maintenance, and the other status incidents land here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from statusdb import status, views

COMPONENTS_PER_PAGE = 50
BENCH_PAGE_SLUG = "bench"
INCIDENT_50_TEAM = 2
INCIDENT_500_TEAM = 3
FIRST_REGULAR_PAGE = 13
#: Maintenance windows made due for the scheduler's step (numbers 11..110, see below).
DUE_WINDOWS = range(11, 111)


@dataclass(frozen=True)
class Scale:
    """How much of everything to generate, and how long the timed loops run."""

    name: str
    pages: int
    incidents: int
    active_incidents: int
    maintenance_windows: int
    status_incidents: int
    subscribers: int
    status_changes_per_component: int
    #: Rows per subscriber-import run.
    import_rows: int
    #: Seconds of each phase of the mixed-load case (readers alone, then with the writer).
    mixed_seconds: float
    #: Iterations of the latency cases.
    iterations: int
    #: Seconds of each mode of the surge case (bench/surge.py).
    surge_seconds: float = 8.0

    @property
    def components(self) -> int:
        return self.pages * COMPONENTS_PER_PAGE

    @property
    def status_changes(self) -> int:
        return self.components * self.status_changes_per_component

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pages": self.pages,
            "components": self.components,
            "incidents": self.incidents,
            "active_incidents": self.active_incidents,
            "maintenance_windows": self.maintenance_windows,
            "recurring_windows": self.maintenance_windows // 10,
            "status_incidents": self.status_incidents,
            "status_incident_updates": self.status_incidents * 5,
            "subscribers_on_bench_page": self.subscribers,
            "status_changes": self.status_changes,
        }


SCALES = {
    "large": Scale(
        name="large",
        pages=1000,
        incidents=100_000,
        active_incidents=200,
        maintenance_windows=10_000,
        status_incidents=100_000,
        subscribers=1_000_000,
        status_changes_per_component=20,
        import_rows=100_000,
        mixed_seconds=30.0,
        iterations=2000,
        surge_seconds=20.0,
    ),
    "small": Scale(
        name="small",
        pages=100,
        incidents=10_000,
        active_incidents=20,
        maintenance_windows=1_000,
        status_incidents=10_000,
        subscribers=100_000,
        status_changes_per_component=20,
        import_rows=20_000,
        mixed_seconds=10.0,
        iterations=1000,
    ),
}

# Deterministic UUIDv7-shaped ids: a fake millisecond clock that advances with the counter (so
# ids are time-ordered like statusdb_new_id()'s), then hashed bits; `kind` (1 team, 2 page,
# 3 component, 4 incident, 5 window, 6 status incident, 7 subscriber, 8 status change) keeps
# tables apart.
_ID_FUNCTION = """
CREATE FUNCTION pg_temp.bench_id(kind integer, n bigint) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT (lpad(to_hex(1700000000000 + n), 12, '0') || '7'
            || substr(lpad(to_hex(hashint8extended(n, kind)), 16, '0'), 1, 3) || '8'
            || substr(lpad(to_hex(hashint8extended(n, kind)), 16, '0'), 4, 13)
            || lpad(to_hex(n & 255), 2, '0'))::uuid::text
$$;
CREATE FUNCTION pg_temp.team_of_page(p integer) RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN p BETWEEN 3 AND 12 THEN 3 ELSE p END $$;
CREATE FUNCTION pg_temp.component_id(p integer, k integer) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT pg_temp.bench_id(3, (p - 1) * 50 + k + 1) $$;
"""

_TEAMS = """
INSERT INTO team (id, name, created_at)
SELECT pg_temp.bench_id(1, t), 'Team ' || t, now() - interval '500 days'
FROM generate_series(1, %(pages)s) AS t
"""

_PAGES = """
INSERT INTO status_page (id, name, description, slug, is_public, team_id, created_by_id,
                         created_at)
SELECT pg_temp.bench_id(2, p),
       CASE WHEN p = 1 THEN 'Bench Status' ELSE 'Status page ' || p END,
       'The status of our services, page ' || p,
       CASE WHEN p = 1 THEN 'bench'
            WHEN p = 2 THEN 'incident-50'
            WHEN p <= 12 THEN 'incident-500-' || p
            ELSE 'page-' || p END,
       true,
       pg_temp.bench_id(1, pg_temp.team_of_page(p)),
       'user-' || (p %% 17),
       now() - interval '450 days'
FROM generate_series(1, %(pages)s) AS p
"""

_COMPONENTS = """
INSERT INTO status_page_component (id, status_page_id, name, description, display_order,
                                   team_id, service_identifier, current_status, manual_status,
                                   status_updated_at, created_at)
SELECT pg_temp.component_id(p, k),
       pg_temp.bench_id(2, p),
       'Component ' || lpad(k::text, 2, '0'),
       CASE WHEN k %% 3 = 0 THEN 'Serves the ' || k || 'th part of the product' END,
       k,
       CASE WHEN p BETWEEN 2 AND 12 OR k < 40
            THEN pg_temp.bench_id(1, pg_temp.team_of_page(p)) END,
       CASE WHEN p BETWEEN 2 AND 12 OR k >= 40 THEN NULL ELSE 'svc-' || (k / 5) END,
       'OPERATIONAL',
       CASE WHEN k >= 40 AND NOT (p BETWEEN 2 AND 12) AND random() < 0.02
            THEN 'DEGRADED_PERFORMANCE' ELSE 'OPERATIONAL' END,
       now() - interval '400 days',
       now() - interval '400 days'
FROM generate_series(1, %(pages)s) AS p, generate_series(0, 49) AS k
ORDER BY p, k
"""

# Platform incidents: 1 .. active are active (random regular teams), plus one HIGH incident on
# svc-1 of the bench page's team; the rest is a year of resolved history.
_INCIDENTS = """
INSERT INTO incident (id, team_id, title, priority, status, service_identifier, created_at,
                      updated_at, resolved_at)
SELECT pg_temp.bench_id(4, n),
       pg_temp.bench_id(1, CASE WHEN n > %(active)s AND random() < 0.05 THEN 1
                                ELSE %(first_regular)s
                                     + floor(random() * (%(pages)s - %(first_regular)s + 1))::int
                           END),
       'Incident ' || n || ': elevated error rate',
       (ARRAY['CRITICAL', 'HIGH', 'HIGH', 'MEDIUM', 'MEDIUM', 'LOW', 'INFO'])
           [1 + floor(random() * 7)::int],
       CASE WHEN n <= %(active)s THEN (ARRAY['OPEN', 'ACKNOWLEDGED'])[1 + n %% 2]
            ELSE (ARRAY['RESOLVED', 'CLOSED'])[1 + n %% 2] END,
       CASE WHEN random() < 0.2 THEN NULL ELSE 'svc-' || floor(random() * 8)::int END,
       x.created_at, x.created_at,
       CASE WHEN n > %(active)s THEN x.created_at + random() * interval '6 hours' END
FROM generate_series(1, %(incidents)s - 1) AS n,
     LATERAL (SELECT CASE WHEN n <= %(active)s THEN now() - random() * interval '2 days'
                          ELSE now() - interval '2 days' - random() * interval '363 days'
                     END AS created_at) AS x
WHERE n > 0
"""

# The active HIGH incident on the bench page (svc-1: components 5-9).
_BENCH_INCIDENT = """
INSERT INTO incident (id, team_id, title, priority, status, service_identifier, created_at,
                      updated_at)
VALUES (pg_temp.bench_id(4, 0), pg_temp.bench_id(1, 1),
        'Elevated latency on the API', 'HIGH', 'OPEN', 'svc-1', now() - interval '3 hours',
        now() - interval '3 hours')
"""

# Maintenance windows by number n:
#   1-3       bench page, upcoming within the page view's 7-day horizon
#   4-10      bench page, completed
#   11-70     due: SCHEDULED and started (-> IN_PROGRESS)
#   71-90     due: IN_PROGRESS one-off that ended (-> COMPLETED)
#   91-110    due: recurring (daily) whose occurrence ended (-> next occurrence)
#   111-130   running (IN_PROGRESS, not ended)
#   131 .. 90 + W/10   recurring (weekly), next occurrence in the future
#   then      10 % scheduled in the future, 5 % cancelled, the rest completed in the past
_WINDOWS = """
INSERT INTO maintenance_window (id, status_page_id, title, description, start_time, end_time,
                                recurrence_rule, recurrence_start, time_zone,
                                auto_update_status, notify_subscribers, status,
                                created_by_id, created_at, updated_at)
SELECT pg_temp.bench_id(5, n),
       pg_temp.bench_id(2, w.page),
       'Maintenance ' || n, 'Planned work on the storage layer',
       w.start_time, w.end_time, w.rule, w.rule_start, 'UTC', true, n %% 4 <> 0, w.status,
       'user-1', now() - interval '450 days', now() - interval '450 days'
FROM generate_series(1, %(windows)s) AS n,
     LATERAL (SELECT date_trunc('hour', now()) AS hour,
                     %(first_regular)s + n %% (%(pages)s - %(first_regular)s + 1) AS page,
                     random() AS r) AS b,
     LATERAL (
         SELECT CASE WHEN n <= 10 THEN 1 ELSE b.page END AS page,
                CASE WHEN n <= 3 THEN 'SCHEDULED'
                     WHEN n <= 10 THEN 'COMPLETED'
                     WHEN n <= 70 THEN 'SCHEDULED'
                     WHEN n <= 90 THEN 'IN_PROGRESS'
                     WHEN n <= 110 THEN (ARRAY['SCHEDULED', 'IN_PROGRESS'])[1 + n %% 2]
                     WHEN n <= 130 THEN 'IN_PROGRESS'
                     WHEN n <= %(recurring_end)s THEN 'SCHEDULED'
                     WHEN b.r < 0.10 THEN 'SCHEDULED'
                     WHEN b.r < 0.15 THEN 'CANCELLED'
                     ELSE 'COMPLETED' END AS status,
                CASE WHEN n <= 3 THEN b.hour + n * interval '1 day'
                     WHEN n <= 10 THEN b.hour - n * interval '20 days'
                     WHEN n <= 70 THEN now() - interval '30 minutes' - b.r * interval '1 hour'
                     WHEN n <= 90 THEN now() - interval '1 day'
                     WHEN n <= 110 THEN b.hour - interval '2 days'
                     WHEN n <= 130 THEN now() - interval '1 hour'
                     WHEN n <= %(recurring_end)s
                         THEN date_trunc('day', now()) - interval '28 days'
                              + (n %% 24) * interval '1 hour' + interval '35 days'
                     WHEN b.r < 0.10 THEN b.hour + interval '8 days' + b.r * interval '500 days'
                     ELSE b.hour - interval '1 day' - b.r * interval '3600 days'
                END AS start_time,
                CASE WHEN n <= 110 AND n > 90 THEN interval '3 hours'
                     WHEN n <= 70 AND n > 10 THEN interval '1 day'
                     WHEN n <= 90 AND n > 70 THEN interval '23 hours'
                     WHEN n <= 130 AND n > 110 THEN interval '1 day'
                     ELSE interval '2 hours' END AS duration,
                CASE WHEN n BETWEEN 91 AND 110 THEN 'FREQ=DAILY'
                     WHEN n BETWEEN 131 AND %(recurring_end)s THEN 'FREQ=WEEKLY' END AS rule,
                CASE WHEN n BETWEEN 91 AND 110 THEN b.hour - interval '10 days'
                     WHEN n BETWEEN 131 AND %(recurring_end)s
                         THEN date_trunc('day', now()) - interval '28 days'
                              + (n %% 24) * interval '1 hour' END AS rule_start
     ) AS a,
     LATERAL (SELECT a.page, a.status, a.start_time, a.start_time + a.duration AS end_time,
                     a.rule, a.rule_start) AS w
"""

_WINDOW_COMPONENTS = """
INSERT INTO maintenance_window_component (maintenance_window_id, component_id)
SELECT w.id, pg_temp.component_id(p.page, (n * 7 + j * 13) %% 50)
FROM generate_series(1, %(windows)s) AS n,
     LATERAL (SELECT CASE WHEN n <= 10 THEN 1
                          ELSE %(first_regular)s + n %% (%(pages)s - %(first_regular)s + 1)
                     END AS page) AS p,
     LATERAL (SELECT pg_temp.bench_id(5, n) AS id) AS w,
     generate_series(0, n %% 3) AS j
"""

# Status incidents: the bench page has five active ones; one page in ten has one active one;
# the rest is resolved history over a year, five updates each.
_STATUS_INCIDENTS = """
INSERT INTO status_incident (id, status_page_id, title, message, severity, status,
                             affected_component_ids, created_at, updated_at, resolved_at,
                             updates)
SELECT pg_temp.bench_id(6, n),
       pg_temp.bench_id(2, s.page),
       'Degraded performance of component ' || (n %% 50),
       'We are investigating reports of slow responses in some regions.',
       (ARRAY['MINOR', 'MINOR', 'MAJOR', 'CRITICAL'])[1 + floor(random() * 4)::int],
       CASE WHEN s.active THEN (ARRAY['INVESTIGATING', 'IDENTIFIED', 'MONITORING'])[1 + n %% 3]
            ELSE 'RESOLVED' END,
       ARRAY(SELECT pg_temp.component_id(s.page, (n * 7 + j * 13) %% 50)
             FROM generate_series(0, n %% 3) AS j),
       s.created_at,
       s.created_at + interval '4 hours',
       CASE WHEN NOT s.active THEN s.created_at + interval '4 hours' END,
       (SELECT jsonb_agg(jsonb_build_object(
                   'timestamp', s.created_at + u * interval '1 hour',
                   'status', CASE WHEN s.active THEN 'INVESTIGATING'
                                  ELSE (ARRAY['INVESTIGATING', 'IDENTIFIED', 'MONITORING',
                                              'MONITORING', 'RESOLVED'])[u + 1] END,
                   'message', 'Update ' || (u + 1) || ': we are working on it and will post '
                              || 'again within the hour.')
               ORDER BY u)
        FROM generate_series(0, 4) AS u)
FROM generate_series(1, %(status_incidents)s) AS n,
     LATERAL (SELECT CASE WHEN n <= %(per_page)s THEN 1
                          ELSE 1 + n %% %(pages)s END AS page) AS pp,
     LATERAL (SELECT pp.page,
                     (pp.page = 1 AND n <= 5)
                         OR (pp.page > 1 AND pp.page %% 10 = 0 AND n <= %(pages)s * 2)
                         AS active) AS a,
     LATERAL (SELECT a.page AS page, a.active,
                     CASE WHEN a.active THEN now() - interval '5 hours' - n * interval '1 minute'
                          ELSE now() - interval '1 day' - random() * interval '364 days'
                     END AS created_at) AS s
"""

# 1 .. M on the bench page; ten on every other page. 30 % follow all components.
_SUBSCRIBERS = """
INSERT INTO status_subscriber (id, status_page_id, channel, destination, component_ids,
                               is_verified, is_active, created_at, updated_at)
SELECT pg_temp.bench_id(7, n),
       pg_temp.bench_id(2, s.page),
       s.channel,
       CASE s.channel WHEN 'EMAIL' THEN 'user' || n || '@example.com'
                      WHEN 'WEBHOOK' THEN 'https://hooks.example.com/status/' || n
                      ELSE 'https://hooks.slack.com/services/T000/B' || n END,
       CASE WHEN s.r < 0.3 THEN '{}'::text[]
            ELSE ARRAY(SELECT pg_temp.component_id(s.page, (s.k + j * 13) %% 50)
                       FROM generate_series(0, s.k %% 3) AS j) END,
       random() < 0.95,
       random() < 0.97,
       now() - interval '300 days',
       now() - interval '300 days'
FROM generate_series(1, %(subscribers)s + (%(pages)s - 1) * 10) AS n,
     LATERAL (SELECT CASE WHEN n <= %(subscribers)s THEN 1
                          ELSE 2 + (n - %(subscribers)s - 1) / 10 END AS page,
                     (ARRAY['EMAIL', 'EMAIL', 'EMAIL', 'EMAIL', 'EMAIL', 'EMAIL', 'EMAIL',
                            'WEBHOOK', 'WEBHOOK', 'SLACK'])[1 + n %% 10] AS channel,
                     random() AS r,
                     floor(random() * 50)::int AS k) AS s
"""

# Per component, `per_component` changes over the past year, in pairs: OPERATIONAL -> S, then
# S -> OPERATIONAL, so every chain ends at OPERATIONAL (the loaded current_status) and the
# recompute that follows logs the real current statuses on top. Delivered long ago.
_STATUS_CHANGES = """
INSERT INTO status_change (id, status_page_id, component_id, previous_status, new_status, cause,
                           changed_at, notified_at, outcome)
SELECT pg_temp.bench_id(8, row_number() OVER (ORDER BY x.changed_at, x.component_id)),
       x.page_id, x.component_id,
       CASE WHEN x.j %% 2 = 1 THEN 'OPERATIONAL' ELSE x.bad END,
       CASE WHEN x.j %% 2 = 1 THEN x.bad ELSE 'OPERATIONAL' END,
       CASE WHEN x.bad = 'UNDER_MAINTENANCE' THEN 'MAINTENANCE' ELSE 'INCIDENT' END,
       x.changed_at, x.changed_at + interval '5 minutes', 'NOTIFIED'
FROM (
    SELECT pg_temp.bench_id(2, p) AS page_id,
           pg_temp.component_id(p, k) AS component_id,
           j,
           (ARRAY['MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE', 'UNDER_MAINTENANCE'])
               [1 + abs(hashint4(p * 1000 + k * 20 + (j + 1) / 2)) %% 4] AS bad,
           now() - interval '366 days'
               + (j - 1 + CASE WHEN j %% 2 = 1 THEN random() * 0.5 ELSE 0.5 + random() * 0.4 END)
                 * (interval '365 days' / %(per_component)s) AS changed_at
    FROM generate_series(1, %(pages)s) AS p, generate_series(0, 49) AS k,
         generate_series(1, %(per_component)s) AS j
) AS x
ORDER BY x.changed_at, x.component_id
"""

# The scheduler case restores its due windows after each step from this copy.
_ADVANCE_RESET = """
CREATE TABLE bench_advance_reset AS
SELECT id, status, start_time, end_time
FROM maintenance_window
WHERE id IN (SELECT pg_temp.bench_id(5, n) FROM generate_series(%(first)s::int, %(last)s::int) AS n)
"""


def load(dsn: str, scale: Scale, log: Callable[[str], None]) -> dict[str, float]:
    """Load `scale`'s dataset into the (migrated, empty) database at `dsn`; seconds per step."""
    timings: dict[str, float] = {}
    params: dict[str, Any] = {
        "pages": scale.pages,
        "first_regular": FIRST_REGULAR_PAGE,
        "incidents": scale.incidents,
        "active": scale.active_incidents,
        "windows": scale.maintenance_windows,
        "recurring_end": 130 + scale.maintenance_windows // 10 - 20,
        "status_incidents": scale.status_incidents,
        "per_page": scale.status_incidents // scale.pages,
        "subscribers": scale.subscribers,
        "per_component": scale.status_changes_per_component,
        "first": DUE_WINDOWS.start,
        "last": DUE_WINDOWS.stop - 1,
    }
    with psycopg.connect(dsn) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET max_parallel_workers_per_gather = 0")  # one random() sequence
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(0.42)")
        conn.execute(_ID_FUNCTION)
        steps = [
            ("teams", _TEAMS),
            ("pages", _PAGES),
            ("components", _COMPONENTS),
            ("incidents", _INCIDENTS),
            ("bench incident", _BENCH_INCIDENT),
            ("maintenance windows", _WINDOWS),
            ("window components", _WINDOW_COMPONENTS),
            ("status incidents", _STATUS_INCIDENTS),
            ("subscribers", _SUBSCRIBERS),
            ("status changes", _STATUS_CHANGES),
            ("advance reset copy", _ADVANCE_RESET),
        ]
        for name, statement in steps:
            started = time.perf_counter()
            cur = conn.execute(statement.encode(), params)
            timings[name] = time.perf_counter() - started
            log(f"  {name}: {cur.rowcount} rows in {timings[name]:.1f} s")
        conn.execute("SET session_replication_role = origin")
        conn.commit()

        started = time.perf_counter()
        drift = status.recompute(conn, repair=True)
        conn.commit()
        timings["recompute"] = time.perf_counter() - started
        log(
            f"  recompute(repair=True): {len(drift)} components set in {timings['recompute']:.1f} s"
        )
        # The pages' snapshots (migration 0017): the load ran without their triggers.
        started = time.perf_counter()
        rendered = views.recompute_snapshots(conn, repair=True)
        conn.commit()
        timings["page snapshots"] = time.perf_counter() - started
        log(f"  page snapshots: {len(rendered)} rendered in {timings['page snapshots']:.1f} s")

    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        timings["vacuum analyze"] = time.perf_counter() - started
        log(f"  vacuum analyze + checkpoint: {timings['vacuum analyze']:.1f} s")
    return timings
