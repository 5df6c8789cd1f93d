-- statusdb 0016: a COMMENT on every table, column and function, so that \d+ in psql (and
-- docs/schema.md, generated from the catalog) explains the schema.
-- depends: 0015_maintenance_time
--
-- Only objects without a comment get one here: the few commented where they were created
-- (statusdb_new_id, the derived-status view, the page view, statusdb_current_team,
-- statusdb_derive_statuses) keep theirs, so that the rollback, which sets these comments back
-- to NULL, restores exactly the schema before. COMMENT takes a SHARE UPDATE EXCLUSIVE lock on a
-- table (no rewrite, no scan): readers and writers are not blocked.
-- From now on a migration that adds a table, column or function comments it in the same file
-- (tests/test_schema_current.py lists what is missing).

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '5min';

COMMENT ON TABLE team IS
    'A platform team: owns incidents and status pages; components with its id follow its incidents.';
COMMENT ON COLUMN team.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN team.name IS
    'Display name, non-blank, at most 200 characters.';
COMMENT ON COLUMN team.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN team.updated_at IS
    'When the row last changed (kept by the trigger team_touch_updated_at).';
COMMENT ON TABLE incident IS
    'A platform incident (from alerting). While OPEN or ACKNOWLEDGED it moves the status of its team''s components, mapped by priority.';
COMMENT ON COLUMN incident.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN incident.team_id IS
    'The team whose components this incident affects; deleting a team with incidents is refused (RESTRICT).';
COMMENT ON COLUMN incident.title IS
    'What is wrong, non-blank, at most 500 characters.';
COMMENT ON COLUMN incident.priority IS
    'CRITICAL, HIGH, MEDIUM, LOW or INFO; decides the component status (statusdb_priority_status).';
COMMENT ON COLUMN incident.status IS
    'OPEN, ACKNOWLEDGED (both active: they count for statuses), RESOLVED or CLOSED.';
COMMENT ON COLUMN incident.service_identifier IS
    'The alert source or service it came from; only components with the same service_identifier (or none) follow it. Null: unknown.';
COMMENT ON COLUMN incident.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN incident.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON COLUMN incident.resolved_at IS
    'Set exactly while the incident is RESOLVED or CLOSED (kept by the trigger incident_set_resolved_at).';
COMMENT ON TABLE status_page IS
    'A status page: public, or private behind an access token; shows its components, incidents and maintenance.';
COMMENT ON COLUMN status_page.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN status_page.name IS
    'Display name, non-blank, at most 200 characters.';
COMMENT ON COLUMN status_page.description IS
    'Optional text shown under the name.';
COMMENT ON COLUMN status_page.slug IS
    'The page''s address (lower-case letters, digits, single hyphens); unique.';
COMMENT ON COLUMN status_page.is_public IS
    'True: anyone may read the page; false: only with its access token.';
COMMENT ON COLUMN status_page.team_id IS
    'The owning team; deleting a team that owns pages is refused (RESTRICT). Row-level security scopes by it.';
COMMENT ON COLUMN status_page.created_by_id IS
    'Id of the user who created the page (an id of the calling system).';
COMMENT ON COLUMN status_page.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN status_page.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON TABLE status_page_component IS
    'A component shown on a page (API, Database, ...). Its current_status is derived by the database, never written by clients.';
COMMENT ON COLUMN status_page_component.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN status_page_component.status_page_id IS
    'The page it belongs to (deleted with it).';
COMMENT ON COLUMN status_page_component.name IS
    'Display name, unique on its page, non-blank, at most 200 characters.';
COMMENT ON COLUMN status_page_component.description IS
    'Optional text shown with the component.';
COMMENT ON COLUMN status_page_component.display_order IS
    'Position on the page, ascending.';
COMMENT ON COLUMN status_page_component.team_id IS
    'The team whose active incidents drive its status; null: the status is set by hand (manual_status). Set to null when the team is deleted.';
COMMENT ON COLUMN status_page_component.service_identifier IS
    'With a team: only that team''s incidents with this service_identifier count; null: all of them.';
COMMENT ON COLUMN status_page_component.current_status IS
    'DERIVED: the worst of its team''s active incidents (or manual_status), running maintenance, OPERATIONAL. Written only by the derivation triggers.';
COMMENT ON COLUMN status_page_component.status_updated_at IS
    'DERIVED: when current_status last changed.';
