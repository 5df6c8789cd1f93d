"""Rollback guards count every value a rollback changes, not only rows that exist now
(issue 26 item 10).

After a retention DELETE of a subscriber's delivery attempts, rolling 0022 back to 0017 went
ahead without --allow-data-loss, and migrating again reset the subscriber's failure count and
widened its notify_on ({outage, incident_created} came back with all four incident kinds).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import new_page

from statusdb import migrations, subscribers, teams


def _rollback_to_0017(dsn: str) -> list[str]:
    applied = [name for name, done in migrations.status(dsn) if done]
    steps = len(applied) - applied.index("0018_notification_events")
    return migrations.rollback(dsn, steps)


def _subscriber(dsn: str) -> str:
    migrations.apply(dsn)
    with psycopg.connect(dsn) as c:
        team = teams.create(c, name=f"T-{uuid.uuid4().hex[:8]}")
        page = new_page(c, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
        made = subscribers.subscribe(
            c, page.id, channel="WEBHOOK", destination="https://hooks.example.com/x"
        )
        return made.subscriber.id


def test_a_failure_count_is_not_reset_by_a_round_trip(empty_dsn: str) -> None:
    subscriber_id = _subscriber(empty_dsn)
    with psycopg.connect(empty_dsn) as c:
        c.execute(
            "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome)"
            " VALUES ('k', %s, 1, 'FAILED_PERMANENT')",
            (subscriber_id,),
        )
        c.execute("DELETE FROM delivery_attempt")  # retention
        row = c.execute(
            "SELECT consecutive_permanent_failures FROM status_subscriber WHERE id = %s",
            (subscriber_id,),
        ).fetchone()
        assert row == (1,)
    with pytest.raises(migrations.MigrationError, match="consecutive failures"):
        _rollback_to_0017(empty_dsn)


def test_a_choice_of_kinds_is_not_widened_by_a_round_trip(empty_dsn: str) -> None:
    subscriber_id = _subscriber(empty_dsn)
    with psycopg.connect(empty_dsn) as c:
        c.execute(
            "UPDATE status_subscriber SET notify_on = '{outage,incident_created}' WHERE id = %s",
            (subscriber_id,),
        )
    with pytest.raises(migrations.MigrationError, match="a rollback and migrate again"):
        _rollback_to_0017(empty_dsn)
