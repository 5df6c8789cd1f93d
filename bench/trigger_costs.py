"""Issue 20, item 6: what each trigger, foreign key and hot function costs an incident open.

Two cases:

* **open incident vs its floor, alternated**: the real open (one INSERT, the derivation moving
  50 components, their 50 log rows, everything the triggers add, committed) alternated block by
  block with its floor, the same row work into copies of the tables (`CREATE TABLE ... (LIKE ...
  INCLUDING ALL)`: same columns, defaults, CHECKs and indexes; no triggers, foreign keys or
  policies): the incident row, the 50 component updates and the 50 log rows, in one statement
  (one round trip, one transaction, as the open is).
* **trigger costs**: in a scratch copy of the bench database (`CREATE DATABASE ... TEMPLATE`),
  the open is first run once in a rolled-back transaction to find what it runs: the tables it
  writes (`pg_stat_xact_user_tables`) and the trigger functions it calls
  (`pg_stat_xact_user_functions`, `track_functions = 'all'`). Then, one at a time, each of those
  triggers, each foreign key of a written table (its internal RI triggers) and each variant of a
  hot function (`FUNCTIONS` below: what the open would cost with the function's other
  definition) is switched off, and the open is timed in alternating blocks with everything on
  and with that one thing off. The cost of a thing is p50(all on) - p50(it off), both from its
  own alternation; the table lists them largest first, with the share of the open. Two tables:
  the bench's 50-component team without groups, and a team whose 50 components are in 5 groups
  (made in the scratch database: the group roll-up's triggers, functions and keys show up).

Switching a trigger off is `ALTER TABLE ... DISABLE TRIGGER` (a foreign key's internal triggers
need a superuser: the case runs its switches as the bench's superuser, the opens as the
application's login). The scratch database is dropped at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.timing import CaseResult, percentile, timed
from statusdb import incidents
from statusdb.errors import StatusdbError

if TYPE_CHECKING:  # bench.cases imports this module at its end: import it lazily at run time
    from bench import cases

#: Hot functions whose definition matters to the planner, as (label, function, the ALTER that
#: gives the other definition, the ALTER that restores it). STRICT keeps PostgreSQL from inlining
#: a SQL function whose body is a CASE (NULL in does not always give NULL out), so each call
#: costs a function call (~1.7 us) instead of an inlined expression (~0.15 us).
FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("statusdb_status_rank", "statusdb_status_rank(text)"),
    ("statusdb_priority_status", "statusdb_priority_status(text)"),
)

#: Opens per block and blocks per alternation (each block: one with everything on, one with the
#: thing off). The issue's numbers were 20 blocks x 12 opens.
BLOCK = 12


@dataclass(frozen=True)
class Switch:
    """One thing to switch off: its label and kind, and the SQL that switches it off and on."""

    label: str
    kind: str
    off: sql.Composed
    on: sql.Composed


def _dsn_for(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


@contextmanager
def _scratch(ctx: cases.Context) -> Iterator[tuple[str, str]]:
    """A copy of the bench database; (its superuser dsn, its application dsn). Dropped on exit."""
    source = str(conninfo_to_dict(ctx.admin_dsn).get("dbname") or "")
    name = f"{source}_trigger_costs"
    with psycopg.connect(_dsn_for(ctx.admin_dsn, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(source)
            )
        )
    try:
        yield _dsn_for(ctx.admin_dsn, name), _dsn_for(ctx.dsn, name)
    finally:
        with psycopg.connect(_dsn_for(ctx.admin_dsn, "postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# The tables the open wrote, each with the trigger events it caused there (pg_trigger.tgtype's
# bits: 4 INSERT, 8 DELETE, 16 UPDATE).
_WRITTEN_TABLES = """
SELECT relid::regclass::text,
       (CASE WHEN n_tup_ins > 0 THEN 4 ELSE 0 END) | (CASE WHEN n_tup_del > 0 THEN 8 ELSE 0 END)
       | (CASE WHEN n_tup_upd + n_tup_hot_upd > 0 THEN 16 ELSE 0 END)
FROM pg_stat_xact_user_tables
WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
ORDER BY 1
"""

_CALLED_FUNCTIONS = "SELECT funcid FROM pg_stat_xact_user_functions"

# The user triggers of the written tables for the events the open caused there whose function
# the open called (an UPDATE trigger of the incident table shares its function with the INSERT
# one but does not fire on the open), and the foreign keys of the written tables (the
# referencing side: their RI check triggers fire on INSERT/UPDATE).
_TRIGGERS = """
SELECT t.tgrelid::regclass::text, t.tgname
FROM pg_trigger t
JOIN unnest(%(tables)s::regclass[], %(events)s::int[]) AS w (rel, events) ON w.rel = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgfoid = ANY(%(functions)s::oid[])
  AND (t.tgtype::int & w.events) <> 0
