-- statusdb 0021 rollback: drop status_page.time_zone and its check.

-- squawk-ignore-file ban-drop-column, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- Refuses while it would lose something (statusdb.allow_data_loss = on, `statusdb rollback
-- --allow-data-loss`): pages whose time zone is not the default UTC (their daily bars would be
-- counted in UTC after a migrate again).
DO $$
DECLARE
    zoned bigint;
BEGIN
    IF current_setting('statusdb.allow_data_loss', true) = 'on' THEN
        RETURN;
    END IF;
    SELECT count(*) INTO zoned FROM status_page WHERE time_zone <> 'UTC';
    IF zoned > 0 THEN
        RAISE EXCEPTION 'rolling back 0021_page_time_zone_daily_uptime would lose data: '
                        '% status pages have a time_zone other than UTC. %', zoned,
            'Pass --allow-data-loss to statusdb rollback (plain yoyo: '
            'PGOPTIONS=''-c statusdb.allow_data_loss=on'') to roll back anyway.'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP TRIGGER status_page_time_zone_check ON status_page;
DROP FUNCTION statusdb_status_page_check_time_zone();
ALTER TABLE status_page DROP COLUMN time_zone;
