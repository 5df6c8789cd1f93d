-- Reverts 0020_component_groups: no groups, no group followers; 0014's page view, 0012's repair
-- and component cleanup, 0010's fan-out index.

-- squawk-ignore-file ban-drop-table, ban-drop-column, ban-drop-constraint, ban-drop-function
-- squawk-ignore-file ban-drop-view, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose something (statusdb.allow_data_loss = on, `statusdb rollback
-- --allow-data-loss`): groups (with their members' membership and their status log), and
-- subscribers following groups (they would then follow every component of the page).
DO $$
DECLARE
    groups bigint;
    followers bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO groups FROM component_group;
    SELECT count(*) INTO followers FROM status_subscriber s WHERE s.group_ids <> '{}';
    IF groups > 0 OR followers > 0 THEN
        RAISE EXCEPTION 'rolling back 0020_component_groups would lose data: component_group has '
                        '% rows (their membership and status log would go), and % subscribers '
                        'follow groups (they would follow every component). %',
                        groups, followers,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP FUNCTION statusdb_page_view(text, bytea, interval, integer);
CREATE FUNCTION statusdb_page_view(
    page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer
)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
ROWS 1
AS $$
#variable_conflict use_column
DECLARE
    horizon interval := coalesce(maintenance_horizon, interval '7 days');
    window_limit integer := coalesce(maintenance_limit, 20);
    stored_hash bytea;
BEGIN
    IF horizon < interval '0' OR horizon > interval '366 days' THEN
        RAISE EXCEPTION 'maintenance_horizon must be from 0 to 366 days, not %', horizon
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF window_limit < 0 OR window_limit > 200 THEN
        RAISE EXCEPTION 'maintenance_limit must be from 0 to 200, not %', window_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(page_slug) > 100 THEN
        RETURN;  -- no slug is that long: like an unknown slug
    END IF;
    IF octet_length(page_token_hash) = 32 THEN
        stored_hash := sha256(page_token_hash);
    END IF;
    RETURN QUERY
    WITH page AS (
        SELECT p.id, p.name, p.description, p.slug, p.is_public, p.updated_at
        FROM status_page p
        WHERE p.slug = page_slug
          AND (p.is_public OR p.access_token_hash = stored_hash)
    ),
    page_components AS (
        SELECT coalesce(json_agg(json_build_array(c.id, c.name, c.description, c.display_order,
                                                  c.current_status, c.status_updated_at)
                                 ORDER BY c.display_order, c.name, c.id), '[]') AS items,
               max(c.status_updated_at) AS last_change
        FROM page
        JOIN status_page_component c ON c.status_page_id = page.id
    ),
    page_incidents AS (
        SELECT coalesce(json_agg(json_build_array(i.id, i.title, i.message, i.severity, i.status,
                                                  i.affected_component_ids, i.created_at,
                                                  i.updated_at, i.updates)
                                 ORDER BY i.created_at DESC, i.id DESC), '[]') AS items,
               max(i.updated_at) AS last_change
        FROM page
        JOIN status_incident i ON i.status_page_id = page.id
        WHERE i.status IN ('INVESTIGATING', 'IDENTIFIED', 'MONITORING')
    ),
    page_maintenance AS (
        SELECT coalesce(json_agg(json_build_array(w.id, w.title, w.description, w.status,
                                                  w.start_time, w.end_time, w.component_ids)
                                 ORDER BY w.start_time, w.id), '[]') AS items
        FROM (
            SELECT w.id, w.title, w.description, w.status, w.start_time, w.end_time,
                   ARRAY(SELECT mc.component_id
                         FROM maintenance_window_component mc
                         WHERE mc.maintenance_window_id = w.id
                         ORDER BY mc.component_id) AS component_ids
            FROM page
            JOIN maintenance_window w ON w.status_page_id = page.id
            WHERE w.status = 'IN_PROGRESS'
               OR (w.status = 'SCHEDULED' AND w.start_time < now() + horizon)
            ORDER BY w.start_time, w.id
            LIMIT window_limit
        ) AS w
    )
    SELECT page.id, page.name, page.description, page.slug, page.is_public,
           greatest(page.updated_at, page_components.last_change, page_incidents.last_change),
           page_components.items, page_incidents.items, page_maintenance.items
    FROM page, page_components, page_incidents, page_maintenance;
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer) IS
    'A status page as its readers see it; private pages only with the SHA-256 digest of their '
    'access token. Horizon 0 to 366 days (null: 7 days), limit 0 to 200 windows (null: 20).';

REVOKE EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer)
    TO statusdb_app, statusdb_reader;