ORDER BY 1, 2
"""

_FOREIGN_KEYS = """
SELECT c.conname, array_agg(t.tgrelid::regclass::text ORDER BY t.tgname),
       array_agg(t.tgname::text ORDER BY t.tgname)
FROM pg_constraint c
JOIN pg_trigger t ON t.tgconstraint = c.oid
WHERE c.contype = 'f' AND c.conrelid = ANY(%(tables)s::regclass[])
GROUP BY c.conname
ORDER BY 1
"""


def _switches(admin_dsn: str, team_id: str) -> tuple[list[Switch], list[str]]:
    """What one open runs, as switches; and the tables it writes."""
    with psycopg.connect(admin_dsn) as conn:
        conn.execute("SET track_functions = 'all'")
        incidents.create(conn, team_id, title="Which triggers", priority="CRITICAL")
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred ones run now
        written = conn.execute(_WRITTEN_TABLES).fetchall()
        functions = [row[0] for row in conn.execute(_CALLED_FUNCTIONS)]
        conn.rollback()
        tables = [table for table, _ in written]
        triggers = conn.execute(
            _TRIGGERS,
            {"tables": tables, "events": [e for _, e in written], "functions": functions},
        ).fetchall()
        keys = conn.execute(_FOREIGN_KEYS, {"tables": tables}).fetchall()
        strict: dict[str, bool] = dict(
            conn.execute(
                "SELECT p.oid::regprocedure::text, p.proisstrict FROM pg_proc p"
                " WHERE p.oid::regprocedure::text = ANY(%s)",
                ([signature for _, signature in FUNCTIONS],),
            ).fetchall()
        )
    switches = [
        Switch(
            label=f"{table}.{name}",
            kind="trigger",
            off=sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                sql.SQL(table), sql.Identifier(name)
            ),
            on=sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(
                sql.SQL(table), sql.Identifier(name)
            ),
        )
        for table, name in triggers
    ]
    for conname, key_tables, names in keys:
        off = sql.SQL("; ").join(
            sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(sql.SQL(t), sql.Identifier(n))
            for t, n in zip(key_tables, names, strict=True)
        )
        on = sql.SQL("; ").join(
            sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(sql.SQL(t), sql.Identifier(n))
            for t, n in zip(key_tables, names, strict=True)
        )
        switches.append(Switch(label=f"foreign key {conname}", kind="foreign key", off=off, on=on))
    for label, signature in FUNCTIONS:
        if signature not in strict:
            continue
        now, other = ("STRICT", "CALLED ON NULL INPUT")
        if not strict[signature]:
            now, other = other, now
        switches.append(
            Switch(
                label=f"{label} {now} (off: {other})",
                kind="function",
                off=sql.SQL("ALTER FUNCTION {} {}").format(sql.SQL(signature), sql.SQL(other)),
                on=sql.SQL("ALTER FUNCTION {} {}").format(sql.SQL(signature), sql.SQL(now)),
            )
        )
    return switches, tables


def _opener(
    conn: cases.Conn, team_id: str
) -> tuple[Callable[[], object], Callable[[], None], list[str]]:
    opened: list[str] = []

    def open_one() -> object:
        incident = incidents.create(conn, team_id, title="Elevated error rate", priority="CRITICAL")
        opened.append(incident.id)
        return incident

    def resolve_last() -> None:
        incidents.resolve(conn, opened[-1])
        opened.pop()  # only once resolved: a failed resolve is retried (see _alternate)

    return open_one, resolve_last, opened


def _block(open_one: Callable[[], object], reset: Callable[[], None], size: int) -> list[float]:
    open_one()  # untimed: the first open after a switch plans its statements again
    reset()
    times = []
    for _ in range(size):
        times.append(timed(open_one))
        reset()
    return times


def _alternate(
    admin: psycopg.Connection[Any],
    switch: Switch,
    open_one: Callable[[], object],
    reset: Callable[[], None],
    opened: list[str],
    blocks: int,
) -> tuple[list[float], list[float] | None]:
    """Blocks with everything on and with `switch` off, alternately. Off is None when the open
    or its resolve fails without the thing switched off (a rule they need, e.g. resolved_at's
    trigger): its cost is then not measured."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(blocks):
        on.extend(_block(open_one, reset, BLOCK))
        admin.execute(switch.off)
        try:
            off.extend(_block(open_one, reset, BLOCK))
        except (psycopg.Error, StatusdbError):
            return on, None
        finally:
            admin.execute(switch.on)
            while opened:  # what a failed resolve left open
                reset()
    return on, off


