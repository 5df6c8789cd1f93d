"""statusdb's exceptions, and the translation of PostgreSQL errors into them.

Callers catch these, never psycopg's: each says what was wrong in words a user can act on.
Constraint names are the stable contract between the DDL and these messages.
"""

from __future__ import annotations

import re
from typing import Final

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors


class StatusdbError(Exception):
    """Base class of every error statusdb raises on purpose."""


class NotFound(StatusdbError):
    """The row asked for does not exist (or is not visible to the caller)."""


class Conflict(StatusdbError):
    """The change collides with existing data (a duplicate, or a row still in use)."""


class InvalidInput(StatusdbError):
    """A value is malformed or breaks a rule; nothing was written."""


class InvalidArgument(InvalidInput, TypeError):
    """A wrong argument to a pool, router or other edge that is not an operation (a flag that
    is not a bool, a conninfo where a list was wanted): an InvalidInput, and a TypeError for
    code that catches that."""


class Unauthorized(StatusdbError):
    """A token or credential was missing or wrong."""


class Retryable(StatusdbError):
    """A transient failure (serialization failure, deadlock, lost connection): retry the call."""


class Unavailable(Retryable):
    """No usable connection to the database now: the pool gave none within its timeout (all in
    use, or the server is down, restarting or failing over), the pool is closed or has too many
    waiting, or the server is not the primary. Nothing of the call ran (or what ran was rolled
    back with its connection); retry after a pause. A `Retryable`, so one `except Retryable`
    covers it; a class of its own because a caller may answer it differently (an HTTP 503 with
    Retry-After rather than an immediate retry)."""


class CommitOutcomeUnknown(Retryable):
    """The connection died while the transaction committed (during COMMIT, or during the one
    statement of an autocommit call): the write may have landed or not, and nobody can tell
    from here. Retry only what is safe to apply twice: a write given an `idempotency_key`
    (`docs/retries.md`), or after reading back whether it happened."""


class ReadOnlyTransaction(InvalidInput):
    """A write ran in a read-only transaction: through `router.read()` (whose transactions are
    read-only on every host, the primary included), or on a server in recovery."""


class DataCorrupt(StatusdbError):
    """A stored value statusdb cannot read (written around the database's constraints, or
    before they existed): not the caller's input; the row needs repair."""


