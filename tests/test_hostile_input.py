"""Hostile input: whatever a caller passes, statusdb stores it faithfully or refuses it cleanly.

Every public operation that takes text is fed generated strings (hypothesis): any Unicode,
quotes, backslashes, `%` and `%(name)s`, SQL fragments, NUL bytes, lone surrogates, and strings
up to 1 MB. Each value is either stored and read back identical (normalized, for email
addresses, URLs and RRULEs, in the documented way) or refused with statusdb's InvalidInput
(Conflict where the field is unique); never a psycopg error, never another exception.

"Never a partial write" is checked the hard way: after a refusal the test commits, as a caller
that swallows the error might, and the whole database must still be as it was.

Ids, slugs, tokens and cursors that name nothing give NotFound, InvalidInput or Unauthorized
(or the documented empty answer); enumeration values outside their sets, naive, out-of-range
and non-existent (DST-gap) datetimes give InvalidInput naming the field.

Speed: one database per test function, rolled back between examples. Examples are
deterministic in CI; set STATUSDB_HOSTILE_EXAMPLES=500 (say) for a longer, random exploration.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains, urls
from psycopg import sql
from psycopg.rows import TupleRow

from statusdb import (
    components,
    incidents,
    maintenance,
    pages,
    status,
    status_incidents,
    subscribers,
    teams,
    tenancy,
    uptime,
    views,
)
from statusdb.domain.types import (
    INCIDENT_PRIORITIES,
    INCIDENT_STATUSES,
    MAINTENANCE_STATUS,
    NOTIFY_ON_EVENTS,
    STATUS_INCIDENT_SEVERITY,
    STATUS_INCIDENT_STATUS,
    STATUS_SEVERITY_ORDER,
    SUBSCRIBER_CHANNELS,
    CreateMaintenanceWindowInput,
)
from statusdb.errors import Conflict, InvalidInput, NotFound, StatusdbError, Unauthorized
from statusdb.pages import NewComponent
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

_EXPLORE = os.environ.get("STATUSDB_HOSTILE_EXAMPLES")
EXAMPLES: Final = int(_EXPLORE or "40")
SETTINGS: Final = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=_EXPLORE is None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one database per test, rolled back per example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

T0: Final = dt.datetime(2031, 1, 6, 10, 0, tzinfo=dt.UTC)  # a Monday
HOUR: Final = dt.timedelta(hours=1)

# --- strategies -------------------------------------------------------------------------------

FRAGMENTS: Final = (
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    "%",
    "%%",
    "%s",
    "%(id)s",
    "%(name)s",
    "{}",
    "{0}",
    "{name}",
    "$1",
    "$$",
    "--",
    "/*",
    "*/",
    ";",
    "'; DROP TABLE team; --",
    "' OR '1'='1",
    "1); DELETE FROM status_page; --",
    "E'\\x00'",
    "\\x00",
    "\\0",
    "NULL",
    "\x00",
    "\ud800",
    "\udfff",
    "\u2028",
    "\ufeff",
    "\uffff",
    "\U0001f642",
    "e\u0301",
    "\r\n",
    "\t",
    " ",
    "",
)
LONG_SIZES: Final = (99, 100, 101, 199, 200, 201, 500, 501, 999, 1000, 1001, 2000, 2001)
HUGE_SIZES: Final = (10_000, 10_001, 1_000_000)

surrogates = st.characters(categories=["Cs"])
any_character = st.one_of(st.characters(), surrogates)


def _repeat(piece: str, size: int) -> str:
    return ((piece or "x") * (size // max(len(piece), 1) + 1))[:size]


HOSTILE: Final = st.one_of(
    st.text(),
    st.text(any_character, max_size=12),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=8).map("".join),
    st.builds(_repeat, st.text(any_character, min_size=1, max_size=3), st.sampled_from(LONG_SIZES)),
    st.builds(
        _repeat, st.sampled_from(("x", "é", "\U0001f642", "'", " ")), st.sampled_from(HUGE_SIZES)
    ),
)


# --- the world every example starts from ------------------------------------------------------


@attrs.frozen
class World:
    team_id: str
    page_id: str
    page_token: str
    component_id: str
    incident_id: str
    status_incident_id: str
    subscriber_id: str
    window_id: str
    manual_component_id: str


def build_world(conn: Conn) -> World:
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme",
        slug="acme",
        created_by_id="u1",
        components=[NewComponent(name="API", team_id=team.id)],
    )
    assert created.access_token is not None  # private: token checks mean something
    (api,) = components.list_for_page(conn, created.page.id)
    incident = incidents.create(conn, team.id, title="5xx", priority="HIGH")  # a pending change
    published = status_incidents.create(
        conn,
        created.page.id,
        title="Errors",
        severity="MINOR",
        message="Looking",
        affected_component_ids=[api.id],
    )
    subscription = subscribers.subscribe(
        conn, created.page.id, channel="EMAIL", destination="ops@example.com"
    )
    window = maintenance.create(
        conn,
        created.page.id,
        CreateMaintenanceWindowInput(
            component_ids=(api.id,), title="Upgrade", start_time=T0, end_time=T0 + HOUR
        ),
        created_by_id="u1",
    )
    manual = components.create(conn, created.page.id, name="Docs")  # set by hand
    conn.commit()
    return World(
        team.id,
        created.page.id,
        created.access_token,
        api.id,
        incident.id,
        published.id,
        subscription.subscriber.id,
        window.id,
        manual.id,
    )


class Snapshot:
    """The whole database's content in one round trip, to prove nothing changed."""

    def __init__(self, conn: Conn) -> None:
        tables = [
            str(row[0])
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                " AND c.relname NOT LIKE '%%yoyo%%' ORDER BY c.relname"
            )
        ]
        self.query = sql.SQL(" UNION ALL ").join(
            sql.SQL(
                "SELECT {name}, count(*)::text || coalesce(md5(string_agg(t::text, '|'"
                " ORDER BY t::text)), '') FROM {table} AS t"
            ).format(name=sql.Literal(table), table=sql.Identifier(table))
            for table in tables
        )
        conn.rollback()
        self.base = self.take(conn)

    def take(self, conn: Conn) -> list[tuple[Any, ...]]:
        rows = conn.execute(self.query).fetchall()
        conn.rollback()
        return rows