COMMENT ON COLUMN status_page_component.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN status_page_component.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON COLUMN status_page_component.manual_status IS
    'The status set by hand (components.set_status) for a component without a team; ignored while it has one.';
COMMENT ON TABLE status_subscriber IS
    'Someone to notify of a page''s status changes: an email address, a Slack or webhook URL.';
COMMENT ON COLUMN status_subscriber.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN status_subscriber.status_page_id IS
    'The page subscribed to (deleted with it).';
COMMENT ON COLUMN status_subscriber.channel IS
    'EMAIL, SLACK or WEBHOOK.';
COMMENT ON COLUMN status_subscriber.destination IS
    'The address (EMAIL) or https:// URL (SLACK, WEBHOOK), normalised; unique per page and channel.';
COMMENT ON COLUMN status_subscriber.component_ids IS
    'Components of the same page followed; empty: all. Checked and kept free of deleted ids by triggers.';
COMMENT ON COLUMN status_subscriber.notify_on IS
    'Events wanted: a non-empty subset of degraded, outage, maintenance, resolved.';
COMMENT ON COLUMN status_subscriber.is_verified IS
    'True once an EMAIL address is confirmed (always true for SLACK and WEBHOOK); only verified subscribers are notified.';
COMMENT ON COLUMN status_subscriber.verify_token_hash IS
    'SHA-256 digest of the pending email verification token (single use); null when none is pending.';
COMMENT ON COLUMN status_subscriber.is_active IS
    'False once unsubscribed (the row stays for re-subscribe and audit).';
COMMENT ON COLUMN status_subscriber.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN status_subscriber.verify_token_expires_at IS
    'When the pending verification token expires; set exactly when verify_token_hash is.';
COMMENT ON COLUMN status_subscriber.unsubscribe_token_hash IS
    'SHA-256 digest of the unsubscribe token (kept after unsubscribing, replaced on re-subscribe).';
COMMENT ON COLUMN status_subscriber.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON TABLE maintenance_window IS
    'Planned maintenance on some components of a page: one-off, or recurring (RRULE in its time zone). While IN_PROGRESS with auto_update_status it makes them UNDER_MAINTENANCE.';
COMMENT ON COLUMN maintenance_window.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN maintenance_window.status_page_id IS
    'The page it belongs to (deleted with it).';
COMMENT ON COLUMN maintenance_window.title IS
    'What is done, non-blank, at most 500 characters.';
COMMENT ON COLUMN maintenance_window.description IS
    'Optional details.';
COMMENT ON COLUMN maintenance_window.start_time IS
    'Start of the current or next occurrence (moved on by the scheduler, statusdb.maintenance.advance).';
COMMENT ON COLUMN maintenance_window.end_time IS
    'End of the current or next occurrence; after start_time. Every occurrence lasts end_time - start_time.';
COMMENT ON COLUMN maintenance_window.recurrence_rule IS
    'RFC 5545 RRULE (upper case, FREQ HOURLY or longer), expanded from recurrence_start in time_zone; null: a one-off window.';
COMMENT ON COLUMN maintenance_window.auto_update_status IS
    'True: the window makes its components UNDER_MAINTENANCE while IN_PROGRESS.';
COMMENT ON COLUMN maintenance_window.notify_subscribers IS
    'False: the status changes it causes notify nobody (outcome MUTED).';
COMMENT ON COLUMN maintenance_window.status IS
    'SCHEDULED, IN_PROGRESS, COMPLETED or CANCELLED; moved by the scheduler''s step.';
COMMENT ON COLUMN maintenance_window.created_by_id IS
    'Id of the user who scheduled it (an id of the calling system).';
COMMENT ON COLUMN maintenance_window.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN maintenance_window.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON COLUMN maintenance_window.time_zone IS
    'IANA zone name: where a series'' rule is expanded (wall-clock kept across DST); for a one-off window, the zone it was planned in.';
COMMENT ON COLUMN maintenance_window.recurrence_start IS
    'A series'' first occurrence (its DTSTART), fixed while start_time moves on; null for a one-off window.';
COMMENT ON TABLE maintenance_window_component IS
    'Which components a maintenance window covers (components of the window''s own page only).';
COMMENT ON COLUMN maintenance_window_component.maintenance_window_id IS
    'The window (the link is deleted with it).';
