"""The machine's two states for latency cases: client and server backend on one CPU or on two.

A `SELECT 1` round trip on this 2-core VM takes ~24 us when the client process and its server
backend run on the same CPU (each wakes the other where it already is: the "fast" state) and
~60-100 us when they run on different CPUs (each wake-up crosses CPUs, often from idle: the
"slow" state). Left to the scheduler, a run lands in either state, or moves between them, and
every ratio to `SELECT 1` moves with it (bench/README.md, "Noise"). `pinned` makes the state
explicit: it pins the calling thread and the backends of the given connections with
`sched_setaffinity` (the backends belong to the `postgres` user: root may pin them), and
restores the previous affinities afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg


@dataclass(frozen=True)
class CpuState:
    """One placement: the CPU of the client thread and that of its server backends."""

    name: str
    client_cpu: int | None
    backend_cpu: int | None

    @property
    def label(self) -> str:
        if self.client_cpu is None:
            return self.name
        return f"{self.name}: client cpu {self.client_cpu}, backend cpu {self.backend_cpu}"


UNPINNED = CpuState("unpinned", None, None)


def states() -> list[CpuState]:
    """The fast and the slow state on this machine's first two CPUs (unpinned with one)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return [UNPINNED]
    first, second = cpus[0], cpus[1]
    return [CpuState("fast", first, first), CpuState("slow", first, second)]


def _local_backend(pid: int) -> bool:
    """True when `pid` is a PostgreSQL backend on this machine (not a remote server's pid)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres")
    except OSError:
        return False


@contextmanager
def pinned(state: CpuState, conns: Sequence[psycopg.Connection[Any]]) -> Iterator[CpuState]:
    """Run the block in `state`; yields the state actually in force (UNPINNED when the client
    cannot pin: another user's backends without root, a remote server)."""
    if state.client_cpu is None or state.backend_cpu is None:
        yield UNPINNED
        return
    pids = [conn.info.backend_pid for conn in conns]
    if not all(_local_backend(pid) for pid in pids):
        yield UNPINNED
        return
    saved = {0: os.sched_getaffinity(0)}
    try:
        for pid in pids:
            saved[pid] = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, {state.backend_cpu})
        os.sched_setaffinity(0, {state.client_cpu})
    except OSError:  # not allowed to pin (not root), or the backend is gone
        _restore(saved)
        yield UNPINNED
        return
    try:
        yield state
    finally:
        _restore(saved)


def _restore(saved: dict[int, set[int]]) -> None:
    for pid, cpus in saved.items():
        with contextlib.suppress(OSError):  # the backend ended
            os.sched_setaffinity(pid, cpus)
