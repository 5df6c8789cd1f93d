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
        WHERE sc.component_id = o.id
          AND sc.status_page_id = %(page_id)s
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