@pytest.fixture
def world(conn: Conn) -> World:
    return build_world(conn)


@pytest.fixture
def snapshot(conn: Conn, world: World) -> Snapshot:
    return Snapshot(conn)


REFUSED: Final = object()


def attempt(
    conn: Conn,
    snapshot: Snapshot,
    call: Callable[[], Any],
    refusals: tuple[type[StatusdbError], ...] = (InvalidInput,),
) -> Any:
    """`call()`'s result, or REFUSED after checking that the refusal wrote nothing.

    Any exception other than `refusals` fails the test (psycopg errors included).
    """
    try:
        return call()
    except refusals as exc:
        refusal = str(exc)
    assert refusal, "a refusal says why"
    conn.commit()  # a caller that swallows the error and commits: nothing may persist
    assert snapshot.take(conn) == snapshot.base
    return REFUSED


# --- text fields: stored identical, or refused ------------------------------------------------


def _identity(value: str) -> str:
    return value


def _rrule_canonical(value: str) -> str:
    rule = value.strip()
    if rule[:6].upper() == "RRULE:":
        rule = rule[6:]
    return rule.upper()


@attrs.frozen
class Writer:
    """An operation that stores a text value, and how to read the stored value back."""

    name: str
    write: Callable[[Conn, World, str], Any]
    read: Callable[[Conn, World, Any], Any]
    expect: Callable[[str], str] = _identity
    refusals: tuple[type[StatusdbError], ...] = (InvalidInput,)
    values: st.SearchStrategy[str] = HOSTILE

    def __repr__(self) -> str:
        return self.name


def _new_page(c: Conn, w: World, **kwargs: Any) -> pages.CreatedPage:
    arguments: dict[str, Any] = {
        "team_id": w.team_id,
        "name": "P",
        "slug": "hostile",
        "created_by_id": "u",
        "is_public": True,
        **kwargs,
    }
    return pages.create(c, **arguments)


def _window(c: Conn, w: World, **kwargs: Any) -> maintenance.MaintenanceWindow:
    data: dict[str, Any] = {
        "component_ids": (w.component_id,),
        "title": "W",
        "start_time": T0 + 24 * HOUR,
        "end_time": T0 + 25 * HOUR,
        **{k: v for k, v in kwargs.items() if k not in ("created_by_id", "time_zone")},
    }
    return maintenance.create(
        c,
        w.page_id,
        CreateMaintenanceWindowInput(**data),
        created_by_id=kwargs.get("created_by_id", "u1"),
        time_zone=kwargs.get("time_zone", "UTC"),
    )


def _normalized(channel: Any) -> Callable[[str], str]:
    def expect(value: str) -> str:
        return subscribers.normalize_destination(channel, value)

    return expect


def _lease_owner(c: Conn, w: World, result: Any) -> Any:
    return c.execute(
        "SELECT DISTINCT lease_owner FROM status_change WHERE lease_owner IS NOT NULL"
    ).fetchall()


ZONES: Final = [*sorted(zoneinfo.available_timezones())[::25], "UTC", "posixrules", "Factory"]
WEEKLY_PARTS: Final = (
    "FREQ=WEEKLY",
    "FREQ=DAILY",
    "FREQ=MONTHLY",
    "FREQ=YEARLY",
    "FREQ=HOURLY",
    "FREQ=MINUTELY",
    "FREQ=SECONDLY",
    "FREQ=weekly",
    "BYDAY=MO",
    "BYDAY=MO,TU",
    "BYDAY=1MO",
    "BYDAY=-1MO",
    "BYDAY=XX",
    "INTERVAL=2",
    "INTERVAL=0",
    "INTERVAL=-1",
    "COUNT=3",
    "COUNT=0",
    "UNTIL=20311231T000000Z",
    "UNTIL=20311231",
    "UNTIL=99991231T235959Z",
    "BYMONTH=1",
    "BYMONTH=13",
    "BYMONTHDAY=6",
    "BYMONTHDAY=31",
    "BYMONTHDAY=-1",
    "BYMONTH=2;BYMONTHDAY=30",
    "BYHOUR=10",
    "BYHOUR=24",
    "BYSETPOS=1",
    "BYWEEKNO=2",
    "BYYEARDAY=6",
    "WKST=SU",
    "DTSTART=20310106T100000Z",
    "EXDATE=20310107T100000Z",
    "X-NAME=1",
    "RRULE:FREQ=DAILY",
)


