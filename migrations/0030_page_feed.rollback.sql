-- statusdb 0030 rollback: drop the feeds' read function (it holds no data).

-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP FUNCTION statusdb_page_feed(text, bytea, integer);
