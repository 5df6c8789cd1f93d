-- statusdb 0045: the SSRF guard of status_subscriber skips destinations that are plainly
-- public https URLs (issue 20: the subscriber import, >= 20k rows/s).
-- depends: 0044_group_roll_up_floor
--
-- Design decisions:
--
-- * Measured (bench/README.md, "where the subscriber import's time goes"): the row trigger
--   status_subscriber_destination_guard was ~110 ms of the ~730 ms of server CPU of a 20,000-row
--   import (8,000 SLACK/WEBHOOK rows): per row a plpgsql trigger call and two plpgsql functions
--   with SET search_path each (a GUC save and restore per call, never inlined).
-- * New: statusdb_destination_is_plain(destination), an IMMUTABLE SQL function of one boolean
--   expression (two regular expressions), which the planner inlines into the trigger's WHEN
--   clause: true only for an https URL whose host is a plain DNS name (ASCII lower-case labels
--   of letters, digits and hyphens, at least two, the last starting with a letter: never an IP
--   address nor a number to URL parsers), with an optional numeric port and no backslash,
--   space or control character, and nowhere a dot followed by the start of one of the
--   suffixes that resolve only inside a site (local also covers localhost and localdomain,
--   arpa home.arpa) or of a known metadata name (goog, tencentyun): more than the host's
--   suffixes (a path with `.home` in it, a host `x.lanes.example`), which is only a missed
--   shortcut, never a missed refusal; searching for the words is half the cost of parsing
--   out the host first (measured: ~2.5 us and ~5.5 us per row). statusdb_destination_problem
--   returns NULL for every such URL (the allow-list only lets more through), so the trigger
--   would not have refused it: skipping the call changes no outcome. Anything else (upper case, IDN, IP
--   literals, ports with odd forms, percent signs, credentials) still calls the guard.
--   tests/security/test_s08_ssrf.py checks the shortcut against the guard over the shared
--   corpus and generated near-plain URLs; keep the suffix list in step with
--   statusdb_destination_host_problem and statusdb.domain.destinations.BLOCKED_SUFFIXES.
-- * Not a statement-level trigger over the INSERT's transition table: subscribe's
--   INSERT ... ON CONFLICT DO UPDATE relies on the BEFORE INSERT row trigger to check the
--   proposed row (a re-subscribed existing destination), which a transition table of inserted
--   rows would miss. The row trigger stays BEFORE INSERT OR UPDATE OF channel, destination, with
--   the same function; only its WHEN clause gains the shortcut, so INSERT and UPDATE keep the
--   same rule and the same errors (status_subscriber_destination_ssrf_check, before the row is
--   written).
-- * Inlinable, hence LANGUAGE sql, not STRICT, no SET search_path: its body is parsed where it
--   is inlined, so the operators are schema-qualified (OPERATOR(pg_catalog.~)) and nothing is
--   resolved through the caller's search_path. The trigger's WHEN clause is stored resolved.
--   Inlining needs EXECUTE of the writer (checked when planning the WHEN clause), so
--   statusdb_app gets it, like the guard's two functions (0013); the work is linear in the
--   destination's length, as theirs.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

CREATE FUNCTION statusdb_destination_is_plain(destination text) RETURNS boolean
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT destination OPERATOR(pg_catalog.~)
               '^https://([a-z0-9-]+\.)+[a-z][a-z0-9-]*(:[0-9]*)?([/?#][^\\[:space:][:cntrl:]]*)?$'
       AND destination OPERATOR(pg_catalog.!~)
               '[.](local|internal|intranet|lan|home|corp|arpa|svc|goog|tencentyun)'
$$;

COMMENT ON FUNCTION statusdb_destination_is_plain(text) IS
    'Whether a destination is plainly a public https URL (a plain DNS name, not internal), '
    'which the SSRF guard never refuses: its trigger''s WHEN skips it (0045). Inlinable.';

REVOKE EXECUTE ON FUNCTION statusdb_destination_is_plain(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION statusdb_destination_is_plain(text) TO statusdb_app;

DROP TRIGGER status_subscriber_destination_guard ON status_subscriber;
CREATE TRIGGER status_subscriber_destination_guard
    BEFORE INSERT OR UPDATE OF channel, destination ON status_subscriber
    FOR EACH ROW
    WHEN (NEW.channel IN ('SLACK', 'WEBHOOK')
          AND NOT statusdb_destination_is_plain(NEW.destination))
    EXECUTE FUNCTION statusdb_status_subscriber_destination_guard();
