-- statusdb 0013: SLACK and WEBHOOK destinations may not point at internal hosts (SSRF), for
-- every client.
-- depends: 0012_trust_boundaries
--
-- statusdb's deliverer POSTs to every SLACK and WEBHOOK destination. A URL naming this network's
-- own machines (https://169.254.169.254/ for cloud credentials, https://127.0.0.1/,
-- https://10.0.0.5/, https://metadata.google.internal/) would make it attack them for whoever
-- subscribed. statusdb.destinations refuses such URLs, but statusdb_app can INSERT and UPDATE
-- status_subscriber with plain SQL, so the rule is kept here too, by a trigger: the same rules,
-- the same allow-list, checked against the same corpus by the tests (tests/security/
-- test_s08_ssrf.py). Keep statusdb_destination_host_problem in step with statusdb/destinations.py.
--
-- A trigger and not a CHECK constraint: the rule reads the allow-list, a table, and a CHECK
-- must be immutable. Every INSERT, and every UPDATE of channel or destination (an upsert's
-- DO UPDATE included), goes through it; disabling it takes the table's owner or a superuser
-- (ALTER TABLE ... DISABLE TRIGGER, session_replication_role). It runs before the CHECK
-- constraints, so it leaves what 0005's status_subscriber_destination_format_check refuses (not
-- https, credentials, spaces) to that constraint, with its own name and message.
--
-- What no database rule can know: where a name resolves when the deliverer connects. A public
-- name may resolve to 127.0.0.1, or change after the check (DNS rebinding); the deliverer must
-- resolve the host itself and refuse internal addresses by the same rules.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

-- The allow-list: internal hosts a deployment posts to on purpose. Managed by the DBA (the
-- owner); statusdb_app may only read it (statusdb.subscribers reads it to agree with this
-- trigger); statusdb_reader has no access. An entry is a host name, matched exactly (lower
-- case, NFKC, no trailing dot), or a network, containing IP literals of its family.
CREATE TABLE destination_allowlist (
    id text NOT NULL DEFAULT statusdb_new_id(),
    host_name text,
    network cidr,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT destination_allowlist_pkey PRIMARY KEY (id),
    CONSTRAINT destination_allowlist_host_name_key UNIQUE (host_name),
    CONSTRAINT destination_allowlist_network_key UNIQUE (network),
    CONSTRAINT destination_allowlist_entry_check CHECK ((host_name IS NULL) <> (network IS NULL)),
    CONSTRAINT destination_allowlist_host_name_check CHECK (
        host_name = lower(normalize(host_name, NFKC))
        AND host_name ~ '^[^./:@%\\[\]\s]+(\.[^./:@%\\[\]\s]+)+$'
        -- A name ending in a number would be read as an IPv4 address: list a network instead.
        AND host_name !~ '(^|\.)([0-9]+|0x[0-9a-f]*)$'
    ),
    CONSTRAINT destination_allowlist_reason_check CHECK (
        btrim(reason) <> '' AND char_length(reason) <= 500
    )
);

COMMENT ON TABLE destination_allowlist IS
    'Internal hosts SLACK/WEBHOOK destinations may name (default: none). Owner-managed.';

COMMENT ON COLUMN destination_allowlist.id IS 'Entry id (statusdb_new_id()).';
COMMENT ON COLUMN destination_allowlist.host_name IS
    'A host name allowed exactly (lower case, NFKC, no trailing dot); or NULL for a network entry.';
COMMENT ON COLUMN destination_allowlist.network IS
    'A network whose IP literals are allowed (of its own family); or NULL for a host name entry.';
COMMENT ON COLUMN destination_allowlist.reason IS 'Why the deployment posts there (for audits).';
COMMENT ON COLUMN destination_allowlist.created_at IS 'When the entry was added.';

-- Owner-only writes: statusdb_app reads it, nobody else. RLS on (as on every table, see 0008),
-- with one read policy instead of a team policy: the list is the deployment's, not a team's.
GRANT SELECT ON TABLE destination_allowlist TO statusdb_app;
ALTER TABLE destination_allowlist ENABLE ROW LEVEL SECURITY;
CREATE POLICY destination_allowlist_read ON destination_allowlist
    FOR SELECT TO statusdb_app USING (true);

