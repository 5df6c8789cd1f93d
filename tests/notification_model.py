"""An independent model of the notification folding rule (issue 27.3, docs/notifications.md).

A *change* is what happened, in the words subscribers choose with `notify_on`: a component
flip (`degraded`, `outage`, `maintenance`, `resolved`), an event (`incident_created`, ...,
`maintenance_completed`), or a flip together with the one event that tells of it. The rule:

* an event reaches every subscriber wanting its kind, once, however many flips it tells of;
* a flip told by an event reaches those wanting the flip's kind and not the event's;
* a flip no event tells of reaches those wanting its kind;
* a muted change (a window with notify_subscribers off) reaches nobody.

So a subscriber who wants any kind of a change hears of it exactly once (`told_once`). Which
flips an event tells of is the catalogue `CHANGES` (the rows of the table in the docs,
`markdown_table`): the database decides it from the cause of the flip (statusdb/db/sql/outbox.sql,
outbox_claim), the model from what the scenario did. `python tests/notification_model.py` prints
the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FLIP_KINDS = ("degraded", "outage", "maintenance", "resolved")
INCIDENT_KINDS = ("incident_created", "incident_updated", "incident_resolved", "incident_reopened")
MAINTENANCE_KINDS = (
    "maintenance_scheduled",
    "maintenance_rescheduled",
    "maintenance_cancelled",
    "maintenance_reminder",
    "maintenance_started",
    "maintenance_completed",
)
KINDS = FLIP_KINDS + INCIDENT_KINDS + MAINTENANCE_KINDS

TABLE_BEGIN = "<!-- folding table: generated from tests/notification_model.py -->"
TABLE_END = "<!-- end of folding table -->"


@dataclass(frozen=True)
class Flip:
    """A component's status change: its `notify_on` kind, and the event telling of it, if any."""

    kind: str
    told_by: str | None = None


@dataclass(frozen=True)
class Step:
    """What one action did: its events (each sent once) and its flips."""

    events: tuple[str, ...] = ()
    flips: tuple[Flip, ...] = ()
    muted: bool = False

    def __post_init__(self) -> None:
        for flip in self.flips:
            assert flip.kind in FLIP_KINDS, flip
            assert flip.told_by is None or flip.told_by in self.events, flip
        assert all(e in INCIDENT_KINDS + MAINTENANCE_KINDS for e in self.events)


def messages(notify_on: Iterable[str], step: Step) -> Counter[str]:
    """The messages (by kind) a subscriber wanting `notify_on` gets for `step`."""
    wanted = set(notify_on)
    got: Counter[str] = Counter()
    if step.muted:
        return got
    for event in step.events:
        if event in wanted:
            got[event] += 1
    for flip in step.flips:
        if flip.kind in wanted and not (flip.told_by is not None and flip.told_by in wanted):
            got[flip.kind] += 1
    return got


def told_once(notify_on: Iterable[str], step: Step, got: Counter[str]) -> bool:
    """Whether `got` tells the subscriber of every change of `step` it asked for (the flip's
    kind or its event's) exactly once, and of nothing else: each wanted event once; each
    asked-for flip by its event if that was delivered, else by a message of its own, never by
    both."""
    wanted = set(notify_on)
    if step.muted:
        return not got
    if any(kind not in wanted for kind in got):
        return False
    if any(got[event] != (event in wanted) for event in step.events):
        return False
    own: Counter[str] = Counter()
    for flip in step.flips:
        asked = flip.kind in wanted or flip.told_by in wanted
        if asked and not (flip.told_by is not None and got[flip.told_by] == 1):
            own[flip.kind] += 1  # nothing else tells of it: it needs a message of its own
    return all(got[kind] == own[kind] for kind in FLIP_KINDS)


@dataclass(frozen=True)
class Change:
    """A row of the table: a change, and the flip and event it is made of."""

    what: str
    flip: str | None = None
    event: str | None = None
    note: str = ""
    examples: Sequence[str] = field(default=())

    @property
    def step(self) -> Step:
        flips = () if self.flip is None else (Flip(self.flip, self.event),)
        return Step(events=() if self.event is None else (self.event,), flips=flips)


