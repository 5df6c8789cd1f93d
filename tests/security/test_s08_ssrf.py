"""Server-side request forgery through SLACK and WEBHOOK destinations.

statusdb's deliverer POSTs to every verified SLACK/WEBHOOK destination, so a subscriber whose URL
names an internal host (cloud metadata, loopback, private networks) turns the deliverer against
the deployment's own network. Refused by default, through the repository and through plain SQL
as statusdb_app alike, with an owner-only allow-list; Python and the database agree on one
shared corpus (tests/destination_corpus.json).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from factories import ensure_login
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import pages, subscribers, teams
from statusdb.domain import destinations
from statusdb.errors import InvalidInput
from statusdb.subscribers import ImportRow
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]

CORPUS: Final[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "destination_corpus.json").read_text(encoding="utf-8")
)
APP_LOGIN: Final = "statusdb_s08_app"
READER_LOGIN: Final = "statusdb_s08_reader"
REFUSALS: Final = (
    "status_subscriber_destination_ssrf_check",
    "status_subscriber_destination_format_check",
    "status_subscriber_destination_check",
)


@pytest.fixture
def app(dsn: str, cluster: LocalCluster) -> Iterator[Conn]:
    """A connection as a member of statusdb_app, the SQL door an attacker would use."""
    ensure_login(cluster, APP_LOGIN, "statusdb_app")
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN)) as connection:
        yield connection


@pytest.fixture
def page_id(conn: Conn) -> str:
    team = teams.create(conn, name="SRE")
    page = pages.create(conn, team_id=team.id, name="P", slug="p", created_by_id="u").page
    conn.commit()
    return page.id


def _sql_accepts(app: Conn, page_id: str, url: str) -> bool:
    """Whether a plain INSERT as statusdb_app stores `url` as a verified WEBHOOK."""
    try:
        with app.transaction():
            app.execute(
                "INSERT INTO status_subscriber (status_page_id, channel, destination, is_verified)"
                " VALUES (%s, 'WEBHOOK', %s, true)",
                (page_id, url),
            )
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name not in REFUSALS:
            raise
        return False
    return True


def _python_accepts(url: str, allow: destinations.AllowList = destinations.NOTHING_ALLOWED) -> bool:
    try:
        destinations.normalize("WEBHOOK", url, allow=allow)
    except InvalidInput:
        return False
    return True


def _allow(conn: Conn, entry: str) -> None:
    """Add an allow-list entry, as the DBA (the owner) would."""
    column = (
        "network"
        if any(ch.isdigit() for ch in entry.split(".")[-1]) or ":" in entry
        else "host_name"
    )
    conn.execute(
        sql.SQL("INSERT INTO destination_allowlist ({}, reason) VALUES (%s, 'test')").format(
            sql.Identifier(column)
        ),
        (entry,),
    )
    conn.commit()


def test_internal_urls_are_refused_by_the_repository(conn: Conn, page_id: str) -> None:
    """Subscribing https://169.254.169.254/, https://127.0.0.1/, ... is accepted and verified."""
    for url in CORPUS["bad"]:
        for channel in ("SLACK", "WEBHOOK"):
            with pytest.raises(InvalidInput):
                subscribers.subscribe(conn, page_id, channel=channel, destination=url)
            conn.rollback()


def test_python_and_sql_agree_on_the_corpus(app: Conn, page_id: str) -> None:
    """A SQL client (statusdb_app) stores internal URLs that the repository would refuse."""
    disagreements = []
    for url in CORPUS["bad"] + CORPUS["good"]:
        expected = url in CORPUS["good"]
        python, database = _python_accepts(url), _sql_accepts(app, page_id, url)
        if not python == database == expected:
            disagreements.append((url, python, database))
    assert disagreements == []


