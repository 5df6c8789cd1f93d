"""statusdb's vocabulary: every enumeration, defined once for Python.

The database holds the same sets in CHECK constraints (see `migrations/`); a test keeps the two
equal. Each enumeration is a tuple (ordered where order means something) plus a `Literal` type
built from the same names, so that mypy checks callers and code can iterate the values.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

import attrs

from statusdb.domain import validate

ComponentStatus = Literal[
    "MAJOR_OUTAGE",
    "PARTIAL_OUTAGE",
    "DEGRADED_PERFORMANCE",
    "UNDER_MAINTENANCE",
    "OPERATIONAL",
]
#: Component statuses, worst first: the worst status present wins.
STATUS_SEVERITY_ORDER: Final[tuple[ComponentStatus, ...]] = get_args(ComponentStatus)

IncidentPriority = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"]
INCIDENT_PRIORITIES: Final[tuple[IncidentPriority, ...]] = get_args(IncidentPriority)

IncidentStatus = Literal["OPEN", "ACKNOWLEDGED", "RESOLVED", "CLOSED"]
INCIDENT_STATUSES: Final[tuple[IncidentStatus, ...]] = get_args(IncidentStatus)
#: Platform incidents in these statuses drive component statuses.
ACTIVE_INCIDENT_STATUSES: Final[tuple[IncidentStatus, ...]] = ("OPEN", "ACKNOWLEDGED")

#: How a platform incident's priority shows on the components it affects (read-only).
INCIDENT_PRIORITY_TO_STATUS: Final[Mapping[IncidentPriority, ComponentStatus]] = MappingProxyType(
    {
        "CRITICAL": "MAJOR_OUTAGE",
        "HIGH": "PARTIAL_OUTAGE",
        "MEDIUM": "DEGRADED_PERFORMANCE",
        "LOW": "OPERATIONAL",
        "INFO": "OPERATIONAL",
    }
)

StatusIncidentSeverity = Literal["MINOR", "MAJOR", "CRITICAL"]
STATUS_INCIDENT_SEVERITY: Final[tuple[StatusIncidentSeverity, ...]] = get_args(
    StatusIncidentSeverity
)

StatusIncidentStatus = Literal["INVESTIGATING", "IDENTIFIED", "MONITORING", "RESOLVED"]
STATUS_INCIDENT_STATUS: Final[tuple[StatusIncidentStatus, ...]] = get_args(StatusIncidentStatus)

MaintenanceStatus = Literal["SCHEDULED", "IN_PROGRESS", "COMPLETED", "CANCELLED"]
MAINTENANCE_STATUS: Final[tuple[MaintenanceStatus, ...]] = get_args(MaintenanceStatus)

SubscriberChannel = Literal["EMAIL", "SLACK", "WEBHOOK"]
SUBSCRIBER_CHANNELS: Final[tuple[SubscriberChannel, ...]] = get_args(SubscriberChannel)

#: Component status changes (the status-change log, migration 0006), by the new status.
ComponentChangeKind = Literal["degraded", "outage", "maintenance", "resolved"]
COMPONENT_CHANGE_KINDS: Final[tuple[ComponentChangeKind, ...]] = get_args(ComponentChangeKind)

#: Status incident events (notification_event, migration 0018).
IncidentEventKind = Literal[
    "incident_created", "incident_updated", "incident_resolved", "incident_reopened"
]
INCIDENT_EVENT_KINDS: Final[tuple[IncidentEventKind, ...]] = get_args(IncidentEventKind)

#: Maintenance window events (notification_event, migration 0018).
MaintenanceEventKind = Literal[
    "maintenance_scheduled",
    "maintenance_rescheduled",
    "maintenance_cancelled",
    "maintenance_reminder",
    "maintenance_started",
    "maintenance_completed",
]
MAINTENANCE_EVENT_KINDS: Final[tuple[MaintenanceEventKind, ...]] = get_args(MaintenanceEventKind)

#: The kinds of notification_event rows (its CHECK notification_event_kind_check).
EventKind = Literal[IncidentEventKind, MaintenanceEventKind]
EVENT_KINDS: Final[tuple[EventKind, ...]] = INCIDENT_EVENT_KINDS + MAINTENANCE_EVENT_KINDS

#: What a subscriber may be notified of (status_subscriber.notify_on), in canonical order.
NotifyOnEvent = Literal[ComponentChangeKind, IncidentEventKind, MaintenanceEventKind]
NOTIFY_ON_EVENTS: Final[tuple[NotifyOnEvent, ...]] = COMPONENT_CHANGE_KINDS + EVENT_KINDS


def worst_status(statuses: list[ComponentStatus] | tuple[ComponentStatus, ...]) -> ComponentStatus:
    """The worst of `statuses` by STATUS_SEVERITY_ORDER; OPERATIONAL when there are none."""
    if not statuses:
        return "OPERATIONAL"
    return min(statuses, key=STATUS_SEVERITY_ORDER.index)


@attrs.frozen
class StatusUpdate:
    """One entry of a status incident's timeline."""

    timestamp: dt.datetime
    status: StatusIncidentStatus
    message: str


