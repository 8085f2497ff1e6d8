"""What a soak run measured, made into figures: per-minute records, faults' recoveries, RSS, and the plot.

Plain functions of the run's raw records (one `Call` per request, RSS samples, fault windows), so the
summary can be recomputed from the JSON of a run.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.soak_faults import Window

RECOVERY_S = 10.0  # p95 after a fault is compared over this many seconds after its window
BASELINE_S = 60.0  # ...with the p95 of this many seconds before it
RECOVERED_WITHIN = 1.2  # the target: back within this factor of the pre-fault p95


@dataclass(frozen=True)
class Call:
    """One request: its operation, when it left and ended (time.time()), and its HTTP status or error name."""

    op: str
    start: float
    end: float
    status: int | str

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000

    @property
    def server_error(self) -> bool:
        return isinstance(self.status, int) and self.status >= 500

    @property
    def connection_error(self) -> bool:
        return isinstance(self.status, str)


def percentiles(values: Iterable[float]) -> dict[str, float]:
    arr = np.fromiter(values, dtype=float)
    if not arr.size:
        return {"n": 0}
    p50, p95, p99 = (round(float(v), 2) for v in np.percentile(arr, [50, 95, 99]))
    return {"n": int(arr.size), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def in_window(call: Call, windows: list[Window]) -> Window | None:
    """The fault window a request overlaps (a request that started before a fault and ended in it counts)."""
    for w in windows:
        end = w.end if w.end is not None else math.inf
        if call.start <= end and call.end >= w.start:
            return w
    return None


def per_minute(
    calls: list[Call], rss: list[tuple[float, dict[str, float]]], t0: float, minutes: int
) -> list[dict[str, Any]]:
    """One record a minute: latency percentiles per operation, statuses, requests/s, and median RSS per process."""
    by_minute: dict[int, list[Call]] = defaultdict(list)
    for c in calls:
        by_minute[int((c.start - t0) // 60)].append(c)
    rss_by_minute: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for at, sample in rss:
        for name, mb in sample.items():
            rss_by_minute[int((at - t0) // 60)][name].append(mb)
    out = []
    for m in range(minutes):
        group = by_minute.get(m, [])
        ops: dict[str, list[float]] = defaultdict(list)
        for c in group:
            if c.status in (200, 201, 202):
                ops[c.op].append(c.ms)
        out.append(
            {
                "minute": m,
                "requests_per_s": round(len(group) / 60, 2),
                "latency": {op: percentiles(v) for op, v in sorted(ops.items())},
                "all_ok": percentiles(v for vs in ops.values() for v in vs),
                "statuses": dict(Counter(str(c.status) for c in group)),
                "rss_mb": {name: round(float(np.median(v)), 1) for name, v in sorted(rss_by_minute[m].items())},
            }
        )
    return out


def fault_errors(calls: list[Call], windows: list[Window]) -> dict[str, Any]:
    """5xx and connection errors, inside each kind of fault window and outside every window."""
    inside: dict[str, Counter[str]] = defaultdict(Counter)
    outside: Counter[str] = Counter()
    server = connection = 0
    for c in calls:
        if not (c.server_error or c.connection_error):
            continue
        w = in_window(c, windows)
        if w is not None:
            inside[w.kind][str(c.status)] += 1
            continue
        outside[f"{c.op} {c.status}"] += 1
        server += c.server_error
        connection += c.connection_error
    return {
        "server_errors_outside_windows": server,
        "connection_errors_outside_windows": connection,
        "outside_windows": dict(outside),
        "inside_windows": {k: dict(v) for k, v in inside.items()},
    }


def recoveries(calls: list[Call], windows: list[Window], ops: set[str]) -> list[dict[str, Any]]:
    """For each fault: p95 of `ops` in the BASELINE_S before it and in the RECOVERY_S after its window."""
    out = []
    for w in windows:
        if w.end is None:
            continue
        before = [c.ms for c in calls if c.op in ops and c.status == 200 and w.start - BASELINE_S <= c.start < w.start]
        after = [c.ms for c in calls if c.op in ops and c.status == 200 and w.end <= c.start < w.end + RECOVERY_S]
        pre, post = percentiles(before), percentiles(after)
        ratio = post["p95_ms"] / pre["p95_ms"] if pre.get("p95_ms") and post.get("p95_ms") else None
        out.append(
            {
                "kind": w.kind,
                "pre_p95_ms": pre.get("p95_ms"),
                "post_p95_ms": post.get("p95_ms"),
                "post_n": post["n"],
                "ratio": None if ratio is None else round(ratio, 2),
                "recovered": None if ratio is None else bool(ratio <= RECOVERED_WITHIN),
            }
        )
    return out


def memory(rss: list[tuple[float, dict[str, float]]], t0: float, duration_s: float) -> dict[str, Any]:
    """Gateway + worker RSS: the median over the run's last quarter against its second quarter (minutes 45-60
    against 15-30 of an hour), and the largest sum seen."""

    def total(sample: dict[str, float]) -> float:
        return sample.get("gateway", 0.0) + sample.get("worker-0", 0.0)

    def median_between(lo: float, hi: float) -> float | None:
        got = [total(s) for at, s in rss if lo <= (at - t0) / duration_s < hi]
        return round(float(np.median(got)), 1) if got else None

    early, late = median_between(0.25, 0.5), median_between(0.75, 1.0)
    growth = None if not early or not late else round((late / early - 1) * 100, 2)
    peak = max((total(s) for _, s in rss), default=0.0)
    return {"early_median_mb": early, "late_median_mb": late, "growth_pct": growth, "peak_mb": round(peak, 1)}


def latency_series(calls: list[Call], t0: float, duration_s: float) -> list[tuple[float, dict[str, float]]]:
    """(minute, percentiles) of all successful calls in bins of a 120th of the run (at least 10 s): the plot's."""
    width = max(10.0, duration_s / 120)
    bins: dict[int, list[float]] = defaultdict(list)
    for c in calls:
        if c.status in (200, 201, 202):
            bins[int((c.start - t0) // width)].append(c.ms)
    return [((i + 0.5) * width / 60, percentiles(v)) for i, v in sorted(bins.items())]


def plot(path: Path, calls: list[Call], rss: list[tuple[float, dict[str, float]]], windows: list[Window], t0: float,
         duration_s: float) -> str | None:  # fmt: skip
    """Latency (p50/p95/p99 of all successful calls) and RSS over time, fault windows shaded.

    None if written, else why not (matplotlib is the `bench` extra, not a test dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    fig, (lat, mem) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    series = latency_series(calls, t0, duration_s)
    for key, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", ":")):
        lat.plot([x for x, _ in series], [p[key] for _, p in series], style, label=key[:3])
    lat.set_ylabel("latency, ms (all operations)")
    lat.set_yscale("log")
    lat.legend(loc="upper right")
    names = sorted({n for _, s in rss for n in s})
    for name in names:
        mem.plot([(at - t0) / 60 for at, _ in rss], [s.get(name, np.nan) for _, s in rss], label=name)
    mem.set_ylabel("RSS, MiB")
    mem.set_xlabel("minutes")
    mem.legend(loc="upper left")
    colours = {"worker_kill": "tab:red", "worker_stop": "tab:orange", "gateway_kill": "tab:purple",
               "disk_full": "tab:brown"}  # fmt: skip
    for w in windows:
        end = w.end if w.end is not None else w.start + 1
        for ax in (lat, mem):
            ax.axvspan((w.start - t0) / 60, (end - t0) / 60, color=colours.get(w.kind, "grey"), alpha=0.25)
        lat.annotate(w.kind, ((w.start - t0) / 60, 1), xycoords=("data", "axes fraction"), rotation=90, va="top",
                     fontsize=7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