COMMENT ON COLUMN maintenance_window_component.component_id IS
    'A component of the window''s page (the link is deleted with it).';
COMMENT ON TABLE status_incident IS
    'A user-facing incident published on a page, with its update timeline; may point to the platform incident behind it.';
COMMENT ON COLUMN status_incident.id IS
    'Primary key: a UUIDv7 as text (statusdb_new_id()).';
COMMENT ON COLUMN status_incident.status_page_id IS
    'The page it is published on (deleted with it).';
COMMENT ON COLUMN status_incident.incident_id IS
    'The platform incident behind it, if any (set to null when that incident is deleted).';
COMMENT ON COLUMN status_incident.title IS
    'Headline, non-blank, at most 500 characters.';
COMMENT ON COLUMN status_incident.message IS
    'The message it was published with (the timeline is in updates).';
COMMENT ON COLUMN status_incident.severity IS
    'MINOR, MAJOR or CRITICAL: how bad, as told to readers.';
COMMENT ON COLUMN status_incident.status IS
    'INVESTIGATING, IDENTIFIED, MONITORING or RESOLVED: the latest update''s status.';
COMMENT ON COLUMN status_incident.affected_component_ids IS
    'Components of the same page affected (checked and cleaned by triggers).';
COMMENT ON COLUMN status_incident.created_at IS
    'When the row was inserted.';
COMMENT ON COLUMN status_incident.updated_at IS
    'When the row last changed (kept by a trigger).';
COMMENT ON COLUMN status_incident.resolved_at IS
    'Set exactly while the status is RESOLVED (kept by a trigger).';
COMMENT ON COLUMN status_incident.updates IS
    'The timeline: a JSON array of {timestamp, status, message}, oldest first, appended atomically.';
COMMENT ON TABLE status_change IS
    'The status-change log: every change of a component''s current_status, in order, written by the derivation; also the notification outbox (lease and delivery columns).';
COMMENT ON COLUMN status_change.id IS
    'Primary key: a UUIDv7 as text; the change_id announced on NOTIFY statusdb_status_change.';
COMMENT ON COLUMN status_change.seq IS
    'Commit-independent insertion order (identity), for ordering and the chain check.';
COMMENT ON COLUMN status_change.status_page_id IS
    'The component''s page (the log is deleted with it).';
COMMENT ON COLUMN status_change.component_id IS
    'The component whose status changed (the log is deleted with it).';
COMMENT ON COLUMN status_change.previous_status IS
    'The status before; equals the prior change''s new_status (OPERATIONAL for the first).';
COMMENT ON COLUMN status_change.new_status IS
    'The status after.';
COMMENT ON COLUMN status_change.cause IS
    'INCIDENT, MAINTENANCE or MANUAL (set by hand, or a repair by statusdb_recompute_statuses).';
COMMENT ON COLUMN status_change.incident_id IS
    'The incident that caused it, as it was (not a foreign key: history outlives the incident).';
COMMENT ON COLUMN status_change.maintenance_window_id IS
    'The maintenance window that caused it, as it was (not a foreign key).';
COMMENT ON COLUMN status_change.changed_at IS
    'When the change was made (clock_timestamp()).';
COMMENT ON COLUMN status_change.lease_owner IS
    'Outbox: the worker holding the claim (null: not claimed).';
COMMENT ON COLUMN status_change.lease_expires_at IS
    'Outbox: when the claim lapses and another worker may claim the change again.';
COMMENT ON COLUMN status_change.notified_at IS
    'Outbox: when the change was completed (null: still pending).';
COMMENT ON COLUMN status_change.outcome IS
    'Outbox: NOTIFIED, FLAP (coalesced changes ended where they began) or MUTED (maintenance without notifications); set with notified_at.';
COMMENT ON COLUMN statusdb_component_derived_status.component_id IS
    'The component.';
COMMENT ON COLUMN statusdb_component_derived_status.status_page_id IS
    'Its page.';
COMMENT ON COLUMN statusdb_component_derived_status.current_status IS
    'The status stored on the component.';
COMMENT ON COLUMN statusdb_component_derived_status.derived_status IS
    'The status derived from scratch; differs from current_status only after drift (a load with triggers off).';
COMMENT ON FUNCTION statusdb_touch_updated_at() IS
    'Trigger: sets updated_at to now() on every UPDATE, whoever issues it.';
