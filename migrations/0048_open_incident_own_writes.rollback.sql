-- statusdb 0048 rollback: the schema as 0044 left it.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER component_group_guard_insert ON component_group;
DROP TRIGGER component_group_guard ON component_group;
CREATE TRIGGER component_group_guard
    BEFORE INSERT OR UPDATE ON component_group
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_component_group_guard();

DROP TRIGGER component_group_touch_updated_at ON component_group;
CREATE TRIGGER component_group_touch_updated_at
    BEFORE UPDATE ON component_group
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_touch_updated_at();

DROP TRIGGER status_page_component_touch_updated_at ON status_page_component;
CREATE TRIGGER status_page_component_touch_updated_at
    BEFORE UPDATE ON status_page_component
    FOR EACH ROW EXECUTE FUNCTION statusdb_touch_updated_at();

-- 0012's body again (no updated_at: the trigger sets it).
CREATE OR REPLACE FUNCTION statusdb_rederive_components(component_ids text[], cause text, incident_id text, maintenance_window_id text) RETURNS void
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    notified bigint;
BEGIN
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
               statusdb_rederive_components.cause, statusdb_rederive_components.incident_id,
               statusdb_rederive_components.maintenance_window_id, changed.status_updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING status_change.seq
    )
    -- The same announcement statusdb_log_status_change makes, one per logged change.
    SELECT count(pg_notify('statusdb_status_change', logged.seq::text))
    INTO STRICT notified
    FROM logged;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_slug_key(page_slug text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT sha256(convert_to(page_slug, 'UTF8'))
$$;

CREATE OR REPLACE FUNCTION statusdb_scheduled_starts(starts timestamptz[], scheduled boolean[])
RETURNS timestamptz[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN ARRAY(SELECT u.start_time
             FROM unnest(starts, scheduled) WITH ORDINALITY AS u (start_time, is_scheduled, n)
             WHERE u.is_scheduled
             ORDER BY u.n);

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_mark(page_ids text[]) RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO status_page_snapshot_pending (xact_id, page_id)
    SELECT pg_current_xact_id(), p.page_id
    FROM unnest(page_ids) AS p (page_id)
    WHERE p.page_id IS NOT NULL
    ORDER BY p.page_id
    ON CONFLICT ON CONSTRAINT status_page_snapshot_pending_pkey DO NOTHING;
$$;

-- statusdb_page_render as before 0048 (custom plans, `p.id = ANY (page_ids)`).
CREATE OR REPLACE FUNCTION public.statusdb_page_render(page_ids text[])
 RETURNS TABLE(page_id text, slug text, is_public boolean, access_token_hash bytea, name text, description text, updated_at timestamp with time zone, components json, incidents json, windows json, window_starts timestamp with time zone[], window_scheduled boolean[], groups json)
 LANGUAGE plpgsql
 STABLE
 SET "TimeZone" TO 'UTC'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p.id, p.slug, p.is_public, p.access_token_hash, p.name, p.description,
           greatest(p.updated_at, c.last_change, i.last_change, g.last_change),
           c.items, i.items, w.items, w.starts, w.scheduled, g.items
    FROM status_page p
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(c.id, c.name, c.description, c.display_order,
                                                  c.current_status, c.status_updated_at,
                                                  c.group_id)
                                 ORDER BY c.display_order, c.name, c.id), '[]') AS items,
               max(c.status_updated_at) AS last_change
        FROM status_page_component c
        WHERE c.status_page_id = p.id
    ) AS c
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(i.id, i.title, i.message, i.severity, i.status,
                                                  i.affected_component_ids, i.created_at,
                                                  i.updated_at, i.updates)
                                 ORDER BY i.created_at DESC, i.id DESC), '[]') AS items,
               max(i.updated_at) AS last_change
        FROM status_incident i
        WHERE i.status_page_id = p.id
          AND i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
    ) AS i
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(w.id, w.title, w.description, w.status,
                                                  w.start_time, w.end_time,
                                                  ARRAY(SELECT mc.component_id
                                                        FROM maintenance_window_component mc
                                                        WHERE mc.maintenance_window_id = w.id
                                                        ORDER BY mc.component_id))
                                 ORDER BY w.start_time, w.id), '[]') AS items,
               coalesce(array_agg(w.start_time ORDER BY w.start_time, w.id), '{}') AS starts,
               coalesce(array_agg(w.status = 'SCHEDULED' ORDER BY w.start_time, w.id), '{}')
                   AS scheduled
        FROM (
            (SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time
             FROM maintenance_window w
             WHERE w.status_page_id = p.id AND w.status = 'IN_PROGRESS'
             ORDER BY w.start_time, w.id
             LIMIT 200)
            UNION ALL
            (SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time
             FROM maintenance_window w
             WHERE w.status_page_id = p.id AND w.status = 'SCHEDULED'
             ORDER BY w.start_time, w.id
             LIMIT 200)
        ) AS w
    ) AS w
    -- 0020: the page's groups, flat, in display order; readers build the tree from
    -- parent_id (and place components by their group id).
    CROSS JOIN LATERAL (
        SELECT coalesce(json_agg(json_build_array(g.id, g.name, g.description, g.parent_id,
                                                  g.display_order, g.current_status)
                                 ORDER BY g.display_order, g.name, g.id), '[]') AS items,
               max(g.updated_at) AS last_change
        FROM component_group g
        WHERE g.status_page_id = p.id
    ) AS g
    WHERE p.id = ANY (page_ids);
END;
$function$;
