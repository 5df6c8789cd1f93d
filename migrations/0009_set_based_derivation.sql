-- statusdb 0009: the status derivation re-derives many components in one statement.
-- depends: 0008_roles_and_rls
--
-- Opening an incident re-derives every component its team drives. 0003 did that with the
-- statusdb_component_derived_status view, which calls statusdb_derive_status once per component
-- (twice, in fact: once in the filter, once in the result), and logged each change with a call of
-- statusdb_log_status_change, one INSERT and one NOTIFY per statement. Each of those calls plans
-- and runs its own statements (SQL functions with subqueries are never inlined), so opening an
-- incident cost about 0.25 ms per component: 13 ms for a team of 50 components, 125 ms for 500.
--
-- Here the same rule runs as one set-based query (statusdb_derive_statuses, an inlinable SQL
-- function: the planner joins it into the caller's statement), and the changed rows are updated,
-- logged and announced by one statement: UPDATE ... RETURNING feeds one INSERT ... RETURNING,
-- whose rows feed one pg_notify each. Behaviour is unchanged: the same locks are taken first,
-- the same rows are written (one status_change row and one NOTIFY per real change, with the same
-- payload), the same session flag lets the component trigger through.
--
-- statusdb_derive_status (one component) stays: the component trigger and the from-scratch view
-- behind recompute use it. The two are the same rule written twice on purpose: recompute
-- compares what the triggers stored (this function) with the view's derivation, so any
-- difference between them shows as drift (the derivation tests assert there is none).
--
-- Two functions that re-planned their statements on every call keep one generic plan instead
-- (see plan_cache_mode below).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- The status each of the given components should have, with its stored one. The same rule as
-- statusdb_derive_status: the worst of the manual status (no team), the worst active incident of
-- the team (filtered by service identifier when the component has one), and UNDER_MAINTENANCE
-- while an IN_PROGRESS window with auto_update_status covers it; OPERATIONAL when none applies.
CREATE FUNCTION statusdb_derive_statuses(component_ids text[])
RETURNS TABLE (component_id text, current_status text, derived_status text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT c.id,
           c.current_status,
           coalesce((
               SELECT s.status
               FROM (VALUES (CASE WHEN c.team_id IS NULL THEN c.manual_status END),
                            (worst_incident.status),
                            (CASE WHEN maintenance.covered THEN 'UNDER_MAINTENANCE' END))
                   AS s (status)
               WHERE s.status IS NOT NULL
               ORDER BY statusdb_status_rank(s.status)
               LIMIT 1
           ), 'OPERATIONAL')
    FROM status_page_component c
    LEFT JOIN LATERAL (
        SELECT statusdb_priority_status(i.priority) AS status
        FROM incident i
        WHERE c.team_id IS NOT NULL
          AND i.team_id = c.team_id
          AND i.status IN ('OPEN', 'ACKNOWLEDGED')
          AND (c.service_identifier IS NULL OR i.service_identifier = c.service_identifier)
        ORDER BY statusdb_status_rank(statusdb_priority_status(i.priority))
        LIMIT 1
    ) AS worst_incident ON true
    LEFT JOIN LATERAL (
        SELECT true AS covered
        FROM maintenance_window_component mc
        JOIN maintenance_window w ON w.id = mc.maintenance_window_id
        WHERE mc.component_id = c.id
          AND w.status = 'IN_PROGRESS'
          AND w.auto_update_status
        LIMIT 1
    ) AS maintenance ON true
    WHERE c.id = ANY (statusdb_derive_statuses.component_ids)
$$;

COMMENT ON FUNCTION statusdb_derive_statuses(text[]) IS
    'The status the given components should have (set-based twin of statusdb_derive_status).';

-- Re-derives the given components and records each real change (as in 0003, set-based).
--
-- plan_cache_mode: PL/pgSQL keeps each statement's plan, but by default re-plans a statement
-- whose parameters might call for a better plan ("custom" plans), which it judged to be the
-- case here: the statement below was planned again on every call, at about 0.4 ms, more than
-- the rest of the work for the one to three components a maintenance window covers. Every
-- statement here finds its rows by primary key or by team, which the generic plan does for
-- any number of ids, so the generic plan is used always.
CREATE OR REPLACE FUNCTION statusdb_refresh_components(
    component_ids text[], cause text, incident_id text, maintenance_window_id text
) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    locked bigint[] := '{}';
    wanted bigint[];
    notified bigint;
BEGIN
    IF cardinality(component_ids) = 0 THEN
        RETURN;
    END IF;
    -- Lock the status keys of the components, then check (with a fresh snapshot) that no
    -- concurrent change moved a component to another team meanwhile; if one did, lock that
    -- key too and check again.
    LOOP
        SELECT coalesce(array_agg(DISTINCT statusdb_status_lock_key(c.team_id, c.id)), '{}')
        INTO wanted
        FROM status_page_component c
        WHERE c.id = ANY (component_ids);
        EXIT WHEN wanted <@ locked;
        PERFORM statusdb_lock_status_keys(wanted);
        locked := locked || wanted;
    END LOOP;

    PERFORM set_config('statusdb.deriving', 'on', true);
    WITH derived AS (
        SELECT d.component_id, d.current_status, d.derived_status
        FROM statusdb_derive_statuses(component_ids) AS d
        WHERE d.current_status IS DISTINCT FROM d.derived_status
    ),
    changed AS (
        UPDATE status_page_component c
        SET current_status = derived.derived_status,
            status_updated_at = clock_timestamp()
        FROM derived
        -- Said twice so that the planner reaches the rows through the primary key.
        WHERE c.id = ANY (component_ids)
          AND c.id = derived.component_id
        RETURNING c.id, c.status_page_id, derived.current_status AS previous_status,
                  c.current_status AS new_status, c.status_updated_at
    ),
    logged AS (
        INSERT INTO status_change (status_page_id, component_id, previous_status, new_status,
                                   cause, incident_id, maintenance_window_id, changed_at)
        SELECT changed.status_page_id, changed.id, changed.previous_status, changed.new_status,
               statusdb_refresh_components.cause, statusdb_refresh_components.incident_id,
               statusdb_refresh_components.maintenance_window_id, changed.status_updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING status_change.id, status_change.status_page_id, status_change.component_id,
                  status_change.new_status
    )
    -- The same announcement statusdb_log_status_change makes, one per logged change.
    SELECT count(pg_notify('statusdb_status_change', json_build_object(
               'status_page_id', logged.status_page_id,
               'component_id', logged.component_id,
               'new_status', logged.new_status,
               'change_id', logged.id)::text))
    INTO STRICT notified
    FROM logged;
    PERFORM set_config('statusdb.deriving', 'off', true);
END;
$$;

-- The same re-planning made statusdb_check_component_ids (0002: the trigger that keeps
-- subscribers' and status incidents' component id arrays free of dangling ids) plan both of its
-- statements on every row written: about 40 % of its cost. Its statements look components up by
-- primary key, which the generic plan does for any array.
ALTER FUNCTION statusdb_check_component_ids(text, text[], text)
    SET plan_cache_mode = force_generic_plan;
