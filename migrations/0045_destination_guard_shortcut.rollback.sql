-- statusdb 0045 rollback: the SSRF guard's trigger as 0041 left it (every SLACK/WEBHOOK row
-- calls the guard).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP TRIGGER status_subscriber_destination_guard ON status_subscriber;
CREATE TRIGGER status_subscriber_destination_guard
    BEFORE INSERT OR UPDATE OF channel, destination ON status_subscriber
    FOR EACH ROW
    WHEN (NEW.channel IN ('SLACK', 'WEBHOOK'))
    EXECUTE FUNCTION statusdb_status_subscriber_destination_guard();

-- Only the trigger above called it, and the forward migration created it.
-- squawk-ignore ban-drop-function
DROP FUNCTION statusdb_destination_is_plain(text);