def _profile(
    ctx: cases.Context, admin_dsn: str, app_dsn: str, team_id: str, blocks: int
) -> tuple[list[dict[str, Any]], list[float], list[str]]:
    """The cost table of one team's open in the scratch database: (rows, every time with
    everything on, the tables written)."""
    from bench import cases

    switches, tables = _switches(admin_dsn, team_id)
    scratch_ctx = cases.Context(**{**ctx.__dict__, "dsn": app_dsn, "admin_dsn": admin_dsn})
    rows: list[dict[str, Any]] = []
    everything: list[float] = []
    with (
        psycopg.connect(admin_dsn, autocommit=True) as admin,
        cases.app_connection(scratch_ctx) as conn,
    ):
        open_one, reset, opened = _opener(conn, team_id)
        for _ in range(10):  # warm-up
            open_one()
            reset()
        for switch in switches:
            ctx.log(f"  off: {switch.label}")
            on, off = _alternate(admin, switch, open_one, reset, opened, blocks)
            everything.extend(on)
            p50_on = percentile(on, 0.5)
            if off is None:
                rows.append(
                    {
                        "switched_off": switch.label,
                        "kind": switch.kind,
                        "p50_on_us": round(p50_on),
                        "p50_off_us": None,
                        "cost_us": None,
                        "share": None,
                        "note": "the open or its resolve fails without it",
                    }
                )
                continue
            p50_off = percentile(off, 0.5)
            rows.append(
                {
                    "switched_off": switch.label,
                    "kind": switch.kind,
                    "p50_on_us": round(p50_on),
                    "p50_off_us": round(p50_off),
                    "cost_us": round(p50_on - p50_off),
                    "share": round((p50_on - p50_off) / p50_on, 3),
                }
            )
    rows.sort(key=lambda r: -1e9 if r["cost_us"] is None else -int(r["cost_us"]))
    return rows, everything, tables


