-- statusdb 0020: component groups (issue 13 item 1). A page's components can be grouped, groups
-- nest (at most 3 levels), and a group's status is derived by the database: the worst status
-- of its members, kept, logged and announced like component statuses.
-- depends: 0019_templates_and_deliveries
--
-- What a DBA reads here:
--   * component_group: the tree (page-scoped; parent_id; display_order among siblings);
--     status_page_component.group_id: a component's group (display_order then orders it within
--     the group);
--   * same page by construction: both links are composite foreign keys on (id, status_page_id),
--     so a component's group and a group's parent are on the row's own page, for every writer,
--     on INSERT and UPDATE; neither row may move to another page (0012's rule, triggers below);
--   * no cycles, depth <= 3: a CHECK (no group is its own parent) and a trigger that walks the
--     new parent's ancestors (locking them, so two concurrent moves cannot close a loop);
--   * the roll-up: statement-level AFTER triggers with transition tables on the components and
--     the groups find the groups whose members changed (status, membership, parent, deletion)
--     and re-derive them and their ancestors in a few statements per statement, not per row;
--   * the group status log: component_group_status_change (not status_change: that table is
--     the subscriber outbox, and a group's change is made of its members' changes, which are
--     notified already); announced on status_change's channel with a seq from status_change's
--     own sequence, so one seq names one change of either kind (statusdb.feed reads both).
--   * the page (0017's snapshot) shows the groups: the last section re-creates 0017's renderer,
--     refresh/create/repair and page view with them, and re-renders every page.
--
-- Depth limit 3 (a group, a subgroup, a sub-subgroup): what status pages show (Statuspage has
-- one level, larger products two or three); deeper trees are unreadable to a page's readers.
-- It bounds every walk the database makes (ancestors, descendants: at most 3 steps) and so the
-- roll-up's work and the fan-out's lookup per component.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- --------------------------------------------------------------------------------------------
-- The tree
CREATE TABLE component_group (
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    parent_id text,
    name text NOT NULL,
    description text,
    -- squawk-ignore prefer-bigint-over-int
    display_order integer NOT NULL DEFAULT 0,  -- like status_page_component.display_order
    current_status text NOT NULL DEFAULT 'OPERATIONAL',
    status_updated_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT component_group_pkey PRIMARY KEY (id),
    -- The target of the composite (same-page) foreign keys below.
    CONSTRAINT component_group_id_status_page_id_key UNIQUE (id, status_page_id),
    CONSTRAINT component_group_status_page_id_name_key UNIQUE (status_page_id, name),
    CONSTRAINT component_group_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    -- The parent is a group of the same page. Deleting a group makes its subgroups top-level
    -- (SET NULL of parent_id only: the page stays).
    CONSTRAINT component_group_parent_id_fkey FOREIGN KEY (parent_id, status_page_id)
        REFERENCES component_group (id, status_page_id) ON DELETE SET NULL (parent_id),
    CONSTRAINT component_group_parent_id_check CHECK (parent_id <> id),
    CONSTRAINT component_group_name_check CHECK (btrim(name) <> '' AND length(name) <= 200),
    CONSTRAINT component_group_description_check CHECK (length(description) <= 10000),
    CONSTRAINT component_group_current_status_check CHECK (
        current_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                           'UNDER_MAINTENANCE', 'OPERATIONAL'))
);
CREATE INDEX component_group_parent_id_status_page_id_idx
    ON component_group (parent_id, status_page_id)
    WHERE parent_id IS NOT NULL;

COMMENT ON TABLE component_group IS
    'A group of a page''s components (and of other groups, at most 3 levels). Its current_status is derived by the database: the worst of its members.';
COMMENT ON COLUMN component_group.id IS 'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN component_group.status_page_id IS
    'The page it belongs to (deleted with it); cannot change.';
COMMENT ON COLUMN component_group.parent_id IS
    'The enclosing group, on the same page; null: top level. No cycles, at most 3 levels. Set to null when the parent is deleted.';
COMMENT ON COLUMN component_group.name IS
    'Display name, unique on its page, non-blank, at most 200 characters.';
COMMENT ON COLUMN component_group.description IS 'Optional text shown with the group.';
COMMENT ON COLUMN component_group.display_order IS
    'Position among its siblings (the groups and components with the same parent), ascending.';
COMMENT ON COLUMN component_group.current_status IS
    'DERIVED: the worst current_status of the components in it and in its subgroups; OPERATIONAL when empty. Written only by the derivation.';
COMMENT ON COLUMN component_group.status_updated_at IS 'DERIVED: when current_status last changed.';
COMMENT ON COLUMN component_group.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN component_group.updated_at IS 'When the row last changed (kept by a trigger).';

-- A new nullable column without default: no rewrite. The foreign key is checked against the
-- existing rows, all null (nothing to look up) and validated at once: squawk's advice (NOT
-- VALID, then VALIDATE) buys nothing for a column that is null everywhere.
ALTER TABLE status_page_component ADD COLUMN group_id text;
ALTER TABLE status_page_component
    -- squawk-ignore adding-foreign-key-constraint, constraint-missing-not-valid
    ADD CONSTRAINT status_page_component_group_id_fkey FOREIGN KEY (group_id, status_page_id)
        REFERENCES component_group (id, status_page_id) ON DELETE SET NULL (group_id);
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_page_component_group_id_status_page_id_idx
    ON status_page_component (group_id, status_page_id)
    WHERE group_id IS NOT NULL;
COMMENT ON COLUMN status_page_component.group_id IS
    'The group it is shown in, on the same page (null: none); display_order orders it there. Set to null when the group is deleted.';

