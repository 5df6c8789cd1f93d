-- statusdb 0021: a status page's time zone (issue 13 item 2), the zone its calendar days are
-- counted in: uptime.daily (sql/uptime.sql, uptime_daily) cuts the status-change log at the
-- page zone's local midnights.
-- depends: 0020_component_groups

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- time_zone: an IANA zone name with a '/' (Europe/Berlin, America/New_York, Etc/GMT+5), or
-- 'UTC'. Names without a '/' other than UTC (EST, MET, CET, PRC, EST5EDT, ...) are refused:
-- PostgreSQL's `AT TIME ZONE` looks a name up among the time zone abbreviations first, and
-- which abbreviations exist is the client's timezone_abbreviations setting (with 'Australia',
-- 'EST' means UTC+10). A name with a '/' is never an abbreviation, so the page's days do not
-- depend on the reading session; 'UTC' means UTC in every abbreviation set. The shape also
-- rules out POSIX specs ('<+05>-5', 'EST5EDT,M3.2.0,M11.1.0'), numeric offsets and path
-- tricks ('.'), and bounds the length (the longest IANA name has 32 characters).
-- A constant default with a CHECK the default satisfies: no table rewrite (PostgreSQL 11+); the
-- CHECK is validated in the same short scan of status_page, a small table (one row per page).
-- squawk-ignore adding-field-with-default
ALTER TABLE status_page
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
        CONSTRAINT status_page_time_zone_check
        CHECK (length(time_zone) <= 64
               AND (time_zone = 'UTC'
                    OR time_zone ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)+$'));

-- The CHECK keeps the shape; this trigger checks that the server knows the zone and stores its
-- canonical spelling (PostgreSQL finds zone files case-insensitively: 'america/new_york' is
-- stored as 'America/New_York', which other tools, Python's zoneinfo included, can open).
-- pg_timezone_names (what 0004 uses for maintenance windows) reads the whole zone directory,
-- ~60-100 ms per call; setting TimeZone loads only the one zone, ~0.1 ms. The SET clause makes
-- the set_config below local to this call: the session's TimeZone is restored on exit, error
-- or not. Nothing client-settable decides anything here (the name is the row's own value).
CREATE FUNCTION statusdb_status_page_check_time_zone() RETURNS trigger
LANGUAGE plpgsql
SET TimeZone = 'UTC'
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.time_zone IS NOT DISTINCT FROM OLD.time_zone THEN
        RETURN NEW;
    END IF;
    IF NEW.time_zone IS NULL THEN
        RETURN NEW;  -- the NOT NULL constraint refuses it
    END IF;
    IF length(NEW.time_zone) > 64
       OR NOT (NEW.time_zone = 'UTC'
               OR NEW.time_zone ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)+$') THEN
        RAISE EXCEPTION 'time zone % is not an IANA zone name such as Europe/Berlin',
                quote_literal(left(NEW.time_zone, 80))
            USING ERRCODE = 'check_violation', CONSTRAINT = 'status_page_time_zone_check';
    END IF;
    BEGIN
        PERFORM set_config('TimeZone', NEW.time_zone, true);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'unknown time zone %', quote_literal(NEW.time_zone)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'status_page_time_zone_check';
    END;
    NEW.time_zone := current_setting('TimeZone');
    RETURN NEW;
END;
$$;

CREATE TRIGGER status_page_time_zone_check
    BEFORE INSERT OR UPDATE OF time_zone ON status_page
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_page_check_time_zone();

-- A trigger function: fires whatever its EXECUTE privilege; nobody needs to call it.
REVOKE EXECUTE ON FUNCTION statusdb_status_page_check_time_zone() FROM PUBLIC;

COMMENT ON COLUMN status_page.time_zone IS
    'IANA time zone of the page (a name with a ''/'', or UTC): uptime.daily counts calendar days '
    'from its local midnights.';
COMMENT ON FUNCTION statusdb_status_page_check_time_zone() IS
    'Trigger: status_page.time_zone must name a zone this server knows; stores its canonical '
    'spelling.';