CREATE OR REPLACE FUNCTION statusdb_recompute_statuses(repair boolean)
RETURNS TABLE (component_id text, current_status text, derived_status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'component statuses cannot be re-derived in a REPEATABLE READ '
                            'transaction'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
        END IF;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        IF NOT FOUND THEN  -- first use
            INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
            PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        END IF;
    END IF;
    SELECT coalesce(array_agg(d.component_id ORDER BY d.component_id), '{}')
    INTO drifted
    FROM statusdb_component_derived_status d
    WHERE d.current_status IS DISTINCT FROM d.derived_status;

    RETURN QUERY
    SELECT d.component_id, d.current_status, d.derived_status
    FROM statusdb_component_derived_status d
    WHERE d.component_id = ANY (drifted)
    ORDER BY d.component_id;

    IF repair AND cardinality(drifted) > 0 THEN
        INSERT INTO status_repair (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
        PERFORM statusdb_rederive_components(drifted, 'MANUAL', NULL, NULL);
        DELETE FROM status_repair r WHERE r.xid = pg_current_xact_id();
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_status_page_component_forget_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE public.status_subscriber s
    SET component_ids = array_remove(s.component_ids, OLD.id),
        is_active = s.is_active AND cardinality(array_remove(s.component_ids, OLD.id)) > 0
    WHERE s.status_page_id = OLD.status_page_id AND s.component_ids @> ARRAY[OLD.id];

    UPDATE public.status_incident i
    SET affected_component_ids = array_remove(i.affected_component_ids, OLD.id)
    WHERE i.status_page_id = OLD.status_page_id AND i.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

DROP TRIGGER component_group_forget_ids ON component_group;
DROP TRIGGER status_subscriber_check_group_ids ON status_subscriber;
DROP TRIGGER component_group_roll_up_update ON component_group;
DROP TRIGGER component_group_roll_up_delete ON component_group;
DROP TRIGGER status_page_component_roll_up_insert ON status_page_component;
DROP TRIGGER status_page_component_roll_up_update ON status_page_component;
DROP TRIGGER status_page_component_roll_up_delete ON status_page_component;
DROP VIEW statusdb_group_derived_status;
-- 0018's notification predicate (without group followers).
CREATE OR REPLACE FUNCTION statusdb_notification_recipients(
    page_id text, event_component_ids text[], kinds text[], folded_kinds text[]
) RETURNS TABLE (subscriber_id text, channel text, destination text)
LANGUAGE sql
STABLE
AS $$
    SELECT s.id, s.channel, s.destination
    FROM public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids = '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination
    -- Gated like the third branch: a page-wide event skips it whole (under row-level security
    -- the GIN index cannot serve && and the planner would read the page's followers for none).
    FROM (SELECT WHERE cardinality(event_component_ids) > 0) AS some_components
    CROSS JOIN public.status_subscriber s
    WHERE s.component_ids && event_component_ids
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.status_page_id = page_id
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    SELECT s.id, s.channel, s.destination
    -- The gate as a relation of its own: for an event with components the planner drops the
    -- branch whole (a constant-false qual beside row-level security's would not be).
    FROM (SELECT WHERE cardinality(event_component_ids) = 0) AS page_wide
    CROSS JOIN public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
$$;

COMMENT ON FUNCTION statusdb_notification_recipients(text, text[], text[], text[]) IS
    'Who is told: active, verified subscribers of the page wanting one of kinds and none of '
    'folded_kinds, following one of the components (or all; none given: the whole page). '
    'One row per subscriber.';

DROP FUNCTION statusdb_component_group_path(text);
DROP FUNCTION statusdb_component_group_forget_ids();
DROP FUNCTION statusdb_status_subscriber_check_group_ids();
DROP FUNCTION statusdb_check_group_ids(text, text[], text);
DROP FUNCTION statusdb_recompute_group_statuses(boolean);
DROP FUNCTION statusdb_component_group_roll_up();
DROP FUNCTION statusdb_status_page_component_roll_up();
DROP FUNCTION statusdb_refresh_groups(text[]);
DROP FUNCTION statusdb_group_closure(text[]);
DROP FUNCTION statusdb_derive_group_statuses(text[]);

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_all_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids = '{}' AND is_active AND is_verified;
DROP INDEX status_subscriber_fan_out_everything_idx;
DROP INDEX status_subscriber_fan_out_group_idx;
ALTER TABLE status_subscriber
    DROP CONSTRAINT status_subscriber_group_ids_check,
    DROP COLUMN group_ids;

DROP TABLE component_group_status_change;
DROP INDEX status_page_component_group_id_status_page_id_idx;
ALTER TABLE status_page_component
    DROP CONSTRAINT status_page_component_group_id_fkey,
    DROP COLUMN group_id;
DROP TABLE component_group;
DROP FUNCTION statusdb_component_group_guard();
DROP FUNCTION statusdb_component_group_check_tree();