-- The log of group status changes. seq comes from status_change's own sequence: one number
-- space for the feed's announcements (the payload is a seq; statusdb.feed looks it up in both
-- logs). No outbox columns: subscribers are told of the members' changes (status_change).
CREATE TABLE component_group_status_change (
    seq bigint NOT NULL DEFAULT nextval('status_change_seq_seq'),
    id text NOT NULL DEFAULT statusdb_new_id(),
    status_page_id text NOT NULL,
    group_id text NOT NULL,
    previous_status text NOT NULL,
    new_status text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT component_group_status_change_pkey PRIMARY KEY (seq),
    CONSTRAINT component_group_status_change_id_key UNIQUE (id),
    CONSTRAINT component_group_status_change_status_page_id_fkey FOREIGN KEY (status_page_id)
        REFERENCES status_page (id) ON DELETE CASCADE,
    CONSTRAINT component_group_status_change_group_id_fkey FOREIGN KEY (group_id)
        REFERENCES component_group (id) ON DELETE CASCADE,
    CONSTRAINT component_group_status_change_is_a_change_check CHECK (previous_status <> new_status),
    CONSTRAINT component_group_status_change_previous_status_check CHECK (
        previous_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                            'UNDER_MAINTENANCE', 'OPERATIONAL')),
    CONSTRAINT component_group_status_change_new_status_check CHECK (
        new_status IN ('MAJOR_OUTAGE', 'PARTIAL_OUTAGE', 'DEGRADED_PERFORMANCE',
                       'UNDER_MAINTENANCE', 'OPERATIONAL'))
);
CREATE INDEX component_group_status_change_group_id_seq_idx
    ON component_group_status_change (group_id, seq);
CREATE INDEX component_group_status_change_status_page_id_changed_at_idx
    ON component_group_status_change (status_page_id, changed_at);

COMMENT ON TABLE component_group_status_change IS
    'The group status log: every change of a group''s current_status, in order, written by the derivation and announced (seq) on statusdb_status_change.';
COMMENT ON COLUMN component_group_status_change.seq IS
    'Order and feed announcement: drawn from status_change''s sequence, so a seq names one change of either log.';
COMMENT ON COLUMN component_group_status_change.id IS 'A UUIDv7 as text: the change_id of feed events.';
COMMENT ON COLUMN component_group_status_change.status_page_id IS 'The group''s page (the log is deleted with it).';
COMMENT ON COLUMN component_group_status_change.group_id IS 'The group whose status changed (the log is deleted with it).';
COMMENT ON COLUMN component_group_status_change.previous_status IS
    'The status before; equals the prior change''s new_status (OPERATIONAL for the first).';
COMMENT ON COLUMN component_group_status_change.new_status IS 'The status after.';
COMMENT ON COLUMN component_group_status_change.changed_at IS 'When the change was made (clock_timestamp()).';

-- --------------------------------------------------------------------------------------------
-- Subscribers following groups
--
-- group_ids: groups of the subscriber's page whose members (now and later, transitively) the
-- subscriber follows, besides component_ids. Following everything is now: both empty. The
-- fan-out's "everyone" index is rebuilt with that predicate (so that it stays an index-only
-- scan), and group followers get their own GIN index. Built in yoyo's transaction like 0010
-- (same advice for very large tables: build them CONCURRENTLY by hand first, under these names;
-- the old index is dropped here either way).
ALTER TABLE status_subscriber ADD COLUMN group_ids text[] NOT NULL DEFAULT '{}';
-- The column was just added with '{}' everywhere: the check's scan finds nothing to refuse.
ALTER TABLE status_subscriber
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT status_subscriber_group_ids_check CHECK (array_position(group_ids, NULL) IS NULL);
COMMENT ON COLUMN status_subscriber.group_ids IS
    'Groups of the same page followed (with their members, including later ones); component_ids and group_ids both empty: all. Checked and kept free of deleted ids by triggers.';

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_everything_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids = '{}' AND group_ids = '{}' AND is_active AND is_verified;
-- squawk-ignore require-concurrent-index-deletion
DROP INDEX status_subscriber_fan_out_all_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX IF NOT EXISTS status_subscriber_fan_out_group_idx
    ON status_subscriber USING gin (group_ids)
    WHERE group_ids <> '{}' AND is_active AND is_verified;

-- --------------------------------------------------------------------------------------------
-- Tree rules: no cycle, at most 3 levels
--
-- Runs as the owner (SECURITY DEFINER): the walk must see every row whatever the caller's team
-- scope. It locks each ancestor FOR SHARE while it walks (a parent_id change is a NO KEY
-- UPDATE, which conflicts): two transactions that each hang one group under the other wait for
-- each other (one gets a deadlock error) instead of both seeing no cycle; after a wait, READ
-- COMMITTED reads the ancestor as committed. REPEATABLE READ would walk an old snapshot: a
-- changed ancestor then fails with a serialization error, an unchanged one is what it was.
CREATE FUNCTION statusdb_component_group_check_tree() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    max_depth CONSTANT integer := 3;
    cursor_id text := NEW.parent_id;
    parent_depth integer := 0;
    height integer := 1;
BEGIN
    WHILE cursor_id IS NOT NULL LOOP
        IF cursor_id = NEW.id THEN
            RAISE EXCEPTION 'group % cannot be inside itself (its parent % is one of its subgroups)',
                    NEW.id, NEW.parent_id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'component_group_parent_id_cycle';
        END IF;
        parent_depth := parent_depth + 1;
        IF parent_depth >= max_depth THEN
            EXIT;  -- too deep whatever comes above (checked below)
        END IF;
        SELECT g.parent_id INTO cursor_id
        FROM component_group g
        WHERE g.id = cursor_id
        FOR SHARE;
    END LOOP;
    IF TG_OP = 'UPDATE' AND parent_depth > 0 THEN
        -- The subtree moves with the group: its height counts too (bounded: 3 levels).
        WITH RECURSIVE below (id, level) AS (
            SELECT NEW.id, 1
            UNION ALL
            SELECT g.id, below.level + 1
            FROM below
            JOIN component_group g ON g.parent_id = below.id
            WHERE below.level <= max_depth
        )
        SELECT max(below.level) INTO height FROM below;
    END IF;
    IF parent_depth + height > max_depth THEN
        RAISE EXCEPTION 'groups nest at most % levels deep (group % would be at level %)',
                max_depth, NEW.id, parent_depth + height
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'component_group_depth_check';
    END IF;
    RETURN NEW;
END;
$$;