def trigger_costs(ctx: cases.Context) -> list[CaseResult]:
    """The cost table of the open for the bench's 50-component team (no groups) and for a
    team whose 50 components are in 5 groups (the group roll-up's triggers and functions)."""
    from bench import cases

    blocks = max(5, ctx.scale.iterations // 100)  # small: 10 blocks, large: 20
    results: list[CaseResult] = []
    with _scratch(ctx) as (admin_dsn, app_dsn):
        scratch_ctx = cases.Context(**{**ctx.__dict__, "dsn": app_dsn, "admin_dsn": admin_dsn})
        with cases.app_connection(scratch_ctx) as conn:
            grouped_team, _, _ = cases.incident_page(conn, "TriggerCostsGrouped", grouped=True)
        for label, team_id in (
            ("", ctx.team_50),
            (" in 5 groups", grouped_team),
        ):
            ctx.log(f"  team: 50 components{label or ' without groups'}")
            rows, everything, tables = _profile(ctx, admin_dsn, app_dsn, team_id, blocks)
            p50 = percentile(everything, 0.5) if everything else 0.0
            results.append(
                CaseResult(
                    name=(
                        f"trigger costs: open an incident moving 50 components{label},"
                        " each thing off in turn"
                    ),
                    p50_us=p50,
                    p99_us=percentile(everything, 0.99) if everything else 0.0,
                    n=len(everything),
                    ratio=None,
                    baseline="the same open with that one trigger, foreign key or function"
                    " variant off",
                    baseline_p50_us=None,
                    target="report (notes.costs, bench/README.md)",
                    met=None,
                    notes={
                        "blocks": blocks,
                        "opens_per_block": BLOCK,
                        "tables_written": tables,
                        "costs": rows,
                    },
                )
            )
    return results


def cost_table(result: dict[str, Any]) -> str:
    """The `costs` of a trigger-costs result (from results.json) as a Markdown table."""
    lines = [
        "| switched off | kind | p50 on µs | p50 off µs | cost µs | share |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["notes"]["costs"]:
        if row["cost_us"] is None:
            lines.append(
                f"| {row['switched_off']} | {row['kind']} | {row['p50_on_us']} | | "
                f"| {row.get('note', '')} |"
            )
            continue
        lines.append(
            f"| {row['switched_off']} | {row['kind']} | {row['p50_on_us']} | {row['p50_off_us']}"
            f" | {row['cost_us']} | {row['share']:.0%} |"
        )
    return "\n".join(lines)


# -- the open vs its floor, alternated ------------------------------------------------------------

_FLOOR_SETUP = """
DROP TABLE IF EXISTS bench_floor2_incident, bench_floor2_change, bench_floor2_component;
CREATE TABLE bench_floor2_incident (LIKE incident INCLUDING ALL);
CREATE TABLE bench_floor2_component (LIKE status_page_component INCLUDING ALL);
CREATE TABLE bench_floor2_change (LIKE status_change INCLUDING ALL);
INSERT INTO bench_floor2_incident SELECT * FROM incident;
INSERT INTO bench_floor2_component SELECT * FROM status_page_component;
INSERT INTO bench_floor2_change OVERRIDING SYSTEM VALUE SELECT * FROM status_change;
SELECT setval(pg_get_serial_sequence('bench_floor2_change', 'seq'),
              (SELECT max(seq) FROM bench_floor2_change));
ANALYZE bench_floor2_incident, bench_floor2_component, bench_floor2_change;
GRANT SELECT, INSERT, UPDATE ON bench_floor2_incident, bench_floor2_component,
                                bench_floor2_change TO statusdb_app;
"""

# The open's row work alone: the incident row, its 50 components updated and 50 log rows, one
# statement (one round trip, one transaction), committed.
_FLOOR = """
WITH opened AS (
    INSERT INTO bench_floor2_incident (team_id, title, priority, status)
    VALUES (%(team_id)s, 'Elevated error rate', 'CRITICAL', 'OPEN')
    RETURNING id
), moved AS (
    UPDATE bench_floor2_component c
    SET current_status = CASE c.current_status WHEN 'OPERATIONAL' THEN 'MAJOR_OUTAGE'
                                               ELSE 'OPERATIONAL' END,
        status_updated_at = clock_timestamp(), updated_at = now()
    WHERE c.team_id = %(team_id)s
    RETURNING c.id, c.status_page_id, c.current_status, c.status_updated_at
)
INSERT INTO bench_floor2_change (status_page_id, component_id, previous_status, new_status,
                                 cause, incident_id, changed_at)
SELECT m.status_page_id, m.id,
       CASE m.current_status WHEN 'OPERATIONAL' THEN 'MAJOR_OUTAGE' ELSE 'OPERATIONAL' END,
       m.current_status, 'INCIDENT', o.id, m.status_updated_at
FROM moved m CROSS JOIN opened o
"""


def open_vs_floor(ctx: cases.Context) -> list[CaseResult]:
    """The open and its floor timed in alternating blocks on one application connection."""
    n = max(100, ctx.scale.iterations // 5)
    with psycopg.connect(ctx.admin_dsn, autocommit=True) as admin:
        admin.execute(_FLOOR_SETUP)
    try:
        from bench import cases

        with cases.app_connection(ctx) as conn:
            open_one, reset, _ = _opener(conn, ctx.team_50)

            def floor() -> object:
                return conn.execute(_FLOOR, {"team_id": ctx.team_50})

            for _ in range(10):
                open_one()
                reset()
                floor()
            opens: list[float] = []
            floors: list[float] = []
            while len(opens) < n:
                floors.extend(timed(floor) for _ in range(BLOCK))
                for _ in range(BLOCK):
                    opens.append(timed(open_one))
                    reset()
    finally:
        with psycopg.connect(ctx.admin_dsn, autocommit=True) as admin:
            admin.execute(
                "DROP TABLE bench_floor2_incident, bench_floor2_change, bench_floor2_component"
            )
    p50, floor_p50 = percentile(opens, 0.5), percentile(floors, 0.5)
    return [
        CaseResult(
            name="open an incident moving 50 components vs its floor, alternated (committed)",
            p50_us=p50,
            p99_us=percentile(opens, 0.99),
            n=len(opens),
            ratio=p50 / floor_p50,
            baseline="floor: incident row + 50 component updates + 50 log rows, no triggers/FKs",
            baseline_p50_us=floor_p50,
            target="<= 2x",
            met=p50 / floor_p50 <= 2.0,
            notes={"floor_p99_us": round(percentile(floors, 0.99))},
        )
    ]


TRIGGER_COST_CASES: list[tuple[str, Callable[[cases.Context], list[CaseResult]]]] = [
    ("open incident vs floor", open_vs_floor),
    ("trigger costs", trigger_costs),
]
