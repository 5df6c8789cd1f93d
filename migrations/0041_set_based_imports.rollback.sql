-- statusdb 0041 rollback: the subscriber id checks run per row on INSERT again and the
-- destination guard fires for every channel (triggers as 0002, 0013 and 0020 made them).
-- Drops exactly what 0041 created (the trigger function nothing but its trigger calls).
-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER status_subscriber_destination_guard ON status_subscriber;
CREATE TRIGGER status_subscriber_destination_guard
    BEFORE INSERT OR UPDATE OF channel, destination ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_subscriber_destination_guard();

DROP TRIGGER status_subscriber_check_ids_insert ON status_subscriber;
DROP FUNCTION statusdb_status_subscriber_check_ids_insert();

DROP TRIGGER status_subscriber_check_group_ids ON status_subscriber;
CREATE TRIGGER status_subscriber_check_group_ids
    BEFORE INSERT OR UPDATE OF status_page_id, group_ids ON status_subscriber
    FOR EACH ROW
    EXECUTE FUNCTION statusdb_status_subscriber_check_group_ids();

DROP TRIGGER status_subscriber_check_component_ids ON status_subscriber;
CREATE TRIGGER status_subscriber_check_component_ids
    BEFORE INSERT OR UPDATE OF status_page_id, component_ids ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_subscriber_check_component_ids();
