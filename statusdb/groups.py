"""Component groups: a page's components in a tree, with a status the database derives.

A group belongs to one page, may sit inside another group of the page (at most
`MAX_DEPTH` levels), and shows the worst status of its members: the components in it and in
its subgroups (OPERATIONAL when empty). The database keeps that status (migration 0020): every
change of a member's status, a component joining or leaving, a group moving or going re-derives
the affected groups in the same transaction, logs the change (`changes_for_group`) and announces
it on the status feed. The rules hold for every writer, psql included: no cycles, no deeper
trees, no group or parent on another page, no hand-written group status.

Deleting a group keeps its components (they become ungrouped) and its subgroups (they move to
the top level). `display_order` orders a group among its siblings; a component's own
`display_order` orders it within its group.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, execute, many, one, operation
from statusdb.domain import validate
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput, NotFound

#: How deep groups nest: a group, a subgroup, a sub-subgroup (migration 0020).
MAX_DEPTH: Final = 3
#: Most groups one call may name (statusdb_check_group_ids has the same bound).
MAX_GROUP_IDS: Final = 1000


@attrs.frozen
class Group:
    """A component group as stored."""

    id: str
    status_page_id: str
    parent_id: str | None
    name: str
    description: str | None
    display_order: int
    #: Derived by the database: the worst status of the group's members.
    current_status: ComponentStatus
    status_updated_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class Membership:
    """Where a component is shown after `assign`."""

    component_id: str
    group_id: str | None
    display_order: int
    current_status: ComponentStatus


@attrs.frozen
class GroupDrift:
    """A group whose stored status differs from a from-scratch derivation."""

    group_id: str
    current_status: ComponentStatus
    derived_status: ComponentStatus


@attrs.frozen
class GroupStatusChange:
    """One logged change of a group's status."""

    id: str
    seq: int
    status_page_id: str
    group_id: str
    previous_status: ComponentStatus
    new_status: ComponentStatus
    changed_at: dt.datetime


_row = class_row(Group)


def _optional_id(field: str, value: str | None) -> str | None:
    return None if value is None else validate.identifier(field, value)


