-- name: uptime_for_page
-- Time each component of a page spent in each status over [start, end), with uptime ratios.
--
-- One row per component (display order), then one page-total row (is_page_total). A page
-- without components still gets its total row; an unknown page gets no row at all.
--
-- The observed period of a component is [greatest(start, created_at), least(end, now)): time
-- before the component existed, or that has not happened yet, is not counted. A component
-- created at or after the end has no observed period (observed_from and observed_until null).
-- Its status at the start of the period is the new_status of its last change on this page at or
-- before that instant, or OPERATIONAL if it has none (every component starts there); then each
-- change on this page inside the period opens an interval that lasts until the next one. Both
-- parts read the page's log (status_page_id): a component moved here from another page brings
-- no status from there (it showed on the other page, not on this one). Time order is changed_at,
-- with seq breaking ties (several changes in one instant: only the last one lasts).
--
-- Durations are exact whole microseconds. uptime = (OPERATIONAL + DEGRADED_PERFORMANCE) /
-- (observed - UNDER_MAINTENANCE): maintenance counts neither for nor against, degraded counts
-- as up, partial and major outage as down; null when nothing is left to measure. The page
-- total adds up the components' time (a component that existed for half the range weighs
-- half), and its uptime uses the same formula.
--
-- Indexes: the in-range changes come from status_change_status_page_id_changed_at_idx (a range
-- scan bounded by [start, end)), the status at the start of each component's period from a
-- backward scan of status_change_component_id_seq_idx (stops at the first change at or before
-- it).
WITH bounds AS MATERIALIZED (
    SELECT p.id AS status_page_id,
           %(start)s::timestamptz AS range_start,
           least(%(end)s::timestamptz, clock_timestamp()) AS range_end
    FROM status_page p
    WHERE p.id = %(page_id)s
),
component AS MATERIALIZED (
    SELECT c.id, c.name, c.display_order, c.created_at,
           greatest(c.created_at, b.range_start) AS observed_from,
           b.range_end AS observed_until
    FROM bounds b
    JOIN status_page_component c ON c.status_page_id = b.status_page_id
),
timeline AS (
    -- The status each observed period starts with.
    SELECT o.id AS component_id, o.observed_from AS at, 0::bigint AS seq,
           coalesce(prior.new_status, 'OPERATIONAL') AS status, o.observed_until
    FROM component o
    LEFT JOIN LATERAL (
        SELECT sc.new_status
        FROM status_change sc
        -- The page filter as `coalesce(..., false)`, not an index condition: as uptime_daily
        -- (issue 20).
        WHERE sc.component_id = o.id
          AND coalesce(sc.status_page_id = %(page_id)s, false)
          AND sc.changed_at <= o.observed_from
        ORDER BY sc.seq DESC
        LIMIT 1
    ) AS prior ON true
    WHERE o.observed_from < o.observed_until
    UNION ALL
    -- Every change inside it.
    SELECT sc.component_id, sc.changed_at, sc.seq, sc.new_status, o.observed_until
    FROM status_change sc
    JOIN component o ON o.id = sc.component_id
    WHERE sc.status_page_id = %(page_id)s
      AND sc.changed_at > %(start)s::timestamptz
      AND sc.changed_at < %(end)s::timestamptz
      AND sc.changed_at > o.observed_from
      AND sc.changed_at < o.observed_until
),
spans AS (
    -- Each status lasts until the next change, or the end of the observed period.
    SELECT t.component_id, t.status,
           ((extract(epoch FROM coalesce(lead(t.at) OVER w, t.observed_until))
             - extract(epoch FROM t.at)) * 1000000)::bigint AS micros
    FROM timeline t
    WINDOW w AS (PARTITION BY t.component_id ORDER BY t.at, t.seq)
),
per_component AS (
    SELECT o.id AS component_id, o.name, o.display_order, o.created_at,
           CASE WHEN o.observed_from < o.observed_until THEN o.observed_from END
               AS observed_from,
           CASE WHEN o.observed_from < o.observed_until THEN o.observed_until END
               AS observed_until,
           coalesce(sum(s.micros) FILTER (WHERE s.status = 'OPERATIONAL'), 0)
               AS operational_us,
           coalesce(sum(s.micros) FILTER (WHERE s.status = 'DEGRADED_PERFORMANCE'), 0)
               AS degraded_performance_us,
           coalesce(sum(s.micros) FILTER (WHERE s.status = 'PARTIAL_OUTAGE'), 0)
               AS partial_outage_us,
           coalesce(sum(s.micros) FILTER (WHERE s.status = 'MAJOR_OUTAGE'), 0)
               AS major_outage_us,
           coalesce(sum(s.micros) FILTER (WHERE s.status = 'UNDER_MAINTENANCE'), 0)
               AS under_maintenance_us
    FROM component o
    LEFT JOIN spans s ON s.component_id = o.id
    GROUP BY o.id, o.name, o.display_order, o.created_at, o.observed_from, o.observed_until
),
grouped AS (
    -- Per component, and the page total (the empty grouping set: one row even without
    -- components).
    SELECT grouping(pc.component_id) = 1 AS is_page_total,
           pc.component_id, pc.name, pc.display_order, pc.created_at, pc.observed_from,
           pc.observed_until,
           coalesce(sum(pc.operational_us), 0)::bigint AS operational_us,
           coalesce(sum(pc.degraded_performance_us), 0)::bigint AS degraded_performance_us,
           coalesce(sum(pc.partial_outage_us), 0)::bigint AS partial_outage_us,
           coalesce(sum(pc.major_outage_us), 0)::bigint AS major_outage_us,
           coalesce(sum(pc.under_maintenance_us), 0)::bigint AS under_maintenance_us
    FROM per_component pc
    GROUP BY GROUPING SETS ((pc.component_id, pc.name, pc.display_order, pc.created_at,
                             pc.observed_from, pc.observed_until), ())
)
SELECT b.status_page_id, b.range_start, b.range_end, g.is_page_total, g.component_id, g.name,
       g.display_order, g.created_at, g.observed_from, g.observed_until, g.operational_us,
       g.degraded_performance_us, g.partial_outage_us, g.major_outage_us,
       g.under_maintenance_us,
       (g.operational_us + g.degraded_performance_us)::double precision
           / nullif(g.operational_us + g.degraded_performance_us + g.partial_outage_us
                    + g.major_outage_us, 0) AS uptime
