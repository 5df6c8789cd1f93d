"""Component status: the derivation's operator tools and the status-change log.

The statuses themselves are kept by the database (migration 0003): every change to an incident,
a maintenance window, its components, or a component's team, service or manual status
re-derives the affected components in the same transaction and logs each real change. This
module offers what operators need around that: a from-scratch recompute that reports (and
repairs) drift, e.g. after a restore or a bulk load with triggers disabled, a check of the
status-change log's chain, and `lock_status_inputs`, the lock-ahead for a transaction that
writes several status inputs (CONTRIBUTING.md, "Lock order").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Literal

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, execute, many, operation
from statusdb.domain import validate
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput

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


#: The most ids `lock_status_inputs` takes per argument (the SQL function's bound, 0038).
LOCK_AHEAD_MAX_IDS = 10_000


@operation(requires_transaction=True)
def lock_status_inputs(
    *,
    windows: Iterable[str] = (),
    teams: Iterable[str] = (),
    components: Iterable[str] = (),
) -> Op[None]:
    """Take the locks of a transaction's status-input writes ahead, in the global lock order.

    A transaction that writes several derivation inputs in several statements (incidents of
    several teams, windows and their links, components' teams or services) calls this first,
    inside its transaction, with every window whose status, `auto_update_status` or links it
    changes, every team of an incident it opens or changes (or that a component joins or
    leaves), and every component it moves or whose manual status it sets. The locks are held
    until the transaction ends; two such transactions then queue on their first common lock
    instead of deadlocking on a later one (CONTRIBUTING.md, "Lock order"; migration 0038). It
    never commits.

    On an autocommit connection outside `conn.transaction()` the locks would end with the call:
    refused (InvalidInput, `requires_transaction`). A connection scoped to a team
    (`tenancy.set_team`) may name only that team, its pages' windows and its components: any
    other id, or an unknown one, is refused with `Unauthorized` before anything is locked
    (0043). At most 10,000 ids per argument (`InvalidInput`). Under REPEATABLE READ or
    SERIALIZABLE a lock written since the transaction's snapshot raises `Retryable`: call it
    first in the transaction.
    """
    params: dict[str, object] = {}
    given = (("windows", windows), ("teams", teams), ("components", components))
    for name, values in given:
        ids = validate.identifiers(name, values)
        if len(ids) > LOCK_AHEAD_MAX_IDS:
            raise InvalidInput(f"{name}: at most {LOCK_AHEAD_MAX_IDS} ids at once")
        params[name] = ids
    yield from execute("status_lock_status_inputs", params)
