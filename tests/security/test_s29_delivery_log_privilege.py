"""The backend cannot hide delivery failures by deleting them (issue 26, "also decide").

0019's comment said hiding failures is refused by privilege, yet granted DELETE on
delivery_attempt to statusdb_app. Retention (deliveries.purge) now runs as the owner.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo


def test_the_app_cannot_delete_delivery_attempts(dsn: str, app_login: str) -> None:
    with (
        psycopg.connect(make_conninfo(dsn, user=app_login)) as app,
        pytest.raises(pg_errors.InsufficientPrivilege),
    ):
        app.execute("DELETE FROM delivery_attempt")