-- Named to fire after component_group_guard (BEFORE triggers fire in name order).
CREATE TRIGGER component_group_tree_check
    BEFORE INSERT OR UPDATE OF parent_id ON component_group
    FOR EACH ROW
    WHEN (NEW.parent_id IS NOT NULL)
    EXECUTE FUNCTION statusdb_component_group_check_tree();

-- --------------------------------------------------------------------------------------------
-- The guard: a group keeps its id and its page; its status is the derivation's
--
-- As for components (0012): the derivation's own UPDATE of current_status is recognised by
-- pg_trigger_depth() > 1 (it runs inside the roll-up triggers) or a status_repair row of this
-- transaction (the repair); anything else writing the status, a DBA's psql included, is refused.
-- statusdb_app has no privilege on those columns at all. A new group starts OPERATIONAL (it has
-- no members yet), whatever the INSERT says.
CREATE FUNCTION statusdb_component_group_guard() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.current_status := 'OPERATIONAL';
        NEW.status_updated_at := clock_timestamp();
        RETURN NEW;
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'the id of group % cannot change', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'component_group_id_fixed';
    END IF;
    IF NEW.status_page_id IS DISTINCT FROM OLD.status_page_id THEN
        RAISE EXCEPTION 'group % cannot move to another status page', OLD.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'component_group_status_page_id_fixed',
                  HINT = 'Create the group on the other page instead.';
    END IF;
    IF (NEW.current_status, NEW.status_updated_at)
           IS DISTINCT FROM (OLD.current_status, OLD.status_updated_at)
       AND pg_trigger_depth() <= 1
       AND NOT EXISTS (SELECT 1 FROM status_repair r WHERE r.xid = pg_current_xact_id()) THEN
        RAISE EXCEPTION 'current_status of group % is derived and cannot be set directly', OLD.id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'component_group_current_status_derived',
                  HINT = 'A group''s status is the worst of its members''.';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER component_group_guard
    BEFORE INSERT OR UPDATE ON component_group
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_component_group_guard();

CREATE TRIGGER component_group_touch_updated_at
    BEFORE UPDATE ON component_group
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_touch_updated_at();

-- --------------------------------------------------------------------------------------------
-- The roll-up
--
-- A group's status is the worst status of the components in its subtree (itself and its
-- subgroups, at most 3 levels), OPERATIONAL when there are none. That equals "the worst of its
-- members, components and subgroups" (an empty subgroup is OPERATIONAL, which changes no
-- worst), and it is computed from the components alone, so a group never depends on another
-- group's stored status: the groups of one change can be re-derived in one statement.
CREATE FUNCTION statusdb_derive_group_statuses(group_ids text[])
RETURNS TABLE (group_id text, status_page_id text, current_status text, derived_status text)
LANGUAGE sql
STABLE
AS $$
    WITH RECURSIVE subtree (root, id, level) AS (
        SELECT g.id, g.id, 1
        FROM public.component_group g
        WHERE g.id = ANY (statusdb_derive_group_statuses.group_ids)
        UNION ALL
        SELECT subtree.root, g.id, subtree.level + 1
        FROM subtree
        JOIN public.component_group g ON g.parent_id = subtree.id
        WHERE subtree.level < 3
    ),
    -- Per group of the subtree, its components' worst rank: a lookup by group_id each (the
    -- partial index on group_id), whatever the number of groups the plan expects.
    worst AS (
        SELECT subtree.root, min(member.rank) AS rank
        FROM subtree
        CROSS JOIN LATERAL (
            SELECT min(statusdb_status_rank(c.current_status)) AS rank
            FROM public.status_page_component c
            WHERE c.group_id = subtree.id
        ) AS member
        GROUP BY subtree.root
    )
    SELECT g.id, g.status_page_id, g.current_status,
           CASE coalesce(worst.rank, 4)
               WHEN 0 THEN 'MAJOR_OUTAGE'
               WHEN 1 THEN 'PARTIAL_OUTAGE'
               WHEN 2 THEN 'DEGRADED_PERFORMANCE'
               WHEN 3 THEN 'UNDER_MAINTENANCE'
               ELSE 'OPERATIONAL'
           END
    FROM public.component_group g
    LEFT JOIN worst ON worst.root = g.id
    WHERE g.id = ANY (statusdb_derive_group_statuses.group_ids)
$$;

-- The groups whose status may change when the given groups' contents change: those groups and
-- their ancestors (on pages that still exist: a page being deleted takes its groups along).
CREATE FUNCTION statusdb_group_closure(group_ids text[]) RETURNS text[]
LANGUAGE sql
STABLE
AS $$
    WITH RECURSIVE up (id, parent_id, level) AS (
        SELECT g.id, g.parent_id, 1
        FROM public.component_group g
        JOIN public.status_page p ON p.id = g.status_page_id
        WHERE g.id = ANY (statusdb_group_closure.group_ids)
        UNION ALL
        SELECT g.id, g.parent_id, up.level + 1
        FROM up
        JOIN public.component_group g ON g.id = up.parent_id
        WHERE up.level < 3
    )
    SELECT coalesce(array_agg(DISTINCT up.id), '{}') FROM up
$$;

-- Re-derives the given groups and their ancestors, logs and announces each real change.
-- Serialisation: the groups' own rows, locked FOR NO KEY UPDATE in id order (one statement),
-- then read in later statements: under READ COMMITTED each statement of this function takes a
-- fresh snapshot, so a writer that waited for another's lock sees that writer's committed
-- member changes and derives from them (the last to lock derives last, from everything). Every
-- writer of a member's status or membership locks the group after its own write, so no change
-- is missed. If a concurrent move changed the ancestors meanwhile, the new ones are locked too
-- (and checked again). Slot 0 of status_lock is taken shared first (statusdb_lock_status_keys
-- with no keys), as every derivation does: the repair's exclusive lock keeps this out, and
-- REPEATABLE READ is refused there. Only statusdb_app can lock group rows besides the owner, and
-- it writes statuses anyway (it can always hold them up by keeping a transaction open).
CREATE FUNCTION statusdb_refresh_groups(group_ids text[]) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    locked text[] := '{}';
    wanted text[];
    notified bigint;
