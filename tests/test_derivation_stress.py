"""Issue 28: a randomized plain-SQL stress of every status input, at all three isolation levels.

Several connections of the app login run random transactions of 1-3 statements (window status
and auto_update_status, link and unlink, a component's team and service, incident insert,
update and resolve, component and group deletes, with inserts to keep the world populated),
each at a random isolation level, in three mixes: single-statement transactions; transactions
of 1-3 statements in the random mix; and the same mix written the careful way (the reads first,
then `statusdb_lock_status_inputs` with every window, team and component the writes touch, then
the writes; 0038). In `make test` the single statements and the careful mix run until 1,500
transactions each (the floor that makes the target's assertion mean something), the random mix
for 2 s; with STATUSDB_STRESS_SECONDS set, each mix runs for a third of it. Afterwards the
owner's dry-run recomputes must find no drift in components, groups or snapshots. Deadlocks and
serialization failures are counted per 1,000 transactions, per mix and per isolation level, and
printed (`pytest -s`).

Issue 28's target, fewer than 1 deadlock per 1,000 transactions, is asserted for what statusdb
controls: the single statements and the careful mix together (CONTRIBUTING.md, "Lock order").
The random mix without the lock-ahead deadlocks on the slots and derived rows a first
statement's triggers hold while a later one takes earlier slots (no trigger can take a later
statement's locks ahead): it is reported and only bounded loosely
(STATUSDB_STRESS_MULTI_DEADLOCKS_PER_1000, default 150).

    STATUSDB_STRESS_SECONDS=60 .venv/bin/python -m pytest -n 0 -s tests/test_derivation_stress.py
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
import uuid

import psycopg
import pytest
from factories import APP_LOGIN
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

Conn = psycopg.Connection[TupleRow]

#: Set: each of the three mixes runs for a third of it (a bench run). Unset (`make test`):
#: single statements and the careful mix run until ENOUGH transactions each (at most
#: CAP_SECONDS), the random mix for RANDOM_SECONDS.
TIMED = "STATUSDB_STRESS_SECONDS" in os.environ
SECONDS = float(os.environ.get("STATUSDB_STRESS_SECONDS", "10"))
ENOUGH = 1500
CAP_SECONDS = 30.0
RANDOM_SECONDS = 2.0
WORKERS = 5
PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO")
SERVICES = (None, "api", "db")
LEVELS = (
    psycopg.IsolationLevel.READ_COMMITTED,
    psycopg.IsolationLevel.REPEATABLE_READ,
    psycopg.IsolationLevel.SERIALIZABLE,
)


class World:
    """Two pages of two teams' components, groups (two levels), windows and incidents."""

    def __init__(self, owner: Conn) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.teams = [f"st{n}-{suffix}" for n in range(3)]
        self.pages = [f"sp{n}-{suffix}" for n in range(2)]
        for team in self.teams:
            owner.execute("INSERT INTO team (id, name) VALUES (%s, %s)", (team, team))
        for page in self.pages:
            owner.execute(
                """INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)
                   VALUES (%s, %s, %s, true, %s, 'u')""",
                (page, page, page, self.teams[0]),
            )
            owner.execute(
                """INSERT INTO maintenance_window (id, status_page_id, title, start_time,
                                                   end_time, created_by_id)
                   SELECT %s || '-w' || n, %s, 'w', now() - interval '1 hour',
                          now() + interval '1 hour', 'u'
                   FROM generate_series(1, 3) AS n""",
                (page, page),
            )
        owner.execute(
            "INSERT INTO status_lock (slot) SELECT generate_series(0, 8192) ON CONFLICT DO NOTHING"
        )


class Plan:
    """A transaction's writes planned ahead, with every input they touch (the careful mix)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, tuple[object, ...]]] = []
        self.windows: set[str] = set()
        self.teams: set[str] = set()
        self.components: set[str] = set()

    def lock_ahead(self, cur: psycopg.Cursor[TupleRow]) -> None:
        """Every slot the writes' triggers will take, first, in the global order (0038)."""
        cur.execute(
            "SELECT statusdb_lock_status_inputs(%s, %s, %s)",
            (sorted(self.windows), sorted(self.teams), sorted(self.components)),
        )


