"""The worker benchmark (bench/worker.py) runs end to end, tiny and untimed, so that it does
not rot: its numbers come from `python -m bench.worker` (bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's bench/

from bench import worker

pytestmark = pytest.mark.slow


def test_worker_bench_runs_end_to_end(dsn: str) -> None:
    report = worker.measure(dsn, events=2, subscribers=20, repeat=1, processes=[1, 2])
    assert report["deliveries_per_run"] == 40
    assert set(report["processes"]) == {"1", "2"}
    assert all(r["median"] > 0 for r in report["processes"].values())
