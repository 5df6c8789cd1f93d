"""Timing helpers: paired measurements, percentiles, and the result record of one case."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `samples`, nearest rank."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object]) -> float:
    """Microseconds one call of `fn` took."""
    started = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - started) / 1000


def paired(
    baseline: Callable[[], object],
    case: Callable[[], object],
    *,
    n: int,
    warmup: int,
    reset: Callable[[], object] | None = None,
    block: int = 20,
) -> tuple[list[float], list[float]]:
    """Time `baseline` and `case` n times each, after `warmup` rounds, in alternating blocks.

    Alternating blocks of `block` calls (rather than all of one, then all of the other) expose
    both to the same moments of machine load, so their ratio stays fair when other work runs
    on the machine, while each still runs in its steady state (one call of each in turn would
    let the case evict the baseline's caches and inflate it). `reset` runs untimed after each
    `case` (e.g. to resolve the incident just opened).
    """
    for _ in range(warmup):
        baseline()
        case()
        if reset is not None:
            reset()
    base: list[float] = []
    measured: list[float] = []
    while len(measured) < n:
        size = min(block, n - len(measured))
        base.extend(timed(baseline) for _ in range(size))
        for _ in range(size):
            measured.append(timed(case))
            if reset is not None:
                reset()
    return base, measured


@dataclass
class CaseResult:
    """One line of the results table (and of results.json's `cases`)."""

    name: str
    #: Median and 99th percentile of one operation, in microseconds (for throughput cases: of
    #: one whole run).
    p50_us: float
    p99_us: float
    n: int
    #: Against the stated baseline, measured in the same run: for latency cases p50(case) /
    #: p50(baseline); for throughput cases the achieved rate / the target rate; for the mixed
    #: load the page views per second kept.
    ratio: float | None
    baseline: str
    baseline_p50_us: float | None
    target: str
    met: bool | None
    notes: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("p50_us", "p99_us", "baseline_p50_us"):
            if data[key] is not None:
                data[key] = round(data[key], 1)
        if data["ratio"] is not None:
            data["ratio"] = round(data["ratio"], 3)
        return data


def latency_result(
    name: str,
    case: Sequence[float],
    base: Sequence[float],
    *,
    baseline: str,
    target: str,
    check: Callable[[float], bool] | None,
    notes: dict[str, Any] | None = None,
) -> CaseResult:
    """A latency case: ratio is p50(case) / p50(baseline)."""
    p50 = percentile(case, 0.5)
    base_p50 = percentile(base, 0.5)
    ratio = p50 / base_p50
    return CaseResult(
        name=name,
        p50_us=p50,
        p99_us=percentile(case, 0.99),
        n=len(case),
        ratio=ratio,
        baseline=baseline,
        baseline_p50_us=base_p50,
        target=target,
        met=None if check is None else check(ratio),
        notes=notes or {},
    )
