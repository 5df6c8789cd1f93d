-- statusdb 0029 rollback: drop the page view versions with the page's time zone (the versions
-- they extend stay, unchanged; nothing is stored by 0029).

-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP FUNCTION statusdb_page_view_at_v2(text, bytea, timestamp with time zone, interval, integer);
DROP FUNCTION statusdb_page_view_bytes_v2(text, bytea, interval, integer, bigint);
DROP FUNCTION statusdb_page_view_v2(text, bytea, interval, integer, bigint);
