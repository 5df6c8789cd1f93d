-- Reverts 0001_platform_core.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose, so the
-- drop-table and drop-function warnings (meant for forward migrations) are switched off here.
-- squawk-ignore-file ban-drop-table, ban-drop-function

-- Refuses while teams or incidents exist: dropping the tables loses them (see 0006's rollback for
-- the rule and the flag).
DO $$
DECLARE
    teams bigint;
    incidents bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on'
       OR NOT (EXISTS (SELECT 1 FROM team) OR EXISTS (SELECT 1 FROM incident)) THEN
        RETURN;
    END IF;
    SELECT count(*) INTO teams FROM team;
    SELECT count(*) INTO incidents FROM incident;
    RAISE EXCEPTION 'rolling back 0001_platform_core would lose data: it drops team (% rows) '
                    'and incident (% rows). %', teams, incidents,
        'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
        'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;

DROP TABLE incident;
DROP FUNCTION statusdb_incident_set_resolved_at();
DROP TABLE team;
DROP FUNCTION statusdb_touch_updated_at();
DROP FUNCTION statusdb_new_id();
