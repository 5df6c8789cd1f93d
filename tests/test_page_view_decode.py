"""The page view's fast decoding (issue 10 item 5) builds the same values as attrs' __init__."""

from __future__ import annotations

import datetime as dt

import attrs
import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import components, pages, teams, views
from statusdb.domain.types import ComponentView, StatusUpdate
from statusdb.errors import DataCorrupt
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]


def test_fast_decoding_equals_construction_through_init(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme Status",
        slug="acme",
        created_by_id="user-1",
        is_public=True,
        components=[
            NewComponent(name=f"Component {n:02d}", team_id=team.id, service_identifier=f"s{n}")
            for n in range(12)
        ],
    )
    ids = [c.id for c in components.list_for_page(conn, created.page.id)]
    # Ten active incidents (more than the column builder's threshold), four timeline entries
    # each, as statusdb writes them.
    for n in range(10):
        conn.execute(
            """INSERT INTO status_incident (status_page_id, title, severity, status,
                                            affected_component_ids, updates)
               SELECT %s, %s, 'MAJOR', 'IDENTIFIED', %s,
                      jsonb_agg(jsonb_build_object(
                          'timestamp', to_char((now() - k * interval '1 minute') AT TIME ZONE 'UTC',
                                               'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                          'status', 'INVESTIGATING', 'message', 'update ' || k) ORDER BY k DESC)
               FROM generate_series(1, 4) AS k""",
            (created.page.id, f"Incident {n}", ids[n : n + 2]),
        )
    columns = views.page_view(conn, "acme")
    with monkeypatch.context() as patch:
        patch.setattr(views, "_COLUMNS_FROM", 10**9)  # every value through its __init__
        assert views.page_view(conn, "acme") == columns
    # One incident now also carries an entry written by hand in psql without an offset: read as
    # UTC, as decode_updates reads it.
    conn.execute(
        """UPDATE status_incident
           SET updates = updates || jsonb_build_array(jsonb_build_object(
               'timestamp', '2030-05-01T10:00:00', 'status', 'MONITORING', 'message', 'by hand'))
           WHERE title = 'Incident 3'"""
    )

    fast = views.page_view(conn, "acme")
    monkeypatch.setattr(views, "_COLUMNS_FROM", 10**9)  # every value through its __init__
    reference = views.page_view(conn, "acme")
    assert fast is not None
    assert reference is not None
    assert fast == reference
    assert len(fast.page.components) == 12
    assert len(fast.active_incidents) == 10

    component = fast.page.components[0]
    assert type(component) is ComponentView
    assert hash(component) == hash(reference.page.components[0])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        component.name = "changed"  # type: ignore[misc]
    assert attrs.evolve(component, name="x").name == "x"
    assert component.status_updated_at.tzinfo is not None

    timelines = {i.title: i.updates for i in fast.active_incidents}
    assert all(type(u) is StatusUpdate for t in timelines.values() for u in t)
    assert all(len(t) == 4 for title, t in timelines.items() if title != "Incident 3")
    by_hand = timelines["Incident 3"][-1]
    assert by_hand.message == "by hand"
    assert by_hand.timestamp == dt.datetime(2030, 5, 1, 10, tzinfo=dt.UTC)
    assert all(u.timestamp.tzinfo is not None for t in timelines.values() for u in t)


def test_column_builder_keeps_validators_and_refuses_ragged_rows() -> None:
    @attrs.frozen
    class Checked:
        value: int = attrs.field(validator=attrs.validators.instance_of(int))

    # A class that validates is built through its __init__, so its validator still runs.
    builder = views._Columns(Checked)
    assert builder.setters is None
    with pytest.raises(TypeError):
        builder.build(10, [["not an int"] * 10])
    assert views._Columns(ComponentView).setters is not None

    row = ["id", "name", None, 0, "OPERATIONAL", "2024-05-01T10:00:00+00:00"]
    with pytest.raises(ValueError, match="values"):
        views._components([row[:5]] * 10)  # a row one value short
    with pytest.raises(ValueError):
        views._components([row] * 9 + [row[:5]])  # one ragged row among full ones


def test_overall_status_from_the_status_column_is_the_worst_of_all() -> None:
    """_decode takes the overall status over the distinct statuses of the components' column
    (h21d): the same as worst_status over every component, in any order and with repeats."""
    from statusdb.domain.types import STATUS_SEVERITY_ORDER, worst_status

    stamp = "2026-12-07T20:00:00+00:00"
    for rotation in range(len(STATUS_SEVERITY_ORDER)):
        statuses = list(STATUS_SEVERITY_ORDER[rotation:]) * 3 + ["OPERATIONAL"] * 9
        rows = [
            [f"c{k}", f"C{k}", None, k, status, stamp, None] for k, status in enumerate(statuses)
        ]
        view = views._decode(
            id="p",
            name="P",
            description=None,
            slug="p",
            is_public=True,
            updated_at=dt.datetime.fromisoformat(stamp),
            components=rows,
            incidents=[],
            maintenance=[],
            version=256,
            fresh_until=None,
            groups=[],
        )
        assert view.page.overall_status == worst_status(
            [c.current_status for c in view.page.components]
        )
        assert view.page.overall_status == worst_status(statuses)
    # A status Python does not know is still refused (DataCorrupt), as before.
    bad = [["c0", "C0", None, 0, "ON_FIRE", stamp, None]]
    with pytest.raises(DataCorrupt):
        views._decoded(
            id="p",
            name="P",
            description=None,
            slug="p",
            is_public=True,
            updated_at=dt.datetime.fromisoformat(stamp),
            components=bad,
            incidents=[],
            maintenance=[],
            version=256,
            fresh_until=None,
            groups=[],
        )