#: Messages for constraint violations, by constraint name.
CONSTRAINT_MESSAGES: Final[dict[str, tuple[type[StatusdbError], str]]] = {
    # team / incident
    "team_name_check": (InvalidInput, "a team name must be non-blank and at most 200 characters"),
    "incident_team_id_fkey": (NotFound, "no team with that id"),
    "incident_title_check": (
        InvalidInput,
        "an incident title must be non-blank, at most 500 chars",
    ),
    "incident_priority_check": (InvalidInput, "unknown incident priority"),
    "incident_resolved_at_check": (
        InvalidInput,
        "resolved_at is set exactly when an incident is RESOLVED or CLOSED",
    ),
    "incident_status_check": (InvalidInput, "unknown incident status"),
    "incident_service_identifier_check": (
        InvalidInput,
        "a service identifier must be non-blank and at most 200 characters",
    ),
    # status_page
    "status_page_slug_key": (Conflict, "a status page with that slug already exists"),
    "status_page_team_id_fkey": (NotFound, "no team with that id"),
    "status_page_name_check": (InvalidInput, "a page name must be non-blank, at most 200 chars"),
    "status_page_slug_check": (
        InvalidInput,
        "a slug is lower-case letters, digits and single hyphens (at most 100 characters)",
    ),
    "status_page_time_zone_check": (
        InvalidInput,
        "time_zone must be an IANA time zone name this database knows, with a '/' or UTC "
        "(for example 'Europe/Berlin', 'America/New_York' or 'UTC')",
    ),
    "status_page_time_zone_iana_check": (
        InvalidInput,
        "time_zone must be a name of the IANA time zone database (for example "
        "'Europe/Berlin'); POSIX time zone specs such as 'Europe/Berlin+1' are refused",
    ),
    "status_page_access_token_hash_check": (
        InvalidInput,
        "access_token_hash must be a 32-byte SHA-256 digest",
    ),
    "status_page_access_token_hash_key": (
        Conflict,
        "that access token is already in use by another page; generate a new one",
    ),
    "status_page_private_needs_token": (
        InvalidInput,
        "a private status page needs an access token",
    ),
    "status_page_created_by_id_check": (InvalidInput, "created_by_id must be non-blank"),
    # status_page_component
    "status_page_component_status_page_id_name_key": (
        Conflict,
        "this page already has a component with that name",
    ),
    "status_page_component_status_page_id_fkey": (NotFound, "no status page with that id"),
    "status_page_component_team_id_fkey": (NotFound, "no team with that id"),
    "status_page_component_name_check": (
        InvalidInput,
        "a component name must be non-blank and at most 200 characters",
    ),
    "status_page_component_service_identifier_check": (
        InvalidInput,
        "a service identifier must be non-blank and at most 200 characters",
    ),
    "status_page_component_current_status_check": (InvalidInput, "unknown component status"),
    "status_page_component_manual_status_check": (InvalidInput, "unknown component status"),
    "status_page_component_current_status_derived": (
        InvalidInput,
        "current_status is derived from incidents and maintenance and cannot be set directly; "
        "set the status by hand only on a component without a team",
    ),
    "status_page_component_manual_status_needs_no_team": (
        InvalidInput,
        "this component is driven by its team's incidents, so its status cannot be set by hand; "
        "clear its team_id first",
    ),
    # 0012: the same-page relations hold after any UPDATE
    "status_page_component_status_page_id_fixed": (
        InvalidInput,
        "a component cannot move to another status page; create it on the other page instead",
    ),
    "status_page_component_id_fixed": (InvalidInput, "a component's id cannot change"),
    # status_subscriber
    "status_subscriber_status_page_id_channel_destination_key": (
        Conflict,
        "this destination is already subscribed to the page on that channel",
    ),
    "status_subscriber_status_page_id_fkey": (NotFound, "no status page with that id"),
    "status_subscriber_channel_check": (InvalidInput, "unknown subscriber channel"),
    "status_subscriber_destination_check": (
        InvalidInput,
        "a destination must be non-blank and at most 2000 characters",
    ),
    "status_subscriber_notify_on_check": (
        InvalidInput,
        "notify_on must be a non-empty list of known event kinds "
        "(statusdb.domain.types.NOTIFY_ON_EVENTS)",
    ),
    # component groups (0020)
    "component_group_pkey": (Conflict, "a group with that id already exists"),
    "component_group_id_status_page_id_key": (Conflict, "a group with that id already exists"),
    "component_group_status_page_id_name_key": (
        Conflict,
        "a group with that name already exists on this page",
    ),
    "component_group_status_page_id_fkey": (NotFound, "no status page with that id"),
    "component_group_parent_id_fkey": (
        InvalidInput,
        "the parent must be an existing group of the same status page",
    ),
    "component_group_parent_id_check": (
        InvalidInput,
        "a group cannot be inside itself (cycle)",
    ),
    "component_group_parent_id_cycle": (
        InvalidInput,
        "a group cannot be moved inside itself or one of its own subgroups (cycle)",
    ),
    "component_group_depth_check": (
        InvalidInput,
        "groups nest at most 3 levels deep (counting the moved group's own subgroups)",
    ),
    "component_group_name_check": (
        InvalidInput,
        "a group name must be non-blank and at most 200 characters",
    ),
    "component_group_description_check": (
        InvalidInput,
        "a group description must be at most 10000 characters",
    ),
    "component_group_current_status_check": (InvalidInput, "unknown group status"),
    "component_group_current_status_derived": (
        InvalidInput,
        "a group's current_status is derived from its members and cannot be set directly",
    ),
    "component_group_id_fixed": (InvalidInput, "a group's id cannot change"),
    "component_group_status_page_id_fixed": (
        InvalidInput,
        "a group cannot move to another status page; create it on the other page instead",
    ),
    "status_page_component_group_id_fkey": (
        InvalidInput,
        "the group must be an existing group of the component's status page",
    ),
    "status_subscriber_group_ids_fkey": (
        InvalidInput,
        "every group id must name a group of the same status page",
    ),
    "status_subscriber_group_ids_check": (InvalidInput, "group ids cannot be null"),
    "component_group_status_change_pkey": (Conflict, "duplicate group status change"),
    "component_group_status_change_id_key": (Conflict, "duplicate group status change"),
    "component_group_status_change_group_id_fkey": (NotFound, "no group with that id"),
    "component_group_status_change_is_a_change_check": (
        InvalidInput,
        "a logged group change must change the status",
    ),
    "component_group_status_change_previous_status_check": (InvalidInput, "unknown status"),
    "component_group_status_change_new_status_check": (InvalidInput, "unknown status"),
    "status_subscriber_component_ids_fkey": (
        InvalidInput,
        "every component id must name a component of the same status page",
    ),
    "status_subscriber_component_ids_check": (
        InvalidInput,
        "component_ids must not contain null",
    ),
    "status_subscriber_verify_token_hash_key": (
        Conflict,
        "that verification token digest is already in use; make a new token",
    ),
    "status_subscriber_verify_token_hash_check": (
        InvalidInput,
        "a verification token digest must be 32 bytes (SHA-256)",
    ),
    # status_subscriber (0005)
    "status_subscriber_unsubscribe_token_hash_key": (
        Conflict,
        "that unsubscribe token digest is already in use; make a new token",
    ),
    "status_subscriber_unsubscribe_token_hash_check": (
        InvalidInput,
        "an unsubscribe token digest must be 32 bytes (SHA-256)",
    ),
    "status_subscriber_verify_token_expires_at_check": (
        InvalidInput,
        "a verification token digest needs an expiry time, and an expiry time needs a digest",
    ),
    "status_subscriber_is_verified_check": (
        InvalidInput,
        "a verified subscriber cannot have a pending verification token",
    ),
    "status_subscriber_destination_format_check": (
        InvalidInput,
        "an EMAIL destination must be an address (local@domain, domain in lower case, at most "
        "254 octets); a SLACK or WEBHOOK destination must be an https:// URL without "
        "user:password",
    ),
    # status_subscriber, destination_allowlist (0013)
    "status_subscriber_destination_ssrf_check": (
        InvalidInput,
        "a SLACK or WEBHOOK destination may not name an internal host (loopback, private, "
        "link-local, reserved or multicast addresses, an IPv4 address written other than as "
        "a.b.c.d, a single-label name, localhost, *.internal, *.local, metadata services) "
        "unless the database owner lists it in destination_allowlist",
    ),
    "destination_allowlist_host_name_key": (Conflict, "that host name is already allow-listed"),
    "destination_allowlist_network_key": (Conflict, "that network is already allow-listed"),
    "destination_allowlist_entry_check": (
        InvalidInput,
        "an allow-list entry is either a host_name or a network, not both",
    ),
    "destination_allowlist_host_name_check": (
        InvalidInput,
        "an allow-listed host_name is a lower-case (NFKC) name with at least one dot, no "
        "trailing dot, and not ending in a number (list a network for IP addresses)",
    ),
    "destination_allowlist_reason_check": (
        InvalidInput,
        "an allow-list entry needs a non-blank reason of at most 500 characters",
    ),
    # maintenance_window
    "maintenance_window_status_page_id_fkey": (NotFound, "no status page with that id"),
    "maintenance_window_title_check": (
        InvalidInput,
        "a maintenance title must be non-blank and at most 500 characters",
    ),
    "maintenance_window_time_range_check": (InvalidInput, "end_time must be after start_time"),
    "maintenance_window_recurrence_rule_check": (InvalidInput, "not an RFC 5545 RRULE"),
    "maintenance_window_status_check": (InvalidInput, "unknown maintenance status"),
    "maintenance_window_created_by_id_check": (InvalidInput, "created_by_id must be non-blank"),
    "maintenance_window_status_page_id_fixed": (
        InvalidInput,
        "a maintenance window cannot move to another status page; create it on the other page "
        "instead",
    ),
    "maintenance_window_recurrence_start_check": (
        InvalidInput,
        "a recurring window needs recurrence_start (its first occurrence, at or before "
        "start_time); a one-off window has none",
    ),
    "maintenance_window_recurrence_rule_syntax_check": (
        InvalidInput,
        "recurrence_rule must be one upper-case RRULE value (NAME=VALUE;...), FREQ HOURLY or "
        "longer, UNTIL in UTC ending in Z, COUNT or UNTIL but not both, no zero COUNT/INTERVAL",
    ),
    "maintenance_window_time_zone_check": (
        InvalidInput,
        "time_zone must be an IANA time zone name such as Europe/Berlin",
    ),
    # 0018: notification events (written by the database; statusdb_app cannot insert them)
    "maintenance_window_reminder_lead_check": (
        InvalidInput,
        "reminder_lead must be between 0 (no reminder) and 7 days",
    ),
    "notification_event_status_page_id_fkey": (NotFound, "no status page with that id"),
    "notification_event_status_incident_id_fkey": (NotFound, "no status incident with that id"),
    "notification_event_maintenance_window_id_fkey": (
        NotFound,
        "no maintenance window with that id",
    ),
    "notification_event_kind_check": (InvalidInput, "unknown notification event kind"),
    "notification_event_subject_check": (
        InvalidInput,
        "an incident event names a status incident, a maintenance event a window and occurrence",
    ),
    "notification_event_outcome_check": (
        InvalidInput,
        "a notification event's outcome is NOTIFIED, MUTED or OBSOLETE",
    ),
    "notification_event_notified_check": (
        InvalidInput,
        "a notification event has an outcome exactly when it was notified",
    ),
    "notification_event_lease_check": (
        InvalidInput,
        "a lease needs both its owner and its expiry",
    ),
    # 0015: a series' wall-clock DTSTART, and the scheduler's per-window errors
    "maintenance_window_recurrence_local_start_check": (
        InvalidInput,
        "recurrence_local_start (a series' DTSTART as wall-clock time) needs a recurrence_rule",
    ),
    "maintenance_window_scheduler_error_maintenance_window_id_fkey": (
        NotFound,
        "no maintenance window with that id",
    ),
    "maintenance_window_scheduler_error_error_check": (
        InvalidInput,
        "a scheduler error is at most 2000 characters",
    ),
    "maintenance_window_scheduler_error_failures_check": (
        InvalidInput,
        "a scheduler error counts at least one failure",
    ),
    # scheduler heartbeat (0032): written by statusdb_record_scheduler_run only
    "scheduler_heartbeat_instance_length_check": (
        InvalidInput,
        "a scheduler instance name is 1 to 200 characters",
    ),
    "scheduler_heartbeat_last_success_at_range_check": (
        InvalidInput,
        "a scheduler heartbeat is stamped between the years 0001 and 9999",
    ),
    "scheduler_heartbeat_duration_check": (
        InvalidInput,
        "a scheduler step's duration is from 0 to less than a day",
    ),
    "scheduler_heartbeat_transitions_check": (
        InvalidInput,
        "a scheduler step's transitions count is 0 or more",
    ),
    "scheduler_heartbeat_errors_check": (
        InvalidInput,
        "a scheduler step's error count is 0 or more",
    ),
    "scheduler_heartbeat_runs_check": (
        InvalidInput,
        "a scheduler instance has at least one recorded run",
    ),
    # row history (0022): written by its trigger only; the owner alone writes it by hand
    "row_history_valid_check": (InvalidInput, "a row version must end after it begins"),
    "row_history_row_data_check": (InvalidInput, "a row version is a JSON object"),
    # postmortems (0022)
    "status_incident_postmortem_pkey": (
        Conflict,
        "the postmortem already has that revision: publish once, then edit (and pass the latest "
        "revision as expected_revision)",
    ),
    "status_incident_postmortem_status_incident_id_fkey": (
        NotFound,
        "no status incident with that id",
    ),
    # 0025: stamps at commit, and deleted postmortems' audit (the owner's tables)
    "row_history_commit_closed_check": (
        InvalidInput,
        "a row_history_commit row lists as many tables as rows",
    ),
    "status_incident_postmortem_deletion_revisions_check": (
        InvalidInput,
        "a postmortem deletion record lists its revisions as a JSON array",
    ),
    # 0025: a published postmortem is kept (only the owner deletes it, with an audit record)
    "status_incident_postmortem_published": (
        Conflict,
        "the status incident has a published postmortem, which is kept: it cannot be deleted "
        "(nor its page or team) by an application login",
    ),
    "status_incident_postmortem_resolved_check": (
        Conflict,
        "a postmortem is written for a RESOLVED status incident; resolve it first",
    ),
    "status_incident_postmortem_append_only": (
        Conflict,
        "postmortem revisions are never rewritten or deleted; edit adds a revision",
    ),
    "status_incident_postmortem_revision_check": (
        InvalidInput,
        "a postmortem revision is 1 or more",
    ),
    "status_incident_postmortem_body_check": (
        InvalidInput,
        "a postmortem must be non-blank and at most 100000 characters",
    ),
    "status_incident_postmortem_written_by_id_check": (
        InvalidInput,
        "written_by_id must be non-blank and at most 200 characters",
    ),
    "maintenance_window_component_pkey": (Conflict, "that component is already in the window"),
    "maintenance_window_component_maintenance_window_id_fkey": (
        NotFound,
        "no maintenance window with that id",
    ),
    "maintenance_window_component_component_id_fkey": (NotFound, "no component with that id"),
    "maintenance_window_component_same_page": (
        InvalidInput,
        "every component of a maintenance window must belong to the window's page",
    ),
    # status_incident
    "status_incident_status_page_id_fkey": (NotFound, "no status page with that id"),
    "status_incident_incident_id_fkey": (NotFound, "no platform incident with that id"),
    "status_incident_title_check": (
        InvalidInput,
        "a status incident title must be non-blank and at most 500 characters",
    ),
    "status_incident_severity_check": (InvalidInput, "unknown status incident severity"),
    "status_incident_status_check": (InvalidInput, "unknown status incident status"),
    "status_incident_updates_check": (
        InvalidInput,
        "updates must be a JSON array of {timestamp, status, message} objects",
    ),
    "status_incident_updates_readable_check": (
        InvalidInput,
        "every timeline entry needs an ISO 8601 timestamp (2026-01-31T12:00:00Z), a known "
        "status and a message of at most 10000 characters; a timeline holds at most 500 entries",
    ),
    "status_incident_affected_component_ids_check": (
        InvalidInput,
        "affected_component_ids must not contain null",
    ),
    "status_incident_resolved_at_check": (
        InvalidInput,
        "resolved_at is set exactly when a status incident is RESOLVED",
    ),
    "status_incident_affected_component_ids_fkey": (
        InvalidInput,
        "every affected component id must name a component of the same status page",
    ),
    # 0019: incident templates
    "status_incident_template_status_page_id_name_key": (
        Conflict,
        "this page already has an incident template with that name",
    ),
    "status_incident_template_status_page_id_fkey": (NotFound, "no status page with that id"),
    "status_incident_template_name_check": (
        InvalidInput,
        "a template name must be non-blank and at most 200 characters",
    ),
    "status_incident_template_title_check": (
        InvalidInput,
        "a status incident title must be non-blank, at most 500 chars",
    ),
    "status_incident_template_message_check": (
        InvalidInput,
        "a template message must be non-blank and at most 10000 characters",
    ),
    "status_incident_template_severity_check": (
        InvalidInput,
        "unknown status incident severity",
    ),
    "status_incident_template_affected_component_ids_check": (
        InvalidInput,
        "affected_component_ids must not contain null and hold at most 1000 ids",
    ),
    "status_incident_template_affected_component_ids_fkey": (
        InvalidInput,
        "every affected component id must name a component of the same status page",
    ),
    # 0019: delivery bookkeeping
    "status_subscriber_consecutive_permanent_failures_check": (
        InvalidInput,
        "consecutive_permanent_failures must not be negative",
    ),
    "status_subscriber_deactivated_check": (
        InvalidInput,
        "deactivated_at and deactivation_reason (at most 1000 characters) are set together, "
        "and only on an inactive subscriber",
    ),
    "delivery_attempt_notification_key_subscriber_id_attempt_key": (
        Conflict,
        "that attempt of this notification to this subscriber is already recorded",
    ),
    "delivery_attempt_subscriber_id_fkey": (NotFound, "no subscriber with that id"),
    "delivery_attempt_notification_key_check": (
        InvalidInput,
        "a notification key must be non-blank and at most 200 characters",
    ),
    "delivery_attempt_attempt_check": (
        InvalidInput,
        "a notification is attempted at most 1000 times per subscriber",
    ),
    "delivery_attempt_outcome_check": (
        InvalidInput,
        "outcome must be DELIVERED, FAILED_TEMPORARY or FAILED_PERMANENT",
    ),
    "delivery_attempt_error_check": (
        InvalidInput,
        "an error text is at most 1000 characters, and only on a failed attempt",
    ),
    "delivery_attempt_next_attempt_at_check": (
        InvalidInput,
        "only a FAILED_TEMPORARY attempt can be retried",
    ),
    "delivery_attempt_lease_check": (
        InvalidInput,
        "a lease names its worker (at most 200 characters) and its expiry, on a pending retry",
    ),
    "delivery_attempt_payload_check": (
        InvalidInput,
        "a retry payload is at most 16384 bytes of JSON",
    ),
    # status_page_snapshot (0017): written by the owner's triggers only
    "status_page_snapshot_page_id_fkey": (NotFound, "no status page with that id"),
    "status_page_snapshot_version_key": (Conflict, "that page snapshot version is taken"),
    "status_page_snapshot_windows_check": (
        InvalidInput,
        "a page snapshot's window_starts, window_scheduled and windows must be equally long",
    ),
    # 0031: idempotency keys
    "idempotency_key_pkey": (Conflict, "that idempotency key is already taken on this page"),
    "idempotency_key_status_page_id_fkey": (NotFound, "no status page with that id"),
    "idempotency_key_scope_check": (InvalidInput, "unknown idempotency key scope"),
    "idempotency_key_request_digest_check": (
        InvalidInput,
        "an idempotency key's request digest must be 32 bytes (SHA-256)",
    ),
    "status_page_snapshot_scheduled_check": (
        InvalidInput,
        "a page snapshot keeps at most 255 scheduled maintenance candidates",
    ),
}