FROM bounds b
CROSS JOIN grouped g
ORDER BY g.is_page_total, g.display_order, g.name, g.component_id;

-- name: uptime_daily
-- Per series (component or component group) and local calendar day of the page's zone: time in each status, and the status incidents of the day.
--
-- The days: the `days` calendar days of the page's time_zone ending `until` (null: today in
-- that zone). Day i runs from the first instant whose local date is first_day + i to the
-- first instant of the next date: local midnights converted to instants, so a spring-forward
-- day lasts 23 hours (23.5 on Lord Howe), a fall-back day 25. PostgreSQL reads a repeated
-- local midnight (zones that fall back from 01:00 to 00:00, America/Havana) as its later
-- instance; `span` takes the earlier one, where the date begins. An instant's day is its local
-- date in the zone (exact with those boundaries). Nothing depends on the session's TimeZone
-- (the zone is the page's own, always named; see 0021 for why names never resolve through the
-- session's abbreviations).
--
-- The series: `series` lists what gets bars, `series_timeline` their status timelines
-- (kind, id, at, seq, status, observed_until): the status each observed period starts with,
-- then every change inside it. Components read status_change exactly as uptime_for_page does
-- (the page's log, the last change at or before the start, OPERATIONAL without one). Component
-- groups (0020) read their own log, component_group_status_change, the same way: it holds the
-- derived status (the worst of the members at each moment, with the membership of that
-- moment) as the page showed it, so a group's bars are its log's, not a re-derivation from its
-- members' logs. A group starts OPERATIONAL at creation like a component. Each kind is one
-- UNION ALL branch in `series`, `series_timeline` and `incident_series`; everything after them
-- works per (kind, id).
--
-- A series is observed from the later of its created_at and the first day's start until the
-- earlier of the last day's end and the database's clock: days before it existed, and time not
-- yet happened, count nothing ("no data"), a day it was created on counts from created_at.
-- Status incidents touch a day when their active time [created_at, resolved_at, or now while
-- unresolved) meets it (one resolved exactly at midnight does not touch the next day; one
-- resolved the instant it was created touches the day of that instant); they are listed on the
-- days of each component they name, and of each group holding one of those components, in it
-- or in a subgroup (the membership as it is now: status incidents name components only, a group
-- named when writing one is expanded to its members then, and the incident keeps no trace of
-- it; so a group lists the incidents naming its present members, and one that left the group
-- takes its incidents along). A series lists incidents from the day it was created on (a group
-- created mid-range shows none on its days without data).
--
-- Most days of most series are one status all day long. So the result does not hold a row per
-- (series, day) but, per series, the runs of whole days each status interval covers
-- (run_first .. run_last, run_status) and the days some interval covers only in part, with
-- their time per status in whole microseconds (detail_*: the day a status changed, the day the
-- series was created, today). A day in neither is "no data". The client lays them out.
--
-- Result rows, by kind: one 'page' row (the zone, first day, range; `starts`, the days'
-- boundaries: day i from starts[i + 1] to starts[i + 2]; and the status incidents of the range
-- as aligned arrays, incident_*), then one 'component' or 'group' row per series (its runs and
-- part days; the status incidents it lists as (listed_i, listed_ids) pairs, by day and oldest
-- first; a group's parent_id in `extra`). Unknown page: no rows. (Issue 20 item 5, third
-- pass: the days, listings and incidents were rows of their own, 317 rows on the bench page
-- for 51 now; the client's fetch and parse is per row.)
--
-- Indexes: the page by its primary key, components by
-- status_page_component_status_page_id_display_order_idx, the changes in range by
-- status_change_status_page_id_changed_at_idx, each component's status at the start by a
-- backward scan of status_change_component_id_seq_idx, the status incidents by
-- status_incident_status_page_id_status_idx (active ones) and
-- status_incident_resolved_history_idx (resolved after the range starts); the groups by
-- component_group_status_page_id_name_key, their changes in range by
-- component_group_status_change_status_page_id_changed_at_idx, each group's status at the start
-- by a backward scan of component_group_status_change_group_id_seq_idx, the groups' components
-- (to list incidents) by status_page_component_group_id_status_page_id_idx or primary key.
--
-- Plan (issue 20, measured on the bench's 1M-row log): the CTEs are estimated at one row, so
-- every join between two of them became a nested loop (255 changes x 50 series, 98 incident
-- listings x 50 series). The in-range changes are therefore matched to their component (or
-- group) in their own CTE, against the table (created_at bounds them), and incident_series
-- carries the series' creation and the incident's active time, so that no CTE joins another
-- by id. `located` carries the four day boundaries each interval needs, not the whole array.
-- The runs' and part days' arrays are aggregated without ORDER BY: the aggregates of one
-- group see the same rows in the same order, so the arrays stay aligned, and the client
-- places each run and part day by its own index (their order does not matter).
WITH RECURSIVE page AS MATERIALIZED (
    SELECT p.id AS status_page_id, p.time_zone, t.now, t.today,
           coalesce(%(until)s::date, t.today) - (%(days)s::integer - 1) AS first_day
    FROM status_page p
    CROSS JOIN LATERAL (
        SELECT clock_timestamp() AS now, (clock_timestamp() AT TIME ZONE p.time_zone)::date
    ) AS t (now, today)
    WHERE p.id = %(page_id)s
),
span AS MATERIALIZED (
    -- starts[i + 1]: the instant day i starts; starts[days + 1]: the end of the last day.
    -- c1 is PostgreSQL's reading of local midnight (a skipped midnight: the instant the date
    -- begins; a repeated one: its later instance); c2 reads it with the offset of the day
    -- before: the earlier instance of a repeated midnight, taken when it is midnight then.
    SELECT pg.status_page_id, pg.time_zone, pg.first_day, pg.now, b.starts,
           b.starts[1] AS range_start, b.starts[%(days)s::integer + 1] AS range_end,
           least(b.starts[%(days)s::integer + 1], pg.now) AS observed_until
    FROM page pg
    CROSS JOIN LATERAL (
        SELECT array_agg(CASE WHEN m.c2 < m.c1
                                   AND (m.c2 AT TIME ZONE pg.time_zone) = m.day::timestamp
                              THEN m.c2 ELSE m.c1 END ORDER BY m.i) AS starts
        FROM (
            SELECT x.i, x.day, x.c1,
                   (x.day::timestamp
                    - ((x.c1 - interval '1 day') AT TIME ZONE pg.time_zone
                       - (x.c1 - interval '1 day') AT TIME ZONE 'UTC')) AT TIME ZONE 'UTC'
                       AS c2
            FROM (
                SELECT g.i, pg.first_day + g.i AS day,
                       (pg.first_day + g.i)::timestamp AT TIME ZONE pg.time_zone AS c1
                FROM generate_series(0, %(days)s::integer) AS g (i)
            ) AS x
        ) AS m
    ) AS b
),
series AS MATERIALIZED (
    SELECT 'component'::text AS kind, c.id, c.name, c.display_order, c.created_at,
           greatest(c.created_at, sp.range_start) AS observed_from, sp.observed_until,
           NULL::text AS parent_id
    FROM span sp
    JOIN status_page_component c ON c.status_page_id = sp.status_page_id
    UNION ALL
    SELECT 'group'::text, g.id, g.name, g.display_order, g.created_at,
           greatest(g.created_at, sp.range_start), sp.observed_until, g.parent_id
    FROM span sp
    JOIN component_group g ON g.status_page_id = sp.status_page_id
),
component_change AS MATERIALIZED (
    -- The page's changes in the range: one range scan of the log, then matched to components.
    SELECT sc.component_id, sc.changed_at, sc.seq, sc.new_status
    FROM status_change sc
    JOIN status_page_component c ON c.id = sc.component_id
    WHERE sc.status_page_id = %(page_id)s
      AND c.status_page_id = %(page_id)s
      AND sc.changed_at > (SELECT sp.range_start FROM span sp)
      AND sc.changed_at < (SELECT sp.observed_until FROM span sp)
      AND sc.changed_at > c.created_at
),
group_change AS MATERIALIZED (
    -- The same for the page's groups: one range scan of their log.
    SELECT gc.group_id, gc.changed_at, gc.seq, gc.new_status
    FROM component_group_status_change gc
    JOIN component_group g ON g.id = gc.group_id
    WHERE gc.status_page_id = %(page_id)s
      AND g.status_page_id = %(page_id)s
      AND gc.changed_at > (SELECT sp.range_start FROM span sp)
      AND gc.changed_at < (SELECT sp.observed_until FROM span sp)
      AND gc.changed_at > g.created_at
),
series_timeline AS (
    SELECT s.kind, s.id, s.observed_from AS at, 0::bigint AS seq,
           coalesce(prior.new_status, 'OPERATIONAL') AS status, s.observed_until
    FROM series s
    LEFT JOIN LATERAL (
        SELECT sc.new_status
        FROM status_change sc
        -- The page filter as `coalesce(..., false)`: not an index condition. The plan is
        -- cached generic (the page unknown), and as one it ANDed a bitmap of the page's whole
        -- past (the page index) into each component's scan: 2.4 of 5 ms on the bench page
        -- (issue 20). Not `IS TRUE` either (the same rows: the column is NOT NULL): the
        -- planner estimates `IS TRUE` of an equality as selective as the equality, expects
        -- the LIMIT 1 to walk all the component's changes, and takes a bitmap of all of them
        -- and a sort (20 changes per component on the bench's 1M-row log: 1,155 buffers for
        -- the page's 50 components); coalesce is a plain filter, so the backward scan of
        -- status_change_component_id_seq_idx stops at the first change before the period
        -- (455 buffers).
        WHERE sc.component_id = s.id
          AND coalesce(sc.status_page_id = %(page_id)s, false)
          AND sc.changed_at <= s.observed_from
        ORDER BY sc.seq DESC
        LIMIT 1
    ) AS prior ON true
    WHERE s.kind = 'component' AND s.observed_from < s.observed_until
    UNION ALL
    SELECT 'component'::text, sc.component_id, sc.changed_at, sc.seq, sc.new_status,
           (SELECT sp.observed_until FROM span sp)
    FROM component_change sc
    UNION ALL
    SELECT s.kind, s.id, s.observed_from, 0::bigint,
           coalesce(prior.new_status, 'OPERATIONAL'), s.observed_until
    FROM series s
    LEFT JOIN LATERAL (
        SELECT gc.new_status
        FROM component_group_status_change gc
        -- No page filter (the group is the page's): it would invite the page's index, a scan
        -- of all its groups' past, instead of a backward scan of this group's changes.
        WHERE gc.group_id = s.id
          AND gc.changed_at <= s.observed_from
        ORDER BY gc.seq DESC
        LIMIT 1
    ) AS prior ON true
    WHERE s.kind = 'group' AND s.observed_from < s.observed_until
    UNION ALL
    SELECT 'group'::text, gc.group_id, gc.changed_at, gc.seq, gc.new_status,
           (SELECT sp.observed_until FROM span sp)
    FROM group_change gc
),
located AS MATERIALIZED (
    -- Each status lasts until the next change, or the end of the observed period; it touches
    -- the days first_i .. last_i (0-based), the first from first_start to first_end, the last
    -- from last_start to last_end.
    SELECT d.kind, d.id, d.status, d.from_at, d.until_at, d.first_i, d.last_i,
           sp.starts[d.first_i + 1] AS first_start, sp.starts[d.first_i + 2] AS first_end,
           sp.starts[d.last_i + 1] AS last_start, sp.starts[d.last_i + 2] AS last_end
    FROM (
        -- An instant's day by a binary search of the boundaries (width_bucket: how many are
        -- at or before it), the same index as its local date minus first_day inside the
        -- range (the boundaries are where the local dates begin), without a time zone
        -- conversion per instant (0.3-0.8 us each; issue 20 item 5, third pass).
        SELECT iv.kind, iv.id, iv.status, iv.from_at, iv.until_at,
               width_bucket(iv.from_at, sp.starts) - 1 AS first_i,
               width_bucket(iv.until_at - interval '1 microsecond', sp.starts) - 1 AS last_i
        FROM (
            SELECT t.kind, t.id, t.status, t.at AS from_at,
                   coalesce(lead(t.at) OVER w, t.observed_until) AS until_at
            FROM series_timeline t
            WINDOW w AS (PARTITION BY t.kind, t.id ORDER BY t.at, t.seq)
        ) AS iv
        CROSS JOIN span sp
        WHERE iv.from_at < iv.until_at
    ) AS d
    CROSS JOIN span sp
),
run AS (
    -- The days an interval covers whole: from first_i (the next day when it starts after that
    -- day's midnight) to last_i (the day before when it ends before the next midnight).
    SELECT l.kind, l.id, l.status,
           l.first_i + (l.from_at > l.first_start)::integer AS run_first,
           l.last_i - (l.until_at < l.last_end)::integer AS run_last
    FROM located l
),
piece AS (
    -- The days an interval covers in part (at most its first and its last), and for how long.
    -- Microseconds as date_part of the difference, a float8, rounded to a whole number: exact
    -- here (a piece lasts at most a day, ~9e10 us, far inside float8's exact integers; the
    -- rounding error of the division by 1e6 is ~1e-5 us), and so are `detail`'s float8 sums
    -- of a day's pieces; ~1 us per row cheaper than `extract`'s numeric and numeric sums
    -- (issue 20 item 5, third pass).
    SELECT l.kind, l.id, l.first_i AS i, l.status,
           round(date_part('epoch', least(l.until_at, l.first_end)
                                    - greatest(l.from_at, l.first_start)) * 1000000)
               AS micros
    FROM located l
    WHERE l.from_at > l.first_start
       OR (l.first_i = l.last_i AND l.until_at < l.last_end)
    UNION ALL
    SELECT l.kind, l.id, l.last_i, l.status,
           round(date_part('epoch', least(l.until_at, l.last_end)
                                    - greatest(l.from_at, l.last_start)) * 1000000)
    FROM located l
    WHERE l.last_i > l.first_i AND l.until_at < l.last_end
),
detail AS (
    SELECT p.kind, p.id, p.i,
           coalesce(sum(p.micros) FILTER (WHERE p.status = 'OPERATIONAL'), 0)::bigint AS op,
           coalesce(sum(p.micros) FILTER (WHERE p.status = 'DEGRADED_PERFORMANCE'), 0)::bigint
               AS deg,
           coalesce(sum(p.micros) FILTER (WHERE p.status = 'PARTIAL_OUTAGE'), 0)::bigint
               AS part,
           coalesce(sum(p.micros) FILTER (WHERE p.status = 'MAJOR_OUTAGE'), 0)::bigint AS major,
           coalesce(sum(p.micros) FILTER (WHERE p.status = 'UNDER_MAINTENANCE'), 0)::bigint
               AS maint
    FROM piece p
    GROUP BY p.kind, p.id, p.i
),
runs AS (
    SELECT r.kind, r.id,
           array_agg(r.run_first) AS run_first,
           array_agg(r.run_last) AS run_last,
           array_agg(r.status) AS run_status
    FROM run r
    WHERE r.run_first <= r.run_last
    GROUP BY r.kind, r.id
),
details AS (
    SELECT d.kind, d.id,
           array_agg(d.i) AS detail_i, array_agg(d.op) AS detail_op,
           array_agg(d.deg) AS detail_deg,
           array_agg(d.part) AS detail_part,
           array_agg(d.major) AS detail_major,
           array_agg(d.maint) AS detail_maint
    FROM detail d
    GROUP BY d.kind, d.id
),
incident AS MATERIALIZED (
    -- The page's status incidents active at some time of the range: the unresolved ones, and
    -- those resolved after it starts.
    SELECT i.id, i.title, i.severity, i.created_at, i.resolved_at,
           greatest(sp.now, i.created_at + interval '1 microsecond') AS until_at,
           i.affected_component_ids
    FROM span sp
    JOIN status_incident i ON i.status_page_id = sp.status_page_id
    WHERE i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
      AND i.created_at < sp.range_end
    UNION ALL
    SELECT i.id, i.title, i.severity, i.created_at, i.resolved_at,
           greatest(i.resolved_at, i.created_at + interval '1 microsecond'),
           i.affected_component_ids
    FROM span sp
    JOIN status_incident i ON i.status_page_id = sp.status_page_id
    WHERE i.status = 'RESOLVED'
      AND i.resolved_at >= sp.range_start
      AND greatest(i.resolved_at, i.created_at + interval '1 microsecond') > sp.range_start
      AND i.created_at < sp.range_end
),
group_up AS (
    -- Each group of the page and the groups it is in (itself, its parent, ...: 3 levels at
    -- most, 0020).
    SELECT s.id AS group_id, s.id AS ancestor_id, s.created_at AS ancestor_created_at,
           s.parent_id, 1 AS level
    FROM series s
    WHERE s.kind = 'group'
    UNION ALL
    SELECT up.group_id, s.id, s.created_at, s.parent_id, up.level + 1
    FROM group_up up
    JOIN series s ON s.kind = 'group' AND s.id = up.parent_id
    WHERE up.level < 3
),
incident_series AS (
    -- Which series each incident is listed on: the components of the page it names, and the
    -- groups that hold one of them now (in the group or a subgroup), once per group; with the
    -- series' creation and the incident's active time (no join back to series or incident).
    SELECT 'component'::text AS kind, c.id, c.created_at AS series_created_at,
           inc.id AS incident_id, inc.created_at, inc.until_at
    FROM incident inc
    CROSS JOIN unnest(inc.affected_component_ids) AS a (component_id)
    JOIN status_page_component c ON c.id = a.component_id
    WHERE c.status_page_id = %(page_id)s
    UNION ALL
    SELECT DISTINCT 'group'::text, up.ancestor_id, up.ancestor_created_at, inc.id,
           inc.created_at, inc.until_at
    FROM incident inc
    CROSS JOIN unnest(inc.affected_component_ids) AS a (component_id)
    JOIN status_page_component c ON c.id = a.component_id
    JOIN group_up up ON up.group_id = c.group_id
    WHERE c.status_page_id = %(page_id)s
),
listed AS (
    -- The days each incident touches, per series naming it, from the series' creation day:
    -- one row per series, (day, incident) pairs ordered by day, then oldest incident first.
    SELECT x.kind, x.id,
           array_agg(g.i ORDER BY g.i, x.created_at, x.incident_id) AS listed_i,
           array_agg(x.incident_id ORDER BY g.i, x.created_at, x.incident_id) AS listed_ids
    FROM incident_series x
    CROSS JOIN span sp
    -- Days by width_bucket as in `located`: outside the range it gives -1 (before) or `days`
    -- (after) where the local date would give any earlier or later day, the same once
    -- clamped to 0 .. days - 1.
    CROSS JOIN LATERAL generate_series(
        greatest(width_bucket(x.created_at, sp.starts) - 1,
                 width_bucket(x.series_created_at, sp.starts) - 1, 0),
        least(width_bucket(x.until_at - interval '1 microsecond', sp.starts) - 1,
              %(days)s::integer - 1)) AS g (i)
    WHERE x.until_at > sp.range_start
    GROUP BY x.kind, x.id
),
past AS MATERIALIZED (
    -- For `uptime.DailyUptimeCache` (fp true): the split day, the first day not yet over
    -- (today, or the last day when the range ends before today: the cache keeps the bars of the
    -- days before it), and the bounds of the past its fingerprint covers: from the day before
    -- fp_from (default: the first day) to the split day's local midnight (PostgreSQL's reading
    -- of it: at or after where the date begins, so the past is covered whole; a day more
    -- before fp_from for the same reason). Computed the same way by every call with the same
    -- zone and days, so two fingerprints of the same inputs are equal.
    SELECT least(pg.today, pg.first_day + (%(days)s::integer - 1)) AS split_day,
           (coalesce(%(fp_from)s::date, pg.first_day)::timestamp AT TIME ZONE pg.time_zone)
               - interval '1 day' AS from_at,
           (least(pg.today, pg.first_day + (%(days)s::integer - 1))::timestamp
               AT TIME ZONE pg.time_zone) AS until_at
    FROM page pg
    WHERE %(fp)s::boolean
),
fingerprint AS (
    -- Everything the bars of the past days [from_at, until_at) depend on, hashed (md5): the
    -- page's zone; its components (name, order, creation, group: incident listings follow the
    -- groups as they are now) each with its last change at or before the later of its creation
    -- and from_at (the status a day starts with); the groups the same way (parent, order); the
    -- page's changes and group changes stamped inside the past, whole (rows written late with
    -- an old stamp, a transaction open across midnight or a backfill, change it); and the
    -- status incidents active in the past, every column the bars show or select them by. Read
    -- as the caller (RLS, grants): it says only whether what uptime.daily would read changed.
    SELECT md5(ROW(
        (SELECT pg.time_zone FROM page pg), ps.from_at, ps.until_at,
        (SELECT array_agg(ROW(c.id, c.name, c.display_order, c.created_at,
                                     c.group_id, pr.seq, pr.new_status, pr.changed_at) ORDER BY c.id)::text
         FROM status_page_component c
         LEFT JOIN LATERAL (
             SELECT sc.seq, sc.new_status, sc.changed_at
             FROM status_change sc
             WHERE sc.component_id = c.id
               AND coalesce(sc.status_page_id = %(page_id)s, false)
               AND sc.changed_at <= greatest(c.created_at, ps.from_at)
             ORDER BY sc.seq DESC
             LIMIT 1
         ) AS pr ON true
         WHERE c.status_page_id = %(page_id)s),
        (SELECT array_agg(ROW(g.id, g.name, g.display_order, g.created_at,
                                     g.parent_id, pr.seq, pr.new_status, pr.changed_at) ORDER BY g.id)::text
         FROM component_group g
         LEFT JOIN LATERAL (
             SELECT gc.seq, gc.new_status, gc.changed_at
             FROM component_group_status_change gc
             WHERE gc.group_id = g.id
               AND gc.changed_at <= greatest(g.created_at, ps.from_at)
             ORDER BY gc.seq DESC
             LIMIT 1
         ) AS pr ON true
         WHERE g.status_page_id = %(page_id)s),
        (SELECT ROW(count(*), sum(sc.seq),
                    bit_xor(hashtextextended(sc.component_id || sc.new_status, sc.seq)
                            # hashfloat8extended(date_part('epoch', sc.changed_at), sc.seq)))
         FROM status_change sc
         WHERE sc.status_page_id = %(page_id)s
           AND sc.changed_at > ps.from_at AND sc.changed_at < ps.until_at),
        (SELECT ROW(count(*), sum(gc.seq),
                    bit_xor(hashtextextended(gc.group_id || gc.new_status, gc.seq)
                            # hashfloat8extended(date_part('epoch', gc.changed_at), gc.seq)))
         FROM component_group_status_change gc
         WHERE gc.status_page_id = %(page_id)s
           AND gc.changed_at > ps.from_at AND gc.changed_at < ps.until_at),
        (SELECT array_agg(ROW(i.id, i.title, i.severity, i.status, i.created_at,
                                     i.resolved_at, i.affected_component_ids::text) ORDER BY i.id)::text
         FROM status_incident i
         WHERE i.status_page_id = %(page_id)s
           AND i.created_at < ps.until_at
           AND (i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
                OR (i.status = 'RESOLVED' AND i.resolved_at >= ps.from_at)))
    )::text) AS fingerprint, ps.split_day
    FROM past ps
)
SELECT 'page' AS kind, sp.status_page_id AS id, sp.time_zone AS name, NULL::integer AS num,
       sp.first_day AS day, sp.range_start AS start_at, sp.observed_until AS end_at,
       NULL::integer[] AS run_first, NULL::integer[] AS run_last, NULL::text[] AS run_status,
       NULL::integer[] AS detail_i, NULL::bigint[] AS detail_op, NULL::bigint[] AS detail_deg,
       NULL::bigint[] AS detail_part, NULL::bigint[] AS detail_major,
       NULL::bigint[] AS detail_maint, NULL::integer[] AS listed_i, NULL::text[] AS listed_ids,
       NULL::text AS extra, sp.starts, inc.ids AS incident_ids, inc.titles AS incident_titles,
       inc.severities AS incident_severities, inc.started AS incident_started,
       inc.resolved AS incident_resolved, fp.split_day, fp.fingerprint
FROM span sp
LEFT JOIN fingerprint fp ON true
CROSS JOIN (
    -- No ORDER BY: the aggregates of one group see the same rows in the same order, so the
    -- arrays stay aligned, and the client orders the incidents itself.
    SELECT array_agg(i.id) AS ids, array_agg(i.title) AS titles,
           array_agg(i.severity) AS severities, array_agg(i.created_at) AS started,
           array_agg(i.resolved_at) AS resolved
    FROM incident i
) AS inc
UNION ALL
SELECT s.kind, s.id, s.name, s.display_order, NULL, s.created_at, NULL,
       r.run_first, r.run_last, r.run_status, dt.detail_i, dt.detail_op, dt.detail_deg,
       dt.detail_part, dt.detail_major, dt.detail_maint, l.listed_i, l.listed_ids, s.parent_id,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM series s
LEFT JOIN runs r ON r.kind = s.kind AND r.id = s.id
LEFT JOIN details dt ON dt.kind = s.kind AND dt.id = s.id
LEFT JOIN listed l ON l.kind = s.kind AND l.id = s.id;
