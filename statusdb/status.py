"""Component status: the derivation's operator tools and the status-change log.

The statuses themselves are kept by the database (migration 0003): every change to an incident,
a maintenance window, its components, or a component's team, service or manual status
re-derives the affected components in the same transaction and logs each real change. This
module offers what operators need around that: a from-scratch recompute that reports (and
repairs) drift, e.g. after a restore or a bulk load with triggers disabled, and a check of the
status-change log's chain.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, many, operation
from statusdb.domain import validate
from statusdb.domain.types import ComponentStatus

Cause = Literal["INCIDENT", "MAINTENANCE", "MANUAL"]
STATUS_CHANGE_CAUSES: tuple[Cause, ...] = ("INCIDENT", "MAINTENANCE", "MANUAL")


@attrs.frozen
class Drift:
    """A component whose stored status differs from a from-scratch derivation."""

    component_id: str
    current_status: ComponentStatus
    derived_status: ComponentStatus


@attrs.frozen
class ChainBreak:
    """A place where the status-change log does not chain (should never exist)."""

    component_id: str
    seq: int | None
    problem: str


@attrs.frozen
class StatusChange:
    """One logged change of a component's status."""

    id: str
    seq: int
    status_page_id: str
    component_id: str
    previous_status: ComponentStatus
    new_status: ComponentStatus
    cause: Cause
    incident_id: str | None
    maintenance_window_id: str | None
    changed_at: dt.datetime


@operation(retry=True)
def recompute(*, repair: bool = False) -> Op[list[Drift]]:
    """Every component whose status has drifted from its inputs; corrected when `repair`.

    Repairs are logged (cause MANUAL) and notified like any other change. Repair takes the one
    lock that keeps every re-derivation out (row 0 of the owner-only `status_lock`, exclusively,
    migration 0012): it waits for the re-derivations in flight and holds up new ones until the
    transaction ends, so run it at a quiet moment (under a continuous stream of incident changes
    it waits for a gap). It needs READ COMMITTED (REPEATABLE READ and SERIALIZABLE are refused:
    it reads every input after taking that lock).
    """
    params = {"repair": validate.flag("repair", repair)}
    return (yield from many("status_recompute", params, class_row(Drift)))


@operation(retry=True)
def chain_breaks() -> Op[list[ChainBreak]]:
    """Where the status-change log fails to chain up to the current statuses (empty: intact)."""
    return (yield from many("status_chain_breaks", {}, class_row(ChainBreak)))


@operation(retry=True)
def changes_for_component(component_id: str, *, limit: int = 1000) -> Op[list[StatusChange]]:
    """A component's logged status changes, oldest first."""
    params = {
        "component_id": validate.identifier("component_id", component_id),
        "limit": validate.limit(limit, maximum=100_000),
    }
    return (yield from many("status_changes_for_component", params, class_row(StatusChange)))
