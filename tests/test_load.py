"""A bounded mixed load (bench/load.py, ~10 s here; longer with `python -m bench.load`).

Several connections at once on loopback: page views, incident churn, status updates,
subscribes and two outbox workers. Afterwards: no worker saw an error, statuses have zero drift
from a from-scratch derivation, the status-change log chains, and every status change was
completed exactly once, with none pending after a final drain (hold_down=0).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's bench/

from bench import load

pytestmark = pytest.mark.slow

#: Seconds of load; STATUSDB_LOAD_SECONDS=60 for a longer soak. 5 s in `make test` (it was 10):
#: every kind of operation still runs hundreds of times and every invariant is checked the same.
SECONDS = float(os.environ.get("STATUSDB_LOAD_SECONDS", "5"))


def test_mixed_load_keeps_every_invariant(dsn: str) -> None:
    report = load.run(dsn, seconds=SECONDS)
    print(report.table())
    assert report.errors == []
    assert report.drift == []
    assert report.chain_breaks == []
    assert report.status_changes > 0
    assert report.completed_twice == []
    assert report.never_completed == 0
    assert report.pending_after_drain == 0
    assert report.deliveries > 0
    for kind in ("page view", "incident open", "status update", "subscribe", "outbox claim"):
        assert report.operations.get(kind, 0) > 0, kind
    assert report.ok


def test_an_idle_run_is_consistent_too(dsn: str) -> None:
    """No load: nothing to drain, and every check holds on the set-up world alone."""
    report = load.run(dsn, seconds=0, shape=load.Shape(pages=2, subscribers_per_page=2))
    assert report.ok