BEGIN
    IF cardinality(group_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM statusdb_lock_status_keys('{}');
    LOOP
        wanted := statusdb_group_closure(group_ids);
        EXIT WHEN wanted <@ locked;
        PERFORM 1 FROM component_group g WHERE g.id = ANY (wanted) ORDER BY g.id
        FOR NO KEY UPDATE;
        locked := locked || wanted;
        group_ids := wanted;
    END LOOP;
    WITH derived AS (
        SELECT d.group_id, d.current_status, d.derived_status
        FROM statusdb_derive_group_statuses(locked) AS d
        WHERE d.current_status IS DISTINCT FROM d.derived_status
    ),
    changed AS (
        UPDATE component_group g
        SET current_status = derived.derived_status,
            status_updated_at = clock_timestamp()
        FROM derived
        WHERE g.id = ANY (locked)
          AND g.id = derived.group_id
        RETURNING g.id, g.status_page_id, derived.current_status AS previous_status,
                  g.current_status AS new_status, g.status_updated_at
    ),
    logged AS (
        INSERT INTO component_group_status_change (status_page_id, group_id, previous_status,
                                                   new_status, changed_at)
        SELECT changed.status_page_id, changed.id, changed.previous_status, changed.new_status,
               changed.status_updated_at
        FROM changed
        ORDER BY changed.id
        RETURNING component_group_status_change.seq
    )
    SELECT count(pg_notify('statusdb_status_change', logged.seq::text))
    INTO STRICT notified
    FROM logged;
END;
$$;

-- Statement-level: once per INSERT, UPDATE or DELETE of components, whatever the number of rows.
-- The groups concerned: those a component joined or left with a status other than OPERATIONAL
-- (an OPERATIONAL member changes no worst), and those of components whose status changed.
-- (0012's derivation writes statuses in its own UPDATE statements, inside triggers: this fires
-- at the end of each of them.)
CREATE FUNCTION statusdb_status_page_component_roll_up() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    ids text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT n.group_id) INTO ids
        FROM new_rows n
        WHERE n.group_id IS NOT NULL AND n.current_status <> 'OPERATIONAL';
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT o.group_id) INTO ids
        FROM old_rows o
        WHERE o.group_id IS NOT NULL AND o.current_status <> 'OPERATIONAL';
    ELSE
        SELECT array_agg(DISTINCT moved.group_id) INTO ids
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.group_id), (n.group_id)) AS moved (group_id)
        WHERE moved.group_id IS NOT NULL
          AND (o.current_status <> n.current_status
               OR (o.group_id IS DISTINCT FROM n.group_id
                   AND (o.current_status <> 'OPERATIONAL' OR n.current_status <> 'OPERATIONAL')));
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM statusdb_refresh_groups(ids);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER status_page_component_roll_up_insert
    AFTER INSERT ON status_page_component
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION statusdb_status_page_component_roll_up();
CREATE TRIGGER status_page_component_roll_up_update
    AFTER UPDATE ON status_page_component
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION statusdb_status_page_component_roll_up();
CREATE TRIGGER status_page_component_roll_up_delete
    AFTER DELETE ON status_page_component
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION statusdb_status_page_component_roll_up();

-- Groups that move (parent_id) or go (delete) with a status other than OPERATIONAL change their
-- old and new parents' subtrees. (A deleted group's components and subgroups are released by
-- the foreign keys' SET NULL, whose UPDATEs roll up through the other triggers.) The roll-up's
-- own status UPDATEs fire this too and find nothing to do.
CREATE FUNCTION statusdb_component_group_roll_up() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    ids text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT o.parent_id) INTO ids
        FROM old_rows o
        WHERE o.parent_id IS NOT NULL AND o.current_status <> 'OPERATIONAL';
    ELSE
        SELECT array_agg(DISTINCT moved.parent_id) INTO ids
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.parent_id), (n.parent_id)) AS moved (parent_id)
        WHERE moved.parent_id IS NOT NULL
          AND o.parent_id IS DISTINCT FROM n.parent_id
          AND n.current_status <> 'OPERATIONAL';
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM statusdb_refresh_groups(ids);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER component_group_roll_up_update
    AFTER UPDATE ON component_group
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION statusdb_component_group_roll_up();
CREATE TRIGGER component_group_roll_up_delete
    AFTER DELETE ON component_group
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION statusdb_component_group_roll_up();

-- --------------------------------------------------------------------------------------------
-- Repair: groups too
CREATE VIEW statusdb_group_derived_status AS
SELECT d.group_id, d.status_page_id, d.current_status, d.derived_status
FROM statusdb_derive_group_statuses(ARRAY(SELECT g.id FROM component_group g)) AS d;
COMMENT ON VIEW statusdb_group_derived_status IS
    'The status each group should have, computed from scratch from its members.';
COMMENT ON COLUMN statusdb_group_derived_status.group_id IS 'The group.';
COMMENT ON COLUMN statusdb_group_derived_status.status_page_id IS 'Its page.';
COMMENT ON COLUMN statusdb_group_derived_status.current_status IS 'The status stored on the group.';
COMMENT ON COLUMN statusdb_group_derived_status.derived_status IS
    'The status derived from scratch; differs from current_status only after drift (a load with triggers off).';

