"""A deliverer that prints one line per delivery to stdout: `statusdb worker --deliver
statusdb.workers.deliverers.console:deliver` (the demo; a no-op-like sink for trials).

The line holds the delivery key, the notification's kind, the channel, the subscriber id and a
short summary; never the destination (an address or a webhook URL is a secret of the
subscriber's)."""

from __future__ import annotations

import sys

from statusdb.domain.types import (
    IncidentNotification,
    MaintenanceNotification,
    Notification,
)
from statusdb.workers.outbox import Recipient


def summary(notification: Notification) -> str:
    """A one-line summary of `notification`."""
    if isinstance(notification, IncidentNotification):
        return f"{notification.page_slug}: {notification.title} [{notification.status}]"
    if isinstance(notification, MaintenanceNotification):
        return f"{notification.page_slug}: {notification.title} ({notification.kind})"
    return (
        f"{notification.page_slug}: {notification.component_name} "
        f"{notification.previous_status} -> {notification.new_status}"
    )


def kind(notification: Notification) -> str:
    if isinstance(notification, IncidentNotification | MaintenanceNotification):
        return str(notification.kind)
    return "component_status"


def deliver(notification: Notification, recipient: Recipient, key: str) -> None:
    """Print the delivery on one line (flushed: a pipe sees it at once)."""
    line = f"{key} {kind(notification)} {recipient.channel} {recipient.subscriber_id} "
    sys.stdout.write(line + summary(notification).replace("\n", " ") + "\n")
    sys.stdout.flush()


def noop(notification: Notification, recipient: Recipient, key: str) -> None:
    """Deliver nothing (benchmarks: the cost of the worker and its bookkeeping alone)."""


async def anoop(notification: Notification, recipient: Recipient, key: str) -> None:
    """`noop`, as a coroutine function (no thread hop per delivery)."""
