-- statusdb 0042 rollback: the fan-out's covering indexes without the locale (as 0020 and 0018
-- built them, without comments).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '30min';

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX status_subscriber_fan_out_page_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_subscriber_fan_out_page_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids <> '{}' AND is_active AND is_verified;

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX status_subscriber_fan_out_everything_idx;
-- squawk-ignore require-concurrent-index-creation
CREATE INDEX status_subscriber_fan_out_everything_idx
    ON status_subscriber (status_page_id, id) INCLUDE (channel, destination, notify_on)
    WHERE component_ids = '{}' AND group_ids = '{}' AND is_active AND is_verified;
