"""Rollbacks that silently lose or re-arm data.

An operator runs `statusdb rollback` (then, typically, `migrate` again). A rollback that would
drop rows or columns holding data, or make the next `migrate` re-arm or re-send something, must
refuse while the affected tables hold such rows, say what would be lost, and go ahead only with
`--allow-data-loss` (the setting statusdb.allow_data_loss = on for the migration connection).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import components, incidents, pages, status_incidents, subscribers, teams
from statusdb.infra import migrations
from statusdb.pages import NewComponent
from statusdb.tooling import cli

pytestmark = pytest.mark.slow


@pytest.fixture
def migrated_dsn(fresh_dsn: str) -> str:
    """A database with every migration applied: a clone of the session's migrated template,
    the same as `migrations.apply` on an empty database (yoyo's tables included), without
    applying all of them again for each test."""
    return fresh_dsn


def _applied(dsn: str) -> list[str]:
    return [name for name, done in migrations.status(dsn) if done]


def _refuses_at(dsn: str, migration_id: str, *words: str) -> None:
    """Rolling everything back stops at `migration_id`, whose message names `words`."""
    with pytest.raises(migrations.MigrationError) as refused:
        migrations.rollback(dsn)
    message = str(refused.value)
    assert f"could not roll back migration {migration_id}" in message
    assert "--allow-data-loss" in message
    for word in words:
        assert word in message
    assert migration_id in _applied(dsn)


def _page(conn: psycopg.Connection[TupleRow], components: Sequence[NewComponent] = ()) -> str:
    team = teams.create(conn, name="T")
    page_id: str = new_page(conn, team.id, slug="p", created_by_id="u", components=components).id
    return page_id


def _forget_notifications(conn: psycopg.Connection[TupleRow]) -> None:
    """Drop the notification events a test's windows wrote (at commit), so that the rollback
    of 0018 (which refuses while events exist) lets the test reach the migration it is about."""
    conn.commit()
    conn.execute("DELETE FROM notification_event")


def test_rollback_of_0018_does_not_silently_drop_notifications(migrated_dsn: str) -> None:
    """Rolling 0018 back drops pending notifications (never delivered), reminder lead times and
    the choice of subscribers who want only incident or maintenance events."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c)
        c.execute(
            "INSERT INTO status_incident (status_page_id, title, severity)"
            " VALUES (%s, 'x', 'MINOR')",
            (page_id,),
        )
        c.execute(
            """INSERT INTO status_subscriber (status_page_id, channel, destination, notify_on,
                                              is_verified)
               VALUES (%s, 'WEBHOOK', 'https://hooks.example.com/x', '{incident_resolved}',
                       true)""",
            (page_id,),
        )
    _refuses_at(
        migrated_dsn, "0018_notification_events", "notification_event", "1 pending", "1 subscribers"
    )
    assert _rollback_down_to(migrated_dsn, "0018_notification_events", allow_data_loss=True)[
        -1
    ] == ("0018_notification_events")
    with psycopg.connect(migrated_dsn) as c:
        # Mapped back to the component kinds its choice stands for, not dropped.
        assert c.execute("SELECT notify_on FROM status_subscriber").fetchone() == (
            ["degraded", "outage", "resolved"],
        )


def test_rollback_of_0006_does_not_make_history_pending_again(migrated_dsn: str) -> None:
    """Rollback + migrate of 0006 makes notified changes pending: workers re-notify history."""
    with psycopg.connect(migrated_dsn) as c:
        team = teams.create(c, name="T")
        pages.create(
            c,
            team_id=team.id,
            name="P",
            slug="p",
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API", team_id=team.id)],
        )
        incidents.create(c, team.id, title="down", priority="CRITICAL")
        c.execute("UPDATE status_change SET notified_at = now(), outcome = 'NOTIFIED'")
    _refuses_at(migrated_dsn, "0006_notification_outbox", "status_change", "1 ")
    with psycopg.connect(migrated_dsn) as c:
        assert c.execute(
            "SELECT count(*) FROM status_change WHERE notified_at IS NOT NULL"
        ).fetchone() == (1,)


def test_rollback_of_0005_does_not_rearm_expired_verification_tokens(migrated_dsn: str) -> None:
    """Rollback + migrate of 0005 re-arms expired verification tokens, drops unsubscribe ones."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c)
        sub = subscribers.subscribe(
            c,
            page_id,
            channel="EMAIL",
            destination="a@example.com",
            verify_ttl=dt.timedelta(seconds=1),
        )
        c.execute("UPDATE status_subscriber SET verify_token_expires_at = now() - interval '1 day'")
        assert sub.verify_token is not None
    _refuses_at(migrated_dsn, "0005_subscriber_tokens", "status_subscriber")
    with psycopg.connect(migrated_dsn) as c:
        assert c.execute(
            "SELECT verify_token_expires_at < now(), unsubscribe_token_hash IS NOT NULL"
            " FROM status_subscriber"
        ).fetchone() == (True, True)


def test_rollback_of_0004_does_not_lose_time_zones(migrated_dsn: str) -> None:
    """Rolling 0004 back loses windows' time zones (series recur in UTC) and first occurrences."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c)
        c.execute(
            """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                   recurrence_rule, recurrence_start, time_zone, created_by_id)
               VALUES (%s, 'weekly', now() + interval '7 days', now() + interval '7 days 1 hour',
                       'FREQ=WEEKLY', now(), 'Europe/Berlin', 'u')""",
            (page_id,),
        )
        _forget_notifications(c)
    _refuses_at(migrated_dsn, "0004_maintenance_schedule", "maintenance_window", "time zone")


def test_rollback_of_0003_does_not_lose_manual_statuses_or_the_log(migrated_dsn: str) -> None:
    """Rolling 0003 back drops manual statuses and the status-change log."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c, components=[NewComponent(name="Docs")])
        (docs,) = components.list_for_page(c, page_id)
        components.set_status(c, docs.id, "PARTIAL_OUTAGE")
    _refuses_at(migrated_dsn, "0003_status_derivation", "manual_status", "status_change")


def test_rollback_of_0002_and_0001_does_not_drop_tables_with_rows(migrated_dsn: str) -> None:
    """Rolling 0002/0001 back drops pages, teams and incidents that hold rows."""
    with psycopg.connect(migrated_dsn) as c:
        _page(c)
    _refuses_at(migrated_dsn, "0002_status_pages", "status_page")
    with psycopg.connect(migrated_dsn) as c:
        c.execute("DELETE FROM status_page")
    _refuses_at(migrated_dsn, "0001_platform_core", "team")


def test_the_flag_lets_the_operator_lose_the_data(
    migrated_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal is a safety catch: `--allow-data-loss` (or the setting) rolls back."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c, components=[NewComponent(name="Docs")])
        (docs,) = components.list_for_page(c, page_id)
        components.set_status(c, docs.id, "PARTIAL_OUTAGE")
        subscribers.subscribe(c, page_id, channel="EMAIL", destination="a@example.com")
        c.execute("UPDATE status_change SET notified_at = now(), outcome = 'NOTIFIED'")
    assert cli.main(["rollback", "--all", "--dsn", migrated_dsn]) == 1
    err = capsys.readouterr().err
    assert "would lose" in err
    assert "--allow-data-loss" in err
    applied = _applied(migrated_dsn)
    # Only the migrations that lose nothing were rolled back before the refusal.
    assert "0006_notification_outbox" in applied
    # Plain yoyo users pass the setting through libpq's PGOPTIONS.
    monkeypatch.setenv("PGOPTIONS", "-c statusdb.allow_data_loss=on")
    assert migrations.rollback(migrated_dsn, 1) == ["0006_notification_outbox"]
    monkeypatch.delenv("PGOPTIONS")
    assert cli.main(["rollback", "--all", "--allow-data-loss", "--dsn", migrated_dsn]) == 0
    assert _applied(migrated_dsn) == []
    migrations.apply(migrated_dsn)
    # An options= already in the connection string is kept, the setting added to it.
    with psycopg.connect(migrated_dsn) as c:
        _page(c)
    rolled = migrations.rollback(
        f"{migrated_dsn} options='-c statement_timeout=600000'", allow_data_loss=True
    )
    assert rolled[-1] == "0001_platform_core"


def test_rollback_of_0014_does_not_silently_lock_private_pages(migrated_dsn: str) -> None:
    """Rolling 0014 back leaves private pages' stored values unusable: their tokens stop working."""
    with psycopg.connect(migrated_dsn) as c:
        team = teams.create(c, name="T")
        pages.create(c, team_id=team.id, name="P", slug="p", created_by_id="u", is_public=False)
    applied = _applied(migrated_dsn)
    steps = len(applied) - applied.index("0014_page_view_bounds")  # and what sits on top of it
    with pytest.raises(migrations.MigrationError, match="1 private pages") as refused:
        migrations.rollback(migrated_dsn, steps)
    assert "could not roll back migration 0014_page_view_bounds" in str(refused.value)
    # The migrations on top of 0014 lose nothing here and were rolled back before the refusal.
    applied = _applied(migrated_dsn)
    assert applied[-1] == "0014_page_view_bounds"
    rolled = migrations.rollback(migrated_dsn, 1, allow_data_loss=True)
    assert rolled == ["0014_page_view_bounds"]


def _rollback_down_to(dsn: str, migration_id: str, *, allow_data_loss: bool = False) -> list[str]:
    applied = _applied(dsn)
    steps = len(applied) - applied.index(migration_id)
    return migrations.rollback(dsn, steps, allow_data_loss=allow_data_loss)


def test_rollback_of_0013_does_not_silently_drop_the_allow_list(migrated_dsn: str) -> None:
    """Rolling 0013 back drops the DBA's SSRF allow-list entries."""
    with psycopg.connect(migrated_dsn) as c:
        c.execute("INSERT INTO destination_allowlist (host_name, reason) VALUES ('a.corp', 'x')")
    with pytest.raises(migrations.MigrationError, match="1 entries") as refused:
        _rollback_down_to(migrated_dsn, "0013_destination_policy")
    assert "could not roll back migration 0013_destination_policy" in str(refused.value)
    assert "--allow-data-loss" in str(refused.value)
    assert _rollback_down_to(migrated_dsn, "0013_destination_policy", allow_data_loss=True)[-1] == (
        "0013_destination_policy"
    )


def test_rollback_of_0015_does_not_silently_move_gap_series_or_drop_scheduler_errors(
    migrated_dsn: str,
) -> None:
    """Rolling 0015 back moves a series that starts at a skipped time by an hour, silently."""
    with psycopg.connect(migrated_dsn) as c:
        team = teams.create(c, name="T")
        page = pages.create(c, team_id=team.id, name="P", slug="p", created_by_id="u")
        c.execute(
            """INSERT INTO maintenance_window (status_page_id, title, start_time, end_time,
                   created_by_id, recurrence_rule, time_zone, recurrence_start,
                   recurrence_local_start)
               VALUES (%s, 'gap', '2035-03-25 01:30+00', '2035-03-25 02:30+00', 'u',
                       'FREQ=DAILY', 'Europe/Berlin', '2035-03-25 01:30+00',
                       '2035-03-25 02:30')""",
            (page.page.id,),
        )
        _forget_notifications(c)
    with pytest.raises(migrations.MigrationError, match="1 recurring windows") as refused:
        _rollback_down_to(migrated_dsn, "0015_maintenance_time")
    assert "could not roll back migration 0015_maintenance_time" in str(refused.value)
    assert _rollback_down_to(migrated_dsn, "0015_maintenance_time", allow_data_loss=True)[-1] == (
        "0015_maintenance_time"
    )


def test_rollback_of_0019_does_not_silently_drop_templates_or_the_delivery_log(
    migrated_dsn: str,
) -> None:
    """Rolling 0019 back drops templates, the delivery log and why subscribers were deactivated."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c)
        c.execute(
            "INSERT INTO status_incident_template (status_page_id, name, title, message, severity)"
            " VALUES (%s, 'n', 't', 'm', 'MINOR')",
            (page_id,),
        )
        made = subscribers.subscribe(
            c, page_id, channel="WEBHOOK", destination="https://hooks.example.com/x"
        )
        for key in ("a", "b", "c"):
            c.execute(
                "INSERT INTO delivery_attempt (notification_key, subscriber_id, attempt, outcome)"
                " VALUES (%s, %s, 1, 'FAILED_PERMANENT')",
                (key, made.subscriber.id),
            )
    with pytest.raises(migrations.MigrationError, match="has 1 rows") as refused:
        _rollback_down_to(migrated_dsn, "0019_templates_and_deliveries")
    message = str(refused.value)
    assert "could not roll back migration 0019_templates_and_deliveries" in message
    assert "3 rows" in message
    assert "1 subscribers were deactivated" in message
    assert _rollback_down_to(migrated_dsn, "0019_templates_and_deliveries", allow_data_loss=True)[
        -1
    ] == ("0019_templates_and_deliveries")


def test_rollback_of_0021_does_not_silently_drop_page_time_zones(migrated_dsn: str) -> None:
    """Rolling 0021 back drops the pages' time zones: their daily bars would count UTC days."""
    with psycopg.connect(migrated_dsn) as c:
        team = teams.create(c, name="T")
        pages.create(
            c, team_id=team.id, name="P", slug="p", created_by_id="u", time_zone="Europe/Berlin"
        )
    with pytest.raises(migrations.MigrationError, match="1 status pages") as refused:
        _rollback_down_to(migrated_dsn, "0021_page_time_zone_daily_uptime")
    assert "could not roll back migration 0021_page_time_zone_daily_uptime" in str(refused.value)
    assert "--allow-data-loss" in str(refused.value)
    assert _rollback_down_to(
        migrated_dsn, "0021_page_time_zone_daily_uptime", allow_data_loss=True
    )[-1] == ("0021_page_time_zone_daily_uptime")


def test_rollback_of_0020_does_not_silently_drop_groups_or_widen_followers(
    migrated_dsn: str,
) -> None:
    """Rolling 0020 back drops the component groups (membership, status log) and makes group
    followers follow every component of their page, silently."""
    with psycopg.connect(migrated_dsn) as c:
        team = teams.create(c, name="T")
        page = pages.create(c, team_id=team.id, name="P", slug="p", created_by_id="u")
        c.execute(
            "INSERT INTO component_group (status_page_id, name) VALUES (%s, 'G')", (page.page.id,)
        )
    with pytest.raises(migrations.MigrationError, match="component_group has 1 rows") as refused:
        _rollback_down_to(migrated_dsn, "0020_component_groups")
    assert "could not roll back migration 0020_component_groups" in str(refused.value)
    assert _rollback_down_to(migrated_dsn, "0020_component_groups", allow_data_loss=True)[-1] == (
        "0020_component_groups"
    )


def test_rollback_of_0022_does_not_silently_drop_page_history_or_postmortems(
    migrated_dsn: str,
) -> None:
    """Rolling 0022 back drops the page's past versions and postmortems, silently."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c)
        c.commit()
        pages.update(c, page_id, name="Renamed")  # a past version: the page as it was
    with pytest.raises(migrations.MigrationError, match="1 past versions") as refused:
        _rollback_down_to(migrated_dsn, "0022_page_history_postmortems")
    assert "could not roll back migration 0022_page_history_postmortems" in str(refused.value)
    assert "--allow-data-loss" in str(refused.value)
    rolled = _rollback_down_to(migrated_dsn, "0022_page_history_postmortems", allow_data_loss=True)
    assert rolled[-1] == "0022_page_history_postmortems"


def test_rollback_of_0025_does_not_silently_drop_postmortem_deletion_records(
    empty_dsn: str,
) -> None:
    """Rolling 0025 back drops the audit records (and text) of deleted postmortems, silently."""
    migrations.apply(empty_dsn)
    with psycopg.connect(empty_dsn) as c:
        page_id = _page(c)
        incident = status_incidents.create(c, page_id, title="Down", severity="MAJOR", message="m")
        status_incidents.add_update(c, incident.id, status="RESOLVED", message="ok")
        status_incidents.publish_postmortem(c, incident.id, body="A disk.", written_by_id="u")
        c.commit()
        status_incidents.delete(c, incident.id)  # the owner may: an audit record
    with pytest.raises(migrations.MigrationError, match="1 audit records") as refused:
        _rollback_down_to(empty_dsn, "0025_history_bounds")
    assert "could not roll back migration 0025_history_bounds" in str(refused.value)
    assert "--allow-data-loss" in str(refused.value)
    rolled = _rollback_down_to(empty_dsn, "0025_history_bounds", allow_data_loss=True)
    assert rolled == ["0025_history_bounds"]


def test_rollback_of_0031_does_not_silently_drop_live_idempotency_keys(migrated_dsn: str) -> None:
    """Rolling 0031 back drops the idempotency keys: a write retried with one of the last 24
    hours would be applied twice."""
    with psycopg.connect(migrated_dsn) as c:
        page_id = _page(c)
        status_incidents.create(
            c, page_id, title="x", severity="MINOR", message="m", idempotency_key="k"
        )
    with pytest.raises(migrations.MigrationError, match="1 keys") as refused:
        _rollback_down_to(migrated_dsn, "0031_idempotency_keys")
    assert "--allow-data-loss" in str(refused.value)
    assert _rollback_down_to(migrated_dsn, "0031_idempotency_keys", allow_data_loss=True) == [
        "0031_idempotency_keys"
    ]