def _rule(prefix: str, freq: str, extras: list[str], pad: str) -> str:
    return pad + prefix + ";".join([freq, *extras]) + pad


#: Rules that hold the windows' start (Tuesday 2031-01-07 10:00 UTC) as first occurrence, in
#: the spellings a caller may use: these should be stored, in canonical form.
VALID_RULES: Final = st.builds(
    _rule,
    st.sampled_from(("", "RRULE:", "rrule:")),
    st.sampled_from(("FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY", "FREQ=YEARLY", "freq=weekly")),
    st.lists(
        st.sampled_from(("INTERVAL=2", "COUNT=5", "UNTIL=20320101T000000Z", "WKST=MO")),
        unique=True,
        max_size=2,
    ).filter(lambda parts: not ({"COUNT=5", "UNTIL=20320101T000000Z"} <= set(parts))),
    st.sampled_from(("", " ", "\t")),
)
RRULES: Final = st.one_of(
    VALID_RULES,
    st.lists(st.sampled_from(WEEKLY_PARTS), min_size=1, max_size=4).map(";".join),
    st.lists(st.one_of(st.sampled_from(WEEKLY_PARTS), HOSTILE), min_size=1, max_size=3).map(
        ";".join
    ),
    HOSTILE,
)

WRITERS: Final = (
    Writer(
        "teams.create name",
        lambda c, w, s: teams.create(c, name=s),
        lambda c, w, r: teams.get(c, r.id).name,
    ),
    Writer(
        "teams.rename name",
        lambda c, w, s: teams.rename(c, w.team_id, name=s),
        lambda c, w, r: teams.get(c, w.team_id).name,
    ),
    Writer(
        "pages.create name",
        lambda c, w, s: _new_page(c, w, name=s),
        lambda c, w, r: pages.get(c, r.page.id).name,
    ),
    Writer(
        "pages.create description",
        lambda c, w, s: _new_page(c, w, description=s),
        lambda c, w, r: pages.get(c, r.page.id).description,
    ),
    Writer(
        "pages.create created_by_id",
        lambda c, w, s: _new_page(c, w, created_by_id=s),
        lambda c, w, r: pages.get(c, r.page.id).created_by_id,
    ),
    Writer(
        "pages.create slug",
        lambda c, w, s: _new_page(c, w, slug=s),
        lambda c, w, r: pages.get(c, r.page.id).slug,
        refusals=(InvalidInput, Conflict),  # "acme" is taken
        values=st.one_of(HOSTILE, st.from_regex(r"[a-z0-9]+(-[a-z0-9]+)*", fullmatch=True)),
    ),
    Writer(
        "pages.create component name",
        lambda c, w, s: _new_page(c, w, components=[NewComponent(name=s, description=s)]),
        lambda c, w, r: components.list_for_page(c, r.page.id)[0].name,
    ),
    Writer(
        "pages.update name",
        lambda c, w, s: pages.update(c, w.page_id, name=s),
        lambda c, w, r: pages.get(c, w.page_id).name,
    ),
    Writer(
        "pages.update description",
        lambda c, w, s: pages.update(c, w.page_id, description=s),
        lambda c, w, r: pages.get(c, w.page_id).description,
    ),
    Writer(
        "pages.update slug",
        lambda c, w, s: pages.update(c, w.page_id, slug=s),
        lambda c, w, r: pages.get(c, w.page_id).slug,
        values=st.one_of(HOSTILE, st.from_regex(r"[a-z0-9]+(-[a-z0-9]+)*", fullmatch=True)),
    ),
    Writer(
        "components.create name",
        lambda c, w, s: components.create(c, w.page_id, name=s),
        lambda c, w, r: components.get(c, r.id).name,
        refusals=(InvalidInput, Conflict),  # "API" is taken
    ),
    Writer(
        "components.create description",
        lambda c, w, s: components.create(c, w.page_id, name="Web", description=s),
        lambda c, w, r: components.get(c, r.id).description,
    ),
    Writer(
        "components.create service_identifier",
        lambda c, w, s: components.create(
            c, w.page_id, name="Web", team_id=w.team_id, service_identifier=s
        ),
        lambda c, w, r: components.get(c, r.id).service_identifier,
    ),
    Writer(
        "components.update name",
        lambda c, w, s: components.update(c, w.component_id, name=s),
        lambda c, w, r: components.get(c, w.component_id).name,
    ),
    Writer(
        "components.update description",
        lambda c, w, s: components.update(c, w.component_id, description=s),
        lambda c, w, r: components.get(c, w.component_id).description,
    ),
    Writer(
        "components.update service_identifier",
        lambda c, w, s: components.update(c, w.component_id, service_identifier=s),
        lambda c, w, r: components.get(c, w.component_id).service_identifier,
    ),
    Writer(
        "incidents.create title",
        lambda c, w, s: incidents.create(c, w.team_id, title=s, priority="LOW"),
        lambda c, w, r: incidents.get(c, r.id).title,
    ),
    Writer(
        "incidents.create service_identifier",
        lambda c, w, s: incidents.create(
            c, w.team_id, title="t", priority="CRITICAL", service_identifier=s
        ),
        lambda c, w, r: incidents.get(c, r.id).service_identifier,
    ),
    Writer(
        "incidents.update title",
        lambda c, w, s: incidents.update(c, w.incident_id, title=s),
        lambda c, w, r: incidents.get(c, w.incident_id).title,
    ),
    Writer(
        "status_incidents.create title",
        lambda c, w, s: status_incidents.create(
            c, w.page_id, title=s, severity="MAJOR", message="m"
        ),
        lambda c, w, r: status_incidents.get(c, r.id).title,
    ),
    Writer(
        "status_incidents.create message",
        lambda c, w, s: status_incidents.create(
            c, w.page_id, title="t", severity="MAJOR", message=s
        ),
        lambda c, w, r: status_incidents.get(c, r.id).updates[0].message,
    ),
    Writer(
        "status_incidents.add_update message",
        lambda c, w, s: status_incidents.add_update(
            c, w.status_incident_id, status="MONITORING", message=s
        ),
        lambda c, w, r: status_incidents.get(c, w.status_incident_id).updates[-1].message,
    ),
    Writer(
        "status_incidents.edit title",
        lambda c, w, s: status_incidents.edit(c, w.status_incident_id, title=s),
        lambda c, w, r: status_incidents.get(c, w.status_incident_id).title,
    ),
    Writer(
        "subscribers.subscribe EMAIL destination",
        lambda c, w, s: subscribers.subscribe(c, w.page_id, channel="EMAIL", destination=s),
        lambda c, w, r: subscribers.get(c, r.subscriber.id).destination,
        expect=_normalized("EMAIL"),
        values=st.one_of(HOSTILE, st.emails()),
    ),
    Writer(
        "subscribers.subscribe WEBHOOK destination",
        lambda c, w, s: subscribers.subscribe(c, w.page_id, channel="WEBHOOK", destination=s),
        lambda c, w, r: subscribers.get(c, r.subscriber.id).destination,
        expect=_normalized("WEBHOOK"),
        values=st.one_of(
            HOSTILE,
            urls(),
            st.builds(lambda host, path: f"https://{host}/{path}", domains(), st.text()),
        ),
    ),
    Writer(
        "maintenance.create title",
        lambda c, w, s: _window(c, w, title=s),
        lambda c, w, r: maintenance.get(c, r.id).title,
    ),
    Writer(
        "maintenance.create description",
        lambda c, w, s: _window(c, w, description=s),
        lambda c, w, r: maintenance.get(c, r.id).description,
    ),
    Writer(
        "maintenance.create created_by_id",
        lambda c, w, s: _window(c, w, created_by_id=s),
        lambda c, w, r: maintenance.get(c, r.id).created_by_id,
    ),
    Writer(
        "maintenance.create time_zone",
        lambda c, w, s: _window(c, w, time_zone=s),
        lambda c, w, r: maintenance.get(c, r.id).time_zone,
        values=st.one_of(HOSTILE, st.sampled_from(ZONES)),
    ),
    Writer(
        "maintenance.create recurrence_rule",
        lambda c, w, s: _window(
            c, w, recurrence_rule=s, start_time=T0 + 24 * HOUR, end_time=T0 + 25 * HOUR
        ),
        lambda c, w, r: maintenance.get(c, r.id).recurrence_rule,
        expect=_rrule_canonical,
        values=RRULES,
    ),
    Writer(
        "maintenance.update title",
        lambda c, w, s: maintenance.update(c, w.window_id, title=s),
        lambda c, w, r: maintenance.get(c, w.window_id).title,
    ),
    Writer(
        "maintenance.update description",
        lambda c, w, s: maintenance.update(c, w.window_id, description=s),
        lambda c, w, r: maintenance.get(c, w.window_id).description,
    ),
    Writer(
        "outbox.claim worker_id",
        lambda c, w, s: outbox.claim(c, worker_id=s, hold_down=dt.timedelta(0)),
        _lease_owner,
        expect=lambda s: [(s,)],  # type: ignore[arg-type,return-value]  # rows, not a str
    ),
)