def test_updates_cannot_point_a_subscriber_inside(app: Conn, page_id: str) -> None:
    """UPDATE status_subscriber SET destination = 'https://127.0.0.1/' as statusdb_app."""
    (sub_id,) = app.execute(
        "INSERT INTO status_subscriber (status_page_id, channel, destination, is_verified)"
        " VALUES (%s, 'SLACK', 'https://hooks.example.com/x', true) RETURNING id",
        (page_id,),
    ).fetchone() or ("",)
    app.commit()
    for statement, params in [
        (
            "UPDATE status_subscriber SET destination = %s WHERE id = %s",
            ("https://127.0.0.1/", sub_id),
        ),
        (
            "UPDATE status_subscriber SET channel = 'WEBHOOK', destination = %s WHERE id = %s",
            ("https://[::1]/", sub_id),
        ),
        (
            "INSERT INTO status_subscriber (status_page_id, channel, destination)"
            " VALUES (%s, 'SLACK', 'https://hooks.example.com/x')"
            " ON CONFLICT (status_page_id, channel, destination)"
            " DO UPDATE SET destination = 'https://10.0.0.5/'",
            (page_id,),
        ),
    ]:
        with pytest.raises(psycopg.errors.CheckViolation) as info:
            app.execute(statement, params)
        assert info.value.diag.constraint_name == "status_subscriber_destination_ssrf_check"
        app.rollback()


def test_allow_list_lets_chosen_internal_hosts_through(conn: Conn, app: Conn, page_id: str) -> None:
    """A deployment that posts to internal hosts on purpose cannot list them."""
    for case in CORPUS["allowed_with"] + CORPUS["never"]:
        url, allowed = case["url"], case in CORPUS["allowed_with"]
        conn.execute("DELETE FROM destination_allowlist")
        conn.commit()
        assert not _python_accepts(url), url
        assert not _sql_accepts(app, page_id, url), url
        app.rollback()
        _allow(conn, case["allow"])
        allow = destinations.AllowList.of([case["allow"]])
        assert _python_accepts(url, allow) == allowed, url
        try:
            made = subscribers.subscribe(app, page_id, channel="WEBHOOK", destination=url)
        except InvalidInput:
            assert not allowed, url
        else:
            assert allowed, url
            assert made.subscriber.is_verified, url
        app.rollback()
        assert _sql_accepts(app, page_id, url) == allowed, url
        app.rollback()
    conn.execute("DELETE FROM destination_allowlist")
    conn.commit()
    _allow(conn, "10.0.0.0/8")
    report = subscribers.import_subscribers(
        app,
        page_id,
        [ImportRow("WEBHOOK", "https://10.9.8.7/hook"), ImportRow("WEBHOOK", "https://127.0.0.1/")],
    )
    assert report.accepted == 1
    assert [r.row_number for r in report.refused] == [2]
    app.rollback()


def test_import_refuses_internal_urls_per_row(conn: Conn, page_id: str) -> None:
    """A bulk import carries internal URLs past the checks."""
    rows = [ImportRow("WEBHOOK", url) for url in CORPUS["bad"][:10]]
    rows.append(ImportRow("WEBHOOK", "https://hooks.example.com/ok"))
    report = subscribers.import_subscribers(conn, page_id, rows)
    assert report.accepted == 1
    assert len(report.refused) == 10


