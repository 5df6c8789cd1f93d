-- statusdb 0033 rollback: drop the translations, the page's default_locale and the
-- subscribers' locale. Refuses while any of them holds data, unless statusdb.allow_data_loss.

-- squawk-ignore-file ban-drop-column, ban-drop-table, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

DO $$
DECLARE
    translated bigint;
    localized bigint;
    readers bigint;
BEGIN
    SELECT count(*) INTO translated FROM translation;
    SELECT count(*) INTO localized FROM status_page WHERE default_locale <> 'en';
    SELECT count(*) INTO readers FROM status_subscriber WHERE locale IS NOT NULL;
    IF (translated > 0 OR localized > 0 OR readers > 0)
       AND current_setting('statusdb.allow_data_loss', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'rolling back 0033_translations would lose data: % translations, '
                        '% status pages with a default_locale other than en, % subscribers '
                        'with a locale. Set statusdb.allow_data_loss = on to drop them.',
                        translated, localized, readers
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END;
$$;

DROP FUNCTION statusdb_notification_recipients_v2(text, text[], text[], text[]);
DROP FUNCTION statusdb_event_texts(text, text);
DROP FUNCTION statusdb_page_feed_v2(text, bytea, integer, text);
DROP FUNCTION statusdb_page_view_bytes_v3(text, bytea, interval, integer, bigint, text);
DROP FUNCTION statusdb_page_view_v3(text, bytea, interval, integer, bigint, text);
DROP FUNCTION statusdb_translate_rows(json, text[], text, text, text);
DROP FUNCTION statusdb_translation_text(text[], text, text, text, integer);
DROP FUNCTION statusdb_locale_chain(text, text);
DROP TRIGGER status_page_locale_snapshot ON status_page;
DROP FUNCTION statusdb_status_page_locale_snapshot();
DROP TABLE translation;
DROP FUNCTION statusdb_translation_snapshot();
DROP FUNCTION statusdb_page_snapshot_bump(text[]);
DROP FUNCTION statusdb_translation_set_page();
ALTER TABLE status_subscriber DROP COLUMN locale;
ALTER TABLE status_page DROP COLUMN default_locale;
