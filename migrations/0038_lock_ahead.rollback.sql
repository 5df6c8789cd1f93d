-- statusdb 0038 rollback: no lock-ahead; the derivation triggers' back-off raises the NOWAIT's
-- lock_not_available after 50 rounds again (0023's bodies).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_lock_status_inputs(text[], text[], text[]);

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_component_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    old_w text[];
    old_c text[];
    new_w text[];
    new_c text[];
    due_w text[];
    due_c text[];
    win text;
    stage text;
    attempts integer := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT array_agg(o.maintenance_window_id), array_agg(o.component_id)
        INTO old_w, old_c
        FROM old_rows o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT array_agg(n.maintenance_window_id), array_agg(n.component_id)
        INTO new_w, new_c
        FROM new_rows n;
    END IF;
    IF old_w IS NULL AND new_w IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            -- 3. The windows' slots, before judging.
            PERFORM statusdb_lock_windows(coalesce(old_w, '{}') || coalesce(new_w, '{}'));
            -- Judged now (a fresh snapshot under READ COMMITTED): a removed link uncovers its
            -- component unless its window is there and not in effect (a window being deleted
            -- is gone already); an added link covers it if its window is in effect.
            SELECT array_agg(d.w ORDER BY d.w, d.c), array_agg(d.c ORDER BY d.w, d.c)
            INTO due_w, due_c
            FROM (
                SELECT o.w, o.c
                FROM unnest(old_w, old_c) AS o (w, c)
                WHERE NOT EXISTS (
                    SELECT 1 FROM maintenance_window mw
                    WHERE mw.id = o.w AND NOT (mw.status = 'IN_PROGRESS' AND mw.auto_update_status))
                UNION
                SELECT n.w, n.c
                FROM unnest(new_w, new_c) AS n (w, c)
                JOIN maintenance_window mw ON mw.id = n.w
                WHERE mw.status = 'IN_PROGRESS' AND mw.auto_update_status
            ) AS d;
            IF due_c IS NULL THEN
                RETURN NULL;
            END IF;
            -- 4. Every status key at once; 5. the rows, or back off.
            PERFORM statusdb_lock_components(due_c);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (due_c) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            IF stage <> 'rows' OR attempts >= 50 THEN
                RAISE;
            END IF;
            attempts := attempts + 1;
            PERFORM statusdb_wait_for_components(due_c);
        END;
    END LOOP;
    FOR win IN SELECT DISTINCT u.w FROM unnest(due_w) AS u (w) ORDER BY u.w LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT DISTINCT u.c FROM unnest(due_w, due_c) AS u (w, c) WHERE u.w = win),
            'MAINTENANCE', NULL, win);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_maintenance_window_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    windows text[];
    ids text[];
    win text;
    stage text;
    attempts integer := 0;
BEGIN
    SELECT array_agg(n.id ORDER BY n.id)
    INTO windows
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    WHERE (o.status = 'IN_PROGRESS' AND o.auto_update_status)
          IS DISTINCT FROM (n.status = 'IN_PROGRESS' AND n.auto_update_status);
    IF windows IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            PERFORM statusdb_lock_windows(windows);
            -- The links as they are once the windows' slots are held (a link writer in flight
            -- has committed, or waits for this transaction).
            SELECT array_agg(DISTINCT mc.component_id)
            INTO ids
            FROM maintenance_window_component mc
            WHERE mc.maintenance_window_id = ANY (windows);
            IF ids IS NULL THEN
                RETURN NULL;
            END IF;
            PERFORM statusdb_lock_components(ids);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (ids) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            IF stage <> 'rows' OR attempts >= 50 THEN
                RAISE;
            END IF;
            attempts := attempts + 1;
            PERFORM statusdb_wait_for_components(ids);
        END;
    END LOOP;
    FOREACH win IN ARRAY windows LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT mc.component_id
                  FROM maintenance_window_component mc
                  WHERE mc.maintenance_window_id = win
                  ORDER BY mc.component_id),
            'MAINTENANCE', NULL, win);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_incident_refresh_status() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    moved_t text[];
    moved_i text[];
    team text;
    first_incident text;
    ids text[];
    stage text;
    attempts integer := 0;
BEGIN
    -- (team, incident) of each change that can move a status: an active incident changed or
    -- gone (its old team), an incident becoming active or moving to another team (its new one).
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(n.team_id), array_agg(n.id)
        INTO moved_t, moved_i
        FROM new_rows n
        WHERE n.status IN ('OPEN', 'ACKNOWLEDGED') AND n.team_id IS NOT NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(o.team_id), array_agg(o.id)
        INTO moved_t, moved_i
        FROM old_rows o
        WHERE o.status IN ('OPEN', 'ACKNOWLEDGED') AND o.team_id IS NOT NULL;
    ELSE
        SELECT array_agg(m.team_id), array_agg(m.id)
        INTO moved_t, moved_i
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (
            SELECT o.team_id, o.id
            WHERE o.status IN ('OPEN', 'ACKNOWLEDGED')
              AND (o.team_id, o.priority, o.status, o.service_identifier)
                  IS DISTINCT FROM (n.team_id, n.priority, n.status, n.service_identifier)
            UNION ALL
            SELECT n.team_id, n.id
            WHERE n.status IN ('OPEN', 'ACKNOWLEDGED')
              AND (o.team_id IS DISTINCT FROM n.team_id
                   OR o.status NOT IN ('OPEN', 'ACKNOWLEDGED'))
        ) AS m (team_id, id)
        WHERE m.team_id IS NOT NULL;
    END IF;
    IF moved_t IS NULL THEN
        RETURN NULL;
    END IF;
    LOOP
        stage := 'slots';
        BEGIN
            -- 4. Every team's key, in slot order, before any team is judged.
            PERFORM statusdb_lock_status_keys(ARRAY(
                SELECT DISTINCT statusdb_status_lock_key(u.t, NULL)
                FROM unnest(moved_t) AS u (t)));
            -- 5. The teams' components (no component joins or leaves a team while its key is
            -- held), or back off.
            ids := ARRAY(SELECT c.id FROM status_page_component c
                         WHERE c.team_id = ANY (moved_t) ORDER BY c.id);
            stage := 'rows';
            PERFORM 1 FROM status_page_component c
            WHERE c.id = ANY (ids) ORDER BY c.id FOR NO KEY UPDATE NOWAIT;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            IF stage <> 'rows' OR attempts >= 50 THEN
                RAISE;
            END IF;
            attempts := attempts + 1;
            PERFORM statusdb_wait_for_components(ids);
        END;
    END LOOP;
    -- Each team's components, logged with the team's first incident of the statement.
    FOR team, first_incident IN
        SELECT u.t, min(u.i) FROM unnest(moved_t, moved_i) AS u (t, i) GROUP BY u.t ORDER BY u.t
    LOOP
        PERFORM statusdb_rederive_components(
            ARRAY(SELECT c.id FROM status_page_component c
                  WHERE c.team_id = team ORDER BY c.id),
            'INCIDENT', first_incident, NULL);
    END LOOP;
    RETURN NULL;
END;
$$;