-- For operators: like statusdb_recompute_statuses, for groups (it compares every group; with
-- true it repairs under slot 0 of status_lock, exclusive, marked for the guard).
CREATE FUNCTION statusdb_recompute_group_statuses(repair boolean)
RETURNS TABLE (group_id text, current_status text, derived_status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    drifted text[];
BEGIN
    IF repair THEN
        IF current_setting('transaction_isolation') = 'repeatable read' THEN
            RAISE EXCEPTION 'group statuses cannot be re-derived in a REPEATABLE READ transaction'
                USING ERRCODE = 'invalid_transaction_state',
                      HINT = 'Use READ COMMITTED (the default) or SERIALIZABLE.';
        END IF;
        PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        IF NOT FOUND THEN  -- first use
            INSERT INTO status_lock (slot) VALUES (0) ON CONFLICT DO NOTHING;
            PERFORM 1 FROM status_lock l WHERE l.slot = 0 FOR UPDATE;
        END IF;
    END IF;
    SELECT coalesce(array_agg(d.group_id ORDER BY d.group_id), '{}')
    INTO drifted
    FROM statusdb_group_derived_status d
    WHERE d.current_status IS DISTINCT FROM d.derived_status;

    RETURN QUERY
    SELECT d.group_id, d.current_status, d.derived_status
    FROM statusdb_derive_group_statuses(drifted) AS d
    ORDER BY d.group_id;

    IF repair AND cardinality(drifted) > 0 THEN
        INSERT INTO status_repair (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
        PERFORM statusdb_refresh_groups(drifted);
        DELETE FROM status_repair r WHERE r.xid = pg_current_xact_id();
    END IF;
END;
$$;

-- 0012's repair, which now also repairs the groups (its result stays the components' drift;
-- statusdb_recompute_group_statuses reports the groups').
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
    IF repair THEN
        PERFORM 1 FROM statusdb_recompute_group_statuses(true);
    END IF;
END;
$$;

-- --------------------------------------------------------------------------------------------
-- Subscribers: group ids of the same page, kept free of deleted groups
CREATE FUNCTION statusdb_check_group_ids(page_id text, ids text[], constraint_name text)
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    missing text;
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(ids) > 1000 THEN
        RAISE EXCEPTION 'at most 1000 group ids, not %', cardinality(ids)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Like a foreign key check: the groups cannot be deleted until this transaction ends.
    PERFORM 1
    FROM public.component_group g
    WHERE g.id = ANY (ids)
    ORDER BY g.id
    FOR KEY SHARE;
    SELECT i INTO missing
    FROM unnest(ids) AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM public.component_group g
        WHERE g.id = i AND g.status_page_id = page_id
    )
    LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'group % is not a group of status page %', missing, page_id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name;
    END IF;
END;
$$;

CREATE FUNCTION statusdb_status_subscriber_check_group_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM statusdb_check_group_ids(NEW.status_page_id, NEW.group_ids,
                                     'status_subscriber_group_ids_fkey');
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_subscriber_check_group_ids
    BEFORE INSERT OR UPDATE OF status_page_id, group_ids ON status_subscriber
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_status_subscriber_check_group_ids();

-- A deleted group leaves its page's subscribers; one left following nothing (it followed only
-- deleted things) is deactivated, as 0002 does for components. Runs as the deleting role (it
-- can delete groups of the page, so it can see the page's subscribers under its team scope);
-- tables qualified (0012).
CREATE FUNCTION statusdb_component_group_forget_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE public.status_subscriber s
    SET group_ids = array_remove(s.group_ids, OLD.id),
        is_active = s.is_active
                    AND (cardinality(s.component_ids) > 0
                         OR cardinality(array_remove(s.group_ids, OLD.id)) > 0)
    WHERE s.status_page_id = OLD.status_page_id AND s.group_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

CREATE TRIGGER component_group_forget_ids
    AFTER DELETE ON component_group
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_component_group_forget_ids();

-- 0012's component cleanup: a subscriber that still follows groups stays active.
CREATE OR REPLACE FUNCTION statusdb_status_page_component_forget_ids() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE public.status_subscriber s
    SET component_ids = array_remove(s.component_ids, OLD.id),
        is_active = s.is_active
                    AND (cardinality(array_remove(s.component_ids, OLD.id)) > 0
                         OR cardinality(s.group_ids) > 0)
    WHERE s.status_page_id = OLD.status_page_id AND s.component_ids @> ARRAY[OLD.id];

    UPDATE public.status_incident i
    SET affected_component_ids = array_remove(i.affected_component_ids, OLD.id)
    WHERE i.status_page_id = OLD.status_page_id AND i.affected_component_ids @> ARRAY[OLD.id];
    RETURN OLD;
END;
$$;

-- The groups that contain a component, innermost first (its group and that group's ancestors,
-- at most 3): the fan-out's "follows this component through a group" is
--     s.group_ids && statusdb_component_group_path(<component id>)
-- which the GIN index status_subscriber_fan_out_group_idx answers (the function is STABLE, so
-- it is evaluated once per query, before the index scan). Runs as the caller (row-level
-- security applies); bounded by the depth limit.
CREATE FUNCTION statusdb_component_group_path(component_id text) RETURNS text[]
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    WITH RECURSIVE up (id, parent_id, level) AS (
        SELECT g.id, g.parent_id, 1
        FROM public.status_page_component c
        JOIN public.component_group g ON g.id = c.group_id
        WHERE c.id = statusdb_component_group_path.component_id
        UNION ALL
        SELECT g.id, g.parent_id, up.level + 1
        FROM up
        JOIN public.component_group g ON g.id = up.parent_id
        WHERE up.level < 3
    )
    SELECT coalesce(array_agg(up.id ORDER BY up.level), '{}') FROM up
$$;

-- --------------------------------------------------------------------------------------------
-- Privileges, row-level security, comments
--
-- Groups: everything but the derived status, like components (0008). The log: read only.
GRANT SELECT, DELETE ON TABLE component_group TO statusdb_app;
GRANT INSERT (id, status_page_id, parent_id, name, description, display_order, created_at,
              updated_at),
      UPDATE (status_page_id, parent_id, name, description, display_order, updated_at)
    ON TABLE component_group TO statusdb_app;
GRANT SELECT ON TABLE component_group_status_change TO statusdb_app;
GRANT INSERT (group_id), UPDATE (group_id) ON TABLE status_page_component TO statusdb_app;

ALTER TABLE component_group ENABLE ROW LEVEL SECURITY;
-- --------------------------------------------------------------------------------------------
-- Notification events (0018) reach group followers too: 0018's one predicate, with
-- "follows everything" now meaning no components and no groups, and a fourth branch for those
-- following a group that contains an affected component (statusdb_component_group_path, the
-- one definition of that, as in outbox_recipients). Disjoint branches: one row per subscriber.
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
      AND s.group_ids = '{}'
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
    UNION ALL
    -- A page-wide event also reaches those following groups only (few: no index of their own).
    SELECT s.id, s.channel, s.destination
    FROM (SELECT WHERE cardinality(event_component_ids) = 0) AS page_wide
    CROSS JOIN public.status_subscriber s
    WHERE s.status_page_id = page_id
      AND s.component_ids = '{}'
      AND s.group_ids <> '{}'
      AND s.is_active
      AND s.is_verified
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
    UNION ALL
    -- Followers of a group containing an affected component, unless they follow one of the
    -- components directly (the second branch has them). The paths: at most 3 groups per
    -- component, through the GIN index status_subscriber_fan_out_group_idx.
    SELECT s.id, s.channel, s.destination
    FROM (SELECT ARRAY(SELECT DISTINCT g.id
                       FROM unnest(event_component_ids) AS c (id)
                       CROSS JOIN LATERAL unnest(statusdb_component_group_path(c.id)) AS g (id))
                 AS ids
          WHERE cardinality(event_component_ids) > 0) AS paths
    CROSS JOIN public.status_subscriber s
    WHERE s.group_ids && paths.ids
      AND s.group_ids <> '{}'
      AND NOT (s.component_ids && event_component_ids)
      AND s.is_active
      AND s.is_verified
      AND s.status_page_id = page_id
      AND s.notify_on && kinds
      AND NOT (s.notify_on && folded_kinds)
$$;

COMMENT ON FUNCTION statusdb_notification_recipients(text, text[], text[], text[]) IS
    'Who is told: active, verified subscribers of the page wanting one of kinds and none of '
    'folded_kinds, following one of the components directly or through a group (0020), or all '
    '(none given: the whole page). One row per subscriber.';

CREATE POLICY component_group_team_isolation ON component_group
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));
ALTER TABLE component_group_status_change ENABLE ROW LEVEL SECURITY;
CREATE POLICY component_group_status_change_team_isolation ON component_group_status_change
    USING ((SELECT statusdb_current_team()) IS NULL
           OR status_page_id IN (SELECT p.id FROM status_page p
                                 WHERE p.team_id = (SELECT statusdb_current_team())));