_DOWN = "`degraded` or `outage`"
CHANGES: tuple[Change, ...] = (
    Change(
        "A component set by hand (`components.set_status`)", f"{_DOWN}, `maintenance`, `resolved`"
    ),
    Change(
        "A platform incident takes a component down; a status incident publishing it and "
        "covering the component (or the whole page) is created in the hold-down window",
        _DOWN,
        "incident_created",
    ),
    Change(
        "The platform incident's priority changes (down to down)",
        _DOWN,
        None,
        "not told by an incident event",
    ),
    Change(
        "The platform incident resolves and the status incident is (or becomes, in the "
        "hold-down window) RESOLVED",
        "`resolved`",
        "incident_resolved",
    ),
    Change(
        "The platform incident resolves while the status incident stays open",
        "`resolved`",
        None,
        "its later resolution is a change of its own",
    ),
    Change(
        "The platform incident re-opens with its status incident",
        _DOWN,
        "incident_reopened",
    ),
    Change(
        "A platform incident no status incident publishes (or one published after the flip was "
        "sent) opens or resolves",
        f"{_DOWN}, `resolved`",
        None,
    ),
    Change("A status incident is created (no flip it tells of)", None, "incident_created"),
    Change("A timeline entry is appended (a closing note too)", None, "incident_updated"),
    Change("A status incident is resolved (no flip it tells of)", None, "incident_resolved"),
    Change("A status incident re-opens (no flip it tells of)", None, "incident_reopened"),
    Change("A window is scheduled", None, "maintenance_scheduled"),
    Change("A window is moved", None, "maintenance_rescheduled"),
    Change("A reminder is due", None, "maintenance_reminder"),
    Change("A scheduled window is cancelled", None, "maintenance_cancelled"),
    Change(
        "A window starts (auto_update_status: its components go UNDER_MAINTENANCE)",
        "`maintenance`",
        "maintenance_started",
    ),
    Change(
        "A window ends (its components come back)",
        "`resolved` (or the status beneath)",
        "maintenance_completed",
    ),
    Change(
        "A running window is cancelled (its components come back)",
        "`resolved` (or the status beneath)",
        "maintenance_cancelled",
    ),
    Change(
        "A window without auto_update_status starts or ends",
        None,
        "maintenance_started, maintenance_completed",
    ),
    Change(
        "A component is linked to (or unlinked from) a running window",
        "`maintenance` (`resolved`)",
        None,
        "no event covers it",
    ),
    Change("Anything of a window with notify_subscribers off (muted)", None, None),
)


def _rule(change: Change) -> str:
    """The model's answer for a row, said in words, checked against `messages`."""
    if change.flip is None and change.event is None:
        return "nothing, to anyone"
    if change.flip is None:
        return f"`{change.event}` to those wanting it"
    if change.event is None:
        return "the flip to those wanting its kind"
    # Check the words against the model on one flip kind.
    step = Step(events=(change.event,), flips=(Flip("outage", change.event),))
    assert messages({"outage", change.event}, step) == Counter({change.event: 1})
    assert messages({change.event}, step) == Counter({change.event: 1})
    assert messages({"outage"}, step) == Counter({"outage": 1})
    assert messages({"resolved"}, step) == Counter()
    return (
        f"`{change.event}` to those wanting it; the flip to those wanting its kind and "
        f"not `{change.event}`"
    )


def markdown_table() -> str:
    """The notify_on x change table of docs/notifications.md."""
    lines = [
        TABLE_BEGIN,
        "| change | flip (`notify_on` kind) | event | who hears of it, once |",
        "| --- | --- | --- | --- |",
    ]
    for change in CHANGES:
        event = (
            ""
            if change.event is None
            else ", ".join(f"`{e.strip()}`" for e in change.event.split(","))
        )
        rule = (
            _rule(change)
            if "," not in (change.event or "")
            else ("each event to those wanting its kind")
        )
        if change.note:
            rule += f" ({change.note})"
        lines.append(f"| {change.what} | {change.flip or ''} | {event} | {rule} |")
    lines.append(TABLE_END)
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
