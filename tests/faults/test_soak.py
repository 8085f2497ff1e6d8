"""The soak harness, short: two and a quarter minutes of mixed load through every kind of fault, then its audit.

`bench/soak.py` runs the real stack (`make run`'s config, one worker) with its data dir on a tmpfs; an hour
of it is `make soak`. Here the targets a run of any length must meet are asserted; the timing targets
(p95 recovery, RSS growth) are figures of the hour-long run on a quiet machine, not assertions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.soak import parse, soak
from bench.soak_faults import KINDS

pytestmark = pytest.mark.slow


async def test_a_short_soak_loses_nothing_acknowledged_and_answers_5xx_only_inside_fault_windows(
    tmp_path: Path,
) -> None:
    args = ["--minutes", "2.25", "--docs", "2000", "--rate", "12", "--fault-every", "25", "--quiet", "20"]
    summary = await soak(parse([*args, "--snapshot-every", "1", "--out", str(tmp_path)]))

    kinds = [f["kind"] for f in summary["faults"]]
    assert kinds == list(KINDS), summary["faults"]
    if os.geteuid() == 0:  # the disk fault needs a tmpfs of its own
        assert "skipped" not in summary["faults"][-1]["note"], summary["faults"]
    assert all("not whole" not in f["note"] for f in summary["faults"]), summary["faults"]

    audit = summary["audit"]
    assert audit["acknowledged"] > 100 and audit["acknowledged_lost"] == [], audit
    assert audit["preloaded_lost_count"] == 0
    assert audit["duplicates"] == 0 and audit["unexpected_count"] == 0, audit
    assert audit["refused_but_stored_count"] == 0, audit
    counts = (audit["index_count"], audit["listed"], audit["listed_total"], *audit["disk"].values())
    assert len(set(counts)) == 1 and len(audit["disk"]) == 3, audit
    assert audit["snapshots"] and all(s["restorable"] for s in audit["snapshots"]), audit["snapshots"]
    assert summary["errors"]["server_errors_outside_windows"] == 0, summary["errors"]
    assert summary["reembed"]["status"] == 202, summary["reembed"]
    assert summary["verdict"] == dict.fromkeys(summary["verdict"], True)

    minutes = summary["per_minute"]
    assert len(minutes) == 3 and all(m["rss_mb"].get("gateway") and m["rss_mb"].get("worker-0") for m in minutes)
    assert summary["plot"].endswith("soak.png") or "not installed" in summary["plot"], summary["plot"]
