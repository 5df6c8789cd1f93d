-- statusdb 0048: opening an incident pays less for its own writes (issue 20 items 3 and 6).
-- depends: 0047_group_status_log
--
-- Measured with `python -m bench --case "open incident" --case "trigger costs"` and by perf on
-- the backend of an open loop (bench/README.md, "Issue 20: the open against its floor, the
-- derivation's own writes (0048)"). What an open (and a resolve) paid for beyond its row work:
--
-- * statusdb_page_render: its RETURN QUERY was planned again on every call (PL/pgSQL's plan
--   cache kept choosing custom plans for `p.id = ANY (page_ids)`): ~8 % of an open's CPU at
--   commit. It now runs with plan_cache_mode = force_generic_plan, like the other derivation
--   functions (statusdb_rederive_components, statusdb_refresh_groups), and reaches the pages
--   by key from the distinct ids (a lateral lookup per id): with `= ANY` a generic
--   plan scans status_page on a database of many pages (tests/test_index_use.py). Otherwise
--   the body is 0020's, unchanged.
-- * statusdb_page_snapshot_mark, statusdb_scheduled_starts (the snapshot's generated column) and
--   statusdb_slug_key (the snapshot's index expression) were SQL functions PostgreSQL cannot
--   inline (an INSERT; an ARRAY subquery under SET search_path; an IMMUTABLE body calling the
--   STABLE convert_to), so every call parsed (mark) and planned its body again: ~5 % of the
--   CPU. They are PL/pgSQL now, same statements, same signatures, results and attributes (the
--   plans are kept for the session). A plpgsql function is never inlined either, so the index
--   on statusdb_slug_key(slug) still matches the readers' calls as before; its values are the
--   same, so the index needs no rebuild.
-- * statusdb_touch_updated_at on the derivation's own writes: one PL/pgSQL call per moved
--   component. status_page_component_touch_updated_at and component_group_touch_updated_at
--   fire only WHEN (NEW.updated_at IS DISTINCT FROM now()): the function sets exactly now(), so
--   skipping it when the row already holds now() changes no result, for every writer (a client
--   that writes any other value, or none, still gets now()). statusdb_rederive_components sets
--   updated_at = now() itself (its body is 0012's with that one assignment added), so its
--   writes skip the trigger.
-- * component_group_guard on the derivation's own writes: one call per derived group. It is
--   split like 0037's status_page_component_derive: component_group_guard_insert (BEFORE
--   INSERT, as before: a new group starts OPERATIONAL) and component_group_guard (BEFORE UPDATE)
--   WHEN what the function refuses may happen: the id or the page changes, or current_status /
--   status_updated_at change outside a trigger (pg_trigger_depth() = 0 in WHEN is the
--   function's pg_trigger_depth() <= 1; a repair is still told by the function from
--   status_repair). Every rule of the UPDATE still holds: the WHEN only leaves out rows whose
--   update the function let through unchanged. The INSERT rule is unchanged. Firing order is
--   unchanged (component_group_guard* sort before component_group_id_immutable and
--   component_group_tree_check).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION public.statusdb_page_render(page_ids text[])
 RETURNS TABLE(page_id text, slug text, is_public boolean, access_token_hash bytea, name text, description text, updated_at timestamp with time zone, components json, incidents json, windows json, window_starts timestamp with time zone[], window_scheduled boolean[], groups json)
 LANGUAGE plpgsql
 STABLE
 SET "TimeZone" TO 'UTC'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p.id, p.slug, p.is_public, p.access_token_hash, p.name, p.description,
           greatest(p.updated_at, c.last_change, i.last_change, g.last_change),
           c.items, i.items, w.items, w.starts, w.scheduled, g.items
    -- 0048: the pages by key, one lookup each: with the ids as an = ANY filter, or joined,
    -- a generic plan may scan status_page (OFFSET 0 keeps the lateral lookup a lookup);
    -- DISTINCT keeps a repeated id to one row, as ANY did.
    FROM (SELECT DISTINCT u.id FROM unnest(page_ids) AS u (id)) AS q
    CROSS JOIN LATERAL (SELECT sp.id, sp.slug, sp.is_public, sp.access_token_hash, sp.name,
                               sp.description, sp.updated_at
                        FROM status_page sp WHERE sp.id = q.id OFFSET 0) AS p
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
    ) AS g;
END;
$function$;

-- 0036's statement, unchanged, in PL/pgSQL (its plan kept for the session).
CREATE OR REPLACE FUNCTION statusdb_page_snapshot_mark(page_ids text[]) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO status_page_snapshot_pending (xact_id, page_id)
    SELECT pg_current_xact_id(), p.page_id
    FROM unnest(page_ids) AS p (page_id)
    WHERE p.page_id IS NOT NULL
    ORDER BY p.page_id
    ON CONFLICT ON CONSTRAINT status_page_snapshot_pending_pkey DO NOTHING;
END;
$$;

-- 0028's expression, unchanged, in PL/pgSQL (its plan kept for the session).
CREATE OR REPLACE FUNCTION statusdb_scheduled_starts(starts timestamptz[], scheduled boolean[])
RETURNS timestamptz[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN ARRAY(SELECT u.start_time
                 FROM unnest(starts, scheduled) WITH ORDINALITY AS u (start_time, is_scheduled, n)
                 WHERE u.is_scheduled
                 ORDER BY u.n);
END;
$$;

-- 0039's expression, unchanged, in PL/pgSQL (a simple expression, evaluated without SPI).
CREATE OR REPLACE FUNCTION statusdb_slug_key(page_slug text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    RETURN sha256(convert_to(page_slug, 'UTF8'));
END;
$$;

-- 0012's body; changed only in `updated_at = now()` (see the top).
CREATE OR REPLACE FUNCTION statusdb_rederive_components(component_ids text[], cause text,
                                                        incident_id text,
                                                        maintenance_window_id text)
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
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
            status_updated_at = clock_timestamp(),
            -- What status_page_component_touch_updated_at would set: it is skipped (0048).
            updated_at = now()
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

DROP TRIGGER status_page_component_touch_updated_at ON status_page_component;
CREATE TRIGGER status_page_component_touch_updated_at
    BEFORE UPDATE ON status_page_component
    FOR EACH ROW
    WHEN (NEW.updated_at IS DISTINCT FROM now())
    EXECUTE FUNCTION statusdb_touch_updated_at();
COMMENT ON TRIGGER status_page_component_touch_updated_at ON status_page_component IS
    'Sets updated_at to now() on every UPDATE; skipped (WHEN) when the row holds now() already (0048).';

DROP TRIGGER component_group_touch_updated_at ON component_group;
CREATE TRIGGER component_group_touch_updated_at
    BEFORE UPDATE ON component_group
    FOR EACH ROW
    WHEN (NEW.updated_at IS DISTINCT FROM now())
    EXECUTE FUNCTION statusdb_touch_updated_at();
COMMENT ON TRIGGER component_group_touch_updated_at ON component_group IS
    'Sets updated_at to now() on every UPDATE; skipped (WHEN) when the row holds now() already (0048).';

DROP TRIGGER component_group_guard ON component_group;
CREATE TRIGGER component_group_guard
    BEFORE UPDATE ON component_group
    FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id
          OR NEW.status_page_id IS DISTINCT FROM OLD.status_page_id
          OR ((NEW.current_status, NEW.status_updated_at)
                  IS DISTINCT FROM (OLD.current_status, OLD.status_updated_at)
              AND pg_trigger_depth() = 0))
    EXECUTE FUNCTION statusdb_component_group_guard();
CREATE TRIGGER component_group_guard_insert
    BEFORE INSERT ON component_group
    FOR EACH ROW EXECUTE FUNCTION statusdb_component_group_guard();
COMMENT ON TRIGGER component_group_guard ON component_group IS
    'Keeps a group''s id, page and derived status; skips (WHEN) the derivation''s own writes (0048).';
COMMENT ON TRIGGER component_group_guard_insert ON component_group IS
    'A new group starts OPERATIONAL (0048: split from the UPDATE trigger).';
