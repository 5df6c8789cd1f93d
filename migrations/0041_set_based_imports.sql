-- statusdb 0041: a subscriber INSERT checks its component and group ids once per statement
-- (issue 20 item 2: the per-row check_component_ids trigger was 613 ms of 2.58 s for 20k rows).
-- depends: 0040_maintenance_advance_set_based
--
-- Design decisions:
--
-- * INSERT: the BEFORE ROW triggers status_subscriber_check_component_ids and
--   status_subscriber_check_group_ids (one plpgsql call, two queries and a lock per row and
--   array) give way to one AFTER INSERT statement trigger with a transition table,
--   status_subscriber_check_ids_insert: it bounds the group ids (at most 1000 per row, as
--   statusdb_check_group_ids did), locks every named component and group FOR KEY SHARE in id
--   order (as a foreign key check would), then looks for a row naming a component or group of
--   another page (or none) and refuses the whole statement with the same SQLSTATE
--   (foreign_key_violation) and the same constraint names (status_subscriber_component_ids_fkey,
--   status_subscriber_group_ids_fkey) and messages, so statusdb.errors translates it as before.
--   Refusing after the rows were written is the same as refusing before: the statement fails
--   and its rows are gone.
-- * UPDATE: the two row triggers stay (now BEFORE UPDATE OF their columns only). A trigger
--   with a column list cannot have transition tables, and a statement trigger without one
--   would fire on every UPDATE of the table (counters, activity); the row triggers fire only
--   when status_page_id, component_ids or group_ids is set, which updates of one row do.
-- * status_subscriber_destination_guard gets WHEN (channel IN ('SLACK', 'WEBHOOK')): its
--   function returns NULL for every other channel, so EMAIL rows (most of an import) no longer
--   call it. Same rule, fewer calls.
-- * The trigger name status_subscriber_check_ids_insert sorts before nothing else AFTER
--   INSERT on the table (there is no other), so the firing order is unchanged.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_status_subscriber_check_ids_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.group_ids INTO bad
    FROM new_rows n
    WHERE cardinality(n.group_ids) > 1000
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'at most 1000 group ids, not %', cardinality(bad.group_ids)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Like a foreign key check: the components and groups cannot be deleted until this
    -- transaction ends. Once per statement, in id order.
    PERFORM 1
    FROM public.status_page_component c
    WHERE c.id IN (SELECT DISTINCT u.id
                   FROM new_rows n CROSS JOIN LATERAL unnest(n.component_ids) AS u (id)
                   WHERE cardinality(n.component_ids) > 0)
    ORDER BY c.id
    FOR KEY SHARE;
    -- Each distinct (page, id) pair once: an import names the same few components many times.
    SELECT named.status_page_id, named.id INTO bad
    FROM (SELECT DISTINCT n.status_page_id, u.id
          FROM new_rows n CROSS JOIN LATERAL unnest(n.component_ids) AS u (id)
          WHERE cardinality(n.component_ids) > 0) AS named
    WHERE NOT EXISTS (
        SELECT 1 FROM public.status_page_component c
        WHERE c.id = named.id AND c.status_page_id = named.status_page_id
    )
    ORDER BY named.status_page_id, named.id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'component % is not a component of status page %', bad.id,
                        bad.status_page_id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'status_subscriber_component_ids_fkey';
    END IF;
    PERFORM 1
    FROM public.component_group g
    WHERE g.id IN (SELECT DISTINCT u.id
                   FROM new_rows n CROSS JOIN LATERAL unnest(n.group_ids) AS u (id)
                   WHERE cardinality(n.group_ids) > 0)
    ORDER BY g.id
    FOR KEY SHARE;
    SELECT named.status_page_id, named.id INTO bad
    FROM (SELECT DISTINCT n.status_page_id, u.id
          FROM new_rows n CROSS JOIN LATERAL unnest(n.group_ids) AS u (id)
          WHERE cardinality(n.group_ids) > 0) AS named
    WHERE NOT EXISTS (
        SELECT 1 FROM public.component_group g
        WHERE g.id = named.id AND g.status_page_id = named.status_page_id
    )
    ORDER BY named.status_page_id, named.id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'group % is not a group of status page %', bad.id, bad.status_page_id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'status_subscriber_group_ids_fkey';
    END IF;
    RETURN NULL;
END;
$$;

REVOKE EXECUTE ON FUNCTION statusdb_status_subscriber_check_ids_insert() FROM PUBLIC;

COMMENT ON FUNCTION statusdb_status_subscriber_check_ids_insert() IS
    'Statement trigger: the inserted subscribers'' component_ids and group_ids must be '
    'components and groups of their pages (at most 1000 group ids); locks them FOR KEY SHARE.';

DROP TRIGGER status_subscriber_check_component_ids ON status_subscriber;
CREATE TRIGGER status_subscriber_check_component_ids
    BEFORE UPDATE OF status_page_id, component_ids ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_subscriber_check_component_ids();

DROP TRIGGER status_subscriber_check_group_ids ON status_subscriber;
CREATE TRIGGER status_subscriber_check_group_ids
    BEFORE UPDATE OF status_page_id, group_ids ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_subscriber_check_group_ids();

CREATE TRIGGER status_subscriber_check_ids_insert
    AFTER INSERT ON status_subscriber
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION statusdb_status_subscriber_check_ids_insert();

COMMENT ON TRIGGER status_subscriber_check_ids_insert ON status_subscriber IS
    'Once per INSERT statement: component_ids and group_ids name the page''s own (0041).';

DROP TRIGGER status_subscriber_destination_guard ON status_subscriber;
CREATE TRIGGER status_subscriber_destination_guard
    BEFORE INSERT OR UPDATE OF channel, destination ON status_subscriber
    FOR EACH ROW
    WHEN (NEW.channel IN ('SLACK', 'WEBHOOK'))
    EXECUTE FUNCTION statusdb_status_subscriber_destination_guard();