REVOKE EXECUTE ON FUNCTION
    statusdb_component_group_check_tree(),
    statusdb_component_group_guard(),
    statusdb_derive_group_statuses(text[]),
    statusdb_group_closure(text[]),
    statusdb_refresh_groups(text[]),
    statusdb_status_page_component_roll_up(),
    statusdb_component_group_roll_up(),
    statusdb_recompute_group_statuses(boolean),
    statusdb_check_group_ids(text, text[], text),
    statusdb_status_subscriber_check_group_ids(),
    statusdb_component_group_forget_ids(),
    statusdb_component_group_path(text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    statusdb_recompute_group_statuses(boolean),
    statusdb_check_group_ids(text, text[], text),
    statusdb_component_group_path(text)
TO statusdb_app;

COMMENT ON FUNCTION statusdb_component_group_check_tree() IS
    'Trigger: refuses a parent that makes a cycle (component_group_parent_id_cycle) or nests groups more than 3 levels deep (component_group_depth_check).';
COMMENT ON FUNCTION statusdb_component_group_guard() IS
    'Trigger: a group keeps its id and page; its current_status is written only by the derivation (new groups start OPERATIONAL).';
COMMENT ON FUNCTION statusdb_derive_group_statuses(text[]) IS
    'The status the given groups should have: the worst status of the components in their subtrees (OPERATIONAL if none).';
COMMENT ON FUNCTION statusdb_group_closure(text[]) IS
    'The given groups and their ancestors (groups of existing pages only).';
COMMENT ON FUNCTION statusdb_refresh_groups(text[]) IS
    'Locks the given groups and their ancestors (id order), re-derives them, logs and announces each real change. Owner only.';
COMMENT ON FUNCTION statusdb_status_page_component_roll_up() IS
    'Statement trigger: re-derives the groups whose components changed status, joined, left or were deleted.';
COMMENT ON FUNCTION statusdb_component_group_roll_up() IS
    'Statement trigger: re-derives the old and new parents of groups that moved or were deleted.';
COMMENT ON FUNCTION statusdb_recompute_group_statuses(boolean) IS
    'For operators: compares every group with a from-scratch derivation; with true, repairs the drift. Returns the drifted groups.';
COMMENT ON FUNCTION statusdb_check_group_ids(text, text[], text) IS
    'Raises (as the named constraint) unless every id names a group of the page (at most 1000); locks them FOR KEY SHARE like a foreign key check.';
COMMENT ON FUNCTION statusdb_status_subscriber_check_group_ids() IS
    'Trigger: status_subscriber.group_ids must be groups of the subscriber''s page.';
COMMENT ON FUNCTION statusdb_component_group_forget_ids() IS
    'Trigger: removes a deleted group''s id from its page''s subscribers (a subscriber left following nothing is deactivated).';
COMMENT ON FUNCTION statusdb_component_group_path(text) IS
    'The groups containing a component, innermost first (at most 3): the fan-out matches group followers with s.group_ids && this.';

-- --------------------------------------------------------------------------------------------
-- The page snapshot shows the groups (0017's read model, 0020's tree)
--
-- 0017 renders each page into status_page_snapshot when it changes; the groups join that
-- rendering: a groups column (the flat list, in display order), each component's group id (a
-- 7th element of its array), and the groups' updated_at in the page's. The renderer, the
-- refresh/create/repair (which store and compare the rendering) and the page view (one more
-- output column) are 0017's functions with exactly these additions. Statement triggers on
-- component_group re-render the page in the writer's transaction when a group is added,
-- removed, renamed, moved, reordered or its derived status changes (the roll-up's UPDATE fires
-- them too); a component moving between groups re-renders through 0017's component trigger,
-- which now also compares group_id.

