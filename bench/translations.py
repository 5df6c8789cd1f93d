"""Translations (migration 0033): what one snapshot row per page costs, against one per
(page, locale).

    .venv/bin/python -m bench.translations [--dsn DSN] [--locales 10] [-n 300]

Without --dsn it starts a throwaway cluster of its own (statusdb.tooling.localpg, in a temp
folder) and deletes it. One page of 50 components (5 groups), 5 active incidents of 5 updates
and 3 windows, every text translated in `--locales` locales. It measures (p50 / p90, µs):

- write: a component's status change (its statement re-renders the page's one snapshot row),
  with and without translations on the page: what the per-page design costs a write;
- render: statusdb_page_render of the page alone: what a per-(page, locale) snapshot would add
  to that write once per locale (each locale rendered again, plus its overlay);
- read: page_view_bytes without a locale (the bytes as stored), in a translated locale (the
  overlay at read time), and in a locale the page lacks (the chain is empty: the stored bytes);
- translation write: translations.set of one field (the snapshot version bump).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

import psycopg

from statusdb import (
    components,
    groups,
    maintenance,
    pages,
    status_incidents,
    teams,
    translations,
    views,
)
from statusdb.infra import migrations
from statusdb.pages import NewComponent

from .timing import percentile

LOCALES = (
    "de",
    "fr",
    "es",
    "it",
    "nl",
    "pt",
    "pl",
    "sv",
    "da",
    "fi",
    "ja",
    "ko",
    "zh",
    "ru",
    "tr",
    "cs",
    "el",
    "he",
    "hu",
    "ro",
)


def _times(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(20, n)):
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return percentile(samples, 0.5), percentile(samples, 0.9)


def _page(
    conn: psycopg.Connection, slug: str
) -> tuple[str, list[str], list[str], list[str], list[str]]:
    team = teams.create(conn, name=f"bench {slug}")
    page = pages.create(
        conn,
        team_id=team.id,
        name="Bench",
        slug=slug,
        created_by_id="b",
        is_public=True,
        components=[NewComponent(name=f"C{i}") for i in range(50)],
    )
    comp_ids = [c.id for c in components.list_for_page(conn, page.page.id)]
    group_ids = [groups.create(conn, page.page.id, name=f"G{g}").id for g in range(5)]
    incident_ids = []
    for i in range(5):
        inc = status_incidents.create(
            conn,
            page.page.id,
            title=f"Incident {i}",
            severity="MINOR",
            message="first",
            affected_component_ids=comp_ids[i : i + 1],
        )
        for u in range(4):
            status_incidents.add_update(conn, inc.id, status="IDENTIFIED", message=f"update {u}")
        incident_ids.append(inc.id)
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    window_ids = [
        maintenance.create(
            conn,
            page.page.id,
            title=f"Window {w}",
            description="d",
            start_time=start + dt.timedelta(days=w),
            end_time=start + dt.timedelta(days=w, hours=1),
            component_ids=comp_ids[:2],
            created_by_id="b",
        ).id
        for w in range(3)
    ]
    return page.page.id, comp_ids, group_ids, incident_ids, window_ids


def _translate(
    conn: psycopg.Connection, page_id: str, ids: tuple[list[str], ...], locales: int
) -> None:
    comp_ids, group_ids, incident_ids, window_ids = ids
    rows = []
    for tag in LOCALES[:locales]:
        rows.append((tag, "page", page_id, 0, "name", f"Bench {tag}"))
        rows += [(tag, "component", c, 0, "name", f"C {tag}") for c in comp_ids]
        rows += [(tag, "group", g, 0, "name", f"G {tag}") for g in group_ids]
        for i in incident_ids:
            rows.append((tag, "incident", i, 0, "title", f"I {tag}"))
            rows += [(tag, "incident_update", i, n, "message", f"u {tag}") for n in range(1, 6)]
        rows += [(tag, "maintenance", w, 0, "title", f"W {tag}") for w in window_ids]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO translation (locale, entity_kind, entity_id, update_number, field, text)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def run(dsn: str, *, locales: int, n: int) -> list[tuple[str, float, float]]:
    migrations.apply(dsn)
    results = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        plain_id, plain_comps, *_ = _page(conn, "bench-plain")
        page_id, comp_ids, *rest = _page(conn, "bench-translated")
        _translate(conn, page_id, (comp_ids, *rest), locales)
        conn.execute("VACUUM ANALYZE")
        flip = {"n": 0}

        def write(component_id: str) -> Callable[[], object]:
            def go() -> object:
                flip["n"] += 1
                status = "DEGRADED_PERFORMANCE" if flip["n"] % 2 else "OPERATIONAL"
                return conn.execute(
                    "UPDATE status_page_component SET manual_status = %s WHERE id = %s",
                    (status, component_id),
                )

            return go

        results.append(
            ("write: component status, no translations", *_times(write(plain_comps[0]), n))
        )
        results.append(
            (f"write: component status, {locales} locales", *_times(write(comp_ids[0]), n))
        )
        render = lambda: conn.execute(  # noqa: E731
            "SELECT * FROM statusdb_page_render(ARRAY[%s])", (page_id,)
        ).fetchall()
        p50, p90 = _times(render, n)
        results.append(("render: the page once (per-locale snapshot: x locales)", p50, p90))
        results.append(
            (f"  = per-(page, locale) write extra, {locales} locales", p50 * locales, p90 * locales)
        )
        results.append(
            (
                "read: page_view_bytes, no locale",
                *_times(lambda: views.page_view_bytes(conn, "bench-translated"), n),
            )
        )
        results.append(
            (
                "read: page_view_bytes, locale de (overlay)",
                *_times(lambda: views.page_view_bytes(conn, "bench-translated", locale="de"), n),
            )
        )
        results.append(
            (
                "read: page_view_bytes, locale xx (not translated)",
                *_times(lambda: views.page_view_bytes(conn, "bench-translated", locale="ko-KR"), n),
            )
        )
        results.append(
            (
                "read: page_view, no locale",
                *_times(lambda: views.page_view(conn, "bench-translated"), n),
            )
        )
        results.append(
            (
                "read: page_view, locale de",
                *_times(lambda: views.page_view(conn, "bench-translated", locale="de"), n),
            )
        )
        results.append(
            (
                "translation write: one field (version bump)",
                *_times(
                    lambda: translations.set(
                        conn,
                        page_id,
                        "de",
                        entity="component",
                        entity_id=comp_ids[1],
                        field="description",
                        text=f"d {time.perf_counter_ns()}",
                    ),
                    n,
                ),
            )
        )
    del plain_id
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn")
    parser.add_argument("--locales", type=int, default=10)
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()
    if args.dsn:
        rows = run(args.dsn, locales=args.locales, n=args.n)
    else:
        from .cluster import SERVER_SETTINGS, bench_cluster

        # The server's defaults but the libraries (a small page: all cached).
        preload = {"shared_preload_libraries": SERVER_SETTINGS["shared_preload_libraries"]}
        with bench_cluster(preload) as dsn:
            rows = run(dsn, locales=args.locales, n=args.n)
    print(f"{'case':60} {'p50 µs':>10} {'p90 µs':>10}")
    for name, p50, p90 in rows:
        print(f"{name:60} {p50:10.0f} {p90:10.0f}")


if __name__ == "__main__":
    main()