@pytest.mark.parametrize(
    "writer",
    # outbox.claim sees only committed changes (conn: a database of its own, see conftest).
    [
        pytest.param(w, marks=pytest.mark.fresh_db) if w.name.startswith("outbox.") else w
        for w in WRITERS
    ],
    ids=lambda w: w.name,
)
def test_text_is_stored_identical_or_refused(
    conn: Conn, world: World, snapshot: Snapshot, writer: Writer
) -> None:
    @SETTINGS
    @given(value=writer.values)
    def check(value: str) -> None:
        try:
            result = attempt(
                conn, snapshot, lambda: writer.write(conn, world, value), writer.refusals
            )
            if result is REFUSED:
                return
            stored = writer.read(conn, world, result)
            assert stored == writer.expect(value)
        finally:
            conn.rollback()

    check()


def test_surrogates_nul_and_a_megabyte_are_refused_naming_the_field(
    conn: Conn, world: World
) -> None:
    """Deterministic companions to the generated cases: every writer, the classic offenders."""
    wrong: list[str] = []
    for writer in WRITERS:
        for value in ("\ud800", "a\udfffb", "ok\x00", "x" * 1_000_000):
            try:
                writer.write(conn, world, value)
                wrong.append(f"{writer.name}: {value[:10]!r} was accepted")
            except InvalidInput as exc:
                message = str(exc)
                if not any(
                    word in message
                    for word in (
                        "surrogate",
                        "NUL",
                        "at most",
                        "not valid",
                        "not a valid",
                        "not a known",
                    )
                ):
                    wrong.append(f"{writer.name}: {value[:10]!r}: unclear message {message!r}")
            finally:
                conn.rollback()
    assert wrong == []


