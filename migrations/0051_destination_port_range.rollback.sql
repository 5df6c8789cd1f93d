-- statusdb 0051 rollback: the guard and its shortcut as 0045 left them (any digits as a port).

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
    RETURN statusdb_destination_host_problem(host);
END;
$$;

CREATE OR REPLACE FUNCTION statusdb_destination_is_plain(destination text) RETURNS boolean
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT destination OPERATOR(pg_catalog.~)
               '^https://([a-z0-9-]+\.)+[a-z][a-z0-9-]*(:[0-9]*)?([/?#][^\\[:space:][:cntrl:]]*)?$'
       AND destination OPERATOR(pg_catalog.!~)
               '[.](local|internal|intranet|lan|home|corp|arpa|svc|goog|tencentyun)'
$$;