_RESTRICT_MESSAGES: Final[dict[str, str]] = {
    "incident_team_id_fkey": "the team still has incidents; delete or move them first",
    "status_page_team_id_fkey": "the team still owns status pages; delete or move them first",
}


_ID_IMMUTABLE: Final = "_id_immutable"

#: Migration 0024's checks, one per column: timestamps every reader can read
#: (<table>_<column>_range_check) and text sizes (<table>_<column>_length_check).
_RANGE_CHECKED: Final[dict[str, tuple[str, ...]]] = {
    "team": ("created_at", "updated_at"),
    "translation": ("created_at", "updated_at"),
    "incident": ("created_at", "updated_at", "resolved_at"),
    "status_page": ("created_at", "updated_at"),
    "status_page_component": ("created_at", "updated_at", "status_updated_at"),
    "component_group": ("created_at", "updated_at", "status_updated_at"),
    "status_incident": ("created_at", "updated_at", "resolved_at"),
    "status_incident_postmortem": ("written_at",),
    "status_incident_template": ("created_at", "updated_at"),
    "maintenance_window": (
        "start_time",
        "end_time",
        "recurrence_start",
        "created_at",
        "updated_at",
    ),
    "maintenance_window_scheduler_error": ("first_failed_at", "last_failed_at"),
    "status_change": ("changed_at", "notified_at", "lease_expires_at"),
    "component_group_status_change": ("changed_at", "updated_at"),
    "notification_event": ("created_at", "occurrence_start", "notified_at", "lease_expires_at"),
    "status_subscriber": ("created_at", "updated_at", "verify_token_expires_at", "deactivated_at"),
    "delivery_attempt": ("attempted_at", "next_attempt_at", "lease_expires_at"),
    "status_page_snapshot": ("updated_at",),
    "idempotency_key": ("created_at",),
}
_LENGTH_CHECKED: Final[dict[tuple[str, str], int]] = {
    **{
        (table, "id"): 200
        for table in (
            "team",
            "incident",
            "status_page",
            "status_page_component",
            "component_group",
            "status_incident",
            "status_incident_template",
            "maintenance_window",
            "status_subscriber",
            "delivery_attempt",
        )
    },
    ("status_page", "created_by_id"): 200,
    ("status_page", "description"): 10_000,
    ("status_page_component", "description"): 10_000,
    ("status_incident", "message"): 10_000,
    ("maintenance_window", "created_by_id"): 200,
    ("maintenance_window", "description"): 10_000,
    ("maintenance_window", "time_zone"): 100,
    ("notification_event", "lease_owner"): 200,
    ("status_change", "lease_owner"): 200,
    ("idempotency_key", "key"): 200,
    ("idempotency_key", "result_id"): 200,
}
CONSTRAINT_MESSAGES.update(
    {
        f"{table}_{column}_range_check": (
            InvalidInput,
            f"{column} must be a finite time from 0001-01-02 to 9999-12-30 (UTC)",
        )
        for table, columns in _RANGE_CHECKED.items()
        for column in columns
    }
)
CONSTRAINT_MESSAGES.update(
    {
        f"{table}_{column}_length_check": (
            InvalidInput,
            f"{column} must be at most {bound} characters",
        )
        for (table, column), bound in _LENGTH_CHECKED.items()
    }
)


