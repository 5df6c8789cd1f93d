-- statusdb 0004: maintenance windows that recur in their own time zone.
-- depends: 0002_status_pages
--
-- A window is one-off (recurrence_rule null) or a series: an RFC 5545 RRULE expanded from
-- recurrence_start (the series' DTSTART, its first occurrence) in the window's time_zone, so that
-- occurrences keep their wall-clock time across daylight-saving changes. Every occurrence lasts
-- end_time - start_time (RFC 5545: each instance has the same exact duration).
--
-- start_time/end_time are always the current or next occurrence. The scheduler's step
-- (statusdb.maintenance.advance) moves them on when an occurrence ends, so that SQL readers (the
-- page view, psql) see the next occurrence without expanding rules. recurrence_start stays put,
-- so that COUNT keeps counting from the first occurrence while start_time moves.
--
-- Rules are expanded by python-dateutil, not here; the database refuses what the expansion
-- cannot interpret (an unknown zone, a malformed or ambiguous rule), whichever client writes it.
--
-- No new index: the scheduler's scans ("SCHEDULED and start_time <= now", "IN_PROGRESS") are
-- served by maintenance_window_status_start_time_idx from 0002.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- time_zone: an IANA zone name. For a series, the zone its rule is expanded in; for a one-off
-- window, the zone it was planned in (for display). A constant default: no table rewrite.
ALTER TABLE maintenance_window
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN recurrence_start timestamptz;

-- Series written before this migration start over at their current occurrence, with their
-- rule in the canonical form the checks below expect (upper case, no "RRULE:" prefix).
UPDATE maintenance_window
SET recurrence_start = start_time,
    recurrence_rule = upper(regexp_replace(btrim(recurrence_rule), '^RRULE:', '', 'i'))
WHERE recurrence_rule IS NOT NULL;

-- maintenance_window is small (a few rows per page), and the ADD COLUMN above holds ACCESS
-- EXCLUSIVE on it until this file's transaction commits, so checking the rows now is one short
-- scan under a lock already held; NOT VALID + a VALIDATE in the same transaction would scan under
-- that same lock. Hence squawk's constraint-missing-not-valid is switched off for these two.
ALTER TABLE maintenance_window
    -- A series has its first occurrence, a one-off window has none; the current occurrence
    -- never precedes the first.
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT maintenance_window_recurrence_start_check
        CHECK ((recurrence_rule IS NULL) = (recurrence_start IS NULL)
               AND (recurrence_start IS NULL OR recurrence_start <= start_time)),
    -- The rule's shape, so that no client stores what the scheduler cannot expand:
    --   * NAME=VALUE parts joined by ';', upper case: one RRULE value, no DTSTART/RDATE/EXDATE
    --     lines (the series starts at recurrence_start);
    --   * FREQ hourly or coarser: the scheduler steps minute by minute;
    --   * UNTIL in UTC (ending in Z): a local UNTIL is ambiguous when the zone changes offset,
    --     and RFC 5545 requires UTC when the start has a zone;
    --   * COUNT or UNTIL, not both (RFC 5545), and neither COUNT nor INTERVAL zero.
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT maintenance_window_recurrence_rule_syntax_check
        CHECK (recurrence_rule IS NULL
               OR (recurrence_rule ~ '^[A-Z]+=[A-Z0-9,+-]+(;[A-Z]+=[A-Z0-9,+-]+)*$'
                   AND recurrence_rule ~ '(^|;)FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY)(;|$)'
                   AND recurrence_rule !~ '(^|;)UNTIL=[^;]*[^Z;](;|$)'
                   AND NOT (recurrence_rule ~ '(^|;)COUNT=' AND recurrence_rule ~ '(^|;)UNTIL=')
                   AND recurrence_rule !~ '(^|;)(COUNT|INTERVAL)=0+(;|$)'));

-- The zone must be one PostgreSQL knows by name (pg_timezone_names): no abbreviation ('PST'),
-- no POSIX offset string ('UTC+3'), which Python's zoneinfo would not load either. A trigger
-- rather than a CHECK: pg_timezone_names reads the whole zone database (~60 ms), so the lookup
-- runs only when a zone other than UTC is written, not on every update of the row (the
-- scheduler updates rows every minute).
CREATE FUNCTION statusdb_maintenance_window_check_time_zone() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.time_zone = 'UTC' OR (TG_OP = 'UPDATE' AND NEW.time_zone = OLD.time_zone) THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.time_zone) THEN
        RAISE EXCEPTION 'unknown time zone %', quote_literal(NEW.time_zone)
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'maintenance_window_time_zone_check',
                  HINT = 'Use an IANA zone name such as Europe/Berlin (see pg_timezone_names).';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER maintenance_window_time_zone_check
    BEFORE INSERT OR UPDATE OF time_zone ON maintenance_window
    FOR EACH ROW EXECUTE FUNCTION statusdb_maintenance_window_check_time_zone();
