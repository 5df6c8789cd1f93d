-- Reverts 0010_fan_out_indexes.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';
-- Rolling back drops what the forward migration created; that is its purpose.
-- squawk-ignore-file require-concurrent-index-deletion

DROP INDEX status_subscriber_fan_out_component_idx;
DROP INDEX status_subscriber_fan_out_all_idx;
