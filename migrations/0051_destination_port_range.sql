-- statusdb 0051: the SSRF guard refuses ports outside 1-65535, as the repository does.
-- depends: 0050_page_bytes_one_snapshot
--
-- Found in the review of 0045: statusdb.domain.destinations refuses port 0 and any port above
-- 65535 ("the port is not a number from 1 to 65535"), but the guard in the database only
-- checked that the port was digits, so a plain INSERT or UPDATE as statusdb_app could store
-- https://hooks.example.com:99999/ (and 0045's shortcut skipped the guard for it). No such URL
-- reaches anything (no connection to such a port can be made), but the two doors disagreed
-- and the delivery worker met a URL it cannot parse. Now:
--
-- * statusdb_destination_problem: after the host is split off (as before), a port that is
--   there must be 1 to 65535; leading zeros are read as the repository reads them (00443 is
--   443), and an empty port (https://host:/) is still the default port, as urllib reads it.
--   The digits are trimmed and length-checked before the cast, so no input can overflow it.
--   Only the port lines are new; the rest of the body is 0013's.
-- * statusdb_destination_is_plain (0045's shortcut in the trigger's WHEN): its port is now
--   empty or 1 to 9999 without a leading zero, so a port the guard would refuse never skips
--   the guard; longer ports (10000-65535) take the full guard, a missed shortcut only.
-- * Rows already stored with such a port are left as they are (the guard is a trigger, not a
--   constraint): the delivery worker fails them as before. A DBA can list them with
--   `SELECT id FROM status_subscriber WHERE statusdb_destination_problem(channel, destination)
--   IS NOT NULL`.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE OR REPLACE FUNCTION statusdb_destination_problem(channel text, destination text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = public, pg_temp
AS $$
DECLARE
    authority text;
    host text;
    port text;
BEGIN
    IF channel NOT IN ('SLACK', 'WEBHOOK')
       OR destination !~ '^https://[^/?#@[:space:][:cntrl:]]+([/?#][^[:space:][:cntrl:]]*)?$' THEN
        RETURN NULL;
    END IF;
    -- URL parsers read a backslash as a slash (https://127.0.0.1\.example.com/ is 127.0.0.1),
    -- and percent-decode host names.
    IF strpos(destination, E'\\') > 0 THEN
        RETURN 'it contains a backslash';
    END IF;
    authority := substring(destination FROM '^https://([^/?#]*)');
    IF strpos(authority, '%') > 0 THEN
        RETURN 'the host or port contains a ''%''';
    END IF;
    IF authority ~ '^\[' THEN
        host := substring(authority FROM '^(\[[^\]]*\])');
        IF host IS NULL OR substr(authority, length(host) + 1) !~ '^(:[0-9]*)?$' THEN
            RETURN 'the host is not a valid IPv6 address';
        END IF;
    ELSE
        host := regexp_replace(authority, ':[0-9]*$', '');
        IF strpos(host, ':') > 0 THEN
            RETURN 'the port is not a number';
        END IF;
    END IF;
    -- 0051: the port, when there is one, is 1 to 65535 (an empty one is the default port).
    port := ltrim(substr(authority, length(host) + 2), '0');
    IF length(authority) > length(host) + 1
       AND (port = '' OR length(port) > 5 OR port::integer > 65535) THEN
        RETURN 'the port is not a number from 1 to 65535';
    END IF;
    RETURN statusdb_destination_host_problem(host);
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_destination_is_plain(destination text) RETURNS boolean
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT destination OPERATOR(pg_catalog.~)
               '^https://([a-z0-9-]+\.)+[a-z][a-z0-9-]*(:([1-9][0-9]{0,3})?)?([/?#][^\\[:space:][:cntrl:]]*)?$'
       AND destination OPERATOR(pg_catalog.!~)
               '[.](local|internal|intranet|lan|home|corp|arpa|svc|goog|tencentyun)'
$$;
