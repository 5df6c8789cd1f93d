"""Deliverers for the `statusdb worker` subprocess tests (tests/test_worker.py).

They append one line per delivery to the file named by $WORKER_TEST_LOG ("start <key>" when a
delivery begins, "done <key>" when it succeeded): O_APPEND writes of one short line are atomic,
so several worker processes may share the file. $WORKER_TEST_DELAY (seconds) slows each one.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

from statusdb.domain.types import Notification
from statusdb.workers.outbox import Recipient


def _write(line: str) -> None:
    fd = os.open(os.environ["WORKER_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _delay() -> float:
    return float(os.environ.get("WORKER_TEST_DELAY", "0"))


def record(notification: Notification, recipient: Recipient, key: str) -> None:
    """Sync: log start, sleep, log done."""
    _write(f"start {key}")
    time.sleep(_delay())
    _write(f"done {key}")


async def slow(notification: Notification, recipient: Recipient, key: str) -> None:
    """Async: log start, sleep, log done."""
    _write(f"start {key}")
    await asyncio.sleep(_delay())
    _write(f"done {key}")


def failing(notification: Notification, recipient: Recipient, key: str) -> None:
    """Fails every delivery, with the destination in the message (the log must cut it out)."""
    raise ConnectionError(f"could not reach {recipient.destination}")


def batch(
    notification: Notification, pairs: Sequence[tuple[Recipient, str]]
) -> list[BaseException | None]:
    """The batch form: every pair delivered."""
    for _recipient, key in pairs:
        _write(f"done {key}")
    return [None] * len(pairs)