COMMENT ON FUNCTION statusdb_incident_set_resolved_at() IS
    'Trigger: keeps incident.resolved_at set exactly while the incident is RESOLVED or CLOSED.';
COMMENT ON FUNCTION statusdb_maintenance_window_component_same_page() IS
    'Trigger: refuses to link a maintenance window to a component of another page.';
COMMENT ON FUNCTION statusdb_is_status_update_list(jsonb) IS
    'True when the value is a JSON array of {timestamp, status, message} objects (status_incident.updates).';
COMMENT ON FUNCTION statusdb_status_incident_set_resolved_at() IS
    'Trigger: keeps status_incident.resolved_at set exactly while the status incident is RESOLVED.';
COMMENT ON FUNCTION statusdb_check_component_ids(text, text[], text) IS
    'Raises (as the named constraint) unless every id names a component of the page; locks them FOR KEY SHARE like a foreign key check.';
COMMENT ON FUNCTION statusdb_status_subscriber_check_component_ids() IS
    'Trigger: status_subscriber.component_ids must be components of the subscriber''s page.';
COMMENT ON FUNCTION statusdb_status_incident_check_component_ids() IS
    'Trigger: status_incident.affected_component_ids must be components of the incident''s page.';
COMMENT ON FUNCTION statusdb_status_page_component_forget_ids() IS
    'Trigger: removes a deleted component''s id from its page''s subscribers and status incidents (a subscriber left following nothing is deactivated).';
COMMENT ON FUNCTION statusdb_status_rank(text) IS
    'Rank of a component status, lower is worse: MAJOR_OUTAGE, PARTIAL_OUTAGE, DEGRADED_PERFORMANCE, UNDER_MAINTENANCE, OPERATIONAL.';
COMMENT ON FUNCTION statusdb_priority_status(text) IS
    'The component status an active incident of this priority causes (CRITICAL: MAJOR_OUTAGE ... LOW, INFO: OPERATIONAL).';
COMMENT ON FUNCTION statusdb_derive_status(text, text, text, text) IS
    'The status one component should have from its inputs: its team''s active incidents (by service), its manual status, running maintenance.';
COMMENT ON FUNCTION statusdb_log_status_change(text, text, text, text, text, text, text, timestamp with time zone) IS
    'Appends one change to status_change and announces it with pg_notify on statusdb_status_change (delivered at commit).';
COMMENT ON FUNCTION statusdb_status_lock_key(text, text) IS
    'The advisory lock key serialising re-derivation of a component: its team, or the component itself when it has none.';
COMMENT ON FUNCTION statusdb_lock_status_keys(bigint[]) IS
    'Takes the status keys'' advisory locks in key order (after the shared cluster-wide key); refuses REPEATABLE READ.';
COMMENT ON FUNCTION statusdb_refresh_components(text[], text, text, text) IS
    'Re-derives the given components under their status locks and logs each real change with its cause.';
COMMENT ON FUNCTION statusdb_refresh_team(text, text, text) IS
    'Re-derives every component driven by one team (after a change to its incidents).';
COMMENT ON FUNCTION statusdb_incident_refresh_status() IS
    'Trigger: an incident change that can move a status re-derives its team''s components.';
COMMENT ON FUNCTION statusdb_status_page_component_derive() IS
    'Trigger: derives current_status of an inserted or changed component before it is written; refuses direct writes of current_status.';
COMMENT ON FUNCTION statusdb_status_page_component_log_initial_status() IS
    'Trigger: logs the first status of a new component that does not start OPERATIONAL (cause MANUAL), so the log chains from OPERATIONAL.';
COMMENT ON FUNCTION statusdb_maintenance_window_refresh_status() IS
    'Trigger: a window entering or leaving IN_PROGRESS (with auto_update_status) re-derives its components.';
COMMENT ON FUNCTION statusdb_maintenance_window_component_refresh_status() IS
    'Trigger: covering or uncovering a component of a running window re-derives it.';
COMMENT ON FUNCTION statusdb_recompute_statuses(boolean) IS
    'For operators: compares every component with a from-scratch derivation; with true, repairs the drift (logged as MANUAL). Returns the drifted components.';
COMMENT ON FUNCTION statusdb_maintenance_window_check_time_zone() IS
    'Trigger: refuses a time_zone PostgreSQL does not know by name (pg_timezone_names).';