async def test_hostile_text_async(aconn: AConn) -> None:
    for value in ("\ud800", "nul\x00", "x" * 1_000_000):
        with pytest.raises(InvalidInput, match="name"):
            await teams.create(aconn, name=value)
    quoted = "'; DROP TABLE team; -- %(id)s %s \\ \U0001f642"
    team = await teams.create(aconn, name=quoted)
    assert (await teams.get(aconn, team.id)).name == quoted


# --- ids, slugs, tokens, cursors that name nothing --------------------------------------------


@attrs.frozen
class Lookup:
    """An operation given an id, slug, token or cursor; what it may answer when that is bogus."""

    name: str
    call: Callable[[Conn, World, str], Any]
    answers: Callable[[Any], bool] = lambda result: False
    refusals: tuple[type[StatusdbError], ...] = (InvalidInput, NotFound)

    def __repr__(self) -> str:
        return self.name


def _empty(result: Any) -> bool:
    return result == [] or result is None or result is False


_JAN: Final = (T0 - 24 * HOUR, T0)

LOOKUPS: Final = (
    Lookup("teams.get", lambda c, w, s: teams.get(c, s)),
    Lookup("teams.rename", lambda c, w, s: teams.rename(c, s, name="x")),
    Lookup("teams.delete", lambda c, w, s: teams.delete(c, s)),
    Lookup("pages.get", lambda c, w, s: pages.get(c, s)),
    Lookup("pages.get_by_slug", lambda c, w, s: pages.get_by_slug(c, s)),
    Lookup("pages.list_for_team", lambda c, w, s: pages.list_for_team(c, s), _empty),
    Lookup("pages.delete", lambda c, w, s: pages.delete(c, s)),
    Lookup("pages.rotate_access_token", lambda c, w, s: pages.rotate_access_token(c, s)),
    Lookup("pages.set_visibility", lambda c, w, s: pages.set_visibility(c, s, is_public=True)),
    Lookup("pages.create team_id", lambda c, w, s: _new_page(c, w, team_id=s)),
    Lookup(
        "pages.check_access_token slug",
        lambda c, w, s: pages.check_access_token(c, s, w.page_token),
        _empty,
    ),
    Lookup(
        "pages.check_access_token token",
        lambda c, w, s: pages.check_access_token(c, "acme", s),
        _empty,
    ),
    Lookup("views.page_view slug", lambda c, w, s: views.page_view(c, s), _empty),
    Lookup("views.page_view token", lambda c, w, s: views.page_view(c, "acme", token=s), _empty),
    Lookup("components.get", lambda c, w, s: components.get(c, s)),
    Lookup("components.list_for_page", lambda c, w, s: components.list_for_page(c, s), _empty),
    Lookup("components.delete", lambda c, w, s: components.delete(c, s)),
    Lookup("components.set_status", lambda c, w, s: components.set_status(c, s, "OPERATIONAL")),
    Lookup("components.create page", lambda c, w, s: components.create(c, s, name="x")),
    Lookup(
        "components.create team",
        lambda c, w, s: components.create(c, w.page_id, name="x", team_id=s),
    ),
    Lookup(
        "components.update team", lambda c, w, s: components.update(c, w.component_id, team_id=s)
    ),
    Lookup("incidents.get", lambda c, w, s: incidents.get(c, s)),
    Lookup("incidents.list_for_team", lambda c, w, s: incidents.list_for_team(c, s), _empty),
    Lookup("incidents.resolve", lambda c, w, s: incidents.resolve(c, s)),
    Lookup("incidents.delete", lambda c, w, s: incidents.delete(c, s)),
    Lookup(
        "incidents.create team", lambda c, w, s: incidents.create(c, s, title="t", priority="LOW")
    ),
    Lookup(
        "status.changes_for_component", lambda c, w, s: status.changes_for_component(c, s), _empty
    ),
    Lookup("status_incidents.get", lambda c, w, s: status_incidents.get(c, s)),
    Lookup("status_incidents.delete", lambda c, w, s: status_incidents.delete(c, s)),
    Lookup(
        "status_incidents.add_update",
        lambda c, w, s: status_incidents.add_update(c, s, status="RESOLVED", message="m"),
    ),
    Lookup(
        "status_incidents.list_active", lambda c, w, s: status_incidents.list_active(c, s), _empty
    ),
    Lookup(
        "status_incidents.history cursor",
        lambda c, w, s: status_incidents.history(c, w.page_id, days=30, after=s),
    ),
    Lookup(
        "status_incidents.create page",
        lambda c, w, s: status_incidents.create(c, s, title="t", severity="MINOR", message="m"),
    ),
    Lookup(
        "status_incidents.create incident_id",
        lambda c, w, s: status_incidents.create(
            c, w.page_id, title="t", severity="MINOR", message="m", incident_id=s
        ),
    ),
    Lookup(
        "status_incidents.create affected_component_ids",
        lambda c, w, s: status_incidents.create(
            c, w.page_id, title="t", severity="MINOR", message="m", affected_component_ids=[s]
        ),
    ),
    Lookup(
        "status_incidents.edit affected_component_ids",
        lambda c, w, s: status_incidents.edit(c, w.status_incident_id, affected_component_ids=[s]),
    ),
    Lookup("subscribers.get", lambda c, w, s: subscribers.get(c, s)),
    Lookup("subscribers.unsubscribe", lambda c, w, s: subscribers.unsubscribe(c, s)),
    Lookup("subscribers.delete", lambda c, w, s: subscribers.delete(c, s)),
    Lookup(
        "subscribers.rotate_unsubscribe_token",
        lambda c, w, s: subscribers.rotate_unsubscribe_token(c, s),
    ),
    Lookup(
        "subscribers.verify", lambda c, w, s: subscribers.verify(c, s), refusals=(Unauthorized,)
    ),
    Lookup(
        "subscribers.unsubscribe_by_token",
        lambda c, w, s: subscribers.unsubscribe_by_token(c, s),
        refusals=(Unauthorized,),
    ),
    Lookup(
        "subscribers.list_for_page after",
        lambda c, w, s: subscribers.list_for_page(c, w.page_id, after=s),
        lambda result: isinstance(result, list) and len(result) <= 1,
    ),
    Lookup(
        "subscribers.count_for_page",
        lambda c, w, s: subscribers.count_for_page(c, s),
        lambda result: result == subscribers.SubscriberCounts(0, 0, 0),
    ),
    Lookup(
        "subscribers.subscribe page",
        lambda c, w, s: subscribers.subscribe(c, s, channel="EMAIL", destination="a@example.com"),
    ),
    Lookup(
        "subscribers.subscribe component_ids",
        lambda c, w, s: subscribers.subscribe(
            c, w.page_id, channel="EMAIL", destination="a@example.com", component_ids=[s]
        ),
    ),
    Lookup(
        "subscribers.update_preferences component_ids",
        lambda c, w, s: subscribers.update_preferences(c, w.subscriber_id, component_ids=[s]),
    ),
    Lookup("maintenance.get", lambda c, w, s: maintenance.get(c, s)),
    Lookup("maintenance.list_for_page", lambda c, w, s: maintenance.list_for_page(c, s), _empty),
    Lookup("maintenance.cancel", lambda c, w, s: maintenance.cancel(c, s)),
    Lookup("maintenance.delete", lambda c, w, s: maintenance.delete(c, s)),
    Lookup(
        "maintenance.create page",
        lambda c, w, s: maintenance.create(
            c,
            s,
            CreateMaintenanceWindowInput(
                component_ids=(), title="t", start_time=T0, end_time=T0 + HOUR
            ),
            created_by_id="u",
        ),
    ),
    Lookup("maintenance.create component_ids", lambda c, w, s: _window(c, w, component_ids=(s,))),
    Lookup(
        "maintenance.update component_ids",
        lambda c, w, s: maintenance.update(c, w.window_id, component_ids=[s]),
    ),
    Lookup(
        "maintenance.list_upcoming",
        lambda c, w, s: maintenance.list_upcoming(c, s, now=T0, horizon=24 * HOUR),
        _empty,
    ),
    Lookup("uptime.for_page", lambda c, w, s: uptime.for_page(c, s, start=_JAN[0], end=_JAN[1])),
    # Scoping to a team that does not exist is allowed (it sees nothing); the scope ends with
    # the example's transaction.
    Lookup("tenancy.set_team", lambda c, w, s: tenancy.set_team(c, s), lambda r: r is None),
)