-- Constant default: no rewrite; every row is rendered again at the end of this migration, and
-- the default goes (the writers always store a rendering).
ALTER TABLE status_page_snapshot ADD COLUMN groups json NOT NULL DEFAULT '[]';
-- No client writes this table (only the owner's renderer does): dropping the default breaks none.
-- squawk-ignore ban-drop-default
ALTER TABLE status_page_snapshot ALTER COLUMN groups DROP DEFAULT;
COMMENT ON COLUMN status_page_snapshot.groups IS
    'JSON array of the page''s groups [id, name, description, parent_id, display_order, '
    'current_status] by (display_order, name, id), flat (0020).';

-- One more output column changes the function's type: dropped and created again.
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_page_render(text[]);

CREATE FUNCTION statusdb_page_render(page_ids text[])
RETURNS TABLE (
    page_id text, slug text, is_public boolean, access_token_hash bytea, name text,
    description text, updated_at timestamptz, components json, incidents json, windows json,
    window_starts timestamptz[], window_scheduled boolean[], groups json
)
LANGUAGE plpgsql STABLE
-- Timestamps in the JSON are rendered in UTC whoever writes, so that a rendering depends only
-- on the data (the readers decode them as aware datetimes: the same instants as before).
SET TimeZone = 'UTC'
-- plpgsql rather than sql: its one statement's plan is cached per session (a SQL function with
-- a SET clause is not inlined and would be planned again at every call).
AS $$
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
$$;