-- Why a URL host is refused, or NULL when it may be used. `host` is the URL's host as written
-- (IPv6 literals in brackets). Mirrors statusdb.destinations: NFKC + lower case first (full-width
-- spellings are what a resolver sees), then IP literals by range, hosts ending in a number as
-- ambiguous IPv4, names by suffix; the allow-list last. Invoker's rights: statusdb_app reads the
-- allow-list through its own grant; names are schema-qualified and search_path pinned, so a
-- temporary table cannot stand in for the allow-list.
CREATE FUNCTION statusdb_destination_host_problem(host text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
AS $$
DECLARE
    key text := translate(lower(normalize(host, NFKC)), U&'\3002\FF0E\FF61', '...');
    addr inet;
    problem text;
BEGIN
    IF key = '' OR key = '[]' THEN
        RETURN 'the host is missing';
    END IF;
    IF key ~ '^\[.*\]$' THEN
        BEGIN
            addr := substr(key, 2, length(key) - 2)::inet;
        EXCEPTION WHEN invalid_text_representation THEN
            RETURN 'the host is not a valid IPv6 address';
        END;
        IF family(addr) <> 6 OR masklen(addr) <> 128 OR key ~ '/' THEN
            RETURN 'the host is not a valid IPv6 address';
        END IF;
        IF NOT addr <<= '2000::/3'::inet THEN
            problem := 'not a global unicast IPv6 address (2000::/3)';
        ELSIF addr <<= '2002::/16'::inet OR addr <<= '2001::/32'::inet THEN
            problem := 'a 6to4 or Teredo IPv6 address, which embeds an IPv4 address';
        END IF;
    ELSIF key ~ '(^|\.)([0-9]+|0x[0-9a-f]*)$' THEN
        -- Ends in a number: an IPv4 address to URL parsers and inet_aton, in whatever spelling.
        IF key !~ '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' THEN
            RETURN 'a host ending in a number is an IPv4 address: write it as four decimal '
                   'numbers without leading zeros';
        END IF;
        addr := key::inet;
        IF addr <<= ANY (ARRAY[
                '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16',
                '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15',
                '224.0.0.0/4', '240.0.0.0/4']::inet[]) THEN
            problem := 'a loopback, private, link-local or reserved IPv4 address';
        END IF;
    ELSIF key ~ '(^\.|\.\.|\.$)' THEN
        RETURN 'the host has an empty label (a leading, trailing or double dot)';
    ELSIF key !~ '\.' THEN
        problem := 'a single-label name (resolved through the local search domains)';
    ELSIF key IN ('metadata.goog', 'metadata.tencentyun.com') THEN
        problem := 'a cloud metadata service';
    ELSIF key ~ '(^|\.)(localhost|local|localdomain|internal|intranet|lan|home|corp|home\.arpa|svc)$'
    THEN
        problem := 'a name that resolves only inside a site';
    END IF;
    IF problem IS NULL THEN
        RETURN NULL;
    END IF;
    IF addr IS NULL THEN
        PERFORM FROM public.destination_allowlist a WHERE a.host_name = key;
    ELSE
        PERFORM FROM public.destination_allowlist a WHERE a.network >>= addr;
    END IF;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN problem;
END;
$$;

-- Why a destination is refused by this policy, or NULL. Only for SLACK and WEBHOOK URLs of the
-- shape 0005 allows (others are that constraint's to refuse).
CREATE FUNCTION statusdb_destination_problem(channel text, destination text) RETURNS text
LANGUAGE plpgsql STABLE
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

CREATE FUNCTION statusdb_status_subscriber_destination_guard() RETURNS trigger
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
    problem text := statusdb_destination_problem(NEW.channel, NEW.destination);
BEGIN
    IF problem IS NOT NULL THEN
        -- The constraint name is the contract with statusdb.errors.CONSTRAINT_MESSAGES; the
        -- URL is not repeated (webhook URLs are secrets, and messages get logged).
        RAISE EXCEPTION 'destination refused: %', problem
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'status_subscriber_destination_ssrf_check',
                  TABLE = 'status_subscriber',
                  COLUMN = 'destination',
                  HINT = 'internal hosts must be listed in destination_allowlist by the owner';
    END IF;
    RETURN NEW;
END;
$$;

-- Rows written before this migration are checked once: a refused one makes the migration fail
-- (as 0005 does), naming the rule and the row; nothing is applied then. Fail closed rather than
-- keep posting to internal hosts: delete those subscribers (or change their destination), apply
-- this migration, and, if a deployment posts there on purpose, add the hosts to
-- destination_allowlist and subscribe them again.
DO $$
DECLARE
    bad record;
BEGIN
    SELECT id, statusdb_destination_problem(channel, destination) AS problem INTO bad
    FROM status_subscriber
    WHERE statusdb_destination_problem(channel, destination) IS NOT NULL
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'status_subscriber % has a refused destination: %', bad.id, bad.problem
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'status_subscriber_destination_ssrf_check',
                  HINT = 'delete or change such subscribers first; after this migration, add '
                         'hosts a deployment posts to on purpose to destination_allowlist';
    END IF;
END;
$$;

CREATE TRIGGER status_subscriber_destination_guard
    BEFORE INSERT OR UPDATE OF channel, destination ON status_subscriber
    FOR EACH ROW EXECUTE FUNCTION statusdb_status_subscriber_destination_guard();

COMMENT ON FUNCTION statusdb_destination_host_problem(text) IS
    'Why a URL host may not be posted to (SSRF policy), or NULL; mirrors statusdb.destinations.';
COMMENT ON FUNCTION statusdb_destination_problem(text, text) IS
    'Why a SLACK/WEBHOOK destination URL is refused (SSRF policy), or NULL.';
COMMENT ON FUNCTION statusdb_status_subscriber_destination_guard() IS
    'Trigger: refuses SLACK/WEBHOOK destinations naming internal hosts (not allow-listed).';

-- The guard runs as the writer, so the writer (statusdb_app) executes the checks; work is linear
-- in the destination's length (at most 2,000 characters, 0005). No one else calls them, and no
-- one calls the trigger function (triggers fire without EXECUTE).
REVOKE EXECUTE ON FUNCTION
    statusdb_destination_host_problem(text),
    statusdb_destination_problem(text, text),
    statusdb_status_subscriber_destination_guard()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    statusdb_destination_host_problem(text),
    statusdb_destination_problem(text, text)
TO statusdb_app;