def test_bogus_ids_slugs_tokens_and_cursors_answer_cleanly(
    conn: Conn, world: World, snapshot: Snapshot
) -> None:
    @settings(SETTINGS, max_examples=EXAMPLES * 16)
    @given(lookup=st.sampled_from(LOOKUPS), value=HOSTILE)
    def check(lookup: Lookup, value: str) -> None:
        try:
            result = attempt(
                conn, snapshot, lambda: lookup.call(conn, world, value), lookup.refusals
            )
            if result is not REFUSED:
                assert lookup.answers(result), (lookup.name, result)
                conn.commit()
                assert snapshot.take(conn) == snapshot.base  # a miss changes nothing
        finally:
            conn.rollback()

    check()


# --- enumeration values -----------------------------------------------------------------------


@attrs.frozen
class EnumField:
    name: str
    field: str
    allowed: Sequence[str]
    call: Callable[[Conn, World, str], Any]

    def __repr__(self) -> str:
        return self.name


def _any(value: str) -> Any:
    """A str passed where a Literal is expected: the point is to pass values outside it."""
    return value


ENUMS: Final = (
    EnumField(
        "incidents.create priority",
        "priority",
        INCIDENT_PRIORITIES,
        lambda c, w, s: incidents.create(c, w.team_id, title="t", priority=_any(s)),
    ),
    EnumField(
        "incidents.create status",
        "status",
        INCIDENT_STATUSES,
        lambda c, w, s: incidents.create(c, w.team_id, title="t", priority="LOW", status=_any(s)),
    ),
    EnumField(
        "incidents.update priority",
        "priority",
        INCIDENT_PRIORITIES,
        lambda c, w, s: incidents.update(c, w.incident_id, priority=_any(s)),
    ),
    EnumField(
        "incidents.update status",
        "status",
        INCIDENT_STATUSES,
        lambda c, w, s: incidents.update(c, w.incident_id, status=_any(s)),
    ),
    EnumField(
        "components.set_status",
        "status",
        STATUS_SEVERITY_ORDER,
        lambda c, w, s: components.set_status(c, w.manual_component_id, _any(s)),
    ),
    EnumField(
        "status_incidents.create severity",
        "severity",
        STATUS_INCIDENT_SEVERITY,
        lambda c, w, s: status_incidents.create(
            c, w.page_id, title="t", severity=_any(s), message="m"
        ),
    ),
    EnumField(
        "status_incidents.create status",
        "status",
        STATUS_INCIDENT_STATUS,
        lambda c, w, s: status_incidents.create(
            c,
            w.page_id,
            title="t",
            severity="MINOR",
            message="m",
            status=_any(s),
        ),
    ),
    EnumField(
        "status_incidents.add_update status",
        "status",
        STATUS_INCIDENT_STATUS,
        lambda c, w, s: status_incidents.add_update(
            c, w.status_incident_id, status=_any(s), message="m"
        ),
    ),
    EnumField(
        "status_incidents.edit severity",
        "severity",
        STATUS_INCIDENT_SEVERITY,
        lambda c, w, s: status_incidents.edit(c, w.status_incident_id, severity=_any(s)),
    ),
    EnumField(
        "subscribers.subscribe channel",
        "channel",
        SUBSCRIBER_CHANNELS,
        lambda c, w, s: subscribers.subscribe(
            c,
            w.page_id,
            channel=_any(s),
            destination="https://hooks.example.com/x",
        ),
    ),
    EnumField(
        "subscribers.subscribe notify_on",
        "notify_on",
        NOTIFY_ON_EVENTS,
        lambda c, w, s: subscribers.subscribe(
            c,
            w.page_id,
            channel="EMAIL",
            destination="a@example.com",
            notify_on=[_any(s)],
        ),
    ),
    EnumField(
        "maintenance.list_for_page statuses",
        "statuses",
        MAINTENANCE_STATUS,
        lambda c, w, s: maintenance.list_for_page(c, w.page_id, statuses=[_any(s)]),
    ),
)

