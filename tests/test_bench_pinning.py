"""The benchmark's CPU states (bench/pinning.py): the client thread and a connection's backend
are pinned as the state says and given back their affinities after, and a placement that
cannot be made is reported as unpinned rather than measured under a wrong name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's bench/

from bench import pinning

Conn = psycopg.Connection[TupleRow]


def test_states_name_one_cpu_then_two() -> None:
    states = pinning.states()
    if len(os.sched_getaffinity(0)) < 2:
        assert states == [pinning.UNPINNED]
        return
    fast, slow = states
    assert (fast.name, slow.name) == ("fast", "slow")
    assert fast.client_cpu == fast.backend_cpu == slow.client_cpu
    assert slow.backend_cpu != slow.client_cpu


def test_pinned_pins_and_restores_the_client_and_the_backend(conn: Conn) -> None:
    if len(os.sched_getaffinity(0)) < 2 or os.geteuid() != 0:
        pytest.skip("needs two CPUs and root (the backend is the postgres user's)")
    backend = conn.info.backend_pid
    client_before, backend_before = os.sched_getaffinity(0), os.sched_getaffinity(backend)
    for wanted in pinning.states():
        with pinning.pinned(wanted, [conn]) as state:
            assert state == wanted
            assert os.sched_getaffinity(0) == {wanted.client_cpu}
            assert os.sched_getaffinity(backend) == {wanted.backend_cpu}
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert os.sched_getaffinity(0) == client_before
        assert os.sched_getaffinity(backend) == backend_before


def test_a_placement_that_cannot_be_made_is_unpinned(conn: Conn) -> None:
    with pinning.pinned(pinning.UNPINNED, [conn]) as state:
        assert state == pinning.UNPINNED
    # A pid that is no local PostgreSQL backend (a remote server's): never pinned.
    impossible = pinning.CpuState("fast", 0, 0)
    with pinning.pinned(impossible, [_RemoteLike()]) as state:  # type: ignore[list-item]
        assert state == pinning.UNPINNED


class _RemoteLike:
    """A connection whose backend pid is not a process of this machine's PostgreSQL."""

    class info:  # psycopg's attribute name
        backend_pid = os.getpid()  # this test's own process: not a postgres backend