@attrs.frozen
class ComponentView:
    """A component as a status page shows it: no team, service or other internals."""

    id: str
    name: str
    description: str | None
    display_order: int
    current_status: ComponentStatus
    status_updated_at: dt.datetime
    #: The group it is shown in (migration 0020), None when ungrouped.
    group_id: str | None = None


@attrs.frozen
class StatusPageWithComponents:
    """A page as its readers see it: components in display order and the overall status."""

    id: str
    name: str
    description: str | None
    slug: str
    is_public: bool
    components: tuple[ComponentView, ...]
    overall_status: ComponentStatus
    updated_at: dt.datetime
    #: The page's IANA time zone (`status_page.time_zone`, migration 0029), to show its times in.
    time_zone: str = "UTC"


def page_zone(name: str) -> dt.tzinfo:
    """The tzinfo of a page's IANA time zone; UTC for a name this Python does not know (a zone
    newer than its tzdata: the instant stays right, only the wall clock shown is UTC)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return dt.UTC


class _PageTimes:
    """Times as a message shows them: in the page's time zone (`page_time_zone`)."""

    __slots__ = ()
    page_time_zone: str

    def local_time(self, when: dt.datetime) -> dt.datetime:
        """The instant `when` (aware) in the page's time zone."""
        validate.aware("when", when)
        return when.astimezone(page_zone(self.page_time_zone))

    def time_text(self, when: dt.datetime) -> str:
        """The instant `when` as a message shows it, in the page's time zone:
        ``2026-03-29 14:30 CEST (UTC+02:00)``, or ``2026-03-29 12:30 UTC``."""
        local = self.local_time(when)
        offset = local.strftime("%z")  # +0200
        name = local.tzname() or "UTC"
        if name == "UTC" and offset in ("", "+0000"):
            return f"{local:%Y-%m-%d %H:%M} UTC"
        return f"{local:%Y-%m-%d %H:%M} {name} (UTC{offset[:3]}:{offset[3:]})"


@attrs.frozen
class StatusChangeNotification(_PageTimes):
    """What a subscriber is told when a component's status changes.

    Nothing internal: the page's name, slug and time zone (for the message and its links), the
    component, and the maintenance window behind a maintenance change (shown on the page); never
    the platform incident behind an incident-caused change.
    """

    status_page_id: str
    page_name: str
    page_slug: str
    #: The page's IANA time zone, to show times in (`status_page.time_zone`).
    page_time_zone: str
    component_id: str
    component_name: str
    previous_status: ComponentStatus
    new_status: ComponentStatus
    maintenance_id: str | None = None
    message: str | None = None
    #: When the (last coalesced) change was logged, in UTC; `local_time(changed_at)` or
    #: `time_text(changed_at)` in the page's zone. None in payloads stored before it existed.
    changed_at: dt.datetime | None = None


@attrs.frozen
class AffectedComponent:
    """A component named in an incident or maintenance notification, with its status then."""

    name: str
    status: ComponentStatus


@attrs.frozen
class IncidentNotification(_PageTimes):
    """What a subscriber is told about a status incident (one kind of `IncidentEventKind`).

    `status` and `message` are those of the timeline entry the event is about (for
    incident_created, the first one); `at` is that entry's time. Nothing internal: the status
    incident's id is the page's own (for links), never a platform incident's.
    """

    kind: IncidentEventKind
    event_id: str
    status_page_id: str
    page_name: str
    page_slug: str
    #: The page's IANA time zone, to show times in (`status_page.time_zone`).
    page_time_zone: str
    status_incident_id: str
    title: str
    severity: StatusIncidentSeverity
    status: StatusIncidentStatus
    message: str | None
    at: dt.datetime
    components: tuple[AffectedComponent, ...]


@attrs.frozen
class MaintenanceNotification(_PageTimes):
    """What a subscriber is told about a maintenance window (one `MaintenanceEventKind`).

    `start_time` and `end_time` are the occurrence the event is about (for a reschedule, the new
    one; `previous_start_time` and `previous_end_time` the old one), as aware datetimes in the
    window's `time_zone`.
    """

    kind: MaintenanceEventKind
    event_id: str
    status_page_id: str
    page_name: str
    page_slug: str
    #: The page's IANA time zone (`time_zone` below is the window's own, which may differ).
    page_time_zone: str
    maintenance_window_id: str
    title: str
    description: str | None
    time_zone: str
    recurring: bool
    start_time: dt.datetime
    end_time: dt.datetime
    components: tuple[AffectedComponent, ...]
    previous_start_time: dt.datetime | None = None
    previous_end_time: dt.datetime | None = None


#: Everything `outbox.process_all` hands to its `deliver` callback.
Notification = StatusChangeNotification | IncidentNotification | MaintenanceNotification


@attrs.frozen
class CreateMaintenanceWindowInput:
    """Everything needed to schedule a maintenance window."""

    component_ids: tuple[str, ...]
    title: str
    start_time: dt.datetime
    end_time: dt.datetime
    auto_update_status: bool = True
    notify_subscribers: bool = True
    description: str | None = None
    recurrence_rule: str | None = None

    def __attrs_post_init__(self) -> None:
        validate.fields(self)  # InvalidInput for a wrong-typed field (a str for a bool, ...)