_ALL_ENUM_VALUES: Final = sorted({v for e in ENUMS for v in e.allowed})
NEAR_MISSES: Final = st.sampled_from(_ALL_ENUM_VALUES).flatmap(
    lambda v: st.sampled_from(
        (v, v.lower(), v.title(), f" {v}", f"{v} ", f"{v}\x00", f"'{v}'", v + "S")
    )
)


def test_enum_values_outside_their_sets_are_refused_naming_the_field(
    conn: Conn, world: World, snapshot: Snapshot
) -> None:
    @settings(SETTINGS, max_examples=EXAMPLES * 8)
    @given(field=st.sampled_from(ENUMS), value=st.one_of(NEAR_MISSES, HOSTILE))
    def check(field: EnumField, value: str) -> None:
        try:
            result = attempt(conn, snapshot, lambda: field.call(conn, world, value))
            if value in field.allowed:
                assert result is not REFUSED
            else:
                assert result is REFUSED
        except InvalidInput:
            raise
        finally:
            conn.rollback()
        if value not in field.allowed:
            with pytest.raises(InvalidInput, match=field.field):
                field.call(conn, world, value)
            conn.rollback()

    check()


# --- datetimes --------------------------------------------------------------------------------

FIXED_OFFSETS: Final = st.builds(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-1439, 1439)
)
ZONED: Final = st.one_of(st.none(), st.just(dt.UTC), FIXED_OFFSETS, st.timezones())
EXTREMES: Final = st.builds(
    lambda base, tz: base.replace(tzinfo=tz),
    st.sampled_from(
        (
            dt.datetime.min,
            dt.datetime.max,
            dt.datetime(1, 1, 1, 12),
            dt.datetime(9999, 12, 31, 12),
            dt.datetime(1970, 1, 1),
            dt.datetime(2030, 3, 31, 2, 30),  # a spring-forward gap in Europe
            dt.datetime(2030, 3, 10, 2, 30),  # and in the US
            dt.datetime(2030, 10, 27, 2, 30),  # ambiguous (fall back) in Europe
        )
    ),
    st.one_of(
        ZONED,
        st.sampled_from(
            [zoneinfo.ZoneInfo("Europe/Berlin"), zoneinfo.ZoneInfo("America/New_York")]
        ),
    ),
)
DATETIMES: Final = st.one_of(st.datetimes(timezones=ZONED, allow_imaginary=True), EXTREMES)