# 0033: translations.
CONSTRAINT_MESSAGES.update(
    {
        "status_page_default_locale_check": (
            InvalidInput,
            "a locale must be a BCP 47 tag in canonical case (de, de-CH, zh-Hant-TW, es-419)",
        ),
        "status_subscriber_locale_check": (
            InvalidInput,
            "a locale must be a BCP 47 tag in canonical case (de, de-CH, zh-Hant-TW, es-419)",
        ),
        "translation_locale_check": (
            InvalidInput,
            "a locale must be a BCP 47 tag in canonical case (de, de-CH, zh-Hant-TW, es-419)",
        ),
        "translation_entity_kind_check": (
            InvalidInput,
            "entity must be page, component, group, incident, incident_update or maintenance",
        ),
        "translation_entity_id_length_check": (InvalidInput, "an id is at most 200 characters"),
        "translation_field_check": (
            InvalidInput,
            "no such field to translate: page, component and group have name and description, "
            "incident title and message, incident_update message, maintenance title and "
            "description",
        ),
        "translation_page_check": (InvalidInput, "a page translation names the page itself"),
        "translation_update_number_check": (
            InvalidInput,
            "update_number is 1 to 500 for an incident_update (the timeline entry), else 0",
        ),
        "translation_text_length_check": (
            InvalidInput,
            "a translated name is at most 200 characters, a title 500, any other text 10000",
        ),
        "translation_text_check": (InvalidInput, "a translated name or title must be non-blank"),
        "translation_entity_fkey": (NotFound, "no such entity to translate"),
        "translation_status_page_id_fkey": (NotFound, "no status page with that id"),
        "translation_component_id_fkey": (NotFound, "no component with that id"),
        "translation_group_id_fkey": (NotFound, "no component group with that id"),
        "translation_status_incident_id_fkey": (NotFound, "no status incident with that id"),
        "translation_maintenance_window_id_fkey": (
            NotFound,
            "no maintenance window with that id",
        ),
        "translation_pkey": (Conflict, "that field is already translated in that locale"),
        "translation_locales_per_page_check": (
            InvalidInput,
            "a status page has translations in at most 20 locales",
        ),
    }
)


