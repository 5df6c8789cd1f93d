"""The surge benchmark (bench/surge.py) runs end to end, tiny and untimed, so that it does not rot.

Its numbers come from `make bench`; here only that every part works: readers through a pool
(a private page with its token among them), the paced writer's incident cycles, and the mode
with conditional reads where this tree has them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's bench/

from bench import surge

pytestmark = pytest.mark.slow


def test_surge_runs_end_to_end(dsn: str) -> None:
    targets = surge.make_targets(dsn, pages_count=2)
    assert any(t.token is not None for t in targets)  # a private page is read with its token
    for mode in surge.modes():
        result = surge.run(
            dsn,
            targets,
            mode=mode,
            clients=5,
            processes=1,
            pool_size=2,
            seconds=1.0,
            writes_per_s=30.0,
        )
        assert result.errors == ()
        assert result.requests > 0
        assert result.writes > 0
        assert 0 < result.p50_us <= result.p99_us
        # The writer under real-time priority where it may be (root, a local server), and
        # its wait for a CPU measured (schedstat), so a run shows whether it kept its pace.
        assert result.writer_realtime == (os.geteuid() == 0)
        assert result.writer_run_queue_s is not None
        assert result.writer_run_queue_s >= 0
        if mode == "full":
            assert result.not_modified == 0
        else:
            assert result.not_modified > 0
    with psycopg.connect(dsn) as conn:
        # Every cycle the writer started was finished: nothing stays open on the pages.
        open_incidents = conn.execute(
            "SELECT count(*) FROM incident WHERE status IN ('OPEN', 'ACKNOWLEDGED')"
        ).fetchone()
        active = conn.execute(
            "SELECT count(*) FROM status_incident WHERE status <> 'RESOLVED'"
        ).fetchone()
    assert open_incidents == (0,)
    assert active == (0,)
