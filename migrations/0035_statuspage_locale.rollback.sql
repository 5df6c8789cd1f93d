-- statusdb 0035 rollback: drop the locale-taking Statuspage document function (0034's is
-- untouched; nothing stored is lost).

-- squawk-ignore-file ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DROP FUNCTION statusdb_page_statuspage_v2(text, bytea, interval, integer, text, text, text);