def test_only_the_owner_manages_the_allow_list(
    app: Conn, cluster: LocalCluster, dsn: str, page_id: str
) -> None:
    """statusdb_app or statusdb_reader adds 127.0.0.1 to the allow-list."""
    assert app.execute("SELECT count(*) FROM destination_allowlist").fetchone() == (0,)
    app.commit()
    for statement in (
        "INSERT INTO destination_allowlist (network, reason) VALUES ('127.0.0.0/8', 'x')",
        "UPDATE destination_allowlist SET network = '0.0.0.0/0'",
        "DELETE FROM destination_allowlist",
        "TRUNCATE destination_allowlist",
        "ALTER TABLE status_subscriber DISABLE TRIGGER status_subscriber_destination_guard",
        "CREATE TEMPORARY TABLE destination_allowlist (host_name text, network cidr)",
    ):
        try:
            app.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            app.rollback()
            continue
        # A temporary table is allowed, and must change nothing (schema-qualified lookups).
        assert statement.startswith("CREATE TEMPORARY"), statement
        app.execute("INSERT INTO pg_temp.destination_allowlist (network) VALUES ('0.0.0.0/0')")
        app.execute("SET search_path = pg_temp, public")
        with pytest.raises(psycopg.errors.CheckViolation):
            app.execute(
                "INSERT INTO public.status_subscriber (status_page_id, channel, destination)"
                " VALUES (%s, 'WEBHOOK', 'https://127.0.0.1/')",
                (page_id,),
            )
        app.rollback()
    ensure_login(cluster, READER_LOGIN, "statusdb_reader")
    with (
        psycopg.connect(make_conninfo(dsn, user=READER_LOGIN)) as reader,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        reader.execute("SELECT * FROM destination_allowlist")


def _sql_samples() -> list[str]:
    """test_destinations' samples (the corpus, edge cases, generated near-plain URLs), with
    their lower-case forms, as far as they can be sent at all."""
    from test_destinations import _destination_samples

    samples = _destination_samples()
    samples += [value.lower() for value in samples]
    return [value for value in dict.fromkeys(samples) if _sendable(value)]


def _sendable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def test_the_guards_shortcut_skips_only_what_it_would_accept(conn: Conn) -> None:
    """0045: the trigger's WHEN skips the guard for `statusdb_destination_is_plain` URLs; a URL
    the guard refuses (or one of the corpus's bad ones) is never taken for plain."""
    rows = conn.execute(
        "SELECT u, statusdb_destination_is_plain(u),"
        "       statusdb_destination_problem('WEBHOOK', u) IS NULL"
        " FROM unnest(%s::text[]) AS u",
        (_sql_samples(),),
    ).fetchall()
    wrongly_plain = [url for url, plain, passes in rows if plain and not passes]
    assert wrongly_plain == []
    plain = {url for url, is_plain, _ in rows if is_plain}
    assert len(plain) > 100  # the shortcut is exercised
    assert plain.isdisjoint(CORPUS["bad"])
    assert plain.isdisjoint(case["url"] for case in CORPUS["allowed_with"] + CORPUS["never"])
    spellings = ("https://x.HOME.arpa/", "https://a.b/\\x", "https://a.b/\tx", "https://a.b:x/")
    # 0051: a port the guard would refuse (0, above 65535) is never plain.
    ports = ("https://a.bc:0/", "https://a.bc:99999/", "https://a.bc:010/", "https://a.bc:12345/")
    for spelled in spellings + ports:
        assert conn.execute("SELECT statusdb_destination_is_plain(%s)", (spelled,)).fetchone() == (
            False,
        ), spelled


def test_plain_public_urls_do_not_call_the_guard(conn: Conn) -> None:
    """0045 (issue 20): an import's plainly public webhook URLs skip the plpgsql guard (before
    it, every SLACK/WEBHOOK row called it); the others still call it, and it still refuses."""
    team = teams.create(conn, name="S08 shortcut")
    page = pages.create(
        conn, team_id=team.id, name="P", slug=f"s08-shortcut-{team.id.lower()}", created_by_id="u"
    ).page
    conn.execute("SET LOCAL track_functions = 'pl'")
    conn.execute(
        "INSERT INTO status_subscriber (status_page_id, channel, destination)"
        " SELECT %s, 'WEBHOOK', 'https://hooks.example.org/' || n FROM generate_series(1, 20) n"
        " UNION ALL SELECT %s, 'SLACK', 'https://8.8.8.8/x'",
        (page.id, page.id),
    )
    (calls,) = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
        " WHERE funcname = 'statusdb_status_subscriber_destination_guard'"
    ).fetchone() or (None,)
    assert calls == 1
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(
            "INSERT INTO status_subscriber (status_page_id, channel, destination)"
            " VALUES (%s, 'WEBHOOK', 'https://metadata.google.internal/x')",
            (page.id,),
        )
    assert info.value.diag.constraint_name == "status_subscriber_destination_ssrf_check"