def _display_order(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
        raise InvalidInput("display_order must be a 32-bit integer")
    return value


def _not_found(group_id: str) -> str:
    return f"no group with id {group_id!r}"


@operation(retry=True)
def create(
    status_page_id: str,
    *,
    name: str,
    description: str | None = None,
    display_order: int = 0,
    parent_id: str | None = None,
) -> Op[Group]:
    """Add a group to a page, at the top level or inside `parent_id` (a group of the page)."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "name": validate.text("name", name, max_length=200),
        "description": validate.optional_text("description", description, max_length=10_000),
        "display_order": _display_order(display_order),
        "parent_id": _optional_id("parent_id", parent_id),
    }
    return (yield from one("group_create", params, _row, not_found="group not created"))


@operation(retry=True)
def get(group_id: str) -> Op[Group]:
    """One group by id."""
    params = {"id": validate.identifier("group_id", group_id)}
    return (yield from one("group_get", params, _row, not_found=_not_found(group_id)))


@operation(retry=True)
def list_for_page(status_page_id: str) -> Op[list[Group]]:
    """A page's groups, flat, in display order (`parent_id` gives the tree)."""
    params = {"status_page_id": validate.identifier("status_page_id", status_page_id)}
    return (yield from many("group_list_for_page", params, _row))


@operation(retry=True)
def update(
    group_id: str,
    *,
    name: str | validate.Unset = validate.UNSET,
    description: str | validate.Unset | None = validate.UNSET,
    display_order: int | validate.Unset = validate.UNSET,
) -> Op[Group]:
    """Rename a group or change its description or display order; omitted fields stay."""
    U = validate.UNSET
    params = {
        "id": validate.identifier("group_id", group_id),
        **validate.changes(
            name=U if name is U else validate.text("name", name, max_length=200),
            description=U
            if description is U
            else validate.optional_text("description", description, max_length=10_000),
            display_order=U if display_order is U else _display_order(display_order),
            parent_id=U,
        ),
    }
    return (yield from one("group_update", params, _row, not_found=_not_found(group_id)))


@operation(retry=True)
def move(group_id: str, *, parent_id: str | None) -> Op[Group]:
    """Put a group inside `parent_id` (a group of the same page), or at the top level (None).

    Refused with InvalidInput when that would make a cycle (the parent is the group itself or
    one of its subgroups), nest more than `MAX_DEPTH` levels (counting the group's own
    subgroups), or name a group of another page. The old and new parents' statuses follow.
    """
    params = {
        "id": validate.identifier("group_id", group_id),
        **validate.changes(
            name=validate.UNSET,
            description=validate.UNSET,
            display_order=validate.UNSET,
            parent_id=_optional_id("parent_id", parent_id),
        ),
    }
    return (yield from one("group_update", params, _row, not_found=_not_found(group_id)))


@operation(retry=True)
def delete(group_id: str) -> Op[None]:
    """Delete a group: its components become ungrouped, its subgroups top-level.

    Subscribers following it forget it (one left following nothing is deactivated).
    """
    count = yield from execute("group_delete", {"id": validate.identifier("group_id", group_id)})
    if count == 0:
        raise NotFound(_not_found(group_id))


@operation(retry=True)
def assign(
    component_id: str,
    group_id: str | None,
    *,
    display_order: int | validate.Unset = validate.UNSET,
) -> Op[Membership]:
    """Show a component in `group_id` (a group of its page), or in none (None).

    `display_order`, when given, is its position within the group. The groups it leaves and
    joins are re-derived in the same statement.
    """
    U = validate.UNSET
    params = {
        "component_id": validate.identifier("component_id", component_id),
        "group_id": _optional_id("group_id", group_id),
        **validate.changes(
            display_order=U if display_order is U else _display_order(display_order)
        ),
    }
    return (
        yield from one(
            "group_assign_component",
            params,
            class_row(Membership),
            not_found=f"no component with id {component_id!r}",
        )
    )


@operation(retry=True)
def member_component_ids(status_page_id: str, group_ids: Sequence[str]) -> Op[list[str]]:
    """The components in these groups of the page and in their subgroups, in id order.

    What naming a group means for maintenance windows and status incidents: its members at the
    time of writing (they are stored as component ids). InvalidInput when a group is not one
    of the page's.
    """
    ids = validate.identifiers("group_ids", group_ids)
    if len(ids) > MAX_GROUP_IDS:
        raise InvalidInput(f"at most {MAX_GROUP_IDS} group ids")
    params = {"status_page_id": validate.identifier("status_page_id", status_page_id)}
    row = yield from one(
        "group_member_component_ids",
        {**params, "group_ids": ids},
        class_row(_Members),
        not_found="no result",
    )
    if row.missing:
        raise InvalidInput(
            f"group {row.missing[0]!r} is not a group of status page {status_page_id!r}"
        )
    return list(row.component_ids)


@attrs.frozen
class _Members:
    missing: list[str]
    component_ids: list[str]


@operation(retry=True)
def recompute(*, repair: bool = False) -> Op[list[GroupDrift]]:
    """Every group whose status has drifted from its members'; corrected when `repair`.

    Like `status.recompute` (which, repairing, repairs the groups too): repairs are logged
    and announced, and take the lock that keeps every derivation out until the transaction ends.
    """
    params = {"repair": validate.flag("repair", repair)}
    return (yield from many("group_recompute", params, class_row(GroupDrift)))


@operation(retry=True)
def changes_for_group(group_id: str, *, limit: int = 1000) -> Op[list[GroupStatusChange]]:
    """A group's logged status changes, oldest first."""
    params = {
        "group_id": validate.identifier("group_id", group_id),
        "limit": validate.limit(limit, maximum=100_000),
    }
    return (yield from many("group_changes_for_group", params, class_row(GroupStatusChange)))


@attrs.frozen
class Following:
    """What a subscriber follows after `follow`: components and groups (both empty: all)."""

    subscriber_id: str
    group_ids: list[str]
    component_ids: list[str]
    is_active: bool


@operation(retry=True)
def follow(subscriber_id: str, group_ids: Sequence[str]) -> Op[Following]:
    """Make a subscriber follow these groups of its page (replacing the groups it followed).

    It is then told of every change of the groups' members, including members added later and
    members of their subgroups, besides the components it follows (`component_ids`). With no
    groups and no components it follows the whole page. InvalidInput for a group of another
    page (checked by the database, for plain-SQL writers too).
    """
    ids = validate.identifiers("group_ids", group_ids)
    if len(ids) > MAX_GROUP_IDS:
        raise InvalidInput(f"at most {MAX_GROUP_IDS} group ids")
    params = {
        "subscriber_id": validate.identifier("subscriber_id", subscriber_id),
        "group_ids": ids,
    }
    return (
        yield from one(
            "group_follow",
            params,
            class_row(Following),
            not_found=f"no subscriber with id {subscriber_id!r}",
        )
    )