def random_statement(
    rng: random.Random, cur: psycopg.Cursor[TupleRow], world: World, plan: Plan | None = None
) -> None:
    """One random write, with ids read just before (rows may vanish meanwhile: errors count).

    With a plan, the write is only planned (its reads run now), with the inputs it touches.
    """
    page = rng.choice(world.pages)

    def pick(sql: str, *args: object) -> str | None:
        rows = cur.execute(sql, args).fetchall()
        return str(rng.choice(rows)[0]) if rows else None

    def component() -> str | None:
        found = pick("SELECT id FROM status_page_component WHERE status_page_id = %s", page)
        if plan is not None and found is not None:
            plan.components.add(found)
        return found

    def window() -> str | None:
        found = pick("SELECT id FROM maintenance_window WHERE status_page_id = %s", page)
        if plan is not None and found is not None:
            plan.windows.add(found)
        return found

    def group() -> str | None:
        return pick("SELECT id FROM component_group WHERE status_page_id = %s", page)

    def team(chosen: str | None) -> str | None:
        if plan is not None and chosen is not None:
            plan.teams.add(chosen)
        return chosen

    def linked(component_id: str | None, column: str, value: str | None) -> None:
        """The plan also touches the windows (or components) linked to a deleted row."""
        if plan is None or value is None:
            return
        rows = cur.execute(
            "SELECT maintenance_window_id, c.id FROM status_page_component c"
            " LEFT JOIN maintenance_window_component mc ON mc.component_id = c.id"
            f" WHERE c.{column} = %s",
            (value,),
        ).fetchall()
        plan.windows.update(str(w) for w, _ in rows if w is not None)
        plan.components.update(str(c) for _, c in rows)

    def write(sql: str, args: tuple[object, ...]) -> None:
        if plan is None:
            cur.execute(sql, args)
        else:
            plan.writes.append((sql, args))

    kind = rng.randrange(13)
    if kind == 0:  # window status
        write(
            "UPDATE maintenance_window SET status = %s WHERE id = %s",
            (rng.choice(("SCHEDULED", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED")), window()),
        )
    elif kind == 1:
        write(
            "UPDATE maintenance_window SET auto_update_status = NOT auto_update_status"
            " WHERE id = %s",
            (window(),),
        )
    elif kind in (2, 3):  # link
        write(
            """INSERT INTO maintenance_window_component (maintenance_window_id, component_id)
               SELECT %s, %s WHERE %s::text IS NOT NULL ON CONFLICT DO NOTHING""",
            (window(), c := component(), c),
        )
    elif kind == 4:  # unlink
        c = component()
        if plan is None:
            write("DELETE FROM maintenance_window_component WHERE component_id = %s", (c,))
        else:  # the links it read (and locked the windows of), not one linked meanwhile
            linked(c, "id", c)
            write(
                "DELETE FROM maintenance_window_component"
                " WHERE component_id = %s AND maintenance_window_id = ANY (%s)",
                (c, sorted(plan.windows)),
            )
    elif kind == 5:  # team
        write(
            "UPDATE status_page_component SET team_id = %s WHERE id = %s",
            (team(rng.choice([*world.teams, None])), component()),
        )
    elif kind == 6:  # service
        write(
            "UPDATE status_page_component SET service_identifier = %s WHERE id = %s",
            (rng.choice(SERVICES), component()),
        )
    elif kind in (7, 8):  # incident opened
        write(
            """INSERT INTO incident (team_id, title, priority, service_identifier)
               VALUES (%s, 'stress', %s, %s)""",
            (team(rng.choice(world.teams)), rng.choice(PRIORITIES), rng.choice(SERVICES)),
        )
    elif kind == 9:  # incident changed or resolved
        incident = pick(
            "SELECT id FROM incident"
            " WHERE team_id = ANY (%s) AND status IN ('OPEN', 'ACKNOWLEDGED')",
            world.teams,
        )
        if plan is not None and incident is not None:
            row = cur.execute("SELECT team_id FROM incident WHERE id = %s", (incident,)).fetchone()
            team(str(row[0]) if row and row[0] else None)
        if rng.random() < 0.5:
            write("UPDATE incident SET status = 'RESOLVED' WHERE id = %s", (incident,))
        else:
            write(
                "UPDATE incident SET priority = %s, status = 'ACKNOWLEDGED' WHERE id = %s",
                (rng.choice(PRIORITIES), incident),
            )
    elif kind == 10:  # a component deleted, or another added
        if rng.random() < 0.4:
            c = component()
            linked(c, "id", c)
            write("DELETE FROM status_page_component WHERE id = %s", (c,))
            return
        write(
            """INSERT INTO status_page_component (status_page_id, name, team_id,
                                                  service_identifier, group_id)
               VALUES (%s, 'c', %s, %s, %s)""",
            (page, team(rng.choice([*world.teams, None])), rng.choice(SERVICES), group()),
        )
    elif kind == 11:  # a group deleted, or another added
        if rng.random() < 0.4:
            g = group()
            linked(None, "group_id", g)
            write("DELETE FROM component_group WHERE id = %s", (g,))
            return
        write(
            "INSERT INTO component_group (status_page_id, name, parent_id) VALUES (%s, 'g', %s)",
            (page, group() if rng.random() < 0.5 else None),
        )
    else:  # a component moved to a group
        write(
            "UPDATE status_page_component SET group_id = %s WHERE id = %s", (group(), component())
        )


def run_phase(
    app_dsn: str,
    world: World,
    seconds: float,
    max_statements: int,
    careful: bool = False,
    enough: int | None = None,
) -> collections.Counter[str]:
    """WORKERS connections of random transactions for `seconds`; the outcomes counted.

    Careful: each transaction plans its writes, takes their slots ahead
    (`statusdb_lock_status_inputs`), then writes. `enough`: stop as soon as that many
    transactions ended (`seconds` is then the cap).
    """
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    done = threading.Event()
    unexpected: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(app_dsn) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.commit()
            while time.monotonic() < deadline and not done.is_set():
                level = rng.choice(LEVELS)
                conn.isolation_level = level
                outcome = "committed"
                try:
                    with conn.cursor() as cur:
                        plan = Plan() if careful else None
                        for _ in range(rng.randint(1, max_statements)):
                            random_statement(rng, cur, world, plan)
                        if plan is not None:
                            plan.lock_ahead(cur)
                            for sql, args in plan.writes:
                                cur.execute(sql, args)
                    conn.commit()
                except pg_errors.DeadlockDetected as exc:
                    outcome = "deadlock"
                    if os.environ.get("STATUSDB_STRESS_VERBOSE"):
                        print("DEADLOCK", exc.diag.message_detail, exc.diag.context)
                except pg_errors.SerializationFailure:
                    outcome = "serialization"
                except (pg_errors.IntegrityError, pg_errors.CheckViolation) as exc:
                    outcome = f"refused {exc.sqlstate}"  # a row gone meanwhile, a same-page rule
                except BaseException as exc:
                    unexpected.append(exc)
                    return
                finally:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.rollback()
                with lock:
                    counts[outcome] += 1
                    counts["total"] += 1
                    counts[f"total {level.name}"] += 1
                    if outcome in ("deadlock", "serialization"):
                        counts[f"{outcome} {level.name}"] += 1
                    if enough is not None and counts["total"] >= enough:
                        done.set()

    threads = [
        threading.Thread(target=worker, args=(max_statements * 100 + careful * 1000 + seed,))
        for seed in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    assert unexpected == []
    total = counts["total"]

    def per_1000(n: int, of: int = total) -> float:
        return round(1000 * n / max(of, 1), 1)

    levels = ", ".join(
        f"{level.name} {per_1000(counts[f'deadlock {level.name}'], counts[f'total {level.name}'])}"
        f"/{per_1000(counts[f'serialization {level.name}'], counts[f'total {level.name}'])}"
        for level in LEVELS
    )
    print(
        f"\nstress {time.monotonic() - deadline + seconds:.1f}s, {WORKERS} workers,"
        f" 1-{max_statements} statements{', careful (slots locked ahead)' if careful else ''}:"
        f" {total} transactions, {counts['committed']} committed; per 1,000: deadlocks"
        f" {per_1000(counts['deadlock'])}, serialization failures"
        f" {per_1000(counts['serialization'])} (deadlocks/serialization failures per level:"
        f" {levels}); {dict(sorted(counts.items()))}"
    )
    return counts


@pytest.mark.slow
def test_random_plain_sql_leaves_zero_drift(dsn: str, logins: None) -> None:
    with psycopg.connect(dsn, autocommit=True) as owner:
        world = World(owner)
        populate = random.Random(7)
        with owner.cursor() as cur:
            for _ in range(30):
                random_statement(populate, cur, world)
    app_dsn = make_conninfo(dsn, user=APP_LOGIN)
    if TIMED:  # a longer run (bench/README.md): each mix for a third of the time
        single = run_phase(app_dsn, world, SECONDS / 3, max_statements=1)
        several = run_phase(app_dsn, world, SECONDS / 3, max_statements=3)
        careful = run_phase(app_dsn, world, SECONDS / 3, max_statements=3, careful=True)
    else:  # `make test`: the targeted mixes until enough transactions, the random one briefly
        single = run_phase(app_dsn, world, CAP_SECONDS, max_statements=1, enough=ENOUGH)
        several = run_phase(app_dsn, world, RANDOM_SECONDS, max_statements=3)
        careful = run_phase(
            app_dsn, world, CAP_SECONDS, max_statements=3, careful=True, enough=ENOUGH
        )
    with psycopg.connect(dsn, autocommit=True) as owner:
        assert owner.execute("SELECT * FROM statusdb_recompute_statuses(false)").fetchall() == []
        assert (
            owner.execute("SELECT * FROM statusdb_recompute_group_statuses(false)").fetchall() == []
        )
        # 0035: the snapshots rendered at the commits are exact too.
        assert owner.execute("SELECT * FROM statusdb_page_snapshot_repair(false)").fetchall() == []
    # Issue 28's target, < 1 deadlock per 1,000 transactions, for what statusdb controls:
    # single statements, and transactions of several statements that take their slots ahead
    # (0038), together. The floor makes it mean something: at least 2 * ENOUGH transactions
    # (at 3,000, two deadlocks are allowed; bench/README.md has the figures).
    controlled = single + careful
    print(
        f"\nstress, single statements and careful transactions: {controlled['deadlock']}"
        f" deadlocks in {controlled['total']} transactions"
        f" ({1000 * controlled['deadlock'] / max(controlled['total'], 1):.2f} per 1,000)"
    )
    assert single["total"] >= ENOUGH, single
    assert careful["total"] >= ENOUGH, careful
    assert controlled["deadlock"] * 1000 < controlled["total"], (
        f"single: {dict(single)}; careful: {dict(careful)}"
    )
    # The random mix of 1-3 statements without the lock-ahead is reported, bounded loosely:
    # its deadlocks are the slots and derived rows a first statement's triggers hold while a
    # later statement takes earlier ones (CONTRIBUTING.md, "Lock order").
    limit = float(os.environ.get("STATUSDB_STRESS_MULTI_DEADLOCKS_PER_1000", "150"))
    slack = 5
    assert several["deadlock"] * 1000 <= limit * several["total"] + slack * 1000, (
        f"1-3 statements: {several}"
    )
