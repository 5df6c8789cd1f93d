"""`statusdb demo`: placeholder until the repository lands."""

from __future__ import annotations

import psycopg


def run(conn: psycopg.Connection[object]) -> None:
    """Tell the demo story on an already migrated database."""
    print("statusdb demo: not written yet")