COMMENT ON FUNCTION statusdb_page_render(text[]) IS
    'Renders the given pages from scratch (0017, groups since 0020), one row per existing page, as '
    'status_page_snapshot stores them. Document shape (JSON arrays, timestamps in UTC): '
    'components = [[id, name, description, display_order, current_status, status_updated_at, '
    'group_id], '
    '...] by (display_order, name, id); incidents = active status incidents [[id, title, '
    'message, severity, status, affected_component_ids, created_at, updated_at, updates], ...] '
    'newest first; windows = maintenance candidates [[id, title, description, status, '
    'start_time, end_time, component_ids], ...] by (start_time, id): the first 200 IN_PROGRESS '
    'and the first 200 SCHEDULED, with window_starts / window_scheduled alongside for the '
    'read''s horizon filter. updated_at = latest of the page''s, its components'' status and its '
    'active incidents'' changes and its groups'' updated_at; groups = [[id, name, '
    'description, parent_id, display_order, current_status], ...] by (display_order, name, '
    'id), flat (the tree is built from parent_id). Owner only (called by the triggers and the repair).';

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_refresh(page_ids text[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    announced bigint;
BEGIN
    IF coalesce(cardinality(page_ids), 0) = 0 THEN
        RETURN;
    END IF;
    -- 1. The snapshot rows, locked in page order (deleted pages have none).
    PERFORM 1 FROM status_page_snapshot s
    WHERE s.page_id = ANY (page_ids)
    ORDER BY s.page_id
    FOR UPDATE;
    -- 2. A new statement, a new snapshot (READ COMMITTED): the rendering includes what another
    --    writer of these pages committed while we waited for the locks.
    WITH rendered AS (
        SELECT r.* FROM statusdb_page_render(page_ids) AS r
    ),
    changed AS (
        UPDATE status_page_snapshot s
        SET version = nextval('status_page_snapshot_version_seq'),
            slug = r.slug, is_public = r.is_public, access_token_hash = r.access_token_hash,
            name = r.name, description = r.description, updated_at = r.updated_at,
            components = r.components, incidents = r.incidents, windows = r.windows,
            window_starts = r.window_starts, window_scheduled = r.window_scheduled, groups = r.groups
        FROM rendered r
        WHERE s.page_id = r.page_id
          AND (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text, s.groups::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text, r.groups::text)
        RETURNING s.version
    )
    -- The lowest version readers of the new rendering see (k = 0).
    SELECT count(pg_notify('statusdb_page_version', (changed.version * 256)::text))
    INTO STRICT announced
    FROM changed;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_refresh(text[]) IS
    'Re-renders the snapshots of the given pages (0017; with the groups since 0020): locks their rows, then renders in a '
    'later statement; a changed rendering gets a new version, announced on '
    'statusdb_page_version (payload: version * 256, the lowest version its readers see). '
    'Owner only.';

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_create(page_ids text[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    announced bigint;
BEGIN
    WITH created AS (
        INSERT INTO status_page_snapshot (page_id, version, slug, is_public, access_token_hash,
                                          name, description, updated_at, components,
                                          incidents, windows, window_starts, window_scheduled, groups)
        SELECT r.page_id, nextval('status_page_snapshot_version_seq'), r.slug, r.is_public,
               r.access_token_hash, r.name, r.description, r.updated_at, r.components,
               r.incidents, r.windows, r.window_starts, r.window_scheduled, r.groups
        FROM statusdb_page_render(page_ids) AS r
        ORDER BY r.page_id
        ON CONFLICT (page_id) DO NOTHING
        RETURNING version
    )
    SELECT count(pg_notify('statusdb_page_version', (created.version * 256)::text))
    INTO STRICT announced
    FROM created;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_create(text[]) IS
    'Renders the first snapshot of new pages (0017; with the groups since 0020) and announces it (version * 256). Owner '
    'only.';

CREATE OR REPLACE FUNCTION statusdb_page_snapshot_repair(repair boolean)
RETURNS TABLE (page_id text, stored_version bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    missing text[];
    drifted text[];
BEGIN
    -- One pass over the pages (the operator's repair, as statusdb_recompute_statuses: no
    -- argument to bound). Pages without a snapshot are reported with a null version.
    missing := ARRAY(SELECT p.id FROM status_page p
                     WHERE NOT EXISTS (SELECT 1 FROM status_page_snapshot s
                                       WHERE s.page_id = p.id)
                     ORDER BY p.id);
    drifted := ARRAY(
        SELECT s.page_id
        FROM status_page_snapshot s
        JOIN statusdb_page_render(ARRAY(SELECT p.id FROM status_page p)) AS r
          ON r.page_id = s.page_id
        WHERE (s.slug, s.is_public, s.access_token_hash, s.name, s.description, s.updated_at,
               s.components::text, s.incidents::text, s.windows::text,
               s.window_starts, s.window_scheduled, s.groups::text)
              IS DISTINCT FROM
              (r.slug, r.is_public, r.access_token_hash, r.name, r.description, r.updated_at,
               r.components::text, r.incidents::text, r.windows::text,
               r.window_starts, r.window_scheduled, r.groups::text)
        ORDER BY s.page_id);
    RETURN QUERY
    SELECT m, NULL::bigint FROM unnest(missing) AS m
    UNION ALL
    SELECT s.page_id, s.version * 256 FROM status_page_snapshot s
    WHERE s.page_id = ANY (drifted)
    ORDER BY 1;
    IF repair THEN
        PERFORM statusdb_page_snapshot_create(missing);
        PERFORM statusdb_page_snapshot_refresh(drifted);
    END IF;
END;
$$;

COMMENT ON FUNCTION statusdb_page_snapshot_repair(boolean) IS
    'Pages whose snapshot is missing (null version) or differs from a rendering from scratch '
    '(0017; groups included since 0020), with the lowest version its readers were given (snapshot version * 256); '
    're-rendered when repair is true. One pass over every page.';

CREATE OR REPLACE FUNCTION statusdb_status_page_component_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        -- Only rows whose shown columns changed (manual_status, team_id, ... are not shown;
        -- a rendering that comes out the same would keep its version anyway).
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT n.status_page_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.name, n.description, n.display_order, n.current_status,
                   n.status_updated_at, n.group_id)
                  IS DISTINCT FROM
                  (o.name, o.description, o.display_order, o.current_status,
                   o.status_updated_at, o.group_id)));
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_status_page_component_snapshot() IS
    'Statement trigger of status_page_component (0017): re-renders the pages whose shown '
    'component columns (since 0020: group_id too) changed.';

CREATE FUNCTION statusdb_component_group_snapshot() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT n.status_page_id FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM statusdb_page_snapshot_refresh(
            ARRAY(SELECT DISTINCT o.status_page_id FROM old_rows o));
    ELSE
        -- Only groups whose shown columns changed (a group cannot change page: its guard).
        PERFORM statusdb_page_snapshot_refresh(ARRAY(
            SELECT DISTINCT n.status_page_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE (n.name, n.description, n.parent_id, n.display_order, n.current_status,
                   n.updated_at)
                  IS DISTINCT FROM
                  (o.name, o.description, o.parent_id, o.display_order, o.current_status,
                   o.updated_at)));
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION statusdb_component_group_snapshot() IS
    'Statement trigger of component_group (0020): re-renders the pages of added, removed and '
    'changed groups (derived status changes included).';

CREATE TRIGGER component_group_snapshot_insert AFTER INSERT ON component_group
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_component_group_snapshot();
CREATE TRIGGER component_group_snapshot_update AFTER UPDATE ON component_group
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_component_group_snapshot();
CREATE TRIGGER component_group_snapshot_delete AFTER DELETE ON component_group
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_component_group_snapshot();

-- The page view: 0017's function with the groups as a last column (a body column: null when
-- not modified). A new result type: dropped and created again, its grants restated (0017's).
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint);

CREATE FUNCTION statusdb_page_view(
    page_slug text, page_token_hash bytea, maintenance_horizon interval, maintenance_limit integer,
    if_version bigint DEFAULT NULL
)
RETURNS TABLE (
    id text, name text, description text, slug text, is_public boolean, updated_at timestamptz,
    components json, incidents json, maintenance json, version bigint, fresh_until timestamptz,
    not_modified boolean, groups json
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
    SELECT s.page_id, v.name, v.description, s.slug, s.is_public, v.updated_at,
           v.components, v.incidents, v.maintenance, t.version, t.fresh_until, v.name IS NULL,
           v.groups
    FROM status_page_snapshot s
    -- Time: k = the SCHEDULED candidates already in the horizon, which with the snapshot's
    -- version names the body (see the top); the first one not in it yet enters at its
    -- start - horizon. With the limit 0 nothing is shown, whatever the clock: k = 0.
    CROSS JOIN LATERAL (
        SELECT s.version * 256
                   + least(count(*) FILTER (WHERE u.start_time < now() + horizon), 255)
                   AS version,
               min(u.start_time) FILTER (WHERE u.start_time >= now() + horizon) - horizon
                   AS fresh_until
        FROM unnest(s.window_starts, s.window_scheduled) AS u (start_time, scheduled)
        WHERE u.scheduled AND window_limit > 0
    ) AS t
    -- The body, unless the caller has this version: then not even sent.
    LEFT JOIN LATERAL (
        SELECT s.name, s.description, s.updated_at, s.components, s.incidents, s.groups,
               CASE WHEN window_limit = 0 OR cardinality(s.window_starts) = 0 THEN '[]'::json
                    ELSE (SELECT coalesce(json_agg(e.item ORDER BY e.n), '[]')
                          FROM (SELECT w.item, w.n
                                FROM json_array_elements(s.windows) WITH ORDINALITY
                                     AS w (item, n)
                                WHERE NOT s.window_scheduled[w.n]
                                   OR s.window_starts[w.n] < now() + horizon
                                ORDER BY w.n
                                LIMIT window_limit) AS e)
               END AS maintenance
        WHERE if_version IS DISTINCT FROM t.version
    ) AS v ON true
    WHERE s.slug = page_slug
      AND (s.is_public OR s.access_token_hash = stored_hash);
END;
$$;

COMMENT ON FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint) IS
    'A status page as its readers see it, read from its snapshot (0017), with its groups (0020, last column: [[id, name, '
    'description, parent_id, display_order, current_status], ...] in display order, flat); private pages only with '
    'the SHA-256 digest of their access token. Horizon 0 to 366 days (null: 7 days), limit 0 to '
    '200 windows (null: 20). version (snapshot version * 256 + the scheduled candidates in the '
    'horizon: it names the body for this horizon and limit, and only increases) and fresh_until '
    '(next time-driven change, null: none) always; with if_version equal to version, '
    'not_modified is true and the body columns are null.';

REVOKE EXECUTE ON FUNCTION
    statusdb_page_view(text, bytea, interval, integer, bigint),
    statusdb_page_render(text[]),
    statusdb_component_group_snapshot()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_page_view(text, bytea, interval, integer, bigint)
    TO statusdb_app, statusdb_reader;

-- Every existing page rendered again with its groups (components get their group id): new
-- versions, announced like any change.
DO $$
BEGIN
    PERFORM statusdb_page_snapshot_refresh(ARRAY(SELECT p.id FROM status_page p ORDER BY p.id));
END;
$$;