#: How psycopg's loaders (client side, always English: not the server's translated text) say
#: that a value the server sent has no Python form; its dumpers' errors (a NUL in a str) are
#: the caller's input and stay InvalidInput.
_UNLOADABLE: Final = re.compile(r"too (large|small) \((after|before) year|can't parse ")


def _unloadable(exc: psycopg.Error) -> bool:
    return _UNLOADABLE.search(str(exc)) is not None


def translate(exc: psycopg.Error, *, deleting: bool = False) -> StatusdbError:
    """Turn a psycopg error into the statusdb error a caller can act on.

    Only SQLSTATEs (the exception's class) and diagnostic fields (constraint name, ...) are
    read, never the message text, which the server translates into its `lc_messages` language.
    `deleting` says that the failed statement deletes rows: a foreign key violation then means
    rows still reference a deleted one (PostgreSQL gives both sides of a foreign key the same
    SQLSTATE and the same diagnostic fields, so only the statement tells them apart).
    """
    if isinstance(
        exc, psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed | psycopg_pool.TooManyRequests
    ):
        return unavailable(exc)
    constraint = exc.diag.constraint_name if isinstance(exc, psycopg.DatabaseError) else None
    if (unmigrated := _not_migrated(exc)) is not None:
        return unmigrated
    if (
        deleting
        and isinstance(exc, pg_errors.ForeignKeyViolation)
        and constraint in _RESTRICT_MESSAGES
    ):
        # The referenced row is being deleted while referencing rows exist.
        return Conflict(_RESTRICT_MESSAGES[constraint])
    if constraint and constraint in CONSTRAINT_MESSAGES:
        kind, message = CONSTRAINT_MESSAGES[constraint]
        return kind(message)
    if constraint and constraint.endswith(_ID_IMMUTABLE) and exc.diag.table_name:
        # 0026: every table's `<table>_id_immutable` trigger.
        return InvalidInput(
            f"a {exc.diag.table_name} row's id never changes: create a new row instead"
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        # A role without the privilege, or a row outside the session's team (row-level
        # security): either way the caller may not do this.
        return Unauthorized(
            f"not allowed: {exc.diag.message_primary or exc} (check the database role, and the "
            "team set with statusdb.tenancy.set_team)"
        )
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return ReadOnlyTransaction(READ_PATH_WRITE)
    if isinstance(exc, pg_errors.InvalidTransactionState):
        hint = exc.diag.message_hint
        return StatusdbError(f"{exc.diag.message_primary}{'. ' + hint if hint else ''}")
    if isinstance(exc, pg_errors.RaiseException | pg_errors.InvalidParameterValue):
        return InvalidInput(exc.diag.message_primary or str(exc))
    if isinstance(exc, pg_errors.IntegrityError):
        return Conflict(exc.diag.message_primary or str(exc))
    if isinstance(exc, psycopg.DataError) and exc.sqlstate is None and _unloadable(exc):
        # Raised by psycopg itself, loading a value the server sent (a timestamp beyond
        # Python's years 1-9999, say): the stored data is unreadable, not the caller's input.
        return DataCorrupt(f"a stored value cannot be read: {exc}")
    if isinstance(exc, pg_errors.DataError | psycopg.DataError):
        return InvalidInput(f"invalid value: {exc.diag.message_primary or exc}")
    if connection_lost(exc):
        return Retryable(
            f"the connection to the database was lost ({_reason(exc)}): nothing of the "
            "unfinished transaction was kept; retry on a new connection"
        )
    if isinstance(
        exc,
        pg_errors.SerializationFailure | pg_errors.DeadlockDetected | psycopg.OperationalError,
    ):
        return Retryable(f"transient database failure, retry: {exc}")
    return StatusdbError(f"database error: {exc}")


# -- connections: pools, lost connections, commits --------------------------------------------

#: What a write through the read path is told (SQLSTATE 25006, read_only_sql_transaction).
READ_PATH_WRITE: Final = (
    "a write was sent through the read path (a read-only transaction: router.read(), or a "
    "replica); use router.write() or router.primary() for writes"
)

#: Server-side SQLSTATEs that end the session: admin_shutdown (pg_terminate_backend, a fast
#: shutdown), crash_shutdown (another backend crashed), cannot_connect_now (starting up or
#: shutting down); class 08 is connection_exception.
_SESSION_ENDING: Final = frozenset({"57P01", "57P02", "57P03"})

_POOL_ERRORS: Final = (
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
    psycopg_pool.TooManyRequests,
)


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` means the session is gone (the server closed it, or the socket broke).

    By SQLSTATE: class 08 and 57P01-57P03; psycopg's own OperationalError without one (a
    broken socket, "server closed the connection unexpectedly"). The pool's errors are not
    lost connections (nothing was sent)."""
    if not isinstance(exc, psycopg.Error) or isinstance(exc, _POOL_ERRORS):
        return False
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state.startswith("08") or state in _SESSION_ENDING


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def unavailable(exc: BaseException, what: str = "", why: str | None = None) -> Unavailable:
    """The `Unavailable` for a pool's refusal or a failed connection attempt, chained to it
    (`why`: what the caller knows better than the exception's class)."""
    if why is not None:
        pass
    elif isinstance(exc, psycopg_pool.PoolTimeout):
        why = "no connection could be had in time (all in use, or the server is unreachable)"
    elif isinstance(exc, psycopg_pool.PoolClosed):
        why = "the connection pool is closed"
    elif isinstance(exc, psycopg_pool.TooManyRequests):
        why = "too many requests are waiting for a connection (the pool's max_waiting)"
    else:
        why = "the database server cannot be reached"
    error = Unavailable(
        f"database unavailable{' (' + what + ')' if what else ''}: {why}; "
        f"retry later ({_reason(exc)})"
    )
    error.__cause__ = exc
    return error


def commit_outcome_unknown(exc: BaseException) -> CommitOutcomeUnknown:
    """The error for a connection lost while a transaction committed, chained to `exc`."""
    error = CommitOutcomeUnknown(
        f"the connection was lost while the transaction committed ({_reason(exc)}): the "
        "write may or may not have been applied; retry only with an idempotency key, or "
        "after checking whether it happened"
    )
    error.__cause__ = exc
    return error


def translate_commit(exc: psycopg.Error) -> StatusdbError:
    """Translate an error raised by COMMIT: a lost connection is `CommitOutcomeUnknown`."""
    if connection_lost(exc):
        return commit_outcome_unknown(exc)
    return translate(exc)


def translate_connect(exc: psycopg.Error, what: str = "") -> StatusdbError:
    """Translate an error of a connection attempt: refused credentials are `Unauthorized`, a
    missing database a `StatusdbError`, anything else (down, unreachable, no primary among
    the hosts, starting up) `Unavailable`."""
    if isinstance(exc, pg_errors.InvalidAuthorizationSpecification | pg_errors.InvalidPassword):
        error: StatusdbError = Unauthorized(f"the database refused the login: {_reason(exc)}")
    elif isinstance(exc, pg_errors.InvalidCatalogName):
        error = StatusdbError(f"no such database: {_reason(exc)}")
    else:
        return unavailable(exc, what)
    error.__cause__ = exc
    return error


# -- a database without statusdb's schema ----------------------------------------------------

# Identifiers are never translated, so this holds whatever language the server speaks in.
_STATUSDB_FUNCTION: Final = re.compile(r"\bstatusdb_[a-z0-9_]+\b")  # versioned names: _v2


class NotMigrated(StatusdbError):
    """The database lacks statusdb's tables or functions: its migrations were not applied."""


def _not_migrated(exc: psycopg.Error) -> NotMigrated | None:
    """NotMigrated for a missing statusdb table or function, else None."""
    message = (exc.diag.message_primary or "") if isinstance(exc, psycopg.DatabaseError) else ""
    # Only statusdb's own statements are translated, and they name only statusdb's tables and
    # functions: a missing one means the schema is not (all) there. Decided by SQLSTATE (and, for
    # functions, the untranslated identifier), never by the message's wording.
    missing_function = isinstance(exc, pg_errors.UndefinedFunction) and bool(
        _STATUSDB_FUNCTION.search(message)
    )
    if not (isinstance(exc, pg_errors.UndefinedTable) or missing_function):
        return None
    return NotMigrated(
        f"{message}: this database lacks statusdb's schema (or part of it); "
        "run `statusdb migrate --dsn ...` on it (or `yoyo apply`, see README)"
    )