def _exists(value: dt.datetime) -> bool:
    """Aware, within years 1-9999 in UTC, and not a wall-clock time skipped by a DST change."""
    if value.tzinfo is None or value.utcoffset() is None:
        return False
    try:
        back = value.astimezone(dt.UTC).astimezone(value.tzinfo)
    except OverflowError:
        return False
    return back.replace(tzinfo=None, fold=0) == value.replace(tzinfo=None, fold=0)


@attrs.frozen
class TimeTaker:
    name: str
    call: Callable[[Conn, World, dt.datetime], Any]
    #: The stored or echoed instant, to compare with the one given; None: nothing to compare.
    read: Callable[[Conn, World, Any], dt.datetime | None] = lambda c, w, r: None

    def __repr__(self) -> str:
        return self.name


def _shifted(value: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    try:
        return value + delta
    except OverflowError:
        return value - delta


TIME_TAKERS: Final = (
    TimeTaker(
        "maintenance.create start_time",
        lambda c, w, t: _window(c, w, start_time=t, end_time=_shifted(t, HOUR)),
        lambda c, w, r: maintenance.get(c, r.id).start_time,
    ),
    TimeTaker(
        "maintenance.create end_time",
        lambda c, w, t: _window(c, w, start_time=_shifted(t, -HOUR), end_time=t),
        lambda c, w, r: maintenance.get(c, r.id).end_time,
    ),
    TimeTaker(
        "maintenance.update end_time",
        lambda c, w, t: maintenance.update(c, w.window_id, end_time=t),
        lambda c, w, r: maintenance.get(c, w.window_id).end_time,
    ),
    TimeTaker("maintenance.cancel now", lambda c, w, t: maintenance.cancel(c, w.window_id, now=t)),
    TimeTaker("maintenance.advance now", lambda c, w, t: maintenance.advance(c, t)),
    TimeTaker(
        "maintenance.list_upcoming now",
        lambda c, w, t: maintenance.list_upcoming(c, w.page_id, now=t, horizon=24 * HOUR),
    ),
    TimeTaker(
        "uptime.for_page start",
        lambda c, w, t: uptime.for_page(c, w.page_id, start=t, end=_shifted(t, 24 * HOUR)),
    ),
)


@pytest.mark.parametrize("taker", TIME_TAKERS, ids=lambda t: t.name)
def test_datetimes_are_kept_exact_or_refused(
    conn: Conn, world: World, snapshot: Snapshot, taker: TimeTaker
) -> None:
    @SETTINGS
    @given(value=DATETIMES)
    def check(value: dt.datetime) -> None:
        try:
            result = attempt(conn, snapshot, lambda: taker.call(conn, world, value))
            if not _exists(value):
                assert result is REFUSED  # naive, out of range, or skipped by the clocks
            elif result is not REFUSED:
                stored = taker.read(conn, world, result)
                # The same instant, to the microsecond. (Compared in UTC: `==` between zones is
                # always False for a time in a DST fold, by PEP 495.)
                assert stored is None or stored.astimezone(dt.UTC) == value.astimezone(dt.UTC)
        finally:
            conn.rollback()

    check()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (dt.datetime(2031, 1, 6, 10), "timezone-aware"),
        (
            dt.datetime(2030, 3, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")),
            "does not exist",
        ),
        (dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=5))), "out of range"),
        (dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))), "out of range"),
    ],
)
def test_datetime_refusals_name_the_field(
    conn: Conn, world: World, value: dt.datetime, message: str
) -> None:
    with pytest.raises(InvalidInput, match=f"^now .*{message}"):
        maintenance.advance(conn, value)
    with pytest.raises(InvalidInput, match=f"^start_time .*{message}"):
        _window(conn, world, start_time=value, end_time=T0 + 1000 * HOUR)


def test_an_ambiguous_time_is_taken_with_its_fold(conn: Conn, world: World) -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    first = dt.datetime(2030, 10, 27, 2, 30, tzinfo=berlin)  # CEST, 00:30 UTC
    second = first.replace(fold=1)  # CET, 01:30 UTC
    for value, utc_hour in ((first, 0), (second, 1)):
        window = _window(conn, world, start_time=value, end_time=value + HOUR)
        assert maintenance.get(conn, window.id).start_time.astimezone(dt.UTC).hour == utc_hour


def test_list_upcoming_at_the_end_of_time(conn: Conn, world: World) -> None:
    end_of_time = dt.datetime.max.replace(tzinfo=dt.UTC)
    with contextlib.suppress(InvalidInput):  # refusing is as good as answering
        assert maintenance.list_upcoming(conn, world.page_id, now=end_of_time, horizon=HOUR) == []
